/* safetensors files: checkpoints, dumps and feature files are written and read here. Layout:
 * u64 little-endian header length N, N bytes of JSON (padded with spaces to a multiple of 8),
 * then the tensors' bytes back to back, row-major, little-endian, without holes. */
#ifndef LWL_SAFETENSORS_H
#define LWL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum { LWL_ST_MAXDIM = 8 };

typedef enum {
    LWL_ST_F32,
    LWL_ST_F64,
    LWL_ST_F16,
    LWL_ST_BF16,
    LWL_ST_I64,
    LWL_ST_I32,
    LWL_ST_I16,
    LWL_ST_I8,
    LWL_ST_U8,
    LWL_ST_BOOL,
} lwl_st_dtype;

/* Functions returning int give 0 or -1, constructors NULL; lwl_st_error() then says why (with
 * the file's path where there is one). Nothing here exits. */
const char *lwl_st_error(void);
const char *lwl_st_dtype_name(lwl_st_dtype dt); /* "F32", ... */
size_t lwl_st_dtype_size(lwl_st_dtype dt);

/* ---- writing. Tensors are written in the order added; the writer keeps the data pointer,
 * which must stay valid until lwl_st_write. Names and metadata keys must be unique. */
typedef struct lwl_st_writer lwl_st_writer;
lwl_st_writer *lwl_st_writer_new(void);
int lwl_st_add(lwl_st_writer *w, const char *name, lwl_st_dtype dt, int ndim,
               const int64_t *shape, const void *data);
int lwl_st_add_meta(lwl_st_writer *w, const char *key, const char *value);
/* Writes path.tmp, flushes and fsyncs it, renames it to path and fsyncs the directory. */
int lwl_st_write(lwl_st_writer *w, const char *path);
void lwl_st_writer_free(lwl_st_writer *w);

/* ---- reading. The file is mapped read-only; tensors point into the mapping, aligned as their
 * offset allows (8 bytes from the buffer start for files written here or by Python). */
typedef struct {
    const char *name;
    lwl_st_dtype dtype;
    int ndim;
    int64_t shape[LWL_ST_MAXDIM];
    int64_t numel;
    size_t nbytes;
    const void *data;
} lwl_st_tensor;

typedef struct lwl_st_file lwl_st_file;
/* Opens and checks: header length, JSON, dtypes, shapes against offsets, offsets covering the
 * data buffer without holes or overlaps. */
lwl_st_file *lwl_st_open(const char *path);
int lwl_st_count(const lwl_st_file *f);
const lwl_st_tensor *lwl_st_at(const lwl_st_file *f, int i); /* sorted by name */
const lwl_st_tensor *lwl_st_get(const lwl_st_file *f, const char *name); /* NULL if absent */
/* The tensor `name` if it has dtype dt and the given shape; else NULL with a message. */
const lwl_st_tensor *lwl_st_expect(const lwl_st_file *f, const char *name, lwl_st_dtype dt,
                                   int ndim, const int64_t *shape);
const char *lwl_st_meta(const lwl_st_file *f, const char *key); /* NULL if absent */
void lwl_st_close(lwl_st_file *f);

#endif
