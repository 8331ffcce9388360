/* cuDNN convolutions, cuBLAS GEMMs and device memory on one stream (lwl_gpu.h). The
 * algorithm of each convolution direction is the fastest deterministic one cuDNN's
 * heuristics offer within the workspace limit, chosen once when the shape is made, so
 * that a step gives the same bits every run (bit-exact resume on the GPU too). */
#include "lwl_gpu.h"

#include <cublas_v2.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDNN_CK(call)                                                                   \
    do {                                                                                 \
        cudnnStatus_t s_ = (call);                                                       \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                  \
            return lwl_cuda_fail(__FILE__, __LINE__, "cuDNN", cudnnGetErrorString(s_), #call); \
    } while (0)

#define CUBLAS_CK(call)                                                                  \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return lwl_cuda_fail(__FILE__, __LINE__, "cuBLAS", cublasGetStatusString(s_), \
                                 #call);                                                 \
    } while (0)

/* The same checks in functions that return a pointer. */
#define PTR_CK(expr)                                                                     \
    do {                                                                                 \
        if ((expr) != 0)                                                                 \
            return NULL;                                                                 \
    } while (0)

/* The largest workspace one convolution algorithm may use. */
#define WORKSPACE_LIMIT ((size_t)1 << 30)

static struct {
    int ready;
    lwl_dtype act;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    cublasComputeType_t gemm_compute;
    void *ws;
    size_t ws_size;
} g;

cudaStream_t lwl_gpu_stream(void)
{
    return g.stream;
}

int lwl_gpu_init(int device, lwl_dtype act)
{
    if (g.ready)
        return 0;
    CUDA_CK(cudaSetDevice(device));
    CUDA_CK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
    CUDNN_CK(cudnnCreate(&g.dnn));
    CUDNN_CK(cudnnSetStream(g.dnn, g.stream));
    CUBLAS_CK(cublasCreate(&g.blas));
    CUBLAS_CK(cublasSetStream(g.blas, g.stream));
    g.act = act;
    g.gemm_compute = act == LWL_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F_FAST_TF32;
    g.ready = 1;
    return 0;
}

void lwl_gpu_free(void)
{
    if (!g.ready)
        return;
    cudaStreamSynchronize(g.stream);
    cudaFree(g.ws);
    cublasDestroy(g.blas);
    cudnnDestroy(g.dnn);
    cudaStreamDestroy(g.stream);
    memset(&g, 0, sizeof g);
}

int lwl_gpu_sync(void)
{
    CUDA_CK(cudaStreamSynchronize(g.stream));
    return 0;
}

static int alloc_into(void **p, size_t bytes)
{
    *p = NULL;
    CUDA_CK(cudaMalloc(p, bytes ? bytes : 1));
    CUDA_CK(cudaMemsetAsync(*p, 0, bytes, g.stream));
    return 0;
}

void *lwl_gpu_alloc(size_t bytes)
{
    void *p;
    if (alloc_into(&p, bytes)) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

void lwl_gpu_release(void *p)
{
    if (p)
        cudaFree(p);
}

int lwl_gpu_put(void *dev, const void *host, size_t bytes)
{
    CUDA_CK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, g.stream));
    CUDA_CK(cudaStreamSynchronize(g.stream));
    return 0;
}

int lwl_gpu_get(void *host, const void *dev, size_t bytes)
{
    CUDA_CK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, g.stream));
    CUDA_CK(cudaStreamSynchronize(g.stream));
    return 0;
}

int lwl_gpu_copy(void *dst, const void *src, size_t bytes)
{
    CUDA_CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g.stream));
    return 0;
}

int lwl_gpu_zero(void *dev, size_t bytes)
{
    CUDA_CK(cudaMemsetAsync(dev, 0, bytes, g.stream));
    return 0;
}

/* Room for `bytes` of workspace (grown, never shrunk; all convolutions share it). */
static int workspace(size_t bytes)
{
    if (bytes <= g.ws_size)
        return 0;
    CUDA_CK(cudaStreamSynchronize(g.stream));
    cudaFree(g.ws);
    g.ws = NULL;
    g.ws_size = 0;
    CUDA_CK(cudaMalloc(&g.ws, bytes));
    g.ws_size = bytes;
    return 0;
}

/* ---- convolutions */

