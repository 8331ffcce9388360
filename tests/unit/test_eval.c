/* Unit tests of the evaluation library (lwl_eval): kNN on hand-made cases and against a
 * brute-force reference, per-class shares, the linear step against a double-precision
 * reference, t intervals at known quantiles, Grad-CAM by hand, the overlay PNG, summary files.
 * With LWL_EVAL_ORACLE=DIR (made by tests/oracle/eval_ref.py) it also checks kNN, the linear
 * step, the t quantiles and Grad-CAM against numpy/torch/scipy; tests whose case file is
 * missing are left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lwl_eval.h"

static char tmpdir[64];
static uint64_t rng_state = 88172645463325252ull;

/* Uniform in [-1, 1). */
static float urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / 16777216.0 * 2.0 - 1.0);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- features and kNN ---- */

static void test_l2_normalize(void **state)
{
    float x[3][4] = { { 3, 4, 0, 0 }, { 0, 0, 0, 0 }, { 1, 1, 1, 1 } };
    (void)state;

    lwl_l2_normalize_rows(&x[0][0], 3, 4);
    assert_float_equal(x[0][0], 0.6f, 1e-7);
    assert_float_equal(x[0][1], 0.8f, 1e-7);
    for (int j = 0; j < 4; j++) {
        assert_true(x[1][j] == 0.0f);              /* a zero row stays zero */
        assert_float_equal(x[2][j], 0.5f, 1e-7);
    }
}

/* Unit vector at angle a (radians) in 2-D. */
static void unit2(float *v, double a)
{
    v[0] = (float)cos(a);
    v[1] = (float)sin(a);
}

static lwl_knn_cfg knn_cfg(int k, int weighted, int nclasses)
{
    lwl_knn_cfg c = { k, weighted, 0.07, nclasses, 0, 0 };
    return c;
}

