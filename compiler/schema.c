/* The tables of the language: blocks, settings, value types, bounds and
 * where each value lands in lwl_spec. Defaults live in check.c. */
#include "schema.h"

#include <string.h>

#include "spec.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define V(key, type, check, field) { key, K_VALUE, type, check, NULL, NULL, field }
#define E(key, names, field) { key, K_VALUE, T_ENUM, C_ANY, names, NULL, field }

static const char *const semantics_names[] = { "pil", "float", NULL };
static const char *const backbone_names[] = { "resnet18", "resnet50", NULL };
static const char *const stem_names[] = { "imagenet", "small", NULL };
static const char *const head_names[] = { "lewel_b", "byol", NULL };
static const char *const norm_names[] = { "batch", "sync", NULL };
static const char *const target_names[] = { "eman", "ema", NULL };
static const char *const optimizer_names[] = { "lars", "sgd", NULL };
static const char *const schedule_names[] = { "cosine", "cosine_step", NULL };
static const char *const precision_names[] = { "bf16", "fp16", "fp32", NULL };
static const char *const vote_names[] = { "majority", "weighted", NULL };
static const char *const metric_names[] = { "top1", "top5", NULL };
static const char *const layer_names[] = { "layer1", "layer2", "layer3", "layer4", NULL };

const char *const lwl_op_names[OP__COUNT] = {
    "resized_crop", "horizontal_flip", "color_jitter", "grayscale", "gaussian_blur", "solarize",
};
const char *const lwl_split_names[SPLIT__COUNT + 1] = { "train", "val", "test", NULL };

/* ---- augment: transforms and their parameters (fields of lwl_op) */
#define OP(f) offsetof(lwl_op, f)
static const lwl_kschema k_crop[] = {
    V("p", T_NUM, C_PROB, OP(p)),
    V("scale", T_RANGE, C_RANGE_SCALE, OP(scale)),
    V("ratio", T_RANGE, C_RANGE_POS, OP(ratio)),
};
static const lwl_kschema k_ponly[] = { V("p", T_NUM, C_PROB, OP(p)) };
static const lwl_kschema k_jitter[] = {
    V("p", T_NUM, C_PROB, OP(p)),
    V("brightness", T_NUM, C_NONNEG, OP(brightness)),
    V("contrast", T_NUM, C_NONNEG, OP(contrast)),
    V("saturation", T_NUM, C_NONNEG, OP(saturation)),
    V("hue", T_NUM, C_HUE, OP(hue)),
};
static const lwl_kschema k_blur[] = {
    V("p", T_NUM, C_PROB, OP(p)),
    V("sigma", T_RANGE, C_RANGE_POS, OP(sigma)),
};
static const lwl_kschema k_solarize[] = {
    V("p", T_NUM, C_PROB, OP(p)),
    V("threshold", T_NUM, C_BYTE, OP(threshold)),
};
static const lwl_bschema s_crop = { "resized_crop", k_crop, N(k_crop), 0, 0 };
static const lwl_bschema s_flip = { "horizontal_flip", k_ponly, N(k_ponly), 0, 0 };
static const lwl_bschema s_jitter = { "color_jitter", k_jitter, N(k_jitter), 0, 0 };
static const lwl_bschema s_gray = { "grayscale", k_ponly, N(k_ponly), 0, 0 };
static const lwl_bschema s_blur = { "gaussian_blur", k_blur, N(k_blur), 0, 0 };
static const lwl_bschema s_solarize = { "solarize", k_solarize, N(k_solarize), 0, 0 };

