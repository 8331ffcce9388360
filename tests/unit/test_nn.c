/* Unit tests of the CPU primitives (lwl_nn) against direct loops, their determinism and error
 * reports, and of the safetensors writer and reader (round trip, malformed files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lwl_nn.h"
#include "lwl_safetensors.h"

static uint64_t rng_state;

static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((rng_state >> 40) / 16777216.0 * 2.0 - 1.0);
    }
    return p;
}

/* max |a - b| / max |b| */
static double max_rel(const float *a, const double *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

typedef struct {
    int n, c, h, w, k, r, s, stride, pad;
} conv_shape;

/* Direct loops in double: y = conv(x, wt), dx and dwt from dy. */
static void conv_ref(const conv_shape *p, const float *x, const float *wt, const float *dy,
                     double *y, double *dx, double *dwt, int oh, int ow)
{
    size_t nx = (size_t)p->n * p->c * p->h * p->w, nw = (size_t)p->k * p->c * p->r * p->s;
    memset(y, 0, (size_t)p->n * p->k * oh * ow * sizeof *y);
    memset(dx, 0, nx * sizeof *dx);
    memset(dwt, 0, nw * sizeof *dwt);
    for (int b = 0; b < p->n; b++)
        for (int k = 0; k < p->k; k++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    size_t yi = (((size_t)b * p->k + k) * oh + i) * ow + j;
                    for (int c = 0; c < p->c; c++)
                        for (int u = 0; u < p->r; u++)
                            for (int v = 0; v < p->s; v++) {
                                int hh = i * p->stride - p->pad + u;
                                int ww = j * p->stride - p->pad + v;
                                if (hh < 0 || hh >= p->h || ww < 0 || ww >= p->w)
                                    continue;
                                size_t xi = (((size_t)b * p->c + c) * p->h + hh) * p->w + ww;
                                size_t wi = (((size_t)k * p->c + c) * p->r + u) * p->s + v;
                                y[yi] += (double)x[xi] * wt[wi];
                                dx[xi] += (double)dy[yi] * wt[wi];
                                dwt[wi] += (double)dy[yi] * x[xi];
                            }
                }
}

/* One convolution against conv_ref; algo as lwl_conv_new_algo's (plain layouts). */
static void conv_case_algo(const conv_shape *p, int algo)
{
    lwl_conv *cv = lwl_conv_new_algo(p->n, p->c, p->h, p->w, p->k, p->r, p->s, p->stride, p->pad,
                                      0, algo);
    int oh, ow;

    assert_non_null(cv);
    lwl_conv_out_hw(cv, &oh, &ow);
    assert_int_equal(oh, (p->h + 2 * p->pad - p->r) / p->stride + 1);
    size_t nx = (size_t)p->n * p->c * p->h * p->w, nw = (size_t)p->k * p->c * p->r * p->s;
    size_t ny = (size_t)p->n * p->k * oh * ow;
    float *x = rand_buf(nx), *wt = rand_buf(nw), *dy = rand_buf(ny);
    float *y = rand_buf(ny), *dx = rand_buf(nx), *dwt = rand_buf(nw);
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    double *rdw = malloc(nw * sizeof *rdw);

    assert_true(ry && rdx && rdw);
    assert_int_equal(lwl_conv_fwd(cv, x, wt, y), 0);
    assert_int_equal(lwl_conv_bwd_data(cv, dy, wt, dx), 0);
    assert_int_equal(lwl_conv_bwd_weights(cv, x, dy, dwt), 0);
    conv_ref(p, x, wt, dy, ry, rdx, rdw, oh, ow);
    print_message("# conv %dx%dx%dx%d k%d %dx%d/%d pad %d%s: rel err y %.1e dx %.1e dwt %.1e\n",
                  p->n, p->c, p->h, p->w, p->k, p->r, p->s, p->stride, p->pad,
                  lwl_conv_algo(cv) ? " Winograd" : "", max_rel(y, ry, ny), max_rel(dx, rdx, nx),
                  max_rel(dwt, rdw, nw));
    assert_true(max_rel(y, ry, ny) < 1e-5);
    assert_true(max_rel(dx, rdx, nx) < 1e-5);
    assert_true(max_rel(dwt, rdw, nw) < 1e-5);
    /* the adding form: acc + the same gradient, bit for bit, twice */
    float *acc = rand_buf(nw), *want = malloc(nw * sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < nw; i++)
        want[i] = acc[i] + dwt[i];
    assert_int_equal(lwl_conv_bwd_weights_add(cv, x, dy, acc), 0);
    assert_memory_equal(acc, want, nw * sizeof *acc);
    for (size_t i = 0; i < nw; i++)
        want[i] += dwt[i];
    assert_int_equal(lwl_conv_bwd_weights_add(cv, x, dy, acc), 0);
    assert_memory_equal(acc, want, nw * sizeof *acc);
    assert_int_equal(lwl_conv_bwd_weights(cv, x, dy, acc), 0);
    assert_memory_equal(acc, dwt, nw * sizeof *acc);
    free(acc), free(want);
    free(x), free(wt), free(dy), free(y), free(dx), free(dwt), free(ry), free(rdx), free(rdw);
    lwl_conv_free(cv);
}

static void conv_case(const conv_shape *p)
{
    conv_case_algo(p, 0);
}

/* Winograd forward and input gradient where oneDNN has them (AVX-512): the same answers
 * within the same bound, and counted; a shape without such kernels falls back to direct. */
static void test_conv_winograd(void **state)
{
    static const conv_shape cases[] = {
        {2, 16, 8, 8, 32, 3, 3, 1, 1},
        {3, 32, 12, 12, 16, 3, 3, 1, 1},
        {2, 64, 16, 16, 64, 3, 3, 1, 1},
    };
    int n0, f0, b0, n, f, b;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        conv_case_algo(&cases[i], LWL_CONV_WINO_FWD | LWL_CONV_WINO_BWD_DATA);
    lwl_nn_conv_algos(&n0, &f0, &b0);
    lwl_conv *w = lwl_conv_new_algo(2, 16, 8, 8, 32, 3, 3, 1, 1, 1, LWL_CONV_WINO_BWD_DATA);
    lwl_conv *d = lwl_conv_new_algo(2, 3, 8, 8, 32, 3, 3, 1, 1, 1, LWL_CONV_WINO_FWD);
    assert_true(w && d);
    lwl_nn_conv_algos(&n, &f, &b);
    assert_int_equal(n, n0 + 2);
    assert_int_equal(lwl_conv_algo(d), 0); /* 3 input channels: no Winograd kernel */
    if (lwl_nn_act_block() == 16) {
        assert_int_equal(lwl_conv_algo(w), LWL_CONV_WINO_BWD_DATA);
        assert_int_equal(b, b0 + 1);
    }
    assert_int_equal(f, f0);
    lwl_conv_free(w);
    lwl_conv_free(d);
    lwl_nn_conv_algos(&n, &f, &b);
    assert_int_equal(n, n0);
    assert_int_equal(b, b0);
}

static void test_conv_reference(void **state)
{
    static const conv_shape cases[] = {
        {2, 3, 9, 9, 4, 3, 3, 1, 1},   {2, 3, 9, 9, 4, 3, 3, 2, 1},
        {2, 3, 16, 16, 8, 7, 7, 2, 3}, {2, 8, 7, 7, 16, 1, 1, 2, 0},
        {2, 16, 8, 8, 16, 3, 3, 1, 1}, {3, 32, 6, 6, 24, 1, 1, 1, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        conv_case(&cases[i]);
}

/* Same inputs, same bits; image 0's output does not depend on image 1's content. */
static void test_conv_deterministic(void **state)
{
    enum { N = 4, C = 32, H = 14, K = 64 };
    lwl_conv *cv = lwl_conv_new(N, C, H, H, K, 3, 3, 1, 1);
    size_t nx = (size_t)N * C * H * H, nw = (size_t)K * C * 9, ny = (size_t)N * K * H * H;
    float *x = rand_buf(nx), *wt = rand_buf(nw), *dy = rand_buf(ny);
    float *y1 = rand_buf(ny), *y2 = rand_buf(ny), *d1 = rand_buf(nw), *d2 = rand_buf(nw);
    float *x1 = rand_buf(nx), *x2 = rand_buf(nx);

    (void)state;
    assert_non_null(cv);
    assert_int_equal(lwl_nn_threads(2), 0);
    assert_int_equal(lwl_conv_fwd(cv, x, wt, y1), 0);
    assert_int_equal(lwl_conv_fwd(cv, x, wt, y2), 0);
    assert_memory_equal(y1, y2, ny * sizeof *y1);
    assert_int_equal(lwl_conv_bwd_weights(cv, x, dy, d1), 0);
    assert_int_equal(lwl_conv_bwd_weights(cv, x, dy, d2), 0);
    assert_memory_equal(d1, d2, nw * sizeof *d1);
    assert_int_equal(lwl_conv_bwd_data(cv, dy, wt, x1), 0);
    assert_int_equal(lwl_conv_bwd_data(cv, dy, wt, x2), 0);
    assert_memory_equal(x1, x2, nx * sizeof *x1);
    for (size_t i = nx / N; i < nx; i++) /* every image but the first */
        x[i] = -x[i] * 3.0f;
    assert_int_equal(lwl_conv_fwd(cv, x, wt, y2), 0);
    assert_memory_equal(y1, y2, ny / N * sizeof *y1);
    assert_memory_not_equal(y1 + ny / N, y2 + ny / N, ny / N * sizeof *y1);
    free(x), free(wt), free(dy), free(y1), free(y2), free(d1), free(d2), free(x1), free(x2);
    lwl_conv_free(cv);
}

/* Weight holds: inside one, each weight tensor is reordered once (two per forward, one per
 * backward-data, the oldest replaced by a third); a new hold sees the tensors' new values. */
static void test_conv_hold(void **state)
{
    enum { N = 2, C = 32, H = 10, K = 64 };
    lwl_conv *cv = lwl_conv_new(N, C, H, H, K, 3, 3, 1, 1);
    size_t nx = (size_t)N * C * H * H, nw = (size_t)K * C * 9, ny = (size_t)N * K * H * H;
    float *x = rand_buf(nx), *dy = rand_buf(ny), *w[3], *yr[3], *dr[3];
    float *y = rand_buf(ny), *dx = rand_buf(nx), *old = rand_buf(ny);

    (void)state;
    assert_non_null(cv);
    for (int i = 0; i < 3; i++) {
        w[i] = rand_buf(nw), yr[i] = rand_buf(ny), dr[i] = rand_buf(nx);
        assert_int_equal(lwl_conv_fwd(cv, x, w[i], yr[i]), 0);
        assert_int_equal(lwl_conv_bwd_data(cv, dy, w[i], dr[i]), 0);
    }
    lwl_nn_hold_weights(1);
    static const int order[] = {0, 1, 0, 1, 2, 1, 0, 2, 2, 0};
    for (size_t t = 0; t < sizeof order / sizeof order[0]; t++) {
        int i = order[t];
        assert_int_equal(lwl_conv_fwd(cv, x, w[i], y), 0);
        assert_memory_equal(y, yr[i], ny * sizeof *y);
        assert_int_equal(lwl_conv_bwd_data(cv, dy, w[i], dx), 0);
        assert_memory_equal(dx, dr[i], nx * sizeof *dx);
    }
    /* a change inside the hold is not seen when the layout needs a reorder (the promise) */
    assert_int_equal(lwl_conv_fwd(cv, x, w[0], old), 0);
    for (size_t i = 0; i < nw; i++)
        w[0][i] *= -0.5f;
    assert_int_equal(lwl_conv_fwd(cv, x, w[0], y), 0);
    if (lwl_nn_act_block() > 1)
        assert_memory_equal(y, old, ny * sizeof *y);
    lwl_nn_hold_weights(0);
    assert_int_equal(lwl_conv_fwd(cv, x, w[0], yr[0]), 0);
    assert_memory_not_equal(yr[0], old, ny * sizeof *y);
    lwl_nn_hold_weights(1);
    assert_int_equal(lwl_conv_fwd(cv, x, w[0], y), 0);
    assert_memory_equal(y, yr[0], ny * sizeof *y);
    lwl_nn_hold_weights(0);
    for (int i = 0; i < 3; i++)
        free(w[i]), free(yr[i]), free(dr[i]);
    free(x), free(dy), free(y), free(dx), free(old);
    lwl_conv_free(cv);
}

static void test_maxpool(void **state)
{
    enum { N = 2, C = 3, H = 9, W = 8 };
    lwl_pool *p = lwl_maxpool_new(N, C, H, W, 3, 2, 1);
    int oh, ow;

    (void)state;
    assert_non_null(p);
    lwl_maxpool_out_hw(p, &oh, &ow);
    assert_int_equal(oh, 5);
    assert_int_equal(ow, 4);
    size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * oh * ow;
    float *x = rand_buf(nx), *dy = rand_buf(ny), *y = rand_buf(ny), *dx = rand_buf(nx);
    double *ry = calloc(ny, sizeof *ry), *rdx = calloc(nx, sizeof *rdx);
    assert_true(ry && rdx);
    assert_int_equal(lwl_maxpool_fwd(p, x, y), 0);
    assert_int_equal(lwl_maxpool_bwd(p, dy, dx), 0);
    for (int b = 0; b < N * C; b++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int best = -1;
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        int hh = 2 * i - 1 + u, ww = 2 * j - 1 + v, at = (b * H + hh) * W + ww;
                        if (hh >= 0 && hh < H && ww >= 0 && ww < W && (best < 0 || x[at] > x[best]))
                            best = at;
                    }
                ry[(b * oh + i) * ow + j] = x[best];
                rdx[best] += dy[(b * oh + i) * ow + j];
            }
    assert_true(max_rel(y, ry, ny) == 0);
    assert_true(max_rel(dx, rdx, nx) < 1e-6);
    free(x), free(dy), free(y), free(dx), free(ry), free(rdx);
    lwl_maxpool_free(p);
}

static void test_gemm(void **state)
{
    enum { M = 13, N = 11, K = 17, LD = 20 };
    float *a = rand_buf(LD * LD), *b = rand_buf(LD * LD), *c = rand_buf(M * LD);
    float *c0 = malloc(M * LD * sizeof *c0);
    double *ref = malloc(M * LD * sizeof *ref);

    (void)state;
    assert_true(c0 && ref);
    memcpy(c0, c, M * LD * sizeof *c);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(c, c0, M * LD * sizeof *c);
            assert_int_equal(lwl_gemm(ta, tb, M, N, K, 0.5f, a, LD, b, LD, 0.25f, c, LD), 0);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < LD; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += (double)(ta ? a[k * LD + i] : a[i * LD + k]) *
                             (tb ? b[j * LD + k] : b[k * LD + j]);
                    ref[i * LD + j] = j < N ? 0.5 * s + 0.25 * c0[i * LD + j] : c0[i * LD + j];
                }
            assert_true(max_rel(c, ref, M * LD) < 1e-6);
        }
    free(a), free(b), free(c), free(c0), free(ref);
}

