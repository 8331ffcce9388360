/* Errors, element types and device discovery of the CUDA side (lwl_cuda.h). */
#include "lwl_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread char last_error[512];

size_t lwl_dtype_size(lwl_dtype t)
{
    return t == LWL_F32 ? 4 : 2;
}

const char *lwl_cuda_error(void)
{
    return last_error[0] ? last_error : "no CUDA error recorded";
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
    int n = 0;
    if (info)
        *info = NULL;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();     /* a missing driver is an answer here, not an error */
        return 0;
    }
    cudaDeviceProp pr;
    if (info && cudaGetDeviceProperties(&pr, 0) == cudaSuccess &&
        asprintf(info, "%d GPU%s, the first %s (%.0f GiB, compute capability %d.%d)", n,
                 n == 1 ? "" : "s", pr.name, pr.totalGlobalMem / 1073741824.0, pr.major,
                 pr.minor) < 0)
        *info = NULL;
    return n;
}
