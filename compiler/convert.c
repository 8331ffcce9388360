/* Settings to lwl_spec: defaults, types, bounds, and the checks that span
 * several settings (split shares, batch over gpus, heads over dim, views),
 * with warnings for settings that have no effect. */
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

typedef struct conv {
    lwl_arena *a;
    lwl_diag *d;
    lwl_spec *s;
    int bad_splitref;       /* a kNN or linear split was rejected: its default stands in */
} conv;

static void spec_defaults(lwl_spec *s)
{
    s->data.share[SPLIT_TRAIN] = 70;
    s->data.share[SPLIT_VAL] = 20;
    s->data.share[SPLIT_TEST] = 10;

    s->augment.size = 224;
    s->augment.semantics = SEM_PIL;
    const double mean[3] = { 0.485, 0.456, 0.406 }, std[3] = { 0.229, 0.224, 0.225 };
    memcpy(s->augment.mean, mean, sizeof mean);
    memcpy(s->augment.std, std, sizeof std);

    s->model.backbone = BACKBONE_RESNET50;
    s->model.stem = STEM_IMAGENET;
    s->model.head = HEAD_LEWEL_B;
    s->model.heads = 4;
    s->model.hidden = 4096;
    s->model.dim = 256;
    s->model.local_weight = 0.5;
    s->model.norm = NORM_BATCH;
    s->model.target = TARGET_EMAN;

    s->train.epochs = 100;
    s->train.batch = 128;
    s->train.gpus = 1;
    s->train.optimizer = OPT_LARS;
    s->train.lr = 0.45;
    s->train.momentum = 0.9;
    s->train.weight_decay = 1e-6;
    s->train.eta = 0.001;
    s->train.warmup = 10;
    s->train.schedule = SCHED_COSINE;
    s->train.ema = 0.98;
    s->train.precision = PREC_BF16;

    s->eval.knn.every = 5;
    s->eval.knn.k = 20;
    s->eval.knn.vote = VOTE_MAJORITY;
    s->eval.knn.temperature = 0.07;
    s->eval.knn.memory = (lwl_splitref){ SPLIT_TRAIN, 100 };
    s->eval.knn.queries = (lwl_splitref){ SPLIT_VAL, 100 };
    s->eval.linear.epochs = 50;
    s->eval.linear.batch = 128;
    s->eval.linear.lr = 0.4;
    s->eval.linear.momentum = 0.9;
    s->eval.linear.milestones = xmalloc(2 * sizeof(int));
    s->eval.linear.milestones[0] = 30;
    s->eval.linear.milestones[1] = 40;
    s->eval.linear.nmilestones = 2;
    s->eval.linear.train = (lwl_splitref){ SPLIT_TRAIN, 100 };
    s->eval.linear.test = (lwl_splitref){ SPLIT_TEST, 100 };
    s->eval.top1 = s->eval.top5 = 1;
    s->eval.repeat = 1;
    s->eval.confidence = 0.9;
    s->eval.gradcam.layer = 3;
}

static void op_defaults(lwl_op *op, lwl_op_kind kind)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->p = 1;
    op->scale[0] = 0.2;
    op->scale[1] = 1;
    op->ratio[0] = 3.0 / 4.0;
    op->ratio[1] = 4.0 / 3.0;
    op->brightness = 0.4;
    op->contrast = 0.4;
    op->saturation = 0.2;
    op->hue = 0.1;
    op->sigma[0] = 0.1;
    op->sigma[1] = 2;
    op->threshold = 128;
}

/* ---- values */

static void type_error(conv *c, const setting *s, const lwl_word *w, const char *want)
{
    diag_error(c->d, w->loc, "'%s' expects %s, got %s", s->k->key, want,
               word_describe(c->a, w));
}

static int get_num(conv *c, const setting *s, const lwl_word *w, int want_int, double *out)
{
    if (w->kind != W_NUM || w->is_percent || (want_int && !w->is_int)) {
        type_error(c, s, w, want_int ? "an integer" : "a number");
        return 0;
    }
    *out = w->num;
    return 1;
}

