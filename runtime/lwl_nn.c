/* CPU fp32 convolution, max pooling and GEMM on oneDNN. Every primitive lets oneDNN choose its
 * preferred memory layout for what the caller gives in another; the caller's tensors (plain
 * NCHW/OIHW, or activations in the blocked layout of lwl_nn_act_block) are reordered into
 * buffers made at creation, so a call does reorders and one primitive, never a malloc. */
#include "lwl_nn.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char nn_err[512];

const char *lwl_nn_error(void)
{
    return nn_err;
}

__attribute__((format(printf, 3, 4))) static void nn_fail(const char *file, int line,
                                                          const char *fmt, ...)
{
    int n = snprintf(nn_err, sizeof nn_err, "%s:%d: ", file, line);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(nn_err + n, sizeof nn_err - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Every oneDNN call goes through DNNL: on failure it records file:line, the call and oneDNN's
 * status name, then jumps to the function's `fail` label. */
#define DNNL(call)                                                                             \
    do {                                                                                       \
        dnnl_status_t st_ = (call);                                                            \
        if (st_ != dnnl_success) {                                                             \
            nn_fail(__FILE__, __LINE__, "oneDNN %s: %s", dnnl_status2str(st_), #call);         \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)
#define NN_FAIL(...)                                                                           \
    do {                                                                                       \
        nn_fail(__FILE__, __LINE__, __VA_ARGS__);                                              \
        goto fail;                                                                             \
    } while (0)

/* ---- engine and stream, shared by every object; made with the first, freed with the last */
static dnnl_engine_t nn_engine;
static dnnl_stream_t nn_stream;
static int nn_users;

static int nn_acquire(void)
{
    if (nn_users == 0) {
        DNNL(dnnl_engine_create(&nn_engine, dnnl_cpu, 0));
        DNNL(dnnl_stream_create(&nn_stream, nn_engine, dnnl_stream_default_flags));
    }
    nn_users++;
    return 0;
fail:
    if (nn_engine)
        dnnl_engine_destroy(nn_engine);
    nn_engine = NULL;
    return -1;
}

static void nn_release(void)
{
    if (--nn_users > 0)
        return;
    dnnl_stream_destroy(nn_stream);
    dnnl_engine_destroy(nn_engine);
    nn_stream = NULL;
    nn_engine = NULL;
}

int lwl_nn_threads(int n)
{
    if (n < 1) {
        nn_fail(__FILE__, __LINE__, "lwl_nn_threads: need at least 1 thread, got %d", n);
        return -1;
    }
    omp_set_num_threads(n);
    return 0;
}

/* Runs fn(ctx, i) for i in [0, n) on the OpenMP threads oneDNN uses (one pool: no threads
 * spinning against each other). Which thread runs an i must not change the result. */
void lwl_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        fn(ctx, i);
}

/* ---- one argument of a primitive: the caller's plain tensor and, when the primitive wants
 * another layout, a buffer in that layout with the reorder between them. */
typedef struct {
    dnnl_memory_t user;       /* plain layout; its handle is set on every call */
    dnnl_memory_t inner;      /* primitive's layout, owns its buffer; NULL if plain is used */
    dnnl_primitive_t reorder; /* user -> inner for inputs, inner -> user for outputs */
    int output;
} nn_arg;

static int arg_init(nn_arg *a, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                    int output)
{
    dnnl_primitive_desc_t rpd = NULL;

    a->output = output;
    DNNL(dnnl_memory_create(&a->user, plain, nn_engine, DNNL_MEMORY_NONE));
    if (dnnl_memory_desc_equal(plain, want))
        return 0;
    DNNL(dnnl_memory_create(&a->inner, want, nn_engine, DNNL_MEMORY_ALLOCATE));
    if (output)
        DNNL(dnnl_reorder_primitive_desc_create(&rpd, want, nn_engine, plain, nn_engine, NULL));
    else
        DNNL(dnnl_reorder_primitive_desc_create(&rpd, plain, nn_engine, want, nn_engine, NULL));
    DNNL(dnnl_primitive_create(&a->reorder, rpd));
    DNNL(dnnl_primitive_desc_destroy(rpd));
    return 0;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return -1;
}

static void arg_free(nn_arg *a)
{
    if (a->reorder)
        dnnl_primitive_destroy(a->reorder);
    if (a->inner)
        dnnl_memory_destroy(a->inner);
    if (a->user)
        dnnl_memory_destroy(a->user);
    memset(a, 0, sizeof *a);
}

static int arg_reorder(nn_arg *a)
{
    dnnl_exec_arg_t args[2] = {
        {DNNL_ARG_FROM, a->output ? a->inner : a->user},
        {DNNL_ARG_TO, a->output ? a->user : a->inner},
    };

    DNNL(dnnl_primitive_execute(a->reorder, nn_stream, 2, args));
    return 0;
fail:
    return -1;
}

/* Points the argument at the caller's tensor; for an input, brings it into the inner layout. */
static int arg_bind(nn_arg *a, const void *ptr)
{
    DNNL(dnnl_memory_set_data_handle(a->user, (void *)ptr));
    if (a->inner && !a->output)
        return arg_reorder(a);
    return 0;
fail:
    return -1;
}

static dnnl_memory_t arg_mem(const nn_arg *a)
{
    return a->inner ? a->inner : a->user;
}

/* ---- a primitive with its arguments and its own scratchpad */
enum { NN_MAXARG = 4 };
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t scratch;
    nn_arg arg[NN_MAXARG];
    int argname[NN_MAXARG];
    int narg;
    dnnl_memory_t workspace; /* pooling: borrowed from the forward object, not owned */
} nn_op;

/* Makes the primitive of pd and its scratchpad; the args are added by op_arg. */
static int op_init(nn_op *op, const dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);

    DNNL(dnnl_primitive_create(&op->prim, pd));
    if (smd && dnnl_memory_desc_get_size(smd) > 0)
        DNNL(dnnl_memory_create(&op->scratch, smd, nn_engine, DNNL_MEMORY_ALLOCATE));
    return 0;
fail:
    return -1;
}

/* Adds argument `name` (DNNL_ARG_*) in the layout pd asks for through query, plain given. */
static int op_arg(nn_op *op, const dnnl_primitive_desc_t pd, dnnl_query_t query,
                  const dnnl_memory_desc_t *plain, int name, int output)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, query, 0);

    if (!want)
        NN_FAIL("oneDNN primitive has no memory for query %d", (int)query);
    op->argname[op->narg] = name;
    return arg_init(&op->arg[op->narg++], plain, want, output);
fail:
    return -1;
}

