/* lwlc --report: what one training step of the GPU program does, for diffing between
 * specs: its launches per step (cuDNN convolutions, cuBLAS GEMMs, our kernels) and an
 * estimate of the bytes they move, from the plan, per GPU; then the registers and shared
 * memory of every kernel of net.cu and views.cu as ptxas reports them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* Launches and bytes of one part of the step. */
typedef struct tally {
    const char *what;
    long cudnn, cublas, kernels;
    double bytes;
} tally;

static void add(tally *t, long cudnn, long cublas, long kernels, double bytes)
{
    t->cudnn += cudnn;
    t->cublas += cublas;
    t->kernels += kernels;
    t->bytes += bytes;
}

/* One backbone pass over n images (act: bytes of an activation element): forward in train
 * mode (train), eval mode, or the backward (bwd). */
static void backbone(const lwl_plan *p, double n, double act, int mode, tally *t)
{
    for (int i = 0; i < p->nconvs; i++) {
        const lwl_pconv *c = &p->convs[i];
        double in = n * c->cin * c->hin * c->win, out = n * c->cout * c->hout * c->wout;
        double w = (double)p->params[c->weight].numel;
        if (mode == 0) {            /* conv, BN statistics (3 reductions) and apply */
            add(t, 1, 0, 5, act * (in + out + w) + act * out * 3);
        } else if (mode == 1) {     /* conv, BN apply with the running statistics */
            add(t, 1, 0, 1, act * (in + out + w) + act * out * 2);
        } else {                    /* BN backward (sums, 2 reductions, dgamma, dx),
                                     * backward filter + its fp32 add, backward data */
            add(t, i ? 2 : 1, 0, 6, act * out * 6 + act * (in + out + w) * 2 + w * (act + 8));
        }
    }
    double blocks = 0;
    for (int b = 0; b < p->nblocks; b++) {
        const lwl_pact *o = &p->acts[p->blocks[b].out];
        blocks += n * o->c * o->h * o->w;
    }
    if (mode == 2)                  /* relu backward and the shortcut's add per block */
        add(t, 0, 0, 2L * p->nblocks, act * blocks * 5);
    if (p->stem_pool) {
        const lwl_pact *a = &p->acts[p->pool_in], *o = &p->acts[p->pool_out];
        double in = n * a->c * a->h * a->w, out = n * o->c * o->h * o->w;
        add(t, 0, 0, 1, mode == 2 ? act * (in + out) + out : act * (in + out) + out);
    }
}

/* The head's MLP i over its rows: forward 2 GEMMs and the BN (train: 5 launches), backward
 * 4 GEMMs (3 without dx) and the BN backward (5). fp32. */
static void mlp(const lwl_plan *p, int i, double rows, int bwd, int train, tally *t)
{
    const lwl_pmlp *m = emit_mlp(p, i);
    double h = rows * m->hidden, w = (double)m->in * m->hidden + (double)m->hidden * m->out;
    if (!bwd)
        add(t, 0, 2, train ? 5 : 1, 4 * (rows * m->in + w + h * 4 + rows * m->out));
    else
        add(t, 0, 4, 5, 4 * (rows * m->out + w * 3 + h * 8 + rows * m->in));
}

static void head(const lwl_plan *p, double n, int online, int bwd, int train, tally *t)
{
    double P = (double)p->fh * p->fw, L = p->lewel ? 1 + P : 1, K = p->maps;
    double C = p->channels, D = p->dim;
    add(t, 0, 0, 1 + 1, 4 * n * L * C + 2 * n * P * C);    /* rows, the global rows */
    mlp(p, 0, n * L, bwd, train, t);
    if (p->lewel) {
        add(t, 0, p->heads * (bwd ? 2 : 1), bwd ? 2 : 2,
            4 * (n * D * P * 3 + n * P * C * (bwd ? 2 : 1) + n * K * C * (bwd ? 2 : 1)));
        mlp(p, 1, n * K, bwd, train, t);
    }
    if (online) {
        mlp(p, 2, n, bwd, 1, t);
        if (p->lewel)
            mlp(p, 3, n * K, bwd, 1, t);
    }
}

