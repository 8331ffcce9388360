/* The bodies of the GPU's kernels (the step's and the kNN's), one call per thread index t:
 * written once, in the C-like C++ that nvcc compiles into kernels (through gpu_ops.cuh) and
 * that the CPU tests run for every t in turn (tests/emu/, tests/gpu/kernels.cu's host side),
 * so every kernel has a CPU reference on the machines without a GPU.
 *
 * Activations are NHWC: element (i, p, ch) of n images, hw positions, c channels is at
 * (i hw + p) c + ch. They are stored as act_t: float, bf16_t or f16_t (16-bit patterns,
 * round to nearest even), chosen by the includer (LWL_ACT_BF16, LWL_ACT_F16 or neither)
 * and read and written through ld / st; the head's rows are float. Arithmetic is fp32,
 * every reduction is in double and in a fixed order (the same bits every run). The
 * per-element arithmetic is kernels.h's, shared with the CPU step. */
#ifndef LWL_GPU_KERNELS_H
#define LWL_GPU_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

/* ---- storage of activations */

/* fp32 <-> bf16 bit patterns, round to nearest even (what __float2bfloat16_rn does). */
LWL_HD float lwl_bf16_ld(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

LWL_HD uint16_t lwl_bf16_st(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        return (uint16_t)((u >> 16) | 0x40u);     /* NaN stays a (quiet) NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* fp32 <-> IEEE binary16 bit patterns, round to nearest even, with subnormals. */
LWL_HD float lwl_f16_ld(uint16_t h)
{
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));
#else
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, u;
    if (e == 0x1F) {
        u = s | 0x7F800000u | (m << 13);
    } else if (e) {
        u = s | ((e + 112) << 23) | (m << 13);
    } else if (m) {                     /* subnormal: normalise */
        int k = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            k++;
        }
        u = s | ((uint32_t)(113 - k) << 23) | ((m & 0x3FFu) << 13);
    } else {
        u = s;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

LWL_HD uint16_t lwl_f16_st(float f)
{
#if defined(__CUDA_ARCH__)
    return __half_as_ushort(__float2half_rn(f));
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t s = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u)               /* inf, NaN */
        return (uint16_t)(s | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0));
    if (a >= 0x477FF000u)               /* rounds to at least 65520: inf */
        return (uint16_t)(s | 0x7C00u);
    if (a < 0x38800000u) {              /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u)            /* below half the smallest subnormal */
            return (uint16_t)s;
        uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);          /* 14 + 113 - e - 1 */
        uint32_t v = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        v += rest > half || (rest == half && (v & 1u));
        return (uint16_t)(s | v);
    }
    uint32_t v = ((a - 0x38000000u) >> 13), rest = a & 0x1FFFu;
    v += rest > 0x1000u || (rest == 0x1000u && (v & 1u));
    return (uint16_t)(s | v);
#endif
}

/* The 16-bit element types: their bit patterns, as cuDNN reads them. */
typedef struct bf16_t {
    uint16_t v;
} bf16_t;
typedef struct f16_t {
    uint16_t v;
} f16_t;

LWL_HD float ld(float x)
{
    return x;
}
LWL_HD float ld(bf16_t x)
{
    return lwl_bf16_ld(x.v);
}
LWL_HD float ld(f16_t x)
{
    return lwl_f16_ld(x.v);
}

/* st(v, p): *p = v rounded to p's type. */
LWL_HD void st(float v, float *p)
{
    *p = v;
}
LWL_HD void st(float v, bf16_t *p)
{
    p->v = lwl_bf16_st(v);
}
LWL_HD void st(float v, f16_t *p)
{
    p->v = lwl_f16_st(v);
}

#if defined(LWL_ACT_BF16)
typedef bf16_t act_t;
#elif defined(LWL_ACT_F16)
typedef f16_t act_t;
#else
typedef float act_t;
#endif

/* ---- layouts and casts */

/* A view uploaded as float (n, 3, hw) into NHWC act (n, hw, 3). t < n hw 3. */
LWL_HD void gk_view_in(size_t t, const float *x, act_t *y, size_t hw)
{
    size_t c = t % 3, p = (t / 3) % hw, i = t / (3 * hw);
    st(x[(i * 3 + c) * hw + p], &y[t]);
}

/* Master conv weights fp32 OIHW (k, c, r, s) into the act copy cuDNN reads, (k, r, s, c).
 * t < k r s c. */
