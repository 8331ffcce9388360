/* ImageFolder scan and the seeded per-class split (see lwl_dataset.h); file order is
 * torchvision's: per class, sorted by (directory, file name) in byte order, recursively. */
#include "lwl_dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lwl_philox.h"

/* The split's draws use this view number, which no augmentation uses. */
#define LWL_SPLIT_VIEW 0xFFFFu

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char **err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
    return -1;
}

static char *join(const char *a, const char *b)
{
    char *s;

    if (!*a || !*b)
        return strdup(*a ? a : b);
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* A growable list of strings. */
typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static int strlist_push(strlist *l, char *s)
{
    if (!s)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);

        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir (not starting with '.'), split into directories and other files,
 * following symbolic links; each list sorted. */
static int list_dir(const char *dir, strlist *dirs, strlist *files, char **err)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
    errno = 0;
    while ((e = readdir(d))) {
        struct stat sb;
        char *p;

        if (e->d_name[0] == '.')
            continue;
        p = join(dir, e->d_name);
        if (!p || stat(p, &sb) != 0) {
            /* A dangling link or a vanished file: list it; decoding will report it. */
            free(p);
            if (files && strlist_push(files, strdup(e->d_name))) {
                closedir(d);
                return fail(err, "out of memory listing %s", dir);
            }
            continue;
        }
        free(p);
        strlist *to = S_ISDIR(sb.st_mode) ? dirs : files;
        if (to && strlist_push(to, strdup(e->d_name))) {
            closedir(d);
            return fail(err, "out of memory listing %s", dir);
        }
    }
    if (errno) {
        int e2 = errno;

        closedir(d);
        return fail(err, "%s: cannot read directory: %s", dir, strerror(e2));
    }
    closedir(d);
    if (dirs && dirs->n > 1)
        qsort(dirs->v, dirs->n, sizeof(char *), cmp_str);
    if (files && files->n > 1)
        qsort(files->v, files->n, sizeof(char *), cmp_str);
    return 0;
}

/* Every file under dir (recursively) as "reldir\0name" keys sorted by (reldir, name),
 * as torchvision's sorted(os.walk(...)) then sorted(fnames). */
typedef struct {
    char *dir, *name;
} dirfile;

static int cmp_dirfile(const void *a, const void *b)
{
    const dirfile *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);

    return c ? c : strcmp(x->name, y->name);
}

typedef struct {
    dirfile *v;
    size_t n, cap;
} dflist;

static int walk(const char *top, const char *rel, dflist *out, int depth, char **err)
{
    strlist dirs = { 0 }, files = { 0 };
    char *here = join(top, rel);
    int rc = 0;

    if (!here)
        return fail(err, "out of memory");
    if (depth > 32) {
        free(here);
        return fail(err, "%s: directories nested too deeply (a link cycle?)", top);
    }
    if (list_dir(here, &dirs, &files, err)) {
        free(here);
        return -1;
    }
    for (size_t i = 0; i < files.n && !rc; i++) {
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            dirfile *v = realloc(out->v, cap * sizeof *v);

            if (!v) {
                rc = fail(err, "out of memory");
                break;
            }
            out->v = v;
            out->cap = cap;
        }
        out->v[out->n].dir = strdup(rel);
        out->v[out->n].name = files.v[i];
        files.v[i] = NULL;
        if (!out->v[out->n].dir)
            rc = fail(err, "out of memory");
        out->n++;
    }
    for (size_t i = 0; i < dirs.n && !rc; i++) {
        char *sub = join(rel, dirs.v[i]);

        rc = sub ? walk(top, sub, out, depth + 1, err) : fail(err, "out of memory");
        free(sub);
    }
    strlist_free(&dirs);
    strlist_free(&files);
    free(here);
    return rc;
}

static void dflist_free(dflist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].dir);
        free(l->v[i].name);
    }
    free(l->v);
}

/* Reads the class list: one name a line, blanks trimmed, empty lines and '#' skipped. */
static int read_class_file(const char *path, strlist *names, char **err)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    if (!f)
        return fail(err, "%s: cannot open the class list: %s", path, strerror(errno));
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *s = line, *e = line + len;

        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        if (!*s || *s == '#')
            continue;
        if (strlist_push(names, strdup(s))) {
            free(line);
            fclose(f);
            return fail(err, "out of memory");
        }
    }
    free(line);
    if (ferror(f)) {
        fclose(f);
        return fail(err, "%s: read error", path);
    }
    fclose(f);
    if (names->n > 1)
        qsort(names->v, names->n, sizeof(char *), cmp_str);
    return 0;
}

