/*
 * Scheduling, all of it in the supervisor: one lane per agent (its messages
 * run one at a time, in arrival order; a retry waiting in deferred/ keeps
 * its place at the head), a FIFO of lanes ready to run, the max_concurrency
 * permits and the max_waiters bound, dispatch to an idle worker, and the
 * worker's result handed on. What a result means for a message (response,
 * retry, dead letter, chain step) is message.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

static struct {
	TAILQ_HEAD(, lane)	all;
	TAILQ_HEAD(, lane)	ready;
	size_t			nready;
	size_t			running;
} s = {
	TAILQ_HEAD_INITIALIZER(s.all), TAILQ_HEAD_INITIALIZER(s.ready), 0, 0
};

static void	sched_retry(struct ev_loop *, ev_timer *, int);
static void	lane_check(struct lane *);

size_t
sched_running(void)
{
	return s.running;
}

size_t
sched_permits_in_use(void)
{
	return s.running;
}

static int
permits_exhausted(void)
{
	return sv.conf->max_concurrency > 0 &&
	    s.running >= (size_t)sv.conf->max_concurrency;
}

size_t
sched_waiting(void)
{
	return permits_exhausted() ? s.nready : 0;
}

static struct lane *
lane_get(const char *agent)
{
	struct lane *l;

	TAILQ_FOREACH(l, &s.all, all)
		if (strcmp(l->agent, agent) == 0)
			return l;
	l = xcalloc(1, sizeof(*l));
	l->agent = xstrdup(agent);
	TAILQ_INIT(&l->msgs);
	TAILQ_INSERT_TAIL(&s.all, l, all);
	return l;
}

/* Free the lanes that have nothing queued and nothing running. */
static void
lane_gc(void)
{
	struct lane *l, *next;

	for (l = TAILQ_FIRST(&s.all); l != NULL; l = next) {
		next = TAILQ_NEXT(l, all);
		if (!TAILQ_EMPTY(&l->msgs) || l->running || l->in_ready)
			continue;
		TAILQ_REMOVE(&s.all, l, all);
		free(l->agent);
		free(l);
	}
}

/*
 * The message has its outcome (or vanished): out of its lane (if it is
 * still in one) for good. The lane stays until lane_gc(): the caller must
 * lane_check() it so that its next message can run.
 */
static void
msg_done(struct msg *m)
{
	struct lane *l = m->lane;

	if (l != NULL) {
		TAILQ_REMOVE(&l->msgs, m, entry);
		l->depth--;
	}
	queue_forget(m);
	message_free(m);
}

void
sched_msg_done(struct msg *m)
{
	struct lane *l = m->lane;

	msg_done(m);
	if (l != NULL)
		lane_check(l);
}

/* A team chain's root: its first step is done, its lane may go on. */
void
sched_detach(struct msg *m)
{
	struct lane *l = m->lane;

	TAILQ_REMOVE(&l->msgs, m, entry);
	l->depth--;
	m->lane = NULL;
}

/* Queue the lane to run its head, if it can. Never frees the lane: empty
 * lanes are collected by lane_gc(), so a lane checked twice is safe. */
static void
lane_check(struct lane *l)
{
	struct msg *m;

again:
	m = TAILQ_FIRST(&l->msgs);
	if (m == NULL)
		return;
	if (l->running || l->in_ready || m->deferred)
		return;
	if (permits_exhausted() && s.nready >= (size_t)sv.conf->max_waiters) {
		if (m->exec != NULL) {
			exec_refused(m, "too many invocations waiting for a "
			    "permit (sandbox.max_waiters)");
			msg_done(m);
			goto again;
		}
		/* Claim it so the failure is recorded like any other. */
		if (queue_claim(m) == -1) {
			msg_done(m);
			goto again;
		}
		message_fail(m, OUT_TRANSIENT, "too many invocations waiting "
		    "for a permit (sandbox.max_waiters)");
		return;
	}
	TAILQ_INSERT_TAIL(&s.ready, l, ready);
	l->in_ready = 1;
	s.nready++;
}

void
sched_add(struct msg *m, int front)
{
	struct lane	*l = lane_get(m->agent);
	double		 after;

	m->lane = l;
	if (front)
		TAILQ_INSERT_HEAD(&l->msgs, m, entry);
	else
		TAILQ_INSERT_TAIL(&l->msgs, m, entry);
	l->depth++;
	ev_timer_init(&m->retry, sched_retry, 0., 0.);
	m->retry.data = m;
	if (m->deferred) {
		after = (m->retry_at - now_ms()) / 1000.;
		ev_timer_set(&m->retry, after > 0 ? after : 0., 0.);
		ev_timer_start(sv.loop, &m->retry);
	}
	lane_check(l);
}

static void
sched_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct msg *m = w->data;

	(void)loop;
	(void)revents;
	m->deferred = 0;
	lane_check(m->lane);
	sched_kick();
}

/* The attempt is over, however it ended: its token dies with it. */
void
sched_egress_end(struct msg *m)
{
	if (m->job_egress) {
		egress_revoke(m->job_id);
		m->job_egress = 0;
	}
}

/*
 * SPEC §9, queued and exec'd invocations alike: with the proxy on, the
 * invocation's token, registered before the job goes out (NULL: egress is
 * down, and the worker fails it closed), and the proxy's socket. The token
 * is wiped once the job is encoded (sched_job_encoded).
 */
void
sched_job_egress(struct msg *m, struct job *j, const struct agent *a)
{
	j->egress = sv.conf->egress.mode == EGRESS_PROXY;
	if (!j->egress)
		return;
	j->egress_token = egress_register(m->job_id, a);
	j->egress_socket = (char *)egress_socket();
	j->egress_bridge = (char *)egress_bridge();
	m->job_egress = j->egress_token != NULL;
}

