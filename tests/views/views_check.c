/* Checks one spec's GPU views on the CPU, built against its generated views.c and its
 * views.cu compiled as C with LWL_VIEWS_EMULATE (tests/t/55-views-emu.t): over every batch
 * of a few epochs of the given files, the staging loader's batches are the same bytes with
 * 1 and 3 threads; each view's params are what make() recorded (its ops JSON) and its
 * region; the staged pixels are the source box of a full decode; the emulated kernel's view
 * equals views.c's bytes, and its normalised, cast output the normal loader's within the
 * cast's rounding. `--synth DIR` writes the synthetic images it is also run on. Built with
 * VIEWS_CHECK_GPU and linked with the spec's real views.cu (tests/gpu/views.sh), it also runs
 * the kernels on the GPU (staged in pinned memory) and wants their output bit for bit. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lwl_decode.h"
#include "lwl_loader.h"
#include "lwl_phase.h"
#define LWL_VIEWS_EMULATE
#include "lwl_views_dev.h"
#ifdef VIEWS_CHECK_GPU
#include <cuda_runtime_api.h>

#include "lwl_views.h"
#endif

extern const lwl_pipeline views_pipeline;
int lwl_views_emu_order;

static int failures;

/* A failure, the first 12 of them shown. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;

    if (failures++ >= 12)
        return;
    va_start(ap, fmt);
    fputs("mismatch: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* ---- synthetic images: sizes that reach every path of the resize ---- */

static int synth(const char *dir)
{
    /* big: many taps and the first pass in scratch; a side of 224 or 32: the fallback crop
     * keeps it (one axis not resized); 256 and 36 squares: Resize + CenterCrop is a copy. */
    static const int sizes[][2] = { { 2400, 1700 }, { 224, 3000 }, { 3000, 224 }, { 32, 400 },
                                    { 400, 32 }, { 256, 256 }, { 36, 36 }, { 7, 5 },
                                    { 16, 1200 } };
    char path[4096], *err = NULL;
    uint32_t r = 12345;

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        uint8_t *px = malloc((size_t)w * h * 3);

        if (!px)
            return 1;
        /* Smooth colour ramps with noise, so that every colour op has work. */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    r = r * 1664525u + 1013904223u;
                    int v = (x * (c + 1) * 255 / w + y * (3 - c) * 255 / h) / 2 +
                            (int)(r >> 28) - 8;
                    px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        snprintf(path, sizeof path, "%s/synth_%dx%d.png", dir, w, h);
        if (lwl_write_png(path, w, h, px, &err)) {
            fprintf(stderr, "views_check: %s\n", err);
            free(px);
            return 1;
        }
        free(px);
    }
    return 0;
}

/* ---- params against make()'s record of the ops it applied ---- */

static int json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? (int)v->valuedouble : -999999;
}

static double json_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Whether vp says what the ops JSON of make() says: the ops that fired, the crop box, the
 * jitter's order and factors, sigma (doubles printed with 17 digits: exact). */
