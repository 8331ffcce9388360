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

/* The backward's order of the head's MLPs: predictor, predictor_obj, proj_obj, proj. */
static const int bwd_mlps[4] = { 2, 3, 1, 0 };

/* Marks tensor t's gradient final; returns the lowest tensor index from which every
 * gradient up to the last is final (top: the one before). */
static int mark_final(unsigned char *done, int t, int top)
{
    if (t >= 0)
        done[t] = 1;
    while (top > 0 && done[top - 1])
        top--;
    return top;
}

/* After one backward step has made tensors ts: cuts a bucket when the span since the last
 * cut is big enough, or reaches the first tensor. Returns its index, or -1. */
static int cut_bucket(const lwl_plan *p, emit_buckets *b, unsigned char *done, const int *ts,
                      int nts, int *top, size_t *hi)
{
    for (int i = 0; i < nts; i++)
        *top = mark_final(done, ts[i], *top);
    size_t lo = *top < p->nparams ? p->params[*top].off : p->param_floats;
    if (lo == *hi || ((*hi - lo) * sizeof(float) < EMIT_BUCKET_BYTES && *top > 0))
        return -1;
    emit_bucket *k = &b->v[b->n];
    int last = b->n ? b->v[b->n - 1].first - 1 : p->nparams - 1;
    *k = (emit_bucket){ lo, *hi - lo, *top, last };
    *hi = lo;
    return b->n++;
}

int emit_buckets_make(const lwl_plan *p, emit_buckets *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 4; i++)
        b->after_mlp[i] = -1;
    b->after_conv = malloc(sizeof(int) * (size_t)(p->nconvs ? p->nconvs : 1));
    if (!b->after_conv)
        return -1;
    for (int i = 0; i < p->nconvs; i++)
        b->after_conv[i] = -1;
    if (p->spec->train.gpus < 2)
        return 0;
    unsigned char *done = calloc((size_t)p->nparams + 1, 1);
    b->v = calloc((size_t)p->nparams + 1, sizeof *b->v);
    if (!done || !b->v) {
        free(done);
        return -1;
    }
    int top = p->nparams;
    size_t hi = p->param_floats;
    for (int j = 0; j < 4; j++) {
        const lwl_pmlp *m = emit_mlp(p, bwd_mlps[j]);
        if (!m->rows)
            continue;
        int ts[4] = { m->w0, m->gamma, m->beta, m->w3 };
        b->after_mlp[bwd_mlps[j]] = cut_bucket(p, b, done, ts, 4, &top, &hi);
    }
    for (int k = p->nblocks - 1; k >= 0; k--) {
        const lwl_pblock *bl = &p->blocks[k];
        int order[4], n = 0;
        for (int j = bl->nconv - 1; j >= 0; j--)
            order[n++] = bl->conv[j];
        if (bl->down >= 0)
            order[n++] = bl->down;
        for (int j = 0; j < n; j++) {
            const lwl_pconv *c = &p->convs[order[j]];
            int ts[3] = { c->weight, c->gamma, c->beta };
            b->after_conv[order[j]] = cut_bucket(p, b, done, ts, 3, &top, &hi);
        }
    }
    const lwl_pconv *stem = &p->convs[0];
    int ts[3] = { stem->weight, stem->gamma, stem->beta };
    b->after_conv[0] = cut_bucket(p, b, done, ts, 3, &top, &hi);
    free(done);
    return top == 0 && hi == 0 ? 0 : -1;
}

void emit_buckets_free(emit_buckets *b)
{
    free(b->v);
    free(b->after_conv);
    memset(b, 0, sizeof *b);
}

void emit_bucket_start(emitter *e, int k, const char *guard, int gpu)
{
    if (k < 0 || !e->bk)
        return;
    const emit_bucket *bk = &e->bk->v[k];
    const lwl_plan *p = e->p;
    emit_line(e, "    /* gradient bucket %d of %d complete: %s .. %s", k + 1, e->bk->n,
              p->params[bk->first].name, p->params[bk->last].name);
    emit_line(e, "     * (%.1f MiB); its sum over the ranks starts */", bk->n * 4.0 / (1 << 20));
    if (gpu && guard) {
        emit_line(e, "    if (%s)", guard);
        emit_line(e, "        CK(grads_bucket(%zuu, %zuu));", bk->lo, bk->n);
    } else if (gpu) {
        emit_line(e, "    CK(grads_bucket(%zuu, %zuu));", bk->lo, bk->n);
    } else {
        emit_line(e, "    if (%s%sgrads_bucket(%zuu, %zuu))", guard ? guard : "",
                  guard ? " && " : "", bk->lo, bk->n);
        emit_line(e, "        return -1;");
    }
}