static void op_free(nn_op *op)
{
    for (int i = 0; i < op->narg; i++)
        arg_free(&op->arg[i]);
    if (op->scratch)
        dnnl_memory_destroy(op->scratch);
    if (op->prim)
        dnnl_primitive_destroy(op->prim);
    memset(op, 0, sizeof *op);
}

/* Binds the caller's pointers (in the order the args were added), runs the primitive, brings
 * the outputs back into plain layout and waits. */
static int op_run(nn_op *op, const void *const *ptr)
{
    dnnl_exec_arg_t args[NN_MAXARG + 2];
    int n = 0;

    for (int i = 0; i < op->narg; i++) {
        if (arg_bind(&op->arg[i], ptr[i]) != 0)
            return -1;
        args[n++] = (dnnl_exec_arg_t){op->argname[i], arg_mem(&op->arg[i])};
    }
    if (op->scratch)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, op->scratch};
    if (op->workspace)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, op->workspace};
    DNNL(dnnl_primitive_execute(op->prim, nn_stream, n, args));
    for (int i = 0; i < op->narg; i++)
        if (op->arg[i].output && op->arg[i].inner && arg_reorder(&op->arg[i]) != 0)
            return -1;
    DNNL(dnnl_stream_wait(nn_stream));
    return 0;
fail:
    return -1;
}

static int md_plain(dnnl_memory_desc_t *md, int a, int b, int c, int d, dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = {a, b, c, d};

    DNNL(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag));
    return 0;
fail:
    return -1;
}

static int md_any(dnnl_memory_desc_t *md, int a, int b, int c, int d)
{
    return md_plain(md, a, b, c, d, dnnl_format_tag_any);
}

/* ---- the activation layout: oneDNN's preferred channel blocking on this CPU, found once by
 * asking it for a ResNet-like convolution (64 -> 64 channels, 3x3). Keeping the step's
 * activations in it saves a reorder of every conv's input and output. */
static int nn_block;

