/* safetensors writer and reader. The JSON header is made and parsed by cJSON; this file checks
 * what the format demands on top: known dtypes, shapes matching offsets, a hole-free buffer. */
#include "lwl_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ST_MAX_HEADER = 100000000 }; /* the Python library's limit */

static _Thread_local char st_err[512];

const char *lwl_st_error(void)
{
    return st_err;
}

__attribute__((format(printf, 1, 2))) static void st_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st_err, sizeof st_err, fmt, ap);
    va_end(ap);
}

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [LWL_ST_F32] = {"F32", 4}, [LWL_ST_F64] = {"F64", 8}, [LWL_ST_F16] = {"F16", 2},
    [LWL_ST_BF16] = {"BF16", 2}, [LWL_ST_I64] = {"I64", 8}, [LWL_ST_I32] = {"I32", 4},
    [LWL_ST_I16] = {"I16", 2}, [LWL_ST_I8] = {"I8", 1}, [LWL_ST_U8] = {"U8", 1},
    [LWL_ST_BOOL] = {"BOOL", 1},
};
enum { ST_NDTYPE = sizeof st_dtypes / sizeof st_dtypes[0] };

const char *lwl_st_dtype_name(lwl_st_dtype dt)
{
    return (unsigned)dt < ST_NDTYPE ? st_dtypes[dt].name : "?";
}

size_t lwl_st_dtype_size(lwl_st_dtype dt)
{
    return (unsigned)dt < ST_NDTYPE ? st_dtypes[dt].size : 0;
}

static int dtype_parse(const char *s, lwl_st_dtype *dt)
{
    for (unsigned i = 0; i < ST_NDTYPE; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *dt = (lwl_st_dtype)i;
            return 0;
        }
    return -1;
}

/* numel and bytes of a shape; -1 on a negative dimension or an overflow. */
static int shape_bytes(int ndim, const int64_t *shape, lwl_st_dtype dt, int64_t *numel,
                       size_t *nbytes)
{
    int64_t n = 1;

    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n))
            return -1;
    if (__builtin_mul_overflow((size_t)n, lwl_st_dtype_size(dt), nbytes))
        return -1;
    *numel = n;
    return 0;
}

/* ---- writer */
typedef struct {
    char *name;
    lwl_st_dtype dtype;
    int ndim;
    int64_t shape[LWL_ST_MAXDIM];
    size_t nbytes;
    const void *data;
} st_entry;

struct lwl_st_writer {
    st_entry *t;
    int nt, capt;
    cJSON *meta; /* object of strings */
};

lwl_st_writer *lwl_st_writer_new(void)
{
    lwl_st_writer *w = calloc(1, sizeof *w);

    if (!w || !(w->meta = cJSON_CreateObject())) {
        free(w);
        st_fail("safetensors writer: out of memory");
        return NULL;
    }
    return w;
}

void lwl_st_writer_free(lwl_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->nt; i++)
        free(w->t[i].name);
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}

static int writer_has(const lwl_st_writer *w, const char *name)
{
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return 1;
    return 0;
}

int lwl_st_add(lwl_st_writer *w, const char *name, lwl_st_dtype dt, int ndim,
               const int64_t *shape, const void *data)
{
    st_entry *e;
    int64_t numel;

    if (!name || !*name || strcmp(name, "__metadata__") == 0 || writer_has(w, name)) {
        st_fail("safetensors: tensor name '%s' is empty, reserved or repeated", name ? name : "");
        return -1;
    }
    if ((unsigned)dt >= ST_NDTYPE || ndim < 0 || ndim > LWL_ST_MAXDIM) {
        st_fail("safetensors: tensor '%s': bad dtype %d or rank %d", name, (int)dt, ndim);
        return -1;
    }
    if (w->nt == w->capt) {
        int cap = w->capt ? 2 * w->capt : 64;
        st_entry *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) {
            st_fail("safetensors: out of memory");
            return -1;
        }
        w->t = t;
        w->capt = cap;
    }
    e = &w->t[w->nt];
    *e = (st_entry){.dtype = dt, .ndim = ndim, .data = data};
    if (ndim)
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    if (shape_bytes(ndim, e->shape, dt, &numel, &e->nbytes) != 0 || (!data && e->nbytes)) {
        st_fail("safetensors: tensor '%s': bad shape or no data", name);
        return -1;
    }
    if (!(e->name = strdup(name))) {
        st_fail("safetensors: out of memory");
        return -1;
    }
    w->nt++;
    return 0;
}

