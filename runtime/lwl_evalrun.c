/* The evaluation phases of a generated program: the kNN monitor and kNN
 * evaluation, linear classification on the frozen backbone, Grad-CAM
 * heatmaps, and the report over repeats; each also for the randomly
 * initialised backbone, so what pre-training bought is visible. Per run the
 * figures go to results.json; `report` turns them into summary.json/.md. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lwl_decode.h"
#include "lwl_eval.h"
#include "lwl_phase.h"
#include "lwl_run.h"
#include "lwl_safetensors.h"

/* ---- results.json of one run */

static cJSON *results_read(const char *dir)
{
    char *path = run_join(dir, "results.json");
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f)
        return NULL;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

/* Sets results[group][key] = v (group NULL: the top level) and rewrites the file. */
static int results_set(run *r, const char *group, const char *key, double v)
{
    cJSON *j = results_read(r->o.out);
    if (!j)
        j = cJSON_CreateObject();
    cJSON *g = j;
    if (group) {
        g = cJSON_GetObjectItemCaseSensitive(j, group);
        if (!g)
            g = cJSON_AddObjectToObject(j, group);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(g, key);
    cJSON_AddNumberToObject(g, key, v);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "seed");
    cJSON_AddNumberToObject(j, "seed", r->o.seed);
    char *text = cJSON_Print(j), *path = run_join(r->o.out, "results.json"), *tmp = NULL;
    int rc = -1;
    if (text && path && asprintf(&tmp, "%s.tmp", path) > 0) {
        FILE *f = fopen(tmp, "w");
        if (f && fputs(text, f) >= 0 && fputc('\n', f) != EOF && fclose(f) == 0)
            rc = rename(tmp, path);
        else if (f)
            fclose(f);
    }
    if (rc)
        run_fail("%s: %s", path ? path : "results.json", strerror(errno));
    cJSON_Delete(j);
    free(text);
    free(path);
    free(tmp);
    return rc;
}

static int results_has(const char *dir, const char *group, const char *key)
{
    cJSON *j = results_read(dir);
    cJSON *g = j && group ? cJSON_GetObjectItemCaseSensitive(j, group) : j;
    int has = g && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(g, key));
    cJSON_Delete(j);
    return has;
}

int run_finished(const run *r)
{
    const lwl_program *p = r->p;
    return results_has(r->o.out, NULL, "knn_top1") && results_has(r->o.out, NULL, "linear_top1") &&
           results_has(r->o.out, "random_init", "knn_top1") &&
           results_has(r->o.out, "random_init", "linear_top1") && p;
}

/* ---- features of a subset of a split */

/* The first share% of each class of split `part` (all when share is 100). */
static lwl_item *subset(run *r, int part, double share, size_t *n)
{
    const lwl_item *items = r->ds.part[part];
    size_t total = r->ds.n[part], *idx = NULL, count = total;
    char *err = NULL;
    if (share < 100 && lwl_class_share(items, total, r->ds.nclasses, share / 100, &idx, &count,
                                       &err)) {
        run_fail("%s", err);
        free(err);
        return NULL;
    }
    lwl_item *out = malloc((count ? count : 1) * sizeof *out);
    for (size_t i = 0; out && i < count; i++)
        out[i] = items[idx ? idx[i] : i];
    free(idx);
    *n = count;
    if (!out)
        run_fail("out of memory");
    return out;
}

static lwl_loader *items_loader(run *r, const lwl_pipeline *pipe, const lwl_item *items,
                                size_t n, int batch, int shuffle)
{
    lwl_loader_cfg c;
    memset(&c, 0, sizeof c);
    c.pipe = pipe;
    c.items = items;
    c.n = n;
    c.batch = batch;
    c.world = 1;
    c.shuffle = shuffle;
    c.keep_last = 1;
    c.seed = (uint64_t)r->o.seed;
    c.threads = r->o.threads;
    char *err = NULL;
    lwl_loader *ld = lwl_loader_open(&c, &err);
    if (!ld) {
        run_fail("loader: %s", err ? err : "cannot start");
        free(err);
    }
    return ld;
}

