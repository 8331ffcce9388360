/* Source files and diagnostics: every token and node keeps a span into a
 * registered source; diagnostics print gcc style with the quoted line and a
 * caret under the span. Errors are counted, never fatal. */
#ifndef LWLC_DIAG_H
#define LWLC_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* One loaded file (or command-line text); owned by the registry. */
typedef struct lwl_source {
    char *path;     /* as shown in diagnostics */
    char *dir;      /* directory that relative paths in it are taken from */
    char *text;     /* NUL-terminated contents */
    size_t len;
    size_t *lines;  /* byte offset of each line's start, made on first quote */
    int nlines;
} lwl_source;

/* A span: 1-based line and display column of the first and last character. */
typedef struct lwl_loc {
    const lwl_source *src;
    int line, col;          /* first character */
    int end_line, end_col;  /* last character (inclusive) */
} lwl_loc;

/* Diagnostics are held until diag_flush, which writes them in source order
 * (file, line, column), each with its notes, so that the passes that find
 * them need not run in the order of the text. */
typedef struct lwl_diag_entry lwl_diag_entry;

typedef struct lwl_diag {
    FILE *out;
    int errors, warnings;
    int werror;             /* treat warnings as errors */
    lwl_diag_entry *held;
    size_t nheld, capheld;
} lwl_diag;

void diag_init(lwl_diag *d, FILE *out);
/* Writes the held diagnostics in source order and forgets them. */
void diag_flush(lwl_diag *d);
/* Prints `file:line:col: error: msg`, the quoted line and the underline. */
void diag_error(lwl_diag *d, lwl_loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warning(lwl_diag *d, lwl_loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A note follows the diagnostic it belongs to; a note with no source prints bare. */
void diag_note(lwl_diag *d, lwl_loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A one-line note (`file:line:col: note: ...`) without the quoted source. */
void diag_hint(lwl_diag *d, lwl_loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Error with no location (usage, I/O before a file is known). */
void diag_plain(lwl_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The closest candidate within a small edit distance, or NULL. */
const char *diag_suggest(const char *word, const char *const *cands, size_t n);
size_t diag_edit_distance(const char *a, const char *b);

/* Source registry: loads files (regular files of at most LWL_MAX_SOURCE bytes:
 * a FIFO or a device can never hang the compiler); returns NULL and sets
 * errno on failure. */
#define LWL_MAX_SOURCE ((size_t)16 << 20)
lwl_source *source_load(const char *path);
lwl_source *source_from_bytes(const char *name, const char *dir, const char *bytes, size_t len);
/* Opens `path` for reading only if it is a regular file of at most max bytes;
 * NULL with errno set (EISDIR, EINVAL for a device or FIFO, EFBIG) otherwise. */
FILE *source_open_regular(const char *path, size_t max);
lwl_source *source_from_text(const char *name, const char *dir, const char *text);
void source_free_all(void);

/* Small checked allocation helpers: abort with a message on exhaustion is the
 * only exit outside main, since nothing sensible can continue without memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
