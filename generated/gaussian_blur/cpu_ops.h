/* The CPU loops around the per-element functions of kernels.h: batch norm
 * (train and eval, per group), residual ends, the MLPs of the head, pooling
 * and the LEWEL alignment maps. Shapes come in as arguments; the schedule in
 * net.c passes literals, so the compiler sees constants. Emitted by lwlc from
 * compiler/tmpl/cpu_ops.h; every spec shares it. */
#ifndef LWL_CPU_OPS_H
#define LWL_CPU_OPS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "lwl_comm.h"
#include "lwl_nn.h"

/* -O2's "very cheap" vectoriser cost model (what lwlc builds with) skips every loop here that
 * needs a run-time trip count or alias check; the runtime builds with the same flag
 * (mk/runtime.mk). Popped at the end of this file. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

/* ---- scratch of the reductions, made once by cpu_ops_init (the step allocates nothing) */

static double *ops_scratch;   /* (2 images + groups, channels, 2) of the widest BN */
static size_t ops_scratch_n;

/* norm sync over ranks: the BN sums of every rank are added (lwl_comm) before
 * use, so each rank normalises with the statistics of the whole batch; set by
 * net_init for a run of several ranks. A failed collective ends every rank. */
static int ops_sync_world = 1;

static void ops_sync_sums(double *v, size_t n)
{
    if (ops_sync_world > 1 && lwl_comm_sum_d(v, n))
        lwl_comm_abort(1);
}

/* The images of a step come in `chunks` chunks, one per GPU of the spec (train.gpus): a
 * chunk is what one rank computes. Every sum over images is taken chunk by chunk, and the
 * chunks' sums are added in chunk order, as the ranks' sum (lwl_comm, rank order) adds
 * them: so one process computes the bits that its ranks compute. */

/* Totals (groups, c, 2) of the per-image partials part (n, c, 2): each chunk's sum in
 * image order into ks (chunks, c, 2) when not NULL, the chunks of a group added in
 * order, then over the ranks with norm sync. */
static void ops_totals(const double *part, double *tot, double *ks, int n, int c, int groups,
                       int chunks)
{
    int cs = n / chunks, cpg = chunks / groups;
    for (int g = 0; g < groups; g++)
        for (int ch = 0; ch < c; ch++) {
            double t0 = 0, t1 = 0;
            for (int k = g * cpg; k < (g + 1) * cpg; k++) {
                double s0 = 0, s1 = 0;
                for (int i = k * cs; i < (k + 1) * cs; i++) {
                    s0 += part[((size_t)i * c + ch) * 2];
                    s1 += part[((size_t)i * c + ch) * 2 + 1];
                }
                if (ks) {
                    ks[((size_t)k * c + ch) * 2] = s0;
                    ks[((size_t)k * c + ch) * 2 + 1] = s1;
                }
                t0 += s0;
                t1 += s1;
            }
            tot[((size_t)g * c + ch) * 2] = t0;
            tot[((size_t)g * c + ch) * 2 + 1] = t1;
        }
    ops_sync_sums(tot, (size_t)groups * c * 2);
}

/* Room for reductions over `images` images (or rows) in chunks and `groups` groups of
 * `channels` channels; 0 or -1 (out of memory, message in lwl_nn_error's place: stderr). */
static int cpu_ops_init(int images, int groups, int channels)
{
    size_t n = (2 * (size_t)images + (size_t)groups) * (size_t)channels * 2;
    if (n <= ops_scratch_n)
        return 0;
    double *p = realloc(ops_scratch, n * sizeof *p);
    if (!p) {
        fprintf(stderr, "cpu_ops: cannot allocate %zu bytes of scratch\n", n * sizeof *p);
        return -1;
    }
    ops_scratch = p;
    ops_scratch_n = n;
    return 0;
}

static void cpu_ops_free(void)
{
    free(ops_scratch);
    ops_scratch = NULL;
    ops_scratch_n = 0;
}

/* ---- batch norm over (n, c, hw) activations in `groups` groups of n/groups images.
 * Layout: channel block blk (lwl_nn_act_block(), 1 for plain NCHW); element (i, ch, j) is at
 * ((i * (c / blk) + ch / blk) * hw + j) * blk + ch % blk. Work runs as one task per (image,
 * channel block) on lwl_parallel_for; the sums of a task are in double and are added over
 * the images of a group in image order, so the bits do not depend on the thread count. */

typedef struct bn_args {
    const float *x, *dy, *relu_out, *res;
    float *y;                       /* y, or dx in backward */
    int n, c, hw, blk, per, relu;
    const float *gamma, *beta;
    const float *mean, *invstd;     /* (groups, c): batch or running statistics */
    const float *run_var;           /* eval: invstd from the running variance instead */
    double *part;                   /* (n, c, 2) per-image sums, then (groups, c, 2) totals */
    double inv_m;
} bn_args;

/* The start of (image i, channel block cb) and its first channel. */
static inline size_t bn_at(const bn_args *a, int t, int *ch0)
{
    int nb = a->c / a->blk, i = t / nb, cb = t % nb;
    *ch0 = cb * a->blk;
    return ((size_t)i * nb + cb) * a->hw * a->blk;
}