static lwl_eval_cfg eval_cfg(const lwl_program *p)
{
    lwl_eval_cfg ec = { p->size, { p->mean[0], p->mean[1], p->mean[2] },
                        { p->std[0], p->std[1], p->std[2] } };
    return ec;
}

/* Backbone features (n, feat_dim) of rows x (n <= any, in chunks of the program's batch). */
static int features_rows(run *r, const float *x, int n, float *feat, float *xb, float *fb)
{
    const lwl_program *p = r->p;
    size_t img = (size_t)3 * p->size * p->size;
    for (int at = 0; at < n; at += r->nb) {
        int m = n - at < r->nb ? n - at : r->nb;
        memcpy(xb, x + (size_t)at * img, (size_t)m * img * sizeof(float));
        if (run_net_features(r, xb, fb))
            return run_fail("features: the network failed");
        memcpy(feat + (size_t)at * p->feat_dim, fb, (size_t)m * p->feat_dim * sizeof(float));
    }
    return 0;
}

/* Features of items through the evaluation view, in item order; labels as ints. */
static int eval_features(run *r, const lwl_item *items, size_t n, float *feat, int *labels)
{
    const lwl_program *p = r->p;
    lwl_eval_cfg ec = eval_cfg(p);
    lwl_pipeline pipe = lwl_eval_pipeline(&ec);
    lwl_loader *ld = items_loader(r, &pipe, items, n, r->nb, 0);
    float *xb = malloc((size_t)r->nb * 3 * p->size * p->size * sizeof(float));
    float *fb = malloc((size_t)r->nb * p->feat_dim * sizeof(float));
    float *f = malloc((size_t)r->nb * p->feat_dim * sizeof(float));
    int rc = -1;
    size_t done = 0;
    if (!ld || !xb || !fb || !f)
        goto out;
    lwl_loader_epoch(ld, 0);
    lwl_batch b;
    int got;
    while ((got = lwl_loader_next(ld, &b)) == 1) {
        if (features_rows(r, b.view[0], b.n, f, xb, fb))
            goto out;
        for (int i = 0; i < b.n; i++) {
            memcpy(feat + (size_t)b.index[i] * p->feat_dim, f + (size_t)i * p->feat_dim,
                   (size_t)p->feat_dim * sizeof(float));
            labels[b.index[i]] = (int)b.label[i];
        }
        done += (size_t)b.n;
    }
    if (got < 0)
        run_fail("loader: %s", lwl_loader_error(ld));
    else if (done != n)
        run_fail("features: %zu of %zu images", done, n);
    else
        rc = 0;
out:
    lwl_loader_close(ld);
    free(xb);
    free(fb);
    free(f);
    return rc;
}

/* ---- kNN */

/* Whether this run's kNN is the GPU's: a GPU run, unless LWL_GPU_KNN=0 or its network has
 * none (k above what the GPU kNN keeps); said once. */
static int knn_on_gpu(const run *r)
{
    static int said;
    const char *env = getenv("LWL_GPU_KNN");
    int off = env && !strcmp(env, "0");
    if (!r->gpu)
        return 0;
    if (!said++)
        run_say(r, "knn: on the %s\n", off ? "CPU (LWL_GPU_KNN=0)" : r->gpu->knn ? "GPU" :
                "CPU: eval.knn.k is above what the GPU kNN keeps (KNN_MAX_K)");
    return !off && r->gpu->knn;
}

/* The kNN's hits of queries fq (nq) against memory fm (nm), normalised, on the GPU or the
 * CPU (lwl_knn_eval). The same predictions on both for the same features (docs/cuda.md). */
