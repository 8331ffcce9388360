/* Emits views.c: one augmentation routine per view, specialised to the
 * spec. A transform with p 0 has no code, p 1 draws no coin, every parameter
 * is a literal. The runtime's loader calls region() then make() per sample,
 * or params() in its staging mode for the GPU kernels of views.cu. */
#include <string.h>

#include "emit.h"

#define L(...) emit_line(e, __VA_ARGS__)

/* The view's resized_crop, or NULL; lowering made sure it is the first op. */
static const lwl_op *view_crop(const lwl_view *v)
{
    for (int i = 0; i < v->nops; i++)
        if (v->ops[i].kind == OP_RESIZED_CROP && v->ops[i].p > 0)
            return &v->ops[i];
    return NULL;
}

static void emit_region(emitter *e, const lwl_plan *p, int vi)
{
    const lwl_view *v = &p->spec->augment.view[vi];
    const lwl_op *crop = view_crop(v);
    int shortside = p->size * 8 / 7;
    L("/* The source box view %d reads for one sample. */", vi + 1);
    L("static lwl_box view%d_region(int w, int h, uint64_t seed, uint32_t epoch, "
      "uint32_t index)", vi + 1);
    L("{");
    if (!crop) {
        L("    (void)seed;");
        L("    (void)epoch;");
        L("    (void)index;");
        L("    /* no resized_crop: Resize(%d) + CenterCrop(%d), as at evaluation */", shortside,
          p->size);
        L("    return lwl_resize_center_crop_box(w, h, %d, SIZE);", shortside);
        L("}");
        L("%s", "");
        return;
    }
    L("    /* resized_crop p %g scale [%g, %g] ratio [%.17g, %.17g] (%s) */", crop->p,
      crop->scale[0], crop->scale[1], crop->ratio[0], crop->ratio[1], emit_where(&crop->loc));
    L("    static const double scale[2] = { %.17g, %.17g };", crop->scale[0], crop->scale[1]);
    L("    static const double ratio[2] = { %.17g, %.17g };", crop->ratio[0], crop->ratio[1]);
    L("    lwl_rng_key k = { seed, epoch, index, %d, 0 };", vi + 1);
    if (crop->p < 1) {
        L("    uint32_t coin[4];");
        L("    lwl_rng_block(seed, epoch, index, %d, 0, 10, coin);", vi + 1);
        L("    if (lwl_rng_u01(coin[0]) >= %.17g)", crop->p);
        L("        return lwl_resize_center_crop_box(w, h, %d, SIZE);", shortside);
    }
    L("    int fallback;");
    L("    return lwl_sample_resized_crop(k, w, h, scale, ratio, &fallback);");
    L("}");
    L("%s", "");
}

/* `if (coin)` for a transform of probability p at slot `slot`, or nothing for p 1. */
static int open_coin(emitter *e, const lwl_op *op, int slot, int vi)
{
    if (op->p >= 1)
        return 0;
    L("    if (lwl_sample_coin((lwl_rng_key){ seed, epoch, index, %d, %d }, %.17g)) {", vi + 1,
      slot, op->p);
    return 1;
}

/* Whether a view draws anything from the RNG. */
static int view_draws(const lwl_view *v)
{
    for (int i = 0; i < v->nops; i++) {
        const lwl_op *op = &v->ops[i];
        if (op->p > 0 && (op->p < 1 || op->kind == OP_RESIZED_CROP ||
                          op->kind == OP_COLOR_JITTER || op->kind == OP_GAUSSIAN_BLUR))
            return 1;
    }
    return 0;
}

/* The LWL_VP_* flag of an op that fired. */
static const char *op_flag(lwl_op_kind k)
{
    static const char *const flags[OP__COUNT] = { "LWL_VP_CROP", "LWL_VP_FLIP",
                                                  "LWL_VP_JITTER", "LWL_VP_GRAY",
                                                  "LWL_VP_BLUR", "LWL_VP_SOLARIZE" };
    return flags[k];
}

