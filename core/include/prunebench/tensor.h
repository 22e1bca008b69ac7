/* Aligned float32 buffers. Tensors are NCHW and contiguous; shapes are
 * carried by whoever owns the buffer (layers, parameters), so the only
 * thing this header provides is allocation with 64-byte alignment, which
 * lets the compiler and OpenBLAS use full-width vector loads. */
#ifndef PRUNEBENCH_TENSOR_H
#define PRUNEBENCH_TENSOR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PB_ALIGN 64

/* Returns a zeroed, 64-byte aligned array of n floats, or NULL. n == 0
 * still returns a valid (freeable) pointer. */
float *pb_falloc(size_t n);
void pb_ffree(float *p);

/* Grows *buf to at least n floats (contents not kept), tracking the
 * capacity in *cap. Returns 0 or PB_ENOMEM. Used for workspaces that are
 * sized once and then reused every step. */
int pb_fensure(float **buf, size_t *cap, size_t n);

#ifdef __cplusplus
}
#endif
#endif
