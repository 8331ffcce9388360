/* The loader's pure parts and the view helpers: epoch orders are permutations keyed by
 * (seed, epoch), batch spans split every global batch between ranks, growable text and
 * JSON strings, a view made from a decoded region equals the one from the whole image; and
 * the staging mode: params, source boxes, growth, unreadable files, any thread count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the staging mode ---- */

/* Counts the staging allocator's calls; fails the call numbered fail_at (from 1). */
typedef struct {
    int allocs, frees, fail_at;
    size_t largest;
} hooks;

static void *hook_alloc(void *arg, size_t bytes, char *err, size_t errlen)
{
    hooks *h = arg;

    if (++h->allocs == h->fail_at) {
        snprintf(err, errlen, "refused by the test");
        return NULL;
    }
    if (bytes > h->largest)
        h->largest = bytes;
    return malloc(bytes);
}

static void hook_free(void *arg, void *p)
{
    hooks *h = arg;

    h->frees++;
    free(p);
}

static int reports;

static void count_report(void *arg, const char *path, const char *reason, int fatal)
{
    (void)arg, (void)path, (void)reason;
    reports += fatal;
}

/* Files of the staging tests: PNGs of these sizes (two small, then larger ones, so that a
 * later batch needs a larger block) and an unreadable file third. */
static const int stage_sizes[][2] = { { 60, 40 }, { 33, 77 }, { 0, 0 }, { 400, 300 },
                                      { 300, 520 }, { 90, 90 }, { 700, 20 } };
enum { NSTAGE = sizeof stage_sizes / sizeof stage_sizes[0] };

static char stage_dir[64];
static char stage_path[NSTAGE][128];

static void stage_files(void)
{
    char *err = NULL;

    snprintf(stage_dir, sizeof stage_dir, "/tmp/lwl-stage-XXXXXX");
    assert_non_null(mkdtemp(stage_dir));
    for (int k = 0; k < NSTAGE; k++) {
        int w = stage_sizes[k][0], h = stage_sizes[k][1];

        snprintf(stage_path[k], sizeof stage_path[k], "%s/%d.png", stage_dir, k);
        if (w == 0) {
            FILE *f = fopen(stage_path[k], "wb");

            assert_non_null(f);
            fputs("not an image", f);
            assert_int_equal(fclose(f), 0);
            continue;
        }
        lwl_src s = random_src(w, h, (unsigned)k + 40);
        assert_int_equal(lwl_write_png(stage_path[k], w, h, s.im.px, &err), 0);
        lwl_image_free(&s.im);
    }
}

static void stage_files_remove(void)
{
    for (int k = 0; k < NSTAGE; k++)
        unlink(stage_path[k]);
    rmdir(stage_dir);
}

/* Every sample and view of a staged batch: the params are what the view's params() give
 * for the file in that row (with its own index: a replaced file keeps its own keys), the
 * pixels the source box of a full decode, the block's layout lwl_stage's. */
static void check_staged(const lwl_pipeline *p, const lwl_batch *b, const lwl_item *items,
                         uint32_t epoch)
{
    const lwl_stage *g = b->stage;

    assert_non_null(g);
    assert_int_equal(g->n, b->n);
    assert_int_equal(g->nviews, 2);
    assert_int_equal(g->size, p->size);
    assert_ptr_equal(g->params, g->base);
    assert_ptr_equal(g->pixels, (const uint8_t *)g->base + g->pixel_off);
    assert_true(g->pixel_off >= sizeof(lwl_view_params) * 2 * b->n && g->pixel_off % 256 == 0);
    assert_true(g->bytes <= g->cap);
    for (int j = 0; j < b->n; j++) {
        const char *path = items[b->index[j]].path;
        lwl_decode_status st;
        lwl_image full;

        assert_int_equal(b->label[j], items[b->index[j]].label);
        assert_true(stage_sizes[b->index[j]][0] > 0);     /* never the unreadable file */
        assert_int_equal(lwl_decode_file(path, &full, &st), 0);
        for (int v = 0; v < 2; v++) {
            const lwl_view_params *vp = &g->params[j * 2 + v];
            lwl_view_params want;
            size_t row = (size_t)vp->src.width * 3;

            memset(&want, 0, sizeof want);
            p->view[v].params(full.w, full.h, 11, epoch, b->index[j], &want);
            want.pixels = vp->pixels;
            assert_memory_equal(vp, &want, sizeof want);
            assert_true(vp->pixels % 16 == 0);
            assert_true(g->pixel_off + vp->pixels + row * vp->src.height <= g->bytes);
            for (int y = 0; y < vp->src.height; y++)
                assert_memory_equal(g->pixels + vp->pixels + y * row,
                                    full.px + ((size_t)(vp->src.top + y) * full.w +
                                               vp->src.left) * 3, row);
        }
        lwl_image_free(&full);
    }
}

