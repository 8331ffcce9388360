/* The GPU step's kernels on a real GPU against the same kernel bodies run on the host
 * (gpu_kernels.h is one source for both): random inputs, every kernel of gpu_ops.cuh, the
 * results compared element by element. Integer and plain float arithmetic must give the
 * same bits; kernels with expf / sqrtf (whose device versions may differ in the last
 * place) within 4 ulp-sized relative errors. Prints TAP. Built and run by tests/gpu/run.sh
 * for each activation type (-DLWL_ACT_BF16, -DLWL_ACT_F16, or fp32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_ops.cuh"
extern "C" {
#include "lwl_eval.h"
}

static int tests, failures;
static unsigned rng = 12345;

static float uni(float lo, float hi)
{
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

/* n elements of T, random in [lo, hi), on the host and a device copy. */
template <typename T> static T *host_rand(size_t n, float lo, float hi)
{
    T *h = (T *)malloc(n * sizeof(T));
    for (size_t i = 0; i < n; i++)
        st(uni(lo, hi), &h[i]);
    return h;
}

template <typename T> static T *to_dev(const T *h, size_t n)
{
    T *d = (T *)lwl_gpu_alloc(n * sizeof(T));
    if (!d || lwl_gpu_put(d, h, n * sizeof(T))) {
        fprintf(stderr, "%s\n", lwl_cuda_error());
        exit(1);
    }
    return d;
}

static double ld(double v)
{
    return v;
}

static double ld(uint8_t v)
{
    return v;
}

static double ld(int v)
{
    return v;
}

/* Compares the device buffer d with the host's h (n elements): exact, or within rel. */
template <typename T> static void same(const char *what, const T *d, const T *h, size_t n,
                                       double rel)
{
    T *g = (T *)malloc(n * sizeof(T));
    if (lwl_gpu_sync() || lwl_gpu_get(g, d, n * sizeof(T))) {
        printf("not ok %d - %s: %s\n", ++tests, what, lwl_cuda_error());
        failures++;
        free(g);
        return;
    }
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double a = ld(g[i]), b = ld(h[i]);
        double e = a == b ? 0 : fabs(a - b) / fmax(fabs(b), 1e-30);
        if (rel == 0 ? memcmp(&g[i], &h[i], sizeof(T)) != 0 : e > rel) {
            if (!bad++)
                first = i;
        }
        worst = e > worst ? e : worst;
    }
    tests++;
    if (bad) {
        failures++;
        printf("not ok %d - %s: %zu of %zu differ (first at %zu: %g vs %g), worst %.3g\n",
               tests, what, bad, n, first, (double)ld(g[first]), (double)ld(h[first]), worst);
    } else {
        printf("ok %d - %s: %zu elements, largest relative difference %.3g\n", tests, what, n,
               worst);
    }
    free(g);
}

/* BN train over (n, hw, c) in `groups`: statistics, running statistics and output. */
static void check_bn(int n, int c, size_t hw, int groups, int relu, int res)
{
    size_t e = (size_t)n * hw * c, gc = (size_t)groups * c;
    char what[96];
    act_t *x = host_rand<act_t>(e, -2, 3), *r = host_rand<act_t>(e, -1, 1);
    act_t *y = host_rand<act_t>(e, 0, 1);
    float *gamma = host_rand<float>(c, 0.5f, 1.5f), *beta = host_rand<float>(c, -0.5f, 0.5f);
    float *mean = host_rand<float>(gc, 0, 1), *inv = host_rand<float>(gc, 0, 1);
    float *rm = host_rand<float>(gc, 0, 1), *rv = host_rand<float>(gc, 0.5f, 1.5f);
    act_t *dx_ = to_dev(x, e), *dr = to_dev(r, e), *dy_ = to_dev(y, e);
    float *dg = to_dev(gamma, c), *db = to_dev(beta, c), *dm = to_dev(mean, gc);
    float *di = to_dev(inv, gc), *drm = to_dev(rm, gc), *drv = to_dev(rv, gc);
    if (bn_train<act_t>(dx_, dy_, n, c, hw, groups, dg, db, dm, di, drm, drv, relu,
                        res ? dr : NULL)) {
        printf("not ok %d - bn_train: %s\n", ++tests, lwl_cuda_error());
        failures++;
        return;
    }
    /* the host: the same bodies in the same order */
    int nseg = (int)((hw + BN_SEG - 1) / BN_SEG), per = n / groups;
    double *part = (double *)malloc((size_t)n * nseg * c * 2 * sizeof(double));
    double *img = (double *)malloc((size_t)n * c * 2 * sizeof(double));
    double *tot = (double *)malloc(gc * 2 * sizeof(double));
    for (size_t t = 0; t < (size_t)n * nseg * c; t++)
        gk_bn_part<act_t>(t, x, part, hw, c, nseg, BN_SEG);
    for (size_t t = 0; t < (size_t)n * c; t++)
        gk_bn_image(t, part, img, c, nseg);
    for (size_t t = 0; t < gc; t++)
        gk_bn_group(t, img, tot, c, per);
    for (size_t t = 0; t < gc; t++)
        gk_bn_stats(t, tot, (double)per * hw, mean, inv, rm, rv);
    for (size_t t = 0; t < e; t++)
        gk_bn_apply<act_t>(t, x, y, res ? r : NULL, hw, c, per, gamma, beta, mean, inv, NULL,
                           relu);
    snprintf(what, sizeof what, "bn_train n %d c %d hw %zu groups %d relu %d res %d: mean", n, c,
             hw, groups, relu, res);
    same(what, dm, mean, gc, 0);
    snprintf(what, sizeof what, "... invstd (sqrtf)");
    same(what, di, inv, gc, 1e-6);
    snprintf(what, sizeof what, "... running statistics");
    same(what, drm, rm, gc, 0);
    same(what, drv, rv, gc, 1e-6);
    snprintf(what, sizeof what, "... output");
    same(what, dy_, y, e, 1e-6);
    free(part);
    free(img);
    free(tot);
}

