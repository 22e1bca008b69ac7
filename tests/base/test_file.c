/* Atomic files, appends, paths and folders (core/base/file.c): a
 * replaced file is either all old or all new and no temporary file stays
 * behind, whether the write is committed, discarded or fails; an append
 * after a line cut by a crash starts on a line of its own. */
#include "testutil.h"

#include <dirent.h>
#include <sys/syscall.h>

#include "base/file.h"

/* The whole of path as a NUL-terminated string (malloc-ed). */
static void assert_file_is(const char *path, const char *want)
{
	char *got = tu_slurp(path, NULL);

	assert_string_equal(got, want);
	free(got);
}

/* Entries in dir, and how many of them are temporary files. */
static int count_entries(const char *dir, int *tmp_files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	*tmp_files = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (strstr(e->d_name, ".tmp."))
			(*tmp_files)++;
	}
	closedir(d);
	return n;
}

/* The temporary name pbi_atomic_begin uses for path in this thread
 * ("PATH.tmp.PID.TID"), so that a test can put a folder in its way. */
static void tmp_name(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "%s.tmp.%ld.%ld", path, (long)getpid(),
		 (long)syscall(SYS_gettid));
}

static void expect_err(int rc, const pb_error *err, int code, const char *sub)
{
	if (rc != code || !strstr(err->msg, sub))
		fail_msg("expected code %d with '%s', got %d: '%s'", code, sub,
			 rc, err->msg);
}

/* ---- atomic replacement ------------------------------------------------- */

/* A committed write swaps in a new file (a new inode) by rename: a reader
 * holding the old file still reads all of it, and no temporary file
 * stays. */
static void test_write_replaces_on_commit(void **state)
{
	char *dir = tu_temp_dir(), path[512], old[8] = { 0 };
	pb_error err = { 0 };
	struct stat before, after;
	FILE *reader;
	int tmp;

	(void)state;
	snprintf(path, sizeof path, "%s/f.txt", dir);
	tu_write_text(dir, "f.txt", "old\n");
	reader = fopen(path, "rb");
	assert_non_null(reader);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(pbi_write_atomic(path, "new contents\n", 13, "file",
					  &err), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	assert_file_is(path, "new contents\n");
	assert_int_equal(fread(old, 1, sizeof old - 1, reader), 4);
	assert_string_equal(old, "old\n");
	fclose(reader);
	assert_int_equal(count_entries(dir, &tmp), 1);
	assert_int_equal(tmp, 0);
	/* Nothing to write is an empty file, not an error. */
	assert_int_equal(pbi_write_atomic(path, NULL, 0, "file", &err), 0);
	assert_file_is(path, "");
	/* A new file is created the same way. */
	snprintf(path, sizeof path, "%s/g.txt", dir);
	assert_int_equal(pbi_write_atomic(path, "g", 1, "file", &err), 0);
	assert_file_is(path, "g");
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);
	tu_rm_tree(dir);
}

/* Until it is published, the new contents live in a temporary file
 * beside the old one; discarding removes it and leaves the old file. */
static void test_discard_keeps_old(void **state)
{
	char *dir = tu_temp_dir(), path[512];
	pb_error err = { 0 };
	pbi_atomic a;
	int tmp;

	(void)state;
	snprintf(path, sizeof path, "%s/f.txt", dir);
	tu_write_text(dir, "f.txt", "old\n");
	assert_int_equal(pbi_atomic_begin(&a, path, "file", &err), 0);
	assert_non_null(a.f);
	fputs("half of the new", a.f);
	assert_int_equal(pbi_atomic_finish(&a, &err), 0);
	assert_null(a.f);
	assert_file_is(a.tmp, "half of the new");
	assert_file_is(path, "old\n");
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 1);
	pbi_atomic_discard(&a);
	assert_null(a.tmp);
	assert_file_is(path, "old\n");
	assert_int_equal(count_entries(dir, &tmp), 1);
	assert_int_equal(tmp, 0);
	/* Discarding while the temporary file is still open. */
	assert_int_equal(pbi_atomic_begin(&a, path, "file", &err), 0);
	fputs("other", a.f);
	pbi_atomic_discard(&a);
	assert_file_is(path, "old\n");
	assert_int_equal(count_entries(dir, &tmp), 1);
	tu_rm_tree(dir);
}

/* Files that change together: both are finished before either is
 * published, and each publish replaces exactly its own file. */
