/*
 * `clawvisor exec`, the daemon's side (SPEC §10, docs/EXEC.md): one
 * invocation asked for on the control socket, with the caller's stdio
 * passed along (SCM_RIGHTS). It takes a place in its agent's lane like a
 * queued message, the same permit and an idle worker (sched.c), and the
 * worker gives the caller's descriptors to the child: its output never
 * crosses the daemon. What a result means for it is decided here — an
 * exit status for the caller — never in message.c: no retry, no dead
 * letter, no response file.
 */
#include <sys/stat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"

#define EX_TEMPFAIL	75
#define EX_NOPERM	77
#define EX_USAGE_EXEC	2

struct exec {
	struct client	*c;		/* NULL once the caller is gone */
	struct msg	*m;		/* its lane entry */
	struct exec_req	 req;
	int		 fds[IPC_MAX_FDS];
	size_t		 nfds;
	int64_t		 max_output;	/* the cap its job carried */
};

static uint64_t	exec_seq;

void
exec_req_free(struct exec_req *r)
{
	size_t i;

	for (i = 0; i < r->nargv; i++)
		free(r->argv[i]);
	free(r->argv);
	free(r->cwd);
	free(r->agent);
	memset(r, 0, sizeof(*r));
}

/*
 * The request, as the caller sent it: {"cmd":"exec","argv":[...],
 * "cwd":"/abs","agent":"id"?,"stdin":bool?}. Every field checked; the
 * caller is the daemon's own uid, but a bad line is still only an error.
 */
int
exec_req_parse(json_object *o, struct exec_req *r, char *err, size_t len)
{
	json_object	*a, *e, *v;
	size_t		 i, n;

	memset(r, 0, sizeof(*r));
	if (!json_object_object_get_ex(o, "argv", &a) ||
	    !json_object_is_type(a, json_type_array) ||
	    (n = json_object_array_length(a)) == 0) {
		snprintf(err, len, "exec: \"argv\": expected a non-empty array "
		    "of strings");
		return -1;
	}
	if (n > EXEC_MAX_ARGS) {
		snprintf(err, len, "exec: \"argv\": over %d arguments",
		    EXEC_MAX_ARGS);
		return -1;
	}
	r->argv = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string) ||
		    strlen(json_object_get_string(e)) !=
		    (size_t)json_object_get_string_len(e)) {
			snprintf(err, len, "exec: \"argv\"[%zu]: expected a "
			    "string without NUL", i);
			goto fail;
		}
		r->argv[i] = xstrdup(json_object_get_string(e));
		r->nargv = i + 1;
	}
	if (*r->argv[0] == '\0') {
		snprintf(err, len, "exec: \"argv\"[0]: empty program name");
		goto fail;
	}
	if (!json_object_object_get_ex(o, "cwd", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string(v)[0] != '/' ||
	    strlen(json_object_get_string(v)) >= PATH_MAX) {
		snprintf(err, len, "exec: \"cwd\": expected an absolute path");
		goto fail;
	}
	r->cwd = xstrdup(json_object_get_string(v));
	if (json_object_object_get_ex(o, "agent", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    *json_object_get_string(v) == '\0') {
			snprintf(err, len, "exec: \"agent\": expected an agent "
			    "id");
			goto fail;
		}
		r->agent = xstrdup(json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "stdin", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			snprintf(err, len, "exec: \"stdin\": expected a "
			    "boolean");
			goto fail;
		}
		r->stdin_fd = json_object_get_boolean(v);
	}
	return 0;
fail:
	exec_req_free(r);
	return -1;
}

static json_object *
exec_error(int status, const char *text)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(text));
	json_object_object_add(o, "exitStatus", json_object_new_int(status));
	return o;
}

/* dir, or its resolved form, is inside (or is) root's. */
static int
path_inside(const char *dir, const char *root)
{
	char	rd[PATH_MAX], rr[PATH_MAX];
	size_t	n;

	if (realpath(root, rr) == NULL)
		strlcpy(rr, root, sizeof(rr));
	if (realpath(dir, rd) == NULL)
		strlcpy(rd, dir, sizeof(rd));
	n = strlen(rr);
	while (n > 1 && rr[n - 1] == '/')
		rr[--n] = '\0';
	return strncmp(rd, rr, n) == 0 && (rd[n] == '\0' || rd[n] == '/' ||
	    n == 1);
}

