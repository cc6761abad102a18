/* isa.c - run-time instruction-set detection (see isa.h). */
#include "isa.h"

#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#endif

/* From CPUID: clang's __builtin_cpu_supports does not know the name. */
bool os_isa_cpu_f16c(void)
{
#if defined(__GNUC__) && defined(__x86_64__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
#else
    return false;
#endif
}

static const char *const names[OS_ISA_COUNT] = {"scalar", "avx2", "avx512"};

bool os_isa_supported(os_isa isa)
{
    switch (isa) {
    case OS_ISA_SCALAR: return true;
#if defined(__GNUC__) && defined(__x86_64__)
    /* libgcc's cpu model checks XGETBV for the YMM (and, for AVX-512, opmask and ZMM) state
     * before it reports these, so a CPU whose OS does not save them reads as lacking them. */
    /* The AVX2 set's kernels also use FMA (the first layer) and F16C (fp16 rows): every AVX2
     * CPU sold has both; one without them runs the scalar set. */
    case OS_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               os_isa_cpu_f16c();
    case OS_ISA_AVX512: /* and the AVX2 set, which its narrow widths fall back on */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && os_isa_supported(OS_ISA_AVX2);
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