static int check_pool(void)
{
    int n = 3, h = 13, w = 11, c = 5, oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
    size_t ein = (size_t)n * h * w * c, eout = (size_t)n * oh * ow * c;
    act_t *x = host_rand<act_t>(ein, -1, 1), *y = host_rand<act_t>(eout, 0, 1);
    act_t *dy = host_rand<act_t>(eout, -1, 1), *dx = host_rand<act_t>(ein, 0, 1);
    uint8_t *arg = (uint8_t *)malloc(eout);
    for (size_t i = 0; i < ein; i += 7)     /* ties: the first maximum wins */
        x[i] = x[i / 2];
    act_t *gx = to_dev(x, ein), *gy = to_dev(y, eout), *gdy = to_dev(dy, eout);
    act_t *gdx = to_dev(dx, ein);
    uint8_t *garg = (uint8_t *)lwl_gpu_alloc(eout);
    GK_RUN(pool_fwd, eout, gx, gy, garg, h, w, oh, ow, c);
    GK_RUN(pool_bwd, ein, gdy, (const uint8_t *)garg, gdx, h, w, oh, ow, c);
    for (size_t t = 0; t < eout; t++)
        gk_pool_fwd(t, x, y, arg, h, w, oh, ow, c);
    for (size_t t = 0; t < ein; t++)
        gk_pool_bwd(t, dy, arg, dx, h, w, oh, ow, c);
    same("max-pool forward", gy, y, eout, 0);
    same("max-pool window indices", garg, arg, eout, 0);
    same("max-pool backward", gdx, dx, ein, 0);
    return 0;
}

/* The head's maps and loss (fp32 rows, expf and sqrtf inside). */
static int check_head(void)
{
    int n = 4, p = 9, d = 12, rows = n * (1 + p);
    float *z = host_rand<float>((size_t)rows * d, -1, 1), *inv = host_rand<float>(n * p, 0, 1);
    float *a = host_rand<float>((size_t)n * d * p, 0, 1), *da = host_rand<float>(n * d * p, -1, 1);
    float *dz = host_rand<float>((size_t)rows * d, -1, 1);
    float *gz = to_dev(z, rows * d), *ginv = to_dev(inv, n * p), *ga = to_dev(a, n * d * p);
    float *gda = to_dev(da, n * d * p), *gdz = to_dev(dz, rows * d);
    GK_RUN(maps_norm, (size_t)n * p, gz, ginv, p, d);
    GK_RUN(maps_softmax, (size_t)n * d, gz, (const float *)ginv, ga, p, d);
    GK_RUN(maps_softmax_bwd, (size_t)n * d, (const float *)ga, (const float *)gda, gdz, p, d);
    GK_RUN(maps_norm_bwd, (size_t)n * p, (const float *)gz, gdz, p, d);
    for (size_t t = 0; t < (size_t)n * p; t++)
        gk_maps_norm(t, z, inv, p, d);
    for (size_t t = 0; t < (size_t)n * d; t++)
        gk_maps_softmax(t, z, inv, a, p, d);
    for (size_t t = 0; t < (size_t)n * d; t++)
        gk_maps_softmax_bwd(t, a, da, dz, p, d);
    for (size_t t = 0; t < (size_t)n * p; t++)
        gk_maps_norm_bwd(t, z, dz, p, d);
    same("alignment maps: norms", ginv, inv, n * p, 4e-7);
    same("alignment maps: softmax", ga, a, n * d * p, 2e-6);
    same("alignment maps: backward", gdz, dz, rows * d, 1e-5);

    float *q = host_rand<float>(64 * 16, -1, 1), *t = host_rand<float>(64 * 16, -1, 1);
    float *dq = host_rand<float>(64 * 16, -1, 1);
    double lr[64], *glr = (double *)lwl_gpu_alloc(64 * sizeof(double));
    float *gq = to_dev(q, 64 * 16), *gt = to_dev(t, 64 * 16), *gdq = to_dev(dq, 64 * 16);
    GK_RUN(cos_loss, 64, (const float *)gq, (const float *)gt, gdq, glr, 16, 0.5f, 64);
    for (size_t r = 0; r < 64; r++)
        gk_cos_loss(r, q, t, dq, lr, 16, 0.5f, 64);
    same("loss rows", glr, lr, 64, 1e-6);
    same("loss gradient", gdq, dq, 64 * 16, 1e-6);
    return 0;
}

