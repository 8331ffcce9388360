/* Diagnostics in gcc's form (file:line:col, quoted line, caret and tildes),
 * "did you mean" suggestions by edit distance, and the source registry. */
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("lwlc: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("lwlc: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("lwlc: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("lwlc: bad format\n", stderr);
        abort();
    }
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- source registry */

static lwl_source **sources;
static size_t nsources;

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static lwl_source *source_add(char *path, char *dir, char *text, size_t len)
{
    lwl_source *s = xcalloc(1, sizeof *s);
    s->path = path;
    s->dir = dir;
    s->text = text;
    s->len = len;
    sources = xrealloc(sources, (nsources + 1) * sizeof *sources);
    sources[nsources++] = s;
    return s;
}

FILE *source_open_regular(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        int err = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR
                  : S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        errno = err;
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f)
        close(fd);
    return f;
}

lwl_source *source_load(const char *path)
{
    FILE *f = source_open_regular(path, LWL_MAX_SOURCE);
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *text = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            text = xrealloc(text, cap *= 2);
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0 || len > LWL_MAX_SOURCE)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err || len > LWL_MAX_SOURCE) {
        free(text);
        errno = err ? EIO : EFBIG;
        return NULL;
    }
    text[len] = 0;
    return source_add(xstrdup(path), dir_of(path), text, len);
}

lwl_source *source_from_bytes(const char *name, const char *dir, const char *bytes, size_t len)
{
    char *text = xmalloc(len + 1);
    memcpy(text, bytes, len);
    text[len] = 0;
    return source_add(xstrdup(name), xstrdup(dir), text, len);
}

lwl_source *source_from_text(const char *name, const char *dir, const char *text)
{
    return source_add(xstrdup(name), xstrdup(dir), xstrdup(text), strlen(text));
}

void source_free_all(void)
{
    for (size_t i = 0; i < nsources; i++) {
        free(sources[i]->path);
        free(sources[i]->dir);
        free(sources[i]->text);
        free(sources[i]->lines);
        free(sources[i]);
    }
    free(sources);
    sources = NULL;
    nsources = 0;
}

/* ---- printing */

struct lwl_diag_entry {
    int file, line, col;    /* sort key: registration order of the file, position */
    size_t seq;             /* order of report, to keep the sort stable */
    char *text;             /* the diagnostic with its quote and notes */
    size_t len;
};

void diag_init(lwl_diag *d, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->out = out;
}

static int file_order(const lwl_source *src)
{
    for (size_t i = 0; i < nsources; i++)
        if (sources[i] == src)
            return (int)i;
    return -1;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const lwl_diag_entry *a = pa, *b = pb;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void diag_flush(lwl_diag *d)
{
    if (d->nheld)   /* qsort's array must not be NULL, even when empty */
        qsort(d->held, d->nheld, sizeof *d->held, entry_cmp);
    for (size_t i = 0; i < d->nheld; i++) {
        fwrite(d->held[i].text, 1, d->held[i].len, d->out);
        free(d->held[i].text);
    }
    free(d->held);
    d->held = NULL;
    d->nheld = d->capheld = 0;
    fflush(d->out);
}

/* A new held entry for a diagnostic at `at` (notes join the previous one). */
static lwl_diag_entry *hold(lwl_diag *d, lwl_loc at)
{
    if (d->nheld == d->capheld) {
        d->capheld = d->capheld ? 2 * d->capheld : 16;
        d->held = xrealloc(d->held, d->capheld * sizeof *d->held);
    }
    lwl_diag_entry *e = &d->held[d->nheld];
    e->file = at.src ? file_order(at.src) : -1;
    e->line = at.line;
    e->col = at.col;
    e->seq = d->nheld++;
    e->text = NULL;
    e->len = 0;
    return e;
}

static void emit_to(FILE *out, lwl_loc at, const char *kind, int quote, const char *fmt,
                    va_list ap);

/* Indexes the starts of lines once, so quoting stays cheap with many errors. */
static void index_lines(lwl_source *src)
{
    int n = 1;
    for (size_t i = 0; i < src->len; i++)
        n += src->text[i] == '\n';
    src->lines = xmalloc((size_t)n * sizeof *src->lines);
    src->lines[0] = 0;
    src->nlines = 1;
    for (size_t i = 0; i < src->len; i++)
        if (src->text[i] == '\n')
            src->lines[src->nlines++] = i + 1;
}

/* Writes source line `line` with tabs expanded to 8 columns. */
static void put_line(FILE *out, const lwl_source *csrc, int line)
{
    lwl_source *src = (lwl_source *)csrc;
    if (!src->lines)
        index_lines(src);
    const char *end = src->text + src->len;
    const char *p = line <= src->nlines ? src->text + src->lines[line - 1] : end;
    int col = 0;
    for (; p < end && *p != '\n' && *p != '\r'; p++) {
        if (*p == '\t') {
            do
                fputc(' ', out);
            while (++col % 8);
        } else {
            fputc(*p, out);
            if (((unsigned char)*p & 0xC0) != 0x80)
                col++;
        }
    }
    fputc('\n', out);
}

static void emit(lwl_diag *d, lwl_loc at, const char *kind, int quote, const char *fmt,
                 va_list ap)
{
    lwl_diag_entry *e = strcmp(kind, "note") == 0 && d->nheld ? &d->held[d->nheld - 1]
                        : hold(d, at);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        fputs("lwlc: out of memory\n", stderr);
        abort();
    }
    emit_to(out, at, kind, quote, fmt, ap);
    fclose(out);
    e->text = xrealloc(e->text, e->len + len + 1);
    memcpy(e->text + e->len, text, len + 1);
    e->len += len;
    free(text);
}

static void emit_to(FILE *out, lwl_loc at, const char *kind, int quote, const char *fmt,
                    va_list ap)
{
    if (at.src && at.line < 1)
        fprintf(out, "%s: %s: ", at.src->path, kind);
    else if (at.src)
        fprintf(out, "%s:%d:%d: %s: ", at.src->path, at.line, at.col, kind);
    else
        fprintf(out, "lwlc: %s: ", kind);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    if (!quote || !at.src || at.line < 1)
        return;

    fprintf(out, "%5d | ", at.line);
    put_line(out, at.src, at.line);
    int last = at.end_line == at.line && at.end_col >= at.col ? at.end_col : at.col;
    fprintf(out, "      | %*s^", at.col - 1, "");
    for (int c = at.col; c < last; c++)
        fputc('~', out);
    fputc('\n', out);
}

void diag_error(lwl_diag *d, lwl_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, at, "error", 1, fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_warning(lwl_diag *d, lwl_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, at, d->werror ? "error" : "warning", 1, fmt, ap);
    va_end(ap);
    if (d->werror)
        d->errors++;
    else
        d->warnings++;
}

void diag_note(lwl_diag *d, lwl_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, at, "note", 1, fmt, ap);
    va_end(ap);
}

void diag_hint(lwl_diag *d, lwl_loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, at, "note", 0, fmt, ap);
    va_end(ap);
}

void diag_plain(lwl_diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, (lwl_loc){ 0 }, "error", 0, fmt, ap);
    va_end(ap);
    d->errors++;
}

/* ---- suggestions */

size_t diag_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *diag_suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t limit = strlen(word) / 3 + 1;
    if (limit > 3)
        limit = 3;
    for (size_t i = 0; i < n; i++) {
        size_t dist = diag_edit_distance(word, cands[i]);
        if (dist <= limit && dist < best_d) {
            best = cands[i];
            best_d = dist;
        }
    }
    return best;
}
