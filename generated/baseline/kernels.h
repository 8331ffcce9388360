/* Per-element arithmetic of the training step, written once for host and
 * device: the CPU build calls these in loops, the CUDA build in kernels.
 * Emitted by lwlc from compiler/tmpl/kernels.h; every spec shares it. */
#ifndef LWL_KERNELS_H
#define LWL_KERNELS_H

#include <math.h>

#ifndef LWL_HD
#ifdef __CUDACC__
#define LWL_HD __host__ __device__ static inline
#else
#define LWL_HD static inline
#endif
#endif

#define LWL_BN_EPS 1e-5f          /* PyTorch's BatchNorm default */
#define LWL_BN_MOMENTUM 0.1f      /* running = (1 - m) running + m batch */
#define LWL_NORM_EPS 1e-12f       /* F.normalize's floor on the norm */

/* BatchNorm in its affine form: (x - mean) * invstd * gamma + beta. */
LWL_HD float k_bn(float x, float mean, float invstd, float gamma, float beta)
{
    return (x - mean) * invstd * gamma + beta;
}

LWL_HD float k_relu(float x)
{
    return x > 0.0f ? x : 0.0f;
}

/* ReLU's backward given its output y. */
LWL_HD float k_relu_bwd(float dy, float y)
{
    return y > 0.0f ? dy : 0.0f;
}

/* relu(a + b): the end of a residual block. */
LWL_HD float k_add_relu(float a, float b)
{
    float s = a + b;
    return s > 0.0f ? s : 0.0f;
}

/* 1 / sqrt(var + eps) from a biased variance. */
LWL_HD float k_invstd(float var)
{
    return 1.0f / sqrtf(var + LWL_BN_EPS);
}

/* Running statistics: PyTorch's update with the unbiased variance of m values. */
LWL_HD float k_running(float running, float batch)
{
    return (1.0f - LWL_BN_MOMENTUM) * running + LWL_BN_MOMENTUM * batch;
}

/* BatchNorm backward of one element in train mode, given the sums over the
 * m elements of its channel (and group): dy and dy * xhat. */
LWL_HD float k_bn_bwd(float dy, float xhat, float gamma, float invstd, float sum_dy,
                      float sum_dy_xhat, float inv_m)
{
    return gamma * invstd * (dy - inv_m * sum_dy - xhat * inv_m * sum_dy_xhat);
}

/* BatchNorm backward of one element in eval mode (running statistics, fixed): the
 * forward is an affine map per channel, so dx = dy * invstd * gamma. */
LWL_HD float k_bn_eval_bwd(float dy, float invstd, float gamma)
{
    return dy * invstd * gamma;
}

/* BYOL's normalised MSE term of one pair: 2 - 2 cos(p, t), given p.t, |p|, |t|. */
LWL_HD float k_cos_loss(float dot, float np, float nt)
{
    return 2.0f - 2.0f * dot / (fmaxf(np, LWL_NORM_EPS) * fmaxf(nt, LWL_NORM_EPS));
}

/* d/dp of scale * (2 - 2 cos(p, t)) for one element, p_i and t_i given. */
LWL_HD float k_cos_loss_bwd(float p, float t, float dot, float np, float nt, float scale)
{
    float a = fmaxf(np, LWL_NORM_EPS), b = fmaxf(nt, LWL_NORM_EPS);
    return -2.0f * scale * (t / (a * b) - dot * p / (a * a * a * b));
}

/* One element of LARS (or SGD with local_lr 1): d = (g + wd w) local_lr lr;
 * buf = momentum buf + d (buf = d on the first step); w -= buf. */
LWL_HD void k_lars(float *w, float *buf, float g, float wd, float local_lr, float lr,
                   float momentum, int first)
{
    float d = (g + wd * *w) * local_lr * lr;
    *buf = first ? d : momentum * *buf + d;
    *w -= *buf;
}

/* The target's exponential moving average: t = m t + (1 - m) o. */
LWL_HD float k_ema(float t, float o, float m)
{
    return m * t + (1.0f - m) * o;
}

#endif
