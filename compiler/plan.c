/* Lowering: a checked spec to the plan of its training program. The backbone
 * is torchvision's ResNet v1.5 (BasicBlock for resnet18, Bottleneck with the
 * stride on the 3x3 conv for resnet50); the head is LEWEL_B's. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Appends a tensor to a list; returns its index. */
static int add_tensor(lwl_ptensor **v, int *n, size_t *floats, char *name, int ndim,
                      const int *shape, int decay, int fan_out, float fill)
{
    *v = xrealloc(*v, (size_t)(*n + 1) * sizeof **v);
    lwl_ptensor *t = &(*v)[*n];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
    t->off = *floats;
    /* Keep every tensor 16-float aligned so vector loops start aligned. */
    *floats += (t->numel + 15) / 16 * 16;
    t->decay = decay;
    t->fan_out = fan_out;
    t->fill = fill;
    return (*n)++;
}

static int add_act(lwl_plan *p, int c, int h, int w)
{
    p->acts = xrealloc(p->acts, (size_t)(p->nacts + 1) * sizeof *p->acts);
    lwl_pact *a = &p->acts[p->nacts];
    a->c = c;
    a->h = h;
    a->w = w;
    a->off = p->act_floats;
    size_t n = (size_t)p->batch * (size_t)c * (size_t)h * (size_t)w;
    p->act_floats += (n + 15) / 16 * 16;
    if (n > p->max_act)
        p->max_act = n;
    return p->nacts++;
}

/* A BatchNorm's weight, bias and running statistics under `bn`. */
static void add_bn(lwl_plan *p, const char *bn, int c, int *gamma, int *beta, int *mean,
                   int *var)
{
    *gamma = add_tensor(&p->params, &p->nparams, &p->param_floats,
                        xasprintf("%s.weight", bn), 1, &c, 0, 0, 1.0f);
    *beta = add_tensor(&p->params, &p->nparams, &p->param_floats,
                       xasprintf("%s.bias", bn), 1, &c, 0, 0, 0.0f);
    *mean = add_tensor(&p->bufs, &p->nbufs, &p->buf_floats,
                       xasprintf("%s.running_mean", bn), 1, &c, 0, 0, 0.0f);
    *var = add_tensor(&p->bufs, &p->nbufs, &p->buf_floats,
                      xasprintf("%s.running_var", bn), 1, &c, 0, 0, 1.0f);
}

/* conv (k x k, stride, pad) + BN on activation `in`; returns the conv index. */
static int add_conv(lwl_plan *p, const char *conv, const char *bn, int in, int cout, int k,
                    int stride, int pad, int relu)
{
    const lwl_pact *a = &p->acts[in];
    lwl_pconv c;
    memset(&c, 0, sizeof c);
    c.conv = xstrdup(conv);
    c.bn = xstrdup(bn);
    c.cin = a->c;
    c.hin = a->h;
    c.win = a->w;
    c.cout = cout;
    c.k = k;
    c.stride = stride;
    c.pad = pad;
    c.hout = (a->h + 2 * pad - k) / stride + 1;
    c.wout = (a->w + 2 * pad - k) / stride + 1;
    c.relu = relu;
    c.in = in;
    /* oneDNN's Winograd F(4x4, 3x3) against its direct kernel, fp32 with AVX-512, 2 threads
     * (2026-12): 1.5-1.8x faster forward and backward-data from 8x8 outputs up, even at 4x4,
     * 1.3-7x slower below; the weight gradient is never faster. Its kernels take channels in
     * blocks of 16. */
    c.wino = k == 3 && stride == 1 && c.hout * c.wout >= 64 && a->c % 16 == 0 && cout % 16 == 0;
    int shape[4] = { cout, a->c, k, k };
    c.weight = add_tensor(&p->params, &p->nparams, &p->param_floats,
                          xasprintf("%s.weight", conv), 4, shape, 1, cout * k * k, 0);
    add_bn(p, bn, cout, &c.gamma, &c.beta, &c.mean, &c.var);
    c.pre = add_act(p, cout, c.hout, c.wout);
    c.out = add_act(p, cout, c.hout, c.wout);
    p->convs = xrealloc(p->convs, (size_t)(p->nconvs + 1) * sizeof *p->convs);
    p->convs[p->nconvs] = c;
    return p->nconvs++;
}