int lwl_st_add_meta(lwl_st_writer *w, const char *key, const char *value)
{
    if (!key || !value || cJSON_GetObjectItemCaseSensitive(w->meta, key)) {
        st_fail("safetensors: metadata key '%s' is missing or repeated", key ? key : "");
        return -1;
    }
    if (!cJSON_AddStringToObject(w->meta, key, value)) {
        st_fail("safetensors: out of memory");
        return -1;
    }
    return 0;
}

/* The header JSON of w, padded with spaces to a multiple of 8 bytes; NULL when out of memory. */
static char *writer_header(const lwl_st_writer *w, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *meta = NULL;
    char *json = NULL, *out = NULL;
    size_t off = 0, n;

    if (!root)
        goto done;
    if (cJSON_GetArraySize(w->meta) > 0) {
        if (!(meta = cJSON_Duplicate(w->meta, 1)))
            goto done;
        cJSON_AddItemToObject(root, "__metadata__", meta);
    }
    for (int i = 0; i < w->nt; i++) {
        const st_entry *e = &w->t[i];
        cJSON *o = cJSON_AddObjectToObject(root, e->name), *shape, *offs;
        if (!o || !cJSON_AddStringToObject(o, "dtype", lwl_st_dtype_name(e->dtype)) ||
            !(shape = cJSON_AddArrayToObject(o, "shape")) ||
            !(offs = cJSON_AddArrayToObject(o, "data_offsets")))
            goto done;
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += e->nbytes;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    if (!(json = cJSON_PrintUnformatted(root)))
        goto done;
    n = strlen(json);
    *len = (n + 7) / 8 * 8;
    if ((out = malloc(*len)) != NULL) {
        memcpy(out, json, n);
        memset(out + n, ' ', *len - n);
    }
done:
    free(json);
    cJSON_Delete(root);
    if (!out)
        st_fail("safetensors: out of memory making the header");
    return out;
}

/* fsync of the directory holding path, so that the rename is durable. */
static int sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd, rc = -1;

    if (!copy)
        return -1;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(copy);
    return rc;
}

static int write_all(FILE *fp, const lwl_st_writer *w, const char *header, size_t hlen)
{
    unsigned char len8[8];

    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (fwrite(len8, 1, 8, fp) != 8 || fwrite(header, 1, hlen, fp) != hlen)
        return -1;
    for (int i = 0; i < w->nt; i++)
        if (w->t[i].nbytes && fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) != w->t[i].nbytes)
            return -1;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        return -1;
    return 0;
}

