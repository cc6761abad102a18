/* exec.c - the layer interpreter (see exec.h). */
#include "exec.h"

#include <assert.h>

#include "layers.h"

void os_exec_forward(const os_net *net, int T, const os_backend *be, void *ctx,
                     os_exec_slot_fn slot, float *logits, size_t n_logits)
{
    const int n = os_net_count(net);
    assert(T >= 1 && n >= 1);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < n; i++) {
            const os_layer *L = os_net_layer(net, i);
            if (t > 0 && L->is_static)
                continue;
            const os_exec_io io = {
                .x = slot(ctx, L->from[0], t),
                .x2 = L->n_from > 1 ? slot(ctx, L->from[1], t) : NULL,
                .y = slot(ctx, i, t),
                .step = t,
            };
            be->op[L->op](ctx, i, L, &io);
            if (be->after)
                be->after(ctx, i, L, &io);
        }
        if (logits)
            os_add_inplace(logits, slot(ctx, n - 1, t), n_logits);
    }
}