/* The known agents and their directories, for an error. */
static char *
agents_list(void)
{
	char	*s = xstrdup(""), *t;
	size_t	 i;

	for (i = 0; i < sv.conf->nagents; i++) {
		xasprintf(&t, "%s%s%s (%s)", s, i == 0 ? "" : ", ",
		    sv.conf->agents[i].id, sv.conf->agents[i].workdir);
		free(s);
		s = t;
	}
	if (i == 0) {
		free(s);
		s = xstrdup("none configured");
	}
	return s;
}

/* --agent, else the agent whose working directory holds cwd (deepest). */
static const struct agent *
exec_agent(const struct exec_req *r, json_object **err)
{
	const struct agent	*a, *best = NULL;
	char			*list, *text;
	size_t			 i, bl = 0;

	if (r->agent != NULL) {
		if ((a = config_agent(sv.conf, r->agent)) != NULL)
			return a;
		list = agents_list();
		xasprintf(&text, "unknown agent \"%s\"; known agents: %s",
		    r->agent, list);
		goto fail;
	}
	for (i = 0; i < sv.conf->nagents; i++) {
		a = &sv.conf->agents[i];
		if (path_inside(r->cwd, a->workdir) &&
		    strlen(a->workdir) > bl) {
			best = a;
			bl = strlen(a->workdir);
		}
	}
	if (best != NULL)
		return best;
	list = agents_list();
	xasprintf(&text, "no agent's working directory contains %s (give "
	    "--agent ID); agents and their directories: %s", r->cwd, list);
fail:
	*err = exec_error(EX_USAGE_EXEC, text);
	free(list);
	free(text);
	return NULL;
}

/* PROGRAM must be what the agent runs: its provider's CLI or command. */
static int
exec_program_ok(const struct agent *a, const char *prog, char *why,
    size_t len)
{
	const char	*base, *want;

	base = strrchr(prog, '/') != NULL ? strrchr(prog, '/') + 1 : prog;
	switch (a->provider) {
	case PROV_ANTHROPIC:
		want = "claude";
		break;
	case PROV_OPENAI:
		want = "codex";
		break;
	default:
		want = a->ncommand > 0 ? a->command[0] : "";
		if (strrchr(want, '/') != NULL && strchr(prog, '/') == NULL)
			want = strrchr(want, '/') + 1;
		else if (strchr(prog, '/') != NULL)
			base = prog;
		break;
	}
	if (strcmp(base, want) == 0)
		return 0;
	snprintf(why, len, "agent %s runs \"%s\", not \"%s\" (clawvisor exec "
	    "runs only the agent's own CLI or command)", a->id, want, prog);
	return -1;
}

static void
exec_free(struct exec *e)
{
	size_t i;

	if (e->c != NULL)
		control_exec_detach(e->c);
	for (i = 0; i < e->nfds; i++)
		close(e->fds[i]);
	exec_req_free(&e->req);
	free(e);
}

/* Called as its lane entry is freed (message_free). */
void
exec_forget(struct msg *m)
{
	if (m->exec != NULL) {
		m->exec->m = NULL;
		exec_free(m->exec);
		m->exec = NULL;
	}
}

/* The caller's one reply; o is taken. */
static void
exec_reply(struct exec *e, json_object *o)
{
	struct client *c = e->c;

	if (c == NULL) {
		json_object_put(o);
		return;
	}
	control_exec_detach(c);
	e->c = NULL;
	control_exec_reply(c, o);
}

/*
 * A request line with its descriptors (taken, closed on every path).
 * NULL: it waits in its lane, c's reply comes later; else the reply.
 */