static void test_knn_majority_ties(void **state)
{
    /* Memory at angles 0.1, 0.2 (labels 3, 1), far ones of label 0; query at angle 0. */
    float mem[4 * 2], q[2];
    int y[4] = { 3, 1, 0, 0 }, pred[5];
    lwl_knn_cfg c = knn_cfg(2, 0, 4);
    char *err = NULL;
    (void)state;

    unit2(mem, 0.1);
    unit2(mem + 2, 0.2);
    unit2(mem + 4, 2.0);
    unit2(mem + 6, 2.5);
    unit2(q, 0.0);
    assert_int_equal(lwl_knn_predict(&c, mem, y, 4, 2, q, 1, pred, &err), 0);
    /* One vote each for 3 and 1: the tie goes to the lower label; unvoted classes absent. */
    assert_int_equal(pred[0], 1);
    assert_int_equal(pred[1], 3);
    for (int r = 2; r < 5; r++)
        assert_int_equal(pred[r], -1);

    /* k = 3: two votes for class 0 would need both far ones; here 3, 1, 0 one each -> 0. */
    c.k = 3;
    assert_int_equal(lwl_knn_predict(&c, mem, y, 4, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 0);
    assert_int_equal(pred[1], 1);
    assert_int_equal(pred[2], 3);
    assert_int_equal(pred[3], -1);
}

static void test_knn_equal_similarity(void **state)
{
    /* Rows 0..2 identical with labels 2, 0, 1: k = 1 takes the lowest memory index. */
    float mem[3 * 2], q[2];
    int y[3] = { 2, 0, 1 }, pred[5];
    lwl_knn_cfg c = knn_cfg(1, 0, 3);
    char *err = NULL;
    (void)state;

    for (int i = 0; i < 3; i++)
        unit2(mem + 2 * i, 0.3);
    unit2(q, 0.3);
    assert_int_equal(lwl_knn_predict(&c, mem, y, 3, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 2);
    assert_int_equal(pred[1], -1);
    /* k = 2 takes rows 0 and 1: labels 2 and 0 tie -> 0 first. */
    c.k = 2;
    assert_int_equal(lwl_knn_predict(&c, mem, y, 3, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 0);
    assert_int_equal(pred[1], 2);
    assert_int_equal(pred[2], -1);
}

static void test_knn_k1_and_no_vote(void **state)
{
    /* Queries near memory rows; query 1's label is its second neighbour's. Query 2's label (2)
     * has no memory row near it: with 3 classes (< 5) it must still miss top-5. */
    float mem[2 * 2], q[3 * 2];
    int y[2] = { 0, 1 }, qy[3] = { 0, 1, 2 };
    lwl_knn_cfg c = knn_cfg(1, 0, 3);
    lwl_hits h;
    char *err = NULL;
    (void)state;

    unit2(mem, 0.0);
    unit2(mem + 2, 1.0);
    unit2(q, 0.1);
    unit2(q + 2, 0.2);
    unit2(q + 4, 0.05);
    assert_int_equal(lwl_knn_eval(&c, mem, y, 2, 2, q, qy, 3, &h, &err), 0);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.top1, 1);
    assert_int_equal(h.top5, 1);        /* k = 1: top-5 == top-1 */

    c.k = 2;                            /* both classes voted: query 1 is a top-5 hit */
    assert_int_equal(lwl_knn_eval(&c, mem, y, 2, 2, q, qy, 3, &h, &err), 0);
    assert_int_equal(h.top1, 1);
    assert_int_equal(h.top5, 2);        /* query 2 (class 2, no vote) still misses */
    assert_float_equal(lwl_hits_pct(h.top5, h.n), 200.0 / 3, 1e-9);
}

static void test_knn_weighted(void **state)
{
    /* Two far neighbours of class 0 (sim 0.1), one close of class 1 (sim 0.99). */
    float mem[3 * 2], q[2];
    int y[3] = { 0, 0, 1 }, pred[5];
    lwl_knn_cfg c = knn_cfg(3, 0, 2);
    char *err = NULL;
    (void)state;

    unit2(mem, acos(0.1));
    unit2(mem + 2, -acos(0.1));
    unit2(mem + 4, acos(0.99));
    unit2(q, 0.0);
    assert_int_equal(lwl_knn_predict(&c, mem, y, 3, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 0);       /* majority: 2 votes against 1 */
    assert_int_equal(pred[1], 1);
    c.weighted = 1;                     /* exp(0.99/0.07) >> 2 exp(0.1/0.07) */
    assert_int_equal(lwl_knn_predict(&c, mem, y, 3, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 1);
    assert_int_equal(pred[1], 0);
    c.temperature = 10;                 /* near-uniform weights: 2 x 1.010 > 1.104 */
    assert_int_equal(lwl_knn_predict(&c, mem, y, 3, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 0);
}

static void test_knn_weighted_double(void **state)
{
    /* Similarities 1 and 1 + 2^-30 are one float (1.0f): the neighbours tie and rank by
     * index, but the weights take the similarities in double, where the second is larger:
     * class 1 wins the weighted vote, as a float tie would never let it. */
    float mem[2 * 2] = { 1, 0, 1, 1 }, q[2] = { 1, 0x1p-30f };
    int y[2] = { 0, 1 }, pred[5];
    lwl_knn_cfg c = knn_cfg(2, 1, 2);
    char *err = NULL;
    (void)state;

    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 1);
    assert_int_equal(pred[1], 0);
    c.weighted = 0;                     /* one vote each: the tie goes to the lower label */
    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), 0);
    assert_int_equal(pred[0], 0);
}

/* Full-matrix similarities and a full sort: the reference of the blocked heap. */
static void knn_brute(const lwl_knn_cfg *c, const float *mem, const int *y, size_t n, size_t d,
                      const float *q, size_t m, int *pred)
{
    for (size_t i = 0; i < m; i++) {
        float *s = xmalloc(n * sizeof *s);
        double *sd = xmalloc(n * sizeof *sd);
        int *ord = xmalloc(n * sizeof *ord);
        double score[64] = { 0 };
        int votes[64] = { 0 };

        for (size_t j = 0; j < n; j++) {
            double a = 0;
            for (size_t t = 0; t < d; t++)
                a += (double)q[i * d + t] * mem[j * d + t];
            sd[j] = a;
            s[j] = (float)a;
            ord[j] = (int)j;
        }
        /* Insertion sort by (sim desc, index asc). */
        for (size_t j = 1; j < n; j++)
            for (size_t t = j; t > 0 && (s[ord[t]] > s[ord[t - 1]] ||
                 (s[ord[t]] == s[ord[t - 1]] && ord[t] < ord[t - 1])); t--) {
                int x = ord[t];
                ord[t] = ord[t - 1];
                ord[t - 1] = x;
            }
        for (int j = 0; j < c->k; j++) {
            score[y[ord[j]]] += c->weighted ? exp(sd[ord[j]] / c->temperature) : 1.0;
            votes[y[ord[j]]]++;
        }
        for (int r = 0; r < 5; r++) {
            int best = -1;
            for (int k = 0; k < c->nclasses; k++)
                if (votes[k] > 0 && (best < 0 || score[k] > score[best]))
                    best = k;
            pred[i * 5 + r] = best;
            if (best >= 0)
                votes[best] = 0;
        }
        free(s);
        free(sd);
        free(ord);
    }
}

static void test_knn_blocks_vs_brute(void **state)
{
    /* Quantised features make exact similarity ties common; the blocked heap, whatever the
     * block sizes, must agree with the full sort everywhere. */
    size_t n = 700, m = 90, d = 8;
    float *mem = xmalloc(n * d * sizeof *mem), *q = xmalloc(m * d * sizeof *q);
    int *y = xmalloc(n * sizeof *y), *p1 = xmalloc(m * 5 * sizeof(int));
    int *p2 = xmalloc(m * 5 * sizeof(int)), *p3 = xmalloc(m * 5 * sizeof(int));
    char *err = NULL;
    (void)state;

    for (size_t i = 0; i < n * d; i++)
        mem[i] = roundf(urand() * 2) / 2;
    for (size_t i = 0; i < m * d; i++)
        q[i] = roundf(urand() * 2) / 2;
    for (size_t i = 0; i < n; i++)
        y[i] = (int)(i * 7 % 10);
    for (int w = 0; w < 2; w++) {
        lwl_knn_cfg c = knn_cfg(w ? 50 : 20, w, 10);
        c.temperature = 0.5;
        knn_brute(&c, mem, y, n, d, q, m, p1);
        assert_int_equal(lwl_knn_predict(&c, mem, y, n, d, q, m, p2, &err), 0);
        c.block_q = 7;
        c.block_m = 33;
        assert_int_equal(lwl_knn_predict(&c, mem, y, n, d, q, m, p3, &err), 0);
        assert_memory_equal(p1, p2, m * 5 * sizeof(int));
        assert_memory_equal(p1, p3, m * 5 * sizeof(int));
    }
    free(mem);
    free(q);
    free(y);
    free(p1);
    free(p2);
    free(p3);
}

static void test_knn_errors(void **state)
{
    float mem[4] = { 1, 0, 0, 1 }, q[2] = { 1, 0 };
    int y[2] = { 0, 1 }, qy[1] = { 0 }, pred[5];
    lwl_knn_cfg c = knn_cfg(3, 0, 2);
    lwl_hits h;
    char *err = NULL;
    (void)state;

    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), -1);  /* k > n */
    assert_non_null(strstr(err, "k 3"));
    free(err);
    c.k = 1;
    q[1] = NAN;
    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), -1);
    assert_non_null(strstr(err, "not finite"));
    free(err);
    q[1] = 0;
    y[1] = 2;
    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), -1);
    assert_non_null(strstr(err, "label 2"));
    free(err);
    y[1] = 1;
    qy[0] = -1;
    assert_int_equal(lwl_knn_eval(&c, mem, y, 2, 2, q, qy, 1, &h, &err), -1);
    free(err);
    c.weighted = 1;
    c.temperature = 0;
    assert_int_equal(lwl_knn_predict(&c, mem, y, 2, 2, q, 1, pred, &err), -1);
    free(err);
}