int lwl_st_write(lwl_st_writer *w, const char *path)
{
    size_t hlen;
    char *header = writer_header(w, &hlen), *tmp = NULL;
    FILE *fp = NULL;
    int rc = -1;

    if (!header)
        return -1;
    if (asprintf(&tmp, "%s.tmp", path) < 0) {
        tmp = NULL;
        st_fail("%s: out of memory", path);
        goto done;
    }
    if (!(fp = fopen(tmp, "wb"))) {
        st_fail("%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    if (write_all(fp, w, header, hlen) != 0) {
        st_fail("%s: write failed: %s", tmp, strerror(errno));
        fclose(fp);
        remove(tmp);
        goto done;
    }
    if (fclose(fp) != 0) {
        st_fail("%s: close failed: %s", tmp, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st_fail("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (sync_dir(path) != 0) {
        st_fail("%s: fsync of its directory failed: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    free(header);
    return rc;
}

/* ---- reader */
struct lwl_st_file {
    char *path;
    unsigned char *map;
    size_t size;
    cJSON *root;          /* the parsed header; names and metadata point into it */
    const cJSON *meta;    /* __metadata__ or NULL */
    lwl_st_tensor *t;     /* sorted by name */
    int nt;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const lwl_st_tensor *)a)->name, ((const lwl_st_tensor *)b)->name);
}

static int by_data(const void *a, const void *b)
{
    const lwl_st_tensor *x = *(const lwl_st_tensor *const *)a;
    const lwl_st_tensor *y = *(const lwl_st_tensor *const *)b;
    if (x->data != y->data)
        return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* An array of n non-negative integers below 2^53 into out; -1 otherwise. */
static int int_array(const cJSON *a, int64_t *out, int max, int *n)
{
    const cJSON *v;
    int i = 0;

    if (!cJSON_IsArray(a))
        return -1;
    cJSON_ArrayForEach(v, a) {
        double d = cJSON_GetNumberValue(v);
        if (i == max || !cJSON_IsNumber(v) || d < 0 || d > 9007199254740992.0 ||
            d != (double)(int64_t)d)
            return -1;
        out[i++] = (int64_t)d;
    }
    *n = i;
    return 0;
}

/* Fills t from header entry e; base is the data buffer of size len. */
static int parse_entry(const lwl_st_file *f, const cJSON *e, lwl_st_tensor *t,
                       const unsigned char *base, size_t len)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    int64_t off[2];
    int noff;

    t->name = e->string;
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || dtype_parse(dt->valuestring, &t->dtype)) {
        st_fail("%s: tensor '%s': missing or unknown dtype", f->path, t->name);
        return -1;
    }
    if (int_array(cJSON_GetObjectItemCaseSensitive(e, "shape"), t->shape, LWL_ST_MAXDIM,
                  &t->ndim) ||
        shape_bytes(t->ndim, t->shape, t->dtype, &t->numel, &t->nbytes)) {
        st_fail("%s: tensor '%s': bad shape (rank at most %d)", f->path, t->name, LWL_ST_MAXDIM);
        return -1;
    }
    if (int_array(cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), off, 2, &noff) ||
        noff != 2 || off[0] > off[1] || (uint64_t)off[1] > len ||
        (uint64_t)(off[1] - off[0]) != t->nbytes) {
        st_fail("%s: tensor '%s': data_offsets do not fit its shape or the file", f->path,
                t->name);
        return -1;
    }
    t->data = base + off[0];
    return 0;
}

/* The tensors' bytes must tile [0, len) exactly, in some order. */
static int check_cover(const lwl_st_file *f, const unsigned char *base, size_t len)
{
    const lwl_st_tensor **p = malloc((size_t)(f->nt ? f->nt : 1) * sizeof *p);
    const unsigned char *at = base;
    int rc = 0;

    if (!p) {
        st_fail("%s: out of memory", f->path);
        return -1;
    }
    for (int i = 0; i < f->nt; i++)
        p[i] = &f->t[i];
    qsort(p, (size_t)f->nt, sizeof *p, by_data);
    for (int i = 0; i < f->nt && rc == 0; i++) {
        if ((const unsigned char *)p[i]->data != at) {
            st_fail("%s: tensor '%s' leaves a hole or overlaps at byte %zu of the data", f->path,
                    p[i]->name, (size_t)(at - base));
            rc = -1;
        }
        at += p[i]->nbytes;
    }
    if (rc == 0 && at != base + len) {
        st_fail("%s: %zu bytes of data after the last tensor", f->path,
                (size_t)(base + len - at));
        rc = -1;
    }
    free(p);
    return rc;
}

