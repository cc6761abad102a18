/* clock.h - the one clock for durations, deadlines and progress: CLOCK_MONOTONIC.
 *
 * Monotonic time never jumps when the wall clock is set, so an elapsed time is never negative
 * and a deadline never fires early; its zero is arbitrary (usually boot), so the values mean
 * something only as differences. Wall-clock timestamps (log lines) use CLOCK_REALTIME directly.
 * Safe from any thread; no state.
 */
#ifndef ONESPIKE_CLOCK_H
#define ONESPIKE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define OS_NS_PER_S  1000000000ull
#define OS_NS_PER_MS 1000000ull

/* Monotonic time in nanoseconds. */
static inline uint64_t os_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * OS_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Monotonic time in whole milliseconds (signed, so that differences of deadlines may go
 * below zero). */
static inline int64_t os_clock_ms(void)
{
    return (int64_t)(os_clock_ns() / OS_NS_PER_MS);
}

/* Monotonic time in seconds, with nanosecond resolution. */
static inline double os_clock_s(void)
{
    return (double)os_clock_ns() / (double)OS_NS_PER_S;
}

#endif
