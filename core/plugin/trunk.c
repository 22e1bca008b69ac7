/* The trunk cache: rounds shared by cells of several targets, stored
 * once, verified before use, written under a lock (trunk.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "base/file.h"
#include "plugin/trunk.h"
#include "prunebench/checkpoint.h"

#define META_MAGIC "prunebench trunk round v1"

struct pbi_trunk {
	char *dir;              /* CACHE/trunk-KEY */
	char *text;             /* the key text */
	char key[17];
	int fd;                 /* the lock file, locked */
	FILE *log;
};

/* ---- keys and streams --------------------------------------------------- */

void pbi_trunk_hash(const char *text, char key[17])
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	snprintf(key, 17, "%016" PRIx64, h);
}

void pbi_trunk_rng_set(gsl_rng *rng, const char *key, int r,
		       const char *what)
{
	char text[128], h[17];
	unsigned long s;

	snprintf(text, sizeof text, "trunk %s round %d %s", key, r, what);
	pbi_trunk_hash(text, h);
	s = strtoul(h + 8, NULL, 16);
	gsl_rng_set(rng, s ? s : 1);
}

/* Whether `name` is one of the space-separated names of list. */
static int in_list(const char *list, const char *name, size_t len)
{
	while (list && *list) {
		size_t n = strcspn(list, " ");

		if (n == len && !strncmp(list, name, len))
			return 1;
		list += n;
		list += strspn(list, " ");
	}
	return 0;
}

void pbi_trunk_options(const pb_pruner *pr, const pb_options *o, char *buf,
		       size_t n)
{
	size_t k = 0;

	if (!n)
		return;
	buf[0] = '\0';
	for (int i = 0; i < pr->n_options && k < n; i++) {
		const char *name = pr->options[i].name;

		if (in_list(pr->trunk_final_options, name, strlen(name)))
			continue;
		k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "",
				      name, pb_options_text(o, name));
	}
}

uint32_t pbi_model_crc(pb_model *m)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		crc = crc32(crc, (const Bytef *)p->data,
			    (uInt)(p->n * sizeof(float)));
	}
	return (uint32_t)crc;
}

void pbi_trunk_data(const pb_dataset *tr, char *buf, size_t n)
{
	size_t nx;

	if (!tr || tr->n <= 0) {
		snprintf(buf, n, "none");
		return;
	}
	nx = (size_t)(tr->n < 64 ? tr->n : 64) * tr->c * tr->h * tr->w;
	snprintf(buf, n, "%d:%08x:%08x", tr->n,
		 (unsigned)crc32(0L, tr->y, (uInt)tr->n),
		 (unsigned)crc32(0L, (const Bytef *)tr->x,
				 (uInt)(nx * sizeof(float))));
}

void pbi_trunk_state_free(pbi_trunk_state *st)
{
	pb_model_free(st->model);
	for (int i = 0; i < PB_CTX_SNAPSHOTS; i++)
		pb_model_free(st->snap[i]);
	free(st->rounds);
	free(st->trains);
	memset(st, 0, sizeof *st);
}

/* ---- the folder and its lock ----------------------------------------------- */

int pbi_trunk_open(pbi_trunk **out, const char *dir, const char *text,
		   FILE *log, pb_error *err)
{
	pbi_trunk *t = calloc(1, sizeof *t);
	char name[32], *lock = NULL;
	int rc = 0;

	*out = NULL;
	if (!t || !(t->text = strdup(text))) {
		free(t);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	t->fd = -1;
	t->log = log;
	pbi_trunk_hash(text, t->key);
	snprintf(name, sizeof name, "trunk-%s", t->key);
	t->dir = pbi_path_join(dir, name);
	lock = t->dir ? pbi_path_join(t->dir, "lock") : NULL;
	if (!lock) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pbi_mkdirs(t->dir, err))) {
		pb_error_prefix(err, "trunk cache: ");
		goto out;
	}
	t->fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		rc = pb_error_set(err, PB_EIO, "trunk cache: cannot open %s: "
				  "%s (is the cache folder writable?)", lock,
				  strerror(errno));
		goto out;
	}
	if (flock(t->fd, LOCK_EX | LOCK_NB)) {
		int locked;

		if (log)
			fprintf(log, "trunk %s: another cell is computing its "
				"rounds; waiting to read them\n", t->key);
		while ((locked = flock(t->fd, LOCK_EX)) && errno == EINTR)
			;
		if (locked) {
			rc = pb_error_set(err, PB_EIO, "trunk cache: cannot "
					  "lock %s: %s", lock, strerror(errno));
			goto out;
		}
	}
