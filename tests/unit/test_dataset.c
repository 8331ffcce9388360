/* The ImageFolder scan and split of lwl_dataset.c on a tree this test makes: class and
 * file order (byte order, recursive, hidden files skipped), the class list, the split's
 * shares, determinism and independence, and split folders mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lwl_dataset.h"

static char root[64];

static void touch(const char *rel)
{
    char *p;
    FILE *f;

    assert_true(asprintf(&p, "%s/%s", root, rel) > 0);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("x", f);
    assert_int_equal(fclose(f), 0);
    free(p);
}

static void mkd(const char *rel)
{
    char *p;

    assert_true(asprintf(&p, "%s/%s", root, rel) > 0);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

/* root/flat: classes "B", "a", "c" (byte order: B < a < c); a has 10 files incl. a
 * subfolder; c has 40; root/folders: train/{x,y} and val/{x,y}. */
static int make_tree(void **state)
{
    (void)state;
    char name[64];

    strcpy(root, "/tmp/lwl-dataset-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    mkd("flat");
    mkd("flat/a");
    mkd("flat/B");
    mkd("flat/c");
    mkd("flat/a/sub");
    mkd("flat/.hidden");
    touch("flat/a/2.jpg");
    touch("flat/a/10.jpg");
    touch("flat/a/b.JPEG");
    touch("flat/a/.DS_Store");
    touch("flat/a/sub/0.jpg");
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "flat/a/z%d.png", i);
        touch(name);
    }
    touch("flat/B/only.jpg");
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "flat/c/%03d.jpg", i);
        touch(name);
    }
    mkd("folders");
    mkd("folders/train");
    mkd("folders/val");
    mkd("folders/train/x");
    mkd("folders/train/y");
    mkd("folders/val/x");
    mkd("folders/val/y");
    touch("folders/train/x/1.jpg");
    touch("folders/train/x/2.jpg");
    touch("folders/train/y/3.jpg");
    touch("folders/val/x/4.jpg");
    touch("folders/val/y/5.jpg");
    touch("folders/val/y/6.jpg");
    return 0;
}

