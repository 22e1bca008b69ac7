/* Files written so that a crash, a full disk or a reader at the wrong
 * moment never sees half of one: every writer of prunebench goes through
 * here. Internal (pbi_ prefix). */
#ifndef PB_BASE_FILE_H
#define PB_BASE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "prunebench/error.h"

/* A file being replaced atomically: written to a temporary name beside
 * it (unique per process and thread), flushed to disk, then renamed over
 * the real name, and the folder synced so the rename survives a power
 * cut.
 *
 *   pbi_atomic a;
 *   if (pbi_atomic_begin(&a, path, "checkpoint", err)) return ...;
 *   fwrite(..., a.f);
 *   return pbi_atomic_commit(&a, err);      (discards on failure)
 *
 * Files that must change together (a checkpoint and its model INI) call
 * pbi_atomic_finish on each, then pbi_atomic_publish on each, so that no
 * rename happens before every file is safely on disk. */
typedef struct pbi_atomic {
	char *path;
	char *tmp;
	const char *what;   /* "checkpoint", for messages */
	FILE *f;            /* open between begin and finish */
} pbi_atomic;

int pbi_atomic_begin(pbi_atomic *a, const char *path, const char *what,
		     pb_error *err);
/* Flushes, fsyncs and closes the temporary file (a write error that
 * stdio kept to itself, e.g. a full disk, is reported here). */
int pbi_atomic_finish(pbi_atomic *a, pb_error *err);
/* Renames the finished temporary file over the real name. */
int pbi_atomic_publish(pbi_atomic *a, pb_error *err);
/* finish + publish; on failure the temporary file is removed. Always
 * releases a. */
int pbi_atomic_commit(pbi_atomic *a, pb_error *err);
/* Removes the temporary file (if still there) and releases a. */
void pbi_atomic_discard(pbi_atomic *a);

/* The whole of buf as path's new contents (pbi_atomic_commit). */
int pbi_write_atomic(const char *path, const void *buf, size_t len,
		     const char *what, pb_error *err);

/* A copy of file `from` as to's new contents (pbi_atomic_commit). */
int pbi_copy_atomic(const char *from, const char *to, pb_error *err);

/* Appends one complete line with a single write on an O_APPEND
 * descriptor, then fsync. When the file does not end in a newline (a
 * line cut by a crash), a newline goes first so the new line stays
 * whole. */
int pbi_append_line(const char *path, const char *line, size_t len,
		    pb_error *err);

/* 1 when a and b name the same existing file (same device and inode,
 * however they are spelled). */
int pbi_same_file(const char *a, const char *b);
/* 0 when path can be created or replaced as a file: refuses an empty
 * name, an existing folder, a folder that does not exist or cannot be
 * written. For checking an output before the work that produces it. */
int pbi_check_output(const char *path, const char *what, pb_error *err);

/* malloc-ed "a/b"; b alone when b is absolute or a is "" or ".". */
char *pbi_path_join(const char *a, const char *b);
/* mkdir -p. */
int pbi_mkdirs(const char *path, pb_error *err);

#endif
