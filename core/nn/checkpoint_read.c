/* Reading checkpoints. A load reads the whole file and checks all of it
 * (structure, CRC, fit to the model) before it writes a single
 * parameter, so a failed load leaves the model exactly as it was. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "nn/checkpoint_format.h"
#include "nn/checkpoint_impl.h"
#include "nn/mask.h"
#include "nn/model_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/tensor.h"

/* ---- reading the file ---------------------------------------------------- */

static int read_all(const char *path, unsigned char **out, size_t *out_len,
		    pb_error *err)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return pb_error_set(err, PB_EIO, "cannot open checkpoint %s: %s",
				    path, strerror(errno));
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 1 << 16;
			unsigned char *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				fclose(f);
				return pb_error_set(err, PB_ENOMEM, "out of "
						    "memory reading checkpoint "
						    "%s", path);
			}
			buf = nb;
			cap = ncap;
		}
		len += fread(buf + len, 1, cap - len, f);
		if (len < cap)
			break;
	}
	if (ferror(f)) {
		int e = errno;
		free(buf);
		fclose(f);
		return pb_error_set(err, PB_EIO, "cannot read checkpoint %s: %s",
				    path, strerror(e));
	}
	fclose(f);
	*out = buf;
	*out_len = len;
	return 0;
}


/* The parsed file: header fields and where the tensors start and end. */
typedef struct ckpt {
	const char *path;
	const unsigned char *buf;
	size_t len;
	uint32_t count;
	const char *model_name;
	uint32_t model_name_len;
	const char *tag;           /* version 2; "" in version 1 */
	uint32_t tag_len;
	uint32_t version;
	size_t tensors, end;       /* offsets: first tensor, the CRC */
} ckpt;