/* One residual block of layer `layer`, index `i`; returns its output act. */
static int add_block(lwl_plan *p, int bottleneck, int layer, int i, int in, int planes,
                     int stride)
{
    lwl_pblock b;
    memset(&b, 0, sizeof b);
    b.name = xasprintf("layer%d.%d", layer, i);
    b.in = in;
    int expansion = bottleneck ? 4 : 1;
    int cin = p->acts[in].c, x = in;
    char *cn, *bn;
    if (bottleneck) {
        int ks[3] = { 1, 3, 1 }, outs[3] = { planes, planes, planes * 4 };
        for (int j = 0; j < 3; j++) {
            cn = xasprintf("%s.conv%d", b.name, j + 1);
            bn = xasprintf("%s.bn%d", b.name, j + 1);
            b.conv[j] = add_conv(p, cn, bn, x, outs[j], ks[j], j == 1 ? stride : 1,
                                 ks[j] / 2, j < 2);
            x = p->convs[b.conv[j]].out;
            free(cn);
            free(bn);
        }
        b.nconv = 3;
    } else {
        for (int j = 0; j < 2; j++) {
            cn = xasprintf("%s.conv%d", b.name, j + 1);
            bn = xasprintf("%s.bn%d", b.name, j + 1);
            b.conv[j] = add_conv(p, cn, bn, x, planes, 3, j == 0 ? stride : 1, 1, j == 0);
            x = p->convs[b.conv[j]].out;
            free(cn);
            free(bn);
        }
        b.nconv = 2;
    }
    b.down = -1;
    if (stride != 1 || cin != planes * expansion) {
        cn = xasprintf("%s.downsample.0", b.name);
        bn = xasprintf("%s.downsample.1", b.name);
        b.down = add_conv(p, cn, bn, in, planes * expansion, 1, stride, 0, 0);
        free(cn);
        free(bn);
    }
    const lwl_pact *o = &p->acts[x];
    b.out = add_act(p, o->c, o->h, o->w);
    p->blocks = xrealloc(p->blocks, (size_t)(p->nblocks + 1) * sizeof *p->blocks);
    p->blocks[p->nblocks++] = b;
    return b.out;
}

static void add_mlp(lwl_plan *p, lwl_pmlp *m, const char *name, int in, int hidden, int out,
                    int rows)
{
    m->name = name;
    m->in = in;
    m->hidden = hidden;
    m->out = out;
    m->rows = rows;
    int s0[2] = { hidden, in }, s3[2] = { out, hidden };
    m->w0 = add_tensor(&p->params, &p->nparams, &p->param_floats,
                       xasprintf("%s.0.weight", name), 2, s0, 1, hidden, 0);
    char *bn = xasprintf("%s.1", name);
    add_bn(p, bn, hidden, &m->gamma, &m->beta, &m->mean, &m->var);
    free(bn);
    m->w3 = add_tensor(&p->params, &p->nparams, &p->param_floats,
                       xasprintf("%s.3.weight", name), 2, s3, 1, out, 0);
}

/* What the code generator cannot do yet, reported at the spec's lines. */
static int plan_supported(const lwl_spec *s, lwl_diag *d)
{
    int before = d->errors;
    if (s->augment.semantics == SEM_FLOAT) {
        lwl_loc at = s->augment.semantics_loc.src ? s->augment.semantics_loc
                     : (lwl_loc){ s->src, 0, 0, 0, 0 };
        diag_error(d, at, "semantics float is not implemented yet; use semantics pil");
    }
    for (int v = 0; v < 2; v++)
        for (int i = 1; i < s->augment.view[v].nops; i++)
            if (s->augment.view[v].ops[i].kind == OP_RESIZED_CROP)
                diag_error(d, s->augment.view[v].ops[i].loc,
                           "resized_crop must be the first transform of a view (it reads the "
                           "decoded image); move it up");
    return d->errors - before;
}

