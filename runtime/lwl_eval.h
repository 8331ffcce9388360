/* The evaluation library of a generated program, independent of the network: kNN on
 * L2-normalised features, per-class shares of a split, the linear classifier's step and SGD,
 * top-k accuracy, Student-t intervals (GSL), Grad-CAM maps and overlays, summary.json/.md.
 * Choices (rounding, tie-breaking, formats) are in docs/evaluation.md. */
#ifndef LWL_EVAL_H
#define LWL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "lwl_dataset.h"

/* Functions returning int give 0 on success and -1 on failure with *err a malloc'd message
 * (free it); nothing here exits. Accuracies are percentages (0..100). */

/* ---- features ---- */

/* Each row of x (n, d) divided by max(||row||_2, 1e-12), as torch.nn.functional.normalize:
 * a zero row stays zero. The norm is summed in double. */
void lwl_l2_normalize_rows(float *x, size_t n, size_t d);

/* ---- kNN ---- */

typedef struct {
    int k;              /* neighbours, 1 <= k <= memory rows */
    int weighted;       /* 0: majority vote; 1: each neighbour adds exp(sim / temperature) */
    double temperature; /* > 0; used when weighted */
    int nclasses;       /* labels lie in [0, nclasses) */
    int block_q;        /* query rows per similarity block; 0: 256 */
    int block_m;        /* memory rows per similarity block; 0: 4096 */
} lwl_knn_cfg;

/* Hit counts of top-1 and top-5 over n queries. */
typedef struct {
    size_t n, top1, top5;
} lwl_hits;

/* Percent of n; 0 when n is 0. */
double lwl_hits_pct(size_t hits, size_t n);

/* Ranks classes for each query row: pred (m, 5) holds the classes with the highest scores
 * (vote counts or summed weights), ties to the lower label; a class no neighbour voted for is
 * never listed, its slot is -1 (so with k = 1 only pred[.][0] is set). Neighbours are the k
 * memory rows of highest cosine similarity (the dot product: rows must be normalised
 * already), ties to the lower memory index; a weighted vote's weight exp(s / T) takes s as
 * the dot product summed in double, in index order. mem (n, d), mem_labels (n), qry (m, d).
 * Similarities come from lwl_gemm in blocks of block_q queries x block_m memory rows, so
 * the scratch is bounded whatever n and m; results do not depend on the block sizes.
 * Non-finite features and labels outside [0, nclasses) are errors. */
int lwl_knn_predict(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                    size_t d, const float *qry, size_t m, int *pred, char **err);

/* The checks of lwl_knn_predict (and of lwl_knn_eval's query labels when qry_labels is not
 * NULL): k in [1, n], the temperature of a weighted vote, finite features, labels in
 * [0, nclasses). For a kNN computed elsewhere (the GPU's) on the same arguments. */
int lwl_knn_check(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                  size_t d, const float *qry, const int *qry_labels, size_t m, char **err);

/* Counts of predictions pred (m, 5) against labels (m): top-1 when pred[0] is the label,
 * top-5 when any of the five listed classes is. */
void lwl_knn_hits(const int *pred, const int *labels, size_t m, lwl_hits *hits);

/* lwl_knn_predict, then lwl_knn_hits. */
int lwl_knn_eval(const lwl_knn_cfg *cfg, const float *mem, const int *mem_labels, size_t n,
                 size_t d, const float *qry, const int *qry_labels, size_t m, lwl_hits *hits,
                 char **err);

/* ---- shares of a split ---- */

/* The first count_c = min(max(1, rint(share * n_c)), n_c) items of each class c of a split
 * given in (class, file) order, as LEWEL's get_keep_index without shuffle: rint rounds half
 * to even like Python's round(), and an empty class gives none. share in (0, 1]. *idx (a
 * malloc'd array of *count indices into items, ascending) is freed by the caller. */
int lwl_class_share(const lwl_item *items, size_t n, int nclasses, double share, size_t **idx,
                    size_t *count, char **err);

/* ---- linear classifier ---- */

/* SGD as torch.optim.SGD (dampening 0, no Nesterov), weight decay on weight and bias:
 * d = g + wd w; buf = d on the first step, else momentum buf + d; w -= lr buf.
 * lr at epoch e (0-based) is lr * 0.1^(number of milestones <= e), as LEWEL's
 * main_lincls.py and torch's MultiStepLR. */
typedef struct {
    double lr, momentum, weight_decay;
    const int *milestones;      /* epochs, ascending */
    int nmilestones;
} lwl_sgd_cfg;

double lwl_sgd_lr_at(const lwl_sgd_cfg *c, int epoch);

/* nn.Linear(dim, nclasses) with its SGD state. Buffers are owned by the object. */
typedef struct {
    int dim, nclasses, max_batch;
    float *weight;          /* (nclasses, dim) */
    float *bias;            /* (nclasses) */
    float *grad_w, *grad_b; /* gradients of the latest step, same shapes */
    float *buf_w, *buf_b;   /* momentum buffers, same shapes */
    float *logits;          /* (max_batch, nclasses) scratch */
    long steps;             /* optimiser steps taken (0: the next one starts the buffers) */
} lwl_linear;