/* Checks a number against the setting's bound; reports and returns 0 when out. */
static int check_num(conv *c, const setting *s, const lwl_word *w, double v)
{
    const char *key = s->k->key;
    switch (s->k->check) {
    case C_PROB:
        if (v >= 0 && v <= 1)
            return 1;
        if (strcmp(key, "p") == 0)
            diag_error(c->d, w->loc, "probability must be within [0, 1], got %s", w->text);
        else
            diag_error(c->d, w->loc, "'%s' must be within [0, 1], got %s", key, w->text);
        return 0;
    case C_POS:
        if (v > 0)
            return 1;
        diag_error(c->d, w->loc, "'%s' must be positive, got %s", key, w->text);
        return 0;
    case C_NONNEG:
        if (v >= 0)
            return 1;
        diag_error(c->d, w->loc, "'%s' must not be negative, got %s", key, w->text);
        return 0;
    case C_OPEN01:
        if (v > 0 && v < 1)
            return 1;
        diag_error(c->d, w->loc, "'%s' must be within (0, 1), got %s", key, w->text);
        return 0;
    case C_UNIT_RIGHT_OPEN:
        if (v >= 0 && v < 1)
            return 1;
        diag_error(c->d, w->loc, "'%s' must be within [0, 1), got %s", key, w->text);
        return 0;
    case C_BYTE:
        if (v >= 0 && v <= 255)
            return 1;
        diag_error(c->d, w->loc, "'%s' must be within 0..255, got %s", key, w->text);
        return 0;
    case C_HUE:
        if (v >= 0 && v <= 0.5)
            return 1;
        diag_error(c->d, w->loc, "'%s' must be within [0, 0.5], got %s", key, w->text);
        return 0;
    default:
        return 1;
    }
}

/* A list of exactly n numbers (n < 0: any length) into out. */
static int get_numlist(conv *c, const setting *s, const lwl_word *w, int n, int ints,
                       double *out, int max)
{
    const char *want = n == 2 ? "a range [low, high]" : n == 3 ? "a list of 3 numbers"
                       : ints ? "a list of integers" : "a list of numbers";
    if (w->kind != W_LIST || (n >= 0 && w->nitems != n) || w->nitems > max) {
        type_error(c, s, w, want);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < w->nitems; i++) {
        ok &= get_num(c, s, w->items[i], ints, &out[i]);
        if (ok && n != 2)
            ok &= check_num(c, s, w->items[i], out[i]);
    }
    return ok;
}

static int check_range(conv *c, const setting *s, const lwl_word *w, const double *r)
{
    if (r[0] > r[1]) {
        diag_error(c->d, w->loc, "'%s' must be a range [low, high] with low <= high, got "
                   "[%s, %s]", s->k->key, w->items[0]->text, w->items[1]->text);
        return 0;
    }
    if (s->k->check == C_RANGE_SCALE && (r[0] <= 0 || r[1] > 1)) {
        diag_error(c->d, w->loc, "'%s' must lie within (0, 1], got [%s, %s]", s->k->key,
                   w->items[0]->text, w->items[1]->text);
        return 0;
    }
    if (s->k->check == C_RANGE_POS && r[0] <= 0) {
        diag_error(c->d, w->loc, "'%s' must be positive, got [%s, %s]", s->k->key,
                   w->items[0]->text, w->items[1]->text);
        return 0;
    }
    return 1;
}

