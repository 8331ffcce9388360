/* The loader: sample order per epoch (Philox Fisher-Yates), each sample decoded once for
 * both views (the union of their regions), worker threads filling a ring of batches with
 * the views or, staging for the GPU, their params and source pixels; and the two fixed
 * evaluation views. Every output is a pure function of (seed, epoch, split). */
#include "lwl_loader.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwl_philox.h"

/* ---- text ---- */

int lwl_strbuf_printf(lwl_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return -1;
    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return -1;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }

        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return -1;
        }
        b->s = s;
        b->cap = cap;
    }
}

void lwl_strbuf_free(lwl_strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

void lwl_rec_resized_crop(lwl_strbuf *rec, int first, lwl_box b)
{
    lwl_strbuf_printf(rec, "%s{\"op\": \"resized_crop\", \"top\": %d, \"left\": %d, "
                      "\"height\": %d, \"width\": %d}", first ? "" : ", ", b.top, b.left,
                      b.height, b.width);
}

void lwl_rec_jitter(lwl_strbuf *rec, int first, const lwl_jitter *j)
{
    static const char *const names[4] = { "brightness", "contrast", "saturation", "hue" };

    lwl_strbuf_printf(rec, "%s{\"op\": \"color_jitter\", \"order\": [\"%s\", \"%s\", \"%s\", "
                      "\"%s\"], \"brightness\": %.17g, \"contrast\": %.17g, "
                      "\"saturation\": %.17g, \"hue\": %.17g}", first ? "" : ", ",
                      names[j->order[0]], names[j->order[1]], names[j->order[2]],
                      names[j->order[3]], j->brightness, j->contrast, j->saturation, j->hue);
}

/* ---- the first op of a view ---- */

int lwl_src_resized_crop(const lwl_src *src, lwl_box box, int size, uint8_t *out)
{
    int x = box.left - src->ox, y = box.top - src->oy;
    const uint8_t *origin;

    if (x < 0 || y < 0 || x + box.width > src->im.w || y + box.height > src->im.h)
        return -1;
    origin = src->im.px + ((size_t)y * src->im.w + x) * 3;
    return lwl_resize_window(origin, box.width, box.height, (ptrdiff_t)src->im.w * 3, size,
                             size, 0, 0, size, size, out);
}

/* The resized size and the centre crop's corner (torchvision: int(round((H - size) / 2)),
 * half to even). */
static void center_window(int full_w, int full_h, int short_side, int size, int *rw, int *rh,
                          int *left, int *top)
{
    lwl_resize_short_size(full_w, full_h, short_side, rw, rh);
    *top = (int)nearbyint((*rh - size) / 2.0);
    *left = (int)nearbyint((*rw - size) / 2.0);
}

lwl_box lwl_resize_center_crop_box(int full_w, int full_h, int short_side, int size)
{
    int rw, rh, left, top;

    center_window(full_w, full_h, short_side, size, &rw, &rh, &left, &top);
    return lwl_resize_window_box(full_w, full_h, rw, rh, left, top, size, size);
}

int lwl_src_resize_center_crop(const lwl_src *src, int short_side, int size, uint8_t *out)
{
    int rw, rh, left, top;
    lwl_box need;

    center_window(src->full_w, src->full_h, short_side, size, &rw, &rh, &left, &top);
    need = lwl_resize_window_box(src->full_w, src->full_h, rw, rh, left, top, size, size);
    if (need.left < src->ox || need.top < src->oy ||
        need.left + need.width > src->ox + src->im.w ||
        need.top + need.height > src->oy + src->im.h)
        return -1;
    return lwl_resize_window_at(src->im.px, (ptrdiff_t)src->im.w * 3, src->ox, src->oy,
                                src->full_w, src->full_h, rw, rh, left, top, size, size, out);
}

void lwl_params_resized_crop(lwl_view_params *vp, lwl_box box, int size)
{
    vp->fired |= LWL_VP_CROP;
    vp->src = vp->dom = box;
    vp->rw = vp->rh = size;
    vp->x0 = vp->y0 = 0;
}

void lwl_params_resize_center_crop(lwl_view_params *vp, int full_w, int full_h, int short_side,
                                   int size)
{
    lwl_box whole = { 0, 0, full_h, full_w };

    vp->fired &= ~(uint32_t)LWL_VP_CROP;
    vp->dom = whole;
    center_window(full_w, full_h, short_side, size, &vp->rw, &vp->rh, &vp->x0, &vp->y0);
    vp->src = lwl_resize_window_box(full_w, full_h, vp->rw, vp->rh, vp->x0, vp->y0, size, size);
}

/* ---- one sample ---- */

static lwl_box box_union(lwl_box a, lwl_box b)
{
    int top = a.top < b.top ? a.top : b.top, left = a.left < b.left ? a.left : b.left;
    int bottom = a.top + a.height > b.top + b.height ? a.top + a.height : b.top + b.height;
    int right = a.left + a.width > b.left + b.width ? a.left + a.width : b.left + b.width;
    lwl_box u = { top, left, bottom - top, right - left };

    return u;
}

/* Reads the file (*buf, malloc'd) and its size from the header into src->full_w, full_h.
 * 0, or -1 (st says why). */
static int sample_read(const char *path, uint8_t **buf, size_t *len, lwl_src *src,
                       lwl_decode_status *st)
{
    *buf = NULL;
    if (lwl_read_file(path, buf, len, st))
        return -1;
    return lwl_image_size(*buf, *len, &src->full_w, &src->full_h, st);
}

/* Decodes the union of boxes b[0..n) into src. 0, or -1. */
static int sample_decode(const uint8_t *buf, size_t len, const lwl_box *b, int n, lwl_src *src,
                         lwl_decode_status *st)
{
    lwl_box box = b[0];

    for (int v = 1; v < n; v++)
        box = box_union(box, b[v]);
    return lwl_decode_region(buf, len, box, &src->im, &src->ox, &src->oy, st);
}

int lwl_sample_views(const lwl_pipeline *p, const char *path, uint64_t seed, uint32_t epoch,
                     uint32_t index, uint8_t *out[2], lwl_strbuf *rec[2],
                     lwl_decode_status *st)
{
    lwl_src src = { { 0, 0, NULL }, 0, 0, 0, 0 };
    uint8_t *buf = NULL;
    size_t len;
    lwl_box box[2];
    int rc = -1;

    /* The header gives the size the regions are drawn for; the union is decoded. */
    if (sample_read(path, &buf, &len, &src, st))
        goto done;
    for (int v = 0; v < p->nviews; v++)
        box[v] = p->view[v].region(src.full_w, src.full_h, seed, epoch, index);
    if (sample_decode(buf, len, box, p->nviews, &src, st))
        goto done;

    /* The views, from the same decoded pixels. */
    rc = 0;
    for (int v = 0; v < p->nviews && rc == 0; v++)
        if (p->view[v].make(&src, seed, epoch, index, out[v], rec ? rec[v] : NULL))
            rc = -2;
    if (rc == -2)
        snprintf(st->msg, sizeof st->msg, "out of memory making a view");
    for (int v = 0; rec && v < p->nviews && rc == 0; v++)
        if (rec[v] && rec[v]->oom)
            rc = -2;
    lwl_image_free(&src.im);
done:
    free(buf);
    return rc;
}

int lwl_sample_stage(const lwl_pipeline *p, const char *path, uint64_t seed, uint32_t epoch,
                     uint32_t index, lwl_view_params vp[2], lwl_src *src, lwl_decode_status *st)
{
    uint8_t *buf = NULL;
    size_t len;
    lwl_box box[2];
    int rc = -1;

    memset(src, 0, sizeof *src);
    if (sample_read(path, &buf, &len, src, st))
        goto done;
    for (int v = 0; v < p->nviews; v++) {
        memset(&vp[v], 0, sizeof vp[v]);
        p->view[v].params(src->full_w, src->full_h, seed, epoch, index, &vp[v]);
        box[v] = vp[v].src;
    }
    if (sample_decode(buf, len, box, p->nviews, src, st))
        goto done;
    rc = 0;
done:
    free(buf);
    return rc;
}

/* ---- the fixed evaluation views ---- */

static lwl_eval_cfg eval_cfg = { 224, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } };

void lwl_eval_configure(const lwl_eval_cfg *cfg)
{
    eval_cfg = *cfg;
}

static lwl_box eval_region(int full_w, int full_h, uint64_t seed, uint32_t epoch,
                           uint32_t index)
{
    (void)seed, (void)epoch, (void)index;
    return lwl_resize_center_crop_box(full_w, full_h, eval_cfg.size * 8 / 7, eval_cfg.size);
}

static int eval_make(const lwl_src *src, uint64_t seed, uint32_t epoch, uint32_t index,
                     uint8_t *out, lwl_strbuf *rec)
{
    (void)seed, (void)epoch, (void)index;
    if (rec)
        lwl_strbuf_printf(rec, "[{\"op\": \"resize_center_crop\"}]");
    return lwl_src_resize_center_crop(src, eval_cfg.size * 8 / 7, eval_cfg.size, out);
}

static void eval_params(int full_w, int full_h, uint64_t seed, uint32_t epoch, uint32_t index,
                        lwl_view_params *vp)
{
    (void)seed, (void)epoch, (void)index;
    lwl_params_resize_center_crop(vp, full_w, full_h, eval_cfg.size * 8 / 7, eval_cfg.size);
}

static const double linear_scale[2] = { 0.08, 1.0 }, linear_ratio[2] = { 3.0 / 4.0, 4.0 / 3.0 };

