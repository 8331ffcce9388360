/* The parameter samplers of lwl_augment.c: torchvision's RandomResizedCrop statistics
 * and fallback, the colour-jitter draws, determinism under the Philox keys; and a few
 * per-pixel identities of lwl_pixel.h. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lwl_augment.h"
#include "lwl_pixel.h"

static const double scale_ref[2] = { 0.2, 1.0 }, ratio_ref[2] = { 3.0 / 4.0, 4.0 / 3.0 };

/* 10^5 draws on a square 500x500 image (where the bounds reject tall and wide boxes
 * alike): mean log aspect ~ 0, boxes inside the image, almost no fallback. */
static void test_crop_statistics(void **state)
{
    (void)state;
    lwl_rng_key k = { 7, 0, 0, 1, 0 };
    double sum_log = 0, sum_area = 0;
    const int n = 100000, w = 500, h = 500;
    int fallbacks = 0;

    for (int i = 0; i < n; i++) {
        int fb;

        k.index = (uint32_t)i;
        lwl_box b = lwl_sample_resized_crop(k, w, h, scale_ref, ratio_ref, &fb);
        assert_true(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0);
        assert_true(b.top + b.height <= h && b.left + b.width <= w);
        sum_log += log((double)b.width / b.height);
        sum_area += (double)b.width * b.height / (w * h);
        fallbacks += fb;
    }
    print_message("# mean log aspect %.5f, mean area %.4f, fallbacks %d\n", sum_log / n,
                  sum_area / n, fallbacks);
    /* Log aspect is uniform on +-0.2877 (sd 0.166, so the mean's sd is 0.0005); the
     * area fraction averages 0.6 less what the bounds reject (torchvision: ~0.54). */
    assert_true(fabs(sum_log / n) < 0.003);
    assert_true(sum_area / n > 0.5 && sum_area / n < 0.6);
    assert_true(fallbacks < n / 100);
}

/* ratio (0.75, 0.75): every box has w/h = 0.75 up to the rounding of w and h, the
 * fallback's (375 high, 281 wide) included. */
static void test_crop_fixed_ratio(void **state)
{
    (void)state;
    const double ratio[2] = { 0.75, 0.75 };
    lwl_rng_key k = { 1, 2, 0, 2, 0 };

    for (int i = 0; i < 2000; i++) {
        int fb;

        k.index = (uint32_t)i;
        lwl_box b = lwl_sample_resized_crop(k, 500, 375, scale_ref, ratio, &fb);
        double r = (double)b.width / b.height;
        /* |w - 0.75 h| <= 0.5 + 0.75 * 0.5 from rounding each side. */
        assert_true(fabs(b.width - 0.75 * b.height) <= 0.875 + 1e-9);
        assert_true(fabs(r - 0.75) < 0.1);
    }
}

/* A 1000x10 image cannot hold a 3/4..4/3 box of >= 20% of its area: the centre-crop
 * fallback clamps the aspect to 4/3: h = 10, w = round(13.33) = 13, centred. */
static void test_crop_fallback(void **state)
{
    (void)state;
    lwl_rng_key k = { 0, 0, 5, 1, 0 };
    int fb;
    lwl_box b = lwl_sample_resized_crop(k, 1000, 10, scale_ref, ratio_ref, &fb);

    assert_int_equal(fb, 1);
    assert_int_equal(b.height, 10);
    assert_int_equal(b.width, 13);
    assert_int_equal(b.top, 0);
    assert_int_equal(b.left, (1000 - 13) / 2);

    /* Tall: 10x1000 gives w = 10, h = round(10 / 0.75) = 13. */
    b = lwl_sample_resized_crop(k, 10, 1000, scale_ref, ratio_ref, &fb);
    assert_int_equal(fb, 1);
    assert_int_equal(b.width, 10);
    assert_int_equal(b.height, 13);
    assert_int_equal(b.top, (1000 - 13) / 2);
}

/* Same keys, same box; another view, epoch or seed, another box (almost always). */
static void test_crop_determinism(void **state)
{
    (void)state;
    lwl_rng_key k = { 3, 1, 9, 1, 0 }, k2;
    int fb, differ = 0;
    lwl_box a = lwl_sample_resized_crop(k, 800, 600, scale_ref, ratio_ref, &fb);
    lwl_box b = lwl_sample_resized_crop(k, 800, 600, scale_ref, ratio_ref, &fb);

    assert_memory_equal(&a, &b, sizeof a);
    for (int f = 0; f < 3; f++) {
        k2 = k;
        if (f == 0)
            k2.view = 2;
        else if (f == 1)
            k2.epoch = 2;
        else
            k2.seed = 4;
        b = lwl_sample_resized_crop(k2, 800, 600, scale_ref, ratio_ref, &fb);
        differ += memcmp(&a, &b, sizeof a) != 0;
    }
    assert_int_equal(differ, 3);
}

/* Jitter factors in range with the right means; all 24 orders appear, roughly evenly. */
static void test_jitter_draws(void **state)
{
    (void)state;
    lwl_rng_key k = { 11, 0, 0, 1, 2 };
    int seen[4][4][4][4];
    double mb = 0, mh = 0;
    const int n = 24000;
    int distinct = 0;

    memset(seen, 0, sizeof seen);
    for (int i = 0; i < n; i++) {
        k.index = (uint32_t)i;
        lwl_jitter j = lwl_sample_jitter(k, 0.4, 0.4, 0.2, 0.1);
        assert_true(j.brightness >= 0.6 && j.brightness < 1.4);
        assert_true(j.contrast >= 0.6 && j.contrast < 1.4);
        assert_true(j.saturation >= 0.8 && j.saturation < 1.2);
        assert_true(j.hue >= -0.1 && j.hue < 0.1);
        mb += j.brightness;
        mh += j.hue;
        seen[j.order[0]][j.order[1]][j.order[2]][j.order[3]]++;
    }
    assert_true(fabs(mb / n - 1.0) < 0.01);
    assert_true(fabs(mh / n) < 0.002);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++)
                    if (seen[a][b][c][d]) {
                        distinct++;
                        assert_true(seen[a][b][c][d] > 800 && seen[a][b][c][d] < 1200);
                    }
    assert_int_equal(distinct, 24);
}

