/* The GPU views' work on one image: every op of a view as phases cut at the block's barriers,
 * LWL_HD functions of (phase, thread, threads) over lwl_pixel.h's arithmetic. The kernels of
 * a generated views.cu run them with a block per (sample, view); the tests run the same
 * functions on the CPU, every thread of a phase in turn (LWL_VIEWS_EMULATE). C and CUDA C++. */
#ifndef LWL_VIEWS_DEV_H
#define LWL_VIEWS_DEV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lwl_augment.h"
#include "lwl_philox.h"
#include "lwl_pixel.h"

/* Threads of a view's block. */
#define LWL_VIEW_THREADS 512

/* The smallest shared work area a block may have: four rows of a view of side `size` (the
 * blur's passes go through it a chunk of rows at a time). */
#define LWL_VIEW_MIN_WORK(size) ((size_t)(size) * 3 * 4)

/* ---- what a kernel launch gets, and where each buffer of one view sample lives ---- */

/* The arguments of a view kernel (by value): block i makes view `view` of sample i. */
typedef struct lwl_vargs {
    const lwl_view_params *params;  /* (n, nviews), device copy of the staged params */
    const uint8_t *pixels;          /* the staged pixels; params[].pixels from here */
    uint8_t *scratch;               /* global scratch of the launch */
    const uint64_t *scratch_off;    /* (n, nviews): each view sample's part of scratch */
    void *out;                      /* (n, size, size, 3) of the view's element type */
    int nviews, view, size;
    int smem;                       /* dynamic shared bytes of a block */
} lwl_vargs;

/* Where one view sample's buffers live: in the block's shared memory (offsets from its
 * start) or in the sample's part of the global scratch (offsets from that). */
typedef struct lwl_vlayout {
    size_t head;            /* shared [0, head): reduction partials (threads), scalars */
    int img_shared, taps_shared, tmp_shared;
    size_t img, taps, tmp;  /* the view (size, size, 3); the resize's taps; its first pass */
    size_t work, work_bytes;    /* the shared work area (taps, tmp and the blur's chunks) */
    size_t scratch;         /* global bytes the view sample needs */
    int kh, kv;             /* taps per output sample of each axis; 0: axis not resized */
} lwl_vlayout;

LWL_HD size_t lwl_v_align16(size_t v)
{
    return (v + 15) / 16 * 16;
}

/* Bytes of the resize's taps: per resized axis, first and count (size ints each) and the
 * coefficients (size, k). */
LWL_HD size_t lwl_v_taps_bytes(int size, int kh, int kv)
{
    size_t b = 0;

    if (kh)
        b += (size_t)size * (size_t)(kh + 2) * 4;
    if (kv)
        b += (size_t)size * (size_t)(kv + 2) * 4;
    return b;
}

/* The layout of a view sample with params p in a block of `threads` threads and `smem`
 * shared bytes: the view in shared memory when it leaves at least LWL_VIEW_MIN_WORK for the
 * work area, the taps and the resize's intermediate there when they fit, else in scratch.
 * The host sizes the scratch with it, the kernel finds its buffers with it. */
LWL_HD void lwl_vlayout_make(const lwl_view_params *p, int size, int threads, size_t smem,
                             lwl_vlayout *L)
{
    size_t img = lwl_v_align16((size_t)size * size * 3), used = 0, taps, tmp;
    int need_h = p->rw != p->dom.width, need_v = p->rh != p->dom.height;

    L->head = lwl_v_align16((size_t)threads * 8) + 16;
    L->scratch = 0;
    L->img = 0;
    L->img_shared = smem >= L->head + img + LWL_VIEW_MIN_WORK(size);
    if (L->img_shared) {
        L->img = L->head;
        L->work = L->head + img;
    } else {
        L->scratch = img;
        L->work = L->head;
    }
    L->work_bytes = smem > L->work ? smem - L->work : 0;

    /* The resize's taps, then its intermediate (the source rows after the first pass). */
    L->kh = need_h ? lwl_resample_ksize(p->dom.width, p->rw) : 0;
    L->kv = need_v ? lwl_resample_ksize(p->dom.height, p->rh) : 0;
    taps = lwl_v_align16(lwl_v_taps_bytes(size, L->kh, L->kv));
    tmp = need_h && need_v ? lwl_v_align16((size_t)p->src.height * size * 3) : 0;
    L->taps_shared = taps <= L->work_bytes;
    if (L->taps_shared) {
        L->taps = L->work;
        used = taps;
    } else {
        L->taps = L->scratch;
        L->scratch += taps;
    }
    L->tmp_shared = tmp <= L->work_bytes - used;
    if (L->tmp_shared) {
        L->tmp = L->work + used;
    } else {
        L->tmp = L->scratch;
        L->scratch += tmp;
    }
}