out:
	free(lock);
	if (rc) {
		pbi_trunk_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

void pbi_trunk_close(pbi_trunk *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);   /* releases the lock */
	free(t->dir);
	free(t->text);
	free(t);
}

/* ---- files ----------------------------------------------------------------- */

static char *round_file(const pbi_trunk *t, int r, const char *what)
{
	char name[64];

	snprintf(name, sizeof name, "r%d%s", r, what);
	return pbi_path_join(t->dir, name);
}

static char *file_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 &&
	    !fseek(f, 0, SEEK_SET) && (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static uint32_t crc_of(const void *buf, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)len);
}

static void tag_of(const pbi_trunk *t, int r, char *buf, size_t n)
{
	snprintf(buf, n, "prunebench trunk %s round %d", t->key, r);
}

/* Writes model m as r<what>.ckpt and .ini; their CRCs into crc[2]. */
static int store_model(pbi_trunk *t, int r, const char *what, pb_model *m,
		       uint32_t crc[2], pb_error *err)
{
	pb_checkpoint_opts o = { 0 };
	char tag[96], ext[40], *ckpt, *ini, *text = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, tlen = 0;
	int rc;

	tag_of(t, r, tag, sizeof tag);
	o.tag = tag;
	snprintf(ext, sizeof ext, "%s.ckpt", what);
	ckpt = round_file(t, r, ext);
	snprintf(ext, sizeof ext, "%s.ini", what);
	ini = round_file(t, r, ext);
	if (!ckpt || !ini) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pb_checkpoint_encode(m, &o, &buf, &len, err)) ||
	    (rc = pbi_write_atomic(ckpt, buf, len, "trunk round", err)) ||
	    (rc = pb_model_write_ini(m, ini, err)))
		goto out;
	crc[0] = crc_of(buf, len);
	if (!(text = file_text(ini, &tlen))) {
		rc = pb_error_set(err, PB_EIO, "trunk cache: cannot read back "
				  "%s", ini);
		goto out;
	}
	crc[1] = crc_of(text, tlen);
out:
	free(text);
	free(buf);
	free(ckpt);
	free(ini);
	return rc;
}

/* Loads r<what>.ckpt/.ini into a new model, checking both CRCs first. */
static int load_model(pbi_trunk *t, int r, const char *what,
		      const uint32_t crc[2], pb_model **out, char *why,
		      size_t nwhy)
{
	pb_error lerr = { 0 };
	char tag[96], ext[40], *ckpt, *ini, *text = NULL, *bin = NULL;
	size_t tlen = 0, blen = 0;
	pb_model *m = NULL;
	int rc = -1;

	*out = NULL;
	tag_of(t, r, tag, sizeof tag);
	snprintf(ext, sizeof ext, "%s.ckpt", what);
	ckpt = round_file(t, r, ext);
	snprintf(ext, sizeof ext, "%s.ini", what);
	ini = round_file(t, r, ext);
	if (!ckpt || !ini)
		snprintf(why, nwhy, "out of memory");
	else if (!(text = file_text(ini, &tlen)) ||
		 crc_of(text, tlen) != crc[1])
		snprintf(why, nwhy, "%s is missing or its CRC-32 is not the "
			 "one recorded", ini);
	else if (!(bin = file_text(ckpt, &blen)) ||
		 crc_of(bin, blen) != crc[0])
		snprintf(why, nwhy, "%s is missing or its CRC-32 is not the "
			 "one recorded", ckpt);
	else if (pb_model_parse(&m, text, ini, &lerr) ||
		 pb_checkpoint_load_tag(m, ckpt, tag, &lerr))
		snprintf(why, nwhy, "%s", lerr.msg);
	else
		rc = 0;
	if (rc)
		pb_model_free(m);
	else
		*out = m;
	free(text);
	free(bin);
	free(ckpt);
	free(ini);
	return rc;
}

