/* Gradient checks of the CPU ops of the generated step (compiler/tmpl/cpu_ops.h): every
 * backward against central differences of its forward, computed in double from the float
 * forward, on small random inputs; then the whole LEWEL_B head end to end (rows, proj, maps,
 * alignment, proj_obj, both predictors, both pair losses). Each check reduces the op's output
 * to L = sum r y with a fixed random r, so dL/dy = r, and compares the analytic gradient with
 * (L(p + h) - L(p - h)) / 2h for every element p of every input and parameter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The template as the generated net.c includes it; a test uses only some of its functions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "cpu_ops.h"
#pragma GCC diagnostic pop

/* The step: a power of two, so x ± H is exact in float for |x| < 2^13. Float rounding of
 * the forward then adds about 1e-7 |L| / H to a difference, the O(H^2) term less. */
#define H (1.0 / 1024)
/* ||numeric - analytic|| <= TOL ||numeric||, per tensor. Measured errors are 1e-8 to 2e-3
 * (printed); a wrong formula (a term dropped, a sign, a factor) gives 1e-1 and more. */
#define TOL 1e-2
/* An element whose one-sided differences disagree by more than KINK times the gradient's rms
 * has a ReLU kink within ±H: its central difference means nothing and it is left out. At most
 * 1 + MAX_KINKS n of n elements may be (a smooth function's sides differ by about H f''). */
#define KINK 0.05
#define MAX_KINKS 0.1

static uint64_t rng_state = 0x5eed;

static float *rnd(size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
    }
    return p;
}

static float *zeros(size_t n)
{
    float *p = calloc(n, sizeof *p);
    assert_non_null(p);
    return p;
}

static double dot(const float *r, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * y[i];
    return s;
}

/* The objective of a check: runs the forward on the current inputs and returns L. */
typedef double (*objective)(void *ctx);

/* Compares the analytic gradient g of L with respect to p (n floats) with central
 * differences; prints the relative error and fails above TOL. */
static void check(const char *what, objective f, void *ctx, float *p, const float *g, size_t n)
{
    double dn = 0, nn = 0, rms = 0, f0 = f(ctx);
    size_t kinks = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)g[i] * g[i];
    rms = sqrt(rms / (double)n);
    for (size_t i = 0; i < n; i++) {
        float v = p[i];
        p[i] = (float)(v + H);
        double fp = f(ctx);
        p[i] = (float)(v - H);
        double fm = f(ctx);
        p[i] = v;
        if (fabs((fp - f0) - (f0 - fm)) / H > KINK * rms) {
            kinks++;
            continue;
        }
        double num = (fp - fm) / (2 * H);
        dn += (num - g[i]) * (num - g[i]);
        nn += num * num;
    }
    f(ctx);   /* leave what the forward keeps as it was at p */
    double rel = sqrt(dn) / (sqrt(nn) > 1e-30 ? sqrt(nn) : 1e-30);
    print_message("# %-44s %4zu elements (%zu at kinks), relative error %.2e\n", what, n, kinks,
                  rel);
    if (!(rel <= TOL))
        fail_msg("%s: gradient off by %.3e (relative, norm) > %.0e", what, rel, TOL);
    if ((double)kinks > 1 + MAX_KINKS * (double)n)
        fail_msg("%s: %zu of %zu elements at kinks: the sides of the difference disagree",
                 what, kinks, n);
}

/* ---- batch norm over (n, c, hw) activations, train mode */

typedef struct bn_case {
    int n, c, hw, groups, chunks, blk, relu, res;
    float *x, *gamma, *beta, *r, *resid, *y, *mean, *invstd, *rm, *rv;
} bn_case;

static double bn_obj(void *ctx)
{
    bn_case *b = ctx;
    bn_train(b->x, b->y, b->n, b->c, b->hw, b->groups, b->chunks, b->blk, b->gamma, b->beta,
             b->mean, b->invstd, b->rm, b->rv, b->relu, b->res ? b->resid : NULL);
    return dot(b->r, b->y, (size_t)b->n * b->c * b->hw);
}

