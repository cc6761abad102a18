/* select.c - the k-th smallest of an array of floats; see select.h. */
#include "onespike/select.h"

#include <stdlib.h>

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void swap_f(float *a, float *b)
{
    const float t = *a;
    *a = *b, *b = t;
}

void os_select_kth(float *s, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    int budget = 8;
    for (size_t m = n; m > 1; m >>= 1)
        budget += 2;
    while (hi > lo) {
        if (budget-- == 0) {
            qsort(s + lo, hi - lo + 1, sizeof *s, cmp_float);
            return;
        }
        const size_t mid = lo + (hi - lo) / 2;
        if (s[mid] < s[lo])
            swap_f(&s[mid], &s[lo]);
        if (s[hi] < s[lo])
            swap_f(&s[hi], &s[lo]);
        if (s[hi] < s[mid])
            swap_f(&s[hi], &s[mid]);
        const float pivot = s[mid];
        size_t i = lo, j = hi; /* Hoare partition: [lo, j] <= pivot <= [i, hi] */
        while (i <= j) {
            while (s[i] < pivot)
                i++;
            while (s[j] > pivot)
                j--;
            if (i <= j) {
                swap_f(&s[i], &s[j]);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return; /* between the two parts: equal to the pivot */
    }
}