LWL_HD void gk_w_in(size_t t, const float *w, act_t *wa, int c, int rs)
{
    size_t ci = t % (size_t)c, q = (t / (size_t)c) % (size_t)rs, k = t / ((size_t)c * rs);
    st(w[(k * (size_t)c + ci) * (size_t)rs + q], &wa[t]);
}

/* A conv weight gradient (k, r, s, c) in act added to the fp32 OIHW gradient. t < k r s c.
 * (Also fp32 gradients when the activations are fp32.) */
LWL_HD void gk_dw_add(size_t t, const act_t *dwa, float *g, int c, int rs)
{
    size_t ci = t % (size_t)c, q = (t / (size_t)c) % (size_t)rs, k = t / ((size_t)c * rs);
    g[(k * (size_t)c + ci) * (size_t)rs + q] += ld(dwa[t]);
}

/* Layer4's output NHWC act (n, p, c) into the head's rows u (n, 1 + p, c) fp32 (lewel:
 * the spatial mean, then every position) or (n, c) (byol: the mean only). t < n c. */
LWL_HD void gk_head_rows(size_t t, const act_t *x, float *u, int p, int c, int lewel)
{
    size_t ch = t % (size_t)c, i = t / (size_t)c, l = lewel ? 1 + (size_t)p : 1;
    const act_t *xi = x + i * (size_t)p * c + ch;
    double s = 0;
    for (int j = 0; j < p; j++) {
        float v = ld(xi[(size_t)j * c]);
        s += v;
        if (lewel)
            u[(i * l + 1 + (size_t)j) * c + ch] = v;
    }
    u[i * l * c + ch] = (float)(s / p);
}

/* d(layer4's output) in act from the rows' gradient du and the aligned features' dx
 * (n, p, c) fp32 (lewel; NULL for byol). t < n p c. */
LWL_HD void gk_head_rows_bwd(size_t t, const float *du, const float *dx, act_t *dy, int p,
                             int c, int lewel)
{
    size_t ch = t % (size_t)c, j = (t / (size_t)c) % (size_t)p, i = t / ((size_t)c * p);
    size_t l = lewel ? 1 + (size_t)p : 1;
    float d = du[i * l * c + ch] / p;
    if (lewel)
        d += dx[t] + du[(i * l + 1 + j) * c + ch];
    st(d, &dy[t]);
}

/* ---- batch norm over NHWC (n, hw, c) in groups of `per` images; T is act_t, or float
 * for the head's rows (n = groups, hw = rows per group) */

/* Sums (x, x^2) of channel ch over positions [s len, s len + len) of image i, into
 * part[(i nseg + s) c + ch] (2 doubles). t < n nseg c. */
template <typename T>
LWL_HD void gk_bn_part(size_t t, const T *x, double *part, size_t hw, int c, int nseg, int len)
{
    size_t ch = t % (size_t)c, s = (t / (size_t)c) % (size_t)nseg, i = t / ((size_t)c * nseg);
    size_t j0 = s * (size_t)len, j1 = j0 + (size_t)len < hw ? j0 + (size_t)len : hw;
    const T *xi = x + i * hw * c + ch;
    double a = 0, b = 0;
    for (size_t j = j0; j < j1; j++) {
        double v = ld(xi[j * c]);
        a += v;
        b += v * v;
    }
    part[t * 2] = a;
    part[t * 2 + 1] = b;
}

/* The segments of image i added in order: img[i c + ch] (2 doubles). t < n c. */
LWL_HD void gk_bn_image(size_t t, const double *part, double *img, int c, int nseg)
{
    size_t ch = t % (size_t)c, i = t / (size_t)c;
    double a = 0, b = 0;
    for (int s = 0; s < nseg; s++) {
        a += part[((i * (size_t)nseg + (size_t)s) * c + ch) * 2];
        b += part[((i * (size_t)nseg + (size_t)s) * c + ch) * 2 + 1];
    }
    img[t * 2] = a;
    img[t * 2 + 1] = b;
}

/* The images of group g added in order into tot[g c + ch] (2 doubles). t < groups c. */
LWL_HD void gk_bn_group(size_t t, const double *img, double *tot, int c, int per)
{
    size_t ch = t % (size_t)c, g = t / (size_t)c;
    double a = 0, b = 0;
    for (int i = 0; i < per; i++) {
        a += img[(((size_t)g * per + (size_t)i) * c + ch) * 2];
        b += img[(((size_t)g * per + (size_t)i) * c + ch) * 2 + 1];
    }
    tot[t * 2] = a;
    tot[t * 2 + 1] = b;
}