/* Sum and sum of squares of each channel of one task; blk is a literal where it is inlined. */
static inline __attribute__((always_inline)) void bn_sums_blk(const float *p, int hw, int blk,
                                                             double *out)
{
    double s[16] = { 0 }, ss[16] = { 0 };
    for (int j = 0; j < hw; j++)
        for (int k = 0; k < blk; k++) {
            double v = p[(size_t)j * blk + k];
            s[k] += v;
            ss[k] += v * v;
        }
    for (int k = 0; k < blk; k++) {
        out[2 * k] = s[k];
        out[2 * k + 1] = ss[k];
    }
}

static void bn_sums_task(void *ctx, int t)
{
    const bn_args *a = ctx;
    int ch0, i = t / (a->c / a->blk);
    const float *p = a->x + bn_at(a, t, &ch0);
    double *out = a->part + ((size_t)i * a->c + ch0) * 2;
    if (a->blk == 16)
        bn_sums_blk(p, a->hw, 16, out);
    else if (a->blk == 8)
        bn_sums_blk(p, a->hw, 8, out);
    else
        bn_sums_blk(p, a->hw, 1, out);
}

/* y = bn(x) (+ res, then ReLU) (ReLU) over one task, with the statistics of its group. */
static inline __attribute__((always_inline)) void bn_apply_blk(const bn_args *a, int t,
                                                              int blk)
{
    int ch0, g = t / (a->c / blk) / a->per;
    size_t o = bn_at(a, t, &ch0);
    float mu[16], is[16], ga[16], be[16];
    for (int k = 0; k < blk; k++) {
        int ch = ch0 + k;
        mu[k] = a->mean[g * a->c + ch];
        is[k] = a->run_var ? k_invstd(a->run_var[g * a->c + ch]) : a->invstd[g * a->c + ch];
        ga[k] = a->gamma[ch];
        be[k] = a->beta[ch];
    }
    const float *restrict x = a->x + o;
    float *restrict y = a->y + o;
    size_t n = (size_t)a->hw * blk;
    if (a->res) {
        const float *restrict r = a->res + o;
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                y[j + k] = k_add_relu(k_bn(x[j + k], mu[k], is[k], ga[k], be[k]), r[j + k]);
    } else if (a->relu) {
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                y[j + k] = k_relu(k_bn(x[j + k], mu[k], is[k], ga[k], be[k]));
    } else {
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                y[j + k] = k_bn(x[j + k], mu[k], is[k], ga[k], be[k]);
    }
}

static void bn_apply_task(void *ctx, int t)
{
    const bn_args *a = ctx;
    if (a->blk == 16)
        bn_apply_blk(a, t, 16);
    else if (a->blk == 8)
        bn_apply_blk(a, t, 8);
    else
        bn_apply_blk(a, t, 1);
}

/* Train mode: statistics of each group, saved for backward (mean, invstd: (groups, c));
 * running statistics (groups, c) updated. y = relu(bn(x) + res) when res is not NULL (the
 * end of a residual block), else bn(x), with a ReLU when relu is set. */
static void bn_train(const float *x, float *y, int n, int c, int hw, int groups, int chunks,
                     int blk, const float *gamma, const float *beta, float *mean,
                     float *invstd, float *run_mean, float *run_var, int relu,
                     const float *res)
{
    int per = n / groups, tasks = n * (c / blk);
    bn_args a = { .x = x, .res = res, .y = y, .c = c, .hw = hw, .blk = blk, .per = per,
                  .relu = relu, .gamma = gamma, .beta = beta, .mean = mean, .invstd = invstd,
                  .part = ops_scratch };
    lwl_parallel_for(tasks, bn_sums_task, &a);
    double m = (double)per * hw * ops_sync_world, *tot = a.part + (size_t)n * c * 2;
    ops_totals(a.part, tot, NULL, n, c, groups, chunks);
    for (int g = 0; g < groups; g++)
        for (int ch = 0; ch < c; ch++) {
            double s = tot[((size_t)g * c + ch) * 2], ss = tot[((size_t)g * c + ch) * 2 + 1];
            double mu = s / m, var = ss / m - mu * mu;
            var = var > 0 ? var : 0;
            mean[g * c + ch] = (float)mu;
            invstd[g * c + ch] = k_invstd((float)var);
            run_mean[g * c + ch] = k_running(run_mean[g * c + ch], (float)mu);
            run_var[g * c + ch] = k_running(run_var[g * c + ch],
                                            (float)(var * m / (m > 1 ? m - 1 : 1)));
        }
    lwl_parallel_for(tasks, bn_apply_task, &a);
}