/* Each view sample's part of the global scratch of a batch, params (n, nviews):
 * off[i * nviews + v]; returns the bytes of the whole (every view's parts are disjoint, so
 * the views' kernels may run at the same time). */
LWL_HD size_t lwl_v_scratch_offsets(const lwl_view_params *params, int n, int nviews, int size,
                                    int threads, size_t smem, uint64_t *off)
{
    size_t total = 0;

    for (size_t k = 0; k < (size_t)n * nviews; k++) {
        lwl_vlayout L;

        lwl_vlayout_make(&params[k], size, threads, smem, &L);
        off[k] = total;
        total += L.scratch;
    }
    return total;
}

/* The shared bytes a view kernel asks for on a device allowing `optin` a block: the head,
 * the view and a work area as large as the view (at least 32 KB), or all there is; 0 when
 * even the smallest work area does not fit. */
LWL_HD size_t lwl_v_smem_for(int size, int threads, size_t optin)
{
    size_t head = lwl_v_align16((size_t)threads * 8) + 16;
    size_t img = lwl_v_align16((size_t)size * size * 3);
    size_t want = head + img + (img > 32768 ? img : 32768);

    if (optin < head + LWL_VIEW_MIN_WORK(size))
        return 0;
    return want < optin ? want : optin;
}

/* ---- one block's view of its sample ---- */

typedef struct lwl_vctx {
    const lwl_view_params *p;
    const uint8_t *src;         /* (p->src.height, p->src.width, 3) staged source pixels */
    uint8_t *img;               /* (size, size, 3) the view */
    uint8_t *work;              /* the shared work area, work_bytes */
    size_t work_bytes;
    int32_t *taps;              /* the resize's taps (lwl_v_taps_bytes) */
    uint8_t *tmp;               /* (p->src.height, size, 3) the resize's first pass */
    uint64_t *red;              /* (threads) partial sums */
    int *scal;                  /* 4 scalars shared by the block */
    void *out;                  /* (size, size, 3) elements: this sample's output */
    int size, kh, kv;
} lwl_vctx;

/* The context of block `block` (sample `block`, view a->view), smem its shared memory;
 * out_elem is the size of an output element. Every thread computes the same. */
LWL_HD void lwl_vctx_init(lwl_vctx *c, const lwl_vargs *a, int block, uint8_t *smem,
                          int threads, size_t out_elem)
{
    size_t k = (size_t)block * a->nviews + a->view;
    const lwl_view_params *p = a->params + k;
    uint8_t *g = NULL;
    lwl_vlayout L;

    lwl_vlayout_make(p, a->size, threads, (size_t)a->smem, &L);
    if (L.scratch)
        g = a->scratch + a->scratch_off[k];
    c->p = p;
    c->src = a->pixels + p->pixels;
    c->img = L.img_shared ? smem + L.img : g + L.img;
    c->work = smem + L.work;
    c->work_bytes = L.work_bytes;
    c->taps = (int32_t *)(void *)(L.taps_shared ? smem + L.taps : g + L.taps);
    c->tmp = L.tmp_shared ? smem + L.tmp : g + L.tmp;
    c->red = (uint64_t *)(void *)smem;
    c->scal = (int *)(void *)(smem + L.head - 16);
    c->out = (uint8_t *)a->out + (size_t)block * a->size * a->size * 3 * out_elem;
    c->size = a->size;
    c->kh = L.kh;
    c->kv = L.kv;
}

/* ---- the ops. Each returns whether another phase follows (the same in every thread);
 * within a phase no thread reads what another writes. ---- */

/* The first op, resized_crop or Resize + CenterCrop: Pillow's two passes as lwl_resize_window
 * does them (horizontal rounded to uint8, then vertical), of the staged source box (src, at
 * (bx, by) in dom) into the view. Phase 0 the taps, 1 the horizontal pass (into tmp, or into
 * the view when rows are not resized), 2 the vertical pass. */
