/*
 * Team chains, as TinyClaw runs them: a message routed to an agent that
 * belongs to a team runs as a chain. A reply with one [@teammate: text] tag
 * (or, failing tags, a bare @teammate mention) hands off to that teammate;
 * several tags fan out in parallel and end the chain; max_chain_steps ends
 * a ping-pong. Each step is an invocation of its own, queued in its agent's
 * lane under the usual ordering and permits; a transient failure retries
 * that step alone. The end writes one aggregated response, a transcript in
 * chats/<team>/, and team_chain_end.
 *
 * The events are TinyClaw's, so that its visualiser follows: every step
 * that starts also ends with chain_step_done, a failed one included (a
 * first step that fails for good ends its chain too, with a transcript,
 * before its dead letter). A message outside any team is a chain of one
 * step without teamId, as TinyClaw 0.0.4 and later report every
 * invocation; without its chain_step_done the visualiser would show the
 * agent at work for ever.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

#define STEP_ERROR	"Sorry, I encountered an error processing this request."

struct step {
	char	*agent;
	char	*from;		/* who handed off to it; NULL for step 1 */
	char	*text;		/* the reply, [send_file:] resolved; NULL
				   while it runs */
};

struct chain {
	struct msg	 *root;
	char		 *team;
	char		 *team_name;
	struct step	 *steps;
	size_t		  nsteps;
	int		  pending;	/* fan-out steps still running */
	int		  fanout;
	size_t		  fan_step;	/* the step number of every fan-out step */
	int		  ended;
	char		**files;
	size_t		  nfiles;
	struct attach_list att;		/* files copied by its steps */
	unsigned	  seq;
	TAILQ_ENTRY(chain) entry;
};

static TAILQ_HEAD(, chain) chains = TAILQ_HEAD_INITIALIZER(chains);

static int
in_team(const struct team *t, const char *agent)
{
	size_t i;

	for (i = 0; i < t->nagents; i++)
		if (strcmp(t->agents[i], agent) == 0)
			return 1;
	return 0;
}

/* The team a message runs in: the routed team, else the agent's first. */
static const struct team *
chain_team(const struct msg *m)
{
	const struct config	*cf = sv.conf;
	size_t			 i;

	if (m->team_routed)
		for (i = 0; i < cf->nteams; i++)
			if (strcmp(cf->teams[i].leader, m->agent) == 0 &&
			    in_team(&cf->teams[i], m->agent))
				return &cf->teams[i];
	for (i = 0; i < cf->nteams; i++)
		if (in_team(&cf->teams[i], m->agent))
			return &cf->teams[i];
	return NULL;
}

/* c is NULL for a message outside any team: no teamId. */
static void
chain_event(const char *type, struct chain *c, json_object *o)
{
	if (c != NULL)
		json_object_object_add(o, "teamId",
		    json_object_new_string(c->team));
	event_emit(type, o);
}

static const char *
agent_name(const char *id)
{
	const struct agent *a = config_agent(sv.conf, id);

	return a != NULL ? a->name : id;
}

/* Fields of both TinyClaws: step (0.0.2), fromAgent (0.0.4). */
static void
step_start_event(struct chain *c, const char *agent, size_t step,
    const char *from)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "step", json_object_new_int((int)step));
	json_object_object_add(o, "agentId", json_object_new_string(agent));
	json_object_object_add(o, "agentName",
	    json_object_new_string(agent_name(agent)));
	json_object_object_add(o, "fromAgent", from != NULL ?
	    json_object_new_string(from) : NULL);
	chain_event("chain_step_start", c, o);
}

static void
step_done_event(struct chain *c, const char *agent, size_t step,
    const char *text)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "step", json_object_new_int((int)step));
	json_object_object_add(o, "agentId", json_object_new_string(agent));
	json_object_object_add(o, "agentName",
	    json_object_new_string(agent_name(agent)));
	json_object_object_add(o, "responseLength",
	    json_object_new_int((int)utf16_len(text)));
	json_object_object_add(o, "responseText", json_object_new_string(text));
	chain_event("chain_step_done", c, o);
}