struct lwl_gconv {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t cf, cd, cw;   /* per direction: each has its math type */
    cudnnConvolutionFwdAlgo_t af;
    cudnnConvolutionBwdDataAlgo_t ad;
    cudnnConvolutionBwdFilterAlgo_t aw;
    size_t wsf, wsd, wsw;
    char what[160];
};

static cudnnDataType_t dnn_type(lwl_dtype t)
{
    return t == LWL_BF16 ? CUDNN_DATA_BFLOAT16 : t == LWL_F16 ? CUDNN_DATA_HALF
                                                               : CUDNN_DATA_FLOAT;
}

/* A result cuDNN offers that we take: it works, it is deterministic, it fits, and in
 * fp32 it is plain FMA arithmetic (no TF32). */
static int usable(cudnnStatus_t st, cudnnDeterminism_t det, size_t mem, cudnnMathType_t math)
{
    return st == CUDNN_STATUS_SUCCESS && det == CUDNN_DETERMINISTIC &&
           mem <= WORKSPACE_LIMIT && (g.act != LWL_F32 || math == CUDNN_FMA_MATH);
}

static int make_desc(cudnnConvolutionDescriptor_t *d, int stride, int pad)
{
    CUDNN_CK(cudnnCreateConvolutionDescriptor(d));
    CUDNN_CK(cudnnSetConvolution2dDescriptor(*d, pad, pad, stride, stride, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    return 0;
}

static int choose(lwl_gconv *cv)
{
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t pf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CK(cudnnGetConvolutionForwardAlgorithm_v7(g.dnn, cv->x, cv->w, cv->cf, cv->y,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, pf));
    int i = 0;
    while (i < got && !usable(pf[i].status, pf[i].determinism, pf[i].memory, pf[i].mathType))
        i++;
    if (i == got)
        return lwl_cuda_fail(__FILE__, __LINE__, "cuDNN", "no deterministic forward algorithm",
                             cv->what);
    cv->af = pf[i].algo;
    cv->wsf = pf[i].memory;
    CUDNN_CK(cudnnSetConvolutionMathType(cv->cf, pf[i].mathType));

    cudnnConvolutionBwdDataAlgoPerf_t pd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        g.dnn, cv->w, cv->y, cv->cd, cv->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, pd));
    for (i = 0; i < got && !usable(pd[i].status, pd[i].determinism, pd[i].memory,
                                   pd[i].mathType); i++)
        ;
    if (i == got)
        return lwl_cuda_fail(__FILE__, __LINE__, "cuDNN",
                             "no deterministic backward-data algorithm", cv->what);
    cv->ad = pd[i].algo;
    cv->wsd = pd[i].memory;
    CUDNN_CK(cudnnSetConvolutionMathType(cv->cd, pd[i].mathType));

    cudnnConvolutionBwdFilterAlgoPerf_t pw[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        g.dnn, cv->x, cv->y, cv->cw, cv->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, pw));
    for (i = 0; i < got && !usable(pw[i].status, pw[i].determinism, pw[i].memory,
                                   pw[i].mathType); i++)
        ;
    if (i == got)
        return lwl_cuda_fail(__FILE__, __LINE__, "cuDNN",
                             "no deterministic backward-filter algorithm", cv->what);
    cv->aw = pw[i].algo;
    cv->wsw = pw[i].memory;
    CUDNN_CK(cudnnSetConvolutionMathType(cv->cw, pw[i].mathType));
    size_t most = cv->wsf > cv->wsd ? cv->wsf : cv->wsd;
    return workspace(most > cv->wsw ? most : cv->wsw);
}