static int get_enum(conv *c, const setting *s, const lwl_word *w, const char *const *names)
{
    int i = w->kind == W_IDENT ? schema_enum_index(names, w->text) : -1;
    if (i >= 0)
        return i;
    char *list = xstrdup("");
    int n = schema_enum_count(names);
    for (int j = 0; j < n; j++) {
        char *m = xasprintf("%s%s%s", list, j == 0 ? "" : j == n - 1 ? " or " : ", ", names[j]);
        free(list);
        list = m;
    }
    if (w->kind == W_IDENT)
        diag_error(c->d, w->loc, "unknown value '%s' for '%s'; expected %s", w->text,
                   s->k->key, list);
    else
        type_error(c, s, w, list);
    free(list);
    const char *sug = w->kind == W_IDENT ? diag_suggest(w->text, (const char **)names,
                                                        (size_t)n) : NULL;
    if (sug)
        diag_hint(c->d, w->loc, "did you mean '%s'?", sug);
    return -1;
}

static char *get_path(conv *c, const setting *s, const lwl_word *w)
{
    if (w->kind != W_STR) {
        type_error(c, s, w, "a file name in quotes");
        return NULL;
    }
    if (!w->text[0]) {
        diag_error(c->d, w->loc, "'%s' must not be empty", s->k->key);
        return NULL;
    }
    return path_join(w->loc.src->dir, w->text);
}

static int get_splitref(conv *c, const setting *s, lwl_splitref *out)
{
    const lwl_word *w = s->vals[0];
    int id = w->kind == W_IDENT ? schema_enum_index(lwl_split_names, w->text) : -1;
    if (id < 0) {
        get_enum(c, s, w, lwl_split_names);
        return 0;
    }
    out->split = (lwl_split_id)id;
    out->share = 100;
    if (s->nvals > 1) {
        double v = s->vals[1]->num;
        if (v <= 0 || v > 100) {
            diag_error(c->d, s->vals[1]->loc, "a share must be within (0%%, 100%%], got %s",
                       s->vals[1]->text);
            return 0;
        }
        out->share = v;
    }
    return 1;
}

/* split folders | split (name share)+ */
static void get_split(conv *c, const setting *s)
{
    lwl_spec *sp = c->s;
    if (s->nvals == 1 && s->vals[0]->kind == W_IDENT && strcmp(s->vals[0]->text, "folders") == 0) {
        sp->data.split_folders = 1;
        sp->data.share[SPLIT_TRAIN] = sp->data.share[SPLIT_VAL] = 100;
        sp->data.share[SPLIT_TEST] = 0;
        return;
    }
    double share[SPLIT__COUNT] = { 0 };
    int seen[SPLIT__COUNT] = { 0 }, ok = 1;
    for (int i = 0; i < s->nvals; i += 2) {
        const lwl_word *w = s->vals[i], *p = i + 1 < s->nvals ? s->vals[i + 1] : NULL;
        int id = w->kind == W_IDENT ? schema_enum_index(lwl_split_names, w->text) : -1;
        if (id < 0) {
            diag_error(c->d, w->loc, "expected a split name (train, val or test) or 'folders', "
                       "got %s", word_describe(c->a, w));
            return;
        }
        if (seen[id]) {
            diag_error(c->d, w->loc, "split '%s' is given twice", w->text);
            ok = 0;
        }
        seen[id] = 1;
        if (!p || p->kind != W_NUM || !p->is_percent) {
            diag_error(c->d, p ? p->loc : w->loc, "split '%s' needs a share such as 70%%",
                       w->text);
            return;
        }
        if (p->num < 0 || p->num > 100) {
            diag_error(c->d, p->loc, "a share must be within [0%%, 100%%], got %s", p->text);
            ok = 0;
        }
        share[id] = p->num;
    }
    double sum = share[0] + share[1] + share[2];
    if (ok && fabs(sum - 100) > 1e-9) {
        diag_error(c->d, s->loc, "split shares must sum to 100%%, got %g%%", sum);
        ok = 0;
    }
    if (ok)
        memcpy(sp->data.share, share, sizeof share);
}

