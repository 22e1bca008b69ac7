/* runs.jsonl shared by the runs that work on one output folder at once:
 * the shards of a sweep, on one machine or on the nodes of a cluster
 * over NFS (docs/cluster.md).
 *
 * Two locks, both flock(2) on files of their own in OUTPUT:
 *
 * - .lock, for the whole run: exclusive for a run of every cell, shared
 *   by shards, so shards run side by side and a whole run excludes them.
 * - .runs.lock, exclusive around each append, held for milliseconds:
 *   under it the run reads the lines runs.jsonl gained since its last
 *   append and appends its own only when no other run recorded the cell
 *   since this one planned. A cell run twice by mistake (a shard started
 *   twice) is then still recorded once.
 *
 * Why this is safe on NFS: O_APPEND alone is not (the client emulates it
 * with the size it knows, so two clients appending at once overwrite
 * each other), but one writer at a time is. Linux's NFS client turns
 * flock into a byte-range lock held on the server (NLM for NFSv3, the
 * protocol's own locks for v4), and on taking a lock it revalidates its
 * cache (so it sees the others' lines and the true end of the file) and
 * the fsync before unlocking puts our line on the server before the
 * next writer can look. What breaks it is a mount whose locks are local
 * to the machine (nolock, local_lock=flock|all; Lustre's localflock):
 * sharded runs refuse such an output folder rather than lose lines. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"

/* ---- locks that do not reach the other machines ------------------------------ */

/* Undoes /proc/self/mountinfo's octal escapes (\040 for a space) in
 * place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Whether comma-separated opts has option `name` ("nolock"), or, with
 * values, "name=V" for V one of values ("local_lock", "flock|all"). */
static int has_opt(const char *opts, const char *name, const char *values)
{
	char buf[4096], one[128], all[128], *save = NULL;
	size_t ln = strlen(name);

	snprintf(buf, sizeof buf, "%s", opts);
	snprintf(all, sizeof all, "|%s|", values ? values : "");
	for (char *o = strtok_r(buf, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		if (!values && !strcmp(o, name))
			return 1;
		if (values && !strncmp(o, name, ln) && o[ln] == '=') {
			snprintf(one, sizeof one, "|%s|", o + ln + 1);
			if (strstr(all, one))
				return 1;
		}
	}
	return 0;
}

int pbi_locks_local(const char *dir, const char *mountinfo, char *why,
		    size_t n)
{
	char real[PATH_MAX], *line = NULL, best[PATH_MAX] = "";
	size_t cap = 0, best_len = 0;
	FILE *f;
	int local = 0;

	if (!realpath(dir, real) ||
	    !(f = fopen(mountinfo ? mountinfo : "/proc/self/mountinfo",
			"r")))
		return 0;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNT OPTS [TAGS...] - TYPE SRC SUPER */
		char *fld[6], *sep = strstr(line, " - "), *save = NULL;
		char *type, *src, *super;
		int k = 0;
		size_t lm;

		if (!sep)
			continue;
		*sep = '\0';
		for (char *t = strtok_r(line, " ", &save); t && k < 6;
		     t = strtok_r(NULL, " ", &save))
			fld[k++] = t;
		type = strtok_r(sep + 3, " \n", &save);
		src = type ? strtok_r(NULL, " \n", &save) : NULL;
		super = src ? strtok_r(NULL, " \n", &save) : NULL;
		if (k < 6 || !super)
			continue;
		unescape(fld[4]);
		lm = strlen(fld[4]);
		/* The longest mount point that contains dir. */
		if (lm < best_len || strncmp(real, fld[4], lm) ||
		    (lm > 1 && real[lm] != '/' && real[lm] != '\0'))
			continue;
		best_len = lm;
		snprintf(best, sizeof best, "%s", fld[4]);
		local = 0;
		if (!strncmp(type, "nfs", 3) &&
		    (has_opt(super, "nolock", NULL) ||
		     has_opt(fld[5], "nolock", NULL) ||
		     has_opt(super, "local_lock", "flock|all")))
			local = 1;
		else if (!strcmp(type, "lustre") &&
			 has_opt(super, "localflock", NULL))
			local = 1;
		if (local)
			snprintf(why, n, "%s is mounted (%s) with locks that "
				 "stay on this machine (%s)", best, type, super);
	}
	free(line);
	fclose(f);
	return local;
}

/* ---- the run's lock --------------------------------------------------------- */

int pbi_sweep_lock(const pbi_sweep *S, int *fd, pb_error *err)
{
	const pb_experiment *e = S->e;
	const int shared = S->o->n_shards > 0;
	char *path = pbi_path_join(e->output, ".lock"), why[PATH_MAX + 600];

	*fd = -1;
	if (!path)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if (shared && pbi_locks_local(e->output, NULL, why, sizeof why)) {
		pb_error_set(err, PB_EIO, "%s: %s, so shards on other machines "
			     "would not see this one's locks and could "
			     "overwrite each other's lines of runs.jsonl; "
			     "put the output on a file system with working "
			     "locks (NFS without nolock) or run all shards on "
			     "this machine in one `prunebench run`", e->output,
			     why);
		free(path);
		return PB_EIO;
	}
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (*fd < 0 || flock(*fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		int e2 = errno;

		pb_error_set(err, PB_EIO, "%s: %s; %s", path, strerror(e2),
			     e2 == EWOULDBLOCK ? shared ?
			     "a `prunebench run` of every cell is working on "
			     "this output; wait for it to finish" :
			     "is another `prunebench run` (or a shard of one) "
			     "working on this output? wait for it to finish" :
			     "the output's file system does not lock files; "
			     "put the output on one that does");
		free(path);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return PB_EIO;
	}
	free(path);
	return 0;
}

/* ---- appending ---------------------------------------------------------------- */

void pbi_sweep_note_seen(pbi_sweep *S, int n_cells, const pb_record *recs,
			 int n_recs)
{
	if (!S->seen || !S->cells)
		return;
	for (int i = 0; i < n_cells; i++) {
		S->seen[i] = 0;
		for (int k = 0; k < n_recs; k++)
			S->seen[i] += !strcmp(recs[k].id, S->cells[i].id);
	}
}

/* What the appends of this run have read of runs.jsonl: its first `off`
 * bytes, whole lines only (the file only grows), and per cell how many
 * of its lines they held and whether one came after the seen[i] lines
 * this run planned with: any line, and a result. So each append reads
 * only what was added since the previous one. */
typedef struct by_id {
	const char *id;
	int index;
} by_id;

struct pbi_appends {
	long off;
	int *count;
	unsigned char *since_any, *since_result;
	by_id *ids;          /* the cells sorted by id */
};

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const by_id *)a)->id, ((const by_id *)b)->id);
}

