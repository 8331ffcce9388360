/* From syntax to a checked spec: split statements into settings by the
 * schema, follow the `use` chain and merge, apply -D overrides, convert with
 * defaults and bounds, then check what spans several settings. Every error
 * of every file is reported; nothing here exits. */
#include "check.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "path.h"

#define MAX_USE_DEPTH 64

typedef struct ctx {
    lwl_arena *arena;
    lwl_diag *d;
    int incomplete;         /* a file could not be read or parsed whole */
} ctx;

/* ---- settings */

static void bset_add(ctx *c, bset *b, setting *s)
{
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 8;
        setting **v = arena_alloc(c->arena, (size_t)cap * sizeof *v);
        if (b->n)
            memcpy(v, b->v, (size_t)b->n * sizeof *v);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = s;
}

static bset *bset_new(ctx *c, const lwl_bschema *schema, lwl_loc loc)
{
    bset *b = arena_alloc(c->arena, sizeof *b);
    b->schema = schema;
    b->loc = loc;
    return b;
}

setting *bset_find(const bset *b, const char *key, int index)
{
    for (int i = 0; b && i < b->n; i++)
        if (strcmp(b->v[i]->k->key, key) == 0 && b->v[i]->index == index)
            return b->v[i];
    return NULL;
}

static void suggest(ctx *c, lwl_loc at, const char *word, const lwl_bschema *b)
{
    const char *keys[64];
    int n = schema_keys(b, keys, 64);
    const char *s = diag_suggest(word, keys, (size_t)n);
    if (s)
        diag_hint(c->d, at, "did you mean '%s'?", s);
}

/* Adds s to b unless b already has that setting, which is an error. */
static void add_unique(ctx *c, bset *b, setting *s)
{
    setting *old = bset_find(b, s->k->key, s->index);
    if (old) {
        if (s->index)
            diag_error(c->d, s->key_loc, "'%s %d' is given twice in '%s'", s->k->key, s->index,
                       b->schema->name);
        else
            diag_error(c->d, s->key_loc, "'%s' is given twice in '%s'", s->k->key,
                       b->schema->name);
        diag_hint(c->d, old->key_loc, "first given here");
        return;
    }
    bset_add(c, b, s);
}

static int is_key(const lwl_bschema *b, const lwl_word *w)
{
    return w->kind == W_IDENT && schema_find(b, w->text) != NULL;
}

/* Splits one statement's words into settings of block schema b:
 * key value... key value..., the number of values given by each key's type. */
static void split_words(ctx *c, const lwl_bschema *b, lwl_word **w, int n, bset *out)
{
    int i = 0;
    while (i < n) {
        const lwl_kschema *k = w[i]->kind == W_IDENT ? schema_find(b, w[i]->text) : NULL;
        if (!k || k->kind == K_BLOCK) {
            if (w[i]->bad)
                ;
            else if (k)
                diag_error(c->d, w[i]->loc, "'%s' is a block: write %s { ... }", k->key, k->key);
            else if (w[i]->kind != W_IDENT)
                diag_error(c->d, w[i]->loc, "expected a setting of '%s', got %s", b->name,
                           word_describe(c->arena, w[i]));
            else if (b == &schema_view)
                diag_error(c->d, w[i]->loc, "unknown transform '%s'", w[i]->text);
            else if (b == &schema_top)
                diag_error(c->d, w[i]->loc, "unknown block or setting '%s'", w[i]->text);
            else
                diag_error(c->d, w[i]->loc, "unknown setting '%s' in '%s'", w[i]->text, b->name);
            if (w[i]->kind == W_IDENT && !k && !w[i]->bad)
                suggest(c, w[i]->loc, w[i]->text, b);
            for (i++; i < n && !is_key(b, w[i]); i++)
                ;
            continue;
        }

        setting *s = arena_alloc(c->arena, sizeof *s);
        s->k = k;
        s->key_loc = s->loc = w[i]->loc;
        int j = i + 1;
        if (k->kind == K_PARAMS) {
            s->sub = bset_new(c, k->sub, w[i]->loc);
            split_words(c, k->sub, w + j, n - j, s->sub);
            j = n;
        } else if (k->type == T_SPLIT || k->type == T_IDENTS) {
            while (j < n && !is_key(b, w[j]))
                j++;
        } else if (k->type == T_SPLITREF) {
            j += j < n;
            j += j < n && w[j]->kind == W_NUM && w[j]->is_percent;
        } else {
            j += j < n;
        }
        s->vals = w + i + 1;
        s->nvals = j - i - 1;
        if (j > i + 1)
            s->loc = loc_join(s->loc, w[j - 1]->loc);
        if (s->nvals == 0 && k->kind == K_VALUE)
            diag_error(c->d, s->key_loc, "'%s' needs a value", k->key);
        else
            add_unique(c, out, s);
        i = j;
    }
}

