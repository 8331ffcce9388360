/* The GPU of lwl_gpu.h and lwl_cuda.h emulated on the host, for the tests on machines
 * without one: device memory is host memory, every kernel of gpu_ops.cuh runs its thread
 * indices in turn (gpu_ops.cuh without nvcc), and cuDNN's convolutions and cuBLAS's GEMMs
 * are plain loops in double with the documented semantics (NHWC activations, KRSC filters,
 * column-major cuBLAS behind the row-major wrapper). A generated net.cu compiled with g++
 * against this runs its whole GPU schedule here, where the CPU step and PyTorch can check
 * it; only the libraries' own kernels are left for tests/gpu/ on a real GPU. Under
 * mpirun each rank emulates its own GPU, and NCCL's collectives go through MPI. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_kernels.h"
#include "lwl_comm.h"
#include "lwl_gpu.h"

static char last_error[512];
static lwl_dtype act_type = LWL_F32;

/* What a GPU would have been asked to do: kernels launched (counted by gpu_ops.cuh's
 * GK_RUN), cuDNN convolutions and cuBLAS GEMM calls. Written at exit to the file named by
 * LWL_EMU_COUNTS, a line "kernels K cudnn C cublas B", for lwlc --report's test. */
long lwl_emu_launches;
static long emu_convs, emu_gemms;

static void write_counts(void)
{
    const char *path = getenv("LWL_EMU_COUNTS");
    FILE *f = path && *path ? fopen(path, "w") : NULL;
    if (!f)
        return;
    fprintf(f, "kernels %ld cudnn %ld cublas %ld\n", lwl_emu_launches, emu_convs, emu_gemms);
    fclose(f);
}

size_t lwl_dtype_size(lwl_dtype t)
{
    return t == LWL_F32 ? 4 : 2;
}

const char *lwl_cuda_error(void)
{
    return last_error[0] ? last_error : "no error recorded";
}

int lwl_cuda_fail(const char *file, int line, const char *lib, const char *what,
                  const char *call)
{
    snprintf(last_error, sizeof last_error, "%s:%d: %s error: %s: %s", file, line, lib, what,
             call);
    return -1;
}

int lwl_cuda_available(char **info)
{
    if (info)
        *info = strdup("1 GPU, the first the host's emulation (tests/emu)");
    return 1;
}

int lwl_gpu_init(int device, lwl_dtype act)
{
    static int counting;
    (void)device;
    act_type = act;
    if (!counting++)
        atexit(write_counts);
    return 0;
}

void lwl_gpu_free(void)
{
}

int lwl_gpu_sync(void)
{
    return 0;
}

void *lwl_gpu_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p)
        lwl_cuda_fail(__FILE__, __LINE__, "emu", "out of memory", "lwl_gpu_alloc");
    return p;
}

void lwl_gpu_release(void *p)
{
    free(p);
}

int lwl_gpu_put(void *dev, const void *host, size_t bytes)
{
    memmove(dev, host, bytes);
    return 0;
}

int lwl_gpu_get(void *host, const void *dev, size_t bytes)
{
    memmove(host, dev, bytes);
    return 0;
}

int lwl_gpu_copy(void *dst, const void *src, size_t bytes)
{
    memmove(dst, src, bytes);
    return 0;
}

int lwl_gpu_zero(void *dev, size_t bytes)
{
    memset(dev, 0, bytes);
    return 0;
}

/* ---- convolutions: NHWC x (n, h, w, c), KRSC w (k, r, s, c), NHWC y (n, oh, ow, k) */

struct lwl_gconv {
    int n, c, h, w, k, r, s, stride, pad, oh, ow;
    char what[96];
};