LWL_HD int lwl_v_resize(lwl_vctx *c, int ph, int tid, int nt)
{
    const lwl_view_params *p = c->p;
    int S = c->size, kh = c->kh, kv = c->kv;
    int bx = p->src.left - p->dom.left, by = p->src.top - p->dom.top;
    size_t row = (size_t)p->src.width * 3, line = (size_t)S * 3;
    int32_t *hf = c->taps, *hc = hf + S, *hk = hc + S;
    int32_t *vf = kh ? hk + (size_t)S * kh : c->taps, *vc = vf + S, *vk = vc + S;

    if (ph == 0) {
        int nh = kh ? S : 0, n = nh + (kv ? S : 0);

        for (int o = tid; o < n; o += nt) {
            if (o < nh)
                lwl_resample_taps(p->dom.width, p->rw, kh, p->x0 + o, &hf[o], &hc[o],
                                  hk + (size_t)o * kh);
            else
                lwl_resample_taps(p->dom.height, p->rh, kv, p->y0 + o - nh, &vf[o - nh],
                                  &vc[o - nh], vk + (size_t)(o - nh) * kv);
        }
        return 1;
    }
    if (ph == 1) {
        /* Rows: every staged row when the vertical pass follows, else the window's. */
        int r0 = kv ? 0 : p->y0 - by, nr = kv ? p->src.height : S;
        uint8_t *dst = kv ? c->tmp : c->img;
        size_t n = (size_t)nr * S;

        if (kh) {
            for (size_t i = tid; i < n; i += nt) {
                int x = (int)(i % S), y = (int)(i / S);
                const uint8_t *s = c->src + (size_t)(r0 + y) * row + (size_t)(hf[x] - bx) * 3;
                const int32_t *k = hk + (size_t)x * kh;

                dst[i * 3] = lwl_resample_tap(s, 3, hc[x], k);
                dst[i * 3 + 1] = lwl_resample_tap(s + 1, 3, hc[x], k);
                dst[i * 3 + 2] = lwl_resample_tap(s + 2, 3, hc[x], k);
            }
        } else if (!kv) {
            /* Neither axis resized: the window as it is. */
            for (size_t i = tid; i < n * 3; i += nt) {
                size_t y = i / line, x = i % line;

                dst[i] = c->src[(size_t)(r0 + (int)y) * row + (size_t)(p->x0 - bx) * 3 + x];
            }
        }
        return 1;
    }
    if (kv) {
        /* From the first pass, or from the source's window columns when rows were kept. */
        const uint8_t *from = kh ? c->tmp : c->src + (size_t)(p->x0 - bx) * 3;
        size_t stride = kh ? line : row;

        for (size_t i = tid; i < (size_t)S * S; i += nt) {
            int x = (int)(i % S), y = (int)(i / S);
            const uint8_t *s = from + (size_t)(vf[y] - by) * stride + (size_t)x * 3;
            const int32_t *k = vk + (size_t)y * kv;

            c->img[i * 3] = lwl_resample_tap(s, (ptrdiff_t)stride, vc[y], k);
            c->img[i * 3 + 1] = lwl_resample_tap(s + 1, (ptrdiff_t)stride, vc[y], k);
            c->img[i * 3 + 2] = lwl_resample_tap(s + 2, (ptrdiff_t)stride, vc[y], k);
        }
    }
    return 0;
}

/* horizontal_flip: each thread swaps pixel pairs of a row. */
LWL_HD int lwl_v_hflip(lwl_vctx *c, int ph, int tid, int nt)
{
    int S = c->size, half = S / 2;

    (void)ph;
    for (int i = tid; i < S * half; i += nt) {
        int y = i / half, x = i % half;
        uint8_t *a = c->img + ((size_t)y * S + x) * 3;
        uint8_t *b = c->img + ((size_t)y * S + S - 1 - x) * 3;

        for (int ch = 0; ch < 3; ch++) {
            uint8_t t = a[ch];

            a[ch] = b[ch];
            b[ch] = t;
        }
    }
    return 0;
}

/* color_jitter's brightness: Image.blend with black. */
LWL_HD int lwl_v_brightness(lwl_vctx *c, int ph, int tid, int nt, float alpha)
{
    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt)
        lwl_brightness_px(c->img + (size_t)i * 3, alpha);
    return 0;
}

/* color_jitter's contrast: phase 0 each thread's sum of luma, 1 the rounded mean (thread 0,
 * in the CPU's order of additions: integers, so any order), 2 the blend with it. */
LWL_HD int lwl_v_contrast(lwl_vctx *c, int ph, int tid, int nt, float alpha)
{
    int n = c->size * c->size;

    if (ph == 0) {
        uint64_t sum = 0;

        for (int i = tid; i < n; i += nt) {
            const uint8_t *q = c->img + (size_t)i * 3;

            sum += lwl_luma(q[0], q[1], q[2]);
        }
        c->red[tid] = sum;
        return 1;
    }
    if (ph == 1) {
        if (tid == 0) {
            uint64_t sum = 0;

            for (int t = 0; t < nt; t++)
                sum += c->red[t];
            c->scal[0] = (int)((double)sum / (double)n + 0.5);
        }
        return 1;
    }
    for (int i = tid; i < n; i += nt)
        lwl_contrast_px(c->img + (size_t)i * 3, c->scal[0], alpha);
    return 0;
}

