/*
 * What each control command does: a table from the command name to its
 * handler (as rspamd_control.c has), every reply {"ok":true,…} or
 * {"ok":false,"error":…}. The dispatcher takes a line and returns a reply
 * and never fails otherwise, so a bad line leaves the connection usable.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "supervisor.h"
#include "util.h"

#define DEAD_LIST_MAX	10000
#define ERR_REPLY_MAX	1023	/* bytes of an error reply's text */

typedef json_object *(*cmd_fn)(json_object *req, int *stop);

static json_object *
ok_reply(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *
err_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Redacted whole, then cut: a cut through a secret would leave a piece
 * that no longer matches.
 */
static json_object *
err_reply(const char *fmt, ...)
{
	json_object	*o = json_object_new_object();
	char		*buf, *clean, *fixed = NULL;
	size_t		 n;
	va_list		 ap;

	va_start(ap, fmt);
	if (vasprintf(&buf, fmt, ap) == -1)
		buf = NULL;
	va_end(ap);
	/* A request's bytes echoed, or cut inside a character by %.60s. */
	clean = redact(buf != NULL ? utf8_ensure(buf, &fixed) :
	    "out of memory", sv.conf->env_allowlist, sv.conf->nallow);
	free(buf);
	if ((n = strlen(clean)) > ERR_REPLY_MAX) {
		n = ERR_REPLY_MAX;
		while (n > 0 && ((unsigned char)clean[n] & 0xc0) == 0x80)
			n--;
		clean[n] = '\0';
	}
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(clean));
	free(clean);
	free(fixed);
	return o;
}

/* A request's string redacted, for an error that quotes part of it. */
static char *
quoted(const char *s)
{
	return redact(s, sv.conf->env_allowlist, sv.conf->nallow);
}

