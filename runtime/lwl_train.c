/* The driver of a generated program (see lwl_train.h): phases in order,
 * the pre-training loop (schedules, step line, metrics.jsonl, NaN guard),
 * checkpoints through a temporary file and exact resume, features, the
 * step dump for checking against other implementations, and the bench. */
#include "lwl_train.h"
#include "lwl_nn.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lwl_comm.h"
#include "lwl_dataset.h"
#include "lwl_phase.h"
#include "lwl_run.h"
#include "lwl_safetensors.h"

#define PI 3.14159265358979323846

double run_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void run_say(const run *r, const char *fmt, ...)
{
    if (r->o.quiet || r->rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

int run_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (lwl_comm_world() > 1)
        fprintf(stderr, "rank %d: ", lwl_comm_rank());
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* Makes the network's memory and primitives the first time a phase needs them
 * (the data phases never do), on the GPU or the CPU (r->gpu). */
int run_need_net(run *r)
{
    if (r->net_ready)
        return 0;
    if (r->gpu) {
        if (r->gpu->init(r->device, r->rank, r->world, r->idfile) != 0)
            return run_fail("cannot set up the network on GPU %d", r->device);
        r->st = r->gpu->state();
    } else {
        if (r->p->net_init(r->o.threads, r->rank, r->world) != 0)
            return run_fail("cannot set up the network");
        r->st = r->p->net_state();
    }
    r->nb = r->p->batch / r->world;
    r->net_ready = 1;
    return 0;
}

int run_net_init_weights(run *r)
{
    uint64_t seed = (uint64_t)r->o.seed;
    if (r->gpu ? r->gpu->init_weights(seed) : r->p->net_init_weights(seed))
        return run_fail("cannot initialise the network");
    return 0;
}

int run_net_step(run *r, const float *v1, const float *v2, float lr, float ema, int first,
                 double *loss)
{
    return r->gpu ? r->gpu->step(v1, v2, lr, ema, first, loss)
                  : r->p->net_step(v1, v2, lr, ema, first, loss);
}

int run_net_features(run *r, const float *x, float *feat)
{
    return r->gpu ? r->gpu->features(x, feat) : r->p->net_features(x, feat);
}

const float *run_net_maps(run *r, const float *x)
{
    return r->gpu ? r->gpu->maps(x) : r->p->net_maps(x);
}

int run_net_to_host(run *r)
{
    if (r->gpu && r->gpu->to_host())
        return run_fail("cannot copy the state from the GPU");
    return 0;
}

int run_net_to_device(run *r)
{
    if (r->gpu && r->gpu->to_device())
        return run_fail("cannot copy the state to the GPU");
    return 0;
}

int run_cpu_net(run *r)
{
    const lwl_program *p = r->p;
    if (run_need_net(r))
        return -1;
    if (!r->gpu)
        return 0;
    if (!r->cpu_net) {
        if (p->net_init(r->o.threads, r->rank, r->world) != 0)
            return run_fail("cannot set up the CPU network beside the GPU's");
        r->cpu_net = 1;
    }
    if (run_net_to_host(r))
        return -1;
    lwl_state c = p->net_state();
    memcpy(c.params, r->st.params, p->param_floats * sizeof(float));
    memcpy(c.bufs, r->st.bufs, p->buf_floats * sizeof(float));
    return 0;
}

char *run_join(const char *dir, const char *path)
{
    char *s;
    if (path[0] == '/' || !dir || !*dir)
        s = strdup(path);
    else if (asprintf(&s, "%s/%s", dir, path) < 0)
        s = NULL;
    return s;
}

int run_mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
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

/* ---- schedules */

double lwl_lr_at(const lwl_program *p, long t, long spe)
{
    long warm = (long)p->warmup * spe, total = (long)p->epochs * spe;
    if (t < warm)
        return p->lr * (double)(t + 1) / (double)warm;
    if (total <= warm)
        return p->lr;
    if (p->cosine_per_step)
        return p->lr * 0.5 * (1 + cos(PI * (double)(t - warm) / (double)(total - warm)));
    long e = t / spe;
    return p->lr * 0.5 * (1 + cos(PI * (double)(e - p->warmup) / (double)(p->epochs - p->warmup)));
}

double lwl_ema_at(const lwl_program *p, long t, long total)
{
    return 1 - (1 - p->ema) * (cos(PI * (double)t / (double)total) + 1) / 2;
}

/* ---- command line */

static const char usage[] =
    "usage: %s [--data DIR] [--out DIR] [--device auto|cpu|cuda] [--epochs N] [--steps N]\n"
    "          [--seed N] [--threads N] [--resume] [--quiet] [PHASE ...]\n"
    "          [--repeat N]\n"
    "phases: scan, views N, pretrain, features [SPLIT], dump, bench, knn, linear, gradcam,\n"
    "        report (default: pretrain knn linear gradcam report)\n";

static int parse(const lwl_program *p, int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = p->epochs;
    o->steps = -1;
    o->seed = p->seed;
    o->device = "auto";
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = nproc > 0 ? (int)nproc : 1;
    o->phases = calloc((size_t)argc + 1, sizeof *o->phases);
    if (!o->phases)
        return run_fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--data") == 0 || strcmp(a, "--out") == 0 ||
                    strcmp(a, "--device") == 0 || strcmp(a, "--epochs") == 0 ||
                    strcmp(a, "--steps") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--threads") == 0 || strcmp(a, "--repeat") == 0;
        if (takes && !v)
            return run_fail("%s needs a value", a);
        if (takes)
            i++;
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf(usage, argv[0]);
            exit(0);
        } else if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--device") == 0) {
            o->device = v;
        } else if (strcmp(a, "--resume") == 0) {
            o->resume = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (takes) {
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 0 || n > 1000000000L)
                return run_fail("%s expects a non-negative integer, got '%s'", a, v);
            if (strcmp(a, "--epochs") == 0)
                o->epochs = (int)n;
            else if (strcmp(a, "--steps") == 0)
                o->steps = n;
            else if (strcmp(a, "--seed") == 0)
                o->seed = (int)n;
            else if (strcmp(a, "--threads") == 0)
                o->threads = n > 0 ? (int)n : 1;
            else if (n < 1 || n > 64)
                return run_fail("--repeat must be within 1..64, got %ld", n);
            else
                o->repeat = (int)n;
        } else if (strcmp(a, "views") == 0) {
            if (!v || (o->views_n = (int)strtol(v, &end, 10)) <= 0 || *end)
                return run_fail("views needs a positive count: views 8");
            o->phases[o->nphases++] = a;
            i++;
        } else if (strcmp(a, "features") == 0) {
            o->phases[o->nphases++] = a;
            if (v && (!strcmp(v, "train") || !strcmp(v, "val") || !strcmp(v, "test"))) {
                o->features_split = v;
                i++;
            }
        } else if (!strcmp(a, "scan") || !strcmp(a, "pretrain") || !strcmp(a, "dump") ||
                   !strcmp(a, "bench") || !strcmp(a, "knn") || !strcmp(a, "linear") ||
                   !strcmp(a, "gradcam") || !strcmp(a, "report")) {
            o->phases[o->nphases++] = a;
        } else {
            fprintf(stderr, usage, argv[0]);
            return run_fail("unknown argument '%s'", a);
        }
    }
    if (strcmp(o->device, "cuda") == 0 && !p->gpu)
        return run_fail("--device cuda: this program was built for the CPU only (build it with "
                        "lwlc --target cuda)");
    if (strcmp(o->device, "auto") && strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))
        return run_fail("--device must be auto, cpu or cuda, got '%s'", o->device);
    if (o->epochs < 1)
        return run_fail("--epochs must be at least 1");
    if (o->nphases == 0) {
        static const char *const defaults[] = { "pretrain", "knn", "linear", "gradcam",
                                                "report" };
        for (int i = 0; i < 5; i++)
            o->phases[o->nphases++] = defaults[i];
        o->defaults = 1;
    }
    return 0;
}