static void get_idents(conv *c, const setting *s)
{
    int top1 = 0, top5 = 0, ok = 1;
    for (int i = 0; i < s->nvals; i++) {
        int m = get_enum(c, s, s->vals[i], s->k->enums);
        top1 |= m == 0;
        top5 |= m == 1;
        ok &= m >= 0;
    }
    if (!ok)
        return;     /* reported; the default stands in, so nothing else cascades */
    c->s->eval.top1 = top1;
    c->s->eval.top5 = top5;
}

static int any_bad(const setting *s)
{
    for (int i = 0; i < s->nvals; i++) {
        if (s->vals[i]->bad)
            return 1;
        for (int j = 0; j < s->vals[i]->nitems; j++)
            if (s->vals[i]->items[j]->bad)
                return 1;
    }
    return 0;
}

/* Stores one K_VALUE setting at base + its offset. */
static void convert_value(conv *c, const setting *s, char *base)
{
    if (any_bad(s))
        return;
    const lwl_kschema *k = s->k;
    const lwl_word *w = s->vals[0];
    void *dst = base + k->off;
    double v, r[64];
    int e;
    switch (k->type) {
    case T_INT:
        if (get_num(c, s, w, 1, &v) && check_num(c, s, w, v))
            *(int *)dst = (int)v;
        break;
    case T_NUM:
        if (get_num(c, s, w, 0, &v) && check_num(c, s, w, v))
            *(double *)dst = v;
        break;
    case T_STR:
        if (w->kind != W_STR)
            type_error(c, s, w, "a string in quotes");
        else {
            free(*(char **)dst);
            *(char **)dst = xstrdup(w->text);
        }
        break;
    case T_PATH: {
        char *p = get_path(c, s, w);
        if (p) {
            free(*(char **)dst);
            *(char **)dst = p;
        }
        break;
    }
    case T_ENUM:
        if ((e = get_enum(c, s, w, k->enums)) >= 0)
            *(int *)dst = e;
        break;
    case T_RANGE:
        if (get_numlist(c, s, w, 2, 0, r, 2) && check_range(c, s, w, r))
            memcpy(dst, r, 2 * sizeof(double));
        break;
    case T_VEC3:
        if (get_numlist(c, s, w, 3, 0, r, 3))
            memcpy(dst, r, 3 * sizeof(double));
        break;
    case T_INTLIST:
        if (get_numlist(c, s, w, -1, 1, r, 64)) {
            lwl_spec *sp = c->s;
            free(sp->eval.linear.milestones);
            sp->eval.linear.nmilestones = w->nitems;
            sp->eval.linear.milestones = xmalloc((size_t)w->nitems * sizeof(int));
            for (int i = 0; i < w->nitems; i++)
                sp->eval.linear.milestones[i] = (int)r[i];
        }
        break;
    case T_PATHLIST: {
        if (w->kind != W_LIST) {
            type_error(c, s, w, "a list of file names");
            break;
        }
        lwl_spec *sp = c->s;
        for (int i = 0; i < w->nitems; i++) {
            char *p = get_path(c, s, w->items[i]);
            if (!p)
                continue;
            sp->eval.gradcam.images = xrealloc(sp->eval.gradcam.images,
                                               (size_t)(sp->eval.gradcam.nimages + 1) *
                                               sizeof(char *));
            sp->eval.gradcam.images[sp->eval.gradcam.nimages++] = p;
        }
        break;
    }
    case T_SPLITREF:
        if (!get_splitref(c, s, dst))
            c->bad_splitref = 1;
        break;
    case T_SPLIT:
        get_split(c, s);
        break;
    case T_IDENTS:
        get_idents(c, s);
        break;
    }
}

static void convert_block(conv *c, const bset *b, char *base);

/* A view's transforms, in the order written. */
static void convert_view(conv *c, const setting *vs)
{
    lwl_view *v = &c->s->augment.view[vs->index - 1];
    v->loc = vs->key_loc;
    v->nops = 0;
    for (int i = 0; i < vs->sub->n; i++) {
        const setting *t = vs->sub->v[i];
        lwl_op *op = &v->ops[v->nops++];
        op_defaults(op, (lwl_op_kind)(t->k - schema_view.keys));
        op->loc = t->loc;
        convert_block(c, t->sub, (char *)op);
    }
}