json_object *
exec_request(struct client *c, json_object *o, int *fds, size_t nfds)
{
	const struct agent	*a;
	struct exec		*e;
	struct msg		*m;
	json_object		*reply = NULL;
	char			 why[512];
	size_t			 i;

	e = xcalloc(1, sizeof(*e));
	memcpy(e->fds, fds, nfds * sizeof(int));
	e->nfds = nfds;
	if (exec_req_parse(o, &e->req, why, sizeof(why)) == -1) {
		reply = exec_error(EX_USAGE_EXEC, why);
		goto fail;
	}
	if (nfds != (size_t)(2 + e->req.stdin_fd)) {
		reply = exec_error(EX_USAGE_EXEC, "exec: the caller's stdout "
		    "and stderr (and stdin if \"stdin\") must be passed with "
		    "the request");
		goto fail;
	}
	if (sv.stopping) {
		reply = exec_error(EX_TEMPFAIL, "the daemon is stopping");
		goto fail;
	}
	if ((a = exec_agent(&e->req, &reply)) == NULL)
		goto fail;
	if (a->refused != NULL) {
		reply = exec_error(EX_NOPERM, a->refused);
		goto fail;
	}
	if (exec_program_ok(a, e->req.argv[0], why, sizeof(why)) == -1) {
		reply = exec_error(EX_NOPERM, why);
		goto fail;
	}
	m = xcalloc(1, sizeof(*m));
	xasprintf(&m->name, "exec-%llu", (unsigned long long)++exec_seq);
	m->where = AT_PROCESSING;
	m->agent = xstrdup(a->id);
	m->text = xstrdup("");
	m->first_seen = now_ms();
	m->announced = 1;
	m->exec = e;
	e->m = m;
	e->c = c;
	control_exec_attach(c, e);
	log_info("%s: %s for agent %s in %s", m->name, e->req.argv[0], a->id,
	    e->req.cwd);
	sched_add(m, 0);
	sched_kick();
	return NULL;
fail:
	for (i = 0; i < e->nfds; i++)
		close(e->fds[i]);
	e->nfds = 0;
	exec_req_free(&e->req);
	free(e);
	return reply;
}

/* m is its lane's head and a worker is free: its job, or NULL. */
json_object *
exec_job(struct msg *m)
{
	struct exec		*e = m->exec;
	const struct agent	*a;
	struct job		 j;
	json_object		*o;

	if (e->c == NULL) {		/* the caller left while it waited */
		sched_msg_done(m);
		return NULL;
	}
	if ((a = config_agent(sv.conf, m->agent)) == NULL ||
	    a->refused != NULL) {
		exec_reply(e, exec_error(EX_NOPERM, a == NULL ? "the agent is "
		    "no longer configured" : a->refused));
		sched_msg_done(m);
		return NULL;
	}
	memset(&j, 0, sizeof(j));
	sched_job_base(&j, a);
	j.message = "";
	j.exec_argv = e->req.argv;
	j.nexec = e->req.nargv;
	j.exec_cwd = e->req.cwd;
	j.exec_stdin = e->req.stdin_fd;
	/* A reload during the run does not change what the reply says. */
	e->max_output = j.max_output_bytes;
	sched_job_egress(m, &j, a);
	o = job_to_json(&j);
	sched_job_encoded(&j);
	m->job_mode = j.mode;
	m->job_mapping = j.path_mapping;
	m->job_workdir = xstrdup(a->workdir);
	m->job_runtime = xstrdup(j.rt.runtime_command);
	return o;
}

static void
exec_event(const char *type, struct msg *m, json_object *o)
{
	json_object_object_add(o, "agentId", json_object_new_string(m->agent));
	json_object_object_add(o, "exec", json_object_new_boolean(1));
	json_object_object_add(o, "mode", json_object_new_string(
	    config_mode_name(m->job_mode)));
	event_emit_lazy(type, o);
}