int plan_build(const lwl_spec *s, lwl_plan *p, lwl_diag *d)
{
    memset(p, 0, sizeof *p);
    if (plan_supported(s, d)) {
        diag_flush(d);
        return 1;
    }
    p->spec = s;
    p->name = s->name;
    p->batch = s->train.batch;
    p->groups = s->model.norm == NORM_BATCH ? s->train.gpus : 1;
    p->size = s->augment.size;

    /* Stem: the image, then conv1/bn1/relu (and the max-pool). */
    int img = add_act(p, 3, p->size, p->size);
    int x;
    if (s->model.stem == STEM_IMAGENET) {
        int c0 = add_conv(p, "conv1", "bn1", img, 64, 7, 2, 3, 1);
        x = p->convs[c0].out;
        const lwl_pact *a = &p->acts[x];
        p->stem_pool = 1;
        p->pool_in = x;
        x = p->pool_out = add_act(p, 64, (a->h + 2 - 3) / 2 + 1, (a->w + 2 - 3) / 2 + 1);
    } else {
        int c0 = add_conv(p, "conv1", "bn1", img, 64, 3, 1, 1, 1);
        x = p->convs[c0].out;
    }

    int bottleneck = s->model.backbone == BACKBONE_RESNET50;
    static const int depth18[4] = { 2, 2, 2, 2 }, depth50[4] = { 3, 4, 6, 3 };
    const int *depth = bottleneck ? depth50 : depth18;
    p->cam_layer = s->eval.gradcam.layer + 1;
    for (int l = 0; l < 4; l++) {
        for (int i = 0; i < depth[l]; i++)
            x = add_block(p, bottleneck, l + 1, i, x, 64 << l, i == 0 && l > 0 ? 2 : 1);
        if (l + 1 == p->cam_layer) {
            p->cam_block = p->nblocks - 1;
            p->cam_act = x;
        }
    }
    p->feat = x;
    p->channels = p->acts[x].c;
    p->fh = p->acts[x].h;
    p->fw = p->acts[x].w;
    p->backbone_floats = p->param_floats;

    /* Head: proj over [pooled, positions], proj_obj over the aligned maps. */
    p->lewel = s->model.head == HEAD_LEWEL_B;
    p->heads = s->model.heads;
    p->dim = s->model.dim;
    p->hidden = s->model.hidden;
    p->maps = p->dim / p->heads;
    int P = p->fh * p->fw, B = p->batch;
    add_mlp(p, &p->proj, "proj", p->channels, p->hidden, p->dim, B * (p->lewel ? 1 + P : 1));
    if (p->lewel)
        add_mlp(p, &p->proj_obj, "proj_obj", p->channels, p->hidden, p->dim, B * p->maps);
    p->target_param_floats = p->param_floats;
    p->target_buf_floats = p->buf_floats;
    add_mlp(p, &p->predictor, "predictor", p->dim, p->hidden, p->dim, B);
    if (p->lewel)
        add_mlp(p, &p->predictor_obj, "predictor_obj", p->dim, p->hidden, p->dim, B * p->maps);
    return 0;
}

void plan_free(lwl_plan *p)
{
    for (int i = 0; i < p->nparams; i++)
        free(p->params[i].name);
    for (int i = 0; i < p->nbufs; i++)
        free(p->bufs[i].name);
    for (int i = 0; i < p->nconvs; i++) {
        free(p->convs[i].conv);
        free(p->convs[i].bn);
    }
    for (int i = 0; i < p->nblocks; i++)
        free(p->blocks[i].name);
    free(p->params);
    free(p->bufs);
    free(p->convs);
    free(p->blocks);
    free(p->acts);
    memset(p, 0, sizeof *p);
}