static void convert_block(conv *c, const bset *b, char *base)
{
    for (int i = 0; i < b->n; i++) {
        const setting *s = b->v[i];
        if (s->k->kind == K_VALUE) {
            if (strcmp(s->k->key, "use") != 0)
                convert_value(c, s, base);
        } else if (s->k->sub == &schema_view) {
            convert_view(c, s);
        } else {
            convert_block(c, s->sub, base);
        }
    }
}

/* ---- checks across settings */

static const setting *find_path(const bset *top, const char *block, const char *sub,
                                const char *key)
{
    const setting *s = bset_find(top, block, 0);
    if (s && sub)
        s = bset_find(s->sub, sub, 0);
    return s ? bset_find(s->sub, key, 0) : NULL;
}

static void no_effect(conv *c, const setting *s, const char *why)
{
    if (s)
        diag_warning(c->d, s->key_loc, "'%s' has no effect: %s", s->k->key, why);
}

static void read_classes(conv *c, const bset *top)
{
    lwl_spec *s = c->s;
    if (!s->data.classes)
        return;
    const setting *at = find_path(top, "data", NULL, "classes");
    lwl_source *src = source_load(s->data.classes);
    if (!src) {
        diag_error(c->d, at->vals[0]->loc, "cannot read class list '%s': %s", s->data.classes,
                   strerror(errno));
        return;
    }
    for (char *line = src->text; *line; ) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        if (n && line[0] != '#') {
            char *name = xstrndup(line, n);
            for (int i = 0; i < s->data.nclasses; i++)
                if (strcmp(s->data.class_names[i], name) == 0) {
                    diag_error(c->d, at->vals[0]->loc, "class '%s' is listed twice in '%s'",
                               name, s->data.classes);
                    break;
                }
            s->data.class_names = xrealloc(s->data.class_names,
                                           (size_t)(s->data.nclasses + 1) * sizeof(char *));
            s->data.class_names[s->data.nclasses++] = name;
        }
        line = end ? end + 1 : line + strlen(line);
    }
    if (s->data.nclasses == 0)
        diag_error(c->d, at->vals[0]->loc, "class list '%s' is empty", s->data.classes);
}

static void check_splitref(conv *c, const bset *top, const char *block, const char *key,
                           const lwl_splitref *r)
{
    if (c->s->data.share[r->split] > 0)
        return;
    const setting *s = find_path(top, "eval", block, key);
    const setting *split = find_path(top, "data", NULL, "split");
    lwl_loc at = s ? s->vals[0]->loc : split ? split->loc : top->loc;
    if (c->s->data.split_folders)
        diag_error(c->d, at, "'eval.%s.%s' uses split '%s', which 'split folders' does not have",
                   block, key, lwl_split_names[r->split]);
    else
        diag_error(c->d, at, "'eval.%s.%s' uses split '%s', which is empty (0%%)", block, key,
                   lwl_split_names[r->split]);
}

static void check_views(conv *c, const bset *top)
{
    const setting *aug = bset_find(top, "augment", 0);
    for (int v = 1; v <= 2; v++) {
        if (aug && bset_find(aug->sub, "view", v))
            continue;
        lwl_loc at = aug ? aug->key_loc : (lwl_loc){ top->loc.src, 0, 0, 0, 0 };
        diag_error(c->d, at, "'augment' needs 'view %d { ... }': there are exactly two views",
                   v);
    }
    for (int v = 0; aug && v < 2; v++) {
        const setting *vs = bset_find(aug->sub, "view", v + 1);
        for (int i = 0; vs && i < vs->sub->n; i++) {
            const setting *t = vs->sub->v[i];
            const setting *p = bset_find(t->sub, "p", 0);
            if (!p || c->s->augment.view[v].ops[i].p != 0)
                continue;
            for (int j = 0; j < t->sub->n; j++)
                if (t->sub->v[j] != p)
                    no_effect(c, t->sub->v[j], "the transform has p 0");
        }
    }
}