lwl_linear *lwl_linear_new(int dim, int nclasses, int max_batch, char **err);
void lwl_linear_free(lwl_linear *l);

/* weight ~ N(0, 0.01) by Box-Muller on Philox keyed by (seed, epoch 0xFFFFFFFF, index 0,
 * view 0xFFFD, block), bias 0, momentum cleared, steps 0. */
void lwl_linear_init(lwl_linear *l, uint64_t seed);

/* logits (batch, nclasses) = x (batch, dim) weight^T + bias; batch <= max_batch. */
int lwl_linear_forward(lwl_linear *l, const float *x, int batch, float *logits, char **err);

/* One training step on a batch: mean softmax cross-entropy of x (batch, dim) against labels,
 * its gradients (grad_w, grad_b), then one SGD update at learning rate lr with c's momentum
 * and weight decay. *loss (may be NULL) is the mean loss before the update; *hits (may be
 * NULL) gets the batch's top-1/top-5 counts, also before the update. */
int lwl_linear_step(lwl_linear *l, const lwl_sgd_cfg *c, double lr, const float *x,
                    const int *labels, int batch, double *loss, lwl_hits *hits, char **err);

/* Adds to *hits the top-1/top-5 counts of logits (batch, nclasses): the five highest
 * logits, ties to the lower class index (with fewer than five classes, all of them). */
void lwl_topk_hits(const float *logits, const int *labels, int batch, int nclasses,
                   lwl_hits *hits);

/* ---- Student-t interval ---- */

typedef struct {
    double mean, low, high;  /* low and high are NaN when there is no interval */
    int has_interval;        /* 0 for n = 1 */
} lwl_interval;

/* Mean of v (n >= 1) and the two-sided interval mean +- t s / sqrt(n), t the
 * (1 + confidence) / 2 quantile of Student's t with n - 1 degrees of freedom
 * (gsl_cdf_tdist_Pinv), s the sample standard deviation; 0 < confidence < 1. */
int lwl_t_interval(const double *v, int n, double confidence, lwl_interval *out, char **err);

/* ---- Grad-CAM ---- */

/* act and grad (c, h, w): the layer's activations and d(class score)/d(act). alpha_c = the
 * mean of grad over positions; map = ReLU(sum_c alpha_c act_c), upsampled bilinearly to
 * (out_h, out_w) with half-pixel centres (torch's interpolate, align_corners=False), then
 * (map - min) / (max - min) in [0, 1]; a constant map gives zeros. heat (out_h, out_w);
 * alpha (c) may be NULL, else it receives the weights. */
int lwl_gradcam(const float *act, const float *grad, int c, int h, int w, int out_h, int out_w,
                float *heat, float *alpha, char **err);

/* lwl_gradcam in two steps: the weights alpha (c; may be NULL) and the map before upsampling,
 * map (h, w) = ReLU(sum_c alpha_c act_c); then heat (out_h, out_w) from a map, upsampled and
 * normalised. lwl_gradcam gives the same bits. */
int lwl_gradcam_map(const float *act, const float *grad, int c, int h, int w, float *map,
                    float *alpha, char **err);
int lwl_gradcam_heat(const float *map, int h, int w, int out_h, int out_w, float *heat,
                     char **err);

/* Matplotlib's "jet" colour map at x in [0, 1] (clamped), as 8-bit RGB. */
void lwl_jet(float x, uint8_t rgb[3]);

/* Writes path as a PNG: rgb (h, w, 3), the evaluation crop, blended half and half with
 * jet(heat (h, w)): out = round(0.5 rgb + 0.5 jet). */
int lwl_gradcam_png(const char *path, const uint8_t *rgb, const float *heat, int w, int h,
                    char **err);

/* ---- summary.json and summary.md ---- */

typedef struct {
    const char *name;       /* "knn_top1", "linear_top1", ... */
    const double *values;   /* (n), one per finished repeat, percent */
    int n;
} lwl_metric;

typedef struct {
    const char *experiment;
    int repeats;
    double confidence;
    const char *protocol;        /* free text for summary.md and the tables, or NULL */
    const lwl_metric *metrics;   /* the pre-trained backbone's */
    int nmetrics;
    const lwl_metric *random;    /* the same for the random initialisation, or NULL */
    int nrandom;
} lwl_summary;

/* Writes out_dir/summary.json and out_dir/summary.md (each to a temporary name, then
 * renamed). JSON: {"experiment", "repeats", "confidence", "protocol", "metrics": {name:
 * {"values": [...], "mean": m, "low": l, "high": h}}, "random_init": {same}}, with null low
 * and high for one value. Markdown: the protocol, then a table with a row per backbone
 * (pre-trained, random init) and a column per metric, each cell "82.3 [77.6, 87.0]". */
int lwl_summary_write(const char *out_dir, const lwl_summary *s, char **err);

/* A cell of summary.md and the tables: "%.1f [%.1f, %.1f]", or "%.1f" for one value, "-"
 * for none. Returns the length as snprintf. */
int lwl_format_cell(char *buf, size_t size, const double *values, int n, double confidence);

#endif