/* Coins: p 0 never, p 1 always, p 0.2 about 20%. */
static void test_coins(void **state)
{
    (void)state;
    lwl_rng_key k = { 5, 0, 0, 2, 3 };
    int hits = 0;

    for (int i = 0; i < 10000; i++) {
        k.index = (uint32_t)i;
        assert_int_equal(lwl_sample_coin(k, 0.0), 0);
        assert_int_equal(lwl_sample_coin(k, 1.0), 1);
        hits += lwl_sample_coin(k, 0.2);
    }
    assert_true(hits > 1840 && hits < 2160);
}

/* Known values of the per-pixel code. */
static void test_pixel_values(void **state)
{
    (void)state;
    uint8_t p[3] = { 77, 77, 77 };
    int r;
    uint32_t ww, fw;

    assert_int_equal(lwl_luma(255, 0, 0), 76);
    assert_int_equal(lwl_luma(0, 255, 0), 150);
    assert_int_equal(lwl_luma(0, 0, 255), 29);
    assert_int_equal(lwl_luma(255, 255, 255), 255);
    assert_int_equal(lwl_solarize(128, 128), 127);
    assert_int_equal(lwl_solarize(127, 128), 127);
    assert_int_equal(lwl_hue_shift(-0.1), 231);
    assert_int_equal(lwl_hue_shift(0.05), 12);
    /* blend truncates: 0.5 * 201 = 100.5 -> 100; clipped above. */
    assert_int_equal(lwl_blend(0, 201, 0.5f), 100);
    assert_int_equal(lwl_blend(0, 200, 1.4f), 255);
    assert_int_equal(lwl_blend(100, 10, 2.0f), 0);
    /* sigma 2: box radius 1.375 (radius 1), weights summing to 2^24 within rounding. */
    assert_true(fabsf(lwl_blur_box_radius(2.0f, 3) - 1.375f) < 1e-6f);
    lwl_blur_weights(lwl_blur_box_radius(2.0f, 3), &r, &ww, &fw);
    assert_int_equal(r, 1);
    assert_true(3 * ww + 2 * fw <= (1u << 24) && 3 * ww + 2 * fw > (1u << 24) - 3);
    /* Any hue shift leaves a gray pixel alone. */
    lwl_hue_px(p, 100);
    assert_int_equal(p[0], 77);
    assert_int_equal(p[1], 77);
    assert_int_equal(p[2], 77);
}

/* The CPU fast paths of the HSV round trip equal Pillow's arithmetic (lwl_rgb_to_hsv,
 * lwl_hsv_to_rgb) on every one of the 2^24 inputs. */
static void test_hsv_exhaustive(void **state)
{
    (void)state;
    lwl_hsv_tables t;
    long bad_fwd = 0, bad_lut = 0, bad_back = 0;

    lwl_hsv_tables_init(&t);
    lwl_hue_tables();
    for (uint32_t x = 0; x < (1u << 24); x++) {
        uint8_t p[3] = { (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x };
        uint8_t a[3], b[3], c[3];

        lwl_rgb_to_hsv(p, a);
        lwl_rgb_to_hsv_fast(p, b);
        lwl_rgb_to_hsv_lut(p, c);
        bad_fwd += memcmp(a, b, 3) != 0;
        bad_lut += memcmp(a, c, 3) != 0;
        lwl_hsv_to_rgb(p, a);            /* p read as (h, s, v) */
        lwl_hsv_to_rgb_fast(p, b, &t);
        bad_back += memcmp(a, b, 3) != 0;
    }
    print_message("# HSV mismatches: forward %ld, table %ld, back %ld\n", bad_fwd, bad_lut,
                  bad_back);
    assert_int_equal(bad_fwd, 0);
    assert_int_equal(bad_lut, 0);
    assert_int_equal(bad_back, 0);

    /* The whole hue op on a strip of every 8-bit hue of full saturation. */
    lwl_image im;
    assert_int_equal(lwl_image_alloc(&im, 256, 1), 0);
    for (int h = 0; h < 256; h++) {
        uint8_t hsv[3] = { (uint8_t)h, 255, 200 };

        lwl_hsv_to_rgb(hsv, im.px + h * 3);
    }
    uint8_t want[256 * 3];
    for (int i = 0; i < 256; i++) {
        uint8_t hsv[3];

        lwl_rgb_to_hsv(im.px + i * 3, hsv);
        hsv[0] = (uint8_t)(hsv[0] + lwl_hue_shift(0.07));
        lwl_hsv_to_rgb(hsv, want + i * 3);
    }
    lwl_hue(&im, 0.07);
    assert_memory_equal(im.px, want, sizeof want);
    lwl_image_free(&im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_statistics), cmocka_unit_test(test_crop_fixed_ratio),
        cmocka_unit_test(test_crop_fallback),   cmocka_unit_test(test_crop_determinism),
        cmocka_unit_test(test_jitter_draws),    cmocka_unit_test(test_coins),
        cmocka_unit_test(test_pixel_values),    cmocka_unit_test(test_hsv_exhaustive),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