static int fail(pb_error *err, int code, const ckpt *c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Every load error names the file first. */
static int fail(pb_error *err, int code, const ckpt *c, const char *fmt, ...)
{
	char msg[PB_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return pb_error_set(err, code, "checkpoint %s: %s", c->path, msg);
}

/* A file that starts with our magic was a checkpoint once, so a short one
 * is reported as truncated; "too short" is for files that cannot even hold
 * the magic. */
static int check_header(ckpt *c, pbi_ckpt_reader *r, pb_error *err)
{
	const unsigned char *b;
	uint32_t version;

	if (c->len < sizeof pbi_ckpt_magic)
		return fail(err, PB_EFORMAT, c, "too short to be a prunebench "
			    "checkpoint (%zu bytes; the smallest is %zu)",
			    c->len, FILE_MIN);
	if (memcmp(c->buf, pbi_ckpt_magic, sizeof pbi_ckpt_magic) != 0)
		return fail(err, PB_EFORMAT, c, "not a prunebench checkpoint "
			    "(bad magic: expected \"PBCKPT01\")");
	if (c->len >= sizeof pbi_ckpt_magic + 4) {
		version = get_u32(c->buf + 8);
		if (version < 1 || version > PB_CHECKPOINT_VERSION)
			return fail(err, PB_EFORMAT, c, "unsupported checkpoint "
				    "version %" PRIu32 " (this build reads "
				    "versions 1 to %d)", version,
				    PB_CHECKPOINT_VERSION);
	}
	if (c->len < FILE_MIN)
		return fail(err, PB_EFORMAT, c, "truncated: %zu bytes, but the "
			    "header and CRC alone take %zu", c->len, FILE_MIN);
	c->version = get_u32(c->buf + 8);
	c->count = get_u32(c->buf + 12);
	r->pos = HEADER_MIN - 4;
	if (pbi_ckpt_rd_u32(r, &c->model_name_len) ||
	    pbi_ckpt_rd_bytes(r, c->model_name_len, &b))
		return fail(err, PB_EFORMAT, c, "truncated: the header promises "
			    "a %" PRIu32 "-byte model name but the file holds "
			    "only %zu bytes", c->model_name_len, c->len);
	c->model_name = (const char *)b;
	c->tag = "";
	if (get_u32(c->buf + 8) >= 2) {
		if (pbi_ckpt_rd_u32(r, &c->tag_len) ||
		    pbi_ckpt_rd_bytes(r, c->tag_len, &b))
			return fail(err, PB_EFORMAT, c, "truncated: the header "
				    "promises a %" PRIu32 "-byte tag but the "
				    "file holds only %zu bytes", c->tag_len,
				    c->len);
		c->tag = (const char *)b;
	}
	c->tensors = r->pos;
	return 0;
}

static int truncated(const ckpt *c, const pbi_ckpt_reader *r, uint32_t i,
		     const pbi_ckpt_tensor *t, pb_error *err)
{
	char need[64];

	if (r->need == UINT64_MAX)
		snprintf(need, sizeof need, "more than %zu", c->len);
	else
		snprintf(need, sizeof need, "%" PRIu64, r->need + 4);
	if (t->name)
		return fail(err, PB_EFORMAT, c, "truncated: tensor %" PRIu32
			    " of %" PRIu32 " ('%.*s') needs the file to hold "
			    "%s bytes, but it holds %zu", i, c->count,
			    (int)t->name_len, t->name, need, c->len);
	return fail(err, PB_EFORMAT, c, "truncated: tensor %" PRIu32 " of %"
		    PRIu32 " needs the file to hold %s bytes, but it holds %zu",
		    i, c->count, need, c->len);
}

/* Walks every tensor record to find where the CRC must be, then checks it
 * and that nothing follows it. */
static int check_structure(ckpt *c, pbi_ckpt_reader *r, pb_error *err)
{
	uint32_t stored, computed;
	pbi_ckpt_tensor t;

	for (uint32_t i = 0; i < c->count; i++) {
		int rc = pbi_ckpt_read_tensor(r, &t, c->version);

		if (rc == -2)
			return fail(err, PB_EFORMAT, c, "tensor %" PRIu32 " "
				    "('%.*s') has encoding %" PRIu32 ", which "
				    "this build does not know: the file is "
				    "corrupt or from a newer prunebench", i,
				    (int)t.name_len, t.name, t.enc);
		if (rc)
			return truncated(c, r, i, &t, err);
	}
	c->end = r->pos;
	stored = get_u32(c->buf + c->end);
	computed = crc_of(c->buf, c->end);
	if (stored != computed)
		return fail(err, PB_EFORMAT, c, "corrupt: CRC32 mismatch (stored "
			    "0x%08" PRIx32 ", computed 0x%08" PRIx32 ")", stored,
			    computed);
	if (c->end + 4 != c->len)
		return fail(err, PB_EFORMAT, c, "corrupt: %zu bytes of trailing "
			    "garbage after the CRC at byte %zu",
			    c->len - c->end - 4, c->end);
	return 0;
}

/* ---- matching the model -------------------------------------------------- */

static void format_file_shape(char *buf, size_t n, const pbi_ckpt_tensor *t)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t d = 0; d < t->ndim && used < n; d++) {
		int w = snprintf(buf + used, n - used, "%s%" PRIu32,
				 d ? "x" : "", pbi_ckpt_dim(t, d));
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void format_model_shape(char *buf, size_t n, const pb_param *p)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int d = 0; d < p->ndim && used < n; d++) {
		int w = snprintf(buf + used, n - used, "%s%d", d ? "x" : "",
				 p->shape[d]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int same_shape(const pbi_ckpt_tensor *t, const pb_param *p)
{
	if (t->ndim != (uint32_t)p->ndim || t->n != (uint64_t)p->n)
		return 0;
	for (int d = 0; d < p->ndim; d++)
		if (pbi_ckpt_dim(t, (uint32_t)d) != (uint32_t)p->shape[d])
			return 0;
	return 1;
}

static int match_tensor(const ckpt *c, uint32_t i, const pbi_ckpt_tensor *t,
			const pb_model *m, const pb_param *p, pb_error *err)
{
	const char *model = pb_model_name(m) ? pb_model_name(m) : "";
	char fs[128], ms[128];

	if (t->name_len != strlen(p->name) ||
	    memcmp(t->name, p->name, t->name_len) != 0)
		return fail(err, PB_EMISMATCH, c, "tensor %" PRIu32 " is '%.*s' "
			    "in the file but model '%s' expects '%s'", i,
			    (int)t->name_len, t->name, model, p->name);
	if (t->kind != (uint32_t)p->kind)
		return fail(err, PB_EMISMATCH, c, "%s: the file stores it as "
			    "tensor kind %" PRIu32 ", the model as kind %d",
			    p->name, t->kind, (int)p->kind);
	if (!same_shape(t, p)) {
		format_file_shape(fs, sizeof fs, t);
		format_model_shape(ms, sizeof ms, p);
		return fail(err, PB_EMISMATCH, c, "%s: file has %s, model has "
			    "%s — was this checkpoint saved from a pruned "
			    "model? load it with the model INI written next "
			    "to it", p->name, fs, ms);
	}
	return 0;
}

/* The model param a mask record belongs to ("conv1.weight.mask" ->
 * conv1.weight), or NULL. */
static pb_param *mask_owner(pb_model *m, const pbi_ckpt_tensor *t)
{
	size_t sl = strlen(MASK_SUFFIX);
	char name[256];

	if (t->name_len <= sl || t->name_len - sl >= sizeof name ||
	    memcmp(t->name + t->name_len - sl, MASK_SUFFIX, sl) != 0)
		return NULL;
	memcpy(name, t->name, t->name_len - sl);
	name[t->name_len - sl] = '\0';
	return pb_model_find_param(m, name);
}

static const char *enc_name(uint32_t enc)
{
	static const char *const names[] = {
		"float32", "float32 bitmap", "float32 CSR", "mask bits",
		"mask of zeros", "int8", "int8 bitmap"
	};

	return enc <= ENC_LAST ? names[enc] : "unknown";
}

/* Decodes t into a scratch buffer to see that it can be (before the
 * model is touched). */
static int check_decodes(const ckpt *c, const pbi_ckpt_tensor *t,
			 pb_error *err)
{
	float *tmp = pb_falloc((size_t)t->n);
	char why[160];
	int bad;

	if (!tmp)
		return pb_error_set(err, PB_ENOMEM, "checkpoint %s: out of "
				    "memory", c->path);
	bad = pbi_ckpt_decode(t, NULL, tmp, why, sizeof why);
	pb_ffree(tmp);
	if (bad)
		return fail(err, PB_EFORMAT, c, "corrupt: tensor '%.*s': %s",
			    (int)t->name_len, t->name, why);
	return 0;
}

/* A model tensor's encoding: int8 only for conv and linear weights,
 * never a mask's. */
static int check_param_encoding(const ckpt *c, const pbi_ckpt_tensor *t,
				const pb_param *p, pb_error *err)
{
	int ok = t->enc == ENC_F32 || t->enc == ENC_F32_BITMAP ||
		 t->enc == ENC_F32_CSR ||
		 ((t->enc == ENC_I8 || t->enc == ENC_I8_BITMAP) &&
		  p->kind == PB_PARAM_WEIGHT);

	if (!ok)
		return fail(err, PB_EFORMAT, c, "corrupt: %s is stored as %s",
			    p->name, enc_name(t->enc));
	return check_decodes(c, t, err);
}

static int check_mask(const ckpt *c, const pbi_ckpt_tensor *t, pb_model *m,
		      uint8_t *seen, pb_error *err)
{
	pb_param *p = mask_owner(m, t);
	char fs[128], ms[128];

	if (!p || !p->trainable)
		return fail(err, PB_EMISMATCH, c, "mask '%.*s' belongs to no "
			    "trainable tensor of model '%s'; load it with the "
			    "model INI it was saved with", (int)t->name_len,
			    t->name, pb_model_name(m));
	if (seen[p - pb_model_param(m, 0)]++)
		return fail(err, PB_EFORMAT, c, "mask '%.*s' appears twice",
			    (int)t->name_len, t->name);
	if (!same_shape(t, p)) {
		format_file_shape(fs, sizeof fs, t);
		format_model_shape(ms, sizeof ms, p);
		return fail(err, PB_EMISMATCH, c, "mask '%.*s' is %s but %s "
			    "is %s", (int)t->name_len, t->name, fs, p->name,
			    ms);
	}
	if (t->enc == ENC_MASK_BITS || t->enc == ENC_MASK_ZEROS)
		return 0;
	if (t->enc != ENC_F32)
		return fail(err, PB_EFORMAT, c, "corrupt: mask '%.*s' is "
			    "stored as %s", (int)t->name_len, t->name,
			    enc_name(t->enc));
	for (uint64_t k = 0; k < t->n; k++) {
		float v = get_f32(t->data + 4 * k);
		if (v != 0.0f && v != 1.0f)
			return fail(err, PB_EFORMAT, c, "mask '%.*s' holds "
				    "%g at %" PRIu64 "; masks are 0 (pruned) "
				    "or 1 (kept)", (int)t->name_len, t->name,
				    (double)v, k);
	}
	return 0;
}

/* The layer an activation range belongs to ("conv1.act"), -1 for the
 * model input, -2 for none. */
static int act_owner(const pb_model *m, const pbi_ckpt_tensor *t)
{
	size_t sl = strlen(ACT_SUFFIX);
	char name[256];

	if (t->name_len <= sl || t->name_len - sl >= sizeof name ||
	    memcmp(t->name + t->name_len - sl, ACT_SUFFIX, sl) != 0)
		return -2;
	memcpy(name, t->name, t->name_len - sl);
	name[t->name_len - sl] = '\0';
	if (!strcmp(name, ACT_INPUT))
		return -1;
	return pb_model_find_layer(m, name) < 0 ? -2 :
	       pb_model_find_layer(m, name);
}

static int check_act(const ckpt *c, const pbi_ckpt_tensor *t, const pb_model *m,
		     pb_error *err)
{
	float lo, hi;

	if (act_owner(m, t) == -2)
		return fail(err, PB_EMISMATCH, c, "activation range '%.*s' "
			    "belongs to no layer of model '%s'; load it with "
			    "the model INI it was saved with",
			    (int)t->name_len, t->name, pb_model_name(m));
	if (t->enc != ENC_F32 || t->ndim != 1 || t->n != 2)
		return fail(err, PB_EFORMAT, c, "corrupt: activation range "
			    "'%.*s' is not two float32s", (int)t->name_len,
			    t->name);
	lo = get_f32(t->data);
	hi = get_f32(t->data + 4);
	if (!isfinite(lo) || !isfinite(hi) || lo > 0.0f || hi < 0.0f)
		return fail(err, PB_EFORMAT, c, "corrupt: activation range "
			    "'%.*s' is [%g, %g]; it must hold 0",
			    (int)t->name_len, t->name, (double)lo, (double)hi);
	return 0;
}

static int check_fits_model(const ckpt *c, pb_model *m, pb_error *err)
{
	int n = pb_model_n_params(m);
	pbi_ckpt_reader r = { c->buf, c->end, c->tensors, 0 };
	pbi_ckpt_tensor t;
	uint8_t *seen;
	int rc = 0;

	if (c->count < (uint32_t)n)
		goto count_mismatch;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		pb_param *p = pb_model_param(m, (int)i);

		/* The structure was checked already; this cannot overrun. */
		if (pbi_ckpt_read_tensor(&r, &t, c->version))
			return truncated(c, &r, i, &t, err);
		if ((rc = match_tensor(c, i, &t, m, p, err)) ||
		    (rc = check_param_encoding(c, &t, p, err)))
			return rc;
	}
	if (c->count == (uint32_t)n)
		return 0;
	if (!(seen = calloc((size_t)n, 1)))
		return pb_error_set(err, PB_ENOMEM, "out of memory (masks)");
	for (uint32_t i = (uint32_t)n; i < c->count && !rc; i++) {
		if (pbi_ckpt_read_tensor(&r, &t, c->version)) {
			rc = truncated(c, &r, i, &t, err);
			break;
		}
		/* Anything but a mask or an activation range after the
		 * model's tensors means the file is of another model. */
		if (t.kind == PB_PARAM_ACT_QUANT) {
			rc = check_act(c, &t, m, err);
			continue;
		}
		if (t.kind != PB_PARAM_MASK) {
			free(seen);
			goto count_mismatch;
		}
		rc = check_mask(c, &t, m, seen, err);
	}
	free(seen);
	return rc;

count_mismatch:
	return fail(err, PB_EMISMATCH, c, "holds %" PRIu32 " tensors "
		    "(saved from model '%.*s') but model '%s' has %d; "
		    "load it with the model INI it was trained with",
		    c->count, (int)c->model_name_len, c->model_name,
		    pb_model_name(m) ? pb_model_name(m) : "", n);
}

/* The int8 weights' scales and the activation ranges of a checked file,
 * for pb_checkpoint_load_quant; NULL in *out for a float32 file. */
static int read_quant(const ckpt *c, const pb_model *m, pb_quant **out,
		      pb_error *err)
{
	pbi_ckpt_reader r = { c->buf, c->end, c->tensors, 0 };
	pb_quant *q = NULL;
	int rc;
	pbi_ckpt_tensor t;

	*out = NULL;
	for (uint32_t i = 0; i < c->count; i++) {
		int is_i8, layer;

		if (pbi_ckpt_read_tensor(&r, &t, c->version))
			break;
		/* Checked: int8 only for the model's weights. */
		is_i8 = (t.enc == ENC_I8 || t.enc == ENC_I8_BITMAP) &&
			i < (uint32_t)pb_model_n_params(m);
		if (!is_i8 && t.kind != PB_PARAM_ACT_QUANT)
			continue;
		if (!q && (rc = pb_quant_new(&q, m, err)))
			return rc;
		if (is_i8) {
			float *s = malloc((size_t)(t.rows ? t.rows : 1) *
					  sizeof *s);

			if (!s) {
				pb_quant_free(q);
				return pb_error_set(err, PB_ENOMEM, "out of "
						    "memory");
			}
			for (uint64_t k = 0; k < t.rows; k++)
				s[k] = get_f32(t.scales + 4 * k);
			q->scales[i] = s;
			continue;
		}
		layer = act_owner(m, &t);
		pb_act_quant_set(layer < 0 ? &q->input : &q->acts[layer],
				 get_f32(t.data), get_f32(t.data + 4));
		q->activations = 1;
	}
	*out = q;
	return 0;
}

/* Fills the model from a checked file. The masks are built apart first,
 * so running out of memory leaves the model as it was. */
static int copy_into_model(const ckpt *c, pb_model *m, pb_error *err)
{
	pbi_ckpt_reader r = { c->buf, c->end, c->tensors, 0 };
	pbi_ckpt_tensor t;
	int n = pb_model_n_params(m);
	float *mask = NULL;
	uint8_t *flags = NULL;
	char why[160];

	if (c->count > (uint32_t)n) {
		mask = pb_falloc(m->n_train);
		flags = calloc((size_t)n, 1);
		if (!mask || !flags) {
			pb_ffree(mask);
			free(flags);
			return pb_error_set(err, PB_ENOMEM, "checkpoint %s: "
					    "out of memory (masks)", c->path);
		}
		for (size_t k = 0; k < m->n_train; k++)
			mask[k] = 1.0f;
	}
	for (uint32_t i = 0; i < c->count; i++) {
		pb_param *p;
		float *dst;

		if (pbi_ckpt_read_tensor(&r, &t, c->version))
			break;
		if (t.kind == PB_PARAM_ACT_QUANT)
			continue;
		if (i < (uint32_t)n) {
			p = pb_model_param(m, (int)i);
			dst = p->data;
		} else {
			p = mask_owner(m, &t);
			flags[p - pb_model_param(m, 0)] = 1;
			dst = mask + (p->data - m->data);
		}
		/* Checked before: it decodes. The weight a mask of zeros
		 * follows was decoded before it. */
		pbi_ckpt_decode(&t, p->data, dst, why, sizeof why);
		/* A float mask of -0.0 passes the 0-or-1 check as 0 but would
		 * stay -0.0, which no other path makes and the next save
		 * writes as a plain 0 (found by fuzzing). */
		if (i >= (uint32_t)n)
			for (uint64_t k = 0; k < t.n; k++)
				dst[k] = dst[k] != 0.0f ? 1.0f : 0.0f;
	}
	pb_ffree(m->mask);
	free(m->masked);
	m->mask = mask;
	m->masked = flags;
	pbi_mask_apply(m);
	return 0;
}

/* A file written for something else (another seed's dense model copied
 * over this one's cache name) is refused, not used. */
static int check_tag(const ckpt *c, const char *tag, pb_error *err)
{
	if (!tag || (strlen(tag) == c->tag_len &&
		     !memcmp(tag, c->tag, c->tag_len)))
		return 0;
	if (!c->tag_len)
		return fail(err, PB_EMISMATCH, c, "written for '(no tag)', not "
			    "for '%s'", tag);
	return fail(err, PB_EMISMATCH, c, "written for '%.*s', not for '%s'",
		    (int)(c->tag_len > 200 ? 200 : c->tag_len), c->tag, tag);
}

int pb_checkpoint_load(pb_model *m, const char *path, pb_error *err)
{
	return pb_checkpoint_load_tag(m, path, NULL, err);
}

static int load(pb_model *m, const char *path, const char *tag,
		pb_quant **q, pb_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	ckpt c = { .path = path };
	pbi_ckpt_reader r;
	int rc;

	if (q)
		*q = NULL;
	if (!m || !path)
		return pb_error_set(err, PB_EINVAL, "pb_checkpoint_load: "
				    "model and path are required");
	/* New weights: a sparse session's compressed copy would be stale. */
	pbi_model_sparse_end(m);
	if ((rc = read_all(path, &buf, &len, err)))
		return rc;
	c.buf = buf;
	c.len = len;
	/* The last four bytes are the CRC, never tensor data. */
	r = (pbi_ckpt_reader){ buf, len >= 4 ? len - 4 : 0, 0, 0 };
	if (!(rc = check_header(&c, &r, err)) &&
	    !(rc = check_structure(&c, &r, err)) &&
	    !(rc = check_tag(&c, tag, err)) &&
	    !(rc = check_fits_model(&c, m, err)) &&
	    !(rc = q ? read_quant(&c, m, q, err) : 0))
		rc = copy_into_model(&c, m, err);
	if (rc && q) {
		pb_quant_free(*q);
		*q = NULL;
	}
	free(buf);
	return rc;
}

int pb_checkpoint_load_tag(pb_model *m, const char *path, const char *tag,
			   pb_error *err)
{
	return load(m, path, tag, NULL, err);
}

int pb_checkpoint_load_quant(pb_model *m, const char *path, pb_quant **q,
			     pb_error *err)
{
	pb_quant *own = NULL;
	int rc = load(m, path, NULL, q ? q : &own, err);

	pb_quant_free(own);
	return rc;
}
