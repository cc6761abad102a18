/* score.c - one scoring rule for every evaluation; see score.h. */
#include "score.h"

#include <stdlib.h>
#include <string.h>

#include "onespike/session.h"

os_status os_score_init(os_score *s, int classes)
{
    memset(s, 0, sizeof *s);
    if (classes <= 0)
        return os_fail(OS_EINVAL, "cannot score %d classes", classes);
    s->confusion = calloc((size_t)classes * (size_t)classes, sizeof *s->confusion);
    if (!s->confusion)
        return os_fail(OS_ENOMEM, "no memory for a %dx%d confusion matrix", classes, classes);
    s->classes = classes;
    return OS_OK;
}

void os_score_add(os_score *s, const float *scores, int label)
{
    int top[OS_SCORE_TOPK];
    int k = s->classes < OS_SCORE_TOPK ? s->classes : OS_SCORE_TOPK;
    os_topk(scores, s->classes, k, top);
    s->top1 += top[0] == label;
    for (int j = 0; j < k; j++)
        s->top5 += top[j] == label;
    s->confusion[(size_t)label * s->classes + top[0]]++;
    s->n++;
}

double os_score_top1(const os_score *s)
{
    return s->n ? (double)s->top1 / (double)s->n : 0;
}

double os_score_top5(const os_score *s)
{
    return s->n ? (double)s->top5 / (double)s->n : 0;
}

bool os_score_class_accuracy(const os_score *s, int c, double *acc)
{
    const long *row = s->confusion + (size_t)c * s->classes;
    long total = 0;
    for (int j = 0; j < s->classes; j++)
        total += row[j];
    *acc = total ? (double)row[c] / (double)total : 0;
    return total > 0;
}

void os_score_free(os_score *s)
{
    free(s->confusion);
    memset(s, 0, sizeof *s);
}