static int find_block(void)
{
    dnnl_memory_desc_t x, wt, y, b16, b8;
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t one = {1, 1};
    const dnnl_memory_desc_t *want;
    int blk = 1;

    if (md_any(&x, 2, 64, 8, 8) || md_any(&wt, 64, 64, 3, 3) || md_any(&y, 2, 64, 8, 8) ||
        md_plain(&b16, 2, 64, 8, 8, dnnl_nChw16c) || md_plain(&b8, 2, 64, 8, 8, dnnl_nChw8c))
        return -1;
    DNNL(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct,
                                            &x, &wt, NULL, &y, one, one, one));
    DNNL(dnnl_primitive_desc_create(&pd, &d, NULL, nn_engine, NULL));
    want = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    if (want && dnnl_memory_desc_equal(want, &b16))
        blk = 16;
    else if (want && dnnl_memory_desc_equal(want, &b8))
        blk = 8;
    dnnl_primitive_desc_destroy(pd);
    return blk;
fail:
    return -1;
}

int lwl_nn_act_block(void)
{
    if (nn_block == 0 && nn_acquire() == 0) {
        int b = find_block();
        nn_block = b > 0 ? b : 0;
        nn_release();
    }
    return nn_block > 0 ? nn_block : -1;
}

/* The tag of an activation with c channels: blocked when c is a multiple of the block. */
static dnnl_format_tag_t act_tag(int c)
{
    if (nn_block == 16 && c % 16 == 0)
        return dnnl_nChw16c;
    if (nn_block == 8 && c % 8 == 0)
        return dnnl_nChw8c;
    return dnnl_nchw;
}

/* A primitive attribute asking for a scratchpad the caller owns. */
static int attr_user_scratch(dnnl_primitive_attr_t *attr)
{
    DNNL(dnnl_primitive_attr_create(attr));
    DNNL(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user));
    return 0;
fail:
    return -1;
}

/* ---- convolution */
struct lwl_conv {
    int n, c, h, w, k, r, s, stride, pad, oh, ow;
    int act;     /* x, y (and their gradients) in the activation layout, not plain NCHW */
    nn_op fwd;   /* x, wt -> y */
    nn_op bdata; /* dy, wt -> dx */
    nn_op bwts;  /* x, dy -> dwt */
};

void lwl_conv_out_hw(const lwl_conv *cv, int *oh, int *ow)
{
    *oh = cv->oh;
    *ow = cv->ow;
}

/* The three primitive descriptors of one convolution; backward ones use fwd as their hint. */
static int conv_pds(lwl_conv *cv, dnnl_primitive_attr_t attr, dnnl_primitive_desc_t pd[3])
{
    dnnl_memory_desc_t x, wt, y;
    dnnl_convolution_desc_t d;
    dnnl_dims_t strides = {cv->stride, cv->stride}, pad = {cv->pad, cv->pad};

    /* activations in the caller's layout when it keeps them blocked: no reorder per call */
    if (md_plain(&x, cv->n, cv->c, cv->h, cv->w,
                 cv->act ? act_tag(cv->c) : dnnl_format_tag_any) ||
        md_any(&wt, cv->k, cv->c, cv->r, cv->s) ||
        md_plain(&y, cv->n, cv->k, cv->oh, cv->ow,
                 cv->act ? act_tag(cv->k) : dnnl_format_tag_any))
        return -1;
    DNNL(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct,
                                            &x, &wt, NULL, &y, strides, pad, pad));
    DNNL(dnnl_primitive_desc_create(&pd[0], &d, attr, nn_engine, NULL));
    DNNL(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &x, &wt, &y,
                                                  strides, pad, pad));
    DNNL(dnnl_primitive_desc_create(&pd[1], &d, attr, nn_engine, pd[0]));
    DNNL(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &x, &wt, NULL,
                                                     &y, strides, pad, pad));
    DNNL(dnnl_primitive_desc_create(&pd[2], &d, attr, nn_engine, pd[0]));
    return 0;
fail:
    return -1;
}

