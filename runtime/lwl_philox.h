/* Philox 4x32-10 counter-based random numbers (Salmon et al., SC'11), keyed by
 * (seed, epoch, sample, view, transform, block): augmentation parameters are a pure
 * function of these keys, identical on host and device, any thread count or rank. */
#ifndef LWL_PHILOX_H
#define LWL_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define LWL_HD __host__ __device__ static inline
#else
#define LWL_HD static inline
#endif

#define LWL_PHILOX_M0 0xD2511F53u
#define LWL_PHILOX_M1 0xCD9E8D57u
#define LWL_PHILOX_W0 0x9E3779B9u
#define LWL_PHILOX_W1 0xBB67AE85u

/* One Philox round on counter c with key k. */
LWL_HD void lwl_philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)LWL_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)LWL_PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;

    c[0] = hi1 ^ c[1] ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c[3] ^ k[1];
    c[3] = lo0;
}

/* Philox4x32 with 10 rounds: out = bijection_key(ctr). */
LWL_HD void lwl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = { ctr[0], ctr[1], ctr[2], ctr[3] };
    uint32_t k[2] = { key[0], key[1] };

    lwl_philox_round(c, k);
    for (int r = 1; r < 10; r++) {
        k[0] += LWL_PHILOX_W0;
        k[1] += LWL_PHILOX_W1;
        lwl_philox_round(c, k);
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}

/* Four words for one draw block. The key is the 64-bit seed; the counter is
 * (sample index, epoch, view << 16 | transform, block). view < 2^16, transform < 2^16. */
LWL_HD void lwl_rng_block(uint64_t seed, uint32_t epoch, uint32_t index, uint32_t view,
                          uint32_t transform, uint32_t block, uint32_t out[4])
{
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    uint32_t ctr[4] = { index, epoch, (view << 16) | (transform & 0xFFFFu), block };

    lwl_philox4x32_10(ctr, key, out);
}

/* A word to a float uniform in [0, 1): the top 24 bits, exactly representable. */
LWL_HD float lwl_rng_u01f(uint32_t x)
{
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* A word to a double uniform in [0, 1) with 32 bits of resolution. */
LWL_HD double lwl_rng_u01(uint32_t x)
{
    return (double)x * (1.0 / 4294967296.0);
}

/* Uniform in [a, b). */
LWL_HD double lwl_rng_uniform(uint32_t x, double a, double b)
{
    return a + lwl_rng_u01(x) * (b - a);
}

/* An integer uniform in [0, n) for n >= 1 (multiply-shift; bias below n / 2^32). */
LWL_HD uint32_t lwl_rng_below(uint32_t x, uint32_t n)
{
    return (uint32_t)(((uint64_t)x * n) >> 32);
}

#endif
