/* Philox 4x32-10 against Random123's published known-answer vectors, and the key
 * layout of lwl_rng_block: every key field changes the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>

#include <cmocka.h>

#include "lwl_philox.h"

static void check_kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4])
{
    uint32_t out[4];

    lwl_philox4x32_10(ctr, key, out);
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i], want[i]);
}

static void test_kat_zero(void **state)
{
    (void)state;
    const uint32_t ctr[4] = { 0, 0, 0, 0 }, key[2] = { 0, 0 };
    const uint32_t want[4] = { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 };

    check_kat(ctr, key, want);
}

static void test_kat_ones(void **state)
{
    (void)state;
    const uint32_t ctr[4] = { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff };
    const uint32_t key[2] = { 0xffffffff, 0xffffffff };
    const uint32_t want[4] = { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd };

    check_kat(ctr, key, want);
}

static void test_kat_pi(void **state)
{
    (void)state;
    const uint32_t ctr[4] = { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 };
    const uint32_t key[2] = { 0xa4093822, 0x299f31d0 };
    const uint32_t want[4] = { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 };

    check_kat(ctr, key, want);
}

/* lwl_rng_block puts the seed in the key and (index, epoch, view|transform, block) in
 * the counter. */
static void test_block_layout(void **state)
{
    (void)state;
    uint32_t a[4], b[4];
    const uint32_t ctr[4] = { 7, 3, (2u << 16) | 5u, 9 };
    const uint32_t key[2] = { 0x89abcdefu, 0x01234567u };

    lwl_rng_block(0x0123456789abcdefull, 3, 7, 2, 5, 9, a);
    lwl_philox4x32_10(ctr, key, b);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], b[i]);
}

static void test_fields_matter(void **state)
{
    (void)state;
    uint32_t base[4], o[4];

    lwl_rng_block(1, 0, 0, 1, 0, 0, base);
    lwl_rng_block(2, 0, 0, 1, 0, 0, o);
    assert_int_not_equal(base[0], o[0]);
    lwl_rng_block(1, 1, 0, 1, 0, 0, o);
    assert_int_not_equal(base[0], o[0]);
    lwl_rng_block(1, 0, 1, 1, 0, 0, o);
    assert_int_not_equal(base[0], o[0]);
    lwl_rng_block(1, 0, 0, 2, 0, 0, o);
    assert_int_not_equal(base[0], o[0]);
    lwl_rng_block(1, 0, 0, 1, 1, 0, o);
    assert_int_not_equal(base[0], o[0]);
    lwl_rng_block(1, 0, 0, 1, 0, 1, o);
    assert_int_not_equal(base[0], o[0]);
}

/* Uniforms stay in range; their mean over 2^16 draws is 1/2 within 4 sigma. */
static void test_uniforms(void **state)
{
    (void)state;
    double sum = 0, sumf = 0;
    uint32_t counts[7] = { 0 };
    const int n = 1 << 16;

    assert_true(lwl_rng_u01f(0xffffffffu) < 1.0f);
    assert_true(lwl_rng_u01(0xffffffffu) < 1.0);
    assert_int_equal(lwl_rng_below(0xffffffffu, 7), 6);
    assert_int_equal(lwl_rng_below(0, 7), 0);
    for (int i = 0; i < n; i++) {
        uint32_t w[4];

        lwl_rng_block(42, 0, (uint32_t)i, 1, 0, 0, w);
        sum += lwl_rng_u01(w[0]);
        sumf += lwl_rng_u01f(w[1]);
        counts[lwl_rng_below(w[2], 7)]++;
    }
    assert_true(fabs(sum / n - 0.5) < 4 * 0.2887 / 256);
    assert_true(fabs(sumf / n - 0.5) < 4 * 0.2887 / 256);
    for (int i = 0; i < 7; i++)
        assert_true(counts[i] > n / 7 - 400 && counts[i] < n / 7 + 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kat_zero),     cmocka_unit_test(test_kat_ones),
        cmocka_unit_test(test_kat_pi),       cmocka_unit_test(test_block_layout),
        cmocka_unit_test(test_fields_matter), cmocka_unit_test(test_uniforms),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
