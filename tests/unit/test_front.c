/* Unit tests of the front end: paths, suggestions, and the values a checked
 * spec carries (defaults, overrides, the study's base spec). TAP output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "path.h"
#include "spec.h"

static void path_normalize_removes_dots(void **state)
{
    (void)state;
    const char *cases[][2] = {
        { "a/./b", "a/b" }, { "a/b/../c", "a/c" }, { "../x/../y", "../y" },
        { "/a/../../b", "/b" }, { "./", "." }, { "a//b/", "a/b" }, { "../../a", "../../a" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = path_normalize(cases[i][0]);
        assert_string_equal(p, cases[i][1]);
        free(p);
    }
}

static void path_relative_walks_up_and_down(void **state)
{
    (void)state;
    const char *cases[][3] = {
        { "/r/data/in100", "/r/specs", "../data/in100" },
        { "/r/specs/x.txt", "/r/specs", "x.txt" },
        { "/r/specs", "/r/specs", "." },
        { "/r", "/r/a/b", "../.." },
        { "/rx/y", "/r", "../rx/y" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = path_relative(cases[i][0], cases[i][1]);
        assert_string_equal(p, cases[i][2]);
        free(p);
    }
    char *j = path_join("specs", "../examples/images/bird.jpg");
    assert_string_equal(j, "examples/images/bird.jpg");
    free(j);
    char *s = path_stem("specs/crop_gray.lwl");
    assert_string_equal(s, "crop_gray");
    free(s);
}

static void suggestions_by_edit_distance(void **state)
{
    (void)state;
    const char *names[] = { "grayscale", "gaussian_blur", "solarize", "resized_crop" };
    assert_int_equal(diag_edit_distance("greyscale", "grayscale"), 1);
    assert_int_equal(diag_edit_distance("", "abc"), 3);
    assert_string_equal(diag_suggest("greyscale", names, 4), "grayscale");
    assert_string_equal(diag_suggest("solarise", names, 4), "solarize");
    assert_null(diag_suggest("rotate", names, 4));
}

/* Loads text as a spec with diagnostics discarded; returns the error count. */
static int load(const char *text, const lwl_defines *defs, lwl_spec *s)
{
    FILE *sink = fopen("/dev/null", "w");
    lwl_diag d;
    diag_init(&d, sink);
    int errors = spec_load_text("t.lwl", text, strlen(text), defs, &d, s);
    fclose(sink);
    return errors;
}

static const char minimal[] =
    "data { root \"d\" }\n"
    "augment { view 1 { resized_crop } view 2 { grayscale p 0.3; solarize p 0.2 } }\n";

static void defaults_are_the_recipe(void **state)
{
    (void)state;
    lwl_spec s;
    assert_int_equal(load(minimal, NULL, &s), 0);
    assert_string_equal(s.name, "t");
    assert_int_equal(s.model.backbone, BACKBONE_RESNET50);
    assert_int_equal(s.model.heads, 4);
    assert_int_equal(s.model.hidden, 4096);
    assert_true(s.train.lr == 0.45 && s.train.ema == 0.98 && s.train.weight_decay == 1e-6);
    assert_int_equal(s.train.warmup, 10);
    assert_true(s.data.share[SPLIT_TRAIN] == 70 && s.data.share[SPLIT_TEST] == 10);

    const lwl_op *crop = &s.augment.view[0].ops[0];
    assert_int_equal(s.augment.view[0].nops, 1);
    assert_int_equal(crop->kind, OP_RESIZED_CROP);
    assert_true(crop->p == 1 && crop->scale[0] == 0.2 && crop->ratio[1] == 4.0 / 3.0);
    assert_int_equal(crop->loc.line, 2);

    /* Order as written, kinds and probabilities of view 2. */
    assert_int_equal(s.augment.view[1].nops, 2);
    assert_int_equal(s.augment.view[1].ops[0].kind, OP_GRAYSCALE);
    assert_true(s.augment.view[1].ops[0].p == 0.3);
    assert_int_equal(s.augment.view[1].ops[1].kind, OP_SOLARIZE);
    assert_true(s.augment.view[1].ops[1].threshold == 128);
    spec_free(&s);
    source_free_all();
}

static void defines_override_one_setting(void **state)
{
    (void)state;
    const char *defs[] = { "train.epochs=7", "augment.view2.solarize=p 0.5 threshold 100",
                           "eval.knn.memory=val 10%" };
    lwl_defines d = { defs, 3 };
    lwl_spec s;
    assert_int_equal(load(minimal, &d, &s), 0);
    assert_int_equal(s.train.epochs, 7);
    /* The view keeps its other transform and order; solarize is replaced. */
    assert_int_equal(s.augment.view[1].nops, 2);
    assert_true(s.augment.view[1].ops[1].p == 0.5 && s.augment.view[1].ops[1].threshold == 100);
    assert_int_equal(s.eval.knn.memory.split, SPLIT_VAL);
    assert_true(s.eval.knn.memory.share == 10);
    spec_free(&s);
    source_free_all();
}

static void study_base_spec_values(void **state)
{
    (void)state;
    FILE *sink = fopen("/dev/null", "w");
    lwl_diag d;
    diag_init(&d, sink);
    lwl_spec s;
    assert_int_equal(spec_load("specs/baseline_half.lwl", NULL, &d, &s), 0);
    fclose(sink);
    assert_int_equal(d.warnings, 1);    /* the kNN overlap of the LEWEL monitor */
    assert_string_equal(s.name, "baseline_half");
    assert_int_equal(s.data.nclasses, 100);
    assert_string_equal(s.data.class_names[0], "n02869837");
    assert_int_equal(s.train.gpus, 2);
    assert_int_equal(s.train.batch, 128);
    assert_int_equal(s.eval.repeat, 3);
    assert_true(s.eval.confidence == 0.9);
    assert_int_equal(s.eval.knn.k, 20);
    assert_true(s.eval.knn.memory.share == 10 && s.eval.knn.queries.share == 50);
    assert_int_equal(s.eval.gradcam.nimages, 3);
    /* Halved probabilities; view 2 blur 0.05 and solarize 0.1. */
    assert_true(s.augment.view[0].ops[1].p == 0.25);
    assert_true(s.augment.view[1].ops[4].p == 0.05);
    assert_true(s.augment.view[1].ops[5].p == 0.1);
    spec_free(&s);
    source_free_all();
}

static void print_is_a_fixed_point(void **state)
{
    (void)state;
    lwl_spec a, b;
    assert_int_equal(load(minimal, NULL, &a), 0);
    char *t1 = NULL, *t2 = NULL;
    size_t n1 = 0, n2 = 0;
    FILE *f = open_memstream(&t1, &n1);
    spec_print(&a, ".", f);
    fclose(f);
    assert_int_equal(load(t1, NULL, &b), 0);
    f = open_memstream(&t2, &n2);
    spec_print(&b, ".", f);
    fclose(f);
    assert_string_equal(t1, t2);
    assert_non_null(strstr(t1, "ratio [0.75, 1.3333333333333333]"));
    spec_free(&a);
    spec_free(&b);
    free(t1);
    free(t2);
    source_free_all();
}

int main(void)
{
    cmocka_set_message_output(CM_OUTPUT_TAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_normalize_removes_dots),
        cmocka_unit_test(path_relative_walks_up_and_down),
        cmocka_unit_test(suggestions_by_edit_distance),
        cmocka_unit_test(defaults_are_the_recipe),
        cmocka_unit_test(defines_override_one_setting),
        cmocka_unit_test(study_base_spec_values),
        cmocka_unit_test(print_is_a_fixed_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
