/* infer.h - what a worker does with an inference request: classify (raw or multipart JPEG) and
 * infer (OIP JSON). Runs on a worker thread with that worker's session for the request's model;
 * sets r->reply (answer or JSON error) and calls r->complete(r) exactly once.
 *
 * Image errors map to statuses as docs/DESIGN.md §4 says: empty -> 400, not a JPEG -> 415 naming
 * the format, corrupt/truncated -> 400, pixel count over --max-pixels -> 422 (checked from the
 * header, before decoding). The deadline is checked when the job starts, after decoding and
 * after computing: past it the answer is 504, never a late 200.
 */
#ifndef SRV_INFER_H
#define SRV_INFER_H

#include "pool.h"

#define SRV_CLASSIFY_FIELD "image" /* the multipart/form-data field holding the image */

/* srv_job callbacks; the job must be the `job` member of a srv_request. */
void srv_infer_run(srv_worker *w, srv_job *job);
/* n (<= SRV_MAX_BATCH) classify jobs of one model: run together, answered one by one. */
void srv_infer_run_batch(srv_worker *w, srv_job **jobs, int n);
void srv_infer_cancel(srv_job *job); /* answers 503: the server shut down first */

#endif
