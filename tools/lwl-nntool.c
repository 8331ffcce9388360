/* lwl-nntool: runs one CPU primitive of liblwl (convolution, max pooling, GEMM) on seeded random
 * tensors and writes inputs and outputs to a safetensors file, so tests/oracle/nn_check.py can
 * redo the computation in PyTorch; also lists and writes safetensors files for round trips.
 * Usage: lwl-nntool [--threads T] OP ARGS... OUT; lwl-nntool help lists the operations. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwl_nn.h"
#include "lwl_safetensors.h"

static const char usage[] =
    "usage: lwl-nntool [--threads T] OP ARGS...\n"
    "  conv N C H W K R S STRIDE PAD SEED OUT   x wt dy -> y dx dwt\n"
    "  pool N C H W K STRIDE PAD SEED TIES OUT  x dy -> y dx (TIES 1: x on a coarse grid)\n"
    "  gemm TA TB M N K LDA LDB LDC ALPHA BETA SEED OUT   a b c0 -> c\n"
    "  st-write OUT                             a fixed file of every dtype, with metadata\n"
    "  st-list IN                               prints metadata and name dtype shape sum\n";

/* splitmix64: the tensors are a function of the seed only. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n floats uniform in [-1, 1); with grid, on multiples of 0.5 (to make ties). */
static float *rand_floats(size_t n, uint64_t *s, int grid)
{
    float *p = malloc((n ? n : 1) * sizeof *p);

    if (!p) {
        fprintf(stderr, "lwl-nntool: out of memory\n");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        float u = (float)(rng_next(s) >> 40) / 16777216.0f * 2.0f - 1.0f;
        p[i] = grid ? floorf(u * 2.0f) / 2.0f : u;
    }
    return p;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int add4(lwl_st_writer *w, const char *name, int a, int b, int c, int d, const float *p)
{
    int64_t shape[4] = {a, b, c, d};
    return lwl_st_add(w, name, LWL_ST_F32, 4, shape, p);
}

static int add2(lwl_st_writer *w, const char *name, int a, int b, const float *p)
{
    int64_t shape[2] = {a, b};
    return lwl_st_add(w, name, LWL_ST_F32, 2, shape, p);
}

static int save(lwl_st_writer *w, const char *path, int ok)
{
    if (!ok || lwl_st_write(w, path) != 0) {
        fprintf(stderr, "lwl-nntool: %s\n", lwl_st_error());
        lwl_st_writer_free(w);
        return 1;
    }
    lwl_st_writer_free(w);
    return 0;
}

static int nn_failed(const char *what)
{
    fprintf(stderr, "lwl-nntool: %s: %s\n", what, lwl_nn_error());
    return 1;
}

static int run_conv(char **a)
{
    int n = atoi(a[0]), c = atoi(a[1]), h = atoi(a[2]), w = atoi(a[3]), k = atoi(a[4]);
    int r = atoi(a[5]), s = atoi(a[6]), stride = atoi(a[7]), pad = atoi(a[8]), oh, ow, rc = 1;
    uint64_t seed = strtoull(a[9], NULL, 10);
    lwl_conv *cv = lwl_conv_new(n, c, h, w, k, r, s, stride, pad);
    float *x = NULL, *wt = NULL, *dy = NULL, *y = NULL, *dx = NULL, *dwt = NULL;
    double t0;

    if (!cv)
        return nn_failed("conv");
    lwl_conv_out_hw(cv, &oh, &ow);
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * r * s, ny = (size_t)n * k * oh * ow;
    if (!(x = rand_floats(nx, &seed, 0)) || !(wt = rand_floats(nw, &seed, 0)) ||
        !(dy = rand_floats(ny, &seed, 0)) || !(y = rand_floats(ny, &seed, 0)) ||
        !(dx = rand_floats(nx, &seed, 0)) || !(dwt = rand_floats(nw, &seed, 0)))
        goto done;
    t0 = now_ms();
    if (lwl_conv_fwd(cv, x, wt, y) || lwl_conv_bwd_data(cv, dy, wt, dx) ||
        lwl_conv_bwd_weights(cv, x, dy, dwt)) {
        rc = nn_failed("conv");
        goto done;
    }
    printf("conv %dx%dx%dx%d k%d %dx%d/%d pad %d: fwd+bwd %.2f ms\n", n, c, h, w, k, r, s,
           stride, pad, now_ms() - t0);
    lwl_st_writer *wr = lwl_st_writer_new();
    rc = !wr || save(wr, a[10],
                     !add4(wr, "x", n, c, h, w, x) && !add4(wr, "wt", k, c, r, s, wt) &&
                         !add4(wr, "dy", n, k, oh, ow, dy) && !add4(wr, "y", n, k, oh, ow, y) &&
                         !add4(wr, "dx", n, c, h, w, dx) && !add4(wr, "dwt", k, c, r, s, dwt));
done:
    free(x), free(wt), free(dy), free(y), free(dx), free(dwt);
    lwl_conv_free(cv);
    return rc;
}

static int run_pool(char **a)
{
    int n = atoi(a[0]), c = atoi(a[1]), h = atoi(a[2]), w = atoi(a[3]), k = atoi(a[4]);
    int stride = atoi(a[5]), pad = atoi(a[6]), ties = atoi(a[8]), oh, ow, rc = 1;
    uint64_t seed = strtoull(a[7], NULL, 10);
    lwl_pool *p = lwl_maxpool_new(n, c, h, w, k, stride, pad);
    float *x = NULL, *dy = NULL, *y = NULL, *dx = NULL;

    if (!p)
        return nn_failed("pool");
    lwl_maxpool_out_hw(p, &oh, &ow);
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * oh * ow;
    if (!(x = rand_floats(nx, &seed, ties)) || !(dy = rand_floats(ny, &seed, 0)) ||
        !(y = rand_floats(ny, &seed, 0)) || !(dx = rand_floats(nx, &seed, 0)))
        goto done;
    if (lwl_maxpool_fwd(p, x, y) || lwl_maxpool_bwd(p, dy, dx)) {
        rc = nn_failed("pool");
        goto done;
    }
    lwl_st_writer *wr = lwl_st_writer_new();
    rc = !wr || save(wr, a[9],
                     !add4(wr, "x", n, c, h, w, x) && !add4(wr, "dy", n, c, oh, ow, dy) &&
                         !add4(wr, "y", n, c, oh, ow, y) && !add4(wr, "dx", n, c, h, w, dx));
done:
    free(x), free(dy), free(y), free(dx);
    lwl_maxpool_free(p);
    return rc;
}

static int run_gemm(char **a)
{
    int ta = atoi(a[0]), tb = atoi(a[1]), m = atoi(a[2]), n = atoi(a[3]), k = atoi(a[4]);
    int lda = atoi(a[5]), ldb = atoi(a[6]), ldc = atoi(a[7]), rc = 1;
    float alpha = strtof(a[8], NULL), beta = strtof(a[9], NULL);
    uint64_t seed = strtoull(a[10], NULL, 10);
    int ar = ta ? k : m, br = tb ? n : k; /* stored rows of A and B */
    float *pa = rand_floats((size_t)ar * lda, &seed, 0);
    float *pb = rand_floats((size_t)br * ldb, &seed, 0);
    float *c0 = rand_floats((size_t)m * ldc, &seed, 0), *c = malloc((size_t)m * ldc * sizeof *c);

    if (!pa || !pb || !c0 || !c)
        goto done;
    memcpy(c, c0, (size_t)m * ldc * sizeof *c);
    if (lwl_gemm(ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, c, ldc) != 0) {
        rc = nn_failed("gemm");
        goto done;
    }
    lwl_st_writer *wr = lwl_st_writer_new();
    rc = !wr || save(wr, a[11],
                     !add2(wr, "a", ar, lda, pa) && !add2(wr, "b", br, ldb, pb) &&
                         !add2(wr, "c0", m, ldc, c0) && !add2(wr, "c", m, ldc, c));
done:
    free(pa), free(pb), free(c0), free(c);
    return rc;
}

/* A fixed file: one tensor of each dtype the tests use, a scalar, an empty tensor, metadata. */
static int run_st_write(const char *path)
{
    static const float f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-7f, -1e30f};
    static const double f64[3] = {0.1, -0.2, 1e300};
    static const int64_t i64[4] = {-1, 0, 1, INT64_C(1) << 40};
    static const int32_t i32[2] = {-7, 7};
    static const uint8_t u8[5] = {0, 1, 2, 254, 255};
    static const int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s2[1] = {2}, s5[1] = {5};
    static const int64_t s0[2] = {0, 3};
    lwl_st_writer *w = lwl_st_writer_new();

    return !w || save(w, path,
                      !lwl_st_add(w, "f32.matrix", LWL_ST_F32, 2, s23, f32) &&
                          !lwl_st_add(w, "a.f64", LWL_ST_F64, 1, s3, f64) &&
                          !lwl_st_add(w, "i64", LWL_ST_I64, 1, s4, i64) &&
                          !lwl_st_add(w, "i32", LWL_ST_I32, 1, s2, i32) &&
                          !lwl_st_add(w, "u8 \"quoted\"", LWL_ST_U8, 1, s5, u8) &&
                          !lwl_st_add(w, "scalar", LWL_ST_F32, 0, NULL, f32 + 2) &&
                          !lwl_st_add(w, "empty", LWL_ST_F32, 2, s0, NULL) &&
                          !lwl_st_add_meta(w, "config", "{\"a\": 1, \"b\": [\"x\"]}") &&
                          !lwl_st_add_meta(w, "note", "ünïcode \\ \"q\""));
}

