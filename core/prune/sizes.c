/* Sizes as files: a size in a table is the length of a file prunebench
 * writes (and loads back), never an estimate, so a user who compresses
 * the checkpoint gets the number the table shows. */
#include <stdlib.h>

#include <zlib.h>

#include "prune/sizes.h"
#include "prunebench/quantize.h"

int pbi_zlib_size(const unsigned char *buf, size_t len, uint64_t *out,
		  pb_error *err)
{
	uLongf zlen = compressBound((uLong)len);
	unsigned char *z = malloc(zlen);
	int rc;

	if (!z)
		return pb_error_set(err, PB_ENOMEM, "out of memory (compressed "
				    "size)");
	rc = compress2(z, &zlen, buf, (uLong)len, 9);
	free(z);
	if (rc != Z_OK)
		return pb_error_set(err, PB_ENOMEM, "compressed size: zlib "
				    "compress2 failed (%d)", rc);
	*out = zlen;
	return 0;
}

int pbi_file_size(const pb_model *m, const pb_checkpoint_opts *o,
		  int compressed, uint64_t *bytes, uint64_t *zbytes,
		  pb_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc = pb_checkpoint_encode(m, o, &buf, &len, err);

	if (rc)
		return rc;
	*bytes = len;
	if (compressed && zbytes)
		rc = pbi_zlib_size(buf, len, zbytes, err);
	free(buf);
	return rc;
}

static int int8_sizes(const pb_model *m, const pb_quant *q, int compressed,
		      pbi_sizes *out, pb_error *err)
{
	pb_checkpoint_opts o = { .quant = q };
	uint64_t unused;
	int rc = pbi_file_size(m, &o, 0, &out->int8, &unused, err);

	o.sparse = 1;
	if (!rc && compressed)
		rc = pbi_file_size(m, &o, 1, &unused, &out->int8_zlib, err);
	return rc;
}

int pbi_file_sizes(const pb_model *m, const pb_quant *q, int compressed,
		   pbi_sizes *out, pb_error *err)
{
	pb_checkpoint_opts o = { 0 };
	pb_quant *w = NULL;
	pb_model *c = NULL;
	int rc;

	*out = (pbi_sizes){ 0 };
	if ((rc = pbi_file_size(m, &o, compressed, &out->f32, &out->f32_zlib,
				err)))
		return rc;
	o.sparse = 1;
	if ((rc = pbi_file_size(m, &o, 0, &out->sparse, NULL, err)))
		return rc;
	if (q)
		return int8_sizes(m, q, compressed, out, err);
	/* A float32 model: its weights quantized on a copy. */
	if (!(rc = pb_model_clone(&c, m, err)) &&
	    !(rc = pb_quant_new(&w, c, err)) &&
	    !(rc = pb_quant_weights(c, w, err)))
		rc = int8_sizes(c, w, compressed, out, err);
	pb_quant_free(w);
	pb_model_free(c);
	return rc;
}

int pb_file_sizes_of(const pb_model *m, const pb_quant *q,
		     pb_file_sizes *out, pb_error *err)
{
	return pbi_file_sizes(m, q, 1, out, err);
}
