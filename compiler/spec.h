/* The checked experiment: every setting of LANGUAGE.md with its default
 * filled, typed, and validated. This is what lowering and the emitters read;
 * the syntax tree is not needed after checking. */
#ifndef LWLC_SPEC_H
#define LWLC_SPEC_H

#include "diag.h"

/* Transforms, in the order of their ids (the RNG stream of each is its id). */
typedef enum {
    OP_RESIZED_CROP, OP_HORIZONTAL_FLIP, OP_COLOR_JITTER, OP_GRAYSCALE,
    OP_GAUSSIAN_BLUR, OP_SOLARIZE, OP__COUNT
} lwl_op_kind;

typedef struct lwl_op {
    lwl_op_kind kind;
    double p;
    double scale[2], ratio[2];                      /* resized_crop */
    double brightness, contrast, saturation, hue;   /* color_jitter */
    double sigma[2];                                /* gaussian_blur */
    double threshold;                               /* solarize, 0..255 */
    lwl_loc loc;                                    /* the spec line it comes from */
} lwl_op;

typedef struct lwl_view {
    lwl_op ops[OP__COUNT];  /* in the order written; each kind at most once */
    int nops;
    lwl_loc loc;
} lwl_view;

typedef enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, SPLIT__COUNT } lwl_split_id;

/* A split, or the first `share` percent of each class of it. */
typedef struct lwl_splitref {
    lwl_split_id split;
    double share;           /* percent, 100 when not given */
} lwl_splitref;

typedef enum { BACKBONE_RESNET18, BACKBONE_RESNET50 } lwl_backbone;
typedef enum { STEM_IMAGENET, STEM_SMALL } lwl_stem;
typedef enum { HEAD_LEWEL_B, HEAD_BYOL } lwl_head;
typedef enum { NORM_BATCH, NORM_SYNC } lwl_norm;
typedef enum { TARGET_EMAN, TARGET_EMA } lwl_target;
typedef enum { OPT_LARS, OPT_SGD } lwl_optimizer;
typedef enum { SCHED_COSINE, SCHED_COSINE_STEP } lwl_schedule;
typedef enum { PREC_BF16, PREC_FP16, PREC_FP32 } lwl_precision;
typedef enum { SEM_PIL, SEM_FLOAT } lwl_semantics;
typedef enum { VOTE_MAJORITY, VOTE_WEIGHTED } lwl_vote;

typedef struct lwl_spec {
    char *name;
    const lwl_source *src;          /* the file named, not its bases */

    struct {
        char *root;                 /* resolved path */
        char *classes;              /* resolved path, or NULL for every folder */
        char **class_names;         /* the lines of `classes`, in file order */
        int nclasses;
        int split_folders;
        double share[SPLIT__COUNT]; /* percent */
        int seed;
    } data;

    struct {
        int size;
        lwl_semantics semantics;
        lwl_loc semantics_loc;      /* its value in the spec, for later passes' errors */
        lwl_view view[2];
        double mean[3], std[3];
    } augment;

    struct {
        lwl_backbone backbone;
        lwl_stem stem;
        lwl_head head;
        int heads, hidden, dim;
        double local_weight;
        lwl_norm norm;
        lwl_target target;
    } model;

    struct {
        int epochs, batch, gpus;
        lwl_optimizer optimizer;
        double lr, momentum, weight_decay, eta;
        int warmup;
        lwl_schedule schedule;
        double ema;
        lwl_precision precision;
        int seed;
    } train;

    struct {
        struct {
            int every, k;
            lwl_vote vote;
            double temperature;
            lwl_splitref memory, queries;
        } knn;
        struct {
            int epochs, batch;
            double lr, momentum, weight_decay;
            int *milestones;
            int nmilestones;
            lwl_splitref train, test;
        } linear;
        int top1, top5;
        int repeat;
        double confidence;
        struct {
            int layer;              /* 0..3 for layer1..layer4 */
            char **images;          /* resolved paths */
            int nimages;
        } gradcam;
    } eval;
} lwl_spec;

/* Names of the enum values above, as the language spells them. */
extern const char *const lwl_op_names[OP__COUNT];
extern const char *const lwl_split_names[SPLIT__COUNT + 1];   /* NULL-terminated */

/* Options that change how a spec is read. */
typedef struct lwl_defines {
    const char **defs;      /* "section.key=value" from -D */
    int ndefs;
} lwl_defines;

/* Reads `path` and its `use` chain, applies -D overrides, checks everything
 * and fills *out. Returns the number of errors (diagnostics go to d). */
int spec_load(const char *path, const lwl_defines *defs, lwl_diag *d, lwl_spec *out);
/* The same for text in memory named `name` (relative paths from the working
 * directory): for tests and the fuzz target. */
int spec_load_text(const char *name, const char *text, size_t len, const lwl_defines *defs,
                   lwl_diag *d, lwl_spec *out);
void spec_free(lwl_spec *s);

/* Writes the spec as .lwl text with every default; reading it back gives the
 * same spec, and printing that gives the same bytes. `dir` is the directory
 * the text will be read from (paths are written relative to it). */
void spec_print(const lwl_spec *s, const char *dir, FILE *out);

#endif
