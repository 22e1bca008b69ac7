/* The replay driver: a main() for a fuzz harness, so that make check runs
 * it without clang or libFuzzer. It feeds every file of the harness's
 * seed corpus (tests/fuzz/corpus/NAME) and of its regressions (inputs
 * that once crashed it, tests/fuzz/regressions/NAME) to
 * LLVMFuzzerTestOneInput, each in a buffer of exactly its size as
 * libFuzzer does, so a sanitizer build catches reads past the end.
 *
 *   replay_NAME              the two folders of NAME
 *   replay_NAME PATH...      these files, or every file of these folders
 *
 * A crash, a sanitizer report or a failed check of the harness aborts the
 * program, which fails the test; the log's last "replay:" line names the
 * input. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

#ifndef FUZZ_NAME
#error "compile with -DFUZZ_NAME='\"name\"'"
#endif

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return -1;
	for (;;) {
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 4096;
			uint8_t *nb = realloc(buf, nc);
			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap = nc;
		}
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

static int run_file(const char *path)
{
	uint8_t *buf, *exact;
	size_t len;

	if (read_file(path, &buf, &len)) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	/* Exactly len bytes (malloc(0) may be NULL: use one byte then). */
	exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order. Returns the count, or -1. */
static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	char **names = NULL;
	int n = 0, cap = 0, rc = 0;

	if (!d) {
		fprintf(stderr, "replay: cannot open %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	while ((ent = readdir(d))) {
		if (ent->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn;
			cap = cap ? 2 * cap : 64;
			nn = realloc(names, (size_t)cap * sizeof *nn);
			if (!nn)
				break;
			names = nn;
		}
		names[n] = malloc(strlen(dir) + strlen(ent->d_name) + 2);
		if (!names[n])
			break;
		sprintf(names[n], "%s/%s", dir, ent->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, (size_t)n, sizeof *names, by_name);
	for (int i = 0; i < n; i++) {
		struct stat st;
		if (!rc && stat(names[i], &st) == 0 && S_ISREG(st.st_mode) &&
		    run_file(names[i]))
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc ? -1 : n;
}

static int run_path(const char *path, int *count)
{
	struct stat st;
	int n;

	if (stat(path, &st)) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*count += 1;
		return run_file(path);
	}
	n = run_dir(path);
	if (n < 0)
		return -1;
	fprintf(stderr, "replay: %d inputs from %s\n", n, path);
	*count += n;
	return 0;
}

int main(int argc, char **argv)
{
	const char *corpus = PB_SRCDIR "/tests/fuzz/corpus/" FUZZ_NAME;
	const char *regressions = PB_SRCDIR "/tests/fuzz/regressions/"
				  FUZZ_NAME;
	struct stat st;
	int count = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (run_path(argv[i], &count))
				return 1;
	} else {
		/* The seed corpus must be there; a harness without
		 * regressions has no folder for them. */
		if (run_path(corpus, &count))
			return 1;
		if (stat(regressions, &st) == 0 && run_path(regressions, &count))
			return 1;
	}
	printf("replay %s: %d inputs, no crash\n", FUZZ_NAME, count);
	return 0;
}
