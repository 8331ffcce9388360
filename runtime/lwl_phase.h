/* The data phases of a generated program: `scan` (scan.json), `views N` (views/<i>_v<k>.png and
 * params.jsonl), the data part of `bench`; every file is written to a temporary name and
 * renamed. Formats: ARCHITECTURE.md. */
#ifndef LWL_PHASE_H
#define LWL_PHASE_H

#include <stdint.h>
#include <stdio.h>

#include "lwl_dataset.h"
#include "lwl_loader.h"

typedef struct {
    const char *root;         /* the data root: file names are written relative to it */
    const lwl_dataset *ds;
    const char *out_dir;      /* created when missing */
    FILE *log;                /* summary lines; NULL: quiet */
    int threads;              /* >= 1 */
    uint64_t seed;            /* the augmentation seed */
} lwl_phase_ctx;

/* Decodes every image of every split once; writes out_dir/scan.json:
 * {"classes": C, "splits": {"train": {"files": n, "readable": r, "unreadable": u}, ...},
 *  "unreadable": [{"split", "file", "reason"}...], "warnings": [same]}
 * and one summary line. Unreadable files are not an error. 0, or -1 with *err. */
int lwl_phase_scan(const lwl_phase_ctx *c, char **err);

/* Train samples 0..n-1 in file order (epoch 0, keyed by their index) through the
 * pipeline's views: out_dir/views/<i>_v<k>.png and views/params.jsonl, one line per sample
 * and view; an unreadable file gets a line with "error" instead of "ops". 0 or -1. */
int lwl_phase_views(const lwl_phase_ctx *c, const lwl_pipeline *p, int n, char **err);

/* Images per second of decode + every view + normalise through the loader with
 * c->threads workers, over `images` train samples (at least one pass is not needed).
 * 0 or -1. */
int lwl_phase_bench_data(const lwl_phase_ctx *c, const lwl_pipeline *p, int images,
                         double *img_per_s, char **err);

/* Writes out_dir/bench.json: {"data": {"threads": T, "img_per_s": X}, "step": STEP} where
 * step_json is the step object's text (NULL: no "step" key). 0 or -1. */
int lwl_bench_json_write(const char *out_dir, int threads, double img_per_s,
                         const char *step_json, char **err);

/* An RGB (h, w, 3) image as an 8-bit PNG, through a temporary name. 0 or -1 with *err. */
int lwl_write_png(const char *path, int w, int h, const uint8_t *px, char **err);

/* Appends s as a JSON string (quoted, escaped). */
void lwl_json_str(lwl_strbuf *b, const char *s);

/* path relative to root when it lies below it, else path. */
const char *lwl_rel_path(const char *root, const char *path);

#endif