/* color_jitter's saturation: blend with each pixel's luma. */
LWL_HD int lwl_v_saturation(lwl_vctx *c, int ph, int tid, int nt, float alpha)
{
    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt)
        lwl_saturation_px(c->img + (size_t)i * 3, alpha);
    return 0;
}

/* color_jitter's hue: Pillow's 8-bit HSV round trip with the hue shifted. */
LWL_HD int lwl_v_hue(lwl_vctx *c, int ph, int tid, int nt, uint8_t shift)
{
    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt)
        lwl_hue_px(c->img + (size_t)i * 3, shift);
    return 0;
}

/* grayscale: the luma on three channels. */
LWL_HD int lwl_v_gray(lwl_vctx *c, int ph, int tid, int nt)
{
    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt)
        lwl_gray_px(c->img + (size_t)i * 3);
    return 0;
}

/* solarize with the spec's threshold. */
LWL_HD int lwl_v_solarize(lwl_vctx *c, int ph, int tid, int nt, int threshold)
{
    (void)ph;
    for (int i = tid; i < c->size * c->size * 3; i += nt)
        c->img[i] = lwl_solarize(c->img[i], threshold);
    return 0;
}

/* gaussian_blur with the drawn sigma: Pillow's three horizontal then three vertical
 * extended-box passes, edges replicated (lwl_blur_tap). Each pass goes through the work area
 * a chunk at a time, two phases per chunk: copy rows (or columns) of the view there, then
 * write the pass's output back into the view. No phase when the box radius is 0. */
LWL_HD int lwl_v_blur(lwl_vctx *c, int ph, int tid, int nt)
{
    float box = lwl_blur_box_radius((float)c->p->sigma, 3);
    int S = c->size, r;
    size_t line = (size_t)S * 3;
    size_t fit = c->work_bytes / line;
    int per = fit < (size_t)S ? (int)fit : S, chunks = (S + per - 1) / per;
    int pass = ph / (2 * chunks), a = ph % (2 * chunks) / 2 * per, copy = ph % 2 == 0;
    int m = S - a < per ? S - a : per;
    uint32_t ww, fw;

    if (box == 0.0f)
        return 0;
    lwl_blur_weights(box, &r, &ww, &fw);
    if (pass < 3) {
        /* Horizontal: rows [a, a + m). */
        uint8_t *rows = c->img + (size_t)a * line;

        if (copy) {
            for (size_t i = tid; i < (size_t)m * line; i += nt)
                c->work[i] = rows[i];
        } else {
            for (size_t i = tid; i < (size_t)m * S; i += nt) {
                int x = (int)(i % S), y = (int)(i / S);
                const uint8_t *w = c->work + (size_t)y * line;

                for (int ch = 0; ch < 3; ch++)
                    rows[i * 3 + ch] = lwl_blur_tap(w + ch, 3, x, S - 1, r, ww, fw);
            }
        }
    } else {
        /* Vertical: columns [a, a + m), copied as S rows of m pixels. */
        size_t cl = (size_t)m * 3;

        if (copy) {
            for (size_t i = tid; i < (size_t)S * cl; i += nt)
                c->work[i] = c->img[i / cl * line + (size_t)a * 3 + i % cl];
        } else {
            for (size_t i = tid; i < (size_t)S * m; i += nt) {
                int x = (int)(i % m), y = (int)(i / m);
                uint8_t *o = c->img + (size_t)y * line + (size_t)(a + x) * 3;

                for (int ch = 0; ch < 3; ch++)
                    o[ch] = lwl_blur_tap(c->work + (size_t)x * 3 + ch, (ptrdiff_t)cl, y, S - 1,
                                         r, ww, fw);
            }
        }
    }
    return ph + 1 < 12 * chunks;
}

/* ---- ToTensor + Normalize, then the cast to the network's element type ---- */

/* float to bfloat16 bits, rounded to nearest even (NaN stays a quiet NaN). */
LWL_HD uint16_t lwl_f32_to_bf16(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* float to IEEE half bits, rounded to nearest even: overflow to infinity, subnormals kept. */
LWL_HD uint16_t lwl_f32_to_f16(float f)
{
    uint32_t u, a, sign;

    memcpy(&u, &f, 4);
    sign = (u >> 16) & 0x8000u;
    a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u)               /* 65520 and up round to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) {             /* a normal half: rebias, round off 13 bits */
        uint32_t r = a - 0x38000000u;

        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    if (a < 0x33000000u)                /* below 2^-25: zero (2^-25 itself ties to 0) */
        return (uint16_t)sign;

    /* A subnormal half: the 24-bit significand shifted to units of 2^-24. */
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);

    q += rem > half || (rem == half && (q & 1u));
    return (uint16_t)(sign | q);
}