static void check_model_train(conv *c, const bset *top)
{
    lwl_spec *s = c->s;
    if (s->train.batch % s->train.gpus != 0) {
        const setting *b = find_path(top, "train", NULL, "batch");
        lwl_loc at = b ? b->vals[0]->loc : find_path(top, "train", NULL, "gpus")->vals[0]->loc;
        diag_error(c->d, at, "batch %d does not divide evenly over %d gpus", s->train.batch,
                   s->train.gpus);
    }
    int channels = s->model.backbone == BACKBONE_RESNET50 ? 2048 : 512;
    if (s->model.head == HEAD_LEWEL_B &&
        (s->model.dim % s->model.heads != 0 || channels % s->model.heads != 0)) {
        const setting *h = find_path(top, "model", NULL, "heads");
        lwl_loc at = h ? h->vals[0]->loc : top->loc;
        diag_error(c->d, at, "'heads' %d must divide 'dim' %d and the backbone's %d channels",
                   s->model.heads, s->model.dim, channels);
    }
    int min = s->model.stem == STEM_IMAGENET ? 32 : 8;
    if (s->augment.size < min) {
        const setting *z = find_path(top, "augment", NULL, "size");
        lwl_loc at = z ? z->vals[0]->loc : top->loc;
        diag_error(c->d, at, "'size' must be at least %d with stem %s, got %d", min,
                   s->model.stem == STEM_IMAGENET ? "imagenet" : "small", s->augment.size);
    }

    if (s->model.head == HEAD_BYOL) {
        no_effect(c, find_path(top, "model", NULL, "heads"), "head byol has no local branch");
        no_effect(c, find_path(top, "model", NULL, "local_weight"),
                  "head byol has no local branch");
    }
    if (s->model.norm == NORM_SYNC && s->train.gpus == 1)
        no_effect(c, find_path(top, "model", NULL, "norm"), "with 1 gpu, sync is batch");
    if (s->train.optimizer == OPT_SGD)
        no_effect(c, find_path(top, "train", NULL, "eta"), "only LARS uses eta");
    if (s->train.warmup >= s->train.epochs)
        no_effect(c, find_path(top, "train", NULL, "schedule"),
                  "the warm-up lasts the whole training");
    if (s->data.split_folders)
        no_effect(c, find_path(top, "data", NULL, "seed"), "'split folders' draws nothing");
}