/* ---- the kNN */

/* Compares the device's bytes with the host's, exactly. */
static void same_bytes(const char *what, const void *d, const void *h, size_t bytes)
{
    unsigned char *g = (unsigned char *)malloc(bytes);
    int ok = !lwl_gpu_sync() && !lwl_gpu_get(g, d, bytes);
    size_t at = 0;
    while (ok && at < bytes && g[at] == ((const unsigned char *)h)[at])
        at++;
    tests++;
    if (ok && at == bytes) {
        printf("ok %d - %s: %zu bytes\n", tests, what, bytes);
    } else {
        failures++;
        printf("not ok %d - %s: %s %zu\n", tests, what, ok ? "first difference at byte" :
               lwl_cuda_error(), at);
    }
    free(g);
}

/* n memory rows and m queries of d features on the grid of 2^-6 in [-1, 1] (every product
 * and partial sum exact in fp32: the CPU's and the GPU's GEMMs give the same floats), a
 * third of the memory rows repeated under other labels, so that ties decide; 10 classes. */
static void knn_data(float *mem, int *y, size_t n, float *q, size_t m, int d)
{
    for (size_t i = 0; i < n; i++) {
        int dup = i >= 30 && uni(0, 1) < 0.33f;
        y[i] = (int)uni(0, 10) % 10;
        for (int c = 0; c < d; c++)
            mem[i * d + c] = dup ? mem[i / 3 * d + c] : floorf(uni(-64, 64)) / 64;
    }
    for (size_t i = 0; i < m; i++)      /* every fifth query is a memory row */
        for (int c = 0; c < d; c++)
            q[i * d + c] = i % 5 == 0 ? mem[i * 4 * d + c] : floorf(uni(-64, 64)) / 64;
}

/* The three stages on the GPU over its own similarities against the same bodies on the
 * host (the weighted vote's scores within exp's last bits). */