/* Eval mode with the running statistics of each group; res and relu as bn_train. */
static void bn_eval(const float *x, float *y, int n, int c, int hw, int groups, int blk,
                    const float *gamma, const float *beta, const float *run_mean,
                    const float *run_var, int relu, const float *res)
{
    bn_args a = { .x = x, .res = res, .y = y, .c = c, .hw = hw, .blk = blk,
                  .per = n / groups, .relu = relu, .gamma = gamma, .beta = beta,
                  .mean = run_mean, .run_var = run_var };
    lwl_parallel_for(n * (c / blk), bn_apply_task, &a);
}

/* Backward sums of one task: of d and of d * xhat, d = dy through the ReLU when given. */
static inline __attribute__((always_inline)) void bn_bsums_blk(const bn_args *a, int t,
                                                              int blk)
{
    int ch0, i = t / (a->c / blk), g = i / a->per;
    size_t o = bn_at(a, t, &ch0);
    float mu[16], is[16];
    double s1[16] = { 0 }, s2[16] = { 0 };
    for (int k = 0; k < blk; k++) {
        mu[k] = a->mean[g * a->c + ch0 + k];
        is[k] = a->invstd[g * a->c + ch0 + k];
    }
    const float *restrict x = a->x + o, *restrict dy = a->dy + o;
    const float *restrict ro = a->relu_out ? a->relu_out + o : NULL;
    size_t n = (size_t)a->hw * blk;
    if (ro)     /* the test outside the loops: a conditional load does not vectorise */
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++) {
                float d = k_relu_bwd(dy[j + k], ro[j + k]);
                s1[k] += d;
                s2[k] += (double)d * ((x[j + k] - mu[k]) * is[k]);
            }
    else
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++) {
                float d = dy[j + k];
                s1[k] += d;
                s2[k] += (double)d * ((x[j + k] - mu[k]) * is[k]);
            }
    double *out = a->part + ((size_t)i * a->c + ch0) * 2;
    for (int k = 0; k < blk; k++) {
        out[2 * k] = s1[k];
        out[2 * k + 1] = s2[k];
    }
}

static void bn_bsums_task(void *ctx, int t)
{
    const bn_args *a = ctx;
    if (a->blk == 16)
        bn_bsums_blk(a, t, 16);
    else if (a->blk == 8)
        bn_bsums_blk(a, t, 8);
    else
        bn_bsums_blk(a, t, 1);
}

/* dx of one task from the group totals (after the per-image sums in part). */
static inline __attribute__((always_inline)) void bn_bapply_blk(const bn_args *a, int t,
                                                               int blk)
{
    int ch0, i = t / (a->c / blk), g = i / a->per;
    size_t o = bn_at(a, t, &ch0);
    const double *tot = a->part + (size_t)a->n * a->c * 2;     /* after the per-image sums */
    float mu[16], is[16], ga[16], s1[16], s2[16];
    for (int k = 0; k < blk; k++) {
        int ch = ch0 + k;
        mu[k] = a->mean[g * a->c + ch];
        is[k] = a->invstd[g * a->c + ch];
        ga[k] = a->gamma[ch];
        s1[k] = (float)tot[((size_t)g * a->c + ch) * 2];
        s2[k] = (float)tot[((size_t)g * a->c + ch) * 2 + 1];
    }
    /* dx may be dy itself: each element is read before it is written, in the same place */
    const float *x = a->x + o, *dy = a->dy + o, *ro = a->relu_out ? a->relu_out + o : NULL;
    float *dx = a->y + o, inv_m = (float)a->inv_m;
    size_t n = (size_t)a->hw * blk;
    if (ro)
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                dx[j + k] = k_bn_bwd(k_relu_bwd(dy[j + k], ro[j + k]),
                                     (x[j + k] - mu[k]) * is[k], ga[k], is[k], s1[k], s2[k],
                                     inv_m);
    else
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                dx[j + k] = k_bn_bwd(dy[j + k], (x[j + k] - mu[k]) * is[k], ga[k], is[k],
                                     s1[k], s2[k], inv_m);
}
static void bn_bapply_task(void *ctx, int t)
{
    const bn_args *a = ctx;
    if (a->blk == 16)
        bn_bapply_blk(a, t, 16);
    else if (a->blk == 8)
        bn_bapply_blk(a, t, 8);
    else
        bn_bapply_blk(a, t, 1);
}

/* Backward of train-mode BN: dy (n, c, hw) → dx; dgamma, dbeta accumulate (chunk k's
 * at + k gstride). When relu_out is not NULL, dy first goes through the ReLU that
 * produced it. */
static void bn_train_bwd(const float *x, const float *dy_in, const float *relu_out, float *dx,
                         int n, int c, int hw, int groups, int chunks, int blk,
                         const float *gamma, const float *mean, const float *invstd,
                         float *dgamma, float *dbeta, size_t gstride)
{
    int per = n / groups, tasks = n * (c / blk);
    bn_args a = { .x = x, .dy = dy_in, .relu_out = relu_out, .y = dx, .n = n, .c = c,
                  .hw = hw, .blk = blk, .per = per, .gamma = gamma, .mean = mean,
                  .invstd = invstd, .part = ops_scratch,
                  .inv_m = 1.0f / ((float)per * hw * ops_sync_world) };
    lwl_parallel_for(tasks, bn_bsums_task, &a);
    double *tot = a.part + (size_t)n * c * 2, *ks = tot + (size_t)groups * c * 2;
    ops_totals(a.part, tot, ks, n, c, groups, chunks);
    for (int k = 0; k < chunks; k++)
        for (int ch = 0; ch < c; ch++) {
            dgamma[(size_t)k * gstride + ch] += (float)ks[((size_t)k * c + ch) * 2 + 1];
            dbeta[(size_t)k * gstride + ch] += (float)ks[((size_t)k * c + ch) * 2];
        }
    lwl_parallel_for(tasks, bn_bapply_task, &a);
}

