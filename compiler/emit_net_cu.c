/* Emits net.cu: the same network, step and schedules as net.c on the GPU. Activations are
 * NHWC in the spec's precision (bf16, fp16 or fp32) through cuDNN; the head, BN statistics,
 * master weights, optimiser and target stay fp32; every kernel is gpu_kernels.h's, launched
 * by gpu_ops.cuh. The memory plan is its own (three device arenas) with the host copies of
 * the state laid out exactly as net.c's, so checkpoints move between CPU and GPU. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"

#define L(...) emit_line(e, __VA_ARGS__)

/* ---- the device memory plan: fp32 arena gf, activation arena ga, byte arena gu */

typedef struct gpu_plan {
    arena_plan f, a, u;
    size_t *wa;             /* each conv's weights (KRSC, activation type) in WA */
    size_t wa_total, ws_max;
    size_t bn_part, bn_img, bn_tot, rows_max, inv_max;   /* gpu_ops_init's scratch */
} gpu_plan;

static size_t pool_elems(const lwl_plan *p)
{
    const lwl_pact *a = &p->acts[p->pool_out];
    return (size_t)p->batch * a->c * a->h * a->w;
}

static void place_save(arena_plan *a, const lwl_plan *p, const char *pre, int i)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    char name[64];
    size_t rh = (size_t)m->rows * m->hidden, gh = (size_t)p->groups * m->hidden;
    snprintf(name, sizeof name, "%s%s_H1", pre, emit_mlp_slot[i]);
    emit_place(a, name, rh, "(rows, hidden) before BN");
    snprintf(name, sizeof name, "%s%s_H2", pre, emit_mlp_slot[i]);
    emit_place(a, name, rh, "(rows, hidden) after BN + ReLU");
    snprintf(name, sizeof name, "%s%s_MEAN", pre, emit_mlp_slot[i]);
    emit_place(a, name, gh, "(groups, hidden)");
    snprintf(name, sizeof name, "%s%s_INVSTD", pre, emit_mlp_slot[i]);
    emit_place(a, name, gh, "(groups, hidden)");
}

/* The largest BN reduction of the backbone and the head: (image, segment, channel)
 * sums, (image, channel) and (group, channel) ones; BN_SEG (gpu_ops.cuh) is 64. */
static void bn_scratch(const lwl_plan *p, gpu_plan *g)
{
    size_t B = (size_t)p->batch, G = (size_t)p->groups;
    for (int i = 0; i < p->nconvs; i++) {
        const lwl_pconv *c = &p->convs[i];
        size_t hw = (size_t)c->hout * c->wout, nseg = (hw + 63) / 64;
        size_t part = B * nseg * c->cout, img = B * c->cout, tot = G * c->cout;
        g->bn_part = part > g->bn_part ? part : g->bn_part;
        g->bn_img = img > g->bn_img ? img : g->bn_img;
        g->bn_tot = tot > g->bn_tot ? tot : g->bn_tot;
    }
    for (int i = 0; i < 4; i++) {
        const lwl_pmlp *m = emit_mlp(p, i);
        if (!m->rows)
            continue;
        size_t per = (size_t)m->rows / G, nseg = (per + 63) / 64;
        size_t part = G * nseg * m->hidden, img = G * m->hidden;
        g->bn_part = part > g->bn_part ? part : g->bn_part;
        g->bn_img = img > g->bn_img ? img : g->bn_img;
        g->bn_tot = img > g->bn_tot ? img : g->bn_tot;
    }
    g->rows_max = B * (size_t)(p->lewel ? p->maps : 1);
    g->inv_max = B * (size_t)p->fh * p->fw;
}

static void make_plan(const lwl_plan *p, gpu_plan *g)
{
    size_t B = (size_t)p->batch, C = (size_t)p->channels, P = (size_t)p->fh * p->fw;
    size_t D = (size_t)p->dim, K = (size_t)p->maps, G = (size_t)p->groups;
    size_t RU = (size_t)emit_rows_u(p), RO = B * K;
    arena_plan *f = &g->f, *a = &g->a;

    emit_place(f, "PARAMS", p->param_floats, "online parameters, as net.c's");
    emit_place(f, "GRADS", p->param_floats, "their gradients");
    emit_place(f, "MOMENTUM", p->param_floats, "optimiser buffers (lr folded in)");
    emit_place(f, "TARGET", p->target_param_floats, "target parameters");
    emit_place(f, "BUFS", G * p->buf_floats, "online BN running statistics, (groups, c) each");
    emit_place(f, "TBUFS", G * p->target_buf_floats, "target BN running statistics");
    emit_place(f, "STATS1", emit_stats_floats(p), "BN (mean, invstd) per conv and group, view 1");
    emit_place(f, "STATS2", emit_stats_floats(p), "the same, view 2");
    emit_place(f, "TSTATS", emit_stats_floats(p), "target BN statistics (train mode)");
    emit_place(f, "VIN", B * 3 * (size_t)p->size * p->size, "a view as uploaded: (B, 3, S, S)");
    for (int v = 0; v < 2; v++) {
        char pre[8], n[64];
        snprintf(pre, sizeof pre, "H%d_", v + 1);
#define SLOT(suffix, count, what)                                                         \
    (snprintf(n, sizeof n, "%s" suffix, pre), emit_place(f, n, count, what))
        SLOT("U", RU * C, "(rows_u, C) pooled vector and positions");
        SLOT("Z", RU * D, "(rows_u, D) proj output");
        SLOT("ZG", B * D, "(B, D) global embedding");
        SLOT("QG", B * D, "(B, D) predictor output");
        SLOT("DQG", B * D, "(B, D) its gradient");
        place_save(f, p, pre, 0);
        place_save(f, p, pre, 2);
        if (p->lewel) {
            SLOT("AM", B * D * P, "(B, D, P) alignment maps");
            SLOT("O", RO * C, "(B K, C) aligned features");
            SLOT("ZO", RO * D, "(B K, D) proj_obj output");
            SLOT("QO", RO * D, "(B K, D) predictor_obj output");
            SLOT("DQO", RO * D, "(B K, D) its gradient");
            place_save(f, p, pre, 1);
            place_save(f, p, pre, 3);
        }
        snprintf(pre, sizeof pre, "T%d_", v + 1);
        SLOT("ZG", B * D, "(B, D) target global embedding");
        if (p->lewel)
            SLOT("ZO", RO * D, "(B K, D) target aligned embedding");
#undef SLOT
    }
    emit_place(f, "TH_U", RU * C, "target head scratch: (rows_u, C)");
    emit_place(f, "TH_Z", RU * D, "(rows_u, D)");
    place_save(f, p, "TH_", 0);
    if (p->lewel) {
        emit_place(f, "TH_AM", B * D * P, "(B, D, P)");
        emit_place(f, "TH_O", RO * C, "(B K, C)");
        place_save(f, p, "TH_", 1);
    }
    emit_place(f, "D_X", B * P * C, "backward: (B, P, C) d(layer4 output) of the aligned path");
    emit_place(f, "D_ZG", B * D, "(B, D)");
    emit_place(f, "D_Z", RU * D, "(rows_u, D)");
    emit_place(f, "D_U", RU * C, "(rows_u, C)");
    size_t rmax = RU > RO ? RU : RO;
    emit_place(f, "D_TMP", rmax * (size_t)p->hidden, "(rows, hidden) inside an MLP backward");
    if (p->lewel) {
        emit_place(f, "D_ZO", RO * D, "(B K, D)");
        emit_place(f, "D_O", RO * C, "(B K, C)");
        emit_place(f, "D_AM", B * D * P, "(B, D, P)");
    }
    emit_place(f, "OUT_MAPS", B * C * P, "net_maps' answer: (B, C, P)");
    emit_place(f, "OUT_FEAT", B * C, "net_features' answer: (B, C)");

    emit_place(a, "ACT1", p->act_floats, "online activations of view 1 (NHWC), kept for backward");
    emit_place(a, "ACT2", p->act_floats, "the same, view 2");
    emit_place(a, "TACT", p->act_floats, "target activations");
    for (int i = 0; i < 4; i++)
        emit_place(a, (const char *[]){ "S0", "S1", "S2", "S3" }[i], p->max_act,
                   "backward scratch, the largest activation");
    g->wa = xcalloc((size_t)p->nconvs, sizeof *g->wa);
    for (int i = 0; i < p->nconvs; i++) {
        size_t n = p->params[p->convs[i].weight].numel;
        g->wa[i] = g->wa_total;
        g->wa_total += (n + 15) / 16 * 16;
        g->ws_max = n > g->ws_max ? n : g->ws_max;
    }
    emit_place(a, "WA", g->wa_total, "online conv weights as cuDNN reads them (KRSC)");
    emit_place(a, "TWA", g->wa_total, "target conv weights (KRSC)");
    emit_place(a, "WS", g->ws_max, "a conv weight gradient (KRSC) before it is added");
    if (p->stem_pool)
        for (int i = 0; i < 3; i++)
            emit_place(&g->u, (const char *[]){ "ARG1", "ARG2", "ARGT" }[i], pool_elems(p),
                       "max-pool: the window index of each output's maximum");
    bn_scratch(p, g);
}

