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
 * another layout, a buffer in that layout with the reorder between them. A weight input may
 * have two such buffers (online and target weights through the same convolution): while the
 * caller holds its weights (lwl_nn_hold_weights), a tensor already reordered into one of them
 * is not reordered again. An output may also be added into the caller's tensor (a weight
 * gradient summed over views and chunks): the primitive then writes into the inner buffer,
 * made even when the layouts agree, and a reorder with a sum post-op adds it. */
enum { NN_SLOTS = 2 };
typedef struct {
    dnnl_memory_t user;              /* plain layout; its handle is set on every call */
    dnnl_memory_t inner[NN_SLOTS];   /* primitive's layout, owns its buffer; NULL if plain */
    const void *key[NN_SLOTS];       /* the caller's tensor each inner buffer holds ... */
    unsigned gen[NN_SLOTS];          /* ... during hold number gen (0: none) */
    int nslot, cur;                  /* inner buffers made, the one of the current call */
    int keep;                        /* an input whose buffers are kept through a hold */
    dnnl_primitive_t reorder; /* user -> inner for inputs, inner -> user for outputs */
    dnnl_primitive_t add;     /* user += inner, for an output that can be added */
    int output, same;         /* same: the primitive takes the plain layout */
} nn_arg;

/* The hold in force (nn_hold != 0) and its number; every hold gets a new number. */
static int nn_hold;
static unsigned nn_hold_gen;

void lwl_nn_hold_weights(int hold)
{
    nn_hold = hold;
    nn_hold_gen++;
    if (nn_hold_gen == 0)
        nn_hold_gen = 1;
}

/* The reorder from -> to, adding into `to` if add. */
static int reorder_new(dnnl_primitive_t *r, const dnnl_memory_desc_t *from,
                       const dnnl_memory_desc_t *to, int add)
{
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;

    *r = NULL;
    if (add) {
        DNNL(dnnl_post_ops_create(&po));
        DNNL(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL(dnnl_primitive_attr_create(&attr));
        DNNL(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    DNNL(dnnl_reorder_primitive_desc_create(&rpd, from, nn_engine, to, nn_engine, attr));
    DNNL(dnnl_primitive_create(r, rpd));
    DNNL(dnnl_primitive_desc_destroy(rpd));
    rpd = NULL;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
    return *r ? 0 : -1;
}

/* slots: for an input, the inner buffers kept across the calls of a hold (1 or 2), 0 for
 * none; for an output, 1 if it can be added into the caller's tensor. */
static int arg_init(nn_arg *a, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                    int output, int slots)
{
    int add = output && slots > 0;

    a->output = output;
    a->keep = !output && slots > 0;
    a->same = dnnl_memory_desc_equal(plain, want);
    DNNL(dnnl_memory_create(&a->user, plain, nn_engine, DNNL_MEMORY_NONE));
    if (a->same && !add)
        return 0;
    a->nslot = a->keep && slots > 1 ? NN_SLOTS : 1;
    for (int i = 0; i < a->nslot; i++)
        DNNL(dnnl_memory_create(&a->inner[i], want, nn_engine, DNNL_MEMORY_ALLOCATE));
    if (!a->same && reorder_new(&a->reorder, output ? want : plain, output ? plain : want, 0))
        return -1;
    if (add && reorder_new(&a->add, want, plain, 1))
        return -1;
    return 0;
fail:
    return -1;
}

static void arg_free(nn_arg *a)
{
    if (a->reorder)
        dnnl_primitive_destroy(a->reorder);
    if (a->add)
        dnnl_primitive_destroy(a->add);
    for (int i = 0; i < NN_SLOTS; i++)
        if (a->inner[i])
            dnnl_memory_destroy(a->inner[i]);
    if (a->user)
        dnnl_memory_destroy(a->user);
    memset(a, 0, sizeof *a);
}

/* The memory the primitive uses; add: the call adds the output into the caller's tensor. */
static dnnl_memory_t arg_mem(const nn_arg *a, int add)
{
    if (!a->inner[0] || (a->same && !(a->output && add)))
        return a->user;
    return a->inner[a->cur];
}

/* Runs r between the caller's tensor and the inner buffer, in the argument's direction. */
static int arg_reorder(nn_arg *a, dnnl_primitive_t r)
{
    dnnl_exec_arg_t args[2] = {
        {DNNL_ARG_FROM, a->output ? a->inner[a->cur] : a->user},
        {DNNL_ARG_TO, a->output ? a->user : a->inner[a->cur]},
    };

    DNNL(dnnl_primitive_execute(r, nn_stream, 2, args));
    return 0;
fail:
    return -1;
}

/* Points the argument at the caller's tensor; for an input, brings it into the inner layout
 * unless the hold in force has already put this tensor into one of its buffers. */
static int arg_bind(nn_arg *a, const void *ptr)
{
    DNNL(dnnl_memory_set_data_handle(a->user, (void *)ptr));
    if (!a->reorder || a->output)
        return 0;
    a->cur = 0;
    if (a->keep && nn_hold) {
        for (int i = 0; i < a->nslot; i++)
            if (a->key[i] == ptr && a->gen[i] == nn_hold_gen) {
                a->cur = i;
                return 0;
            }
        /* a buffer not yet used in this hold, else the one not used by the last call */
        a->cur = a->gen[0] != nn_hold_gen ? 0 : a->nslot - 1;
        a->key[a->cur] = ptr;
        a->gen[a->cur] = nn_hold_gen;
    } else {
        a->gen[0] = 0;
    }
    return arg_reorder(a, a->reorder);
fail:
    return -1;
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

/* Adds argument `name` (DNNL_ARG_*) in the layout pd asks for through query, plain given;
 * slots as arg_init's. */
static int op_arg(nn_op *op, const dnnl_primitive_desc_t pd, dnnl_query_t query,
                  const dnnl_memory_desc_t *plain, int name, int output, int slots)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, query, 0);

    if (!want)
        NN_FAIL("oneDNN primitive has no memory for query %d", (int)query);
    op->argname[op->narg] = name;
    return arg_init(&op->arg[op->narg++], plain, want, output, slots);
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
 * the outputs back into plain layout (add: adds them into the caller's tensors) and waits. */
static int op_run(nn_op *op, const void *const *ptr, int add)
{
    dnnl_exec_arg_t args[NN_MAXARG + 2];
    int n = 0;

    for (int i = 0; i < op->narg; i++) {
        if (arg_bind(&op->arg[i], ptr[i]) != 0)
            return -1;
        args[n++] = (dnnl_exec_arg_t){op->argname[i], arg_mem(&op->arg[i], add)};
    }
    if (op->scratch)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, op->scratch};
    if (op->workspace)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, op->workspace};
    DNNL(dnnl_primitive_execute(op->prim, nn_stream, n, args));
    for (int i = 0; i < op->narg; i++) {
        nn_arg *a = &op->arg[i];
        dnnl_primitive_t r = add && a->add ? a->add : a->reorder;
        if (a->output && r && arg_reorder(a, r) != 0)
            return -1;
    }
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
    int algo;    /* LWL_CONV_WINO_* asked for, then those made */
    int counted; /* in nn_convs */
    nn_op fwd;   /* x, wt -> y */
    nn_op bdata; /* dy, wt -> dx */
    nn_op bwts;  /* x, dy -> dwt */
};

void lwl_conv_out_hw(const lwl_conv *cv, int *oh, int *ow)
{
    *oh = cv->oh;
    *ow = cv->ow;
}

/* Every convolution alive, and how many of them run Winograd kernels (lwl_nn_conv_algos). */
static int nn_convs, nn_wino_fwd, nn_wino_bdata;

void lwl_nn_conv_algos(int *convs, int *wino_fwd, int *wino_bwd_data)
{
    *convs = nn_convs;
    *wino_fwd = nn_wino_fwd;
    *wino_bwd_data = nn_wino_bdata;
}

/* The descriptor of one direction (0 forward, 1 backward data, 2 backward weights) with
 * algorithm alg; hint: the forward descriptor of the same algorithm (NULL for the forward).
 * Returns oneDNN's status: unimplemented when it has no such kernel for this CPU and shape. */
static dnnl_status_t conv_pd(lwl_conv *cv, dnnl_primitive_attr_t attr, int dir,
                             dnnl_alg_kind_t alg, const_dnnl_primitive_desc_t hint,
                             dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t x, wt, y;
    dnnl_convolution_desc_t d;
    dnnl_dims_t strides = {cv->stride, cv->stride}, pad = {cv->pad, cv->pad};
    dnnl_status_t st;

    *pd = NULL;
    /* activations in the caller's layout when it keeps them blocked: no reorder per call */
    if (md_plain(&x, cv->n, cv->c, cv->h, cv->w,
                 cv->act ? act_tag(cv->c) : dnnl_format_tag_any) ||
        md_any(&wt, cv->k, cv->c, cv->r, cv->s) ||
        md_plain(&y, cv->n, cv->k, cv->oh, cv->ow,
                 cv->act ? act_tag(cv->k) : dnnl_format_tag_any))
        return dnnl_invalid_arguments;
    if (dir == 0)
        st = dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, alg, &x, &wt, NULL,
                                                &y, strides, pad, pad);
    else if (dir == 1)
        st = dnnl_convolution_backward_data_desc_init(&d, alg, &x, &wt, &y, strides, pad, pad);
    else
        st = dnnl_convolution_backward_weights_desc_init(&d, alg, &x, &wt, NULL, &y, strides,
                                                         pad, pad);
    if (st != dnnl_success)
        return st;
    return dnnl_primitive_desc_create(pd, &d, attr, nn_engine, hint);
}

/* The three primitive descriptors of one convolution: direct, or Winograd for the directions
 * cv->algo asks where oneDNN has it (cv->algo then says what was made). Backward descriptors
 * use a forward one of their own algorithm as their hint. */
static int conv_pds(lwl_conv *cv, dnnl_primitive_attr_t attr, dnnl_primitive_desc_t pd[3])
{
    dnnl_primitive_desc_t fwd[2] = {NULL, NULL}; /* direct, Winograd */
    dnnl_status_t st;
    int ok = 0;

    st = conv_pd(cv, attr, 0, dnnl_convolution_direct, NULL, &fwd[0]);
    if (st != dnnl_success)
        NN_FAIL("oneDNN %s: the direct convolution", dnnl_status2str(st));
    if (cv->algo && conv_pd(cv, attr, 0, dnnl_convolution_winograd, NULL, &fwd[1]) != 0)
        cv->algo = 0; /* no Winograd kernel here: direct throughout */
    if (cv->algo & LWL_CONV_WINO_BWD_DATA &&
        conv_pd(cv, attr, 1, dnnl_convolution_winograd, fwd[1], &pd[1]) != 0)
        cv->algo &= ~LWL_CONV_WINO_BWD_DATA;
    if (!pd[1] &&
        (st = conv_pd(cv, attr, 1, dnnl_convolution_direct, fwd[0], &pd[1])) != dnnl_success)
        NN_FAIL("oneDNN %s: the direct backward-data convolution", dnnl_status2str(st));
    st = conv_pd(cv, attr, 2, dnnl_convolution_direct, fwd[0], &pd[2]);
    if (st != dnnl_success)
        NN_FAIL("oneDNN %s: the direct backward-weights convolution", dnnl_status2str(st));
    pd[0] = fwd[(cv->algo & LWL_CONV_WINO_FWD) != 0];
    ok = 1;
fail:
    for (int i = 0; i < 2; i++)
        if (fwd[i] && fwd[i] != pd[0])
            dnnl_primitive_desc_destroy(fwd[i]);
    return ok ? 0 : -1;
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
        op_arg(&cv->fwd, pd[0], dnnl_query_src_md, &x, DNNL_ARG_SRC, 0, 0) ||
        op_arg(&cv->fwd, pd[0], dnnl_query_weights_md, &wt, DNNL_ARG_WEIGHTS, 0, 2) ||
        op_arg(&cv->fwd, pd[0], dnnl_query_dst_md, &y, DNNL_ARG_DST, 1, 0))
        return -1;
    if (op_init(&cv->bdata, pd[1]) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0, 0) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_weights_md, &wt, DNNL_ARG_WEIGHTS, 0, 1) ||
        op_arg(&cv->bdata, pd[1], dnnl_query_diff_src_md, &x, DNNL_ARG_DIFF_SRC, 1, 0))
        return -1;
    if (op_init(&cv->bwts, pd[2]) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_src_md, &x, DNNL_ARG_SRC, 0, 0) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0, 0) ||
        op_arg(&cv->bwts, pd[2], dnnl_query_diff_weights_md, &wt, DNNL_ARG_DIFF_WEIGHTS, 1, 1))
        return -1;
    return 0;
}

static lwl_conv *conv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                          int act, int algo)
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
                     .ow = (w + 2 * pad - s) / stride + 1, .act = act,
                     .algo = algo & (LWL_CONV_WINO_FWD | LWL_CONV_WINO_BWD_DATA)};
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
    cv->counted = 1;
    nn_convs++;
    nn_wino_fwd += (cv->algo & LWL_CONV_WINO_FWD) != 0;
    nn_wino_bdata += (cv->algo & LWL_CONV_WINO_BWD_DATA) != 0;
    return cv;
}

lwl_conv *lwl_conv_new(int n, int c, int h, int w, int k, int r, int s, int stride, int pad)
{
    return conv_new(n, c, h, w, k, r, s, stride, pad, 0, 0);
}

lwl_conv *lwl_conv_new_act(int n, int c, int h, int w, int k, int r, int s, int stride,
                           int pad)
{
    return conv_new(n, c, h, w, k, r, s, stride, pad, 1, 0);
}

lwl_conv *lwl_conv_new_algo(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                            int act, int algo)
{
    return conv_new(n, c, h, w, k, r, s, stride, pad, act != 0, algo);
}

int lwl_conv_algo(const lwl_conv *cv)
{
    return cv->algo;
}

int lwl_conv_fwd(lwl_conv *cv, const float *x, const float *wt, float *y)
{
    const void *p[3] = {x, wt, y};
    return op_run(&cv->fwd, p, 0);
}