static int params_match(const lwl_view_params *vp, const char *ops, const char *what)
{
    static const char *const names[4] = { "brightness", "contrast", "saturation", "hue" };
    cJSON *a = cJSON_Parse(ops);
    uint32_t fired = 0;
    int ok = 1;

    if (!cJSON_IsArray(a)) {
        fail("%s: ops are not a JSON array: %s", what, ops);
        cJSON_Delete(a);
        return 0;
    }
    for (const cJSON *o = a->child; o; o = o->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "op");
        const char *n = cJSON_IsString(name) ? name->valuestring : "";

        if (!strcmp(n, "resized_crop")) {
            fired |= LWL_VP_CROP;
            ok &= json_int(o, "top") == vp->dom.top && json_int(o, "left") == vp->dom.left &&
                  json_int(o, "height") == vp->dom.height &&
                  json_int(o, "width") == vp->dom.width;
        } else if (!strcmp(n, "resize_center_crop")) {
            ok &= !(vp->fired & LWL_VP_CROP);
        } else if (!strcmp(n, "horizontal_flip")) {
            fired |= LWL_VP_FLIP;
        } else if (!strcmp(n, "color_jitter")) {
            const cJSON *order = cJSON_GetObjectItemCaseSensitive(o, "order");

            fired |= LWL_VP_JITTER;
            ok &= cJSON_GetArraySize(order) == 4;
            for (int i = 0; ok && i < 4; i++) {
                const cJSON *s = cJSON_GetArrayItem(order, i);

                ok &= cJSON_IsString(s) && !strcmp(s->valuestring, names[vp->jitter.order[i]]);
            }
            ok &= json_num(o, "brightness") == vp->jitter.brightness &&
                  json_num(o, "contrast") == vp->jitter.contrast &&
                  json_num(o, "saturation") == vp->jitter.saturation &&
                  json_num(o, "hue") == vp->jitter.hue;
        } else if (!strcmp(n, "grayscale")) {
            fired |= LWL_VP_GRAY;
        } else if (!strcmp(n, "gaussian_blur")) {
            fired |= LWL_VP_BLUR;
            ok &= json_num(o, "sigma") == vp->sigma;
        } else if (!strcmp(n, "solarize")) {
            fired |= LWL_VP_SOLARIZE;
        } else {
            ok = 0;
        }
    }
    ok &= fired == vp->fired;
    if (!ok)
        fail("%s: params (fired 0x%x) differ from make()'s ops %s", what, vp->fired, ops);
    cJSON_Delete(a);
    return ok;
}

/* ---- the emulated kernels ---- */

/* Runs view v's emulated kernel on every sample of the staged batch b with `threads`
 * threads and `smem` shared bytes a block: out (n, S, S, 3) elements, u8 (n, S, S, 3). */
static int emulate(const lwl_stage *b, int v, int threads, size_t smem, void *out,
                   uint8_t *u8)
{
    int S = views_emu_size;
    size_t nvs = (size_t)b->n * b->nviews;
    uint64_t *off = malloc(sizeof(uint64_t) * nvs);
    size_t total = lwl_v_scratch_offsets(b->params, b->n, b->nviews, S, threads, smem, off);
    uint8_t *scratch = malloc(total + 1), *sm = malloc(smem);
    lwl_vargs a = { b->params, b->pixels, scratch, off, out, b->nviews, v, S, (int)smem };

    if (!off || !scratch || !sm) {
        free(off);
        free(scratch);
        free(sm);
        return -1;
    }
    memset(scratch, 0xA5, total + 1);
    for (int i = 0; i < b->n; i++) {
        lwl_vctx c;

        /* Shared memory starts as garbage: nothing may read what no phase wrote. */
        memset(sm, 0x5A + i, smem);
        lwl_views_emu_order = (i + v) % 3;
        lwl_vctx_init(&c, &a, i, sm, threads, views_emu_out_elem);
        views_emu_body[v](&c, threads);
        memcpy(u8 + (size_t)i * S * S * 3, c.img, (size_t)S * S * 3);
    }
    free(off);
    free(scratch);
    free(sm);
    return 0;
}

/* A 16-bit value as float: bfloat16 or IEEE half. */
static float from16(uint16_t h, int bf16)
{
    if (bf16) {
        uint32_t u = (uint32_t)h << 16;
        float f;

        memcpy(&f, &u, 4);
        return f;
    }
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? INFINITY
                        : ldexpf((float)(m | 1024), e - 25);

    return h & 0x8000 ? -v : v;
}

/* Whether q (the cast of x) is x rounded to nearest in a format of `bits` significand
 * bits: within half a unit of x's binade (the subnormal unit at least, for half), and, on a
 * tie, the neighbour whose last significand bit is even. */
static int within_rounding(float x, float q, int bits, int min_exp)
{
    int e, eq;
    double d, half;

    if (x == 0.0f)
        return q == 0.0f;
    frexpf(x, &e);
    if (e < min_exp)
        e = min_exp;
    d = fabs((double)q - x);
    half = ldexp(1.0, e - bits - 1);
    if (d < half)
        return 1;
    if (d > half)
        return 0;
    frexpf(q, &eq);
    return fmod(ldexp(fabs((double)q), bits - (eq < min_exp ? min_exp : eq)), 2.0) == 0.0;
}

