/* The GPU step's operations around cuDNN and cuBLAS (lwl_gpu.h): the kernels of
 * gpu_kernels.h launched on the step's stream, and the same calls as the CPU's cpu_ops.h
 * (BN per group with fused ReLU and residual end, the head's MLPs, alignment maps and
 * loss, LARS and the moving average over flat buffers); and the evaluation's kNN (a GEMM
 * and a top-k per query, lwl_eval.c's results). Emitted by lwlc from
 * compiler/tmpl/gpu_ops.cuh; every spec shares it. Every launch is checked. */
#ifndef LWL_GPU_OPS_CUH
#define LWL_GPU_OPS_CUH

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_kernels.h"
#include "lwl_gpu.h"

#define GK_THREADS 256

#if defined(__CUDACC__)
/* Blocks of a grid-stride launch over n threads. */
static unsigned gk_blocks(size_t n)
{
    size_t b = (n + GK_THREADS - 1) / GK_THREADS;
    return (unsigned)(b > 16384 ? 16384 : b ? b : 1);
}

#define GRID_LOOP(t, n)                                                                  \
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < (n);             \
         t += (size_t)gridDim.x * blockDim.x)

/* Runs gpu_kernels.h's gk_NAME for t < n as kernel NAME_k on the step's stream; returns
 * -1 from the caller on a launch error. GK_RUN_T: a template instance (T). */
#define GK_RUN(name, n, ...)                                                             \
    do {                                                                                 \
        size_t n_ = (n);                                                                 \
        if (n_) {                                                                        \
            name##_k<<<gk_blocks(n_), GK_THREADS, 0, lwl_gpu_stream()>>>(n_, __VA_ARGS__); \
            LAUNCH_CK();                                                                 \
        }                                                                                \
    } while (0)
#define GK_RUN_T(name, T, n, ...)                                                        \
    do {                                                                                 \
        size_t n_ = (n);                                                                 \
        if (n_) {                                                                        \
            name##_k<T><<<gk_blocks(n_), GK_THREADS, 0, lwl_gpu_stream()>>>(n_, __VA_ARGS__); \
            LAUNCH_CK();                                                                 \
        }                                                                                \
    } while (0)
#define GK_KERNEL(name, params, args)                                                    \
    __global__ void name##_k(size_t n, GK_UNPAREN params)                               \
    {                                                                                    \
        GRID_LOOP(t, n) gk_##name(t, GK_UNPAREN args);                                   \
    }
#define GK_KERNEL_T(name, params, args)                                                  \
    template <typename T>                                                                \
    __global__ void name##_k(size_t n, GK_UNPAREN params)                               \
    {                                                                                    \
        GRID_LOOP(t, n) gk_##name(t, GK_UNPAREN args);                                   \
    }
#else
/* Without nvcc (the tests' emulation, tests/emu/): every thread index in turn, each run
 * that a GPU would launch counted in lwl_emu_launches. */
extern long lwl_emu_launches;
#define GK_RUN(name, n, ...)                                                             \
    do {                                                                                 \
        size_t n_ = (n);                                                                 \
        lwl_emu_launches += n_ > 0;                                                      \
        for (size_t t_ = 0; t_ < n_; t_++)                                               \
            gk_##name(t_, __VA_ARGS__);                                                  \
    } while (0)
#define GK_RUN_T(name, T, n, ...)                                                        \
    do {                                                                                 \
        size_t n_ = (n);                                                                 \
        lwl_emu_launches += n_ > 0;                                                      \
        for (size_t t_ = 0; t_ < n_; t_++)                                               \
            gk_##name<T>(t_, __VA_ARGS__);                                               \
    } while (0)
#define GK_KERNEL(name, params, args)
#define GK_KERNEL_T(name, params, args)
#endif
#define GK_UNPAREN(...) __VA_ARGS__

/* ---- the kernels: one thread index t of gpu_kernels.h each */

GK_KERNEL(view_in, (const float *x, act_t *y, size_t hw), (x, y, hw))
GK_KERNEL(w_in, (const float *w, act_t *wa, int c, int rs), (w, wa, c, rs))
GK_KERNEL(dw_add, (const act_t *dwa, float *g, int c, int rs), (dwa, g, c, rs))
GK_KERNEL(head_rows, (const act_t *x, float *u, int p, int c, int lewel), (x, u, p, c, lewel))
GK_KERNEL(head_rows_bwd, (const float *du, const float *dx, act_t *dy, int p, int c, int lewel),
          (du, dx, dy, p, c, lewel))
