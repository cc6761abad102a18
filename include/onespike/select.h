/* select.h - the k-th smallest of an array of floats, without sorting it.
 *
 * One routine for every percentile the project takes: the calibration thresholds of a
 * conversion (train.c) and the percentile scaling of a raster (raster.c), where the values come
 * from a client and may be ordered to defeat a naive quickselect.
 */
#ifndef ONESPIKE_SELECT_H
#define ONESPIKE_SELECT_H

#include <stddef.h>

/* Reorder v[0..n) (no NaN; n >= 1, k < n) so that v[k] is the value a sort would put there,
 * nothing after it smaller and nothing before it larger. Quickselect on the median of three; past
 * 2 log2(n) + 8 rounds (an adversarial order) the rest is sorted, so O(n) as a rule and
 * O(n log n) at worst. */
void os_select_kth(float *v, size_t n, size_t k);

#endif
