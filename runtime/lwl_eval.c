/* The evaluation library: kNN (blocked GEMM similarities and a bounded top-k heap per query),
 * per-class shares, the linear classifier and its SGD, top-k accuracy, Student-t intervals
 * (GSL), Grad-CAM and its overlay, and the summary files. docs/evaluation.md has the why. */
#include "lwl_eval.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>

#include "lwl_loader.h"
#include "lwl_nn.h"
#include "lwl_phase.h"
#include "lwl_philox.h"

#define EV_BLOCK_Q 256
#define EV_BLOCK_M 4096
#define EV_TOPK 5

static char *ev_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ev_msg(const char *fmt, ...)
{
    char *m = malloc(512);
    va_list ap;

    if (m) {
        va_start(ap, fmt);
        vsnprintf(m, 512, fmt, ap);
        va_end(ap);
    }
    return m;
}

/* ---- features ---- */

void lwl_l2_normalize_rows(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * d;
        double ss = 0;

        for (size_t j = 0; j < d; j++)
            ss += (double)r[j] * r[j];
        double inv = 1.0 / fmax(sqrt(ss), 1e-12);
        for (size_t j = 0; j < d; j++)
            r[j] = (float)(r[j] * inv);
    }
}

/* Index of the first non-finite value of x (n), or n. */
static size_t ev_first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

/* Index of the first label outside [0, nclasses), or n. */
static size_t ev_first_bad_label(const int *y, size_t n, int nclasses)
{
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= nclasses)
            return i;
    return n;
}

/* ---- kNN ---- */

double lwl_hits_pct(size_t hits, size_t n)
{
    return n ? 100.0 * (double)hits / (double)n : 0.0;
}

/* A neighbour candidate: its similarity and memory row. */
typedef struct {
    float sim;
    size_t idx;
} ev_nb;

/* a ranks below b: lower similarity, or equal similarity and a later memory row. */
static int ev_worse(ev_nb a, ev_nb b)
{
    return a.sim < b.sim || (a.sim == b.sim && a.idx > b.idx);
}