static lwl_box linear_region(int full_w, int full_h, uint64_t seed, uint32_t epoch,
                             uint32_t index)
{
    lwl_rng_key k = { seed, epoch, index, 1, 0 };
    int fallback;

    return lwl_sample_resized_crop(k, full_w, full_h, linear_scale, linear_ratio, &fallback);
}

static int linear_make(const lwl_src *src, uint64_t seed, uint32_t epoch, uint32_t index,
                       uint8_t *out, lwl_strbuf *rec)
{
    lwl_box box = linear_region(src->full_w, src->full_h, seed, epoch, index);
    lwl_rng_key flip = { seed, epoch, index, 1, 1 };
    lwl_image im = { eval_cfg.size, eval_cfg.size, out };
    int flipped;

    if (lwl_src_resized_crop(src, box, eval_cfg.size, out))
        return -1;
    flipped = lwl_sample_coin(flip, 0.5);
    if (flipped)
        lwl_hflip(&im);
    if (rec) {
        lwl_strbuf_printf(rec, "[");
        lwl_rec_resized_crop(rec, 1, box);
        lwl_strbuf_printf(rec, "%s]", flipped ? ", {\"op\": \"horizontal_flip\"}" : "");
    }
    return 0;
}

static void linear_params(int full_w, int full_h, uint64_t seed, uint32_t epoch,
                          uint32_t index, lwl_view_params *vp)
{
    lwl_rng_key flip = { seed, epoch, index, 1, 1 };

    lwl_params_resized_crop(vp, linear_region(full_w, full_h, seed, epoch, index),
                            eval_cfg.size);
    if (lwl_sample_coin(flip, 0.5))
        vp->fired |= LWL_VP_FLIP;
}

void lwl_eval_normalize(const uint8_t *u8, float *chw)
{
    lwl_normalize_u8(u8, (size_t)eval_cfg.size * eval_cfg.size, eval_cfg.mean, eval_cfg.std,
                     chw);
}

lwl_view_def lwl_eval_view(const lwl_eval_cfg *cfg)
{
    lwl_view_def v = { eval_region, eval_make, eval_params };

    lwl_eval_configure(cfg);
    return v;
}