/* Hand the job and the caller's descriptors to w; ours are closed. */
void
exec_run(struct msg *m, struct worker *w, json_object *job)
{
	struct exec	*e = m->exec;
	int		 fds[IPC_MAX_FDS];
	size_t		 i, n = e->nfds;

	exec_event("sandbox_invocation_start", m, json_object_new_object());
	/* Ours from here: a failed hand-over frees e (and m) on the way. */
	memcpy(fds, e->fds, n * sizeof(int));
	e->nfds = 0;
	(void)pool_run_fds(w, m, job, fds, n);
	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* The streams an exec's output was cut on, as a JSON array of names. */
static json_object *
exec_cut(int truncated)
{
	json_object *a = json_object_new_array();

	if (truncated & RESULT_CUT_STDOUT)
		json_object_array_add(a, json_object_new_string("stdout"));
	if (truncated & RESULT_CUT_STDERR)
		json_object_array_add(a, json_object_new_string("stderr"));
	return a;
}

/*
 * The worker's result: the caller's exit status, the child's own when it
 * ran (r->child), whatever classify() made of it; its outcome, for the
 * event and the counters (pool.c), says ok, transient or terminal as for
 * a queued run.
 */
void
exec_done(struct msg *m, struct job_result *r)
{
	struct exec	*e = m->exec;
	json_object	*o, *ev;

	ev = json_object_new_object();
	json_object_object_add(ev, "outcome",
	    json_object_new_string(outcome_name(r->outcome)));
	json_object_object_add(ev, "durationMs",
	    json_object_new_int64(mono_ms() - m->started_ms));
	json_object_object_add(ev, "exitCode", json_object_new_int(
	    r->exit_code));
	if (r->signal != 0)
		json_object_object_add(ev, "signal",
		    json_object_new_int(r->signal));
	json_object_object_add(ev, "truncated",
	    json_object_new_boolean(r->truncated != 0));
	if (r->truncated != 0)
		json_object_object_add(ev, "truncatedStreams",
		    exec_cut(r->truncated));
	if (r->outcome != OUT_OK && r->error != NULL && *r->error != '\0')
		json_object_object_add(ev, "error",
		    json_object_new_string(r->error));
	exec_event("sandbox_invocation_end", m, ev);
	if (r->child) {
		if (r->outcome != OUT_OK)
			log_info("%s (agent %s): the child's status, %s: %s",
			    m->name, m->agent, outcome_name(r->outcome),
			    r->error);
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		if (r->signal != 0)
			json_object_object_add(o, "signal",
			    json_object_new_int(r->signal));
		else
			json_object_object_add(o, "exitCode",
			    json_object_new_int(r->exit_code));
		json_object_object_add(o, "outcome",
		    json_object_new_string(outcome_name(r->outcome)));
		if (r->truncated != 0) {
			json_object_object_add(o, "truncated",
			    exec_cut(r->truncated));
			json_object_object_add(o, "maxOutputBytes",
			    json_object_new_int64(e->max_output));
		}
	} else {
		log_warnx("%s (agent %s): %s: %s", m->name, m->agent,
		    outcome_name(r->outcome), r->error);
		o = exec_error(r->outcome == OUT_TERMINAL ? EX_NOPERM :
		    EX_TEMPFAIL, r->error);
	}
	exec_reply(e, o);
	sched_msg_done(m);
}

/* Its worker died under it, or the daemon stops past the grace. */
void
exec_lost(struct msg *m, const char *why)
{
	exec_reply(m->exec, exec_error(EX_TEMPFAIL, why));
	sched_msg_done(m);
}

void
exec_abandoned(struct msg *m)
{
	exec_reply(m->exec, exec_error(EX_TEMPFAIL, "the daemon is stopping"));
}

/* No permit soon enough: max_waiters. m leaves its lane after this. */
void
exec_refused(struct msg *m, const char *why)
{
	exec_reply(m->exec, exec_error(EX_TEMPFAIL, why));
}

/*
 * The caller asked to cancel (its signal), or went away (EOF, a closed
 * socket): a waiting invocation leaves its lane, a running one is stopped
 * as a timeout would be (container killed by name, process group, bwrap's
 * cgroup), then its env-file goes with the job's end.
 */
void
exec_cancel(struct exec *e, int gone)
{
	struct msg *m = e->m;

	if (gone)
		e->c = NULL;
	if (m == NULL)
		return;
	if (m->worker != NULL) {
		log_info("%s: cancelled by its caller", m->name);
		pool_cancel(m->worker);
		return;
	}
	if (!gone)
		exec_reply(e, exec_error(EX_TEMPFAIL, "cancelled"));
	sched_msg_done(m);
}