static void test_nn_errors(void **state)
{
    float z[4] = {0};
    (void)state;
    assert_null(lwl_conv_new(1, 3, 2, 2, 4, 5, 5, 1, 0));
    assert_non_null(strstr(lwl_nn_error(), "lwl_conv_new: bad shape"));
    assert_non_null(strstr(lwl_nn_error(), "lwl_nn.c:"));
    assert_null(lwl_maxpool_new(1, 1, 4, 4, 3, 0, 1));
    assert_non_null(strstr(lwl_nn_error(), "lwl_maxpool_new"));
    assert_int_equal(lwl_gemm(0, 0, 2, 2, 2, 1, z, 1, z, 2, 0, z, 2), -1);
    assert_non_null(strstr(lwl_nn_error(), "lda 1"));
    assert_int_equal(lwl_nn_threads(0), -1);
}

/* ---- safetensors */
static char tmpdir[64];

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void test_st_roundtrip(void **state)
{
    float f[6] = {1, 2, 3, 4, 5, 6};
    int64_t l[3] = {-5, 0, INT64_C(1) << 50}, s23[2] = {2, 3}, s3[1] = {3}, s0[1] = {0};
    char path[128], tmp[140];
    lwl_st_writer *w = lwl_st_writer_new();
    lwl_st_file *r;
    const lwl_st_tensor *t;

    (void)state;
    path_in_tmp(path, sizeof path, "rt.safetensors");
    assert_non_null(w);
    assert_int_equal(lwl_st_add(w, "z.f", LWL_ST_F32, 2, s23, f), 0);
    assert_int_equal(lwl_st_add(w, "a.l", LWL_ST_I64, 1, s3, l), 0);
    assert_int_equal(lwl_st_add(w, "empty", LWL_ST_F32, 1, s0, NULL), 0);
    assert_int_equal(lwl_st_add(w, "z.f", LWL_ST_F32, 2, s23, f), -1);
    assert_non_null(strstr(lwl_st_error(), "repeated"));
    assert_int_equal(lwl_st_add_meta(w, "config", "{\"x\": \"y\"}"), 0);
    assert_int_equal(lwl_st_add_meta(w, "config", "again"), -1);
    assert_int_equal(lwl_st_write(w, path), 0);
    lwl_st_writer_free(w);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);

    r = lwl_st_open(path);
    assert_non_null(r);
    assert_int_equal(lwl_st_count(r), 3);
    assert_string_equal(lwl_st_at(r, 0)->name, "a.l"); /* sorted by name */
    t = lwl_st_expect(r, "z.f", LWL_ST_F32, 2, s23);
    assert_non_null(t);
    assert_memory_equal(t->data, f, sizeof f);
    assert_int_equal((uintptr_t)t->data % 8, 0);
    t = lwl_st_get(r, "a.l");
    assert_non_null(t);
    assert_int_equal(t->dtype, LWL_ST_I64);
    assert_memory_equal(t->data, l, sizeof l);
    assert_int_equal(lwl_st_get(r, "empty")->nbytes, 0);
    assert_null(lwl_st_get(r, "nope"));
    assert_null(lwl_st_expect(r, "z.f", LWL_ST_F32, 2, (int64_t[]){3, 2}));
    assert_non_null(strstr(lwl_st_error(), "is F32 (2, 3), expected F32 (3, 2)"));
    assert_string_equal(lwl_st_meta(r, "config"), "{\"x\": \"y\"}");
    assert_null(lwl_st_meta(r, "other"));
    lwl_st_close(r);
}