/* ---- shares ---- */

static void test_class_share(void **state)
{
    /* Classes of 25, 5, 1, 0 and 3 items, in (class, file) order. */
    int sizes[5] = { 25, 5, 1, 0, 3 };
    lwl_item items[34];
    size_t n = 0, *idx, cnt;
    char *err = NULL;
    (void)state;

    for (int c = 0; c < 5; c++)
        for (int i = 0; i < sizes[c]; i++) {
            items[n].path = NULL;
            items[n++].label = c;
        }
    /* 10%: 2.5 -> 2 (half to even), 0.5 -> 1 (at least one), 0.1 -> 1, 0 -> 0, 0.3 -> 1. */
    assert_int_equal(lwl_class_share(items, n, 5, 0.10, &idx, &cnt, &err), 0);
    size_t want10[] = { 0, 1, 25, 30, 31 };
    assert_int_equal(cnt, 5);
    assert_memory_equal(idx, want10, sizeof want10);
    free(idx);
    /* 50%: 12.5 -> 12, 2.5 -> 2, 0.5 -> 1, 1.5 -> 2. */
    assert_int_equal(lwl_class_share(items, n, 5, 0.5, &idx, &cnt, &err), 0);
    assert_int_equal(cnt, 12 + 2 + 1 + 2);
    assert_int_equal(idx[11], 11);
    assert_int_equal(idx[12], 25);
    assert_int_equal(idx[14], 30);
    assert_int_equal(idx[15], 31);
    assert_int_equal(idx[16], 32);
    free(idx);
    /* 100% keeps all; 0 and a bad label are errors. */
    assert_int_equal(lwl_class_share(items, n, 5, 1.0, &idx, &cnt, &err), 0);
    assert_int_equal(cnt, n);
    free(idx);
    assert_int_equal(lwl_class_share(items, n, 5, 0.0, &idx, &cnt, &err), -1);
    free(err);
    assert_int_equal(lwl_class_share(items, n, 4, 0.5, &idx, &cnt, &err), -1);
    assert_non_null(strstr(err, "label 4"));
    free(err);
}

/* ---- linear classifier ---- */

static void test_sgd_schedule(void **state)
{
    int ms[2] = { 30, 40 };
    lwl_sgd_cfg c = { 0.4, 0.9, 0, ms, 2 };
    (void)state;

    assert_float_equal(lwl_sgd_lr_at(&c, 0), 0.4, 1e-15);
    assert_float_equal(lwl_sgd_lr_at(&c, 29), 0.4, 1e-15);
    assert_float_equal(lwl_sgd_lr_at(&c, 30), 0.04, 1e-15);
    assert_float_equal(lwl_sgd_lr_at(&c, 39), 0.04, 1e-15);
    assert_float_equal(lwl_sgd_lr_at(&c, 40), 0.004, 1e-15);
    assert_float_equal(lwl_sgd_lr_at(&c, 49), 0.004, 1e-15);
}