/* ---- rounds ---------------------------------------------------------------- */

int pbi_trunk_store(pbi_trunk *t, int r, const pbi_trunk_state *st,
		    pb_error *err)
{
	uint32_t crc[1 + PB_CTX_SNAPSHOTS][2];
	char *meta = NULL, *path = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if ((rc = store_model(t, r, "", st->model, crc[0], err)))
		goto out;
	for (int s = 0; s < PB_CTX_SNAPSHOTS; s++) {
		char what[16];

		snprintf(what, sizeof what, ".snap%d", s);
		if (st->snap[s] && (rc = store_model(t, r, what, st->snap[s],
						     crc[1 + s], err)))
			goto out;
	}
	f = open_memstream(&meta, &len);
	if (!f) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	/* Doubles as %a: the same bits when read back. */
	fprintf(f, "%s\nkey %s\nround %d\nmodel %08" PRIx32 " %08" PRIx32
		"\n", META_MAGIC, t->text, r, crc[0][0], crc[0][1]);
	for (int s = 0; s < PB_CTX_SNAPSHOTS; s++)
		if (st->snap[s])
			fprintf(f, "snap %d %08" PRIx32 " %08" PRIx32 "\n", s,
				crc[1 + s][0], crc[1 + s][1]);
	for (int i = 0; i < st->n_rounds; i++)
		fprintf(f, "reached %a\n", st->rounds[i]);
	for (int i = 0; i < st->n_trains; i++) {
		const pbi_trunk_train *x = &st->trains[i];

		fprintf(f, "train %d %d %a %ld %d %a %a\n", x->round, x->which,
			x->epochs, x->steps, x->has_span, x->span_from,
			x->span_to);
	}
	if (fclose(f)) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	{
		char tail[32];
		int n = snprintf(tail, sizeof tail, "crc %08" PRIx32 "\n",
				 crc_of(meta, len));
		char *all = realloc(meta, len + (size_t)n + 1);

		if (!all) {
			rc = pb_error_set(err, PB_ENOMEM, "out of memory");
			goto out;
		}
		meta = all;
		memcpy(meta + len, tail, (size_t)n + 1);
		len += (size_t)n;
	}
	/* Last: a round exists once its meta does. */
	if (!(path = round_file(t, r, ".meta")))
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
	else
		rc = pbi_write_atomic(path, meta, len, "trunk round", err);
out:
	if (rc)
		pb_error_prefix(err, "trunk %s, round %d: ", t->key, r);
	free(meta);
	free(path);
	return rc;
}

