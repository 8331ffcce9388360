/* The plan: a checked spec lowered to what the emitters write out. Every
 * shape, offset and count is fixed here for the spec's batch and image size;
 * the emitters only walk it in order. */
#ifndef LWLC_PLAN_H
#define LWLC_PLAN_H

#include <stddef.h>

#include "spec.h"

/* A parameter or buffer tensor in one of the flat arrays, under its
 * torchvision / LEWEL name. */
typedef struct lwl_ptensor {
    char *name;             /* "layer1.0.conv1.weight", "proj.0.weight", ... */
    int ndim, shape[4];
    size_t off, numel;      /* in floats, within its array */
    int decay;              /* gets weight decay and LARS adaptation (not 1-D) */
    int fan_out;            /* kaiming-normal fan_out for weights; 0: constant init */
    float fill;             /* constant init value when fan_out is 0 */
} lwl_ptensor;

/* A convolution followed by batch norm (and maybe ReLU) in the backbone. */
typedef struct lwl_pconv {
    char *conv, *bn;        /* name prefixes: "layer1.0.conv1", "layer1.0.bn1" */
    int cin, cout, k, stride, pad;
    int hin, win, hout, wout;
    int relu;               /* ReLU right after the BN (not for the last BN of a block) */
    int weight, gamma, beta;/* indices into the parameter list */
    int mean, var;          /* indices into the BN buffer list */
    int in, out;            /* activation ids: input, and BN(+ReLU) output */
    int pre;                /* activation id of the conv output (BN input), kept for backward */
    int wino;               /* CPU: Winograd forward and backward-data kernels (add_conv) */
} lwl_pconv;

/* A residual block: convs c[0..n-1] in sequence, an optional downsample conv,
 * then out = relu(last + shortcut). */
typedef struct lwl_pblock {
    char *name;             /* "layer1.0" */
    int conv[3], nconv, down;   /* conv indices; down -1 when the shortcut is identity */
    int in, out;            /* activation ids */
} lwl_pblock;

/* An activation tensor (per image C x H x W), at an offset in the activation
 * arena of one view (N images). */
typedef struct lwl_pact {
    int c, h, w;
    size_t off;             /* floats, for the whole batch */
} lwl_pact;

/* One MLP of the head: Linear(in→hidden, no bias) BN1d ReLU Linear(hidden→out). */
typedef struct lwl_pmlp {
    const char *name;       /* "proj", "proj_obj", "predictor", "predictor_obj" */
    int in, hidden, out;
    int rows;               /* columns of the reference's Conv1d: B·L */
    int w0, gamma, beta, w3;/* parameter indices */
    int mean, var;          /* BN buffer indices */
} lwl_pmlp;

typedef struct lwl_plan {
    const lwl_spec *spec;
    const char *name;

    /* data: the images of one step, per view */
    int batch, groups;          /* global batch; BN groups (gpus with norm batch) */
    int size;

    /* backbone */
    lwl_pconv *convs;
    int nconvs;
    lwl_pblock *blocks;
    int nblocks;
    lwl_pact *acts;
    int nacts;
    int stem_pool;              /* max-pool after the stem (stem imagenet) */
    int pool_in, pool_out;      /* activation ids around the max-pool */
    int feat;                   /* activation id of layer4's output */
    int channels, fh, fw;       /* its shape: C, H, W (P = H·W positions) */
    int cam_layer;              /* Grad-CAM's layer, 1..4 (eval.gradcam.layer) */
    int cam_block;              /* the last block of that layer: its output is the map */
    int cam_act;                /* that output's activation id */
    size_t act_floats;          /* activation arena of one view, whole batch */
    size_t max_act;             /* largest activation, whole batch (scratch size) */

    /* head */
    int lewel;                  /* head lewel_b (else byol) */
    int heads, dim, hidden, maps;   /* maps per head K = dim / heads */
    lwl_pmlp proj, proj_obj, predictor, predictor_obj;

    /* parameters (online), BN buffers (per group) */
    lwl_ptensor *params;
    int nparams;
    size_t param_floats;
    size_t backbone_floats;     /* parameters [0, backbone_floats) are the backbone */
    lwl_ptensor *bufs;
    int nbufs;
    size_t buf_floats;          /* one group's BN running statistics */
    size_t target_param_floats; /* target: backbone + proj + proj_obj */
    size_t target_buf_floats;
} lwl_plan;

/* Lowers a checked spec; returns 0, or the number of errors reported to d. */
int plan_build(const lwl_spec *s, lwl_plan *p, lwl_diag *d);
void plan_free(lwl_plan *p);

/* Writes generated/<name>/ (the C sources) into dir; returns 0 or -1 (errno). */
int emit_c(const lwl_plan *p, const char *dir, lwl_diag *d);

#endif
