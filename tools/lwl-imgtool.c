/* lwl-imgtool: runs one data-path operation of liblwl on one image and writes the result
 * as binary PPM (or raw float32), so tests can compare it against torchvision/PIL.
 * Usage: lwl-imgtool OP IN OUT [ARGS...]; lwl-imgtool help lists the operations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "lwl_augment.h"
#include "lwl_dataset.h"
#include "lwl_decode.h"

static const char usage[] =
    "usage: lwl-imgtool OP IN OUT [ARGS]   (IN: JPEG or PNG; OUT: binary PPM)\n"
    "  decode IN OUT                      the decoded RGB image\n"
    "  region IN OUT TOP LEFT H W         region-of-interest decode of the box\n"
    "  resized_crop IN OUT TOP LEFT H W SIZE\n"
    "  resize_center_crop IN OUT SHORT SIZE\n"
    "  hflip IN OUT | grayscale IN OUT\n"
    "  brightness|contrast|saturation|hue IN OUT FACTOR\n"
    "  jitter IN OUT B C S H O1 O2 O3 O4  the four in order O (0 b, 1 c, 2 s, 3 h)\n"
    "  blur IN OUT SIGMA | solarize IN OUT THRESHOLD\n"
    "  normalize IN OUT                   OUT: (3, H, W) float32, ImageNet mean/std\n"
    "  encode_ycck IN OUT                 writes IN as an Adobe YCCK JPEG (a test fixture)\n"
    "  scan ROOT [CLASSES]                prints the ImageFolder scan: label path\n"
    "  size IN                            prints W H (header only)\n"
    "  sample_crop W H SMIN SMAX RMIN RMAX SEED N\n"
    "                                     prints N boxes: top left height width fallback\n";

static int write_ppm(const char *path, const lwl_image *im)
{
    FILE *f = fopen(path, "wb");
    size_t n = (size_t)im->w * im->h * 3;

    if (!f) {
        fprintf(stderr, "lwl-imgtool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fprintf(f, "P6\n%d %d\n255\n", im->w, im->h) < 0 || fwrite(im->px, 1, n, f) != n) {
        fprintf(stderr, "lwl-imgtool: %s: write failed\n", path);
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "lwl-imgtool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load(const char *path, lwl_image *im)
{
    lwl_decode_status st;

    if (lwl_decode_file(path, im, &st)) {
        fprintf(stderr, "lwl-imgtool: %s: error: %s\n", path, st.msg);
        return -1;
    }
    if (st.warning)
        fprintf(stderr, "lwl-imgtool: %s: warning: %s\n", path, st.msg);
    return 0;
}

static int cmd_region(char **a, lwl_image *im)
{
    lwl_box b = { atoi(a[3]), atoi(a[4]), atoi(a[5]), atoi(a[6]) };
    lwl_decode_status st;
    lwl_image part;
    uint8_t *buf;
    size_t len;
    int ox, oy;

    if (lwl_read_file(a[1], &buf, &len, &st) ||
        lwl_decode_region(buf, len, b, &part, &ox, &oy, &st)) {
        fprintf(stderr, "lwl-imgtool: %s: error: %s\n", a[1], st.msg);
        return -1;
    }
    free(buf);
    if (lwl_image_alloc(im, b.width, b.height))
        return -1;
    for (int y = 0; y < b.height; y++)
        memcpy(im->px + (size_t)y * b.width * 3,
               part.px + ((size_t)(b.top - oy + y) * part.w + (b.left - ox)) * 3,
               (size_t)b.width * 3);
    lwl_image_free(&part);
    return 0;
}

static int cmd_sample(int argc, char **a)
{
    double scale[2], ratio[2];
    lwl_rng_key k = { 0 };
    int w, h, n, fb;

    if (argc != 10) {
        fputs(usage, stderr);
        return 2;
    }
    w = atoi(a[2]);
    h = atoi(a[3]);
    scale[0] = atof(a[4]);
    scale[1] = atof(a[5]);
    ratio[0] = atof(a[6]);
    ratio[1] = atof(a[7]);
    k.seed = strtoull(a[8], NULL, 10);
    n = atoi(a[9]);
    for (int i = 0; i < n; i++) {
        k.index = (uint32_t)i;
        lwl_box b = lwl_sample_resized_crop(k, w, h, scale, ratio, &fb);
        printf("%d %d %d %d %d\n", b.top, b.left, b.height, b.width, fb);
    }
    return 0;
}

/* Writes im as a 4-channel Adobe JPEG with the YCCK transform, samples inverted as
 * Adobe (and Pillow) store them: K = min(255 - R, 255 - G, 255 - B). */
static int encode_ycck(const lwl_image *im, const char *path)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    uint8_t *row = malloc((size_t)im->w * 4 + 1);
    FILE *f = fopen(path, "wb");

    if (!row || !f) {
        fprintf(stderr, "lwl-imgtool: %s: cannot write\n", path);
        free(row);
        if (f)
            fclose(f);
        return 1;
    }
    c.err = jpeg_std_error(&err); /* a test fixture writer: libjpeg's exit on error is fine */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)im->w;
    c.image_height = (JDIMENSION)im->h;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < im->h; y++) {
        const uint8_t *p = im->px + (size_t)y * im->w * 3;

        for (int x = 0; x < im->w; x++) {
            int r = p[x * 3], g = p[x * 3 + 1], b = p[x * 3 + 2];
            int mx = r > g ? (r > b ? r : b) : (g > b ? g : b), k = 255 - mx;

            /* stored = 255 - ink: C = 255 - R - K, so stored C = R + K. */
            row[x * 4] = (uint8_t)(r + k);
            row[x * 4 + 1] = (uint8_t)(g + k);
            row[x * 4 + 2] = (uint8_t)(b + k);
            row[x * 4 + 3] = (uint8_t)mx;
        }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return fclose(f) != 0;
}

