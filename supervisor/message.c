/*
 * What a queued message is, around its run: the job it becomes when the
 * scheduler gives it a worker, and what a result means for it — a
 * response, a retry with backoff, a dead letter and its notice, a team
 * chain's next step (chain.c). Scheduling (lanes, permits, workers) is
 * sched.c's; an exec'd invocation (exec.c) never comes here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

#define NOTICE_TEXT	"Sorry, I encountered an error processing your " \
			"request. Please check the queue logs."

void
message_free(struct msg *m)
{
	if (m == NULL)
		return;
	sched_egress_end(m);
	ev_timer_stop(sv.loop, &m->retry);
	exec_forget(m);
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
	sched_job_base(&j, a);
	j.message = m->text;
	j.reset = reset_take(a);
	j.teammates = teammates_block(sv.conf, a);
	sched_job_egress(m, &j, a);
	o = job_to_json(&j);
	sched_job_encoded(&j);
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
	message_response_event(m, resp);
	json_object_put(resp);
	sched_msg_done(m);
}

/*
 * m is its lane's head and a worker is free: its job, or NULL if the
 * message ended without running (vanished, canned reply, refused).
 */
json_object *
message_job(struct msg *m)
{
	const struct agent	*a;
	char			 why[256];
	size_t			 len;

	if (queue_claim(m) == -1) {
		sched_msg_done(m);
		return NULL;
	}
	if (m->multi != NULL) {
		multi_reply(m);
		return NULL;
	}
	a = config_agent(sv.conf, m->agent);
	announce(m, a);
	if (a == NULL) {
		snprintf(why, sizeof(why), "agent \"%s\" is no longer "
		    "configured", m->agent);
		message_fail(m, OUT_TERMINAL, why);
		return NULL;
	}
	if (a->refused != NULL) {
		message_fail(m, OUT_TERMINAL, a->refused);
		return NULL;
	}
	len = strlen(m->text);
	if ((int64_t)len > sv.conf->max_message_bytes) {
		snprintf(why, sizeof(why), "message is %zu bytes, over the "
		    "limit of %lld (sandbox.max_message_bytes)", len,
		    (long long)sv.conf->max_message_bytes);
		message_fail(m, OUT_TERMINAL, why);
		return NULL;
	}
	return job_build(m, a);
}

/* m's job is being handed to a worker. */
void
message_started(struct msg *m)
{
	invocation_event("sandbox_invocation_start", m, NULL);
	chain_dispatched(m);
}

/* m's run ended (its worker is idle again); its outcome comes next. */
void
message_ended(struct msg *m, const struct job_result *r)
{
	json_object *ev = json_object_new_object();

	json_object_object_add(ev, "outcome",
	    json_object_new_string(outcome_name(r->outcome)));
	json_object_object_add(ev, "durationMs",
	    json_object_new_int64(mono_ms() - m->started_ms));
	json_object_object_add(ev, "exitCode", json_object_new_int(
	    r->exit_code));
	json_object_object_add(ev, "truncated",
	    json_object_new_boolean(r->truncated));
	invocation_event("sandbox_invocation_end", m, ev);
	/* A failure gets its own line (retry, dead letter); so does this. */
	if (r->outcome == OUT_OK)
		log_info("%s (agent %s, %s mode): ok in %lld ms, attempt %d",
		    m->name, m->agent, config_mode_name(m->job_mode),
		    (long long)(mono_ms() - m->started_ms), m->attempt + 1);
}

int64_t
message_backoff_ms(int attempt)
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
message_fail(struct msg *m, enum outcome o, const char *why)
{
	json_object	*notice, *ev;
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
	if (o == OUT_TERMINAL || m->attempt >= sv.conf->max_attempts) {
		/* Every dead letter gets its own line, never held back. */
		log_warnx("%s (agent %s): %s failure, attempt %d of %lld: "
		    "dead letter: %s", m->name, m->agent, outcome_name(o),
		    m->attempt, (long long)sv.conf->max_attempts, why);
		chain_dead(m, NOTICE_TEXT);
		notice = response_notice(m->obj, m->agent, NOTICE_TEXT);
		commit_dead(m, outcome_name(o), why, notice);
		/* The notice is the message's response, as TinyClaw's was. */
		message_response_event(m, notice);
		json_object_put(notice);
		sv.count.dead++;
		sched_msg_done(m);
		return;
	}
	delay = message_backoff_ms(m->attempt);
	/* The same retry of the same agent: one line a minute. */
	quiet = !errlog_should(m->agent, why, &repeats);
	if (!quiet && repeats > 0)
		log_warnx("agent %s: the retry below happened %u more "
		    "time(s) in the last minute", m->agent, repeats);
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
	sched_defer(m, delay);
}

/*
 * TinyClaw's response_ready for a response written to outgoing/: replies,
 * notices and canned replies alike. m may be NULL (a notice written by
 * the recovery at start): everything comes from the response, whose agent
 * is m's; the canned reply to several agents has none, nor has its event.
 */
void
message_response_event(struct msg *m, json_object *resp)
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

/* m's result, its worker idle again: its one outcome. */
void
message_done(struct msg *m, struct job_result *r)
{
	json_object *resp;

	if (sv.stopping && r->outcome != OUT_OK && m->parent != NULL)
		sched_msg_done(m);	/* its root is handed back */
	else if (r->outcome == OUT_OK && chain_result(m, r))
		;
	else if (r->outcome != OUT_OK) {
		if (sv.stopping && strcmp(r->error, "cancelled by the "
		    "supervisor") == 0) {
			queue_handback(m);
			sched_msg_done(m);
		} else
			message_fail(m, r->outcome, r->error);
	} else {
		sv.count.ok++;
		resp = response_build(m, r->reply, r->files, r->nfiles);
		chain_answered(m, json_object_get_string(
		    json_object_object_get(resp, "message")));
		commit_respond(m, resp);
		message_response_event(m, resp);
		json_object_put(resp);
		sched_msg_done(m);
	}
}

/* m's worker died under it. */
void
message_lost(struct msg *m, const char *why)
{
	if (sv.stopping) {
		if (m->parent == NULL)
			queue_handback(m);
		sched_msg_done(m);
	} else
		message_fail(m, OUT_TRANSIENT, why);
}

/* Graceful stop past the grace period: m was running, it goes back. */
void
message_abandoned(struct msg *m)
{
	if (m->parent != NULL)
		return;		/* its chain's root goes back */
	queue_handback(m);
	log_info("%s handed back to incoming/", m->name);
}
