/* The driver of a generated program: command line, phases, the pre-training
 * loop with its schedules, logging, checkpoints and resume, features, the
 * step dump and the bench. The generated main.c describes the experiment in
 * an lwl_program (constants and the functions of its net.c and views.c) and
 * calls lwl_main; nothing here reads a spec. */
#ifndef LWL_TRAIN_H
#define LWL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "lwl_loader.h"

/* A tensor of a flat state array, under its torchvision / LEWEL name. */
typedef struct lwl_tensor_info {
    const char *name;
    size_t off, numel;      /* floats; for BN buffers the (groups, c) block starts at off */
    int ndim;
    int shape[4];
    int decay;              /* weight decay and LARS adaptation apply (not 1-D) */
    int fan_out;            /* kaiming-normal fan_out; 0 for BN tensors */
} lwl_tensor_info;

/* The state arrays of the network, valid after net_init. */
typedef struct lwl_state {
    float *params, *grads, *momentum, *target, *bufs, *tbufs;
} lwl_state;

/* The network on a GPU (net.cu), for a program built with CUDA: the same state as the
 * CPU network's, kept on the device, with host copies for the driver. */
typedef struct lwl_gpu_net {
    /* how many GPUs there are (0: none usable), with a line about them in *info */
    int (*available)(char **info);
    /* GPU `device` for rank `rank` of `ranks`; idfile: where ranks without MPI meet */
    int (*init)(int device, int rank, int ranks, const char *idfile);
    void (*free)(void);
    lwl_state (*state)(void);           /* the host copies */
    int (*to_host)(void);               /* device state into the host copies */
    int (*to_device)(void);             /* host copies onto the device */
    int (*init_weights)(uint64_t seed); /* net.c's initial state, onto the device */
    int (*step)(const float *view1, const float *view2, float lr, float ema, int first,
                double *loss);
    /* the same step with the views made on the GPU from a staged batch (views.cu), or NULL
     * (the tests' emulated GPU) */
    int (*step_staged)(const lwl_stage *stage, float lr, float ema, int first, double *loss);
    /* loader hooks for the staging blocks (pinned host memory on the GPU's device) */
    void *(*stage_alloc)(void *arg, size_t bytes, char *err, size_t errlen);
    void (*stage_free)(void *arg, void *p);
    int (*features)(const float *x, float *feat);
    const float *(*maps)(const float *x);
    /* the kNN on the GPU: pred (m, 5) as lwl_knn_predict's for memory rows mem (n, feat_dim)
     * with their labels and queries qry (m, feat_dim), host arrays, L2-normalised and checked
     * (lwl_knn_check), k <= the spec's; the vote is the spec's. NULL when the spec's k is
     * above what the GPU kNN keeps (KNN_MAX_K of gpu_ops.cuh) */
    int (*knn)(const float *mem, const int *labels, size_t n, const float *qry, size_t m, int k,
               int nclasses, int *pred);
    int (*gather_groups)(void);         /* every rank's BN groups onto every rank */
    int (*share_state)(void);           /* rank 0's state onto every rank */
    int (*bcast_host)(void *p, size_t bytes);   /* rank 0's host bytes to every rank */
    const char *precision;              /* train.precision: "bf16", "fp16", "fp32" */
} lwl_gpu_net;

typedef struct lwl_program {
    const char *name;
    const char *spec;           /* the resolved spec (lwlc --print): kept in checkpoints */
    const char *spec_dir;       /* directory the spec's relative paths start from */

    /* data */
    const char *root;           /* relative to spec_dir unless absolute */
    const char *classes;        /* class list file relative to spec_dir, or NULL */
    int split_folders;
    double share[3];            /* train, val, test as fractions */
    int split_seed;
    float mean[3], std[3];      /* Normalize of the evaluation views */

    /* pre-training */
    int epochs, batch, gpus, groups, size;
    int warmup;                 /* epochs of per-step linear warm-up */
    int cosine_per_step;        /* schedule cosine_step */
    double lr, ema;             /* base lr, start momentum of the target */
    int seed;
    const char *summary;        /* settings lines for the table printed at start */
    const lwl_pipeline *views;  /* the spec's two views */

    /* evaluation: splits are 0 train, 1 val, 2 test; shares in percent (100: all) */
    int knn_every;              /* epochs between kNN monitors during pre-training; 0 none */
    int knn_k, knn_weighted;
    double knn_temperature;
    int knn_memory, knn_queries;
    double knn_memory_share, knn_queries_share;
    int lin_epochs, lin_batch;
    double lin_lr, lin_momentum, lin_weight_decay;
    const int *lin_milestones;
    int lin_nmilestones;
    int lin_train, lin_test;
    double lin_train_share, lin_test_share;
    int top1, top5;             /* the metrics reported */
    int repeat;
    double confidence;
    const char *const *gradcam_images;  /* relative to spec_dir unless absolute */
    int gradcam_nimages;
    const char *protocol;       /* one paragraph for summary.md */

    /* the network of net.c */
    int feat_dim;
    const lwl_tensor_info *params;
    int nparams, target_nparams;
    const lwl_tensor_info *bufs;
    int nbufs, target_nbufs;
    size_t param_floats, buf_floats, target_param_floats, target_buf_floats;
    /* memory and primitives for rank `rank` of `ranks` (0 of 1 in one process), each
     * rank computing batch / ranks images per call */
    int (*net_init)(int threads, int rank, int ranks);
    void (*net_free)(void);
    lwl_state (*net_state)(void);
    int (*net_init_weights)(uint64_t seed);
    int (*net_step)(const float *view1, const float *view2, float lr, float ema, int first,
                    double *loss);
    int (*net_features)(const float *x, float *feat);
    /* layer4's output (batch, feat_dim, fh * fw) of x, eval mode; NULL on failure */
    const float *(*net_maps)(const float *x);
    int fh, fw;
    /* Grad-CAM at layer cam_layer (1..4, eval.gradcam.layer): that layer's output of x in eval
     * mode and the gradient of sum_i dfeat_i . (pooled features of image i), dfeat (batch,
     * feat_dim), with respect to it; (batch, cam_c, cam_h * cam_w) each, plain, valid until
     * the next call. On the CPU network (net.c) also in a program built for the GPU. */
    int (*net_cam)(const float *x, const float *dfeat, const float **a, const float **da);
    int cam_layer, cam_c, cam_h, cam_w;

    /* for the step dump's config (JSON object text) */
    const char *dump_config;

    /* the same network on a GPU, or NULL when built for the CPU only */
    const lwl_gpu_net *gpu;
} lwl_program;

/* Runs the program's command line; returns the process exit code. */
int lwl_main(const lwl_program *p, int argc, char **argv);

/* The schedules, exposed for tests: lr at global step t of `spe` steps per
 * epoch, and the target momentum at step t of `total`. */
double lwl_lr_at(const lwl_program *p, long t, long spe);
double lwl_ema_at(const lwl_program *p, long t, long total);

#endif