static void test_finish_then_publish(void **state)
{
	char *dir = tu_temp_dir(), pa[512], pb[512];
	pb_error err = { 0 };
	pbi_atomic a, b;
	int tmp;

	(void)state;
	snprintf(pa, sizeof pa, "%s/a", dir);
	snprintf(pb, sizeof pb, "%s/b", dir);
	tu_write_text(dir, "a", "old a");
	tu_write_text(dir, "b", "old b");
	assert_int_equal(pbi_atomic_begin(&a, pa, "a", &err), 0);
	assert_int_equal(pbi_atomic_begin(&b, pb, "b", &err), 0);
	fputs("new a", a.f);
	fputs("new b", b.f);
	assert_int_equal(pbi_atomic_finish(&a, &err), 0);
	assert_int_equal(pbi_atomic_finish(&b, &err), 0);
	assert_file_is(pa, "old a");
	assert_file_is(pb, "old b");
	assert_int_equal(pbi_atomic_publish(&a, &err), 0);
	assert_file_is(pa, "new a");
	assert_file_is(pb, "old b");
	assert_int_equal(pbi_atomic_publish(&b, &err), 0);
	assert_file_is(pb, "new b");
	pbi_atomic_discard(&a);
	pbi_atomic_discard(&b);
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);
	tu_rm_tree(dir);
}

/* A write into a folder that does not exist fails with the path and the
 * reason, and creates nothing. */
static void test_write_into_missing_folder(void **state)
{
	char *dir = tu_temp_dir(), path[512];
	pb_error err = { 0 };
	pbi_atomic a;
	int tmp;

	(void)state;
	snprintf(path, sizeof path, "%s/no/such/f.txt", dir);
	expect_err(pbi_write_atomic(path, "x", 1, "table", &err), &err,
		   PB_EIO, "cannot write table '");
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "No such file"));
	expect_err(pbi_atomic_begin(&a, path, NULL, &err), &err, PB_EIO,
		   "cannot write file '");
	assert_null(a.f);
	assert_null(a.tmp);
	pbi_atomic_discard(&a);
	expect_err(pbi_atomic_begin(&a, "", "curve", &err), &err, PB_EINVAL,
		   "cannot write curve: no file name given");
	assert_int_equal(count_entries(dir, &tmp), 0);
	tu_rm_tree(dir);
}

/* Failures next to an existing file leave its old contents and no
 * temporary file: the temporary file cannot be created (a folder is in
 * its way), the rename fails (the target is a folder), or the folder is
 * read-only (checked when not running as root, which may write there). */
static void test_failed_write_keeps_old(void **state)
{
	char *dir = tu_temp_dir(), path[512], blocker[600], sub[512];
	pb_error err = { 0 };
	int tmp;

	(void)state;
	snprintf(path, sizeof path, "%s/f.txt", dir);
	tu_write_text(dir, "f.txt", "old\n");
	tmp_name(blocker, sizeof blocker, path);
	assert_int_equal(mkdir(blocker, 0700), 0);
	expect_err(pbi_write_atomic(path, "new\n", 4, "file", &err), &err,
		   PB_EIO, path);
	assert_file_is(path, "old\n");
	assert_int_equal(rmdir(blocker), 0);
	assert_int_equal(count_entries(dir, &tmp), 1);

	/* The rename fails after the data is written: the temporary file
	 * goes, the folder in the way stays as it was. */
	snprintf(sub, sizeof sub, "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	tu_write_text(sub, "keep", "k");
	expect_err(pbi_write_atomic(sub, "new\n", 4, "file", &err), &err,
		   PB_EIO, "renaming");
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);
	assert_int_equal(count_entries(sub, &tmp), 1);

	if (geteuid() != 0) {
		assert_int_equal(chmod(dir, 0500), 0);
		expect_err(pbi_write_atomic(path, "new\n", 4, "file", &err),
			   &err, PB_EIO, "Permission denied");
		assert_int_equal(chmod(dir, 0700), 0);
		assert_file_is(path, "old\n");
		assert_int_equal(count_entries(dir, &tmp), 2);
		assert_int_equal(tmp, 0);
	}
	tu_rm_tree(dir);
}

/* A copy bigger than the copy buffer arrives whole over an existing
 * file; a missing source leaves the target alone. */
