/* CPU fp32 primitives of the training step: convolution, max pooling and GEMM on oneDNN.
 * Shapes are fixed when an object is made; primitives, layout buffers and scratch are made
 * then too, so the calls of the step never allocate. */
#ifndef LWL_NN_H
#define LWL_NN_H

/* Functions returning int give 0 on success and -1 on failure, constructors NULL; the message
 * of the last failure of the calling thread is then in lwl_nn_error(). Nothing here exits. */
const char *lwl_nn_error(void);

/* Threads used by oneDNN (OpenMP) from now on; n >= 1. Results are deterministic run to run
 * for a fixed number of threads. */
int lwl_nn_threads(int n);

/* fn(ctx, i) for every i in [0, n), in parallel on the same OpenMP threads. */
void lwl_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx);

/* The activation layout, in which the step keeps its tensors to spare the convolutions a
 * reorder of their input and output per call: the channel block oneDNN prefers on this CPU
 * (16 with AVX-512, 8 with AVX2, 1 for plain NCHW), or -1 on failure. A tensor (n, c, h, w)
 * with c a multiple of the block b is stored (n, c / b, h, w, b); other tensors stay plain. */
int lwl_nn_act_block(void);

/* 2-D convolution without bias, groups 1, square stride and symmetric padding:
 * oh = (h + 2 pad - r) / stride + 1, ow = (w + 2 pad - s) / stride + 1.
 * Layouts: x (n, c, h, w), wt (k, c, r, s) as torchvision's OIHW, y (n, k, oh, ow). */
typedef struct lwl_conv lwl_conv;
lwl_conv *lwl_conv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad);
void lwl_conv_out_hw(const lwl_conv *cv, int *oh, int *ow);
/* The same with x, y, dx, dy in the activation layout (weights stay OIHW). */
lwl_conv *lwl_conv_new_act(int n, int c, int h, int w, int k, int r, int s, int stride,
                           int pad);
/* Algorithms: direct unless algo asks for oneDNN's Winograd F(4x4, 3x3) kernels, which do
 * fewer multiplications for a little more rounding: LWL_CONV_WINO_FWD for the forward,
 * LWL_CONV_WINO_BWD_DATA for the input gradient (the weight gradient stays direct). A
 * direction oneDNN has no Winograd kernel for (this CPU, this shape) stays direct;
 * lwl_conv_algo says what was made, lwl_nn_conv_algos counts it over the convolutions alive. */
enum { LWL_CONV_WINO_FWD = 1, LWL_CONV_WINO_BWD_DATA = 2 };
lwl_conv *lwl_conv_new_algo(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                            int act, int algo);
int lwl_conv_algo(const lwl_conv *cv);
void lwl_nn_conv_algos(int *convs, int *wino_fwd, int *wino_bwd_data);
int lwl_conv_fwd(lwl_conv *cv, const float *x, const float *wt, float *y);
/* dx (n, c, h, w) = gradient of the input from dy (n, k, oh, ow); overwrites dx. */
int lwl_conv_bwd_data(lwl_conv *cv, const float *dy, const float *wt, float *dx);
/* dwt (k, c, r, s) = gradient of the weights; overwrites dwt. */
int lwl_conv_bwd_weights(lwl_conv *cv, const float *x, const float *dy, float *dwt);
/* The same added into dwt: dwt += gradient, in one pass from oneDNN's layout. */
int lwl_conv_bwd_weights_add(lwl_conv *cv, const float *x, const float *dy, float *dwt);
void lwl_conv_free(lwl_conv *cv);

/* Weight holds: between lwl_nn_hold_weights(1) and lwl_nn_hold_weights(0) the caller promises
 * that the weight tensors it gives the convolutions do not change, and each convolution
 * reorders a weight tensor into its preferred layout once (two tensors per forward: online
 * and target) instead of on every call. A new hold forgets the last one's tensors. */
void lwl_nn_hold_weights(int hold);

/* Max pooling k x k with stride and padding (padding never wins; ResNet's stem: 3, 2, 1).
 * x (n, c, h, w), y (n, c, oh, ow), oh = (h + 2 pad - k) / stride + 1. fwd keeps the positions
 * of the maxima inside the object; bwd routes dy (n, c, oh, ow) to them and overwrites dx
 * (n, c, h, w). bwd uses the positions of the latest fwd. */
typedef struct lwl_pool lwl_pool;
lwl_pool *lwl_maxpool_new(int n, int c, int h, int w, int k, int stride, int pad);
void lwl_maxpool_out_hw(const lwl_pool *p, int *oh, int *ow);
lwl_pool *lwl_maxpool_new_act(int n, int c, int h, int w, int k, int stride, int pad);
int lwl_maxpool_fwd(lwl_pool *p, const float *x, float *y);
int lwl_maxpool_bwd(lwl_pool *p, const float *dy, float *dx);
void lwl_maxpool_free(lwl_pool *p);

/* A tensor (n, c, h, w) converted between plain NCHW and the activation layout (a copy when
 * they are the same). */
typedef struct lwl_act_reorder lwl_act_reorder;
lwl_act_reorder *lwl_act_reorder_new(int n, int c, int h, int w);
int lwl_act_to_plain(lwl_act_reorder *r, const float *x, float *y);
int lwl_act_from_plain(lwl_act_reorder *r, const float *x, float *y);
void lwl_act_reorder_free(lwl_act_reorder *r);

/* Row-major C (m, n) = alpha op(A) op(B) + beta C (oneDNN's sgemm), op(A) (m, k), op(B) (k, n);
 * trans_a != 0 means A is stored (k, m). Checks the sizes and leading dimensions. */
int lwl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

#endif