/* viewN_params: make()'s draws, with its keys, into a lwl_view_params. */
static void emit_params(emitter *e, const lwl_plan *p, int vi)
{
    const lwl_view *v = &p->spec->augment.view[vi];
    const lwl_op *crop = view_crop(v);
    int shortside = p->size * 8 / 7;
    L("/* What view %d draws for one sample, as plain values for its GPU kernel (views.cu):",
      vi + 1);
    L(" * view%d_make's draws, with the same keys. */", vi + 1);
    L("static void view%d_params(int w, int h, uint64_t seed, uint32_t epoch, uint32_t index,",
      vi + 1);
    L("                         lwl_view_params *vp)");
    L("{");
    if (!view_draws(v)) {
        L("    (void)seed;");
        L("    (void)epoch;");
        L("    (void)index;");
    }
    if (!crop) {
        L("    /* no resized_crop: Resize(%d) + CenterCrop(%d), as at evaluation */", shortside,
          p->size);
        L("    lwl_params_resize_center_crop(vp, w, h, %d, SIZE);", shortside);
    } else if (crop->p < 1) {
        L("    /* resized_crop p %g (%s): else Resize(%d) + CenterCrop(%d) */", crop->p,
          emit_where(&crop->loc), shortside, p->size);
        L("    uint32_t coin[4];");
        L("    lwl_rng_block(seed, epoch, index, %d, 0, 10, coin);", vi + 1);
        L("    if (lwl_rng_u01(coin[0]) >= %.17g)", crop->p);
        L("        lwl_params_resize_center_crop(vp, w, h, %d, SIZE);", shortside);
        L("    else");
        L("        lwl_params_resized_crop(vp, view%d_region(w, h, seed, epoch, index), SIZE);",
          vi + 1);
    } else {
        L("    /* resized_crop p 1 (%s) */", emit_where(&crop->loc));
        L("    lwl_params_resized_crop(vp, view%d_region(w, h, seed, epoch, index), SIZE);",
          vi + 1);
    }
    for (int i = 0; i < v->nops; i++) {
        const lwl_op *op = &v->ops[i];
        if (op->kind == OP_RESIZED_CROP)
            continue;
        L("%s", "");
        if (op->p <= 0) {
            L("    /* %s p 0 (%s): nothing drawn */", lwl_op_names[op->kind],
              emit_where(&op->loc));
            continue;
        }
        L("    /* %s p %g (%s) */", lwl_op_names[op->kind], op->p, emit_where(&op->loc));
        int open = open_coin(e, op, i, vi);
        const char *in = open ? "    " : "";
        L("%s    vp->fired |= %s;", in, op_flag(op->kind));
        if (op->kind == OP_COLOR_JITTER) {
            L("%s    vp->jitter = lwl_sample_jitter((lwl_rng_key){ seed, epoch, index, %d, %d },",
              in, vi + 1, i);
            L("%s                                   %.17g, %.17g,", in, op->brightness,
              op->contrast);
            L("%s                                   %.17g, %.17g);", in, op->saturation, op->hue);
        } else if (op->kind == OP_GAUSSIAN_BLUR) {
            L("%s    vp->sigma = lwl_sample_sigma((lwl_rng_key){ seed, epoch, index, %d, %d },",
              in, vi + 1, i);
            L("%s                                 %.17g, %.17g);", in, op->sigma[0], op->sigma[1]);
        }
        if (open)
            L("    }");
    }
    L("}");
    L("%s", "");
}

