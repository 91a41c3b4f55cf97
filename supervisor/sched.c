/*
 * Scheduling, all of it in the supervisor: one lane per agent (its messages
 * run one at a time, in arrival order; a retry waiting in deferred/ keeps
 * its place at the head), a FIFO of lanes ready to run, the max_concurrency
 * permits and the max_waiters bound, and what becomes of a result: a
 * response, a retry with backoff, or a dead letter.
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

#define NOTICE_TEXT	"Sorry, I encountered an error processing your " \
			"request. Please check the queue logs."

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

/* The attempt is over, however it ended: its token dies with it. */
static void
egress_end(struct msg *m)
{
	if (m->job_egress) {
		egress_revoke(m->job_id);
		m->job_egress = 0;
	}
}

void
msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	egress_end(m);
	ev_timer_stop(sv.loop, &m->retry);
	chain_forget(m);
	json_object_put(m->obj);
	free(m->name);
	free(m->agent);
	free(m->text);
	free(m->multi);
	free(m->job_workdir);
	free(m->job_runtime);
	free(m);
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
	msg_free(m);
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
		/* Claim it so the failure is recorded like any other. */
		if (queue_claim(m) == -1) {
			msg_done(m);
			goto again;
		}
		sched_fail(m, OUT_TRANSIENT, "too many invocations waiting for "
		    "a permit (sandbox.max_waiters)");
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

/* TinyClaw says so of every message it reads, before routing it. */
static void
announce_received(struct msg *m)
{
	json_object	*o;
	const char	*raw;
	size_t		 cut;

	if (m->announced)
		return;
	m->announced = 1;
	sv.count.received++;
	raw = json_object_get_string(json_object_object_get(m->obj,
	    "message"));
	o = json_object_new_object();
	json_object_object_add(o, "channel", json_object_get(
	    json_object_object_get(m->obj, "channel")));
	json_object_object_add(o, "sender", json_object_get(
	    json_object_object_get(m->obj, "sender")));
	/* TinyClaw's message.substring(0, 120), whole characters. */
	utf16_span(raw, 120, &cut);
	json_object_object_add(o, "message", json_object_new_string_len(raw,
	    (int)cut));
	json_object_object_add(o, "messageId", json_object_get(
	    json_object_object_get(m->obj, "messageId")));
	event_emit("message_received", o);
}

static void
announce(struct msg *m, const struct agent *a)
{
	json_object *o;

	if (m->announced)
		return;
	announce_received(m);
	o = json_object_new_object();
	json_object_object_add(o, "agentId", json_object_new_string(m->agent));
	json_object_object_add(o, "agentName", json_object_new_string(
	    a != NULL ? a->name : m->agent));
	json_object_object_add(o, "provider", json_object_new_string(
	    a != NULL ? config_agent_provider(a) : ""));
	json_object_object_add(o, "model", json_object_new_string(
	    a != NULL && a->model != NULL ? a->model : ""));
	json_object_object_add(o, "isTeamRouted",
	    json_object_new_boolean(m->team_routed));
	event_emit("agent_routed", o);
}

/* TinyClaw's reset flags: either one resets, and both are consumed. */
static int
reset_take(const struct agent *a)
{
	char	*global, *own;
	int	 reset;

	xasprintf(&global, "%s/reset_flag", sv.home);
	xasprintf(&own, "%s/%s/reset_flag", sv.conf->workspace, a->id);
	reset = access(global, F_OK) == 0 || access(own, F_OK) == 0;
	if (reset) {
		unlink(global);
		unlink(own);
		log_info("resetting the conversation of agent %s", a->id);
	}
	free(global);
	free(own);
	return reset;
}

