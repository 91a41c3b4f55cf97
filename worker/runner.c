/*
 * fork/exec with bounded capture, after OpenSMTPD's forkmda and s6's
 * close-on-exec exec-failure pipe. The child gets a new session so that a
 * timeout can signal the whole process group, /dev/null on stdin, and no
 * descriptor of ours but its stdout and stderr pipes.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "runner.h"
#include "util.h"

#define DRAIN_SECONDS	2.0	/* pipes held open by an escaped process */
#define STRAYS_MS	2000	/* killing what a run left: at most */
#define CHUNK		65536

/*
 * The sanitizers' runtimes keep state in memory that a vfork child would
 * share with us: under them, a plain fork.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPAWN_FORK()	fork()
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SPAWN_FORK()	fork()
#endif
#endif
#ifndef SPAWN_FORK
#define SPAWN_FORK()	vfork()
#endif

extern char **environ;

struct exec_report {
	int	stage;
	int	err;
};

void
runner_capture_close(struct runner *r, struct capture *c)
{
	if (c->fd == -1)
		return;
	ev_io_stop(r->loop, &c->io);
	close(c->fd);
	c->fd = -1;
}

static void
capture_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct runner	*r = w->data;
	struct capture	*c = w == &r->out.io ? &r->out : &r->err;
	char		 scratch[CHUNK];
	size_t		 grow;
	ssize_t		 n;

	(void)loop;
	(void)revents;
	for (;;) {
		if (c->len < c->cap) {
			if (c->len == c->alloc) {
				grow = c->alloc == 0 ? CHUNK : c->alloc * 2;
				if (grow > c->cap)
					grow = c->cap;
				c->data = xreallocarray(c->data, grow + 1, 1);
				c->alloc = grow;
			}
			n = read(c->fd, c->data + c->len, c->alloc - c->len);
		} else
			n = read(c->fd, scratch, sizeof(scratch));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			runner_capture_close(r, c);
			runner_maybe_done(r);
			return;
		}
		if (c->len < c->cap) {
			c->len += n;
			c->data[c->len] = '\0';
		} else
			c->truncated = 1;	/* drained and dropped */
	}
}

static void
kill_group(struct runner *r, int sig)
{
	if (r->pid > 0)
		kill(-r->pid, sig);
}

/* SIGKILL every child of this process, found by its ppid in /proc. */
static void
children_kill_scan(void)
{
	struct dirent	*de;
	DIR		*d;
	char		 path[300], buf[512], *p;
	ssize_t		 n;
	long		 ppid;
	pid_t		 self = getpid();
	int		 fd;

	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* "pid (comm) state ppid ...": comm may hold a ')' itself. */
		if ((p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != self)
			continue;
		kill((pid_t)strtol(de->d_name, NULL, 10), SIGKILL);
	}
	closedir(d);
}

/*
 * SIGKILL every child of this process: the kernel lists each thread's in
 * /proc/self/task/TID/children, a read rather than the scan of every
 * process in /proc that a kernel without CONFIG_PROC_CHILDREN leaves.
 */
static void
children_kill(void)
{
	struct dirent	*de;
	DIR		*d;
	FILE		*f;
	char		 path[300];
	long		 pid;
	int		 listed = 0;

	if ((d = opendir("/proc/self/task")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/self/task/%s/"
			    "children", de->d_name);
			if ((f = fopen(path, "re")) == NULL)
				continue;
			listed = 1;
			while (fscanf(f, "%ld", &pid) == 1)
				kill((pid_t)pid, SIGKILL);
			fclose(f);
		}
		closedir(d);
	}
	if (!listed)
		children_kill_scan();
}

/*
 * The end of a run for which we are a child subreaper: kill and reap every
 * child we have until there is none. A process that left the run's group
 * (setsid, a daemon's double fork) is out of reach of the group kill, but
 * once its parent is gone it becomes our child, and so do the children of
 * each one killed here. The worker runs one invocation at a time and its
 * helpers to completion, and watches no other child: every child it has
 * now is the run's. Bounded: a process stuck in the kernel is left behind.
 */
