/* The GPU kNN (gpu_ops.cuh's knn_predict: GEMM, the top-k kernels, the vote) on the emulated
 * device against the CPU's lwl_knn_predict. Unit cases: the top-k selection with ties (equal
 * similarities, 0 and -0, lists longer than the memory) against a full sort; synthetic
 * features whose products are exact (so both GEMMs give the same floats) with duplicated
 * rows of other labels. With two feature files of a program (`features` phase), real
 * features: memory and queries disjoint or overlapping, k 1 and 20, majority and weighted
 * votes, several cuts. Prints TAP; exits 1 when a case fails.
 * Usage: test_knn [MEMORY.safetensors QUERIES.safetensors] */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_ops.cuh"
extern "C" {
#include "lwl_eval.h"
#include "lwl_safetensors.h"
}

static int tests, failures;
static unsigned rng = 2024;

static void result(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void result(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", pass ? "ok" : "not ok", ++tests);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    failures += !pass;
}

static unsigned draw(unsigned n)
{
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) % n;
}

/* ---- the top-k selection with ties */

typedef struct ref_nb {
    float sim;
    uint32_t idx;
} ref_nb;

/* qsort order, written apart from the kernels' lwl_gk_above: higher similarity first, equal
 * ones (0 and -0 too) by the lower row. */
static int ref_cmp(const void *a, const void *b)
{
    const ref_nb *x = (const ref_nb *)a, *y = (const ref_nb *)b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx ? 1 : 0;
}

/* Stages 1 and 2 over sim (n, mq) in segments of seg rows against a sort of each column
 * (empty slots past n). Returns the number of queries that differ. */
template <int K> static int topk_case(const float *sim, size_t n, size_t mq, size_t seg)
{
    typedef lwl_gk_topk<K> topk_t;
    int nseg = (int)((n + seg - 1) / seg), bad = 0;
    topk_t *part = (topk_t *)malloc(sizeof(topk_t) * nseg * mq);
    topk_t *top = (topk_t *)malloc(sizeof(topk_t) * mq);
    ref_nb *col = (ref_nb *)malloc(sizeof(ref_nb) * (n > K ? n : K));
    GK_RUN_T(knn_part, topk_t, (size_t)nseg * mq, sim, part, n, mq, seg);
    GK_RUN_T(knn_merge, topk_t, mq, (const topk_t *)part, top, mq, nseg);
    for (size_t i = 0; i < mq; i++) {
        for (size_t j = 0; j < (n > K ? n : K); j++)
            col[j] = j < n ? ref_nb{ sim[j * mq + i], (uint32_t)j }
                           : ref_nb{ -INFINITY, UINT32_MAX };
        qsort(col, n, sizeof *col, ref_cmp);
        for (int e = 0; e < K; e++)
            if (memcmp(&top[i].sim[e], &col[e].sim, sizeof(float)) ||
                top[i].idx[e] != col[e].idx) {
                bad++;
                break;
            }
    }
    free(part);
    free(top);
    free(col);
    return bad;
}

/* Similarities from a few values only (0 and -0 among them), so most are tied. */
static int check_topk_ties(void)
{
    static const float vals[] = { 1.0f, 0.5f, 0.0f, -0.0f, -0.5f, 0.25f };
    size_t n = 57, mq = 6;
    float *sim = (float *)malloc(sizeof(float) * n * mq);
    for (size_t i = 0; i < n * mq; i++)
        sim[i] = vals[draw(6)];
    size_t segs[] = { 1, 5, 19, 57, 100 };
    for (size_t s = 0; s < sizeof segs / sizeof segs[0]; s++) {
        int b1 = topk_case<1>(sim, n, mq, segs[s]), b7 = topk_case<7>(sim, n, mq, segs[s]);
        int b20 = topk_case<20>(sim, n, mq, segs[s]), b64 = topk_case<64>(sim, n, mq, segs[s]);
        result(!b1 && !b7 && !b20 && !b64, "top-k with ties, segments of %zu rows: lists of 1, "
               "7, 20 and 64 (> memory) equal a full sort (wrong queries: %d %d %d %d)",
               segs[s], b1, b7, b20, b64);
    }
    free(sim);
    return 0;
}

