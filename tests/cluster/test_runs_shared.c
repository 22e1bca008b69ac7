/* runs.jsonl shared by runs at once (core/experiment/sweep_append.c):
 * a cell recorded by another run since this one planned is not recorded
 * again (unless ours is the first result), the run's lock is exclusive
 * for a whole run and shared by shards, output folders whose locks stay
 * on one machine are recognised, and the record's "host" key. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/file.h>

#include "experiment/sweep.h"
#include "prunebench/record.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_temp_dir();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	return 0;
}

/* ---- the host key --------------------------------------------------------- */

static void record_of(pb_record *r, const char *id, pb_cell_status st,
		      const char *host)
{
	pb_record_init(r);
	pb_record_set(&r->id, id);
	pb_record_set(&r->experiment, "x");
	pb_record_set(&r->method, "dense");
	r->kind = PB_CELL_DENSE;
	r->status = st;
	r->seed = 1;
	r->acc_after = 0.5;
	if (st != PB_CELL_OK)
		pb_record_set(&r->error, "it broke");
	pb_record_set(&r->host, host);
}

static void test_host_key(void **state)
{
	static const char old_line[] =
		"{\"schema\":2,\"id\":\"dense-s1-00000000\",\"kind\":\"dense\","
		"\"seed\":1,\"status\":\"ok\"}";
	pb_record r, back;
	char *line, why[200];
	size_t len;
	pb_error err = { 0 };

	(void)state;
	record_of(&r, "dense-s1-00000000", PB_CELL_FAILED, "node-17");
	assert_int_equal(pb_record_format(&r, &line, &len, &err), 0);
	assert_non_null(strstr(line, "\"host\":\"node-17\""));
	assert_int_equal(pb_record_parse(line, len - 1, &back, why,
					 sizeof why), 0);
	assert_string_equal(back.host, "node-17");
	assert_string_equal(back.error, "it broke");
	assert_int_equal(back.status, PB_CELL_FAILED);
	pb_record_clear(&back);
	free(line);
	/* Not known: no key; lines written before the key read as before. */
	pb_record_set(&r.host, NULL);
	assert_int_equal(pb_record_format(&r, &line, &len, &err), 0);
	assert_null(strstr(line, "\"host\""));
	free(line);
	assert_int_equal(pb_record_parse(old_line, strlen(old_line), &back,
					 why, sizeof why), 0);
	assert_null(back.host);
	assert_int_equal(back.schema, 2);
	pb_record_clear(&back);
	pb_record_clear(&r);
}

/* ---- appending once ------------------------------------------------------- */

typedef struct fake_run {
	char out[600], jsonl[700];
	pb_experiment e;
	pb_run_opts o;
	pbi_sweep S;
	pb_cell cells[2];
	int seen[2];
} fake_run;

/* A run of a two-cell experiment on dir/NAME that planned when
 * runs.jsonl had seen0 and seen1 lines of its cells. */
static void fake(fake_run *f, const char *name, int seen0, int seen1)
{
	memset(f, 0, sizeof *f);
	snprintf(f->out, sizeof f->out, "%s/%s", dir, name);
	mkdir(f->out, 0777);
	snprintf(f->jsonl, sizeof f->jsonl, "%s/runs.jsonl", f->out);
	f->e.output = f->out;
	f->S.e = &f->e;
	f->S.o = &f->o;
	f->S.jsonl = f->jsonl;
	snprintf(f->cells[0].id, sizeof f->cells[0].id, "dense-s1-aaaaaaaa");
	snprintf(f->cells[1].id, sizeof f->cells[1].id, "dense-s2-bbbbbbbb");
	f->S.cells = f->cells;
	f->S.n_cells = 2;
	f->S.seen = f->seen;
	f->seen[0] = seen0;
	f->seen[1] = seen1;
}

static void unfake(fake_run *f)
{
	pbi_sweep_appends_free(&f->S);
}

/* The records of dir/NAME/runs.jsonl; `bad` lines must not read. */
static int lines_bad(const char *name, int bad_lines)
{
	char path[700];
	pb_record *r;
	pb_error err = { 0 };
	int n, bad;

	snprintf(path, sizeof path, "%s/%s/runs.jsonl", dir, name);
	assert_int_equal(pb_records_read(path, 1, &r, &n, &bad, NULL, &err),
			 0);
	assert_int_equal(bad, bad_lines);
	pb_records_free(r, n);
	return n;
}

static int lines_of(const char *name)
{
	return lines_bad(name, 0);
}

