/* rng.h - the project's one pseudo-random generator: splitmix64 (Steele, Lea & Flood, 2014).
 *
 * Everything random in the libraries (weight initialisation, the validation split, data order,
 * augmentation) draws from it, so one seed reproduces a run: the bits depend only on the seed,
 * never on the platform or the thread count (the normal deviate also goes through libm's log and
 * cos, which C libraries may round differently in the last bit). Not for cryptography.
 *
 * The state is a plain uint64_t owned by the caller; every value, 0 included, is a valid seed.
 * Callers that need independent streams from one user seed derive distinct states from it
 * (a different multiplier or xor per use) rather than sharing one state across threads.
 */
#ifndef ONESPIKE_RNG_H
#define ONESPIKE_RNG_H

#include <stdint.h>

/* The next 64 uniformly distributed bits; advances *s by one step. */
static inline uint64_t os_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits (every double k / 2^53); one step. */
static inline double os_rng_uniform(uint64_t *s)
{
    return (double)(os_rng_next(s) >> 11) * 0x1p-53;
}

/* Uniform in [0, 1) with 24 random bits (every float k / 2^24, so never rounds up to 1); one
 * step. */
static inline float os_rng_uniformf(uint64_t *s)
{
    return (float)(os_rng_next(s) >> 40) * 0x1p-24f;
}

/* Standard normal N(0, 1) by Box-Muller (the cosine branch only). Always exactly two steps, so
 * how many values a caller draws decides where the stream is, not which values came out. */
double os_rng_normal(uint64_t *s);

#endif