static void test_linear_init(void **state)
{
    char *err = NULL;
    lwl_linear *a = lwl_linear_new(512, 100, 4, &err), *b = lwl_linear_new(512, 100, 4, &err);
    size_t nw = 512 * 100;
    double s = 0, ss = 0;
    (void)state;

    assert_non_null(a);
    assert_non_null(b);
    lwl_linear_init(a, 7);
    lwl_linear_init(b, 7);
    assert_memory_equal(a->weight, b->weight, nw * sizeof(float));
    for (size_t i = 0; i < nw; i++) {
        s += a->weight[i];
        ss += (double)a->weight[i] * a->weight[i];
    }
    double mean = s / nw, sd = sqrt(ss / nw - mean * mean);
    print_message("# init: mean %.3g std %.5f over %zu weights\n", mean, sd, nw);
    assert_true(fabs(mean) < 1e-4);             /* 0.01 / sqrt(51200) = 4.4e-5 */
    assert_true(fabs(sd - 0.01) < 2e-4);
    for (int j = 0; j < 100; j++)
        assert_true(a->bias[j] == 0.0f);
    lwl_linear_init(b, 8);
    assert_true(memcmp(a->weight, b->weight, nw * sizeof(float)) != 0);
    lwl_linear_free(a);
    lwl_linear_free(b);
    assert_null(lwl_linear_new(0, 3, 1, &err));
    free(err);
}

/* A double-precision step: logits, softmax cross-entropy, gradients and SGD as torch. */
static double linear_ref_step(double *w, double *b, double *bw, double *bb, int first,
                              const float *x, const int *y, int bs, int d, int nc, double lr,
                              double mom, double wd)
{
    double *gw = calloc((size_t)nc * d, sizeof *gw), *gb = calloc((size_t)nc, sizeof *gb);
    double loss = 0;

    assert_non_null(gw);
    assert_non_null(gb);
    for (int i = 0; i < bs; i++) {
        double z[16], mx = -1e300, sum = 0;
        for (int c = 0; c < nc; c++) {
            z[c] = b[c];
            for (int t = 0; t < d; t++)
                z[c] += w[c * d + t] * x[i * d + t];
            mx = fmax(mx, z[c]);
        }
        for (int c = 0; c < nc; c++)
            sum += exp(z[c] - mx);
        loss += log(sum) + mx - z[y[i]];
        for (int c = 0; c < nc; c++) {
            double g = (exp(z[c] - mx) / sum - (c == y[i])) / bs;
            gb[c] += g;
            for (int t = 0; t < d; t++)
                gw[c * d + t] += g * x[i * d + t];
        }
    }
    for (int j = 0; j < nc * d + nc; j++) {
        double *p = j < nc * d ? &w[j] : &b[j - nc * d];
        double *bf = j < nc * d ? &bw[j] : &bb[j - nc * d];
        double g = (j < nc * d ? gw[j] : gb[j - nc * d]) + wd * *p;
        *bf = first ? g : mom * *bf + g;
        *p -= lr * *bf;
    }
    free(gw);
    free(gb);
    return loss / bs;
}

static void test_linear_step(void **state)
{
    enum { D = 24, C = 7, B = 10, STEPS = 4 };
    int ms[1] = { 2 };
    lwl_sgd_cfg cfg = { 0.5, 0.9, 1e-3, ms, 1 };
    char *err = NULL;
    lwl_linear *l = lwl_linear_new(D, C, B, &err);
    double w[C * D], b[C], bw[C * D], bb[C], worst = 0;
    float x[B * D];
    int y[B];
    (void)state;

    assert_non_null(l);
    lwl_linear_init(l, 3);
    for (int j = 0; j < C * D; j++)
        w[j] = l->weight[j] = urand() * 0.3f;       /* larger than init, for a real signal */
    for (int c = 0; c < C; c++)
        b[c] = l->bias[c] = urand() * 0.1f;
    for (int s = 0; s < STEPS; s++) {
        double lr = lwl_sgd_lr_at(&cfg, s), loss, rl;
        lwl_hits h = { 0, 0, 0 };
        for (int i = 0; i < B * D; i++)
            x[i] = urand();
        for (int i = 0; i < B; i++)
            y[i] = (i * 3 + s) % C;
        rl = linear_ref_step(w, b, bw, bb, s == 0, x, y, B, D, C, lr, cfg.momentum,
                             cfg.weight_decay);
        assert_int_equal(lwl_linear_step(l, &cfg, lr, x, y, B, &loss, &h, &err), 0);
        assert_float_equal(loss, rl, 1e-5);
        assert_int_equal(h.n, B);
        for (int j = 0; j < C * D; j++)
            worst = fmax(worst, fabs(l->weight[j] - w[j]));
        for (int c = 0; c < C; c++)
            worst = fmax(worst, fabs(l->bias[c] - b[c]));
    }
    print_message("# linear: %d steps, max |w - w_ref| %.2e\n", STEPS, worst);
    assert_true(worst < 1e-5);
    assert_int_equal(l->steps, STEPS);

    /* Bad batch and bad label. */
    assert_int_equal(lwl_linear_step(l, &cfg, 0.1, x, y, B + 1, NULL, NULL, &err), -1);
    free(err);
    y[0] = C;
    assert_int_equal(lwl_linear_step(l, &cfg, 0.1, x, y, B, NULL, NULL, &err), -1);
    free(err);
    lwl_linear_free(l);
}