/* Restores the heap (root = the worst of the k kept) below position i. */
static void ev_sift_down(ev_nb *h, int size, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;

        if (l < size && ev_worse(h[l], h[w]))
            w = l;
        if (r < size && ev_worse(h[r], h[w]))
            w = r;
        if (w == i)
            return;
        ev_nb t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void ev_sift_up(ev_nb *h, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;

        if (!ev_worse(h[i], h[p]))
            return;
        ev_nb t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Offers a candidate to a heap of at most k. */
static void ev_offer(ev_nb *h, int *size, int k, ev_nb c)
{
    if (*size < k) {
        h[*size] = c;
        ev_sift_up(h, (*size)++);
    } else if (ev_worse(h[0], c)) {
        h[0] = c;
        ev_sift_down(h, k, 0);
    }
}

/* qsort order: best first (higher similarity, then lower memory row). */
static int ev_cmp_best(const void *a, const void *b)
{
    ev_nb x = *(const ev_nb *)a, y = *(const ev_nb *)b;

    return ev_worse(y, x) ? -1 : ev_worse(x, y) ? 1 : 0;
}

/* The dot product of a and b (d) summed in double in index order: every product of two
 * floats is exact in double, so any machine (and the GPU's kNN) gets the same bits. */
static double ev_dot(const float *a, const float *b, size_t d)
{
    double s = 0;

    for (size_t j = 0; j < d; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* Votes of query q's neighbours (sorted best first) into pred (5): the classes with the
 * highest scores, ties to the lower label, only classes with a vote; -1 in the rest. A
 * weighted vote's similarity is recomputed by ev_dot (mem (n, d)), so that the weights do
 * not depend on the GEMM's rounding, which exp(sim / T) would magnify. */
static void ev_vote(const lwl_knn_cfg *cfg, const ev_nb *nb, int k, const int *mem_labels,
                    const float *mem, const float *q, size_t d, double *score, int *votes,
                    int *pred)
{
    for (int i = 0; i < k; i++) {
        int c = mem_labels[nb[i].idx];

        score[c] += cfg->weighted ? exp(ev_dot(q, mem + nb[i].idx * d, d) / cfg->temperature)
                                  : 1.0;
        votes[c]++;
    }
    for (int r = 0; r < EV_TOPK; r++) {
        int best = -1;

        for (int c = 0; c < cfg->nclasses; c++)
            if (votes[c] > 0 && (best < 0 || score[c] > score[best]))
                best = c;
        pred[r] = best;
        if (best >= 0)
            votes[best] = -votes[best];     /* taken; restored below */
    }
    for (int i = 0; i < k; i++) {
        int c = mem_labels[nb[i].idx];

        score[c] = 0;
        votes[c] = 0;
    }
}

int lwl_knn_check(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                  size_t d, const float *qry, const int *qry_labels, size_t m, char **err)
{
    size_t bad;

    if (cfg->nclasses < 1 || cfg->k < 1 || (size_t)cfg->k > n || d < 1 || d > (size_t)1 << 30
        || (cfg->weighted && !(cfg->temperature > 0)) || cfg->block_q < 0 || cfg->block_m < 0) {
        *err = ev_msg("knn: bad arguments: k %d with %zu memory rows, %d classes, dim %zu, "
                      "temperature %g", cfg->k, n, cfg->nclasses, d, cfg->temperature);
        return -1;
    }
    if ((bad = ev_first_nonfinite(mem, n * d)) < n * d) {
        *err = ev_msg("knn: memory feature row %zu is not finite", bad / d);
        return -1;
    }
    if ((bad = ev_first_nonfinite(qry, m * d)) < m * d) {
        *err = ev_msg("knn: query feature row %zu is not finite", bad / d);
        return -1;
    }
    if ((bad = ev_first_bad_label(mem_labels, n, cfg->nclasses)) < n) {
        *err = ev_msg("knn: memory row %zu has label %d, outside [0, %d)", bad, mem_labels[bad],
                      cfg->nclasses);
        return -1;
    }
    if (qry_labels && (bad = ev_first_bad_label(qry_labels, m, cfg->nclasses)) < m) {
        *err = ev_msg("knn: query row %zu has label %d, outside [0, %d)", bad, qry_labels[bad],
                      cfg->nclasses);
        return -1;
    }
    return 0;
}

int lwl_knn_predict(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                    size_t d, const float *qry, size_t m, int *pred, char **err)
{
    if (lwl_knn_check(cfg, mem, mem_labels, n, d, qry, NULL, m, err) != 0)
        return -1;

    int k = cfg->k, bq = cfg->block_q ? cfg->block_q : EV_BLOCK_Q;
    int bm = cfg->block_m ? cfg->block_m : EV_BLOCK_M;
    float *sim = malloc((size_t)bq * bm * sizeof *sim);      /* (bq, bm) */
    ev_nb *heap = malloc((size_t)bq * k * sizeof *heap);     /* (bq, k) */
    int *size = malloc((size_t)bq * sizeof *size);
    double *score = calloc((size_t)cfg->nclasses, sizeof *score);
    int *votes = calloc((size_t)cfg->nclasses, sizeof *votes);
    int rc = -1;

    if (!sim || !heap || !size || !score || !votes) {
        *err = ev_msg("knn: out of memory (%d x %d similarity block)", bq, bm);
        goto out;
    }
    for (size_t q0 = 0; q0 < m; q0 += (size_t)bq) {
        int nq = (int)(m - q0 < (size_t)bq ? m - q0 : (size_t)bq);

        memset(size, 0, (size_t)nq * sizeof *size);
        /* Similarities of this query block with each memory block, into the heaps. */
        for (size_t m0 = 0; m0 < n; m0 += (size_t)bm) {
            int nm = (int)(n - m0 < (size_t)bm ? n - m0 : (size_t)bm);

            if (lwl_gemm(0, 1, nq, nm, (int)d, 1.0f, qry + q0 * d, (int)d, mem + m0 * d,
                         (int)d, 0.0f, sim, nm) != 0) {
                *err = ev_msg("knn: %s", lwl_nn_error());
                goto out;
            }
            for (int i = 0; i < nq; i++)
                for (int j = 0; j < nm; j++) {
                    ev_nb c = { sim[(size_t)i * nm + j], m0 + (size_t)j };
                    ev_offer(heap + (size_t)i * k, &size[i], k, c);
                }
        }
        /* Neighbours best first, then the vote. */
        for (int i = 0; i < nq; i++) {
            ev_nb *h = heap + (size_t)i * k;

            qsort(h, (size_t)k, sizeof *h, ev_cmp_best);
            ev_vote(cfg, h, k, mem_labels, mem, qry + (q0 + (size_t)i) * d, d, score, votes,
                    pred + (q0 + (size_t)i) * EV_TOPK);
        }
    }
    rc = 0;
out:
    free(sim);
    free(heap);
    free(size);
    free(score);
    free(votes);
    return rc;
}

void lwl_knn_hits(const int *pred, const int *labels, size_t m, lwl_hits *hits)
{
    hits->n = m;
    hits->top1 = hits->top5 = 0;
    for (size_t i = 0; i < m; i++) {
        const int *p = pred + i * EV_TOPK;

        hits->top1 += p[0] == labels[i];
        for (int r = 0; r < EV_TOPK; r++)
            if (p[r] == labels[i]) {
                hits->top5++;
                break;
            }
    }
}

int lwl_knn_eval(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                 size_t d, const float *qry, const int *qry_labels, size_t m, lwl_hits *hits,
                 char **err)
{
    size_t bad = ev_first_bad_label(qry_labels, m, cfg->nclasses > 0 ? cfg->nclasses : 1);
    int *pred;

    if (bad < m) {
        *err = ev_msg("knn: query row %zu has label %d, outside [0, %d)", bad, qry_labels[bad],
                      cfg->nclasses);
        return -1;
    }
    pred = malloc((m ? m : 1) * EV_TOPK * sizeof *pred);
    if (!pred) {
        *err = ev_msg("knn: out of memory (%zu queries)", m);
        return -1;
    }
    if (lwl_knn_predict(cfg, mem, mem_labels, n, d, qry, m, pred, err) != 0) {
        free(pred);
        return -1;
    }
    lwl_knn_hits(pred, qry_labels, m, hits);
    free(pred);
    return 0;
}

/* ---- shares of a split ---- */

int lwl_class_share(const lwl_item *items, size_t n, int nclasses, double share, size_t **idx,
                    size_t *count, char **err)
{
    size_t *have, *keep, total = 0;

    *idx = NULL;
    *count = 0;
    if (nclasses < 1 || !(share > 0 && share <= 1)) {
        *err = ev_msg("share: bad arguments: %d classes, share %g (must be in (0, 1])",
                      nclasses, share);
        return -1;
    }
    have = calloc((size_t)nclasses, sizeof *have);
    keep = calloc((size_t)nclasses, sizeof *keep);
    if (!have || !keep) {
        free(have);
        free(keep);
        *err = ev_msg("share: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].label < 0 || items[i].label >= nclasses) {
            *err = ev_msg("share: item %zu (%s) has label %d, outside [0, %d)", i,
                          items[i].path ? items[i].path : "?", items[i].label, nclasses);
            free(have);
            free(keep);
            return -1;
        }
        have[items[i].label]++;
    }

    /* LEWEL's get_keep_index: min(max(1, round(share * n_c)), n_c), round half to even. */
    for (int c = 0; c < nclasses; c++) {
        double r = rint(share * (double)have[c]);
        size_t kc = r < 1 ? 1 : (size_t)r;

        keep[c] = kc < have[c] ? kc : have[c];
        total += keep[c];
        have[c] = 0;
    }
    *idx = malloc((total ? total : 1) * sizeof **idx);
    if (!*idx) {
        free(have);
        free(keep);
        *err = ev_msg("share: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int c = items[i].label;

        if (have[c] < keep[c]) {
            have[c]++;
            (*idx)[(*count)++] = i;
        }
    }
    free(have);
    free(keep);
    return 0;
}

/* ---- linear classifier ---- */

double lwl_sgd_lr_at(const lwl_sgd_cfg *c, int epoch)
{
    double lr = c->lr;

    for (int i = 0; i < c->nmilestones; i++)
        if (epoch >= c->milestones[i])
            lr *= 0.1;
    return lr;
}

lwl_linear *lwl_linear_new(int dim, int nclasses, int max_batch, char **err)
{
    lwl_linear *l;
    size_t nw = (size_t)nclasses * (size_t)dim;

    if (dim < 1 || nclasses < 1 || max_batch < 1) {
        *err = ev_msg("linear: bad shape: dim %d, classes %d, batch %d", dim, nclasses,
                      max_batch);
        return NULL;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        *err = ev_msg("linear: out of memory");
        return NULL;
    }
    l->dim = dim;
    l->nclasses = nclasses;
    l->max_batch = max_batch;
    l->weight = calloc(nw, sizeof(float));
    l->grad_w = calloc(nw, sizeof(float));
    l->buf_w = calloc(nw, sizeof(float));
    l->bias = calloc((size_t)nclasses, sizeof(float));
    l->grad_b = calloc((size_t)nclasses, sizeof(float));
    l->buf_b = calloc((size_t)nclasses, sizeof(float));
    l->logits = calloc((size_t)max_batch * nclasses, sizeof(float));
    if (!l->weight || !l->grad_w || !l->buf_w || !l->bias || !l->grad_b || !l->buf_b ||
        !l->logits) {
        lwl_linear_free(l);
        *err = ev_msg("linear: out of memory (%d x %d)", nclasses, dim);
        return NULL;
    }
    return l;
}

void lwl_linear_free(lwl_linear *l)
{
    if (!l)
        return;
    free(l->weight);
    free(l->grad_w);
    free(l->buf_w);
    free(l->bias);
    free(l->grad_b);
    free(l->buf_b);
    free(l->logits);
    free(l);
}

void lwl_linear_init(lwl_linear *l, uint64_t seed)
{
    size_t nw = (size_t)l->nclasses * l->dim;

    /* N(0, 0.01) by Box-Muller: each Philox block gives two pairs of uniforms. */
    for (size_t i = 0; i < nw; i += 4) {
        uint32_t r[4];

        lwl_rng_block(seed, 0xFFFFFFFFu, 0, 0xFFFDu, 0, (uint32_t)(i / 4), r);
        for (size_t k = 0; k < 4 && i + k < nw; k += 2) {
            double u1 = 1.0 - lwl_rng_u01(r[k]), u2 = lwl_rng_u01(r[k + 1]);
            double rad = 0.01 * sqrt(-2.0 * log(u1));

            l->weight[i + k] = (float)(rad * cos(6.283185307179586 * u2));
            if (i + k + 1 < nw)
                l->weight[i + k + 1] = (float)(rad * sin(6.283185307179586 * u2));
        }
    }
    memset(l->bias, 0, (size_t)l->nclasses * sizeof(float));
    memset(l->buf_w, 0, nw * sizeof(float));
    memset(l->buf_b, 0, (size_t)l->nclasses * sizeof(float));
    l->steps = 0;
}

int lwl_linear_forward(lwl_linear *l, const float *x, int batch, float *logits, char **err)
{
    int c = l->nclasses;

    if (batch < 0 || batch > l->max_batch) {
        *err = ev_msg("linear: batch %d outside [0, %d]", batch, l->max_batch);
        return -1;
    }
    if (lwl_gemm(0, 1, batch, c, l->dim, 1.0f, x, l->dim, l->weight, l->dim, 0.0f, logits,
                 c) != 0) {
        *err = ev_msg("linear: %s", lwl_nn_error());
        return -1;
    }
    for (int i = 0; i < batch; i++)
        for (int j = 0; j < c; j++)
            logits[(size_t)i * c + j] += l->bias[j];
    return 0;
}

/* Turns logits (batch, c) into d(mean cross-entropy)/d(logits) in place; returns the mean
 * loss. Log-sum-exp in double after subtracting the row's maximum. */
static double ev_softmax_xent(float *z, const int *labels, int batch, int c)
{
    double total = 0;

    for (int i = 0; i < batch; i++) {
        float *r = z + (size_t)i * c;
        float mx = r[0];
        double sum = 0;

        for (int j = 1; j < c; j++)
            mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < c; j++)
            sum += exp((double)r[j] - mx);
        total += log(sum) - ((double)r[labels[i]] - mx);
        for (int j = 0; j < c; j++)
            r[j] = (float)((exp((double)r[j] - mx) / sum - (j == labels[i])) / batch);
    }
    return batch ? total / batch : 0.0;
}

/* p -= lr buf with buf = d (first step) or momentum buf + d, d = g + wd p. */
static void ev_sgd(float *p, const float *g, float *buf, size_t n, const lwl_sgd_cfg *c,
                   double lr, int first)
{
    float wd = (float)c->weight_decay, mom = (float)c->momentum, flr = (float)lr;

    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];

        buf[i] = first ? d : mom * buf[i] + d;
        p[i] -= flr * buf[i];
    }
}

int lwl_linear_step(lwl_linear *l, const lwl_sgd_cfg *c, double lr, const float *x,
                    const int *labels, int batch, double *loss, lwl_hits *hits, char **err)
{
    int nc = l->nclasses, d = l->dim;
    size_t bad;
    double ls;

    if (batch < 1 || batch > l->max_batch) {
        *err = ev_msg("linear: batch %d outside [1, %d]", batch, l->max_batch);
        return -1;
    }
    if ((bad = ev_first_bad_label(labels, (size_t)batch, nc)) < (size_t)batch) {
        *err = ev_msg("linear: row %zu has label %d, outside [0, %d)", bad, labels[bad], nc);
        return -1;
    }
    if (lwl_linear_forward(l, x, batch, l->logits, err) != 0)
        return -1;
    if (hits)
        lwl_topk_hits(l->logits, labels, batch, nc, hits);
    ls = ev_softmax_xent(l->logits, labels, batch, nc);
    if (!isfinite(ls)) {
        *err = ev_msg("linear: the loss is not finite (%g)", ls);
        return -1;
    }
    if (loss)
        *loss = ls;

    /* grad_w (C, D) = dz^T (C, B) x (B, D); grad_b = column sums of dz. */
    if (lwl_gemm(1, 0, nc, d, batch, 1.0f, l->logits, nc, x, d, 0.0f, l->grad_w, d) != 0) {
        *err = ev_msg("linear: %s", lwl_nn_error());
        return -1;
    }
    for (int j = 0; j < nc; j++) {
        float s = 0;

        for (int i = 0; i < batch; i++)
            s += l->logits[(size_t)i * nc + j];
        l->grad_b[j] = s;
    }
    ev_sgd(l->weight, l->grad_w, l->buf_w, (size_t)nc * d, c, lr, l->steps == 0);
    ev_sgd(l->bias, l->grad_b, l->buf_b, (size_t)nc, c, lr, l->steps == 0);
    l->steps++;
    return 0;
}

void lwl_topk_hits(const float *logits, const int *labels, int batch, int nclasses,
                   lwl_hits *hits)
{
    for (int i = 0; i < batch; i++) {
        const float *r = logits + (size_t)i * nclasses;
        float y = r[labels[i]];
        int above = 0;

        /* The label's rank: classes ahead of it (higher logit, or equal and lower index). */
        for (int j = 0; j < nclasses; j++)
            above += r[j] > y || (r[j] == y && j < labels[i]);
        hits->n++;
        hits->top1 += above == 0;
        hits->top5 += above < EV_TOPK;
    }
}

/* ---- Student-t interval ---- */

int lwl_t_interval(const double *v, int n, double confidence, lwl_interval *out, char **err)
{
    double sum = 0, ss = 0;

    if (n < 1 || !(confidence > 0 && confidence < 1)) {
        *err = ev_msg("interval: bad arguments: %d values, confidence %g", n, confidence);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            *err = ev_msg("interval: value %d is not finite", i);
            return -1;
        }
        sum += v[i];
    }
    out->mean = sum / n;
    out->low = out->high = NAN;
    out->has_interval = 0;
    if (n == 1)
        return 0;
    for (int i = 0; i < n; i++)
        ss += (v[i] - out->mean) * (v[i] - out->mean);

    /* GSL's default handler aborts; errors are reported here instead. */
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    double t = gsl_cdf_tdist_Pinv(0.5 + confidence / 2, (double)(n - 1));
    gsl_set_error_handler(old);
    if (!isfinite(t)) {
        *err = ev_msg("interval: no t quantile for confidence %g, %d degrees of freedom",
                      confidence, n - 1);
        return -1;
    }
    double half = t * sqrt(ss / (n - 1)) / sqrt((double)n);
    out->low = out->mean - half;
    out->high = out->mean + half;
    out->has_interval = 1;
    return 0;
}

/* ---- Grad-CAM ---- */

/* Source position and weight of destination index i when scaling n_in to n_out with
 * half-pixel centres (torch's bilinear, align_corners=False). */
static void ev_src(int i, int n_in, int n_out, int *i0, int *i1, float *lam)
{
    float s = ((float)i + 0.5f) * ((float)n_in / (float)n_out) - 0.5f;

    if (s < 0)
        s = 0;
    *i0 = (int)s;
    if (*i0 > n_in - 1)
        *i0 = n_in - 1;
    *i1 = *i0 < n_in - 1 ? *i0 + 1 : *i0;
    *lam = s - (float)*i0;
}

int lwl_gradcam_map(const float *act, const float *grad, int c, int h, int w, float *map,
                    float *alpha, char **err)
{
    size_t hw = (size_t)h * w;

    if (c < 1 || h < 1 || w < 1) {
        *err = ev_msg("gradcam: bad shape (%d, %d, %d)", c, h, w);
        return -1;
    }
    memset(map, 0, hw * sizeof *map);

    /* alpha_c = mean gradient; map = ReLU(sum_c alpha_c A_c). */
    for (int k = 0; k < c; k++) {
        double s = 0;

        for (size_t p = 0; p < hw; p++)
            s += grad[(size_t)k * hw + p];
        float a = (float)(s / (double)hw);
        if (alpha)
            alpha[k] = a;
        for (size_t p = 0; p < hw; p++)
            map[p] += a * act[(size_t)k * hw + p];
    }
    for (size_t p = 0; p < hw; p++)
        map[p] = map[p] > 0 ? map[p] : 0;
    return 0;
}

int lwl_gradcam_heat(const float *map, int h, int w, int out_h, int out_w, float *heat,
                     char **err)
{
    size_t ohw = (size_t)out_h * out_w;
    float mn = INFINITY, mx = -INFINITY;

    if (h < 1 || w < 1 || out_h < 1 || out_w < 1) {
        *err = ev_msg("gradcam: bad shape %d x %d to %d x %d", h, w, out_h, out_w);
        return -1;
    }

    /* Bilinear upsampling, then min-max normalisation. */
    for (int y = 0; y < out_h; y++) {
        int y0, y1, x0, x1;
        float ly, lx;

        ev_src(y, h, out_h, &y0, &y1, &ly);
        for (int x = 0; x < out_w; x++) {
            ev_src(x, w, out_w, &x0, &x1, &lx);
            float top = (1 - lx) * map[(size_t)y0 * w + x0] + lx * map[(size_t)y0 * w + x1];
            float bot = (1 - lx) * map[(size_t)y1 * w + x0] + lx * map[(size_t)y1 * w + x1];
            float v = (1 - ly) * top + ly * bot;
            heat[(size_t)y * out_w + x] = v;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    }
    if (!isfinite(mn) || !isfinite(mx)) {
        *err = ev_msg("gradcam: the map is not finite");
        return -1;
    }
    for (size_t p = 0; p < ohw; p++)
        heat[p] = mx > mn ? (heat[p] - mn) / (mx - mn) : 0.0f;
    return 0;
}

int lwl_gradcam(const float *act, const float *grad, int c, int h, int w, int out_h, int out_w,
                float *heat, float *alpha, char **err)
{
    if (c < 1 || h < 1 || w < 1 || out_h < 1 || out_w < 1) {
        *err = ev_msg("gradcam: bad shape (%d, %d, %d) to %d x %d", c, h, w, out_h, out_w);
        return -1;
    }
    float *map = malloc((size_t)h * w * sizeof *map);
    if (!map) {
        *err = ev_msg("gradcam: out of memory");
        return -1;
    }
    int rc = lwl_gradcam_map(act, grad, c, h, w, map, alpha, err) ||
             lwl_gradcam_heat(map, h, w, out_h, out_w, heat, err) ? -1 : 0;
    free(map);
    return rc;
}

/* Matplotlib's _jet_data segments (x, value), interpolated linearly. */
static const float ev_jet_r[][2] = { {0, 0}, {0.35f, 0}, {0.66f, 1}, {0.89f, 1}, {1, 0.5f} };
static const float ev_jet_g[][2] = { {0, 0}, {0.125f, 0}, {0.375f, 1}, {0.64f, 1},
                                     {0.91f, 0}, {1, 0} };
static const float ev_jet_b[][2] = { {0, 0.5f}, {0.11f, 1}, {0.34f, 1}, {0.65f, 0}, {1, 0} };

static float ev_seg(const float (*s)[2], int n, float x)
{
    for (int i = 1; i < n; i++)
        if (x <= s[i][0])
            return s[i - 1][1] + (s[i][1] - s[i - 1][1]) * (x - s[i - 1][0]) /
                   (s[i][0] - s[i - 1][0]);
    return s[n - 1][1];
}

/* jet(x) in [0, 1] per channel. */
static void ev_jet_f(float x, float rgb[3])
{
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    if (isnan(x))
        x = 0;
    rgb[0] = ev_seg(ev_jet_r, 5, x);
    rgb[1] = ev_seg(ev_jet_g, 6, x);
    rgb[2] = ev_seg(ev_jet_b, 5, x);
}

void lwl_jet(float x, uint8_t rgb[3])
{
    float f[3];

    ev_jet_f(x, f);
    for (int i = 0; i < 3; i++)
        rgb[i] = (uint8_t)lrintf(f[i] * 255.0f);
}

int lwl_gradcam_png(const char *path, const uint8_t *rgb, const float *heat, int w, int h,
                    char **err)
{
    uint8_t *px;

    if (w < 1 || h < 1) {
        *err = ev_msg("%s: bad image size %d x %d", path, w, h);
        return -1;
    }
    px = malloc((size_t)w * h * 3);
    if (!px) {
        *err = ev_msg("%s: out of memory", path);
        return -1;
    }
    for (size_t p = 0; p < (size_t)w * h; p++) {
        float j[3];

        ev_jet_f(heat[p], j);
        for (int k = 0; k < 3; k++)
            px[p * 3 + k] = (uint8_t)lrintf(0.5f * rgb[p * 3 + k] + 0.5f * 255.0f * j[k]);
    }
    int rc = lwl_write_png(path, w, h, px, err);
    free(px);
    return rc;
}

/* ---- summary.json and summary.md ---- */

int lwl_format_cell(char *buf, size_t size, const double *values, int n, double confidence)
{
    lwl_interval iv;
    char *e = NULL;

    if (n < 1)
        return snprintf(buf, size, "-");
    if (lwl_t_interval(values, n, confidence, &iv, &e) != 0) {
        free(e);
        return -1;
    }
    if (!iv.has_interval)
        return snprintf(buf, size, "%.1f", iv.mean);
    return snprintf(buf, size, "%.1f [%.1f, %.1f]", iv.mean, iv.low, iv.high);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as x; null when not finite. */
static void ev_json_num(lwl_strbuf *b, double x)
{
    char s[40];

    if (!isfinite(x)) {
        lwl_strbuf_printf(b, "null");
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, x);
        if (strtod(s, NULL) == x)
            break;
    }
    lwl_strbuf_printf(b, "%s", s);
}

/* {"name": {"values": [...], "mean", "low", "high"}, ...} */
static int ev_json_metrics(lwl_strbuf *b, const lwl_metric *m, int n, double conf, char **err)
{
    lwl_strbuf_printf(b, "{");
    for (int i = 0; i < n; i++) {
        lwl_interval iv = { NAN, NAN, NAN, 0 };

        if (m[i].n > 0 && lwl_t_interval(m[i].values, m[i].n, conf, &iv, err) != 0)
            return -1;
        lwl_strbuf_printf(b, "%s\n    ", i ? "," : "");
        lwl_json_str(b, m[i].name);
        lwl_strbuf_printf(b, ": {\"values\": [");
        for (int k = 0; k < m[i].n; k++) {
            lwl_strbuf_printf(b, "%s", k ? ", " : "");
            ev_json_num(b, m[i].values[k]);
        }
        lwl_strbuf_printf(b, "], \"mean\": ");
        ev_json_num(b, iv.mean);
        lwl_strbuf_printf(b, ", \"low\": ");
        ev_json_num(b, iv.low);
        lwl_strbuf_printf(b, ", \"high\": ");
        ev_json_num(b, iv.high);
        lwl_strbuf_printf(b, "}");
    }
    lwl_strbuf_printf(b, "%s}", n ? "\n  " : "");
    return 0;
}

/* A metric's column title: "kNN Acc@1" for knn_top1 and the like, else the name. */
static const char *ev_title(const char *name, char *buf, size_t size)
{
    static const char *const map[][2] = {
        { "knn_top1", "kNN Acc@1" }, { "knn_top5", "kNN Acc@5" },
        { "linear_top1", "linear Acc@1" }, { "linear_top5", "linear Acc@5" },
        { "linear_best_top1", "linear best Acc@1" }, { "linear_best_top5", "linear best Acc@5" },
    };

    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i][0]) == 0)
            return map[i][1];
    snprintf(buf, size, "%s", name);
    return buf;
}

