/*
 * The worker's loop: a small libev default loop of its own (the worker is a
 * fresh exec of the clawvisor binary), one socketpair to the supervisor, at
 * most one invocation at a time. Orders come over the socket only: EOF from
 * the supervisor, or SIGTERM once the supervisor is gone, ends the worker
 * after killing whatever it is running; other signals do not.
 */
#include <sys/prctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <unistd.h>
#include <ev.h>

#include "agentdir.h"
#include "cgroup.h"
#include "ipc.h"
#include "job.h"
#include "log.h"
#include "provider.h"
#include "redact.h"
#include "runner.h"
#include "sandbox.h"
#include "util.h"
#include "worker.h"

#define STDOUT_TAIL	2048	/* of stdout, for classify() */

static struct {
	struct ev_loop		*loop;
	struct ipc_conn		 conn;
	ev_io			 io;
	ev_signal		 sigterm;
	ev_signal		 sigusr1;
	int			 index;
	pid_t			 parent;	/* the supervisor */
	int			 busy;
	struct job		 job;
	struct sandbox_run	 sb;
	struct runner		*runner;
	int			 fds[IPC_MAX_FDS];	/* an exec's stdio */
	size_t			 nfds;
} w;

static void	container_reap(int);

/*
 * Every way out of the worker: the invocation's process group, its
 * container and its env-file go first. Exiting without this (the
 * supervisor vanished while a job ran) would orphan the invocation, which
 * runs in a session of its own and so is not killed with us.
 */
static void __attribute__((noreturn))
worker_exit(int status)
{
	if (w.runner != NULL) {
		container_reap(1);
		runner_free(w.runner);	/* kills the process group */
		w.runner = NULL;
	}
	sandbox_cleanup(&w.sb);
	exit(status);
}

static void
worker_send(enum ipc_type type, uint64_t id, json_object *o)
{
	if (ipc_queue(&w.conn, type, id, o) == -1 ||
	    ipc_flush_blocking(&w.conn) == -1) {
		log_error("cannot write to the supervisor: %s", w.conn.err);
		worker_exit(1);
	}
}

static void
fds_close(void)
{
	size_t i;

	for (i = 0; i < w.nfds; i++)
		if (w.fds[i] != -1)
			close(w.fds[i]);
	w.nfds = 0;
}

static void
worker_finish(struct job_result *res)
{
	json_object	*o;
	char		*clean;

	/* The reply is redacted where it is made (worker_done). */
	clean = redact(res->error != NULL ? res->error : "",
	    w.job.env_allowlist, w.job.nallow);
	free(res->error);
	res->error = clean;
	/* Cleaned to UTF-8 it may have grown: the frame has a bound. */
	result_bound(res, (size_t)w.job.max_output_bytes);
	o = result_to_json(res);
	worker_send(MSG_JOB_DONE, w.job.id, o);
	json_object_put(o);
	log_debug("job %llu: %s%s%s", (unsigned long long)w.job.id,
	    outcome_name(res->outcome), *res->error ? ": " : "", res->error);
	result_free(res);
	sandbox_cleanup(&w.sb);
	job_free(&w.job);
	fds_close();
	w.busy = 0;
}

/*
 * A container of a run that did not end by itself: `RUNTIME kill` stops a
 * running one, `RUNTIME rm -f` removes one the kill came too early for
 * (still being created). Without this a killed client leaves it behind.
 */
static void
container_reap(int kill_first)
{
	char *rm[] = { NULL, "rm", "-f", NULL, NULL };

	if (w.sb.on_timeout == NULL)
		return;
	if (kill_first)
		(void)run_output_env(w.sb.on_timeout, w.sb.envp, NULL, 0, 30);
	rm[0] = w.sb.on_timeout[0];
	rm[3] = w.sb.container;
	(void)run_output_env(rm, w.sb.envp, NULL, 0, 30);
}

/*
 * A stream as captured, redacted whole: before classify() takes its tails
 * and error lines and the reply is made from it, since a cut through a
 * secret leaves a piece that no longer matches. Its end is a cut edge too:
 * output past max_output_bytes is dropped unread, a timeout kills the
 * program between two writes of a line, and a pipe that something escaped
 * holds open is given up after the drain.
 */