/* A string argument, or NULL if absent, not a string or holding a NUL. */
static const char *
str_arg(json_object *req, const char *key)
{
	json_object	*v;
	const char	*s;

	if (!json_object_object_get_ex(req, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return NULL;
	return s;
}

static void
add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

/* What an operator must know before the numbers mean anything. */
static json_object *
status_warnings(void)
{
	json_object	*w = json_object_new_array();
	char		 what[1024];

	if (rival_find(sv.home, what, sizeof(what)))
		json_object_array_add(w, json_object_new_string(what));
	return w;
}

static json_object *
cmd_status(json_object *req, int *stop)
{
	json_object	*o = ok_reply(), *p, *q, *c;

	(void)req;
	(void)stop;
	add_int(o, "pid", getpid());
	add_int(o, "uptimeSeconds", (now_ms() - sv.started_ms) / 1000);
	add_int(o, "generation", sv.generation);
	json_object_object_add(o, "paused", json_object_new_boolean(sv.paused));
	json_object_object_add(o, "stopping",
	    json_object_new_boolean(sv.stopping));
	json_object_object_add(o, "mode",
	    json_object_new_string(config_mode_name(sv.conf->mode)));
	json_object_object_add(o, "workers", pool_status());
	p = json_object_new_object();
	add_int(p, "inUse", (int64_t)sched_permits_in_use());
	add_int(p, "max", sv.conf->max_concurrency);
	add_int(p, "waiting", (int64_t)sched_waiting());
	add_int(p, "maxWaiters", sv.conf->max_waiters);
	json_object_object_add(o, "permits", p);
	q = json_object_new_object();
	add_int(q, "incoming", (int64_t)queue_depth(sv.dir_incoming));
	add_int(q, "processing", (int64_t)queue_depth(sv.dir_processing));
	add_int(q, "deferred", (int64_t)queue_depth(sv.dir_deferred));
	add_int(q, "outgoing", (int64_t)queue_depth(sv.dir_outgoing));
	add_int(q, "deadLetter", (int64_t)queue_depth(sv.dir_dead));
	add_int(q, "corrupt", (int64_t)queue_depth(sv.dir_corrupt));
	add_int(q, "held", (int64_t)queue_held());
	add_int(q, "commitsWaiting", (int64_t)commit_waiting());
	json_object_object_add(o, "queue", q);
	c = json_object_new_object();
	add_int(c, "received", (int64_t)sv.count.received);
	add_int(c, "ok", (int64_t)sv.count.ok);
	add_int(c, "transient", (int64_t)sv.count.transient);
	add_int(c, "terminal", (int64_t)sv.count.terminal);
	add_int(c, "retried", (int64_t)sv.count.retried);
	add_int(c, "dead", (int64_t)sv.count.dead);
	add_int(c, "corrupt", (int64_t)sv.count.corrupt);
	json_object_object_add(o, "counters", c);
	json_object_object_add(o, "lanes", sched_status());
	json_object_object_add(o, "egress", egress_status());
	json_object_object_add(o, "warnings", status_warnings());
	return o;
}

/* The exposition as one string: `clawvisor metrics` prints it as is. */
static json_object *
cmd_metrics(json_object *req, int *stop)
{
	json_object	*o;
	char		*text;
	size_t		 len;

	(void)req;
	(void)stop;
	if ((text = metrics_render(&len)) == NULL)
		return err_reply("cannot render the metrics: out of memory");
	o = ok_reply();
	json_object_object_add(o, "metrics",
	    json_object_new_string_len(text, (int)len));
	free(text);
	return o;
}

static json_object *
cmd_reload(json_object *req, int *stop)
{
	json_object	*o;
	char		 err[512];

	(void)req;
	(void)stop;
	if (sv.stopping)
		return err_reply("the daemon is stopping");
	if (supervisor_reload(err, sizeof(err)) == -1)
		return err_reply("%s", err);
	o = ok_reply();
	add_int(o, "generation", sv.generation);
	return o;
}

static json_object *
cmd_pause(json_object *req, int *stop)
{
	(void)req;
	(void)stop;
	if (!sv.paused)
		log_info("paused: no new invocations start");
	sv.paused = 1;
	return ok_reply();
}

static json_object *
cmd_resume(json_object *req, int *stop)
{
	(void)req;
	(void)stop;
	if (sv.paused)
		log_info("resumed");
	sv.paused = 0;
	sched_kick();
	return ok_reply();
}

static json_object *
cmd_stop(json_object *req, int *stop)
{
	(void)req;
	*stop = 1;
	return ok_reply();
}

static json_object *
sandbox_json(const struct config *cf)
{
	json_object	*o = ok_reply(), *sup, *ags, *a;
	size_t		 i;

	json_object_object_add(o, "generation",
	    json_object_new_int((int)sv.generation));
	json_object_object_add(o, "sandbox", config_sandbox_json(cf));
	sup = json_object_new_object();
	add_int(sup, "workers", cf->workers);
	add_int(sup, "scan_interval_ms", cf->scan_interval_ms);
	add_int(sup, "max_chain_steps", cf->max_chain_steps);
	json_object_object_add(sup, "watch_settings",
	    json_object_new_boolean(cf->watch_settings));
	json_object_object_add(sup, "metrics_listen", cf->metrics_listen !=
	    NULL ? json_object_new_string(cf->metrics_listen) : NULL);
	json_object_object_add(o, "supervisor", sup);
	ags = json_object_new_object();
	for (i = 0; i < cf->nagents; i++) {
		a = json_object_new_object();
		json_object_object_add(a, "provider", json_object_new_string(
		    config_agent_provider(&cf->agents[i])));
		if (cf->agents[i].refused != NULL)
			json_object_object_add(a, "refused",
			    json_object_new_string(cf->agents[i].refused));
		json_object_object_add(a, "model", cf->agents[i].model ?
		    json_object_new_string(cf->agents[i].model) : NULL);
		json_object_object_add(a, "sandbox_mode", json_object_new_string(
		    config_mode_name(config_agent_mode(cf, &cf->agents[i]))));
		json_object_object_add(a, "working_directory",
		    json_object_new_string(cf->agents[i].workdir));
		json_object_object_add(ags, cf->agents[i].id, a);
	}
	json_object_object_add(o, "agents", ags);
	return o;
}

static json_object *
cmd_sandbox_show(json_object *req, int *stop)
{
	(void)req;
	(void)stop;
	return sandbox_json(sv.conf);
}

/* Which allowlisted variables the daemon has: names and yes/no only. */
static json_object *
cmd_sandbox_env(json_object *req, int *stop)
{
	json_object	*o = ok_reply(), *set = json_object_new_object(), *held;
	const char	*v;
	size_t		 i;
	int		 eg;

	(void)req;
	(void)stop;
	held = json_object_new_object();
	for (i = 0; i < sv.conf->nallow; i++) {
		v = getenv(sv.conf->env_allowlist[i]);
		/* With the proxy the keys are the egress process's alone. */
		eg = egress_holds(sv.conf->env_allowlist[i]);
		json_object_object_add(set, sv.conf->env_allowlist[i],
		    json_object_new_boolean((v != NULL && *v != '\0') || eg));
		if (eg)
			json_object_object_add(held,
			    sv.conf->env_allowlist[i],
			    json_object_new_string("egress"));
	}
	json_object_object_add(o, "set", set);
	/* Not a secret: the doctor's rootless Podman check reads it. */
	v = getenv("PODMAN_USERNS");
	json_object_object_add(o, "podmanUserns", v != NULL ?
	    json_object_new_string(v) : NULL);
	json_object_object_add(o, "heldBy", held);
	json_object_object_add(o, "egress", egress_status());
	add_int(o, "uid", getuid());
	add_int(o, "gid", getgid());
	return o;
}

/*
 * The doctor's TLS check of the provider URLs, by the egress process:
 * {"providers": [...]} starts one and answers its "seq" at once;
 * {"seq": N} answers "done" and, when done, the egress process's result.
 */
static json_object *
cmd_egress_check(json_object *req, int *stop)
{
	json_object	*o, *v, *p = NULL, *r;

	(void)stop;
	if (json_object_object_get_ex(req, "seq", &v)) {
		o = ok_reply();
		r = egress_check_result((uint64_t)json_object_get_int64(v));
		json_object_object_add(o, "done",
		    json_object_new_boolean(r != NULL));
		if (r != NULL) {
			json_object_object_foreach(r, k, val)
				json_object_object_add(o, k,
				    json_object_get(val));
			json_object_put(r);
		}
		return o;
	}
	if (json_object_object_get_ex(req, "providers", &v) &&
	    json_object_is_type(v, json_type_array))
		p = v;
	if ((r = egress_check(p)) == NULL)
		return err_reply("the egress process is not running");
	o = ok_reply();
	json_object_object_add(o, "seq", json_object_get(
	    json_object_object_get(r, "seq")));
	json_object_put(r);
	return o;
}

/*
 * Set sandbox.mode in settings.json, keeping every other key: parse the
 * file, change the one key, validate the result as a whole, write it
 * atomically with the file's own mode, then reload.
 */
static json_object *
cmd_sandbox_set(json_object *req, int *stop)
{
	json_object	*root = NULL, *sb, *r;
	struct config	*cf;
	struct stat	 st;
	const char	*mode, *s;
	char		*text = NULL, err[512], *dir, *base, *q;
	size_t		 len;
	int		 dfd = -1, rr;

	(void)stop;
	if ((mode = str_arg(req, "mode")) == NULL)
		return err_reply("sandbox.set: expected \"mode\": host, docker, "
		    "apple or bwrap");
	if (strcmp(mode, "host") != 0 && strcmp(mode, "docker") != 0 &&
	    strcmp(mode, "apple") != 0 && strcmp(mode, "bwrap") != 0) {
		q = quoted(mode);
		r = err_reply("sandbox.mode: expected one of \"host\", "
		    "\"docker\", \"apple\" or \"bwrap\", got \"%.40s\"", q);
		free(q);
		return r;
	}
	rr = file_read_regular(AT_FDCWD, sv.conf->path, 4 * 1024 * 1024,
	    &text, &len, err, sizeof(err));
	if (rr == -2)
		text = xstrdup("{}"), len = 2, rr = 0;
	if (rr != 0)
		return err_reply("%s: %s", sv.conf->path, err);
	root = json_parse_deep(text);
	free(text);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return err_reply("%s: not a JSON object", sv.conf->path);
	}
	if (!json_object_object_get_ex(root, "sandbox", &sb) || sb == NULL) {
		sb = json_object_new_object();
		json_object_object_add(root, "sandbox", sb);
	} else if (!json_object_is_type(sb, json_type_object)) {
		json_object_put(root);
		return err_reply("sandbox: expected an object");
	}
	json_object_object_add(sb, "mode", json_object_new_string(mode));
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	if ((cf = config_parse(s, strlen(s), sv.home, err, sizeof(err)))
	    == NULL) {
		json_object_put(root);
		return err_reply("%s", err);
	}
	config_free(cf);
	dir = xstrdup(sv.conf->path);
	base = strrchr(dir, '/');
	*base++ = '\0';
	xasprintf(&text, "%s\n", s);
	json_object_put(root);
	if (stat(sv.conf->path, &st) == -1)
		st.st_mode = 0600;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    file_write_atomic(dfd, base, text, strlen(text), 0) == -1) {
		r = err_reply("cannot write %s: %s", sv.conf->path,
		    strerror(errno));
		goto out;
	}
	/* The new file keeps the old one's permissions. */
	fchmodat(dfd, base, st.st_mode & 07777, 0);
	log_info("sandbox.mode set to %s in %s", mode, sv.conf->path);
	r = cmd_reload(req, stop);
out:
	if (dfd != -1)
		close(dfd);
	free(dir);
	free(text);
	return r;
}