static json_object *
job_build(struct msg *m, const struct agent *a)
{
	struct job	 j;
	json_object	*o;

	memset(&j, 0, sizeof(j));
	j.agent_id = a->id;
	j.provider = a->provider;
	j.model = a->model;
	j.message = m->text;
	j.reset = reset_take(a);
	j.command = a->command;
	j.ncommand = a->ncommand;
	j.workdir = a->workdir;
	j.home = sv.home;
	j.mode = config_agent_mode(sv.conf, a);
	j.timeout_seconds = sv.conf->timeout_seconds;
	j.kill_grace_seconds = sv.conf->kill_grace_seconds;
	j.max_output_bytes = sv.conf->max_output_bytes;
	j.env_allowlist = sv.conf->env_allowlist;
	j.nallow = sv.conf->nallow;
	j.runtime_pass_env = sv.conf->runtime_pass_env;
	j.npass = sv.conf->npass;
	j.path_mapping = sv.conf->path_mapping;
	j.rt = j.mode == MODE_APPLE ? sv.conf->apple : j.mode == MODE_BWRAP ?
	    sv.conf->bwrap : sv.conf->docker;
	j.templates = (char *)sv.templates;
	j.teammates = teammates_block(sv.conf, a);
	j.egress = sv.conf->egress.mode == EGRESS_PROXY;
	if (j.egress) {
		/* Registered before the job goes out; NULL: egress is down
		 * and the worker fails the invocation closed. */
		j.egress_token = egress_register(m->job_id, a);
		j.egress_socket = (char *)egress_socket();
		j.egress_bridge = (char *)egress_bridge();
		m->job_egress = j.egress_token != NULL;
	}
	o = job_to_json(&j);
	if (j.egress_token != NULL)
		freezero(j.egress_token, strlen(j.egress_token));
	free(j.teammates);
	m->job_mode = j.mode;
	m->job_mapping = j.path_mapping;
	free(m->job_workdir);
	m->job_workdir = xstrdup(a->workdir);
	free(m->job_runtime);
	m->job_runtime = xstrdup(j.rt.runtime_command);
	return o;
}

/* Events about attempt number m->attempt + 1, the one running now. */
static void
invocation_event(const char *type, struct msg *m, json_object *extra)
{
	json_object *o = extra != NULL ? extra : json_object_new_object();

	json_object_object_add(o, "agentId", json_object_new_string(m->agent));
	json_object_object_add(o, "messageId", json_object_get(
	    json_object_object_get(m->obj, "messageId")));
	json_object_object_add(o, "attempt", json_object_new_int(m->attempt +
	    1));
	json_object_object_add(o, "mode", json_object_new_string(
	    config_mode_name(m->job_mode)));
	event_emit(type, o);
}

/* Several agents named: TinyClaw's canned reply, nobody invoked. */
static void
multi_reply(struct msg *m)
{
	struct lane	*l = m->lane;
	json_object	*resp;
	char		*text;

	log_info("%s names several agents (%s): canned reply", m->name,
	    m->multi);
	announce_received(m);
	text = route_multi_reply(m->multi);
	resp = response_notice(m->obj, NULL, text);
	free(text);
	sv.count.ok++;
	commit_respond(m, resp);
	sched_response_event(m, resp);
	json_object_put(resp);
	msg_done(m);
	lane_check(l);
}

/* 0: handed to w; -1: it ended without running (w is still idle). */
static int
dispatch(struct msg *m, struct worker *w)
{
	struct lane		*l = m->lane;
	const struct agent	*a;
	json_object		*job;
	char			 why[256];
	size_t			 len;

	if (queue_claim(m) == -1) {
		msg_done(m);
		lane_check(l);
		return -1;
	}
	if (m->multi != NULL) {
		multi_reply(m);
		return -1;
	}
	a = config_agent(sv.conf, m->agent);
	announce(m, a);
	if (a == NULL) {
		snprintf(why, sizeof(why), "agent \"%s\" is no longer "
		    "configured", m->agent);
		sched_fail(m, OUT_TERMINAL, why);
		return -1;
	}
	if (a->refused != NULL) {
		sched_fail(m, OUT_TERMINAL, a->refused);
		return -1;
	}
	len = strlen(m->text);
	if ((int64_t)len > sv.conf->max_message_bytes) {
		snprintf(why, sizeof(why), "message is %zu bytes, over the "
		    "limit of %lld (sandbox.max_message_bytes)", len,
		    (long long)sv.conf->max_message_bytes);
		sched_fail(m, OUT_TERMINAL, why);
		return -1;
	}
	m->job_id = sv.next_job_id++;
	job = job_build(m, a);
	m->lane->running = 1;
	s.running++;
	m->started_ms = mono_ms();
	invocation_event("sandbox_invocation_start", m, NULL);
	chain_dispatched(m);
	pool_run(w, m, job);
	json_object_put(job);
	return 0;
}