/* ---- whole kNNs against lwl_knn_predict */

typedef struct feats {
    float *x;       /* (n, d) */
    int *y;         /* (n) */
    size_t n, d;
    int nclasses;
} feats;

/* Predictions (m, 5) of the GPU kNN with capacity K. */
template <int K>
static int gpu_pred(const feats *mem, const feats *q, int k, int weighted, double temp,
                    size_t sim_floats, size_t threads, int *pred)
{
    return knn_predict<K>(mem->x, mem->y, mem->n, (int)mem->d, q->x, q->n, k, weighted, temp,
                          mem->nclasses, pred, sim_floats, threads);
}

/* Query qi's classes may differ between two correct kNNs only on a near tie: its k-th and
 * (k + 1)-th similarities closer than 1e-5 (a float GEMM's rounding can then swap the
 * neighbours; the CPU's and the GPU's GEMMs sum in other orders), or, weighted, two class
 * scores within a relative 1e-12 (the order of the double sums, a GPU's exp). */
static int fragile(const feats *mem, const float *qi, int k, int weighted, double temp)
{
    size_t n = mem->n;
    double *s = (double *)malloc(sizeof(double) * n), *score = NULL;
    ref_nb *nb = (ref_nb *)malloc(sizeof(ref_nb) * n);
    for (size_t j = 0; j < n; j++) {
        s[j] = lwl_gk_dot(qi, mem->x + j * mem->d, (int)mem->d);
        nb[j] = ref_nb{ (float)s[j], (uint32_t)j };
    }
    qsort(nb, n, sizeof *nb, ref_cmp);
    int f = (size_t)k < n && s[nb[k - 1].idx] - s[nb[k].idx] < 1e-5;
    if (weighted && !f) {
        score = (double *)calloc((size_t)mem->nclasses, sizeof *score);
        for (int e = 0; e < k; e++)
            score[mem->y[nb[e].idx]] += exp(s[nb[e].idx] / temp);
        for (int a = 0; a < mem->nclasses; a++)
            for (int b = a + 1; b < mem->nclasses; b++)
                f |= score[a] > 0 && fabs(score[a] - score[b]) <= 1e-12 * score[a];
    }
    free(s);
    free(nb);
    free(score);
    return f;
}

/* The GPU's predictions against the CPU's: every query the same (exact: no excuse), or the
 * differing ones all fragile; their top-1 / top-5 counts too. */
template <int K>
static void compare(const char *what, const feats *mem, const feats *q, int k, int weighted,
                    double temp, size_t sim_floats, size_t threads, int exact)
{
    lwl_knn_cfg cfg = { k, weighted, temp, mem->nclasses, 0, 0 };
    int *pc = (int *)malloc(sizeof(int) * 5 * q->n), *pg = (int *)malloc(sizeof(int) * 5 * q->n);
    char *err = NULL;
    if (lwl_knn_predict(&cfg, mem->x, mem->y, mem->n, mem->d, q->x, q->n, pc, &err) ||
        gpu_pred<K>(mem, q, k, weighted, temp, sim_floats, threads, pg)) {
        result(0, "%s: %s", what, err ? err : lwl_cuda_error());
        free(err);
        free(pc);
        free(pg);
        return;
    }
    size_t differ = 0, excused = 0;
    for (size_t i = 0; i < q->n; i++)
        if (memcmp(pc + 5 * i, pg + 5 * i, 5 * sizeof(int))) {
            differ++;
            excused += !exact && fragile(mem, q->x + i * q->d, k, weighted, temp);
        }
    lwl_hits hc, hg;
    lwl_knn_hits(pc, q->y, q->n, &hc);
    lwl_knn_hits(pg, q->y, q->n, &hg);
    result(differ == excused && (differ || (hc.top1 == hg.top1 && hc.top5 == hg.top5)),
           "%s: %zu queries, %zu memory rows, k %d (K %d), %s: top-1 %zu/%zu, top-5 %zu/%zu "
           "(CPU/GPU); predictions differ for %zu, near ties %zu", what, q->n, mem->n, k, K,
           weighted ? "weighted" : "majority", hc.top1, hg.top1, hc.top5, hg.top5, differ,
           excused);
    free(pc);
    free(pg);
}