/*
 * A dead letter's id: its file name in dead-letter/ without .json, with
 * control characters, bytes that are not UTF-8 and backslashes escaped
 * (\xNN, \\), so that every id prints on one line of a terminal and in
 * valid JSON, and is given back as printed.
 */
static json_object *
dead_id(const char *name)
{
	json_object	*o;
	char		*id;

	id = str_escape(name, strlen(name) - 5, 1);
	o = json_object_new_string(id);
	free(id);
	return o;
}

/* The file name in dead-letter/ for an id, with or without .json. */
static char *
dead_name(json_object *req, json_object **err)
{
	const char	*arg;
	char		*id, *name, *q;
	size_t		 l;

	if ((arg = str_arg(req, "id")) == NULL) {
		*err = err_reply("expected \"id\": a dead letter id");
		return NULL;
	}
	if (str_unescape(arg, &id) == -1) {
		q = quoted(arg);
		*err = err_reply("invalid dead letter id \"%.60s\": a "
		    "backslash starts \\\\ or \\xNN", q);
		free(q);
		return NULL;
	}
	l = strlen(id);
	if (l == 0 || l > QUEUE_NAME_MAX || strchr(id, '/') != NULL ||
	    id[0] == '.') {
		q = quoted(arg);
		*err = err_reply("invalid dead letter id \"%.60s\"", q);
		free(q);
		free(id);
		return NULL;
	}
	if (l > 5 && strcmp(id + l - 5, ".json") == 0)
		name = xstrdup(id);
	else
		xasprintf(&name, "%s.json", id);
	free(id);
	return name;
}

