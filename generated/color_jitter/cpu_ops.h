/* The CPU loops around the per-element functions of kernels.h: batch norm
 * (train and eval, per group), residual ends, the MLPs of the head, pooling
 * and the LEWEL alignment maps. Shapes come in as arguments; the schedule in
 * net.c passes literals, so the compiler sees constants. Emitted by lwlc from
 * compiler/tmpl/cpu_ops.h; every spec shares it. */
#ifndef LWL_CPU_OPS_H
#define LWL_CPU_OPS_H

#include <math.h>
#include <string.h>

#include "kernels.h"
#include "lwl_nn.h"

/* ---- batch norm over (n, c, hw) tensors in `groups` groups of n/groups images */

/* Train mode: statistics of each group, saved for backward (mean, invstd:
 * (groups, c)); running statistics (groups, c) updated; optional ReLU. */
static void bn_train(const float *x, float *y, int n, int c, int hw, int groups,
                     const float *gamma, const float *beta, float *mean, float *invstd,
                     float *run_mean, float *run_var, int relu)
{
    int per = n / groups;
    double m = (double)per * hw;
    for (int g = 0; g < groups; g++)
        for (int ch = 0; ch < c; ch++) {
            double s = 0, ss = 0;
            for (int i = g * per; i < (g + 1) * per; i++) {
                const float *p = x + ((size_t)i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                    s += p[j];
            }
            double mu = s / m;
            for (int i = g * per; i < (g + 1) * per; i++) {
                const float *p = x + ((size_t)i * c + ch) * hw;
                for (int j = 0; j < hw; j++)
                    ss += ((double)p[j] - mu) * ((double)p[j] - mu);
            }
            float var = (float)(ss / m), is = k_invstd(var);
            mean[g * c + ch] = (float)mu;
            invstd[g * c + ch] = is;
            run_mean[g * c + ch] = k_running(run_mean[g * c + ch], (float)mu);
            run_var[g * c + ch] = k_running(run_var[g * c + ch],
                                            (float)(ss / (m > 1 ? m - 1 : 1)));
            float ga = gamma[ch], be = beta[ch], mf = (float)mu;
            for (int i = g * per; i < (g + 1) * per; i++) {
                const float *p = x + ((size_t)i * c + ch) * hw;
                float *q = y + ((size_t)i * c + ch) * hw;
                if (relu)
                    for (int j = 0; j < hw; j++)
                        q[j] = k_relu(k_bn(p[j], mf, is, ga, be));
                else
                    for (int j = 0; j < hw; j++)
                        q[j] = k_bn(p[j], mf, is, ga, be);
            }
        }
}

/* Eval mode with the running statistics of each group. */
static void bn_eval(const float *x, float *y, int n, int c, int hw, int groups,
                    const float *gamma, const float *beta, const float *run_mean,
                    const float *run_var, int relu)
{
    int per = n / groups;
    for (int i = 0; i < n; i++) {
        int g = i / per;
        for (int ch = 0; ch < c; ch++) {
            const float *p = x + ((size_t)i * c + ch) * hw;
            float *q = y + ((size_t)i * c + ch) * hw;
            float mu = run_mean[g * c + ch], is = k_invstd(run_var[g * c + ch]);
            for (int j = 0; j < hw; j++) {
                float v = k_bn(p[j], mu, is, gamma[ch], beta[ch]);
                q[j] = relu ? k_relu(v) : v;
            }
        }
    }
}

/* Backward of train-mode BN: dy (n, c, hw) → dx; dgamma, dbeta accumulate.
 * When relu_out is not NULL, dy first goes through the ReLU that produced it. */
static void bn_train_bwd(const float *x, const float *dy_in, const float *relu_out, float *dx,
                         int n, int c, int hw, int groups, const float *gamma,
                         const float *mean, const float *invstd, float *dgamma, float *dbeta)
{
    int per = n / groups;
    float inv_m = 1.0f / ((float)per * hw);
    for (int g = 0; g < groups; g++)
        for (int ch = 0; ch < c; ch++) {
            float mu = mean[g * c + ch], is = invstd[g * c + ch];
            double sdy = 0, sdx = 0;
            for (int i = g * per; i < (g + 1) * per; i++) {
                size_t o = ((size_t)i * c + ch) * hw;
                for (int j = 0; j < hw; j++) {
                    float d = relu_out ? k_relu_bwd(dy_in[o + j], relu_out[o + j]) : dy_in[o + j];
                    sdy += d;
                    sdx += (double)d * ((x[o + j] - mu) * is);
                }
            }
            dgamma[ch] += (float)sdx;
            dbeta[ch] += (float)sdy;
            float s1 = (float)sdy, s2 = (float)sdx, ga = gamma[ch];
            for (int i = g * per; i < (g + 1) * per; i++) {
                size_t o = ((size_t)i * c + ch) * hw;
                for (int j = 0; j < hw; j++) {
                    float d = relu_out ? k_relu_bwd(dy_in[o + j], relu_out[o + j]) : dy_in[o + j];
                    dx[o + j] = k_bn_bwd(d, (x[o + j] - mu) * is, ga, is, s1, s2, inv_m);
                }
            }
        }
}

static void add_relu(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = k_add_relu(a[i], b[i]);
}

/* dy through relu(a + b) given its output y, in place. */
static void relu_bwd_inplace(float *dy, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dy[i] = k_relu_bwd(dy[i], y[i]);
}

static void add_into(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* ---- batch norm over rows: (rows, c) in groups of rows/groups rows (the head) */

static void bn1d_train(const float *x, float *y, int rows, int c, int groups,
                       const float *gamma, const float *beta, float *mean, float *invstd,
                       float *run_mean, float *run_var, int relu, int update_running)
{
    int per = rows / groups;
    double *s = calloc((size_t)c * 2, sizeof *s);
    for (int g = 0; g < groups; g++) {
        memset(s, 0, (size_t)c * 2 * sizeof *s);
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++)
                s[ch] += x[(size_t)r * c + ch];
        for (int ch = 0; ch < c; ch++)
            s[ch] /= per;
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                double d = x[(size_t)r * c + ch] - s[ch];
                s[c + ch] += d * d;
            }
        for (int ch = 0; ch < c; ch++) {
            mean[g * c + ch] = (float)s[ch];
            invstd[g * c + ch] = k_invstd((float)(s[c + ch] / per));
            if (update_running) {
                run_mean[g * c + ch] = k_running(run_mean[g * c + ch], (float)s[ch]);
                run_var[g * c + ch] = k_running(run_var[g * c + ch],
                                                (float)(s[c + ch] / (per > 1 ? per - 1 : 1)));
            }
        }
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                float v = k_bn(x[(size_t)r * c + ch], mean[g * c + ch], invstd[g * c + ch],
                               gamma[ch], beta[ch]);
                y[(size_t)r * c + ch] = relu ? k_relu(v) : v;
            }
    }
    free(s);
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

