/* fuzz_model.c - libFuzzer harness: a model file from memory (os_model_load_buffer): the
 * safetensors container (header JSON, offsets, dtypes), the onespike.model document, the layer
 * graph and the network built from it (shapes, tensor bindings, BatchNorm folding). A model
 * that loads is also written back out as its metadata document, as the server's
 * GET /v2/models/NAME does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onespike/model.h"
#include "onespike/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loader may keep pointers into the buffer (tensors are views of it): give it a copy
     * it can own, of exactly the input's size. */
    void *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    os_model *m = NULL;
    os_errclear();
    if (os_model_load_buffer(buf, size, "fuzz.safetensors", &m) == OS_OK) {
        int c, h, w;
        os_model_input(m, &c, &h, &w);
        if (c < 1 || h < 1 || w < 1 || os_model_classes(m) < 1)
            abort();
        for (int i = 0; i < os_model_classes(m); i++)
            if (!os_model_label(m, i))
                abort();
        char *doc = json_dumps(os_model_doc(m), JSON_COMPACT);
        free(doc);
        (void)os_net_params(os_model_net(m));
        os_model_destroy(m);
    }
    return 0;
}