/* bn_train + bn_train_bwd, as the schedule calls them: with a ReLU (relu_out = y), or as the
 * end of a residual block (relu(bn + res): relu_bwd_inplace first, then the BN without).
 * The chunks' parameter gradients all go to one place (stride 0): their sum. */
static void run_bn(int groups, int chunks, int blk, int relu, int res)
{
    bn_case b = { .n = 4, .c = 32, .hw = 6, .groups = groups, .chunks = chunks, .blk = blk,
                  .relu = relu, .res = res };
    size_t n = (size_t)b.n * b.c * b.hw;
    b.x = rnd(n, -2, 3);
    b.gamma = rnd((size_t)b.c, 0.5f, 1.5f);
    b.beta = rnd((size_t)b.c, -0.5f, 0.5f);
    b.r = rnd(n, -1, 1);
    b.resid = rnd(n, -1, 1);
    b.y = zeros(n);
    b.mean = zeros((size_t)groups * b.c);
    b.invstd = zeros((size_t)groups * b.c);
    b.rm = zeros((size_t)groups * b.c);
    b.rv = zeros((size_t)groups * b.c);
    float *dy = zeros(n), *dx = zeros(n), *dg = zeros((size_t)b.c), *db = zeros((size_t)b.c);

    bn_obj(&b);
    memcpy(dy, b.r, n * sizeof *dy);
    if (res)
        relu_bwd_inplace(dy, b.y, n);
    bn_train_bwd(b.x, dy, relu && !res ? b.y : NULL, dx, b.n, b.c, b.hw, groups, chunks, blk,
                 b.gamma, b.mean, b.invstd, dg, db, 0);
    char what[80];
    const char *kind = res ? "+ residual, ReLU" : relu ? "+ ReLU" : "";
    snprintf(what, sizeof what, "bn_train %s groups %d/%d blk %d: dx", kind, groups, chunks, blk);
    check(what, bn_obj, &b, b.x, dx, n);
    snprintf(what, sizeof what, "bn_train %s groups %d/%d blk %d: dgamma", kind, groups, chunks,
             blk);
    check(what, bn_obj, &b, b.gamma, dg, (size_t)b.c);
    snprintf(what, sizeof what, "bn_train %s groups %d/%d blk %d: dbeta", kind, groups, chunks,
             blk);
    check(what, bn_obj, &b, b.beta, db, (size_t)b.c);
    if (res) {   /* d(res) is dy through the ReLU */
        snprintf(what, sizeof what, "bn_train + residual groups %d blk %d: dres", groups, blk);
        check(what, bn_obj, &b, b.resid, dy, n);
    }
    float *all[] = { b.x, b.gamma, b.beta, b.r, b.resid, b.y, b.mean, b.invstd, b.rm, b.rv,
                     dy, dx, dg, db };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

static void test_bn_train(void **state)
{
    (void)state;
    for (int groups = 1; groups <= 2; groups++)
        for (int relu = 0; relu <= 1; relu++) {
            run_bn(groups, groups, 1, relu, 0);      /* plain NCHW */
            run_bn(groups, groups, 16, relu, 0);     /* blocked, as with AVX-512 */
        }
    run_bn(1, 1, 8, 1, 0);                           /* blocked, as with AVX2 */
    run_bn(2, 2, 16, 0, 1);
    run_bn(1, 1, 1, 0, 1);
    run_bn(1, 2, 16, 1, 0);                          /* two chunks sharing one group */
    run_bn(1, 4, 1, 0, 1);
}

/* ---- batch norm in eval mode: Grad-CAM's backward, input gradients only */

typedef struct bne_case {
    int n, c, hw, blk, relu;
    float *x, *gamma, *beta, *rm, *rv, *r, *y;
} bne_case;

static double bne_obj(void *ctx)
{
    bne_case *b = ctx;
    bn_eval(b->x, b->y, b->n, b->c, b->hw, 1, b->blk, b->gamma, b->beta, b->rm, b->rv, b->relu,
            NULL);
    return dot(b->r, b->y, (size_t)b->n * b->c * b->hw);
}

/* bn_eval + bn_eval_bwd with running variances far from 1, so a missing scale shows. */
static void run_bn_eval(int blk, int relu)
{
    bne_case b = { .n = 3, .c = 32, .hw = 5, .blk = blk, .relu = relu };
    size_t n = (size_t)b.n * b.c * b.hw;
    b.x = rnd(n, -2, 3);
    b.gamma = rnd((size_t)b.c, 0.5f, 1.5f);
    b.beta = rnd((size_t)b.c, -0.5f, 0.5f);
    b.rm = rnd((size_t)b.c, -1, 1);
    b.rv = rnd((size_t)b.c, 0.2f, 3);
    b.r = rnd(n, -1, 1);
    b.y = zeros(n);
    float *dx = zeros(n);

    bne_obj(&b);
    bn_eval_bwd(b.r, relu ? b.y : NULL, dx, b.n, b.c, b.hw, blk, b.gamma, b.rv);
    char what[80];
    snprintf(what, sizeof what, "bn_eval_bwd%s blk %d: dx", relu ? " + ReLU" : "", blk);
    check(what, bne_obj, &b, b.x, dx, n);
    float *all[] = { b.x, b.gamma, b.beta, b.rm, b.rv, b.r, b.y, dx };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

static void test_bn_eval(void **state)
{
    (void)state;
    for (int relu = 0; relu <= 1; relu++) {
        run_bn_eval(1, relu);
        run_bn_eval(8, relu);
        run_bn_eval(16, relu);
    }
}

/* ---- add_relu and its backward */

typedef struct ew_case {
    size_t n;
    float *a, *b, *y, *r;
} ew_case;

static double ew_obj(void *ctx)
{
    ew_case *e = ctx;
    add_relu(e->a, e->b, e->y, e->n);
    return dot(e->r, e->y, e->n);
}

static void test_add_relu(void **state)
{
    (void)state;
    ew_case e = { .n = 40000 };   /* more than one chunk of the threaded loop */
    e.a = rnd(e.n, -1, 1);
    e.b = rnd(e.n, -1, 1);
    e.r = rnd(e.n, -1, 1);
    e.y = zeros(e.n);
    float *d = zeros(e.n);
    ew_obj(&e);
    memcpy(d, e.r, e.n * sizeof *d);
    relu_bwd_inplace(d, e.y, e.n);
    check("add_relu: da", ew_obj, &e, e.a, d, 2000);     /* the first 2000: cheap enough */
    check("add_relu: db", ew_obj, &e, e.b + 38000, d + 38000, 2000);
    free(e.a);
    free(e.b);
    free(e.r);
    free(e.y);
    free(d);
}

/* ---- BN over rows (the head), with its ReLU */

typedef struct bn1_case {
    int rows, c, groups, chunks;
    float *x, *y, *gamma, *beta, *mean, *invstd, *rm, *rv, *r;
} bn1_case;

static double bn1_obj(void *ctx)
{
    bn1_case *b = ctx;
    bn1d_train(b->x, b->y, b->rows, b->c, b->groups, b->chunks, b->gamma, b->beta, b->mean,
               b->invstd, b->rm, b->rv, 1, 1);
    return dot(b->r, b->y, (size_t)b->rows * b->c);
}

static void test_bn1d_train(void **state)
{
    (void)state;
    static const int cases[][2] = { { 1, 1 }, { 2, 2 }, { 1, 3 }, { 2, 4 } };
    for (int k = 0; k < 4; k++) {
        int groups = cases[k][0], chunks = cases[k][1];
        bn1_case b = { .rows = 12, .c = 10, .groups = groups, .chunks = chunks };
        size_t n = (size_t)b.rows * b.c;
        b.x = rnd(n, -1, 2);
        b.y = zeros(n);
        b.gamma = rnd((size_t)b.c, 0.5f, 1.5f);
        b.beta = rnd((size_t)b.c, -0.5f, 0.5f);
        b.mean = zeros((size_t)groups * b.c);
        b.invstd = zeros((size_t)groups * b.c);
        b.rm = zeros((size_t)groups * b.c);
        b.rv = zeros((size_t)groups * b.c);
        b.r = rnd(n, -1, 1);
        float *dx = zeros(n), *dg = zeros((size_t)b.c), *db = zeros((size_t)b.c);
        bn1_obj(&b);
        bn1d_train_bwd(b.x, b.r, b.y, dx, b.rows, b.c, groups, chunks, b.gamma, b.mean,
                       b.invstd, dg, db, 0);
        char what[64];
        snprintf(what, sizeof what, "bn1d_train + ReLU groups %d/%d: dx", groups, chunks);
        check(what, bn1_obj, &b, b.x, dx, n);
        snprintf(what, sizeof what, "bn1d_train + ReLU groups %d/%d: dgamma", groups, chunks);
        check(what, bn1_obj, &b, b.gamma, dg, (size_t)b.c);
        snprintf(what, sizeof what, "bn1d_train + ReLU groups %d/%d: dbeta", groups, chunks);
        check(what, bn1_obj, &b, b.beta, db, (size_t)b.c);
        float *all[] = { b.x, b.y, b.gamma, b.beta, b.mean, b.invstd, b.rm, b.rv, b.r, dx, dg,
                         db };
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            free(all[i]);
    }
}

/* ---- the head's MLP: y = W3 relu(bn(W0 x)) */

typedef struct mlp_p {
    int in, hidden, out;
    float *w0, *gamma, *beta, *w3, *rm, *rv;        /* parameters, running statistics */
    float *dw0, *dgamma, *dbeta, *dw3;              /* their gradients */
} mlp_p;

static void mlp_make(mlp_p *m, int in, int hidden, int out)
{
    *m = (mlp_p){ .in = in, .hidden = hidden, .out = out };
    m->w0 = rnd((size_t)hidden * in, -0.7f, 0.7f);
    m->gamma = rnd((size_t)hidden, 0.5f, 1.5f);
    m->beta = rnd((size_t)hidden, -0.5f, 0.5f);
    m->w3 = rnd((size_t)out * hidden, -0.7f, 0.7f);
    m->rm = zeros((size_t)2 * hidden);
    m->rv = zeros((size_t)2 * hidden);
    m->dw0 = zeros((size_t)hidden * in);
    m->dgamma = zeros((size_t)hidden);
    m->dbeta = zeros((size_t)hidden);
    m->dw3 = zeros((size_t)out * hidden);
}

static void mlp_drop(mlp_p *m)
{
    float *all[] = { m->w0, m->gamma, m->beta, m->w3, m->rm, m->rv, m->dw0, m->dgamma,
                     m->dbeta, m->dw3 };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

/* Room for what one forward keeps for backward (rows of at most 64, hidden at most 16). */
typedef struct mlp_keep {
    float h1[64 * 16], h2[64 * 16], mean[2 * 16], invstd[2 * 16];
} mlp_keep;

static void mlp_f(const mlp_p *m, const float *x, float *y, int rows, int groups, mlp_keep *k)
{
    mlp_save sv = { k->h1, k->h2, k->mean, k->invstd };
    assert_int_equal(mlp_fwd(x, y, rows, m->in, m->hidden, m->out, groups, groups, m->w0,
                             m->gamma, m->beta, m->w3, m->rm, m->rv, &sv, 1, 1), 0);
}

static void mlp_b(const mlp_p *m, const float *x, const float *dy, float *dx, int rows,
                  int groups, mlp_keep *k)
{
    static float tmp[64 * 16];
    mlp_save sv = { k->h1, k->h2, k->mean, k->invstd };
    assert_int_equal(mlp_bwd(x, dy, dx, rows, m->in, m->hidden, m->out, groups, groups, m->w0,
                             m->gamma, m->w3, &sv, m->dw0, m->dgamma, m->dbeta, m->dw3, 0, tmp),
                     0);
}

/* Every parameter of m against its gradient. */
static void check_mlp(const char *name, objective f, void *ctx, mlp_p *m)
{
    char what[64];
    snprintf(what, sizeof what, "%s: dw0", name);
    check(what, f, ctx, m->w0, m->dw0, (size_t)m->hidden * m->in);
    snprintf(what, sizeof what, "%s: dgamma", name);
    check(what, f, ctx, m->gamma, m->dgamma, (size_t)m->hidden);
    snprintf(what, sizeof what, "%s: dbeta", name);
    check(what, f, ctx, m->beta, m->dbeta, (size_t)m->hidden);
    snprintf(what, sizeof what, "%s: dw3", name);
    check(what, f, ctx, m->w3, m->dw3, (size_t)m->out * m->hidden);
}

typedef struct mlp_case {
    mlp_p m;
    int rows, groups;
    float *x, *y, *r;
    mlp_keep k;
} mlp_case;

static double mlp_obj(void *ctx)
{
    mlp_case *c = ctx;
    mlp_f(&c->m, c->x, c->y, c->rows, c->groups, &c->k);
    return dot(c->r, c->y, (size_t)c->rows * c->m.out);
}

static void test_mlp(void **state)
{
    (void)state;
    for (int groups = 1; groups <= 2; groups++) {
        mlp_case c = { .rows = 16, .groups = groups };
        mlp_make(&c.m, 7, 12, 5);
        c.x = rnd((size_t)c.rows * 7, -1, 1);
        c.y = zeros((size_t)c.rows * 5);
        c.r = rnd((size_t)c.rows * 5, -1, 1);
        float *dx = zeros((size_t)c.rows * 7);
        mlp_obj(&c);
        mlp_b(&c.m, c.x, c.r, dx, c.rows, groups, &c.k);
        char name[32];
        snprintf(name, sizeof name, "mlp groups %d", groups);
        check_mlp(name, mlp_obj, &c, &c.m);
        snprintf(name, sizeof name, "mlp groups %d: dx", groups);
        check(name, mlp_obj, &c, c.x, dx, (size_t)c.rows * 7);
        mlp_drop(&c.m);
        free(c.x);
        free(c.y);
        free(c.r);
        free(dx);
    }
}

/* ---- the head's data movement: rows, maps, alignment */

enum { N = 8, C = 8, P = 4, D = 6, NH = 2, K = D / NH };   /* images, channels, positions */

typedef struct head_case {
    int lewel;
    float *x, *u, *z, *a, *o, *r;
} head_case;

static double rows_obj(void *ctx)
{
    head_case *h = ctx;
    head_rows(h->x, h->u, N, C, P, h->lewel);
    return dot(h->r, h->u, (size_t)N * (h->lewel ? 1 + P : 1) * C);
}

static void test_head_rows(void **state)
{
    (void)state;
    for (int lewel = 0; lewel <= 1; lewel++) {
        head_case h = { .lewel = lewel };
        h.x = rnd((size_t)N * C * P, -1, 1);
        h.u = zeros((size_t)N * (1 + P) * C);
        h.r = rnd((size_t)N * (1 + P) * C, -1, 1);
        float *dx = zeros((size_t)N * C * P);
        head_rows_bwd(h.r, dx, N, C, P, lewel);
        check(lewel ? "head_rows (pooled + positions): dx" : "head_rows (pooled): dx",
              rows_obj, &h, h.x, dx, (size_t)N * C * P);
        free(h.x);
        free(h.u);
        free(h.r);
        free(dx);
    }
}

static double maps_obj(void *ctx)
{
    head_case *h = ctx;
    head_maps(h->z, h->a, N, D, P);
    return dot(h->r, h->a, (size_t)N * D * P);
}

static void test_head_maps(void **state)
{
    (void)state;
    head_case h = { .lewel = 1 };
    size_t nz = (size_t)N * (1 + P) * D;
    h.z = rnd(nz, -1, 1);
    h.a = zeros((size_t)N * D * P);
    h.r = rnd((size_t)N * D * P, -1, 1);
    float *dz = zeros(nz);
    maps_obj(&h);
    head_maps_bwd(h.z, h.a, h.r, dz, N, D, P);
    /* the position rows; the global rows do not enter the maps (their gradient is 0) */
    check("head_maps: dz", maps_obj, &h, h.z, dz, nz);
    free(h.z);
    free(h.a);
    free(h.r);
    free(dz);
}

static double align_obj(void *ctx)
{
    head_case *h = ctx;
    assert_int_equal(head_align(h->x, h->a, h->o, N, C, P, D, NH), 0);
    return dot(h->r, h->o, (size_t)N * K * C);
}

static void test_head_align(void **state)
{
    (void)state;
    head_case h = { .lewel = 1 };
    h.x = rnd((size_t)N * C * P, -1, 1);
    h.a = rnd((size_t)N * D * P, 0, 1);
    h.o = zeros((size_t)N * K * C);
    h.r = rnd((size_t)N * K * C, -1, 1);
    float *da = zeros((size_t)N * D * P), *dx = zeros((size_t)N * C * P);
    assert_int_equal(head_align_bwd(h.x, h.a, h.r, da, dx, N, C, P, D, NH), 0);
    check("head_align: dx", align_obj, &h, h.x, dx, (size_t)N * C * P);
    check("head_align: dmaps", align_obj, &h, h.a, da, (size_t)N * D * P);
    free(h.x);
    free(h.a);
    free(h.o);
    free(h.r);
    free(da);
    free(dx);
}

/* ---- the loss */

typedef struct loss_case {
    int rows;
    float *q, *t, *dq;
} loss_case;

static double loss_obj(void *ctx)
{
    loss_case *l = ctx;
    memset(l->dq, 0, (size_t)l->rows * D * sizeof *l->dq);
    return cos_loss(l->q, l->t, l->dq, l->rows, D, 0.7f);
}

static void test_cos_loss(void **state)
{
    (void)state;
    loss_case l = { .rows = 5 };
    l.q = rnd((size_t)l.rows * D, -1, 1);
    l.t = rnd((size_t)l.rows * D, -1, 1);
    l.dq = zeros((size_t)l.rows * D);
    float *g = zeros((size_t)l.rows * D);
    loss_obj(&l);
    memcpy(g, l.dq, (size_t)l.rows * D * sizeof *g);
    check("cos_loss (scale 0.7): dq", loss_obj, &l, l.q, g, (size_t)l.rows * D);
    free(l.q);
    free(l.t);
    free(l.dq);
    free(g);
}

/* ---- the whole online head of both views against fixed targets, as net.c schedules it */

enum { RU = N * (1 + P), RO = N * K, HID = 10 };
#define LOCAL_W 0.4f

typedef struct view_keep {
    float u[RU * C], z[RU * D], zg[N * D], am[N * D * P], o[RO * C], zo[RO * D];
    float qg[N * D], qo[RO * D], dqg[N * D], dqo[RO * D];
    mlp_keep proj, proj_obj, pred, pred_obj;
} view_keep;

typedef struct whole_case {
    int groups;
    float *x[2];                        /* layer4 maps (N, C, P) of views 1 and 2 */
    float *tg[2], *to[2];               /* the target's embeddings: constants here */
    mlp_p proj, proj_obj, pred, pred_obj;
    view_keep v[2];
} whole_case;

static void head_fwd(whole_case *w, int v)
{
    view_keep *k = &w->v[v];
    head_rows(w->x[v], k->u, N, C, P, 1);
    mlp_f(&w->proj, k->u, k->z, RU, w->groups, &k->proj);
    for (int b = 0; b < N; b++)
        memcpy(k->zg + b * D, k->z + b * (1 + P) * D, sizeof(float) * D);
    head_maps(k->z, k->am, N, D, P);
    assert_int_equal(head_align(w->x[v], k->am, k->o, N, C, P, D, NH), 0);
    mlp_f(&w->proj_obj, k->o, k->zo, RO, w->groups, &k->proj_obj);
    mlp_f(&w->pred, k->zg, k->qg, N, w->groups, &k->pred);
    mlp_f(&w->pred_obj, k->zo, k->qo, RO, w->groups, &k->pred_obj);
}

/* Loss of both view orders; the d(predictions) accumulate into the keeps. */
static double whole_obj(void *ctx)
{
    whole_case *w = ctx;
    double loss = 0;
    for (int v = 0; v < 2; v++) {
        head_fwd(w, v);
        memset(w->v[v].dqg, 0, sizeof w->v[v].dqg);
        memset(w->v[v].dqo, 0, sizeof w->v[v].dqo);
    }
    for (int i = 0; i < 2; i++) {
        view_keep *k = &w->v[i];
        loss += cos_loss(k->qg, w->tg[1 - i], k->dqg, N, D, 1 - LOCAL_W);
        loss += cos_loss(k->qo, w->to[1 - i], k->dqo, RO, D, LOCAL_W);
    }
    return loss;
}

/* Backward of view v's head into dx (N, C, P), as head_bwd in net.c. */
static void head_bwd_view(whole_case *w, int v, float *dx)
{
    view_keep *k = &w->v[v];
    float d_zg[N * D], d_zo[RO * D], d_o[RO * C], d_am[N * D * P], d_z[RU * D], d_u[RU * C];
    mlp_b(&w->pred, k->zg, k->dqg, d_zg, N, w->groups, &k->pred);
    mlp_b(&w->pred_obj, k->zo, k->dqo, d_zo, RO, w->groups, &k->pred_obj);
    mlp_b(&w->proj_obj, k->o, d_zo, d_o, RO, w->groups, &k->proj_obj);
    assert_int_equal(head_align_bwd(w->x[v], k->am, d_o, d_am, dx, N, C, P, D, NH), 0);
    for (int b = 0; b < N; b++)
        memcpy(d_z + b * (1 + P) * D, d_zg + b * D, sizeof(float) * D);
    head_maps_bwd(k->z, k->am, d_am, d_z, N, D, P);
    mlp_b(&w->proj, k->u, d_z, d_u, RU, w->groups, &k->proj);
    head_rows_bwd(d_u, dx, N, C, P, 1);
}

static void test_whole_head(void **state)
{
    (void)state;
    for (int groups = 1; groups <= 2; groups++) {
        whole_case *w = calloc(1, sizeof *w);
        assert_non_null(w);
        w->groups = groups;
        float *dx[2];
        for (int v = 0; v < 2; v++) {
            w->x[v] = rnd((size_t)N * C * P, -1, 2);
            w->tg[v] = rnd((size_t)N * D, -1, 1);
            w->to[v] = rnd((size_t)RO * D, -1, 1);
            dx[v] = zeros((size_t)N * C * P);
        }
        mlp_make(&w->proj, C, HID, D);
        mlp_make(&w->proj_obj, C, HID, D);
        mlp_make(&w->pred, D, HID, D);
        mlp_make(&w->pred_obj, D, HID, D);

        whole_obj(w);
        for (int v = 0; v < 2; v++)
            head_bwd_view(w, v, dx[v]);
        char what[64];
        snprintf(what, sizeof what, "head groups %d: d(view 1 map)", groups);
        check(what, whole_obj, w, w->x[0], dx[0], (size_t)N * C * P);
        snprintf(what, sizeof what, "head groups %d: d(view 2 map)", groups);
        check(what, whole_obj, w, w->x[1], dx[1], (size_t)N * C * P);
        const char *names[4] = { "proj", "proj_obj", "predictor", "predictor_obj" };
        mlp_p *m[4] = { &w->proj, &w->proj_obj, &w->pred, &w->pred_obj };
        for (int i = 0; i < 4; i++) {
            snprintf(what, sizeof what, "head groups %d: %s", groups, names[i]);
            check_mlp(what, whole_obj, w, m[i]);
        }
        for (int i = 0; i < 4; i++)
            mlp_drop(m[i]);
        for (int v = 0; v < 2; v++) {
            free(w->x[v]);
            free(w->tg[v]);
            free(w->to[v]);
            free(dx[v]);
        }
        free(w);
    }
}

static int setup(void **state)
{
    (void)state;
    /* every BN here: at most 64 rows of 32 channels, 2 groups */
    return lwl_nn_threads(2) || cpu_ops_init(64, 2, 32) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    cpu_ops_free();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_train),   cmocka_unit_test(test_add_relu),
        cmocka_unit_test(test_bn1d_train), cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_head_rows),  cmocka_unit_test(test_head_maps),
        cmocka_unit_test(test_head_align), cmocka_unit_test(test_cos_loss),
        cmocka_unit_test(test_whole_head), cmocka_unit_test(test_bn_eval),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}