/* Turns a parsed block into settings of schema b. */
static bset *normalize(ctx *c, const lwl_bschema *b, const lwl_block *blk, lwl_loc loc)
{
    bset *out = bset_new(c, b, loc);
    for (int i = 0; i < blk->nstmts; i++) {
        const lwl_stmt *st = blk->stmts[i];
        if (!st->block) {
            split_words(c, b, st->words, st->nwords, out);
            continue;
        }
        const lwl_word *w0 = st->words[0];
        const lwl_kschema *k = w0->kind == W_IDENT ? schema_find(b, w0->text) : NULL;
        if (!k || k->kind != K_BLOCK) {
            if (w0->bad)
                ;
            else if (k)
                diag_error(c->d, w0->loc, "'%s' is a setting, not a block", k->key);
            else if (w0->kind == W_IDENT) {
                diag_error(c->d, w0->loc, "unknown block '%s' in '%s'", w0->text, b->name);
                suggest(c, w0->loc, w0->text, b);
            } else {
                diag_error(c->d, w0->loc, "expected a block name, got %s",
                           word_describe(c->arena, w0));
            }
            continue;
        }
        int index = 0;
        if (k->sub->indexed) {
            const lwl_word *w1 = st->nwords > 1 ? st->words[1] : NULL;
            if (!w1 || w1->kind != W_NUM || !w1->is_int || st->nwords > 2) {
                diag_error(c->d, st->loc, "write '%s 1 { ... }' or '%s 2 { ... }'", k->key,
                           k->key);
                continue;
            }
            index = (int)w1->num;
            if (index != 1 && index != 2) {
                diag_error(c->d, w1->loc, "there are exactly two views, 'view 1' and 'view 2'; "
                           "got 'view %s'", w1->text);
                continue;
            }
        } else if (st->nwords > 1) {
            diag_error(c->d, st->words[1]->loc, "unexpected %s between '%s' and '{'",
                       word_describe(c->arena, st->words[1]), k->key);
        }
        setting *s = arena_alloc(c->arena, sizeof *s);
        s->k = k;
        s->index = index;
        s->key_loc = w0->loc;
        s->loc = st->loc;
        s->sub = normalize(c, k->sub, st->block, st->block->open);
        add_unique(c, out, s);
    }
    return out;
}

/* ---- merging a derived spec over its base */

/* Settings of `over` replace those of `base`; blocks merge setting by setting,
 * except those marked replace_whole (a view), which are replaced. */
static void merge(ctx *c, bset *base, const bset *over)
{
    for (int i = 0; i < over->n; i++) {
        setting *s = over->v[i];
        setting *old = bset_find(base, s->k->key, s->index);
        if (!old) {
            bset_add(c, base, s);
            continue;
        }
        if (s->k->kind == K_BLOCK && !s->k->sub->replace_whole) {
            merge(c, old->sub, s->sub);
            continue;
        }
        for (int j = 0; j < base->n; j++)
            if (base->v[j] == old)
                base->v[j] = s;
    }
}

static void remove_key(bset *b, const char *key)
{
    int k = 0;
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->v[i]->k->key, key) != 0)
            b->v[k++] = b->v[i];
    b->n = k;
}

/* ---- loading a file and its `use` chain */

typedef struct chain {
    const char *path;       /* canonical */
    const char *shown;
    const struct chain *next;
} chain;

static bset *load_file(ctx *c, const char *path, lwl_source *preloaded, lwl_loc from,
                       const chain *seen, int depth);

/* Reads the `use` of top (which must be first) and merges top over its base. */
static bset *resolve_use(ctx *c, bset *top, const lwl_block *blk, const chain *self, int depth)
{
    setting *use = NULL;
    for (int i = 0; i < top->n; i++) {
        if (strcmp(top->v[i]->k->key, "use") != 0)
            continue;
        use = top->v[i];
        if (blk->nstmts == 0 || blk->stmts[0]->words[0]->loc.line != use->key_loc.line ||
            blk->stmts[0]->words[0]->loc.col != use->key_loc.col)
            diag_error(c->d, use->key_loc, "'use' must come first in the file");
    }
    if (!use)
        return top;
    remove_key(top, "use");

    const lwl_word *w = use->vals[0];
    if (w->kind != W_STR) {
        diag_error(c->d, w->loc, "'use' expects a file name in quotes, got %s",
                   word_describe(c->arena, w));
        c->incomplete = 1;
        return top;
    }
    if (depth >= MAX_USE_DEPTH) {
        diag_error(c->d, w->loc, "'use' chain is deeper than %d files", MAX_USE_DEPTH);
        c->incomplete = 1;
        return top;
    }
    char *p = path_join(w->loc.src->dir, w->text);
    bset *base = load_file(c, p, NULL, w->loc, self, depth + 1);
    free(p);
    if (!base) {
        c->incomplete = 1;
        return top;
    }
    remove_key(base, "name");
    merge(c, base, top);
    base->loc = top->loc;   /* the merged spec is this file's, not its base's */
    return base;
}

