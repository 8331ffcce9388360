/* Internal to the driver of a generated program: the state of one run and
 * the helpers that lwl_train.c (pre-training, checkpoints) and lwl_evalrun.c
 * (kNN, linear, Grad-CAM, report) share. */
#ifndef LWL_RUN_H
#define LWL_RUN_H

#include <stdio.h>

#include "lwl_dataset.h"
#include "lwl_loader.h"
#include "lwl_train.h"

typedef struct opts {
    const char *data, *out, *device;
    int epochs, seed, threads, resume, quiet;
    int repeat;                 /* --repeat; 0: the spec's */
    int defaults;               /* no phase given: the default protocol runs */
    long steps;                 /* stop at this global step; -1: never */
    const char **phases;
    int nphases;
    int views_n;
    const char *features_split;
} opts;

typedef struct run {
    const char *top_out;        /* --out: repeats live in run<k>/ below it */
    int repeat;                 /* this repeat, 0-based */
    int repeats;                /* how many (--repeat or the spec's) */
    const lwl_program *p;
    opts o;
    char *root;                 /* the data root to read */
    char *classes;              /* the class list to read, or NULL */
    lwl_dataset ds;
    int ds_open;
    lwl_state st;
    int net_ready;
    int cpu_net;                /* the CPU network was made beside the GPU's (Grad-CAM) */
    int nb;                     /* images per call of the network: batch / world */
    const lwl_gpu_net *gpu;     /* the network on the GPU (--device), or NULL: the CPU's */
    int device;                 /* the GPU of this rank */
    const char *idfile;         /* where GPU ranks without MPI meet (NCCL's id), or NULL */
    int rank, world;            /* this process among the ranks of a data-parallel run */
    FILE *metrics;
} run;


double run_now_ms(void);
void run_say(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "error: ..." on stderr; returns -1. */
int run_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* dir/path (path alone when absolute or dir is empty); malloc'd, NULL when out of memory. */
char *run_join(const char *dir, const char *path);
int run_mkdir_p(const char *dir);
int run_need_net(run *r);
/* The network of the run, on the CPU or the GPU (r->gpu): the initial state (seed
 * r->o.seed), a step, features and layer4 maps of nb images, and the host copies of the
 * state (r->st) from and onto the GPU (nothing to do on the CPU). */
int run_net_init_weights(run *r);
int run_net_step(run *r, const float *v1, const float *v2, float lr, float ema, int first,
                 double *loss);
int run_net_features(run *r, const float *x, float *feat);
const float *run_net_maps(run *r, const float *x);
int run_net_to_host(run *r);
int run_net_to_device(run *r);
/* The CPU network (net.c) holding the run's state, for what runs only there (Grad-CAM): the
 * run's network itself, or, when that is on the GPU, net.c's made beside it (the first time)
 * with the GPU's parameters and BN statistics copied in. 0 or -1. */
int run_cpu_net(run *r);
int run_open_data(run *r);
/* A loader of split `part` in batches of r->nb; per_rank: this rank's share of each
 * global batch (pre-training), else every sample on this rank. */
lwl_loader *run_open_loader(run *r, const lwl_pipeline *pipe, int part, int shuffle,
                            int keep_last, int per_rank);
int run_read_checkpoint(run *r, const char *path, long *step);
/* Initial weights, then the checkpoint of the run's --out when there is one. */
int run_load_for_eval(run *r);

/* lwl_evalrun.c */
int run_phase_knn(run *r);
int run_phase_linear(run *r);
int run_phase_gradcam(run *r);
int run_phase_report(run *r);
/* The kNN monitor during pre-training: appends to metrics.jsonl. */
int run_knn_monitor(run *r, int epoch);
/* 1 when run<k>/results.json holds every metric of the protocol (for --resume). */
int run_finished(const run *r);

#endif