/* dead-letter/NAME as the user knows it, for errors and the log. */
static char *
dead_shown(const char *name)
{
	return str_escape(name, strlen(name), 1);
}

static json_object *
dead_read(const char *name, json_object **err)
{
	json_object	*rec;
	char		*text, why[256], *shown;
	size_t		 len;
	int		 r;

	r = file_read_regular(sv.dir_dead, name, MAX_OWN_FILE, &text,
	    &len, why, sizeof(why));
	shown = dead_shown(name);
	if (r == -2) {
		*err = err_reply("no dead letter \"%.*s\"", (int)strlen(shown) -
		    5, shown);
		goto fail;
	}
	if (r != 0) {
		*err = err_reply("dead-letter/%s: %s", shown, why);
		goto fail;
	}
	rec = json_parse_deep(text);
	free(text);
	if (rec == NULL || !json_object_is_type(rec, json_type_object)) {
		json_object_put(rec);
		*err = err_reply("dead-letter/%s: not a dead letter record",
		    shown);
		goto fail;
	}
	free(shown);
	return rec;
fail:
	free(shown);
	return NULL;
}

static json_object *
dead_summary(const char *name, json_object *rec)
{
	json_object *o = json_object_new_object(), *p, *v;

	json_object_object_add(o, "id", dead_id(name));
	p = json_object_object_get(rec, "payload");
	json_object_object_add(o, "messageId", json_object_get(
	    json_object_object_get(p, "messageId")));
	json_object_object_add(o, "agent", json_object_get(
	    json_object_object_get(p, "agent")));
#define COPY(k) if (json_object_object_get_ex(rec, k, &v)) \
	json_object_object_add(o, k, json_object_get(v))
	COPY("errorClass");
	COPY("attempt");
	COPY("maxAttempts");
	COPY("failedAt");
	COPY("errorMessage");
#undef COPY
	return o;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **
dead_names(size_t *n)
{
	struct dirent	 *de;
	DIR		 *d;
	char		**v = NULL;
	size_t		  l;
	int		  fd;

	*n = 0;
	if ((fd = dup(sv.dir_dead)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL && *n < DEAD_LIST_MAX) {
		l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l <= 5 ||
		    strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		v = xreallocarray(v, *n + 1, sizeof(char *));
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (*n > 0)
		qsort(v, *n, sizeof(char *), name_cmp);
	return v;
}

static json_object *
cmd_dead_list(json_object *req, int *stop)
{
	json_object	*o = ok_reply(), *a = json_object_new_array(), *rec, *e;
	char		**v;
	size_t		  n, i;

	(void)req;
	(void)stop;
	v = dead_names(&n);
	for (i = 0; i < n; i++) {
		if ((rec = dead_read(v[i], &e)) == NULL) {
			json_object_put(e);
			free(v[i]);
			continue;
		}
		json_object_array_add(a, dead_summary(v[i], rec));
		json_object_put(rec);
		free(v[i]);
	}
	free(v);
	json_object_object_add(o, "dead", a);
	return o;
}

static json_object *
cmd_dead_show(json_object *req, int *stop)
{
	json_object	*o, *rec, *e = NULL;
	char		*name;

	(void)stop;
	if ((name = dead_name(req, &e)) == NULL)
		return e;
	if ((rec = dead_read(name, &e)) == NULL) {
		free(name);
		return e;
	}
	o = ok_reply();
	json_object_object_add(o, "id", dead_id(name));
	json_object_object_add(o, "record", rec);
	free(name);
	return o;
}

/* Put the payload back in incoming/ as a new message: attempts reset. */
static int
dead_requeue_one(const char *name, json_object **err)
{
	json_object	*rec, *payload;
	const char	*s;
	char		*buf, *shown;
	int		 r;

	if ((rec = dead_read(name, err)) == NULL)
		return -1;
	shown = dead_shown(name);
	payload = json_object_object_get(rec, "payload");
	if (payload == NULL || !json_object_is_type(payload,
	    json_type_object)) {
		json_object_put(rec);
		*err = err_reply("dead-letter/%s has no payload", shown);
		free(shown);
		return -1;
	}
	json_object_object_del(payload, "attempt");
	json_object_object_del(payload, "firstSeenAt");
	json_object_object_del(payload, "errorClass");
	json_object_object_del(payload, "lastError");
	json_object_object_del(payload, "retryAt");
	s = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) >= MAX_MESSAGE_FILE)	/* the spaces are a luxury */
		s = json_object_to_json_string_ext(payload,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) >= MAX_MESSAGE_FILE) {
		/*
		 * incoming/ reads no more (SPEC §2): written there, it would
		 * only go to corrupt/. A dead letter can hold more: its
		 * invalid UTF-8 bytes became U+FFFD, three bytes each.
		 */
		*err = err_reply("cannot requeue %s: its message is %zu bytes "
		    "as a file, over the %d of an incoming message", shown,
		    strlen(s) + 1, MAX_MESSAGE_FILE);
		free(shown);
		json_object_put(rec);
		return -1;
	}
	xasprintf(&buf, "%s\n", s);
	r = file_write_atomic(sv.dir_incoming, name, buf, strlen(buf), 1);
	free(buf);
	json_object_put(rec);
	if (r == -1) {
		*err = err_reply("cannot requeue %s: %s", shown,
		    errno == EEXIST ? "a message of that name is waiting in "
		    "incoming/" : strerror(errno));
		free(shown);
		return -1;
	}
	unlinkat(sv.dir_dead, name, 0);
	log_info("dead letter %s requeued", shown);
	free(shown);
	return 0;
}