/* In lwl_op_kind order: the index of a transform's key is its kind. */
static const lwl_kschema k_view[] = {
    { "resized_crop", K_PARAMS, T_INT, C_ANY, NULL, &s_crop, 0 },
    { "horizontal_flip", K_PARAMS, T_INT, C_ANY, NULL, &s_flip, 0 },
    { "color_jitter", K_PARAMS, T_INT, C_ANY, NULL, &s_jitter, 0 },
    { "grayscale", K_PARAMS, T_INT, C_ANY, NULL, &s_gray, 0 },
    { "gaussian_blur", K_PARAMS, T_INT, C_ANY, NULL, &s_blur, 0 },
    { "solarize", K_PARAMS, T_INT, C_ANY, NULL, &s_solarize, 0 },
};
const lwl_bschema schema_view = { "view", k_view, N(k_view), 1, 1 };

#define AUG(f) offsetof(lwl_spec, augment.f)
static const lwl_kschema k_normalize[] = {
    V("mean", T_VEC3, C_ANY, AUG(mean)),
    V("std", T_VEC3, C_POS, AUG(std)),
};
static const lwl_bschema s_normalize = { "normalize", k_normalize, N(k_normalize), 0, 0 };

static const lwl_kschema k_augment[] = {
    V("size", T_INT, C_POS, AUG(size)),
    E("semantics", semantics_names, AUG(semantics)),
    { "view", K_BLOCK, T_INT, C_ANY, NULL, &schema_view, 0 },
    { "normalize", K_PARAMS, T_INT, C_ANY, NULL, &s_normalize, 0 },
};

/* ---- data, model, train (offsets into lwl_spec) */
#define DATA(f) offsetof(lwl_spec, data.f)
static const lwl_kschema k_data[] = {
    V("root", T_PATH, C_ANY, DATA(root)),
    V("classes", T_PATH, C_ANY, DATA(classes)),
    V("split", T_SPLIT, C_ANY, 0),
    V("seed", T_INT, C_NONNEG, DATA(seed)),
};

#define MODEL(f) offsetof(lwl_spec, model.f)
static const lwl_kschema k_model[] = {
    E("backbone", backbone_names, MODEL(backbone)),
    E("stem", stem_names, MODEL(stem)),
    E("head", head_names, MODEL(head)),
    V("heads", T_INT, C_POS, MODEL(heads)),
    V("hidden", T_INT, C_POS, MODEL(hidden)),
    V("dim", T_INT, C_POS, MODEL(dim)),
    V("local_weight", T_NUM, C_PROB, MODEL(local_weight)),
    E("norm", norm_names, MODEL(norm)),
    E("target", target_names, MODEL(target)),
};

#define TRAIN(f) offsetof(lwl_spec, train.f)
static const lwl_kschema k_train[] = {
    V("epochs", T_INT, C_POS, TRAIN(epochs)),
    V("batch", T_INT, C_POS, TRAIN(batch)),
    V("gpus", T_INT, C_POS, TRAIN(gpus)),
    E("optimizer", optimizer_names, TRAIN(optimizer)),
    V("lr", T_NUM, C_NONNEG, TRAIN(lr)),
    V("momentum", T_NUM, C_UNIT_RIGHT_OPEN, TRAIN(momentum)),
    V("weight_decay", T_NUM, C_NONNEG, TRAIN(weight_decay)),
    V("eta", T_NUM, C_NONNEG, TRAIN(eta)),
    V("warmup", T_INT, C_NONNEG, TRAIN(warmup)),
    E("schedule", schedule_names, TRAIN(schedule)),
    V("ema", T_NUM, C_PROB, TRAIN(ema)),
    E("precision", precision_names, TRAIN(precision)),
    V("seed", T_INT, C_NONNEG, TRAIN(seed)),
};