/* Element i of a tensor of the activation type. */
static double get(const void *p, size_t i)
{
    if (act_type == LWL_BF16)
        return lwl_bf16_ld(((const uint16_t *)p)[i]);
    if (act_type == LWL_F16)
        return lwl_f16_ld(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static void put(void *p, size_t i, double v)
{
    if (act_type == LWL_BF16)
        ((uint16_t *)p)[i] = lwl_bf16_st((float)v);
    else if (act_type == LWL_F16)
        ((uint16_t *)p)[i] = lwl_f16_st((float)v);
    else
        ((float *)p)[i] = (float)v;
}

lwl_gconv *lwl_gconv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad)
{
    lwl_gconv *cv = (lwl_gconv *)calloc(1, sizeof *cv);
    if (!cv)
        return NULL;
    cv->n = n;
    cv->c = c;
    cv->h = h;
    cv->w = w;
    cv->k = k;
    cv->r = r;
    cv->s = s;
    cv->stride = stride;
    cv->pad = pad;
    cv->oh = (h + 2 * pad - r) / stride + 1;
    cv->ow = (w + 2 * pad - s) / stride + 1;
    snprintf(cv->what, sizeof cv->what, "emulated conv %dx%dx%dx%d -> %d, %dx%d", n, c, h, w, k,
             r, s);
    return cv;
}

void lwl_gconv_free(lwl_gconv *cv)
{
    free(cv);
}

const char *lwl_gconv_describe(const lwl_gconv *cv)
{
    return cv->what;
}

/* A tensor of the activation type as doubles (malloc'd; NULL when out of memory). */
static double *doubles(const void *p, size_t n)
{
    double *d = (double *)malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; d && i < n; i++)
        d[i] = get(p, i);
    return d;
}

/* The input offset of output (i, oy, ox) and tap (a, b), or -1 in the padding. */
static long at_in(const lwl_gconv *v, int i, int oy, int ox, int a, int b)
{
    int y = oy * v->stride - v->pad + a, x = ox * v->stride - v->pad + b;
    if (y < 0 || y >= v->h || x < 0 || x >= v->w)
        return -1;
    return ((long)(i * v->h + y) * v->w + x) * v->c;
}

/* The three directions share one loop over (image, output position, filter, tap):
 * dir 0 y = conv(x, w), 1 dx = conv^T(dy, w), 2 dw = corr(x, dy). */
static int conv_loop(lwl_gconv *v, int dir, const void *in0, const void *in1, void *out)
{
    size_t nx = (size_t)v->n * v->h * v->w * v->c, nw = (size_t)v->k * v->r * v->s * v->c;
    size_t ny = (size_t)v->n * v->oh * v->ow * v->k;
    double *x = doubles(in0, dir == 1 ? ny : nx), *w = doubles(in1, dir == 2 ? ny : nw);
    size_t nout = dir == 0 ? ny : dir == 1 ? nx : nw;
    double *acc = (double *)calloc(nout, sizeof *acc);
    if (!x || !w || !acc) {
        free(x);
        free(w);
        free(acc);
        return lwl_cuda_fail(__FILE__, __LINE__, "emu", "out of memory", "conv");
    }
    for (int i = 0; i < v->n; i++)
        for (int oy = 0; oy < v->oh; oy++)
            for (int ox = 0; ox < v->ow; ox++)
                for (int k = 0; k < v->k; k++) {
                    size_t yo = (((size_t)i * v->oh + oy) * v->ow + ox) * v->k + k;
                    double s = 0, d = dir == 1 ? x[yo] : dir == 2 ? w[yo] : 0;
                    for (int a = 0; a < v->r; a++)
                        for (int b = 0; b < v->s; b++) {
                            long o = at_in(v, i, oy, ox, a, b);
                            if (o < 0)
                                continue;
                            size_t wo = (((size_t)k * v->r + a) * v->s + b) * v->c;
                            if (dir == 0)
                                for (int ch = 0; ch < v->c; ch++)
                                    s += x[o + ch] * w[wo + ch];
                            else if (dir == 1)
                                for (int ch = 0; ch < v->c; ch++)
                                    acc[o + ch] += d * w[wo + ch];
                            else
                                for (int ch = 0; ch < v->c; ch++)
                                    acc[wo + ch] += d * x[o + ch];
                        }
                    if (dir == 0)
                        acc[yo] = s;
                }
    for (size_t j = 0; j < nout; j++)
        put(out, j, acc[j]);
    free(x);
    free(w);
    free(acc);
    return 0;
}