/* Statistics of (group, channel) t from its totals over m values: mean, invstd saved,
 * running statistics updated (unbiased variance, as PyTorch) unless run_mean is NULL.
 * t < groups c. */
LWL_HD void gk_bn_stats(size_t t, const double *tot, double m, float *mean, float *invstd,
                        float *run_mean, float *run_var)
{
    double mu = tot[t * 2] / m, var = tot[t * 2 + 1] / m - mu * mu;
    var = var > 0 ? var : 0;
    mean[t] = (float)mu;
    invstd[t] = k_invstd((float)var);
    if (run_mean) {
        run_mean[t] = k_running(run_mean[t], (float)mu);
        run_var[t] = k_running(run_var[t], (float)(var * m / (m > 1 ? m - 1 : 1)));
    }
}

/* y = bn(x), then + res and ReLU (res not NULL: the end of a residual block), or ReLU
 * (relu set). mean, invstd: (groups, c); with run_var not NULL (eval mode) invstd comes
 * from it. t < n hw c. */
template <typename T>
LWL_HD void gk_bn_apply(size_t t, const T *x, T *y, const T *res, size_t hw, int c, int per,
                        const float *gamma, const float *beta, const float *mean,
                        const float *invstd, const float *run_var, int relu)
{
    size_t ch = t % (size_t)c, g = t / (hw * (size_t)c) / (size_t)per, k = g * c + ch;
    float is = run_var ? k_invstd(run_var[k]) : invstd[k];
    float v = k_bn(ld(x[t]), mean[k], is, gamma[ch], beta[ch]);
    if (res)
        v = k_add_relu(v, ld(res[t]));
    else if (relu)
        v = k_relu(v);
    st(v, &y[t]);
}

/* Backward sums over segment s of image i: (d, d xhat), d = dy through the ReLU whose
 * output is relu_out (when not NULL). t < n nseg c. */
template <typename T>
LWL_HD void gk_bn_bpart(size_t t, const T *x, const T *dy, const T *relu_out, double *part,
                        size_t hw, int c, int nseg, int len, int per, const float *mean,
                        const float *invstd)
{
    size_t ch = t % (size_t)c, s = (t / (size_t)c) % (size_t)nseg, i = t / ((size_t)c * nseg);
    size_t j0 = s * (size_t)len, j1 = j0 + (size_t)len < hw ? j0 + (size_t)len : hw;
    size_t k = i / (size_t)per * c + ch, o = i * hw * c + ch;
    float mu = mean[k], is = invstd[k];
    double a = 0, b = 0;
    for (size_t j = j0; j < j1; j++) {
        float d = ld(dy[o + j * c]);
        if (relu_out)
            d = k_relu_bwd(d, ld(relu_out[o + j * c]));
        a += d;
        b += (double)d * ((ld(x[o + j * c]) - mu) * is);
    }
    part[t * 2] = a;
    part[t * 2 + 1] = b;
}

/* dgamma, dbeta of channel t accumulate (fp32) the backward totals of every group, in
 * group order. t < c. */
LWL_HD void gk_bn_bgrad(size_t t, const double *tot, float *dgamma, float *dbeta, int c,
                        int groups)
{
    for (int g = 0; g < groups; g++) {
        dgamma[t] += (float)tot[((size_t)g * c + t) * 2 + 1];
        dbeta[t] += (float)tot[((size_t)g * c + t) * 2];
    }
}

/* dx of element t from the totals of its group (m values). dx may be dy. t < n hw c. */
template <typename T>
LWL_HD void gk_bn_bapply(size_t t, const T *x, const T *dy, const T *relu_out, T *dx,
                         size_t hw, int c, int per, const float *gamma, const float *mean,
                         const float *invstd, const double *tot, float inv_m)
{
    size_t ch = t % (size_t)c, g = t / (hw * (size_t)c) / (size_t)per, k = g * c + ch;
    float d = ld(dy[t]), is = invstd[k];
    if (relu_out)
        d = k_relu_bwd(d, ld(relu_out[t]));
    st(k_bn_bwd(d, (ld(x[t]) - mean[k]) * is, gamma[ch], is, (float)tot[k * 2],
                (float)tot[k * 2 + 1], inv_m), &dx[t]);
}