/* ---- data */

int run_open_data(run *r)
{
    if (r->ds_open)
        return 0;
    const lwl_program *p = r->p;
    lwl_data_cfg cfg = { r->root, r->classes, p->split_folders,
                         { p->share[0], p->share[1], p->share[2] }, (uint64_t)p->split_seed };
    char *err = NULL;
    if (lwl_dataset_open(&cfg, &r->ds, &err) != 0) {
        run_fail("data: %s", err ? err : "cannot open");
        free(err);
        return -1;
    }
    r->ds_open = 1;
    run_say(r, "data: %s: %d classes, train %zu, val %zu, test %zu images\n", r->root,
        r->ds.nclasses, r->ds.n[LWL_TRAIN], r->ds.n[LWL_VAL], r->ds.n[LWL_TEST]);
    return 0;
}

/* Pre-training needs at least one full batch of the train split. */
static int need_batch(const run *r)
{
    if (r->ds.n[LWL_TRAIN] >= (size_t)r->p->batch)
        return 0;
    return run_fail("data: the train split has %zu images, fewer than one batch of %d",
                r->ds.n[LWL_TRAIN], r->p->batch);
}

static void report_bad(void *arg, const char *path, const char *reason, int fatal)
{
    (void)arg;
    fprintf(stderr, "warning: %s: %s%s\n", path, reason, fatal ? " (skipped)" : "");
}

lwl_loader *run_open_loader(run *r, const lwl_pipeline *pipe, int part, int shuffle,
                            int keep_last, int per_rank)
{
    lwl_loader_cfg c;
    memset(&c, 0, sizeof c);
    c.pipe = pipe;
    c.items = r->ds.part[part];
    c.n = r->ds.n[part];
    c.batch = r->nb;
    c.rank = per_rank ? r->rank : 0;
    c.world = per_rank ? r->world : 1;
    /* pre-training on a GPU: the workers stage the views' pixels and params in pinned
     * memory and views.cu makes the views on the device (LWL_GPU_VIEWS=0: on the host) */
    const char *gv = getenv("LWL_GPU_VIEWS");
    if (per_rank && r->gpu && r->gpu->step_staged && !(gv && !strcmp(gv, "0"))) {
        c.stage = 1;
        c.stage_alloc = r->gpu->stage_alloc;
        c.stage_free = r->gpu->stage_free;
        c.stage_arg = &r->device;
    }
    c.shuffle = shuffle;
    c.keep_last = keep_last;
    c.seed = (uint64_t)r->o.seed;
    c.threads = r->o.threads;
    c.report = report_bad;
    char *err = NULL;
    lwl_loader *ld = lwl_loader_open(&c, &err);
    if (!ld) {
        run_fail("loader: %s", err ? err : "cannot start");
        free(err);
    }
    return ld;
}

/* ---- checkpoints */

