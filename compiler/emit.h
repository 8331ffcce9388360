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
/* `file:line` of a spec location without directories, for comments. */
const char *emit_where(const lwl_loc *loc);

/* Templates from compiler/tmpl/, as one string each (tmpl.c, made by make). */
extern const char lwl_tmpl_kernels_h[];
extern const char lwl_tmpl_cpu_ops_h[];

/* The parts of generated/<name>/: each writes one file into dir. */
int emit_plan_h(const lwl_plan *p, FILE *f);
int emit_net_c(const lwl_plan *p, FILE *f);
int emit_views_c(const lwl_plan *p, FILE *f);
int emit_views_cu(const lwl_plan *p, FILE *f);
int emit_main_c(const lwl_plan *p, FILE *f);

#endif