/* ---- element-wise */

/* dy through relu(a + b) given its output y, in place. */
LWL_HD void gk_relu_bwd(size_t t, act_t *dy, const act_t *y)
{
    st(k_relu_bwd(ld(dy[t]), ld(y[t])), &dy[t]);
}

LWL_HD void gk_add_into(size_t t, act_t *y, const act_t *x)
{
    st(ld(y[t]) + ld(x[t]), &y[t]);
}

/* ---- max pooling 3x3, stride 2, padding 1, NHWC; ties go to the first maximum */

/* Output element t of (n, oh, ow, c); arg[t] is the window index 0..8 of its maximum. */
LWL_HD void gk_pool_fwd(size_t t, const act_t *x, act_t *y, uint8_t *arg, int h, int w, int oh,
                        int ow, int c)
{
    size_t ch = t % (size_t)c, q = t / (size_t)c;
    int ox = (int)(q % (size_t)ow), oy = (int)(q / (size_t)ow % (size_t)oh);
    size_t i = q / ((size_t)ow * oh);
    float best = 0;
    int at = -1;
    for (int k = 0; k < 9; k++) {
        int yy = oy * 2 - 1 + k / 3, xx = ox * 2 - 1 + k % 3;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w)
            continue;
        float v = ld(x[((i * h + (size_t)yy) * w + (size_t)xx) * c + ch]);
        if (at < 0 || v > best) {
            best = v;
            at = k;
        }
    }
    st(best, &y[t]);
    arg[t] = (uint8_t)at;
}

/* Input element t of (n, h, w, c): the sum of dy over the windows whose maximum it is, in
 * window order (no atomics: the same bits every run). */
LWL_HD void gk_pool_bwd(size_t t, const act_t *dy, const uint8_t *arg, act_t *dx, int h, int w,
                        int oh, int ow, int c)
{
    size_t ch = t % (size_t)c, q = t / (size_t)c;
    int x = (int)(q % (size_t)w), y = (int)(q / (size_t)w % (size_t)h);
    size_t i = q / ((size_t)w * h);
    float s = 0;
    /* output row oy covers input rows 2 oy - 1 .. 2 oy + 1: y is in oy = y / 2 .. (y + 1) / 2 */
    for (int oy = y / 2; oy <= (y + 1) / 2 && oy < oh; oy++) {
        int ky = y - (oy * 2 - 1);
        if (ky < 0 || ky > 2)
            continue;
        for (int ox = x / 2; ox <= (x + 1) / 2 && ox < ow; ox++) {
            int kx = x - (ox * 2 - 1);
            if (kx < 0 || kx > 2)
                continue;
            size_t o = ((i * oh + (size_t)oy) * ow + (size_t)ox) * c + ch;
            if (arg[o] == ky * 3 + kx)
                s += ld(dy[o]);
        }
    }
    st(s, &dx[t]);
}

/* ---- the LEWEL head, fp32 rows */

/* Position row j of image i of z (n (1 + p), d): its L2 norm's inverse into inv[i p + j].
 * t < n p. */
LWL_HD void gk_maps_norm(size_t t, const float *z, float *inv, int p, int d)
{
    size_t j = t % (size_t)p, i = t / (size_t)p;
    const float *r = z + (i * (1 + (size_t)p) + 1 + j) * d;
    double s = 0;
    for (int k = 0; k < d; k++)
        s += (double)r[k] * r[k];
    inv[t] = 1.0f / fmaxf(sqrtf((float)s), LWL_NORM_EPS);
}

/* Map k of image i: softmax over the p positions of the normalised z, into a (n, d, p).
 * t < n d. */
LWL_HD void gk_maps_softmax(size_t t, const float *z, const float *inv, float *a, int p, int d)
{
    size_t k = t % (size_t)d, i = t / (size_t)d;
    const float *zi = z + (i * (1 + (size_t)p) + 1) * d + k;
    float *r = a + t * (size_t)p, mx = -INFINITY;
    for (int j = 0; j < p; j++) {
        r[j] = zi[(size_t)j * d] * inv[i * p + (size_t)j];
        mx = fmaxf(mx, r[j]);
    }
    double s = 0;
    for (int j = 0; j < p; j++)
        s += (r[j] = expf(r[j] - mx));
    for (int j = 0; j < p; j++)
        r[j] = (float)(r[j] / s);
}

