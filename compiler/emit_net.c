/* Emits plan.h and net.c: the static memory plan, the tensor tables, the
 * backbone forward (train and eval) and backward as explicit schedules of
 * calls with literal shapes, Grad-CAM's eval-mode backward to the spec's layer,
 * the LEWEL_B head, the loss, the optimiser and the target's moving average. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"

#define L(...) emit_line(e, __VA_ARGS__)

/* ---- the memory plan (emit.h's arena_plan), in floats */

static void place_mlp_save(arena_plan *a, const lwl_plan *p, const char *pre, int i)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    char name[64];
    size_t rh = (size_t)m->rows * (size_t)m->hidden, gh = (size_t)p->groups * m->hidden;
    snprintf(name, sizeof name, "%s%s_H1", pre, emit_mlp_slot[i]);
    emit_place(a, name, rh, "(rows, hidden) before BN");
    snprintf(name, sizeof name, "%s%s_H2", pre, emit_mlp_slot[i]);
    emit_place(a, name, rh, "(rows, hidden) after BN + ReLU");
    snprintf(name, sizeof name, "%s%s_MEAN", pre, emit_mlp_slot[i]);
    emit_place(a, name, gh, "(groups, hidden)");
    snprintf(name, sizeof name, "%s%s_INVSTD", pre, emit_mlp_slot[i]);
    emit_place(a, name, gh, "(groups, hidden)");
}

static void make_arena(const lwl_plan *p, arena_plan *a)
{
    const lwl_spec *s = p->spec;
    size_t B = (size_t)p->batch, C = (size_t)p->channels, P = (size_t)p->fh * p->fw;
    size_t D = (size_t)p->dim, K = (size_t)p->maps, G = (size_t)p->groups;
    size_t RU = (size_t)emit_rows_u(p), RO = B * K;

    emit_place(a, "PARAMS", p->param_floats, "online parameters, see net_params_info");
    emit_place(a, "GRADS", (size_t)s->train.gpus * p->param_floats,
          "their gradients, per chunk (GPUS, PARAM_FLOATS); the step's in chunk 0");
    emit_place(a, "MOMENTUM", p->param_floats, "optimiser buffers (lr folded in)");
    emit_place(a, "TARGET", p->target_param_floats, "target parameters: backbone, proj, proj_obj");
    emit_place(a, "BUFS", G * p->buf_floats, "online BN running statistics, (groups, c) each");
    emit_place(a, "TBUFS", G * p->target_buf_floats, "target BN running statistics");
    for (int v = 0; v < 2; v++) {
        char n[32];
        snprintf(n, sizeof n, "ACT%d", v + 1);
        emit_place(a, n, p->act_floats, "online activations of a view, kept for backward");
        snprintf(n, sizeof n, "STATS%d", v + 1);
        emit_place(a, n, emit_stats_floats(p), "BN (mean, invstd) per conv and group");
    }
    emit_place(a, "TACT", p->act_floats, "target activations");
    emit_place(a, "TSTATS", emit_stats_floats(p), "target BN statistics (train mode)");
    for (int i = 0; i < 4; i++)
        emit_place(a, (const char *[]){ "S0", "S1", "S2", "S3" }[i], p->max_act,
              "backward scratch, the largest activation");

    for (int v = 0; v < 2; v++) {
        char pre[8];
        snprintf(pre, sizeof pre, "H%d_", v + 1);
        char n[64];
#define SLOT(suffix, count, what)                                                         \
    (snprintf(n, sizeof n, "%s" suffix, pre), emit_place(a, n, count, what))
        SLOT("X", B * C * P, "(B, C, P) layer4's output in plain layout");
        SLOT("U", RU * C, "(rows_u, C) pooled vector and positions");
        SLOT("Z", RU * D, "(rows_u, D) proj output");
        SLOT("ZG", B * D, "(B, D) global embedding");
        SLOT("QG", B * D, "(B, D) predictor output");
        SLOT("DQG", B * D, "(B, D) its gradient");
        place_mlp_save(a, p, pre, 0);
        place_mlp_save(a, p, pre, 2);
        if (p->lewel) {
            SLOT("AM", B * D * P, "(B, D, P) alignment maps");
            SLOT("O", RO * C, "(B K, C) aligned features");
            SLOT("ZO", RO * D, "(B K, D) proj_obj output");
            SLOT("QO", RO * D, "(B K, D) predictor_obj output");
            SLOT("DQO", RO * D, "(B K, D) its gradient");
            place_mlp_save(a, p, pre, 1);
            place_mlp_save(a, p, pre, 3);
        }
        snprintf(pre, sizeof pre, "T%d_", v + 1);
        SLOT("ZG", B * D, "(B, D) target global embedding");
        if (p->lewel)
            SLOT("ZO", RO * D, "(B K, D) target aligned embedding");
#undef SLOT
    }
    emit_place(a, "TH_X", B * C * P, "target head scratch: (B, C, P) plain layer4");
    emit_place(a, "TH_U", RU * C, "(rows_u, C)");
    emit_place(a, "TH_Z", RU * D, "(rows_u, D)");
    place_mlp_save(a, p, "TH_", 0);
    if (p->lewel) {
        emit_place(a, "TH_AM", B * D * P, "(B, D, P)");
        emit_place(a, "TH_O", RO * C, "(B K, C)");
        place_mlp_save(a, p, "TH_", 1);
    }
    emit_place(a, "D_X", B * C * P, "backward: (B, C, P) plain d(layer4 output)");
    emit_place(a, "D_ZG", B * D, "(B, D)");
    emit_place(a, "D_Z", RU * D, "(rows_u, D)");
    emit_place(a, "D_U", RU * C, "(rows_u, C)");
    size_t rmax = RU > RO ? RU : RO;
    emit_place(a, "D_TMP", rmax * (size_t)p->hidden, "(rows, hidden) inside an MLP backward");
    if (p->lewel) {
        emit_place(a, "D_ZO", RO * D, "(B K, D)");
        emit_place(a, "D_O", RO * C, "(B K, C)");
        emit_place(a, "D_AM", B * D * P, "(B, D, P)");
    }
    (void)s;
}

/* ---- plan.h */

static void tensor_table(emitter *e, const char *name, const lwl_ptensor *t, int n, int scale)
{
    L("const lwl_tensor_info %s[%d] = {", name, n);
    for (int i = 0; i < n; i++) {
        char shape[64];
        int k = 0;
        for (int j = 0; j < t[i].ndim; j++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%d", j ? ", " : "",
                          t[i].shape[j]);
        L("    { \"%s\", %zu, %zu, %d, { %s }, %d, %d },", t[i].name, t[i].off * (size_t)scale,
          t[i].numel, t[i].ndim, shape, t[i].decay, t[i].fan_out);
    }
    L("};");
}

