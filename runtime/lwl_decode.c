/* JPEG and PNG decoding to 8-bit RGB with Pillow's conversions (gray replicated, Adobe
 * CMYK/YCCK inverted then CMYK -> RGB), errors as reasons, warnings kept, never exit(). */
#include "lwl_decode.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

static void st_set(lwl_decode_status *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void st_set(lwl_decode_status *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
}

int lwl_sniff(const uint8_t *buf, size_t len)
{
    static const uint8_t png_magic[8] = { 0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A };

    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return LWL_FMT_JPEG;
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0)
        return LWL_FMT_PNG;
    return LWL_FMT_UNKNOWN;
}

/* ---- JPEG ---- */

/* libjpeg's error manager, turned into a longjmp and a message. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    lwl_decode_status *st;
} jpeg_err;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_err *e = (jpeg_err *)c->err;
    char m[JMSG_LENGTH_MAX];

    c->err->format_message(c, m);
    st_set(e->st, "JPEG: %s", m);
    e->st->warning = 0;
    longjmp(e->jb, 1);
}

/* Keeps the first warning (level -1); trace messages are dropped. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    jpeg_err *e = (jpeg_err *)c->err;
    char m[JMSG_LENGTH_MAX];

    if (level >= 0)
        return;
    if (!e->st->warning) {
        c->err->format_message(c, m);
        st_set(e->st, "JPEG: %s", m);
        e->st->warning = 1;
    }
    c->err->num_warnings++;
}

static void jpeg_silent(j_common_ptr c)
{
    (void)c;
}

/* One decoded scanline of `nc` components to RGB. CMYK is Adobe's inverted form, read
 * as Pillow does ("CMYK;I"), then Pillow's cmyk2rgb: R = nk - nk * C / 255 in its
 * integer rounding, with nk = 255 - K. */
static void jpeg_row_to_rgb(const JSAMPLE *in, int nc, int w, uint8_t *out)
{
    if (nc == 3) {
        memcpy(out, in, (size_t)w * 3);
    } else if (nc == 1) {
        for (int x = 0; x < w; x++)
            out[x * 3] = out[x * 3 + 1] = out[x * 3 + 2] = in[x];
    } else {
        for (int x = 0; x < w; x++) {
            int nk = in[x * 4 + 3];

            for (int c = 0; c < 3; c++) {
                int t = (255 - in[x * 4 + c]) * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);

                out[x * 3 + c] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
            }
        }
    }
}

/* Decodes rows [y0, y1) and at least columns [x0, x1) (widened to iMCU boundaries by
 * libjpeg) of a JPEG; region NULL decodes all. */