static char *
worker_redact(const struct capture *c, size_t *len)
{
	/* An exec's stream is kept by its end: cut at the start too. */
	return redact_cut(c->data != NULL ? c->data : "", c->len,
	    w.job.env_allowlist, w.job.nallow, REDACT_CUT_END |
	    (c->tail_cut ? REDACT_CUT_START : 0), len);
}

/*
 * Whether the user the CLI runs as cannot write the working directory: in
 * a container, a configured UID:GID against the owner and mode bits (the
 * container has no capability to override them); on the host, access(2).
 */
static int
workdir_denied(const struct job *j)
{
	struct stat	st;
	uid_t		uid;
	gid_t		gid;

	if (j->mode == MODE_HOST || config_user(&j->rt, &uid, &gid) == -1)
		return access(j->workdir, W_OK) == -1 && errno == EACCES;
	return stat(j->workdir, &st) == 0 &&
	    !dir_writable_by(&st, uid, gid);
}

/*
 * What only bwrap mode can tell: the kernel's OOM killer at the cgroup's
 * memory limit (it would fail again: terminal), and bwrap itself failing
 * to build the sandbox (exit 1, "bwrap: ..." on stderr), a host setup
 * problem that no retry fixes.
 */
static int
bwrap_outcome(const struct runner *r, const struct run_status *st, char *why,
    size_t len)
{
	const char	*e = r->err.data != NULL ? r->err.data : "";
	size_t		 n;

	if (r->timed_out || r->cancelled)
		return 0;
	/* An exec's stderr kept by its end: its start was lost. */
	if (r->err.tail_cut)
		e = "";
	if (w.sb.has_cg && cgroup_oom(&w.sb.cg)) {
		snprintf(why, len, "killed: memory limit (sandbox.bwrap.memory "
		    "%s)", w.job.rt.memory);
		return 1;
	}
	if (st->exited && st->exit_code == 1 && strncmp(e, "bwrap: ", 7) == 0) {
		n = strcspn(e, "\n");
		snprintf(why, len, "bwrap cannot build the sandbox: %.*s%s",
		    (int)(n > 300 ? 300 : n), e, strstr(e, "namespace") != NULL ||
		    strstr(e, "uid map") != NULL ? " (are unprivileged user "
		    "namespaces allowed? see kernel.unprivileged_userns_clone, "
		    "user.max_user_namespaces, "
		    "kernel.apparmor_restrict_unprivileged_userns)" : "");
		return 1;
	}
	return 0;
}

/*
 * An exec'd program that ran, where clawvisor or the runtime failed around
 * it: a timeout or a cancel (transient), a container runtime's own exit
 * 125 or bwrap's memory limit (terminal): 1, and the caller gets 75 or 77.
 * Otherwise 0: the child's own status is the caller's, and classify()
 * names its outcome for the event and the counters only (DECISIONS.md
 * 306).
 */
static int
exec_outcome(const struct runner *r, const struct run_status *st, char *why,
    size_t len, enum outcome *o)
{
	*why = '\0';
	if (r->timed_out) {
		snprintf(why, len, "timed out after %lld s "
		    "(sandbox.timeout_seconds)",
		    (long long)w.job.timeout_seconds);
		*o = OUT_TRANSIENT;
	} else if (r->cancelled) {
		snprintf(why, len, "cancelled");
		*o = OUT_TRANSIENT;
	} else if (w.sb.container_mode && st->exited && st->exit_code == 125) {
		snprintf(why, len, "%s run failed (exit 125): see the daemon's "
		    "log and `clawvisor sandbox doctor`", w.job.rt.runtime_command);
		*o = OUT_TERMINAL;
	} else if (w.job.mode == MODE_BWRAP && w.sb.has_cg &&
	    cgroup_oom(&w.sb.cg)) {
		snprintf(why, len, "killed: memory limit (sandbox.bwrap.memory "
		    "%s)", w.job.rt.memory);
		*o = OUT_TERMINAL;
	} else
		return 0;
	return 1;
}

