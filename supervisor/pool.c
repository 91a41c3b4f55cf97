/*
 * The pre-forked worker pool. Each worker is the clawvisor binary run as
 * `clawvisor worker`, with its end of a socketpair on fd 3. A worker that
 * dies is replaced after a delay that doubles while workers keep dying
 * (as rspamd waits and Postfix throttles); the job it had fails as
 * transient, and what it had started is killed.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#define RESPAWN_MIN	0.1
#define RESPAWN_MAX	30.0

static struct {
	struct worker	**w;
	size_t		  n;
	double		  delay;
} pool = { NULL, 0, RESPAWN_MIN };

static void	worker_spawn(struct worker *);
static void	worker_dead(struct worker *, const char *why);

static void
worker_write(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker	*w = io->data;
	int		 r;

	(void)loop;
	(void)revents;
	if ((r = ipc_flush(&w->conn)) == -1)
		worker_dead(w, w->conn.err);
	else if (r == 1)
		ev_io_stop(sv.loop, &w->wio);
}

static void
worker_send(struct worker *w, enum ipc_type t, uint64_t id, json_object *o)
{
	if (ipc_queue(&w->conn, t, id, o) == -1) {
		worker_dead(w, w->conn.err);
		return;
	}
	/*
	 * Write it now: waiting for the loop to report the socket writable
	 * would put the batch of events (and its syncfs) written before the
	 * loop waits between the dispatch and the worker starting the job.
	 * What does not fit, or an error, is left to worker_write().
	 */
	if (!ev_is_active(&w->wio) && ipc_flush(&w->conn) == 1)
		return;
	if (!ev_is_active(&w->wio))
		ev_io_start(sv.loop, &w->wio);
}

/*
 * Takes o. A result can hold megabytes of reply: the parsed frame goes as
 * soon as it is copied out, before the response is built from the copy.
 */
static void
worker_result(struct worker *w, uint64_t id, json_object *o)
{
	struct job_result	 r;
	struct msg		*m = w->msg;
	char			 err[160];
	int			 bad;

	if (m == NULL || id != m->job_id) {
		json_object_put(o);
		worker_dead(w, "protocol error: a result for a job it does "
		    "not have");
		return;
	}
	bad = result_from_json(o, &r, err, sizeof(err)) == -1;
	json_object_put(o);
	if (bad) {
		result_free(&r);
		worker_dead(w, err);
		return;
	}
	w->msg = NULL;
	w->job_pid = 0;
	w->jobs++;
	w->state = W_IDLE;
	pool.delay = RESPAWN_MIN;
	metrics_invocation(m, r.outcome);
	sched_done(m, &r);
	result_free(&r);
	if (w->retired && w->state == W_IDLE)
		worker_dead(w, NULL);
}

static void
worker_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker	*w = io->data;
	struct ipc_hdr	 h;
	json_object	*o;
	int		 r, n;

	(void)loop;
	(void)revents;
	if ((r = ipc_fill(&w->conn)) == -1) {
		worker_dead(w, w->conn.err);
		return;
	}
	while (w->state != W_DEAD && (n = ipc_next(&w->conn, &h, &o)) == 1) {
		switch (h.type) {
		case MSG_HELLO:
			if (w->state != W_STARTING) {
				json_object_put(o);
				worker_dead(w, "protocol error: a second hello");
				return;
			}
			w->state = W_IDLE;
			log_debug("worker %d (pid %d) ready", w->index,
			    (int)w->pid);
			break;
		case MSG_JOB_STARTED:
			if (w->msg != NULL && h.id == w->msg->job_id)
				w->job_pid = json_object_get_int(
				    json_object_object_get(o, "pid"));
			break;
		case MSG_JOB_DONE:
			worker_result(w, h.id, o);
			o = NULL;
			break;
		default:
			json_object_put(o);
			worker_dead(w, "protocol error: unexpected message");
			return;
		}
		json_object_put(o);
	}
	if (w->state == W_DEAD)
		return;
	if (n == -1) {
		char why[200];

		snprintf(why, sizeof(why), "protocol error: %s", w->conn.err);
		worker_dead(w, why);
		return;
	}
	if (r == 0) {
		worker_dead(w, ipc_eof_check(&w->conn) == -1 ? w->conn.err :
		    "closed its connection");
		return;
	}
	sched_kick();
}