/* Both votes and several cuts (default; chunks of 7 queries and 50 threads; one segment). */
template <int K>
static void compare_all(const char *what, const feats *mem, const feats *q, int k, int exact)
{
    size_t cuts[3][2] = { { 0, 0 }, { mem->n * 7, 50 }, { mem->n * 3 + 1, 1 } };
    char name[160];
    for (int w = 0; w < 2; w++)
        for (int c = 0; c < 3; c++) {
            snprintf(name, sizeof name, "%s, cut %zu/%zu", what, cuts[c][0], cuts[c][1]);
            compare<K>(name, mem, q, k, w, 0.07, cuts[c][0], cuts[c][1], exact);
        }
}

/* Random rows on a grid of 2^-8 (d 16: every product and partial sum exact in fp32), with
 * duplicated memory rows under other labels so that ties decide neighbours and votes. */
static void check_synthetic(void)
{
    feats mem = { NULL, NULL, 600, 16, 7 }, q = { NULL, NULL, 150, 16, 7 };
    mem.x = (float *)malloc(sizeof(float) * mem.n * mem.d);
    mem.y = (int *)malloc(sizeof(int) * mem.n);
    q.x = (float *)malloc(sizeof(float) * q.n * q.d);
    q.y = (int *)malloc(sizeof(int) * q.n);
    for (size_t i = 0; i < mem.n; i++) {
        int dup = i >= 40 && draw(3) == 0;
        mem.y[i] = (int)draw(7);
        for (size_t c = 0; c < mem.d; c++)
            mem.x[i * mem.d + c] = dup ? mem.x[(i / 3) * mem.d + c]
                                       : ((float)draw(512) - 256) / 256;
    }
    for (size_t i = 0; i < q.n; i++) {
        q.y[i] = (int)draw(7);
        for (size_t c = 0; c < q.d; c++)
            q.x[i * q.d + c] = i % 4 == 0 ? mem.x[(i * 3) * mem.d + c]
                                          : ((float)draw(512) - 256) / 256;
    }
    compare_all<1>("synthetic, exact products", &mem, &q, 1, 1);
    compare_all<20>("synthetic, exact products", &mem, &q, 20, 1);
    compare_all<20>("synthetic, k below the capacity", &mem, &q, 3, 1);
    free(mem.x);
    free(mem.y);
    free(q.x);
    free(q.y);
}

/* ---- real features */

/* features and labels of a `features` phase's file, rows normalised; 0 or -1. */
static int read_feats(const char *path, feats *f)
{
    lwl_st_file *st = lwl_st_open(path);
    const lwl_st_tensor *x = st ? lwl_st_get(st, "features") : NULL;
    const lwl_st_tensor *y = st ? lwl_st_get(st, "labels") : NULL;
    if (!x || !y || x->dtype != LWL_ST_F32 || x->ndim != 2 || y->dtype != LWL_ST_I64 ||
        y->numel != x->shape[0]) {
        result(0, "%s: no features (N, D) F32 and labels (N) I64: %s", path, lwl_st_error());
        lwl_st_close(st);
        return -1;
    }
    f->n = (size_t)x->shape[0];
    f->d = (size_t)x->shape[1];
    f->x = (float *)malloc(x->nbytes);
    f->y = (int *)malloc(sizeof(int) * f->n);
    memcpy(f->x, x->data, x->nbytes);
    f->nclasses = 1;
    for (size_t i = 0; i < f->n; i++) {
        f->y[i] = (int)((const int64_t *)y->data)[i];
        f->nclasses = f->y[i] >= f->nclasses ? f->y[i] + 1 : f->nclasses;
    }
    lwl_st_close(st);
    lwl_l2_normalize_rows(f->x, f->n, f->d);
    return 0;
}

/* The first half of each class of f (rows in (class, file) order), as `memory train 50%`
 * beside `queries train`: the memory is inside the queries, as in the study's monitor
 * (`memory val 10%  queries val 50%`). */