GK_KERNEL_T(bn_part, (const T *x, double *part, size_t hw, int c, int nseg, int len),
            (x, part, hw, c, nseg, len))
GK_KERNEL(bn_image, (const double *part, double *img, int c, int nseg), (part, img, c, nseg))
GK_KERNEL(bn_group, (const double *img, double *tot, int c, int per), (img, tot, c, per))
GK_KERNEL(bn_stats, (const double *tot, double m, float *mean, float *invstd, float *rm,
                     float *rv), (tot, m, mean, invstd, rm, rv))
GK_KERNEL_T(bn_apply, (const T *x, T *y, const T *res, size_t hw, int c, int per,
                       const float *gamma, const float *beta, const float *mean,
                       const float *invstd, const float *run_var, int relu),
            (x, y, res, hw, c, per, gamma, beta, mean, invstd, run_var, relu))
GK_KERNEL_T(bn_bpart, (const T *x, const T *dy, const T *ro, double *part, size_t hw, int c,
                       int nseg, int len, int per, const float *mean, const float *invstd),
            (x, dy, ro, part, hw, c, nseg, len, per, mean, invstd))
GK_KERNEL(bn_bgrad, (const double *tot, float *dgamma, float *dbeta, int c, int groups),
          (tot, dgamma, dbeta, c, groups))
GK_KERNEL_T(bn_bapply, (const T *x, const T *dy, const T *ro, T *dx, size_t hw, int c, int per,
                        const float *gamma, const float *mean, const float *invstd,
                        const double *tot, float inv_m),
            (x, dy, ro, dx, hw, c, per, gamma, mean, invstd, tot, inv_m))
GK_KERNEL(relu_bwd, (act_t *dy, const act_t *y), (dy, y))
GK_KERNEL(add_into, (act_t *y, const act_t *x), (y, x))
GK_KERNEL(pool_fwd, (const act_t *x, act_t *y, uint8_t *arg, int h, int w, int oh, int ow,
                     int c), (x, y, arg, h, w, oh, ow, c))
GK_KERNEL(pool_bwd, (const act_t *dy, const uint8_t *arg, act_t *dx, int h, int w, int oh,
                     int ow, int c), (dy, arg, dx, h, w, oh, ow, c))
GK_KERNEL(maps_norm, (const float *z, float *inv, int p, int d), (z, inv, p, d))
GK_KERNEL(maps_softmax, (const float *z, const float *inv, float *a, int p, int d),
          (z, inv, a, p, d))
GK_KERNEL(maps_softmax_bwd, (const float *a, const float *da, float *dz, int p, int d),
          (a, da, dz, p, d))
GK_KERNEL(maps_norm_bwd, (const float *z, float *dz, int p, int d), (z, dz, p, d))
GK_KERNEL(rows_gather, (const float *z, float *zg, int d, int stride), (z, zg, d, stride))
GK_KERNEL(rows_scatter, (const float *dzg, float *dz, int d, int stride), (dzg, dz, d, stride))
GK_KERNEL(cos_loss, (const float *q, const float *tg, float *dq, double *lr, int d, float scale,
                     int rows), (q, tg, dq, lr, d, scale, rows))
GK_KERNEL(sum_in_order, (const double *v, size_t count, double *out), (v, count, out))
GK_KERNEL(sq_chunk, (const lwl_gk_chunk *ch, const float *w, const float *g, double *part),
          (ch, w, g, part))
GK_KERNEL(trust, (const uint32_t *first, const double *part, const uint8_t *decay, float wd,
                  float eta, int lars, float *local), (first, part, decay, wd, eta, lars, local))
GK_KERNEL(lars, (const lwl_gk_chunk *ch, uint32_t csize, float *w, float *buf, const float *g,
                 const float *local, const uint8_t *decay, float wd, float lr, float momentum,
                 int first), (ch, csize, w, buf, g, local, decay, wd, lr, momentum, first))
GK_KERNEL(ema, (float *tw, const float *o, float m), (tw, o, m))
GK_KERNEL(scale, (float *y, float s), (y, s))
GK_KERNEL(check_finite, (const float *g, int *flag), (g, flag))
GK_KERNEL(pool_features, (const act_t *x, float *f, int p, int c), (x, f, p, c))
GK_KERNEL(maps_out, (const act_t *x, float *m, int p, int c), (x, m, p, c))
GK_KERNEL_T(knn_part, (const float *sim, T *part, size_t nmem, size_t mq, size_t seg),
            (sim, part, nmem, mq, seg))