static json_object *
cmd_dead_requeue(json_object *req, int *stop)
{
	json_object	*o, *v, *e = NULL;
	char		*name, **names;
	size_t		 n, i, done = 0;

	(void)stop;
	if (json_object_object_get_ex(req, "all", &v) &&
	    json_object_get_boolean(v)) {
		names = dead_names(&n);
		for (i = 0; i < n; i++) {
			if (dead_requeue_one(names[i], &e) == 0)
				done++;
			else {
				log_warnx("%s", json_object_get_string(
				    json_object_object_get(e, "error")));
				json_object_put(e);
			}
			free(names[i]);
		}
		free(names);
		o = ok_reply();
		add_int(o, "requeued", (int64_t)done);
		add_int(o, "failed", (int64_t)(n - done));
		return o;
	}
	if ((name = dead_name(req, &e)) == NULL)
		return e;
	if (dead_requeue_one(name, &e) == -1) {
		free(name);
		return e;
	}
	free(name);
	o = ok_reply();
	add_int(o, "requeued", 1);
	return o;
}

static json_object *
cmd_dead_purge(json_object *req, int *stop)
{
	json_object	*e = NULL;
	char		*name, *shown;

	(void)stop;
	if ((name = dead_name(req, &e)) == NULL)
		return e;
	shown = dead_shown(name);
	if (unlinkat(sv.dir_dead, name, 0) == -1) {
		e = errno == ENOENT ? err_reply("no dead letter \"%.*s\"",
		    (int)strlen(shown) - 5, shown) : err_reply("cannot remove "
		    "dead-letter/%s: %s", shown, strerror(errno));
		free(name);
		free(shown);
		return e;
	}
	log_info("dead letter %s purged", shown);
	free(name);
	free(shown);
	return ok_reply();
}