static void check_eval(conv *c, const bset *top)
{
    lwl_spec *s = c->s;
    check_splitref(c, top, "knn", "memory", &s->eval.knn.memory);
    check_splitref(c, top, "knn", "queries", &s->eval.knn.queries);
    check_splitref(c, top, "linear", "train", &s->eval.linear.train);
    check_splitref(c, top, "linear", "test", &s->eval.linear.test);

    const lwl_splitref *m = &s->eval.knn.memory, *q = &s->eval.knn.queries;
    if (m->split == q->split && !c->bad_splitref) {
        const setting *at = find_path(top, "eval", "knn", "memory");
        if (!at)
            at = find_path(top, "eval", "knn", "queries");
        double both = m->share < q->share ? m->share : q->share;
        if (at)
            diag_warning(c->d, at->loc, "kNN memory (first %g%% of %s) overlaps the queries "
                         "(first %g%% of %s): %g%% of each class is its own neighbour",
                         m->share, lwl_split_names[m->split], q->share,
                         lwl_split_names[q->split], both);
    }
    if (s->eval.knn.vote == VOTE_MAJORITY)
        no_effect(c, find_path(top, "eval", "knn", "temperature"),
                  "only 'vote weighted' uses it");
    if (s->eval.knn.every > s->train.epochs)
        no_effect(c, find_path(top, "eval", "knn", "every"),
                  "it is longer than pre-training; kNN runs only at the end");

    const setting *ms = find_path(top, "eval", "linear", "milestones");
    for (int i = 0; i < s->eval.linear.nmilestones; i++) {
        int v = s->eval.linear.milestones[i];
        int written = ms && ms->vals[0]->kind == W_LIST && i < ms->vals[0]->nitems;
        lwl_loc at = written ? ms->vals[0]->items[i]->loc : top->loc;
        if (i > 0 && v <= s->eval.linear.milestones[i - 1])
            diag_error(c->d, at, "'milestones' must increase, got %d after %d", v,
                       s->eval.linear.milestones[i - 1]);
        else if (v >= s->eval.linear.epochs && written)
            diag_warning(c->d, at, "milestone %d has no effect: the linear classifier trains "
                         "for %d epochs", v, s->eval.linear.epochs);
    }
    if (s->eval.repeat == 1)
        no_effect(c, find_path(top, "eval", NULL, "confidence"),
                  "an interval needs 'repeat' 2 or more");

    const setting *im = find_path(top, "eval", "gradcam", "images");
    for (int i = 0; im && i < s->eval.gradcam.nimages && i < im->vals[0]->nitems; i++) {
        FILE *f = source_open_regular(s->eval.gradcam.images[i], (size_t)1 << 40);
        if (!f)
            diag_error(c->d, im->vals[0]->items[i]->loc, "cannot read image '%s': %s",
                       s->eval.gradcam.images[i], strerror(errno));
        else
            fclose(f);
    }
    if (s->eval.gradcam.nimages == 0)
        no_effect(c, find_path(top, "eval", "gradcam", "layer"), "no gradcam images are given");
}

void convert_spec(lwl_arena *a, lwl_diag *d, const bset *top, const char *path, int incomplete,
                  lwl_spec *out)
{
    conv c = { a, d, out, 0 };
    spec_defaults(out);
    for (int v = 0; v < 2; v++)
        out->augment.view[v].loc.src = NULL;
    convert_block(&c, top, (char *)out);

    if (!out->name)
        out->name = path_stem(path);
    for (const char *p = out->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.')) {
            const setting *n = bset_find(top, "name", 0);
            lwl_loc at = n ? n->vals[0]->loc : (lwl_loc){ top->loc.src, 0, 0, 0, 0 };
            diag_error(d, at, "the experiment name '%s' may hold only letters, digits, '_', "
                       "'-' and '.'", out->name);
            break;
        }
    if (!out->name[0]) {
        const setting *n = bset_find(top, "name", 0);
        diag_error(d, n ? n->loc : (lwl_loc){ top->loc.src, 0, 0, 0, 0 },
                   "the experiment name is empty");
    }

    if (!out->data.root && !incomplete && !find_path(top, "data", NULL, "root")) {
        const setting *db = bset_find(top, "data", 0);
        lwl_loc at = db ? db->key_loc : (lwl_loc){ top->loc.src, 0, 0, 0, 0 };
        diag_error(d, at, "'data' needs 'root \"dir\"': the ImageFolder tree to train on");
    }
    const setting *sem = find_path(top, "augment", NULL, "semantics");
    if (sem)
        out->augment.semantics_loc = sem->vals[0]->loc;
    read_classes(&c, top);
    if (!incomplete)
        check_views(&c, top);
    check_model_train(&c, top);
    check_eval(&c, top);
}

void spec_free(lwl_spec *s)
{
    free(s->name);
    free(s->data.root);
    free(s->data.classes);
    for (int i = 0; i < s->data.nclasses; i++)
        free(s->data.class_names[i]);
    free(s->data.class_names);
    free(s->eval.linear.milestones);
    for (int i = 0; i < s->eval.gradcam.nimages; i++)
        free(s->eval.gradcam.images[i]);
    free(s->eval.gradcam.images);
    memset(s, 0, sizeof *s);
}