/* The step per GPU: the summary lines. */
static void step_tallies(const lwl_plan *p, FILE *f)
{
    const lwl_spec *s = p->spec;
    double n = (double)p->batch / s->train.gpus;
    double act = s->train.precision == PREC_FP32 ? 4 : 2;
    int eman = s->model.target == TARGET_EMAN;
    tally t[8] = { { "the two views into the network's input", 0, 0, 0, 0 },
                   { "casts of the conv weights (online, target)", 0, 0, 0, 0 },
                   { "target forward, 2 views", 0, 0, 0, 0 },
                   { "online forward, 2 views", 0, 0, 0, 0 },
                   { "the loss, 2 view orders", 0, 0, 0, 0 },
                   { "online backward, 2 views", 0, 0, 0, 0 },
                   { "optimiser and moving average", 0, 0, 0, 0 } };
    double convw = 0;
    for (int i = 0; i < p->nconvs; i++)
        convw += (double)p->params[p->convs[i].weight].numel;
    double pixels = n * 3 * p->size * p->size;
    add(&t[1], 0, 0, 2L * p->nconvs, 2 * convw * (4 + act));
    for (int v = 0; v < 2; v++) {
        add(&t[0], 0, 0, 1, pixels * (4 + act));    /* views.cu's kernel, or view_in */
        add(&t[2], 0, 0, 0, act * pixels * 2);      /* the target's copy of the view */
        backbone(p, n, act, eman ? 1 : 0, &t[2]);
        head(p, n, 0, 0, !eman, &t[2]);
        backbone(p, n, act, 0, &t[3]);
        head(p, n, 1, 0, 1, &t[3]);
        add(&t[4], 0, 0, p->lewel ? 4 : 2, 4.0 * n * p->dim * (p->lewel ? 1 + p->maps : 1) * 3);
        head(p, n, 1, 1, 1, &t[5]);
        backbone(p, n, act, 2, &t[5]);
    }
    double np = (double)p->param_floats, nt = (double)p->target_param_floats;
    /* averaging over the ranks (gpus > 1), fp16's overflow check and unscaling, the
     * optimiser's norms (sq_chunk, sum_in_order, trust) and update, the target's average */
    int ranks = s->train.gpus > 1, fp16 = s->train.precision == PREC_FP16;
    add(&t[6], 0, 0, ranks + 2 * fp16, np * 4 * 2 * (ranks + fp16) + np * 4 * fp16);
    add(&t[6], 0, 0, 3 + (eman ? 2 : 1), np * 4 * 7 + nt * 4 * 3);
    fprintf(f, "step of %s per GPU: %g images a view, activations %s\n", p->name, n,
            act == 2 ? (s->train.precision == PREC_BF16 ? "bf16" : "fp16") : "fp32");
    fprintf(f, "  %-44s %7s %7s %8s %10s\n", "part", "cuDNN", "cuBLAS", "kernels", "GB moved");
    tally all = { "the step", 0, 0, 0, 0 };
    for (int i = 0; i < 7; i++) {
        fprintf(f, "  %-44s %7ld %7ld %8ld %10.2f\n", t[i].what, t[i].cudnn, t[i].cublas,
                t[i].kernels, t[i].bytes / 1e9);
        add(&all, t[i].cudnn, t[i].cublas, t[i].kernels, t[i].bytes);
    }
    fprintf(f, "  %-44s %7ld %7ld %8ld %10.2f\n", all.what, all.cudnn, all.cublas,
            all.kernels, all.bytes / 1e9);
    fprintf(f, "  (launches counted from the schedule, per rank when gpus > 1, NCCL's not "
               "counted;\n   bytes estimated: every tensor a launch reads or writes, once, "
               "cuDNN's and cuBLAS's included)\n");
}

/* A kernel's name from its mangled one: the first name, "<...>" for a template. */
static void demangle(const char *m, char *out, size_t n)
{
    char *end;
    long len = strncmp(m, "_Z", 2) == 0 ? strtol(m + 2, &end, 10) : 0;
    if (len <= 0 || (size_t)len >= n || strlen(end) < (size_t)len) {
        snprintf(out, n, "%s", m);
        return;
    }
    const char *arg = "";
    if (end[len] == 'I') {
        const char *t = end + len + 1;
        arg = *t == 'f' ? "<float>" : strncmp(t, "6bf16_t", 7) == 0 ? "<bf16_t>"
              : strncmp(t, "5f16_t", 6) == 0 ? "<f16_t>" : "<...>";
    }
    snprintf(out, n, "%.*s%s", (int)len, end, arg);
}

/* Runs nvcc with ptxas's report on file and prints one line per kernel. 0 or -1. */
static int ptxas(const char *nvcc, const char *flags, const char *gencode, const char *inc,
                 const char *file, FILE *f)
{
    char *cmd = xasprintf("%s %s %s -Xptxas -v %s -c '%s' -o /dev/null 2>&1; echo \"rc $?\"",
                          nvcc, flags, gencode, inc, file);
    FILE *pp = popen(cmd, "r");
    free(cmd);
    if (!pp)
        return -1;
    char line[4096], name[1024] = "";
    int rc = -1;
    while (fgets(line, sizeof line, pp)) {
        if (strncmp(line, "rc ", 3) == 0) {
            rc = atoi(line + 3) == 0 ? 0 : -1;
            continue;
        }
        char *e = strstr(line, "Compiling entry function '");
        if (e) {
            e += strlen("Compiling entry function '");
            char *q = strchr(e, '\'');
            char mangled[1024];
            snprintf(mangled, sizeof mangled, "%.*s", q ? (int)(q - e) : 0, e);
            demangle(mangled, name, sizeof name);
            continue;
        }
        char *u = strstr(line, "Used ");
        if (u && *name) {
            int regs = 0;
            sscanf(u, "Used %d registers", &regs);
            char *sm = strstr(line, "bytes smem");
            long smem = 0;
            if (sm) {
                char *b = sm;
                while (b > line && b[-1] == ' ')
                    b--;
                while (b > line && (b[-1] >= '0' && b[-1] <= '9'))
                    b--;
                smem = strtol(b, NULL, 10);
            }
            fprintf(f, "  %-40.40s %4d registers %7ld B static shared memory\n", name, regs,
                    smem);
            *name = 0;
        }
    }
    pclose(pp);
    return rc;
}

int emit_report(const lwl_plan *p, const char *dir, const char *nvcc, const char *flags,
                const char *gencode, const char *inc, FILE *f)
{
    step_tallies(p, f);
    if (!*nvcc) {
        fprintf(f, "kernels: no nvcc, so no ptxas report\n");
        return 0;
    }
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        char *file = xasprintf("%s/%s.cu", dir, k ? "views" : "net");
        fprintf(f, "kernels of %s (ptxas):\n", file);
        if (ptxas(nvcc, flags, gencode, inc, file, f)) {
            fprintf(f, "  nvcc failed on %s\n", file);
            rc = -1;
        }
        free(file);
    }
    return rc;
}