static int knn_hits(run *r, const lwl_knn_cfg *kc, const float *fm, const int *lm, size_t nm,
                    const float *fq, const int *lq, size_t nq, lwl_hits *h)
{
    size_t d = (size_t)r->p->feat_dim;
    char *err = NULL;
    int rc = -1, *pred = NULL;
    if (!knn_on_gpu(r))
        rc = lwl_knn_eval(kc, fm, lm, nm, d, fq, lq, nq, h, &err);
    else if (lwl_knn_check(kc, fm, lm, nm, d, fq, lq, nq, &err) == 0) {
        if (!(pred = malloc(nq * 5 * sizeof *pred)))
            err = strdup("out of memory");
        else if (r->gpu->knn(fm, lm, nm, fq, nq, kc->k, kc->nclasses, pred) == 0) {
            lwl_knn_hits(pred, lq, nq, h);
            rc = 0;
        }
    }
    if (rc)
        run_fail("knn: %s", err ? err : "the GPU's kNN failed");
    free(err);
    free(pred);
    return rc;
}

static int knn_eval(run *r, double *top1, double *top5)
{
    const lwl_program *p = r->p;
    size_t nm = 0, nq = 0;
    lwl_item *mem = subset(r, p->knn_memory, p->knn_memory_share, &nm);
    lwl_item *qry = subset(r, p->knn_queries, p->knn_queries_share, &nq);
    float *fm = mem ? malloc((nm ? nm : 1) * p->feat_dim * sizeof(float)) : NULL;
    float *fq = qry ? malloc((nq ? nq : 1) * p->feat_dim * sizeof(float)) : NULL;
    int *lm = malloc((nm ? nm : 1) * sizeof(int)), *lq = malloc((nq ? nq : 1) * sizeof(int));
    int rc = -1;
    if (!mem || !qry || !fm || !fq || !lm || !lq)
        goto out;
    if (nm == 0 || nq == 0) {
        run_fail("knn: the memory (%zu images) or the queries (%zu) are empty", nm, nq);
        goto out;
    }
    if (eval_features(r, mem, nm, fm, lm) || eval_features(r, qry, nq, fq, lq))
        goto out;
    lwl_l2_normalize_rows(fm, nm, (size_t)p->feat_dim);
    lwl_l2_normalize_rows(fq, nq, (size_t)p->feat_dim);
    lwl_knn_cfg kc = { p->knn_k < (int)nm ? p->knn_k : (int)nm, p->knn_weighted,
                       p->knn_temperature, r->ds.nclasses, 0, 0 };
    lwl_hits h;
    if (knn_hits(r, &kc, fm, lm, nm, fq, lq, nq, &h))
        goto out;
    *top1 = lwl_hits_pct(h.top1, h.n);
    *top5 = lwl_hits_pct(h.top5, h.n);
    rc = 0;
out:
    free(mem);
    free(qry);
    free(fm);
    free(fq);
    free(lm);
    free(lq);
    return rc;
}

int run_knn_monitor(run *r, int epoch)
{
    double t1, t5, t0 = run_now_ms();
    if (knn_eval(r, &t1, &t5))
        return -1;
    if (r->metrics) {
        fprintf(r->metrics, "{\"epoch\": %d, \"knn_top1\": %.4f, \"knn_top5\": %.4f}\n", epoch,
                t1, t5);
        fflush(r->metrics);
    }
    run_say(r, "\nknn after epoch %d: top-1 %.2f%%, top-5 %.2f%% (%.1f s)\n", epoch, t1, t5,
            (run_now_ms() - t0) / 1e3);
    return 0;
}

int run_phase_knn(run *r)
{
    double t1, t5, r1, r5;
    if (run_open_data(r) || run_load_for_eval(r) || knn_eval(r, &t1, &t5) ||
        run_net_init_weights(r) || knn_eval(r, &r1, &r5))
        return -1;
    run_say(r, "knn: top-1 %.2f%%, top-5 %.2f%% (random init: %.2f%%, %.2f%%)\n", t1, t5, r1,
            r5);
    return results_set(r, NULL, "knn_top1", t1) || results_set(r, NULL, "knn_top5", t5) ||
                   results_set(r, "random_init", "knn_top1", r1) ||
                   results_set(r, "random_init", "knn_top5", r5) ? -1 : 0;
}