/* Softmax backward of map k of image i: the position rows of dz (n (1 + p), d) get
 * a (da - sum(da a)) (before the normalisation's backward). t < n d. */
LWL_HD void gk_maps_softmax_bwd(size_t t, const float *a, const float *da, float *dz, int p,
                                int d)
{
    size_t k = t % (size_t)d, i = t / (size_t)d;
    const float *ar = a + t * (size_t)p, *dr = da + t * (size_t)p;
    double s = 0;
    for (int j = 0; j < p; j++)
        s += (double)dr[j] * ar[j];
    float *dzi = dz + (i * (1 + (size_t)p) + 1) * d + k;
    for (int j = 0; j < p; j++)
        dzi[(size_t)j * d] = ar[j] * (dr[j] - (float)s);
}

/* L2-normalisation backward of position row j of image i, in place on dz:
 * (dy - y (y . dy)) / |z|. t < n p. */
LWL_HD void gk_maps_norm_bwd(size_t t, const float *z, float *dz, int p, int d)
{
    size_t j = t % (size_t)p, i = t / (size_t)p;
    const float *zr = z + (i * (1 + (size_t)p) + 1 + j) * d;
    float *dr = dz + (i * (1 + (size_t)p) + 1 + j) * d;
    double s = 0, dot = 0;
    for (int k = 0; k < d; k++)
        s += (double)zr[k] * zr[k];
    float nrm = sqrtf((float)s);
    if (nrm <= LWL_NORM_EPS) {
        for (int k = 0; k < d; k++)
            dr[k] /= LWL_NORM_EPS;
        return;
    }
    for (int k = 0; k < d; k++)
        dot += (double)zr[k] / nrm * dr[k];
    for (int k = 0; k < d; k++)
        dr[k] = (dr[k] - zr[k] / nrm * (float)dot) / nrm;
}

/* Row r of z (rows with a stride of `stride` rows, the global row of each image) into
 * zg (n, d). t < n d. */
LWL_HD void gk_rows_gather(size_t t, const float *z, float *zg, int d, int stride)
{
    size_t k = t % (size_t)d, i = t / (size_t)d;
    zg[t] = z[i * (size_t)stride * d + k];
}

/* The inverse: dz's global rows from dzg. t < n d. */
LWL_HD void gk_rows_scatter(size_t t, const float *dzg, float *dz, int d, int stride)
{
    size_t k = t % (size_t)d, i = t / (size_t)d;
    dz[i * (size_t)stride * d + k] = dzg[t];
}

/* Row r of the loss: scale (2 - 2 cos(q_r, t_r)) / rows into lr[r] (double), and its
 * gradient added to dq. t < rows. */
LWL_HD void gk_cos_loss(size_t t, const float *q, const float *tg, float *dq, double *lr, int d,
                        float scale, int rows)
{
    const float *qr = q + t * (size_t)d, *tr = tg + t * (size_t)d;
    double dot = 0, nq = 0, nt = 0;
    for (int k = 0; k < d; k++) {
        dot += (double)qr[k] * tr[k];
        nq += (double)qr[k] * qr[k];
        nt += (double)tr[k] * tr[k];
    }
    float fd = (float)dot, fq = sqrtf((float)nq), ft = sqrtf((float)nt);
    lr[t] = (double)scale * k_cos_loss(fd, fq, ft) / rows;
    for (int k = 0; k < d; k++)
        dq[t * (size_t)d + k] += k_cos_loss_bwd(qr[k], tr[k], fd, fq, ft, scale / rows);
}

/* The sum of n doubles in order into out[0] (one thread: the losses of a few thousand
 * rows). */
LWL_HD void gk_sum_in_order(size_t t, const double *v, size_t n, double *out)
{
    if (t)
        return;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    out[0] += s;
}

/* ---- the optimiser and the moving average over flat parameter buffers */

/* A piece of one tensor: the optimiser's unit of work. */
typedef struct lwl_gk_chunk {
    uint32_t tensor;            /* index into the tensor tables */
    uint32_t n;                 /* elements */
    size_t off;                 /* first element in the flat buffers */
} lwl_gk_chunk;

