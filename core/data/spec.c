/* Dataset spec strings ("fashion-mnist:DIR", "synthetic:N[:SEED]", ...)
 * and loading the training and test sets they name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "prunebench/data.h"
#include "base/file.h"
#include "base/util.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define VALID_KINDS "fashion-mnist:DIR, mnist:DIR, cifar10:DIR, " \
		    "synthetic:N[:SEED], or fashion-mnist alone for " \
		    FASHION_MNIST_DIR
#define SYNTH_MAX_N 10000000L
#define SYNTH_DEFAULT_SEED 1UL
/* Synthetic data: 1x28x28 like Fashion-MNIST, and noise that leaves the
 * task learnable but not trivial. */
#define SYNTH_SIDE 28
#define SYNTH_CLASSES 10
#define SYNTH_NOISE 0.3f

/* Room for DIR plus "/cifar-10-batches-bin/data_batch_1.bin". */
#define PATH_MAX_LEN (sizeof(((pb_data_spec *)0)->dir) + 64)

static const char *const idx_names[4] = {
	"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
};

static const char *const cifar_names[6] = {
	"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
	"data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
};

static int parse_synthetic(pb_data_spec *spec, const char *text,
			   const char *args, pb_error *err)
{
	char buf[64], *colon;
	long n, seed = (long)SYNTH_DEFAULT_SEED;

	if (strlen(args) >= sizeof buf)
		return pb_error_set(err, PB_EPARSE, "data '%.80s': expected "
				    "synthetic:N[:SEED]", text);
	strcpy(buf, args);
	colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	if (pbi_parse_long(buf, &n) || n < 5 || n > SYNTH_MAX_N)
		return pb_error_set(err, PB_EPARSE, "data '%.80s': N must be a "
				    "whole number from 5 to %ld (the test set "
				    "gets N/5), as in synthetic:1000",
				    text, SYNTH_MAX_N);
	if (colon && (pbi_parse_long(colon + 1, &seed) || seed < 0))
		return pb_error_set(err, PB_EPARSE, "data '%.80s': SEED must "
				    "be a whole number >= 0, as in "
				    "synthetic:1000:7", text);
	spec->synthetic_n = (int)n;
	spec->synthetic_seed = (unsigned long)seed;
	return 0;
}

static int set_dir(pb_data_spec *spec, const char *text, const char *dir,
		   pb_error *err)
{
	if (!*dir)
		return pb_error_set(err, PB_EPARSE, "data '%.80s': the folder "
				    "is empty; write %s:DIR", text, spec->kind);
	if (strlen(dir) >= sizeof spec->dir)
		return pb_error_set(err, PB_EPARSE, "data '%.80s': the folder "
				    "name is longer than %zu characters", text,
				    sizeof spec->dir - 1);
	strcpy(spec->dir, dir);
	return 0;
}

int pb_data_spec_parse(pb_data_spec *spec, const char *text, pb_error *err)
{
	const char *colon;
	size_t klen;

	memset(spec, 0, sizeof *spec);
	if (!text || !*text)
		return pb_error_set(err, PB_EPARSE, "no dataset given: use "
				    VALID_KINDS);
	colon = strchr(text, ':');
	klen = colon ? (size_t)(colon - text) : strlen(text);
	if (klen >= sizeof spec->kind)
		klen = sizeof spec->kind - 1;
	memcpy(spec->kind, text, klen);
	spec->kind[klen] = '\0';
	if (!strcmp(spec->kind, "fashion-mnist") && !colon)
		return set_dir(spec, text, FASHION_MNIST_DIR, err);
	if (!strcmp(spec->kind, "fashion-mnist") ||
	    !strcmp(spec->kind, "mnist") || !strcmp(spec->kind, "cifar10")) {
		if (!colon)
			return pb_error_set(err, PB_EPARSE, "data '%.80s': "
					    "which folder? write %s:DIR", text,
					    spec->kind);
		return set_dir(spec, text, colon + 1, err);
	}
	if (!strcmp(spec->kind, "synthetic"))
		return parse_synthetic(spec, text, colon ? colon + 1 : "",
				       err);
	return pb_error_set(err, PB_EPARSE, "data '%.80s': unknown kind '%s'; "
			    "valid are " VALID_KINDS, text, spec->kind);
}

static int is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int join(char *out, const char *dir, const char *name,
		const char *suffix, pb_error *err)
{
	char *p = pbi_path_join(dir, name);
	int len;

	if (!p)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	len = snprintf(out, PATH_MAX_LEN, "%s%s", p, suffix);
	free(p);
	if (len < 0 || (size_t)len >= PATH_MAX_LEN)
		return pb_error_set(err, PB_EINVAL, "%s: folder name too long",
				    dir);
	return 0;
}

static int dir_missing(const char *kind, const char *dir, pb_error *err)
{
	struct stat st;

	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (!strcmp(kind, "fashion-mnist"))
		return pb_error_set(err, PB_EIO, "%s: no such folder: install "
				    "Fashion-MNIST with `apt-get install "
				    "dataset-fashion-mnist`, or name the "
				    "folder holding its files", dir);
	return pb_error_set(err, PB_EIO, "%s: no such folder: name the "
			    "folder holding the %s files", dir, kind);
}

