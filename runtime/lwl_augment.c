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

/* Loops gcc cannot vectorise by itself (3-byte pixels, table look-ups, per-lane choices)
 * are written with AVX2 intrinsics in functions built for AVX2 alone and called when
 * the CPU has it (checked per call: a load and a test); the scalar loop does the rest.
 * Every lane does the scalar code's IEEE operations in the same precision (no FMA: only
 * "avx2" is enabled, and -std=c11 keeps gcc from contracting), so the bytes are equal. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LWL_AVX2 __attribute__((target("avx2")))
#define lwl_have_avx2() __builtin_cpu_supports("avx2")
#else
#define lwl_have_avx2() 0
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

#ifdef LWL_AVX2
/* 8 interleaved RGB pixels (24 bytes, read as p[0..15] and p[8..23]) as 8 dwords
 * 0x00BBGGRR, and back (writing exactly 24 bytes). */
LWL_AVX2 static inline __m256i rgb8_load(const uint8_t *p)
{
    const __m256i m = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
                                       4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14, 15,
                                       -1);
    __m128i lo = _mm_loadu_si128((const __m128i *)p);
    __m128i hi = _mm_loadu_si128((const __m128i *)(p + 8));

    return _mm256_shuffle_epi8(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1), m);
}

LWL_AVX2 static inline void rgb8_store(uint8_t *p, __m256i dw)
{
    const __m256i m = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                       0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    __m256i x = _mm256_shuffle_epi8(dw, m);
    __m128i lo = _mm256_castsi256_si128(x), hi = _mm256_extracti128_si256(x, 1);

    _mm_storeu_si128((__m128i *)p, _mm_or_si128(lo, _mm_slli_si128(hi, 12)));
    _mm_storel_epi64((__m128i *)(p + 16), _mm_srli_si128(hi, 4));
}

/* Transposes the 8 x 8 dwords r[0..7] in place (the usual unpack / permute network). */
LWL_AVX2 static inline void transpose8_epi32(__m256i r[8])
{
    __m256i t[8], u[8];

    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_epi32(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_epi32(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_unpacklo_epi64(t[k], t[k + 2]);
        u[k + 1] = _mm256_unpackhi_epi64(t[k], t[k + 2]);
        u[k + 2] = _mm256_unpacklo_epi64(t[k + 1], t[k + 3]);
        u[k + 3] = _mm256_unpackhi_epi64(t[k + 1], t[k + 3]);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

/* transpose3 on the whole 8 x 8 blocks: each pixel widened to a dword, so a block is
 * 8 loads, an 8 x 8 dword transpose and 8 stores instead of 64 x 3 byte moves. */
LWL_AVX2 static void transpose3_avx2(const uint8_t *restrict src, ptrdiff_t sstride, int w,
                                     int h, uint8_t *restrict dst, ptrdiff_t dstride)
{
    for (int y0 = 0; y0 + 8 <= h; y0 += 8)
        for (int x0 = 0; x0 + 8 <= w; x0 += 8) {
            __m256i r[8];

            for (int k = 0; k < 8; k++)
                r[k] = rgb8_load(src + (y0 + k) * sstride + x0 * 3);
            transpose8_epi32(r);
            for (int k = 0; k < 8; k++)
                rgb8_store(dst + (x0 + k) * dstride + y0 * 3, r[k]);
        }
}

/* 8 lanes of pixels' luma, lwl_luma's fixed point. */
LWL_AVX2 static inline __m256i luma8(__m256i r, __m256i g, __m256i b)
{
    __m256i s = _mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(19595)),
                                 _mm256_mullo_epi32(g, _mm256_set1_epi32(38470)));

    s = _mm256_add_epi32(s, _mm256_mullo_epi32(b, _mm256_set1_epi32(7471)));
    return _mm256_srli_epi32(_mm256_add_epi32(s, _mm256_set1_epi32(0x8000)), 16);
}

/* lwl_blend on 8 lanes: degenerate + alpha * (v - degenerate) in float, clipped,
 * truncated (max/min then a truncating conversion: the same value as the ternaries). */
LWL_AVX2 static inline __m256i blend8(__m256i deg, __m256i v, __m256 alpha)
{
    __m256 t = _mm256_add_ps(_mm256_cvtepi32_ps(deg),
                             _mm256_mul_ps(alpha, _mm256_cvtepi32_ps(_mm256_sub_epi32(v, deg))));

    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(t);
}

/* blend_all, 32 samples a step (gcc's own vectorisation of the clipping ternaries takes
 * about three times the instructions). Returns the samples done. */
LWL_AVX2 static size_t blend_avx2(uint8_t *px, size_t n, int degenerate, float alpha)
{
    __m256i deg = _mm256_set1_epi32(degenerate);
    __m256 a = _mm256_set1_ps(alpha);
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(px + i));
        __m128i hi = _mm_loadu_si128((const __m128i *)(px + i + 16));
        __m256i v0 = blend8(deg, _mm256_cvtepu8_epi32(lo), a);
        __m256i v1 = blend8(deg, _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), a);
        __m256i v2 = blend8(deg, _mm256_cvtepu8_epi32(hi), a);
        __m256i v3 = blend8(deg, _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)), a);
        /* The packs work per 128-bit lane: one dword permute restores the order. */
        __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(v0, v1), _mm256_packus_epi32(v2, v3));

        w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(px + i), w);
    }
    return i;
}