lwl_view_def lwl_linear_train_view(const lwl_eval_cfg *cfg)
{
    lwl_view_def v = { linear_region, linear_make, linear_params };

    lwl_eval_configure(cfg);
    return v;
}

lwl_pipeline lwl_eval_pipeline(const lwl_eval_cfg *cfg)
{
    lwl_pipeline p = { cfg->size, 1, { lwl_eval_view(cfg), { NULL, NULL, NULL } },
                       lwl_eval_normalize };

    return p;
}

lwl_pipeline lwl_linear_train_pipeline(const lwl_eval_cfg *cfg)
{
    lwl_pipeline p = { cfg->size, 1, { lwl_linear_train_view(cfg), { NULL, NULL, NULL } },
                       lwl_eval_normalize };

    return p;
}

/* ---- sample order ---- */

void lwl_epoch_order(uint64_t seed, uint32_t epoch, int shuffle, size_t n, uint32_t *perm)
{
    uint32_t u[4];

    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    if (!shuffle)
        return;

    /* Fisher-Yates from the end; position i draws word i % 4 of block (i / 4). */
    for (size_t i = n; i-- > 1;) {
        if (i == n - 1 || i % 4 == 3)
            lwl_rng_block(seed, epoch, (uint32_t)(i / 4), 0xFFFE, 0, 0, u);
        size_t j = lwl_rng_below(u[i % 4], (uint32_t)(i + 1));
        uint32_t t = perm[i];

        perm[i] = perm[j];
        perm[j] = t;
    }
}

int lwl_epoch_batches(size_t n, int batch, int world, int keep_last)
{
    size_t g = (size_t)batch * (size_t)world;

    return (int)(keep_last ? (n + g - 1) / g : n / g);
}

void lwl_batch_span(size_t n, int batch, int world, int rank, int b, size_t *start, int *count)
{
    size_t s = (size_t)b * batch * world + (size_t)rank * batch;

    *start = s;
    *count = s >= n ? 0 : (n - s < (size_t)batch ? (int)(n - s) : batch);
}

/* ---- the loader ---- */

/* Staging mode: one sample of a batch until the batch is staged. */
typedef struct {
    lwl_src src;                /* the decoded union of its views' boxes */
    lwl_view_params vp[2];
} ld_row;

/* One ring entry: the buffers of one batch and how far it is. */
typedef struct {
    float *view[2];     /* (batch, 3, S, S); NULL in staging mode */
    int64_t *label;
    uint32_t *index;
    ld_row *rows;       /* (batch) staging mode */
    lwl_stage st;       /* staging mode: the staged batch */
    int b, count, done; /* the batch it holds, its samples, samples finished */
    int staged;         /* staging mode: st holds the batch */
} ld_slot;

enum { ITEM_UNKNOWN, ITEM_BAD, ITEM_WARNED };

struct lwl_loader {
    lwl_loader_cfg cfg;
    int depth, nthreads;
    size_t plane;               /* 3 * S * S */
    pthread_t *threads;
    pthread_mutex_t mu, report_mu;
    pthread_cond_t work, ready, idle;
    ld_slot *slots;
    uint32_t *order;            /* (n) the epoch's sample order */
    uint8_t *item_state;        /* (n) ITEM_*: reported once, ever */

    /* The epoch, under mu. */
    uint32_t epoch;
    int nb, next_batch, released, held;
    size_t next_item, total_items;
    int busy, stop, quit, failed;
    char err[LWL_DECODE_MSG + 64];
};

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void ld_fail(lwl_loader *ld, const char *msg)
{
    pthread_mutex_lock(&ld->mu);
    if (!ld->failed) {
        ld->failed = 1;
        snprintf(ld->err, sizeof ld->err, "%s", msg);
    }
    pthread_cond_broadcast(&ld->ready);
    pthread_mutex_unlock(&ld->mu);
}

/* Whether item i is known to be unreadable. */
static int ld_known_bad(lwl_loader *ld, size_t i)
{
    int bad;

    pthread_mutex_lock(&ld->report_mu);
    bad = ld->item_state[i] == ITEM_BAD;
    pthread_mutex_unlock(&ld->report_mu);
    return bad;
}