int lwl_conv_bwd_data(lwl_conv *cv, const float *dy, const float *wt, float *dx)
{
    const void *p[3] = {dy, wt, dx};
    return op_run(&cv->bdata, p, 0);
}

int lwl_conv_bwd_weights(lwl_conv *cv, const float *x, const float *dy, float *dwt)
{
    const void *p[3] = {x, dy, dwt};
    return op_run(&cv->bwts, p, 0);
}

int lwl_conv_bwd_weights_add(lwl_conv *cv, const float *x, const float *dy, float *dwt)
{
    const void *p[3] = {x, dy, dwt};
    return op_run(&cv->bwts, p, 1);
}

void lwl_conv_free(lwl_conv *cv)
{
    if (!cv)
        return;
    if (cv->counted) {
        nn_convs--;
        nn_wino_fwd -= (cv->algo & LWL_CONV_WINO_FWD) != 0;
        nn_wino_bdata -= (cv->algo & LWL_CONV_WINO_BWD_DATA) != 0;
    }
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
    if (op_init(&p->fwd, fpd) || op_arg(&p->fwd, fpd, dnnl_query_src_md, &x, DNNL_ARG_SRC, 0, 0) ||
        op_arg(&p->fwd, fpd, dnnl_query_dst_md, &y, DNNL_ARG_DST, 1, 0))
        goto fail;
    if (op_init(&p->bwd, bpd) ||
        op_arg(&p->bwd, bpd, dnnl_query_diff_dst_md, &y, DNNL_ARG_DIFF_DST, 0, 0) ||
        op_arg(&p->bwd, bpd, dnnl_query_diff_src_md, &x, DNNL_ARG_DIFF_SRC, 1, 0))
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
    return op_run(&p->fwd, ptr, 0);
}

int lwl_maxpool_bwd(lwl_pool *p, const float *dy, float *dx)
{
    const void *ptr[2] = {dy, dx};
    return op_run(&p->bwd, ptr, 0);
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