/* Makes the three ops from their descriptors; arguments in the order of the call pointers. */
static int conv_ops(lwl_conv *cv, dnnl_primitive_desc_t pd[3])
{
    dnnl_memory_desc_t x, wt, y;

    if (md_plain(&x, cv->n, cv->c, cv->h, cv->w, cv->act ? act_tag(cv->c) : dnnl_nchw) ||
        md_plain(&wt, cv->k, cv->c, cv->r, cv->s, dnnl_oihw) ||
        md_plain(&y, cv->n, cv->k, cv->oh, cv->ow, cv->act ? act_tag(cv->k) : dnnl_nchw))
        return -1;
    if (op_init(&cv->fwd, pd[0]) ||
        op_arg(&cv->fwd, pd[0], dnnl_query_src_md, &x, DNNL_ARG_SRC, 0) ||
        op_arg(&cv->fwd, pd[0], dnnl_query_weights_md, &wt, DNNL_ARG_WEIGHTS, 0) ||
        op_arg(&cv->fwd, pd[0], dnnl_query_dst_md, &y, DNNL_ARG_DST, 1))
        return -1;
    if (op_init(&cv->bdata, pd[1]) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_weights_md, &wt, DNNL_ARG_WEIGHTS, 0) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_diff_src_md, &x, DNNL_ARG_DIFF_SRC, 1))
        return -1;
    if (op_init(&cv->bwts, pd[2]) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_src_md, &x, DNNL_ARG_SRC, 0) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_diff_weights_md, &wt, DNNL_ARG_DIFF_WEIGHTS, 1))
        return -1;
    return 0;
}

static lwl_conv *conv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                          int act)
{
    dnnl_primitive_desc_t pd[3] = {NULL, NULL, NULL};
    dnnl_primitive_attr_t attr = NULL;
    lwl_conv *cv;
    int ok;

    if (n < 1 || c < 1 || h < 1 || w < 1 || k < 1 || r < 1 || s < 1 || stride < 1 || pad < 0 ||
        h + 2 * pad < r || w + 2 * pad < s) {
        nn_fail(__FILE__, __LINE__, "lwl_conv_new: bad shape n %d c %d h %d w %d k %d r %d s %d "
                "stride %d pad %d", n, c, h, w, k, r, s, stride, pad);
        return NULL;
    }
    cv = calloc(1, sizeof *cv);
    if (!cv) {
        nn_fail(__FILE__, __LINE__, "lwl_conv_new: out of memory");
        return NULL;
    }
    *cv = (lwl_conv){.n = n, .c = c, .h = h, .w = w, .k = k, .r = r, .s = s, .stride = stride,
                     .pad = pad, .oh = (h + 2 * pad - r) / stride + 1,
                     .ow = (w + 2 * pad - s) / stride + 1, .act = act};
    if (nn_acquire() != 0) {
        free(cv);
        return NULL;
    }
    if (act && lwl_nn_act_block() < 0) {
        lwl_conv_free(cv);
        return NULL;
    }
    ok = attr_user_scratch(&attr) == 0 && conv_pds(cv, attr, pd) == 0 && conv_ops(cv, pd) == 0;
    for (int i = 0; i < 3; i++)
        if (pd[i])
            dnnl_primitive_desc_destroy(pd[i]);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        lwl_conv_free(cv);
        return NULL;
    }
    return cv;
}

lwl_conv *lwl_conv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad)
{
    return conv_new(n, c, h, w, k, r, s, stride, pad, 0);
}

lwl_conv *lwl_conv_new_act(int n, int c, int h, int w, int k, int r, int s, int stride,
                           int pad)
{
    return conv_new(n, c, h, w, k, r, s, stride, pad, 1);
}

int lwl_conv_fwd(lwl_conv *cv, const float *x, const float *wt, float *y)
{
    const void *p[3] = {x, wt, y};
    return op_run(&cv->fwd, p);
}

int lwl_conv_bwd_data(lwl_conv *cv, const float *dy, const float *wt, float *dx)
{
    const void *p[3] = {dy, wt, dx};
    return op_run(&cv->bdata, p);
}

int lwl_conv_bwd_weights(lwl_conv *cv, const float *x, const float *dy, float *dwt)
{
    const void *p[3] = {x, dy, dwt};
    return op_run(&cv->bwts, p);
}

void lwl_conv_free(lwl_conv *cv)
{
    if (!cv)
        return;
    op_free(&cv->fwd);
    op_free(&cv->bdata);
    op_free(&cv->bwts);
    free(cv);
    nn_release();
}

/* ---- max pooling, plain NCHW or the activation layout throughout; the workspace holds the
 * positions of the maxima */
struct lwl_pool {
    int n, c, h, w, k, stride, pad, oh, ow;
    int act;
    nn_op fwd, bwd;
    dnnl_memory_t workspace;
};

void lwl_maxpool_out_hw(const lwl_pool *p, int *oh, int *ow)
{
    *oh = p->oh;
    *ow = p->ow;
}