static int jpeg_decode(const uint8_t *buf, size_t len, const lwl_box *region, lwl_image *out,
                       int *ox, int *oy, lwl_decode_status *st)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    JSAMPLE *volatile row = NULL;
    volatile int created = 0;

    out->px = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    err.pub.output_message = jpeg_silent;
    err.st = st;
    if (setjmp(err.jb)) {
        if (created)
            jpeg_destroy_decompress(&cinfo);
        free(row);
        lwl_image_free(out);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    created = 1;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    st->src_w = (int)cinfo.image_width;
    st->src_h = (int)cinfo.image_height;

    /* Output colour space as Pillow asks for it. */
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default: cinfo.out_color_space = JCS_RGB; break;
    }
    jpeg_start_decompress(&cinfo);

    /* The window: whole, or the region widened by 2 pixels (the edge pixels of a
     * cropped decode see replicated chroma) and aligned by jpeg_crop_scanline. */
    int W = (int)cinfo.output_width, H = (int)cinfo.output_height, nc = cinfo.output_components;
    int y0 = 0, y1 = H;
    JDIMENSION cx = 0, cw = (JDIMENSION)W;

    if (region) {
        int x0 = region->left - 2, x1 = region->left + region->width + 2;

        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > W ? W : x1;
        y0 = region->top - 2;
        y0 = y0 < 0 ? 0 : y0;
        y1 = region->top + region->height + 2;
        y1 = y1 > H ? H : y1;
        cx = (JDIMENSION)x0;
        cw = (JDIMENSION)(x1 - x0);
        if (cw < (JDIMENSION)W)
            jpeg_crop_scanline(&cinfo, &cx, &cw);
        if (y0 > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0) != (JDIMENSION)y0) {
            st_set(st, "JPEG: could not skip to row %d", y0);
            longjmp(err.jb, 1);
        }
    }
    row = malloc((size_t)cinfo.output_width * (size_t)nc + 1);
    if (!row || lwl_image_alloc(out, (int)cw, y1 - y0)) {
        st_set(st, "out of memory for a %dx%d image", W, H);
        longjmp(err.jb, 1);
    }

    /* The rows; a truncated file yields libjpeg's filler rows and a warning. RGB output
     * goes straight into the image, several rows a call (no copy, and libjpeg need not
     * upsample into its spare row when a call asks for fewer rows than it makes). */
    int direct = nc == 3 && cinfo.output_width == cw;

    for (int y = y0; y < y1;) {
        JSAMPROW rp[8];
        int want = direct ? (y1 - y < 8 ? y1 - y : 8) : 1, got;

        for (int k = 0; k < want; k++)
            rp[k] = direct ? out->px + (size_t)(y - y0 + k) * cw * 3 : row;
        got = (int)jpeg_read_scanlines(&cinfo, rp, (JDIMENSION)want);
        if (got < 1) {
            st_set(st, "JPEG: no data for row %d", y);
            longjmp(err.jb, 1);
        }
        if (!direct)
            jpeg_row_to_rgb(row, nc, (int)cw, out->px + (size_t)(y - y0) * cw * 3);
        y += got;
    }
    if (ox)
        *ox = (int)cx;
    if (oy)
        *oy = y0;
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return 0;
}

/* ---- PNG ---- */

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    lwl_decode_status *st;
} png_src;

static void png_on_error(png_structp p, png_const_charp m)
{
    png_src *s = png_get_error_ptr(p);

    st_set(s->st, "PNG: %s", m);
    s->st->warning = 0;
    png_longjmp(p, 1);
}

static void png_on_warning(png_structp p, png_const_charp m)
{
    png_src *s = png_get_error_ptr(p);

    if (!s->st->warning) {
        st_set(s->st, "PNG: %s", m);
        s->st->warning = 1;
    }
}

static void png_read_mem(png_structp p, png_bytep data, png_size_t n)
{
    png_src *s = png_get_io_ptr(p);

    if (n > s->len - s->pos)
        png_error(p, "file is truncated");
    memcpy(data, s->buf + s->pos, n);
    s->pos += n;
}

/* PNG to RGB as Pillow's convert('RGB'): palette expanded, gray replicated, alpha and
 * transparency dropped, 16-bit samples reduced to their high byte. */
static int png_decode(const uint8_t *buf, size_t len, lwl_image *out, lwl_decode_status *st)
{
    png_src src = { buf, len, 0, st };
    png_structp p;
    png_infop info = NULL;
    png_bytep *volatile rows = NULL;

    out->px = NULL;
    p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!p || !(info = png_create_info_struct(p))) {
        st_set(st, "PNG: cannot create the decoder");
        png_destroy_read_struct(p ? &p : NULL, NULL, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_read_struct(&p, &info, NULL);
        free(rows);
        lwl_image_free(out);
        return -1;
    }
    png_set_read_fn(p, &src, png_read_mem);
    png_read_info(p, info);

    int w = (int)png_get_image_width(p, info), h = (int)png_get_image_height(p, info);
    int type = png_get_color_type(p, info);

    st->src_w = w;
    st->src_h = h;
    png_set_strip_16(p);
    png_set_packing(p);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(p);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_expand_gray_1_2_4_to_8(p);
        png_set_gray_to_rgb(p);
    }
    if (type & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    if (png_get_rowbytes(p, info) != (size_t)w * 3)
        png_error(p, "unexpected row layout after conversion to RGB");

    if (lwl_image_alloc(out, w, h) || !(rows = malloc(sizeof(png_bytep) * (size_t)h)))
        png_error(p, "out of memory");
    for (int y = 0; y < h; y++)
        rows[y] = out->px + (size_t)y * w * 3;
    png_read_image(p, rows);
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    return 0;
}