/* dx of one task of eval-mode BN: dy (through the ReLU when relu_out is given) times the
 * channel's gamma * invstd of the running variance. */
static inline __attribute__((always_inline)) void bn_ebwd_blk(const bn_args *a, int t, int blk)
{
    int ch0;
    size_t o = bn_at(a, t, &ch0);
    float is[16], ga[16];
    for (int k = 0; k < blk; k++) {
        is[k] = k_invstd(a->run_var[ch0 + k]);
        ga[k] = a->gamma[ch0 + k];
    }
    /* dx may be dy itself: each element is read before it is written, in the same place */
    const float *dy = a->dy + o, *ro = a->relu_out ? a->relu_out + o : NULL;
    float *dx = a->y + o;
    size_t n = (size_t)a->hw * blk;
    if (ro)
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                dx[j + k] = k_bn_eval_bwd(k_relu_bwd(dy[j + k], ro[j + k]), is[k], ga[k]);
    else
        for (size_t j = 0; j < n; j += blk)
            for (int k = 0; k < blk; k++)
                dx[j + k] = k_bn_eval_bwd(dy[j + k], is[k], ga[k]);
}

static void bn_ebwd_task(void *ctx, int t)
{
    const bn_args *a = ctx;
    if (a->blk == 16)
        bn_ebwd_blk(a, t, 16);
    else if (a->blk == 8)
        bn_ebwd_blk(a, t, 8);
    else
        bn_ebwd_blk(a, t, 1);
}

/* Backward of eval-mode BN with the running variance run_var (c) for every image (the
 * forward's bn_eval with one group): dy (n, c, hw) → dx, through the ReLU that produced
 * relu_out first when it is not NULL. Only the input's gradient (Grad-CAM's backward). */
static void bn_eval_bwd(const float *dy, const float *relu_out, float *dx, int n, int c,
                        int hw, int blk, const float *gamma, const float *run_var)
{
    bn_args a = { .dy = dy, .relu_out = relu_out, .y = dx, .n = n, .c = c, .hw = hw,
                  .blk = blk, .gamma = gamma, .run_var = run_var };
    lwl_parallel_for(n * (c / blk), bn_ebwd_task, &a);
}

/* ---- element-wise passes over whole activations, in chunks on the threads */

enum { EW_CHUNK = 16384, EW_ADD_RELU, EW_RELU_BWD, EW_ADD, EW_SCALE };

typedef struct ew_args {
    const float *a, *b;
    float *y;
    size_t n;
    int op;
    float s;
} ew_args;

static void ew_task(void *ctx, int t)
{
    const ew_args *e = ctx;
    size_t lo = (size_t)t * EW_CHUNK, hi = lo + EW_CHUNK < e->n ? lo + EW_CHUNK : e->n;
    const float *a = e->a, *b = e->b;
    float *y = e->y;
    if (e->op == EW_ADD_RELU)
        for (size_t i = lo; i < hi; i++)
            y[i] = k_add_relu(a[i], b[i]);
    else if (e->op == EW_RELU_BWD)
        for (size_t i = lo; i < hi; i++)
            y[i] = k_relu_bwd(a[i], b[i]);
    else if (e->op == EW_SCALE)
        for (size_t i = lo; i < hi; i++)
            y[i] = a[i] * e->s;
    else
        for (size_t i = lo; i < hi; i++)
            y[i] = a[i] + b[i];
}

static void ew_run(const float *a, const float *b, float *y, size_t n, int op)
{
    ew_args e = { a, b, y, n, op, 0.0f };
    lwl_parallel_for((int)((n + EW_CHUNK - 1) / EW_CHUNK), ew_task, &e);
}

static void add_relu(const float *a, const float *b, float *y, size_t n)
{
    ew_run(a, b, y, n, EW_ADD_RELU);
}

/* dy through relu(a + b) given its output y, in place. */
static void relu_bwd_inplace(float *dy, const float *y, size_t n)
{
    ew_run(dy, y, dy, n, EW_RELU_BWD);
}

static void add_into(float *y, const float *x, size_t n)
{
    ew_run(y, x, y, n, EW_ADD);
}

/* y *= s over n elements. */
static void scale_inplace(float *y, size_t n, float s)
{
    ew_args e = { y, NULL, y, n, EW_SCALE, s };
    lwl_parallel_for((int)((n + EW_CHUNK - 1) / EW_CHUNK), ew_task, &e);
}