static int remove_tree(void **state)
{
    char *cmd;
    int rc;

    (void)state;
    if (asprintf(&cmd, "rm -rf '%s'", root) < 0)
        return -1;
    rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static lwl_data_cfg flat_cfg(char **path)
{
    lwl_data_cfg c = { 0 };

    assert_true(asprintf(path, "%s/flat", root) > 0);
    c.root = *path;
    c.share[0] = 0.7;
    c.share[1] = 0.2;
    c.share[2] = 0.1;
    return c;
}

static const char *tail(const char *p)
{
    return p + strlen(root) + strlen("/flat/");
}

/* Everything in one part (share 100% train) shows the scan's order. */
static void test_scan_order(void **state)
{
    (void)state;
    char *path, *err;
    lwl_data_cfg c = flat_cfg(&path);
    lwl_dataset ds;
    static const char *want[] = { "B/only.jpg", "a/10.jpg", "a/2.jpg", "a/b.JPEG",
                                  "a/z0.png", "a/z1.png" };

    c.share[0] = 1.0;
    c.share[1] = c.share[2] = 0.0;
    assert_int_equal(lwl_dataset_open(&c, &ds, &err), 0);
    assert_int_equal(ds.nclasses, 3);
    assert_string_equal(ds.classes[0], "B");
    assert_string_equal(ds.classes[1], "a");
    assert_string_equal(ds.classes[2], "c");
    assert_int_equal(ds.n[LWL_TRAIN], 1 + 10 + 40);
    assert_int_equal(ds.n[LWL_VAL] + ds.n[LWL_TEST], 0);
    for (int i = 0; i < 6; i++)
        assert_string_equal(tail(ds.part[LWL_TRAIN][i].path), want[i]);
    /* Files of the folder itself come before those of its subfolder (os.walk order). */
    assert_string_equal(tail(ds.part[LWL_TRAIN][10].path), "a/sub/0.jpg");
    assert_int_equal(ds.part[LWL_TRAIN][0].label, 0);
    assert_int_equal(ds.part[LWL_TRAIN][1].label, 1);
    assert_int_equal(ds.part[LWL_TRAIN][50].label, 2);
    lwl_dataset_free(&ds);
    free(path);
}

/* 70/20/10 per class: c (40 files) gives 28/8/4, a (10) 7/2/1, B (1) 1/0/0; each part
 * in file order; the same seed gives the same split, another seed another. */
static void test_split(void **state)
{
    (void)state;
    char *path, *err;
    lwl_data_cfg c = flat_cfg(&path);
    lwl_dataset d1, d2, d3;
    size_t counts[LWL_NPARTS][3] = { { 0 } };

    c.seed = 5;
    assert_int_equal(lwl_dataset_open(&c, &d1, &err), 0);
    assert_int_equal(lwl_dataset_open(&c, &d2, &err), 0);
    c.seed = 6;
    assert_int_equal(lwl_dataset_open(&c, &d3, &err), 0);
    for (int k = 0; k < LWL_NPARTS; k++) {
        for (size_t i = 0; i < d1.n[k]; i++) {
            counts[k][d1.part[k][i].label]++;
            if (i > 0 && d1.part[k][i].label == d1.part[k][i - 1].label)
                assert_true(strcmp(d1.part[k][i - 1].path, d1.part[k][i].path) < 0 ||
                            strstr(d1.part[k][i].path, "/sub/"));
        }
        assert_int_equal(d1.n[k], d2.n[k]);
        for (size_t i = 0; i < d1.n[k]; i++)
            assert_string_equal(d1.part[k][i].path, d2.part[k][i].path);
    }
    assert_int_equal(counts[LWL_TRAIN][2], 28);
    assert_int_equal(counts[LWL_VAL][2], 8);
    assert_int_equal(counts[LWL_TEST][2], 4);
    assert_int_equal(counts[LWL_TRAIN][1], 7);
    assert_int_equal(counts[LWL_VAL][1], 2);
    assert_int_equal(counts[LWL_TEST][1], 1);
    assert_int_equal(counts[LWL_TRAIN][0], 1);

    /* Another seed moves some file of class c to another part. */
    int moved = 0;
    for (size_t i = 0; i < d1.n[LWL_VAL]; i++)
        moved += strcmp(d1.part[LWL_VAL][i].path, d3.part[LWL_VAL][i].path) != 0;
    assert_true(moved > 0);
    lwl_dataset_free(&d1);
    lwl_dataset_free(&d2);
    lwl_dataset_free(&d3);
    free(path);
}

/* A class list keeps only its classes, relabels them 0.., and leaves the split of the
 * kept classes as it was; an unknown class is an error naming it. */
static void test_class_list(void **state)
{
    (void)state;
    char *path, *list, *err;
    lwl_data_cfg c = flat_cfg(&path);
    lwl_dataset all, some;
    FILE *f;

    assert_true(asprintf(&list, "%s/classes.txt", root) > 0);
    f = fopen(list, "w");
    assert_non_null(f);
    fputs("c\r\n\n# comment\n  a  \n", f);
    assert_int_equal(fclose(f), 0);

    c.seed = 9;
    assert_int_equal(lwl_dataset_open(&c, &all, &err), 0);
    c.classes_file = list;
    assert_int_equal(lwl_dataset_open(&c, &some, &err), 0);
    assert_int_equal(some.nclasses, 2);
    assert_string_equal(some.classes[0], "a");
    assert_string_equal(some.classes[1], "c");
    /* all's val part minus class B equals some's val part. */
    size_t j = 0;
    for (size_t i = 0; i < all.n[LWL_VAL]; i++) {
        if (all.part[LWL_VAL][i].label == 0)
            continue;
        assert_string_equal(all.part[LWL_VAL][i].path, some.part[LWL_VAL][j].path);
        assert_int_equal(all.part[LWL_VAL][i].label - 1, some.part[LWL_VAL][j].label);
        j++;
    }
    assert_int_equal(j, some.n[LWL_VAL]);
    lwl_dataset_free(&all);
    lwl_dataset_free(&some);

    f = fopen(list, "w");
    assert_non_null(f);
    fputs("a\nmissing_class\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(lwl_dataset_open(&c, &some, &err), -1);
    assert_non_null(strstr(err, "missing_class"));
    free(err);
    free(list);
    free(path);
}

static void test_split_folders(void **state)
{
    (void)state;
    char *path, *err;
    lwl_data_cfg c = { 0 };
    lwl_dataset ds;

    assert_true(asprintf(&path, "%s/folders", root) > 0);
    c.root = path;
    c.split_folders = 1;
    assert_int_equal(lwl_dataset_open(&c, &ds, &err), 0);
    assert_int_equal(ds.nclasses, 2);
    assert_int_equal(ds.n[LWL_TRAIN], 3);
    assert_int_equal(ds.n[LWL_VAL], 3);
    assert_int_equal(ds.n[LWL_TEST], 0);
    assert_int_equal(ds.part[LWL_VAL][0].label, 0);
    assert_int_equal(ds.part[LWL_VAL][2].label, 1);
    assert_non_null(strstr(ds.part[LWL_VAL][2].path, "val/y/6.jpg"));
    lwl_dataset_free(&ds);
    free(path);
}

static void test_errors(void **state)
{
    (void)state;
    char *err;
    lwl_data_cfg c = { 0 };
    lwl_dataset ds;

    c.root = "/nonexistent/lwl";
    c.share[0] = 1.0;
    assert_int_equal(lwl_dataset_open(&c, &ds, &err), -1);
    assert_non_null(strstr(err, "/nonexistent/lwl"));
    free(err);
    c.share[1] = 0.5;
    assert_int_equal(lwl_dataset_open(&c, &ds, &err), -1);
    assert_non_null(strstr(err, "sum to 100%"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_order),   cmocka_unit_test(test_split),
        cmocka_unit_test(test_class_list),   cmocka_unit_test(test_split_folders),
        cmocka_unit_test(test_errors),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