static void emit_make(emitter *e, const lwl_plan *p, int vi)
{
    const lwl_view *v = &p->spec->augment.view[vi];
    const lwl_op *crop = view_crop(v);
    int shortside = p->size * 8 / 7;
    L("/* View %d (%s):", vi + 1, emit_where(&v->loc));
    for (int i = 0; i < v->nops; i++)
        L(" *   %s p %g", lwl_op_names[v->ops[i].kind], v->ops[i].p);
    L(" * out is SIZE x SIZE x 3 uint8; rec collects the ops that fired. */");
    L("static int view%d_make(const lwl_src *src, uint64_t seed, uint32_t epoch, "
      "uint32_t index,", vi + 1);
    L("                      uint8_t *out, lwl_strbuf *rec)");
    L("{");
    L("    lwl_image im = { SIZE, SIZE, out };");
    L("    int first = 1;");
    L("%s", "");
    L("    if (rec)");
    L("        lwl_strbuf_printf(rec, \"[\");");
    if (crop) {
        L("    lwl_box box = view%d_region(src->full_w, src->full_h, seed, epoch, index);",
          vi + 1);
        if (crop->p < 1) {
            L("    uint32_t coin[4];");
            L("    lwl_rng_block(seed, epoch, index, %d, 0, 10, coin);", vi + 1);
            L("    if (lwl_rng_u01(coin[0]) >= %.17g) {", crop->p);
            L("        if (lwl_src_resize_center_crop(src, %d, SIZE, out))", shortside);
            L("            return -1;");
            L("        if (rec)");
            L("            lwl_strbuf_printf(rec, \"{\\\"op\\\": \\\"resize_center_crop\\\"}\");");
            L("    } else {");
            L("        if (lwl_src_resized_crop(src, box, SIZE, out))");
            L("            return -1;");
            L("        if (rec)");
            L("            lwl_rec_resized_crop(rec, 1, box);");
            L("    }");
        } else {
            L("    if (lwl_src_resized_crop(src, box, SIZE, out))");
            L("        return -1;");
            L("    if (rec)");
            L("        lwl_rec_resized_crop(rec, 1, box);");
        }
    } else {
        L("    (void)seed;");
        L("    (void)epoch;");
        L("    (void)index;");
        L("    if (lwl_src_resize_center_crop(src, %d, SIZE, out))", shortside);
        L("        return -1;");
        L("    if (rec)");
        L("        lwl_strbuf_printf(rec, \"{\\\"op\\\": \\\"resize_center_crop\\\"}\");");
    }
    L("    first = 0;");

    for (int i = 0; i < v->nops; i++) {
        const lwl_op *op = &v->ops[i];
        if (op->kind == OP_RESIZED_CROP)
            continue;
        L("%s", "");
        if (op->p <= 0) {
            L("    /* %s p 0 (%s): no code */", lwl_op_names[op->kind], emit_where(&op->loc));
            continue;
        }
        L("    /* %s p %g (%s) */", lwl_op_names[op->kind], op->p, emit_where(&op->loc));
        int open = open_coin(e, op, i, vi);
        const char *in = open ? "    " : "";
        switch (op->kind) {
        case OP_HORIZONTAL_FLIP:
            L("%s    lwl_hflip(&im);", in);
            L("%s    if (rec)", in);
            L("%s        lwl_strbuf_printf(rec, \", {\\\"op\\\": \\\"horizontal_flip\\\"}\");", in);
            break;
        case OP_COLOR_JITTER:
            L("%s    lwl_jitter j = lwl_sample_jitter((lwl_rng_key){ seed, epoch, index, %d, %d },",
              in, vi + 1, i);
            L("%s                                     %.17g, %.17g,", in, op->brightness,
              op->contrast);
            L("%s                                     %.17g, %.17g);", in, op->saturation,
              op->hue);
            L("%s    lwl_jitter_apply(&im, &j);", in);
            L("%s    if (rec)", in);
            L("%s        lwl_rec_jitter(rec, 0, &j);", in);
            break;
        case OP_GRAYSCALE:
            L("%s    lwl_grayscale(&im);", in);
            L("%s    if (rec)", in);
            L("%s        lwl_strbuf_printf(rec, \", {\\\"op\\\": \\\"grayscale\\\"}\");", in);
            break;
        case OP_GAUSSIAN_BLUR:
            L("%s    double sigma = lwl_sample_sigma((lwl_rng_key){ seed, epoch, index, %d, %d },",
              in, vi + 1, i);
            L("%s                                    %.17g, %.17g);", in, op->sigma[0],
              op->sigma[1]);
            L("%s    if (lwl_gaussian_blur(&im, sigma))", in);
            L("%s        return -1;", in);
            L("%s    if (rec)", in);
            L("%s        lwl_strbuf_printf(rec, \", {\\\"op\\\": \\\"gaussian_blur\\\", "
              "\\\"sigma\\\": %%.17g}\", sigma);", in);
            break;
        case OP_SOLARIZE:
            L("%s    lwl_solarize_image(&im, %d);", in, (int)op->threshold);
            L("%s    if (rec)", in);
            L("%s        lwl_strbuf_printf(rec, \", {\\\"op\\\": \\\"solarize\\\", "
              "\\\"threshold\\\": %d}\");", in, (int)op->threshold);
            break;
        default:
            break;
        }
        if (open)
            L("    }");
    }
    L("    (void)first;");
    L("    (void)im;");
    L("    if (rec)");
    L("        lwl_strbuf_printf(rec, \"]\");");
    L("    return rec && rec->oom ? -1 : 0;");
    L("}");
    L("%s", "");
}

