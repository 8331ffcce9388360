/* The emitters' shared writer: formatted output to one generated file with
 * indentation, and the templates compiled into lwlc. */
#ifndef LWLC_EMIT_H
#define LWLC_EMIT_H

#include <stdio.h>

#include "plan.h"

struct emit_buckets;

typedef struct emitter {
    FILE *f;
    const lwl_plan *p;
    int failed;             /* a write failed */
    const struct emit_buckets *bk;  /* net.c and net.cu: the step's gradient buckets */
} emitter;

void emit_line(emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A memory plan: named slots at fixed offsets of one arena (elements of the arena's
 * type), each 16-aligned. */
typedef struct emit_slot {
    char *name, *what;
    size_t off, n;
} emit_slot;

typedef struct arena_plan {
    emit_slot *v;
    int n;
    size_t total;
} arena_plan;

/* Adds a slot of n elements; returns its offset. */
size_t emit_place(arena_plan *a, const char *name, size_t n, const char *what);
void emit_arena_free(arena_plan *a);

/* Plan facts both network emitters use: rows of the head's first MLP (per image the
 * pooled vector, and each position for lewel); the floats of a BN statistics slot
 * (mean, invstd of every conv and group) and conv i's offset in it; head MLP i (0 proj,
 * 1 proj_obj, 2 predictor, 3 predictor_obj) and its slot-name stem. */
int emit_rows_u(const lwl_plan *p);
size_t emit_stats_floats(const lwl_plan *p);
size_t emit_stats_off(const lwl_plan *p, int conv);
const lwl_pmlp *emit_mlp(const lwl_plan *p, int i);
extern const char *const emit_mlp_slot[4];
/* The gradient buckets of a data-parallel step (train.gpus above 1): the sum over the
 * ranks of the gradients goes in buckets that start while the backward pass goes on, as
 * PyTorch DDP's. A bucket is a span GRADS [lo, lo + n) of whole tensors, complete when the
 * last view's backward has made every gradient in it: the buckets follow the backward's
 * order (the head's MLPs, then the backbone from layer4 to the stem), each cut at the first
 * point where it holds EMIT_BUCKET_BYTES (DDP's 25 MiB) or more, the last one smaller. */
#define EMIT_BUCKET_BYTES ((size_t)25 << 20)

typedef struct emit_bucket {
    size_t lo, n;           /* floats */
    int first, last;        /* its parameter tensors, first .. last */
} emit_bucket;

typedef struct emit_buckets {
    emit_bucket *v;
    int n;                  /* 0 for one GPU */
    int *after_conv;        /* per conv: the bucket complete after its backward, or -1 */
    int after_mlp[4];       /* the same per head MLP (emit_mlp's numbering) */
} emit_buckets;

/* 0, or -1 (out of memory, or a parameter no backward step makes). */
int emit_buckets_make(const lwl_plan *p, emit_buckets *b);
void emit_buckets_free(emit_buckets *b);
/* Bucket k (-1: none) is complete here: the call that starts its sum, under `guard` (a
 * C condition, or NULL). gpu: net.cu's CK form, else net.c's. */
void emit_bucket_start(emitter *e, int k, const char *guard, int gpu);

/* `file:line` of a spec location without directories, for comments. */
const char *emit_where(const lwl_loc *loc);

/* Templates from compiler/tmpl/, as one string each (tmpl.c, made by make). */
extern const char lwl_tmpl_kernels_h[];
extern const char lwl_tmpl_cpu_ops_h[];
extern const char lwl_tmpl_gpu_kernels_h[];
extern const char lwl_tmpl_gpu_ops_cuh[];

/* The parts of generated/<name>/: each writes one file into dir. */
int emit_plan_h(const lwl_plan *p, FILE *f);
int emit_net_c(const lwl_plan *p, FILE *f);
int emit_net_cu(const lwl_plan *p, FILE *f);
int emit_views_c(const lwl_plan *p, FILE *f);
int emit_views_cu(const lwl_plan *p, FILE *f);
int emit_main_c(const lwl_plan *p, FILE *f);

/* lwlc --report on the sources in dir (report.c): launches and bytes per step, and
 * ptxas's registers and shared memory per kernel when nvcc is given. 0 or -1. */
int emit_report(const lwl_plan *p, const char *dir, const char *nvcc, const char *flags,
                const char *gencode, const char *inc, FILE *f);

#endif