/* ---- linear classification on the frozen backbone */

typedef struct linres {
    double top1, top5, best1, best5;
} linres;

static int linear_test(run *r, lwl_linear *l, const float *feat, const int *labels, size_t n,
                       double *top1, double *top5)
{
    lwl_hits h = { 0, 0, 0 };
    const lwl_program *p = r->p;
    char *err = NULL;
    for (size_t at = 0; at < n; at += (size_t)p->lin_batch) {
        int m = (int)(n - at < (size_t)p->lin_batch ? n - at : (size_t)p->lin_batch);
        if (lwl_linear_forward(l, feat + at * p->feat_dim, m, l->logits, &err)) {
            run_fail("linear: %s", err);
            free(err);
            return -1;
        }
        lwl_topk_hits(l->logits, labels + at, m, l->nclasses, &h);
    }
    *top1 = lwl_hits_pct(h.top1, h.n);
    *top5 = lwl_hits_pct(h.top5, h.n);
    return 0;
}

/* Trains the classifier on the current backbone (which must not change). */
static int linear_eval(run *r, lwl_linear *l, linres *res)
{
    const lwl_program *p = r->p;
    size_t ntr = 0, nte = 0, fsz = (size_t)p->feat_dim;
    lwl_item *tr = subset(r, p->lin_train, p->lin_train_share, &ntr);
    lwl_item *te = subset(r, p->lin_test, p->lin_test_share, &nte);
    float *fte = te ? malloc((nte ? nte : 1) * fsz * sizeof(float)) : NULL;
    int *lte = malloc((nte ? nte : 1) * sizeof(int));
    float *before = malloc(p->param_floats * sizeof(float));
    float *xb = malloc((size_t)r->nb * 3 * p->size * p->size * sizeof(float));
    float *fb = malloc((size_t)r->nb * fsz * sizeof(float));
    float *f = malloc((size_t)p->lin_batch * fsz * sizeof(float));
    int *lab = malloc((size_t)p->lin_batch * sizeof(int));
    lwl_loader *ld = NULL;
    int rc = -1;
    char *err = NULL;
    if (!tr || !te || !fte || !lte || !before || !xb || !fb || !f || !lab) {
        run_fail("out of memory");
        goto out;
    }
    if (ntr == 0 || nte == 0) {
        run_fail("linear: the train (%zu images) or test (%zu) split is empty", ntr, nte);
        goto out;
    }
    if (run_net_to_host(r))
        goto out;
    memcpy(before, r->st.params, p->param_floats * sizeof(float));
    if (eval_features(r, te, nte, fte, lte))
        goto out;
    lwl_eval_cfg ec = eval_cfg(p);
    lwl_pipeline pipe = lwl_linear_train_pipeline(&ec);
    ld = items_loader(r, &pipe, tr, ntr, p->lin_batch, 1);
    if (!ld)
        goto out;
    lwl_linear_init(l, (uint64_t)r->o.seed);
    lwl_sgd_cfg sc = { p->lin_lr, p->lin_momentum, p->lin_weight_decay, p->lin_milestones,
                       p->lin_nmilestones };
    res->best1 = res->best5 = -1;
    for (int e = 0; e < p->lin_epochs; e++) {
        double lr = lwl_sgd_lr_at(&sc, e), loss = 0, t0 = run_now_ms();
        int nb = 0, got;
        lwl_loader_epoch(ld, (uint32_t)e);
        lwl_batch b;
        while ((got = lwl_loader_next(ld, &b)) == 1) {
            if (b.n == 0)
                continue;
            if (features_rows(r, b.view[0], b.n, f, xb, fb))
                goto out;
            for (int i = 0; i < b.n; i++)
                lab[i] = (int)b.label[i];
            double bl;
            if (lwl_linear_step(l, &sc, lr, f, lab, b.n, &bl, NULL, &err)) {
                run_fail("linear: %s", err);
                free(err);
                goto out;
            }
            loss += bl;
            nb++;
        }
        if (got < 0) {
            run_fail("loader: %s", lwl_loader_error(ld));
            goto out;
        }
        if ((e + 1) % 5 == 0 || e + 1 == p->lin_epochs) {
            if (linear_test(r, l, fte, lte, nte, &res->top1, &res->top5))
                goto out;
            res->best1 = res->top1 > res->best1 ? res->top1 : res->best1;
            res->best5 = res->top5 > res->best5 ? res->top5 : res->best5;
            run_say(r, "linear epoch %d/%d: loss %.4f, lr %g, test top-1 %.2f%%, top-5 "
                    "%.2f%% (%.1f s)\n", e + 1, p->lin_epochs, nb ? loss / nb : 0, lr,
                    res->top1, res->top5, (run_now_ms() - t0) / 1e3);
        }
    }
    if (run_net_to_host(r) || memcmp(before, r->st.params, p->param_floats * sizeof(float))) {
        run_fail("linear: the frozen backbone changed; this is a bug");
        goto out;
    }
    rc = 0;
out:
    lwl_loader_close(ld);
    free(tr);
    free(te);
    free(fte);
    free(lte);
    free(before);
    free(xb);
    free(fb);
    free(f);
    free(lab);
    return rc;
}

