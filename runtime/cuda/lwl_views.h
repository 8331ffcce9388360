/* The GPU views' host side: what the generated views.cu of every spec defines (the API the
 * GPU network calls), the loader's pinned staging blocks, and the upload and launches of a
 * staged batch (lwl_views.cu) that views.cu drives. Callable from C and CUDA C++. */
#ifndef LWL_VIEWS_H
#define LWL_VIEWS_H

#include <stddef.h>
#include <stdint.h>

#include "lwl_augment.h"
#include "lwl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;             /* cudaStream_t is a struct CUstream_st * */
struct lwl_vargs;

/* ---- defined by the generated views.cu (one per program) ---- */

/* Readies the views of batches of up to max_batch samples on the current device: streams,
 * events, and the kernels' shared memory (the device's opt-in maximum, e.g. 227 KB on sm_90
 * and 163 KB on sm_80, or less when the views are small). 0, or -1 (lwl_cuda_error()). */
int views_cuda_init(int max_batch);

/* Uploads the staged batch b (one copy of b->bytes from b->base, pinned) and makes both
 * views: view1 and view2 are device buffers of (b->n, views_cuda_size, views_cuda_size, 3)
 * elements of views_cuda_dtype, ToTensor + Normalize of the spec, rounded to nearest. The
 * work is queued after what s holds and the views are ready in s's order; it returns once
 * b is copied, so b (and the loader's batch) may be reused. 0, or -1 (lwl_cuda_error()). */
int views_cuda_make(const lwl_stage *b, void *view1, void *view2, struct CUstream_st *s);

/* Frees what views_cuda_init made, after the views in flight (also after a failed init). */
void views_cuda_free(void);

/* The view side and the element type views.cu writes (the spec's size and precision). */
extern const int views_cuda_size;
extern const lwl_dtype views_cuda_dtype;

/* ---- the loader's staging blocks in pinned memory: lwl_loader_cfg.stage_alloc and
 * stage_free, with stage_arg a pointer to the device number (set on the calling worker
 * thread first; NULL: that thread's current device) ---- */
void *lwl_views_host_alloc(void *arg, size_t bytes, char *err, size_t errlen);
void lwl_views_host_free(void *arg, void *p);

/* ---- the machinery behind views.cu ---- */

/* Launches the kernel of view `view` (0, 1) for the n samples of a on stream s. 0 or -1. */
typedef int (*lwl_views_launch_fn)(int view, const struct lwl_vargs *a, int n,
                                   struct CUstream_st *s);

typedef struct {
    int size;                   /* the views' side */
    size_t out_elem;            /* bytes of an output element */
    lwl_views_launch_fn launch;
} lwl_views_spec;

typedef struct lwl_views_gpu lwl_views_gpu;

/* *g for batches of up to max_batch samples; the shared bytes a kernel must be allowed
 * (cudaFuncAttributeMaxDynamicSharedMemorySize) are lwl_views_gpu_smem(*g). 0 or -1. */
int lwl_views_gpu_open(lwl_views_gpu **g, const lwl_views_spec *spec, int max_batch);
int lwl_views_gpu_smem(const lwl_views_gpu *g);

/* views_cuda_make for the kernels of g->spec: out[v] receives view v. 0 or -1. */
int lwl_views_gpu_make(lwl_views_gpu *g, const lwl_stage *b, void *const out[2],
                       struct CUstream_st *s);

/* Waits for the views in flight and frees g (NULL is fine). */
void lwl_views_gpu_close(lwl_views_gpu *g);

#ifdef __cplusplus
}
#endif

#endif
