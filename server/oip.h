/* oip.h - Open Inference Protocol (KServe v2) JSON: metadata documents, inference requests and
 * responses.
 *
 * A request carries exactly one input; its datatype decides how it is read (its name is free):
 *   BYTES  shape [N]          data: N strings, each a base64 JPEG
 *   FP32   shape [N,C,H,W] or [C,H,W] (N = 1), C,H,W the model's input; data flat or nested,
 *          row-major, already normalised (what os_session_input expects); every number
 *          within FP32's range (a larger one is refused, 400, rather than converted)
 * The response has one output, "probabilities", FP32 of shape [N, classes].
 */
#ifndef SRV_OIP_H
#define SRV_OIP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "onespike/model.h"
#include "onespike/status.h"

#define SRV_OIP_MAX_BATCH 64
#define SRV_OIP_OUTPUT    "probabilities"

typedef enum { SRV_OIP_BYTES, SRV_OIP_FP32 } srv_oip_kind;

typedef struct {
    const char *id; /* the request's "id", or NULL; borrowed from the document */
    srv_oip_kind kind;
    int batch;
    size_t item_floats; /* FP32: C*H*W */
    json_t *data;       /* the input's "data"; borrowed from the document */
    int views;          /* "parameters": {"tta": N}: test-time views of each image; 0: not given */
} srv_oip_request;

/* JSON values a request may hold besides its data: ids, names, shape, parameters, outputs. */
#define SRV_OIP_EXTRA_VALUES 4096

/* The most JSON values (see srv_oip_load) a request to m can need: SRV_OIP_MAX_BATCH inputs of
 * the model's C*H*W numbers, plus SRV_OIP_EXTRA_VALUES. */
size_t srv_oip_max_values(const os_model *m);

/* Parse a request body (borrowed) into *root (caller json_decref's it).
 *
 * Memory: before anything is allocated, the body's JSON values are counted by a scan that
 * allocates nothing, and a body with more than srv_oip_max_values(m) is refused (OS_ETOOBIG,
 * answered 413). The tree jansson then builds costs about 48 bytes per value (a json_t and its
 * array slot), so it is bounded both by the model (48 x srv_oip_max_values) and by the body:
 * each value takes 2 bytes of text or more ("0,"), hence at most ~24 x --max-body.
 * Duplicate keys are refused (OS_EFORMAT, 400), as is malformed JSON; err says where. */
os_status srv_oip_load(const void *body, size_t len, const os_model *m, json_t **root, char *err,
                       size_t cap);

/* Check a parsed request against the model. On failure returns false with a message naming the
 * field at fault ("inputs[0].shape [1,3,32,31]: model input is [N,3,32,32]"). */
bool srv_oip_parse(json_t *root, const os_model *m, srv_oip_request *out, char *err, size_t errcap);

/* BYTES: the base64 text of item i (borrowed). */
void srv_oip_bytes_item(const srv_oip_request *rq, int i, const char **text, size_t *len);

/* FP32: copy item i (rq->item_floats values) into dst. */
void srv_oip_fp32_item(const srv_oip_request *rq, int i, float *dst);

/* {"model_name","model_version","id","outputs":[{"name":"probabilities","datatype":"FP32",
 * "shape":[batch,classes],"data":probs}]}; takes probs (a JSON array of batch*classes numbers).
 * NULL when out of memory. */
json_t *srv_oip_response(const char *model, const char *version, const char *id, int batch,
                         int classes, json_t *probs);

/* GET /v2: name, version, extensions, models. */
json_t *srv_oip_server_meta(const char *const *names, int n_models);

/* GET /v2/models/NAME: name, versions, platform, inputs, outputs, labels, input size, time
 * steps, parameters (tta: the test-time views a classify request gets by default). */
json_t *srv_oip_model_meta(const char *name, const os_model *m, int tta);

#endif