static int save_linear(run *r, const lwl_linear *l)
{
    lwl_st_writer *w = lwl_st_writer_new();
    char *path = run_join(r->o.out, "linear.safetensors");
    int64_t ws[2] = { l->nclasses, l->dim }, bs = l->nclasses;
    int rc = !w || !path || lwl_st_add(w, "fc.weight", LWL_ST_F32, 2, ws, l->weight) ||
             lwl_st_add(w, "fc.bias", LWL_ST_F32, 1, &bs, l->bias) ||
             lwl_st_add_meta(w, "experiment", r->p->name) || lwl_st_write(w, path);
    if (rc)
        run_fail("%s: %s", path ? path : "linear.safetensors", lwl_st_error());
    lwl_st_writer_free(w);
    free(path);
    return rc ? -1 : 0;
}

int run_phase_linear(run *r)
{
    const lwl_program *p = r->p;
    char *err = NULL;
    if (run_open_data(r) || run_need_net(r))
        return -1;
    lwl_linear *l = lwl_linear_new(p->feat_dim, r->ds.nclasses, p->lin_batch, &err);
    if (!l) {
        run_fail("linear: %s", err);
        free(err);
        return -1;
    }
    linres pre, rnd;
    int rc = -1;
    run_say(r, "linear classification on the pre-trained backbone\n");
    if (run_load_for_eval(r) || linear_eval(r, l, &pre) || save_linear(r, l))
        goto out;
    run_say(r, "linear classification on the randomly initialised backbone\n");
    if (run_net_init_weights(r) || linear_eval(r, l, &rnd))
        goto out;
    run_say(r, "linear: top-1 %.2f%% (best %.2f%%), top-5 %.2f%%; random init: top-1 %.2f%%, "
            "top-5 %.2f%%\n", pre.top1, pre.best1, pre.top5, rnd.top1, rnd.top5);
    rc = results_set(r, NULL, "linear_top1", pre.top1) ||
         results_set(r, NULL, "linear_top5", pre.top5) ||
         results_set(r, NULL, "linear_best_top1", pre.best1) ||
         results_set(r, NULL, "linear_best_top5", pre.best5) ||
         results_set(r, "random_init", "linear_top1", rnd.top1) ||
         results_set(r, "random_init", "linear_top5", rnd.top5) ||
         results_set(r, "random_init", "linear_best_top1", rnd.best1) ||
         results_set(r, "random_init", "linear_best_top5", rnd.best5) ? -1 : 0;
out:
    lwl_linear_free(l);
    return rc;
}

/* ---- Grad-CAM at the spec's layer for the linear classifier's predicted class, on the CPU
 * network (also in a program built for the GPU: a few images) */