/* Reports item i's problem (fatal: unreadable) the first time it is seen. */
static void ld_report(lwl_loader *ld, size_t i, const lwl_decode_status *st, int fatal)
{
    int first;

    pthread_mutex_lock(&ld->report_mu);
    first = ld->item_state[i] == ITEM_UNKNOWN;
    if (fatal)
        ld->item_state[i] = ITEM_BAD;
    else if (first)
        ld->item_state[i] = ITEM_WARNED;
    if (first) {
        if (ld->cfg.report)
            ld->cfg.report(ld->cfg.report_arg, ld->cfg.items[i].path, st->msg, fatal);
        else
            fprintf(stderr, "lwl: %s: %s: %s\n", ld->cfg.items[i].path,
                    fatal ? "unreadable, replaced by the next readable file" : "warning",
                    st->msg);
    }
    pthread_mutex_unlock(&ld->report_mu);
}

/* Fills row j of slot s with the sample at split index idx, or, when that file is
 * unreadable, with the next readable one in split order (cyclically), keyed by its own
 * index. 0, or -1 (loader failed). */
static int ld_fill(lwl_loader *ld, ld_slot *s, int j, size_t idx, uint8_t *u8[2])
{
    const lwl_pipeline *p = ld->cfg.pipe;
    lwl_decode_status st;

    for (size_t t = 0; t < ld->cfg.n; t++) {
        size_t c = (idx + t) % ld->cfg.n;
        int rc;

        if (ld_known_bad(ld, c))
            continue;
        if (ld->cfg.stage)
            rc = lwl_sample_stage(p, ld->cfg.items[c].path, ld->cfg.seed, ld->epoch,
                                  (uint32_t)c, s->rows[j].vp, &s->rows[j].src, &st);
        else
            rc = lwl_sample_views(p, ld->cfg.items[c].path, ld->cfg.seed, ld->epoch,
                                  (uint32_t)c, u8, NULL, &st);
        if (rc == -2) {
            ld_fail(ld, "out of memory making views");
            return -1;
        }
        if (rc == -1) {
            ld_report(ld, c, &st, 1);
            continue;
        }
        if (st.warning)
            ld_report(ld, c, &st, 0);
        for (int v = 0; !ld->cfg.stage && v < p->nviews; v++)
            p->normalize(u8[v], s->view[v] + (size_t)j * ld->plane);
        s->label[j] = ld->cfg.items[c].label;
        s->index[j] = (uint32_t)c;
        return 0;
    }
    ld_fail(ld, "no readable image in the split");
    return -1;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

/* Gives a staging block back to its allocator. */
static void ld_block_free(lwl_loader *ld, void *p)
{
    if (p && ld->cfg.stage_free)
        ld->cfg.stage_free(ld->cfg.stage_arg, p);
    else
        free(p);
}

static void ld_rows_free(lwl_loader *ld, ld_slot *s)
{
    for (int j = 0; s->rows && j < ld->cfg.batch; j++)
        lwl_image_free(&s->rows[j].src.im);
}

/* Staging mode: puts the finished batch of slot s into its block (lwl_stage's layout; rows
 * in order, so the bytes do not depend on which worker did which sample), growing the block
 * when it is too small, and frees the decoded rows. 0, or -1 (loader failed). */
static int ld_stage(lwl_loader *ld, ld_slot *s)
{
    const int nv = ld->cfg.pipe->nviews;
    lwl_stage *g = &s->st;
    size_t off = align_up((size_t)s->count * nv * sizeof(lwl_view_params), 256), end = off;

    /* Where every view's pixels go. */
    for (int j = 0; j < s->count; j++)
        for (int v = 0; v < nv; v++) {
            lwl_view_params *vp = &s->rows[j].vp[v];

            vp->pixels = end - off;
            end += align_up((size_t)vp->src.width * vp->src.height * 3, 16);
        }
    if (end > g->cap) {
        size_t want = end + end / 4;
        char why[160] = "out of memory";
        void *nb = ld->cfg.stage_alloc
                       ? ld->cfg.stage_alloc(ld->cfg.stage_arg, want, why, sizeof why)
                       : malloc(want);

        if (!nb) {
            char msg[300];

            snprintf(msg, sizeof msg, "cannot allocate %zu bytes to stage a batch: %s", want,
                     why);
            ld_fail(ld, msg);
            return -1;
        }
        ld_block_free(ld, g->base);
        g->base = nb;
        g->cap = want;
    }

    /* The params, then each view's source box cut from the sample's decoded union. */
    uint8_t *base = g->base;
    memset(base, 0, off);
    for (int j = 0; j < s->count; j++) {
        const ld_row *r = &s->rows[j];

        for (int v = 0; v < nv; v++) {
            const lwl_view_params *vp = &r->vp[v];
            lwl_box b = vp->src;
            size_t row = (size_t)b.width * 3, n = row * b.height;
            uint8_t *o = base + off + vp->pixels;

            memcpy(base + ((size_t)j * nv + v) * sizeof *vp, vp, sizeof *vp);
            for (int y = 0; y < b.height; y++)
                memcpy(o + y * row, r->src.im.px + ((size_t)(b.top - r->src.oy + y) *
                                                    r->src.im.w + (b.left - r->src.ox)) * 3,
                       row);
            memset(o + n, 0, align_up(n, 16) - n);
        }
    }
    ld_rows_free(ld, s);
    g->n = s->count;
    g->nviews = nv;
    g->size = ld->cfg.pipe->size;
    g->pixel_off = off;
    g->bytes = end;
    g->params = (const lwl_view_params *)g->base;
    g->pixels = base + off;
    return 0;
}

static void *ld_worker(void *arg)
{
    lwl_loader *ld = arg;
    size_t npx = (size_t)ld->cfg.pipe->size * ld->cfg.pipe->size * 3;
    uint8_t *u8[2] = { ld->cfg.stage ? NULL : malloc(npx * 2), NULL };

    if (!ld->cfg.stage && !u8[0]) {
        ld_fail(ld, "out of memory for a worker");
        return NULL;
    }
    if (u8[0])
        u8[1] = u8[0] + npx;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        /* The next sample whose batch has a free slot. */
        while (!ld->quit && (ld->stop || ld->failed || ld->next_item >= ld->total_items ||
                             (int)(ld->next_item / ld->cfg.batch) >= ld->released + ld->depth))
            pthread_cond_wait(&ld->work, &ld->mu);
        if (ld->quit)
            break;

        size_t item = ld->next_item++;
        int b = (int)(item / ld->cfg.batch), j = (int)(item % ld->cfg.batch);
        ld_slot *s = &ld->slots[b % ld->depth];
        size_t start;
        int count;

        lwl_batch_span(ld->cfg.n, ld->cfg.batch, ld->cfg.world, ld->cfg.rank, b, &start,
                       &count);
        ld->busy++;
        pthread_mutex_unlock(&ld->mu);
        int rc = ld_fill(ld, s, j, ld->order[start + (size_t)j], u8);
        pthread_mutex_lock(&ld->mu);
        if (rc == 0 && ++s->done == s->count) {
            /* The last sample of its batch: staged by this worker, out of the lock. */
            if (ld->cfg.stage) {
                pthread_mutex_unlock(&ld->mu);
                rc = ld_stage(ld, s);
                pthread_mutex_lock(&ld->mu);
                s->staged = rc == 0;
            }
            pthread_cond_broadcast(&ld->ready);
        }
        ld->busy--;
        if (ld->busy == 0)
            pthread_cond_broadcast(&ld->idle);
    }
    pthread_mutex_unlock(&ld->mu);
    free(u8[0]);
    return NULL;
}

