/* lwl-lewelb: the LEWEL_B augmentation policy written by hand with runtime calls, as the
 * generated code will write it with constants; drives the scan, views and bench phases
 * and the loader, for the tests (tests/t/37..38) and bench/data.sh.
 * Usage: lwl-lewelb help. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwl_augment.h"
#include "lwl_dataset.h"
#include "lwl_loader.h"
#include "lwl_phase.h"

static const char usage[] =
    "usage: lwl-lewelb [--size S] [--seed N] [--threads T] [--pipe lewelb|eval|linear] CMD\n"
    "  scan ROOT OUT               writes OUT/scan.json\n"
    "  views ROOT OUT N            writes OUT/views/ for train samples 0..N-1\n"
    "  bench ROOT OUT IMAGES       images/s of decode + both views; OUT/bench.json\n"
    "  loader ROOT EPOCHS BATCH RANK WORLD SHUFFLE KEEP_LAST\n"
    "                              prints per batch: epoch b n, then per sample the split\n"
    "                              index, label and FNV-1a of both float views\n"
    "--pipe: the LEWEL_B policy (default), or the runtime's evaluation or linear-training\n"
    "view (one view each).\n"
    "The data set is ROOT's ImageFolder tree, all of it the train split.\n";

/* ---- the policy: both views crop (0.2, 1), flip 0.5, jitter 0.8 (0.4, 0.4, 0.2, 0.1),
 * gray 0.2; view 1 blur 1.0, solarize 0; view 2 blur 0.1, solarize 0.2 ---- */

static int size = 224;
static const double crop_scale[2] = { 0.2, 1.0 }, crop_ratio[2] = { 3.0 / 4.0, 4.0 / 3.0 };

static lwl_box lewelb_region(int view, int w, int h, uint64_t seed, uint32_t epoch,
                             uint32_t index)
{
    lwl_rng_key k = { seed, epoch, index, (uint32_t)view, 0 };
    int fallback;

    return lwl_sample_resized_crop(k, w, h, crop_scale, crop_ratio, &fallback);
}

/* The slots after the crop: 1 flip, 2 jitter, 3 grayscale, 4 blur, 5 solarize. */
static int lewelb_make(int view, const lwl_src *src, uint64_t seed, uint32_t epoch,
                       uint32_t index, uint8_t *out, lwl_strbuf *rec)
{
    lwl_box box = lewelb_region(view, src->full_w, src->full_h, seed, epoch, index);
    lwl_rng_key k = { seed, epoch, index, (uint32_t)view, 0 };
    lwl_image im = { size, size, out };
    double blur_p = view == 1 ? 1.0 : 0.1, solarize_p = view == 1 ? 0.0 : 0.2;

    if (lwl_src_resized_crop(src, box, size, out))
        return -1;
    if (rec) {
        lwl_strbuf_printf(rec, "[");
        lwl_rec_resized_crop(rec, 1, box);
    }
    k.transform = 1;
    if (lwl_sample_coin(k, 0.5)) {
        lwl_hflip(&im);
        if (rec)
            lwl_strbuf_printf(rec, ", {\"op\": \"horizontal_flip\"}");
    }
    k.transform = 2;
    if (lwl_sample_coin(k, 0.8)) {
        lwl_jitter j = lwl_sample_jitter(k, 0.4, 0.4, 0.2, 0.1);

        lwl_jitter_apply(&im, &j);
        if (rec)
            lwl_rec_jitter(rec, 0, &j);
    }
    k.transform = 3;
    if (lwl_sample_coin(k, 0.2)) {
        lwl_grayscale(&im);
        if (rec)
            lwl_strbuf_printf(rec, ", {\"op\": \"grayscale\"}");
    }
    k.transform = 4;
    if (lwl_sample_coin(k, blur_p)) {
        double sigma = lwl_sample_sigma(k, 0.1, 2.0);

        if (lwl_gaussian_blur(&im, sigma))
            return -1;
        if (rec)
            lwl_strbuf_printf(rec, ", {\"op\": \"gaussian_blur\", \"sigma\": %.17g}", sigma);
    }
    k.transform = 5;
    if (solarize_p > 0 && lwl_sample_coin(k, solarize_p)) {
        lwl_solarize_image(&im, 128);
        if (rec)
            lwl_strbuf_printf(rec, ", {\"op\": \"solarize\", \"threshold\": 128}");
    }
    if (rec)
        lwl_strbuf_printf(rec, "]");
    return 0;
}

static lwl_box region_v1(int w, int h, uint64_t seed, uint32_t epoch, uint32_t index)
{
    return lewelb_region(1, w, h, seed, epoch, index);
}

static lwl_box region_v2(int w, int h, uint64_t seed, uint32_t epoch, uint32_t index)
{
    return lewelb_region(2, w, h, seed, epoch, index);
}

static int make_v1(const lwl_src *src, uint64_t seed, uint32_t epoch, uint32_t index,
                   uint8_t *out, lwl_strbuf *rec)
{
    return lewelb_make(1, src, seed, epoch, index, out, rec);
}

static int make_v2(const lwl_src *src, uint64_t seed, uint32_t epoch, uint32_t index,
                   uint8_t *out, lwl_strbuf *rec)
{
    return lewelb_make(2, src, seed, epoch, index, out, rec);
}