template <int K>
static int check_knn_stages(const float *mem, const int *y, size_t n, int d, const float *q,
                            size_t m)
{
    typedef lwl_gk_topk<K> topk_t;
    knn_cut c = knn_plan(n, m, K, n * m, 1 << 14);
    size_t np = (size_t)c.nseg * m;
    float *gm = to_dev(mem, n * d), *gq = to_dev(q, m * d);
    float *gs = (float *)lwl_gpu_alloc(sizeof(float) * n * m);
    float *sim = (float *)malloc(sizeof(float) * n * m);
    int *gy = to_dev(y, n), *gvo = (int *)lwl_gpu_alloc(sizeof(int) * m * 10);
    int *gpred = (int *)lwl_gpu_alloc(sizeof(int) * m * 5);
    topk_t *gp = (topk_t *)lwl_gpu_alloc(sizeof(topk_t) * np);
    topk_t *gt = (topk_t *)lwl_gpu_alloc(sizeof(topk_t) * m);
    double *gsc = (double *)lwl_gpu_alloc(sizeof(double) * m * 10);
    if (lwl_ggemm_fp32(0, 1, (int)n, (int)m, d, 1.0f, gm, d, gq, d, 0.0f, gs, (int)m) ||
        lwl_gpu_sync() || lwl_gpu_get(sim, gs, sizeof(float) * n * m))
        return -1;
    GK_RUN_T(knn_part, topk_t, np, (const float *)gs, gp, n, m, c.seg);
    GK_RUN_T(knn_merge, topk_t, m, (const topk_t *)gp, gt, m, c.nseg);
    GK_RUN_T(knn_vote, topk_t, m, (const topk_t *)gt, (const int *)gy, (const float *)gm,
             (const float *)gq, d, K, 1, 0.1, 10, gsc, gvo, gpred);

    topk_t *part = (topk_t *)malloc(sizeof(topk_t) * np);
    topk_t *top = (topk_t *)malloc(sizeof(topk_t) * m);
    double *sc = (double *)malloc(sizeof(double) * m * 10);
    int *vo = (int *)malloc(sizeof(int) * m * 10), *pred = (int *)malloc(sizeof(int) * m * 5);
    for (size_t t = 0; t < np; t++)
        gk_knn_part(t, sim, part, n, m, c.seg);
    for (size_t t = 0; t < m; t++)
        gk_knn_merge(t, part, top, m, c.nseg);
    for (size_t t = 0; t < m; t++)
        gk_knn_vote(t, top, y, mem, q, d, K, 1, 0.1, 10, sc, vo, pred);
    char what[96];
    snprintf(what, sizeof what, "kNN k %d, %d segments: each segment's best (ties)", K, c.nseg);
    same_bytes(what, gp, part, sizeof(topk_t) * np);
    same_bytes("... each query's best", gt, top, sizeof(topk_t) * m);
    same("... the weighted vote's class scores (exp)", gsc, sc, m * 10, 1e-15);
    same("... the classes", gpred, pred, m * 5, 0);
    free(sim);
    free(part);
    free(top);
    free(sc);
    free(vo);
    free(pred);
    return 0;
}

/* knn_predict on the GPU against lwl_knn_predict on the CPU: the same classes. */
template <int K>
static void check_knn_cpu(const float *mem, const int *y, size_t n, int d, const float *q,
                          size_t m, int weighted, size_t sim_floats)
{
    int *pg = (int *)malloc(sizeof(int) * m * 5), *pc = (int *)malloc(sizeof(int) * m * 5);
    lwl_knn_cfg cfg = { K, weighted, 0.1, 10, 0, 0 };
    char *err = NULL;
    int rc = knn_predict<K>(mem, y, n, d, q, m, K, weighted, 0.1, 10, pg, sim_floats, 0);
    rc = rc || lwl_knn_predict(&cfg, mem, y, n, (size_t)d, q, m, pc, &err);
    size_t differ = 0;
    for (size_t i = 0; !rc && i < m * 5; i++)
        differ += pg[i] != pc[i];
    tests++;
    failures += rc || differ;
    printf("%s %d - kNN k %d %s on the GPU (chunks of %s similarities): the CPU's classes "
           "(%zu differ)%s%s\n", rc || differ ? "not ok" : "ok", tests, K,
           weighted ? "weighted" : "majority", sim_floats ? "n x 37" : "KNN_SIM_FLOATS", differ,
           rc ? ": " : "", rc ? (err ? err : lwl_cuda_error()) : "");
    free(err);
    free(pg);
    free(pc);
}

static int check_knn(void)
{
    size_t n = 3000, m = 700;
    int d = 32;
    float *mem = (float *)malloc(sizeof(float) * n * d);
    float *q = (float *)malloc(sizeof(float) * m * d);
    int *y = (int *)malloc(sizeof(int) * n);
    knn_data(mem, y, n, q, m, d);
    if (check_knn_stages<20>(mem, y, n, d, q, m) || check_knn_stages<1>(mem, y, n, d, q, m))
        return -1;
    for (int w = 0; w < 2; w++) {
        check_knn_cpu<20>(mem, y, n, d, q, m, w, 0);
        check_knn_cpu<20>(mem, y, n, d, q, m, w, n * 37);
        check_knn_cpu<1>(mem, y, n, d, q, m, w, 0);
    }
    free(mem);
    free(q);
    free(y);
    return 0;
}

int main(void)
{
    if (lwl_gpu_init(0, LWL_F32)) {
        printf("1..0 # SKIP %s\n", lwl_cuda_error());
        return 0;
    }
    check_bn(4, 64, 3136, 2, 1, 0);         /* layer1-like, two groups, ReLU */
    check_bn(6, 256, 49, 1, 0, 1);          /* layer4-like, the end of a block */
    check_bn(2, 96, 1000, 2, 0, 0);         /* the head's BN1d as (groups, rows, c) */
    if (check_pool() || check_head() || check_knn()) {
        printf("not ok %d - a launch failed: %s\n", ++tests, lwl_cuda_error());
        failures++;
    }
    printf("1..%d\n", tests);
    return failures ? 1 : 0;
}
