/* Lexical path arithmetic (no file-system access except getcwd). */
#include "path.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"

char *path_normalize(const char *p)
{
    size_t n = strlen(p);
    int abs = p[0] == '/';
    /* Components as (start, length) pairs; at most n/1 of them. */
    const char **part = xmalloc((n / 2 + 2) * sizeof *part);
    size_t *len = xmalloc((n / 2 + 2) * sizeof *len);
    int k = 0, up = 0;
    for (const char *s = p; *s; ) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == 1 && s[0] == '.') {
            /* skip */
        } else if (l == 2 && s[0] == '.' && s[1] == '.') {
            if (k > up)
                k--;
            else if (!abs) {
                part[k] = s;
                len[k++] = 2;
                up = k;
            }
        } else {
            part[k] = s;
            len[k++] = l;
        }
        s += l;
    }
    char *out = xmalloc(n + 3);
    size_t o = 0;
    if (abs)
        out[o++] = '/';
    for (int i = 0; i < k; i++) {
        if (i)
            out[o++] = '/';
        memcpy(out + o, part[i], len[i]);
        o += len[i];
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = 0;
    free(part);
    free(len);
    return out;
}

char *path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !dir[0] || strcmp(dir, ".") == 0)
        return path_normalize(rel);
    char *j = xasprintf("%s/%s", dir, rel);
    char *r = path_normalize(j);
    free(j);
    return r;
}

static char *absolute(const char *p)
{
    if (p[0] == '/')
        return path_normalize(p);
    char *cwd = getcwd(NULL, 0);
    char *r = path_join(cwd ? cwd : "/", p);
    free(cwd);
    return r;
}

/* Number of components of a normalised absolute path ("/" has none). */
static int count_parts(const char *p)
{
    int n = 0;
    for (const char *s = p; *s; s++)
        n += *s == '/' && s[1] != 0;
    return n;
}

/* The position after the first `n` components of a normalised absolute path. */
static const char *skip_parts(const char *p, int n)
{
    const char *s = p;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(s + 1, '/');
        s = e ? e : s + strlen(s);
    }
    return s;
}

char *path_relative(const char *target, const char *from)
{
    char *t = absolute(target), *f = absolute(from);
    int nt = count_parts(t), nf = count_parts(f), common = 0;
    while (common < nt && common < nf) {
        const char *a = skip_parts(t, common), *b = skip_parts(f, common);
        const char *ae = skip_parts(t, common + 1), *be = skip_parts(f, common + 1);
        if (ae - a != be - b || memcmp(a, b, (size_t)(ae - a)) != 0)
            break;
        common++;
    }
    int ups = nf - common;
    const char *rest = skip_parts(t, common);
    while (*rest == '/')
        rest++;
    char *out = xmalloc(3 * (size_t)ups + strlen(rest) + 2);
    out[0] = 0;
    for (int u = 0; u < ups; u++)
        strcat(out, u + 1 < ups || *rest ? "../" : "..");
    strcat(out, rest);
    if (!out[0])
        strcpy(out, ".");
    free(t);
    free(f);
    return out;
}

char *path_stem(const char *p)
{
    const char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    const char *dot = strrchr(base, '.');
    return xstrndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
}