/* lwl_saturation_px on 8 pixels a step, without the table. Returns the pixels done. */
LWL_AVX2 static size_t saturation_avx2(uint8_t *px, size_t n, float alpha)
{
    const __m256i m8 = _mm256_set1_epi32(0xff);
    __m256 a = _mm256_set1_ps(alpha);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256i dw = rgb8_load(px + i * 3);
        __m256i r = _mm256_and_si256(dw, m8), g = _mm256_and_si256(_mm256_srli_epi32(dw, 8), m8);
        __m256i b = _mm256_srli_epi32(dw, 16), l = luma8(r, g, b);

        r = blend8(l, r, a);
        g = blend8(l, g, a);
        b = blend8(l, b, a);
        rgb8_store(px + i * 3, _mm256_or_si256(r, _mm256_or_si256(_mm256_slli_epi32(g, 8),
                                                                  _mm256_slli_epi32(b, 16))));
    }
    return i;
}

/* lwl_gray_px on 8 pixels a step. Returns the pixels done. */
LWL_AVX2 static size_t gray_avx2(uint8_t *px, size_t n)
{
    const __m256i m8 = _mm256_set1_epi32(0xff);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256i dw = rgb8_load(px + i * 3);
        __m256i l = luma8(_mm256_and_si256(dw, m8),
                          _mm256_and_si256(_mm256_srli_epi32(dw, 8), m8),
                          _mm256_srli_epi32(dw, 16));

        rgb8_store(px + i * 3, _mm256_mullo_epi32(l, _mm256_set1_epi32(0x010101)));
    }
    return i;
}

/* Mirrors a row of w pixels, 8 from each end a step (dword lanes reversed); returns the
 * pixels done at each end (the middle, fewer than 16, is left to the caller). */
LWL_AVX2 static int hflip_avx2(uint8_t *row, int w)
{
    const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    int a = 0;

    for (; a + 16 <= w - a; a += 8) {
        uint8_t *pa = row + a * 3, *pb = row + (w - a - 8) * 3;
        __m256i l = rgb8_load(pa), r = rgb8_load(pb);

        rgb8_store(pa, _mm256_permutevar8x32_epi32(r, rev));
        rgb8_store(pb, _mm256_permutevar8x32_epi32(l, rev));
    }
    return a;
}

/* lwl_normalize_u8 for the pixels [i0, i1): the result depends only on (channel, value),
 * so it is gathered from tab, 256 entries per channel that the caller computed with the
 * scalar expression (no divisions here). Where the three planes' rows are 32-byte aligned
 * the stores are non-temporal: the output (a batch, megabytes) is not read again soon, and
 * streaming it skips reading each line in before writing it (the caller fences). */