/* Reads and checks r.meta into st (all but the models) and the CRCs. */
static int read_meta(pbi_trunk *t, int r, pbi_trunk_state *st,
		     uint32_t crc[1 + PB_CTX_SNAPSHOTS][2], int *has_snap,
		     char *why, size_t nwhy)
{
	char *path = round_file(t, r, ".meta"), *text = NULL, *line, *end;
	size_t len = 0, body;
	unsigned stored;
	int ok = 0, have_model = 0;

	if (!path || !(text = file_text(path, &len))) {
		free(path);
		return 1;   /* not there: nothing to say */
	}
	/* The last line is the CRC of everything before it. */
	end = len > 1 ? text + len - 2 : text;
	while (end > text && *end != '\n')
		end--;
	body = (size_t)(end - text) + (end > text);
	if (end == text || sscanf(end + 1, "crc %8x", &stored) != 1 ||
	    stored != crc_of(text, body)) {
		snprintf(why, nwhy, "%s: its CRC-32 does not match (cut short "
			 "or changed)", path);
		goto out;
	}
	text[body] = '\0';
	line = text;
	for (int ln = 0; *line; ln++) {
		char *nl = strchr(line, '\n');
		double a, b, c;
		long steps;
		int s, x, y, z;
		unsigned c0, c1;

		if (nl)
			*nl = '\0';
		if (ln == 0 && strcmp(line, META_MAGIC))
			break;
		if (ln == 1 && (strncmp(line, "key ", 4) ||
				strcmp(line + 4, t->text))) {
			snprintf(why, nwhy, "%s was written for another key",
				 path);
			goto out;
		}
		if (ln == 2 && (sscanf(line, "round %d", &x) != 1 || x != r))
			break;
		if (sscanf(line, "model %8x %8x", &c0, &c1) == 2) {
			crc[0][0] = c0;
			crc[0][1] = c1;
			have_model = 1;
		} else if (sscanf(line, "snap %d %8x %8x", &s, &c0, &c1) == 3 &&
			   s >= 0 && s < PB_CTX_SNAPSHOTS) {
			crc[1 + s][0] = c0;
			crc[1 + s][1] = c1;
			has_snap[s] = 1;
		} else if (sscanf(line, "reached %la", &a) == 1) {
			double *v = realloc(st->rounds, sizeof *v *
					    ((size_t)st->n_rounds + 1));

			if (!v)
				goto out;
			st->rounds = v;
			v[st->n_rounds++] = a;
		} else if (sscanf(line, "train %d %d %la %ld %d %la %la", &x,
				  &y, &a, &steps, &z, &b, &c) == 7) {
			pbi_trunk_train *v = realloc(st->trains, sizeof *v *
						     ((size_t)st->n_trains + 1));

			if (!v)
				goto out;
			st->trains = v;
			v[st->n_trains++] = (pbi_trunk_train){ x, y, a, steps,
							       z, b, c };
		}
		line = nl ? nl + 1 : line + strlen(line);
	}
	ok = have_model;
	if (!ok && !why[0])
		snprintf(why, nwhy, "%s is not a trunk round's record", path);
out:
	free(text);
	free(path);
	return ok ? 0 : -1;
}

int pbi_trunk_load(pbi_trunk *t, int r, pbi_trunk_state *st, int *found,
		   pb_error *err)
{
	uint32_t crc[1 + PB_CTX_SNAPSHOTS][2] = { { 0 } };
	int has_snap[PB_CTX_SNAPSHOTS] = { 0 };
	char why[PB_ERROR_MSG_MAX] = "";
	int rc;

	(void)err;
	*found = 0;
	memset(st, 0, sizeof *st);
	rc = read_meta(t, r, st, crc, has_snap, why, sizeof why);
	if (rc == 0)
		rc = load_model(t, r, "", crc[0], &st->model, why, sizeof why);
	for (int s = 0; !rc && s < PB_CTX_SNAPSHOTS; s++) {
		char what[16];

		snprintf(what, sizeof what, ".snap%d", s);
		if (has_snap[s])
			rc = load_model(t, r, what, crc[1 + s], &st->snap[s],
					why, sizeof why);
	}
	if (rc) {
		if (why[0] && t->log)
			fprintf(t->log, "trunk %s: round %d is unusable (%s); "
				"computing it again\n", t->key, r, why);
		pbi_trunk_state_free(st);
		return 0;
	}
	*found = 1;
	return 0;
}

int pbi_trunk_deepest(pbi_trunk *t, int n, pbi_trunk_state *st, int *found,
		      pb_error *err)
{
	int rc = 0;

	*found = 0;
	for (int r = n; r >= 1 && !rc; r--) {
		if ((rc = pbi_trunk_load(t, r, st, found, err)))
			break;
		if (*found) {
			*found = r;
			break;
		}
	}
	return rc;
}