static void append(fake_run *f, int cell, pb_cell_status st, int want_dup)
{
	pb_record r;
	pb_error err = { 0 };
	int dup = -1;

	record_of(&r, f->cells[cell].id, st, "here");
	if (pbi_sweep_append(&f->S, &f->cells[cell], &r, &dup, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(dup, want_dup);
	pb_record_clear(&r);
}

static void test_append_once(void **state)
{
	fake_run a, b, c;

	(void)state;
	fake(&a, "once", 0, 0);
	fake(&b, "once", 0, 0);
	fake(&c, "once", 0, 0);
	/* a records cell 0; b, which planned before, ran it too. */
	append(&a, 0, PB_CELL_OK, 0);
	assert_int_equal(a.seen[0], 1);
	append(&b, 0, PB_CELL_OK, 1);
	append(&c, 0, PB_CELL_FAILED, 1);
	assert_int_equal(lines_of("once"), 1);
	/* Cell 1: a's failure, then b's result supersedes it (as a re-run
	 * would); after a result, c's failure is a duplicate. */
	append(&a, 1, PB_CELL_CRASHED, 0);
	append(&b, 1, PB_CELL_OK, 0);
	append(&c, 1, PB_CELL_FAILED, 1);
	append(&c, 1, PB_CELL_OK, 1);
	assert_int_equal(lines_of("once"), 3);
	/* A run that planned after all that appends a retry as usual. */
	unfake(&c);
	fake(&c, "once", 1, 2);
	append(&c, 1, PB_CELL_DIVERGED, 0);
	assert_int_equal(lines_of("once"), 4);
	/* A line cut by a crash: reads stop before it until the next
	 * append ends it (a line that is no record), then read past it. */
	{
		char path[700];
		FILE *f;

		snprintf(path, sizeof path, "%s/once/runs.jsonl", dir);
		f = fopen(path, "ab");
		fputs("{\"schema\":2,\"id\":\"dense-s1-aaa", f);
		fclose(f);
	}
	unfake(&b);
	fake(&b, "once", 0, 0);
	append(&b, 0, PB_CELL_FAILED, 1);
	unfake(&c);
	fake(&c, "once", 1, 3);
	append(&c, 1, PB_CELL_OK, 0);
	append(&b, 1, PB_CELL_FAILED, 1);
	assert_int_equal(lines_bad("once", 1), 5);
	unfake(&a);
	unfake(&b);
	unfake(&c);
}

/* ---- the run's lock -------------------------------------------------------- */

static void test_lock_modes(void **state)
{
	fake_run whole, s0, s1;
	pb_error err = { 0 };
	int fw = -1, f0 = -1, f1 = -1;

	(void)state;
	fake(&whole, "lock", 0, 0);
	fake(&s0, "lock", 0, 0);
	fake(&s1, "lock", 0, 0);
	s0.o.n_shards = s1.o.n_shards = 2;
	s1.o.shard = 1;
	/* Shards side by side. */
	assert_int_equal(pbi_sweep_lock(&s0.S, &f0, &err), 0);
	assert_int_equal(pbi_sweep_lock(&s1.S, &f1, &err), 0);
	/* A whole run waits for them... */
	assert_int_equal(pbi_sweep_lock(&whole.S, &fw, &err), PB_EIO);
	assert_non_null(strstr(err.msg, "a shard of one"));
	assert_int_equal(fw, -1);
	close(f0);
	close(f1);
	/* ...and they for it. */
	memset(&err, 0, sizeof err);
	assert_int_equal(pbi_sweep_lock(&whole.S, &fw, &err), 0);
	assert_int_equal(pbi_sweep_lock(&s0.S, &f0, &err), PB_EIO);
	assert_non_null(strstr(err.msg, "of every cell"));
	close(fw);
}

/* ---- locks that stay on one machine -------------------------------------------- */

static int local_with(const char *sub, const char *type, const char *opts)
{
	char mi[4096], text[8192], why[8192], path[4096];

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	mkdir(path, 0777);
	snprintf(text, sizeof text,
		 "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
		 "40 22 0:41 / %s/mnt rw,relatime shared:5 - %s "
		 "server:/export %s\n", dir, type, opts);
	tu_write_text(dir, "mountinfo", text);
	snprintf(mi, sizeof mi, "%s/mountinfo", dir);
	why[0] = '\0';
	return pbi_locks_local(path, mi, why, sizeof why);
}

static void test_local_locks(void **state)
{
	char path[4096];

	(void)state;
	snprintf(path, sizeof path, "%s/mnt", dir);
	mkdir(path, 0777);
	assert_int_equal(local_with("mnt/out", "nfs",
				    "rw,vers=3,nolock,addr=10.0.0.1"), 1);
	assert_int_equal(local_with("mnt/out", "nfs4",
				    "rw,vers=4.2,local_lock=all"), 1);
	assert_int_equal(local_with("mnt", "nfs",
				    "rw,vers=3,local_lock=flock"), 1);
	assert_int_equal(local_with("mnt/out", "lustre",
				    "rw,localflock"), 1);
	/* Locks that reach the server. */
	assert_int_equal(local_with("mnt/out", "nfs4",
				    "rw,vers=4.2,local_lock=none"), 0);
	assert_int_equal(local_with("mnt/out", "nfs",
				    "rw,vers=3,local_lock=posix"), 0);
	assert_int_equal(local_with("mnt/out", "lustre", "rw,flock"), 0);
	/* Outside the mount, and a sibling whose name starts alike. */
	assert_int_equal(local_with("other", "nfs", "rw,nolock"), 0);
	assert_int_equal(local_with("mntx", "nfs", "rw,nolock"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_key),
		cmocka_unit_test(test_append_once),
		cmocka_unit_test(test_lock_modes),
		cmocka_unit_test(test_local_locks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
