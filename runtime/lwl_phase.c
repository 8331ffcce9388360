/* The data phases: scan (decode everything once, scan.json), views (PNG previews and
 * params.jsonl), the data benchmark and bench.json; files go through a temporary name. */
#include "lwl_phase.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <png.h>

static const char *const part_names[LWL_NPARTS] = { "train", "val", "test" };

static char *ph_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ph_msg(const char *fmt, ...)
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

void lwl_json_str(lwl_strbuf *b, const char *s)
{
    lwl_strbuf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            lwl_strbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            lwl_strbuf_printf(b, "\\u%04x", ch);
        else
            lwl_strbuf_printf(b, "%c", ch);
    }
    lwl_strbuf_printf(b, "\"");
}

const char *lwl_rel_path(const char *root, const char *path)
{
    size_t n = root ? strlen(root) : 0;

    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n && strncmp(path, root, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

/* mkdir -p of dir; 0 or -1 with *err. */
static int make_dirs(const char *dir, char **err)
{
    char p[4096];
    size_t n = strlen(dir);

    if (n + 1 > sizeof p) {
        *err = ph_msg("%s: path too long", dir);
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];

        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            *err = ph_msg("%s: cannot create: %s", p, strerror(errno));
            return -1;
        }
        p[i] = c;
    }
    return 0;
}

