/* The syntax tree of a .lwl file: statements are lists of words, optionally
 * followed by a block. Meaning (which word is a key, which a value) comes
 * later, from the schema. All nodes live in the arena of their file. */
#ifndef LWLC_AST_H
#define LWLC_AST_H

#include "diag.h"

/* A bump allocator; everything of one compilation is freed at once. */
typedef struct lwl_arena lwl_arena;
lwl_arena *arena_new(void);
void *arena_alloc(lwl_arena *a, size_t n);   /* zeroed */
char *arena_strndup(lwl_arena *a, const char *s, size_t n);
void arena_free(lwl_arena *a);

typedef enum { W_IDENT, W_NUM, W_STR, W_LIST } lwl_word_kind;

typedef struct lwl_word {
    lwl_word_kind kind;
    lwl_loc loc;
    const char *text;       /* identifier, string contents, or a number's spelling */
    double num;
    int is_int;             /* integral and within int range */
    int is_percent;         /* written with % (num holds the percentage, 70 for 70%) */
    int bad;                /* already reported by the lexer: checks stay silent on it */
    struct lwl_word **items;/* list elements */
    int nitems;
} lwl_word;

typedef struct lwl_block lwl_block;

typedef struct lwl_stmt {
    lwl_loc loc;
    lwl_word **words;
    int nwords;
    lwl_block *block;       /* `words { ... }`, or NULL */
} lwl_stmt;

struct lwl_block {
    lwl_loc open, close;    /* the braces (the whole file for the top level) */
    lwl_stmt **stmts;
    int nstmts;
};

/* Appending with amortised doubling inside the arena. */
void ast_push_word(lwl_arena *a, lwl_word ***v, int *n, lwl_word *w);
void ast_push_stmt(lwl_arena *a, lwl_stmt ***v, int *n, lwl_stmt *s);

/* State shared by the lexer and the parser of one file. */
typedef struct lwl_parse {
    lwl_arena *arena;
    lwl_diag *diag;
    const lwl_source *src;
    lwl_block *top;         /* result */
    int line, col;          /* position after the last token */
    int bracket_depth;      /* newlines inside [...] do not end a statement */
    int sep_pending;        /* a '}' ends its statement: a SEP follows it */
    int at_eof;             /* end of input seen; open blocks are being closed */
    int syntax_errors;      /* parse errors in this file */
    size_t offset;          /* byte offset after the last token */
    size_t tok_start, tok_len; /* the last token's bytes, for syntax errors */
    /* open braces, for "unclosed block" notes */
    lwl_loc *opens;
    int nopens, capopens;
} lwl_parse;

/* Parses one source; returns its top-level block (never NULL) and reports
 * syntax errors to d. *complete is 0 when the parser had to give up, so that
 * parts of the file may be missing. */
lwl_block *ast_parse(lwl_arena *a, lwl_diag *d, const lwl_source *src, int *complete);

/* Span from the start of `a` to the end of `b`. */
lwl_loc loc_join(lwl_loc a, lwl_loc b);
/* "number 1.5", "string \"x\"", "identifier x", "list": for messages. */
const char *word_describe(lwl_arena *a, const lwl_word *w);

#endif