/* Slot i (0-based) of c->steps exists. */
static struct step *
step_slot(struct chain *c, size_t i)
{
	if (i >= c->nsteps) {
		c->steps = xreallocarray(c->steps, i + 1, sizeof(*c->steps));
		memset(c->steps + c->nsteps, 0, (i + 1 - c->nsteps) *
		    sizeof(*c->steps));
		c->nsteps = i + 1;
	}
	return &c->steps[i];
}

/* Called as m is handed to a worker. */
void
chain_dispatched(struct msg *m)
{
	const struct team	*t;
	struct chain		*c;
	json_object		*o, *a;
	size_t			 i;

	if (m->parent != NULL) {
		c = m->parent->chain;
		step_start_event(c, m->agent, c->fanout ? c->fan_step :
		    m->step, c->steps[m->step - 1].from);
		return;
	}
	if (m->chain != NULL) {
		step_start_event(m->chain, m->agent, 1, NULL);
		return;
	}
	if ((t = chain_team(m)) == NULL) {
		step_start_event(NULL, m->agent, 1, NULL);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->root = m;
	c->team = xstrdup(t->id);
	c->team_name = xstrdup(t->name);
	step_slot(c, 0)->agent = xstrdup(m->agent);
	m->chain = c;
	m->step = 1;
	TAILQ_INSERT_TAIL(&chains, c, entry);
	log_info("%s: team chain in %s (@%s), leader %s", m->name, t->name,
	    t->id, t->leader);
	o = json_object_new_object();
	json_object_object_add(o, "teamName", json_object_new_string(t->name));
	a = json_object_new_array();
	for (i = 0; i < t->nagents; i++)
		json_object_array_add(a, json_object_new_string(t->agents[i]));
	json_object_object_add(o, "agents", a);
	json_object_object_add(o, "leader", json_object_new_string(t->leader));
	chain_event("team_chain_start", c, o);
	step_start_event(c, m->agent, 1, NULL);
}

struct mention {
	char	*agent;
	char	*text;
};

static const struct agent *
teammate(struct chain *c, const char *from, const char *word)
{
	const struct team	*t = config_team(sv.conf, c->team);
	const struct agent	*a;
	size_t			 i;

	if (t == NULL)
		return NULL;
	for (i = 0; i < t->nagents; i++)
		if (strcasecmp(t->agents[i], word) == 0 &&
		    strcmp(t->agents[i], from) != 0 &&
		    (a = config_agent(sv.conf, t->agents[i])) != NULL)
			return a;
	return NULL;
}

/*
 * TinyClaw's /\[@(\S+?):\s*([\s\S]*?)\]/g, teammates only, each once; else
 * the first bare @teammate, which forwards the whole reply.
 */
size_t
chain_mentions(struct chain *c, const char *from, const char *reply,
    struct mention **out)
{
	const struct agent	*a;
	struct mention		*v = NULL;
	const char		*p, *id, *colon, *body, *end;
	char			*word;
	size_t			 n = 0, i, wl;

	for (p = reply; (p = strstr(p, "[@")) != NULL; p++) {
		id = p + 2;
		for (colon = id; *colon != '\0' && *colon != ':' &&
		    !isspace((unsigned char)*colon); colon++)
			;
		if (*colon != ':' || colon == id)
			continue;
		for (body = colon + 1; isspace((unsigned char)*body); body++)
			;
		if ((end = strchr(body, ']')) == NULL)
			break;
		word = xstrndup(id, colon - id);
		a = teammate(c, from, word);
		free(word);
		if (a == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(v[i].agent, a->id) == 0)
				break;
		if (i < n)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].agent = xstrdup(a->id);
		while (end > body && isspace((unsigned char)end[-1]))
			end--;
		v[n].text = xstrndup(body, end - body);
		n++;
	}
	if (n == 0)
		for (p = reply; (p = strchr(p, '@')) != NULL; p++) {
			for (wl = 0; p[1 + wl] != '\0' &&
			    !isspace((unsigned char)p[1 + wl]); wl++)
				;
			/* "@coder," or "@coder." still names coder. */
			while (wl > 0 && strchr(".,;:!?)\"'", p[wl]) != NULL)
				wl--;
			if (wl == 0)
				continue;
			word = xstrndup(p + 1, wl);
			a = teammate(c, from, word);
			free(word);
			if (a == NULL)
				continue;
			v = xcalloc(1, sizeof(*v));
			v[0].agent = xstrdup(a->id);
			v[0].text = xstrdup(reply);
			n = 1;
			break;
		}
	*out = v;
	return n;
}

