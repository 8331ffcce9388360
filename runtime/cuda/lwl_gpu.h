/* The GPU primitives of the generated step: one device, one stream, cuDNN convolutions on
 * NHWC activations (deterministic algorithms, chosen once per shape), row-major GEMMs on
 * cuBLAS, device memory. The GPU twin of lwl_nn.h; the fused element-wise and reduction
 * kernels around these calls are the generated code's (gpu_ops.cuh, gpu_kernels.h). */
#ifndef LWL_GPU_H
#define LWL_GPU_H

#include <stddef.h>

#include "lwl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Selects device `device`, makes the stream and the cuDNN and cuBLAS handles; act is
 * the activations' type. Convolutions of fp32 activations and every GEMM in fp32 mode
 * use true fp32 arithmetic; with bf16 / fp16 activations the head's fp32 GEMMs use
 * TF32 tensor cores. 0 or -1 (lwl_cuda_error). */
int lwl_gpu_init(int device, lwl_dtype act);
void lwl_gpu_free(void);
/* Waits for the stream. 0 or -1. */
int lwl_gpu_sync(void);

#ifdef __CUDACC__
cudaStream_t lwl_gpu_stream(void);
#endif

/* Device memory, checked; lwl_gpu_alloc zeroes it. NULL (lwl_cuda_error) on failure. */
void *lwl_gpu_alloc(size_t bytes);
void lwl_gpu_release(void *p);
/* Host <-> device copies on the stream, synchronous (they wait). 0 or -1. */
int lwl_gpu_put(void *dev, const void *host, size_t bytes);
int lwl_gpu_get(void *host, const void *dev, size_t bytes);
int lwl_gpu_copy(void *dst, const void *src, size_t bytes);
int lwl_gpu_zero(void *dev, size_t bytes);

/* A convolution of n images (c, h, w) NHWC by k filters r x s (KRSC), stride, padding,
 * no bias, groups 1, in the activation type; its output is (n, oh, ow, k) NHWC. */
typedef struct lwl_gconv lwl_gconv;
lwl_gconv *lwl_gconv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad);
int lwl_gconv_fwd(lwl_gconv *cv, const void *x, const void *wt, void *y);
/* dx (overwritten) */
int lwl_gconv_bwd_data(lwl_gconv *cv, const void *dy, const void *wt, void *dx);
/* dwt (KRSC, overwritten) */
int lwl_gconv_bwd_filter(lwl_gconv *cv, const void *x, const void *dy, void *dwt);
/* A line naming the algorithms and workspace chosen, for lwlc --report and the log. */
const char *lwl_gconv_describe(const lwl_gconv *cv);
void lwl_gconv_free(lwl_gconv *cv);

/* Row-major fp32 C = alpha op(A) op(B) + beta C, op(A) (m, k), op(B) (k, n): the
 * semantics of lwl_gemm (lwl_nn.h). 0 or -1. */
int lwl_ggemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
/* lwl_ggemm in true fp32 arithmetic whatever the activations (cuBLAS's pedantic fp32, never
 * TF32): the kNN's similarities, whose neighbours must be the CPU's. */
int lwl_ggemm_fp32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);
/* The same `count` times, the i-th with A + i sa, B + i sb, C + i sc. */
int lwl_ggemm_batched(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                      int lda, long long sa, const float *b, int ldb, long long sb, float beta,
                      float *c, int ldc, long long sc, int count);

/* ---- the GPUs of a data-parallel run (NCCL), one rank per GPU */

/* Joins the NCCL communicator of `world` ranks as rank `rank`: rank 0 makes the id and
 * hands it to the others through MPI when the run has MPI (lwl_comm), over TCP for
 * torchrun's ranks (lwl_comm_tcp_share), else through the file `idfile` (written to a
 * temporary name and renamed; the others wait for it). */
int lwl_gcomm_init(int rank, int world, const char *idfile);
/* In-place sums over the ranks of device buffers, on the step's stream. 0 or -1. */
int lwl_gcomm_sum_f(float *dev, size_t n);
int lwl_gcomm_sum_d(double *dev, size_t n);
/* The gradients' sum over the ranks in buckets, overlapping the backward pass: the bucket
 * dev[0..n) is summed in place on a stream of its own once the step's stream has made it
 * (an event), while the step's stream goes on; the step's stream waits for every bucket
 * started at lwl_gcomm_sum_wait (before the optimiser). 0 or -1. */
int lwl_gcomm_sum_start(float *dev, size_t n);
int lwl_gcomm_sum_wait(void);
/* Rank 0's device buffer to every rank. */
int lwl_gcomm_bcast(void *dev, size_t bytes);
void lwl_gcomm_free(void);

#ifdef __cplusplus
}
#endif

#endif