static void normalize_imagenet(const uint8_t *u8, float *chw)
{
    static const float mean[3] = { 0.485f, 0.456f, 0.406f }, sd[3] = { 0.229f, 0.224f, 0.225f };

    lwl_normalize_u8(u8, (size_t)size * size, mean, sd, chw);
}

/* ---- commands ---- */

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void on_report(void *arg, const char *path, const char *reason, int fatal)
{
    (void)arg;
    printf("report %s %s: %s\n", fatal ? "unreadable" : "warning", path, reason);
}

/* Runs the loader and prints what every batch holds. */
static int run_loader(const lwl_pipeline *p, const lwl_dataset *ds, uint64_t seed, int threads,
                      char **a)
{
    lwl_loader_cfg c = { 0 };
    size_t plane = (size_t)3 * p->size * p->size;
    int epochs = atoi(a[0]), rc = 0;
    lwl_loader *ld;
    char *err;
    lwl_batch b;

    c.pipe = p;
    c.items = ds->part[LWL_TRAIN];
    c.n = ds->n[LWL_TRAIN];
    c.batch = atoi(a[1]);
    c.rank = atoi(a[2]);
    c.world = atoi(a[3]);
    c.shuffle = atoi(a[4]);
    c.keep_last = atoi(a[5]);
    c.seed = seed;
    c.threads = threads;
    c.report = on_report;
    if (!(ld = lwl_loader_open(&c, &err))) {
        fprintf(stderr, "lwl-lewelb: %s\n", err ? err : "out of memory");
        free(err);
        return 1;
    }
    for (int e = 0; e < epochs && rc == 0; e++) {
        int nb = lwl_loader_epoch(ld, (uint32_t)e), k = 0;

        printf("epoch %d batches %d\n", e, nb);
        while ((rc = lwl_loader_next(ld, &b)) == 1) {
            printf("batch %d %d n %d\n", e, k++, b.n);
            for (int i = 0; i < b.n; i++)
                printf("  %u %lld %016llx %016llx\n", b.index[i], (long long)b.label[i],
                       (unsigned long long)fnv1a(b.view[0] + i * plane, plane * 4),
                       (unsigned long long)(p->nviews > 1 ?
                                            fnv1a(b.view[1] + i * plane, plane * 4) : 0));
        }
        if (rc < 0)
            fprintf(stderr, "lwl-lewelb: loader: %s\n", lwl_loader_error(ld));
        else
            rc = 0;
    }
    lwl_loader_close(ld);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    lwl_pipeline p = { 0, 2, { { region_v1, make_v1, NULL }, { region_v2, make_v2, NULL } },
                       normalize_imagenet };
    lwl_data_cfg dc = { 0 };
    lwl_phase_ctx c = { 0 };
    lwl_dataset ds;
    uint64_t seed = 0;
    int threads = 1, i = 1, rc = 1;
    const char *pipe = "lewelb";
    char *err = NULL;

    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        if (!strcmp(argv[i], "--size"))
            size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pipe"))
            pipe = argv[i + 1];
        else
            break;
    }
    char **a = argv + i;
    int n = argc - i;
    if (n < 2 || size < 1 || threads < 1) {
        fputs(usage, n >= 1 && !strcmp(a[0], "help") ? stdout : stderr);
        return n >= 1 && !strcmp(a[0], "help") ? 0 : 2;
    }
    p.size = size;
    if (strcmp(pipe, "lewelb")) {
        lwl_eval_cfg ec = { size, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } };

        if (!strcmp(pipe, "eval"))
            p = lwl_eval_pipeline(&ec);
        else if (!strcmp(pipe, "linear"))
            p = lwl_linear_train_pipeline(&ec);
        else {
            fputs(usage, stderr);
            return 2;
        }
    }

    /* The data set: all of ROOT as the train split. */
    dc.root = a[1];
    dc.share[LWL_TRAIN] = 1.0;
    if (lwl_dataset_open(&dc, &ds, &err)) {
        fprintf(stderr, "lwl-lewelb: %s\n", err ? err : "out of memory");
        free(err);
        return 1;
    }
    c.root = a[1];
    c.ds = &ds;
    c.log = stdout;
    c.threads = threads;
    c.seed = seed;

    if (!strcmp(a[0], "scan") && n == 3) {
        c.out_dir = a[2];
        rc = lwl_phase_scan(&c, &err);
    } else if (!strcmp(a[0], "views") && n == 4) {
        c.out_dir = a[2];
        rc = lwl_phase_views(&c, &p, atoi(a[3]), &err);
    } else if (!strcmp(a[0], "bench") && n == 4) {
        double ips;

        c.out_dir = a[2];
        rc = lwl_phase_bench_data(&c, &p, atoi(a[3]), &ips, &err) ||
             lwl_bench_json_write(c.out_dir, threads, ips, NULL, &err);
    } else if (!strcmp(a[0], "loader") && n == 8) {
        rc = run_loader(&p, &ds, seed, threads, a + 2);
        err = NULL;
    } else {
        fputs(usage, stderr);
        rc = 2;
    }
    if (rc == 1 || (rc && err))
        fprintf(stderr, "lwl-lewelb: %s\n", err ? err : "failed");
    free(err);
    lwl_dataset_free(&ds);
    return rc ? (rc == 2 ? 2 : 1) : 0;
}
