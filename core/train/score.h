/* score.h - top-1/top-5 and the confusion matrix from per-class scores: the one scoring rule of
 * every evaluation in the training layer.
 *
 * An image's classes are ranked as os_topk ranks them (session.h): by descending score, ties to
 * the lower class index, so what the server answers first is what counts as top-1 here. Both
 * os_evaluate (the training net's logits) and fit_eval_files (the engine's probabilities, the
 * scores the server ranks) count through it.
 */
#ifndef ONESPIKE_SCORE_H
#define ONESPIKE_SCORE_H

#include <stdbool.h>
#include <stddef.h>

#include "onespike/status.h"

enum { OS_SCORE_TOPK = 5 }; /* "top-5"; with fewer classes every class is in it */

/* A tally. Fields are read-only for callers; os_score_add and os_score_free maintain them. */
typedef struct {
    int classes;
    size_t n;          /* images counted */
    size_t top1, top5; /* of which the label ranked first / within the first OS_SCORE_TOPK */
    long *confusion;   /* classes x classes, [label][ranked first]; malloc'd */
} os_score;

/* An empty tally for `classes` classes. OS_ENOMEM leaves *s empty (os_score_free is safe). */
os_status os_score_init(os_score *s, int classes);

/* Count one image: scores[0..classes) (logits or probabilities: only their order matters) and
 * its label in 0..classes-1. */
void os_score_add(os_score *s, const float *scores, int label);

/* Fractions of the images counted; 0 before any. */
double os_score_top1(const os_score *s);
double os_score_top5(const os_score *s);

/* Top-1 accuracy on the images of label c; false (and *acc = 0) if none was counted. */
bool os_score_class_accuracy(const os_score *s, int c, double *acc);

/* Frees the confusion matrix (unless taken: set s->confusion = NULL first) and empties s. */
void os_score_free(os_score *s);

#endif