/* Parses the header of the mapped file into f->root, f->meta and f->t. */
static int parse_header(lwl_st_file *f)
{
    uint64_t hlen = 0;
    const char *end = NULL, *json = (const char *)f->map + 8;
    const cJSON *e;
    size_t dlen;
    const unsigned char *base;

    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)f->map[i] << (8 * i);
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        st_fail("%s: header length %llu does not fit the file (%zu bytes)", f->path,
                (unsigned long long)hlen, f->size);
        return -1;
    }
    f->root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!f->root || !cJSON_IsObject(f->root)) {
        st_fail("%s: header is not a JSON object (near byte %zu)", f->path,
                (size_t)((end ? end : cJSON_GetErrorPtr()) - json) + 8);
        return -1;
    }
    for (; end < json + hlen; end++)
        if (*end != ' ' && *end != '\n' && *end != '\t' && *end != '\r') {
            st_fail("%s: text after the JSON header at byte %zu", f->path,
                    (size_t)(end - json) + 8);
            return -1;
        }
    base = f->map + 8 + hlen;
    dlen = f->size - 8 - (size_t)hlen;
    f->t = calloc((size_t)cJSON_GetArraySize(f->root) + 1, sizeof *f->t);
    if (!f->t) {
        st_fail("%s: out of memory", f->path);
        return -1;
    }
    cJSON_ArrayForEach(e, f->root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            const cJSON *v;
            f->meta = e;
            if (!cJSON_IsObject(e)) {
                st_fail("%s: __metadata__ is not an object", f->path);
                return -1;
            }
            cJSON_ArrayForEach(v, e) {
                if (!cJSON_IsString(v)) {
                    st_fail("%s: metadata '%s' is not a string", f->path, v->string);
                    return -1;
                }
            }
            continue;
        }
        if (parse_entry(f, e, &f->t[f->nt], base, dlen) != 0)
            return -1;
        f->nt++;
    }
    qsort(f->t, (size_t)f->nt, sizeof *f->t, by_name);
    for (int i = 1; i < f->nt; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0) {
            st_fail("%s: tensor '%s' appears twice", f->path, f->t[i].name);
            return -1;
        }
    return check_cover(f, base, dlen);
}

lwl_st_file *lwl_st_open(const char *path)
{
    lwl_st_file *f = calloc(1, sizeof *f);
    struct stat sb;
    int fd;

    if (!f || !(f->path = strdup(path))) {
        free(f);
        st_fail("%s: out of memory", path);
        return NULL;
    }
    fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st_fail("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        st_fail("%s: too short for a safetensors file (%zu bytes)", path, f->size);
        goto fail;
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        st_fail("%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (parse_header(f) != 0)
        goto fail;
    return f;
fail:
    if (fd >= 0)
        close(fd);
    lwl_st_close(f);
    return NULL;
}

int lwl_st_count(const lwl_st_file *f)
{
    return f->nt;
}

const lwl_st_tensor *lwl_st_at(const lwl_st_file *f, int i)
{
    return i >= 0 && i < f->nt ? &f->t[i] : NULL;
}

const lwl_st_tensor *lwl_st_get(const lwl_st_file *f, const char *name)
{
    lwl_st_tensor key = {.name = name};
    return bsearch(&key, f->t, (size_t)f->nt, sizeof *f->t, by_name);
}

const lwl_st_tensor *lwl_st_expect(const lwl_st_file *f, const char *name, lwl_st_dtype dt,
                                   int ndim, const int64_t *shape)
{
    const lwl_st_tensor *t = lwl_st_get(f, name);
    char want[160] = "", got[160] = "";
    int same;

    if (!t) {
        st_fail("%s: no tensor '%s'", f->path, name);
        return NULL;
    }
    same = t->dtype == dt && t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (same)
        return t;
    for (int i = 0; i < ndim && i < LWL_ST_MAXDIM; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                 (long long)shape[i]);
    for (int i = 0; i < t->ndim; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                 (long long)t->shape[i]);
    st_fail("%s: tensor '%s' is %s (%s), expected %s (%s)", f->path, name,
            lwl_st_dtype_name(t->dtype), got, lwl_st_dtype_name(dt), want);
    return NULL;
}

const char *lwl_st_meta(const lwl_st_file *f, const char *key)
{
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void lwl_st_close(lwl_st_file *f)
{
    if (!f)
        return;
    if (f->map && munmap(f->map, f->size) != 0)
        st_fail("%s: munmap failed: %s", f->path, strerror(errno));
    cJSON_Delete(f->root);
    free(f->t);
    free(f->path);
    free(f);
}