/* ---- the optimiser and the moving average, over whole tensors */

typedef struct upd_args {
    float *w, *buf;
    const float *g;
    size_t n, chunk;
    float wd, local, lr, momentum, m;
    int first;
    double *part;
} upd_args;

/* Sums of squares of one chunk of w and g in 8 fixed lanes (vectorised, fixed order). */
static void sq_task(void *ctx, int t)
{
    const upd_args *u = ctx;
    size_t lo = (size_t)t * u->chunk, hi = lo + u->chunk < u->n ? lo + u->chunk : u->n;
    double sw[8] = { 0 }, sg[8] = { 0 };
    size_t i = lo;
    for (; i + 8 <= hi; i += 8)
        for (int k = 0; k < 8; k++) {
            sw[k] += (double)u->w[i + k] * u->w[i + k];
            sg[k] += (double)u->g[i + k] * u->g[i + k];
        }
    for (int k = 0; i < hi; i++, k++) {
        sw[k] += (double)u->w[i] * u->w[i];
        sg[k] += (double)u->g[i] * u->g[i];
    }
    double a = 0, b = 0;
    for (int k = 0; k < 8; k++) {
        a += sw[k];
        b += sg[k];
    }
    u->part[2 * t] = a;
    u->part[2 * t + 1] = b;
}

/* Chunks of an n-element tensor: at most one per two doubles of scratch. */
static int upd_chunks(size_t n, size_t *chunk)
{
    size_t most = ops_scratch_n / 2, k = (n + EW_CHUNK - 1) / EW_CHUNK;
    k = k < most ? k : most;
    k = k ? k : 1;
    *chunk = (n + k - 1) / k;
    return (int)((n + *chunk - 1) / *chunk);
}

/* The L2 norms of w and g (n elements each), summed in double chunk by chunk. */
static void sq_norms(const float *w, const float *g, size_t n, double *nw, double *ng)
{
    upd_args u = { .w = (float *)w, .g = g, .n = n, .part = ops_scratch };
    int k = upd_chunks(n, &u.chunk);
    lwl_parallel_for(k, sq_task, &u);
    double a = 0, b = 0;
    for (int t = 0; t < k; t++) {
        a += u.part[2 * t];
        b += u.part[2 * t + 1];
    }
    *nw = sqrt(a);
    *ng = sqrt(b);
}

static void lars_task(void *ctx, int t)
{
    const upd_args *u = ctx;
    size_t lo = (size_t)t * u->chunk, hi = lo + u->chunk < u->n ? lo + u->chunk : u->n;
    float *restrict w = u->w, *restrict buf = u->buf;
    const float *restrict g = u->g;
    if (u->first)     /* two loops: the flag is a constant inside each */
        for (size_t i = lo; i < hi; i++)
            k_lars(&w[i], &buf[i], g[i], u->wd, u->local, u->lr, u->momentum, 1);
    else
        for (size_t i = lo; i < hi; i++)
            k_lars(&w[i], &buf[i], g[i], u->wd, u->local, u->lr, u->momentum, 0);
}

/* k_lars over the n elements of one tensor. */
static void lars_apply(float *w, float *buf, const float *g, size_t n, float wd, float local,
                       float lr, float momentum, int first)
{
    upd_args u = { .w = w, .buf = buf, .g = g, .n = n, .wd = wd, .local = local, .lr = lr,
                   .momentum = momentum, .first = first };
    int k = upd_chunks(n, &u.chunk);
    lwl_parallel_for(k, lars_task, &u);
}

static void ema_task(void *ctx, int t)
{
    const upd_args *u = ctx;
    size_t lo = (size_t)t * u->chunk, hi = lo + u->chunk < u->n ? lo + u->chunk : u->n;
    float *restrict tw = u->w;
    const float *restrict o = u->g;
    for (size_t i = lo; i < hi; i++)
        tw[i] = k_ema(tw[i], o[i], u->m);
}

/* t = m t + (1 - m) o over n elements. */
static void ema_apply(float *t, const float *o, size_t n, float m)
{
    upd_args u = { .w = t, .g = o, .n = n, .m = m };
    int k = upd_chunks(n, &u.chunk);
    lwl_parallel_for(k, ema_task, &u);
}

/* ---- batch norm over rows: (rows, c) in groups of rows/groups rows (the head) */

/* Chunk-ordered column sums over the rows of group g of x (rows, c) into s (c): each
 * chunk's rows in order (into ks, c), the group's chunks added in order; of x, or of
 * (x - mean)^2 when mean is given. */
static void bn1d_sums(const float *x, int c, int g, int cs, int cpg, const double *mean,
                      double *s, double *ks)
{
    memset(s, 0, (size_t)c * sizeof *s);
    for (int k = g * cpg; k < (g + 1) * cpg; k++) {
        memset(ks, 0, (size_t)c * sizeof *ks);
        for (int r = k * cs; r < (k + 1) * cs; r++)
            for (int ch = 0; ch < c; ch++) {
                double v = x[(size_t)r * c + ch];
                if (mean) {
                    double d = v - mean[ch];
                    ks[ch] += d * d;
                } else {
                    ks[ch] += v;
                }
            }
        for (int ch = 0; ch < c; ch++)
            s[ch] += ks[ch];
    }
}

