/* isa.c - run-time instruction-set detection (see isa.h). */
#include "isa.h"

#include <string.h>

static const char *const names[OS_ISA_COUNT] = {"scalar", "avx2", "avx512"};

bool os_isa_supported(os_isa isa)
{
    switch (isa) {
    case OS_ISA_SCALAR: return true;
#if defined(__GNUC__) && defined(__x86_64__)
    /* libgcc's cpu model checks XGETBV for the YMM (and, for AVX-512, opmask and ZMM) state
     * before it reports these, so a CPU whose OS does not save them reads as lacking them. */
    case OS_ISA_AVX2: return __builtin_cpu_supports("avx2");
    case OS_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2");
#endif
    default: return false;
    }
}

os_isa os_isa_best(void)
{
    for (int i = OS_ISA_COUNT - 1; i > OS_ISA_SCALAR; i--)
        if (os_isa_supported((os_isa)i))
            return (os_isa)i;
    return OS_ISA_SCALAR;
}

const char *os_isa_name(os_isa isa)
{
    return isa >= 0 && isa < OS_ISA_COUNT ? names[isa] : "unknown";
}

bool os_isa_parse(const char *name, os_isa *out)
{
    for (int i = 0; i < OS_ISA_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (os_isa)i;
            return true;
        }
    return false;
}