LWL_AVX2 static void normalize_avx2(const uint8_t *px, size_t n, size_t i0, size_t i1,
                                    const float *tab, float *out, int stream)
{
    const __m256i m8 = _mm256_set1_epi32(0xff);

    for (size_t i = i0; i + 8 <= i1; i += 8) {
        __m256i dw = rgb8_load(px + i * 3);
        __m256i r = _mm256_and_si256(dw, m8), g = _mm256_and_si256(_mm256_srli_epi32(dw, 8), m8);
        __m256i b = _mm256_srli_epi32(dw, 16);
        __m256 vr = _mm256_i32gather_ps(tab, r, 4), vg = _mm256_i32gather_ps(tab + 256, g, 4);
        __m256 vb = _mm256_i32gather_ps(tab + 512, b, 4);

        if (stream) {
            _mm256_stream_ps(out + i, vr);
            _mm256_stream_ps(out + n + i, vg);
            _mm256_stream_ps(out + 2 * n + i, vb);
        } else {
            _mm256_storeu_ps(out + i, vr);
            _mm256_storeu_ps(out + n + i, vg);
            _mm256_storeu_ps(out + 2 * n + i, vb);
        }
    }
    if (stream)
        _mm_sfence();
}

/* 32 int32 lanes (a[0..3], in order) clipped to [0, 255] and stored as 32 bytes: the
 * saturating packs clip exactly, one dword permute undoes their per-lane order. */
LWL_AVX2 static inline void store32_u8(uint8_t *o, const __m256i a[4])
{
    __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(a[0], a[1]),
                                    _mm256_packus_epi32(a[2], a[3]));

    w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)o, w);
}

/* resize_rows_v for rows of n >= 32 samples (else nothing): 32 samples a step with their
 * four accumulators in registers for all the taps (the C loop keeps acc in memory and
 * loads and stores it once per tap); the last step ends at n, redoing a few samples
 * (the same values: dst is not tmp). Returns the samples done per row. */
LWL_AVX2 static int resize_rows_v_avx2(const uint8_t *restrict tmp, ptrdiff_t tstride,
                                       int base, const int *first, const int *count,
                                       const int32_t *kk, int ksize, int n, int out_h,
                                       uint8_t *restrict dst)
{
    if (n < 32)
        return 0;
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = kk + (size_t)y * ksize;
        const uint8_t *p = tmp + (ptrdiff_t)(first[y] - base) * tstride;
        uint8_t *o = dst + (size_t)y * n;

        for (int i0 = 0; i0 < n; i0 += 32) {
            int i = i0 + 32 <= n ? i0 : n - 32;
            __m256i a[4];

            for (int j = 0; j < 4; j++)
                a[j] = _mm256_set1_epi32(1 << (LWL_RESAMPLE_BITS - 1));
            for (int t = 0; t < count[y]; t++) {
                const uint8_t *row = p + t * tstride + i;
                __m256i kt = _mm256_set1_epi32(k[t]);

                for (int j = 0; j < 4; j++) {
                    __m256i v = _mm256_cvtepu8_epi32(
                        _mm_loadl_epi64((const __m128i *)(row + 8 * j)));

                    a[j] = _mm256_add_epi32(a[j], _mm256_mullo_epi32(v, kt));
                }
            }
            for (int j = 0; j < 4; j++)
                a[j] = _mm256_srai_epi32(a[j], LWL_RESAMPLE_BITS);
            store32_u8(o + i, a);
        }
    }
    return n;
}

/* 16 bytes widened to 16-bit lanes. */
LWL_AVX2 static inline __m256i load16_u16(const uint8_t *p)
{
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}

#define BOX_ROW(y) (src + (size_t)lwl_clampi((y), 0, h - 1) * n)

/* One strip of box_vertical_avx2, the columns [i, i + 16 J), down the whole image with
 * the running sums in registers as 16-bit lanes (needs (2r + 1) * 255 < 2^15). Each
 * output is (acc * ww + far * fw + 2^23) >> 24 as two pmaddwd over (acc, far) pairs with
 * the weights cut in 12-bit halves, w = wh * 2^12 + wl: (acc wh + far fh) * 2^12 +
 * (acc wl + far fl) is the same sum (below 2^32; added and shifted unsigned mod 2^32). */
