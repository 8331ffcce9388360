/* The loader's pure parts and the view helpers: epoch orders are permutations keyed by
 * (seed, epoch), batch spans split every global batch between ranks, growable text and
 * JSON strings, and a view made from a decoded region equals the one from the whole image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lwl_loader.h"
#include "lwl_phase.h"

/* Every epoch order is a permutation; shuffle 0 is the identity; epochs and seeds differ,
 * the same keys repeat. */
static void test_epoch_order(void **state)
{
    (void)state;
    enum { N = 1001 };
    uint32_t a[N], b[N], c[N];
    uint8_t seen[N];

    lwl_epoch_order(5, 0, 1, N, a);
    lwl_epoch_order(5, 0, 1, N, b);
    assert_memory_equal(a, b, sizeof a);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        assert_true(a[i] < N);
        assert_int_equal(seen[a[i]], 0);
        seen[a[i]] = 1;
    }
    lwl_epoch_order(5, 1, 1, N, c);
    assert_true(memcmp(a, c, sizeof a) != 0);
    lwl_epoch_order(6, 0, 1, N, c);
    assert_true(memcmp(a, c, sizeof a) != 0);
    lwl_epoch_order(5, 3, 0, N, c);
    for (int i = 0; i < N; i++)
        assert_int_equal(c[i], i);

    /* Fixed points of a uniform permutation average 1: far from the identity. */
    int fixed = 0;
    for (int i = 0; i < N; i++)
        fixed += a[i] == (uint32_t)i;
    assert_true(fixed < 8);
}

/* Ranks of a global batch get disjoint contiguous parts; together, every position of
 * the kept batches exactly once; drop_last drops the partial global batch only. */
static void test_batch_spans(void **state)
{
    (void)state;
    static const int cases[][4] = { { 30, 4, 2, 0 }, { 30, 4, 2, 1 }, { 31, 3, 2, 0 },
                                    { 31, 3, 2, 1 }, { 10, 4, 3, 1 }, { 7, 7, 1, 0 } };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int n = cases[k][0], batch = cases[k][1], world = cases[k][2], keep = cases[k][3];
        int nb = lwl_epoch_batches((size_t)n, batch, world, keep), covered = 0;
        int g = batch * world;
        uint8_t seen[64] = { 0 };

        assert_int_equal(nb, keep ? (n + g - 1) / g : n / g);
        for (int b = 0; b < nb; b++)
            for (int r = 0; r < world; r++) {
                size_t start;
                int count;

                lwl_batch_span((size_t)n, batch, world, r, b, &start, &count);
                assert_int_equal(start, (size_t)(b * g + r * batch));
                assert_true(count >= 0 && count <= batch);
                assert_true(count == batch || keep);
                for (int j = 0; j < count; j++) {
                    assert_int_equal(seen[start + j], 0);
                    seen[start + j] = 1;
                    covered++;
                }
            }
        assert_int_equal(covered, keep ? n : n / g * g);
    }
}

static void test_strbuf_json(void **state)
{
    (void)state;
    lwl_strbuf b = { 0 };

    for (int i = 0; i < 1000; i++)
        assert_int_equal(lwl_strbuf_printf(&b, "%d,", i), 0);
    assert_int_equal(b.len, strlen(b.s));
    assert_int_equal(strncmp(b.s, "0,1,2,", 6), 0);
    assert_int_equal(strcmp(b.s + b.len - 4, "999,"), 0);
    b.len = 0;
    lwl_json_str(&b, "a\"b\\c\nd");
    assert_string_equal(b.s, "\"a\\\"b\\\\c\\u000ad\"");
    assert_int_equal(b.oom, 0);
    lwl_strbuf_free(&b);
    assert_string_equal(lwl_rel_path("/d/root/", "/d/root/cls/x.jpg"), "cls/x.jpg");
    assert_string_equal(lwl_rel_path("/d/root", "/d/rootx/y.jpg"), "/d/rootx/y.jpg");
}