static void
worker_done(struct runner *r, void *arg)
{
	struct job_result	res;
	struct run_status	st;
	char			why[1024], *out, *err, *raw, *report = NULL;
	char			found[PATH_MAX];
	size_t			outlen, errlen, i;

	(void)arg;
	memset(&res, 0, sizeof(res));
	out = worker_redact(&r->out, &outlen);
	err = worker_redact(&r->err, &errlen);
	runner_status(r, &st);
	st.timeout_seconds = w.job.timeout_seconds;
	st.err_text = err;
	st.err_len = errlen;
	/* Where a CLI that prints its errors on stdout puts them. */
	st.out_len = outlen < STDOUT_TAIL ? outlen : STDOUT_TAIL;
	st.out_text = out + outlen - st.out_len;
	st.program = w.sb.argv[0];
	/* bwrap passes the CLI's status through: name the CLI, not bwrap. */
	if (w.job.mode == MODE_BWRAP)
		for (i = 0; w.sb.argv[i] != NULL; i++)
			if (strcmp(w.sb.argv[i], "--") == 0 &&
			    w.sb.argv[i + 1] != NULL) {
				st.program = w.sb.argv[i + 1];
				break;
			}
	st.container = w.sb.container_mode;
	if (w.job.provider == PROV_OPENAI)
		report = codex_failure(out, outlen);	/* redacted */
	st.report = report;
	st.workspace = w.sb.container_mode && w.job.path_mapping ==
	    MAP_MAPPED ? "/workspace" : w.job.workdir;
	st.workspace_denied = !(st.exited && st.exit_code == 0) &&
	    workdir_denied(&w.job);
	if (w.job.exec_argv != NULL && r->exec_stage == 0 &&
	    exec_outcome(r, &st, why, sizeof(why), &res.outcome))
		;
	else if (w.job.exec_argv != NULL && r->exec_stage == 0 &&
	    !(w.job.mode == MODE_BWRAP && bwrap_outcome(r, &st, why,
	    sizeof(why)))) {
		res.outcome = classify(&st, why, sizeof(why));
		res.child = 1;
	} else if (w.job.exec_argv != NULL && r->exec_stage == 0)
		res.outcome = OUT_TERMINAL;	/* bwrap_outcome() said why */
	else if (r->exec_stage == 1) {
		snprintf(why, sizeof(why), "cannot enter working directory %s:"
		    " %s", w.job.workdir, strerror(r->exec_errno));
		res.outcome = OUT_TERMINAL;
	} else if (r->exec_stage == 3 || r->exec_stage == 4) {
		snprintf(why, sizeof(why), "cannot %s before starting bwrap: "
		    "%s", r->exec_stage == 3 ? "join the invocation's cgroup" :
		    "take the agent's uid:gid", strerror(r->exec_errno));
		res.outcome = OUT_TERMINAL;
	} else if (w.job.mode == MODE_BWRAP && bwrap_outcome(r, &st, why,
	    sizeof(why)))
		res.outcome = OUT_TERMINAL;
	else if ((st.exec_errno == ENOENT || st.exec_errno == EACCES) &&
	    !path_lookup(st.program, found, sizeof(found), why, sizeof(why)))
		/* What the doctor says too: not found, and why (an EACCES
		 * from execvp may be a PATH directory it could not search). */
		res.outcome = OUT_TERMINAL;
	else
		res.outcome = classify(&st, why, sizeof(why));
	if (r->cancelled && res.outcome != OUT_OK) {
		res.outcome = OUT_TRANSIENT;
		snprintf(why, sizeof(why), "cancelled by the supervisor");
	}
	res.exit_code = st.exited ? st.exit_code : -1;
	res.signal = st.signal;
	res.timed_out = st.timed_out;
	if (w.job.exec_argv != NULL)
		res.truncated = (r->out.truncated ? RESULT_CUT_STDOUT : 0) |
		    (r->err.truncated ? RESULT_CUT_STDERR : 0);
	else
		res.truncated = r->out.truncated || r->err.truncated;
	res.duration_ms = r->duration_ms;
	res.error = xstrdup(why);
	if (w.job.exec_argv != NULL)
		res.reply = xstrdup("");	/* it went to the caller */
	else if (res.outcome == OUT_OK && w.job.provider == PROV_OPENAI) {
		/*
		 * codex's JSON lines are parsed as printed, the text they
		 * hold redacted after: a redaction inside a JSON string could
		 * swallow an escape and lose the line.
		 */
		raw = provider_reply(&w.job, r->out.data != NULL ?
		    r->out.data : "", r->out.len);
		res.reply = redact(raw, w.job.env_allowlist, w.job.nallow);
		free(raw);
	} else if (res.outcome == OUT_OK)
		res.reply = provider_reply(&w.job, out, outlen);
	free(out);
	free(err);
	/* The runner's timeout or cancel has already run the kill. */
	if (r->timed_out || r->cancelled)
		container_reap(0);
	runner_free(r);
	w.runner = NULL;
	free(report);
	worker_finish(&res);
}

