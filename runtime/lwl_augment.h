/* The augmentations on the CPU: whole-image loops over the per-pixel code of
 * lwl_pixel.h, and the parameter samplers (torchvision's semantics) drawing from Philox. */
#ifndef LWL_AUGMENT_H
#define LWL_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

/* An interleaved RGB image: px is (h, w, 3) uint8, rows w * 3 bytes apart. */
typedef struct {
    int w, h;
    uint8_t *px;
} lwl_image;

/* A crop box in pixels of the source image. */
typedef struct {
    int top, left, height, width;
} lwl_box;

/* Random keys of one transform of one view of one sample. */
typedef struct {
    uint64_t seed;
    uint32_t epoch, index, view, transform;
} lwl_rng_key;

/* Draws of color_jitter: factors, hue shift and the order of the four operations
 * (0 brightness, 1 contrast, 2 saturation, 3 hue). */
typedef struct {
    int order[4];
    double brightness, contrast, saturation, hue;
} lwl_jitter;

/* Allocates a w x h image; 0 on success, -1 when out of memory. */
int lwl_image_alloc(lwl_image *im, int w, int h);
void lwl_image_free(lwl_image *im);

/* Resizes src (sw x sh, rows sstride bytes apart) to full_w x full_h with Pillow's
 * antialiased bilinear filter and writes only the window of out_w x out_h starting at
 * (x0, y0) of that result into dst (rows out_w * 3 bytes). 0, or -1 out of memory. */
int lwl_resize_window(const uint8_t *src, int sw, int sh, ptrdiff_t sstride, int full_w,
                      int full_h, int x0, int y0, int out_w, int out_h, uint8_t *dst);

/* The same where src holds the source pixel (bx, by) at its start: a decoded region of a
 * source of sw x sh pixels; the region must cover lwl_resize_window_box(...). */
int lwl_resize_window_at(const uint8_t *src, ptrdiff_t sstride, int bx, int by, int sw, int sh,
                         int full_w, int full_h, int x0, int y0, int out_w, int out_h,
                         uint8_t *dst);

/* The box of source pixels lwl_resize_window reads for that window. */
lwl_box lwl_resize_window_box(int sw, int sh, int full_w, int full_h, int x0, int y0,
                              int out_w, int out_h);

/* torchvision resized_crop: crop `box` of src, resize to size x size into dst. */
int lwl_resized_crop(const lwl_image *src, lwl_box box, int size, lwl_image *dst);

/* torchvision Resize(short) then CenterCrop(size) into dst (size x size). */
int lwl_resize_center_crop(const lwl_image *src, int short_side, int size, lwl_image *dst);

/* The size torchvision's Resize(short_side) gives a w x h image. */
void lwl_resize_short_size(int w, int h, int short_side, int *out_w, int *out_h);

/* In-place colour and geometry operations, each exactly torchvision-on-PIL. */
void lwl_hflip(lwl_image *im);
void lwl_brightness(lwl_image *im, double factor);
void lwl_contrast(lwl_image *im, double factor);
void lwl_saturation(lwl_image *im, double factor);
void lwl_hue(lwl_image *im, double hue_factor);
void lwl_grayscale(lwl_image *im);
void lwl_solarize_image(lwl_image *im, int threshold);
void lwl_jitter_apply(lwl_image *im, const lwl_jitter *j);

/* Pillow's RGB -> HSV from tables (equal to lwl_rgb_to_hsv for every input); call
 * lwl_hue_tables() once first (lwl_hue does). */
void lwl_hue_tables(void);
void lwl_rgb_to_hsv_lut(const uint8_t *p, uint8_t *hsv);

/* The rounded mean luma Pillow's ImageEnhance.Contrast blends with. */
int lwl_mean_luma(const lwl_image *im);

/* PIL ImageFilter.GaussianBlur(sigma) in place; 0, or -1 out of memory. */
int lwl_gaussian_blur(lwl_image *im, double sigma);