LWL_AVX2 static inline __attribute__((always_inline)) void
box_strip(const uint8_t *restrict src, uint8_t *restrict dst, int h, size_t n, int r,
          size_t i, __m256i wl, __m256i wh, const int J)
{
    const __m256i half = _mm256_set1_epi32(1 << 23);
    __m256i acc[4], res[4];

    for (int j = 0; j < J; j++)
        acc[j] = _mm256_setzero_si256();
    for (int d = -r; d <= r; d++) {
        const uint8_t *row = BOX_ROW(d) + i;

        for (int j = 0; j < J; j++)
            acc[j] = _mm256_add_epi16(acc[j], load16_u16(row + 16 * j));
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *top = BOX_ROW(y - r - 1) + i, *bot = BOX_ROW(y + r + 1) + i;
        const uint8_t *out = BOX_ROW(y - r) + i;

        for (int j = 0; j < J; j++) {
            __m256i b = load16_u16(bot + 16 * j);
            __m256i far = _mm256_add_epi16(b, load16_u16(top + 16 * j));
            __m256i lo = _mm256_unpacklo_epi16(acc[j], far);
            __m256i hi = _mm256_unpackhi_epi16(acc[j], far);
            __m256i tlo = _mm256_add_epi32(_mm256_slli_epi32(_mm256_madd_epi16(lo, wh), 12),
                                           _mm256_add_epi32(_mm256_madd_epi16(lo, wl), half));
            __m256i thi = _mm256_add_epi32(_mm256_slli_epi32(_mm256_madd_epi16(hi, wh), 12),
                                           _mm256_add_epi32(_mm256_madd_epi16(hi, wl), half));

            /* The unpacks and the pack are both per 128-bit lane: order kept. */
            res[j] = _mm256_packus_epi32(_mm256_srli_epi32(tlo, 24), _mm256_srli_epi32(thi, 24));
            acc[j] = _mm256_sub_epi16(_mm256_add_epi16(acc[j], b), load16_u16(out + 16 * j));
        }
        for (int j = 0; j < J; j += 2)
            _mm256_storeu_si256((__m256i *)(dst + (size_t)y * n + i + 16 * j),
                                _mm256_permute4x64_epi64(
                                    _mm256_packus_epi16(res[j], res[j + 1]), 0xd8));
    }
}

/* box_vertical (below) in box_strip's strips. */
LWL_AVX2 static size_t box_vertical_avx2(const uint8_t *restrict src, uint8_t *restrict dst,
                                         int h, size_t n, int r, uint32_t ww, uint32_t fw)
{
    const __m256i wl = _mm256_set1_epi32((int)((fw & 0xfff) << 16 | (ww & 0xfff)));
    const __m256i wh = _mm256_set1_epi32((int)((fw >> 12) << 16 | (ww >> 12)));

    /* Strips of 64 columns (each 64-byte line used whole as the strip walks down the
     * rows), 32 when n < 64, the last one ending at n (redoing a few columns: dst is not
     * src); n >= 32 is all done, returns the columns done (0 or n). */
    if (n < 32)
        return 0;
    if (n < 64) {
        box_strip(src, dst, h, n, r, 0, wl, wh, 2);
        box_strip(src, dst, h, n, r, n - 32, wl, wh, 2);
        return n;
    }
    for (size_t i0 = 0; i0 < n; i0 += 64)
        box_strip(src, dst, h, n, r, i0 + 64 <= n ? i0 : n - 64, wl, wh, 4);
    return n;
}
#undef BOX_ROW
/* The sum of lwl_luma over the first n & ~7 pixels, 8 a step: 32-bit lane sums, flushed
 * to 64 bits every 2^16 steps (2^16 * 255 < 2^32). Sets *done to the pixels summed. */
LWL_AVX2 static uint64_t luma_sum_avx2(const uint8_t *px, size_t n, size_t *done)
{
    const __m256i m8 = _mm256_set1_epi32(0xff);
    uint64_t sum = 0;
    size_t i = 0;

    while (i + 8 <= n) {
        __m256i acc = _mm256_setzero_si256();
        uint32_t lanes[8];

        for (int k = 0; k < 65536 && i + 8 <= n; k++, i += 8) {
            __m256i dw = rgb8_load(px + i * 3);

            acc = _mm256_add_epi32(acc, luma8(_mm256_and_si256(dw, m8),
                                              _mm256_and_si256(_mm256_srli_epi32(dw, 8), m8),
                                              _mm256_srli_epi32(dw, 16)));
        }
        _mm256_storeu_si256((__m256i *)(void *)lanes, acc);
        for (int k = 0; k < 8; k++)
            sum += lanes[k];
    }
    *done = i;
    return sum;
}