/* ---- one run ---- */

typedef struct {
    long views, staged_bytes;
    int batches;
} tally;

#ifdef VIEWS_CHECK_GPU
static void *gpu_dev[2], *gpu_host[2];

/* The GPU's views of the batch into gpu_host; 0, or -1 (a failure recorded). */
static int gpu_views(const lwl_stage *b, size_t bytes)
{
    if (views_cuda_make(b, gpu_dev[0], gpu_dev[1], NULL) ||
        cudaMemcpy(gpu_host[0], gpu_dev[0], bytes, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(gpu_host[1], gpu_dev[1], bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fail("the GPU views: %s / %s", lwl_cuda_error(), cudaGetErrorString(cudaGetLastError()));
        return -1;
    }
    return 0;
}
#endif

static void check_batch(const lwl_batch *bs, const lwl_batch *bn, const lwl_item *items,
                        uint64_t seed, uint32_t epoch, int threads, size_t smem, void *out,
                        uint8_t *u8, tally *t)
{
    const lwl_stage *b = bs->stage;
    int S = views_emu_size;
    size_t plane = (size_t)S * S;
    uint8_t *ref[2] = { malloc(plane * 3), malloc(plane * 3) };
    lwl_strbuf ops[2] = { { 0 }, { 0 } }, *rec[2] = { &ops[0], &ops[1] };
    char what[4300];

    if (b->n != bn->n || memcmp(bs->index, bn->index, sizeof(uint32_t) * bs->n))
        fail("epoch %u batch %d: the staged batch holds other samples", epoch, t->batches);
#ifdef VIEWS_CHECK_GPU
    size_t bytes = plane * 3 * views_emu_out_elem * b->n;
    int gpu = gpu_views(b, bytes) == 0;
#endif
    for (int v = 0; v < 2; v++) {
        if (emulate(b, v, threads, smem, out, u8))
            fail("out of memory emulating");
#ifdef VIEWS_CHECK_GPU
        /* The kernels' bytes: the emulation's, bit for bit. */
        for (size_t i = 0; gpu && i < bytes; i++)
            if (((const uint8_t *)gpu_host[v])[i] != ((const uint8_t *)out)[i]) {
                fail("epoch %u batch %d view %d: the GPU's output differs from the emulation's "
                     "at byte %zu (sample %zu)", epoch, t->batches, v + 1, i,
                     i / (plane * 3 * views_emu_out_elem));
                break;
            }
#endif
        for (int j = 0; j < b->n; j++) {
            const lwl_view_params *vp = &b->params[(size_t)j * 2 + v];
            const char *path = items[bs->index[j]].path;
            lwl_decode_status st;
            lwl_image full;

            snprintf(what, sizeof what, "%s epoch %u view %d", path, epoch, v + 1);
            t->views++;

            /* The CPU's view and its record, the region, the staged pixels. */
            ops[0].len = ops[1].len = 0;
            if (ops[0].s)
                ops[0].s[0] = ops[1].s[0] = 0;
            if (lwl_sample_views(&views_pipeline, path, seed, epoch, bs->index[j], ref, rec,
                                 &st)) {
                fail("%s: the CPU views fail: %s", what, st.msg);
                continue;
            }
            params_match(vp, ops[v].s, what);
            if (lwl_decode_file(path, &full, &st) == 0) {
                const uint8_t *px = b->pixels + vp->pixels;
                lwl_box sb = vp->src;
                lwl_box rg = views_pipeline.view[v].region(full.w, full.h, seed, epoch,
                                                            bs->index[j]);

                if (memcmp(&rg, &sb, sizeof rg))
                    fail("%s: params' box %d,%d %dx%d is not the region %d,%d %dx%d", what,
                         sb.left, sb.top, sb.width, sb.height, rg.left, rg.top, rg.width,
                         rg.height);
                for (int y = 0; y < sb.height; y++)
                    if (memcmp(px + (size_t)y * sb.width * 3,
                               full.px + ((size_t)(sb.top + y) * full.w + sb.left) * 3,
                               (size_t)sb.width * 3)) {
                        fail("%s: staged row %d differs from the decoded image", what, y);
                        break;
                    }
                t->staged_bytes += (long)sb.width * sb.height * 3;
                lwl_image_free(&full);
            } else {
                fail("%s: cannot decode: %s", what, st.msg);
            }

            /* The kernel's view: exactly the CPU's bytes. */
            const uint8_t *mine = u8 + (size_t)j * plane * 3;
            for (size_t i = 0; i < plane * 3; i++)
                if (mine[i] != ref[v][i]) {
                    fail("%s: emulated view differs at pixel (%zu, %zu) channel %zu: %d, "
                         "views.c %d (fired 0x%x)", what, i / 3 % S, i / 3 / S, i % 3, mine[i],
                         ref[v][i], vp->fired);
                    break;
                }

            /* Its output: the loader's normalised view (CHW), cast. */
            const float *want = bn->view[v] + (size_t)j * plane * 3;
            for (size_t i = 0; i < plane * 3; i++) {
                float x = want[(i % 3) * plane + i / 3], q;
                size_t at = (size_t)j * plane * 3 + i;
                int good;

                if (views_emu_dtype == LWL_F32) {
                    q = ((const float *)out)[at];
                    good = memcmp(&q, &x, 4) == 0;
                } else if (views_emu_dtype == LWL_BF16) {
                    q = from16(((const uint16_t *)out)[at], 1);
                    good = within_rounding(x, q, 8, -125);
                } else {
                    q = from16(((const uint16_t *)out)[at], 0);
                    good = within_rounding(x, q, 11, -13);
                }
                if (!good) {
                    fail("%s: output %zu is %.9g, the normalised view %.9g", what, i, q, x);
                    break;
                }
            }
        }
    }
    free(ref[0]);
    free(ref[1]);
    lwl_strbuf_free(&ops[0]);
    lwl_strbuf_free(&ops[1]);
    t->batches++;
}

static void on_report(void *arg, const char *path, const char *reason, int fatal)
{
    (void)arg, (void)path, (void)reason, (void)fatal;
}

#ifdef VIEWS_CHECK_GPU
static int gpu_device;
#endif

static lwl_loader *open_loader(lwl_item *items, size_t n, int batch, uint64_t seed,
                               int threads, int stage)
{
    lwl_loader_cfg c;
    char *err = NULL;
    lwl_loader *ld;

    memset(&c, 0, sizeof c);
    c.pipe = &views_pipeline;
    c.items = items;
    c.n = n;
    c.batch = batch;
    c.world = 1;
    c.shuffle = 1;
    c.keep_last = 1;
    c.seed = seed;
    c.threads = threads;
    c.report = on_report;
    c.stage = stage;
#ifdef VIEWS_CHECK_GPU
    c.stage_alloc = lwl_views_host_alloc;
    c.stage_free = lwl_views_host_free;
    c.stage_arg = &gpu_device;
#endif
    ld = lwl_loader_open(&c, &err);
    if (!ld) {
        fprintf(stderr, "views_check: %s\n", err);
        free(err);
    }
    return ld;
}

int main(int argc, char **argv)
{
    int threads = LWL_VIEW_THREADS, epochs = 2, batch = 8, a = 1;
    size_t smem = 232448;
    uint64_t seed = 7;

    if (argc == 3 && !strcmp(argv[1], "--synth"))
        return synth(argv[2]);
    for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
        if (!strcmp(argv[a], "--smem"))
            smem = strtoul(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--threads"))
            threads = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--epochs"))
            epochs = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--seed"))
            seed = strtoull(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--batch"))
            batch = atoi(argv[a + 1]);
        else
            break;
    }
    if (a >= argc || threads < 1 || batch < 1 || smem < 1024) {
        fprintf(stderr, "usage: views_check [--smem B] [--threads N] [--epochs E] [--seed S] "
                "[--batch B] FILE...\n       views_check --synth DIR\n");
        return 2;
    }

    size_t n = (size_t)(argc - a);
    lwl_item *items = calloc(n, sizeof *items);
    int S = views_emu_size;
    size_t plane = (size_t)S * S * 3;
    void *out = malloc(plane * views_emu_out_elem * batch);
    uint8_t *u8 = malloc(plane * batch);
    tally t = { 0, 0, 0 };

    if (!items || !out || !u8)
        return 1;
    for (size_t i = 0; i < n; i++) {
        items[i].path = argv[a + i];
        items[i].label = (int)i;
    }
#ifdef VIEWS_CHECK_GPU
    /* The device's own shared memory: what the emulation must use to match it. */
    size_t bytes = plane * views_emu_out_elem * batch;
    cudaError_t ce = cudaGetDevice(&gpu_device);
    int optin = 0;

    if (ce == cudaSuccess)
        ce = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, gpu_device);
    if (ce == cudaSuccess)
        ce = cudaMalloc(&gpu_dev[0], bytes);
    if (ce == cudaSuccess)
        ce = cudaMalloc(&gpu_dev[1], bytes);
    if (ce != cudaSuccess) {
        fprintf(stderr, "views_check: the GPU: %s\n", cudaGetErrorString(ce));
        return 1;
    }
    if (views_cuda_init(batch)) {
        fprintf(stderr, "views_check: views_cuda_init: %s\n", lwl_cuda_error());
        return 1;
    }
    if (!(gpu_host[0] = malloc(bytes)) || !(gpu_host[1] = malloc(bytes)))
        return 1;
    smem = lwl_v_smem_for(S, LWL_VIEW_THREADS, (size_t)optin);
    threads = LWL_VIEW_THREADS;
#endif
    lwl_loader *ls = open_loader(items, n, batch, seed, 3, 1);
    lwl_loader *l1 = open_loader(items, n, batch, seed, 1, 1);
    lwl_loader *ln = open_loader(items, n, batch, seed, 2, 0);
    if (!ls || !l1 || !ln)
        return 1;
    for (int e = 0; e < epochs; e++) {
        lwl_batch bs, b1, bn;
        int rs, r1, rn;

        lwl_loader_epoch(ls, (uint32_t)e);
        lwl_loader_epoch(l1, (uint32_t)e);
        lwl_loader_epoch(ln, (uint32_t)e);
        while ((rs = lwl_loader_next(ls, &bs)) == 1) {
            r1 = lwl_loader_next(l1, &b1);
            rn = lwl_loader_next(ln, &bn);
            if (r1 != 1 || rn != 1) {
                fail("epoch %d: the loaders disagree on the batches", e);
                break;
            }
            if (b1.stage->bytes != bs.stage->bytes ||
                memcmp(b1.stage->base, bs.stage->base, bs.stage->bytes))
                fail("epoch %d batch %d: staged bytes differ between 1 and 3 threads", e,
                     t.batches);
            check_batch(&bs, &bn, items, seed, (uint32_t)e, threads, smem, out, u8, &t);
        }
        if (rs < 0) {
            fail("staging loader: %s", lwl_loader_error(ls));
            break;
        }
    }
    lwl_loader_close(ls);
    lwl_loader_close(l1);
    lwl_loader_close(ln);
    printf("%ld view samples of %zu files in %d batches (%ld staged bytes), %d threads, "
           "%zu shared bytes: %d mismatches\n", t.views, n, t.batches, t.staged_bytes, threads,
           smem, failures);
#ifdef VIEWS_CHECK_GPU
    views_cuda_free();
    cudaFree(gpu_dev[0]);
    cudaFree(gpu_dev[1]);
    free(gpu_host[0]);
    free(gpu_host[1]);
#endif
    free(items);
    free(out);
    free(u8);
    return failures ? 1 : 0;
}
