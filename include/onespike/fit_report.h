/* fit_report.h - the report `onespike-train fit` writes beside the model (Markdown and JSON):
 * accuracy after every stage, the exported model evaluated through the inference engine on the
 * validation JPEGs, per-class accuracy, confusion matrix, spike rates, parameters, timings. */
#ifndef ONESPIKE_FIT_REPORT_H
#define ONESPIKE_FIT_REPORT_H

#include <jansson.h>

#include "onespike/dataset.h"
#include "onespike/fit.h"
#include "onespike/raster.h"
#include "onespike/status.h"

os_status fit_write_report(const fit_config *c, const json_t *history, const os_dataset *ds,
                           const os_imageset *val, double seconds);

/* Classify dataset images idx[0..n) from their image files with the model at path, through a
 * session (exactly the serving path). Fills top1/top5, per-class accuracy, confusion (K x K,
 * malloc'd) and "answers" (per image: path, class, top-1 label and its probability) into a
 * JSON object (caller decrefs); failed images are counted, not fatal.
 * dense: run the dense float kernels everywhere (os_session_opts.dense). in: the raster bands
 * and scale (borrowed; NULL: the model's). views: 1, or the test-time views of each image
 * averaged (os_session_run_views: 2, 4 or 8). */
os_status fit_eval_files(const char *model_path, const os_dataset *ds, const size_t *idx,
                         size_t n, bool dense, const os_raster_input *in, int views,
                         json_t **out);

#endif