static lwl_loader *stage_loader(const lwl_pipeline *p, const lwl_item *items, int threads,
                                int shuffle, hooks *h)
{
    lwl_loader_cfg c;
    char *err = NULL;

    memset(&c, 0, sizeof c);
    c.pipe = p;
    c.items = items;
    c.n = NSTAGE;
    c.batch = 2;
    c.world = 1;
    c.shuffle = shuffle;
    c.keep_last = 1;
    c.seed = 11;
    c.threads = threads;
    c.report = count_report;
    c.stage = 1;
    c.stage_alloc = h ? hook_alloc : NULL;
    c.stage_free = h ? hook_free : NULL;
    c.stage_arg = h;
    lwl_loader *ld = lwl_loader_open(&c, &err);
    assert_non_null(ld);
    return ld;
}

/* A batch's staged block holds, per sample and view, exactly what the view's params() give
 * for that file and the source box of a full decode; 1 and 3 threads stage the same bytes;
 * the block grows through the hooks; the unreadable file is replaced by the next one. */
static void test_stage(void **state)
{
    (void)state;
    lwl_eval_cfg cfg = { 48, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
    lwl_pipeline two = { 48, 2, { lwl_eval_view(&cfg), lwl_linear_train_view(&cfg) },
                         lwl_eval_normalize };
    lwl_item items[NSTAGE];
    hooks h = { 0, 0, 0, 0 };

    stage_files();
    for (int k = 0; k < NSTAGE; k++) {
        items[k].path = stage_path[k];
        items[k].label = k;
    }
    reports = 0;
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        lwl_loader *a = stage_loader(&two, items, 1, shuffle, NULL);
        lwl_loader *b = stage_loader(&two, items, 3, shuffle, &h);

        for (uint32_t e = 0; e < 2; e++) {
            int nb = lwl_loader_epoch(a, e);
            lwl_batch ba, bb;

            assert_int_equal(nb, (NSTAGE + 1) / 2);
            assert_int_equal(lwl_loader_epoch(b, e), nb);
            for (int k = 0; k < nb; k++) {
                assert_int_equal(lwl_loader_next(a, &ba), 1);
                assert_int_equal(lwl_loader_next(b, &bb), 1);
                check_staged(&two, &ba, items, e);

                /* Any thread count, any allocator: the same bytes. */
                assert_null(ba.view[0]);
                assert_int_equal(ba.stage->bytes, bb.stage->bytes);
                assert_memory_equal(ba.stage->base, bb.stage->base, ba.stage->bytes);
                assert_memory_equal(ba.index, bb.index, sizeof(uint32_t) * ba.n);
            }
            assert_int_equal(lwl_loader_next(a, &ba), 0);
            assert_int_equal(lwl_loader_next(b, &bb), 0);
        }
        lwl_loader_close(a);
        lwl_loader_close(b);
    }

    /* The larger images needed a larger block, every block went back to the hooks, and
     * the unreadable file was reported once per loader (4 loaders). */
    assert_true(h.allocs >= 2 * 2);
    assert_int_equal(h.frees, h.allocs);
    assert_true(h.largest > 400 * 300 * 3);
    assert_int_equal(reports, 4);

    /* A refused block fails the loader with the allocator's reason. */
    hooks refuse = { 0, 0, 1, 0 };
    lwl_loader *r = stage_loader(&two, items, 2, 1, &refuse);
    lwl_batch rb;
    lwl_loader_epoch(r, 0);
    assert_int_equal(lwl_loader_next(r, &rb), -1);
    assert_non_null(strstr(lwl_loader_error(r), "refused by the test"));
    lwl_loader_close(r);

    /* A view without params() cannot be staged. */
    lwl_pipeline bare = two;
    lwl_loader_cfg c;
    char *err = NULL;
    bare.view[1].params = NULL;
    memset(&c, 0, sizeof c);
    c.pipe = &bare;
    c.items = items;
    c.n = NSTAGE;
    c.batch = 2;
    c.world = 1;
    c.threads = 1;
    c.stage = 1;
    assert_null(lwl_loader_open(&c, &err));
    assert_non_null(strstr(err, "view 2 has none"));
    free(err);
    stage_files_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_batch_spans),
        cmocka_unit_test(test_strbuf_json),
        cmocka_unit_test(test_views_from_region),
        cmocka_unit_test(test_stage),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("tests", tests, NULL, NULL);
}