static int add_named(lwl_st_writer *w, const char *prefix, const lwl_tensor_info *t, int n,
                     const float *base, char ***names, int *nnames)
{
    for (int i = 0; i < n; i++) {
        char *name;
        if (asprintf(&name, "%s%s", prefix, t[i].name) < 0)
            return -1;
        *names = realloc(*names, (size_t)(*nnames + 1) * sizeof **names);
        (*names)[(*nnames)++] = name;
        int64_t shape[4];
        for (int k = 0; k < t[i].ndim; k++)
            shape[k] = t[i].shape[k];
        if (lwl_st_add(w, name, LWL_ST_F32, t[i].ndim, shape, base + t[i].off))
            return -1;
    }
    return 0;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* backbone.safetensors: the online backbone under torchvision's names, group 0's
 * running statistics and num_batches_tracked, so that resnet().load_state_dict(...,
 * strict=False) misses only fc. */
static int write_backbone(run *r, const char *path, long step)
{
    const lwl_program *p = r->p;
    lwl_st_writer *w = lwl_st_writer_new();
    char **names = NULL;
    int nn = 0, rc = -1, nb = 0;
    static int64_t tracked;
    tracked = 2 * step;         /* each step runs two views through every BN */
    if (!w)
        return -1;
    for (int i = 0; i < p->nparams; i++) {
        if (strncmp(p->params[i].name, "layer", 5) && strncmp(p->params[i].name, "conv1", 5) &&
            strncmp(p->params[i].name, "bn1", 3))
            continue;
        if (add_named(w, "", &p->params[i], 1, r->st.params, &names, &nn))
            goto out;
    }
    for (int i = 0; i < p->nbufs; i++) {
        const char *n = p->bufs[i].name;
        if (strncmp(n, "layer", 5) && strncmp(n, "bn1", 3))
            continue;
        if (add_named(w, "", &p->bufs[i], 1, r->st.bufs, &names, &nn))
            goto out;
        if (strstr(n, "running_var")) {
            char *t;
            if (asprintf(&t, "%.*snum_batches_tracked", (int)(strlen(n) - 11), n) < 0)
                goto out;
            names = realloc(names, (size_t)(nn + 1) * sizeof *names);
            names[nn++] = t;
            if (lwl_st_add(w, t, LWL_ST_I64, 0, NULL, &tracked))
                goto out;
            nb++;
        }
    }
    lwl_st_add_meta(w, "format", "pt");
    lwl_st_add_meta(w, "experiment", p->name);
    rc = lwl_st_write(w, path);
out:
    if (rc)
        run_fail("%s: %s", path, lwl_st_error());
    lwl_st_writer_free(w);
    free_names(names, nn);
    (void)nb;
    return rc;
}

/* checkpoint.safetensors: every array of the state, as it is, for an exact resume. */
static int write_checkpoint(run *r, const char *path, long step)
{
    const lwl_program *p = r->p;
    lwl_st_writer *w = lwl_st_writer_new();
    if (!w)
        return run_fail("out of memory");
    int64_t np = (int64_t)p->param_floats, nb = (int64_t)p->buf_floats;
    int64_t ntp = (int64_t)p->target_param_floats, ntb = (int64_t)p->target_buf_floats;
    char sstep[32], sseed[32];
    snprintf(sstep, sizeof sstep, "%ld", step);
    snprintf(sseed, sizeof sseed, "%d", r->o.seed);
    int rc = lwl_st_add(w, "state.params", LWL_ST_F32, 1, &np, r->st.params) ||
             lwl_st_add(w, "state.momentum", LWL_ST_F32, 1, &np, r->st.momentum) ||
             lwl_st_add(w, "state.bufs", LWL_ST_F32, 1, &nb, r->st.bufs) ||
             lwl_st_add(w, "state.target", LWL_ST_F32, 1, &ntp, r->st.target) ||
             lwl_st_add(w, "state.tbufs", LWL_ST_F32, 1, &ntb, r->st.tbufs) ||
             lwl_st_add_meta(w, "step", sstep) || lwl_st_add_meta(w, "seed", sseed) ||
             lwl_st_add_meta(w, "experiment", p->name) || lwl_st_add_meta(w, "spec", p->spec) ||
             lwl_st_write(w, path);
    if (rc)
        run_fail("%s: %s", path, lwl_st_error());
    lwl_st_writer_free(w);
    return rc ? -1 : 0;
}

static int copy_tensor(const lwl_st_file *f, const char *name, float *dst, size_t n)
{
    int64_t shape = (int64_t)n;
    const lwl_st_tensor *t = lwl_st_expect(f, name, LWL_ST_F32, 1, &shape);
    if (!t)
        return run_fail("checkpoint: %s", lwl_st_error());
    memcpy(dst, t->data, n * sizeof(float));
    return 0;
}

/* Loads checkpoint.safetensors of the same experiment; *step is where it stopped. */
int run_read_checkpoint(run *r, const char *path, long *step)
{
    const lwl_program *p = r->p;
    lwl_st_file *f = lwl_st_open(path);
    if (!f)
        return run_fail("--resume: %s", lwl_st_error());
    const char *spec = lwl_st_meta(f, "spec"), *s = lwl_st_meta(f, "step");
    const char *seed = lwl_st_meta(f, "seed");
    int rc = -1;
    char want[32];
    snprintf(want, sizeof want, "%d", r->o.seed);
    if (!spec || strcmp(spec, p->spec) != 0)
        run_fail("--resume: %s was written by a different spec; refusing to mix them "
             "(start afresh without --resume, or use another --out)", path);
    else if (!seed || strcmp(seed, want) != 0)
        run_fail("--resume: %s was trained with seed %s, not %s", path, seed ? seed : "?", want);
    else if (!s || (*step = strtol(s, NULL, 10)) < 0)
        run_fail("--resume: %s has no step", path);
    else
        rc = copy_tensor(f, "state.params", r->st.params, p->param_floats) ||
             copy_tensor(f, "state.momentum", r->st.momentum, p->param_floats) ||
             copy_tensor(f, "state.bufs", r->st.bufs, p->buf_floats) ||
             copy_tensor(f, "state.target", r->st.target, p->target_param_floats) ||
             copy_tensor(f, "state.tbufs", r->st.tbufs, p->target_buf_floats) ? -1 : 0;
    lwl_st_close(f);
    return rc;
}

/* ---- ranks */

/* Rank 0's *v on every rank (its decisions: resume or not, checkpoint now or not). */
static int agree(const run *r, int *v)
{
    if (r->world == 1)
        return 0;
    if (!lwl_comm_mpi() && r->gpu)     /* GPU ranks the program started: through NCCL */
        return r->gpu->bcast_host(v, sizeof *v);
    return lwl_comm_bcast_bytes(v, sizeof *v);
}

/* Every rank waits here until rank 0 comes (after its evaluation, say). */
static int run_barrier(const run *r)
{
    int token = 0;
    return agree(r, &token);
}

/* Rank 0's whole state on every rank (after it read a checkpoint). */
static int share_state(const run *r)
{
    const lwl_program *p = r->p;
    if (r->world == 1)
        return 0;
    if (r->gpu)
        return r->gpu->share_state() ? run_fail("cannot share the state between the GPUs") : 0;
    return lwl_comm_bcast_f(r->st.params, p->param_floats) ||
           lwl_comm_bcast_f(r->st.momentum, p->param_floats) ||
           lwl_comm_bcast_f(r->st.bufs, p->buf_floats) ||
           lwl_comm_bcast_f(r->st.target, p->target_param_floats) ||
           lwl_comm_bcast_f(r->st.tbufs, p->target_buf_floats) ? -1 : 0;
}

/* With model.norm batch, rank k updates the running statistics of its own BN groups
 * (k ng .. k ng + ng - 1) only: give every rank every group's, as one process has them,
 * by a sum in which the slots a rank does not own count -0 (x + -0 is x, bit for bit). */
static int gather_groups_of(const run *r, float *bufs, const lwl_tensor_info *t, int n,
                            size_t floats)
{
    const lwl_program *p = r->p;
    int ng = p->groups / r->world;
    float *tmp = malloc(floats * sizeof *tmp);
    if (!tmp)
        return run_fail("out of memory");
    memcpy(tmp, bufs, floats * sizeof *tmp);
    for (int i = 0; i < n; i++)
        for (int g = 0; g < p->groups; g++)
            if (g / ng != r->rank)
                for (size_t k = 0; k < t[i].numel; k++)
                    tmp[t[i].off + (size_t)g * t[i].numel + k] = -0.0f;
    int rc = lwl_comm_sum_f(tmp, floats);
    if (rc == 0)
        memcpy(bufs, tmp, floats * sizeof *tmp);
    free(tmp);
    return rc;
}

static int gather_groups(const run *r)
{
    const lwl_program *p = r->p;
    if (r->world == 1 || p->groups == 1)
        return 0;
    if (r->gpu)
        return r->gpu->gather_groups() ? run_fail("cannot gather the GPUs' BN statistics") : 0;
    return gather_groups_of(r, r->st.bufs, p->bufs, p->nbufs, p->buf_floats) ||
           gather_groups_of(r, r->st.tbufs, p->bufs, p->target_nbufs, p->target_buf_floats)
           ? -1 : 0;
}

/* Both checkpoints, by rank 0, after every rank's BN groups are gathered (every rank
 * calls it). */
static int save(run *r, const char *ckpt, const char *bb, long step)
{
    if (gather_groups(r) || run_net_to_host(r))
        return -1;
    if (r->rank != 0)
        return 0;
    return write_checkpoint(r, ckpt, step) || write_backbone(r, bb, step) ? -1 : 0;
}

/* ---- pre-training */

static void progress(const run *r, long t, long total, double loss, double lr, double m,
                     double ms, double ips, double wait, double eta_s, int epoch)
{
    if (r->o.quiet)
        return;
    int tty = isatty(STDOUT_FILENO);
    char bar[24];
    int fill = (int)(20.0 * (double)(t + 1) / (double)total);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    printf("%sstep %ld/%ld | epoch %d | loss %.4f | lr %.5f | ema %.5f | %.0f ms | "
           "%.1f img/s | data %.0f ms", tty ? "\r" : "", t + 1, total, epoch, loss, lr, m, ms,
           ips, wait);
    if (tty)
        printf(" [%s] eta %02d:%02d:%02d ", bar, (int)(eta_s / 3600), (int)(eta_s / 60) % 60,
               (int)eta_s % 60);
    else
        putchar('\n');
    fflush(stdout);
}

static void settings(const run *r, long spe, long total, long start)
{
    const lwl_program *p = r->p;
    run_say(r, "experiment %s\n", p->name);
    run_say(r, "%s", p->summary);
    run_say(r, "  %-22s %d x %ld steps = %ld, from step %ld\n", "schedule", r->o.epochs, spe, total,
        start);
    if (r->world > 1)
        run_say(r, "  %-22s %d (%s), %d images each per step\n", "ranks", r->world,
                lwl_comm_ranks()->launcher, r->nb);
    int convs, wf, wb;
    lwl_nn_conv_algos(&convs, &wf, &wb);
    if (convs)
        run_say(r, "  %-22s %d: Winograd forward %d, Winograd input gradient %d, direct the rest\n",
                "CPU convolutions", convs, wf, wb);
    run_say(r, "  %-22s %d\n  %-22s %s\n\n", "threads", r->o.threads, "out", r->o.out);
}

static int phase_pretrain(run *r)
{
    const lwl_program *p = r->p;
    if (run_open_data(r) || need_batch(r) || run_need_net(r))
        return -1;
    lwl_loader *ld = run_open_loader(r, p->views, LWL_TRAIN, 1, 0, 1);
    if (!ld)
        return -1;
    long spe = lwl_loader_epoch(ld, 0), total = (long)r->o.epochs * spe, t = 0;
    char *ckpt = run_join(r->o.out, "checkpoint.safetensors");
    char *bb = run_join(r->o.out, "backbone.safetensors");
    char *mpath = run_join(r->o.out, "metrics.jsonl");
    int rc = -1;

    /* A run with a different epoch count is a different schedule: the spec check of
     * --resume covers the spec; --epochs changes are refused the same way. */
    lwl_program q = *p;
    q.epochs = r->o.epochs;
    if (run_net_init_weights(r))
        goto out;
    /* rank 0 reads the checkpoint and hands its state to the others */
    int have = r->o.resume && access(ckpt, R_OK) == 0, tt = 0;
    if (agree(r, &have))
        goto out;
    if (r->o.resume && !have) {
        run_say(r, "note: no %s to resume from; starting afresh\n", ckpt);
    } else if (have) {
        if (r->rank == 0 && run_read_checkpoint(r, ckpt, &t))
            goto out;
        tt = (int)t;
        if ((r->rank == 0 && run_net_to_device(r)) || agree(r, &tt) || share_state(r))
            goto out;
        t = tt;
        run_say(r, "resumed %s at step %ld\n", ckpt, t);
    }
    if (r->rank == 0 && !(r->metrics = fopen(mpath, r->o.resume ? "a" : "w"))) {
        run_fail("%s: %s", mpath, strerror(errno));
        goto out;
    }
    settings(r, spe, total, t);
    long stop = r->o.steps >= 0 && r->o.steps < total ? r->o.steps : total;
    double t0 = run_now_ms(), last_ckpt = run_now_ms();
    long first_t = t;
    while (t < stop) {
        int epoch = (int)(t / spe);
        lwl_loader_epoch(ld, (uint32_t)epoch);
        lwl_batch b;
        /* a resumed run skips the batches of this epoch it already did */
        for (long k = epoch * spe; k < t; k++)
            if (lwl_loader_next(ld, &b) != 1) {
                run_fail("loader: %s", lwl_loader_error(ld));
                goto out;
            }
        for (; t < stop && t < (long)(epoch + 1) * spe; t++) {
            int got = lwl_loader_next(ld, &b);
            if (got != 1) {
                run_fail("loader: %s", got < 0 ? lwl_loader_error(ld) : "epoch ended early");
                goto out;
            }
            double lr = lwl_lr_at(&q, t, spe), m = lwl_ema_at(&q, t, total), loss = 0;
            double s0 = run_now_ms();
            int st = b.stage ? r->gpu->step_staged(b.stage, (float)lr, (float)m, t == 0, &loss)
                             : run_net_step(r, b.view[0], b.view[1], (float)lr, (float)m, t == 0,
                                            &loss);
            double ms = run_now_ms() - s0;
            if (st < 0)
                goto out;
            if (st > 0 || !isfinite(loss)) {
                if (!r->o.quiet && r->rank == 0)
                    putchar('\n');
                if (r->rank == 0)
                    run_fail("the loss is %g at step %ld (epoch %d): training diverged; %s%s "
                     "(lower train.lr or check the data)", loss, t + 1, epoch,
                     access(ckpt, R_OK) == 0 ? "the last good checkpoint is " :
                     "no checkpoint was written yet", access(ckpt, R_OK) == 0 ? ckpt : "");
                goto out;
            }
            double ips = p->batch / ((ms + b.wait_ms) / 1e3);
            double done = (double)(t + 1 - first_t), el = (run_now_ms() - t0) / 1e3;
            if (r->rank == 0) {
                progress(r, t, total, loss, lr, m, ms, ips, b.wait_ms,
                         el / done * (double)(stop - t - 1), epoch);
                fprintf(r->metrics, "{\"step\": %ld, \"epoch\": %d, \"loss\": %.9g, "
                        "\"lr\": %.9g, \"ema\": %.9g, \"img_per_s\": %.2f, \"ms\": %.2f, "
                        "\"data_ms\": %.2f}\n", t + 1, epoch, loss, lr, m, ips, ms, b.wait_ms);
                fflush(r->metrics);
            }
            /* a checkpoint at the end of each epoch and every ten minutes (rank 0's clock) */
            int now = (t + 1) % spe == 0 || run_now_ms() - last_ckpt > 600e3;
            if (r->world > 1 && (t + 1) % spe != 0 && agree(r, &now))
                goto out;
            if (now) {
                if (save(r, ckpt, bb, t + 1))
                    goto out;
                last_ckpt = run_now_ms();
            }
            /* the kNN monitor every knn_every epochs and after the last, on rank 0 */
            int done_epoch = (int)((t + 1) / spe);
            if ((t + 1) % spe == 0 && p->knn_every > 0 &&
                (done_epoch % p->knn_every == 0 || t + 1 == total)) {
                if (r->rank == 0 && run_knn_monitor(r, done_epoch))
                    goto out;
                if (run_barrier(r))
                    goto out;
            }
        }
    }
    if (save(r, ckpt, bb, t))
        goto out;
    if (!r->o.quiet && r->rank == 0 && isatty(STDOUT_FILENO))
        putchar('\n');
    run_say(r, "pretrain: %ld steps done; %s, %s\n", t, ckpt, bb);
    rc = 0;
out:
    if (r->metrics)
        fclose(r->metrics);
    r->metrics = NULL;
    lwl_loader_close(ld);
    free(ckpt);
    free(bb);
    free(mpath);
    return rc;
}

/* The state to evaluate: the checkpoint of a finished pre-training when there
 * is one, else the initial weights (with a note). */
int run_load_for_eval(run *r)
{
    if (run_need_net(r) || run_net_init_weights(r))
        return -1;
    char *ckpt = run_join(r->o.out, "checkpoint.safetensors");
    long step = 0;
    int rc = 0;
    if (access(ckpt, R_OK) == 0)
        rc = run_read_checkpoint(r, ckpt, &step) || run_net_to_device(r) ? -1 : 0;
    else
        run_say(r, "note: no %s; using the initial weights\n", ckpt);
    free(ckpt);
    return rc;
}

static int phase_features(run *r)
{
    const lwl_program *p = r->p;
    const char *split = r->o.features_split ? r->o.features_split : "val";
    int part = !strcmp(split, "train") ? LWL_TRAIN : !strcmp(split, "val") ? LWL_VAL : LWL_TEST;
    if (run_open_data(r) || run_load_for_eval(r))
        return -1;
    if (r->ds.n[part] == 0)
        return run_fail("features: split %s is empty", split);
    lwl_eval_cfg ec = { p->size, { p->mean[0], p->mean[1], p->mean[2] },
                        { p->std[0], p->std[1], p->std[2] } };
    lwl_pipeline pipe = lwl_eval_pipeline(&ec);
    lwl_loader *ld = run_open_loader(r, &pipe, part, 0, 1, 0);
    if (!ld)
        return -1;
    size_t n = r->ds.n[part];
    float *feat = malloc(n * (size_t)p->feat_dim * sizeof(float));
    float *tmp = malloc((size_t)r->nb * p->feat_dim * sizeof(float));
    float *x = calloc((size_t)r->nb * 3 * p->size * p->size, sizeof(float));
    int64_t *labels = malloc(n * sizeof(int64_t));
    int rc = -1;
    if (!feat || !tmp || !x || !labels) {
        run_fail("out of memory");
        goto out;
    }
    lwl_loader_epoch(ld, 0);
    size_t done = 0;
    lwl_batch b;
    while (lwl_loader_next(ld, &b) == 1) {
        size_t img = (size_t)3 * p->size * p->size;
        memcpy(x, b.view[0], (size_t)b.n * img * sizeof(float));
        if (run_net_features(r, x, tmp))
            goto out;
        for (int i = 0; i < b.n; i++) {
            memcpy(feat + (size_t)b.index[i] * p->feat_dim, tmp + (size_t)i * p->feat_dim,
                   (size_t)p->feat_dim * sizeof(float));
            labels[b.index[i]] = b.label[i];
        }
        done += (size_t)b.n;
    }
    if (done != n) {
        run_fail("features: %zu of %zu images", done, n);
        goto out;
    }
    lwl_st_writer *w = lwl_st_writer_new();
    int64_t fs[2] = { (int64_t)n, p->feat_dim }, ls = (int64_t)n;
    lwl_strbuf files = { 0 };
    lwl_strbuf_printf(&files, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            lwl_strbuf_printf(&files, ", ");
        lwl_json_str(&files, lwl_rel_path(r->root, r->ds.part[part][i].path));
    }
    lwl_strbuf_printf(&files, "]");
    char *path, name[64];
    snprintf(name, sizeof name, "features_%s.safetensors", split);
    path = run_join(r->o.out, name);
    if (!w || files.oom || lwl_st_add(w, "features", LWL_ST_F32, 2, fs, feat) ||
        lwl_st_add(w, "labels", LWL_ST_I64, 1, &ls, labels) ||
        lwl_st_add_meta(w, "files", files.s) || lwl_st_write(w, path))
        run_fail("%s: %s", path, lwl_st_error());
    else {
        run_say(r, "features: %zu x %d of %s into %s\n", n, p->feat_dim, split, path);
        rc = 0;
    }
    lwl_st_writer_free(w);
    lwl_strbuf_free(&files);
    free(path);
out:
    lwl_loader_close(ld);
    free(feat);
    free(tmp);
    free(x);
    free(labels);
    return rc;
}

/* The state phase_dump starts from: the initial weights, or with --resume the checkpoint's
 * state at its step *t (0 when there is none). 0 or -1. */
static int dump_state(run *r, long *t)
{
    *t = 0;
    if (run_net_init_weights(r))
        return -1;
    char *ckpt = run_join(r->o.out, "checkpoint.safetensors");
    int rc = 0;
    if (r->o.resume && ckpt && access(ckpt, R_OK) == 0)
        rc = run_read_checkpoint(r, ckpt, t) || run_net_to_device(r) ? -1 : 0;
    free(ckpt);
    return rc;
}

/* One pre-training step with everything around it: from the initial weights on the first
 * batch, or with --resume the step the run would take next from its checkpoint; then the
 * dump also holds the target and the momentum buffers before the step. */
static int phase_dump(run *r)
{
    const lwl_program *p = r->p;
    long t = 0;
    if (run_open_data(r) || need_batch(r) || run_need_net(r) || dump_state(r, &t))
        return -1;
    lwl_loader *ld = run_open_loader(r, p->views, LWL_TRAIN, 1, 0, 0);
    if (!ld)
        return -1;
    long spe = lwl_loader_epoch(ld, 0), total = (long)r->o.epochs * spe;
    if (t >= spe)
        lwl_loader_epoch(ld, (uint32_t)(t / spe));
    lwl_program q = *p;     /* the schedule of --epochs, as pretrain's */
    q.epochs = r->o.epochs;
    lwl_batch b;
    int rc = -1;
    float *before = malloc(p->param_floats * sizeof(float));
    float *bbefore = malloc(p->buf_floats * sizeof(float));
    float *mbefore = malloc(p->param_floats * sizeof(float));
    float *tbefore = malloc(p->target_param_floats * sizeof(float));
    float *tbbefore = malloc((p->target_buf_floats + 1) * sizeof(float));
    lwl_st_writer *w = lwl_st_writer_new();
    char **names = NULL;
    int nn = 0, got = 1;
    for (long k = 0; k <= t % spe && got == 1; k++)
        got = lwl_loader_next(ld, &b);
    if (!before || !bbefore || !mbefore || !tbefore || !tbbefore || !w || got != 1) {
        run_fail("dump: %s", lwl_loader_error(ld));
        goto out;
    }
    memcpy(before, r->st.params, p->param_floats * sizeof(float));
    memcpy(bbefore, r->st.bufs, p->buf_floats * sizeof(float));
    memcpy(mbefore, r->st.momentum, p->param_floats * sizeof(float));
    memcpy(tbefore, r->st.target, p->target_param_floats * sizeof(float));
    memcpy(tbbefore, r->st.tbufs, p->target_buf_floats * sizeof(float));
    double lr = lwl_lr_at(&q, t, spe), m = lwl_ema_at(&q, t, total), loss = 0;
    if (run_net_step(r, b.view[0], b.view[1], (float)lr, (float)m, t == 0, &loss) != 0 ||
        run_net_to_host(r)) {
        run_fail("dump: the step failed");
        goto out;
    }
    static float floss;
    floss = (float)loss;
    int64_t vs[4] = { p->batch, 3, p->size, p->size }, one = 1;
    char *cfg;
    if (asprintf(&cfg, "{%s, \"lr\": %.17g, \"ema\": %.17g, \"step\": %ld}", p->dump_config,
                 lr, m, t) < 0)
        goto out;
    int bad = lwl_st_add(w, "view1", LWL_ST_F32, 4, vs, b.view[0]) ||
              lwl_st_add(w, "view2", LWL_ST_F32, 4, vs, b.view[1]) ||
              lwl_st_add(w, "loss", LWL_ST_F32, 1, &one, &floss) ||
              add_named(w, "", p->params, p->nparams, before, &names, &nn) ||
              add_named(w, "", p->bufs, p->nbufs, bbefore, &names, &nn) ||
              add_named(w, "grad.", p->params, p->nparams, r->st.grads, &names, &nn) ||
              add_named(w, "after.", p->params, p->nparams, r->st.params, &names, &nn) ||
              add_named(w, "after.", p->bufs, p->nbufs, r->st.bufs, &names, &nn) ||
              add_named(w, "target.", p->params, p->target_nparams, r->st.target, &names,
                        &nn) ||
              add_named(w, "target.", p->bufs, p->target_nbufs, r->st.tbufs, &names, &nn) ||
              lwl_st_add_meta(w, "config", cfg) || lwl_st_add_meta(w, "experiment", p->name);
    if (!bad && t > 0)      /* a later step: what the first takes from the online network */
        bad = add_named(w, "momentum.", p->params, p->nparams, mbefore, &names, &nn) ||
              add_named(w, "target_before.", p->params, p->target_nparams, tbefore, &names,
                        &nn) ||
              add_named(w, "target_before.", p->bufs, p->target_nbufs, tbbefore, &names, &nn);
    char *path = run_join(r->o.out, "step_dump.safetensors");
    if (bad || lwl_st_write(w, path))
        run_fail("%s: %s", path, lwl_st_error());
    else {
        run_say(r, "dump: step %ld (batch %ld of epoch %ld), loss %.6f, into %s\n", t + 1,
                t % spe + 1, t / spe, loss, path);
        rc = 0;
    }
    free(path);
    free(cfg);
out:
    lwl_st_writer_free(w);
    free_names(names, nn);
    free(before);
    free(bbefore);
    free(mbefore);
    free(tbefore);
    free(tbbefore);
    lwl_loader_close(ld);
    return rc;
}

static int phase_bench(run *r)
{
    const lwl_program *p = r->p;
    if (run_open_data(r) || need_batch(r) || run_need_net(r) || run_net_init_weights(r))
        return -1;
    lwl_phase_ctx pc = { r->root, &r->ds, r->o.out, r->o.quiet ? NULL : stdout, r->o.threads,
                         (uint64_t)r->o.seed };
    double data_ips = 0;
    char *err = NULL;
    if (lwl_phase_bench_data(&pc, p->views, 4 * p->batch, &data_ips, &err)) {
        run_fail("bench: %s", err ? err : "data");
        free(err);
        return -1;
    }
    lwl_loader *ld = run_open_loader(r, p->views, LWL_TRAIN, 1, 0, 0);
    if (!ld)
        return -1;
    lwl_loader_epoch(ld, 0);
    lwl_batch b;
    if (lwl_loader_next(ld, &b) != 1) {
        lwl_loader_close(ld);
        return run_fail("bench: no batch");
    }
    int steps = 5;
    double loss, best = 1e30, sum = 0;
    for (int i = 0; i <= steps; i++) {
        double t0 = run_now_ms();
        if (run_net_step(r, b.view[0], b.view[1], 1e-3f, 0.99f, i == 0, &loss) < 0) {
            lwl_loader_close(ld);
            return -1;
        }
        double ms = run_now_ms() - t0;
        if (i > 0) {
            sum += ms;
            best = ms < best ? ms : best;
        }
    }
    lwl_loader_close(ld);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mean = sum / steps, rss = ru.ru_maxrss / 1024.0;
    char step[256];
    snprintf(step, sizeof step, "{\"batch\": %d, \"threads\": %d, \"ms\": %.2f, "
             "\"best_ms\": %.2f, \"img_per_s\": %.2f, \"peak_rss_mib\": %.1f}", p->batch,
             r->o.threads, mean, best, p->batch / (mean / 1e3), rss);
    printf("bench: data %.1f img/s (%d threads); step %.1f ms (best %.1f), %.1f img/s at "
           "batch %d; peak memory %.0f MiB\n", data_ips, r->o.threads, mean, best,
           p->batch / (mean / 1e3), p->batch, rss);
    if (lwl_bench_json_write(r->o.out, r->o.threads, data_ips, step, &err)) {
        run_fail("bench: %s", err ? err : "bench.json");
        free(err);
        return -1;
    }
    return 0;
}

static int phase_data(run *r, const char *name)
{
    if (run_open_data(r))
        return -1;
    lwl_phase_ctx pc = { r->root, &r->ds, r->o.out, r->o.quiet ? NULL : stdout, r->o.threads,
                         (uint64_t)r->o.seed };
    char *err = NULL;
    int rc = !strcmp(name, "scan") ? lwl_phase_scan(&pc, &err)
             : lwl_phase_views(&pc, r->p->views, r->o.views_n, &err);
    if (rc) {
        run_fail("%s: %s", name, err ? err : "failed");
        free(err);
    }
    return rc;
}

/* --device: the GPU network when asked for (cuda), or when there is one (auto). Rank k
 * of a machine takes its k-th GPU. */
static int choose_device(run *r, int *ngpu)
{
    const lwl_gpu_net *g = r->p->gpu;
    char *info = NULL;
    int n = g && strcmp(r->o.device, "cpu") ? g->available(&info) : 0;
    *ngpu = n;
    if (!strcmp(r->o.device, "cuda") && n == 0) {
        run_fail("--device cuda: no GPU is usable here");
        return -1;
    }
    if (n > 0) {
        r->gpu = g;
        r->device = lwl_comm_ranks()->local_rank % n;
        if (getenv("LWL_NCCL_ID"))
            r->idfile = getenv("LWL_NCCL_ID");
        run_say(r, "device: GPU %d of %s; precision %s\n", r->device, info ? info : "?",
                g->precision);
    } else {
        run_say(r, "device: CPU (fp32)%s\n", g ? "" : "; this program has no GPU network");
    }
    free(info);
    return 0;
}

/* ---- GPU ranks started by the program itself */

static pid_t children[64];
static int nchildren;

/* Ends the ranks this process started (on its failure, or theirs). */
static void stop_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], SIGTERM);
}