/* Reads path (or takes the preloaded source of that name), then its base. */
static bset *load_file(ctx *c, const char *path, lwl_source *preloaded, lwl_loc from,
                       const chain *seen, int depth)
{
    char *canon = realpath(path, NULL);
    for (const chain *s = seen; canon && s; s = s->next) {
        if (strcmp(s->path, canon) != 0)
            continue;
        /* The cycle, from the first file of it to the repeated one. */
        const chain *order[MAX_USE_DEPTH + 1];
        int n = 0;
        for (const chain *t = seen; t && n <= MAX_USE_DEPTH; t = t->next) {
            order[n++] = t;
            if (t == s)
                break;
        }
        char *msg = xstrdup("");
        for (int i = n - 1; i >= 0; i--) {
            char *m = xasprintf("%s%s -> ", msg, order[i]->shown);
            free(msg);
            msg = m;
        }
        char *m = xasprintf("%s%s", msg, path);
        free(msg);
        msg = m;
        diag_error(c->d, from, "'use' cycle: %s", msg);
        free(msg);
        free(canon);
        return NULL;
    }

    lwl_source *src = preloaded ? preloaded : source_load(path);
    if (!src) {
        if (from.src)
            diag_error(c->d, from, "cannot read '%s': %s", path, strerror(errno));
        else
            diag_plain(c->d, "cannot read '%s': %s", path, strerror(errno));
        free(canon);
        return NULL;
    }
    chain self = { canon ? canon : path, src->path, seen };
    int complete;
    lwl_block *blk = ast_parse(c->arena, c->d, src, &complete);
    c->incomplete |= !complete;
    lwl_loc whole = { src, 1, 1, 1, 1 };
    bset *top = normalize(c, &schema_top, blk, whole);
    top = resolve_use(c, top, blk, &self, depth);
    free(canon);
    return top;
}

/* ---- -D section.key=value */

static void apply_define(ctx *c, bset *top, const char *def)
{
    const char *eq = strchr(def, '=');
    if (!eq || eq == def) {
        diag_plain(c->d, "-D expects section.key=value, got '%s'", def);
        return;
    }
    char *dotted = xstrndup(def, (size_t)(eq - def));
    char *key = strrchr(dotted, '.');
    key = key ? key + 1 : dotted;

    /* Walk the section path; `view1` names `view 1`. */
    bset *b = top;
    int ok = 1;
    for (char *part = dotted; ok && part != key; ) {
        char *dot = strchr(part, '.');
        *dot = 0;
        int index = 0;
        if (strncmp(part, "view", 4) == 0 && (part[4] == '1' || part[4] == '2') && !part[5]) {
            index = part[4] - '0';
            part[4] = 0;
        }
        const lwl_kschema *k = schema_find(b->schema, part);
        if (!k || k->kind == K_VALUE) {
            diag_plain(c->d, "-D %s: no block '%s' in '%s'", def, part, b->schema->name);
            ok = 0;
            break;
        }
        setting *s = bset_find(b, k->key, index);
        if (!s) {
            s = arena_alloc(c->arena, sizeof *s);
            s->k = k;
            s->index = index;
            s->sub = bset_new(c, k->sub, b->loc);
            bset_add(c, b, s);
        }
        b = s->sub;
        part = dot + 1;
    }
    if (ok) {
        char *text = xasprintf("%s %s", key, eq + 1);
        lwl_source *src = source_from_text("<command line>", ".", text);
        free(text);
        int complete;
        lwl_block *blk = ast_parse(c->arena, c->d, src, &complete);
        bset *over = normalize(c, b->schema, blk, b->loc);
        if (over->n == 0 && c->d->errors == 0)
            diag_plain(c->d, "-D %s sets nothing", def);
        /* -D replaces settings one by one, even inside a view. */
        for (int i = 0; i < over->n; i++) {
            setting *old = bset_find(b, over->v[i]->k->key, over->v[i]->index);
            if (!old)
                bset_add(c, b, over->v[i]);
            for (int j = 0; old && j < b->n; j++)
                if (b->v[j] == old)
                    b->v[j] = over->v[i];
        }
    }
    free(dotted);
}

/* ---- entry point */

static int load(const char *path, lwl_source *pre, const lwl_defines *defs, lwl_diag *d,
                lwl_spec *out)
{
    int before = d->errors;
    ctx c = { arena_new(), d, 0 };
    lwl_loc none = { 0 };
    memset(out, 0, sizeof *out);
    bset *top = load_file(&c, path, pre, none, NULL, 0);
    if (top) {
        for (int i = 0; defs && i < defs->ndefs; i++)
            apply_define(&c, top, defs->defs[i]);
        out->src = top->loc.src;
        convert_spec(c.arena, d, top, path, c.incomplete, out);
    }
    arena_free(c.arena);
    diag_flush(d);
    return d->errors - before;
}

int spec_load(const char *path, const lwl_defines *defs, lwl_diag *d, lwl_spec *out)
{
    return load(path, NULL, defs, d, out);
}

int spec_load_text(const char *name, const char *text, size_t len, const lwl_defines *defs,
                   lwl_diag *d, lwl_spec *out)
{
    lwl_source *src = source_from_bytes(name, ".", text, len);
    return load(name, src, defs, d, out);
}