/* A random w x h image as a full-image source. */
static lwl_src random_src(int w, int h, unsigned seed)
{
    lwl_src s = { { 0, 0, NULL }, 0, 0, w, h };

    assert_int_equal(lwl_image_alloc(&s.im, w, h), 0);
    srand(seed);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        s.im.px[i] = (uint8_t)((rand() >> 4) & 255);
    return s;
}

/* The sub-source holding just box b of s (what a region decode gives). */
static lwl_src sub_src(const lwl_src *s, lwl_box b)
{
    lwl_src r = { { 0, 0, NULL }, b.left, b.top, s->full_w, s->full_h };

    assert_int_equal(lwl_image_alloc(&r.im, b.width, b.height), 0);
    for (int y = 0; y < b.height; y++)
        memcpy(r.im.px + (size_t)y * b.width * 3,
               s->im.px + ((size_t)(b.top + y) * s->full_w + b.left) * 3, (size_t)b.width * 3);
    return r;
}

/* The evaluation and linear-training views read only their region: made from it they
 * equal the views made from the whole image; a crop outside the region is refused. */
static void test_views_from_region(void **state)
{
    (void)state;
    static const int sizes[][2] = { { 500, 375 }, { 375, 500 }, { 300, 300 }, { 1000, 10 } };
    lwl_eval_cfg cfg = { 64, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
    lwl_pipeline ev = lwl_eval_pipeline(&cfg), lin = lwl_linear_train_pipeline(&cfg);
    const lwl_view_def *defs[2] = { &ev.view[0], &lin.view[0] };
    uint8_t full[64 * 64 * 3], part[64 * 64 * 3];

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        lwl_src s = random_src(sizes[k][0], sizes[k][1], (unsigned)k);

        for (int d = 0; d < 2; d++)
            for (uint32_t idx = 0; idx < 5; idx++) {
                lwl_box b = defs[d]->region(s.full_w, s.full_h, 9, 2, idx);
                lwl_src r = sub_src(&s, b);

                assert_true(b.left >= 0 && b.top >= 0 && b.width > 0 && b.height > 0);
                assert_true(b.left + b.width <= s.full_w && b.top + b.height <= s.full_h);
                assert_int_equal(defs[d]->make(&s, 9, 2, idx, full, NULL), 0);
                assert_int_equal(defs[d]->make(&r, 9, 2, idx, part, NULL), 0);
                assert_memory_equal(full, part, sizeof full);
                lwl_image_free(&r.im);
            }

        /* One pixel too little is refused, not read out of bounds. */
        lwl_box b = ev.view[0].region(s.full_w, s.full_h, 0, 0, 0);
        b.width -= 1;
        lwl_src r = sub_src(&s, b);
        assert_int_equal(ev.view[0].make(&r, 0, 0, 0, part, NULL), -1);
        lwl_image_free(&r.im);
        lwl_image_free(&s.im);
    }

    /* At 224 the evaluation view is Resize(256) + CenterCrop(224); it records its op. */
    lwl_strbuf rec = { 0 };
    lwl_eval_cfg c224 = { 224, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
    lwl_pipeline e224 = lwl_eval_pipeline(&c224);
    lwl_src s = random_src(500, 375, 3);
    uint8_t *out = malloc(224 * 224 * 3), *want = malloc(224 * 224 * 3);
    lwl_image w = { 224, 224, want };

    assert_non_null(out);
    assert_non_null(want);
    assert_int_equal(e224.view[0].make(&s, 0, 0, 0, out, &rec), 0);
    assert_int_equal(lwl_resize_center_crop(&s.im, 256, 224, &w), 0);
    assert_memory_equal(out, want, 224 * 224 * 3);
    assert_string_equal(rec.s, "[{\"op\": \"resize_center_crop\"}]");
    lwl_strbuf_free(&rec);
    lwl_image_free(&s.im);
    free(out);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_batch_spans),
        cmocka_unit_test(test_strbuf_json),
        cmocka_unit_test(test_views_from_region),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("tests", tests, NULL, NULL);
}
