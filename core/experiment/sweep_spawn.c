/* Cells in processes of their own. Research plugins are experimental code:
 * one that segfaults, aborts or calls exit() must take only its own cell
 * with it. The parent keeps what the in-process sweep keeps (the order of
 * cells over the cores, the lock, runs.jsonl); each cell runs in a fresh
 * `prunebench run FILE --cell ID` started with posix_spawn (a fork of a
 * process that has OpenMP threads is not safe), with its stdout and
 * stderr in the cell's log, and reports through a pipe: "S ..." lines
 * for the display, then "R <record>". A child that dies without a record
 * is recorded as crashed, with its signal or exit status and the last
 * lines of its log. Once no cell is left to start, the threads of the
 * workers that have finished go to the cells still running ("T N" on
 * each child's control socket; pb_cell_env.spare_threads). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"

extern char **environ;

/* The fds on which a child reports and hears of spare threads. */
#define REPORT_FD 3
#define CONTROL_FD 4
#define MAX_ARGS 64

typedef struct child {
	pid_t pid;             /* 0: slot free */
	int fd;                /* read end of its report pipe */
	int ctl;               /* our end of its control socket */
	int threads;           /* threads it may use */
	const pb_cell *c;
	char *buf;             /* what it sent, not yet a whole line */
	size_t len, cap;
	pb_record rec;
	int have_rec;
	char bad_rec[256];     /* why its record did not parse */
	double t0;
} child;

/* ---- starting a child ------------------------------------------------------ */

static int spawn_actions(posix_spawn_file_actions_t *fa, int log_fd,
			 int report_fd, int control_fd)
{
	return posix_spawn_file_actions_init(fa) ||
	       posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY,
						0) ||
	       posix_spawn_file_actions_adddup2(fa, log_fd, 1) ||
	       posix_spawn_file_actions_adddup2(fa, log_fd, 2) ||
	       posix_spawn_file_actions_adddup2(fa, report_fd, REPORT_FD) ||
	       posix_spawn_file_actions_adddup2(fa, control_fd, CONTROL_FD);
}

/* Moves *fd above the numbers the child's fds get: dup2 onto itself
 * would leave it close-on-exec, and onto the other's number would
 * close that one first. */