/* Sums of squares of w and g over chunk t into part[2 t], part[2 t + 1]. t < chunks. */
LWL_HD void gk_sq_chunk(size_t t, const lwl_gk_chunk *ch, const float *w, const float *g,
                        double *part)
{
    const float *wc = w + ch[t].off, *gc = g + ch[t].off;
    double a = 0, b = 0;
    for (uint32_t i = 0; i < ch[t].n; i++) {
        a += (double)wc[i] * wc[i];
        b += (double)gc[i] * gc[i];
    }
    part[2 * t] = a;
    part[2 * t + 1] = b;
}

/* Tensor t's local learning rate from its chunks [first[t], first[t + 1]): LARS's trust
 * ratio eta |w| / (|g| + wd |w|), 1 when a norm is 0, not adapted (1) or SGD. t < tensors. */
LWL_HD void gk_trust(size_t t, const uint32_t *first, const double *part, const uint8_t *decay,
                     float wd, float eta, int lars, float *local)
{
    double a = 0, b = 0;
    for (uint32_t k = first[t]; k < first[t + 1]; k++) {
        a += part[2 * k];
        b += part[2 * k + 1];
    }
    double nw = sqrt(a), ng = sqrt(b);
    float l = 1.0f;
    if (lars && decay[t] && nw > 0 && ng > 0)
        l = (float)(eta * nw / (ng + (decay[t] ? wd : 0.0f) * nw));
    local[t] = l;
}

/* k_lars on one element: thread e is element e % csize of chunk e / csize (chunks hold at
 * most csize elements; the excess threads return). The first step sets the buffer.
 * t < chunks csize. */
LWL_HD void gk_lars(size_t e, const lwl_gk_chunk *ch, uint32_t csize, float *w, float *buf,
                    const float *g, const float *local, const uint8_t *decay, float wd,
                    float lr, float momentum, int first)
{
    const lwl_gk_chunk *c = &ch[e / csize];
    size_t i = c->off + e % csize;
    if (e % csize >= c->n)
        return;
    k_lars(&w[i], &buf[i], g[i], decay[c->tensor] ? wd : 0.0f, local[c->tensor], lr, momentum,
           first);
}

/* t = m t + (1 - m) o. */
LWL_HD void gk_ema(size_t t, float *tw, const float *o, float m)
{
    tw[t] = k_ema(tw[t], o[t], m);
}

/* y *= s. */
LWL_HD void gk_scale(size_t t, float *y, float s)
{
    y[t] *= s;
}

/* flag[0] = 1 when g[t] is not finite (fp16's loss scaling skips such a step). */
LWL_HD void gk_check_finite(size_t t, const float *g, int *flag)
{
    if (!isfinite(g[t]))
        *flag = 1;
}

/* Pooled features (n, c) fp32 of layer4's output NHWC act (n, p, c). t < n c. */
LWL_HD void gk_pool_features(size_t t, const act_t *x, float *f, int p, int c)
{
    size_t ch = t % (size_t)c, i = t / (size_t)c;
    double s = 0;
    for (int j = 0; j < p; j++)
        s += ld(x[(i * (size_t)p + (size_t)j) * c + ch]);
    f[t] = (float)(s / p);
}

/* Layer4's output NHWC act (n, p, c) as fp32 (n, c, p), the layout net_maps hands the
 * host. t < n c p. */
LWL_HD void gk_maps_out(size_t t, const act_t *x, float *m, int p, int c)
{
    size_t j = t % (size_t)p, ch = (t / (size_t)p) % (size_t)c, i = t / ((size_t)p * c);
    m[t] = ld(x[(i * (size_t)p + j) * c + ch]);
}

/* ---- kNN: each query's k best memory rows, and their vote (lwl_eval.c's rules) */

#define LWL_GK_KNN_TOP 5     /* classes listed per query (top-5) */

/* The best neighbours of one query so far, best first: higher similarity, then the lower
 * memory row, lwl_eval.c's total order. N slots (the spec's k); an empty slot holds
 * (-inf, UINT32_MAX), which every real neighbour (finite similarity) outranks. */
template <int N> struct lwl_gk_topk {
    enum { K = N };
    float sim[N];
    uint32_t idx[N];
};

/* (s, j) ranks above (s2, j2): equal similarities (0 and -0 too) go to the lower row. */
LWL_HD bool lwl_gk_above(float s, uint32_t j, float s2, uint32_t j2)
{
    return s > s2 || (s == s2 && j < j2);
}

