/* The GPU views' per-image work (runtime/cuda/lwl_views_dev.h) emulated on the CPU thread by
 * thread, in three orders: every op equals its CPU loop of lwl_augment.c exactly on random
 * images of odd and even sizes, for several thread counts and shared-memory sizes; the
 * layout keeps every buffer apart and in bounds; the casts round to nearest even. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define LWL_VIEWS_EMULATE
#include "cuda/lwl_views_dev.h"
#include "lwl_loader.h"

int lwl_views_emu_order;

/* What an emulated views.cu defines; unused here (the ops are run one by one). */
const lwl_vbody views_emu_body[2] = { NULL, NULL };
const size_t views_emu_out_elem = 4;
const lwl_dtype views_emu_dtype = LWL_F32;
const int views_emu_size = 0;

static uint32_t rng = 1;

static uint32_t next_rand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)next_rand();
}

/* One view sample as a kernel block sees it: a batch of one, its shared memory, scratch. */
typedef struct {
    lwl_view_params p;
    uint8_t *pixels, *smem, *scratch;
    float out[100 * 100 * 3];   /* (size, size, 3) for sizes up to 100 */
    lwl_vctx c;
} block;

static block *block_make(const lwl_view_params *p, const uint8_t *src, int size, int nt,
                         size_t smem)
{
    block *b = calloc(1, sizeof *b);
    uint64_t off[1];
    size_t n = (size_t)p->src.width * p->src.height * 3;

    assert_non_null(b);
    b->p = *p;
    b->p.pixels = 0;
    b->pixels = malloc(n + 1);
    b->smem = malloc(smem);
    assert_non_null(b->pixels);
    assert_non_null(b->smem);
    memcpy(b->pixels, src, n);
    memset(b->smem, 0xCC, smem);

    size_t total = lwl_v_scratch_offsets(&b->p, 1, 1, size, nt, smem, off);
    b->scratch = malloc(total + 1);
    assert_non_null(b->scratch);
    memset(b->scratch, 0x33, total + 1);

    lwl_vargs a = { &b->p, b->pixels, b->scratch, off, b->out, 1, 0, size, (int)smem };
    lwl_vctx_init(&b->c, &a, 0, b->smem, nt, sizeof(float));
    return b;
}

static void block_free(block *b)
{
    free(b->pixels);
    free(b->smem);
    free(b->scratch);
    free(b);
}

/* Params that keep a size x size source as it is (the ops after the first). */
static lwl_view_params plain(int size)
{
    lwl_view_params p;
    lwl_box all = { 0, 0, size, size };

    memset(&p, 0, sizeof p);
    lwl_params_resized_crop(&p, all, size);
    return p;
}

static const int sizes[] = { 1, 2, 5, 31, 64, 97 };
static const int threads[] = { 1, 7, 64, 512 };