static int pool_ops(lwl_pool *p, dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t x, y;
    dnnl_pooling_desc_t d;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    dnnl_dims_t strides = {p->stride, p->stride}, kernel = {p->k, p->k}, pad = {p->pad, p->pad};
    const dnnl_memory_desc_t *wmd;

    if (md_plain(&x, p->n, p->c, p->h, p->w, p->act ? act_tag(p->c) : dnnl_nchw) ||
        md_plain(&y, p->n, p->c, p->oh, p->ow, p->act ? act_tag(p->c) : dnnl_nchw))
        return -1;
    DNNL(dnnl_pooling_forward_desc_init(&d, dnnl_forward_training, dnnl_pooling_max, &x, &y,
                                        strides, kernel, pad, pad));
    DNNL(dnnl_primitive_desc_create(&fpd, &d, attr, nn_engine, NULL));
    DNNL(dnnl_pooling_backward_desc_init(&d, dnnl_pooling_max, &x, &y, strides, kernel, pad,
                                         pad));
    DNNL(dnnl_primitive_desc_create(&bpd, &d, attr, nn_engine, fpd));
    wmd = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    if (!wmd || dnnl_memory_desc_get_size(wmd) == 0)
        NN_FAIL("oneDNN max pooling gives no workspace");
    DNNL(dnnl_memory_create(&p->workspace, wmd, nn_engine, DNNL_MEMORY_ALLOCATE));
    if (op_init(&p->fwd, fpd) || op_arg(&p->fwd, fpd, dnnl_query_src_md, &x, DNNL_ARG_SRC, 0) ||
        op_arg(&p->fwd, fpd, dnnl_query_dst_md, &y, DNNL_ARG_DST, 1))
        goto fail;
    if (op_init(&p->bwd, bpd) ||
        op_arg(&p->bwd, bpd, dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0) ||
        op_arg(&p->bwd, bpd, dnnl_query_diff_src_md, &x, DNNL_ARG_DIFF_SRC, 1))
        goto fail;
    p->fwd.workspace = p->workspace;
    p->bwd.workspace = p->workspace;
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    return 0;
fail:
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (bpd)
        dnnl_primitive_desc_destroy(bpd);
    return -1;
}

static lwl_pool *pool_new(int n, int c, int h, int w, int k, int stride, int pad, int act)
{
    dnnl_primitive_attr_t attr = NULL;
    lwl_pool *p;
    int ok;

    if (n < 1 || c < 1 || h < 1 || w < 1 || k < 1 || stride < 1 || pad < 0 || 2 * pad > k ||
        h + 2 * pad < k || w + 2 * pad < k) {
        nn_fail(__FILE__, __LINE__, "lwl_maxpool_new: bad shape n %d c %d h %d w %d k %d "
                "stride %d pad %d", n, c, h, w, k, stride, pad);
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        nn_fail(__FILE__, __LINE__, "lwl_maxpool_new: out of memory");
        return NULL;
    }
    *p = (lwl_pool){.n = n, .c = c, .h = h, .w = w, .k = k, .stride = stride, .pad = pad,
                    .oh = (h + 2 * pad - k) / stride + 1, .ow = (w + 2 * pad - k) / stride + 1,
                    .act = act};
    if (nn_acquire() != 0) {
        free(p);
        return NULL;
    }
    if (act && lwl_nn_act_block() < 0) {
        lwl_maxpool_free(p);
        return NULL;
    }
    ok = attr_user_scratch(&attr) == 0 && pool_ops(p, attr) == 0;
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        lwl_maxpool_free(p);
        return NULL;
    }
    return p;
}

lwl_pool *lwl_maxpool_new(int n, int c, int h, int w, int k, int stride, int pad)
{
    return pool_new(n, c, h, w, k, stride, pad, 0);
}

lwl_pool *lwl_maxpool_new_act(int n, int c, int h, int w, int k, int stride, int pad)
{
    return pool_new(n, c, h, w, k, stride, pad, 1);
}

int lwl_maxpool_fwd(lwl_pool *p, const float *x, float *y)
{
    const void *ptr[2] = {x, y};
    return op_run(&p->fwd, ptr);
}

int lwl_maxpool_bwd(lwl_pool *p, const float *dy, float *dx)
{
    const void *ptr[2] = {dy, dx};
    return op_run(&p->bwd, ptr);
}

void lwl_maxpool_free(lwl_pool *p)
{
    if (!p)
        return;
    op_free(&p->fwd);
    op_free(&p->bwd);
    if (p->workspace)
        dnnl_memory_destroy(p->workspace);
    free(p);
    nn_release();
}