static void test_copy(void **state)
{
	enum { N = 20011 };
	char *dir = tu_temp_dir(), from[512], to[512], *src = malloc(N + 1);
	pb_error err = { 0 };
	FILE *f;
	int tmp;

	(void)state;
	assert_non_null(src);
	for (int i = 0; i < N; i++)
		src[i] = (char)('a' + (i * 7) % 26);
	src[N] = '\0';
	snprintf(from, sizeof from, "%s/from", dir);
	snprintf(to, sizeof to, "%s/to", dir);
	f = fopen(from, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(src, 1, N, f), N);
	fclose(f);
	tu_write_text(dir, "to", "old");
	assert_int_equal(pbi_copy_atomic(from, to, &err), 0);
	assert_file_is(to, src);

	snprintf(from, sizeof from, "%s/missing", dir);
	tu_write_text(dir, "to", "old");
	expect_err(pbi_copy_atomic(from, to, &err), &err, PB_EIO,
		   "missing: cannot read");
	assert_file_is(to, "old");
	/* A target whose folder is missing. */
	snprintf(from, sizeof from, "%s/from", dir);
	snprintf(to, sizeof to, "%s/no/to", dir);
	expect_err(pbi_copy_atomic(from, to, &err), &err, PB_EIO,
		   "cannot write copy");
	assert_int_equal(count_entries(dir, &tmp), 2);
	assert_int_equal(tmp, 0);
	free(src);
	tu_rm_tree(dir);
}

/* ---- appending ---------------------------------------------------------- */

static void test_append_line(void **state)
{
	char *dir = tu_temp_dir(), path[512];
	pb_error err = { 0 };

	(void)state;
	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	/* A new file, then a second line. */
	assert_int_equal(pbi_append_line(path, "{\"a\":1}\n", 8, &err), 0);
	assert_file_is(path, "{\"a\":1}\n");
	assert_int_equal(pbi_append_line(path, "{\"b\":2}\n", 8, &err), 0);
	assert_file_is(path, "{\"a\":1}\n{\"b\":2}\n");
	/* The last line was cut: a newline goes first, so the new line
	 * stays whole and the cut one stays alone. */
	tu_write_text(dir, "runs.jsonl", "{\"a\":1}\n{\"b\":");
	assert_int_equal(pbi_append_line(path, "{\"c\":3}\n", 8, &err), 0);
	assert_file_is(path, "{\"a\":1}\n{\"b\":\n{\"c\":3}\n");
	/* An empty file gets no leading newline. */
	tu_write_text(dir, "runs.jsonl", "");
	assert_int_equal(pbi_append_line(path, "x\n", 2, &err), 0);
	assert_file_is(path, "x\n");
	/* Only len bytes are written. */
	assert_int_equal(pbi_append_line(path, "y\nIGNORED", 2, &err), 0);
	assert_file_is(path, "x\ny\n");

	snprintf(path, sizeof path, "%s/no/runs.jsonl", dir);
	expect_err(pbi_append_line(path, "x\n", 2, &err), &err, PB_EIO,
		   "cannot open for appending");
	assert_non_null(strstr(err.msg, path));
	tu_rm_tree(dir);
}

/* ---- paths and folders -------------------------------------------------- */

static void test_path_join(void **state)
{
	static const struct {
		const char *a, *b, *want;
	} cases[] = {
		{ "a", "b", "a/b" },
		{ "a/", "b", "a/b" },
		{ "a/b", "c/d.ini", "a/b/c/d.ini" },
		{ "/", "b", "/b" },
		{ "..", "b", "../b" },
		{ "./", "b", "./b" },
		{ "a", "/abs/b", "/abs/b" },
		{ "", "b", "b" },
		{ ".", "b", "b" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *p = pbi_path_join(cases[i].a, cases[i].b);

		assert_non_null(p);
		if (strcmp(p, cases[i].want))
			fail_msg("join('%s', '%s') is '%s', expected '%s'",
				 cases[i].a, cases[i].b, p, cases[i].want);
		free(p);
	}
}

static void test_mkdirs(void **state)
{
	char *dir = tu_temp_dir(), path[512];
	pb_error err = { 0 };
	struct stat st;

	(void)state;
	snprintf(path, sizeof path, "%s/a/b/c", dir);
	assert_int_equal(pbi_mkdirs(path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Again, and with a trailing slash: the folders exist, fine. */
	assert_int_equal(pbi_mkdirs(path, &err), 0);
	snprintf(path, sizeof path, "%s/a/b/c/", dir);
	assert_int_equal(pbi_mkdirs(path, &err), 0);
	/* A file where a folder should be. */
	tu_write_text(dir, "file", "x");
	snprintf(path, sizeof path, "%s/file", dir);
	expect_err(pbi_mkdirs(path, &err), &err, PB_EIO,
		   "exists and is not a folder");
	snprintf(path, sizeof path, "%s/file/sub", dir);
	expect_err(pbi_mkdirs(path, &err), &err, PB_EIO,
		   "cannot create folder '");
	assert_non_null(strstr(err.msg, path));
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_replaces_on_commit),
		cmocka_unit_test(test_discard_keeps_old),
		cmocka_unit_test(test_finish_then_publish),
		cmocka_unit_test(test_write_into_missing_folder),
		cmocka_unit_test(test_failed_write_keeps_old),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_append_line),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_mkdirs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