static void bn1d_train(const float *x, float *y, int rows, int c, int groups, int chunks,
                       const float *gamma, const float *beta, float *mean, float *invstd,
                       float *run_mean, float *run_var, int relu, int update_running)
{
    int per = rows / groups, cs = rows / chunks, cpg = chunks / groups;
    double *mu = ops_scratch, *ss = mu + c, *ks = ss + c, m = (double)per * ops_sync_world;
    for (int g = 0; g < groups; g++) {
        bn1d_sums(x, c, g, cs, cpg, NULL, mu, ks);
        ops_sync_sums(mu, (size_t)c);
        for (int ch = 0; ch < c; ch++)
            mu[ch] /= m;
        bn1d_sums(x, c, g, cs, cpg, mu, ss, ks);
        ops_sync_sums(ss, (size_t)c);
        for (int ch = 0; ch < c; ch++) {
            mean[g * c + ch] = (float)mu[ch];
            invstd[g * c + ch] = k_invstd((float)(ss[ch] / m));
            if (update_running) {
                run_mean[g * c + ch] = k_running(run_mean[g * c + ch], (float)mu[ch]);
                run_var[g * c + ch] = k_running(run_var[g * c + ch],
                                                (float)(ss[ch] / (m > 1 ? m - 1 : 1)));
            }
        }
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                float v = k_bn(x[(size_t)r * c + ch], mean[g * c + ch], invstd[g * c + ch],
                               gamma[ch], beta[ch]);
                y[(size_t)r * c + ch] = relu ? k_relu(v) : v;
            }
    }
}

static void bn1d_eval(const float *x, float *y, int rows, int c, int groups,
                      const float *gamma, const float *beta, const float *run_mean,
                      const float *run_var, int relu)
{
    int per = rows / groups;
    for (int r = 0; r < rows; r++) {
        int g = r / per;
        for (int ch = 0; ch < c; ch++) {
            float v = k_bn(x[(size_t)r * c + ch], run_mean[g * c + ch],
                           k_invstd(run_var[g * c + ch]), gamma[ch], beta[ch]);
            y[(size_t)r * c + ch] = relu ? k_relu(v) : v;
        }
    }
}

/* Backward of bn1d_train + ReLU (relu_out: its output) into dx; dgamma, dbeta accumulate
 * (chunk k's at + k gstride). */
static void bn1d_train_bwd(const float *x, const float *dy_in, const float *relu_out,
                           float *dx, int rows, int c, int groups, int chunks,
                           const float *gamma, const float *mean, const float *invstd,
                           float *dgamma, float *dbeta, size_t gstride)
{
    int per = rows / groups, cs = rows / chunks, cpg = chunks / groups;
    double *s = ops_scratch, *ks = s + 2 * (size_t)c;
    for (int g = 0; g < groups; g++) {
        memset(s, 0, (size_t)c * 2 * sizeof *s);
        for (int k = g * cpg; k < (g + 1) * cpg; k++) {
            memset(ks, 0, (size_t)c * 2 * sizeof *ks);
            for (int r = k * cs; r < (k + 1) * cs; r++)
                for (int ch = 0; ch < c; ch++) {
                    size_t o = (size_t)r * c + ch;
                    float d = k_relu_bwd(dy_in[o], relu_out[o]);
                    ks[ch] += d;
                    ks[c + ch] += (double)d * ((x[o] - mean[g * c + ch]) * invstd[g * c + ch]);
                }
            for (int ch = 0; ch < c; ch++) {
                dgamma[(size_t)k * gstride + ch] += (float)ks[c + ch];
                dbeta[(size_t)k * gstride + ch] += (float)ks[ch];
                s[ch] += ks[ch];
                s[c + ch] += ks[c + ch];
            }
        }
        ops_sync_sums(s, (size_t)c * 2);
        float inv_m = 1.0f / ((float)per * ops_sync_world);
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                size_t o = (size_t)r * c + ch;
                float is = invstd[g * c + ch];
                float d = k_relu_bwd(dy_in[o], relu_out[o]);
                dx[o] = k_bn_bwd(d, (x[o] - mean[g * c + ch]) * is, gamma[ch], is,
                                 (float)s[ch], (float)s[c + ch], inv_m);
            }
    }
}

/* ---- the head's MLP: y = W3 relu(bn(W0 x)) over rows of (rows, in) */

typedef struct mlp_save {
    float *h1, *h2;         /* (rows, hidden): before BN, after BN + ReLU */
    float *mean, *invstd;   /* (groups, hidden) */
} mlp_save;

/* The GEMMs run chunk by chunk (rows / chunks rows each, as a rank would); weight
 * gradients of chunk k go to + k gstride. */