int emit_views_c(const lwl_plan *p, FILE *f)
{
    emitter ev = { f, p, 0, NULL }, *e = &ev;
    const lwl_spec *s = p->spec;
    L("/* The two views of experiment '%s', each one routine with the spec's", p->name);
    L(" * transforms in order and their values as literals (semantics pil: uint8");
    L(" * after every colour op, exactly torchvision on PIL). Generated by lwlc. */");
    L("#include <stdint.h>");
    L("%s", "");
    L("#include \"lwl_augment.h\"");
    L("#include \"lwl_loader.h\"");
    L("#include \"lwl_philox.h\"");
    L("#include \"plan.h\"");
    L("%s", "");
    for (int v = 0; v < 2; v++) {
        emit_region(e, p, v);
        emit_make(e, p, v);
        emit_params(e, p, v);
    }
    L("/* ToTensor + Normalize with mean [%g, %g, %g] and std [%g, %g, %g]. */",
      s->augment.mean[0], s->augment.mean[1], s->augment.mean[2], s->augment.std[0],
      s->augment.std[1], s->augment.std[2]);
    L("static void views_normalize(const uint8_t *u8, float *chw)");
    L("{");
    L("    static const float mean[3] = { %.9gf, %.9gf, %.9gf };", s->augment.mean[0],
      s->augment.mean[1], s->augment.mean[2]);
    L("    static const float std[3] = { %.9gf, %.9gf, %.9gf };", s->augment.std[0],
      s->augment.std[1], s->augment.std[2]);
    L("    lwl_normalize_u8(u8, (size_t)SIZE * SIZE, mean, std, chw);");
    L("}");
    L("%s", "");
    L("const lwl_pipeline views_pipeline = {");
    L("    SIZE, 2,");
    L("    { { view1_region, view1_make, view1_params }, { view2_region, view2_make, "
      "view2_params } },");
    L("    views_normalize,");
    L("};");
    return e->failed ? -1 : 0;
}

/* ---- views.cu: the same views as GPU kernels over the loader's staged batches ---- */

/* The spec's element type on the GPU: lwl_dtype, the output function, its size, its name. */
static void view_dtype(const lwl_plan *p, const char **dtype, const char **fn, int *elem,
                       const char **name)
{
    switch (p->spec->train.precision) {
    case PREC_FP32: *dtype = "LWL_F32"; *fn = "lwl_v_out_f32"; *elem = 4; *name = "float32";
        break;
    case PREC_FP16: *dtype = "LWL_F16"; *fn = "lwl_v_out_f16"; *elem = 2; *name = "float16";
        break;
    default: *dtype = "LWL_BF16"; *fn = "lwl_v_out_bf16"; *elem = 2; *name = "bfloat16";
        break;
    }
}

/* `if (fired)` before an op of probability p below 1; nothing for p 1. */
static const char *open_fired(emitter *e, const lwl_op *op)
{
    if (op->p >= 1)
        return "";
    L("    if (P->fired & %s)", op_flag(op->kind));
    return "    ";
}

/* Whether the body reads the params beyond the resize (an op that may not fire, or draws). */
static int body_reads_params(const lwl_view *v)
{
    for (int i = 0; i < v->nops; i++) {
        const lwl_op *op = &v->ops[i];
        if (op->kind != OP_RESIZED_CROP && op->p > 0 &&
            (op->p < 1 || op->kind == OP_COLOR_JITTER))
            return 1;
    }
    return 0;
}

/* The body of view vi's kernel: its ops in the spec's order, each LWL_STEP one op's
 * phases; ops with p 0 leave no code, p 1 no test; the constants are literals. */