static void write_raw(const char *path, const char *header, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    uint64_t n = strlen(header);
    unsigned char len8[8];

    assert_non_null(fp);
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(fwrite(len8, 1, 8, fp), 8);
    assert_int_equal(fwrite(header, 1, n, fp), n);
    for (size_t i = 0; i < data_len; i++)
        assert_int_equal(fputc(0, fp), 0);
    assert_int_equal(fclose(fp), 0);
}

static void test_st_malformed(void **state)
{
    static const struct {
        const char *header;
        size_t data;
        const char *msg;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9, "after the last"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"X9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "bad shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "text after"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlaps"},
    };
    char path[128];

    (void)state;
    path_in_tmp(path, sizeof path, "bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(path, cases[i].header, cases[i].data);
        lwl_st_file *f = lwl_st_open(path);
        if (!cases[i].msg) {
            assert_non_null(f);
            lwl_st_close(f);
            continue;
        }
        if (f)
            fail_msg("case %zu accepted: %s", i, cases[i].header);
        if (!strstr(lwl_st_error(), cases[i].msg) || !strstr(lwl_st_error(), path))
            fail_msg("case %zu: message '%s' lacks '%s'", i, lwl_st_error(), cases[i].msg);
    }
    assert_null(lwl_st_open("/nonexistent/x.safetensors"));
    assert_non_null(strstr(lwl_st_error(), "cannot open"));
    lwl_st_writer *w = lwl_st_writer_new();
    assert_int_equal(lwl_st_write(w, "/nonexistent/dir/x.safetensors"), -1);
    assert_non_null(strstr(lwl_st_error(), "cannot create"));
    lwl_st_writer_free(w);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lwl_test_nn.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_reference), cmocka_unit_test(test_conv_deterministic),
        cmocka_unit_test(test_conv_hold),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_maxpool),        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_nn_errors),      cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_malformed),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}