GK_KERNEL_T(knn_merge, (const T *part, T *top, size_t mq, int nseg), (part, top, mq, nseg))
GK_KERNEL_T(knn_vote, (const T *top, const int *labels, const float *mem, const float *qry, int d,
                       int k, int weighted, double temperature, int nclasses, double *score,
                       int *votes, int *pred),
            (top, labels, mem, qry, d, k, weighted, temperature, nclasses, score, votes, pred))

/* ---- scratch of the reductions, made once by gpu_ops_init (the step allocates nothing) */

#define BN_SEG 64            /* positions a thread sums before the segments are added */

static double *gops_part, *gops_img, *gops_tot, *gops_rows, *gops_loss;
static float *gops_inv;
static size_t gops_part_n, gops_img_n, gops_tot_n, gops_rows_n, gops_inv_n;

/* norm sync over GPUs: the BN totals of every rank are added (lwl_gcomm) before use. */
static int gops_sync_world = 1;

/* Room for BN over at most `part` (image, segment, channel) sums, `img` (image, channel)
 * and `tot` (group, channel) ones, `rows` loss rows and `inv` map norms. */
static int gpu_ops_init(size_t part, size_t img, size_t tot, size_t rows, size_t inv)
{
    gops_part = (double *)lwl_gpu_alloc(part * 2 * sizeof(double));
    gops_img = (double *)lwl_gpu_alloc(img * 2 * sizeof(double));
    gops_tot = (double *)lwl_gpu_alloc(tot * 2 * sizeof(double));
    gops_rows = (double *)lwl_gpu_alloc(rows * sizeof(double));
    gops_loss = (double *)lwl_gpu_alloc(sizeof(double));
    gops_inv = (float *)lwl_gpu_alloc(inv * sizeof(float));
    gops_part_n = part;
    gops_img_n = img;
    gops_tot_n = tot;
    gops_rows_n = rows;
    gops_inv_n = inv;
    return gops_part && gops_img && gops_tot && gops_rows && gops_loss && gops_inv ? 0 : -1;
}

static void gpu_ops_free(void)
{
    void *all[] = { gops_part, gops_img, gops_tot, gops_rows, gops_loss, gops_inv };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lwl_gpu_release(all[i]);
    gops_part = gops_img = gops_tot = gops_rows = gops_loss = NULL;
    gops_inv = NULL;
}