static int mlp_fwd(const float *x, float *y, int rows, int in, int hidden, int out,
                   int groups, int chunks, const float *w0, const float *gamma,
                   const float *beta, const float *w3, float *run_mean, float *run_var,
                   mlp_save *sv, int train, int update_running)
{
    int cs = rows / chunks;
    for (int k = 0; k < chunks; k++)
        if (lwl_gemm(0, 1, cs, hidden, in, 1.0f, x + (size_t)k * cs * in, in, w0, in, 0.0f,
                     sv->h1 + (size_t)k * cs * hidden, hidden))
            return -1;
    if (train)
        bn1d_train(sv->h1, sv->h2, rows, hidden, groups, chunks, gamma, beta, sv->mean,
                   sv->invstd, run_mean, run_var, 1, update_running);
    else
        bn1d_eval(sv->h1, sv->h2, rows, hidden, groups, gamma, beta, run_mean, run_var, 1);
    for (int k = 0; k < chunks; k++)
        if (lwl_gemm(0, 1, cs, out, hidden, 1.0f, sv->h2 + (size_t)k * cs * hidden, hidden, w3,
                     hidden, 0.0f, y + (size_t)k * cs * out, out))
            return -1;
    return 0;
}

/* Backward: dy (rows, out) → dx (rows, in) when dx is not NULL; weight grads
 * accumulate. tmp holds (rows, hidden). */
static int mlp_bwd(const float *x, const float *dy, float *dx, int rows, int in, int hidden,
                   int out, int groups, int chunks, const float *w0, const float *gamma,
                   const float *w3, const mlp_save *sv, float *dw0, float *dgamma,
                   float *dbeta, float *dw3, size_t gstride, float *tmp)
{
    int cs = rows / chunks;
    for (int k = 0; k < chunks; k++) {
        const float *dyk = dy + (size_t)k * cs * out;
        if (lwl_gemm(1, 0, out, hidden, cs, 1.0f, dyk, out, sv->h2 + (size_t)k * cs * hidden,
                     hidden, 1.0f, dw3 + (size_t)k * gstride, hidden) ||
            lwl_gemm(0, 0, cs, hidden, out, 1.0f, dyk, out, w3, hidden, 0.0f,
                     tmp + (size_t)k * cs * hidden, hidden))
            return -1;
    }
    bn1d_train_bwd(sv->h1, tmp, sv->h2, tmp, rows, hidden, groups, chunks, gamma, sv->mean,
                   sv->invstd, dgamma, dbeta, gstride);
    for (int k = 0; k < chunks; k++) {
        const float *tk = tmp + (size_t)k * cs * hidden;
        if (lwl_gemm(1, 0, hidden, in, cs, 1.0f, tk, hidden, x + (size_t)k * cs * in, in, 1.0f,
                     dw0 + (size_t)k * gstride, in))
            return -1;
        if (dx && lwl_gemm(0, 0, cs, in, hidden, 1.0f, tk, hidden, w0, in, 0.0f,
                           dx + (size_t)k * cs * in, in))
            return -1;
    }
    return 0;
}

/* ---- the LEWEL head's data movement */

/* u rows (n (1 + p), c): per image the spatial mean, then each position. With
 * lewel 0 only the mean rows (n, c). x is (n, c, p). */
static void head_rows(const float *x, float *u, int n, int c, int p, int lewel)
{
    int l = lewel ? 1 + p : 1;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            const float *xp = x + ((size_t)b * c + ch) * p;
            double s = 0;
            for (int j = 0; j < p; j++)
                s += xp[j];
            u[((size_t)b * l) * c + ch] = (float)(s / p);
            if (lewel)
                for (int j = 0; j < p; j++)
                    u[((size_t)b * l + 1 + j) * c + ch] = xp[j];
        }
}

/* Backward of head_rows: du → dx (n, c, p), added to dx. */
static void head_rows_bwd(const float *du, float *dx, int n, int c, int p, int lewel)
{
    int l = lewel ? 1 + p : 1;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            float dg = du[((size_t)b * l) * c + ch] / p;
            float *d = dx + ((size_t)b * c + ch) * p;
            for (int j = 0; j < p; j++)
                d[j] += dg + (lewel ? du[((size_t)b * l + 1 + j) * c + ch] : 0.0f);
        }
}

/* Alignment maps from z rows (n (1 + p), d): per position L2-normalise over d,
 * then softmax over the p positions of each channel. a is (n, d, p). */
static void head_maps(const float *z, float *a, int n, int d, int p)
{
    for (int b = 0; b < n; b++) {
        const float *zb = z + (size_t)b * (1 + p) * d + d;     /* skip the global row */
        float *ab = a + (size_t)b * d * p;
        for (int j = 0; j < p; j++) {
            double s = 0;
            for (int k = 0; k < d; k++)
                s += (double)zb[(size_t)j * d + k] * zb[(size_t)j * d + k];
            float inv = 1.0f / fmaxf(sqrtf((float)s), LWL_NORM_EPS);
            for (int k = 0; k < d; k++)
                ab[(size_t)k * p + j] = zb[(size_t)j * d + k] * inv;
        }
        for (int k = 0; k < d; k++) {
            float *r = ab + (size_t)k * p, mx = r[0];
            for (int j = 1; j < p; j++)
                mx = fmaxf(mx, r[j]);
            double s = 0;
            for (int j = 0; j < p; j++)
                s += (r[j] = expf(r[j] - mx));
            for (int j = 0; j < p; j++)
                r[j] = (float)(r[j] / s);
        }
    }
}