static double elem(const lwl_st_tensor *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case LWL_ST_F32: { float v; memcpy(&v, (const char *)d + 4 * i, 4); return v; }
    case LWL_ST_F64: { double v; memcpy(&v, (const char *)d + 8 * i, 8); return v; }
    case LWL_ST_I64: { int64_t v; memcpy(&v, (const char *)d + 8 * i, 8); return (double)v; }
    case LWL_ST_I32: { int32_t v; memcpy(&v, (const char *)d + 4 * i, 4); return v; }
    case LWL_ST_U8: return ((const uint8_t *)d)[i];
    default: return NAN;
    }
}

static int run_st_list(const char *path)
{
    lwl_st_file *f = lwl_st_open(path);
    const char *keys[] = {"config", "note", "format"};

    if (!f) {
        fprintf(stderr, "lwl-nntool: %s\n", lwl_st_error());
        return 1;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (lwl_st_meta(f, keys[i]))
            printf("meta %s=%s\n", keys[i], lwl_st_meta(f, keys[i]));
    for (int i = 0; i < lwl_st_count(f); i++) {
        const lwl_st_tensor *t = lwl_st_at(f, i);
        double sum = 0;
        printf("%s %s [", t->name, lwl_st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
        for (int64_t j = 0; j < t->numel; j++)
            sum += elem(t, j);
        printf("] %.17g\n", sum);
    }
    lwl_st_close(f);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *op;
        int nargs;
    } ops[] = {{"conv", 11}, {"pool", 10}, {"gemm", 12}, {"st-write", 1}, {"st-list", 1}};
    int i = 1;

    if (argc > 2 && strcmp(argv[1], "--threads") == 0) {
        if (lwl_nn_threads(atoi(argv[2])) != 0)
            return nn_failed("--threads");
        i = 3;
    }
    for (size_t o = 0; i < argc && o < sizeof ops / sizeof ops[0]; o++) {
        if (strcmp(argv[i], ops[o].op) != 0)
            continue;
        if (argc - i - 1 != ops[o].nargs)
            break;
        char **a = argv + i + 1;
        switch (o) {
        case 0: return run_conv(a);
        case 1: return run_pool(a);
        case 2: return run_gemm(a);
        case 3: return run_st_write(a[0]);
        default: return run_st_list(a[0]);
        }
    }
    fputs(usage, i < argc && strcmp(argv[i], "help") == 0 ? stdout : stderr);
    return i < argc && strcmp(argv[i], "help") == 0 ? 0 : 2;
}
