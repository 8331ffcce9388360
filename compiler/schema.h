/* The schema of the language: which blocks exist, which settings each takes,
 * of which type, with which bounds. Statements are split into settings by it
 * (so `knn { every 5 k 20 }` is two settings), and the checker converts by it. */
#ifndef LWLC_SCHEMA_H
#define LWLC_SCHEMA_H

#include <stddef.h>

typedef enum { K_VALUE, K_BLOCK, K_PARAMS } lwl_kkind;

typedef enum {
    T_INT, T_NUM, T_STR, T_PATH, T_ENUM, T_RANGE, T_VEC3, T_INTLIST, T_PATHLIST,
    T_SPLITREF,     /* split name and an optional share: `val 10%` */
    T_SPLIT,        /* `folders` or `train 70% val 20% test 10%` */
    T_IDENTS        /* one or more names: `top1 top5` */
} lwl_vtype;

typedef enum {
    C_ANY, C_PROB, C_POS, C_NONNEG, C_OPEN01, C_UNIT_RIGHT_OPEN, C_BYTE, C_HUE,
    C_RANGE_SCALE,  /* 0 < low <= high <= 1 */
    C_RANGE_POS     /* 0 < low <= high */
} lwl_vcheck;

typedef struct lwl_bschema lwl_bschema;

typedef struct lwl_kschema {
    const char *key;
    lwl_kkind kind;
    lwl_vtype type;
    lwl_vcheck check;
    const char *const *enums;   /* NULL-terminated names, index = C enum value */
    const lwl_bschema *sub;     /* K_BLOCK and K_PARAMS */
    size_t off;                 /* where the value goes in the block's struct */
} lwl_kschema;

struct lwl_bschema {
    const char *name;
    const lwl_kschema *keys;
    int nkeys;
    int indexed;                /* `view 1 { }`: the block takes a number */
    int replace_whole;          /* a derived spec replaces it rather than merging */
};

extern const lwl_bschema schema_top, schema_view;

const lwl_kschema *schema_find(const lwl_bschema *b, const char *key);
/* The keys of b as an array for suggestions; returns the count. */
int schema_keys(const lwl_bschema *b, const char **out, int max);
int schema_enum_index(const char *const *enums, const char *name);
int schema_enum_count(const char *const *enums);

#endif