static feats first_half(const feats *f)
{
    feats h = *f;
    int *have = (int *)calloc((size_t)f->nclasses, sizeof(int));
    int *all = (int *)calloc((size_t)f->nclasses, sizeof(int));
    h.x = (float *)malloc(sizeof(float) * f->n * f->d);
    h.y = (int *)malloc(sizeof(int) * f->n);
    h.n = 0;
    for (size_t i = 0; i < f->n; i++)
        all[f->y[i]]++;
    for (size_t i = 0; i < f->n; i++)
        if (2 * have[f->y[i]]++ < all[f->y[i]]) {
            memcpy(h.x + h.n * f->d, f->x + i * f->d, sizeof(float) * f->d);
            h.y[h.n++] = f->y[i];
        }
    free(have);
    free(all);
    return h;
}

/* f on the grid of 2^-11: with unit rows every product and partial sum is exact in fp32, so
 * the CPU's and the GPU's GEMMs give the same similarities. */
static feats on_grid(const feats *f)
{
    feats g = *f;
    g.x = (float *)malloc(sizeof(float) * f->n * f->d);
    for (size_t i = 0; i < f->n * f->d; i++)
        g.x[i] = rintf(f->x[i] * 2048.0f) / 2048.0f;
    g.y = (int *)malloc(sizeof(int) * f->n);
    memcpy(g.y, f->y, sizeof(int) * f->n);
    return g;
}

static void feats_free(feats *f)
{
    free(f->x);
    free(f->y);
}

static void check_real(const char *mem_path, const char *qry_path)
{
    feats mem, q;
    if (read_feats(mem_path, &mem) || read_feats(qry_path, &q))
        return;
    mem.nclasses = q.nclasses = mem.nclasses > q.nclasses ? mem.nclasses : q.nclasses;
    feats half = first_half(&mem);
    feats sets[3][2] = { { mem, q }, { half, mem }, { on_grid(&half), on_grid(&mem) } };
    const char *names[3] = { "real, memory and queries apart", "real, memory inside the queries",
                             "real on the grid of 2^-11, memory inside the queries" };
    for (int s = 0; s < 3; s++) {
        compare_all<1>(names[s], &sets[s][0], &sets[s][1], 1, s == 2);
        compare_all<20>(names[s], &sets[s][0], &sets[s][1], 20, s == 2);
    }
    feats_free(&mem);
    feats_free(&q);
    feats_free(&half);
    feats_free(&sets[2][0]);
    feats_free(&sets[2][1]);
}

/* Bad arguments are errors, not reads past the lists. */
static void check_args(void)
{
    float x[4] = { 1, 0, 0, 1 };
    int y[2] = { 0, 1 }, pred[10];
    result(knn_predict<2>(x, y, 2, 2, x, 2, 3, 0, 1.0, 2, pred, 0, 0) == -1 &&
           knn_predict<4>(x, y, 2, 2, x, 2, 3, 0, 1.0, 2, pred, 0, 0) == -1 &&
           knn_predict<2>(x, y, 2, 2, x, 2, 2, 1, 0.0, 2, pred, 0, 0) == -1 &&
           knn_predict<2>(x, y, 2, 2, x, 2, 2, 0, 1.0, 2, pred, 0, 0) == 0,
           "k above the capacity or the memory, or a weighted vote at temperature 0: errors");
}

/* Similarities 1 and 1 + 2^-30 are one float but two doubles (test_eval's case): the
 * neighbours tie, and the weights, from lwl_gk_dot, let class 1 win as on the CPU. */
static void check_double_weights(void)
{
    float mem[4] = { 1, 0, 1, 1 }, q[2] = { 1, 0x1p-30f };
    int y[2] = { 0, 1 }, pred[5];
    result(knn_predict<2>(mem, y, 2, 2, q, 1, 2, 1, 0.07, 2, pred, 0, 0) == 0 && pred[0] == 1 &&
           pred[1] == 0, "weighted votes weigh similarities in double: a float tie, class 1 "
           "ahead");
}

int main(int argc, char **argv)
{
    if (argc != 1 && argc != 3) {
        fprintf(stderr, "usage: %s [MEMORY.safetensors QUERIES.safetensors]\n", argv[0]);
        return 2;
    }
    check_topk_ties();
    check_args();
    check_double_weights();
    check_synthetic();
    if (argc == 3)
        check_real(argv[1], argv[2]);
    printf("1..%d\n", tests);
    return failures ? 1 : 0;
}