static int load_linear(run *r, lwl_linear *l)
{
    char *path = run_join(r->o.out, "linear.safetensors");
    lwl_st_file *f = path ? lwl_st_open(path) : NULL;
    int64_t ws[2] = { l->nclasses, l->dim }, bs = l->nclasses;
    const lwl_st_tensor *w = f ? lwl_st_expect(f, "fc.weight", LWL_ST_F32, 2, ws) : NULL;
    const lwl_st_tensor *b = f ? lwl_st_expect(f, "fc.bias", LWL_ST_F32, 1, &bs) : NULL;
    int rc = -1;
    if (!w || !b)
        run_fail("gradcam: %s (run the linear phase first)", lwl_st_error());
    else {
        memcpy(l->weight, w->data, w->nbytes);
        memcpy(l->bias, b->data, b->nbytes);
        rc = 0;
    }
    lwl_st_close(f);
    free(path);
    return rc;
}

/* The evaluation crop of the image at path: u8 (S, S, 3) before normalisation, and row 0 of
 * x (nb, 3, S, S) normalised (the other rows stay as they are). */
static int cam_input(run *r, const char *path, uint8_t *u8, float *x)
{
    lwl_image im = { 0, 0, NULL };
    lwl_decode_status ds;
    memset(&ds, 0, sizeof ds);
    if (lwl_decode_file(path, &im, &ds) != 0) {
        lwl_image_free(&im);
        return run_fail("gradcam: %s: %s", path, ds.msg);
    }
    lwl_eval_cfg ec = eval_cfg(r->p);
    lwl_view_def v = lwl_eval_view(&ec);
    lwl_src src = { im, 0, 0, im.w, im.h };
    int rc = v.make(&src, 0, 0, 0, u8, NULL);
    lwl_image_free(&im);
    if (rc)
        return run_fail("gradcam: %s: cannot make the evaluation view", path);
    lwl_eval_normalize(u8, x);
    return 0;
}

/* The classifier's logits (l->logits) of image 0 of x on the CPU network; its best class. */
static int cam_predict(run *r, lwl_linear *l, const float *x, float *feat, int *cls)
{
    const lwl_program *p = r->p;
    int C = p->feat_dim, P = p->fh * p->fw;
    const float *maps = p->net_maps(x);     /* row 0: (C, P) */
    char *err = NULL;
    if (!maps)
        return run_fail("gradcam: the network failed");
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int j = 0; j < P; j++)
            s += maps[(size_t)c * P + j];
        feat[c] = (float)(s / P);
    }
    if (lwl_linear_forward(l, feat, 1, l->logits, &err)) {
        run_fail("gradcam: %s", err);
        free(err);
        return -1;
    }
    *cls = 0;
    for (int k = 1; k < l->nclasses; k++)
        if (l->logits[k] > l->logits[*cls])
            *cls = k;
    return 0;
}

/* What a Grad-CAM of one image gives: shapes are the program's cam_c, cam_h, cam_w and size. */
typedef struct cam_out {
    const char *image;      /* the image's path */
    int cls;
    const float *input;     /* (3, S, S) normalised crop */
    const float *logits;    /* (nclasses) */
    const float *alpha;     /* (cam_c) */
    const float *map;       /* (cam_h, cam_w) */
    const float *heat;      /* (S, S) */
} cam_out;