static void
runner_kill_strays(struct runner *r)
{
	struct timespec	 nap = { 0, 1000 * 1000 };
	int64_t		 deadline = mono_ms() + STRAYS_MS;
	pid_t		 pid;
	int		 killed = 0;

	if (!r->subreaper)
		return;
	for (;;) {
		pid = waitpid(-1, NULL, WNOHANG | __WALL);
		if (pid > 0)
			continue;
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid == -1)
			break;		/* ECHILD: none left */
		if (mono_ms() >= deadline) {
			log_warnx("processes left by pid %d did not die in %d "
			    "ms", (int)r->pid, STRAYS_MS);
			break;
		}
		/* Some left, none dead yet: kill them, new ones too. */
		children_kill();
		killed = 1;
		nanosleep(&nap, NULL);
	}
	if (killed)
		log_debug("killed what pid %d left behind", (int)r->pid);
	/* Until the next host run: see runner_start(). */
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	r->subreaper = 0;
}

static void
runner_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct runner *r = w->data;

	(void)loop;
	(void)revents;
	kill_group(r, SIGKILL);
}

static void
runner_terminate(struct runner *r)
{
	if (r->on_timeout != NULL)
		run_output_env(r->on_timeout, r->envp, NULL, 0, 30);
	if (r->grace_seconds == 0) {
		kill_group(r, SIGKILL);
		return;
	}
	kill_group(r, SIGTERM);
	ev_timer_set(&r->grace, (double)r->grace_seconds, 0.);
	ev_timer_start(r->loop, &r->grace);
}

static void
runner_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct runner *r = w->data;

	(void)loop;
	(void)revents;
	if (r->reaped) {
		/* Its output not yet taken by the caller (exec): given up. */
		if (relay_pending(r)) {
			r->timed_out = 1;
			relay_stop(r);
			runner_maybe_done(r);
		}
		return;
	}
	r->timed_out = 1;
	if (r->relay)
		relay_stop(r);
	runner_terminate(r);
}

void
runner_cancel(struct runner *r)
{
	if (r->cancelled || r->cb == NULL)
		return;
	if (r->reaped) {
		/* Ended, its output still on its way to the caller. */
		if (r->relay && (relay_pending(r) || r->out.fd != -1 ||
		    r->err.fd != -1)) {
			r->cancelled = 1;
			relay_stop(r);
			runner_maybe_done(r);
		}
		return;
	}
	r->cancelled = 1;
	ev_timer_stop(r->loop, &r->timeout);
	if (r->relay)
		relay_stop(r);
	runner_terminate(r);
}

static void
runner_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct runner *r = w->data;

	(void)loop;
	(void)revents;
	/* Something escaped the group and holds the pipes: stop waiting. */
	if (r->relay && relay_drain(r)) {
		ev_timer_set(&r->drain, DRAIN_SECONDS, 0.);
		ev_timer_start(loop, &r->drain);
	} else {
		runner_capture_close(r, &r->out);
		runner_capture_close(r, &r->err);
	}
	runner_maybe_done(r);
}

static void
runner_child(struct ev_loop *loop, ev_child *w, int revents)
{
	struct runner		*r = w->data;
	struct exec_report	 rep;
	ssize_t			 n;

	(void)revents;
	ev_child_stop(loop, w);
	r->reaped = 1;
	r->status = w->rstatus;
	r->duration_ms = mono_ms() - r->started_ms;
	/* An exec's timeout bounds the delivery of its output too. */
	if (!r->relay)
		ev_timer_stop(loop, &r->timeout);
	ev_timer_stop(loop, &r->grace);
	/* Whatever the program left running goes with it. */
	kill_group(r, SIGKILL);
	runner_kill_strays(r);
	do
		n = read(r->execfd, &rep, sizeof(rep));
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)sizeof(rep)) {
		r->exec_stage = rep.stage;
		r->exec_errno = rep.err;
	}
	close(r->execfd);
	r->execfd = -1;
	ev_timer_set(&r->drain, DRAIN_SECONDS, 0.);
	ev_timer_start(loop, &r->drain);
	runner_maybe_done(r);
}