static void test_topk_hits(void **state)
{
    /* Row 0: tie of classes 0 and 1, label 1 -> rank 2 (not top-1). Row 1: 7 classes, label's
     * logit sixth highest -> miss. Row 2: clear top-1. */
    float z[3 * 7] = { 1, 1, 0, 0, 0, 0, 0,
                       6, 5, 4, 3, 2, 1, 0,
                       0, 0, 0, 9, 0, 0, 0 };
    int y[3] = { 1, 5, 3 };
    lwl_hits h = { 0, 0, 0 };
    (void)state;

    lwl_topk_hits(z, y, 3, 7, &h);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.top1, 1);
    assert_int_equal(h.top5, 2);
    /* Fewer than five classes: everything is top-5. */
    float z2[3] = { 3, 2, 1 };
    int y2[1] = { 2 };
    h.n = h.top1 = h.top5 = 0;
    lwl_topk_hits(z2, y2, 1, 3, &h);
    assert_int_equal(h.top5, 1);
    assert_int_equal(h.top1, 0);
}

/* ---- t interval ---- */

static void test_t_interval(void **state)
{
    double v[3] = { 1, 2, 3 }, one = 5.5;
    lwl_interval iv;
    char *err = NULL;
    (void)state;

    /* t(0.95, 2) = 2.919986; s = 1. */
    assert_int_equal(lwl_t_interval(v, 3, 0.90, &iv, &err), 0);
    assert_true(iv.has_interval);
    assert_float_equal(iv.mean, 2.0, 1e-12);
    assert_float_equal(iv.high - iv.mean, 2.919986 / sqrt(3.0), 1e-6);
    assert_float_equal(iv.mean - iv.low, 2.919986 / sqrt(3.0), 1e-6);
    /* t(0.975, 2) = 4.302653; t(0.995, 1) = 63.656741 for [1, 3] (s = sqrt 2). */
    assert_int_equal(lwl_t_interval(v, 3, 0.95, &iv, &err), 0);
    assert_float_equal(iv.high - 2.0, 4.302653 / sqrt(3.0), 1e-6);
    double v2[2] = { 1, 3 };
    assert_int_equal(lwl_t_interval(v2, 2, 0.99, &iv, &err), 0);
    assert_float_equal(iv.high - 2.0, 63.656741 * sqrt(2.0) / sqrt(2.0), 1e-5);
    /* One value: a mean and no interval. */
    assert_int_equal(lwl_t_interval(&one, 1, 0.9, &iv, &err), 0);
    assert_false(iv.has_interval);
    assert_float_equal(iv.mean, 5.5, 0);
    assert_true(isnan(iv.low) && isnan(iv.high));
    /* Errors. */
    assert_int_equal(lwl_t_interval(v, 3, 1.0, &iv, &err), -1);
    free(err);
    assert_int_equal(lwl_t_interval(v, 0, 0.9, &iv, &err), -1);
    free(err);
    v[1] = NAN;
    assert_int_equal(lwl_t_interval(v, 3, 0.9, &iv, &err), -1);
    free(err);
}

/* ---- Grad-CAM ---- */

static void test_gradcam_hand(void **state)
{
    /* A0 = [1 2; 3 4], A1 = [4 3; 2 1]; mean gradients 1 and -0.5:
     * map = A0 - 0.5 A1 = [-1 0.5; 2 3.5] -> ReLU [0 0.5; 2 3.5] -> / 3.5. */
    float act[8] = { 1, 2, 3, 4, 4, 3, 2, 1 }, grad[8] = { 1, 1, 1, 1, -1, 0, -1, 0 };
    float heat[16], alpha[2];
    char *err = NULL;
    (void)state;

    assert_int_equal(lwl_gradcam(act, grad, 2, 2, 2, 2, 2, heat, alpha, &err), 0);
    assert_float_equal(alpha[0], 1.0f, 0);
    assert_float_equal(alpha[1], -0.5f, 0);
    assert_float_equal(heat[0], 0.0f, 1e-7);
    assert_float_equal(heat[1], 0.5f / 3.5f, 1e-7);
    assert_float_equal(heat[2], 2.0f / 3.5f, 1e-7);
    assert_float_equal(heat[3], 1.0f, 1e-7);

    /* In two steps: the map before upsampling, then the same heat bits. */
    float map[4], heat2[4];
    assert_int_equal(lwl_gradcam_map(act, grad, 2, 2, 2, map, NULL, &err), 0);
    assert_float_equal(map[0], 0.0f, 0);
    assert_float_equal(map[1], 0.5f, 0);
    assert_float_equal(map[2], 2.0f, 0);
    assert_float_equal(map[3], 3.5f, 0);
    assert_int_equal(lwl_gradcam_heat(map, 2, 2, 2, 2, heat2, &err), 0);
    assert_memory_equal(heat, heat2, sizeof heat2);

    /* 1 x 2 map [0 1] to 1 x 4: half-pixel centres give [0 .25 .75 1]. */
    float a2[2] = { 0, 1 }, g2[2] = { 1, 1 };
    assert_int_equal(lwl_gradcam(a2, g2, 1, 1, 2, 1, 4, heat, NULL, &err), 0);
    assert_float_equal(heat[0], 0.0f, 1e-7);
    assert_float_equal(heat[1], 0.25f, 1e-7);
    assert_float_equal(heat[2], 0.75f, 1e-7);
    assert_float_equal(heat[3], 1.0f, 1e-7);

    /* Everything negative: ReLU leaves nothing, the heat map is zero. */
    g2[0] = g2[1] = -1;
    assert_int_equal(lwl_gradcam(a2, g2, 1, 1, 2, 4, 4, heat, NULL, &err), 0);
    for (int i = 0; i < 16; i++)
        assert_true(heat[i] == 0.0f);
    assert_int_equal(lwl_gradcam(a2, g2, 0, 1, 2, 4, 4, heat, NULL, &err), -1);
    free(err);
}

