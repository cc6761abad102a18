/* fuzz_oip.c - libFuzzer harness: an /infer body (Open Inference Protocol JSON) against a real
 * model: srv_oip_load (value-count budget, duplicate keys, jansson), srv_oip_parse (every field
 * and shape check), then every item read as the worker reads it (base64 decoded, FP32 copied),
 * and the response built. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "b64.h"
#include "oip.h"
#include "onespike/model.h"

#ifndef FUZZ_MODEL
#error "build with -DFUZZ_MODEL=\"/abs/path/model.safetensors\""
#endif

enum { FUZZ_ERR_MAX = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static os_model *m;
    if (!m && os_model_load(FUZZ_MODEL, &m)) {
        fprintf(stderr, "fuzz_oip: %s: %s\n", FUZZ_MODEL, os_errdetail());
        abort();
    }
    char err[FUZZ_ERR_MAX];
    json_t *root = NULL;
    if (srv_oip_load(data, size, m, &root, err, sizeof err))
        return 0;
    srv_oip_request rq;
    if (srv_oip_parse(root, m, &rq, err, sizeof err)) {
        if (rq.batch < 1 || rq.batch > SRV_OIP_MAX_BATCH)
            abort();
        float *x = rq.kind == SRV_OIP_FP32 ? malloc(rq.item_floats * sizeof *x) : NULL;
        for (int i = 0; i < rq.batch; i++) {
            if (rq.kind == SRV_OIP_BYTES) {
                const char *text;
                size_t len, out_len, bad;
                srv_oip_bytes_item(&rq, i, &text, &len);
                unsigned char *buf = malloc((len / 4 + 1) * 3);
                if (!buf)
                    abort();
                (void)srv_b64_decode(text, len, buf, &out_len, &bad);
                free(buf);
            } else {
                srv_oip_fp32_item(&rq, i, x);
            }
        }
        free(x);
        json_t *probs = json_array();
        for (int i = 0; i < rq.batch * os_model_classes(m); i++)
            json_array_append_new(probs, json_real(0.5));
        json_decref(srv_oip_response("fuzz", "1", rq.id ? rq.id : "id", rq.batch,
                                     os_model_classes(m), probs));
    }
    json_decref(root);
    return 0;
}