/* Points slot b % depth at batch b (under mu). */
static void ld_slot_assign(lwl_loader *ld, int b)
{
    ld_slot *s = &ld->slots[b % ld->depth];
    size_t start;

    s->b = b;
    s->done = 0;
    lwl_batch_span(ld->cfg.n, ld->cfg.batch, ld->cfg.world, ld->cfg.rank, b, &start, &s->count);

    /* Staging: rows of an abandoned batch are dropped; an empty batch is staged as it is. */
    ld_rows_free(ld, s);
    s->staged = s->count == 0;
    s->st.n = 0;
    s->st.nviews = ld->cfg.pipe->nviews;
    s->st.size = ld->cfg.pipe->size;
    s->st.bytes = 0;
}

static char *ld_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ld_msg(const char *fmt, ...)
{
    char *m = malloc(256);
    va_list ap;

    if (m) {
        va_start(ap, fmt);
        vsnprintf(m, 256, fmt, ap);
        va_end(ap);
    }
    return m;
}

static void ld_free(lwl_loader *ld)
{
    for (int i = 0; ld->slots && i < ld->depth; i++) {
        ld_slot *s = &ld->slots[i];

        free(s->view[0]);
        free(s->label);
        free(s->index);
        ld_rows_free(ld, s);
        free(s->rows);
        ld_block_free(ld, s->st.base);
    }
    free(ld->slots);
    free(ld->order);
    free(ld->item_state);
    free(ld->threads);
    free(ld);
}