static void
worker_fail(enum outcome o, const char *why)
{
	struct job_result res;

	memset(&res, 0, sizeof(res));
	res.outcome = o;
	res.exit_code = -1;
	res.error = xstrdup(why);
	worker_finish(&res);
}

/*
 * The working directory, created if missing. A container that runs as a
 * configured UID:GID other than the daemon's must write in it: a directory
 * created here is given to that user (the daemon is root then, or the
 * engine maps the ids itself and chown is not needed).
 */
static int
workdir_make(const struct job *j, char *err, size_t len)
{
	struct stat	st;
	uid_t		uid;
	gid_t		gid;
	int		created;

	created = stat(j->workdir, &st) == -1 && errno == ENOENT;
	if (mkdir_p(j->workdir, 0755) == -1) {
		snprintf(err, len, "cannot create working directory %s: %s",
		    j->workdir, strerror(errno));
		return -1;
	}
	if (!created || j->mode == MODE_HOST ||
	    config_user(&j->rt, &uid, &gid) == -1 ||
	    (uid == getuid() && gid == getgid()) || geteuid() != 0)
		return 0;
	if (chown(j->workdir, uid, gid) == -1) {
		snprintf(err, len, "cannot give working directory %s to the "
		    "container user %s: %s", j->workdir, j->rt.user,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The exec'd CLI on the host (host and bwrap modes): argv[0] as given if
 * it is a path, else the first on PATH; never the clawvisor binary itself
 * (a shim directory on the daemon's PATH would otherwise send the run
 * back to the daemon, to wait for its own lane for ever).
 */
static int
exec_resolve(struct job *j, char *err, size_t len)
{
	struct stat	 self, st;
	const char	*path, *p, *e, *name = j->exec_argv[0];
	char		 buf[PATH_MAX];

	if (j->mode != MODE_HOST && j->mode != MODE_BWRAP)
		return 0;
	if (stat("/proc/self/exe", &self) == -1)
		memset(&self, 0, sizeof(self));
	if (strchr(name, '/') != NULL) {
		if (stat(name, &st) == 0 && st.st_dev == self.st_dev &&
		    st.st_ino == self.st_ino) {
			snprintf(err, len, "%s is clawvisor itself (a shim), "
			    "not the CLI", name);
			return -1;
		}
		return 0;
	}
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		snprintf(buf, sizeof(buf), "%.*s/%s", e == p ? 1 : (int)(e - p),
		    e == p ? "." : p, name);
		if (access(buf, X_OK) == 0 && stat(buf, &st) == 0 &&
		    S_ISREG(st.st_mode) && !(st.st_dev == self.st_dev &&
		    st.st_ino == self.st_ino)) {
			free(j->exec_argv[0]);
			j->exec_argv[0] = xstrdup(buf);
			return 0;
		}
		if (*e == '\0')
			break;
	}
	snprintf(err, len, "%s: not found on the daemon's PATH (other than "
	    "clawvisor's shims)", name);
	return -1;
}

static void
worker_run(uint64_t id, json_object *o)
{
	struct runner_spec	 spec;
	json_object		*started;
	char			 err[1024];
	int			 cgfds[CGROUP_MAX_DIRS], stdio[3];
	size_t			 ncg = 0, i;

	if (w.busy) {
		log_error("fatal: protocol error: a job while job %llu is "
		    "running", (unsigned long long)w.job.id);
		worker_exit(1);
	}
	w.busy = 1;
	memset(&w.sb, 0, sizeof(w.sb));
	if (job_from_json(o, &w.job, err, sizeof(err)) == -1) {
		log_error("fatal: protocol error: bad job: %s", err);
		worker_exit(1);
	}
	w.job.id = id;
	if (w.job.exec_argv != NULL &&
	    w.nfds != (size_t)(2 + w.job.exec_stdin)) {
		log_error("fatal: protocol error: an exec job with %zu "
		    "descriptors", w.nfds);
		worker_exit(1);
	}
	if (w.job.exec_argv == NULL && w.nfds != 0) {
		log_error("fatal: protocol error: descriptors with a job");
		worker_exit(1);
	}
	/* SPEC §9, fail closed: without its token and the proxy's socket an
	 * invocation never starts, so it never runs with a key or a network
	 * (transient: the egress process will be back). */
	if (w.job.egress && (w.job.egress_socket == NULL ||
	    w.job.egress_bridge == NULL ||
	    (w.job.provider != PROV_COMMAND && w.job.egress_token == NULL))) {
		worker_fail(OUT_TRANSIENT, w.job.egress_socket == NULL ?
		    "egress: the proxy is not running; the invocation is not "
		    "started without it" : "egress: no token registered for "
		    "this invocation; it is not started without one");
		return;
	}
	/* Apple's container cannot mount a unix socket: closed (and a
	 * config error before this, SPEC §9). */
	if (w.job.egress && w.job.mode != MODE_BWRAP &&
	    w.job.mode != MODE_DOCKER) {
		worker_fail(OUT_TRANSIENT, "egress: the proxy path is built for "
		    "bwrap, docker and podman only; this invocation is not "
		    "started");
		return;
	}
	if (workdir_make(&w.job, err, sizeof(err)) == -1) {
		worker_fail(OUT_TERMINAL, err);
		return;
	}
	if (w.job.exec_argv == NULL)
		agentdir_setup(&w.job);
	else if (exec_resolve(&w.job, err, sizeof(err)) == -1) {
		worker_fail(OUT_TERMINAL, err);
		return;
	}
	if (sandbox_prepare(&w.job, &w.sb, err, sizeof(err)) == -1) {
		worker_fail(OUT_TERMINAL, err);
		return;
	}
	memset(&spec, 0, sizeof(spec));
	spec.argv = w.sb.argv;
	spec.envp = w.sb.envp;
	spec.workdir = w.job.exec_cwd != NULL && w.job.mode == MODE_HOST ?
	    w.job.exec_cwd : w.job.workdir;
	if (w.job.exec_argv != NULL) {
		stdio[0] = w.job.exec_stdin ? w.fds[0] : -1;
		stdio[1] = w.fds[w.job.exec_stdin];
		stdio[2] = w.fds[w.job.exec_stdin + 1];
		spec.stdio = stdio;
	}
	spec.timeout_seconds = w.job.timeout_seconds;
	spec.kill_grace_seconds = w.job.kill_grace_seconds;
	spec.max_output_bytes = w.job.max_output_bytes;
	spec.on_timeout = w.sb.on_timeout;
	spec.reap_strays = w.job.mode == MODE_HOST;
	if (w.sb.has_cg) {
		ncg = cgroup_procs_fds(&w.sb.cg, cgfds, CGROUP_MAX_DIRS);
		if (ncg < w.sb.cg.ndirs && !w.job.rt.limits_best_effort) {
			for (i = 0; i < ncg; i++)
				close(cgfds[i]);
			snprintf(err, sizeof(err), "cannot open the process list "
			    "of cgroup %s: %s", w.sb.cg.name, strerror(errno));
			worker_fail(OUT_TERMINAL, err);
			return;
		}
		spec.cgroup_fds = cgfds;
		spec.ncgroup_fds = ncg;
	}
	spec.setid = w.sb.setid;
	spec.uid = w.sb.uid;
	spec.gid = w.sb.gid;
	w.runner = runner_start(w.loop, &spec, worker_done, NULL, err,
	    sizeof(err));
	for (i = 0; i < ncg; i++)
		close(cgfds[i]);
	/* The child has the caller's stdin: ours would keep its pipe open
	 * after the child is gone. Its stdout and stderr are the relay's
	 * until the job's end (worker_finish). */
	if (w.job.exec_argv != NULL && w.job.exec_stdin) {
		close(w.fds[0]);
		w.fds[0] = -1;
	}
	if (w.runner == NULL) {
		worker_fail(OUT_TRANSIENT, err);	/* closes the rest */
		return;
	}
	started = json_object_new_object();
	json_object_object_add(started, "pid",
	    json_object_new_int64(w.runner->pid));
	worker_send(MSG_JOB_STARTED, id, started);
	json_object_put(started);
}

static void __attribute__((noreturn))
worker_quit(const char *why)
{
	log_info("exiting: %s", why);
	worker_exit(0);
}

static void
worker_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ipc_hdr	 h;
	json_object	*o;
	int		 r;

	(void)loop;
	(void)io;
	(void)revents;
	if ((r = ipc_fill_fds(&w.conn, w.fds, IPC_MAX_FDS, &w.nfds)) == -1) {
		/* ECONNRESET: the supervisor died with our data unread. */
		log_warnx("supervisor connection: %s", w.conn.err);
		worker_quit("supervisor connection lost");
	}
	while ((r == 1 || r == 0) && ipc_next(&w.conn, &h, &o) == 1) {
		switch (h.type) {
		case MSG_JOB_RUN:
			worker_run(h.id, o);
			break;
		case MSG_JOB_CANCEL:
			if (w.runner != NULL && w.job.id == h.id)
				runner_cancel(w.runner);
			break;
		default:
			log_error("fatal: protocol error: unexpected message "
			    "type %u", h.type);
			worker_exit(1);
		}
		json_object_put(o);
	}
	if (*w.conn.err != '\0') {
		log_error("fatal: protocol error: %s", w.conn.err);
		worker_exit(1);
	}
	if (r == 0) {
		if (ipc_eof_check(&w.conn) == -1)
			log_error("%s", w.conn.err);
		worker_quit("supervisor closed the connection");
	}
}

static void
worker_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)revents;
	if (s->signum == SIGUSR1)
		log_reopen();	/* the supervisor passes logrotate's on */
	else if (getppid() != w.parent)
		worker_quit("supervisor gone (SIGTERM)");
	else
		log_warnx("SIGTERM from outside ignored: stop the supervisor "
		    "(pid %d) instead", (int)w.parent);
}