void
runner_maybe_done(struct runner *r)
{
	if (!r->reaped || r->out.fd != -1 || r->err.fd != -1 ||
	    relay_pending(r))
		return;
	ev_timer_stop(r->loop, &r->drain);
	ev_timer_stop(r->loop, &r->timeout);
	if (r->cb != NULL) {
		runner_cb cb = r->cb;
		r->cb = NULL;
		cb(r, r->arg);
	}
}

static void __attribute__((noreturn))
child_fail(int fd, int stage)
{
	struct exec_report rep = { stage, errno };

	(void)!write(fd, &rep, sizeof(rep));
	_exit(127);
}

/*
 * closefrom() without allocating, as a vfork child must: close_range(2),
 * else one close(2) per possible descriptor (libbsd's fallback reads
 * /proc/self/fd with opendir, which mallocs).
 */
static void
child_closefrom(int lowfd)
{
	long	max, fd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0)
		return;
#endif
	if ((max = sysconf(_SC_OPEN_MAX)) < 0 || max > 65536)
		max = 65536;
	for (fd = lowfd; fd < max; fd++)
		(void)close((int)fd);
}

static void __attribute__((noreturn))
child_exec(const struct runner_spec *s, int out, int err, int rep,
    pid_t parent)
{
	sigset_t	set;
	size_t		i;
	int		sig, null, in = -1;

	setsid();
	/*
	 * If the worker is killed before the supervisor has learnt this pid
	 * (it is sent just after the fork), nobody would kill the run: die
	 * with the worker. Its own children are the supervisor's to kill.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(127);
	/* Before anything else: the descriptors are below the dup2s'. */
	for (i = 0; i < s->ncgroup_fds; i++)
		if (write(s->cgroup_fds[i], "0", 1) != 1)
			child_fail(rep, 3);
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	if ((null = open("/dev/null", O_RDONLY)) == -1)
		child_fail(rep, 2);
	if (s->stdio != NULL && s->stdio[0] != -1) {
		/* Out of the way of 0-2 (the worker's own) before the dup2s. */
		if ((in = fcntl(s->stdio[0], F_DUPFD_CLOEXEC, 4)) == -1)
			child_fail(rep, 2);
		null = in;
	}
	/* Move rep out of the way of 0-2 before the dup2s. */
	if (rep < 3) {
		int nrep = fcntl(rep, F_DUPFD_CLOEXEC, 3);
		if (nrep == -1)
			child_fail(rep, 2);
		rep = nrep;
	}
	if (dup2(null, 0) == -1 || dup2(out, 1) == -1 || dup2(err, 2) == -1)
		child_fail(rep, 2);
	if (rep != 3) {
		if (dup3(rep, 3, O_CLOEXEC) == -1)
			child_fail(rep, 2);
		rep = 3;
	}
	if (s->setid) {
		gid_t g = s->gid;

		if (setgroups(1, &g) == -1 || setresgid(g, g, g) == -1 ||
		    setresuid(s->uid, s->uid, s->uid) == -1)
			child_fail(rep, 4);
		/* A change of credentials clears the death signal. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
	}
	child_closefrom(4);
	if (chdir(s->workdir) == -1)
		child_fail(rep, 1);
	execvpe(s->argv[0], s->argv, s->envp != NULL ? s->envp : environ);
	child_fail(rep, 2);
}

static void
capture_init(struct runner *r, struct capture *c, int fd, int64_t max)
{
	c->fd = fd;
	c->cap = (size_t)max;
	fd_nonblock(fd);
	ev_io_init(&c->io, capture_read, fd, EV_READ);
	c->io.data = r;
	ev_io_start(r->loop, &c->io);
}

struct runner *
runner_start(struct ev_loop *loop, const struct runner_spec *s, runner_cb cb,
    void *arg, char *err, size_t errlen)
{
	struct runner	*r;
	int		 po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	int		 px[2] = { -1, -1 }, saved;
	pid_t		 pid, self = getpid();
	sigset_t	 all, old;

	if (pipe2(po, O_CLOEXEC) == -1 || pipe2(pe, O_CLOEXEC) == -1 ||
	    pipe2(px, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	/*
	 * A run that leaves processes outside its group (setsid) would leave
	 * them to init: as a subreaper, they come to us instead, and die at
	 * its end (runner_kill_strays). Only for the host: a container mode's
	 * sandbox ends with its container, and Podman's monitor (conmon)
	 * must outlive `podman run`.
	 */
	if (s->reap_strays && prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warnx("cannot be a child subreaper: %s; what leaves the "
		    "run's process group will outlive it", strerror(errno));
	/*
	 * vfork: the child borrows our memory until it execs, so nothing
	 * is copied (page tables, copy-on-write faults afterwards), which
	 * is most of the cost of a fork. Every signal stays blocked across
	 * it, so that no handler of ours runs in the child; the child sets
	 * them all to their default before it unblocks them.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = SPAWN_FORK();
	if (pid == 0) {
		close(po[0]);
		close(pe[0]);
		close(px[0]);
		child_exec(s, po[1], pe[1], px[1], self);
	}
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		snprintf(err, errlen, "fork: %s", strerror(saved));
		goto fail;
	}
	close(po[1]);
	close(pe[1]);
	close(px[1]);
	r = xcalloc(1, sizeof(*r));
	r->out.fd = r->err.fd = -1;
	r->out.sink = r->err.sink = -1;
	r->loop = loop;
	r->pid = pid;
	r->execfd = px[0];
	r->cb = cb;
	r->arg = arg;
	r->grace_seconds = s->kill_grace_seconds;
	(void)prctl(PR_GET_CHILD_SUBREAPER, &r->subreaper);
	r->on_timeout = s->on_timeout;
	r->envp = s->envp;
	r->started_ms = mono_ms();
	ev_child_init(&r->child, runner_child, pid, 0);
	r->child.data = r;
	ev_child_start(loop, &r->child);
	ev_timer_init(&r->timeout, runner_timeout, 0., 0.);
	ev_timer_init(&r->grace, runner_grace, 0., 0.);
	ev_timer_init(&r->drain, runner_drain, 0., 0.);
	r->timeout.data = r->grace.data = r->drain.data = r;
	if (s->timeout_seconds > 0) {
		ev_timer_set(&r->timeout, (double)s->timeout_seconds, 0.);
		ev_timer_start(loop, &r->timeout);
	}
	if (s->stdio != NULL) {
		r->relay = 1;
		relay_init(r, &r->out, po[0], s->stdio[1], s->max_output_bytes);
		relay_init(r, &r->err, pe[0], s->stdio[2], s->max_output_bytes);
	} else {
		capture_init(r, &r->out, po[0], s->max_output_bytes);
		capture_init(r, &r->err, pe[0], s->max_output_bytes);
	}
	return r;
fail:
	(void)prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (po[0] != -1) { close(po[0]); close(po[1]); }
	if (pe[0] != -1) { close(pe[0]); close(pe[1]); }
	if (px[0] != -1) { close(px[0]); close(px[1]); }
	return NULL;
}

void
runner_status(const struct runner *r, struct run_status *st)
{
	memset(st, 0, sizeof(*st));
	st->exec_errno = r->exec_errno;
	st->timed_out = r->timed_out;
	if (r->exec_errno == 0) {
		if (WIFEXITED(r->status)) {
			st->exited = 1;
			st->exit_code = WEXITSTATUS(r->status);
		} else if (WIFSIGNALED(r->status))
			st->signal = WTERMSIG(r->status);
	}
}

void
runner_free(struct runner *r)
{
	if (r == NULL)
		return;
	if (!r->reaped) {
		/* Only on shutdown: do not leave the program behind. */
		kill_group(r, SIGKILL);
		ev_child_stop(r->loop, &r->child);
		waitpid(r->pid, NULL, 0);
		runner_kill_strays(r);
	}
	ev_timer_stop(r->loop, &r->timeout);
	ev_timer_stop(r->loop, &r->grace);
	ev_timer_stop(r->loop, &r->drain);
	runner_capture_close(r, &r->out);
	runner_capture_close(r, &r->err);
	relay_free(r, &r->out);
	relay_free(r, &r->err);
	if (r->execfd != -1)
		close(r->execfd);
	free(r->out.data);
	free(r->err.data);
	free(r);
}