static int gconv_make(lwl_gconv *cv, int n, int c, int h, int w, int k, int r, int s,
                      int stride, int pad)
{
    cudnnDataType_t dt = dnn_type(g.act);
    int oh = (h + 2 * pad - r) / stride + 1, ow = (w + 2 * pad - s) / stride + 1;
    snprintf(cv->what, sizeof cv->what, "conv %dx%dx%dx%d -> %d, %dx%d stride %d pad %d", n, c,
             h, w, k, r, s, stride, pad);
    CUDNN_CK(cudnnCreateTensorDescriptor(&cv->x));
    CUDNN_CK(cudnnCreateTensorDescriptor(&cv->y));
    CUDNN_CK(cudnnCreateFilterDescriptor(&cv->w));
    CUDNN_CK(cudnnSetTensor4dDescriptor(cv->x, CUDNN_TENSOR_NHWC, dt, n, c, h, w));
    CUDNN_CK(cudnnSetTensor4dDescriptor(cv->y, CUDNN_TENSOR_NHWC, dt, n, k, oh, ow));
    CUDNN_CK(cudnnSetFilter4dDescriptor(cv->w, dt, CUDNN_TENSOR_NHWC, k, c, r, s));
    if (make_desc(&cv->cf, stride, pad) || make_desc(&cv->cd, stride, pad) ||
        make_desc(&cv->cw, stride, pad) || choose(cv))
        return -1;
    size_t l = strlen(cv->what);
    snprintf(cv->what + l, sizeof cv->what - l, ": fwd algo %d (%zu B), bwd data %d (%zu B), "
             "bwd filter %d (%zu B)", (int)cv->af, cv->wsf, (int)cv->ad, cv->wsd, (int)cv->aw,
             cv->wsw);
    return 0;
}

lwl_gconv *lwl_gconv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad)
{
    lwl_gconv *cv = (lwl_gconv *)calloc(1, sizeof *cv);
    if (!cv) {
        lwl_cuda_fail(__FILE__, __LINE__, "host", "out of memory", "lwl_gconv_new");
        return NULL;
    }
    if (gconv_make(cv, n, c, h, w, k, r, s, stride, pad)) {
        lwl_gconv_free(cv);
        return NULL;
    }
    return cv;
}

void lwl_gconv_free(lwl_gconv *cv)
{
    if (!cv)
        return;
    if (cv->x)
        cudnnDestroyTensorDescriptor(cv->x);
    if (cv->y)
        cudnnDestroyTensorDescriptor(cv->y);
    if (cv->w)
        cudnnDestroyFilterDescriptor(cv->w);
    if (cv->cf)
        cudnnDestroyConvolutionDescriptor(cv->cf);
    if (cv->cd)
        cudnnDestroyConvolutionDescriptor(cv->cd);
    if (cv->cw)
        cudnnDestroyConvolutionDescriptor(cv->cw);
    free(cv);
}

const char *lwl_gconv_describe(const lwl_gconv *cv)
{
    return cv->what;
}

int lwl_gconv_fwd(lwl_gconv *cv, const void *x, const void *wt, void *y)
{
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CK(cudnnConvolutionForward(g.dnn, &one, cv->x, x, cv->w, wt, cv->cf, cv->af, g.ws,
                                     cv->wsf, &zero, cv->y, y));
    return 0;
}

int lwl_gconv_bwd_data(lwl_gconv *cv, const void *dy, const void *wt, void *dx)
{
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CK(cudnnConvolutionBackwardData(g.dnn, &one, cv->w, wt, cv->y, dy, cv->cd, cv->ad,
                                          g.ws, cv->wsd, &zero, cv->x, dx));
    return 0;
}

int lwl_gconv_bwd_filter(lwl_gconv *cv, const void *x, const void *dy, void *dwt)
{
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CK(cudnnConvolutionBackwardFilter(g.dnn, &one, cv->x, x, cv->y, dy, cv->cw, cv->aw,
                                            g.ws, cv->wsw, &zero, cv->w, dwt));
    return 0;
}

/* ---- GEMMs: row-major C = A B is column-major C^T = B^T A^T */

static int gemm_as(cublasComputeType_t compute, int ta, int tb, int m, int n, int k,
                   float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                   float *c, int ldc)
{
    CUBLAS_CK(cublasGemmEx(g.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                           n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c,
                           CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int lwl_ggemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    return gemm_as(g.gemm_compute, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int lwl_ggemm_fp32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    return gemm_as(CUBLAS_COMPUTE_32F_PEDANTIC, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                   ldc);
}

int lwl_ggemm_batched(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                      int lda, long long sa, const float *b, int ldb, long long sb, float beta,
                      float *c, int ldc, long long sc, int count)
{
    CUBLAS_CK(cublasGemmStridedBatchedEx(
        g.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha,
        b, CUDA_R_32F, ldb, sb, a, CUDA_R_32F, lda, sa, &beta, c, CUDA_R_32F, ldc, sc, count,
        g.gemm_compute, CUBLAS_GEMM_DEFAULT));
    return 0;
}