int emit_plan_h(const lwl_plan *p, FILE *f)
{
    emitter ev = { f, p, 0, NULL }, *e = &ev;
    arena_plan a = { 0 };
    make_arena(p, &a);
    L("/* The memory plan of experiment '%s': every shape and offset fixed for", p->name);
    L(" * batch %d at %d pixels. Generated by lwlc from the spec; do not edit. */", p->batch,
      p->size);
    L("#ifndef NET_PLAN_H");
    L("#define NET_PLAN_H");
    L("%s", "");
    L("#include \"lwl_train.h\"");
    L("%s", "");
    L("#define BATCH %d          /* images per view and step (train.batch) */", p->batch);
    L("#define GROUPS %d          /* BN groups of BATCH / GROUPS images */", p->groups);
    L("#define GPUS %d            /* chunks of CHUNK images, one per GPU (train.gpus) */",
      p->spec->train.gpus);
    L("#define CHUNK (BATCH / GPUS)");
    L("#define SIZE %d", p->size);
    L("#define CHANNELS %d      /* layer4's channels */", p->channels);
    L("#define POSITIONS %d     /* layer4's %d x %d positions */", p->fh * p->fw, p->fh, p->fw);
    {
        const lwl_pact *c = &p->acts[p->cam_act];
        L("#define CAM_LAYER %d       /* Grad-CAM's layer (eval.gradcam.layer layer%d) */",
          p->cam_layer, p->cam_layer);
        L("#define CAM_CHANNELS %d  /* its output's channels */", c->c);
        L("#define CAM_H %d", c->h);
        L("#define CAM_W %d", c->w);
        L("#define CAM_POSITIONS %d", c->h * c->w);
    }
    L("#define DIM %d", p->dim);
    L("#define HIDDEN %d", p->hidden);
    L("#define HEADS %d", p->heads);
    L("#define MAPS %d          /* aligned embeddings per image: DIM / HEADS */", p->maps);
    L("#define NPARAMS %d", p->nparams);
    L("#define NBUFS %d", p->nbufs);
    int tp = 0, tb = 0;
    while (tp < p->nparams && p->params[tp].off < p->target_param_floats)
        tp++;
    while (tb < p->nbufs && p->bufs[tb].off < p->target_buf_floats)
        tb++;
    L("#define TARGET_NPARAMS %d  /* the first ones: backbone, proj, proj_obj */", tp);
    L("#define TARGET_NBUFS %d", tb);
    L("#define PARAM_FLOATS %zuu", p->param_floats);
    L("#define BUF_FLOATS %zuu    /* all groups */", p->buf_floats * (size_t)p->groups);
    L("#define TARGET_PARAM_FLOATS %zuu", p->target_param_floats);
    L("#define TARGET_BUF_FLOATS %zuu", p->target_buf_floats * (size_t)p->groups);
    L("#define ARENA_FLOATS %zuu  /* %.1f MiB */", a.total, a.total * 4.0 / (1 << 20));
    L("%s", "");
    L("/* Slots of the arena (floats from its start). */");
    for (int i = 0; i < a.n; i++)
        L("#define %s (net_arena + %zuu)   /* %zu: %s */", a.v[i].name, a.v[i].off, a.v[i].n,
          a.v[i].what);
    L("%s", "");
    L("extern float *net_arena;");
    L("extern const lwl_tensor_info net_params_info[NPARAMS];");
    L("extern const lwl_tensor_info net_bufs_info[NBUFS];");
    L("%s", "");
    L("int net_init(int threads, int rank, int ranks);");
    L("void net_free(void);");
    L("int net_init_weights(uint64_t seed);");
    L("int net_init_state(uint64_t seed, float *params, float *bufs, float *target, "
      "float *tbufs,");
    L("                   float *momentum);");
    L("int net_step(const float *view1, const float *view2, float lr, float ema, int first,");
    L("             double *loss);");
    L("int net_features(const float *x, float *feat);");
    L("const float *net_maps(const float *x);");
    L("int net_cam(const float *x, const float *dfeat, const float **a, const float **da);");
    L("%s", "");
    L("#endif");
    emit_arena_free(&a);
    return e->failed ? -1 : 0;
}

/* ---- net.c */

/* "ACT1 + 1234u" for activation id `act` of view slot `arena`. */
static const char *act(const lwl_plan *p, const char *base, int id)
{
    static char buf[4][64];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s + %zuu", base, p->acts[id].off);
    return buf[k];
}

/* "(size_t)nb * 1234u": the floats of activation `id` for this rank's images. */
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

/* One conv + BN of the forward pass; `train`: batch statistics (saved in st). */
/* One conv + BN of the forward pass; `train`: batch statistics (saved in st). With a
 * residual block `bl`, the BN also ends the block: relu(bn + shortcut) into bl's output. */
static void fwd_conv(emitter *e, const lwl_plan *p, int i, int train, const char *w,
                     const char *run, const char *a, const char *st, const lwl_pblock *bl,
                     int shortcut)
{
    const lwl_pconv *c = &p->convs[i];
    conv_comment(e, c);
    L("    CK(conv_fwd(%d, %s, %s + %zuu, %s));", i, act(p, a, c->in), w,
      p->params[c->weight].off, act(p, a, c->pre));
    int hw = c->hout * c->wout;
    char res[64] = "NULL";
    if (bl) {
        L("    /* %s: out = relu(bn + shortcut), in the BN's pass */", bl->name);
        snprintf(res, sizeof res, "%s", act(p, a, shortcut));
    }
    const char *out = act(p, a, bl ? bl->out : c->out);
    size_t g = (size_t)p->groups;
    if (train) {
        size_t so = emit_stats_off(p, i);
        L("    bn_train(%s, %s, nb, %d, %d, ng, nc, ACT_BLK(%d),", act(p, a, c->pre), out,
          c->cout, hw, c->cout);
        L("             %s + %zuu, %s + %zuu, %s + %zuu, %s + %zuu,", w, p->params[c->gamma].off, w,
          p->params[c->beta].off, st, so, st, so + g * (size_t)c->cout);
        L("             %s + %zuu + g0 * %d, %s + %zuu + g0 * %d, %d, %s);", run,
          p->bufs[c->mean].off * g, c->cout, run, p->bufs[c->var].off * g, c->cout, c->relu, res);
    } else {
        L("    bn_eval(%s, %s, nb, %d, %d, groups, ACT_BLK(%d),", act(p, a, c->pre), out, c->cout,
          hw, c->cout);
        L("            %s + %zuu, %s + %zuu, %s + %zuu + g0 * %d, %s + %zuu + g0 * %d, %d, %s);",
          w, p->params[c->gamma].off, w, p->params[c->beta].off, run, p->bufs[c->mean].off * g,
          c->cout, run, p->bufs[c->var].off * g, c->cout, c->relu, res);
    }
}