template <typename T> LWL_HD void lwl_gk_topk_clear(T *l)
{
    for (int e = 0; e < T::K; e++) {
        l->sim[e] = -INFINITY;
        l->idx[e] = UINT32_MAX;
    }
}

/* Offers neighbour (s, j) to l: kept, in order, when it ranks above l's last. Returns 0
 * when it was not kept (a caller walking a list best first can stop there). */
template <typename T> LWL_HD int lwl_gk_topk_offer(T *l, float s, uint32_t j)
{
    int e = T::K - 1;
    if (!lwl_gk_above(s, j, l->sim[e], l->idx[e]))
        return 0;
    for (; e > 0 && lwl_gk_above(s, j, l->sim[e - 1], l->idx[e - 1]); e--) {
        l->sim[e] = l->sim[e - 1];
        l->idx[e] = l->idx[e - 1];
    }
    l->sim[e] = s;
    l->idx[e] = j;
    return 1;
}

/* Stage 1, one segment of the memory: thread t = s mq + i keeps query i's best among
 * memory rows [s seg, s seg + seg) of sim (n, mq), into part[t]. sim is memory-major
 * (sim[j mq + i] = <memory j, query i>, cuBLAS's column-major queries x memory), so the
 * threads of consecutive queries read consecutive floats. t < nseg mq. */
template <typename T>
LWL_HD void gk_knn_part(size_t t, const float *sim, T *part, size_t n, size_t mq, size_t seg)
{
    size_t i = t % mq, j0 = t / mq * seg, j1 = j0 + seg < n ? j0 + seg : n;
    T best;
    lwl_gk_topk_clear(&best);
    for (size_t j = j0; j < j1; j++)
        lwl_gk_topk_offer(&best, sim[j * mq + i], (uint32_t)j);
    part[t] = best;
}

/* Stage 2: query t's best over its nseg segment lists part[s mq + t], into top[t]; each
 * list is walked best first until an entry is not kept. t < mq. */
template <typename T>
LWL_HD void gk_knn_merge(size_t t, const T *part, T *top, size_t mq, int nseg)
{
    T best;
    lwl_gk_topk_clear(&best);
    for (int s = 0; s < nseg; s++) {
        const T *l = &part[(size_t)s * mq + t];
        for (int e = 0; e < T::K && lwl_gk_topk_offer(&best, l->sim[e], l->idx[e]); e++)
            ;
    }
    top[t] = best;
}

/* The dot product of a and b (d) summed in double in index order: each product of two
 * floats is exact in double (a fused multiply-add changes nothing), so host and device get
 * lwl_eval.c's bits. */
LWL_HD double lwl_gk_dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* Stage 3, the vote of query t's first k neighbours in top[t] (lwl_eval.c's ev_vote): each
 * adds 1, or when weighted exp(s / temperature) with s its similarity recomputed by
 * lwl_gk_dot from the memory rows mem (n, d) and the query rows qry (mq, d), to its class's
 * score, in double and in neighbour order; pred[t 5 + r] is the class of the r-th highest
 * score, ties to the lower label, among the classes with a vote (-1 in the slots left).
 * score and votes (mq, nclasses) are scratch. t < mq. */
template <typename T>
LWL_HD void gk_knn_vote(size_t t, const T *top, const int *labels, const float *mem,
                        const float *qry, int d, int k, int weighted, double temperature,
                        int nclasses, double *score, int *votes, int *pred)
{
    double *sc = score + t * (size_t)nclasses;
    int *vo = votes + t * (size_t)nclasses;
    for (int c = 0; c < nclasses; c++) {
        sc[c] = 0;
        vo[c] = 0;
    }
    for (int e = 0; e < k; e++) {
        size_t j = top[t].idx[e];
        int c = labels[j];
        sc[c] += weighted ? exp(lwl_gk_dot(qry + t * (size_t)d, mem + j * (size_t)d, d) /
                                temperature) : 1.0;
        vo[c]++;
    }
    for (int r = 0; r < LWL_GK_KNN_TOP; r++) {
        int best = -1;
        for (int c = 0; c < nclasses; c++)
            if (vo[c] > 0 && (best < 0 || sc[c] > sc[best]))
                best = c;
        pred[t * LWL_GK_KNN_TOP + (size_t)r] = best;
        if (best >= 0)
            vo[best] = 0;       /* listed */
    }
}

#endif
