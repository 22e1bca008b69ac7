/* Which library is linked, and on which BLAS it runs. */
#ifndef PRUNEBENCH_VERSION_H
#define PRUNEBENCH_VERSION_H

#define PB_VERSION_STRING "0.1.0"

/* The engine's arithmetic: raised whenever a change to a kernel changes
 * the bits a training produces (another order of summation, a fusion).
 * Cached dense models and trunks are keyed by it, as by the BLAS
 * kernel, so an engine never reuses a model trained with other
 * arithmetic (its cells would mix two engines without a warning).
 *   1  up to 2026-12-02
 *   2  issue 14's kernels: direct stride-2 and 1x1 convolutions, fused
 *      passes (ResNet-S trains to other bits than under 1)
 *   3  the im2col weight gradient summed over fixed blocks of samples,
 *      not per thread: the same bits at any thread count (ResNet-S's
 *      stride-2 and 1x1 convolutions; VGG-S does not take that path)
 *   4  the linear layer's products on one OpenBLAS thread at every
 *      thread count (OpenBLAS threaded VGG-S's fc itself, in another
 *      order): one-thread trainings give the bits they gave under 3,
 *      trainings on more threads those of one thread
 *   5  the direct 3x3 convolution's weight gradient summed per output
 *      channel lane over a sample's pixels, then over samples in memory
 *      (conv2d_wgrad.c), not per pixel lane then reduced: every model
 *      with a 3x3 stride-1 convolution of more than 16 output channels
 *      trains to other bits than under 4 */
#define PB_NUMERICS 5

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked. */
const char *pb_version(void);

/* The BLAS in use ("OpenBLAS (Haswell core)", "GSL reference CBLAS"). */
const char *pb_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif
