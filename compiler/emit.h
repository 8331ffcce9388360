/* The emitters' shared writer: formatted output to one generated file with
 * indentation, and the templates compiled into lwlc. */
#ifndef LWLC_EMIT_H
#define LWLC_EMIT_H

#include <stdio.h>

#include "plan.h"

typedef struct emitter {
    FILE *f;
    const lwl_plan *p;
    int failed;             /* a write failed */
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