static void emit_body(emitter *e, const lwl_plan *p, int vi)
{
    const lwl_spec *s = p->spec;
    const lwl_view *v = &s->augment.view[vi];
    const lwl_op *crop = view_crop(v);
    const char *dtype, *fn, *name;
    int elem;

    view_dtype(p, &dtype, &fn, &elem, &name);
    (void)name;
    L("/* View %d (%s) of one sample, its ops' phases cut at the block's barriers. */", vi + 1,
      emit_where(&v->loc));
    L("LWL_VBODY(view%d_body)", vi + 1);
    L("{");
    if (body_reads_params(v)) {
        L("    const lwl_view_params *P = c->p;");
        L("%s", "");
    }
    if (!crop)
        L("    /* no resized_crop: Resize(%d) + CenterCrop(%d), as at evaluation */",
          p->size * 8 / 7, p->size);
    else if (crop->p < 1)
        L("    /* resized_crop p %g (%s), else Resize(%d) + CenterCrop(%d): the drawn box */",
          crop->p, emit_where(&crop->loc), p->size * 8 / 7, p->size);
    else
        L("    /* resized_crop p 1 (%s): the drawn box to %d x %d */", emit_where(&crop->loc),
          p->size, p->size);
    L("    LWL_STEP(lwl_v_resize(c, LWL_PH));");
    for (int i = 0; i < v->nops; i++) {
        const lwl_op *op = &v->ops[i];
        if (op->kind == OP_RESIZED_CROP)
            continue;
        L("%s", "");
        if (op->p <= 0) {
            L("    /* %s p 0 (%s): no code */", lwl_op_names[op->kind], emit_where(&op->loc));
            continue;
        }
        switch (op->kind) {
        case OP_HORIZONTAL_FLIP:
            L("    /* horizontal_flip p %g (%s) */", op->p, emit_where(&op->loc));
            L("%s    LWL_STEP(lwl_v_hflip(c, LWL_PH));", open_fired(e, op));
            break;
        case OP_COLOR_JITTER: {
            L("    /* color_jitter p %g (%s): its four operations in the drawn order */", op->p,
              emit_where(&op->loc));
            const char *in = open_fired(e, op);
            L("%s    for (int k = 0; k < 4; k++) {", in);
            L("%s        switch (P->jitter.order[k]) {", in);
            L("%s        case 0:", in);
            L("%s            LWL_STEP(lwl_v_brightness(c, LWL_PH, (float)P->jitter.brightness));",
              in);
            L("%s            break;", in);
            L("%s        case 1:", in);
            L("%s            LWL_STEP(lwl_v_contrast(c, LWL_PH, (float)P->jitter.contrast));", in);
            L("%s            break;", in);
            L("%s        case 2:", in);
            L("%s            LWL_STEP(lwl_v_saturation(c, LWL_PH, (float)P->jitter.saturation));",
              in);
            L("%s            break;", in);
            L("%s        default:", in);
            L("%s            LWL_STEP(lwl_v_hue(c, LWL_PH, lwl_hue_shift(P->jitter.hue)));", in);
            L("%s            break;", in);
            L("%s        }", in);
            L("%s    }", in);
            break;
        }
        case OP_GRAYSCALE:
            L("    /* grayscale p %g (%s) */", op->p, emit_where(&op->loc));
            L("%s    LWL_STEP(lwl_v_gray(c, LWL_PH));", open_fired(e, op));
            break;
        case OP_GAUSSIAN_BLUR:
            L("    /* gaussian_blur p %g (%s) with the drawn sigma */", op->p,
              emit_where(&op->loc));
            L("%s    LWL_STEP(lwl_v_blur(c, LWL_PH));", open_fired(e, op));
            break;
        case OP_SOLARIZE:
            L("    /* solarize p %g threshold %d (%s) */", op->p, (int)op->threshold,
              emit_where(&op->loc));
            L("%s    LWL_STEP(lwl_v_solarize(c, LWL_PH, %d));", open_fired(e, op),
              (int)op->threshold);
            break;
        default:
            break;
        }
    }
    L("%s", "");
    L("    /* ToTensor + Normalize (mean [%g, %g, %g], std [%g, %g, %g]) */",
      s->augment.mean[0], s->augment.mean[1], s->augment.mean[2], s->augment.std[0],
      s->augment.std[1], s->augment.std[2]);
    L("    LWL_STEP(%s(c, LWL_PH, %.9gf, %.9gf, %.9gf,", fn, s->augment.mean[0],
      s->augment.mean[1], s->augment.mean[2]);
    L("              %*s%.9gf, %.9gf, %.9gf));", (int)strlen(fn), "", s->augment.std[0],
      s->augment.std[1], s->augment.std[2]);
    L("}");
    L("%s", "");
}