/* Writes text to path through path.tmp and a rename. */
static int write_text(const char *path, const char *text, size_t len, char **err)
{
    char tmp[4300];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) {
        *err = ph_msg("%s: cannot write: %s", tmp, strerror(errno));
        return -1;
    }
    if (fwrite(text, 1, len, f) != len || fflush(f) != 0) {
        *err = ph_msg("%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        *err = ph_msg("%s: cannot finish: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_strbuf(const char *dir, const char *name, const lwl_strbuf *b, char **err)
{
    char path[4200];

    if (b->oom) {
        *err = ph_msg("%s: out of memory", name);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return write_text(path, b->s ? b->s : "", b->len, err);
}

/* ---- PNG ---- */

typedef struct {
    char msg[256];
} png_err;

static void png_on_err(png_structp p, png_const_charp m)
{
    png_err *e = png_get_error_ptr(p);

    snprintf(e->msg, sizeof e->msg, "%s", m);
    png_longjmp(p, 1);
}

static void png_on_warn(png_structp p, png_const_charp m)
{
    (void)p, (void)m;
}

int lwl_write_png(const char *path, int w, int h, const uint8_t *px, char **err)
{
    char tmp[4300];
    png_err e = { "" };
    png_structp p = NULL;
    png_infop info = NULL;
    FILE *volatile f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) {
        *err = ph_msg("%s: cannot write: %s", tmp, strerror(errno));
        return -1;
    }
    p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, png_on_err, png_on_warn);
    if (!p || !(info = png_create_info_struct(p))) {
        png_destroy_write_struct(p ? &p : NULL, NULL);
        fclose(f);
        *err = ph_msg("%s: cannot create the PNG writer", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        fclose(f);
        *err = ph_msg("%s: PNG: %s", path, e.msg);
        return -1;
    }
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    for (int y = 0; y < h; y++)
        png_write_row(p, px + (size_t)y * w * 3);
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        *err = ph_msg("%s: cannot finish: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- scan ---- */

/* What one file gave: 0 ok, 1 warning, 2 unreadable; msg when not ok. */
typedef struct {
    int state;
    char *msg;
} scan_result;

typedef struct {
    const lwl_phase_ctx *c;
    const lwl_item **items;   /* (total) every file of every part */
    scan_result *res;
    size_t total, next;
    int oom;
    pthread_mutex_t mu;
} scan_job;

static void *scan_worker(void *arg)
{
    scan_job *j = arg;

    for (;;) {
        lwl_decode_status st;
        lwl_image im;
        size_t i;

        pthread_mutex_lock(&j->mu);
        i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->total)
            return NULL;
        if (lwl_decode_file(j->items[i]->path, &im, &st) == 0) {
            lwl_image_free(&im);
            j->res[i].state = st.warning ? 1 : 0;
        } else {
            j->res[i].state = 2;
        }
        if (j->res[i].state && !(j->res[i].msg = strdup(st.msg))) {
            pthread_mutex_lock(&j->mu);
            j->oom = 1;
            pthread_mutex_unlock(&j->mu);
        }
    }
}

/* Runs scan_worker on c->threads threads (or this one when threads cannot start). */
static int scan_run(scan_job *j, char **err)
{
    int nt = j->c->threads > 1 ? j->c->threads : 1, started = 0;
    pthread_t *th = calloc((size_t)nt, sizeof *th);

    if (!th || pthread_mutex_init(&j->mu, NULL)) {
        free(th);
        *err = ph_msg("scan: out of resources");
        return -1;
    }
    for (int i = 0; i < nt; i++, started++)
        if (pthread_create(&th[i], NULL, scan_worker, j))
            break;
    if (started == 0)
        scan_worker(j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j->mu);
    free(th);
    if (j->oom) {
        *err = ph_msg("scan: out of memory");
        return -1;
    }
    return 0;
}

/* The list of unreadable (state 2) or warned (state 1) files as a JSON array. */
static void scan_list(lwl_strbuf *b, const scan_job *j, const int *part_of, int state)
{
    int first = 1;

    lwl_strbuf_printf(b, "[");
    for (size_t i = 0; i < j->total; i++) {
        if (j->res[i].state != state)
            continue;
        lwl_strbuf_printf(b, "%s\n    {\"split\": \"%s\", \"file\": ", first ? "" : ",",
                          part_names[part_of[i]]);
        lwl_json_str(b, lwl_rel_path(j->c->root, j->items[i]->path));
        lwl_strbuf_printf(b, ", \"reason\": ");
        lwl_json_str(b, j->res[i].msg);
        lwl_strbuf_printf(b, "}");
        first = 0;
    }
    lwl_strbuf_printf(b, "%s]", first ? "" : "\n  ");
}

int lwl_phase_scan(const lwl_phase_ctx *c, char **err)
{
    const lwl_dataset *ds = c->ds;
    scan_job j = { c, NULL, NULL, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER };
    size_t bad[LWL_NPARTS] = { 0 }, warn = 0;
    lwl_strbuf b = { 0 };
    int *part_of = NULL, rc = -1;

    *err = NULL;
    for (int p = 0; p < LWL_NPARTS; p++)
        j.total += ds->n[p];
    j.items = malloc(sizeof *j.items * (j.total + 1));
    j.res = calloc(j.total + 1, sizeof *j.res);
    part_of = malloc(sizeof(int) * (j.total + 1));
    if (!j.items || !j.res || !part_of) {
        *err = ph_msg("scan: out of memory");
        goto done;
    }
    for (int p = 0, k = 0; p < LWL_NPARTS; p++)
        for (size_t i = 0; i < ds->n[p]; i++, k++) {
            j.items[k] = &ds->part[p][i];
            part_of[k] = p;
        }
    if (make_dirs(c->out_dir, err) || scan_run(&j, err))
        goto done;

    /* The counts, then the lists, in split and file order. */
    for (size_t i = 0; i < j.total; i++) {
        bad[part_of[i]] += j.res[i].state == 2;
        warn += j.res[i].state == 1;
    }
    lwl_strbuf_printf(&b, "{\n  \"classes\": %d,\n  \"splits\": {", ds->nclasses);
    for (int p = 0; p < LWL_NPARTS; p++)
        lwl_strbuf_printf(&b, "%s\"%s\": {\"files\": %zu, \"readable\": %zu, "
                          "\"unreadable\": %zu}", p ? ", " : "", part_names[p], ds->n[p],
                          ds->n[p] - bad[p], bad[p]);
    lwl_strbuf_printf(&b, "},\n  \"unreadable\": ");
    scan_list(&b, &j, part_of, 2);
    lwl_strbuf_printf(&b, ",\n  \"warnings\": ");
    scan_list(&b, &j, part_of, 1);
    lwl_strbuf_printf(&b, "\n}\n");
    if (write_strbuf(c->out_dir, "scan.json", &b, err))
        goto done;

    /* The summary, and each problem by name. */
    if (c->log) {
        for (size_t i = 0; i < j.total; i++)
            if (j.res[i].state)
                fprintf(c->log, "scan: %s: %s: %s\n", j.items[i]->path,
                        j.res[i].state == 2 ? "unreadable" : "warning", j.res[i].msg);
        fprintf(c->log, "scan: %d classes; train %zu files (%zu unreadable), val %zu (%zu), "
                "test %zu (%zu); %zu warnings\n", ds->nclasses, ds->n[0], bad[0], ds->n[1],
                bad[1], ds->n[2], bad[2], warn);
    }
    rc = 0;
done:
    for (size_t i = 0; j.res && i < j.total; i++)
        free(j.res[i].msg);
    free(j.res);
    free(j.items);
    free(part_of);
    lwl_strbuf_free(&b);
    return rc;
}

/* ---- views ---- */

/* One params.jsonl line of sample i, view v (1-based). */
static void views_line(lwl_strbuf *b, int i, int v, const char *file, const char *key,
                       const char *ops)
{
    lwl_strbuf_printf(b, "{\"index\": %d, \"view\": %d, \"file\": ", i, v);
    lwl_json_str(b, file);
    if (!strcmp(key, "error")) {
        lwl_strbuf_printf(b, ", \"error\": ");
        lwl_json_str(b, ops);
        lwl_strbuf_printf(b, "}\n");
    } else {
        lwl_strbuf_printf(b, ", \"ops\": %s}\n", ops);
    }
}

int lwl_phase_views(const lwl_phase_ctx *c, const lwl_pipeline *p, int n, char **err)
{
    size_t npx = (size_t)p->size * p->size * 3;
    uint8_t *u8[2] = { malloc(npx * 2 + 1), NULL };
    lwl_strbuf params = { 0 }, ops[2] = { { 0 }, { 0 } }, *rec[2] = { &ops[0], &ops[1] };
    char dir[4096], path[4200];
    int rc = -1, bad = 0;

    *err = NULL;
    snprintf(dir, sizeof dir, "%s/views", c->out_dir);
    if (!u8[0]) {
        *err = ph_msg("views: out of memory");
        goto done;
    }
    u8[1] = u8[0] + npx;
    if (make_dirs(dir, err))
        goto done;
    if ((size_t)n > c->ds->n[LWL_TRAIN])
        n = (int)c->ds->n[LWL_TRAIN];

    for (int i = 0; i < n; i++) {
        const char *file = lwl_rel_path(c->root, c->ds->part[LWL_TRAIN][i].path);
        lwl_decode_status st;

        ops[0].len = ops[1].len = 0;
        int r = lwl_sample_views(p, c->ds->part[LWL_TRAIN][i].path, c->seed, 0, (uint32_t)i,
                                 u8, rec, &st);
        if (r == -2) {
            *err = ph_msg("views: %s", st.msg);
            goto done;
        }
        if (r == -1 || st.warning) {
            if (c->log)
                fprintf(c->log, "views: %s: %s: %s\n", c->ds->part[LWL_TRAIN][i].path,
                        r ? "unreadable" : "warning", st.msg);
            bad += r != 0;
        }
        for (int v = 0; v < p->nviews; v++) {
            if (r) {
                views_line(&params, i, v + 1, file, "error", st.msg);
                continue;
            }
            views_line(&params, i, v + 1, file, "ops", ops[v].s);
            snprintf(path, sizeof path, "%s/%d_v%d.png", dir, i, v + 1);
            if (lwl_write_png(path, p->size, p->size, u8[v], err))
                goto done;
        }
    }
    if (write_strbuf(dir, "params.jsonl", &params, err))
        goto done;
    if (c->log)
        fprintf(c->log, "views: %d samples x %d views in %s (%d unreadable)\n", n, p->nviews,
                dir, bad);
    rc = 0;
done:
    free(u8[0]);
    lwl_strbuf_free(&params);
    lwl_strbuf_free(&ops[0]);
    lwl_strbuf_free(&ops[1]);
    return rc;
}

/* ---- bench ---- */

static double wall_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int lwl_phase_bench_data(const lwl_phase_ctx *c, const lwl_pipeline *p, int images,
                         double *img_per_s, char **err)
{
    lwl_loader_cfg lc = { 0 };
    lwl_loader *ld;
    lwl_batch b;
    double t0, t;
    long done = 0;
    int rc = 0;

    *err = NULL;
    lc.pipe = p;
    lc.items = c->ds->part[LWL_TRAIN];
    lc.n = c->ds->n[LWL_TRAIN];
    lc.batch = 8;
    lc.world = 1;
    lc.shuffle = 1;
    lc.keep_last = 1;
    lc.seed = c->seed;
    lc.threads = c->threads;
    lc.depth = 2 * c->threads + 2;
    if (!(ld = lwl_loader_open(&lc, err)))
        return -1;

    /* Epochs until `images` samples went through. */
    t0 = wall_s();
    for (uint32_t e = 0; done < images && rc == 0; e++) {
        lwl_loader_epoch(ld, e);
        while (done < images && (rc = lwl_loader_next(ld, &b)) == 1)
            done += b.n;
        rc = rc < 0 ? -1 : 0;
    }
    t = wall_s() - t0;
    if (rc) {
        *err = ph_msg("bench: %s", lwl_loader_error(ld));
        lwl_loader_close(ld);
        return -1;
    }
    lwl_loader_close(ld);
    *img_per_s = (double)done / t;
    if (c->log)
        fprintf(c->log, "bench: data: %ld images, decode + %d views at %d, %d threads: "
                "%.1f img/s\n", done, p->nviews, p->size, c->threads, *img_per_s);
    return 0;
}

int lwl_bench_json_write(const char *out_dir, int threads, double img_per_s,
                         const char *step_json, char **err)
{
    lwl_strbuf b = { 0 };
    int rc;

    *err = NULL;
    if (make_dirs(out_dir, err))
        return -1;
    lwl_strbuf_printf(&b, "{\"data\": {\"threads\": %d, \"img_per_s\": %.2f}", threads,
                      img_per_s);
    if (step_json)
        lwl_strbuf_printf(&b, ", \"step\": %s", step_json);
    lwl_strbuf_printf(&b, "}\n");
    rc = write_strbuf(out_dir, "bench.json", &b, err);
    lwl_strbuf_free(&b);
    return rc;
}