/* Finds NAME.gz, else NAME, for each IDX file; lists all the missing. */
static int find_idx(const pb_data_spec *spec, char paths[4][PATH_MAX_LEN],
		    pb_error *err)
{
	char missing[PB_ERROR_MSG_MAX / 2] = "";
	int rc;

	if ((rc = dir_missing(spec->kind, spec->dir, err)))
		return rc;
	for (int i = 0; i < 4; i++) {
		if ((rc = join(paths[i], spec->dir, idx_names[i], ".gz", err)))
			return rc;
		if (is_file(paths[i]))
			continue;
		paths[i][strlen(paths[i]) - 3] = '\0';
		if (is_file(paths[i]))
			continue;
		snprintf(missing + strlen(missing),
			 sizeof missing - strlen(missing), "%s%s[.gz]",
			 *missing ? ", " : "", idx_names[i]);
	}
	if (!*missing)
		return 0;
	if (!strcmp(spec->kind, "fashion-mnist"))
		return pb_error_set(err, PB_EIO, "%s: missing %s; install "
				    "Fashion-MNIST with `apt-get install "
				    "dataset-fashion-mnist` or download "
				    "the files into this folder", spec->dir,
				    missing);
	return pb_error_set(err, PB_EIO, "%s: missing %s; download the four "
			    "MNIST files into this folder", spec->dir,
			    missing);
}

static int load_idx(const pb_data_spec *spec, pb_dataset *train,
		    pb_dataset *test, pb_error *err)
{
	char paths[4][PATH_MAX_LEN];
	int rc = find_idx(spec, paths, err);

	if (!rc)
		rc = pb_idx_load(train, paths[0], paths[1], err);
	if (!rc)
		rc = pb_idx_load(test, paths[2], paths[3], err);
	if (!rc && (train->h != test->h || train->w != test->w))
		rc = pb_error_set(err, PB_EMISMATCH, "%s: training images are "
				  "%dx%d but test images are %dx%d: the files "
				  "come from different datasets", spec->dir,
				  train->h, train->w, test->h, test->w);
	return rc;
}

/* CIFAR-10 unpacks into cifar-10-batches-bin/, so both DIR and that
 * subfolder are accepted. */
static int find_cifar(const pb_data_spec *spec, char paths[6][PATH_MAX_LEN],
		      pb_error *err)
{
	char base[PATH_MAX_LEN], missing[PB_ERROR_MSG_MAX / 2] = "";
	int rc;

	if ((rc = dir_missing(spec->kind, spec->dir, err)))
		return rc;
	if ((rc = join(base, spec->dir, "cifar-10-batches-bin", "", err)))
		return rc;
	if ((rc = join(paths[0], base, cifar_names[0], "", err)))
		return rc;
	if (!is_file(paths[0]))
		strcpy(base, spec->dir);
	for (int i = 0; i < 6; i++) {
		if ((rc = join(paths[i], base, cifar_names[i], "", err)))
			return rc;
		if (!is_file(paths[i]))
			snprintf(missing + strlen(missing),
				 sizeof missing - strlen(missing), "%s%s",
				 *missing ? ", " : "", cifar_names[i]);
	}
	if (!*missing)
		return 0;
	return pb_error_set(err, PB_EIO, "%s: missing %s; download "
			    "cifar-10-binary.tar.gz from "
			    "https://www.cs.toronto.edu/~kriz/cifar.html and "
			    "unpack it here", base, missing);
}

static int load_cifar(const pb_data_spec *spec, pb_dataset *train,
		      pb_dataset *test, pb_error *err)
{
	char paths[6][PATH_MAX_LEN];
	const char *p[6];
	int rc = find_cifar(spec, paths, err);

	for (int i = 0; i < 6; i++)
		p[i] = paths[i];
	if (!rc)
		rc = pb_cifar10_load(train, p, 5, err);
	if (!rc)
		rc = pb_cifar10_load(test, p + 5, 1, err);
	return rc;
}

/* The test set's noise must not repeat the training set's, including for
 * a neighbouring SEED, so the seed is scrambled (in its low 32 bits, the
 * only ones mt19937 uses) rather than offset. */
static unsigned long test_seed(unsigned long seed)
{
	return ((seed & 0xffffffffUL) * 2654435761UL + 0x9e3779b9UL) &
	       0xffffffffUL;
}

static int load_synthetic(const pb_data_spec *spec, pb_dataset *train,
			  pb_dataset *test, pb_error *err)
{
	int rc = pb_dataset_synthetic(train, spec->synthetic_n, 1, SYNTH_SIDE,
				      SYNTH_SIDE, SYNTH_CLASSES, SYNTH_NOISE,
				      spec->synthetic_seed, err);

	if (!rc)
		rc = pb_dataset_synthetic(test, spec->synthetic_n / 5, 1,
					  SYNTH_SIDE, SYNTH_SIDE, SYNTH_CLASSES,
					  SYNTH_NOISE,
					  test_seed(spec->synthetic_seed), err);
	return rc;
}

int pb_data_load(const pb_data_spec *spec, pb_dataset *train,
		 pb_dataset *test, pb_error *err)
{
	int rc;

	memset(train, 0, sizeof *train);
	memset(test, 0, sizeof *test);
	if (!strcmp(spec->kind, "fashion-mnist") ||
	    !strcmp(spec->kind, "mnist"))
		rc = load_idx(spec, train, test, err);
	else if (!strcmp(spec->kind, "cifar10"))
		rc = load_cifar(spec, train, test, err);
	else if (!strcmp(spec->kind, "synthetic"))
		rc = load_synthetic(spec, train, test, err);
	else
		rc = pb_error_set(err, PB_EINVAL, "unknown dataset kind '%s'; "
				  "valid are " VALID_KINDS, spec->kind);
	if (rc) {
		pb_dataset_free(train);
		pb_dataset_free(test);
	}
	return rc;
}