void pbi_sweep_appends_free(pbi_sweep *S)
{
	struct pbi_appends *a = S->appends;

	if (!a)
		return;
	free(a->count);
	free(a->since_any);
	free(a->since_result);
	free(a->ids);
	free(a);
	S->appends = NULL;
}

static struct pbi_appends *appends_new(const pbi_sweep *S)
{
	const int n = S->n_cells > 0 ? S->n_cells : 1;
	struct pbi_appends *a = calloc(1, sizeof *a);

	if (!a)
		return NULL;
	a->count = calloc((size_t)n, sizeof *a->count);
	a->since_any = calloc((size_t)n, 1);
	a->since_result = calloc((size_t)n, 1);
	a->ids = malloc(sizeof *a->ids * (size_t)n);
	if (!a->count || !a->since_any || !a->since_result || !a->ids) {
		free(a->count);
		free(a->since_any);
		free(a->since_result);
		free(a->ids);
		free(a);
		return NULL;
	}
	for (int i = 0; i < S->n_cells; i++)
		a->ids[i] = (by_id){ S->cells[i].id, i };
	qsort(a->ids, (size_t)S->n_cells, sizeof *a->ids, cmp_id);
	return a;
}

static int is_result(pb_cell_status s)
{
	return s == PB_CELL_OK || s == PB_CELL_DIVERGED;
}

/* Reads the whole lines of runs.jsonl past a->off. A line that does not
 * validate is no record (as for every reader); a cut last line is left
 * for a later read, when the next append has ended it. */
static int read_new_lines(pbi_sweep *S, struct pbi_appends *a,
			  pb_error *err)
{
	FILE *f = fopen(S->jsonl, "rb");
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	if (!f)
		return errno == ENOENT ? 0 : pb_error_set(err, PB_EIO,
			"%s: %s", S->jsonl, strerror(errno));
	if (fseek(f, a->off, SEEK_SET)) {
		rc = pb_error_set(err, PB_EIO, "%s: %s", S->jsonl,
				  strerror(errno));
		goto out;
	}
	while ((len = getline(&line, &cap, f)) > 0 && line[len - 1] == '\n') {
		pb_record r;
		by_id key = { NULL, 0 }, *hit;

		a->off += (long)len;
		if (pb_record_parse(line, (size_t)len - 1, &r, why, sizeof why))
			continue;
		key.id = r.id;
		hit = bsearch(&key, a->ids, (size_t)S->n_cells,
			      sizeof *a->ids, cmp_id);
		if (hit) {
			int i = hit->index;

			if (a->count[i]++ >= S->seen[i]) {
				a->since_any[i] = 1;
				if (is_result(r.status))
					a->since_result[i] = 1;
			}
		}
		pb_record_clear(&r);
	}
	if (ferror(f))
		rc = pb_error_set(err, PB_EIO, "%s: read error", S->jsonl);
out:
	free(line);
	fclose(f);
	return rc;
}

int pbi_sweep_append(pbi_sweep *S, const pb_cell *c, const pb_record *r,
		     int *dup, pb_error *err)
{
	char *path = pbi_path_join(S->e->output, ".runs.lock");
	int fd, rc, locked = -1;
	int i = S->cells ? (int)(c - S->cells) : -1;
	struct pbi_appends *a;

	*dup = 0;
	if (!path)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if (i >= 0 && S->seen && !S->appends && !(S->appends =
						  appends_new(S))) {
		free(path);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	a = i >= 0 && S->seen ? S->appends : NULL;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0)
		while ((locked = flock(fd, LOCK_EX)) && errno == EINTR)
			;
	if (fd < 0 || locked) {
		/* A lock we could not take protects nothing: say so rather
		 * than append beside another writer. */
		rc = pb_error_set(err, PB_EIO, "%s: %s; runs.jsonl is only "
				  "appended under this lock: put the output "
				  "on a file system that locks files", path,
				  strerror(errno));
		goto out;
	}
	/* Read under the lock: on NFS, taking it revalidated our view of
	 * runs.jsonl, so the other runs' lines are all there. */
	if (a && (rc = read_new_lines(S, a, err)))
		goto out;
	if (a && (a->since_result[i] ||
		  (a->since_any[i] && !is_result(r->status)))) {
		*dup = 1;
		goto out;
	}
	rc = pb_record_append(S->jsonl, r, err);
	/* Ours is the next line of the cell: not another run's. */
	if (!rc && a)
		S->seen[i] = a->count[i] + 1;
out:
	if (fd >= 0)
		close(fd);      /* after the append's fsync: releases the lock */
	free(path);
	return rc;
}