static void test_jet_and_png(void **state)
{
    uint8_t c[3], img[6 * 4 * 3];
    float heat[6 * 4];
    char path[128], *err = NULL;
    unsigned char sig[8];
    static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    (void)state;

    lwl_jet(0.0f, c);
    assert_true(c[0] == 0 && c[1] == 0 && c[2] == 128);
    lwl_jet(1.0f, c);
    assert_true(c[0] == 128 && c[1] == 0 && c[2] == 0);
    lwl_jet(0.5f, c);                   /* r 0.15/0.31, g 1, b 1 - 0.16/0.31 */
    assert_true(c[0] == 123 && c[1] == 255 && c[2] == 123);
    lwl_jet(2.0f, c);
    assert_true(c[0] == 128 && c[1] == 0 && c[2] == 0);

    for (int i = 0; i < 24; i++) {
        heat[i] = (float)i / 23;
        img[i * 3] = img[i * 3 + 1] = img[i * 3 + 2] = 200;
    }
    snprintf(path, sizeof path, "%s/cam.png", tmpdir);
    assert_int_equal(lwl_gradcam_png(path, img, heat, 6, 4, &err), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(sig, png_sig, 8);
    snprintf(path, sizeof path, "%s/no/such/dir/cam.png", tmpdir);
    assert_int_equal(lwl_gradcam_png(path, img, heat, 6, 4, &err), -1);
    free(err);
}

/* ---- summary ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = xmalloc(65536);
    size_t n;

    assert_non_null(f);
    n = fread(s, 1, 65535, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void test_summary(void **state)
{
    /* knn_top1: 82.3 +- 2.78786 -> 82.3 [77.6, 87.0] at 90% with n = 3. */
    double knn[3] = { 79.51214, 82.3, 85.08786 }, lin[3] = { 60, 61, 62 }, one[1] = { 9.96 };
    double rknn[3] = { 10, 12, 11 };
    lwl_metric m[3] = { { "knn_top1", knn, 3 }, { "linear_top1", lin, 3 },
                        { "linear_top5", one, 1 } };
    lwl_metric r[1] = { { "knn_top1", rknn, 3 } };
    lwl_summary s = { "baseline", 3, 0.9, "kNN k 20 majority, memory val 10%", m, 3, r, 1 };
    char dir[128], path[160], cell[64], *err = NULL;
    (void)state;

    assert_int_equal(lwl_format_cell(cell, sizeof cell, knn, 3, 0.9), 17);
    assert_string_equal(cell, "82.3 [77.6, 87.0]");
    lwl_format_cell(cell, sizeof cell, one, 1, 0.9);
    assert_string_equal(cell, "10.0");
    lwl_format_cell(cell, sizeof cell, NULL, 0, 0.9);
    assert_string_equal(cell, "-");

    snprintf(dir, sizeof dir, "%s/run/sub", tmpdir);
    assert_int_equal(lwl_summary_write(dir, &s, &err), 0);
    snprintf(path, sizeof path, "%s/summary.md", dir);
    char *md = slurp(path);
    const char *want =
        "# baseline\n\n"
        "Protocol: kNN k 20 majority, memory val 10%\n\n"
        "3 of 3 repeats finished. Each cell is the mean over repeats and, with two or more, "
        "the two-sided 90% Student-t interval with n-1 degrees of freedom; accuracies in "
        "percent.\n\n"
        "| backbone | kNN Acc@1 | linear Acc@1 | linear Acc@5 |\n"
        "|---|---|---|---|\n"
        "| pre-trained | 82.3 [77.6, 87.0] | 61.0 [59.3, 62.7] | 10.0 |\n"
        "| random init | 11.0 [9.3, 12.7] | - | - |\n"
        "\nValues per repeat (run0, run1, ...):\n\n"
        "- knn_top1: 79.51, 82.30, 85.09\n"
        "- linear_top1: 60.00, 61.00, 62.00\n"
        "- linear_top5: 9.96\n"
        "- random init knn_top1: 10.00, 12.00, 11.00\n";
    assert_string_equal(md, want);
    free(md);

    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *js = slurp(path);
    assert_non_null(strstr(js, "\"experiment\": \"baseline\""));
    assert_non_null(strstr(js, "\"repeats\": 3"));
    assert_non_null(strstr(js, "\"confidence\": 0.9,"));
    assert_non_null(strstr(js, "\"knn_top1\": {\"values\": [79.51214, 82.3, 85.08786], "
                               "\"mean\": 82.3"));
    assert_non_null(strstr(js, "\"linear_top5\": {\"values\": [9.96], \"mean\": 9.96, "
                               "\"low\": null, \"high\": null}"));
    assert_non_null(strstr(js, "\"random_init\": {"));
    assert_null(strstr(js, "nan"));
    free(js);

    /* An unwritable place is an error, not a crash. */
    assert_int_equal(lwl_summary_write("/proc/no/such", &s, &err), -1);
    assert_non_null(err);
    free(err);
}