static void
worker_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	if (!sv.stopping && !w->retired)
		worker_spawn(w);
}

static void
worker_reaped(struct ev_loop *loop, ev_child *c, int revents)
{
	struct worker	*w = c->data;
	char		 why[96];
	int		 st = c->rstatus;

	(void)revents;
	ev_child_stop(loop, c);
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(st));
	if (w->state != W_DEAD)
		worker_dead(w, why);
	w->pid = 0;
	if (sv.stopping || w->retired) {
		supervisor_check_exit();
		return;
	}
	log_info("worker %d %s; respawning in %.1fs", w->index, why,
	    pool.delay);
	metrics_worker_restart();
	ev_timer_init(&w->respawn, worker_respawn, pool.delay, 0.);
	w->respawn.data = w;
	ev_timer_start(sv.loop, &w->respawn);
	pool.delay = pool.delay * 2 > RESPAWN_MAX ? RESPAWN_MAX :
	    pool.delay * 2;
}

/* The worker is gone or must go; its job, if any, failed as transient. */
static void
worker_dead(struct worker *w, const char *why)
{
	struct msg	*m = w->msg;
	char		 buf[256];

	if (w->state == W_DEAD)
		return;
	if (why != NULL)
		log_warnx("worker %d (pid %d): %s", w->index, (int)w->pid, why);
	w->state = W_DEAD;
	ev_io_stop(sv.loop, &w->rio);
	ev_io_stop(sv.loop, &w->wio);
	close(w->conn.fd);
	ipc_free(&w->conn);
	if (w->pid > 0 && why != NULL)
		kill(w->pid, SIGKILL);
	if (m != NULL) {
		if (w->job_pid > 0)
			kill(-w->job_pid, SIGKILL);
		if (m->job_mode == MODE_DOCKER || m->job_mode == MODE_APPLE)
			pool_kill_container(m->job_runtime, m->job_id);
		else if (m->job_mode == MODE_BWRAP)
			cgroup_remove(sv.home, m->job_id);
		w->msg = NULL;
		w->job_pid = 0;
		snprintf(buf, sizeof(buf), "worker %d died during the "
		    "invocation (%s)", w->index, why != NULL ? why :
		    "stopped");
		metrics_invocation(m, OUT_TRANSIENT);
		sched_worker_lost(m, buf);
	}
}

static void
worker_spawn(struct worker *w)
{
	char		 idx[16];
	const char	*role[] = { "worker", "--index", idx, NULL };
	int		 fd;
	pid_t		 pid;

	snprintf(idx, sizeof(idx), "%d", w->index);
	if ((pid = spawn_child(sv.self_exe, role, &fd)) == -1)
		goto retry;
	w->pid = pid;
	w->state = W_STARTING;
	w->msg = NULL;
	w->job_pid = 0;
	ipc_init(&w->conn, fd);
	ev_io_init(&w->rio, worker_read, fd, EV_READ);
	ev_io_init(&w->wio, worker_write, fd, EV_WRITE);
	w->rio.data = w->wio.data = w;
	ev_io_start(sv.loop, &w->rio);
	ev_child_init(&w->child, worker_reaped, pid, 0);
	w->child.data = w;
	ev_child_start(sv.loop, &w->child);
	return;
retry:
	ev_timer_init(&w->respawn, worker_respawn, RESPAWN_MAX / 10, 0.);
	w->respawn.data = w;
	ev_timer_start(sv.loop, &w->respawn);
}

void
pool_resize(int n)
{
	struct worker	*w;
	size_t		 i;

	for (i = 0; i < pool.n; i++) {
		w = pool.w[i];
		if ((int)i < n) {
			if (w->retired) {
				w->retired = 0;
				if (w->state == W_DEAD && w->pid == 0)
					worker_spawn(w);
			}
			continue;
		}
		if (!w->retired) {
			w->retired = 1;
			ev_timer_stop(sv.loop, &w->respawn);
			if (w->state == W_IDLE || w->state == W_STARTING)
				worker_dead(w, NULL);
		}
	}
	for (; (int)pool.n < n; pool.n++) {
		pool.w = xreallocarray(pool.w, pool.n + 1, sizeof(*pool.w));
		w = xcalloc(1, sizeof(*w));
		w->index = (int)pool.n + 1;
		w->conn.fd = -1;
		pool.w[pool.n] = w;
		worker_spawn(w);
	}
}

