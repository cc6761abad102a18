/* isa.c - run-time instruction-set detection (see isa.h). */
#include "isa.h"

bool os_isa_supported(os_isa isa)
{
    switch (isa) {
    case OS_ISA_SCALAR: return true;
    case OS_ISA_AVX2:
#if defined(__GNUC__) && defined(__x86_64__)
        return __builtin_cpu_supports("avx2");
#else
        return false;
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
    static const char *const names[OS_ISA_COUNT] = {"scalar", "avx2"};
    return isa >= 0 && isa < OS_ISA_COUNT ? names[isa] : "unknown";
}