lwl_loader *lwl_loader_open(const lwl_loader_cfg *cfg, char **err)
{
    const lwl_pipeline *p = cfg->pipe;
    lwl_loader *ld;

    *err = NULL;
    if (!p || p->nviews < 1 || p->nviews > 2 || p->size < 1 || cfg->batch < 1 ||
        cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world || cfg->threads < 1 ||
        cfg->n == 0 || cfg->n > UINT32_MAX) {
        *err = ld_msg("loader: bad configuration (batch %d, rank %d of %d, threads %d, "
                      "%zu samples)", cfg->batch, cfg->rank, cfg->world, cfg->threads, cfg->n);
        return NULL;
    }
    for (int v = 0; cfg->stage && v < p->nviews; v++)
        if (!p->view[v].params) {
            *err = ld_msg("loader: staging needs the params of every view (view %d has none)",
                          v + 1);
            return NULL;
        }
    ld = calloc(1, sizeof *ld);
    if (!ld) {
        *err = ld_msg("loader: out of memory");
        return NULL;
    }
    ld->cfg = *cfg;
    ld->depth = cfg->depth > 0 ? cfg->depth : 2;
    ld->plane = (size_t)3 * p->size * p->size;
    ld->slots = calloc((size_t)ld->depth, sizeof *ld->slots);
    ld->order = malloc(sizeof(uint32_t) * cfg->n);
    ld->item_state = calloc(cfg->n, 1);
    ld->threads = calloc((size_t)cfg->threads, sizeof(pthread_t));
    int bad = !ld->slots || !ld->order || !ld->item_state || !ld->threads;
    for (int i = 0; !bad && i < ld->depth; i++) {
        ld_slot *s = &ld->slots[i];

        s->label = malloc(sizeof(int64_t) * (size_t)cfg->batch);
        s->index = malloc(sizeof(uint32_t) * (size_t)cfg->batch);
        s->b = -1;
        bad = !s->label || !s->index;
        if (cfg->stage) {
            s->rows = calloc((size_t)cfg->batch, sizeof *s->rows);
            bad = bad || !s->rows;
            continue;
        }
        s->view[0] = malloc(sizeof(float) * ld->plane * (size_t)cfg->batch * (size_t)p->nviews);
        s->view[1] = p->nviews == 2 && s->view[0] ? s->view[0] + ld->plane * cfg->batch : NULL;
        bad = bad || !s->view[0];
    }
    if (bad) {
        *err = ld_msg("loader: out of memory for %d batches of %d", ld->depth, cfg->batch);
        ld_free(ld);
        return NULL;
    }

    /* Nothing to do until lwl_loader_epoch. */
    ld->stop = 1;
    if (pthread_mutex_init(&ld->mu, NULL) || pthread_mutex_init(&ld->report_mu, NULL) ||
        pthread_cond_init(&ld->work, NULL) || pthread_cond_init(&ld->ready, NULL) ||
        pthread_cond_init(&ld->idle, NULL)) {
        *err = ld_msg("loader: cannot create its locks");
        ld_free(ld);
        return NULL;
    }
    for (int i = 0; i < cfg->threads; i++) {
        int rc = pthread_create(&ld->threads[i], NULL, ld_worker, ld);

        if (rc) {
            *err = ld_msg("loader: cannot start worker %d: %s", i, strerror(rc));
            ld->nthreads = i;
            lwl_loader_close(ld);
            return NULL;
        }
    }
    ld->nthreads = cfg->threads;
    return ld;
}

