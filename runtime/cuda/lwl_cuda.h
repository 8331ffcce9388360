/* The CUDA side of liblwl: checked calls of the CUDA runtime, cuDNN, cuBLAS and NCCL,
 * the element types of the GPU step, and the device-memory helpers the generated
 * net.cu and views.cu share. Callable from C (the driver) and from CUDA C++. */
#ifndef LWL_CUDA_H
#define LWL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The element type of activations on the GPU (train.precision): master weights, BN
 * statistics and every reduction stay fp32. */
typedef enum { LWL_F32 = 0, LWL_BF16 = 1, LWL_F16 = 2 } lwl_dtype;

/* Bytes of one element of t. */
size_t lwl_dtype_size(lwl_dtype t);

/* The message of the last failed call on this thread: "FILE:LINE: LIBRARY ERROR: call". */
const char *lwl_cuda_error(void);
/* Records a failure (the check macros below call it); returns -1. */
int lwl_cuda_fail(const char *file, int line, const char *lib, const char *what,
                  const char *call);

/* Whether a usable GPU is there (for --device auto), with its name and memory in *info
 * (a line, malloc'd) when not NULL. */
int lwl_cuda_available(char **info);

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#include <cuda_runtime.h>

/* Every call checked: a failure records FILE:LINE, the library's own message and the
 * call, and returns -1 from the enclosing function. */
#define CUDA_CK(call)                                                                    \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess)                                                           \
            return lwl_cuda_fail(__FILE__, __LINE__, "CUDA", cudaGetErrorString(e_), #call); \
    } while (0)

/* A kernel launch: the launch error now, the execution error at the next checked call. */
#define LAUNCH_CK() CUDA_CK(cudaGetLastError())
#endif

#endif