/* Every colour and geometry op after the first, emulated, against the CPU's loop. */
static void test_ops(void **state)
{
    (void)state;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++)
            for (int order = 0; order < 3; order++) {
                int S = sizes[si], nt = threads[ti];
                size_t n = (size_t)S * S * 3;
                lwl_view_params p = plain(S);
                uint8_t *src = malloc(n), *want = malloc(n);
                /* Shared memory for the whole view, or so little that it is in scratch
                 * and the blur goes a few rows at a time. */
                size_t smem = order == 1 ? lwl_v_align16((size_t)nt * 8) + 16 + S * 12 + 40
                                         : 300000;

                assert_non_null(src);
                assert_non_null(want);
                lwl_views_emu_order = order;
                for (int op = 0; op < 12; op++) {
                    fill(src, n);
                    p.sigma = op == 9 ? 0.1 : op == 10 ? 1.7 : 4.5;
                    block *b = block_make(&p, src, S, nt, smem);
                    lwl_vctx *c = &b->c;
                    lwl_image im = { S, S, want };
                    float f = (float)(next_rand() % 2000) / 1000.0f;

                    memcpy(c->img, src, n);
                    memcpy(want, src, n);
                    switch (op) {
                    case 0: LWL_STEP(lwl_v_hflip(c, LWL_PH)); lwl_hflip(&im); break;
                    case 1: LWL_STEP(lwl_v_brightness(c, LWL_PH, f)); lwl_brightness(&im, f);
                        break;
                    case 2: LWL_STEP(lwl_v_contrast(c, LWL_PH, f)); lwl_contrast(&im, f); break;
                    case 3: LWL_STEP(lwl_v_saturation(c, LWL_PH, f)); lwl_saturation(&im, f);
                        break;
                    case 4:
                        LWL_STEP(lwl_v_hue(c, LWL_PH, lwl_hue_shift(f / 4 - 0.25)));
                        lwl_hue(&im, f / 4 - 0.25);
                        break;
                    case 5: LWL_STEP(lwl_v_gray(c, LWL_PH)); lwl_grayscale(&im); break;
                    case 6: LWL_STEP(lwl_v_solarize(c, LWL_PH, 128));
                        lwl_solarize_image(&im, 128);
                        break;
                    case 7: LWL_STEP(lwl_v_solarize(c, LWL_PH, 0)); lwl_solarize_image(&im, 0);
                        break;
                    case 8: LWL_STEP(lwl_v_solarize(c, LWL_PH, 256));
                        lwl_solarize_image(&im, 256);
                        break;
                    default:
                        LWL_STEP(lwl_v_blur(c, LWL_PH));
                        assert_int_equal(lwl_gaussian_blur(&im, p.sigma), 0);
                        break;
                    }
                    assert_memory_equal(c->img, want, n);
                    block_free(b);
                }

                /* ToTensor + Normalize: the CPU's float32 values, (H, W, 3) for (3, H, W). */
                block *b = block_make(&p, src, S, nt, smem);
                lwl_vctx *c = &b->c;
                float *chw = malloc(sizeof(float) * n);
                static const float mean[3] = { 0.485f, 0.456f, 0.406f };
                static const float sd[3] = { 0.229f, 0.224f, 0.225f };

                assert_non_null(chw);
                fill(c->img, n);
                LWL_STEP(lwl_v_out_f32(c, LWL_PH, mean[0], mean[1], mean[2], sd[0], sd[1],
                                       sd[2]));
                lwl_normalize_u8(c->img, (size_t)S * S, mean, sd, chw);
                for (size_t i = 0; i < n; i++)
                    assert_memory_equal(&b->out[i], &chw[(i % 3) * S * S + i / 3], 4);
                free(chw);
                block_free(b);
                free(src);
                free(want);
            }
}

/* The first op, resized_crop or Resize + CenterCrop of random boxes of random images (up
 * and down, either axis kept), from the staged box alone, against lwl_loader's. */