/* The backbone forward: image in activation 0 of `a`, layer4 output in p->feat. */
static void emit_backbone_fwd(emitter *e, const lwl_plan *p, int train)
{
    if (train) {
        L("/* The backbone in train mode: a holds the images at its start; every conv");
        L(" * output, BN output and BN statistics (st) stay for backward; running");
        L(" * statistics (run) are updated per group. */");
        L("static int backbone_train(const float *w, float *run, float *a, float *st, "
          "lwl_pool *pool)");
    } else {
        L("/* The backbone in eval mode with running statistics: of each group");
        L(" * (groups 1: group 0's for every image, as rank 0's saved model). */");
        L("static int backbone_eval(const float *w, const float *run, float *a, int groups,");
        L("                         lwl_pool *pool)");
    }
    L("{");
    fwd_conv(e, p, 0, train, "w", "run", "a", "st", NULL, 0);
    if (p->stem_pool) {
        L("    /* maxpool: 3x3 stride 2 pad 1 */");
        L("    CK(lwl_maxpool_fwd(pool, %s, %s));", act(p, "a", p->pool_in),
          act(p, "a", p->pool_out));
    }
    for (int b = 0; b < p->nblocks; b++) {
        const lwl_pblock *bl = &p->blocks[b];
        L("%s", "");
        L("    /* %s */", bl->name);
        /* the last BN of the block adds the shortcut: the main path's when there is a
         * downsample (which then comes last), else the block's input */
        int last = bl->conv[bl->nconv - 1];
        for (int j = 0; j + 1 < bl->nconv; j++)
            fwd_conv(e, p, bl->conv[j], train, "w", "run", "a", "st", NULL, 0);
        if (bl->down >= 0) {
            fwd_conv(e, p, last, train, "w", "run", "a", "st", NULL, 0);
            fwd_conv(e, p, bl->down, train, "w", "run", "a", "st", bl, p->convs[last].out);
        } else {
            fwd_conv(e, p, last, train, "w", "run", "a", "st", bl, bl->in);
        }
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* Backward of one conv + BN: dy (through the ReLU when the conv has one) → d of
 * its input into `dx` (unless the input is the image). */
static void bwd_conv(emitter *e, const lwl_plan *p, int i, const char *a, const char *st,
                     const char *dy, const char *tmp, const char *dx)
{
    const lwl_pconv *c = &p->convs[i];
    size_t so = emit_stats_off(p, i), g = (size_t)p->groups;
    conv_comment(e, c);
    L("    bn_train_bwd(%s, %s, %s, %s, nb, %d, %d, ng, nc, ACT_BLK(%d),", act(p, a, c->pre),
      dy, c->relu ? act(p, a, c->out) : "NULL", tmp, c->cout, c->hout * c->wout, c->cout);
    L("                 PARAMS + %zuu, %s + %zuu, %s + %zuu,", p->params[c->gamma].off, st, so, st,
      so + g * (size_t)c->cout);
    L("                 GRADS + %zuu, GRADS + %zuu, PARAM_FLOATS);", p->params[c->gamma].off,
      p->params[c->beta].off);
    L("    CK(conv_bwd_weights(%d, %s, %s, GRADS + %zuu));", i, act(p, a, c->in), tmp,
      p->params[c->weight].off);
    emit_bucket_start(e, e->bk->after_conv[i], "last", 0);
    if (dx)
        L("    CK(conv_bwd_data(%d, %s, PARAMS + %zuu, %s));", i, tmp,
          p->params[c->weight].off, dx);
}

/* Backward of one conv + BN in eval mode (Grad-CAM): dy (through the ReLU when the conv has
 * one) times the BN's per-channel scale gamma / sqrt(running_var + eps) of group g0 into
 * `tmp`, then d of the conv's input into `dx`; no weight or BN gradient. */
static void bwd_conv_eval(emitter *e, const lwl_plan *p, int i, const char *dy, const char *tmp,
                          const char *dx)
{
    const lwl_pconv *c = &p->convs[i];
    size_t g = (size_t)p->groups;
    conv_comment(e, c);
    L("    bn_eval_bwd(%s, %s, %s, nb, %d, %d, ACT_BLK(%d),", dy,
      c->relu ? act(p, "TACT", c->out) : "NULL", tmp, c->cout, c->hout * c->wout, c->cout);
    L("                PARAMS + %zuu, BUFS + %zuu + g0 * %d);", p->params[c->gamma].off,
      p->bufs[c->var].off * g, c->cout);
    L("    CK(conv_bwd_data(%d, %s, PARAMS + %zuu, %s));", i, tmp, p->params[c->weight].off, dx);
}

/* Backward of residual block b: scratch S<x> holds d(block output) and stays for the
 * shortcut; returns the scratch holding d(block input). eval 0: the training backward of
 * activations a and statistics st, gradients into GRADS; eval 1: input gradients only,
 * through the eval-mode BNs of the activations in TACT (net_cam). */
static int emit_block_bwd(emitter *e, const lwl_plan *p, int b, int x, int eval)
{
    static const char *const S[4] = { "S0", "S1", "S2", "S3" };
    const lwl_pblock *bl = &p->blocks[b];
    const char *X = S[x], *Y = S[(x + 1) % 4], *Z = S[(x + 2) % 4], *W = S[(x + 3) % 4];
    L("%s", "");
    L("    /* %s: d through relu(main + shortcut) */", bl->name);
    L("    relu_bwd_inplace(%s, %s, %s);", X, act(p, eval ? "TACT" : "a", bl->out),
      act_nb(p, bl->out));
    /* the first conv down reads X and writes d(its input) into Z; each next one reads what
     * the last wrote (its BN in place) and writes into the other of Y, Z */
    const char *dy = X;
    for (int j = bl->nconv - 1; j >= 0; j--) {
        if (eval)
            bwd_conv_eval(e, p, bl->conv[j], dy, Y, Z);
        else
            bwd_conv(e, p, bl->conv[j], "a", "st", dy, Y, Z);
        const char *t = Y;
        Y = Z;
        Z = t;
        dy = Y;
    }
    /* dy (in Y) is d(block input) from the main path */
    if (bl->down >= 0) {
        if (eval)
            bwd_conv_eval(e, p, bl->down, X, Z, W);
        else
            bwd_conv(e, p, bl->down, "a", "st", X, Z, W);
        L("    add_into(%s, %s, %s);", Y, W, act_nb(p, bl->in));
    } else {
        L("    add_into(%s, %s, %s);", Y, X, act_nb(p, bl->in));
    }
    return (int)(strchr("0123", Y[1]) - "0123");
}

static void emit_backbone_bwd(emitter *e, const lwl_plan *p)
{
    static const char *const S[4] = { "S0", "S1", "S2", "S3" };
    L("/* The backbone's backward for one view: S0 holds d(layer4 output); weight");
    L(" * and BN gradients accumulate into GRADS. Buffers rotate over S0..S3.%s",
      e->bk->n ? "" : " */");
    if (e->bk->n) {
        L(" * last: the step's last view, whose backward makes the gradients final: each");
        L(" * bucket's sum over the ranks starts as soon as the bucket is complete. */");
    }
    L("static int backbone_bwd(const float *a, const float *st, lwl_pool *pool%s)",
      e->bk->n ? ", int last" : "");
    L("{");
    L("    (void)pool;");
    int x = 0;  /* the scratch holding d(block output) */
    for (int b = p->nblocks - 1; b >= 0; b--)
        x = emit_block_bwd(e, p, b, x, 0);
    const char *X = S[x], *Y = S[(x + 1) % 4];
    L("%s", "");
    L("    /* stem */");
    if (p->stem_pool) {
        L("    CK(lwl_maxpool_bwd(pool, %s, %s));", X, Y);
        bwd_conv(e, p, 0, "a", "st", Y, S[(x + 2) % 4], NULL);
    } else {
        bwd_conv(e, p, 0, "a", "st", X, Y, NULL);
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* net_cam: the eval forward, then d(score) from the pooled features back to the output of
 * the spec's Grad-CAM layer through the blocks after it. */
static void emit_cam(emitter *e, const lwl_plan *p)
{
    static const char *const S[4] = { "S0", "S1", "S2", "S3" };
    int L4 = p->cam_layer == 4;
    L("/* Grad-CAM's inputs at layer%d (eval.gradcam.layer): the online backbone in eval mode on",
      p->cam_layer);
    L(" * x (nb, 3, SIZE, SIZE), as net_maps, and the gradient of the score");
    L(" * sum_i dfeat_i . (pooled layer4 features of image i), dfeat (nb, CHANNELS), with respect");
    if (L4) {
        L(" * to layer4's output: dfeat / POSITIONS at every position.");
    } else {
        L(" * to layer%d's output, back through the ReLUs, residual adds, convolutions and",
          p->cam_layer);
        L(" * eval-mode BNs (a scale per channel) of the blocks after it.");
    }
    L(" * *a and *da: that output (after its block's ReLU) and the gradient, (nb, CAM_CHANNELS,");
    L(" * CAM_POSITIONS) plain, valid until the next call of the network. Input gradients only:");
    L(" * the state does not change. */");
    L("int net_cam(const float *x, const float *dfeat, const float **a, const float **da)");
    L("{");
    L("    memcpy(TACT, x, sizeof(float) * %s);", act_nb(p, 0));
    L("    CK(backbone_eval(PARAMS, BUFS, TACT, 1, pools[2]));");
    L("%s", "");
    L("    /* d(layer4 output): the mean over the positions spreads dfeat evenly */");
    L("    for (int i = 0; i < nb * CHANNELS; i++)");
    L("        for (int j = 0; j < POSITIONS; j++)");
    L("            D_X[(size_t)i * POSITIONS + j] = dfeat[i] / POSITIONS;");
    int x = 0;
    if (!L4) {
        L("    CK(lwl_act_from_plain(feat_layout, D_X, S0));");
        for (int b = p->nblocks - 1; b > p->cam_block; b--)
            x = emit_block_bwd(e, p, b, x, 1);
        L("%s", "");
        L("    /* layer%d's output and its gradient in plain layout */", p->cam_layer);
        L("    CK(lwl_act_to_plain(cam_layout, %s, %s));", act(p, "TACT", p->cam_act),
          S[(x + 1) % 4]);
        L("    CK(lwl_act_to_plain(cam_layout, %s, %s));", S[x], S[(x + 2) % 4]);
        L("    *a = %s;", S[(x + 1) % 4]);
        L("    *da = %s;", S[(x + 2) % 4]);
    } else {
        L("    CK(lwl_act_to_plain(feat_layout, %s, TH_X));", act(p, "TACT", p->feat));
        L("    *a = TH_X;");
        L("    *da = D_X;");
    }
    L("    return 0;");
    L("}");
    L("%s", "");
}

/* mlp_fwd call for MLP i of the head on input `x` into `y`. */
static void mlp_call(emitter *e, const lwl_plan *p, int i, const char *x, const char *y,
                     const char *w, const char *run, const char *pre, const char *train,
                     const char *update)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    size_t g = (size_t)p->groups;
    L("    CK(mlp_fwd(%s, %s, nb * %d, %d, %d, %d, ng, nc, %s + %zuu, %s + %zuu, %s + %zuu, "
      "%s + %zuu,", x, y, m->rows / p->batch, m->in, m->hidden, m->out, w, p->params[m->w0].off,
      w, p->params[m->gamma].off, w, p->params[m->beta].off, w, p->params[m->w3].off);
    L("               %s + %zuu + g0 * %d, %s + %zuu + g0 * %d,", run, p->bufs[m->mean].off * g,
      m->hidden, run, p->bufs[m->var].off * g, m->hidden);
    L("               &(mlp_save){ %s%s_H1, %s%s_H2, %s%s_MEAN, %s%s_INVSTD }, %s, %s));", pre,
      emit_mlp_slot[i], pre, emit_mlp_slot[i], pre, emit_mlp_slot[i], pre, emit_mlp_slot[i], train,
      update);
}

static void mlp_bwd_call(emitter *e, const lwl_plan *p, int i, const char *x, const char *dy,
                         const char *dx, const char *pre)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    L("    CK(mlp_bwd(%s, %s, %s, nb * %d, %d, %d, %d, ng, nc, PARAMS + %zuu, PARAMS + %zuu, "
      "PARAMS + %zuu,", x, dy, dx, m->rows / p->batch, m->in, m->hidden, m->out,
      p->params[m->w0].off, p->params[m->gamma].off, p->params[m->w3].off);
    L("               &(mlp_save){ %s%s_H1, %s%s_H2, %s%s_MEAN, %s%s_INVSTD },", pre,
      emit_mlp_slot[i], pre, emit_mlp_slot[i], pre, emit_mlp_slot[i], pre, emit_mlp_slot[i]);
    L("               GRADS + %zuu, GRADS + %zuu, GRADS + %zuu, GRADS + %zuu, PARAM_FLOATS,",
      p->params[m->w0].off, p->params[m->gamma].off, p->params[m->beta].off,
      p->params[m->w3].off);
    L("               D_TMP));");
}

/* Global rows of z (rows_u, D) into zg (B, D). */
static void emit_gather(emitter *e, const lwl_plan *p, const char *z, const char *zg)
{
    int l = p->lewel ? 1 + p->fh * p->fw : 1;
    if (l == 1) {
        L("    memcpy(%s, %s, sizeof(float) * nb * DIM);", zg, z);
        return;
    }
    L("    for (int b = 0; b < nb; b++)");
    L("        memcpy(%s + (size_t)b * DIM, %s + (size_t)b * %d * DIM, sizeof(float) * DIM);", zg,
      z, l);
}

static void emit_head(emitter *e, const lwl_plan *p)
{
    const lwl_spec *s = p->spec;
    const char *featb = act(p, "a", p->feat);
    int target_train = s->model.target == TARGET_EMA;

    L("/* The online head of view v (its activations in a): proj over [pooled,");
    L(" * positions], %s the predictors. Everything stays for backward. */",
      p->lewel ? "the alignment maps, proj_obj over the aligned features," : "");
    L("static int head_online(int v, const float *a)");
    L("{");
    L("    float *x = v ? H2_X : H1_X;");
    L("    float *u = v ? H2_U : H1_U, *z = v ? H2_Z : H1_Z, *zg = v ? H2_ZG : H1_ZG;");
    L("    CK(lwl_act_to_plain(feat_layout, %s, x));", featb);
    L("    head_rows(x, u, nb, CHANNELS, POSITIONS, %d);", p->lewel);
    L("    if (v == 0) {");
    mlp_call(e, p, 0, "u", "z", "PARAMS", "BUFS", "H1_", "1", "1");
    L("    } else {");
    mlp_call(e, p, 0, "u", "z", "PARAMS", "BUFS", "H2_", "1", "1");
    L("    }");
    emit_gather(e, p, "z", "zg");
    if (p->lewel) {
        L("    float *am = v ? H2_AM : H1_AM, *o = v ? H2_O : H1_O, *zo = v ? H2_ZO : H1_ZO;");
        L("    head_maps(z, am, nb, DIM, POSITIONS);");
        L("    CK(head_align(x, am, o, nb, CHANNELS, POSITIONS, DIM, HEADS));");
    }
    for (int v = 0; v < 2; v++) {
        const char *pre = v ? "H2_" : "H1_";
        L("    %s {", v ? "else" : "if (v == 0)");
        char a1[32], a2[32];
        snprintf(a1, sizeof a1, "%sZG", pre);
        snprintf(a2, sizeof a2, "%sQG", pre);
        mlp_call(e, p, 2, a1, a2, "PARAMS", "BUFS", pre, "1", "1");
        if (p->lewel) {
            snprintf(a1, sizeof a1, "%sO", pre);
            snprintf(a2, sizeof a2, "%sZO", pre);
            mlp_call(e, p, 1, a1, a2, "PARAMS", "BUFS", pre, "1", "1");
            snprintf(a1, sizeof a1, "%sZO", pre);
            snprintf(a2, sizeof a2, "%sQO", pre);
            mlp_call(e, p, 3, a1, a2, "PARAMS", "BUFS", pre, "1", "1");
        }
        L("    }");
    }
    L("    return 0;");
    L("}");
    L("%s", "");

    L("/* The target head of view v: the embeddings the online predictions are");
    L(" * matched to (BN %s). */", target_train ? "in train mode, target ema" :
      "in eval mode with the moving-average statistics, target eman");
    L("static int head_target(int v, const float *a)");
    L("{");
    L("    CK(lwl_act_to_plain(feat_layout, %s, TH_X));", featb);
    L("    head_rows(TH_X, TH_U, nb, CHANNELS, POSITIONS, %d);", p->lewel);
    const char *tr = target_train ? "1" : "0";
    mlp_call(e, p, 0, "TH_U", "TH_Z", "TARGET", "TBUFS", "TH_", tr, tr);
    emit_gather(e, p, "TH_Z", "(v ? T2_ZG : T1_ZG)");
    if (p->lewel) {
        L("    head_maps(TH_Z, TH_AM, nb, DIM, POSITIONS);");
        L("    CK(head_align(TH_X, TH_AM, TH_O, nb, CHANNELS, POSITIONS, DIM, HEADS));");
        mlp_call(e, p, 1, "TH_O", "(v ? T2_ZO : T1_ZO)", "TARGET", "TBUFS", "TH_", tr, tr);
    }
    L("    return 0;");
    L("}");
    L("%s", "");

    L("/* Backward of the online head of view v into S0 = d(layer4 output). */");
    L("static int head_bwd(int v)");
    L("{");
    L("    memset(D_X, 0, sizeof(float) * %s);", act_nb(p, p->feat));
    for (int v = 0; v < 2; v++) {
        const char *pre = v ? "H2_" : "H1_";
        L("    %s {", v ? "else" : "if (v == 0)");
        char x[32], dy[32];
        snprintf(x, sizeof x, "%sZG", pre);
        snprintf(dy, sizeof dy, "%sDQG", pre);
        mlp_bwd_call(e, p, 2, x, dy, "D_ZG", pre);
        emit_bucket_start(e, v ? e->bk->after_mlp[2] : -1, NULL, 0);
        if (p->lewel) {
            snprintf(x, sizeof x, "%sZO", pre);
            snprintf(dy, sizeof dy, "%sDQO", pre);
            mlp_bwd_call(e, p, 3, x, dy, "D_ZO", pre);
            emit_bucket_start(e, v ? e->bk->after_mlp[3] : -1, NULL, 0);
            snprintf(x, sizeof x, "%sO", pre);
            mlp_bwd_call(e, p, 1, x, "D_ZO", "D_O", pre);
            emit_bucket_start(e, v ? e->bk->after_mlp[1] : -1, NULL, 0);
            L("        CK(head_align_bwd(%sX, %sAM, D_O, D_AM, D_X, nb, CHANNELS, POSITIONS, "
              "DIM, HEADS));", pre, pre);
        }
        L("    }");
    }
    int l = p->lewel ? 1 + p->fh * p->fw : 1;
    L("    for (int b = 0; b < nb; b++)");
    L("        memcpy(D_Z + (size_t)b * %d * DIM, D_ZG + (size_t)b * DIM, sizeof(float) * DIM);",
      l);
    if (p->lewel)
        L("    head_maps_bwd(v ? H2_Z : H1_Z, v ? H2_AM : H1_AM, D_AM, D_Z, nb, DIM, "
          "POSITIONS);");
    L("    if (v == 0) {");
    mlp_bwd_call(e, p, 0, "H1_U", "D_Z", "D_U", "H1_");
    L("    } else {");
    mlp_bwd_call(e, p, 0, "H2_U", "D_Z", "D_U", "H2_");
    emit_bucket_start(e, e->bk->after_mlp[0], NULL, 0);
    L("    }");
    L("    head_rows_bwd(D_U, D_X, nb, CHANNELS, POSITIONS, %d);", p->lewel);
    L("    CK(lwl_act_from_plain(feat_layout, D_X, S0));");
    L("    return 0;");
    L("}");
    L("%s", "");
}

static void emit_loss(emitter *e, const lwl_plan *p)
{
    double w = p->spec->model.local_weight;
    L("/* The loss of online view i against target view j over chunk k: %s",
      p->lewel ? "(1 - w) global + w local," : "the global term,");
    L(" * each a mean of 2 - 2 cos over the chunk's rows; the gradients of the predictions");
    L(" * accumulate (model.local_weight %g). */", w);
    L("static double pair_loss(int i, int j, int k)");
    L("{");
    L("    size_t g0 = (size_t)k * CHUNK * DIM;");
    if (p->lewel) {
        L("    size_t l0 = g0 * MAPS;");
        L("    double g = cos_loss((i ? H2_QG : H1_QG) + g0, (j ? T2_ZG : T1_ZG) + g0,");
        L("                        (i ? H2_DQG : H1_DQG) + g0, CHUNK, DIM, %.9gf);", 1 - w);
        L("    double l = cos_loss((i ? H2_QO : H1_QO) + l0, (j ? T2_ZO : T1_ZO) + l0,");
        L("                        (i ? H2_DQO : H1_DQO) + l0, CHUNK * MAPS, DIM, %.9gf);", w);
        L("    return g + l;");
    } else {
        L("    return cos_loss((i ? H2_QG : H1_QG) + g0, (j ? T2_ZG : T1_ZG) + g0,");
        L("                    (i ? H2_DQG : H1_DQG) + g0, CHUNK, DIM, 1.0f);");
    }
    L("}");
    L("%s", "");
}

static void emit_optimizer(emitter *e, const lwl_plan *p)
{
    const lwl_spec *s = p->spec;
    int lars = s->train.optimizer == OPT_LARS;
    L("/* %s over every online tensor: 1-D tensors get neither weight decay nor",
      lars ? "LARS" : "SGD with momentum");
    L(" * adaptation; momentum %g, weight_decay %g%s. */", s->train.momentum,
      s->train.weight_decay, lars ? ", eta from the spec" : "");
    L("static void optimizer_step(float lr, int first)");
    L("{");
    L("    for (int t = 0; t < NPARAMS; t++) {");
    L("        const lwl_tensor_info *ti = &net_params_info[t];");
    L("        float *w = PARAMS + ti->off, *g = GRADS + ti->off, *buf = MOMENTUM + ti->off;");
    L("        float wd = ti->decay ? %.9gf : 0.0f, local = 1.0f;", s->train.weight_decay);
    if (lars) {
        L("        if (ti->decay) {");
        L("            double nw, ng;");
        L("            sq_norms(w, g, ti->numel, &nw, &ng);");
        L("            if (nw > 0 && ng > 0)");
        L("                local = (float)(%.9g * nw / (ng + wd * nw));", s->train.eta);
        L("        }");
    }
    L("        lars_apply(w, buf, g, ti->numel, wd, local, lr, %.9gf, first);",
      s->train.momentum);
    L("    }");
    L("}");
    L("%s", "");
    int eman = s->model.target == TARGET_EMAN;
    L("/* The target follows the online network: t = m t + (1 - m) o over the");
    L(" * parameters%s (model.target %s). */", eman ? " and the BN running statistics" : "",
      eman ? "eman" : "ema");
    L("static void ema_step(float m)");
    L("{");
    L("    ema_apply(TARGET, PARAMS, TARGET_PARAM_FLOATS, m);");
    if (eman)
        L("    ema_apply(TBUFS, BUFS, TARGET_BUF_FLOATS, m);");
    L("}");
    L("%s", "");
}

/* The ranges of a chunk's gradient a step zeroes: every tensor but the convolution
 * weights, which view 1's backward writes whole. */
static void emit_grads_zero(emitter *e)
{
    const lwl_plan *p = e->p;
    char *conv = xcalloc((size_t)p->nparams, 1);
    size_t (*r)[2] = xcalloc((size_t)p->nparams, sizeof *r);
    int n = 0;
    for (int i = 0; i < p->nconvs; i++)
        conv[p->convs[i].weight] = 1;
    for (int i = 0; i < p->nparams; i++) {
        if (conv[i])
            continue;
        if (n && r[n - 1][0] + r[n - 1][1] == p->params[i].off)
            r[n - 1][1] += p->params[i].numel;
        else
            r[n][0] = p->params[i].off, r[n++][1] = p->params[i].numel;
    }
    L("/* The ranges (offset, floats) of a chunk's gradient each step zeroes: all but the");
    L(" * convolution weights, which view 1's backward writes (grads_first) and view 2's");
    L(" * adds to. */");
    L("#define GRADS_ZERO %d", n);
    L("static const size_t grads_zero[GRADS_ZERO][2] = {");
    for (int i = 0; i < n; i++)
        L("    { %zuu, %zuu },", r[i][0], r[i][1]);
    L("};");
    L("static int grads_first;");
    L("%s", "");
    free(conv);
    free(r);
}

int emit_net_c(const lwl_plan *p, FILE *f)
{
    emitter ev = { f, p, 0, NULL }, *e = &ev;
    emit_buckets bk;
    if (emit_buckets_make(p, &bk)) {
        emit_buckets_free(&bk);
        return -1;
    }
    e->bk = &bk;
    const lwl_spec *s = p->spec;
    L("/* The network of experiment '%s': %s (%s stem) with the %s head, its", p->name,
      s->model.backbone == BACKBONE_RESNET50 ? "ResNet-50" : "ResNet-18",
      s->model.stem == STEM_IMAGENET ? "imagenet" : "small", p->lewel ? "LEWEL_B" : "BYOL");
    L(" * forward and backward as explicit schedules, the loss, the optimiser and");
    L(" * the target's moving average, all on the static plan of plan.h.");
    L(" * Generated by lwlc; do not edit. */");
    L("#include <math.h>");
    L("#include <stdio.h>");
    L("#include <stdlib.h>");
    L("#include <string.h>");
    L("%s", "");
    L("#include \"cpu_ops.h\"");
    L("#include \"lwl_philox.h\"");
    L("#include \"plan.h\"");
    L("%s", "");
    L("/* Every call checked: a failure names this file and line and returns. */");
    L("#define CK(call)                                                              \\");
    L("    do {                                                                      \\");
    L("        if ((call) != 0) {                                                    \\");
    L("            fprintf(stderr, \"%%s:%%d: %%s\\n\", __FILE__, __LINE__, lwl_nn_error()); \\");
    L("            return -1;                                                        \\");
    L("        }                                                                     \\");
    L("    } while (0)");
    L("%s", "");
    L("float *net_arena;");
    L("static lwl_conv *conv[%d];", p->nconvs);
    L("static lwl_pool *pools[3];  /* view 1, view 2, target: each keeps its maxima */");
    L("static lwl_act_reorder *feat_layout;  /* layer4's output to and from plain (B, C, P) */");
    if (p->cam_layer != 4)
        L("static lwl_act_reorder *cam_layout;   /* layer%d's (Grad-CAM's) to plain */",
          p->cam_layer);
    L("%s", "");
    L("/* Activations stay in oneDNN's blocked layout between the convolutions (no reorder");
    L(" * per call); ACT_BLK(c) is the channel block of a tensor with c channels. */");
    L("static int act_blk = 1;");
    L("#define ACT_BLK(c) ((c) %% act_blk ? 1 : act_blk)");
    L("%s", "");
    L("/* The convolutions lwlc gives Winograd kernels (forward and input gradient) */");
    L("#define WINO (LWL_CONV_WINO_FWD | LWL_CONV_WINO_BWD_DATA)");
    L("%s", "");
    L("/* The images of a step come in GPUS chunks of CHUNK, one per GPU of the spec: one");
    L(" * process computes nc = GPUS chunks of nb = BATCH images, each of the `world` ranks");
    L(" * of a data-parallel run GPUS / world of them, with the BN groups ng from group g0");
    L(" * (model.norm %s). Every batch-size-dependent call", p->spec->model.norm == NORM_SYNC ?
      "sync: one group, its sums added over the chunks and ranks" :
      "batch: a group per chunk");
    L(" * runs per chunk and every gradient accumulates per chunk, so one process computes");
    L(" * the bits its ranks do. Set by net_init; the shapes are otherwise literals. */");
    L("static int nb = BATCH, nc = GPUS, ng = GROUPS, g0 = 0, world = 1;");
    L("%s", "");
    emit_grads_zero(e);
    L("/* Floats of one image of each convolution's input and output. */");
    {
        char *xs = NULL, *ys = NULL;
        size_t nx = 0, ny = 0;
        FILE *fx = open_memstream(&xs, &nx), *fy = open_memstream(&ys, &ny);
        for (int i = 0; fx && fy && i < p->nconvs; i++) {
            const lwl_pconv *c = &p->convs[i];
            fprintf(fx, "%s%s%du", i ? "," : "", i % 8 ? " " : "\n    ", c->cin * c->hin * c->win);
            fprintf(fy, "%s%s%du", i ? "," : "", i % 8 ? " " : "\n    ",
                    c->cout * c->hout * c->wout);
        }
        if (fx)
            fclose(fx);
        if (fy)
            fclose(fy);
        L("static const size_t conv_in[%d] = {%s\n};", p->nconvs, xs ? xs : "");
        L("static const size_t conv_out[%d] = {%s\n};", p->nconvs, ys ? ys : "");
        free(xs);
        free(ys);
    }
    L("%s", "");
    L("/* Convolution i of x (nb images) into y, chunk by chunk. */");
    L("static int conv_fwd(int i, const float *x, const float *w, float *y)");
    L("{");
    L("    size_t xs = CHUNK * conv_in[i], ys = CHUNK * conv_out[i];");
    L("    for (int k = 0; k < nc; k++)");
    L("        CK(lwl_conv_fwd(conv[i], x + k * xs, w, y + k * ys));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("static int conv_bwd_data(int i, const float *dy, const float *w, float *dx)");
    L("{");
    L("    size_t xs = CHUNK * conv_in[i], ys = CHUNK * conv_out[i];");
    L("    for (int k = 0; k < nc; k++)");
    L("        CK(lwl_conv_bwd_data(conv[i], dy + k * ys, w, dx + k * xs));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("/* The weight gradient of each chunk into that chunk's gradient g (+ k");
    L(" * PARAM_FLOATS) as it leaves oneDNN's layout: written by view 1's backward,");
    L(" * added by view 2's. */");
    L("static int conv_bwd_weights(int i, const float *x, const float *dy, float *g)");
    L("{");
    L("    size_t xs = CHUNK * conv_in[i], ys = CHUNK * conv_out[i];");
    L("    for (int k = 0; k < nc; k++) {");
    L("        float *gk = g + (size_t)k * PARAM_FLOATS;");
    L("        if (grads_first)");
    L("            CK(lwl_conv_bwd_weights(conv[i], x + k * xs, dy + k * ys, gk));");
    L("        else");
    L("            CK(lwl_conv_bwd_weights_add(conv[i], x + k * xs, dy + k * ys, gk));");
    L("    }");
    L("    return 0;");
    L("}");
    L("%s", "");
    tensor_table(e, "net_params_info", p->params, p->nparams, 1);
    L("%s", "");
    tensor_table(e, "net_bufs_info", p->bufs, p->nbufs, p->groups);
    L("%s", "");

    /* init: primitives with literal shapes */
    int sync = p->spec->model.norm == NORM_SYNC;
    L("/* The network's memory and primitives for rank `rank` of `ranks` (0 of 1 in one");
    L(" * process); 0, or -1 with a message. */");
    L("int net_init(int threads, int rank, int ranks)");
    L("{");
    L("    if (ranks < 1 || GPUS %% ranks != 0 || rank < 0 || rank >= ranks) {");
    L("        fprintf(stderr, \"net: train.gpus (%%d) is not divisible by the %%d ranks\\n\", "
      "GPUS, ranks);");
    L("        return -1;");
    L("    }");
    L("    world = ranks;");
    L("    nc = GPUS / ranks;");
    L("    nb = nc * CHUNK;");
    if (sync) {
        L("    ng = 1;");
        L("    g0 = 0;");
        L("    ops_sync_world = ranks;");
    } else {
        L("    ng = nc;");
        L("    g0 = rank * nc;");
    }
    L("    CK(lwl_nn_threads(threads));");
    L("    /* every slot is written before it is read: no need to clear (or touch) it */");
    L("    net_arena = aligned_alloc(64, sizeof(float) * ARENA_FLOATS);");
    L("    if (!net_arena) {");
    L("        fprintf(stderr, \"net: cannot allocate %%.1f MiB\\n\", ARENA_FLOATS * 4.0 / "
      "(1 << 20));");
    L("        return -1;");
    L("    }");
    int widest = p->hidden;
    for (int i = 0; i < p->nconvs; i++)
        widest = p->convs[i].cout > widest ? p->convs[i].cout : widest;
    int rows = p->batch > emit_rows_u(p) ? p->batch : emit_rows_u(p);
    L("    /* BN reductions: (2 images + groups, channels, 2) doubles of the widest BN */");
    L("    CK(cpu_ops_init(%d, GROUPS, %d));", rows, widest);
    L("    CK((act_blk = lwl_nn_act_block()) < 0);");
    L("    /* 3x3 stride-1 convolutions with outputs of 8x8 and more: Winograd forward and");
    L("     * backward-data kernels where oneDNN has them for this CPU (lwlc's plan.c) */");
    for (int i = 0; i < p->nconvs; i++) {
        const lwl_pconv *c = &p->convs[i];
        L("    /* %s%s */", c->conv, c->wino ? ": Winograd" : "");
        L("    CK(!(conv[%d] = lwl_conv_new_algo(CHUNK, %d, %d, %d, %d, %d, %d, %d, %d, 1, %s)));",
          i, c->cin, c->hin, c->win, c->cout, c->k, c->k, c->stride, c->pad,
          c->wino ? "WINO" : "0");
    }
    if (p->stem_pool) {
        const lwl_pact *a = &p->acts[p->pool_in];
        L("    for (int i = 0; i < 3; i++)");
        L("        CK(!(pools[i] = lwl_maxpool_new_act(nb, %d, %d, %d, 3, 2, 1)));", a->c, a->h,
          a->w);
    }
    L("    CK(!(feat_layout = lwl_act_reorder_new(nb, CHANNELS, %d, %d)));", p->fh, p->fw);
    if (p->cam_layer != 4)
        L("    CK(!(cam_layout = lwl_act_reorder_new(nb, CAM_CHANNELS, CAM_H, CAM_W)));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("void net_free(void)");
    L("{");
    L("    for (int i = 0; i < %d; i++)", p->nconvs);
    L("        lwl_conv_free(conv[i]);");
    L("    for (int i = 0; i < 3; i++)");
    L("        lwl_maxpool_free(pools[i]);");
    L("    lwl_act_reorder_free(feat_layout);");
    L("    feat_layout = NULL;");
    if (p->cam_layer != 4) {
        L("    lwl_act_reorder_free(cam_layout);");
        L("    cam_layout = NULL;");
    }
    L("    cpu_ops_free();");
    L("    free(net_arena);");
    L("    net_arena = NULL;");
    L("}");
    L("%s", "");
    L("/* Kaiming-normal (fan_out, ReLU) weights, BN weight 1 and bias 0, running");
    L(" * statistics 0 and 1; the target starts as an exact copy. Normal draws come");
    L(" * from Philox keyed by (seed, tensor) through Box-Muller. Into the arrays given");
    L(" * (laid out as PARAMS, BUFS, TARGET, TBUFS, MOMENTUM): net.cu starts from it too. */");
    L("int net_init_state(uint64_t seed, float *params, float *bufs, float *target, "
      "float *tbufs,");
    L("                   float *momentum)");
    L("{");
    L("    for (int t = 0; t < NPARAMS; t++) {");
    L("        const lwl_tensor_info *ti = &net_params_info[t];");
    L("        float *w = params + ti->off;");
    L("        if (!ti->fan_out) {");
    L("            float fill = strstr(ti->name, \".bias\") ? 0.0f : 1.0f;");
    L("            for (size_t i = 0; i < ti->numel; i++)");
    L("                w[i] = fill;");
    L("            continue;");
    L("        }");
    L("        double std = sqrt(2.0 / ti->fan_out);");
    L("        for (size_t i = 0; i < ti->numel; i += 4) {");
    L("            uint32_t r[4];");
    L("            lwl_rng_block(seed, 0xFFFFFFFFu, (uint32_t)t, 0xFFFEu, 0, (uint32_t)(i / 4), "
      "r);");
    L("            for (int k = 0; k < 4 && i + k < ti->numel; k += 2) {");
    L("                double u1 = 1.0 - lwl_rng_u01(r[k]), u2 = lwl_rng_u01(r[k + 1]);");
    L("                double rad = sqrt(-2.0 * log(u1));");
    L("                w[i + k] = (float)(std * rad * cos(6.283185307179586 * u2));");
    L("                if (i + k + 1 < ti->numel)");
    L("                    w[i + k + 1] = (float)(std * rad * sin(6.283185307179586 * u2));");
    L("            }");
    L("        }");
    L("    }");
    L("    for (int t = 0; t < NBUFS; t++) {");
    L("        const lwl_tensor_info *ti = &net_bufs_info[t];");
    L("        float fill = strstr(ti->name, \"running_var\") ? 1.0f : 0.0f;");
    L("        for (size_t i = 0; i < ti->numel * GROUPS; i++)");
    L("            bufs[ti->off + i] = fill;");
    L("    }");
    L("    memcpy(target, params, sizeof(float) * TARGET_PARAM_FLOATS);");
    L("    memcpy(tbufs, bufs, sizeof(float) * TARGET_BUF_FLOATS);");
    L("    memset(momentum, 0, sizeof(float) * PARAM_FLOATS);");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("int net_init_weights(uint64_t seed)");
    L("{");
    L("    return net_init_state(seed, PARAMS, BUFS, TARGET, TBUFS, MOMENTUM);");
    L("}");
    L("%s", "");

    emit_backbone_fwd(e, p, 1);
    emit_backbone_fwd(e, p, 0);
    if (bk.n) {
        L("/* Gradient bucket GRADS [lo, lo + n), final for this step (the %d buckets of the",
          bk.n);
        L(" * step, in the order the backward completes them: lwlc's emit.h): the chunks'");
        L(" * gradients added in chunk order, then its sum over the ranks in rank order (the");
        L(" * same sum) started, which step_grads waits for. 0, or -1 with a message. */");
        L("static int grads_bucket(size_t lo, size_t n)");
        L("{");
        L("    for (int k = 1; k < nc; k++)");
        L("        add_into(GRADS + lo, GRADS + (size_t)k * PARAM_FLOATS + lo, n);");
        L("    return world > 1 ? lwl_comm_sum_start(GRADS + lo, n) : 0;");
        L("}");
        L("%s", "");
    }
    emit_backbone_bwd(e, p);
    emit_cam(e, p);
    emit_head(e, p);
    emit_loss(e, p);
    emit_optimizer(e, p);

    int eman = s->model.target == TARGET_EMAN;
    L("/* The gradients of a step on the two views (nb, 3, SIZE, SIZE) each: target");
    L(" * forward, online forward, the symmetric loss, backward, the gradients");
    L(" * averaged over the ranks. *loss is the mean over the ranks; 1 if it is not");
    L(" * finite. */");
    L("static int step_grads(const float *view1, const float *view2, double *loss)");
    L("{");
    L("    const float *views[2] = { view1, view2 };");
    L("    size_t image = sizeof(float) * %s;", act_nb(p, 0));
    L("    for (int k = 0; k < nc; k++)");
    L("        for (int i = 0; i < GRADS_ZERO; i++)");
    L("            memset(GRADS + (size_t)k * PARAM_FLOATS + grads_zero[i][0], 0,");
    L("                   sizeof(float) * grads_zero[i][1]);");
    L("%s", "");
    L("    /* target: no gradient */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        memcpy(TACT, views[v], image);");
    if (eman)
        L("        CK(backbone_eval(TARGET, TBUFS, TACT, ng, pools[2]));");
    else
        L("        CK(backbone_train(TARGET, TBUFS, TACT, TSTATS, pools[2]));");
    L("        CK(head_target(v, TACT));");
    L("    }");
    L("%s", "");
    L("    /* online */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        float *a = v ? ACT2 : ACT1;");
    L("        memcpy(a, views[v], image);");
    L("        CK(backbone_train(PARAMS, BUFS, a, v ? STATS2 : STATS1, pools[v]));");
    L("        CK(head_online(v, a));");
    L("    }");
    L("%s", "");
    L("    /* the loss over both view orders, and d(predictions) */");
    L("    memset(H1_DQG, 0, sizeof(float) * nb * DIM);");
    L("    memset(H2_DQG, 0, sizeof(float) * nb * DIM);");
    if (p->lewel) {
        L("    memset(H1_DQO, 0, sizeof(float) * nb * MAPS * DIM);");
        L("    memset(H2_DQO, 0, sizeof(float) * nb * MAPS * DIM);");
    }
    L("    *loss = 0;");
    L("    for (int k = 0; k < nc; k++)");
    L("        *loss += pair_loss(0, 1, k) + pair_loss(1, 0, k);");
    L("    /* the mean over the chunks of every rank: every rank sees it, and stops together */");
    L("    if (world > 1 && lwl_comm_sum_d(loss, 1))");
    L("        return -1;");
    if (s->train.gpus > 1)
        L("    *loss /= GPUS;");
    L("    if (!isfinite(*loss))");
    L("        return 1;");
    L("%s", "");
    L("    /* backward */");
    L("    for (int v = 0; v < 2; v++) {");
    L("        const float *a = v ? ACT2 : ACT1;");
    L("        grads_first = v == 0;");
    L("        CK(head_bwd(v));");
    L("        CK(backbone_bwd(a, v ? STATS2 : STATS1, pools[v]%s));",
      e->bk->n ? ", v == 1" : "");
    L("    }");
    L("%s", "");
    if (e->bk->n) {
        L("    /* every bucket's sum over the ranks, started during the backward: wait for them,");
        L("     * then their mean */");
        L("    if (lwl_comm_sum_wait())");
        L("        return -1;");
        L("    scale_inplace(GRADS, PARAM_FLOATS, 1.0f / GPUS);");
    }
    L("    return 0;");
    L("}");
    L("%s", "");
    L("/* One pre-training step: its gradients with the weights held (each convolution");
    L(" * reorders the online and the target weights once, not on every call), the");
    L(" * optimiser at lr, then the target's average with momentum ema. */");
    L("int net_step(const float *view1, const float *view2, float lr, float ema, int first,");
    L("             double *loss)");
    L("{");
    L("    lwl_nn_hold_weights(1);");
    L("    int r = step_grads(view1, view2, loss);");
    L("    lwl_nn_hold_weights(0);");
    L("    if (r != 0)");
    L("        return r;");
    L("    optimizer_step(lr, first);");
    L("    ema_step(ema);");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("/* layer4's output (nb, CHANNELS, POSITIONS) of x (nb, 3, SIZE, SIZE): the");
    L(" * online backbone in eval mode with group g0's running statistics (group 0's");
    L(" * in one process and on rank 0, where evaluation runs). */");
    L("const float *net_maps(const float *x)");
    L("{");
    L("    memcpy(TACT, x, sizeof(float) * %s);", act_nb(p, 0));
    L("    if (backbone_eval(PARAMS, BUFS, TACT, 1, pools[2]) != 0)");
    L("        return NULL;");
    L("    if (lwl_act_to_plain(feat_layout, %s, TH_X) != 0) {", act(p, "TACT", p->feat));
    L("        fprintf(stderr, \"%%s:%%d: %%s\\n\", __FILE__, __LINE__, lwl_nn_error());");
    L("        return NULL;");
    L("    }");
    L("    return TH_X;");
    L("}");
    L("%s", "");
    L("/* Pooled layer4 features (nb, CHANNELS) of x: the mean of net_maps. */");
    L("int net_features(const float *x, float *feat)");
    L("{");
    L("    const float *f = net_maps(x);");
    L("    if (!f)");
    L("        return -1;");
    L("    for (int i = 0; i < nb * CHANNELS; i++) {");
    L("        double s = 0;");
    L("        for (int j = 0; j < POSITIONS; j++)");
    L("            s += f[(size_t)i * POSITIONS + j];");
    L("        feat[i] = (float)(s / POSITIONS);");
    L("    }");
    L("    return 0;");
    L("}");
    emit_buckets_free(&bk);
    return e->failed ? -1 : 0;
}