int
worker_main(int fd, int index, const char *home, int log_stderr)
{
	json_object	*hello;
	sigset_t	 set;
	char		 tag[32], *logpath;

	w.index = index;
	snprintf(tag, sizeof(tag), "worker %d", index);
	xasprintf(&logpath, "%s/logs/clawvisor.log", home);
	log_open(tag, logpath, log_stderr);
	free(logpath);
	setproctitle("worker %d", index);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Orders come from the supervisor, over the socket. A worker has a
	 * process group of its own (worker_spawn): ^C, a hangup or a group
	 * kill meant for `serve -f` reach the supervisor alone, which stops
	 * or reloads and hands what runs back after kill_grace_seconds.
	 * SIGINT and SIGHUP sent to a worker by pid are ignored as well, and
	 * SIGTTOU, so that logging to the terminal of `serve -f` from outside
	 * its foreground group never stops us. The run's child sets every
	 * signal back to its default.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	/*
	 * If the supervisor vanishes without closing, SIGTERM still comes;
	 * by then our parent is another process, which is how worker_signal()
	 * tells it from a SIGTERM sent by someone else.
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if ((w.parent = getppid()) == 1)
		worker_quit("supervisor gone");
	w.loop = ev_default_loop(EVFLAG_AUTO);
	ipc_init(&w.conn, fd);
	fd_nonblock(fd);
	fd_cloexec(fd);
	ev_io_init(&w.io, worker_read, fd, EV_READ);
	ev_io_start(w.loop, &w.io);
	ev_signal_init(&w.sigterm, worker_signal, SIGTERM);
	ev_signal_start(w.loop, &w.sigterm);
	ev_signal_init(&w.sigusr1, worker_signal, SIGUSR1);
	ev_signal_start(w.loop, &w.sigusr1);
	/* Blocked since the fork (worker_spawn): now they are watched. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	hello = json_object_new_object();
	json_object_object_add(hello, "pid", json_object_new_int64(getpid()));
	json_object_object_add(hello, "version",
	    json_object_new_int(IPC_VERSION));
	worker_send(MSG_HELLO, 0, hello);
	json_object_put(hello);
	ev_run(w.loop, 0);
	return 0;
}
