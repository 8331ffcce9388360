/* The arena that owns a compilation's syntax tree, and small tree helpers. */
#include "ast.h"

#include <stdlib.h>
#include <string.h>

struct lwl_arena {
    struct chunk *head;
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

lwl_arena *arena_new(void)
{
    return xcalloc(1, sizeof(lwl_arena));
}

void *arena_alloc(lwl_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(lwl_arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    return p;
}

void arena_free(lwl_arena *a)
{
    if (!a)
        return;
    for (struct chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* Grows *v when it is full: capacity is 4, then doubles, so it is implied by n. */
static void *grow(lwl_arena *a, void *v, int n, size_t elem)
{
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return v;
    size_t cap = n == 0 ? 4 : (size_t)n * 2;
    void *nv = arena_alloc(a, cap * elem);
    if (n)
        memcpy(nv, v, (size_t)n * elem);
    return nv;
}

void ast_push_word(lwl_arena *a, lwl_word ***v, int *n, lwl_word *w)
{
    *v = grow(a, *v, *n, sizeof **v);
    (*v)[(*n)++] = w;
}

void ast_push_stmt(lwl_arena *a, lwl_stmt ***v, int *n, lwl_stmt *s)
{
    *v = grow(a, *v, *n, sizeof **v);
    (*v)[(*n)++] = s;
}

lwl_loc loc_join(lwl_loc a, lwl_loc b)
{
    a.end_line = b.end_line;
    a.end_col = b.end_col;
    return a;
}

const char *word_describe(lwl_arena *a, const lwl_word *w)
{
    const char *s;
    switch (w->kind) {
    case W_IDENT:
        s = xasprintf("'%s'", w->text);
        break;
    case W_NUM:
        s = xasprintf("%s", w->text);
        break;
    case W_STR:
        s = xasprintf("\"%s\"", w->text);
        break;
    default:
        s = xasprintf("a list");
        break;
    }
    char *r = arena_strndup(a, s, strlen(s));
    free((void *)s);
    return r;
}