int emit_views_cu(const lwl_plan *p, FILE *f)
{
    emitter ev = { f, p, 0, NULL }, *e = &ev;
    const char *dtype, *fn, *name;
    int elem;

    view_dtype(p, &dtype, &fn, &elem, &name);
    L("/* The two views of experiment '%s' on the GPU: one fused kernel per view with the",
      p->name);
    L(" * spec's transforms in order (p 0: no code, p 1: no test, constants as literals), a");
    L(" * block per sample, reading what the loader staged (each view's drawn params and the");
    L(" * source pixels it reads) and writing the batch normalised as (n, %d, %d, 3) %s.", p->size,
      p->size, name);
    L(" * Before normalisation the same bytes as views.c. Generated by lwlc. */");
    L("#include <stdint.h>");
    L("%s", "");
    L("#include \"lwl_views_dev.h\"");
    L("%s", "");
    L("#define VIEWS_SIZE %d", p->size);
    L("%s", "");
    for (int v = 0; v < 2; v++)
        emit_body(e, p, v);
    L("#ifndef LWL_VIEWS_EMULATE");
    L("#include \"lwl_cuda.h\"");
    L("#include \"lwl_views.h\"");
    L("%s", "");
    for (int v = 0; v < 2; v++) {
        L("/* View %d of every sample of a batch: block i makes sample i. */", v + 1);
        L("__global__ void __launch_bounds__(LWL_VIEW_THREADS, 1) view%d_kernel(lwl_vargs a)",
          v + 1);
        L("{");
        L("    extern __shared__ __align__(16) uint8_t smem[];");
        L("    lwl_vctx c;");
        L("%s", "");
        L("    lwl_vctx_init(&c, &a, (int)blockIdx.x, smem, (int)blockDim.x, %d);", elem);
        L("    view%d_body(&c, (int)threadIdx.x, (int)blockDim.x);", v + 1);
        L("}");
        L("%s", "");
    }
    L("/* Launches view v (0 or 1) of the n samples of a on s. */");
    L("static int views_launch(int v, const lwl_vargs *a, int n, cudaStream_t s)");
    L("{");
    L("    if (v == 0)");
    L("        view1_kernel<<<n, LWL_VIEW_THREADS, (size_t)a->smem, s>>>(*a);");
    L("    else");
    L("        view2_kernel<<<n, LWL_VIEW_THREADS, (size_t)a->smem, s>>>(*a);");
    L("    LAUNCH_CK();");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("static lwl_views_gpu *views_gpu;");
    L("extern \"C\" const int views_cuda_size = VIEWS_SIZE;");
    L("extern \"C\" const lwl_dtype views_cuda_dtype = %s;", dtype);
    L("%s", "");
    L("extern \"C\" int views_cuda_init(int max_batch)");
    L("{");
    L("    static const lwl_views_spec spec = { VIEWS_SIZE, %d, views_launch };", elem);
    L("    const cudaFuncAttribute shared = cudaFuncAttributeMaxDynamicSharedMemorySize;");
    L("%s", "");
    L("    if (lwl_views_gpu_open(&views_gpu, &spec, max_batch))");
    L("        return -1;");
    L("    CUDA_CK(cudaFuncSetAttribute(view1_kernel, shared, lwl_views_gpu_smem(views_gpu)));");
    L("    CUDA_CK(cudaFuncSetAttribute(view2_kernel, shared, lwl_views_gpu_smem(views_gpu)));");
    L("    return 0;");
    L("}");
    L("%s", "");
    L("extern \"C\" int views_cuda_make(const lwl_stage *b, void *view1, void *view2, "
      "cudaStream_t s)");
    L("{");
    L("    void *const out[2] = { view1, view2 };");
    L("%s", "");
    L("    return lwl_views_gpu_make(views_gpu, b, out, s);");
    L("}");
    L("%s", "");
    L("extern \"C\" void views_cuda_free(void)");
    L("{");
    L("    lwl_views_gpu_close(views_gpu);");
    L("    views_gpu = NULL;");
    L("}");
    L("#else");
    L("/* The bodies for the kernels' emulation on the CPU (tests/views). */");
    L("const lwl_vbody views_emu_body[2] = { view1_body, view2_body };");
    L("const size_t views_emu_out_elem = %d;", elem);
    L("const lwl_dtype views_emu_dtype = %s;", dtype);
    L("const int views_emu_size = VIEWS_SIZE;");
    L("#endif");
    return e->failed ? -1 : 0;
}