/* The classes of root (subdirectories), kept to those listed when a list is given. */
static int find_classes(const char *root, const char *classes_file, strlist *classes,
                        char **err)
{
    strlist all = { 0 }, want = { 0 };

    if (list_dir(root, &all, NULL, err))
        return -1;
    if (!classes_file) {
        *classes = all;
        if (classes->n == 0)
            return fail(err, "%s: no class folders", root);
        return 0;
    }
    if (read_class_file(classes_file, &want, err)) {
        strlist_free(&all);
        return -1;
    }
    for (size_t i = 0; i < want.n; i++) {
        if (i > 0 && !strcmp(want.v[i], want.v[i - 1]))
            continue;
        if (all.n == 0 || !bsearch(&want.v[i], all.v, all.n, sizeof(char *), cmp_str)) {
            fail(err, "%s: class '%s' of %s has no folder", root, want.v[i], classes_file);
            strlist_free(&all);
            strlist_free(&want);
            strlist_free(classes);
            return -1;
        }
        if (strlist_push(classes, strdup(want.v[i]))) {
            strlist_free(&all);
            strlist_free(&want);
            return fail(err, "out of memory");
        }
    }
    strlist_free(&all);
    strlist_free(&want);
    if (classes->n == 0)
        return fail(err, "%s: the class list is empty", classes_file);
    return 0;
}

/* Appends the files of class c (folder dir) to *items. */
static int add_class_files(const char *dir, int label, lwl_item **items, size_t *n,
                           size_t *cap, char **err)
{
    dflist files = { 0 };

    if (walk(dir, "", &files, 0, err)) {
        dflist_free(&files);
        return -1;
    }
    if (files.n > 1)
        qsort(files.v, files.n, sizeof(dirfile), cmp_dirfile);
    for (size_t i = 0; i < files.n; i++) {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 1024;
            lwl_item *v = realloc(*items, nc * sizeof *v);

            if (!v) {
                dflist_free(&files);
                return fail(err, "out of memory");
            }
            *items = v;
            *cap = nc;
        }
        char *sub = join(dir, files.v[i].dir);
        char *path = sub ? join(sub, files.v[i].name) : NULL;

        free(sub);
        if (!path) {
            dflist_free(&files);
            return fail(err, "out of memory");
        }
        (*items)[*n].path = path;
        (*items)[*n].label = label;
        (*n)++;
    }
    dflist_free(&files);
    return 0;
}

uint32_t lwl_class_key(const char *name)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* round(n * share), clamped to [0, n]. */
static size_t cut_at(size_t n, double share)
{
    double c = floor((double)n * share + 0.5);

    return c <= 0 ? 0 : (c >= (double)n ? n : (size_t)c);
}

int lwl_split_class(size_t n, const double share[LWL_NPARTS], uint64_t seed, uint32_t key,
                    uint8_t *part)
{
    size_t *perm = malloc((n + 1) * sizeof *perm);
    size_t cut1 = cut_at(n, share[0]), cut2 = cut_at(n, share[0] + share[1]);

    if (!perm)
        return -1;

    /* Fisher-Yates over the sorted order, draw i from block i of the class's stream. */
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i-- > 1;) {
        uint32_t w[4];

        lwl_rng_block(seed, 0, key, LWL_SPLIT_VIEW, 0, (uint32_t)i, w);
        size_t j = lwl_rng_below(w[0], (uint32_t)(i + 1)), t = perm[i];

        perm[i] = perm[j];
        perm[j] = t;
    }

    /* The first cut1 shuffled files train, the next up to cut2 val, the rest test. */
    for (size_t p = 0; p < n; p++)
        part[perm[p]] = (uint8_t)(p < cut1 ? LWL_TRAIN : (p < cut2 ? LWL_VAL : LWL_TEST));
    free(perm);
    return 0;
}