/* ToTensor + Normalize: out is (3, h, w) float32. */
void lwl_normalize_image(const lwl_image *im, const float mean[3], const float std[3],
                         float *out);

/* The same for n interleaved RGB pixels px: chw is (3, n) float32. */
void lwl_normalize_u8(const uint8_t *px, size_t n, const float mean[3], const float std[3],
                      float *chw);

/* ---- samplers. Draw layout (counter block, words) per transform slot:
 * resized_crop: blocks 0..9 = tries (area, log-ratio, top, left), block 10 word 0 = coin;
 * color_jitter: block 0 (coin, brightness, contrast, saturation), block 1 (hue, three
 * permutation words); others: block 0 (coin, parameter). */

/* torchvision RandomResizedCrop.get_params; *fallback set when all ten tries failed. */
lwl_box lwl_sample_resized_crop(lwl_rng_key k, int w, int h, const double scale[2],
                                const double ratio[2], int *fallback);

/* The coin of a transform with probability p: 1 when it fires. */
int lwl_sample_coin(lwl_rng_key k, double p);

/* color_jitter draws for strengths b, c, s, hue (ranges [1-x, 1+x], [-hue, hue]). */
lwl_jitter lwl_sample_jitter(lwl_rng_key k, double b, double c, double s, double hue);

/* gaussian_blur's sigma, uniform in [lo, hi). */
double lwl_sample_sigma(lwl_rng_key k, double lo, double hi);

/* ---- the GPU views: what a view drew for one sample, and a batch staged for the GPU ---- */

/* The ops of a view that fired (lwl_view_params.fired). */
enum {
    LWL_VP_CROP = 1 << 0,       /* resized_crop (else Resize + CenterCrop, as at evaluation) */
    LWL_VP_FLIP = 1 << 1,
    LWL_VP_JITTER = 1 << 2,
    LWL_VP_GRAY = 1 << 3,
    LWL_VP_BLUR = 1 << 4,
    LWL_VP_SOLARIZE = 1 << 5
};

/* Everything one view drew for one sample, exactly what its make() applies; with the source
 * pixels it reads, all that the view's GPU kernel needs. The first op scales the box `dom` of
 * the source (the crop, or the whole image) to rw x rh and keeps the size x size window at
 * (x0, y0) of the result; `src` (inside dom) is the box of source pixels that reads. No
 * implicit padding (120 bytes, the same layout under cc and nvcc). */
typedef struct lwl_view_params {
    lwl_box src;                /* source pixels read (the view's region) */
    lwl_box dom;                /* the box the resize scales */
    int rw, rh, x0, y0;         /* dom becomes rw x rh; the view is the window at (x0, y0) */
    uint32_t fired;             /* LWL_VP_* */
    uint32_t reserved;          /* 0 */
    lwl_jitter jitter;          /* with LWL_VP_JITTER */
    double sigma;               /* with LWL_VP_BLUR */
    uint64_t pixels;            /* staged: offset of src's (height, width, 3) bytes in pixels */
} lwl_view_params;

/* A batch staged for the GPU (the loader's staging mode): every sample's view params and the
 * source pixels each view reads, in one block so that one copy uploads it all:
 *   base: params (n * nviews, sample-major: params[i * nviews + v]) | zeros to pixel_off |
 *         pixels (view by view in that order, each starting at a multiple of 16, zero-padded)
 * The bytes [0, bytes) of base are a function of (seed, epoch, split) alone. */
typedef struct lwl_stage {
    int n, nviews, size;            /* samples, views per sample, the views' side */
    void *base;                     /* the block (the loader's staging allocator) */
    size_t pixel_off, bytes, cap;   /* pixels start at pixel_off; in use; allocated */
    const lwl_view_params *params;  /* base */
    const uint8_t *pixels;          /* base + pixel_off */
} lwl_stage;

#endif