/* path.safetensors beside the PNG: the numbers of the heatmap (docs/evaluation.md). */
static int cam_save(run *r, const char *path, const cam_out *o)
{
    const lwl_program *p = r->p;
    int64_t sin[3] = { 3, p->size, p->size }, sl = r->ds.nclasses, sa = p->cam_c;
    int64_t sm[2] = { p->cam_h, p->cam_w }, sh[2] = { p->size, p->size };
    char layer[16], cls[16];
    snprintf(layer, sizeof layer, "layer%d", p->cam_layer);
    snprintf(cls, sizeof cls, "%d", o->cls);
    lwl_st_writer *w = lwl_st_writer_new();
    int rc = !w || lwl_st_add(w, "input", LWL_ST_F32, 3, sin, o->input) ||
             lwl_st_add(w, "logits", LWL_ST_F32, 1, &sl, o->logits) ||
             lwl_st_add(w, "alpha", LWL_ST_F32, 1, &sa, o->alpha) ||
             lwl_st_add(w, "cam", LWL_ST_F32, 2, sm, o->map) ||
             lwl_st_add(w, "heat", LWL_ST_F32, 2, sh, o->heat) ||
             lwl_st_add_meta(w, "experiment", p->name) ||
             lwl_st_add_meta(w, "image", o->image) || lwl_st_add_meta(w, "layer", layer) ||
             lwl_st_add_meta(w, "class", cls) ||
             lwl_st_add_meta(w, "class_name", r->ds.classes[o->cls]) ||
             lwl_st_write(w, path);
    if (rc)
        run_fail("%s: %s", path, lwl_st_error());
    lwl_st_writer_free(w);
    return rc ? -1 : 0;
}

/* dir/<base up to its first dot>.ext, malloc'd; NULL when out of memory. */
static char *cam_path(const char *dir, const char *base, const char *ext)
{
    char *s;
    return asprintf(&s, "%s/%.*s.%s", dir, (int)strcspn(base, "."), base, ext) < 0 ? NULL : s;
}

/* Grad-CAM of one image at the spec's layer for the classifier's predicted class: the PNG
 * and the safetensors of its numbers under dir, named after the image. */
static int gradcam_one(run *r, lwl_linear *l, const char *path, const char *dir)
{
    const lwl_program *p = r->p;
    int S = p->size, C = p->feat_dim, K = p->cam_c, Q = p->cam_h * p->cam_w, rc = -1;
    uint8_t *u8 = malloc((size_t)S * S * 3);
    float *x = calloc((size_t)r->nb * 3 * S * S, sizeof(float));
    float *dfeat = calloc((size_t)r->nb * C, sizeof(float));
    float *feat = malloc((size_t)C * sizeof(float)), *alpha = malloc((size_t)K * sizeof(float));
    float *map = malloc((size_t)Q * sizeof(float)), *heat = malloc((size_t)S * S * sizeof(float));
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *png = cam_path(dir, base, "png"), *st = cam_path(dir, base, "safetensors"), *err = NULL;
    int cls = 0;
    if (!u8 || !x || !dfeat || !feat || !alpha || !map || !heat || !png || !st) {
        run_fail("out of memory");
        goto out;
    }
    if (cam_input(r, path, u8, x) || cam_predict(r, l, x, feat, &cls))
        goto out;

    /* d logit_cls / d pooled features = W[cls]; image 0 only */
    memcpy(dfeat, l->weight + (size_t)cls * C, (size_t)C * sizeof(float));
    const float *A, *dA;        /* row 0: (K, Q) */
    if (p->net_cam(x, dfeat, &A, &dA)) {
        run_fail("gradcam: the network failed");
        goto out;
    }
    if (lwl_gradcam_map(A, dA, K, p->cam_h, p->cam_w, map, alpha, &err) ||
        lwl_gradcam_heat(map, p->cam_h, p->cam_w, S, S, heat, &err) ||
        lwl_gradcam_png(png, u8, heat, S, S, &err)) {
        run_fail("gradcam: %s", err);
        free(err);
        goto out;
    }
    cam_out o = { path, cls, x, l->logits, alpha, map, heat };
    if (cam_save(r, st, &o))
        goto out;
    run_say(r, "gradcam: %s: predicted %s, layer%d; %s, %s\n", base, r->ds.classes[cls],
            p->cam_layer, png, st);
    rc = 0;
out:
    free(u8);
    free(x);
    free(dfeat);
    free(feat);
    free(alpha);
    free(map);
    free(heat);
    free(png);
    free(st);
    return rc;
}