static const struct {
	const char	*name;
	cmd_fn		 fn;
} commands[] = {
	{ "status",		cmd_status },
	{ "metrics",		cmd_metrics },
	{ "reload",		cmd_reload },
	{ "pause",		cmd_pause },
	{ "resume",		cmd_resume },
	{ "stop",		cmd_stop },
	{ "sandbox.show",	cmd_sandbox_show },
	{ "sandbox.set",	cmd_sandbox_set },
	{ "sandbox.env",	cmd_sandbox_env },
	{ "egress.check",	cmd_egress_check },
	{ "dead.list",		cmd_dead_list },
	{ "dead.show",		cmd_dead_show },
	{ "dead.requeue",	cmd_dead_requeue },
	{ "dead.purge",		cmd_dead_purge },
};

json_object *
control_handle_line(const char *line, size_t len, int *stop)
{
	struct json_tokener	*tok;
	json_object		*req, *r;
	const char		*cmd;
	char			*q;
	size_t			 i;

	*stop = 0;
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if ((tok = json_tokener_new_ex(32)) == NULL)
		return err_reply("out of memory");
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req == NULL || json_tokener_get_parse_end(tok) != len) {
		json_tokener_free(tok);
		json_object_put(req);
		return err_reply("malformed request: expected one JSON object "
		    "per line");
	}
	json_tokener_free(tok);
	if (!json_object_is_type(req, json_type_object) ||
	    (cmd = str_arg(req, "cmd")) == NULL) {
		json_object_put(req);
		return err_reply("malformed request: expected {\"cmd\": "
		    "\"...\"}");
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0) {
			r = commands[i].fn(req, stop);
			json_object_put(req);
			return r;
		}
	q = quoted(cmd);
	r = err_reply("unknown command \"%.60s\"", q);
	free(q);
	json_object_put(req);
	return r;
}