/* The view normalised with the spec's mean and std (lwl_normalize: torch's float32) into
 * this sample's (size, size, 3) output, one function per element type. */
LWL_HD int lwl_v_out_f32(lwl_vctx *c, int ph, int tid, int nt, float m0, float m1, float m2,
                         float s0, float s1, float s2)
{
    float *o = (float *)c->out;

    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt) {
        const uint8_t *q = c->img + (size_t)i * 3;

        o[(size_t)i * 3] = lwl_normalize(q[0], m0, s0);
        o[(size_t)i * 3 + 1] = lwl_normalize(q[1], m1, s1);
        o[(size_t)i * 3 + 2] = lwl_normalize(q[2], m2, s2);
    }
    return 0;
}

LWL_HD int lwl_v_out_bf16(lwl_vctx *c, int ph, int tid, int nt, float m0, float m1, float m2,
                          float s0, float s1, float s2)
{
    uint16_t *o = (uint16_t *)c->out;

    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt) {
        const uint8_t *q = c->img + (size_t)i * 3;

        o[(size_t)i * 3] = lwl_f32_to_bf16(lwl_normalize(q[0], m0, s0));
        o[(size_t)i * 3 + 1] = lwl_f32_to_bf16(lwl_normalize(q[1], m1, s1));
        o[(size_t)i * 3 + 2] = lwl_f32_to_bf16(lwl_normalize(q[2], m2, s2));
    }
    return 0;
}

LWL_HD int lwl_v_out_f16(lwl_vctx *c, int ph, int tid, int nt, float m0, float m1, float m2,
                         float s0, float s1, float s2)
{
    uint16_t *o = (uint16_t *)c->out;

    (void)ph;
    for (int i = tid; i < c->size * c->size; i += nt) {
        const uint8_t *q = c->img + (size_t)i * 3;

        o[(size_t)i * 3] = lwl_f32_to_f16(lwl_normalize(q[0], m0, s0));
        o[(size_t)i * 3 + 1] = lwl_f32_to_f16(lwl_normalize(q[1], m1, s1));
        o[(size_t)i * 3 + 2] = lwl_f32_to_f16(lwl_normalize(q[2], m2, s2));
    }
    return 0;
}

/* ---- a view's body: the generated kernels' ops in order, each LWL_STEP one op's phases
 * with a barrier after each; under LWL_VIEWS_EMULATE a host function that runs every phase
 * for every thread in turn (lwl_views_emu_order picks the order, so that a phase whose
 * threads depended on each other would give different bytes). ---- */

#define LWL_PH ph_, tid_, nt

#ifdef LWL_VIEWS_EMULATE
#include "lwl_cuda.h"

/* 0 threads in order, 1 in reverse, 2 odd ones first; set by the test. */
extern int lwl_views_emu_order;

static inline int lwl_views_emu_tid(int k, int nt)
{
    if (lwl_views_emu_order == 1)
        return nt - 1 - k;
    if (lwl_views_emu_order == 2)
        return k < nt / 2 ? 2 * k + 1 : 2 * (k - nt / 2);
    return k;
}

#define LWL_VBODY(name) static void name(lwl_vctx *c, int nt)
#define LWL_STEP(call)                                                                  \
    do {                                                                                \
        for (int ph_ = 0, more_ = 1; more_; ph_++)                                      \
            for (int k_ = 0; k_ < nt; k_++) {                                           \
                int tid_ = lwl_views_emu_tid(k_, nt);                                   \
                more_ = (call);                                                         \
            }                                                                           \
    } while (0)
/* A view body as the emulation calls it; what an emulated views.cu defines. */
typedef void (*lwl_vbody)(lwl_vctx *c, int nt);
extern const lwl_vbody views_emu_body[2];
extern const size_t views_emu_out_elem;
extern const lwl_dtype views_emu_dtype;
extern const int views_emu_size;
#else
#define LWL_VBODY(name) __device__ static void name(lwl_vctx *c, int tid_, int nt)
#define LWL_STEP(call)                                                                  \
    do {                                                                                \
        for (int ph_ = 0, more_ = 1; more_; ph_++) {                                    \
            more_ = (call);                                                             \
            __syncthreads();                                                            \
        }                                                                               \
    } while (0)
#endif

#endif