int lwl_loader_epoch(lwl_loader *ld, uint32_t epoch)
{
    const lwl_loader_cfg *c = &ld->cfg;

    /* Stop the workers and wait for the samples in flight. */
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    while (ld->busy > 0)
        pthread_cond_wait(&ld->idle, &ld->mu);

    /* The new epoch's order and its first batches. */
    ld->epoch = epoch;
    lwl_epoch_order(c->seed, epoch, c->shuffle, c->n, ld->order);
    ld->nb = lwl_epoch_batches(c->n, c->batch, c->world, c->keep_last);
    ld->next_batch = ld->released = ld->held = 0;
    ld->next_item = 0;
    ld->total_items = 0;
    for (int b = 0; b < ld->nb; b++) {
        size_t start;
        int count;

        lwl_batch_span(c->n, c->batch, c->world, c->rank, b, &start, &count);
        ld->total_items += (size_t)count;
    }
    for (int b = 0; b < ld->depth && b < ld->nb; b++)
        ld_slot_assign(ld, b);
    ld->stop = 0;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    return ld->nb;
}

int lwl_loader_next(lwl_loader *ld, lwl_batch *out)
{
    double t0;
    ld_slot *s;

    pthread_mutex_lock(&ld->mu);

    /* Hand the batch held so far back to the ring. */
    if (ld->held) {
        int b = ld->released++;

        ld->held = 0;
        if (b + ld->depth < ld->nb)
            ld_slot_assign(ld, b + ld->depth);
        pthread_cond_broadcast(&ld->work);
    }
    if (ld->failed || ld->next_batch >= ld->nb) {
        int rc = ld->failed ? -1 : 0;

        pthread_mutex_unlock(&ld->mu);
        return rc;
    }

    /* Wait for every sample of the next batch. */
    s = &ld->slots[ld->next_batch % ld->depth];
    t0 = now_ms();
    while (!ld->failed && (s->done < s->count || (ld->cfg.stage && !s->staged)))
        pthread_cond_wait(&ld->ready, &ld->mu);
    if (ld->failed) {
        pthread_mutex_unlock(&ld->mu);
        return -1;
    }
    out->n = s->count;
    out->view[0] = s->view[0];
    out->view[1] = s->view[1];
    out->stage = ld->cfg.stage ? &s->st : NULL;
    out->label = s->label;
    out->index = s->index;
    out->wait_ms = now_ms() - t0;
    ld->next_batch++;
    ld->held = 1;
    pthread_mutex_unlock(&ld->mu);
    return 1;
}

const char *lwl_loader_error(const lwl_loader *ld)
{
    return ld->failed ? ld->err : "";
}

void lwl_loader_close(lwl_loader *ld)
{
    if (!ld)
        return;
    pthread_mutex_lock(&ld->mu);
    ld->quit = 1;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nthreads; i++)
        pthread_join(ld->threads[i], NULL);
    pthread_mutex_destroy(&ld->mu);
    pthread_mutex_destroy(&ld->report_mu);
    pthread_cond_destroy(&ld->work);
    pthread_cond_destroy(&ld->ready);
    pthread_cond_destroy(&ld->idle);
    ld_free(ld);
}