void
sched_job_encoded(struct job *j)
{
	if (j->egress_token != NULL)
		freezero(j->egress_token, strlen(j->egress_token));
	j->egress_token = NULL;
}

/* What every invocation of agent a runs with, queued or exec'd. */
void
sched_job_base(struct job *j, const struct agent *a)
{
	j->agent_id = a->id;
	j->provider = a->provider;
	j->model = a->model;
	j->command = a->command;
	j->ncommand = a->ncommand;
	j->workdir = a->workdir;
	j->home = sv.home;
	j->mode = config_agent_mode(sv.conf, a);
	j->timeout_seconds = sv.conf->timeout_seconds;
	j->kill_grace_seconds = sv.conf->kill_grace_seconds;
	j->max_output_bytes = sv.conf->max_output_bytes;
	j->env_allowlist = sv.conf->env_allowlist;
	j->nallow = sv.conf->nallow;
	j->runtime_pass_env = sv.conf->runtime_pass_env;
	j->npass = sv.conf->npass;
	j->path_mapping = sv.conf->path_mapping;
	j->rt = j->mode == MODE_APPLE ? sv.conf->apple : j->mode == MODE_BWRAP ?
	    sv.conf->bwrap : sv.conf->docker;
	j->templates = (char *)sv.templates;
}

/* 0: handed to w; -1: it ended without running (w is still idle). */
static int
dispatch(struct msg *m, struct worker *w)
{
	json_object	*job;

	/* Before the job: its token is registered under this id. */
	m->job_id = sv.next_job_id++;
	job = m->exec != NULL ? exec_job(m) : message_job(m);
	if (job == NULL)
		return -1;
	m->lane->running = 1;
	s.running++;
	m->started_ms = mono_ms();
	if (m->exec != NULL)
		exec_run(m, w, job);
	else {
		message_started(m);
		pool_run(w, m, job);
	}
	json_object_put(job);
	return 0;
}

void
sched_kick(void)
{
	struct lane	*l;
	struct worker	*w;
	struct msg	*m;

	/* A starting egress process is a moment away: its invocations wait
	 * for it rather than fail (a dead one fails them, SPEC §9). */
	while (!sv.stopping && !sv.paused && s.nready > 0 &&
	    !permits_exhausted() && !egress_starting() &&
	    (w = pool_idle()) != NULL) {
		l = TAILQ_FIRST(&s.ready);
		TAILQ_REMOVE(&s.ready, l, ready);
		l->in_ready = 0;
		s.nready--;
		/* An exec cancelled while it waited may have left it. */
		if ((m = TAILQ_FIRST(&l->msgs)) == NULL || m->deferred)
			continue;
		/* On -1 the message ended without running; w stays idle. */
		(void)dispatch(m, w);
	}
	lane_gc();
}

static void
lane_finished(struct lane *l)
{
	l->running = 0;
	s.running--;
}

/* m waits delay ms at its lane's head (a retry), then may run again. */
void
sched_defer(struct msg *m, int64_t delay)
{
	m->deferred = 1;
	ev_timer_set(&m->retry, delay / 1000., 0.);
	ev_timer_start(sv.loop, &m->retry);
}

/* A worker's result for m: scheduling first, then m's outcome. */
void
sched_done(struct msg *m, struct job_result *r)
{
	struct lane	*l = m->lane;

	m->worker = NULL;
	sched_egress_end(m);
	lane_finished(l);
	if (m->exec == NULL)
		message_ended(m, r);
	/*
	 * The worker is idle again: give it the next ready lane's message
	 * before this outcome is committed (a write, an fsync, a rename), so
	 * that the commit overlaps its run. m's lane is not in the ready
	 * FIFO and m is still its head, so it cannot be picked.
	 */
	sched_kick();
	if (m->exec != NULL)
		exec_done(m, r);
	else
		message_done(m, r);
	lane_check(l);
	queue_pull();
	supervisor_check_exit();
}

void
sched_worker_lost(struct msg *m, const char *why)
{
	struct lane *l = m->lane;

	m->worker = NULL;
	sched_egress_end(m);
	lane_finished(l);
	if (m->exec != NULL)
		exec_lost(m, why);
	else
		message_lost(m, why);
	lane_check(l);
	sched_kick();
	supervisor_check_exit();
}

/* Graceful stop after the grace period: hand back what still runs. */
void
sched_handback_running(void)
{
	struct lane	*l;
	struct msg	*m;

	TAILQ_FOREACH(l, &s.all, all) {
		m = TAILQ_FIRST(&l->msgs);
		if (m != NULL && m->worker != NULL) {
			pool_abandon(m->worker);
			m->worker = NULL;
			sched_egress_end(m);
			lane_finished(l);
			if (m->exec != NULL)
				exec_abandoned(m);
			else
				message_abandoned(m);
		}
	}
}

/* Lanes and their depths, for status. */
json_object *
sched_status(void)
{
	json_object	*o = json_object_new_object();
	struct lane	*l;

	TAILQ_FOREACH(l, &s.all, all)
		json_object_object_add(o, l->agent,
		    json_object_new_int64((int64_t)l->depth));
	return o;
}

void
sched_free_all(void)
{
	struct lane	*l;
	struct msg	*m;

	while ((l = TAILQ_FIRST(&s.all)) != NULL) {
		while ((m = TAILQ_FIRST(&l->msgs)) != NULL) {
			TAILQ_REMOVE(&l->msgs, m, entry);
			queue_forget(m);
			message_free(m);
		}
		if (l->in_ready)
			TAILQ_REMOVE(&s.ready, l, ready);
		TAILQ_REMOVE(&s.all, l, all);
		free(l->agent);
		free(l);
	}
	s.nready = 0;
}