static int lift(int *fd)
{
	int nfd;

	if (*fd > CONTROL_FD)
		return 0;
	if ((nfd = fcntl(*fd, F_DUPFD_CLOEXEC, CONTROL_FD + 1)) < 0)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int start(pbi_sweep *S, child *k, const pb_cell *c, pb_error *err)
{
	const pb_run_opts *o = S->o;
	char threads[16], fdtext[16], ctltext[16], *argv[MAX_ARGS], *logp;
	posix_spawn_file_actions_t fa;
	int p[2] = { -1, -1 }, sv[2] = { -1, -1 }, log_fd = -1, n = 0, rc;

	memset(k, 0, sizeof *k);
	k->c = c;
	k->fd = -1;
	k->ctl = -1;
	k->threads = S->inner;
	k->t0 = pbi_now();
	pb_record_init(&k->rec);
	logp = pbi_sweep_cell_file(S, c, ".log");
	if (!logp)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	log_fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	free(logp);
	if (log_fd < 0 || pipe2(p, O_CLOEXEC) || lift(&p[1]) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    lift(&sv[1])) {
		rc = pb_error_set(err, PB_EIO, "starting cell %s: %s", c->id,
				  strerror(errno));
		goto out;
	}
	snprintf(threads, sizeof threads, "%d", S->inner);
	snprintf(fdtext, sizeof fdtext, "%d", REPORT_FD);
	snprintf(ctltext, sizeof ctltext, "%d", CONTROL_FD);
	argv[n++] = (char *)o->cell_exec;
	argv[n++] = "run";
	argv[n++] = S->e->path;
	argv[n++] = "--cell";
	argv[n++] = (char *)c->id;
	argv[n++] = "--report-fd";
	argv[n++] = fdtext;
	argv[n++] = "--control-fd";
	argv[n++] = ctltext;
	argv[n++] = "--output";
	argv[n++] = S->e->output;
	argv[n++] = "--threads";
	argv[n++] = threads;
	for (int i = 0; i < o->n_child_args && n < MAX_ARGS - 1; i++)
		argv[n++] = o->child_args[i];
	argv[n] = NULL;
	if (spawn_actions(&fa, log_fd, p[1], sv[1])) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	errno = posix_spawn(&k->pid, o->cell_exec, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (errno) {
		k->pid = 0;
		rc = pb_error_set(err, PB_EIO, "starting cell %s: %s: %s",
				  c->id, o->cell_exec, strerror(errno));
		goto out;
	}
	k->fd = p[0];
	p[0] = -1;
	fcntl(k->fd, F_SETFL, O_NONBLOCK);
	k->ctl = sv[0];
	sv[0] = -1;
	rc = 0;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (log_fd >= 0)
		close(log_fd);
	return rc;
}

/* ---- what a child says ------------------------------------------------------ */

static void take_line(pbi_sweep *S, child *k, int slot, char *line,
		      size_t len)
{
	line[len] = '\0';
	if (len > 2 && !strncmp(line, "S ", 2)) {
		pbi_sweep_status(S, slot, "%s", line + 2);
	} else if (len > 2 && !strncmp(line, "R ", 2) && !k->have_rec) {
		if (pb_record_parse(line + 2, len - 2, &k->rec, k->bad_rec,
				    sizeof k->bad_rec))
			pb_record_init(&k->rec);
		else
			k->have_rec = 1;
	}
}

/* Reads what is there; 1 at the end of the stream (the child exited or
 * closed it). */
static int drain(pbi_sweep *S, child *k, int slot)
{
	char tmp[4096];

	for (;;) {
		ssize_t r = read(k->fd, tmp, sizeof tmp);
		char *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? 0 : 1;
		if (r == 0)
			return 1;
		if (k->len + (size_t)r + 1 > k->cap) {
			size_t cap = 2 * (k->len + (size_t)r + 1);
			char *nb = realloc(k->buf, cap);

			if (!nb)
				return 1;
			k->buf = nb;
			k->cap = cap;
		}
		memcpy(k->buf + k->len, tmp, (size_t)r);
		k->len += (size_t)r;
		while ((nl = memchr(k->buf, '\n', k->len))) {
			size_t n = (size_t)(nl - k->buf);

			take_line(S, k, slot, k->buf, n);
			memmove(k->buf, nl + 1, k->len - n - 1);
			k->len -= n + 1;
		}
	}
}

/* ---- a child that died ---------------------------------------------------- */

/* The last lines of the cell's log, on one line. */
static void log_tail(const pbi_sweep *S, const pb_cell *c, char *out,
		     size_t n)
{
	char *logp = pbi_sweep_cell_file(S, c, ".log"), buf[1024];
	FILE *f = logp ? fopen(logp, "rb") : NULL;
	size_t len = 0, k = 0;
	long size;
	int lines = 0;

	out[0] = '\0';
	free(logp);
	if (!f)
		return;
	if (!fseek(f, 0, SEEK_END) && (size = ftell(f)) > 0) {
		fseek(f, size > (long)sizeof buf - 1 ?
		      size - (long)sizeof buf + 1 : 0, SEEK_SET);
		len = fread(buf, 1, sizeof buf - 1, f);
	}
	fclose(f);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	/* Back to the start of the sixth line from the end. */
	for (k = len; k > 0; k--)
		if (buf[k - 1] == '\n' && ++lines == 6)
			break;
	for (size_t i = k, o = 0; i < len && o + 4 < n; i++) {
		if (buf[i] == '\n') {
			o += (size_t)snprintf(out + o, n - o, " | ");
		} else if (buf[i] != '\r') {
			out[o++] = buf[i];
			out[o] = '\0';
		}
	}
}

static void crashed(pbi_sweep *S, child *k, int status)
{
	char why[512], tail[600], *msg;

	if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "the cell's process was killed by "
			 "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status) && k->bad_rec[0])
		snprintf(why, sizeof why, "the cell's process sent a record "
			 "that does not read (%s)", k->bad_rec);
	else
		snprintf(why, sizeof why, "the cell's process exited with "
			 "status %d before reporting a result (a plugin that "
			 "calls exit()?)", WIFEXITED(status) ?
			 WEXITSTATUS(status) : -1);
	log_tail(S, k->c, tail, sizeof tail);
	pb_record_init(&k->rec);
	k->rec.status = PB_CELL_CRASHED;
	k->rec.threads = S->inner;
	k->rec.time_total_s = pbi_now() - k->t0;
	if (asprintf(&msg, "%s; last lines of cells/%s.log: %s", why,
		     k->c->id, tail[0] ? tail : "(empty)") >= 0) {
		pb_record_set(&k->rec.error, msg);
		free(msg);
	}
	if (pbi_sweep_identify(S, k->c, &k->rec, 0))
		pb_record_set(&k->rec.error, "out of memory");
}

/* Waits for the child, records its cell, frees the slot. */
static void reap(pbi_sweep *S, child *k, int slot)
{
	int status = 0;

	close(k->fd);
	if (k->ctl >= 0)
		close(k->ctl);
	while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!k->have_rec)
		crashed(S, k, status);
	pbi_sweep_finish(S, k->c, &k->rec);
	pbi_sweep_status(S, slot, "%s", "");
	pb_record_clear(&k->rec);
	free(k->buf);
	memset(k, 0, sizeof *k);
}

/* Waits until at least one running child has finished (or a second has
 * passed, for the display). */
static void service(pbi_sweep *S, child *kids, int *active)
{
	struct pollfd pf[PB_EXP_MAX_SEEDS * 4];
	int map[PB_EXP_MAX_SEEDS * 4], n = 0;

	for (int s = 0; s < S->outer && n < (int)(sizeof pf / sizeof pf[0]);
	     s++)
		if (kids[s].pid) {
			pf[n] = (struct pollfd){ .fd = kids[s].fd,
						 .events = POLLIN };
			map[n++] = s;
		}
	if (poll(pf, (nfds_t)n, 1000) <= 0)
		return;
	for (int i = 0; i < n; i++) {
		child *k = &kids[map[i]];

		if (!pf[i].revents)
			continue;
		if (drain(S, k, map[i])) {
			reap(S, k, map[i]);
			(*active)--;
		}
	}
}

/* No cell left to start: the threads no child uses go, one at a time, to
 * the running child with the fewest (of those, the last started, which
 * has the most left to do). A child told nothing, or whose socket is
 * gone, just goes on with what it has. */
static void grant_spare(pbi_sweep *S, child *kids)
{
	int used = 0;

	for (int s = 0; s < S->outer; s++)
		if (kids[s].pid)
			used += kids[s].threads;
	while (used < S->threads) {
		int best = -1;

		for (int s = 0; s < S->outer; s++)
			if (kids[s].pid && kids[s].ctl >= 0 &&
			    (best < 0 || kids[s].threads < kids[best].threads ||
			     (kids[s].threads == kids[best].threads &&
			      kids[s].t0 > kids[best].t0)))
				best = s;
		if (best < 0)
			break;
		{
			char line[32];
			const int n = snprintf(line, sizeof line, "T %d\n",
					       kids[best].threads + 1);

			if (send(kids[best].ctl, line, (size_t)n,
				 MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
				close(kids[best].ctl);
				kids[best].ctl = -1;
				continue;
			}
		}
		kids[best].threads++;
		used++;
	}
}

/* A cell whose process could not start fails (and runs again next
 * time); the sweep goes on. */
static void not_started(pbi_sweep *S, const pb_cell *c, const char *why)
{
	pb_record r;

	pb_record_init(&r);
	r.status = PB_CELL_FAILED;
	r.threads = S->inner;
	pb_record_set(&r.error, why);
	if (pbi_sweep_identify(S, c, &r, 0))
		pb_record_set(&r.error, "out of memory");
	pbi_sweep_finish(S, c, &r);
	pb_record_clear(&r);
}

/* Why the cell's dense model is missing, or NULL: such a cell fails
 * here with the sweep's own message (a process of its own could only
 * fail too, saying less). */
static const char *dense_missing(const pbi_sweep *S, const pb_cell *c)
{
	for (int s = 0; s < S->e->n_seeds; s++)
		if (S->e->seeds[s] == c->seed)
			return S->dense && !S->dense[s] && S->dense_rc &&
			       S->dense_rc[s] ? S->dense_msg[s] : NULL;
	return NULL;
}

int pbi_sweep_spawn(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, pb_error *err)
{
	child *kids;
	int next = 0, active = 0;

	if (S->outer > PB_EXP_MAX_SEEDS * 4)
		S->outer = PB_EXP_MAX_SEEDS * 4;
	if (access(S->e->path, R_OK))
		return pb_error_set(err, PB_EIO, "%s: %s; a cell that runs in "
				    "its own process reads the experiment from "
				    "its file (or run the cells in this "
				    "process: --in-process)", S->e->path,
				    strerror(errno));
	kids = calloc((size_t)S->outer, sizeof *kids);
	if (!kids)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	while (next < n_todo || active) {
		for (int s = 0; s < S->outer && next < n_todo; s++) {
			pb_error serr = { 0 };

			if (kids[s].pid)
				continue;
			if (dense_missing(S, &cells[todo[next]])) {
				not_started(S, &cells[todo[next]],
					    dense_missing(S, &cells[todo[next]]));
				next++;
				continue;
			}
			if (start(S, &kids[s], &cells[todo[next]], &serr)) {
				not_started(S, &cells[todo[next]], serr.msg);
				pb_record_clear(&kids[s].rec);
			} else {
				active++;
			}
			next++;
		}
		if (next >= n_todo && active)
			grant_spare(S, kids);
		if (active)
			service(S, kids, &active);
	}
	free(kids);
	return 0;
}