static const lwl_metric *ev_find(const lwl_metric *m, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return &m[i];
    return NULL;
}

/* One table row of summary.md: the cells of the columns' metrics found in m. */
static void ev_md_row(lwl_strbuf *b, const char *label, const lwl_metric *const *cols, int ncol,
                      const lwl_metric *m, int n, double conf)
{
    lwl_strbuf_printf(b, "| %s |", label);
    for (int i = 0; i < ncol; i++) {
        const lwl_metric *x = m ? ev_find(m, n, cols[i]->name) : NULL;
        char cell[96];

        if (lwl_format_cell(cell, sizeof cell, x ? x->values : NULL, x ? x->n : 0, conf) < 0)
            snprintf(cell, sizeof cell, "?");
        lwl_strbuf_printf(b, " %s |", cell);
    }
    lwl_strbuf_printf(b, "\n");
}

static void ev_md(lwl_strbuf *b, const lwl_summary *s)
{
    const lwl_metric *cols[64];
    int ncol = 0, nmax = 0;
    char t[96];

    /* Columns: the pre-trained metrics, then those only the random initialisation has. */
    for (int i = 0; i < s->nmetrics && ncol < 64; i++)
        cols[ncol++] = &s->metrics[i];
    for (int i = 0; s->random && i < s->nrandom && ncol < 64; i++)
        if (!ev_find(s->metrics, s->nmetrics, s->random[i].name))
            cols[ncol++] = &s->random[i];
    for (int i = 0; i < ncol; i++)
        nmax = cols[i]->n > nmax ? cols[i]->n : nmax;

    lwl_strbuf_printf(b, "# %s\n\n", s->experiment);
    if (s->protocol)
        lwl_strbuf_printf(b, "Protocol: %s\n\n", s->protocol);
    lwl_strbuf_printf(b, "%d of %d repeat%s finished. Each cell is the mean over repeats", nmax,
                      s->repeats, s->repeats == 1 ? "" : "s");
    lwl_strbuf_printf(b, " and, with two or more, the two-sided %g%% Student-t interval with "
                      "n-1 degrees of freedom; accuracies in percent.\n\n",
                      100 * s->confidence);
    lwl_strbuf_printf(b, "| backbone |");
    for (int i = 0; i < ncol; i++)
        lwl_strbuf_printf(b, " %s |", ev_title(cols[i]->name, t, sizeof t));
    lwl_strbuf_printf(b, "\n|---|");
    for (int i = 0; i < ncol; i++)
        lwl_strbuf_printf(b, "---|");
    lwl_strbuf_printf(b, "\n");
    ev_md_row(b, "pre-trained", cols, ncol, s->metrics, s->nmetrics, s->confidence);
    if (s->random)
        ev_md_row(b, "random init", cols, ncol, s->random, s->nrandom, s->confidence);

    /* Each repeat's values, for the record. */
    lwl_strbuf_printf(b, "\nValues per repeat (run0, run1, ...):\n\n");
    for (int r = 0; r < 2; r++) {
        const lwl_metric *m = r ? s->random : s->metrics;
        int n = r ? s->nrandom : s->nmetrics;

        for (int i = 0; m && i < n; i++) {
            lwl_strbuf_printf(b, "- %s%s:", r ? "random init " : "", m[i].name);
            for (int k = 0; k < m[i].n; k++)
                lwl_strbuf_printf(b, "%s %.2f", k ? "," : "", m[i].values[k]);
            lwl_strbuf_printf(b, "%s\n", m[i].n ? "" : " none");
        }
    }
}