/* Backward of bn1d_train + ReLU (relu_out: its output) into dx; dgamma, dbeta accumulate. */
static void bn1d_train_bwd(const float *x, const float *dy_in, const float *relu_out,
                           float *dx, int rows, int c, int groups, const float *gamma,
                           const float *mean, const float *invstd, float *dgamma,
                           float *dbeta)
{
    int per = rows / groups;
    double *s = calloc((size_t)c * 2, sizeof *s);
    for (int g = 0; g < groups; g++) {
        memset(s, 0, (size_t)c * 2 * sizeof *s);
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                size_t o = (size_t)r * c + ch;
                float d = k_relu_bwd(dy_in[o], relu_out[o]);
                s[ch] += d;
                s[c + ch] += (double)d * ((x[o] - mean[g * c + ch]) * invstd[g * c + ch]);
            }
        for (int ch = 0; ch < c; ch++) {
            dgamma[ch] += (float)s[c + ch];
            dbeta[ch] += (float)s[ch];
        }
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int ch = 0; ch < c; ch++) {
                size_t o = (size_t)r * c + ch;
                float is = invstd[g * c + ch];
                float d = k_relu_bwd(dy_in[o], relu_out[o]);
                dx[o] = k_bn_bwd(d, (x[o] - mean[g * c + ch]) * is, gamma[ch], is,
                                 (float)s[ch], (float)s[c + ch], 1.0f / per);
            }
    }
    free(s);
}

/* ---- the head's MLP: y = W3 relu(bn(W0 x)) over rows of (rows, in) */

typedef struct mlp_save {
    float *h1, *h2;         /* (rows, hidden): before BN, after BN + ReLU */
    float *mean, *invstd;   /* (groups, hidden) */
} mlp_save;

static int mlp_fwd(const float *x, float *y, int rows, int in, int hidden, int out,
                   int groups, const float *w0, const float *gamma, const float *beta,
                   const float *w3, float *run_mean, float *run_var, mlp_save *sv, int train,
                   int update_running)
{
    if (lwl_gemm(0, 1, rows, hidden, in, 1.0f, x, in, w0, in, 0.0f, sv->h1, hidden))
        return -1;
    if (train)
        bn1d_train(sv->h1, sv->h2, rows, hidden, groups, gamma, beta, sv->mean, sv->invstd,
                   run_mean, run_var, 1, update_running);
    else
        bn1d_eval(sv->h1, sv->h2, rows, hidden, groups, gamma, beta, run_mean, run_var, 1);
    return lwl_gemm(0, 1, rows, out, hidden, 1.0f, sv->h2, hidden, w3, hidden, 0.0f, y, out);
}

/* Backward: dy (rows, out) → dx (rows, in) when dx is not NULL; weight grads
 * accumulate. tmp holds (rows, hidden). */
static int mlp_bwd(const float *x, const float *dy, float *dx, int rows, int in, int hidden,
                   int out, int groups, const float *w0, const float *gamma, const float *w3,
                   const mlp_save *sv, float *dw0, float *dgamma, float *dbeta, float *dw3,
                   float *tmp)
{
    if (lwl_gemm(1, 0, out, hidden, rows, 1.0f, dy, out, sv->h2, hidden, 1.0f, dw3, hidden))
        return -1;
    if (lwl_gemm(0, 0, rows, hidden, out, 1.0f, dy, out, w3, hidden, 0.0f, tmp, hidden))
        return -1;
    bn1d_train_bwd(sv->h1, tmp, sv->h2, tmp, rows, hidden, groups, gamma, sv->mean, sv->invstd,
                   dgamma, dbeta);
    if (lwl_gemm(1, 0, hidden, in, rows, 1.0f, tmp, hidden, x, in, 1.0f, dw0, in))
        return -1;
    if (dx && lwl_gemm(0, 0, rows, in, hidden, 1.0f, tmp, hidden, w0, in, 0.0f, dx, in))
        return -1;
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

#endif
