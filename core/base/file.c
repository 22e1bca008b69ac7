/* Atomic replacement, durable appends, path joining and folder creation:
 * the only place where prunebench creates and renames files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/file.h"

/* Makes a rename durable; a failure here only weakens the guarantee
 * after a power cut, so it is not reported. */
static void sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

static void release(pbi_atomic *a)
{
	free(a->path);
	free(a->tmp);
	a->path = a->tmp = NULL;
	a->f = NULL;
}

int pbi_atomic_begin(pbi_atomic *a, const char *path, const char *what,
		     pb_error *err)
{
	int fd;

	memset(a, 0, sizeof *a);
	a->what = what ? what : "file";
	if (!path || !*path)
		return pb_error_set(err, PB_EINVAL, "cannot write %s: no file "
				    "name given", a->what);
	a->path = strdup(path);
	/* Process and thread id: cells writing beside each other, and two
	 * runs of one experiment, never share a temporary file. */
	if (!a->path || asprintf(&a->tmp, "%s.tmp.%ld.%ld", path,
				 (long)getpid(),
				 (long)syscall(SYS_gettid)) < 0) {
		a->tmp = NULL;
		release(a);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || !(a->f = fdopen(fd, "wb"))) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		pb_error_set(err, PB_EIO, "cannot write %s '%s': %s; check that "
			     "its folder exists and is writable", a->what, path,
			     strerror(e));
		release(a);
		return PB_EIO;
	}
	return 0;
}

int pbi_atomic_finish(pbi_atomic *a, pb_error *err)
{
	FILE *f = a->f;
	int ok, e;

	if (!f)
		return 0;
	a->f = NULL;
	ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
	e = errno;
	if (fclose(f) != 0 && ok) {
		ok = 0;
		e = errno;
	}
	if (!ok)
		return pb_error_set(err, PB_EIO, "cannot write %s '%s': %s",
				    a->what, a->path,
				    e ? strerror(e) : "write error (disk "
				    "full?)");
	return 0;
}

int pbi_atomic_publish(pbi_atomic *a, pb_error *err)
{
	if (rename(a->tmp, a->path) != 0)
		return pb_error_set(err, PB_EIO, "cannot write %s '%s': "
				    "renaming '%s' to it: %s", a->what,
				    a->path, a->tmp, strerror(errno));
	sync_parent_dir(a->path);
	free(a->tmp);
	a->tmp = NULL;
	return 0;
}

void pbi_atomic_discard(pbi_atomic *a)
{
	if (a->f)
		fclose(a->f);
	if (a->tmp)
		unlink(a->tmp);
	release(a);
}

int pbi_atomic_commit(pbi_atomic *a, pb_error *err)
{
	int rc = pbi_atomic_finish(a, err);

	if (!rc)
		rc = pbi_atomic_publish(a, err);
	pbi_atomic_discard(a);
	return rc;
}

int pbi_write_atomic(const char *path, const void *buf, size_t len,
		     const char *what, pb_error *err)
{
	pbi_atomic a;
	int rc;

	if ((rc = pbi_atomic_begin(&a, path, what, err)))
		return rc;
	if (len && fwrite(buf, 1, len, a.f) != len) {
		int e = errno;

		pbi_atomic_discard(&a);
		return pb_error_set(err, PB_EIO, "cannot write %s '%s': %s",
				    what, path, strerror(e));
	}
	return pbi_atomic_commit(&a, err);
}

int pbi_copy_atomic(const char *from, const char *to, pb_error *err)
{
	FILE *f = fopen(from, "rb");
	pbi_atomic a;
	char buf[8192];
	size_t n;
	int rc;

	if (!f)
		return pb_error_set(err, PB_EIO, "%s: cannot read: %s", from,
				    strerror(errno));
	if ((rc = pbi_atomic_begin(&a, to, "copy", err))) {
		fclose(f);
		return rc;
	}
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (fwrite(buf, 1, n, a.f) != n)
			break;
	if (ferror(f)) {
		fclose(f);
		pbi_atomic_discard(&a);
		return pb_error_set(err, PB_EIO, "%s: read error", from);
	}
	fclose(f);
	return pbi_atomic_commit(&a, err);
}

int pbi_append_line(const char *path, const char *line, size_t len,
		    pb_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	struct stat st;
	size_t done = 0;

	if (fd < 0)
		return pb_error_set(err, PB_EIO, "%s: cannot open for "
				    "appending: %s", path, strerror(errno));
	if (!fstat(fd, &st) && st.st_size > 0) {
		char last = '\n';
		int rfd = open(path, O_RDONLY | O_CLOEXEC);

		if (rfd >= 0) {
			if (pread(rfd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(rfd);
		}
		if (last != '\n' && write(fd, "\n", 1) != 1)
			goto fail;
	}
	while (done < len) {
		ssize_t w = write(fd, line + done, len - done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		done += (size_t)w;
	}
	if (fsync(fd))
		goto fail;
	if (close(fd))
		return pb_error_set(err, PB_EIO, "%s: write failed: %s", path,
				    strerror(errno));
	return 0;
fail:
	pb_error_set(err, PB_EIO, "%s: write failed: %s", path,
		     strerror(errno));
	close(fd);
	return PB_EIO;
}

int pbi_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return a && b && !stat(a, &sa) && !stat(b, &sb) &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int pbi_check_output(const char *path, const char *what, pb_error *err)
{
	const char *slash;
	char *dir;
	struct stat st;
	int ok;

	if (!path || !*path)
		return pb_error_set(err, PB_EINVAL, "the %s's file name is "
				    "empty", what);
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return pb_error_set(err, PB_EINVAL, "%s: is a folder; name the "
				    "%s's file, e.g. %s/NAME", path, what,
				    path);
	slash = strrchr(path, '/');
	dir = slash == path ? strdup("/") : slash ?
	      strndup(path, (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	ok = !stat(dir, &st) && S_ISDIR(st.st_mode);
	if (!ok) {
		pb_error_set(err, PB_EIO, "%s: folder '%s' does not exist; "
			     "create it first", path, dir);
	} else if (access(dir, W_OK | X_OK)) {
		pb_error_set(err, PB_EIO, "%s: cannot write in folder '%s': %s",
			     path, dir, strerror(errno));
		ok = 0;
	}
	free(dir);
	return ok ? 0 : PB_EIO;
}

char *pbi_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p;

	if (b[0] == '/' || !la || !strcmp(a, "."))
		return strdup(b);
	p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	if (a[la - 1] != '/')
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

int pbi_mkdirs(const char *path, pb_error *err)
{
	char *p;
	struct stat st;

	if (!path || !*path)
		return pb_error_set(err, PB_EINVAL, "cannot create a folder "
				    "with an empty name");
	if (!(p = strdup(path)))
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0777) && errno != EEXIST) {
				int e = errno;

				pb_error_set(err, PB_EIO, "cannot create folder "
					     "'%s': %s", p, strerror(e));
				free(p);
				return PB_EIO;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
		pb_error_set(err, PB_EIO, "'%s' exists and is not a folder", p);
		free(p);
		return PB_EIO;
	}
	free(p);
	return 0;
}