/* ---- conversion of one (n, c, h, w) tensor between plain NCHW and the activation layout */
struct lwl_act_reorder {
    dnnl_memory_t plain, act;
    dnnl_primitive_t to_plain, from_plain;
};

lwl_act_reorder *lwl_act_reorder_new(int n, int c, int h, int w)
{
    dnnl_memory_desc_t pmd, amd;
    dnnl_primitive_desc_t rpd = NULL;
    lwl_act_reorder *r;

    if (n < 1 || c < 1 || h < 1 || w < 1) {
        nn_fail(__FILE__, __LINE__, "lwl_act_reorder_new: bad shape n %d c %d h %d w %d", n, c,
                h, w);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        nn_fail(__FILE__, __LINE__, "lwl_act_reorder_new: out of memory");
        return NULL;
    }
    if (nn_acquire() != 0) {
        free(r);
        return NULL;
    }
    if (lwl_nn_act_block() < 0 || md_plain(&pmd, n, c, h, w, dnnl_nchw) ||
        md_plain(&amd, n, c, h, w, act_tag(c)))
        goto fail;
    DNNL(dnnl_memory_create(&r->plain, &pmd, nn_engine, DNNL_MEMORY_NONE));
    DNNL(dnnl_memory_create(&r->act, &amd, nn_engine, DNNL_MEMORY_NONE));
    DNNL(dnnl_reorder_primitive_desc_create(&rpd, &amd, nn_engine, &pmd, nn_engine, NULL));
    DNNL(dnnl_primitive_create(&r->to_plain, rpd));
    DNNL(dnnl_primitive_desc_destroy(rpd));
    rpd = NULL;
    DNNL(dnnl_reorder_primitive_desc_create(&rpd, &pmd, nn_engine, &amd, nn_engine, NULL));
    DNNL(dnnl_primitive_create(&r->from_plain, rpd));
    DNNL(dnnl_primitive_desc_destroy(rpd));
    return r;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    lwl_act_reorder_free(r);
    return NULL;
}

static int act_reorder_run(dnnl_primitive_t prim, dnnl_memory_t from, const float *x,
                           dnnl_memory_t to, float *y)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};

    DNNL(dnnl_memory_set_data_handle(from, (void *)x));
    DNNL(dnnl_memory_set_data_handle(to, y));
    DNNL(dnnl_primitive_execute(prim, nn_stream, 2, args));
    DNNL(dnnl_stream_wait(nn_stream));
    return 0;
fail:
    return -1;
}

int lwl_act_to_plain(lwl_act_reorder *r, const float *x, float *y)
{
    return act_reorder_run(r->to_plain, r->act, x, r->plain, y);
}

int lwl_act_from_plain(lwl_act_reorder *r, const float *x, float *y)
{
    return act_reorder_run(r->from_plain, r->plain, x, r->act, y);
}

void lwl_act_reorder_free(lwl_act_reorder *r)
{
    if (!r)
        return;
    if (r->to_plain)
        dnnl_primitive_destroy(r->to_plain);
    if (r->from_plain)
        dnnl_primitive_destroy(r->from_plain);
    if (r->plain)
        dnnl_memory_destroy(r->plain);
    if (r->act)
        dnnl_memory_destroy(r->act);
    free(r);
    nn_release();
}

/* ---- GEMM */
int lwl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    int acols = trans_a ? m : k, bcols = trans_b ? k : n;

    if (m < 0 || n < 0 || k < 0 || lda < (acols > 1 ? acols : 1) ||
        ldb < (bcols > 1 ? bcols : 1) || ldc < (n > 1 ? n : 1)) {
        nn_fail(__FILE__, __LINE__, "lwl_gemm: bad sizes m %d n %d k %d lda %d ldb %d ldc %d "
                "(trans %d %d)", m, n, k, lda, ldb, ldc, trans_a, trans_b);
        return -1;
    }
    if (m == 0 || n == 0)
        return 0;
    if (k == 0) { /* C = beta C: oneDNN's sgemm leaves C as it is when k is 0 */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
        return 0;
    }
    /* oneDNN's GEMM runs on the OpenMP threads of the convolutions; OpenBLAS's own pthreads
     * would spin against them between calls */
    DNNL(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                    beta, c, ldc));
    return 0;
fail:
    return -1;
}