/* A scratch request beyond what gpu_ops_init made room for is a bug of the emitter. */
#define GOPS_ROOM(have, need)                                                            \
    do {                                                                                 \
        if ((size_t)(need) > (have))                                                     \
            return lwl_cuda_fail(__FILE__, __LINE__, "lwlc", "scratch too small", #need); \
    } while (0)

/* ---- batch norm over NHWC (n, hw, c), groups of n / groups images */

/* The (group, channel) totals of the per-segment sums in gops_part. */
static int bn_totals(int n, int c, int nseg, int groups)
{
    GK_RUN(bn_image, (size_t)n * c, gops_part, gops_img, c, nseg);
    GK_RUN(bn_group, (size_t)groups * c, gops_img, gops_tot, c, n / groups);
    return 0;
}

static int bn_sync(int groups, int c)
{
    if (gops_sync_world > 1 && lwl_gcomm_sum_d(gops_tot, (size_t)groups * c * 2))
        return -1;
    return 0;
}

/* Train mode: statistics of each group saved (mean, invstd: (groups, c)); running
 * statistics updated unless run_mean is NULL; y = relu(bn(x) + res) with res, else
 * bn(x), ReLU'd when relu is set. */
template <typename T>
static int bn_train(const T *x, T *y, int n, int c, size_t hw, int groups, const float *gamma,
                    const float *beta, float *mean, float *invstd, float *run_mean,
                    float *run_var, int relu, const T *res)
{
    int nseg = (int)((hw + BN_SEG - 1) / BN_SEG);
    GOPS_ROOM(gops_part_n, (size_t)n * nseg * c);
    GOPS_ROOM(gops_img_n, (size_t)n * c);
    GOPS_ROOM(gops_tot_n, (size_t)groups * c);
    GK_RUN_T(bn_part, T, (size_t)n * nseg * c, x, gops_part, hw, c, nseg, BN_SEG);
    if (bn_totals(n, c, nseg, groups) || bn_sync(groups, c))
        return -1;
    double m = (double)(n / groups) * (double)hw * gops_sync_world;
    GK_RUN(bn_stats, (size_t)groups * c, gops_tot, m, mean, invstd, run_mean, run_var);
    GK_RUN_T(bn_apply, T, (size_t)n * hw * c, x, y, res, hw, c, n / groups, gamma, beta, mean,
           invstd, (const float *)NULL, relu);
    return 0;
}

/* Eval mode with the running statistics of each group. */
template <typename T>
static int bn_eval(const T *x, T *y, int n, int c, size_t hw, int groups, const float *gamma,
                   const float *beta, const float *run_mean, const float *run_var, int relu,
                   const T *res)
{
    GK_RUN_T(bn_apply, T, (size_t)n * hw * c, x, y, res, hw, c, n / groups, gamma, beta,
           run_mean, (const float *)NULL, run_var, relu);
    return 0;
}

/* Backward of train-mode BN: dy → dx (may be dy); dgamma, dbeta accumulate. relu_out:
 * dy first goes through the ReLU that produced it. */
template <typename T>
static int bn_train_bwd(const T *x, const T *dy, const T *relu_out, T *dx, int n, int c,
                        size_t hw, int groups, const float *gamma, const float *mean,
                        const float *invstd, float *dgamma, float *dbeta)
{
    int nseg = (int)((hw + BN_SEG - 1) / BN_SEG), per = n / groups;
    GOPS_ROOM(gops_part_n, (size_t)n * nseg * c);
    GK_RUN_T(bn_bpart, T, (size_t)n * nseg * c, x, dy, relu_out, gops_part, hw, c, nseg, BN_SEG,
           per, mean, invstd);
    if (bn_totals(n, c, nseg, groups))
        return -1;
    GK_RUN(bn_bgrad, (size_t)c, gops_tot, dgamma, dbeta, c, groups);
    if (bn_sync(groups, c))
        return -1;
    float inv_m = 1.0f / ((float)per * (float)hw * gops_sync_world);
    GK_RUN_T(bn_bapply, T, (size_t)n * hw * c, x, dy, relu_out, dx, hw, c, per, gamma, mean,
           invstd, (const double *)gops_tot, inv_m);
    return 0;
}

/* ---- element-wise over activations */

static int relu_bwd_inplace(act_t *dy, const act_t *y, size_t n)
{
    GK_RUN(relu_bwd, n, dy, y);
    return 0;
}

static int add_into(act_t *y, const act_t *x, size_t n)
{
    GK_RUN(add_into, n, y, x);
    return 0;
}

/* ---- the head's MLP over fp32 rows: y = W3 relu(bn(W0 x)) */

typedef struct mlp_save {
    float *h1, *h2;         /* (rows, hidden): before BN, after BN + ReLU */
    float *mean, *invstd;   /* (groups, hidden) */
} mlp_save;

static int mlp_fwd(const float *x, float *y, int rows, int in, int hidden, int out, int groups,
                   const float *w0, const float *gamma, const float *beta, const float *w3,
                   float *run_mean, float *run_var, mlp_save *sv, int train, int update_running)
{
    if (lwl_ggemm(0, 1, rows, hidden, in, 1.0f, x, in, w0, in, 0.0f, sv->h1, hidden))
        return -1;
    /* rows as `groups` images of rows / groups positions: BN1d's statistics per group */
    size_t per = (size_t)rows / groups;
    if (train && bn_train<float>(sv->h1, sv->h2, groups, hidden, per, groups, gamma, beta,
                                 sv->mean, sv->invstd, update_running ? run_mean : NULL,
                                 run_var, 1, NULL))
        return -1;
    if (!train && bn_eval<float>(sv->h1, sv->h2, groups, hidden, per, groups, gamma, beta,
                                 run_mean, run_var, 1, NULL))
        return -1;
    return lwl_ggemm(0, 1, rows, out, hidden, 1.0f, sv->h2, hidden, w3, hidden, 0.0f, y, out);
}

/* Backward: dy (rows, out) → dx (rows, in) when dx is not NULL; weight grads accumulate.
 * tmp holds (rows, hidden). */
static int mlp_bwd(const float *x, const float *dy, float *dx, int rows, int in, int hidden,
                   int out, int groups, const float *w0, const float *gamma, const float *w3,
                   const mlp_save *sv, float *dw0, float *dgamma, float *dbeta, float *dw3,
                   float *tmp)
{
    size_t per = (size_t)rows / groups;
    if (lwl_ggemm(1, 0, out, hidden, rows, 1.0f, dy, out, sv->h2, hidden, 1.0f, dw3, hidden) ||
        lwl_ggemm(0, 0, rows, hidden, out, 1.0f, dy, out, w3, hidden, 0.0f, tmp, hidden) ||
        bn_train_bwd<float>(sv->h1, tmp, sv->h2, tmp, groups, hidden, per, groups, gamma,
                            sv->mean, sv->invstd, dgamma, dbeta) ||
        lwl_ggemm(1, 0, hidden, in, rows, 1.0f, tmp, hidden, x, in, 1.0f, dw0, in))
        return -1;
    if (dx && lwl_ggemm(0, 0, rows, in, hidden, 1.0f, tmp, hidden, w0, in, 0.0f, dx, in))
        return -1;
    return 0;
}

/* ---- the LEWEL head's data movement */

/* u rows (n (1 + p), c) fp32 from layer4's output x (n, p, c) act: per image the spatial
 * mean, then each position (lewel 0: the mean rows (n, c) only). */
static int head_rows(const act_t *x, float *u, int n, int c, int p, int lewel)
{
    GK_RUN(head_rows, (size_t)n * c, x, u, p, c, lewel);
    return 0;
}

/* d(layer4's output) (n, p, c) act from du and the aligned features' dx (n, p, c) fp32. */
static int head_rows_bwd(const float *du, const float *dx, act_t *dy, int n, int c, int p,
                         int lewel)
{
    GK_RUN(head_rows_bwd, (size_t)n * p * c, du, dx, dy, p, c, lewel);
    return 0;
}

/* Alignment maps a (n, d, p) from z rows (n (1 + p), d). */
static int head_maps(const float *z, float *a, int n, int d, int p)
{
    GOPS_ROOM(gops_inv_n, (size_t)n * p);
    GK_RUN(maps_norm, (size_t)n * p, z, gops_inv, p, d);
    GK_RUN(maps_softmax, (size_t)n * d, z, gops_inv, a, p, d);
    return 0;
}

/* Backward of head_maps: da → the position rows of dz (the global rows are kept). */
static int head_maps_bwd(const float *z, const float *a, const float *da, float *dz, int n,
                         int d, int p)
{
    GK_RUN(maps_softmax_bwd, (size_t)n * d, a, da, dz, p, d);
    GK_RUN(maps_norm_bwd, (size_t)n * p, z, dz, p, d);
    return 0;
}

/* Aligned features o (n k, c) from the position rows of u (n (1 + p), c) and the maps a
 * (n, d, p): head h's maps [h k, h k + k) weight channels [h cg, h cg + cg). One batched
 * GEMM per head over the images. */
static int head_align(const float *u, const float *a, float *o, int n, int c, int p, int d,
                      int heads)
{
    int k = d / heads, cg = c / heads;
    for (int h = 0; h < heads; h++)
        if (lwl_ggemm_batched(0, 0, k, cg, p, 1.0f, a + (size_t)h * k * p, p, (long long)d * p,
                              u + c + (size_t)h * cg, c, (long long)(1 + p) * c, 0.0f,
                              o + (size_t)h * cg, c, (long long)k * c, n))
            return -1;
    return 0;
}

/* Backward of head_align: do (n k, c) → da (n, d, p) (overwritten) and dx (n, p, c)
 * (accumulated). */
static int head_align_bwd(const float *u, const float *a, const float *dout, float *da,
                          float *dx, int n, int c, int p, int d, int heads)
{
    int k = d / heads, cg = c / heads;
    for (int h = 0; h < heads; h++)
        if (lwl_ggemm_batched(0, 1, k, p, cg, 1.0f, dout + (size_t)h * cg, c, (long long)k * c,
                              u + c + (size_t)h * cg, c, (long long)(1 + p) * c, 0.0f,
                              da + (size_t)h * k * p, p, (long long)d * p, n) ||
            lwl_ggemm_batched(1, 0, p, cg, k, 1.0f, a + (size_t)h * k * p, p, (long long)d * p,
                              dout + (size_t)h * cg, c, (long long)k * c, 1.0f,
                              dx + (size_t)h * cg, c, (long long)p * c, n))
            return -1;
    return 0;
}

/* The global rows (every stride-th of z, d wide) into zg (n, d), and back. */
static int rows_gather(const float *z, float *zg, int n, int d, int stride)
{
    GK_RUN(rows_gather, (size_t)n * d, z, zg, d, stride);
    return 0;
}

static int rows_scatter(const float *dzg, float *dz, int n, int d, int stride)
{
    GK_RUN(rows_scatter, (size_t)n * d, dzg, dz, d, stride);
    return 0;
}

/* ---- the loss: the mean over rows of 2 - 2 cos(q, t), times scale, added to the step's
 * loss on the device (gops_loss); dq accumulates */

static int loss_reset(void)
{
    return lwl_gpu_zero(gops_loss, sizeof(double));
}

static int cos_loss(const float *q, const float *t, float *dq, int rows, int d, float scale)
{
    GOPS_ROOM(gops_rows_n, rows);
    GK_RUN(cos_loss, (size_t)rows, q, t, dq, gops_rows, d, scale, rows);
    GK_RUN(sum_in_order, 1, (const double *)gops_rows, (size_t)rows, gops_loss);
    return 0;
}

static int loss_read(double *loss)
{
    return lwl_gpu_get(loss, gops_loss, sizeof(double));
}

/* ---- the optimiser over the flat parameter buffer, in chunks of at most OPT_CHUNK
 * elements of one tensor each */

#define OPT_CHUNK 4096u

typedef struct opt_plan {
    lwl_gk_chunk *chunks;    /* device: (nchunks) */
    uint32_t *first;         /* device: (ntensors + 1) first chunk of each tensor */
    uint8_t *decay;          /* device: (ntensors) weight decay and adaptation apply */
    double *part;            /* device: (nchunks, 2) */
    float *local;            /* device: (ntensors) local learning rates */
    int nchunks, ntensors;
} opt_plan;

/* The chunks of tensors (off, numel, decay) made and uploaded once. */
static int opt_plan_make(opt_plan *o, const size_t *off, const size_t *numel,
                         const uint8_t *decay, int ntensors)
{
    int n = 0;
    for (int t = 0; t < ntensors; t++)
        n += (int)((numel[t] + OPT_CHUNK - 1) / OPT_CHUNK);
    lwl_gk_chunk *ch = (lwl_gk_chunk *)malloc((size_t)n * sizeof *ch);
    uint32_t *first = (uint32_t *)malloc((size_t)(ntensors + 1) * sizeof *first);
    int rc = -1;
    if (!ch || !first) {
        lwl_cuda_fail(__FILE__, __LINE__, "host", "out of memory", "opt_plan_make");
        goto out;
    }
    n = 0;
    for (int t = 0; t < ntensors; t++) {
        first[t] = (uint32_t)n;
        for (size_t at = 0; at < numel[t]; at += OPT_CHUNK) {
            size_t m = numel[t] - at < OPT_CHUNK ? numel[t] - at : OPT_CHUNK;
            ch[n++] = (lwl_gk_chunk){ (uint32_t)t, (uint32_t)m, off[t] + at };
        }
    }
    first[ntensors] = (uint32_t)n;
    o->nchunks = n;
    o->ntensors = ntensors;
    o->chunks = (lwl_gk_chunk *)lwl_gpu_alloc((size_t)n * sizeof *ch);
    o->first = (uint32_t *)lwl_gpu_alloc((size_t)(ntensors + 1) * sizeof *first);
    o->decay = (uint8_t *)lwl_gpu_alloc((size_t)ntensors);
    o->part = (double *)lwl_gpu_alloc((size_t)n * 2 * sizeof(double));
    o->local = (float *)lwl_gpu_alloc((size_t)ntensors * sizeof(float));
    if (!o->chunks || !o->first || !o->decay || !o->part || !o->local ||
        lwl_gpu_put(o->chunks, ch, (size_t)n * sizeof *ch) ||
        lwl_gpu_put(o->first, first, (size_t)(ntensors + 1) * sizeof *first) ||
        lwl_gpu_put(o->decay, decay, (size_t)ntensors))
        goto out;
    rc = 0;
out:
    free(ch);
    free(first);
    return rc;
}

static void opt_plan_free(opt_plan *o)
{
    lwl_gpu_release(o->chunks);
    lwl_gpu_release(o->first);
    lwl_gpu_release(o->decay);
    lwl_gpu_release(o->part);
    lwl_gpu_release(o->local);
    memset(o, 0, sizeof *o);
}

/* One step of LARS (lars set) or SGD over every tensor of w with gradients g and
 * momentum buffers buf (lr folded in); 1-D tensors get neither decay nor adaptation. */
static int opt_step(const opt_plan *o, float *w, float *buf, const float *g, float wd,
                    float eta, int lars, float lr, float momentum, int first)
{
    GK_RUN(sq_chunk, (size_t)o->nchunks, o->chunks, w, g, o->part);
    GK_RUN(trust, (size_t)o->ntensors, o->first, (const double *)o->part, o->decay, wd, eta,
           lars, o->local);
    GK_RUN(lars, (size_t)o->nchunks * OPT_CHUNK, o->chunks, OPT_CHUNK, w, buf, g,
           (const float *)o->local, o->decay, wd, lr, momentum, first);
    return 0;
}

/* t = m t + (1 - m) o over n elements. */
static int ema_apply(float *t, const float *o, size_t n, float m)
{
    GK_RUN(ema, n, t, o, m);
    return 0;
}

static int scale_inplace(float *y, size_t n, float s)
{
    GK_RUN(scale, n, y, s);
    return 0;
}

/* layer4's output NHWC act (n, p, c) as fp32 (n, c, p) into m. */
static int maps_out(const act_t *x, float *m, int n, int p, int c)
{
    GK_RUN(maps_out, (size_t)n * p * c, x, m, p, c);
    return 0;
}

/* *bad = 1 when an element of g (n) is not finite (flag: a device int). */
static int check_finite(const float *g, size_t n, int *flag, int *bad)
{
    if (lwl_gpu_zero(flag, sizeof *flag))
        return -1;
    GK_RUN(check_finite, n, g, flag);
    return lwl_gpu_get(bad, flag, sizeof *bad);
}

/* ---- kNN on the GPU: the similarities of a chunk of queries by a true-fp32 GEMM, then
 * each query's k best memory rows (stage 1 per memory segment, stage 2 merging the
 * segments' lists) and their vote, with lwl_eval.c's orders (docs/evaluation.md) */

#define KNN_MAX_K 512                       /* the largest k the GPU kNN keeps */
#define KNN_SIM_FLOATS ((size_t)64 << 20)   /* a chunk's similarities: 256 MiB */
#define KNN_THREADS ((size_t)1 << 16)       /* stage 1's threads, about */

/* How a kNN is cut: mq queries per chunk, the memory in nseg segments of seg rows. */
typedef struct knn_cut {
    size_t mq, seg;
    int nseg;
} knn_cut;

/* The cut for n >= 1 memory rows, m >= 1 queries and lists of K: chunks of at most
 * sim_floats similarities, about `threads` stage-1 threads, segments of at least 4 K rows
 * (so that stage 2 reads at most a quarter of what stage 1 did). Results do not depend on
 * the cut: every list keeps the best under one total order. */
static knn_cut knn_plan(size_t n, size_t m, int K, size_t sim_floats, size_t threads)
{
    knn_cut c;
    size_t mq = sim_floats / n, want, most = n / (4 * (size_t)K), nseg;
    c.mq = mq < 1 ? 1 : mq > m ? m : mq;
    want = (threads + c.mq - 1) / c.mq;
    nseg = want < most ? want : most;
    nseg = nseg < 1 ? 1 : nseg;
    c.seg = (n + nseg - 1) / nseg;
    c.nseg = (int)((n + c.seg - 1) / c.seg);
    return c;
}

/* The device buffers of a kNN. */
template <int K> struct knn_bufs {
    float *mem;                 /* (n, d) */
    int *labels;                /* (n) */
    float *qry;                 /* (mq, d) a chunk of queries */
    float *sim;                 /* (n, mq) memory-major */
    lwl_gk_topk<K> *part;       /* (nseg, mq) each segment's best */
    lwl_gk_topk<K> *top;        /* (mq) each query's best */
    double *score;              /* (mq, nclasses) */
    int *votes;                 /* (mq, nclasses) */
    int *pred;                  /* (mq, 5) */
};

template <int K> static void knn_bufs_free(knn_bufs<K> *b)
{
    void *all[] = { b->mem, b->labels, b->qry, b->sim, b->part, b->top, b->score, b->votes,
                    b->pred };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lwl_gpu_release(all[i]);
    memset(b, 0, sizeof *b);
}

/* The buffers for a cut, with the memory rows and labels uploaded. 0 or -1. */
template <int K>
static int knn_bufs_make(knn_bufs<K> *b, const knn_cut *c, const float *mem, const int *labels,
                         size_t n, int d, int nclasses)
{
    size_t mq = c->mq, nc = (size_t)nclasses;
    b->mem = (float *)lwl_gpu_alloc(sizeof(float) * n * d);
    b->labels = (int *)lwl_gpu_alloc(sizeof(int) * n);
    b->qry = (float *)lwl_gpu_alloc(sizeof(float) * mq * d);
    b->sim = (float *)lwl_gpu_alloc(sizeof(float) * n * mq);
    b->part = (lwl_gk_topk<K> *)lwl_gpu_alloc(sizeof(lwl_gk_topk<K>) * c->nseg * mq);
    b->top = (lwl_gk_topk<K> *)lwl_gpu_alloc(sizeof(lwl_gk_topk<K>) * mq);
    b->score = (double *)lwl_gpu_alloc(sizeof(double) * mq * nc);
    b->votes = (int *)lwl_gpu_alloc(sizeof(int) * mq * nc);
    b->pred = (int *)lwl_gpu_alloc(sizeof(int) * mq * LWL_GK_KNN_TOP);
    if (!b->mem || !b->labels || !b->qry || !b->sim || !b->part || !b->top || !b->score ||
        !b->votes || !b->pred)
        return -1;
    if (lwl_gpu_put(b->mem, mem, sizeof(float) * n * d) ||
        lwl_gpu_put(b->labels, labels, sizeof(int) * n))
        return -1;
    return 0;
}

/* One chunk of nq <= mq queries qry (host, (nq, d)): their classes into pred (host, (nq,
 * 5)). */
template <int K>
static int knn_chunk(const knn_bufs<K> *b, const knn_cut *c, size_t n, int d, const float *qry,
                     size_t nq, int k, int weighted, double temperature, int nclasses, int *pred)
{
    typedef lwl_gk_topk<K> topk_t;
    if (lwl_gpu_put(b->qry, qry, sizeof(float) * nq * d) ||
        lwl_ggemm_fp32(0, 1, (int)n, (int)nq, d, 1.0f, b->mem, d, b->qry, d, 0.0f, b->sim,
                       (int)nq))
        return -1;
    GK_RUN_T(knn_part, topk_t, (size_t)c->nseg * nq, (const float *)b->sim, b->part, n, nq,
             c->seg);
    GK_RUN_T(knn_merge, topk_t, nq, (const topk_t *)b->part, b->top, nq, c->nseg);
    GK_RUN_T(knn_vote, topk_t, nq, (const topk_t *)b->top, (const int *)b->labels,
             (const float *)b->mem, (const float *)b->qry, d, k, weighted, temperature, nclasses,
             b->score, b->votes, b->pred);
    return lwl_gpu_get(pred, b->pred, sizeof(int) * nq * LWL_GK_KNN_TOP);
}

/* The kNN of m query rows qry against n memory rows mem with their labels (host arrays
 * (., d), L2-normalised, finite, labels in [0, nclasses): what lwl_knn_check checks), the
 * k <= K best neighbours of each voting as lwl_eval.c's: pred (m, 5) as lwl_knn_predict's,
 * the same classes for the same similarities. The similarities are a cuBLAS GEMM in true
 * fp32 (no TF32) per chunk of queries; sim_floats and threads change the cut (0: the
 * defaults above), never the results. 0 or -1 (lwl_cuda_error). */
template <int K>
static int knn_predict(const float *mem, const int *labels, size_t n, int d, const float *qry,
                       size_t m, int k, int weighted, double temperature, int nclasses,
                       int *pred, size_t sim_floats, size_t threads)
{
    if (k < 1 || k > K || (size_t)k > n || n > (size_t)INT_MAX || d < 1 || nclasses < 1 ||
        (weighted && !(temperature > 0)))
        return lwl_cuda_fail(__FILE__, __LINE__, "lwlc", "bad arguments", "knn_predict");
    if (m == 0)
        return 0;
    knn_cut c = knn_plan(n, m, K, sim_floats ? sim_floats : KNN_SIM_FLOATS,
                         threads ? threads : KNN_THREADS);
    knn_bufs<K> b;
    memset(&b, 0, sizeof b);
    int rc = knn_bufs_make<K>(&b, &c, mem, labels, n, d, nclasses);
    for (size_t q0 = 0; rc == 0 && q0 < m; q0 += c.mq) {
        size_t nq = m - q0 < c.mq ? m - q0 : c.mq;
        rc = knn_chunk<K>(&b, &c, n, d, qry + q0 * d, nq, k, weighted, temperature, nclasses,
                          pred + q0 * LWL_GK_KNN_TOP);
    }
    knn_bufs_free<K>(&b);
    return rc;
}

#endif