void
sched_kick(void)
{
	struct lane	*l;
	struct worker	*w;

	/* A starting egress process is a moment away: its invocations wait
	 * for it rather than fail (a dead one fails them, SPEC §9). */
	while (!sv.stopping && !sv.paused && s.nready > 0 &&
	    !permits_exhausted() && !egress_starting() &&
	    (w = pool_idle()) != NULL) {
		l = TAILQ_FIRST(&s.ready);
		TAILQ_REMOVE(&s.ready, l, ready);
		l->in_ready = 0;
		s.nready--;
		/* On -1 the message ended without running; w stays idle. */
		(void)dispatch(TAILQ_FIRST(&l->msgs), w);
	}
	lane_gc();
}

static void
lane_finished(struct lane *l)
{
	l->running = 0;
	s.running--;
}

int64_t
sched_backoff_ms(int attempt)
{
	int64_t	base = sv.conf->backoff_seconds * 1000, max, d;
	int	i;

	max = sv.conf->backoff_max_seconds * 1000;
	d = base;
	for (i = 1; i < attempt && d > 0 && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* +-20% so that failures do not come back in step; the cap holds. */
	if (d > 0)
		d += (int64_t)arc4random_uniform((uint32_t)(d * 2 / 5 + 1)) -
		    d / 5;
	return d > max ? max : d;
}

/* A failed attempt of a claimed message: retry, or a dead letter. */
void
sched_fail(struct msg *m, enum outcome o, const char *why)
{
	json_object	*notice, *ev;
	struct lane	*l = m->lane;
	int64_t		 delay;
	unsigned	 repeats;
	int		 quiet;

	if (o == OUT_TERMINAL)
		sv.count.terminal++;
	else
		sv.count.transient++;
	ev = json_object_new_object();
	json_object_object_add(ev, "errorClass",
	    json_object_new_string(outcome_name(o)));
	json_object_object_add(ev, "error", json_object_new_string(why));
	invocation_event("sandbox_invocation_error", m, ev);
	if (chain_step_failed(m, o, why))
		return;
	m->attempt++;
	/* One line a minute for the same failure of the same agent. */
	quiet = !errlog_should(m->agent, why, &repeats);
	if (!quiet && repeats > 0)
		log_warnx("agent %s: the failure below happened %u more "
		    "time(s) in the last minute", m->agent, repeats);
	if (o == OUT_TERMINAL || m->attempt >= sv.conf->max_attempts) {
		if (!quiet)
			log_warnx("%s (agent %s): %s failure, attempt %d of "
			    "%lld: dead letter: %s", m->name, m->agent,
			    outcome_name(o), m->attempt,
			    (long long)sv.conf->max_attempts, why);
		chain_dead(m, NOTICE_TEXT);
		notice = response_notice(m->obj, m->agent, NOTICE_TEXT);
		commit_dead(m, outcome_name(o), why, notice);
		/* The notice is the message's response, as TinyClaw's was. */
		sched_response_event(m, notice);
		json_object_put(notice);
		sv.count.dead++;
		msg_done(m);
		lane_check(l);
		return;
	}
	delay = sched_backoff_ms(m->attempt);
	if (!quiet)
		log_warnx("%s (agent %s): transient failure, attempt %d of "
		    "%lld, retry in %.1fs: %s", m->name, m->agent, m->attempt,
		    (long long)sv.conf->max_attempts, delay / 1000., why);
	m->retry_at = now_ms() + delay;
	if (commit_defer(m, m->retry_at, why) == -1) {
		/* Could not park it: leave it claimed, it runs again. */
		m->retry_at = now_ms() + 1000;
	}
	sv.count.retried++;
	m->deferred = 1;
	ev_timer_set(&m->retry, delay / 1000., 0.);
	ev_timer_start(sv.loop, &m->retry);
}

/*
 * TinyClaw's response_ready for a response written to outgoing/: replies,
 * notices and canned replies alike. m may be NULL (a notice written by
 * the recovery at start): everything comes from the response, whose agent
 * is m's; the canned reply to several agents has none, nor has its event.
 */
void
sched_response_event(struct msg *m, json_object *resp)
{
	json_object	*ev = json_object_new_object(), *agent;
	const char	*text;

	(void)m;
	text = json_object_get_string(json_object_object_get(resp, "message"));
	json_object_object_add(ev, "channel", json_object_get(
	    json_object_object_get(resp, "channel")));
	json_object_object_add(ev, "sender", json_object_get(
	    json_object_object_get(resp, "sender")));
	if (json_object_object_get_ex(resp, "agent", &agent))
		json_object_object_add(ev, "agentId", json_object_get(agent));
	json_object_object_add(ev, "responseLength",
	    json_object_new_int((int)utf16_len(text)));
	json_object_object_add(ev, "responseText",
	    json_object_new_string(text));
	json_object_object_add(ev, "messageId", json_object_get(
	    json_object_object_get(resp, "messageId")));
	event_emit("response_ready", ev);
}

/* Retry m in place after delay ms (a chain step: nothing on disk). */
void
sched_retry_in(struct msg *m, int64_t delay)
{
	m->retry_at = now_ms() + delay;
	m->deferred = 1;
	sv.count.retried++;
	ev_timer_set(&m->retry, delay / 1000., 0.);
	ev_timer_start(sv.loop, &m->retry);
}

void
sched_done(struct msg *m, struct job_result *r)
{
	json_object	*resp, *ev;
	struct lane	*l = m->lane;

	m->worker = NULL;
	egress_end(m);
	lane_finished(l);
	ev = json_object_new_object();
	json_object_object_add(ev, "outcome",
	    json_object_new_string(outcome_name(r->outcome)));
	json_object_object_add(ev, "durationMs",
	    json_object_new_int64(mono_ms() - m->started_ms));
	json_object_object_add(ev, "exitCode", json_object_new_int(
	    r->exit_code));
	json_object_object_add(ev, "truncated",
	    json_object_new_boolean(r->truncated));
	invocation_event("sandbox_invocation_end", m, ev);
	/*
	 * The worker is idle again: give it the next ready lane's message
	 * before this outcome is committed (a write, an fsync, a rename), so
	 * that the commit overlaps its run. m's lane is not in the ready
	 * FIFO and m is still its head, so it cannot be picked.
	 */
	sched_kick();
	if (sv.stopping && r->outcome != OUT_OK && m->parent != NULL)
		sched_msg_done(m);	/* its root is handed back */
	else if (r->outcome == OUT_OK && chain_result(m, r))
		;
	else if (r->outcome != OUT_OK) {
		if (sv.stopping && strcmp(r->error, "cancelled by the "
		    "supervisor") == 0) {
			queue_handback(m);
			msg_done(m);
		} else
			sched_fail(m, r->outcome, r->error);
	} else {
		sv.count.ok++;
		resp = response_build(m, r->reply, r->files, r->nfiles);
		chain_answered(m, json_object_get_string(
		    json_object_object_get(resp, "message")));
		commit_respond(m, resp);
		sched_response_event(m, resp);
		json_object_put(resp);
		msg_done(m);
	}
	lane_check(l);
	queue_pull();
	supervisor_check_exit();
}

void
sched_worker_lost(struct msg *m, const char *why)
{
	struct lane *l = m->lane;

	m->worker = NULL;
	egress_end(m);
	lane_finished(l);
	if (sv.stopping) {
		if (m->parent == NULL)
			queue_handback(m);
		msg_done(m);
	}
	else
		sched_fail(m, OUT_TRANSIENT, why);
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
			egress_end(m);
			lane_finished(l);
			if (m->parent != NULL)
				continue;	/* its chain's root goes back */
			queue_handback(m);
			log_info("%s handed back to incoming/", m->name);
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
			msg_free(m);
		}
		if (l->in_ready)
			TAILQ_REMOVE(&s.ready, l, ready);
		TAILQ_REMOVE(&s.all, l, all);
		free(l->agent);
		free(l);
	}
	s.nready = 0;
}