void
pool_init(void)
{
	pool_resize((int)sv.conf->workers);
}

struct worker *
pool_idle(void)
{
	size_t i;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i]->state == W_IDLE && !pool.w[i]->retired)
			return pool.w[i];
	return NULL;
}

int
pool_run(struct worker *w, struct msg *m, json_object *job)
{
	w->state = W_BUSY;
	w->msg = m;
	m->worker = w;
	worker_send(w, MSG_JOB_RUN, m->job_id, job);
	return 0;
}

/*
 * An exec'd invocation: the caller's stdio go with the job's frame
 * (SCM_RIGHTS), to be the child's own. The worker is idle, so its
 * socket's buffer is empty and the frame's first bytes carry them.
 */
int
pool_run_fds(struct worker *w, struct msg *m, json_object *job,
    const int *fds, size_t nfds)
{
	int r;

	w->state = W_BUSY;
	w->msg = m;
	m->worker = w;
	if (ipc_queue(&w->conn, MSG_JOB_RUN, m->job_id, job) == -1 ||
	    (r = ipc_flush_fds(&w->conn, fds, nfds)) == -1) {
		worker_dead(w, w->conn.err);
		return -1;
	}
	if (r == 0 && !ev_is_active(&w->wio))
		ev_io_start(sv.loop, &w->wio);
	return 0;
}

/* Stop w's job now (an exec's caller went away or was signalled). */
void
pool_cancel(struct worker *w)
{
	if (w->msg != NULL && w->state == W_BUSY)
		worker_send(w, MSG_JOB_CANCEL, w->msg->job_id, NULL);
}

/* Graceful stop ran out of time: kill what w runs, forget the job. */
void
pool_abandon(struct worker *w)
{
	struct msg *m = w->msg;

	if (m == NULL)
		return;
	if (w->job_pid > 0)
		kill(-w->job_pid, SIGKILL);
	if (m->job_mode == MODE_DOCKER || m->job_mode == MODE_APPLE)
		pool_kill_container(m->job_runtime, m->job_id);
	else if (m->job_mode == MODE_BWRAP)
		cgroup_remove(sv.home, m->job_id);
	w->msg = NULL;
	w->job_pid = 0;
	worker_dead(w, NULL);
}

/* Close every socket: workers kill their jobs and exit on EOF. */
void
pool_shutdown(void)
{
	size_t i;

	for (i = 0; i < pool.n; i++) {
		pool.w[i]->retired = 1;
		ev_timer_stop(sv.loop, &pool.w[i]->respawn);
		if (pool.w[i]->state != W_DEAD)
			worker_dead(pool.w[i], NULL);
	}
}

/*
 * After pool_shutdown() and the loop: wait up to ms for the workers to see
 * their socket closed, clean up (a job's env-file and container) and exit,
 * so that a stop is complete when the daemon is gone. One that does not is
 * killed.
 */
void
pool_wait(int ms)
{
	struct timespec	 nap = { 0, 10 * 1000 * 1000 };
	struct worker	*w;
	int64_t		 deadline = mono_ms() + ms;
	size_t		 i, left;
	pid_t		 r;

	for (;;) {
		left = 0;
		for (i = 0; i < pool.n; i++) {
			w = pool.w[i];
			if (w->pid <= 0)
				continue;
			r = waitpid(w->pid, NULL, WNOHANG);
			if (r == w->pid || (r == -1 && errno == ECHILD))
				w->pid = 0;
			else
				left++;
		}
		if (left == 0)
			return;
		if (mono_ms() >= deadline)
			break;
		nanosleep(&nap, NULL);
	}
	for (i = 0; i < pool.n; i++) {
		w = pool.w[i];
		if (w->pid <= 0)
			continue;
		log_warnx("worker %d (pid %d) did not exit in %d ms: killed",
		    w->index, (int)w->pid, ms);
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
			;
		w->pid = 0;
	}
}

void
pool_signal(int sig)
{
	size_t i;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i]->pid > 0 && pool.w[i]->state != W_DEAD)
			kill(pool.w[i]->pid, sig);
}

size_t
pool_alive(void)
{
	size_t i, n = 0;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i]->pid > 0)
			n++;
	return n;
}

void
pool_free(void)
{
	size_t i;

	for (i = 0; i < pool.n; i++) {
		ev_child_stop(sv.loop, &pool.w[i]->child);
		ev_timer_stop(sv.loop, &pool.w[i]->respawn);
		free(pool.w[i]);
	}
	free(pool.w);
	pool.w = NULL;
	pool.n = 0;
}

static const char *const state_names[] = { "starting", "idle", "busy",
    "dead" };

json_object *
pool_status(void)
{
	json_object	*a = json_object_new_array(), *o;
	struct worker	*w;
	size_t		 i;

	for (i = 0; i < pool.n; i++) {
		w = pool.w[i];
		if (w->retired && w->pid == 0)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "index", json_object_new_int(w->index));
		json_object_object_add(o, "pid", json_object_new_int(w->pid));
		json_object_object_add(o, "state",
		    json_object_new_string(state_names[w->state]));
		json_object_object_add(o, "jobs",
		    json_object_new_int64((int64_t)w->jobs));
		if (w->msg != NULL) {
			json_object_object_add(o, "agent",
			    json_object_new_string(w->msg->agent));
			json_object_object_add(o, "message",
			    json_object_new_string(w->msg->name));
			json_object_object_add(o, "runningMs",
			    json_object_new_int64(mono_ms() -
			    w->msg->started_ms));
		}
		json_object_array_add(a, o);
	}
	return a;
}

/* The helper below, not waited for: reaped by libev. */
static void
killer_reaped(struct ev_loop *loop, ev_child *c, int revents)
{
	(void)revents;
	ev_child_stop(loop, c);
	free(c);
}

/*
 * The container of a job whose worker is gone. Its env-file goes at once:
 * it holds secrets, and the worker that would have removed it is dead.
 * Then a helper process runs `RUNTIME kill clawvisor-ID` and `RUNTIME rm
 * -f clawvisor-ID` (as the worker does after a timeout) and removes the
 * container record, which is only needed while the container may exist.
 */
void
pool_kill_container(const char *runtime, uint64_t job_id)
{
	ev_child	*c;
	sigset_t	 set;
	char		 name[64], *secrets, *record;
	char		*kill_argv[] = { (char *)runtime, "kill", name, NULL };
	char		*rm_argv[] = { (char *)runtime, "rm", "-f", name, NULL };
	char		**envp;
	pid_t		 pid;

	snprintf(name, sizeof(name), "clawvisor-%llu",
	    (unsigned long long)job_id);
	xasprintf(&secrets, "%s/run/secrets/%llu.env", sv.home,
	    (unsigned long long)job_id);
	if (unlink(secrets) == -1 && errno != ENOENT)
		log_warnx("cannot remove %s: %s", secrets, strerror(errno));
	free(secrets);
	xasprintf(&record, "%s/run/containers/%s", sv.home, name);
	if ((pid = fork()) == -1) {
		log_error("fork: %s", strerror(errno));
		free(record);
		return;
	}
	if (pid == 0) {
		/* Out of our process group, as a worker is (worker_spawn). */
		(void)setpgid(0, 0);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);	/* not libev's handler */
		closefrom(3);
		envp = runtime_env(sv.conf->env_allowlist, sv.conf->nallow,
		    sv.conf->runtime_pass_env, sv.conf->npass);
		(void)run_output_env(kill_argv, envp, NULL, 0, 30);
		(void)run_output_env(rm_argv, envp, NULL, 0, 60);
		unlink(record);
		_exit(0);
	}
	free(record);
	c = xcalloc(1, sizeof(*c));
	ev_child_init(c, killer_reaped, pid, 0);
	ev_child_start(sv.loop, c);
}
