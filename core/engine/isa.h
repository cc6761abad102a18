/* isa.h - the x86 instruction sets the engine's hand-written kernels come in, and which of them
 * this CPU runs. Kernels are compiled for every set the compiler can target (with per-function
 * target attributes, so a generic x86-64 build carries them all) and chosen at run time, once,
 * when a session is created; never per call.
 */
#ifndef ONESPIKE_ISA_H
#define ONESPIKE_ISA_H

#include <stdbool.h>

typedef enum {
    OS_ISA_SCALAR, /* portable C: the reference every other set is tested against */
    OS_ISA_AVX2,   /* AVX2 with FMA and F16C (Haswell, Zen and later) */
    OS_ISA_AVX512, /* AVX-512 F + BW + VL (Skylake-SP, Ice Lake, Zen 4 and later) */
    OS_ISA_COUNT
} os_isa;

/* True if this build has kernels for isa and this CPU runs them (for the wide sets: the CPU has
 * the instructions and the OS saves their registers, which __builtin_cpu_supports checks
 * through OSXSAVE/XGETBV). */
bool os_isa_supported(os_isa isa);

/* True if this CPU has F16C (the half <-> float conversions the AVX2 set's fp16 rows use);
 * false off x86-64. */
bool os_isa_cpu_f16c(void);

/* The widest supported set. */
os_isa os_isa_best(void);

const char *os_isa_name(os_isa isa); /* "scalar", "avx2", "avx512" */

/* The set named name (as os_isa_name); false if there is none of that name. */
bool os_isa_parse(const char *name, os_isa *out);

#endif