/* ---- entry points ---- */

static int check_header(const uint8_t *buf, size_t len, lwl_decode_status *st)
{
    int fmt;

    st->warning = 0;
    st->msg[0] = '\0';
    st->src_w = st->src_h = 0;
    if (len == 0) {
        st_set(st, "empty file");
        return LWL_FMT_UNKNOWN;
    }
    fmt = lwl_sniff(buf, len);
    if (fmt == LWL_FMT_UNKNOWN)
        st_set(st, "not a JPEG or PNG image (first bytes %02x %02x %02x %02x)", buf[0],
               len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
    return fmt;
}

int lwl_decode_mem(const uint8_t *buf, size_t len, lwl_image *out, lwl_decode_status *st)
{
    switch (check_header(buf, len, st)) {
    case LWL_FMT_JPEG: return jpeg_decode(buf, len, NULL, out, NULL, NULL, st);
    case LWL_FMT_PNG: return png_decode(buf, len, out, st);
    default: out->px = NULL; return -1;
    }
}

int lwl_decode_region(const uint8_t *buf, size_t len, lwl_box box, lwl_image *out, int *ox,
                      int *oy, lwl_decode_status *st)
{
    switch (check_header(buf, len, st)) {
    case LWL_FMT_JPEG: return jpeg_decode(buf, len, &box, out, ox, oy, st);
    case LWL_FMT_PNG: *ox = *oy = 0; return png_decode(buf, len, out, st);
    default: out->px = NULL; return -1;
    }
}

int lwl_read_file(const char *path, uint8_t **buf, size_t *len, lwl_decode_status *st)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    size_t cap = 0, n = 0;

    st->warning = 0;
    if (!f) {
        st_set(st, "cannot open: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(b, cap ? cap * 2 : 1 << 16);

            if (!nb) {
                st_set(st, "out of memory reading the file");
                break;
            }
            b = nb;
            cap = cap ? cap * 2 : 1 << 16;
        }
        size_t got = fread(b + n, 1, cap - n, f);

        n += got;
        if (got == 0) {
            if (ferror(f))
                st_set(st, "read error: %s", strerror(errno));
            else {
                fclose(f);
                *buf = b;
                *len = n;
                return 0;
            }
            break;
        }
    }
    fclose(f);
    free(b);
    return -1;
}

int lwl_decode_file(const char *path, lwl_image *out, lwl_decode_status *st)
{
    uint8_t *buf;
    size_t len;
    int rc;

    out->px = NULL;
    if (lwl_read_file(path, &buf, &len, st))
        return -1;
    rc = lwl_decode_mem(buf, len, out, st);
    free(buf);
    return rc;
}

/* The size from a JPEG's header: no pixel is decoded. */
static int jpeg_size(const uint8_t *buf, size_t len, int *w, int *h, lwl_decode_status *st)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;

    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    err.pub.output_message = jpeg_silent;
    err.st = st;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    *w = (int)cinfo.image_width;
    *h = (int)cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int lwl_image_size(const uint8_t *buf, size_t len, int *w, int *h, lwl_decode_status *st)
{
    switch (check_header(buf, len, st)) {
    case LWL_FMT_JPEG:
        return jpeg_size(buf, len, w, h, st);
    case LWL_FMT_PNG:
        if (len < 24 || memcmp(buf + 12, "IHDR", 4) != 0) {
            st_set(st, "PNG: no IHDR chunk");
            return -1;
        }
        *w = (int)be32(buf + 16);
        *h = (int)be32(buf + 20);
        if (*w <= 0 || *h <= 0) {
            st_set(st, "PNG: bad size %dx%d", *w, *h);
            return -1;
        }
        return 0;
    default:
        return -1;
    }
}
