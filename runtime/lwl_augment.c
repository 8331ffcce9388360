/* The augmentations on the CPU: loops over lwl_pixel.h, and torchvision's parameter
 * samplers drawing from Philox (the draw layout is in lwl_augment.h). */
#include "lwl_augment.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lwl_pixel.h"

/* Hot loops also built for AVX2 (32-bit multiplies and wider vectors), picked at load
 * time; integer or correctly rounded arithmetic, so both give the same bytes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define LWL_HOT __attribute__((target_clones("avx2", "default")))
#else
#define LWL_HOT
#endif

int lwl_image_alloc(lwl_image *im, int w, int h)
{
    im->w = w;
    im->h = h;
    im->px = malloc((size_t)w * (size_t)h * 3 + 1);
    return im->px ? 0 : -1;
}

void lwl_image_free(lwl_image *im)
{
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

/* Taps of the outputs [o0, o0 + n) of a resize in_size -> out_size: first[i], count[i]
 * and k (n, ksize). */
typedef struct {
    int ksize;
    int *first, *count;
    int32_t *k;
} lwl_taps;

static int taps_make(lwl_taps *t, int in_size, int out_size, int o0, int n)
{
    t->ksize = lwl_resample_ksize(in_size, out_size);
    t->first = malloc(sizeof(int) * (size_t)n * 2);
    t->k = malloc(sizeof(int32_t) * (size_t)n * (size_t)t->ksize);
    if (!t->first || !t->k) {
        free(t->first);
        free(t->k);
        return -1;
    }
    t->count = t->first + n;
    for (int i = 0; i < n; i++)
        lwl_resample_taps(in_size, out_size, t->ksize, o0 + i, &t->first[i], &t->count[i],
                          t->k + (size_t)i * t->ksize);
    return 0;
}

static void taps_free(lwl_taps *t)
{
    free(t->first);
    free(t->k);
}

/* dst = the transpose of the w x h RGB image src (rows sstride bytes apart): dst has w
 * rows of h pixels (rows dstride bytes apart). In 16 x 16 blocks. */
static void transpose3(const uint8_t *restrict src, ptrdiff_t sstride, int w, int h,
                       uint8_t *restrict dst, ptrdiff_t dstride)
{
    for (int y0 = 0; y0 < h; y0 += 16)
        for (int x0 = 0; x0 < w; x0 += 16) {
            int y1 = y0 + 16 < h ? y0 + 16 : h, x1 = x0 + 16 < w ? x0 + 16 : w;

            for (int y = y0; y < y1; y++) {
                const uint8_t *s = src + y * sstride;

                for (int x = x0; x < x1; x++) {
                    uint8_t *d = dst + x * dstride + y * 3;

                    d[0] = s[x * 3];
                    d[1] = s[x * 3 + 1];
                    d[2] = s[x * 3 + 2];
                }
            }
        }
}

/* Vertical pass, a whole row at a time (the inner loop vectorises): output row y from
 * tmp rows (tmp row 0 is source row base); acc holds out_w * 3 sums. */
