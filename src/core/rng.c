/* PCG-XSH-RR 64/32 (M. O'Neill, "PCG: A Family of Simple Fast Space-Efficient Statistically
 * Good Algorithms for Random Number Generation", 2014). Each (seed, stream) pair is an
 * independent sequence. */
#include "longtail/core.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

void lt_rng_init(lt_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    lt_rng_u32(r);
    r->state += seed;
    lt_rng_u32(r);
}

uint32_t lt_rng_u32(lt_rng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint64_t lt_rng_u64(lt_rng *r) {
    uint64_t hi = lt_rng_u32(r);
    return (hi << 32) | lt_rng_u32(r);
}

uint64_t lt_rng_below(lt_rng *r, uint64_t n) {
    LT_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;  /* reject the biased tail */
    uint64_t x;
    do x = lt_rng_u64(r); while (x >= limit);
    return x % n;
}

float lt_rng_uniform(lt_rng *r) { return (float)(lt_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float lt_rng_normal(lt_rng *r) {
    /* Box-Muller with u1 in (0, 1]; one draw per call keeps the stream position simple. */
    double u1 = ((double)(lt_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lt_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void lt_rng_shuffle(lt_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)lt_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* SplitMix64's finalizer (Steele, Lea & Flood 2014): a bijection with good avalanche, so
 * nearby (seed, epoch, batch) triples give unrelated generator seeds. */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t lt_rng_derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
    return splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b);
}