/* Watches the started ranks: the first that fails ends the run, naming itself. */
static void *watch_children(void *arg)
{
    (void)arg;
    for (int left = nchildren; left > 0; left--) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            return NULL;
        int k = 0;
        while (k < nchildren && children[k] != pid)
            k++;
        if (k < nchildren)
            children[k] = -1;
        if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            fprintf(stderr, "rank %d of %d failed (killed by signal %d, %s): stopping every "
                    "rank\n", k + 1, nchildren + 1, sig, strsignal(sig));
            stop_children();
            _exit(1);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "rank %d of %d failed (exit %d): stopping every rank\n", k + 1,
                    nchildren + 1, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            stop_children();
            _exit(1);
        }
    }
    return NULL;
}

/* On a machine with train.gpus GPUs (or more), one rank per GPU: this process is rank 0
 * and starts ranks 1 .. gpus - 1 (the same program and arguments, with LWL_RANK,
 * LWL_WORLD and LWL_NCCL_ID set); they meet through NCCL, through a run-specific id file
 * in --out. LWL_SPAWN=0, or fewer GPUs: one process computes every group on one GPU. */
static int spawn_ranks(run *r, int ngpu, char **argv)
{
    const lwl_program *p = r->p;
    const char *sp = getenv("LWL_SPAWN");
    if (!r->gpu || p->gpus < 2 || r->world > 1 || (sp && !strcmp(sp, "0")))
        return 0;
    if (ngpu < p->gpus) {
        run_say(r, "note: train.gpus is %d and this machine has %d GPU%s: one process computes "
                   "the %d GPUs' groups on GPU 0\n", p->gpus, ngpu, ngpu == 1 ? "" : "s", p->gpus);
        return 0;
    }
    static char id[4096];
    if (run_mkdir_p(r->o.out) != 0)
        return run_fail("cannot make %s", r->o.out);
    snprintf(id, sizeof id, "%s/.nccl_id.%d", r->o.out, (int)getpid());
    unlink(id);
    char world[16];
    snprintf(world, sizeof world, "%d", p->gpus);
    if (setenv("LWL_WORLD", world, 1) || setenv("LWL_NCCL_ID", id, 1))
        return run_fail("cannot set the ranks' environment");
    for (int k = 1; k < p->gpus && k < 64; k++) {
        char rank[16];
        snprintf(rank, sizeof rank, "%d", k);
        setenv("LWL_RANK", rank, 1);
        pid_t pid = fork();
        if (pid < 0)
            return run_fail("cannot start rank %d: %s", k, strerror(errno));
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);    /* rank 0 gone: so are the others */
            execv("/proc/self/exe", argv);
            fprintf(stderr, "rank %d: cannot start: %s\n", k, strerror(errno));
            _exit(127);
        }
        children[nchildren++] = pid;
    }
    unsetenv("LWL_RANK");
    static pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_children, NULL) != 0)
        return run_fail("cannot watch the ranks it started");
    r->rank = 0;
    r->world = p->gpus;
    r->nb = p->batch / r->world;
    r->idfile = id;
    run_say(r, "ranks: started %d more, one per GPU (LWL_SPAWN=0: one process)\n",
            p->gpus - 1);
    return 0;
}