/* Backward of head_maps: da (n, d, p) → the position rows of dz (n (1 + p), d),
 * which must hold the global rows already (they are left as they are). */
static void head_maps_bwd(const float *z, const float *a, const float *da, float *dz, int n,
                          int d, int p)
{
    for (int b = 0; b < n; b++) {
        const float *zb = z + (size_t)b * (1 + p) * d + d;
        const float *ab = a + (size_t)b * d * p, *dab = da + (size_t)b * d * p;
        float *dzb = dz + (size_t)b * (1 + p) * d + d;
        /* softmax backward into dzb as (p, d): dl = a (da - sum(da a)) */
        for (int k = 0; k < d; k++) {
            double s = 0;
            for (int j = 0; j < p; j++)
                s += (double)dab[(size_t)k * p + j] * ab[(size_t)k * p + j];
            for (int j = 0; j < p; j++)
                dzb[(size_t)j * d + k] = ab[(size_t)k * p + j] *
                                         (dab[(size_t)k * p + j] - (float)s);
        }
        /* L2-normalisation backward per position: (dy - y (y . dy)) / |z| */
        for (int j = 0; j < p; j++) {
            const float *zr = zb + (size_t)j * d;
            float *dr = dzb + (size_t)j * d;
            double s = 0, dot = 0;
            for (int k = 0; k < d; k++)
                s += (double)zr[k] * zr[k];
            float nrm = sqrtf((float)s);
            if (nrm <= LWL_NORM_EPS) {
                for (int k = 0; k < d; k++)
                    dr[k] /= LWL_NORM_EPS;
                continue;
            }
            for (int k = 0; k < d; k++)
                dot += (double)zr[k] / nrm * dr[k];
            for (int k = 0; k < d; k++)
                dr[k] = (dr[k] - zr[k] / nrm * (float)dot) / nrm;
        }
    }
}

/* Aligned features o rows (n k, c) from x (n, c, p) and maps a (n, d, p):
 * head h's maps [h k, h k + k) weight channels [h cg, h cg + cg). */
static int head_align(const float *x, const float *a, float *o, int n, int c, int p, int d,
                      int heads)
{
    int k = d / heads, cg = c / heads;
    for (int b = 0; b < n; b++)
        for (int h = 0; h < heads; h++)
            if (lwl_gemm(0, 1, k, cg, p, 1.0f, a + ((size_t)b * d + (size_t)h * k) * p, p,
                         x + ((size_t)b * c + (size_t)h * cg) * p, p, 0.0f,
                         o + (size_t)b * k * c + (size_t)h * cg, c))
                return -1;
    return 0;
}

/* Backward of head_align: do (n k, c) → da (n, d, p) (overwritten) and dx (n, c, p)
 * (accumulated). */
static int head_align_bwd(const float *x, const float *a, const float *dout, float *da,
                          float *dx, int n, int c, int p, int d, int heads)
{
    int k = d / heads, cg = c / heads;
    for (int b = 0; b < n; b++)
        for (int h = 0; h < heads; h++) {
            const float *dob = dout + (size_t)b * k * c + (size_t)h * cg;
            const float *xh = x + ((size_t)b * c + (size_t)h * cg) * p;
            const float *ah = a + ((size_t)b * d + (size_t)h * k) * p;
            if (lwl_gemm(0, 0, k, p, cg, 1.0f, dob, c, xh, p, 0.0f,
                         da + ((size_t)b * d + (size_t)h * k) * p, p))
                return -1;
            if (lwl_gemm(1, 0, cg, p, k, 1.0f, dob, c, ah, p, 1.0f,
                         dx + ((size_t)b * c + (size_t)h * cg) * p, p))
                return -1;
        }
    return 0;
}

/* ---- the loss: mean over rows of 2 - 2 cos(q, t), times scale; dq accumulates */
static double cos_loss(const float *q, const float *t, float *dq, int rows, int d, float scale)
{
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const float *qr = q + (size_t)r * d, *tr = t + (size_t)r * d;
        double dot = 0, nq = 0, nt = 0;
        for (int k = 0; k < d; k++) {
            dot += (double)qr[k] * tr[k];
            nq += (double)qr[k] * qr[k];
            nt += (double)tr[k] * tr[k];
        }
        float fd = (float)dot, fq = sqrtf((float)nq), ft = sqrtf((float)nt);
        total += k_cos_loss(fd, fq, ft);
        for (int k = 0; k < d; k++)
            dq[(size_t)r * d + k] += k_cos_loss_bwd(qr[k], tr[k], fd, fq, ft, scale / rows);
    }
    return scale * total / rows;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