static void test_resize(void **state)
{
    (void)state;
    static const int out_sizes[] = { 1, 7, 32, 100 };
    static const int img[][2] = { { 50, 40 }, { 7, 300 }, { 640, 90 }, { 100, 100 },
                                  { 32, 45 }, { 1, 1 } };

    for (size_t ii = 0; ii < sizeof img / sizeof img[0]; ii++)
        for (size_t oi = 0; oi < sizeof out_sizes / sizeof out_sizes[0]; oi++)
            for (int k = 0; k < 12; k++) {
                int W = img[ii][0], H = img[ii][1], S = out_sizes[oi];
                int nt = threads[k % 4];
                lwl_src s = { { W, H, malloc((size_t)W * H * 3) }, 0, 0, W, H };
                uint8_t *want = malloc((size_t)S * S * 3), *cut;
                lwl_view_params p;

                assert_non_null(s.im.px);
                assert_non_null(want);
                fill(s.im.px, (size_t)W * H * 3);
                memset(&p, 0, sizeof p);
                if (k < 10) {
                    /* A random box; some as wide or as high as the output. */
                    lwl_box bx;
                    bx.width = k == 0 && S <= W ? S : 1 + (int)(next_rand() % W);
                    bx.height = k == 1 && S <= H ? S : 1 + (int)(next_rand() % H);
                    bx.left = (int)(next_rand() % (W - bx.width + 1));
                    bx.top = (int)(next_rand() % (H - bx.height + 1));
                    lwl_params_resized_crop(&p, bx, S);
                    assert_int_equal(lwl_src_resized_crop(&s, bx, S, want), 0);
                } else {
                    int shortside = k == 10 ? S * 8 / 7 : (W < H ? W : H);
                    if (S > W || S > H || shortside < S) {
                        free(s.im.px);
                        free(want);
                        continue;
                    }
                    lwl_params_resize_center_crop(&p, W, H, shortside, S);
                    assert_int_equal(lwl_src_resize_center_crop(&s, shortside, S, want), 0);
                }

                /* The staged pixels: just the box the view reads. */
                lwl_box b = p.src;
                cut = malloc((size_t)b.width * b.height * 3 + 1);
                assert_non_null(cut);
                for (int y = 0; y < b.height; y++)
                    memcpy(cut + (size_t)y * b.width * 3,
                           s.im.px + ((size_t)(b.top + y) * W + b.left) * 3,
                           (size_t)b.width * 3);
                for (int big = 0; big < 2; big++) {
                    block *blk = block_make(&p, cut, S, nt, big ? 300000 : 9000);
                    lwl_vctx *c = &blk->c;

                    lwl_views_emu_order = k % 3;
                    LWL_STEP(lwl_v_resize(c, LWL_PH));
                    assert_memory_equal(c->img, want, (size_t)S * S * 3);
                    block_free(blk);
                }
                free(cut);
                free(s.im.px);
                free(want);
            }
}

/* Whether [a, a + n) and [b, b + m) overlap. */
static int overlap(size_t a, size_t n, size_t b, size_t m)
{
    return n && m && a < b + m && b < a + n;
}

/* The layout: shared parts after the head and inside smem, scratch parts inside the
 * sample's scratch, no two live buffers in the same bytes; the device's choice of smem. */
static void test_layout(void **state)
{
    (void)state;
    static const size_t smems[] = { 9000, 49152, 166912, 232448 };

    for (int k = 0; k < 4000; k++) {
        int S = 1 + (int)(next_rand() % 300), nt = threads[k % 4];
        size_t smem = smems[k / 4 % 4];
        lwl_view_params p;
        lwl_box b = { 0, 0, 1 + (int)(next_rand() % 3000), 1 + (int)(next_rand() % 3000) };
        lwl_vlayout L;

        memset(&p, 0, sizeof p);
        lwl_params_resized_crop(&p, b, S);
        if (smem < lwl_v_align16((size_t)nt * 8) + 16 + LWL_VIEW_MIN_WORK(S))
            continue;
        lwl_vlayout_make(&p, S, nt, smem, &L);

        size_t img = (size_t)S * S * 3, taps = lwl_v_taps_bytes(S, L.kh, L.kv);
        size_t tmp = L.kh && L.kv ? (size_t)b.height * S * 3 : 0;
        size_t sh[3][2] = { { L.img, L.img_shared ? img : 0 },
                            { L.taps, L.taps_shared ? taps : 0 },
                            { L.tmp, L.tmp_shared ? tmp : 0 } };
        size_t gl[3][2] = { { L.img, L.img_shared ? 0 : img },
                            { L.taps, L.taps_shared ? 0 : taps },
                            { L.tmp, L.tmp_shared ? 0 : tmp } };

        assert_int_equal(L.kh, p.rw != b.width ? lwl_resample_ksize(b.width, S) : 0);
        assert_int_equal(L.kv, p.rh != b.height ? lwl_resample_ksize(b.height, S) : 0);
        assert_true(L.work_bytes >= LWL_VIEW_MIN_WORK(S));
        assert_true(L.work + L.work_bytes <= smem);
        assert_true(!L.img_shared || L.img + img <= L.work);
        for (int i = 0; i < 3; i++) {
            assert_true(sh[i][1] == 0 || (sh[i][0] >= L.head && sh[i][0] + sh[i][1] <= smem));
            assert_true(gl[i][1] == 0 || (gl[i][0] % 16 == 0 && gl[i][0] + gl[i][1] <= L.scratch));
            for (int j = 0; j < i; j++) {
                assert_false(overlap(sh[i][0], sh[i][1], sh[j][0], sh[j][1]));
                assert_false(overlap(gl[i][0], gl[i][1], gl[j][0], gl[j][1]));
            }
        }
    }

    /* sm_90 and sm_80 hold a 224 view in shared memory; 32 px views ask for less. */
    assert_int_equal(lwl_v_smem_for(224, LWL_VIEW_THREADS, 232448), 232448);
    assert_int_equal(lwl_v_smem_for(224, LWL_VIEW_THREADS, 166912), 166912);
    assert_true(lwl_v_smem_for(32, LWL_VIEW_THREADS, 232448) < 48 * 1024);
    assert_int_equal(lwl_v_smem_for(224, LWL_VIEW_THREADS, 4096), 0);
    lwl_view_params p224 = plain(224);
    lwl_vlayout L;
    lwl_vlayout_make(&p224, 224, LWL_VIEW_THREADS, 166912, &L);
    assert_true(L.img_shared);
}