/* lwl_solarize on n samples, 32 a step, for 1 <= threshold <= 255: v >= threshold is
 * max(v, threshold) == v, and 255 - v is v ^ 0xff. Returns the samples done. */
LWL_AVX2 static size_t solarize_avx2(uint8_t *px, size_t n, int threshold)
{
    const __m256i t = _mm256_set1_epi8((char)threshold), ff = _mm256_set1_epi8(-1);
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(px + i));
        __m256i ge = _mm256_cmpeq_epi8(_mm256_max_epu8(v, t), v);

        _mm256_storeu_si256((__m256i *)(px + i), _mm256_xor_si256(v, _mm256_and_si256(ge, ff)));
    }
    return i;
}
#endif

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

/* The columns [xa, xb) and rows [ya, yb) of transpose3 (below), in 16 x 16 blocks. */
static void transpose3_part(const uint8_t *restrict src, ptrdiff_t sstride, int xa, int xb,
                            int ya, int yb, uint8_t *restrict dst, ptrdiff_t dstride)
{
    for (int y0 = ya; y0 < yb; y0 += 16)
        for (int x0 = xa; x0 < xb; x0 += 16) {
            int y1 = y0 + 16 < yb ? y0 + 16 : yb, x1 = x0 + 16 < xb ? x0 + 16 : xb;

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

/* dst = the transpose of the w x h RGB image src (rows sstride bytes apart): dst has w
 * rows of h pixels (rows dstride bytes apart). */
static void transpose3(const uint8_t *restrict src, ptrdiff_t sstride, int w, int h,
                       uint8_t *restrict dst, ptrdiff_t dstride)
{
    int w8 = 0, h8 = 0;

#ifdef LWL_AVX2
    if (lwl_have_avx2()) {
        transpose3_avx2(src, sstride, w, h, dst, dstride);
        w8 = w & ~7;
        h8 = h & ~7;
    }
#endif
    /* What the AVX2 blocks left: the last w % 8 columns of every row, then the last
     * h % 8 rows of the other columns (everything when w8 = h8 = 0). */
    transpose3_part(src, sstride, w8, w, 0, h, dst, dstride);
    transpose3_part(src, sstride, 0, w8, h8, h, dst, dstride);
}

/* Vertical pass, a whole row at a time (the inner loop vectorises): output row y from
 * tmp rows (tmp row 0 is source row base); acc holds out_w * 3 sums. */
LWL_HOT
static void resize_rows_v(const uint8_t *restrict tmp, ptrdiff_t tstride, int base,
                          const lwl_taps *tv, int out_w, int out_h, int32_t *restrict acc,
                          uint8_t *restrict dst)
{
    int n = out_w * 3, i0 = 0;

#ifdef LWL_AVX2
    if (lwl_have_avx2())
        i0 = resize_rows_v_avx2(tmp, tstride, base, tv->first, tv->count, tv->k, tv->ksize, n,
                                out_h, dst);
#endif
    if (i0 == n)
        return;
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = tv->k + (size_t)y * tv->ksize;
        const uint8_t *p = tmp + (ptrdiff_t)(tv->first[y] - base) * tstride;
        uint8_t *o = dst + (size_t)y * n;

        for (int i = i0; i < n; i++)
            acc[i] = 1 << (LWL_RESAMPLE_BITS - 1);
        for (int t = 0; t < tv->count[y]; t++) {
            const uint8_t *row = p + t * tstride;
            int32_t kt = k[t];

            for (int i = i0; i < n; i++)
                acc[i] += (int32_t)row[i] * kt;
        }
        for (int i = i0; i < n; i++) {
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
    int avx2 = lwl_have_avx2();

    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->px + (size_t)y * im->w * 3;
        int a = 0;

#ifdef LWL_AVX2
        if (avx2)
            a = hflip_avx2(row, im->w);
#else
        (void)avx2;
#endif
        for (int b = im->w - 1 - a; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];

                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

/* Image.blend(degenerate, image, alpha) over every sample: the float arithmetic of
 * lwl_blend, in a loop that vectorises. */
LWL_HOT
static void blend_all(uint8_t *restrict px, size_t n, int degenerate, float alpha)
{
    float d = (float)degenerate;
    size_t i = 0;

#ifdef LWL_AVX2
    if (lwl_have_avx2())
        i = blend_avx2(px, n, degenerate, alpha);
#endif
    for (; i < n; i++) {
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
    size_t n = (size_t)im->w * im->h, i = 0;
    uint64_t sum = 0;

#ifdef LWL_AVX2
    if (lwl_have_avx2())
        sum = luma_sum_avx2(im->px, n, &i);
#endif
    for (; i < n; i++)
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
    uint8_t *lut;

#ifdef LWL_AVX2
    if (lwl_have_avx2()) {
        size_t i = saturation_avx2(im->px, n, alpha);

        for (; i < n; i++)
            lwl_saturation_px(im->px + i * 3, alpha);
        return;
    }
#endif
    /* blend(luma, v) for every (luma, v): 64 Ki entries, cheaper than 3 per pixel. */
    lut = malloc(256 * 256);
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
 * Entries with cr = 0 are 0 (gray). Filled once from lwl_rgb_to_hsv itself. One struct
 * with 4 bytes after s, so that the AVX2 loop can gather 32 bits at any entry's address
 * (and keep the low byte). */
static struct {
    uint8_t h[6][256][256], s[256][256], pad[4];
} hue_tab;
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
                hue_tab.h[c][cr][d] = hsv[0];
            }
    for (int cr = 1; cr < 256; cr++)
        for (int mx = cr; mx < 256; mx++) {
            uint8_t p[3] = { (uint8_t)mx, (uint8_t)(mx - cr), (uint8_t)(mx - cr) }, hsv[3];

            lwl_rgb_to_hsv(p, hsv);
            hue_tab.s[cr][mx] = hsv[1];
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

    hsv[0] = hue_tab.h[c][mx - mn][mx - third];
    hsv[1] = hue_tab.s[mx - mn][mx];
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

#ifdef LWL_AVX2
/* round(n / d) of lanes n >= 0 holding integers, d odd: floor((n + (d - 1) / 2) / d) (a
 * tie would need 2n = d * odd, impossible for odd d), the numerator exact in float when
 * below 2^24, and floor of the correctly rounded float quotient is the integer quotient:
 * a non-integer quotient q < 256 is at least 1/d below the next integer, more than half
 * an ulp of q (2^-17) for d <= 65025. */
LWL_AVX2 static inline __m256i round_div(__m256 n, float d)
{
    __m256 q = _mm256_div_ps(_mm256_add_ps(n, _mm256_set1_ps((d - 1) / 2)), _mm256_set1_ps(d));

    return _mm256_cvttps_epi32(q);
}

/* lwl_hue's loop, 8 pixels a step. H and S are gathered from hue_tab (index as
 * lwl_rgb_to_hsv_lut's: c from the max and min masks, d = 2 max + min - r - g - b, the
 * median's distance from the max). HSV to RGB: with m = 6 h - 255 i (i = floor(6 h / 255),
 * computed as (6 h * 257 + 257) >> 16, exact for 6 h <= 1530), f is m / 255 and the three
 * terms of hsv_to_rgb_sel are exactly the integer roundings
 *   up = round(v (255 - s) / 255), uq = round(v (65025 - s m) / 65025),
 *   ut = round(v (65025 - s (255 - m)) / 65025)
 * (equal to the float/double arithmetic on all 2^24 (h, s, v), and this loop equal to the
 * scalar one on all 2^24 colours for all 256 shifts: both checked exhaustively when it was
 * written; every product here is an integer below 2^24, so exact in float), and the
 * sector i % 6 picks the channels (one pshufb). Returns the pixels done. */
LWL_AVX2 static size_t hue_avx2(uint8_t *px, size_t n, int shift)
{
    const __m256i m8 = _mm256_set1_epi32(0xff);
    const __m256 c255 = _mm256_set1_ps(255.0f), c65025 = _mm256_set1_ps(65025.0f);
    /* Per sector 0..6, the bytes of (v, up, uq, ut) that become R, G, B; 0x80 zeroes. */
    const __m256i picks = _mm256_setr_epi32(0x80010300, 0x80010002, 0x80030001, 0x80000201,
                                            0x80000103, 0x80020100, 0x80010300, 0);
    const __m256i lane4 = _mm256_setr_epi32(0, 0x040404, 0x080808, 0x0c0c0c,
                                            0, 0x040404, 0x080808, 0x0c0c0c);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint8_t *p = px + i * 3;
        __m256i dw = rgb8_load(p);
        __m256i r = _mm256_and_si256(dw, m8), g = _mm256_and_si256(_mm256_srli_epi32(dw, 8), m8);
        __m256i b = _mm256_srli_epi32(dw, 16);
        __m256i mx = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
        __m256i mn = _mm256_min_epi32(r, _mm256_min_epi32(g, b));
        __m256i cr = _mm256_sub_epi32(mx, mn);
        __m256i d = _mm256_sub_epi32(_mm256_add_epi32(_mm256_add_epi32(mx, mx), mn),
                                     _mm256_add_epi32(r, _mm256_add_epi32(g, b)));
        __m256i rmax = _mm256_cmpeq_epi32(r, mx);
        __m256i gmax = _mm256_andnot_si256(rmax, _mm256_cmpeq_epi32(g, mx));
        /* -1 when the case's even member applies (b min under an r or g max, r min under
         * a b max): c = 5 - 4 [r max] - 2 [g max] - [that min]. */
        __m256i lowc = _mm256_blendv_epi8(_mm256_cmpeq_epi32(r, mn), _mm256_cmpeq_epi32(b, mn),
                                          _mm256_or_si256(rmax, gmax));
        __m256i c = _mm256_add_epi32(_mm256_add_epi32(_mm256_set1_epi32(5), lowc),
                                     _mm256_add_epi32(_mm256_slli_epi32(rmax, 2),
                                                      _mm256_slli_epi32(gmax, 1)));
        __m256i crx = _mm256_slli_epi32(cr, 8);
        __m256i hidx = _mm256_add_epi32(_mm256_slli_epi32(c, 16), _mm256_add_epi32(crx, d));
        __m256i h = _mm256_i32gather_epi32((const int *)(const void *)hue_tab.h, hidx, 1);
        __m256i s = _mm256_i32gather_epi32((const int *)(const void *)hue_tab.s,
                                           _mm256_add_epi32(crx, mx), 1);

        h = _mm256_and_si256(_mm256_add_epi32(h, _mm256_set1_epi32(shift)), m8);
        s = _mm256_and_si256(s, m8);

        __m256i x6 = _mm256_add_epi32(_mm256_slli_epi32(h, 2), _mm256_slli_epi32(h, 1));
        __m256i sec = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(x6, 8), x6),
                             _mm256_set1_epi32(257)), 16);
        __m256i mm = _mm256_sub_epi32(x6, _mm256_mullo_epi32(sec, _mm256_set1_epi32(255)));

        __m256 fv = _mm256_cvtepi32_ps(mx), fs = _mm256_cvtepi32_ps(s);
        __m256 fm = _mm256_cvtepi32_ps(mm);
        __m256i up = round_div(_mm256_mul_ps(fv, _mm256_sub_ps(c255, fs)), 255.0f);
        __m256i uq = round_div(_mm256_mul_ps(fv, _mm256_sub_ps(c65025, _mm256_mul_ps(fs, fm))),
                               65025.0f);
        __m256i ut = round_div(
            _mm256_mul_ps(fv, _mm256_sub_ps(c65025, _mm256_mul_ps(fs, _mm256_sub_ps(c255, fm)))),
            65025.0f);
        /* The four candidates as the bytes of one dword (v, up, uq, ut), and each lane's
         * pick (hsv_to_rgb_sel's table, one pshufb control dword per sector, entry 6 the
         * same as 0 so that i needs no % 6) fetched by vpermd and offset to the lane's
         * own dword for pshufb. */
        __m256i all = _mm256_or_si256(
            _mm256_or_si256(mx, _mm256_slli_epi32(up, 8)),
            _mm256_or_si256(_mm256_slli_epi32(uq, 16), _mm256_slli_epi32(ut, 24)));
        __m256i ctl = _mm256_add_epi32(_mm256_permutevar8x32_epi32(picks, sec), lane4);

        rgb8_store(p, _mm256_shuffle_epi8(all, ctl));
    }
    return i;
}
#endif

void lwl_hue(lwl_image *im, double hue_factor)
{
    size_t n = (size_t)im->w * im->h, i = 0;
    uint8_t shift = lwl_hue_shift(hue_factor);
    lwl_hsv_tables t;

    lwl_hue_tables();
#ifdef LWL_AVX2
    if (lwl_have_avx2())
        i = hue_avx2(im->px, n, shift);
#endif
    if (i < n)
        lwl_hsv_tables_init(&t);    /* only the scalar tail uses them */
    for (; i < n; i++) {
        uint8_t hsv[3];

        lwl_rgb_to_hsv_lut(im->px + i * 3, hsv);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        hsv_to_rgb_sel(hsv, im->px + i * 3, &t);
    }
}

void lwl_grayscale(lwl_image *im)
{
    size_t n = (size_t)im->w * im->h, i = 0;

#ifdef LWL_AVX2
    if (lwl_have_avx2())
        i = gray_avx2(im->px, n);
#endif
    for (; i < n; i++)
        lwl_gray_px(im->px + i * 3);
}

void lwl_solarize_image(lwl_image *im, int threshold)
{
    uint8_t lut[256];
    size_t n = (size_t)im->w * im->h * 3, i = 0;

#ifdef LWL_AVX2
    if (threshold >= 1 && threshold <= 255 && lwl_have_avx2())
        i = solarize_avx2(im->px, n, threshold);
#endif
    for (int v = 0; v < 256; v++)
        lut[v] = lwl_solarize((uint8_t)v, threshold);
    for (; i < n; i++)
        im->px[i] = lut[im->px[i]];
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
    size_t i0 = 0;

#ifdef LWL_AVX2
    /* The 16-bit sums and 12-bit weight halves of box_vertical_avx2 must hold. */
    if (r <= 63 && ww <= 1u << 24 && fw < 1u << 24 && lwl_have_avx2())
        i0 = box_vertical_avx2(src, dst, h, n, r, ww, fw);
#endif
    if (i0 == n)
        return;
    for (size_t i = i0; i < n; i++)
        acc[i] = 0;
    for (int d = -r; d <= r; d++) {
        const uint8_t *row = ROW(d);

        for (size_t i = i0; i < n; i++)
            acc[i] += row[i];
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *top = ROW(y - r - 1), *bot = ROW(y + r + 1), *out = ROW(y - r);
        uint8_t *o = dst + (size_t)y * n;

        for (size_t i = i0; i < n; i++) {
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
     * pixels), then three vertical passes: image -> tmp -> tr -> image (no copy back). */
    transpose3(im->px, (ptrdiff_t)row, im->w, im->h, tmp, (ptrdiff_t)im->h * 3);
    box_vertical(tmp, tr, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    box_vertical(tr, tmp, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    box_vertical(tmp, tr, im->w, (size_t)im->h * 3, r, ww, fw, acc);
    transpose3(tr, (ptrdiff_t)im->h * 3, im->h, im->w, im->px, (ptrdiff_t)row);
    box_vertical(im->px, tmp, im->h, row, r, ww, fw, acc);
    box_vertical(tmp, tr, im->h, row, r, ww, fw, acc);
    box_vertical(tr, im->px, im->h, row, r, ww, fw, acc);
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
#ifdef LWL_AVX2
    /* Enough pixels to pay for the 768 divisions of the table. */
    if (n >= 1024 && lwl_have_avx2()) {
        float tab[768];
        /* Pixels before the planes' first 32-byte boundary (the same in all three when
         * n % 8 == 0), then whole steps of 8, then the rest. */
        size_t a = ((32 - (uintptr_t)out % 32) % 32) / sizeof(float);
        int stream = n % 8 == 0 && (uintptr_t)out % sizeof(float) == 0;
        size_t i0 = stream ? a : 0, i1 = i0 + (n - i0) / 8 * 8;

        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                tab[c * 256 + v] = ((float)v / 255.0f - mean[c]) / std[c];
        normalize_avx2(px, n, i0, i1, tab, out, stream);
        for (int c = 0; c < 3; c++) {
            for (size_t k = 0; k < i0; k++)
                out[(size_t)c * n + k] = tab[c * 256 + px[k * 3 + c]];
            for (size_t k = i1; k < n; k++)
                out[(size_t)c * n + k] = tab[c * 256 + px[k * 3 + c]];
        }
        return;
    }
#endif
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