static void
mentions_free(struct mention *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].agent);
		free(v[i].text);
	}
	free(v);
}

/* A new step for agent; its reply goes to slot (0-based) of c->steps. */
static void
chain_step_add(struct chain *c, const char *from, const char *agent,
    const char *text, size_t slot)
{
	struct msg	*s;
	struct step	*st;
	json_object	*o;

	/* Known from the start, so that an interrupted chain still ends it. */
	st = step_slot(c, slot);
	free(st->agent);
	free(st->from);
	st->agent = xstrdup(agent);
	st->from = xstrdup(from);
	s = xcalloc(1, sizeof(*s));
	xasprintf(&s->name, "%s#%u", c->root->name, ++c->seq);
	s->where = AT_PROCESSING;
	s->obj = json_object_get(c->root->obj);
	s->agent = xstrdup(agent);
	xasprintf(&s->text, "[Message from teammate @%s]:\n%s", from, text);
	s->first_seen = now_ms();
	s->announced = 1;
	s->parent = c->root;
	s->step = slot + 1;
	o = json_object_new_object();
	json_object_object_add(o, "fromAgent", json_object_new_string(from));
	json_object_object_add(o, "toAgent", json_object_new_string(agent));
	/* TinyClaw: every hand-off of a fan-out has the same step. */
	json_object_object_add(o, "step", json_object_new_int((int)(c->fanout ?
	    c->fan_step - 1 : slot)));
	chain_event("chain_handoff", c, o);
	sched_add(s, 0);
}

/* A value of one header line: its control characters as \xNN. */
static char *
md_line(const char *s)
{
	return str_escape(s != NULL ? s : "", s != NULL ? strlen(s) : 0, 0);
}

/*
 * A message or a reply, Markdown as it is, except that a line that would
 * read as the transcript's own structure (a heading, a --- rule) gets a
 * backslash: it shows the same, and cannot forge a step.
 */