static void free_plan(gpu_plan *g)
{
    emit_arena_free(&g->f);
    emit_arena_free(&g->a);
    emit_arena_free(&g->u);
    free(g->wa);
}

/* ---- the schedules */

static const char *act(const lwl_plan *p, const char *base, int id)
{
    static char buf[4][64];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s + %zuu", base, p->acts[id].off);
    return buf[k];
}

/* "(size_t)nb * 1234u": the elements of activation id for this rank's images. */
static const char *act_nb(const lwl_plan *p, int id)
{
    static char buf[2][48];
    static int k;
    const lwl_pact *a = &p->acts[id];
    k = (k + 1) % 2;
    snprintf(buf[k], sizeof buf[k], "(size_t)nb * %zuu", (size_t)a->c * a->h * a->w);
    return buf[k];
}

static void conv_comment(emitter *e, const lwl_pconv *c)
{
    L("    /* %s: %dx%dx%d -> %dx%dx%d, %dx%d stride %d; %s%s */", c->conv, c->cin, c->hin,
      c->win, c->cout, c->hout, c->wout, c->k, c->k, c->stride, c->bn,
      c->relu ? " + ReLU" : "");
}

/* One conv + BN of the forward pass (see net.c's): wa is the conv weights' arena (WA or
 * TWA), w the fp32 parameters (gamma, beta), run the running statistics. */
static void fwd_conv(emitter *e, const lwl_plan *p, const gpu_plan *g, int i, int train,
                     const lwl_pblock *bl, int shortcut)
{
    const lwl_pconv *c = &p->convs[i];
    conv_comment(e, c);
    L("    CK(lwl_gconv_fwd(gconv[%d], %s, wa + %zuu, %s));", i, act(p, "a", c->in), g->wa[i],
      act(p, "a", c->pre));
    char res[64] = "(const act_t *)NULL";
    if (bl) {
        L("    /* %s: out = relu(bn + shortcut), in the BN's pass */", bl->name);
        snprintf(res, sizeof res, "%s", act(p, "a", shortcut));
    }
    const char *out = act(p, "a", bl ? bl->out : c->out);
    size_t G = (size_t)p->groups, hw = (size_t)c->hout * c->wout;
    if (train) {
        size_t so = emit_stats_off(p, i);
        L("    CK(bn_train<act_t>(%s, %s, nb, %d, %zu, ng, w + %zuu, w + %zuu,",
          act(p, "a", c->pre), out, c->cout, hw, p->params[c->gamma].off,
          p->params[c->beta].off);
        L("                       st + %zuu, st + %zuu, run + %zuu + g0 * %d, "
          "run + %zuu + g0 * %d, %d, %s));", so, so + G * c->cout, p->bufs[c->mean].off * G,
          c->cout,
          p->bufs[c->var].off * G, c->cout, c->relu, res);
    } else {
        L("    CK(bn_eval<act_t>(%s, %s, nb, %d, %zu, groups, w + %zuu, w + %zuu,",
          act(p, "a", c->pre), out, c->cout, hw, p->params[c->gamma].off,
          p->params[c->beta].off);
        L("                      run + %zuu + g0 * %d, run + %zuu + g0 * %d, %d, %s));",
          p->bufs[c->mean].off * G, c->cout, p->bufs[c->var].off * G, c->cout, c->relu, res);
    }
}