LWL_HOT
static void resize_rows_v(const uint8_t *restrict tmp, ptrdiff_t tstride, int base,
                          const lwl_taps *tv, int out_w, int out_h, int32_t *restrict acc,
                          uint8_t *restrict dst)
{
    int n = out_w * 3;

    for (int y = 0; y < out_h; y++) {
        const int32_t *k = tv->k + (size_t)y * tv->ksize;
        const uint8_t *p = tmp + (ptrdiff_t)(tv->first[y] - base) * tstride;
        uint8_t *o = dst + (size_t)y * n;

        for (int i = 0; i < n; i++)
            acc[i] = 1 << (LWL_RESAMPLE_BITS - 1);
        for (int t = 0; t < tv->count[y]; t++) {
            const uint8_t *row = p + t * tstride;
            int32_t kt = k[t];

            for (int i = 0; i < n; i++)
                acc[i] += (int32_t)row[i] * kt;
        }
        for (int i = 0; i < n; i++) {
            int32_t v = acc[i] >> LWL_RESAMPLE_BITS;

            o[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
    }
}

/* The horizontal pass over nr rows of src (src holds source column bx first) into tmp
 * (nr rows of out_w pixels), as a vertical pass over the transposed block, which
 * vectorises: transpose, resize the rows, transpose back. 0, or -1 out of memory. */
static int resize_h(const uint8_t *src, ptrdiff_t sstride, int bx, int nr, const lwl_taps *th,
                    int out_w, uint8_t *tmp)
{
    int c0 = th->first[0], c1 = th->first[out_w - 1] + th->count[out_w - 1];
    size_t col = (size_t)nr * 3;
    uint8_t *t = malloc(col * (size_t)(c1 - c0) + col * (size_t)out_w + 1);
    int32_t *acc = malloc(sizeof(int32_t) * col + 1);

    if (!t || !acc) {
        free(t);
        free(acc);
        return -1;
    }
    transpose3(src + (c0 - bx) * 3, sstride, c1 - c0, nr, t, (ptrdiff_t)col);
    resize_rows_v(t, (ptrdiff_t)col, c0, th, nr, out_w, acc, t + col * (size_t)(c1 - c0));
    transpose3(t + col * (size_t)(c1 - c0), (ptrdiff_t)col, nr, out_w, tmp,
               (ptrdiff_t)out_w * 3);
    free(t);
    free(acc);
    return 0;
}

int lwl_resize_window_at(const uint8_t *src, ptrdiff_t sstride, int bx, int by, int sw, int sh,
                         int full_w, int full_h, int x0, int y0, int out_w, int out_h,
                         uint8_t *dst)
{
    int need_h = full_w != sw, need_v = full_h != sh, r0 = y0, r1 = y0 + out_h, rc = 0;
    lwl_taps th = { 0 }, tv = { 0 };
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;

    /* Rows of the source the vertical pass reads. */
    if (need_v) {
        if (taps_make(&tv, sh, full_h, y0, out_h))
            return -1;
        r0 = tv.first[0];
        r1 = tv.first[out_h - 1] + tv.count[out_h - 1];
    }
    src += (ptrdiff_t)(r0 - by) * sstride;

    /* Horizontal pass (or a copy of the window's columns) into tmp. */
    tmp = malloc((size_t)(r1 - r0) * (size_t)out_w * 3 + 1);
    acc = malloc(sizeof(int32_t) * (size_t)out_w * 3);
    if (!tmp || !acc || (need_h && taps_make(&th, sw, full_w, x0, out_w))) {
        rc = -1;
        goto done;
    }
    if (need_h) {
        if (resize_h(src, sstride, bx, r1 - r0, &th, out_w, tmp)) {
            rc = -1;
            goto done;
        }
    } else {
        for (int y = r0; y < r1; y++)
            memcpy(tmp + (size_t)(y - r0) * out_w * 3,
                   src + (ptrdiff_t)(y - r0) * sstride + (x0 - bx) * 3, (size_t)out_w * 3);
    }

    /* Vertical pass (or the rows as they are). */
    if (need_v)
        resize_rows_v(tmp, (ptrdiff_t)out_w * 3, r0, &tv, out_w, out_h, acc, dst);
    else
        memcpy(dst, tmp, (size_t)out_h * out_w * 3);

done:
    free(tmp);
    free(acc);
    if (need_h)
        taps_free(&th);
    if (need_v)
        taps_free(&tv);
    return rc;
}

int lwl_resize_window(const uint8_t *src, int sw, int sh, ptrdiff_t sstride, int full_w,
                      int full_h, int x0, int y0, int out_w, int out_h, uint8_t *dst)
{
    return lwl_resize_window_at(src, sstride, 0, 0, sw, sh, full_w, full_h, x0, y0, out_w,
                                out_h, dst);
}

lwl_box lwl_resize_window_box(int sw, int sh, int full_w, int full_h, int x0, int y0,
                              int out_w, int out_h)
{
    lwl_box b = { y0, x0, out_h, out_w };
    int32_t k[64], *kp = k;
    int first, count, ks;

    /* The source span of the first and last output of each axis (a downscale by more
     * than ~30 needs more taps than k holds: then the whole axis). */
    ks = lwl_resample_ksize(sh, full_h);
    if (full_h != sh) {
        if (ks > 64) {
            b.top = 0;
            b.height = sh;
        } else {
            lwl_resample_taps(sh, full_h, ks, y0, &first, &count, kp);
            b.top = first;
            lwl_resample_taps(sh, full_h, ks, y0 + out_h - 1, &first, &count, kp);
            b.height = first + count - b.top;
        }
    }
    ks = lwl_resample_ksize(sw, full_w);
    if (full_w != sw) {
        if (ks > 64) {
            b.left = 0;
            b.width = sw;
        } else {
            lwl_resample_taps(sw, full_w, ks, x0, &first, &count, kp);
            b.left = first;
            lwl_resample_taps(sw, full_w, ks, x0 + out_w - 1, &first, &count, kp);
            b.width = first + count - b.left;
        }
    }
    return b;
}

int lwl_resized_crop(const lwl_image *src, lwl_box box, int size, lwl_image *dst)
{
    const uint8_t *origin = src->px + ((size_t)box.top * src->w + box.left) * 3;

    return lwl_resize_window(origin, box.width, box.height, (ptrdiff_t)src->w * 3, size, size,
                             0, 0, size, size, dst->px);
}

void lwl_resize_short_size(int w, int h, int short_side, int *out_w, int *out_h)
{
    /* torchvision 0.14: the long side becomes int(short_side * long / short). */
    if (w <= h) {
        *out_w = short_side;
        *out_h = (int)((double)short_side * h / w);
    } else {
        *out_h = short_side;
        *out_w = (int)((double)short_side * w / h);
    }
}

int lwl_resize_center_crop(const lwl_image *src, int short_side, int size, lwl_image *dst)
{
    int rw, rh;

    lwl_resize_short_size(src->w, src->h, short_side, &rw, &rh);

    /* CenterCrop: int(round((H - size) / 2.0)), Python's round (half to even). */
    int top = (int)nearbyint((rh - size) / 2.0), left = (int)nearbyint((rw - size) / 2.0);

    return lwl_resize_window(src->px, src->w, src->h, (ptrdiff_t)src->w * 3, rw, rh, left,
                             top, size, size, dst->px);
}

void lwl_hflip(lwl_image *im)
{
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->px + (size_t)y * im->w * 3;

        for (int a = 0, b = im->w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];

                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

/* A 256-entry table applied to every sample. */
LWL_HOT
static void apply_lut(lwl_image *im, const uint8_t lut[256])
{
    size_t n = (size_t)im->w * im->h * 3;

    for (size_t i = 0; i < n; i++)
        im->px[i] = lut[im->px[i]];
}

/* Image.blend(degenerate, image, alpha) over every sample: the float arithmetic of
 * lwl_blend, in a loop that vectorises. */
LWL_HOT
static void blend_all(uint8_t *restrict px, size_t n, int degenerate, float alpha)
{
    float d = (float)degenerate;

    for (size_t i = 0; i < n; i++) {
        float t = d + LWL_FMUL(alpha, (float)((int)px[i] - degenerate));

        t = t < 0.0f ? 0.0f : (t > 255.0f ? 255.0f : t);
        px[i] = (uint8_t)(int)t;
    }
}

void lwl_brightness(lwl_image *im, double factor)
{
    blend_all(im->px, (size_t)im->w * im->h * 3, 0, (float)factor);
}

LWL_HOT
int lwl_mean_luma(const lwl_image *im)
{
    size_t n = (size_t)im->w * im->h;
    uint64_t sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += lwl_luma(im->px[i * 3], im->px[i * 3 + 1], im->px[i * 3 + 2]);
    return (int)((double)sum / (double)n + 0.5);
}

void lwl_contrast(lwl_image *im, double factor)
{
    blend_all(im->px, (size_t)im->w * im->h * 3, lwl_mean_luma(im), (float)factor);
}

LWL_HOT
static void saturation_lut(float alpha, uint8_t *restrict lut)
{
    for (int l = 0; l < 256; l++)
        for (int v = 0; v < 256; v++)
            lut[l * 256 + v] = lwl_blend(l, v, alpha);
}

void lwl_saturation(lwl_image *im, double factor)
{
    size_t n = (size_t)im->w * im->h;
    float alpha = (float)factor;
    uint8_t *lut = malloc(256 * 256);

    /* blend(luma, v) for every (luma, v): 64 Ki entries, cheaper than 3 per pixel. */
    if (!lut) {
        for (size_t i = 0; i < n; i++)
            lwl_saturation_px(im->px + i * 3, alpha);
        return;
    }
    saturation_lut(alpha, lut);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = im->px + i * 3;
        const uint8_t *t = lut + 256 * lwl_luma(p[0], p[1], p[2]);

        p[0] = t[p[0]];
        p[1] = t[p[1]];
        p[2] = t[p[2]];
    }
    free(lut);
}

/* Pillow's 8-bit H and S as tables (the CPU fast path of lwl_rgb_to_hsv). H depends only
 * on which channel is the largest and which the smallest (6 cases), the range
 * cr = max - min and d, the distance of the third channel below the max; S on (cr, max).
 * Entries with cr = 0 are 0 (gray). Filled once from lwl_rgb_to_hsv itself. */
static uint8_t hue_h[6][256][256], hue_s[256][256];
static pthread_once_t hue_once = PTHREAD_ONCE_INIT;

/* A pixel of case c with max 255, range cr and the third channel d below the max:
 * c = 0 r max b min, 1 r max g min, 2 g max b min, 3 g max r min, 4 b max r min,
 * 5 b max g min. */
static void hue_case_pixel(int c, int cr, int d, uint8_t *p)
{
    int hi = 255, lo = 255 - cr, mid = 255 - d;
    static const int8_t role[6][3] = { { 0, 2, 1 }, { 0, 1, 2 }, { 2, 0, 1 },
                                       { 1, 0, 2 }, { 1, 2, 0 }, { 2, 1, 0 } };

    for (int k = 0; k < 3; k++)
        p[k] = (uint8_t)(role[c][k] == 0 ? hi : role[c][k] == 1 ? lo : mid);
}

static void hue_tables_init(void)
{
    for (int c = 0; c < 6; c++)
        for (int cr = 1; cr < 256; cr++)
            for (int d = 0; d <= cr; d++) {
                uint8_t p[3], hsv[3];

                hue_case_pixel(c, cr, d, p);
                lwl_rgb_to_hsv(p, hsv);
                hue_h[c][cr][d] = hsv[0];
            }
    for (int cr = 1; cr < 256; cr++)
        for (int mx = cr; mx < 256; mx++) {
            uint8_t p[3] = { (uint8_t)mx, (uint8_t)(mx - cr), (uint8_t)(mx - cr) }, hsv[3];

            lwl_rgb_to_hsv(p, hsv);
            hue_s[cr][mx] = hsv[1];
        }
}

void lwl_rgb_to_hsv_lut(const uint8_t *p, uint8_t *hsv)
{
    int r = p[0], g = p[1], b = p[2];
    int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int rmax = r == mx, gmax = !rmax && g == mx;
    int c = rmax ? (b == mn ? 0 : 1) : gmax ? (b == mn ? 2 : 3) : (r == mn ? 4 : 5);
    int third = (c == 0 || c == 4) ? g : (c == 1 || c == 3) ? b : r;

    hsv[0] = hue_h[c][mx - mn][mx - third];
    hsv[1] = hue_s[mx - mn][mx];
    hsv[2] = (uint8_t)mx;
}

void lwl_hue_tables(void)
{
    pthread_once(&hue_once, hue_tables_init);
}

/* lwl_hsv_to_rgb_fast without branches: s = 0 gives v in every channel by itself. */
static inline void hsv_to_rgb_sel(const uint8_t *hsv, uint8_t *p, const lwl_hsv_tables *t)
{
    static const uint8_t pick[6][3] = { { 0, 3, 1 }, { 2, 0, 1 }, { 1, 0, 3 },
                                        { 1, 2, 0 }, { 3, 1, 0 }, { 0, 1, 2 } };
    int h = hsv[0];
    float f = t->f[h], fs = t->fs[hsv[1]];
    double fv = (float)hsv[2];
    double x[3] = { fv * (1.0 - fs), fv * (1.0 - LWL_FMUL(fs, f)),
                    fv * (1.0 - LWL_DMUL((double)fs, 1.0 - f)) };
    uint8_t val[4];

    val[0] = hsv[2];
    for (int k = 0; k < 3; k++) {
        int rr = (int)(x[k] + 0.5);

        val[k + 1] = (uint8_t)(x[k] < 0.5 ? 0 : rr);
    }
    for (int k = 0; k < 3; k++)
        p[k] = val[pick[t->sector[h]][k]];
}

void lwl_hue(lwl_image *im, double hue_factor)
{
    size_t n = (size_t)im->w * im->h;
    uint8_t shift = lwl_hue_shift(hue_factor);
    lwl_hsv_tables t;

    lwl_hue_tables();
    lwl_hsv_tables_init(&t);
    for (size_t i = 0; i < n; i++) {
        uint8_t hsv[3];

        lwl_rgb_to_hsv_lut(im->px + i * 3, hsv);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        hsv_to_rgb_sel(hsv, im->px + i * 3, &t);
    }
}

void lwl_grayscale(lwl_image *im)
{
    size_t n = (size_t)im->w * im->h;

    for (size_t i = 0; i < n; i++)
        lwl_gray_px(im->px + i * 3);
}

void lwl_solarize_image(lwl_image *im, int threshold)
{
    uint8_t lut[256];

    for (int v = 0; v < 256; v++)
        lut[v] = lwl_solarize((uint8_t)v, threshold);
    apply_lut(im, lut);
}

void lwl_jitter_apply(lwl_image *im, const lwl_jitter *j)
{
    for (int i = 0; i < 4; i++) {
        switch (j->order[i]) {
        case 0: lwl_brightness(im, j->brightness); break;
        case 1: lwl_contrast(im, j->contrast); break;
        case 2: lwl_saturation(im, j->saturation); break;
        default: lwl_hue(im, j->hue); break;
        }
    }
}

/* One vertical box pass of the whole image, src to dst (both h rows of n bytes), a row
 * at a time with n running sums; rows outside the image are the edge rows. */
LWL_HOT
static void box_vertical(const uint8_t *restrict src, uint8_t *restrict dst, int h, size_t n,
                         int r, uint32_t ww, uint32_t fw, uint32_t *restrict acc)
{
#define ROW(y) (src + (size_t)lwl_clampi((y), 0, h - 1) * n)
    for (size_t i = 0; i < n; i++)
        acc[i] = 0;
    for (int d = -r; d <= r; d++) {
        const uint8_t *row = ROW(d);

        for (size_t i = 0; i < n; i++)
            acc[i] += row[i];
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *top = ROW(y - r - 1), *bot = ROW(y + r + 1), *out = ROW(y - r);
        uint8_t *o = dst + (size_t)y * n;

        for (size_t i = 0; i < n; i++) {
            uint32_t far = (uint32_t)top[i] + bot[i];

            o[i] = (uint8_t)((acc[i] * ww + far * fw + (1u << 23)) >> 24);
            acc[i] += (uint32_t)bot[i] - out[i];
        }
    }
#undef ROW
}

int lwl_gaussian_blur(lwl_image *im, double sigma)
{
    float box = lwl_blur_box_radius((float)sigma, 3);
    size_t row = (size_t)im->w * 3, img = row * (size_t)im->h;
    size_t wide = row > (size_t)im->h * 3 ? row : (size_t)im->h * 3;
    uint8_t *tmp, *tr;
    uint32_t ww, fw, *acc;
    int r;

    if (box == 0.0f || im->w == 0 || im->h == 0)
        return 0;
    lwl_blur_weights(box, &r, &ww, &fw);
    tmp = malloc(img * 2);
    acc = malloc(wide * sizeof(uint32_t));
    if (!tmp || !acc) {
        free(tmp);
        free(acc);
        return -1;
    }
    tr = tmp + img;

    /* Three horizontal passes as vertical passes over the transpose (w rows of h
     * pixels), then three vertical passes: image -> tmp -> image -> tmp. */
    transpose3(im->px, (ptrdiff_t)row, im->w, im->h, tmp, (ptrdiff_t)im->h * 3);
    box_vertical(tmp, tr, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    box_vertical(tr, tmp, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    box_vertical(tmp, tr, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    transpose3(tr, (ptrdiff_t)im->h * 3, im->h, im->w, im->px, (ptrdiff_t)row);
    box_vertical(im->px, tmp, im->h, row, r, ww, fw, acc);
    box_vertical(tmp, im->px, im->h, row, r, ww, fw, acc);
    box_vertical(im->px, tmp, im->h, row, r, ww, fw, acc);
    memcpy(im->px, tmp, img);
    free(tmp);
    free(acc);
    return 0;
}

void lwl_normalize_image(const lwl_image *im, const float mean[3], const float std[3],
                         float *out)
{
    lwl_normalize_u8(im->px, (size_t)im->w * im->h, mean, std, out);
}

LWL_HOT
void lwl_normalize_u8(const uint8_t *px, size_t n, const float mean[3], const float std[3],
                      float *out)
{
    /* Per channel, in torch's float32 arithmetic: a loop that vectorises. */
    for (int c = 0; c < 3; c++) {
        float m = mean[c], sd = std[c];
        const uint8_t *p = px + c;
        float *o = out + (size_t)c * n;

        for (size_t i = 0; i < n; i++)
            o[i] = ((float)p[i * 3] / 255.0f - m) / sd;
    }
}

/* ---- samplers ---- */

static void key_block(lwl_rng_key k, uint32_t block, uint32_t out[4])
{
    lwl_rng_block(k.seed, k.epoch, k.index, k.view, k.transform, block, out);
}

lwl_box lwl_sample_resized_crop(lwl_rng_key k, int w, int h, const double scale[2],
                                const double ratio[2], int *fallback)
{
    double area = (double)w * h, lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    lwl_box b;

    /* Ten tries: area fraction and log aspect uniform, w/h rounded half to even. */
    for (uint32_t t = 0; t < 10; t++) {
        uint32_t u[4];

        key_block(k, t, u);
        double target = area * lwl_rng_uniform(u[0], scale[0], scale[1]);
        double aspect = exp(lwl_rng_uniform(u[1], lr0, lr1));
        int cw = (int)nearbyint(sqrt(target * aspect));
        int ch = (int)nearbyint(sqrt(target / aspect));

        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            b.top = (int)lwl_rng_below(u[2], (uint32_t)(h - ch + 1));
            b.left = (int)lwl_rng_below(u[3], (uint32_t)(w - cw + 1));
            b.height = ch;
            b.width = cw;
            *fallback = 0;
            return b;
        }
    }

    /* Fallback: the centre crop with its aspect clamped to the ratio range. */
    double in_ratio = (double)w / h;
    double rmin = ratio[0] < ratio[1] ? ratio[0] : ratio[1];
    double rmax = ratio[0] < ratio[1] ? ratio[1] : ratio[0];

    b.width = w;
    b.height = h;
    if (in_ratio < rmin)
        b.height = (int)nearbyint(w / rmin);
    else if (in_ratio > rmax)
        b.width = (int)nearbyint(h * rmax);
    b.top = (h - b.height) / 2;
    b.left = (w - b.width) / 2;
    *fallback = 1;
    return b;
}

int lwl_sample_coin(lwl_rng_key k, double p)
{
    uint32_t u[4];

    key_block(k, 0, u);
    return lwl_rng_u01(u[0]) < p;
}

lwl_jitter lwl_sample_jitter(lwl_rng_key k, double b, double c, double s, double hue)
{
    uint32_t u[4], v[4];
    lwl_jitter j;

    key_block(k, 0, u);
    key_block(k, 1, v);
    j.brightness = lwl_rng_uniform(u[1], fmax(0.0, 1.0 - b), 1.0 + b);
    j.contrast = lwl_rng_uniform(u[2], fmax(0.0, 1.0 - c), 1.0 + c);
    j.saturation = lwl_rng_uniform(u[3], fmax(0.0, 1.0 - s), 1.0 + s);
    j.hue = lwl_rng_uniform(v[0], -hue, hue);

    /* A uniform permutation of the four operations (Fisher-Yates). */
    for (int i = 0; i < 4; i++)
        j.order[i] = i;
    for (int i = 3; i > 0; i--) {
        int r = (int)lwl_rng_below(v[4 - i], (uint32_t)(i + 1)), t = j.order[i];

        j.order[i] = j.order[r];
        j.order[r] = t;
    }
    return j;
}

double lwl_sample_sigma(lwl_rng_key k, double lo, double hi)
{
    uint32_t u[4];

    key_block(k, 0, u);
    return lwl_rng_uniform(u[1], lo, hi);
}
