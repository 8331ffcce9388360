/* Per-pixel and per-sample image arithmetic of the augmentations, bit-exact with
 * torchvision 0.14 on Pillow 9 uint8 RGB images; written once, used by the CPU loops
 * (lwl_augment.c) and, through LWL_HD, by CUDA kernels. Images are (H, W, 3) uint8. */
#ifndef LWL_PIXEL_H
#define LWL_PIXEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "lwl_philox.h"

/* Products that Pillow rounds before adding: keep nvcc from fusing them into FMAs. */
#if defined(__CUDA_ARCH__)
#define LWL_FMUL(a, b) __fmul_rn((a), (b))
#define LWL_DMUL(a, b) __dmul_rn((a), (b))
#else
#define LWL_FMUL(a, b) ((a) * (b))
#define LWL_DMUL(a, b) ((a) * (b))
#endif

/* Fixed-point bits of the resampling coefficients (Pillow: 32 - 8 - 2). */
#define LWL_RESAMPLE_BITS 22

LWL_HD int lwl_clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- resize: Pillow's antialiased bilinear (two separable passes) ---- */

/* Taps per output sample when in_size samples become out_size. */
LWL_HD int lwl_resample_ksize(int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    double support = scale < 1.0 ? 1.0 : scale;

    return (int)ceil(support) * 2 + 1;
}

LWL_HD double lwl_bilinear(double x)
{
    x = x < 0.0 ? -x : x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The taps of output sample xx: *first (first input index), *count, and k[0..count)
 * (k has ksize entries; unused ones are zeroed) in LWL_RESAMPLE_BITS fixed point. */
LWL_HD void lwl_resample_taps(int in_size, int out_size, int ksize, int xx, int *first,
                              int *count, int32_t *k)
{
    double scale = (double)in_size / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = fscale;
    double center = LWL_DMUL(xx + 0.5, scale);
    double ss = 1.0 / fscale, ww = 0.0;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);

    xmin = xmin < 0 ? 0 : xmin;
    xmax = (xmax > in_size ? in_size : xmax) - xmin;
    for (int x = 0; x < xmax; x++)
        ww += lwl_bilinear(LWL_DMUL(x + xmin - center + 0.5, ss));
    for (int x = 0; x < ksize; x++) {
        double w = x < xmax ? lwl_bilinear(LWL_DMUL(x + xmin - center + 0.5, ss)) : 0.0;
        double kf = ww != 0.0 ? w / ww : w;
        double fx = LWL_DMUL(kf, (double)(1 << LWL_RESAMPLE_BITS));

        k[x] = kf < 0 ? (int32_t)(-0.5 + fx) : (int32_t)(0.5 + fx);
    }
    *first = xmin;
    *count = xmax;
}

/* One output sample: sum of n taps p[0], p[step], ... weighted by k, rounded, clipped. */
LWL_HD uint8_t lwl_resample_tap(const uint8_t *p, ptrdiff_t step, int n, const int32_t *k)
{
    int32_t ss = 1 << (LWL_RESAMPLE_BITS - 1);

    for (int t = 0; t < n; t++)
        ss += (int32_t)p[t * step] * k[t];
    return (uint8_t)lwl_clampi(ss >> LWL_RESAMPLE_BITS, 0, 255);
}

/* ---- gaussian blur: Pillow's three-pass extended box blur ---- */

/* The box radius that approximates a Gaussian of standard deviation sigma with
 * `passes` boxes (Gwosdek et al. 2011), in Pillow's float/double mix. */
LWL_HD float lwl_blur_box_radius(float sigma, int passes)
{
    float sigma2 = sigma * sigma / passes;
    float L = (float)sqrt(12.0 * sigma2 + 1.0);
    float l = (float)floor((L - 1.0) / 2.0);
    float a = (2 * l + 1) * (LWL_FMUL(l, l + 1) - LWL_FMUL(3, sigma2));

    a /= 6 * (sigma2 - LWL_FMUL(l + 1, l + 1));
    return l + a;
}

/* Integer radius r, weight ww of the 2r+1 inner taps and fw of the two far taps,
 * all in 24-bit fixed point. */
LWL_HD void lwl_blur_weights(float box_radius, int *r, uint32_t *ww, uint32_t *fw)
{
    *r = (int)box_radius;
    *ww = (uint32_t)((float)(1u << 24) / (box_radius * 2 + 1));
    *fw = ((1u << 24) - (uint32_t)(*r * 2 + 1) * *ww) / 2;
}

/* One output sample of a box pass along a line of last+1 samples spaced by step,
 * edges replicated: (ww * sum_{|d|<=r} v[x+d] + fw * (v[x-r-1] + v[x+r+1]) + 2^23) >> 24. */