static void emit_backbone_fwd(emitter *e, const lwl_plan *p, const gpu_plan *g, int train)
{
    if (train) {
        L("/* The backbone in train mode: a holds the images at its start (NHWC); every conv");
        L(" * output, BN output and BN statistics (st) stay for backward; running statistics");
        L(" * (run) are updated per group. wa: conv weights (KRSC), w: fp32 parameters. */");
        L("static int backbone_train(const act_t *wa, const float *w, float *run, act_t *a, "
          "float *st,");
        L("                          uint8_t *arg)");
    } else {
        L("/* The backbone in eval mode with the running statistics of each group (groups 1:");
        L(" * group g0's for every image). */");
        L("static int backbone_eval(const act_t *wa, const float *w, const float *run, act_t *a,");
        L("                         int groups, uint8_t *arg)");
    }
    L("{");
    fwd_conv(e, p, g, 0, train, NULL, 0);
    if (p->stem_pool) {
        const lwl_pact *in = &p->acts[p->pool_in], *o = &p->acts[p->pool_out];
        L("    /* maxpool: 3x3 stride 2 pad 1 */");
        L("    GK_RUN(pool_fwd, (size_t)nb * %zuu, %s, %s, arg, %d, %d, %d, %d, %d);",
          (size_t)o->c * o->h * o->w, act(p, "a", p->pool_in), act(p, "a", p->pool_out), in->h,
          in->w, o->h, o->w, o->c);
    } else {
        L("    (void)arg;");
    }
    for (int b = 0; b < p->nblocks; b++) {
        const lwl_pblock *bl = &p->blocks[b];
        L("%s", "");
        L("    /* %s */", bl->name);
        int last = bl->conv[bl->nconv - 1];
        for (int j = 0; j + 1 < bl->nconv; j++)
            fwd_conv(e, p, g, bl->conv[j], train, NULL, 0);
        if (bl->down >= 0) {
            fwd_conv(e, p, g, last, train, NULL, 0);
            fwd_conv(e, p, g, bl->down, train, bl, p->convs[last].out);
        } else {
            fwd_conv(e, p, g, last, train, bl, bl->in);
        }
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* Backward of one conv + BN (net.c's bwd_conv): dy → d of its input into dx. */
static void bwd_conv(emitter *e, const lwl_plan *p, const gpu_plan *g, int i, const char *dy,
                     const char *tmp, const char *dx)
{
    const lwl_pconv *c = &p->convs[i];
    size_t so = emit_stats_off(p, i), G = (size_t)p->groups;
    const lwl_ptensor *w = &p->params[c->weight];
    conv_comment(e, c);
    L("    CK(bn_train_bwd<act_t>(%s, %s, %s, %s, nb, %d, %zu, ng,", act(p, "a", c->pre), dy,
      c->relu ? act(p, "a", c->out) : "(const act_t *)NULL", tmp, c->cout,
      (size_t)c->hout * c->wout);
    L("                           PARAMS + %zuu, st + %zuu, st + %zuu, GRADS + %zuu, "
      "GRADS + %zuu));", p->params[c->gamma].off, so, so + G * c->cout,
      p->params[c->gamma].off, p->params[c->beta].off);
    L("    CK(lwl_gconv_bwd_filter(gconv[%d], %s, %s, WS));", i, act(p, "a", c->in), tmp);
    L("    GK_RUN(dw_add, %zuu, WS, GRADS + %zuu, %d, %d);", w->numel, w->off, c->cin,
      c->k * c->k);
    emit_bucket_start(e, e->bk->after_conv[i], "last", 1);
    if (dx)
        L("    CK(lwl_gconv_bwd_data(gconv[%d], %s, WA + %zuu, %s));", i, tmp, g->wa[i], dx);
}

static void emit_backbone_bwd(emitter *e, const lwl_plan *p, const gpu_plan *g)
{
    static const char *const S[4] = { "S0", "S1", "S2", "S3" };
    L("/* The backbone's backward for one view: S0 holds d(layer4 output); weight and BN");
    L(" * gradients accumulate into GRADS. Buffers rotate over S0..S3.%s",
      e->bk->n ? "" : " */");
    if (e->bk->n) {
        L(" * last: the step's last view, whose backward makes the gradients final: each");
        L(" * bucket's sum over the ranks starts as soon as the bucket is complete. */");
    }
    L("static int backbone_bwd(const act_t *a, const float *st, const uint8_t *arg%s)",
      e->bk->n ? ", int last" : "");
    L("{");
    int x = 0;
    for (int b = p->nblocks - 1; b >= 0; b--) {
        const lwl_pblock *bl = &p->blocks[b];
        const char *X = S[x], *Y = S[(x + 1) % 4], *Z = S[(x + 2) % 4], *W = S[(x + 3) % 4];
        L("%s", "");
        L("    /* %s: d through relu(main + shortcut) */", bl->name);
        L("    CK(relu_bwd_inplace(%s, %s, %s));", X, act(p, "a", bl->out), act_nb(p, bl->out));
        const char *dy = X;
        for (int j = bl->nconv - 1; j >= 0; j--) {
            bwd_conv(e, p, g, bl->conv[j], dy, Y, Z);
            const char *t = Y;
            Y = Z;
            Z = t;
            dy = Y;
        }
        if (bl->down >= 0) {
            bwd_conv(e, p, g, bl->down, X, Z, W);
            L("    CK(add_into(%s, %s, %s));", Y, W, act_nb(p, bl->in));
        } else {
            L("    CK(add_into(%s, %s, %s));", Y, X, act_nb(p, bl->in));
        }
        x = (int)(strchr("0123", Y[1]) - "0123");
    }
    const char *X = S[x], *Y = S[(x + 1) % 4];
    L("%s", "");
    L("    /* stem */");
    if (p->stem_pool) {
        const lwl_pact *in = &p->acts[p->pool_in], *o = &p->acts[p->pool_out];
        L("    GK_RUN(pool_bwd, (size_t)nb * %zuu, %s, arg, %s, %d, %d, %d, %d, %d);",
          (size_t)in->c * in->h * in->w, X, Y, in->h, in->w, o->h, o->w, o->c);
        bwd_conv(e, p, g, 0, Y, S[(x + 2) % 4], NULL);
    } else {
        L("    (void)arg;");
        bwd_conv(e, p, g, 0, X, Y, NULL);
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* ---- the head */

static void mlp_call(emitter *e, const lwl_plan *p, int i, const char *x, const char *y,
                     const char *w, const char *run, const char *pre, const char *train,
                     const char *update)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    size_t G = (size_t)p->groups;
    L("    CK(mlp_fwd(%s, %s, nb * %d, %d, %d, %d, ng, %s + %zuu, %s + %zuu, %s + %zuu, "
      "%s + %zuu,", x, y, m->rows / p->batch, m->in, m->hidden, m->out, w,
      p->params[m->w0].off, w, p->params[m->gamma].off, w, p->params[m->beta].off, w,
      p->params[m->w3].off);
    L("               %s + %zuu + g0 * %d, %s + %zuu + g0 * %d,", run, p->bufs[m->mean].off * G,
      m->hidden, run, p->bufs[m->var].off * G, m->hidden);
    L("               &sv, %s, %s));", train, update);
    (void)pre;
}

static void save_decl(emitter *e, const char *pre, int i)
{
    L("    sv = (mlp_save){ %s%s_H1, %s%s_H2, %s%s_MEAN, %s%s_INVSTD };", pre, emit_mlp_slot[i],
      pre, emit_mlp_slot[i], pre, emit_mlp_slot[i], pre, emit_mlp_slot[i]);
}

static void mlp_bwd_call(emitter *e, const lwl_plan *p, int i, const char *x, const char *dy,
                         const char *dx, const char *pre)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    save_decl(e, pre, i);
    L("    CK(mlp_bwd(%s, %s, %s, nb * %d, %d, %d, %d, ng, PARAMS + %zuu, PARAMS + %zuu, "
      "PARAMS + %zuu,", x, dy, dx, m->rows / p->batch, m->in, m->hidden, m->out,
      p->params[m->w0].off, p->params[m->gamma].off, p->params[m->w3].off);
    L("               &sv, GRADS + %zuu, GRADS + %zuu, GRADS + %zuu, GRADS + %zuu, D_TMP));",
      p->params[m->w0].off, p->params[m->gamma].off, p->params[m->beta].off,
      p->params[m->w3].off);
    /* the second view's backward makes the MLP's gradients final */
    emit_bucket_start(e, !strcmp(pre, "H2_") ? e->bk->after_mlp[i] : -1, NULL, 1);
}

/* The head of view v (online) or of the target: proj over [pooled, positions], the maps,
 * the aligned features, proj_obj, and for the online side the predictors. */
static void emit_head_side(emitter *e, const lwl_plan *p, int online)
{
    const lwl_spec *s = p->spec;
    int l = p->lewel ? 1 + p->fh * p->fw : 1;
    int target_train = s->model.target == TARGET_EMA;
    const char *tr = online || target_train ? "1" : "0";
    for (int v = 0; v < 2; v++) {
        char pre[8], U[16], Z[16], ZG[16], AM[16], O[16], ZO[16];
        snprintf(pre, sizeof pre, online ? "H%d_" : "TH_", v + 1);
        snprintf(U, sizeof U, "%sU", pre);
        snprintf(Z, sizeof Z, "%sZ", pre);
        if (online)
            snprintf(ZG, sizeof ZG, "%sZG", pre);
        else
            snprintf(ZG, sizeof ZG, "T%d_ZG", v + 1);
        snprintf(AM, sizeof AM, "%sAM", pre);
        snprintf(O, sizeof O, "%sO", pre);
        if (online)
            snprintf(ZO, sizeof ZO, "%sZO", pre);
        else
            snprintf(ZO, sizeof ZO, "T%d_ZO", v + 1);
        const char *w = online ? "PARAMS" : "TARGET", *run = online ? "BUFS" : "TBUFS";
        L("    %s {", v ? "} else" : "if (v == 0)");
        L("    CK(head_rows(a + %zuu, %s, nb, CHANNELS, POSITIONS, %d));", p->acts[p->feat].off, U,
          p->lewel);
        save_decl(e, pre, 0);
        mlp_call(e, p, 0, U, Z, w, run, pre, tr, tr);
        L("    CK(rows_gather(%s, %s, nb, DIM, %d));", Z, ZG, l);
        if (p->lewel) {
            L("    CK(head_maps(%s, %s, nb, DIM, POSITIONS));", Z, AM);
            L("    CK(head_align(%s, %s, %s, nb, CHANNELS, POSITIONS, DIM, HEADS));", U, AM, O);
            save_decl(e, pre, 1);
            mlp_call(e, p, 1, O, ZO, w, run, pre, tr, tr);
        }
        if (online) {
            char QG[16], QO[16];
            snprintf(QG, sizeof QG, "%sQG", pre);
            snprintf(QO, sizeof QO, "%sQO", pre);
            save_decl(e, pre, 2);
            mlp_call(e, p, 2, ZG, QG, w, run, pre, "1", "1");
            if (p->lewel) {
                save_decl(e, pre, 3);
                mlp_call(e, p, 3, ZO, QO, w, run, pre, "1", "1");
            }
        }
    }
    L("    }");
}

static void emit_head(emitter *e, const lwl_plan *p)
{
    int target_train = p->spec->model.target == TARGET_EMA;
    L("/* The online head of view v (its activations in a); everything stays for backward. */");
    L("static int head_online(int v, const act_t *a)");
    L("{");
    L("    mlp_save sv;");
    emit_head_side(e, p, 1);
    L("    return 0;");
    L("}");
    L("%s", "");
    L("/* The target head of view v (BN %s). */", target_train ? "in train mode, target ema" :
      "in eval mode with the moving-average statistics, target eman");
    L("static int head_target(int v, const act_t *a)");
    L("{");
    L("    mlp_save sv;");
    emit_head_side(e, p, 0);
    L("    return 0;");
    L("}");
    L("%s", "");

    int l = p->lewel ? 1 + p->fh * p->fw : 1;
    L("/* Backward of the online head of view v into S0 = d(layer4 output). */");
    L("static int head_bwd(int v)");
    L("{");
    L("    mlp_save sv;");
    if (p->lewel)
        L("    CK(lwl_gpu_zero(D_X, sizeof(float) * nb * POSITIONS * CHANNELS));");
    for (int v = 0; v < 2; v++) {
        char pre[8], a[32], b[32];
        snprintf(pre, sizeof pre, "H%d_", v + 1);
        L("    %s {", v ? "} else" : "if (v == 0)");
        snprintf(a, sizeof a, "%sZG", pre);
        snprintf(b, sizeof b, "%sDQG", pre);
        mlp_bwd_call(e, p, 2, a, b, "D_ZG", pre);
        if (p->lewel) {
            snprintf(a, sizeof a, "%sZO", pre);
            snprintf(b, sizeof b, "%sDQO", pre);
            mlp_bwd_call(e, p, 3, a, b, "D_ZO", pre);
            snprintf(a, sizeof a, "%sO", pre);
            mlp_bwd_call(e, p, 1, a, "D_ZO", "D_O", pre);
            L("    CK(head_align_bwd(%sU, %sAM, D_O, D_AM, D_X, nb, CHANNELS, POSITIONS, DIM, "
              "HEADS));", pre, pre);
        }
        L("    CK(rows_scatter(D_ZG, D_Z, nb, DIM, %d));", l);
        if (p->lewel)
            L("    CK(head_maps_bwd(%sZ, %sAM, D_AM, D_Z, nb, DIM, POSITIONS));", pre, pre);
        snprintf(a, sizeof a, "%sU", pre);
        mlp_bwd_call(e, p, 0, a, "D_Z", "D_U", pre);
    }
    L("    }");
    L("    CK(head_rows_bwd(D_U, %s, S0, nb, CHANNELS, POSITIONS, %d));",
      p->lewel ? "D_X" : "(const float *)NULL", p->lewel);
    L("    return 0;");
    L("}");
    L("%s", "");

    double w = p->spec->model.local_weight;
    L("/* The loss of online view i against target view j (model.local_weight %g), added to",
      w);
    L(" * the step's loss on the device; the predictions' gradients accumulate, scaled by");
    L(" * `scale` (fp16's loss scale, else 1). */");
    L("static int pair_loss(int i, int j, float scale)");
    L("{");
    if (p->lewel) {
        L("    CK(cos_loss(i ? H2_QG : H1_QG, j ? T2_ZG : T1_ZG, i ? H2_DQG : H1_DQG, nb, DIM, "
          "%.9gf * scale));", 1 - w);
        L("    CK(cos_loss(i ? H2_QO : H1_QO, j ? T2_ZO : T1_ZO, i ? H2_DQO : H1_DQO, nb * MAPS, "
          "DIM,");
        L("                %.9gf * scale));", w);
    } else {
        L("    CK(cos_loss(i ? H2_QG : H1_QG, j ? T2_ZG : T1_ZG, i ? H2_DQG : H1_DQG, nb, DIM, "
          "scale));");
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* ---- net.cu */

static void emit_arena_macros(emitter *e, const arena_plan *a, const char *base)
{
    for (int i = 0; i < a->n; i++)
        L("#define %s (%s + %zuu)   /* %zu: %s */", a->v[i].name, base, a->v[i].off, a->v[i].n,
          a->v[i].what);
}

static void emit_prelude(emitter *e, const lwl_plan *p, const gpu_plan *g)
{
    const lwl_spec *s = p->spec;
    static const char *const prec[] = { "bf16", "fp16", "fp32" };
    L("/* The network of experiment '%s' on the GPU: %s (%s stem) with the %s head in %s,",
      p->name, s->model.backbone == BACKBONE_RESNET50 ? "ResNet-50" : "ResNet-18",
      s->model.stem == STEM_IMAGENET ? "imagenet" : "small", p->lewel ? "LEWEL_B" : "BYOL",
      prec[s->train.precision]);
    L(" * the same schedules as net.c: cuDNN convolutions on NHWC activations, BN, head, loss,");
    L(" * optimiser and moving average as the kernels of gpu_kernels.h (gpu_ops.cuh), fp32");
    L(" * master weights and statistics. Generated by lwlc; do not edit. */");
    if (s->train.precision == PREC_BF16)
        L("#define LWL_ACT_BF16");
    else if (s->train.precision == PREC_FP16)
        L("#define LWL_ACT_F16");
    L("#include <math.h>");
    L("#include <stdint.h>");
    L("#include <stdio.h>");
    L("#include <stdlib.h>");
    L("#include <string.h>");
    L("%s", "");
    L("#include \"gpu_ops.cuh\"");
    L("extern \"C\" {");
    L("#include \"lwl_train.h\"");
    L("}");
    L("#if defined(__CUDACC__)");
    L("#include \"lwl_views.h\"");
    L("#endif");
    L("%s", "");
    L("/* Every call checked: a failure names this file and line and the library's message. */");
    L("#define CK(call)                                                                 \\");
    L("    do {                                                                         \\");
    L("        if ((call) != 0) {                                                       \\");
    L("            fprintf(stderr, \"%%s:%%d: %%s\\n\", __FILE__, __LINE__, "
      "lwl_cuda_error());  \\");
    L("            return -1;                                                           \\");
    L("        }                                                                        \\");
    L("    } while (0)");
    L("%s", "");
    L("#define BATCH %d", p->batch);
    L("#define GROUPS %d", p->groups);
    L("#define GPUS %d", s->train.gpus);
    L("#define SIZE %d", p->size);
    L("#define CHANNELS %d", p->channels);
    L("#define POSITIONS %d", p->fh * p->fw);
    L("#define DIM %d", p->dim);
    L("#define HEADS %d", p->heads);
    L("#define MAPS %d", p->maps);
    L("#define NPARAMS %d", p->nparams);
    L("#define NBUFS %d", p->nbufs);
    L("#define PARAM_FLOATS %zuu", p->param_floats);
    L("#define BUF_FLOATS %zuu", p->buf_floats * (size_t)p->groups);
    L("#define TARGET_PARAM_FLOATS %zuu", p->target_param_floats);
    L("#define TARGET_BUF_FLOATS %zuu", p->target_buf_floats * (size_t)p->groups);
    L("#define PRECISION \"%s\"", prec[s->train.precision]);
    L("#define KNN_K %d  /* eval.knn.k: the neighbours the GPU kNN keeps */",
      s->eval.knn.k);
    L("#define KNN_WEIGHTED %d  /* eval.knn.vote %s */", s->eval.knn.vote == VOTE_WEIGHTED,
      s->eval.knn.vote == VOTE_WEIGHTED ? "weighted" : "majority");
    L("#define KNN_TEMPERATURE %.17g", s->eval.knn.temperature);
    L("%s", "");
    L("/* net.c's tables and initialisation (shared: the same state on CPU and GPU). */");
    L("extern \"C\" const lwl_tensor_info net_params_info[NPARAMS];");
    L("extern \"C\" const lwl_tensor_info net_bufs_info[NBUFS];");
    L("extern \"C\" int net_init_state(uint64_t seed, float *params, float *bufs, float *target,");
    L("                               float *tbufs, float *momentum);");
    L("%s", "");
    L("/* The device memory plan for up to BATCH images: fp32 (gf, %.1f MiB), activations",
      g->f.total * 4.0 / (1 << 20));
    L(" * (ga, %zu elements of act_t) and max-pool indices (gu, %zu bytes). */", g->a.total,
      g->u.total);
    L("static float *gf;");
    L("static act_t *ga;");
    L("static uint8_t *gu;");
    emit_arena_macros(e, &g->f, "gf");
    emit_arena_macros(e, &g->a, "ga");
    emit_arena_macros(e, &g->u, "gu");
    if (!p->stem_pool)
        for (int i = 0; i < 3; i++)
            L("#define %s ((uint8_t *)NULL)   /* stem small: no max-pool */",
              (const char *[]){ "ARG1", "ARG2", "ARGT" }[i]);
    L("%s", "");
    L("static lwl_gconv *gconv[%d];", p->nconvs);
    L("static opt_plan opt;");
    L("static int *gflag;                  /* device: a non-finite gradient was seen */");
    L("static float *h_params, *h_grads, *h_momentum, *h_target, *h_bufs, *h_tbufs, *h_maps;");
    L("%s", "");
    L("/* Images of a call: BATCH in one process, BATCH / world on each of `world` ranks (one per");
    L(" * GPU), whose BN groups are ng from group g0 (model.norm %s). */",
      s->model.norm == NORM_SYNC ? "sync: one group, its sums added over the ranks" :
      "batch: rank r's are r ng .. r ng + ng - 1");
    L("static int nb = BATCH, ng = GROUPS, g0 = 0, world = 1;");
    L("%s", "");
    if (s->train.precision == PREC_FP16) {
        L("/* fp16's dynamic loss scale (as PyTorch's GradScaler: 2^16, halved on an overflow,");
        L(" * doubled after 2000 good steps). */");
        L("static float loss_scale = 65536.0f;");
        L("static int good_steps;");
    } else {
        L("static const float loss_scale = 1.0f;  /* no loss scaling but with fp16 */");
    }
    L("%s", "");
}

static void emit_init(emitter *e, const lwl_plan *p, const gpu_plan *g)
{
    const lwl_spec *s = p->spec;
    int sync = s->model.norm == NORM_SYNC;
    L("/* The GPU `device`, its memory and descriptors for rank `rank` of `ranks`; idfile: where");
    L(" * the ranks meet when they have no MPI (NCCL's id). 0 or -1. */");
    L("static int gnet_init(int device, int rank, int ranks, const char *idfile)");
    L("{");
    L("    if (ranks < 1 || GPUS %% ranks != 0 || rank < 0 || rank >= ranks) {");
    L("        fprintf(stderr, \"net: train.gpus (%%d) is not divisible by the %%d ranks\\n\", "
      "GPUS, ranks);");
    L("        return -1;");
    L("    }");
    L("    world = ranks;");
    L("    nb = BATCH / ranks;");
    if (sync) {
        L("    ng = 1;");
        L("    g0 = 0;");
        L("    gops_sync_world = ranks;");
    } else {
        L("    ng = GROUPS / ranks;");
        L("    g0 = rank * ng;");
    }
    L("    CK(lwl_gpu_init(device, %s));", s->train.precision == PREC_BF16 ? "LWL_BF16" :
      s->train.precision == PREC_FP16 ? "LWL_F16" : "LWL_F32");
    L("    CK(lwl_gcomm_init(rank, ranks, idfile));");
    L("    CK(!(gf = (float *)lwl_gpu_alloc(sizeof(float) * %zuu)));", g->f.total);
    L("    CK(!(ga = (act_t *)lwl_gpu_alloc(sizeof(act_t) * %zuu)));", g->a.total);
    L("    CK(!(gu = (uint8_t *)lwl_gpu_alloc(%zuu)));", g->u.total);
    L("    CK(!(gflag = (int *)lwl_gpu_alloc(sizeof(int))));");
    L("    CK(gpu_ops_init(%zuu, %zuu, %zuu, %zuu, %zuu));", g->bn_part, g->bn_img, g->bn_tot,
      g->rows_max, g->inv_max);
    for (int i = 0; i < p->nconvs; i++) {
        const lwl_pconv *c = &p->convs[i];
        L("    CK(!(gconv[%d] = lwl_gconv_new(nb, %d, %d, %d, %d, %d, %d, %d, %d)));  /* %s */", i,
          c->cin, c->hin, c->win, c->cout, c->k, c->k, c->stride, c->pad, c->conv);
    }
    L("    /* the optimiser's chunks of every tensor */");
    L("    size_t off[NPARAMS], numel[NPARAMS];");
    L("    uint8_t decay[NPARAMS];");
    L("    for (int t = 0; t < NPARAMS; t++) {");
    L("        off[t] = net_params_info[t].off;");
    L("        numel[t] = net_params_info[t].numel;");
    L("        decay[t] = (uint8_t)net_params_info[t].decay;");
    L("    }");
    L("    CK(opt_plan_make(&opt, off, numel, decay, NPARAMS));");
    L("#if defined(__CUDACC__)");
    L("    CK(views_cuda_init(nb));");
    L("#endif");
    L("    h_params = (float *)malloc(sizeof(float) * PARAM_FLOATS);");
    L("    h_grads = (float *)malloc(sizeof(float) * PARAM_FLOATS);");
    L("    h_momentum = (float *)malloc(sizeof(float) * PARAM_FLOATS);");
    L("    h_target = (float *)malloc(sizeof(float) * TARGET_PARAM_FLOATS);");
    L("    h_bufs = (float *)malloc(sizeof(float) * BUF_FLOATS);");
    L("    h_tbufs = (float *)malloc(sizeof(float) * TARGET_BUF_FLOATS);");
    L("    h_maps = (float *)malloc(sizeof(float) * BATCH * CHANNELS * POSITIONS);");
    L("    if (!h_params || !h_grads || !h_momentum || !h_target || !h_bufs || !h_tbufs || "
      "!h_maps) {");
    L("        fprintf(stderr, \"net: out of host memory for the state's copies\\n\");");
    L("        return -1;");
    L("    }");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("static void gnet_free(void)");
    L("{");
    L("    lwl_gpu_sync();");
    L("    for (int i = 0; i < %d; i++)", p->nconvs);
    L("        lwl_gconv_free(gconv[i]);");
    L("    opt_plan_free(&opt);");
    L("#if defined(__CUDACC__)");
    L("    views_cuda_free();");
    L("#endif");
    L("    gpu_ops_free();");
    L("    lwl_gpu_release(gf);");
    L("    lwl_gpu_release(ga);");
    L("    lwl_gpu_release(gu);");
    L("    lwl_gpu_release(gflag);");
    L("    lwl_gcomm_free();");
    L("    lwl_gpu_free();");
    L("    float *h[] = { h_params, h_grads, h_momentum, h_target, h_bufs, h_tbufs, h_maps };");
    L("    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)");
    L("        free(h[i]);");
    L("}");
    L("%s", "");
    L("/* The state's host copies (as net.c's arrays) from the device, and back. */");
    L("static int gnet_to_host(void)");
    L("{");
    L("    CK(lwl_gpu_get(h_params, PARAMS, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gpu_get(h_grads, GRADS, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gpu_get(h_momentum, MOMENTUM, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gpu_get(h_target, TARGET, sizeof(float) * TARGET_PARAM_FLOATS));");
    L("    CK(lwl_gpu_get(h_bufs, BUFS, sizeof(float) * BUF_FLOATS));");
    L("    CK(lwl_gpu_get(h_tbufs, TBUFS, sizeof(float) * TARGET_BUF_FLOATS));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("static int gnet_to_device(void)");
    L("{");
    L("    CK(lwl_gpu_put(PARAMS, h_params, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gpu_put(MOMENTUM, h_momentum, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gpu_put(TARGET, h_target, sizeof(float) * TARGET_PARAM_FLOATS));");
    L("    CK(lwl_gpu_put(BUFS, h_bufs, sizeof(float) * BUF_FLOATS));");
    L("    CK(lwl_gpu_put(TBUFS, h_tbufs, sizeof(float) * TARGET_BUF_FLOATS));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("static lwl_state gnet_state(void)");
    L("{");
    L("    lwl_state s = { h_params, h_grads, h_momentum, h_target, h_bufs, h_tbufs };");
    L("    return s;");
    L("}");
    L("%s", "");
    L("/* The initial state of net.c (the same draws), then on the device. */");
    L("static int gnet_init_weights(uint64_t seed)");
    L("{");
    L("    if (net_init_state(seed, h_params, h_bufs, h_target, h_tbufs, h_momentum))");
    L("        return -1;");
    L("    return gnet_to_device();");
    L("}");
    L("%s", "");
}

static void emit_casts(emitter *e, const lwl_plan *p, const gpu_plan *g)
{
    L("/* The conv weights of w (fp32 OIHW) as cuDNN reads them into wa (KRSC, act_t). */");
    L("static int cast_weights(const float *w, act_t *wa)");
    L("{");
    for (int i = 0; i < p->nconvs; i++) {
        const lwl_pconv *c = &p->convs[i];
        const lwl_ptensor *t = &p->params[c->weight];
        L("    GK_RUN(w_in, %zuu, w + %zuu, wa + %zuu, %d, %d);  /* %s */", t->numel, t->off,
          g->wa[i], c->cin, c->k * c->k, c->conv);
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

static void emit_step(emitter *e, const lwl_plan *p)
{
    const lwl_spec *s = p->spec;
    int eman = s->model.target == TARGET_EMAN, lars = s->train.optimizer == OPT_LARS;
    int fp16 = s->train.precision == PREC_FP16;
    size_t in = (size_t)3 * p->size * p->size;
    L("/* A view (nb, 3, SIZE, SIZE) float from the host into activation 0 of a (NHWC). */");
    L("static int view_in(const float *x, act_t *a)");
    L("{");
    L("    CK(lwl_gpu_put(VIN, x, sizeof(float) * nb * %zuu));", in);
    L("    GK_RUN(view_in, (size_t)nb * %zuu, (const float *)VIN, a, (size_t)SIZE * SIZE);", in);
    L("    return 0;");
    L("}");
    L("%s", "");
    L("/* One pre-training step on two views (nb, 3, SIZE, SIZE) from the host: target and");
    L(" * online forwards, the symmetric loss, backward, the gradients averaged over the ranks,");
    L(" * %s at lr (%s), the target's average with momentum ema. 0, 1 when the loss is",
      lars ? "LARS" : "SGD", fp16 ? "skipped when fp16 gradients overflow" : "every step");
    L(" * not finite, -1 on an error. *loss is the mean over the ranks. */");
    L("static int step_views(float lr, float ema, int first, double *loss);");
    L("%s", "");
    L("static int gnet_step(const float *view1, const float *view2, float lr, float ema, "
      "int first,");
    L("                     double *loss)");
    L("{");
    L("    CK(view_in(view1, ACT1));");
    L("    CK(view_in(view2, ACT2));");
    L("    return step_views(lr, ema, first, loss);");
    L("}");
    L("%s", "");
    L("/* The step on the views in activation 0 of ACT1 and ACT2. */");
    L("static int step_views(float lr, float ema, int first, double *loss)");
    L("{");
    L("    act_t *acts[2] = { ACT1, ACT2 };");
    L("    CK(lwl_gpu_zero(GRADS, sizeof(float) * PARAM_FLOATS));");
    L("    CK(cast_weights(PARAMS, WA));");
    L("    CK(cast_weights(TARGET, TWA));");
    L("%s", "");
    L("    /* target: no gradient */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        CK(lwl_gpu_copy(TACT, acts[v], sizeof(act_t) * nb * %zuu));", in);
    if (eman)
        L("        CK(backbone_eval(TWA, TARGET, TBUFS, TACT, ng, ARGT));");
    else
        L("        CK(backbone_train(TWA, TARGET, TBUFS, TACT, TSTATS, ARGT));");
    L("        CK(head_target(v, TACT));");
    L("    }");
    L("%s", "");
    L("    /* online */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        CK(backbone_train(WA, PARAMS, BUFS, acts[v], v ? STATS2 : STATS1, "
      "v ? ARG2 : ARG1));");
    L("        CK(head_online(v, acts[v]));");
    L("    }");
    L("%s", "");
    L("    /* the loss over both view orders, and d(predictions) */");
    L("    CK(lwl_gpu_zero(H1_DQG, sizeof(float) * nb * DIM));");
    L("    CK(lwl_gpu_zero(H2_DQG, sizeof(float) * nb * DIM));");
    if (p->lewel) {
        L("    CK(lwl_gpu_zero(H1_DQO, sizeof(float) * nb * MAPS * DIM));");
        L("    CK(lwl_gpu_zero(H2_DQO, sizeof(float) * nb * MAPS * DIM));");
    }
    L("    CK(loss_reset());");
    L("    CK(pair_loss(0, 1, loss_scale));");
    L("    CK(pair_loss(1, 0, loss_scale));");
    L("    if (world > 1 && lwl_gcomm_sum_d(gops_loss, 1))");
    L("        return -1;");
    L("    CK(loss_read(loss));");
    L("    *loss /= (double)world * loss_scale;");
    L("    if (!isfinite(*loss))");
    L("        return 1;");
    L("%s", "");
    L("    /* backward */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        CK(head_bwd(v));");
    L("        CK(backbone_bwd(acts[v], v ? STATS2 : STATS1, v ? ARG2 : ARG1%s));",
      e->bk->n ? ", v == 1" : "");
    L("    }");
    if (e->bk->n) {
        L("    /* every bucket summed over the ranks (on the buckets' stream, started during the");
        L("     * backward) before the step's stream goes on; then the mean */");
        L("    if (world > 1) {");
        L("        CK(lwl_gcomm_sum_wait());");
        L("        CK(scale_inplace(GRADS, PARAM_FLOATS, 1.0f / world));");
        L("    }");
    }
    if (fp16) {
        L("    /* fp16: the gradients carry the loss scale; an overflow skips the step */");
        L("    int bad = 0;");
        L("    CK(check_finite(GRADS, PARAM_FLOATS, gflag, &bad));");
        L("    if (bad) {");
        L("        loss_scale *= 0.5f;");
        L("        good_steps = 0;");
        L("    } else {");
        L("        CK(scale_inplace(GRADS, PARAM_FLOATS, 1.0f / loss_scale));");
        L("        CK(opt_step(&opt, PARAMS, MOMENTUM, GRADS, %.9gf, %.9gf, %d, lr, %.9gf, "
          "first));",
          s->train.weight_decay, s->train.eta, lars, s->train.momentum);
        L("        if (++good_steps == 2000) {");
        L("            loss_scale *= 2.0f;");
        L("            good_steps = 0;");
        L("        }");
        L("    }");
    } else {
        L("    CK(opt_step(&opt, PARAMS, MOMENTUM, GRADS, %.9gf, %.9gf, %d, lr, %.9gf, first));",
          s->train.weight_decay, s->train.eta, lars, s->train.momentum);
    }
    L("%s", "");
    L("    /* the target follows: t = m t + (1 - m) o (model.target %s) */", eman ? "eman" : "ema");
    L("    CK(ema_apply(TARGET, PARAMS, TARGET_PARAM_FLOATS, ema));");
    if (eman)
        L("    CK(ema_apply(TBUFS, BUFS, TARGET_BUF_FLOATS, ema));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("#if defined(__CUDACC__)");
    L("/* The same step with both views made on the GPU (views.cu) from a staged batch: they");
    L(" * land in activation 0 of ACT1 and ACT2, and the target reads copies. */");
    L("static int gnet_step_staged(const lwl_stage *stage, float lr, float ema, int first,");
    L("                            double *loss)");
    L("{");
    L("    if (views_cuda_make(stage, ACT1, ACT2, lwl_gpu_stream())) {");
    L("        fprintf(stderr, \"%%s:%%d: %%s\\n\", __FILE__, __LINE__, lwl_cuda_error());");
    L("        return -1;");
    L("    }");
    L("    return step_views(lr, ema, first, loss);");
    L("}");
    L("#define STEP_STAGED gnet_step_staged");
    L("#define STAGE_ALLOC lwl_views_host_alloc");
    L("#define STAGE_FREE lwl_views_host_free");
    L("#else");
    L("#define STEP_STAGED NULL   /* the tests' emulated GPU has no views.cu */");
    L("#define STAGE_ALLOC NULL");
    L("#define STAGE_FREE NULL");
    L("#endif");
    L("%s", "");
    L("/* layer4's output (nb, CHANNELS, POSITIONS) of x (nb, 3, SIZE, SIZE) from the host: the");
    L(" * online backbone in eval mode with group g0's running statistics, on the host. */");
    L("static const float *gnet_maps(const float *x)");
    L("{");
    L("    if (cast_weights(PARAMS, WA) || view_in(x, TACT) ||");
    L("        backbone_eval(WA, PARAMS, BUFS, TACT, 1, ARGT)) {");
    L("        fprintf(stderr, \"net.cu: %%s\\n\", lwl_cuda_error());");
    L("        return NULL;");
    L("    }");
    L("    if (maps_out(TACT + %zuu, OUT_MAPS, nb, POSITIONS, CHANNELS) ||", p->acts[p->feat].off);
    L("        lwl_gpu_get(h_maps, OUT_MAPS, sizeof(float) * nb * CHANNELS * POSITIONS)) {");
    L("        fprintf(stderr, \"net.cu: %%s\\n\", lwl_cuda_error());");
    L("        return NULL;");
    L("    }");
    L("    return h_maps;");
    L("}");
    L("%s", "");
    L("/* Pooled layer4 features (nb, CHANNELS) of x into feat (host). */");
    L("static int gnet_features(const float *x, float *feat)");
    L("{");
    L("    CK(cast_weights(PARAMS, WA));");
    L("    CK(view_in(x, TACT));");
    L("    CK(backbone_eval(WA, PARAMS, BUFS, TACT, 1, ARGT));");
    L("    GK_RUN(pool_features, (size_t)nb * CHANNELS, TACT + %zuu, OUT_FEAT, POSITIONS,",
      p->acts[p->feat].off);
    L("           CHANNELS);");
    L("    CK(lwl_gpu_get(feat, OUT_FEAT, sizeof(float) * nb * CHANNELS));");
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* gnet_knn: gpu_ops.cuh's kNN with the spec's k and vote, or none when k is above what it
 * keeps (then the driver's kNN runs on the CPU, saying so). */
static void emit_knn(emitter *e, const lwl_plan *p)
{
    const __typeof__(p->spec->eval.knn) *kn = &p->spec->eval.knn;
    int weighted = kn->vote == VOTE_WEIGHTED;
    char vote[64];
    if (weighted)
        snprintf(vote, sizeof vote, "weighted temperature %g", kn->temperature);
    else
        snprintf(vote, sizeof vote, "majority");
    L("#if KNN_K <= KNN_MAX_K");
    L("/* The kNN of eval.knn (k %d, vote %s): queries qry (m, CHANNELS) against memory rows",
      kn->k, vote);
    L(" * mem (n, CHANNELS) with their labels, host arrays normalised and checked by the driver;");
    L(" * pred (m, 5) as lwl_knn_predict's, with k <= KNN_K neighbours. */");
    L("static int gnet_knn(const float *mem, const int *labels, size_t n, const float *qry, "
      "size_t m,");
    L("                    int k, int nclasses, int *pred)");
    L("{");
    L("    CK(knn_predict<KNN_K>(mem, labels, n, CHANNELS, qry, m, k, KNN_WEIGHTED, "
      "KNN_TEMPERATURE,");
    L("                          nclasses, pred, 0, 0));");
    L("    return 0;");
    L("}");
    L("#define GNET_KNN gnet_knn");
    L("#else");
    L("#define GNET_KNN NULL   /* k above KNN_MAX_K: the driver's kNN runs on the CPU */");
    L("#endif");
    L("%s", "");
}

static void emit_ranks(emitter *e, const lwl_plan *p)
{
    int sync = p->spec->model.norm == NORM_SYNC;
    L("/* With model.norm batch each rank updates its own groups' running statistics: every");
    L(" * rank's groups to every rank, by a sum in which the slots a rank does not own count -0");
    L(" * (x + -0 is x, bit for bit), on the host copies (the driver writes them). */");
    L("static int gnet_gather_groups(void)");
    L("{");
    if (sync) {
        L("    return 0;   /* norm sync: every rank holds the same statistics */");
    } else {
        L("    if (world == 1)");
        L("        return 0;");
        L("    float *bufs[2] = { BUFS, TBUFS };");
        L("    size_t n[2] = { BUF_FLOATS, TARGET_BUF_FLOATS };");
        L("    float *tmp = (float *)lwl_gpu_alloc(sizeof(float) * BUF_FLOATS);");
        L("    float *h = (float *)malloc(sizeof(float) * BUF_FLOATS);");
        L("    int rc = tmp && h ? 0 : -1;");
        L("    for (int k = 0; rc == 0 && k < 2; k++) {");
        L("        rc = lwl_gpu_get(h, bufs[k], sizeof(float) * n[k]);");
        L("        for (int i = 0; rc == 0 && i < NBUFS; i++) {");
        L("            const lwl_tensor_info *t = &net_bufs_info[i];");
        L("            if (t->off >= n[k])");
        L("                continue;");
        L("            for (int gr = 0; gr < GROUPS; gr++)");
        L("                if (gr / ng != g0 / ng)");
        L("                    for (size_t j = 0; j < t->numel; j++)");
        L("                        h[t->off + (size_t)gr * t->numel + j] = -0.0f;");
        L("        }");
        L("        rc = rc || lwl_gpu_put(tmp, h, sizeof(float) * n[k]) ||");
        L("             lwl_gcomm_sum_f(tmp, n[k]) || "
          "lwl_gpu_copy(bufs[k], tmp, sizeof(float) * n[k]) ||");
        L("             lwl_gpu_sync();");
        L("    }");
        L("    lwl_gpu_release(tmp);");
        L("    free(h);");
        L("    if (rc)");
        L("        fprintf(stderr, \"net.cu: %%s\\n\", lwl_cuda_error());");
        L("    return rc;");
    }
    L("}");
    L("%s", "");
    L("/* Rank 0's state to every rank (after it read a checkpoint). */");
    L("static int gnet_share_state(void)");
    L("{");
    L("    if (world == 1)");
    L("        return 0;");
    L("    CK(lwl_gcomm_bcast(PARAMS, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gcomm_bcast(MOMENTUM, sizeof(float) * PARAM_FLOATS));");
    L("    CK(lwl_gcomm_bcast(TARGET, sizeof(float) * TARGET_PARAM_FLOATS));");
    L("    CK(lwl_gcomm_bcast(BUFS, sizeof(float) * BUF_FLOATS));");
    L("    CK(lwl_gcomm_bcast(TBUFS, sizeof(float) * TARGET_BUF_FLOATS));");
    L("    return lwl_gpu_sync();");
    L("}");
    L("%s", "");
    L("/* Rank 0's `bytes` of host memory to every rank (through the device). */");
    L("static int gnet_bcast_host(void *h, size_t bytes)");
    L("{");
    L("    if (world == 1)");
    L("        return 0;");
    L("    void *d = lwl_gpu_alloc(bytes);");
    L("    int rc = !d || lwl_gpu_put(d, h, bytes) || lwl_gcomm_bcast(d, bytes) ||");
    L("             lwl_gpu_get(h, d, bytes);");
    L("    lwl_gpu_release(d);");
    L("    if (rc)");
    L("        fprintf(stderr, \"net.cu: %%s\\n\", lwl_cuda_error());");
    L("    return rc ? -1 : 0;");
    L("}");
    L("%s", "");
    L("/* The GPU network the driver calls (lwl_train.h). */");
    L("extern \"C\" const lwl_gpu_net net_gpu = {");
    L("    lwl_cuda_available, gnet_init, gnet_free, gnet_state, gnet_to_host, gnet_to_device,");
    L("    gnet_init_weights,");
    L("    gnet_step, STEP_STAGED, STAGE_ALLOC, STAGE_FREE, gnet_features, gnet_maps, GNET_KNN,");
    L("    gnet_gather_groups, gnet_share_state, gnet_bcast_host, PRECISION,");
    L("};");
}

int emit_net_cu(const lwl_plan *p, FILE *f)
{
    emitter ev = { f, p, 0, NULL }, *e = &ev;
    emit_buckets bk;
    if (emit_buckets_make(p, &bk)) {
        emit_buckets_free(&bk);
        return -1;
    }
    e->bk = &bk;
    gpu_plan g;
    memset(&g, 0, sizeof g);
    make_plan(p, &g);
    emit_prelude(e, p, &g);
    emit_init(e, p, &g);
    emit_casts(e, p, &g);
    emit_backbone_fwd(e, p, &g, 1);
    emit_backbone_fwd(e, p, &g, 0);
    if (bk.n) {
        L("/* Gradient bucket GRADS [lo, lo + n), final for this step (the %d buckets of the",
          bk.n);
        L(" * step, in the order the backward completes them: lwlc's emit.h): its sum over the");
        L(" * ranks starts on the buckets' stream once the step's stream has made it. */");
        L("static int grads_bucket(size_t lo, size_t n)");
        L("{");
        L("    if (world > 1)");
        L("        CK(lwl_gcomm_sum_start(GRADS + lo, n));");
        L("    return 0;");
        L("}");
        L("%s", "");
    }
    emit_backbone_bwd(e, p, &g);
    emit_head(e, p);
    emit_step(e, p);
    emit_knn(e, p);
    emit_ranks(e, p);
    free_plan(&g);
    emit_buckets_free(&bk);
    return e->failed ? -1 : 0;
}
