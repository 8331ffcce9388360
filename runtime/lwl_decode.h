/* Image decoding for the data path: JPEG (libjpeg-turbo) and PNG (libpng), chosen by the
 * first bytes, always to 8-bit RGB as Pillow's Image.open(...).convert('RGB') gives. */
#ifndef LWL_DECODE_H
#define LWL_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "lwl_augment.h"

#define LWL_DECODE_MSG 256

/* What became of one decode: ok (0) or failed (-1) with a reason; a decode that worked
 * may still carry a warning (e.g. a truncated file, decoded as far as it goes). */
typedef struct {
    int warning;                 /* 1 when msg holds a warning of a successful decode */
    char msg[LWL_DECODE_MSG];    /* the reason of a failure, or the first warning */
    int src_w, src_h;            /* the full image's size */
} lwl_decode_status;

enum { LWL_FMT_UNKNOWN, LWL_FMT_JPEG, LWL_FMT_PNG };

/* The format the first bytes announce. */
int lwl_sniff(const uint8_t *buf, size_t len);

/* Decodes an in-memory image into *out (allocated here; free with lwl_image_free).
 * 0 on success, -1 with st->msg set; never exits, never prints. */
int lwl_decode_mem(const uint8_t *buf, size_t len, lwl_image *out, lwl_decode_status *st);

/* Reads and decodes a file; errors name the system's reason (no such file, ...). */
int lwl_decode_file(const char *path, lwl_image *out, lwl_decode_status *st);

/* Decodes at least the region box of the image (a JPEG decodes only the rows and the
 * iMCU columns it needs; a PNG decodes whole). *out then covers the source rectangle
 * starting at (*ox, *oy); the pixels equal those of a full decode. */
int lwl_decode_region(const uint8_t *buf, size_t len, lwl_box box, lwl_image *out, int *ox,
                      int *oy, lwl_decode_status *st);

/* Reads a whole file into a malloc'd buffer; 0, or -1 with st->msg set. */
int lwl_read_file(const char *path, uint8_t **buf, size_t *len, lwl_decode_status *st);

/* Just the size of an image (header only); 0, or -1 with st->msg set. */
int lwl_image_size(const uint8_t *buf, size_t len, int *w, int *h, lwl_decode_status *st);

#endif
