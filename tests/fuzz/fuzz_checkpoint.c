/* Fuzzing the checkpoint reader (pb_checkpoint_load, pb_checkpoint_load_tag)
 * into a small fixed model (fuzz_checkpoint_model: conv with bias, BN, max
 * pool, linear).
 *
 * Input: one flag byte, then the file. Flags:
 *   bit 0   rewrite the file's last four bytes with the CRC-32 of the
 *           rest, so mutations get past the CRC check to the structure
 *           and the fit to the model (which is checked after the CRC)
 *   bit 1   load with the tag "fuzz-key" (pb_checkpoint_load_tag)
 *
 * Promises checked: a refused file says why and leaves the model as it
 * was, parameters, running statistics and masks alike; a loaded model
 * saves and loads back to the same bits. */
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "nn/mask.h"
#include "prunebench/checkpoint.h"
#include "prunebench/model.h"

static pb_model *base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	pb_error err = { 0 };
	gsl_rng *rng;

	(void)argc;
	(void)argv;
	fuzz_setup();
	if (pb_model_parse(&base, fuzz_checkpoint_model, "fuzz-model.ini",
			   &err))
		fuzz_fail("the fixed model: %s", err.msg);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 1);
	if (pb_model_init_params(base, rng, &err))
		fuzz_fail("the fixed model: %s", err.msg);
	gsl_rng_free(rng);
	return 0;
}

/* Same parameters, statistics and masks, bit for bit. */
static int same_state(pb_model *a, pb_model *b)
{
	const float *ma = pbi_mask_flat(a), *mb = pbi_mask_flat(b);

	for (int i = 0; i < pb_model_n_params(a); i++) {
		const pb_param *p = pb_model_param(a, i);
		const pb_param *q = pb_model_param(b, i);

		if (p->n != q->n ||
		    memcmp(p->data, q->data, p->n * sizeof *p->data))
			return 0;
	}
	if (!ma != !mb)
		return 0;
	return !ma || !memcmp(ma, mb, pb_model_trainable_size(a) *
			      sizeof *ma);
}

static pb_model *clone_base(void)
{
	pb_model *m;
	pb_error err = { 0 };

	if (pb_model_clone(&m, base, &err))
		fuzz_fail("pb_model_clone: %s", err.msg);
	return m;
}

/* What a loaded model saves must load back to the same state. */
static void round_trip(pb_model *m)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	pb_model *again = clone_base();
	pb_error err = { 0 };

	if (pbi_checkpoint_encode(m, 1, &buf, &len, &err))
		fuzz_fail("encoding the loaded model: %s", err.msg);
	if (pb_checkpoint_load(again, fuzz_file(1, buf, len), &err))
		fuzz_fail("the loaded model, saved again, does not load: %s",
			  err.msg);
	if (!same_state(m, again))
		fuzz_fail("the loaded model, saved and loaded again, differs");
	free(buf);
	pb_model_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_model *m;
	pb_error err = { 0 };
	uint8_t *file;
	int flags, rc;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	file = malloc(size ? size : 1);
	if (!file)
		return 0;
	memcpy(file, data, size);
	if ((flags & 1) && size >= 4) {
		uLong crc = crc32(crc32(0L, Z_NULL, 0), file, (uInt)(size - 4));

		file[size - 4] = (uint8_t)crc;
		file[size - 3] = (uint8_t)(crc >> 8);
		file[size - 2] = (uint8_t)(crc >> 16);
		file[size - 1] = (uint8_t)(crc >> 24);
	}
	m = clone_base();
	if (flags & 2)
		rc = pb_checkpoint_load_tag(m, fuzz_file(0, file, size),
					    "fuzz-key", &err);
	else
		rc = pb_checkpoint_load(m, fuzz_file(0, file, size), &err);
	if (rc) {
		fuzz_check_error(rc, &err, "pb_checkpoint_load");
		if (!same_state(m, base))
			fuzz_fail("a refused checkpoint changed the model");
	} else {
		round_trip(m);
	}
	pb_model_free(m);
	free(file);
	return 0;
}