static int run_phase(run *r, const char *ph)
{
    if (!strcmp(ph, "pretrain"))
        return phase_pretrain(r);
    /* the rest runs once, on rank 0: the other ranks only train */
    if (r->rank != 0)
        return 0;
    if (!strcmp(ph, "features"))
        return phase_features(r);
    if (!strcmp(ph, "dump"))
        return phase_dump(r);
    if (!strcmp(ph, "bench"))
        return phase_bench(r);
    if (!strcmp(ph, "knn"))
        return run_phase_knn(r);
    if (!strcmp(ph, "linear"))
        return run_phase_linear(r);
    if (!strcmp(ph, "gradcam"))
        return run_phase_gradcam(r);
    return phase_data(r, ph);
}

int lwl_main(const lwl_program *p, int argc, char **argv)
{
    /* OpenMP threads that spin while they wait stall each other as soon as another
     * process wants a core (a step took 2.5x longer on a loaded 2-core machine), and
     * libgomp reads the policy only when it loads: so set it and start again. */
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
        execv("/proc/self/exe", argv);
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    if (parse(p, argc, argv, &r.o))
        return 2;
    char *cerr = NULL;
    if (lwl_comm_init(&argc, &argv, &cerr)) {
        run_fail("%s", cerr ? cerr : "cannot join the other ranks");
        free(cerr);
        return 1;
    }
    r.rank = lwl_comm_rank();
    r.world = lwl_comm_world();
    r.nb = p->batch / r.world;
    int ngpu = 0;
    if (choose_device(&r, &ngpu) || spawn_ranks(&r, ngpu, argv))
        return 1;
    if (r.world > 1 && !r.gpu && !lwl_comm_mpi()) {
        run_fail("started as rank %d of %d by %s, on the CPU: CPU ranks meet through MPI; start "
                 "them with mpirun -np %d or srun (torchrun's ranks train on GPUs only)", r.rank,
                 r.world, lwl_comm_ranks()->launcher, r.world);
        return 1;
    }
    if (r.world > 1 && p->gpus % r.world) {
        run_fail("%d ranks cannot share this experiment: its train.gpus %d is not divisible "
                 "by them; start %d ranks (one per GPU)", r.world, p->gpus, p->gpus);
        lwl_comm_abort(2);
        return 2;
    }
    for (int i = 0; r.world > 1 && i < r.o.nphases; i++)
        if (!strcmp(r.o.phases[i], "dump") || !strcmp(r.o.phases[i], "bench")) {
            run_fail("%s runs as one process, not as one of %d ranks", r.o.phases[i], r.world);
            lwl_comm_abort(2);
            return 2;
        }
    char *defout = NULL;
    if (!r.o.out && asprintf(&defout, "runs/%s", p->name) < 0)
        return 1;
    if (!r.o.out)
        r.o.out = defout;
    r.top_out = r.o.out;
    r.root = r.o.data ? strdup(r.o.data) : run_join(p->spec_dir, p->root);
    r.classes = p->classes ? run_join(p->spec_dir, p->classes) : NULL;
    int rc = 0, report = 0, base_seed = r.o.seed;
    if (run_mkdir_p(r.o.out) != 0) {
        run_fail("cannot make %s: %s", r.o.out, strerror(errno));
        rc = 1;
    }
    for (int i = 0; i < r.o.nphases; i++)
        report |= !strcmp(r.o.phases[i], "report");

    /* Each repeat k runs with seed + k in run<k>/ (directly in --out for one run). */
    /* Repeats are of the protocol: data phases alone (scan, views, dump, bench,
     * features) run once, with the base seed, directly in --out. */
    int protocol = 0;
    for (int i = 0; i < r.o.nphases; i++)
        protocol |= !strcmp(r.o.phases[i], "pretrain") || !strcmp(r.o.phases[i], "knn") ||
                    !strcmp(r.o.phases[i], "linear") || !strcmp(r.o.phases[i], "gradcam");
    int repeats = r.repeats = r.o.repeat ? r.o.repeat : protocol ? p->repeat : 1;
    for (int k = 0; rc == 0 && k < repeats; k++) {
        char sub[32];
        snprintf(sub, sizeof sub, "run%d", k);
        char *dir = repeats > 1 ? run_join(r.top_out, sub) : strdup(r.top_out);
        r.repeat = k;
        r.o.seed = base_seed + k;
        r.o.out = dir;
        int finished = r.o.resume && r.o.defaults && r.rank == 0 && dir && run_finished(&r);
        if (!dir || run_mkdir_p(dir) != 0) {
            rc = run_fail("cannot make %s", dir ? dir : sub) ? 1 : 0;
        } else if (agree(&r, &finished)) {
            rc = 1;
        } else if (finished) {
            run_say(&r, "%s: finished earlier; skipped\n", dir);
        } else {
            if (repeats > 1)
                run_say(&r, "\n== run %d of %d: seed %d, %s\n", k + 1, repeats, r.o.seed, dir);
            for (int i = 0; rc == 0 && i < r.o.nphases; i++)
                if (strcmp(r.o.phases[i], "report") && run_phase(&r, r.o.phases[i]))
                    rc = 1;
            /* the other ranks wait while rank 0 evaluates */
            if (rc == 0 && run_barrier(&r))
                rc = 1;
        }
        free(dir);
    }
    r.o.out = r.top_out;
    r.o.seed = base_seed;
    if (rc == 0 && report && r.rank == 0 && run_phase_report(&r))
        rc = 1;
    if (r.ds_open)
        lwl_dataset_free(&r.ds);
    if (r.net_ready && r.gpu)
        r.gpu->free();
    if ((r.net_ready && !r.gpu) || r.cpu_net)
        p->net_free();
    free(r.root);
    free(r.classes);
    free(defout);
    free(r.o.phases);
    if (rc != 0) {
        stop_children();
        lwl_comm_abort(rc);
    }
    lwl_comm_finalize();
    for (int i = 0; i < nchildren; i++)     /* the watcher reaps them; wait for it to */
        while (children[i] > 0 && kill(children[i], 0) == 0)
            usleep(10000);
    if (r.idfile && r.rank == 0)
        unlink(r.idfile);
    return rc;
}
