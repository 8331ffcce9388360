/* The GPU views' host side (lwl_views.h): pinned staging blocks for the loader, and for each
 * staged batch one upload on a copy stream, the two views' kernels side by side, and the
 * events that keep the device buffers of one batch alive until its kernels are done. */
#include "lwl_views.h"

#include <stdio.h>
#include <stdlib.h>

#include "lwl_views_dev.h"

void *lwl_views_host_alloc(void *arg, size_t bytes, char *err, size_t errlen)
{
    void *p = NULL;
    cudaError_t e = arg ? cudaSetDevice(*(const int *)arg) : cudaSuccess;

    if (e == cudaSuccess)
        e = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "cudaHostAlloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

void lwl_views_host_free(void *arg, void *p)
{
    cudaError_t e = cudaFreeHost(p);

    (void)arg;
    if (e != cudaSuccess)
        fprintf(stderr, "lwl: cudaFreeHost: %s\n", cudaGetErrorString(e));
}

/* Two turns alternate, so that a batch's upload can overlap the previous batch's views. */
struct lwl_views_gpu {
    lwl_views_spec spec;
    int smem, max_batch, turn;
    cudaStream_t copy, side;        /* the uploads; the second view */
    cudaEvent_t up[2], done[2];     /* per turn: its upload, its views finished */
    cudaEvent_t fork, join;         /* the second view's start and end */
    uint8_t *stage[2];              /* per turn: the device copy of a staged batch */
    size_t stage_cap[2];
    uint64_t *off_h, *off_d[2];     /* (max_batch, 2) scratch offsets: pinned, per turn */
    uint8_t *scratch;               /* the kernels' global scratch (one batch at a time) */
    size_t scratch_cap;
};

/* A failed call in a function that cannot stop (close): recorded, the rest still done. */
static void ck(cudaError_t e, const char *call, int line)
{
    if (e != cudaSuccess)
        lwl_cuda_fail(__FILE__, line, "CUDA", cudaGetErrorString(e), call);
}
#define CK_GO_ON(call) ck((call), #call, __LINE__)

void lwl_views_gpu_close(lwl_views_gpu *g)
{
    if (!g)
        return;
    for (int t = 0; t < 2; t++) {
        if (g->done[t])
            CK_GO_ON(cudaEventSynchronize(g->done[t]));
    }
    for (int t = 0; t < 2; t++) {
        if (g->up[t])
            CK_GO_ON(cudaEventDestroy(g->up[t]));
        if (g->done[t])
            CK_GO_ON(cudaEventDestroy(g->done[t]));
        CK_GO_ON(cudaFree(g->stage[t]));
        CK_GO_ON(cudaFree(g->off_d[t]));
    }
    if (g->fork)
        CK_GO_ON(cudaEventDestroy(g->fork));
    if (g->join)
        CK_GO_ON(cudaEventDestroy(g->join));
    if (g->copy)
        CK_GO_ON(cudaStreamDestroy(g->copy));
    if (g->side)
        CK_GO_ON(cudaStreamDestroy(g->side));
    CK_GO_ON(cudaFreeHost(g->off_h));
    CK_GO_ON(cudaFree(g->scratch));
    free(g);
}

/* The parts of open that can fail, on a zeroed g. */
static int gpu_ready(lwl_views_gpu *g, int max_batch)
{
    int dev, optin;

    CUDA_CK(cudaGetDevice(&dev));
    CUDA_CK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    g->smem = (int)lwl_v_smem_for(g->spec.size, LWL_VIEW_THREADS, (size_t)optin);
    if (g->smem == 0)
        return lwl_cuda_fail(__FILE__, __LINE__, "lwl", "too little shared memory for a view",
                             "lwl_v_smem_for");
    CUDA_CK(cudaStreamCreateWithFlags(&g->copy, cudaStreamNonBlocking));
    CUDA_CK(cudaStreamCreateWithFlags(&g->side, cudaStreamNonBlocking));
    for (int t = 0; t < 2; t++) {
        CUDA_CK(cudaEventCreateWithFlags(&g->up[t], cudaEventDisableTiming));
        CUDA_CK(cudaEventCreateWithFlags(&g->done[t], cudaEventDisableTiming));
        CUDA_CK(cudaMalloc((void **)&g->off_d[t], sizeof(uint64_t) * 2 * max_batch));
    }
    CUDA_CK(cudaEventCreateWithFlags(&g->fork, cudaEventDisableTiming));
    CUDA_CK(cudaEventCreateWithFlags(&g->join, cudaEventDisableTiming));
    CUDA_CK(cudaHostAlloc((void **)&g->off_h, sizeof(uint64_t) * 2 * max_batch,
                          cudaHostAllocPortable));
    return 0;
}

int lwl_views_gpu_open(lwl_views_gpu **out, const lwl_views_spec *spec, int max_batch)
{
    lwl_views_gpu *g = (lwl_views_gpu *)calloc(1, sizeof *g);

    *out = NULL;
    if (!g)
        return lwl_cuda_fail(__FILE__, __LINE__, "lwl", "out of memory", "calloc");
    if (max_batch < 1) {
        free(g);
        return lwl_cuda_fail(__FILE__, __LINE__, "lwl", "max_batch must be at least 1",
                             "lwl_views_gpu_open");
    }
    g->spec = *spec;
    g->max_batch = max_batch;
    if (gpu_ready(g, max_batch)) {
        lwl_views_gpu_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int lwl_views_gpu_smem(const lwl_views_gpu *g)
{
    return g->smem;
}

/* A device buffer of at least `want` bytes in *p (cap *cap), replaced once the work
 * before events a and b (the last that may read it) is done. */
static int grow(uint8_t **p, size_t *cap, size_t want, cudaEvent_t a, cudaEvent_t b)
{
    if (want <= *cap)
        return 0;
    want += want / 4;
    CUDA_CK(cudaEventSynchronize(a));
    CUDA_CK(cudaEventSynchronize(b));
    CUDA_CK(cudaFree(*p));
    *p = NULL;
    *cap = 0;
    CUDA_CK(cudaMalloc((void **)p, want));
    *cap = want;
    return 0;
}

int lwl_views_gpu_make(lwl_views_gpu *g, const lwl_stage *b, void *const out[2],
                       cudaStream_t s)
{
    int t = g->turn, S = g->spec.size;
    size_t nvs = (size_t)b->n * 2, scratch;

    if (b->n == 0)
        return 0;
    if (b->n > g->max_batch || b->nviews != 2 || b->size != S) {
        char what[160];

        snprintf(what, sizeof what, "a staged batch of %d samples x %d views at %d px for "
                 "views of %d px, batches up to %d", b->n, b->nviews, b->size, S, g->max_batch);
        return lwl_cuda_fail(__FILE__, __LINE__, "lwl", what, "lwl_views_gpu_make");
    }
    g->turn ^= 1;

    /* Where each view sample's global scratch is, then room for this batch: the turn's
     * copy was last read by its previous views, the scratch by the previous batch's. */
    scratch = lwl_v_scratch_offsets(b->params, b->n, 2, S, LWL_VIEW_THREADS, (size_t)g->smem,
                                    g->off_h);
    if (grow(&g->stage[t], &g->stage_cap[t], b->bytes, g->done[t], g->done[t]) ||
        grow(&g->scratch, &g->scratch_cap, scratch, g->done[0], g->done[1]))
        return -1;

    /* The upload, on the copy stream once the turn's buffers are free. */
    CUDA_CK(cudaStreamWaitEvent(g->copy, g->done[t], 0));
    CUDA_CK(cudaMemcpyAsync(g->stage[t], b->base, b->bytes, cudaMemcpyHostToDevice, g->copy));
    CUDA_CK(cudaMemcpyAsync(g->off_d[t], g->off_h, sizeof(uint64_t) * nvs,
                            cudaMemcpyHostToDevice, g->copy));
    CUDA_CK(cudaEventRecord(g->up[t], g->copy));

    /* View 1 on s, view 2 beside it on the side stream, both after the upload, after
     * what s holds and after the previous batch's views (the scratch is shared). */
    CUDA_CK(cudaStreamWaitEvent(s, g->up[t], 0));
    CUDA_CK(cudaStreamWaitEvent(s, g->done[t ^ 1], 0));
    CUDA_CK(cudaEventRecord(g->fork, s));
    CUDA_CK(cudaStreamWaitEvent(g->side, g->fork, 0));
    for (int v = 0; v < 2; v++) {
        lwl_vargs a;

        a.params = (const lwl_view_params *)(const void *)g->stage[t];
        a.pixels = g->stage[t] + b->pixel_off;
        a.scratch = g->scratch;
        a.scratch_off = g->off_d[t];
        a.out = out[v];
        a.nviews = 2;
        a.view = v;
        a.size = S;
        a.smem = g->smem;
        if (g->spec.launch(v, &a, b->n, v == 0 ? s : g->side))
            return -1;
    }
    CUDA_CK(cudaEventRecord(g->join, g->side));
    CUDA_CK(cudaStreamWaitEvent(s, g->join, 0));
    CUDA_CK(cudaEventRecord(g->done[t], s));

    /* b is the loader's until the copy is done; then it may be reused. */
    CUDA_CK(cudaEventSynchronize(g->up[t]));
    return 0;
}