void lwl_dataset_free(lwl_dataset *ds)
{
    for (int k = 0; k < LWL_NPARTS; k++) {
        for (size_t i = 0; i < ds->n[k]; i++)
            free(ds->part[k][i].path);
        free(ds->part[k]);
        ds->part[k] = NULL;
        ds->n[k] = 0;
    }
    for (int c = 0; c < ds->nclasses; c++)
        free(ds->classes[c]);
    free(ds->classes);
    ds->classes = NULL;
    ds->nclasses = 0;
}

/* Scans every class folder of `root` into one part (split folders mode). */
static int scan_part(const char *root, const strlist *classes, lwl_dataset *ds, int k,
                     char **err)
{
    size_t cap = 0;

    for (size_t c = 0; c < classes->n; c++) {
        char *dir = join(root, classes->v[c]);
        struct stat sb;
        int rc;

        if (!dir)
            return fail(err, "out of memory");
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            /* A class without validation images is allowed; say nothing. */
            free(dir);
            continue;
        }
        rc = add_class_files(dir, (int)c, &ds->part[k], &ds->n[k], &cap, err);
        free(dir);
        if (rc)
            return -1;
    }
    return 0;
}

/* Splits each class's files of `all` (in class order) into the three parts. */
static int split_parts(lwl_item *all, size_t n, const strlist *classes,
                       const lwl_data_cfg *cfg, lwl_dataset *ds, char **err)
{
    uint8_t *part = malloc(n + 1);
    size_t cap[LWL_NPARTS] = { 0 };

    if (!part)
        return fail(err, "out of memory");
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a; b < n && all[b].label == all[a].label; b++)
            ;
        if (lwl_split_class(b - a, cfg->share, cfg->seed,
                            lwl_class_key(classes->v[all[a].label]), part + a)) {
            free(part);
            return fail(err, "out of memory");
        }
    }
    for (int k = 0; k < LWL_NPARTS; k++) {
        for (size_t i = 0; i < n; i++)
            cap[k] += part[i] == k;
        ds->part[k] = malloc((cap[k] + 1) * sizeof(lwl_item));
        if (!ds->part[k]) {
            free(part);
            return fail(err, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++)
        ds->part[part[i]][ds->n[part[i]]++] = all[i];
    free(part);
    return 0;
}

int lwl_dataset_open(const lwl_data_cfg *cfg, lwl_dataset *ds, char **err)
{
    strlist classes = { 0 };
    char *train_root = NULL, *val_root = NULL;
    lwl_item *all = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    memset(ds, 0, sizeof *ds);
    *err = NULL;
    if (!cfg->split_folders) {
        double sum = cfg->share[0] + cfg->share[1] + cfg->share[2];

        if (sum < 0.999999 || sum > 1.000001 || cfg->share[0] < 0 || cfg->share[1] < 0 ||
            cfg->share[2] < 0)
            return fail(err, "split shares must be non-negative and sum to 100%%");
    }

    /* Classes: the folders of root (or of root/train), filtered by the list. */
    if (cfg->split_folders) {
        train_root = join(cfg->root, "train");
        val_root = join(cfg->root, "val");
        if (!train_root || !val_root) {
            fail(err, "out of memory");
            goto out;
        }
    }
    if (find_classes(train_root ? train_root : cfg->root, cfg->classes_file, &classes, err))
        goto out;

    /* Files, then the split. */
    if (cfg->split_folders) {
        if (scan_part(train_root, &classes, ds, LWL_TRAIN, err) ||
            scan_part(val_root, &classes, ds, LWL_VAL, err))
            goto out;
    } else {
        for (size_t c = 0; c < classes.n; c++) {
            char *dir = join(cfg->root, classes.v[c]);
            int r = dir ? add_class_files(dir, (int)c, &all, &n, &cap, err)
                        : fail(err, "out of memory");

            free(dir);
            if (r)
                goto out;
        }
        if (split_parts(all, n, &classes, cfg, ds, err))
            goto out;
        free(all);
        all = NULL;
        n = 0;
    }
    ds->nclasses = (int)classes.n;
    ds->classes = classes.v;
    classes.v = NULL;
    classes.n = 0;
    rc = 0;

out:
    for (size_t i = 0; i < n; i++)
        free(all[i].path);
    free(all);
    strlist_free(&classes);
    free(train_root);
    free(val_root);
    if (rc)
        lwl_dataset_free(ds);
    return rc;
}