/* ---- oracle cases (tests/oracle/eval_ref.py) ---- */

/* Reads exactly n bytes of dir/name into a malloc'd buffer; NULL when the file is missing. */
static void *oracle_read(const char *name, size_t n)
{
    const char *dir = getenv("LWL_EVAL_ORACLE");
    char path[512];
    FILE *f;
    void *p;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    p = xmalloc(n);
    assert_int_equal(fread(p, 1, n, f), n);
    fclose(f);
    return p;
}

/* dir/name's text (NUL-terminated), or NULL when missing. */
static char *oracle_text(const char *name)
{
    const char *dir = getenv("LWL_EVAL_ORACLE");
    char path[512];

    if (!dir)
        return NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, R_OK) != 0)
        return NULL;
    return slurp(path);
}

static void test_oracle_knn(void **state)
{
    char *txt = oracle_text("knn.txt");
    size_t n, m, d, amb = 0;
    int nc, k[2];
    double temp;
    char *err = NULL;
    (void)state;

    assert_non_null(txt);
    assert_int_equal(sscanf(txt, "%zu %zu %zu %d %d %d %lf", &n, &m, &d, &nc, &k[0], &k[1],
                            &temp), 7);
    free(txt);
    float *mem = oracle_read("knn_mem.f32", n * d * 4), *q = oracle_read("knn_qry.f32", m * d * 4);
    int *y = oracle_read("knn_mem_y.i32", n * 4), *qy = oracle_read("knn_qry_y.i32", m * 4);
    int *pred = xmalloc(m * 5 * sizeof *pred);

    lwl_l2_normalize_rows(mem, n, d);
    lwl_l2_normalize_rows(q, m, d);
    for (int w = 0; w < 2; w++) {
        char name[64];
        int *want, *ok;
        lwl_knn_cfg c = knn_cfg(k[w], w, nc);
        lwl_hits h;
        size_t hits[2] = { 0, 0 };

        c.temperature = temp;
        snprintf(name, sizeof name, "knn_pred_%d.i32", w);
        want = oracle_read(name, m * 5 * 4);
        snprintf(name, sizeof name, "knn_clear_%d.i32", w);
        ok = oracle_read(name, m * 4);
        assert_non_null(want);
        assert_non_null(ok);
        assert_int_equal(lwl_knn_predict(&c, mem, y, n, d, q, m, pred, &err), 0);
        /* Queries whose neighbours or scores are near a tie in float64 may differ in float32. */
        for (size_t i = 0; i < m; i++) {
            if (!ok[i]) {
                amb++;
                continue;
            }
            assert_memory_equal(pred + i * 5, want + i * 5, 5 * sizeof(int));
            hits[0] += pred[i * 5] == qy[i];
            for (int r = 0; r < 5; r++)
                hits[1] += pred[i * 5 + r] == qy[i];
        }
        assert_int_equal(lwl_knn_eval(&c, mem, y, n, d, q, qy, m, &h, &err), 0);
        print_message("# knn %s k %d: top1 %.2f%% top5 %.2f%% (%zu queries)\n",
                      w ? "weighted" : "majority", c.k, lwl_hits_pct(h.top1, h.n),
                      lwl_hits_pct(h.top5, h.n), m);
        free(want);
        free(ok);
    }
    print_message("# knn oracle: %zu of %zu query rankings near a float tie, not compared\n",
                  amb, 2 * m);
    assert_true(amb < m / 10);
    free(mem);
    free(q);
    free(y);
    free(qy);
    free(pred);
}

static void test_oracle_linear(void **state)
{
    char *txt = oracle_text("linear.txt");
    int d, nc, bs, steps;
    double lr[8], mom, wd, worst = 0;
    char *err = NULL;
    (void)state;

    assert_non_null(txt);
    assert_int_equal(sscanf(txt, "%d %d %d %d %lf %lf", &d, &nc, &bs, &steps, &mom, &wd), 6);
    assert_true(steps <= 8);
    const char *p = strchr(txt, '\n');
    for (int s = 0; s < steps; s++) {
        int used;
        assert_int_equal(sscanf(p, "%lf%n", &lr[s], &used), 1);
        p += used;
    }
    free(txt);
    float *x = oracle_read("lin_x.f32", (size_t)steps * bs * d * 4);
    int *y = oracle_read("lin_y.i32", (size_t)steps * bs * 4);
    float *w0 = oracle_read("lin_w0.f32", (size_t)nc * d * 4);
    float *w1 = oracle_read("lin_w.f32", (size_t)nc * d * 4);
    float *b1 = oracle_read("lin_b.f32", (size_t)nc * 4);
    double *loss = oracle_read("lin_loss.f64", (size_t)steps * 8);
    lwl_sgd_cfg cfg = { 0, mom, wd, NULL, 0 };
    lwl_linear *l = lwl_linear_new(d, nc, bs, &err);

    assert_non_null(l);
    memcpy(l->weight, w0, (size_t)nc * d * 4);
    for (int s = 0; s < steps; s++) {
        double ls;
        assert_int_equal(lwl_linear_step(l, &cfg, lr[s], x + (size_t)s * bs * d,
                                         y + (size_t)s * bs, bs, &ls, NULL, &err), 0);
        assert_float_equal(ls, loss[s], 1e-5);
    }
    for (int j = 0; j < nc * d; j++)
        worst = fmax(worst, fabs(l->weight[j] - w1[j]));
    for (int c = 0; c < nc; c++)
        worst = fmax(worst, fabs(l->bias[c] - b1[c]));
    print_message("# linear vs torch.optim.SGD: %d steps, max |diff| %.2e\n", steps, worst);
    assert_true(worst < 1e-6);
    lwl_linear_free(l);
    free(x);
    free(y);
    free(w0);
    free(w1);
    free(b1);
    free(loss);
}

