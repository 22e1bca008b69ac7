/* Datasets: loaders for IDX (MNIST, Fashion-MNIST; gzip-ed or raw) and
 * the CIFAR-10 binary format, a synthetic generator for tests, per-channel
 * normalisation, a held-out validation split, shuffling and augmentation.
 *
 * A dataset holds n samples of (c, h, w) float32 NCHW images and uint8
 * labels in [0, classes). Loaders return pixel values scaled to [0, 1];
 * pb_dataset_normalize then applies (x - mean) / std per channel. */
#ifndef PRUNEBENCH_DATA_H
#define PRUNEBENCH_DATA_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "prunebench/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_MAX_CHANNELS 4

typedef struct pb_dataset {
	int n, c, h, w, classes;
	float *x;        /* n * c * h * w, 64-byte aligned */
	uint8_t *y;      /* n */
} pb_dataset;

/* Data loaded from a spec string:
 *   fashion-mnist:DIR   train-images-idx3-ubyte[.gz] etc. in DIR
 *   mnist:DIR           same file names as Fashion-MNIST
 *   cifar10:DIR         data_batch_1..5.bin and test_batch.bin in DIR
 *                       (DIR may also be the cifar-10-batches-bin folder)
 *   synthetic:N[:SEED]  N training + N/5 test images, 1x28x28, 10 classes
 * "fashion-mnist" alone means the Debian package's folder,
 * /usr/share/datasets/fashion-mnist. */
typedef struct pb_data_spec {
	char kind[32];
	char dir[4096];
	int synthetic_n;
	unsigned long synthetic_seed;
} pb_data_spec;

int pb_data_spec_parse(pb_data_spec *spec, const char *text, pb_error *err);

/* Loads the training and test sets named by spec (pixels in [0,1]). On
 * error both are left empty (zeroed), so freeing them is always safe. */
int pb_data_load(const pb_data_spec *spec, pb_dataset *train,
		 pb_dataset *test, pb_error *err);

/* IDX files: images (ubyte, 3 dims) and labels (ubyte, 1 dim). Gzip-ed
 * input is detected by its magic bytes, whatever the name. classes is
 * always 10 (MNIST-style data); a label of 10 or more is an error. */
int pb_idx_load(pb_dataset *out, const char *images_path,
		const char *labels_path, pb_error *err);
/* CIFAR-10 binary: records of 1 label byte + 3072 pixel bytes. Loads and
 * concatenates the given files. */
int pb_cifar10_load(pb_dataset *out, const char *const *paths, int n_paths,
		    pb_error *err);

/* Synthetic, learnable data for tests: each class has a fixed random
 * prototype pattern; samples are prototype + noise. Deterministic in seed.
 * The prototypes depend only on the shape and class count; seed picks the
 * labels (balanced, in random order) and the noise, so sets drawn with
 * different seeds are samples of the same task. */
int pb_dataset_synthetic(pb_dataset *out, int n, int c, int h, int w,
			 int classes, float noise, unsigned long seed,
			 pb_error *err);

int pb_dataset_alloc(pb_dataset *d, int n, int c, int h, int w, int classes,
		     pb_error *err);
void pb_dataset_free(pb_dataset *d);

/* Per-channel mean and standard deviation over the whole set. */
void pb_dataset_channel_stats(const pb_dataset *d, float *mean, float *std);
void pb_dataset_normalize(pb_dataset *d, const float *mean, const float *std);

/* Splits `full` into train and val: val gets n_val samples picked by a
 * shuffle drawn from seed (stratified by class so every class is present).
 * Both keep full's order; full is left untouched. */
int pb_dataset_split(const pb_dataset *full, int n_val, unsigned long seed,
		     pb_dataset *train, pb_dataset *val, pb_error *err);

/* Fills perm with a random permutation of 0..n-1 from rng (Fisher-Yates
 * via gsl_ran_shuffle); its previous contents are ignored. */
void pb_shuffle(size_t *perm, size_t n, gsl_rng *rng);

typedef struct pb_augment {
	int crop_pad;   /* random crop after zero padding of this many pixels;
			   0 = off. Padding is with the normalised value of 0
			   pixels (i.e. zero after normalisation). */
	int hflip;      /* random horizontal flip with p = 0.5; 0 = off */
} pb_augment;

/* Copies samples idx[0..B) into x (B,c,h,w) and y (B), applying aug (may
 * be NULL) with rng. Draws per sample, in order: the crop offsets dy, dx
 * (if crop_pad), then the flip (if hflip); they are made serially, so the
 * batch does not depend on the thread count. */
void pb_dataset_batch(const pb_dataset *d, const size_t *idx, int B,
		      float *x, uint8_t *y, const pb_augment *aug,
		      gsl_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