LWL_HD uint8_t lwl_blur_tap(const uint8_t *line, ptrdiff_t step, int x, int last, int r,
                            uint32_t ww, uint32_t fw)
{
    uint32_t acc = 0, far;

    for (int d = -r; d <= r; d++)
        acc += line[lwl_clampi(x + d, 0, last) * step];
    far = (uint32_t)line[lwl_clampi(x - r - 1, 0, last) * step] +
          line[lwl_clampi(x + r + 1, 0, last) * step];
    return (uint8_t)((acc * ww + far * fw + (1u << 23)) >> 24);
}

/* ---- colour: Pillow's ImageEnhance (Image.blend) and conversions ---- */

/* ITU-R 601 luma as Pillow's convert('L'): 255 * (0.299, 0.587, 0.114) in 16-bit fixed
 * point, rounded. */
LWL_HD uint8_t lwl_luma(uint8_t r, uint8_t g, uint8_t b)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* Image.blend(degenerate, image, alpha) for one sample: float arithmetic, then clipped
 * to [0, 255] and truncated. */
LWL_HD uint8_t lwl_blend(int degenerate, int v, float alpha)
{
    float t = (float)degenerate + LWL_FMUL(alpha, (float)(v - degenerate));

    t = t < 0.0f ? 0.0f : (t > 255.0f ? 255.0f : t);
    return (uint8_t)t;
}

/* ImageEnhance.Brightness: blend with black. */
LWL_HD void lwl_brightness_px(uint8_t *p, float alpha)
{
    for (int c = 0; c < 3; c++)
        p[c] = lwl_blend(0, p[c], alpha);
}

/* ImageEnhance.Contrast: blend with the image's rounded mean luma `mean`. */
LWL_HD void lwl_contrast_px(uint8_t *p, int mean, float alpha)
{
    for (int c = 0; c < 3; c++)
        p[c] = lwl_blend(mean, p[c], alpha);
}

/* ImageEnhance.Color (saturation): blend with the pixel's luma. */
LWL_HD void lwl_saturation_px(uint8_t *p, float alpha)
{
    int l = lwl_luma(p[0], p[1], p[2]);

    for (int c = 0; c < 3; c++)
        p[c] = lwl_blend(l, p[c], alpha);
}

/* The hue shift as torchvision adds it: np.uint8(hue_factor * 255), wrapping. */
LWL_HD uint8_t lwl_hue_shift(double hue_factor)
{
    return (uint8_t)(int)(hue_factor * 255.0);
}

/* Pillow's RGB -> HSV (8 bits each). */
LWL_HD void lwl_rgb_to_hsv(const uint8_t *p, uint8_t *hsv)
{
    uint8_t r = p[0], g = p[1], b = p[2];
    uint8_t maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    uint8_t minc = r < g ? (r < b ? r : b) : (g < b ? g : b);

    hsv[2] = maxc;
    if (minc == maxc) {
        hsv[0] = hsv[1] = 0;
        return;
    }

    float cr = (float)(maxc - minc), s = cr / (float)maxc, h;
    float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr;
    float bc = (float)(maxc - b) / cr;

    if (r == maxc)
        h = bc - gc;
    else if (g == maxc)
        h = (float)(2.0 + rc - bc);
    else
        h = (float)(4.0 + gc - rc);
    h = (float)fmod(h / 6.0 + 1.0, 1.0);
    hsv[0] = (uint8_t)lwl_clampi((int)(h * 255.0), 0, 255);
    hsv[1] = (uint8_t)lwl_clampi((int)(s * 255.0), 0, 255);
}

/* Pillow's HSV -> RGB (8 bits each). */
LWL_HD void lwl_hsv_to_rgb(const uint8_t *hsv, uint8_t *p)
{
    uint8_t h = hsv[0], s = hsv[1], v = hsv[2];

    if (s == 0) {
        p[0] = p[1] = p[2] = v;
        return;
    }

    int i = (int)floor((float)h * 6.0 / 255.0);
    float f = (float)((float)h * 6.0 / 255.0 - (float)i);
    float fs = (float)((float)s / 255.0);
    uint8_t up = (uint8_t)lwl_clampi((int)round((float)v * (1.0 - fs)), 0, 255);
    uint8_t uq = (uint8_t)lwl_clampi((int)round((float)v * (1.0 - LWL_FMUL(fs, f))), 0, 255);
    uint8_t ut = (uint8_t)lwl_clampi(
        (int)round((float)v * (1.0 - LWL_DMUL((double)fs, 1.0 - f))), 0, 255);

    switch (i % 6) {
    case 0: p[0] = v;  p[1] = ut; p[2] = up; break;
    case 1: p[0] = uq; p[1] = v;  p[2] = up; break;
    case 2: p[0] = up; p[1] = v;  p[2] = ut; break;
    case 3: p[0] = up; p[1] = uq; p[2] = v;  break;
    case 4: p[0] = ut; p[1] = up; p[2] = v;  break;
    default: p[0] = v; p[1] = up; p[2] = uq; break;
    }
}

/* torchvision adjust_hue on PIL: to HSV, H += shift (mod 256), back to RGB. */
LWL_HD void lwl_hue_px(uint8_t *p, uint8_t shift)
{
    uint8_t hsv[3];

    lwl_rgb_to_hsv(p, hsv);
    hsv[0] = (uint8_t)(hsv[0] + shift);
    lwl_hsv_to_rgb(hsv, p);
}

/* ---- the same HSV round trip without libm calls (the CPU fast path); bit-exact with
 * lwl_rgb_to_hsv / lwl_hsv_to_rgb for every input (checked exhaustively by test_augment) */

/* What lwl_hsv_to_rgb computes from h and s alone: sector i % 6, f and s / 255. */
typedef struct {
    uint8_t sector[256];
    float f[256], fs[256];
} lwl_hsv_tables;

LWL_HD void lwl_hsv_tables_init(lwl_hsv_tables *t)
{
    for (int v = 0; v < 256; v++) {
        int i = (int)floor((float)v * 6.0 / 255.0);

        t->sector[v] = (uint8_t)(i % 6);
        t->f[v] = (float)((float)v * 6.0 / 255.0 - (float)i);
        t->fs[v] = (float)((float)v / 255.0);
    }
}

/* round(x) for x >= 0 (half away from zero) without libm: x + 0.5 is exact for
 * x >= 0.5, and only below 0.5 can the sum round up to 1. */
LWL_HD int lwl_round_pos(double x)
{
    return x < 0.5 ? 0 : (int)(x + 0.5);
}

/* lwl_rgb_to_hsv: fmod(x, 1) is x - 1 for the x in [5/6, 11/6) that occur (exact). */
LWL_HD void lwl_rgb_to_hsv_fast(const uint8_t *p, uint8_t *hsv)
{
    int r = p[0], g = p[1], b = p[2];
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);

    hsv[2] = (uint8_t)maxc;
    if (minc == maxc) {
        hsv[0] = hsv[1] = 0;
        return;
    }

    float cr = (float)(maxc - minc), s = cr / (float)maxc, h;
    float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr;
    float bc = (float)(maxc - b) / cr;

    if (r == maxc)
        h = bc - gc;
    else if (g == maxc)
        h = (float)(2.0 + rc - bc);
    else
        h = (float)(4.0 + gc - rc);

    double x = h / 6.0 + 1.0;

    h = (float)(x >= 1.0 ? x - 1.0 : x);
    hsv[0] = (uint8_t)lwl_clampi((int)(h * 255.0), 0, 255);
    hsv[1] = (uint8_t)lwl_clampi((int)(s * 255.0), 0, 255);
}

/* lwl_hsv_to_rgb with the per-h and per-s terms from t and round() as lwl_round_pos
 * (every argument is in [0, 255]). */
LWL_HD void lwl_hsv_to_rgb_fast(const uint8_t *hsv, uint8_t *p, const lwl_hsv_tables *t)
{
    int h = hsv[0], s = hsv[1];
    uint8_t v = hsv[2];

    if (s == 0) {
        p[0] = p[1] = p[2] = v;
        return;
    }

    float f = t->f[h], fs = t->fs[s];
    double fv = (float)v;
    uint8_t up = (uint8_t)lwl_round_pos(fv * (1.0 - fs));
    uint8_t uq = (uint8_t)lwl_round_pos(fv * (1.0 - LWL_FMUL(fs, f)));
    uint8_t ut = (uint8_t)lwl_round_pos(fv * (1.0 - LWL_DMUL((double)fs, 1.0 - f)));

    switch (t->sector[h]) {
    case 0: p[0] = v;  p[1] = ut; p[2] = up; break;
    case 1: p[0] = uq; p[1] = v;  p[2] = up; break;
    case 2: p[0] = up; p[1] = v;  p[2] = ut; break;
    case 3: p[0] = up; p[1] = uq; p[2] = v;  break;
    case 4: p[0] = ut; p[1] = up; p[2] = v;  break;
    default: p[0] = v; p[1] = up; p[2] = uq; break;
    }
}

/* torchvision rgb_to_grayscale(img, 3) on PIL: luma copied to three channels. */
LWL_HD void lwl_gray_px(uint8_t *p)
{
    uint8_t l = lwl_luma(p[0], p[1], p[2]);

    p[0] = p[1] = p[2] = l;
}

/* ImageOps.solarize: v >= threshold becomes 255 - v. */
LWL_HD uint8_t lwl_solarize(uint8_t v, int threshold)
{
    return v >= threshold ? (uint8_t)(255 - v) : v;
}

/* ToTensor then Normalize, in float32 as torch computes it. */
LWL_HD float lwl_normalize(uint8_t v, float mean, float std)
{
    return ((float)v / 255.0f - mean) / std;
}

#endif