int lwl_gconv_fwd(lwl_gconv *v, const void *x, const void *wt, void *y)
{
    emu_convs++;
    return conv_loop(v, 0, x, wt, y);
}

int lwl_gconv_bwd_data(lwl_gconv *v, const void *dy, const void *wt, void *dx)
{
    emu_convs++;
    return conv_loop(v, 1, dy, wt, dx);
}

int lwl_gconv_bwd_filter(lwl_gconv *v, const void *x, const void *dy, void *dwt)
{
    emu_convs++;
    return conv_loop(v, 2, x, dy, dwt);
}

/* ---- GEMMs, row-major as lwl_gemm */

static void gemm_loop(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++)
                s += (double)(ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l]) *
                     (tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j]);
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * s + (beta != 0.0f ? beta * *cij : 0.0));
        }
}

int lwl_ggemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    emu_gemms++;
    gemm_loop(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 0;
}

/* The emulated GEMM has no TF32 to leave out: the same loop. */
int lwl_ggemm_fp32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    return lwl_ggemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int lwl_ggemm_batched(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                      int lda, long long sa, const float *b, int ldb, long long sb, float beta,
                      float *c, int ldc, long long sc, int count)
{
    emu_gemms++;
    for (int q = 0; q < count; q++)
        gemm_loop(ta, tb, m, n, k, alpha, a + q * sa, lda, b + q * sb, ldb, beta, c + q * sc,
                  ldc);
    return 0;
}

/* ---- the ranks of a data-parallel run. Device memory is host memory, so NCCL's
 * collectives are lwl_comm's (MPI, rank-ordered sums) when the ranks run under mpirun:
 * `mpirun -np 2` runs the GPU program's two ranks, each on its own emulated GPU. A bucket
 * starts its sum at once (lwl_comm_sum_start), as the real one on its own stream. */

static int ranks_on;

/* A failed collective: lwl_comm said why on stderr. */
static int comm_failed(int rc, const char *call)
{
    return rc ? lwl_cuda_fail(__FILE__, __LINE__, "emu", "a collective over MPI failed", call)
              : 0;
}

int lwl_gcomm_init(int rank, int world, const char *idfile)
{
    (void)rank;
    (void)idfile;
    ranks_on = world > 1;
    if (world > 1 && !(lwl_comm_mpi() && lwl_comm_world() == world))
        return lwl_cuda_fail(__FILE__, __LINE__, "emu",
                             "the emulated GPU's ranks meet through MPI only (mpirun -np N)",
                             "ranks");
    return 0;
}

int lwl_gcomm_sum_f(float *dev, size_t n)
{
    return ranks_on ? comm_failed(lwl_comm_sum_f(dev, n), "lwl_comm_sum_f") : 0;
}

int lwl_gcomm_sum_d(double *dev, size_t n)
{
    return ranks_on ? comm_failed(lwl_comm_sum_d(dev, n), "lwl_comm_sum_d") : 0;
}

int lwl_gcomm_sum_start(float *dev, size_t n)
{
    return ranks_on ? comm_failed(lwl_comm_sum_start(dev, n), "lwl_comm_sum_start") : 0;
}

int lwl_gcomm_sum_wait(void)
{
    return ranks_on ? comm_failed(lwl_comm_sum_wait(), "lwl_comm_sum_wait") : 0;
}

int lwl_gcomm_bcast(void *dev, size_t bytes)
{
    return ranks_on ? comm_failed(lwl_comm_bcast_bytes(dev, bytes), "lwl_comm_bcast_bytes")
                    : 0;
}

void lwl_gcomm_free(void)
{
    ranks_on = 0;
}