/* Runs the operation named a[0] on im; the result may replace im. */
static int run_op(int argc, char **a, lwl_image *im)
{
    const char *op = a[0];
    lwl_image out = { 0 };
    int rc = 0;

    if (!strcmp(op, "resized_crop") && argc == 8) {
        lwl_box b = { atoi(a[3]), atoi(a[4]), atoi(a[5]), atoi(a[6]) };
        int size = atoi(a[7]);

        rc = lwl_image_alloc(&out, size, size) || lwl_resized_crop(im, b, size, &out);
    } else if (!strcmp(op, "resize_center_crop") && argc == 5) {
        int size = atoi(a[4]);

        rc = lwl_image_alloc(&out, size, size) ||
             lwl_resize_center_crop(im, atoi(a[3]), size, &out);
    } else if (!strcmp(op, "hflip") && argc == 3) {
        lwl_hflip(im);
    } else if (!strcmp(op, "grayscale") && argc == 3) {
        lwl_grayscale(im);
    } else if (!strcmp(op, "brightness") && argc == 4) {
        lwl_brightness(im, atof(a[3]));
    } else if (!strcmp(op, "contrast") && argc == 4) {
        lwl_contrast(im, atof(a[3]));
    } else if (!strcmp(op, "saturation") && argc == 4) {
        lwl_saturation(im, atof(a[3]));
    } else if (!strcmp(op, "hue") && argc == 4) {
        lwl_hue(im, atof(a[3]));
    } else if (!strcmp(op, "jitter") && argc == 11) {
        lwl_jitter j = { { atoi(a[7]), atoi(a[8]), atoi(a[9]), atoi(a[10]) },
                         atof(a[3]), atof(a[4]), atof(a[5]), atof(a[6]) };

        lwl_jitter_apply(im, &j);
    } else if (!strcmp(op, "blur") && argc == 4) {
        rc = lwl_gaussian_blur(im, atof(a[3]));
    } else if (!strcmp(op, "solarize") && argc == 4) {
        lwl_solarize_image(im, atoi(a[3]));
    } else {
        fputs(usage, stderr);
        return 2;
    }
    if (rc) {
        fprintf(stderr, "lwl-imgtool: %s: out of memory\n", op);
        lwl_image_free(&out);
        return 1;
    }
    if (out.px) {
        lwl_image_free(im);
        *im = out;
    }
    return 0;
}

static int cmd_normalize(const lwl_image *im, const char *path)
{
    static const float mean[3] = { 0.485f, 0.456f, 0.406f }, sd[3] = { 0.229f, 0.224f, 0.225f };
    size_t n = (size_t)im->w * im->h * 3;
    float *t = malloc(n * sizeof(float) + 1);
    FILE *f;

    if (!t)
        return 1;
    lwl_normalize_image(im, mean, sd, t);
    f = fopen(path, "wb");
    if (!f || fwrite(t, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "lwl-imgtool: %s: write failed\n", path);
        free(t);
        return 1;
    }
    free(t);
    return 0;
}

static int cmd_scan(int n, char **a)
{
    lwl_data_cfg c = { 0 };
    lwl_dataset ds;
    char *err;

    c.root = a[1];
    c.classes_file = n > 2 ? a[2] : NULL;
    c.share[LWL_TRAIN] = 1.0;
    if (lwl_dataset_open(&c, &ds, &err)) {
        fprintf(stderr, "lwl-imgtool: %s\n", err ? err : "out of memory");
        free(err);
        return 1;
    }
    for (size_t i = 0; i < ds.n[LWL_TRAIN]; i++)
        printf("%d %s\n", ds.part[LWL_TRAIN][i].label, ds.part[LWL_TRAIN][i].path);
    lwl_dataset_free(&ds);
    return 0;
}

int main(int argc, char **argv)
{
    lwl_image im = { 0 };
    char **a = argv + 1;
    int n = argc - 1, rc;

    if (n < 1 || !strcmp(a[0], "help")) {
        fputs(usage, n < 1 ? stderr : stdout);
        return n < 1 ? 2 : 0;
    }
    if (!strcmp(a[0], "sample_crop"))
        return cmd_sample(argc, argv);
    if (!strcmp(a[0], "scan") && (n == 2 || n == 3))
        return cmd_scan(n, a);
    if (!strcmp(a[0], "size") && n == 2) {
        lwl_decode_status st;
        uint8_t *buf;
        size_t len;
        int w, h;

        if (lwl_read_file(a[1], &buf, &len, &st) || lwl_image_size(buf, len, &w, &h, &st)) {
            fprintf(stderr, "lwl-imgtool: %s: error: %s\n", a[1], st.msg);
            return 1;
        }
        free(buf);
        printf("%d %d\n", w, h);
        return 0;
    }
    if (n < 3) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(a[0], "region")) {
        if (n != 7) {
            fputs(usage, stderr);
            return 2;
        }
        rc = cmd_region(a, &im) ? 1 : write_ppm(a[2], &im) ? 1 : 0;
        lwl_image_free(&im);
        return rc;
    }
    if (load(a[1], &im))
        return 1;
    if (!strcmp(a[0], "normalize"))
        rc = cmd_normalize(&im, a[2]);
    else if (!strcmp(a[0], "encode_ycck")) {
        rc = encode_ycck(&im, a[2]);
        lwl_image_free(&im);
        return rc;
    }
    else if (!strcmp(a[0], "decode"))
        rc = 0;
    else
        rc = run_op(n, a, &im);
    if (rc == 0 && strcmp(a[0], "normalize"))
        rc = write_ppm(a[2], &im) ? 1 : 0;
    lwl_image_free(&im);
    return rc;
}
