/* im2col.h - the patch matrix of a convolution (internal to core: layers.c and grad.c).
 *
 * col row (ic, ky, kx), column (oy, ox) = x[ic][oy*stride-pad+ky][ox*stride-pad+kx], 0 outside.
 * Rows are ld floats apart: ld = oh*ow for one image, or n*oh*ow when n images sit side by side
 * in one matrix (batched training). The bounds are worked out once per kernel tap, so rows
 * outside the image are one memset and the valid span of a row is a memcpy or strided gather.
 */
#ifndef ONESPIKE_IM2COL_H
#define ONESPIKE_IM2COL_H

#include <stdbool.h>
#include <stddef.h>

#include "layers.h"

/* 1x1 kernel, stride 1, no padding: the input already is the patch matrix. */
bool os_conv_is_direct(const os_conv_shape *s);

/* With AVX2 (when the CPU has it), small "same" stride-1 maps take a masked form; its result is
 * the portable form's, float for float, which os_im2col_scalar always runs (for the tests). */
void os_im2col(const os_conv_shape *s, int oh, int ow, const float *x, float *col, size_t ld);
void os_im2col_scalar(const os_conv_shape *s, int oh, int ow, const float *x, float *col,
                      size_t ld);

/* The adjoint: dx[ic][iy][ix] += every col entry im2col copied from that cell (padding entries
 * are dropped). dx is initialised by the caller. col is scratch: its padding entries may be
 * overwritten (with zeros). */
void os_col2im_add(const os_conv_shape *s, int oh, int ow, float *col, float *dx, size_t ld);

#endif
