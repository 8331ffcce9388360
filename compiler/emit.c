/* Writes generated/<name>/: the plan's constants, the per-element kernels,
 * the network and step, the views and main. Same spec, same bytes: no
 * timestamps, no absolute paths, everything in plan order. */
#include "emit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void emit_line(emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(e->f, fmt, ap) < 0 || fputc('\n', e->f) == EOF)
        e->failed = 1;
    va_end(ap);
}

const char *emit_where(const lwl_loc *loc)
{
    static char buf[256];
    if (!loc->src) {
        snprintf(buf, sizeof buf, "default");
        return buf;
    }
    const char *base = strrchr(loc->src->path, '/');
    snprintf(buf, sizeof buf, "%.200s:%d", base ? base + 1 : loc->src->path, loc->line);
    return buf;
}

size_t emit_place(arena_plan *a, const char *name, size_t n, const char *what)
{
    a->v = xrealloc(a->v, (size_t)(a->n + 1) * sizeof *a->v);
    emit_slot *s = &a->v[a->n++];
    s->name = xstrdup(name);
    s->what = xstrdup(what);
    s->off = a->total;
    s->n = n;
    a->total += (n + 15) / 16 * 16;
    return s->off;
}

void emit_arena_free(arena_plan *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->v[i].name);
        free(a->v[i].what);
    }
    free(a->v);
    a->v = NULL;
    a->n = 0;
    a->total = 0;
}

int emit_rows_u(const lwl_plan *p)
{
    return p->proj.rows;
}

size_t emit_stats_off(const lwl_plan *p, int conv)
{
    size_t n = 0;
    for (int i = 0; i < conv; i++)
        n += 2 * (size_t)p->groups * (size_t)p->convs[i].cout;
    return n;
}

size_t emit_stats_floats(const lwl_plan *p)
{
    return emit_stats_off(p, p->nconvs);
}

const char *const emit_mlp_slot[4] = { "PROJ", "PROJ_OBJ", "PRED", "PRED_OBJ" };

const lwl_pmlp *emit_mlp(const lwl_plan *p, int i)
{
    const lwl_pmlp *m[4] = { &p->proj, &p->proj_obj, &p->predictor, &p->predictor_obj };
    return m[i];
}

/* Writes one file of the output directory with `fn`, through a temporary name. */
static int write_file(const lwl_plan *p, const char *dir, const char *name,
                      int (*fn)(const lwl_plan *, FILE *), const char *text, lwl_diag *d)
{
    char *path = xasprintf("%s/%s", dir, name), *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        rc = fn ? fn(p, f) : (fputs(text, f) < 0 ? -1 : 0);
        if (fclose(f) != 0)
            rc = -1;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -1;
    }
    if (rc != 0) {
        diag_plain(d, "cannot write '%s': %s", path, strerror(errno));
        remove(tmp);
    }
    free(path);
    free(tmp);
    return rc;
}

static int mkdirs(const char *dir)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

int emit_c(const lwl_plan *p, const char *dir, lwl_diag *d)
{
    if (mkdirs(dir) != 0) {
        diag_plain(d, "cannot make directory '%s': %s", dir, strerror(errno));
        return -1;
    }
    if (write_file(p, dir, "kernels.h", NULL, lwl_tmpl_kernels_h, d) ||
        write_file(p, dir, "cpu_ops.h", NULL, lwl_tmpl_cpu_ops_h, d) ||
        write_file(p, dir, "plan.h", emit_plan_h, NULL, d) ||
        write_file(p, dir, "net.c", emit_net_c, NULL, d) ||
        write_file(p, dir, "gpu_kernels.h", NULL, lwl_tmpl_gpu_kernels_h, d) ||
        write_file(p, dir, "gpu_ops.cuh", NULL, lwl_tmpl_gpu_ops_cuh, d) ||
        write_file(p, dir, "net.cu", emit_net_cu, NULL, d) ||
        write_file(p, dir, "views.c", emit_views_c, NULL, d) ||
        write_file(p, dir, "views.cu", emit_views_cu, NULL, d) ||
        write_file(p, dir, "main.c", emit_main_c, NULL, d))
        return -1;
    return 0;
}