/* ---- eval */
#define KNN(f) offsetof(lwl_spec, eval.knn.f)
static const lwl_kschema k_knn[] = {
    V("every", T_INT, C_NONNEG, KNN(every)),
    V("k", T_INT, C_POS, KNN(k)),
    E("vote", vote_names, KNN(vote)),
    V("temperature", T_NUM, C_POS, KNN(temperature)),
    V("memory", T_SPLITREF, C_ANY, KNN(memory)),
    V("queries", T_SPLITREF, C_ANY, KNN(queries)),
};
#define LIN(f) offsetof(lwl_spec, eval.linear.f)
static const lwl_kschema k_linear[] = {
    V("epochs", T_INT, C_POS, LIN(epochs)),
    V("batch", T_INT, C_POS, LIN(batch)),
    V("lr", T_NUM, C_NONNEG, LIN(lr)),
    V("momentum", T_NUM, C_UNIT_RIGHT_OPEN, LIN(momentum)),
    V("weight_decay", T_NUM, C_NONNEG, LIN(weight_decay)),
    V("milestones", T_INTLIST, C_POS, LIN(milestones)),
    V("train", T_SPLITREF, C_ANY, LIN(train)),
    V("test", T_SPLITREF, C_ANY, LIN(test)),
};
#define CAM(f) offsetof(lwl_spec, eval.gradcam.f)
static const lwl_kschema k_gradcam[] = {
    E("layer", layer_names, CAM(layer)),
    V("images", T_PATHLIST, C_ANY, CAM(images)),
};
static const lwl_bschema s_knn = { "knn", k_knn, N(k_knn), 0, 0 };
static const lwl_bschema s_linear = { "linear", k_linear, N(k_linear), 0, 0 };
static const lwl_bschema s_gradcam = { "gradcam", k_gradcam, N(k_gradcam), 0, 0 };

static const lwl_kschema k_eval[] = {
    { "knn", K_BLOCK, T_INT, C_ANY, NULL, &s_knn, 0 },
    { "linear", K_BLOCK, T_INT, C_ANY, NULL, &s_linear, 0 },
    { "metrics", K_VALUE, T_IDENTS, C_ANY, metric_names, NULL, 0 },
    V("repeat", T_INT, C_POS, offsetof(lwl_spec, eval.repeat)),
    V("confidence", T_NUM, C_OPEN01, offsetof(lwl_spec, eval.confidence)),
    { "gradcam", K_BLOCK, T_INT, C_ANY, NULL, &s_gradcam, 0 },
};

static const lwl_bschema s_data = { "data", k_data, N(k_data), 0, 0 };
static const lwl_bschema s_augment = { "augment", k_augment, N(k_augment), 0, 0 };
static const lwl_bschema s_model = { "model", k_model, N(k_model), 0, 0 };
static const lwl_bschema s_train = { "train", k_train, N(k_train), 0, 0 };
static const lwl_bschema s_eval = { "eval", k_eval, N(k_eval), 0, 0 };

static const lwl_kschema k_top[] = {
    V("use", T_PATH, C_ANY, 0),
    V("name", T_STR, C_ANY, offsetof(lwl_spec, name)),
    { "data", K_BLOCK, T_INT, C_ANY, NULL, &s_data, 0 },
    { "augment", K_BLOCK, T_INT, C_ANY, NULL, &s_augment, 0 },
    { "model", K_BLOCK, T_INT, C_ANY, NULL, &s_model, 0 },
    { "train", K_BLOCK, T_INT, C_ANY, NULL, &s_train, 0 },
    { "eval", K_BLOCK, T_INT, C_ANY, NULL, &s_eval, 0 },
};
const lwl_bschema schema_top = { "top level", k_top, N(k_top), 0, 0 };

const lwl_kschema *schema_find(const lwl_bschema *b, const char *key)
{
    for (int i = 0; i < b->nkeys; i++)
        if (strcmp(b->keys[i].key, key) == 0)
            return &b->keys[i];
    return NULL;
}

int schema_keys(const lwl_bschema *b, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < b->nkeys && n < max; i++)
        out[n++] = b->keys[i].key;
    return n;
}

int schema_enum_index(const char *const *enums, const char *name)
{
    for (int i = 0; enums[i]; i++)
        if (strcmp(enums[i], name) == 0)
            return i;
    return -1;
}

int schema_enum_count(const char *const *enums)
{
    int n = 0;
    while (enums[n])
        n++;
    return n;
}