/* The bfloat16 neighbour of x nearest to it, ties to even, by comparing the two (past the
 * largest finite value the upper neighbour counts as 2^128, as rounding does). */
static uint16_t bf16_ref(float x)
{
    uint32_t u, lo, hi;
    float a, b;

    memcpy(&u, &x, 4);
    lo = u & 0xffff0000u;
    hi = lo + 0x10000u;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    double db = isinf(b) ? fabs(ldexp(1.0, 128) - fabs((double)x)) : fabs((double)b - x);
    double da = fabs((double)a - x);
    if (da < db || (da == db && !((lo >> 16) & 1)))
        return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

/* The casts on a million float patterns spread over every exponent, and the edges:
 * bfloat16 against bf16_ref, half against the compiler's _Float16 conversion. */
static void test_casts(void **state)
{
    (void)state;
    static const float edges[] = { 0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e30f,
                                   6.1035156e-05f, 6.097555e-05f, 5.9604645e-08f,
                                   2.9802322e-08f, 2.9802326e-08f, 1e-30f, -2.5f };
    int checked = 0;

    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        uint32_t w = (uint32_t)u;
        float x;

        memcpy(&x, &w, 4);
        if (isnan(x)) {
            assert_true((lwl_f32_to_bf16(x) & 0x7f80) == 0x7f80 && (lwl_f32_to_bf16(x) & 0x7f));
            assert_true((lwl_f32_to_f16(x) & 0x7c00) == 0x7c00 && (lwl_f32_to_f16(x) & 0x3ff));
            continue;
        }
        assert_int_equal(lwl_f32_to_bf16(x), bf16_ref(x));
#ifdef __FLT16_MAX__
        _Float16 h = (_Float16)x;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        assert_int_equal(lwl_f32_to_f16(x), hb);
#endif
        checked++;
    }
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        assert_int_equal(lwl_f32_to_bf16(edges[i]), bf16_ref(edges[i]));
#ifdef __FLT16_MAX__
        _Float16 h = (_Float16)edges[i];
        uint16_t hb;
        memcpy(&hb, &h, 2);
        assert_int_equal(lwl_f32_to_f16(edges[i]), hb);
#endif
    }
    assert_int_equal(lwl_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(lwl_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(lwl_f32_to_bf16(1.0f), 0x3f80);
    assert_true(checked > 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_casts),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("tests", tests, NULL, NULL);
}