/* Creates dir and its parents. */
static int ev_mkdirs(const char *dir, char **err)
{
    char p[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof p) {
        *err = ev_msg("%s: bad directory name", dir);
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            *err = ev_msg("%s: cannot create: %s", p, strerror(errno));
            return -1;
        }
        p[i] = c;
    }
    return 0;
}

/* Writes text to dir/name through dir/name.tmp and a rename. */
static int ev_write_file(const char *dir, const char *name, const lwl_strbuf *b, char **err)
{
    char path[4200], tmp[4300];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        *err = ev_msg("%s: cannot write: %s", tmp, strerror(errno));
        return -1;
    }
    if (fwrite(b->s, 1, b->len, f) != b->len) {
        *err = ev_msg("%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        *err = ev_msg("%s: cannot finish: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int lwl_summary_write(const char *out_dir, const lwl_summary *s, char **err)
{
    lwl_strbuf js = { 0 }, md = { 0 };
    int rc = -1;

    *err = NULL;
    if (ev_mkdirs(out_dir, err) != 0)
        return -1;
    lwl_strbuf_printf(&js, "{\n  \"experiment\": ");
    lwl_json_str(&js, s->experiment);
    lwl_strbuf_printf(&js, ",\n  \"repeats\": %d,\n  \"confidence\": ", s->repeats);
    ev_json_num(&js, s->confidence);
    lwl_strbuf_printf(&js, ",\n  \"protocol\": ");
    if (s->protocol)
        lwl_json_str(&js, s->protocol);
    else
        lwl_strbuf_printf(&js, "null");
    lwl_strbuf_printf(&js, ",\n  \"metrics\": ");
    if (ev_json_metrics(&js, s->metrics, s->nmetrics, s->confidence, err) != 0)
        goto out;
    if (s->random) {
        lwl_strbuf_printf(&js, ",\n  \"random_init\": ");
        if (ev_json_metrics(&js, s->random, s->nrandom, s->confidence, err) != 0)
            goto out;
    }
    lwl_strbuf_printf(&js, "\n}\n");
    ev_md(&md, s);
    if (js.oom || md.oom) {
        *err = ev_msg("summary: out of memory");
        goto out;
    }
    if (ev_write_file(out_dir, "summary.json", &js, err) == 0 &&
        ev_write_file(out_dir, "summary.md", &md, err) == 0)
        rc = 0;
out:
    lwl_strbuf_free(&js);
    lwl_strbuf_free(&md);
    return rc;
}
