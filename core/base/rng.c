/* rng.c - the normal deviate of the one generator; see rng.h. */
#include "onespike/rng.h"

#include <math.h>

#define RNG_TWO_PI 6.283185307179586476925286766559

double os_rng_normal(uint64_t *s)
{
    /* 1 - u lies in (0, 1]: the logarithm stays finite without a clamp. */
    double u1 = 1.0 - os_rng_uniform(s), u2 = os_rng_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(RNG_TWO_PI * u2);
}
