/* Writing checkpoints: a model's state tensors (and masks) encoded into
 * one buffer, written atomically, alone or with the model's INI as a
 * pair. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "nn/checkpoint_format.h"
#include "nn/mask.h"
#include "nn/model_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/tensor.h"

/* ---- saving -------------------------------------------------------------- */

static size_t tensor_bytes(const pb_param *p)
{
	return 4 + strlen(p->name) + 4 + 4 + 4 * (size_t)p->ndim + 4 * p->n;
}

static unsigned char *encode_tensor(unsigned char *b, const pb_param *p)
{
	size_t len = strlen(p->name);

	put_u32(b, (uint32_t)len);
	memcpy(b + 4, p->name, len);
	b += 4 + len;
	put_u32(b, (uint32_t)p->kind);
	put_u32(b + 4, (uint32_t)p->ndim);
	b += 8;
	for (int d = 0; d < p->ndim; d++, b += 4)
		put_u32(b, (uint32_t)p->shape[d]);
	for (size_t i = 0; i < p->n; i++, b += 4)
		put_f32(b, p->data[i]);
	return b;
}

/* Masks follow the model's tensors as extra tensors "<param>.mask" of
 * kind PB_PARAM_MASK and the param's shape, in param order. A file
 * without them is a model without masks, as before masks existed. */

static void free_masks(pb_param *mp, int n)
{
	for (int i = 0; i < n; i++)
		free((char *)mp[i].name);
	free(mp);
}

/* Descriptions of m's masks as tensors (data pointing into the model's
 * mask array); *n_masks may be 0. */
static int mask_tensors(pb_model *m, pb_param **out, int *n_masks,
			pb_error *err)
{
	int n = pb_model_n_params(m), k = 0;
	pb_param *mp;

	*out = NULL;
	*n_masks = 0;
	if (!pbi_mask_flat(m))
		return 0;
	if (!(mp = calloc((size_t)n, sizeof *mp)))
		return pb_error_set(err, PB_ENOMEM, "out of memory (masks)");
	for (int i = 0; i < n; i++) {
		pb_param *p = pb_model_param(m, i);
		float *mk = pbi_mask_get(m, p, 0);
		char *name;
		if (!mk)
			continue;
		if (asprintf(&name, "%s" MASK_SUFFIX, p->name) < 0) {
			free_masks(mp, k);
			return pb_error_set(err, PB_ENOMEM,
					    "out of memory (masks)");
		}
		mp[k] = *p;
		mp[k].name = name;
		mp[k].kind = PB_PARAM_MASK;
		mp[k].data = mk;
		mp[k].grad = NULL;
		mp[k].trainable = 0;
		k++;
	}
	*out = mp;
	*n_masks = k;
	return 0;
}

/* The whole file in memory, CRC included. */
static int encode_model(pb_model *m, int with_masks, const char *tag,
			unsigned char **out, size_t *out_len, pb_error *err)
{
	const char *name = pb_model_name(m) ? pb_model_name(m) : "";
	size_t name_len = strlen(name), tag_len = tag ? strlen(tag) : 0;
	size_t len = FILE_MIN + name_len + 4 + tag_len;
	int n = pb_model_n_params(m), n_masks = 0, rc;
	pb_param *masks = NULL;
	unsigned char *buf, *b;

	if (with_masks && (rc = mask_tensors(m, &masks, &n_masks, err)))
		return rc;
	for (int i = 0; i < n_masks; i++)
		len += tensor_bytes(&masks[i]);

	for (int i = 0; i < n; i++) {
		const pb_param *p = pb_model_param(m, i);
		if (p->ndim < 1 || p->ndim > 4) {
			free_masks(masks, n_masks);
			return pb_error_set(err, PB_EINVAL,
					    "cannot save tensor '%s': it has "
					    "%d dimensions (1 to 4 expected)",
					    p->name, p->ndim);
		}
		len += tensor_bytes(p);
	}
	if (!(buf = malloc(len))) {
		free_masks(masks, n_masks);
		return pb_error_set(err, PB_ENOMEM, "out of memory encoding a "
				    "%zu-byte checkpoint", len);
	}
	memcpy(buf, pbi_ckpt_magic, sizeof pbi_ckpt_magic);
	put_u32(buf + 8, PB_CHECKPOINT_VERSION);
	put_u32(buf + 12, (uint32_t)(n + n_masks));
	put_u32(buf + 16, (uint32_t)name_len);
	memcpy(buf + HEADER_MIN, name, name_len);
	b = buf + HEADER_MIN + name_len;
	put_u32(b, (uint32_t)tag_len);
	if (tag_len)
		memcpy(b + 4, tag, tag_len);
	b += 4 + tag_len;
	for (int i = 0; i < n; i++)
		b = encode_tensor(b, pb_model_param(m, i));
	for (int i = 0; i < n_masks; i++)
		b = encode_tensor(b, &masks[i]);
	put_u32(b, crc_of(buf, (size_t)(b - buf)));
	free_masks(masks, n_masks);
	*out = buf;
	*out_len = len;
	return 0;
}