static void test_oracle_t(void **state)
{
    char *txt = oracle_text("t.txt"), *line, *save = NULL;
    int count = 0;
    double worst = 0;
    char *err = NULL;
    (void)state;

    assert_non_null(txt);
    /* Lines: n conf low high v1 .. vn (scipy.stats.t.interval). */
    for (line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        double conf, low, high, v[16];
        int n, used;
        lwl_interval iv;
        char *p = line;

        assert_int_equal(sscanf(p, "%d %lf %lf %lf%n", &n, &conf, &low, &high, &used), 4);
        assert_true(n >= 2 && n <= 16);
        p += used;
        for (int i = 0; i < n; i++) {
            assert_int_equal(sscanf(p, "%lf%n", &v[i], &used), 1);
            p += used;
        }
        assert_int_equal(lwl_t_interval(v, n, conf, &iv, &err), 0);
        worst = fmax(worst, fmax(fabs(iv.low - low), fabs(iv.high - high)) /
                            fmax(1.0, fabs(high)));
        count++;
    }
    free(txt);
    print_message("# t interval vs scipy: %d cases, max rel diff %.2e\n", count, worst);
    assert_true(count > 0);
    assert_true(worst < 1e-9);
}

static void test_oracle_gradcam(void **state)
{
    char *txt = oracle_text("gradcam.txt");
    int c, h, w, oh, ow;
    double worst = 0;
    char *err = NULL;
    (void)state;

    assert_non_null(txt);
    assert_int_equal(sscanf(txt, "%d %d %d %d %d", &c, &h, &w, &oh, &ow), 5);
    free(txt);
    float *act = oracle_read("cam_act.f32", (size_t)c * h * w * 4);
    float *grad = oracle_read("cam_grad.f32", (size_t)c * h * w * 4);
    float *want = oracle_read("cam_heat.f32", (size_t)oh * ow * 4);
    float *heat = xmalloc((size_t)oh * ow * sizeof *heat);

    assert_int_equal(lwl_gradcam(act, grad, c, h, w, oh, ow, heat, NULL, &err), 0);
    for (int i = 0; i < oh * ow; i++)
        worst = fmax(worst, fabs(heat[i] - want[i]));
    print_message("# gradcam vs torch (autograd, interpolate): max |diff| %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(act);
    free(grad);
    free(want);
    free(heat);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lwl_test_eval.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The oracle tests run only when their case file is in $LWL_EVAL_ORACLE (cmocka's skip
 * reads as a failure under prove); tests/t/60-eval.t says which were left out. */
int main(void)
{
    const struct CMUnitTest base[] = {
        cmocka_unit_test(test_l2_normalize),      cmocka_unit_test(test_knn_majority_ties),
        cmocka_unit_test(test_knn_equal_similarity), cmocka_unit_test(test_knn_k1_and_no_vote),
        cmocka_unit_test(test_knn_weighted),      cmocka_unit_test(test_knn_weighted_double),
        cmocka_unit_test(test_knn_blocks_vs_brute), cmocka_unit_test(test_knn_errors),
        cmocka_unit_test(test_class_share),
        cmocka_unit_test(test_sgd_schedule),      cmocka_unit_test(test_linear_init),
        cmocka_unit_test(test_linear_step),       cmocka_unit_test(test_topk_hits),
        cmocka_unit_test(test_t_interval),        cmocka_unit_test(test_gradcam_hand),
        cmocka_unit_test(test_jet_and_png),       cmocka_unit_test(test_summary),
    };
    static const struct {
        const char *file;
        struct CMUnitTest test;
    } oracle[] = {
        { "knn.txt", cmocka_unit_test(test_oracle_knn) },
        { "linear.txt", cmocka_unit_test(test_oracle_linear) },
        { "t.txt", cmocka_unit_test(test_oracle_t) },
        { "gradcam.txt", cmocka_unit_test(test_oracle_gradcam) },
    };
    enum { NBASE = sizeof base / sizeof base[0], NORACLE = sizeof oracle / sizeof oracle[0] };
    struct CMUnitTest tests[NBASE + NORACLE];
    size_t n = NBASE;

    memcpy(tests, base, sizeof base);
    for (size_t i = 0; i < NORACLE; i++) {
        char *t = oracle_text(oracle[i].file);
        if (t)
            tests[n++] = oracle[i].test;
        free(t);
    }
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return _cmocka_run_group_tests("test_eval", tests, n, setup, teardown);
}