int run_phase_gradcam(run *r)
{
    const lwl_program *p = r->p;
    if (p->gradcam_nimages == 0)
        return 0;
    char *err = NULL;
    if (run_open_data(r) || run_load_for_eval(r) || run_cpu_net(r))
        return -1;
    lwl_linear *l = lwl_linear_new(p->feat_dim, r->ds.nclasses, 1, &err);
    char *dir = run_join(r->o.out, "gradcam");
    int rc = -1;
    if (!l || !dir || run_mkdir_p(dir) || load_linear(r, l))
        goto out;
    if (r->gpu)
        run_say(r, "gradcam: on the CPU network (net.c), with the GPU network's state\n");
    rc = 0;
    for (int i = 0; i < p->gradcam_nimages; i++) {
        char *path = run_join(p->spec_dir, p->gradcam_images[i]);
        if (!path || gradcam_one(r, l, path, dir))
            rc = -1;
        free(path);
    }
out:
    if (err) {
        run_fail("gradcam: %s", err);
        free(err);
    }
    lwl_linear_free(l);
    free(dir);
    return rc;
}

/* ---- the report over repeats */

static const char *const metric_names[] = {
    "knn_top1", "knn_top5", "linear_top1", "linear_top5", "linear_best_top1", "linear_best_top5",
};
enum { NMETRICS = 6 };

/* Collects metric m of group (NULL or "random_init") from every repeat's results.json. */
static int collect(const run *r, const char *group, double values[][64], int counts[])
{
    int R = r->repeats;
    for (int m = 0; m < NMETRICS; m++)
        counts[m] = 0;
    for (int k = 0; k < R && k < 64; k++) {
        char sub[32], *dir;
        snprintf(sub, sizeof sub, "run%d", k);
        dir = R > 1 ? run_join(r->top_out, sub) : strdup(r->top_out);
        cJSON *j = dir ? results_read(dir) : NULL;
        cJSON *g = j && group ? cJSON_GetObjectItemCaseSensitive(j, group) : j;
        for (int m = 0; g && m < NMETRICS; m++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(g, metric_names[m]);
            if (cJSON_IsNumber(v))
                values[m][counts[m]++] = v->valuedouble;
        }
        cJSON_Delete(j);
        free(dir);
    }
    return 0;
}

int run_phase_report(run *r)
{
    const lwl_program *p = r->p;
    static double pre[NMETRICS][64], rnd[NMETRICS][64];
    int npre[NMETRICS], nrnd[NMETRICS];
    collect(r, NULL, pre, npre);
    collect(r, "random_init", rnd, nrnd);
    lwl_metric mp[NMETRICS], mr[NMETRICS];
    int a = 0, b = 0;
    for (int m = 0; m < NMETRICS; m++) {
        int top5 = strstr(metric_names[m], "top5") != NULL;
        if ((top5 && !p->top5) || (!top5 && !p->top1))
            continue;
        if (npre[m])
            mp[a++] = (lwl_metric){ metric_names[m], pre[m], npre[m] };
        if (nrnd[m])
            mr[b++] = (lwl_metric){ metric_names[m], rnd[m], nrnd[m] };
    }
    if (a == 0)
        return run_fail("report: no finished evaluation under %s (run knn and linear first)",
                        r->top_out);
    lwl_summary s = { p->name, npre[0] > npre[2] ? npre[0] : npre[2], p->confidence,
                      p->protocol, mp, a, b ? mr : NULL, b };
    char *err = NULL;
    if (lwl_summary_write(r->top_out, &s, &err)) {
        run_fail("report: %s", err);
        free(err);
        return -1;
    }
    char *md = run_join(r->top_out, "summary.md");
    FILE *f = md ? fopen(md, "r") : NULL;
    if (f && !r->o.quiet) {
        char line[4096];
        putchar('\n');
        while (fgets(line, sizeof line, f))
            fputs(line, stdout);
    }
    if (f)
        fclose(f);
    run_say(r, "\nreport: %s/summary.json, %s\n", r->top_out, md ? md : "summary.md");
    free(md);
    return 0;
}