int pbi_checkpoint_encode(const pb_model *m, int with_masks,
			  unsigned char **buf, size_t *len, pb_error *err)
{
	/* Encoding only reads the model; see pb_checkpoint_save. */
	return encode_model((pb_model *)m, with_masks, NULL, buf, len, err);
}

int pb_checkpoint_save(const pb_model *m, const char *path, pb_error *err)
{
	return pb_checkpoint_save_tag(m, path, NULL, err);
}

int pb_checkpoint_save_tag(const pb_model *m, const char *path,
			   const char *tag, pb_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!m || !path)
		return pb_error_set(err, PB_EINVAL, "pb_checkpoint_save: "
				    "model and path are required");
	/* pb_model_param is non-const only so that callers can write through
	 * it; encoding only reads. */
	if ((rc = encode_model((pb_model *)m, 1, tag, &buf, &len, err)))
		return rc;
	rc = pbi_write_atomic(path, buf, len, "checkpoint", err);
	free(buf);
	return rc;
}

/* BASE with a trailing .ckpt or .ini removed, then ext, malloc-ed. */
static char *pair_path(const char *base, const char *ext)
{
	size_t n = strlen(base);
	char *p;

	if (n > 5 && !strcmp(base + n - 5, ".ckpt"))
		n -= 5;
	else if (n > 4 && !strcmp(base + n - 4, ".ini"))
		n -= 4;
	if (asprintf(&p, "%.*s%s", (int)n, base, ext) < 0)
		return NULL;
	return p;
}

int pb_model_save(const pb_model *m, const char *base, pb_error *err)
{
	char *ckpt = pair_path(base, ".ckpt"), *ini = pair_path(base, ".ini");
	pbi_atomic a = { 0 }, b = { 0 };
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!ckpt || !ini) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = encode_model((pb_model *)m, 1, NULL, &buf, &len, err)) ||
	    (rc = pbi_atomic_begin(&a, ckpt, "checkpoint", err)))
		goto out;
	if (fwrite(buf, 1, len, a.f) != len) {
		rc = pb_error_set(err, PB_EIO, "cannot write checkpoint '%s': "
				  "%s", ckpt, strerror(errno));
		goto out;
	}
	if ((rc = pbi_atomic_begin(&b, ini, "model file", err)))
		goto out;
	pbi_model_ini_print(b.f, m);
	/* Both files are on disk under their temporary names before either
	 * replaces the old one, so a full disk or a crash while writing
	 * never leaves a new checkpoint beside an old model file. */
	if ((rc = pbi_atomic_finish(&a, err)) ||
	    (rc = pbi_atomic_finish(&b, err)) ||
	    (rc = pbi_atomic_publish(&a, err)))
		goto out;
	rc = pbi_atomic_publish(&b, err);
out:
	pbi_atomic_discard(&a);
	pbi_atomic_discard(&b);
	free(buf);
	free(ckpt);
	free(ini);
	return rc;
}

