/* The augmentations on the CPU: loops over lwl_pixel.h, and torchvision's parameter
 * samplers drawing from Philox (the draw layout is in lwl_augment.h). */
#include "lwl_augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lwl_pixel.h"

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

/* Horizontal pass over rows [r0, r1) of src into tmp (rows out_w * 3 bytes). */
static void resize_rows_h(const uint8_t *src, ptrdiff_t sstride, int r0, int r1,
                          const lwl_taps *th, int out_w, uint8_t *tmp)
{
    for (int y = r0; y < r1; y++) {
        const uint8_t *row = src + (ptrdiff_t)y * sstride;
        uint8_t *o = tmp + (size_t)(y - r0) * out_w * 3;

        for (int x = 0; x < out_w; x++) {
            const int32_t *k = th->k + (size_t)x * th->ksize;
            const uint8_t *p = row + th->first[x] * 3;

            for (int c = 0; c < 3; c++)
                o[x * 3 + c] = lwl_resample_tap(p + c, 3, th->count[x], k);
        }
    }
}

/* Vertical pass: output row y from tmp rows (starting at tmp row index base). */
static void resize_rows_v(const uint8_t *tmp, ptrdiff_t tstride, int base, const lwl_taps *tv,
                          int out_w, int out_h, uint8_t *dst)
{
    int n = out_w * 3;

    for (int y = 0; y < out_h; y++) {
        const int32_t *k = tv->k + (size_t)y * tv->ksize;
        const uint8_t *p = tmp + (ptrdiff_t)(tv->first[y] - base) * tstride;
        uint8_t *o = dst + (size_t)y * n;

        for (int i = 0; i < n; i++)
            o[i] = lwl_resample_tap(p + i, tstride, tv->count[y], k);
    }
}

int lwl_resize_window(const uint8_t *src, int sw, int sh, ptrdiff_t sstride, int full_w,
                      int full_h, int x0, int y0, int out_w, int out_h, uint8_t *dst)
{
    int need_h = full_w != sw, need_v = full_h != sh, r0 = y0, r1 = y0 + out_h, rc = 0;
    lwl_taps th = { 0 }, tv = { 0 };
    uint8_t *tmp = NULL;

    /* Rows of the source the vertical pass reads. */
    if (need_v) {
        if (taps_make(&tv, sh, full_h, y0, out_h))
            return -1;
        r0 = tv.first[0];
        r1 = tv.first[out_h - 1] + tv.count[out_h - 1];
    }

    /* Horizontal pass (or a copy of the window's columns) into tmp. */
    tmp = malloc((size_t)(r1 - r0) * (size_t)out_w * 3 + 1);
    if (!tmp || (need_h && taps_make(&th, sw, full_w, x0, out_w))) {
        rc = -1;
        goto done;
    }
    if (need_h)
        resize_rows_h(src, sstride, r0, r1, &th, out_w, tmp);
    else
        for (int y = r0; y < r1; y++)
            memcpy(tmp + (size_t)(y - r0) * out_w * 3, src + (ptrdiff_t)y * sstride + x0 * 3,
                   (size_t)out_w * 3);

    /* Vertical pass (or the rows as they are). */
    if (need_v)
        resize_rows_v(tmp, (ptrdiff_t)out_w * 3, r0, &tv, out_w, out_h, dst);
    else
        memcpy(dst, tmp, (size_t)out_h * out_w * 3);

done:
    free(tmp);
    if (need_h)
        taps_free(&th);
    if (need_v)
        taps_free(&tv);
    return rc;
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

void lwl_brightness(lwl_image *im, double factor)
{
    size_t n = (size_t)im->w * im->h;
    float alpha = (float)factor;

    for (size_t i = 0; i < n; i++)
        lwl_brightness_px(im->px + i * 3, alpha);
}

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
    size_t n = (size_t)im->w * im->h;
    int mean = lwl_mean_luma(im);
    float alpha = (float)factor;

    for (size_t i = 0; i < n; i++)
        lwl_contrast_px(im->px + i * 3, mean, alpha);
}

void lwl_saturation(lwl_image *im, double factor)
{
    size_t n = (size_t)im->w * im->h;
    float alpha = (float)factor;

    for (size_t i = 0; i < n; i++)
        lwl_saturation_px(im->px + i * 3, alpha);
}

void lwl_hue(lwl_image *im, double hue_factor)
{
    size_t n = (size_t)im->w * im->h;
    uint8_t shift = lwl_hue_shift(hue_factor);

    for (size_t i = 0; i < n; i++)
        lwl_hue_px(im->px + i * 3, shift);
}

void lwl_grayscale(lwl_image *im)
{
    size_t n = (size_t)im->w * im->h;

    for (size_t i = 0; i < n; i++)
        lwl_gray_px(im->px + i * 3);
}

void lwl_solarize_image(lwl_image *im, int threshold)
{
    size_t n = (size_t)im->w * im->h * 3;

    for (size_t i = 0; i < n; i++)
        im->px[i] = lwl_solarize(im->px[i], threshold);
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

int lwl_gaussian_blur(lwl_image *im, double sigma)
{
    float box = lwl_blur_box_radius((float)sigma, 3);
    size_t row = (size_t)im->w * 3;
    uint8_t *tmp;
    uint32_t ww, fw;
    int r;

    if (box == 0.0f || im->w == 0 || im->h == 0)
        return 0;
    lwl_blur_weights(box, &r, &ww, &fw);
    tmp = malloc(row > (size_t)im->h * 3 ? row : (size_t)im->h * 3);
    if (!tmp)
        return -1;

    /* Three horizontal passes, each row through tmp. */
    for (int pass = 0; pass < 3; pass++)
        for (int y = 0; y < im->h; y++) {
            uint8_t *line = im->px + (size_t)y * row;

            for (int x = 0; x < im->w; x++)
                for (int c = 0; c < 3; c++)
                    tmp[x * 3 + c] = lwl_blur_tap(line + c, 3, x, im->w - 1, r, ww, fw);
            memcpy(line, tmp, row);
        }

    /* Three vertical passes, column by column (Pillow transposes instead). */
    for (int pass = 0; pass < 3; pass++)
        for (int x = 0; x < im->w; x++) {
            uint8_t *col = im->px + (size_t)x * 3;

            for (int y = 0; y < im->h; y++)
                for (int c = 0; c < 3; c++)
                    tmp[y * 3 + c] = lwl_blur_tap(col + c, (ptrdiff_t)row, y, im->h - 1, r, ww,
                                                  fw);
            for (int y = 0; y < im->h; y++)
                memcpy(col + (size_t)y * row, tmp + y * 3, 3);
        }
    free(tmp);
    return 0;
}

void lwl_normalize_image(const lwl_image *im, const float mean[3], const float std[3],
                         float *out)
{
    size_t n = (size_t)im->w * im->h;

    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++)
            out[c * n + i] = lwl_normalize(im->px[i * 3 + c], mean[c], std[c]);
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
