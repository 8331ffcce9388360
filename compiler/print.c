/* `lwlc --print`: the checked spec as .lwl text with every default written
 * out. The output is itself a valid spec and a fixed point of printing. */
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "spec.h"

/* The shortest decimal spelling that reads back as the same double. */
static void put_num(FILE *out, double v)
{
    char buf[64];
    if (v == (double)(long long)v && v > -1e15 && v < 1e15) {
        fprintf(out, "%lld", (long long)v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* 1e-06 → 1e-6 */
    char *e = strchr(buf, 'e');
    if (e) {
        char *d = e + 1 + (e[1] == '-' || e[1] == '+');
        char *z = d;
        while (*z == '0' && z[1])
            z++;
        memmove(d, z, strlen(z) + 1);
        if (e[1] == '+')
            memmove(e + 1, e + 2, strlen(e + 2) + 1);
    }
    fputs(buf, out);
}

static void put_list(FILE *out, const double *v, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        put_num(out, v[i]);
    }
    fputc(']', out);
}

/* A string literal with the language's escapes. */
static void put_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '\t')
            fputs("\\t", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void put_path(FILE *out, const char *path, const char *dir)
{
    char *rel = path[0] == '/' ? xstrdup(path) : path_relative(path, dir);
    put_str(out, rel);
    free(rel);
}

static void put_splitref(FILE *out, const char *key, const lwl_splitref *r)
{
    fprintf(out, "        %s %s", key, lwl_split_names[r->split]);
    if (r->share != 100) {
        fputc(' ', out);
        put_num(out, r->share);
        fputc('%', out);
    }
    fputc('\n', out);
}

static void put_op(FILE *out, const lwl_op *op)
{
    fprintf(out, "        %s p ", lwl_op_names[op->kind]);
    put_num(out, op->p);
    switch (op->p == 0 ? OP__COUNT : op->kind) {
    case OP_RESIZED_CROP:
        fputs(" scale ", out);
        put_list(out, op->scale, 2);
        fputs(" ratio ", out);
        put_list(out, op->ratio, 2);
        break;
    case OP_COLOR_JITTER:
        fputs(" brightness ", out);
        put_num(out, op->brightness);
        fputs(" contrast ", out);
        put_num(out, op->contrast);
        fputs(" saturation ", out);
        put_num(out, op->saturation);
        fputs(" hue ", out);
        put_num(out, op->hue);
        break;
    case OP_GAUSSIAN_BLUR:
        fputs(" sigma ", out);
        put_list(out, op->sigma, 2);
        break;
    case OP_SOLARIZE:
        fputs(" threshold ", out);
        put_num(out, op->threshold);
        break;
    default:
        break;
    }
    fputc('\n', out);
}

static void print_data(const lwl_spec *s, const char *dir, FILE *out)
{
    fputs("data {\n    root ", out);
    put_path(out, s->data.root ? s->data.root : ".", dir);
    fputc('\n', out);
    if (s->data.classes) {
        fputs("    classes ", out);
        put_path(out, s->data.classes, dir);
        fputc('\n', out);
    }
    if (s->data.split_folders) {
        fputs("    split folders\n", out);
    } else {
        fputs("    split", out);
        for (int i = 0; i < SPLIT__COUNT; i++) {
            fprintf(out, " %s ", lwl_split_names[i]);
            put_num(out, s->data.share[i]);
            fputc('%', out);
        }
        fprintf(out, "\n    seed %d\n", s->data.seed);
    }
    fputs("}\n\n", out);
}

static void print_augment(const lwl_spec *s, FILE *out)
{
    static const char *const sem[] = { "pil", "float" };
    fprintf(out, "augment {\n    size %d\n    semantics %s\n", s->augment.size,
            sem[s->augment.semantics]);
    for (int v = 0; v < 2; v++) {
        fprintf(out, "    view %d {\n", v + 1);
        for (int i = 0; i < s->augment.view[v].nops; i++)
            put_op(out, &s->augment.view[v].ops[i]);
        fputs("    }\n", out);
    }
    fputs("    normalize mean ", out);
    put_list(out, s->augment.mean, 3);
    fputs(" std ", out);
    put_list(out, s->augment.std, 3);
    fputs("\n}\n\n", out);
}

static void print_model_train(const lwl_spec *s, FILE *out)
{
    static const char *const bb[] = { "resnet18", "resnet50" }, *const stem[] = { "imagenet",
        "small" }, *const head[] = { "lewel_b", "byol" }, *const norm[] = { "batch", "sync" },
        *const target[] = { "eman", "ema" }, *const opt[] = { "lars", "sgd" },
        *const sched[] = { "cosine", "cosine_step" }, *const prec[] = { "bf16", "fp16",
        "fp32" };
    const __typeof__(s->model) *m = &s->model;
    fprintf(out, "model {\n    backbone %s\n    stem %s\n    head %s\n", bb[m->backbone],
            stem[m->stem], head[m->head]);
    if (m->head == HEAD_LEWEL_B)
        fprintf(out, "    heads %d\n", m->heads);
    fprintf(out, "    hidden %d\n    dim %d\n", m->hidden, m->dim);
    if (m->head == HEAD_LEWEL_B) {
        fputs("    local_weight ", out);
        put_num(out, m->local_weight);
        fputc('\n', out);
    }
    fprintf(out, "    norm %s\n    target %s\n}\n\n", norm[m->norm], target[m->target]);

    const __typeof__(s->train) *t = &s->train;
    fprintf(out, "train {\n    epochs %d\n    batch %d\n    gpus %d\n    optimizer %s\n    lr ",
            t->epochs, t->batch, t->gpus, opt[t->optimizer]);
    put_num(out, t->lr);
    fputs("\n    momentum ", out);
    put_num(out, t->momentum);
    fputs("\n    weight_decay ", out);
    put_num(out, t->weight_decay);
    if (t->optimizer == OPT_LARS) {
        fputs("\n    eta ", out);
        put_num(out, t->eta);
    }
    fprintf(out, "\n    warmup %d\n    schedule %s\n    ema ", t->warmup, sched[t->schedule]);
    put_num(out, t->ema);
    fprintf(out, "\n    precision %s\n    seed %d\n}\n\n", prec[t->precision], t->seed);
}

static void print_eval(const lwl_spec *s, const char *dir, FILE *out)
{
    const __typeof__(s->eval) *e = &s->eval;
    fprintf(out, "eval {\n    knn {\n        every %d\n        k %d\n        vote %s\n",
            e->knn.every, e->knn.k, e->knn.vote == VOTE_MAJORITY ? "majority" : "weighted");
    if (e->knn.vote == VOTE_WEIGHTED) {
        fputs("        temperature ", out);
        put_num(out, e->knn.temperature);
        fputc('\n', out);
    }
    put_splitref(out, "memory", &e->knn.memory);
    put_splitref(out, "queries", &e->knn.queries);
    fprintf(out, "    }\n    linear {\n        epochs %d\n        batch %d\n        lr ",
            e->linear.epochs, e->linear.batch);
    put_num(out, e->linear.lr);
    fputs("\n        momentum ", out);
    put_num(out, e->linear.momentum);
    fputs("\n        weight_decay ", out);
    put_num(out, e->linear.weight_decay);
    fputs("\n        milestones [", out);
    for (int i = 0; i < e->linear.nmilestones; i++)
        fprintf(out, "%s%d", i ? ", " : "", e->linear.milestones[i]);
    fputs("]\n", out);
    put_splitref(out, "train", &e->linear.train);
    put_splitref(out, "test", &e->linear.test);
    fprintf(out, "    }\n    metrics%s%s\n    repeat %d\n", e->top1 ? " top1" : "",
            e->top5 ? " top5" : "", e->repeat);
    if (e->repeat > 1) {
        fputs("    confidence ", out);
        put_num(out, e->confidence);
        fputc('\n', out);
    }
    if (e->gradcam.nimages == 0) {
        fputs("}\n", out);
        return;
    }
    fprintf(out, "    gradcam {\n        layer layer%d\n        images [\n",
            e->gradcam.layer + 1);
    for (int i = 0; i < e->gradcam.nimages; i++) {
        fputs("            ", out);
        put_path(out, e->gradcam.images[i], dir);
        fputs(i + 1 < e->gradcam.nimages ? ",\n" : "\n", out);
    }
    fputs("        ]\n    }\n}\n", out);
}

void spec_print(const lwl_spec *s, const char *dir, FILE *out)
{
    fputs("# The resolved spec, every default written out (lwlc --print).\n", out);
    fputs("name ", out);
    put_str(out, s->name);
    fputs("\n\n", out);
    print_data(s, dir, out);
    print_augment(s, out);
    print_model_train(s, out);
    print_eval(s, dir, out);
}
