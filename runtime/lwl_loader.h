/* The view interface between generated code and the runtime, and the loader: worker
 * threads decode each sample once (the union of its views' regions), make its views (or,
 * staging for the GPU, leave their params and source pixels) and fill a bounded ring of
 * batches, identical whatever the thread count. */
#ifndef LWL_LOADER_H
#define LWL_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "lwl_augment.h"
#include "lwl_dataset.h"
#include "lwl_decode.h"

/* The decoded pixels a view reads: the region [ox, ox+im.w) x [oy, oy+im.h) of a source
 * image of full_w x full_h pixels. */
typedef struct lwl_src {
    lwl_image im;
    int ox, oy, full_w, full_h;
} lwl_src;

/* Growable text; oom is set (and kept) when an append ran out of memory. */
typedef struct lwl_strbuf {
    char *s;
    size_t len, cap;
    int oom;
} lwl_strbuf;

/* Appends printf-formatted text; 0, or -1 (oom set). s stays NUL-terminated. */
int lwl_strbuf_printf(lwl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lwl_strbuf_free(lwl_strbuf *b);

typedef struct lwl_view_def {
    /* The source box the view will read for this sample (the crop box drawn from the RNG,
     * or the resize + centre-crop window); must draw exactly what make() draws. */
    lwl_box (*region)(int full_w, int full_h, uint64_t seed, uint32_t epoch, uint32_t index);
    /* Makes the view: out is size x size x 3 uint8 before normalisation. When rec is not
     * NULL, appends the JSON array of the ops that fired (params.jsonl's "ops"). 0 or -1. */
    int (*make)(const lwl_src *src, uint64_t seed, uint32_t epoch, uint32_t index,
                uint8_t *out, lwl_strbuf *rec);
    /* What make() draws for this sample, as plain values for the GPU kernel (vp->src is
     * region()'s box; vp->pixels is left 0). NULL: the view cannot be staged. */
    void (*params)(int full_w, int full_h, uint64_t seed, uint32_t epoch, uint32_t index,
                   lwl_view_params *vp);
} lwl_view_def;

typedef struct lwl_pipeline {
    int size, nviews;                 /* nviews 1 (evaluation) or 2 (pre-training) */
    lwl_view_def view[2];
    /* ToTensor + Normalize with the spec's constants: u8 (size,size,3) -> chw (3,size,size). */
    void (*normalize)(const uint8_t *u8, float *chw);
} lwl_pipeline;

/* ---- helpers for make(): the first op of every view reads the source ---- */

/* torchvision resized_crop of `box` (source pixels; inside the decoded region) to
 * size x size into out. 0, or -1 out of memory. */
int lwl_src_resized_crop(const lwl_src *src, lwl_box box, int size, uint8_t *out);

/* Resize(short_side) + CenterCrop(size) of the source into out; the region must cover
 * lwl_resize_center_crop_box(full_w, full_h, short_side, size). */
int lwl_src_resize_center_crop(const lwl_src *src, int short_side, int size, uint8_t *out);
lwl_box lwl_resize_center_crop_box(int full_w, int full_h, int short_side, int size);

/* The first op's part of params(): vp->src, dom, rw, rh, x0, y0 (and LWL_VP_CROP) of a
 * resized_crop of `box`, or of Resize(short_side) + CenterCrop(size) of the whole image. */
void lwl_params_resized_crop(lwl_view_params *vp, lwl_box box, int size);
void lwl_params_resize_center_crop(lwl_view_params *vp, int full_w, int full_h, int short_side,
                                   int size);

/* Appends the JSON of the ops (no brackets, comma-led unless first): */
void lwl_rec_resized_crop(lwl_strbuf *rec, int first, lwl_box b);
void lwl_rec_jitter(lwl_strbuf *rec, int first, const lwl_jitter *j);

/* ---- one sample: read, decode the union of the views' regions, make the views ---- */

/* Makes the pipeline's views of one file into out[v] (size x size x 3 each). rec[v] (or
 * NULL) collects the ops. 0; -1 when the file is unreadable (st->msg says why; a decode
 * that worked with a warning returns 0 with st->warning set); -2 out of memory. */
int lwl_sample_views(const lwl_pipeline *p, const char *path, uint64_t seed, uint32_t epoch,
                     uint32_t index, uint8_t *out[2], lwl_strbuf *rec[2],
                     lwl_decode_status *st);

/* The staging of one file (the loader's staging mode): reads it, draws every view's params
 * into vp[v] and decodes the union of their source boxes into *src (free src->im.px). The
 * return codes of lwl_sample_views. */
int lwl_sample_stage(const lwl_pipeline *p, const char *path, uint64_t seed, uint32_t epoch,
                     uint32_t index, lwl_view_params vp[2], lwl_src *src, lwl_decode_status *st);

/* ---- the fixed evaluation pipelines (depend only on size, mean, std) ---- */

typedef struct {
    int size;              /* output side, e.g. 224 */
    float mean[3], std[3]; /* Normalize's constants */
} lwl_eval_cfg;

/* Sets the configuration the evaluation views and their normalize use (process-wide,
 * once, before any loader uses them; the last call wins). */
void lwl_eval_configure(const lwl_eval_cfg *cfg);

/* Resize(size * 8 / 7, short side) + CenterCrop(size): Resize(256) + CenterCrop(224) at
 * 224. No random draw. */
lwl_view_def lwl_eval_view(const lwl_eval_cfg *cfg);

/* RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) + RandomHorizontalFlip(0.5),
 * keyed as view 1, slots 0 (crop) and 1 (flip). */
lwl_view_def lwl_linear_train_view(const lwl_eval_cfg *cfg);

/* ToTensor + Normalize with the configured size, mean and std. */
void lwl_eval_normalize(const uint8_t *u8, float *chw);

/* One-view pipelines of the above (configure included). */
lwl_pipeline lwl_eval_pipeline(const lwl_eval_cfg *cfg);
lwl_pipeline lwl_linear_train_pipeline(const lwl_eval_cfg *cfg);

/* ---- the loader ---- */

/* Called (from a worker thread, serialised by the loader) once per file the first time it
 * fails (fatal 1: replaced) or decodes with a warning (fatal 0: used as decoded). */
typedef void (*lwl_report_fn)(void *arg, const char *path, const char *reason, int fatal);

typedef struct {
    const lwl_pipeline *pipe;
    const lwl_item *items;    /* the split, in file order */
    size_t n;
    int batch;                /* samples per batch of this rank */
    int rank, world;          /* world >= 1; the global batch is batch * world */
    int shuffle;              /* 1: a new permutation each epoch; 0: file order */
    int keep_last;            /* 1: keep the last partial global batch (else dropped) */
    uint64_t seed;            /* permutation and augmentation seed */
    int threads;              /* worker threads >= 1 */
    int depth;                /* batches in the ring (0: 2) */
    lwl_report_fn report;     /* NULL: one line on stderr */
    void *report_arg;
    /* Staging mode (stage 1, for the GPU views): instead of the normalised views, each batch
     * holds, in lwl_batch.stage, every sample's view params and the source pixels of each
     * view (lwl_stage); every view of the pipeline needs params(). The block of a batch comes
     * from stage_alloc (NULL: malloc; on failure it returns NULL and may write why into err)
     * and goes back to stage_free (NULL: free); it is replaced by a larger one when a batch
     * needs more. */
    int stage;
    void *(*stage_alloc)(void *arg, size_t bytes, char *err, size_t errlen);
    void (*stage_free)(void *arg, void *p);
    void *stage_arg;
} lwl_loader_cfg;

/* A batch; its buffers belong to the loader and stay valid until the next
 * lwl_loader_next or lwl_loader_epoch call. */
typedef struct {
    int n;                    /* samples (batch, or fewer in a kept last batch) */
    float *view[2];           /* (batch, 3, size, size) per view; view[1] NULL for 1 view;
                               * both NULL in staging mode */
    const lwl_stage *stage;   /* staging mode: the staged batch (n samples); else NULL */
    int64_t *label;           /* (batch) */
    uint32_t *index;          /* (batch) index into the split of the image in each row */
    double wait_ms;           /* how long lwl_loader_next waited for it */
} lwl_batch;

typedef struct lwl_loader lwl_loader;

/* Starts the workers. NULL with *err a malloc'd message (free it) on a bad configuration
 * or when out of resources. */
lwl_loader *lwl_loader_open(const lwl_loader_cfg *cfg, char **err);

/* Starts epoch `epoch` (abandoning what is left of the previous one); returns the
 * number of batches this rank gets in it (the same on every rank). */
int lwl_loader_epoch(lwl_loader *ld, uint32_t epoch);

/* The next batch of the epoch: 1, 0 at the end, -1 on an error (lwl_loader_error). */
int lwl_loader_next(lwl_loader *ld, lwl_batch *b);
const char *lwl_loader_error(const lwl_loader *ld);
void lwl_loader_close(lwl_loader *ld);

/* The sample order of an epoch: perm[i] = index of the i-th sample (n entries).
 * Fisher-Yates keyed by (seed, epoch) in Philox view 0xFFFE. */
void lwl_epoch_order(uint64_t seed, uint32_t epoch, int shuffle, size_t n, uint32_t *perm);

/* Batches per epoch and the positions [*start, *start + *count) of the epoch order that
 * batch b of `rank` holds. */
int lwl_epoch_batches(size_t n, int batch, int world, int keep_last);
void lwl_batch_span(size_t n, int batch, int world, int rank, int b, size_t *start,
                    int *count);

#endif