static char *
md_body(const char *s)
{
	char		*out, *o;
	const char	*p;
	size_t		 lines = 1;

	if (s == NULL)
		s = "";
	for (p = s; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	o = out = xmalloc(strlen(s) + lines + 1);
	for (p = s; ; ) {
		if (*p == '#' || strncmp(p, "---", 3) == 0)
			*o++ = '\\';
		while (*p != '\0' && *p != '\n')
			*o++ = *p++;
		if (*p == '\0')
			break;
		*o++ = *p++;
	}
	*o = '\0';
	return out;
}

static void
transcript(struct chain *c)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 iso[96], fname[96], *dir, *s, *t, *h[4], *b;
	size_t		 i;
	int		 fd;
	const char	*ch, *sender, *raw;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	snprintf(fname, sizeof(fname), "%04d-%02d-%02d_%02d-%02d-%02d-%03ld.md",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	ch = json_object_get_string(json_object_object_get(c->root->obj,
	    "channel"));
	sender = json_object_get_string(json_object_object_get(c->root->obj,
	    "sender"));
	raw = json_object_get_string(json_object_object_get(c->root->obj,
	    "message"));
	h[0] = md_line(c->team_name);
	h[1] = md_line(c->team);
	h[2] = md_line(ch);
	h[3] = md_line(sender);
	b = md_body(raw);
	xasprintf(&s, "# Team Chain: %s (@%s)\n**Date:** %s\n**Channel:** %s |"
	    " **Sender:** %s\n**Steps:** %zu\n\n---\n\n## User Message\n\n%s\n",
	    h[0], h[1], iso, h[2], h[3], c->nsteps, b);
	for (i = 0; i < 4; i++)
		free(h[i]);
	free(b);
	for (i = 0; i < c->nsteps; i++) {
		h[0] = md_line(agent_name(c->steps[i].agent));
		h[1] = md_line(c->steps[i].agent);
		b = md_body(c->steps[i].text != NULL ? c->steps[i].text : "");
		xasprintf(&t, "%s\n---\n\n## Step %zu: %s (@%s)\n\n%s\n", s,
		    i + 1, h[0], h[1], b);
		free(h[0]);
		free(h[1]);
		free(b);
		free(s);
		s = t;
	}
	xasprintf(&dir, "%s/chats/%s", sv.home, c->team);
	if (mkdir_p(dir, 0700) == -1 ||
	    (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		log_warnx("cannot create %s: %s", dir, strerror(errno));
	else {
		if (file_write_atomic(fd, fname, s, strlen(s), 0) == -1)
			log_warnx("cannot write %s/%s: %s", dir, fname,
			    strerror(errno));
		close(fd);
	}
	free(dir);
	free(s);
}

static void
chain_free(struct chain *c)
{
	size_t i;

	TAILQ_REMOVE(&chains, c, entry);
	for (i = 0; i < c->nsteps; i++) {
		free(c->steps[i].agent);
		free(c->steps[i].from);
		free(c->steps[i].text);
	}
	free(c->steps);
	for (i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	attach_list_free(&c->att);
	free(c->team);
	free(c->team_name);
	free(c);
}

/* The chain's reply: one step as is, several as "@a: …\n\n---\n\n@b: …". */
static char *
chain_reply(struct chain *c)
{
	char	*s, *t;
	size_t	 i;

	if (c->nsteps == 1)
		return xstrdup(c->steps[0].text);
	s = xstrdup("");
	for (i = 0; i < c->nsteps; i++) {
		xasprintf(&t, "%s%s@%s: %s", s, i == 0 ? "" : "\n\n---\n\n",
		    c->steps[i].agent, c->steps[i].text != NULL ?
		    c->steps[i].text : "");
		free(s);
		s = t;
	}
	return s;
}

static void
end_event(struct chain *c)
{
	json_object	*o, *a;
	size_t		 i;

	c->ended = 1;
	o = json_object_new_object();
	json_object_object_add(o, "totalSteps",
	    json_object_new_int((int)c->nsteps));
	a = json_object_new_array();
	for (i = 0; i < c->nsteps; i++)
		if (c->steps[i].agent != NULL)
			json_object_array_add(a,
			    json_object_new_string(c->steps[i].agent));
	json_object_object_add(o, "agents", a);
	chain_event("team_chain_end", c, o);
}

static void
chain_end(struct chain *c)
{
	struct msg	*root = c->root;
	json_object	*resp;
	char		*text;

	end_event(c);
	transcript(c);
	text = chain_reply(c);
	resp = response_final(root, text, c->files, c->nfiles);
	free(text);
	sv.count.ok++;
	commit_respond(root, resp);
	message_response_event(root, resp);
	json_object_put(resp);
	sched_msg_done(root);
}

/* Steps fill their own slot, so a fan-out's replies keep mention order. */
static void
step_record(struct chain *c, struct msg *m, const char *text)
{
	struct step *st = step_slot(c, m->step - 1);

	free(st->agent);
	free(st->text);
	st->agent = xstrdup(m->agent);
	st->text = xstrdup(text);
	step_done_event(c, m->agent, m->parent != NULL && c->fanout ?
	    c->fan_step : m->step, text);
}

/* After a reply of agent from: hand off, fan out, or end. */
static void
chain_next(struct chain *c, const char *from, const char *text)
{
	struct mention	*v;
	size_t		 n, i, first;

	if (c->fanout) {
		if (--c->pending == 0)
			chain_end(c);
		return;
	}
	n = chain_mentions(c, from, text, &v);
	if (n == 0) {
		chain_end(c);
	} else if (c->nsteps >= (size_t)sv.conf->max_chain_steps) {
		log_warnx("%s: team chain reached %lld steps "
		    "(supervisor.max_chain_steps): ending it",
		    c->root->name, (long long)sv.conf->max_chain_steps);
		chain_end(c);
	} else {
		first = c->nsteps;
		if (n > 1) {
			c->fanout = 1;
			c->pending = (int)n;
			c->fan_step = first + 1;
		}
		for (i = 0; i < n; i++)
			chain_step_add(c, from, v[i].agent, v[i].text,
			    first + i);
	}
	mentions_free(v, n);
}

/*
 * A result for a chain's step (the root message is step 1). Returns 1 if
 * the chain took it, 0 if m is not in a chain.
 */
int
chain_result(struct msg *m, struct job_result *r)
{
	struct chain	*c;
	char		*text, *from;

	if (m->parent == NULL && m->chain == NULL)
		return 0;
	c = m->parent != NULL ? m->parent->chain : m->chain;
	if (r->outcome != OUT_OK) {
		message_fail(m, r->outcome, r->error);
		return 1;
	}
	text = response_scan(m, r->reply, &c->files, &c->nfiles, &c->att);
	step_record(c, m, text);
	from = xstrdup(m->agent);
	if (m->parent == NULL)
		sched_detach(m);	/* the lane moves on; the chain holds it */
	else
		sched_msg_done(m);
	chain_next(c, from, text);
	free(from);
	free(text);
	return 1;
}

/*
 * A step (not the root) failed: transient ones are retried in place until
 * max_attempts; past that, or terminal, the step answers with TinyClaw's
 * error text and the chain ends. Returns 1 if the chain took it.
 */
int
chain_step_failed(struct msg *m, enum outcome o, const char *why)
{
	struct chain	*c;
	int64_t		 delay;

	if (m->parent == NULL)
		return 0;
	c = m->parent->chain;
	m->attempt++;
	if (o == OUT_TRANSIENT && m->attempt < sv.conf->max_attempts &&
	    !sv.stopping) {
		delay = message_backoff_ms(m->attempt);
		log_warnx("%s (agent %s): chain step failed, attempt %d of %lld,"
		    " retry in %.1fs: %s", m->name, m->agent, m->attempt,
		    (long long)sv.conf->max_attempts, delay / 1000., why);
		m->retry_at = now_ms() + delay;
		sv.count.retried++;
		sched_defer(m, delay);
		return 1;
	}
	log_warnx("%s (agent %s): chain step failed (%s): ending the chain: "
	    "%s", m->name, m->agent, outcome_name(o), why);
	step_record(c, m, STEP_ERROR);
	sched_msg_done(m);
	if (c->fanout && --c->pending > 0)
		return 1;
	chain_end(c);
	return 1;
}

/*
 * m, which is no chain's step, has its reply (text) or its notice: its
 * step is done. A chain's root reports through its chain instead.
 */
void
chain_answered(struct msg *m, const char *text)
{
	if (m->parent == NULL && m->chain == NULL)
		step_done_event(NULL, m->agent, 1, text);
}

/*
 * m, which is no chain's step, failed for good; its dead letter and its
 * notice follow. As TinyClaw does with a step that fails, its step ends
 * with the error text and so does its chain, with a transcript; outside a
 * chain the notice is its step's reply (TinyClaw 0.0.4's).
 */
void
chain_dead(struct msg *m, const char *notice)
{
	struct chain *c = m->chain;

	if (m->parent != NULL)
		return;
	if (c == NULL) {
		step_done_event(NULL, m->agent, 1, notice);
		return;
	}
	if (c->ended)
		return;
	step_record(c, m, STEP_ERROR);
	end_event(c);
	transcript(c);
}

/*
 * m is being freed: forget its chain. A chain that did not end (handed
 * back at a stop) still gets its team_chain_end, so that every
 * team_chain_start has one; it names every step that had started, the
 * ones that were running too, so that the visualiser sees them end.
 */
void
chain_forget(struct msg *m)
{
	if (m->chain != NULL) {
		if (!m->chain->ended)
			end_event(m->chain);
		chain_free(m->chain);
		m->chain = NULL;
	}
}

/* Graceful stop: roots of unfinished chains go back to incoming/. */
void
chain_handback_all(void)
{
	struct chain *c;

	while ((c = TAILQ_FIRST(&chains)) != NULL) {
		queue_handback(c->root);
		log_info("%s: team chain interrupted, handed back",
		    c->root->name);
		sched_msg_done(c->root);	/* frees c too */
	}
}
