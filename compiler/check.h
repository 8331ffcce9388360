/* Internal interface between the passes that read a spec: settings as the
 * schema splits them (check.c) and their conversion to lwl_spec (convert.c). */
#ifndef LWLC_CHECK_H
#define LWLC_CHECK_H

#include "ast.h"
#include "schema.h"
#include "spec.h"

typedef struct bset bset;

/* One setting: a key with its values, or a block / parameter list. */
typedef struct setting {
    const lwl_kschema *k;
    int index;              /* `view 2` → 2; 0 otherwise */
    lwl_loc key_loc, loc;   /* the key; the key with its values */
    lwl_word **vals;
    int nvals;
    bset *sub;              /* K_BLOCK and K_PARAMS */
} setting;

/* The settings of one block, in the order written. */
struct bset {
    const lwl_bschema *schema;
    lwl_loc loc;
    setting **v;
    int n, cap;
};

setting *bset_find(const bset *b, const char *key, int index);

/* Converts the merged settings into *out with defaults, bounds and the checks
 * across settings; `path` is the top file. Errors go to d. When `incomplete`
 * (a file was unreadable or unparsable), missing settings are not reported. */
void convert_spec(lwl_arena *a, lwl_diag *d, const bset *top, const char *path, int incomplete,
                  lwl_spec *out);

#endif
