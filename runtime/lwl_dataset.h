/* The data set: an ImageFolder scan (classes sorted by name give labels, files sorted by
 * byte order), an optional class list, and the seeded per-class train/val/test split,
 * a pure function of (sorted file list, seed); or existing root/train and root/val. */
#ifndef LWL_DATASET_H
#define LWL_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path;   /* root-joined path of the file */
    int label;    /* index into classes */
} lwl_item;

enum { LWL_TRAIN, LWL_VAL, LWL_TEST, LWL_NPARTS };

typedef struct {
    const char *root;          /* the ImageFolder tree */
    const char *classes_file;  /* keep only these classes (one a line), or NULL */
    int split_folders;         /* 1: use root/train and root/val as they are */
    double share[LWL_NPARTS];  /* train, val, test shares summing to 1 (else ignored) */
    uint64_t seed;             /* the split seed */
} lwl_data_cfg;

typedef struct {
    int nclasses;
    char **classes;                 /* (nclasses) sorted names */
    size_t n[LWL_NPARTS];           /* items per part */
    lwl_item *part[LWL_NPARTS];     /* each part in (class, file) order */
} lwl_dataset;

/* Scans and splits. 0 on success; -1 with *err a malloc'd message (free it). */
int lwl_dataset_open(const lwl_data_cfg *cfg, lwl_dataset *ds, char **err);
void lwl_dataset_free(lwl_dataset *ds);

/* The split of one class of n files: part[i] (0 train, 1 val, 2 test) of the i-th file
 * in sorted order. Cuts at round(n * cumulative share) after a shuffle keyed by (seed,
 * key); key is lwl_class_key(class name), so a class splits alike whatever the others.
 * 0, or -1 when out of memory. */
uint32_t lwl_class_key(const char *name);
int lwl_split_class(size_t n, const double share[LWL_NPARTS], uint64_t seed, uint32_t key,
                     uint8_t *part);

#endif
