/*
 * Provider argv and reply parsing, and outcome classification. The argv is
 * exactly TinyClaw's so that a CLI sees what it saw under the Node
 * processor; classification follows the rule table in docs/OUTCOMES.md.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "provider.h"
#include "util.h"

const char *
provider_model_id(const char *model)
{
	if (model == NULL)
		return NULL;
	if (strcmp(model, "sonnet") == 0)
		return "claude-sonnet-4-5";
	if (strcmp(model, "opus") == 0)
		return "claude-opus-4-6";
	return model;
}

/*
 * claude takes ANTHROPIC_API_KEY, or the subscription token `claude
 * setup-token` prints; current `codex exec` reads only CODEX_API_KEY, but
 * TinyClaw installs set OPENAI_API_KEY, which the sandbox gets as
 * CODEX_API_KEY too (sandbox.c).
 */
static const char *const anthropic_keys[] = {
	"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", NULL
};
static const char *const openai_keys[] = {
	"CODEX_API_KEY", "OPENAI_API_KEY", NULL
};

const char *const *
provider_keys(enum provider p)
{
	switch (p) {
	case PROV_ANTHROPIC:
		return anthropic_keys;
	case PROV_OPENAI:
		return openai_keys;
	default:
		return NULL;
	}
}

void
provider_keys_text(enum provider p, char *buf, size_t len)
{
	const char *const *k = provider_keys(p);

	if (k == NULL)
		snprintf(buf, len, "no key");
	else
		snprintf(buf, len, "%s or %s", k[0], k[1]);
}

char **
provider_argv(const struct job *j, size_t *argcp)
{
	char	**v;
	size_t	  n = 0, i;

	if (j->exec_argv != NULL)
		return provider_exec_argv(j, argcp);
	v = xcalloc(j->ncommand + 16, sizeof(char *));
	switch (j->provider) {
	case PROV_ANTHROPIC:
		v[n++] = xstrdup("claude");
		v[n++] = xstrdup("--dangerously-skip-permissions");
		if (j->model != NULL) {
			v[n++] = xstrdup("--model");
			v[n++] = xstrdup(provider_model_id(j->model));
		}
		if (!j->reset)
			v[n++] = xstrdup("-c");
		v[n++] = xstrdup("-p");
		/* A message that starts with '-' is text, never an option. */
		v[n++] = xstrdup("--");
		v[n++] = xstrdup(j->message);
		break;
	case PROV_OPENAI:
		v[n++] = xstrdup("codex");
		v[n++] = xstrdup("exec");
		if (!j->reset) {
			v[n++] = xstrdup("resume");
			v[n++] = xstrdup("--last");
		}
		if (j->model != NULL) {
			v[n++] = xstrdup("--model");
			v[n++] = xstrdup(j->model);
		}
		v[n++] = xstrdup("--skip-git-repo-check");
		v[n++] = xstrdup("--dangerously-bypass-approvals-and-sandbox");
		v[n++] = xstrdup("--json");
		v[n++] = xstrdup("--");
		v[n++] = xstrdup(j->message);
		break;
	case PROV_COMMAND:
		for (i = 0; i < j->ncommand; i++)
			v[n++] = xstrdup(strcmp(j->command[i], "{message}")
			    == 0 ? j->message : j->command[i]);
		break;
	}
	v[n] = NULL;
	if (argcp != NULL)
		*argcp = n;
	return v;
}

/*
 * A path inside the agent's working directory as the sandbox sees it:
 * under /workspace when mapped in a container or bwrap mode, else as is.
 * Returns a new string.
 */
char *
provider_map_path(const struct job *j, const char *path)
{
	size_t	 n = strlen(j->workdir);
	char	*m;

	if (j->mode == MODE_HOST || j->path_mapping != MAP_MAPPED ||
	    strncmp(path, j->workdir, n) != 0 ||
	    (path[n] != '\0' && path[n] != '/'))
		return xstrdup(path);
	xasprintf(&m, "/workspace%s", path + n);
	return m;
}

/* clawvisor exec: the caller's argv, arguments naming files mapped. */
char **
provider_exec_argv(const struct job *j, size_t *argcp)
{
	char	**v;
	size_t	  i;

	const char	 *p;

	v = xcalloc(j->nexec + 1, sizeof(char *));
	/* A host path to the CLI means nothing inside an image. */
	p = strrchr(j->exec_argv[0], '/');
	v[0] = xstrdup((j->mode == MODE_DOCKER || j->mode == MODE_APPLE) &&
	    p != NULL ? p + 1 : j->exec_argv[0]);
	for (i = 1; i < j->nexec; i++)
		v[i] = provider_map_path(j, j->exec_argv[i]);
	if (argcp != NULL)
		*argcp = j->nexec;
	return v;
}

void
argv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char *
trimmed(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return xstrndup(s, len);
}

/* The string at o.k1 (.k2), or NULL. */
static const char *
json_path_str(json_object *o, const char *k1, const char *k2)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k1, &v))
		return NULL;
	if (k2 != NULL && !json_object_object_get_ex(v, k2, &v))
		return NULL;
	return json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : NULL;
}

/*
 * codex exec --json prints one JSON event per line: the next event object
 * from *pos on, or NULL at the end. Lines that are not a JSON object are
 * skipped, as TinyClaw skips them.
 */
static json_object *
codex_next(const char **pos, const char *end)
{
	json_object	*ev;
	const char	*line, *nl;
	char		*s;
	size_t		 llen;

	while ((line = *pos) < end) {
		if ((nl = memchr(line, '\n', end - line)) == NULL)
			nl = end;
		*pos = nl < end ? nl + 1 : end;
		llen = nl - line;
		if (llen == 0 || llen > 16 * 1024 * 1024)
			continue;
		s = xstrndup(line, llen);
		ev = json_tokener_parse(s);
		free(s);
		if (json_object_is_type(ev, json_type_object))
			return ev;
		json_object_put(ev);
	}
	return NULL;
}

/*
 * The reply is the text of every item.completed event whose item is an
 * agent_message, in order, joined by a blank line.
 */
char *
codex_parse(const char *out, size_t len)
{
	json_object	*ev, *item;
	const char	*pos = out, *type, *text;
	char		*reply = NULL, *tmp, *clean;
	size_t		 rlen = 0, rcap = 0, sep, tlen;

	while ((ev = codex_next(&pos, out + len)) != NULL) {
		if ((type = json_path_str(ev, "type", NULL)) != NULL &&
		    strcmp(type, "item.completed") == 0 &&
		    json_object_object_get_ex(ev, "item", &item) &&
		    (type = json_path_str(item, "type", NULL)) != NULL &&
		    strcmp(type, "agent_message") == 0 &&
		    (text = json_path_str(item, "text", NULL)) != NULL) {
			/* In place: a copy of the reply for each message
			 * would be quadratic in the size of the output. */
			tlen = (size_t)json_object_get_string_len(
			    json_object_object_get(item, "text"));
			clean = NULL;
			if (memchr(text, '\0', tlen) != NULL) {
				/* "\u0000" would end the reply there. */
				text = clean = utf8_clean(text, tlen);
				tlen = strlen(clean);
			}
			sep = reply != NULL ? 2 : 0;
			if (rlen + sep + tlen + 1 > rcap) {
				while (rlen + sep + tlen + 1 > rcap)
					rcap = rcap == 0 ? 256 : rcap * 2;
				reply = xreallocarray(reply, rcap, 1);
			}
			memcpy(reply + rlen, "\n\n", sep);
			memcpy(reply + rlen + sep, text, tlen);
			reply[rlen + sep + tlen] = '\0';
			rlen += sep + tlen;
			free(clean);
		}
		json_object_put(ev);
	}
	if (reply == NULL)
		return NULL;
	tmp = trimmed(reply, rlen);
	free(reply);
	return tmp;
}

/*
 * codex exec --json reports a failed turn on stdout ({"type":"turn.failed",
 * "error":{"message":...}}), after {"type":"error","message":...} events
 * for what it retried; its stderr holds log lines (websocket warnings)
 * that say "ERROR" whatever the cause.
 */
char *
codex_failure(const char *out, size_t len)
{
	json_object	*ev;
	const char	*pos = out, *type, *m;
	char		*failed = NULL, *error = NULL;

	if (out == NULL)
		return NULL;
	while ((ev = codex_next(&pos, out + len)) != NULL) {
		if ((type = json_path_str(ev, "type", NULL)) == NULL)
			;
		else if (strcmp(type, "turn.failed") == 0 &&
		    (m = json_path_str(ev, "error", "message")) != NULL) {
			free(failed);
			failed = xstrdup(m);
		} else if (strcmp(type, "error") == 0 &&
		    (m = json_path_str(ev, "message", NULL)) != NULL) {
			free(error);
			error = xstrdup(m);
		}
		json_object_put(ev);
	}
	if (failed != NULL) {
		free(error);
		return failed;
	}
	return error;
}

char *
provider_reply(const struct job *j, const char *out, size_t len)
{
	char *r, *clean;

	if (j->provider == PROV_OPENAI) {
		r = codex_parse(out, len);
		if (r == NULL || *r == '\0') {
			free(r);
			r = xstrdup(CODEX_EMPTY_REPLY);
		}
		return r;
	}
	/* Made UTF-8 first: a NUL would end the C string there, silently. */
	clean = utf8_clean(out, len);
	r = trimmed(clean, strlen(clean));
	free(clean);
	return r;
}

static int
text_has(const char *t, size_t tlen, const char *needle)
{
	size_t n = strlen(needle), i;

	if (t == NULL || tlen < n)
		return 0;
	for (i = 0; i + n <= tlen; i++)
		if (strncasecmp(t + i, needle, n) == 0)
			return 1;
	return 0;
}

static int
stderr_has(const struct run_status *st, const char *needle)
{
	return text_has(st->err_text, st->err_len, needle);
}

static int
line_has_error(const char *b, const char *e)
{
	for (; e - b >= 5; b++)
		if (strncasecmp(b, "error", 5) == 0)
			return 1;
	return 0;
}

/*
 * The last line of t[0..len) with text, or with need_error the last that
 * says "error": 1 and [*pb, *pe), or 0.
 */
static int
last_line(const char *t, size_t len, int need_error, const char **pb,
    const char **pe)
{
	const char *b, *e;

	if (t == NULL)
		return 0;
	for (e = t + len; e > t; e = b - 1) {
		for (b = e; b > t && b[-1] != '\n'; b--)
			;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (e > b && (!need_error || line_has_error(b, e))) {
			*pb = b;
			*pe = e;
			return 1;
		}
		if (b == t)
			break;
	}
	return 0;
}

/*
 * The line for the error message. Tools print usage and hints after their
 * error, and the claude CLI prints its errors on stdout (stderr may hold
 * only a warning): the last line of stderr that says "error", else of
 * stdout's tail, else the last line of stderr, else of stdout's tail.
 */
/*
 * prefix and the line [b, e), its last 300 bytes, as valid UTF-8 (it goes
 * into dead letters, events and the log) and not from the middle of a
 * character.
 */
static void
quote_line(const char *b, const char *e, const char *prefix, char *buf,
    size_t len)
{
	char	*clean, *c;
	size_t	 n;

	if (e - b > 300) {
		b = e - 300;
		while (b < e && ((unsigned char)*b & 0xc0) == 0x80)
			b++;
	}
	/* Each invalid byte became three: cut again, between characters. */
	clean = utf8_clean(b, e - b);
	n = strlen(clean);
	c = clean + (n > 300 ? n - 300 : 0);
	while (((unsigned char)*c & 0xc0) == 0x80)
		c++;
	snprintf(buf, len, "%s%s", prefix, c);
	free(clean);
}

static void
error_tail(const struct run_status *st, char *buf, size_t len)
{
	const char	*b, *e;

	*buf = '\0';
	if (st->report != NULL && *st->report != '\0') {
		b = st->report;
		e = b + strlen(b);
	} else if (!last_line(st->err_text, st->err_len, 1, &b, &e) &&
	    !last_line(st->out_text, st->out_len, 1, &b, &e) &&
	    !last_line(st->err_text, st->err_len, 0, &b, &e) &&
	    !last_line(st->out_text, st->out_len, 0, &b, &e))
		return;
	quote_line(b, e, ": ", buf, len);
}

/*
 * What a run that timed out had said last: its last line on stderr (what
 * a stuck CLI printed: a retry notice, a hung tool), else on stdout, else
 * that it printed nothing.
 */
static void
timeout_tail(const struct run_status *st, char *buf, size_t len)
{
	const char	*b, *e;

	if (last_line(st->err_text, st->err_len, 0, &b, &e))
		quote_line(b, e, "; last stderr: ", buf, len);
	else if (last_line(st->out_text, st->out_len, 0, &b, &e))
		quote_line(b, e, "; last output: ", buf, len);
	else
		snprintf(buf, len, "; no output");
}

static const char *const config_errors[] = {
	"unknown flag", "unknown shorthand flag", "invalid reference format",
	"no such image", "image not known", "manifest unknown",
	"pull access denied", "invalid mount", "invalid argument",
	"repository does not exist", "not found: manifest",
	"invalid spec", "unrecognized option", "unknown option",
	NULL
};

/*
 * The image is not there and pulling it failed (podman's short-name and
 * registry errors; a registry's "connection refused" is not the engine's):
 * the configured image does not exist, whatever the registry said.
 */
static const char *const pull_errors[] = {
	"did not resolve to an alias", "pinging container registry",
	"initializing source docker://", "requested access to the resource "
	"is denied",
	NULL
};

static const char *const unreachable_errors[] = {
	"cannot connect to the docker daemon", "cannot connect to podman",
	"is the docker daemon running", "connection refused",
	"error during connect", "xpc connection", "apiserver is not running",
	NULL
};

/* A CLI refusing its command line: retrying cannot help. */
static const char *const usage_errors[] = {
	"unknown option", "unexpected argument", "unrecognized option",
	"unknown flag", "invalid option",
	NULL
};

/* The claude CLI will not skip its permission prompts as root. */
static const char *const root_errors[] = {
	"cannot be used with root/sudo privileges",
	NULL
};

static const char *const auth_errors[] = {
	"invalid api key", "invalid x-api-key", "authentication_error",
	"authentication failed", "unauthorized", "please run /login",
	"not logged in", "invalid_api_key", "incorrect api key",
	NULL
};

/* The provider's own report counts as much as its stderr. */
static int
stderr_any(const struct run_status *st, const char *const *list)
{
	for (; *list != NULL; list++)
		if (stderr_has(st, *list) || (st->report != NULL &&
		    text_has(st->report, strlen(st->report), *list)))
			return 1;
	return 0;
}

static const char *const denied_errors[] = {
	"permission denied", "eacces", "operation not permitted",
	NULL
};

/* A line of t[0..len) that says both a and one of list. */
static int
line_says(const char *t, size_t len, const char *a,
    const char *const *list)
{
	const char	*b, *e, *const *l;

	for (b = t; t != NULL && b < t + len; b = e + 1) {
		if ((e = memchr(b, '\n', t + len - b)) == NULL)
			e = t + len;
		if (!text_has(b, e - b, a))
			continue;
		for (l = list; *l != NULL; l++)
			if (text_has(b, e - b, *l))
				return 1;
	}
	return 0;
}

/*
 * The CLI could not write its working directory (or its HOME in it):
 * the error names the directory, or the worker found the container's user
 * cannot write it. Retrying runs into the same wall.
 */
static int
workspace_denied(const struct run_status *st)
{
	if (st->workspace_denied && (stderr_any(st, denied_errors) ||
	    line_says(st->out_text, st->out_len, "", denied_errors)))
		return 1;
	if (st->workspace == NULL || strcmp(st->workspace, "/") == 0)
		return 0;
	return line_says(st->err_text, st->err_len, st->workspace,
	    denied_errors) || line_says(st->out_text, st->out_len,
	    st->workspace, denied_errors);
}

/*
 * What the CLI itself says: stderr, or the last line of stdout's tail
 * (only that: a reply that quotes such words is not a refusal).
 */
static int
cli_says(const struct run_status *st, const char *const *list)
{
	const char *b, *e;

	if (stderr_any(st, list))
		return 1;
	if (!last_line(st->out_text, st->out_len, 0, &b, &e))
		return 0;
	for (; *list != NULL; list++)
		if (text_has(b, e - b, *list))
			return 1;
	return 0;
}

/*
 * The engine's own failure to set the container up, on the host: what
 * rootless Podman and Docker print when the host lacks something (a
 * resource limit the user may not raise, /dev/net/tun for slirp4netns,
 * a cgroup controller, subordinate ids). No retry helps and no image
 * rebuild either: the fix is on the host (TROUBLESHOOTING.md).
 */
static const char *const engine_errors[] = {
	"rlimit", "/dev/net/tun", "slirp4netns", "pasta failed", "netavark",
	"cgroup", "newuidmap", "newgidmap", "subuid", "subgid",
	"cannot find mappings", "insufficient uids", "XDG_RUNTIME_DIR",
	NULL
};

/*
 * The engine's error line (podman's "Error: ...", docker's "docker: Error
 * response from daemon: ...") when it names a host set-up problem.
 */
static int
engine_error(const struct run_status *st, char *buf, size_t len)
{
	const char	*t = st->err_text, *b, *e, *end, *const *p;

	/* 125: the engine failed; 126, 127: it could not start the
	 * command, its runtime's message saying why. Not the CLI's exits. */
	if (!st->container || t == NULL || st->exit_code < 125 ||
	    st->exit_code > 127)
		return 0;
	end = t + st->err_len;
	for (b = t; b < end; b = e + 1) {
		if ((e = memchr(b, '\n', end - b)) == NULL)
			e = end;
		if (!(e - b >= 7 && strncmp(b, "Error: ", 7) == 0) &&
		    !text_has(b, e - b, "Error response from daemon:"))
			continue;
		for (p = engine_errors; *p != NULL; p++)
			if (text_has(b, e - b, *p)) {
				quote_line(b, e, "", buf, len);
				return 1;
			}
	}
	return 0;
}

enum outcome
classify(const struct run_status *st, char *why, size_t len)
{
	char tail[320];

	error_tail(st, tail, sizeof(tail));
	if (st->exec_errno != 0) {
		snprintf(why, len, "cannot execute %s: %s", st->program,
		    strerror(st->exec_errno));
		switch (st->exec_errno) {
		case ENOMEM:
		case EAGAIN:
		case ETXTBSY:
		case EMFILE:
		case ENFILE:
			return OUT_TRANSIENT;
		default:
			return OUT_TERMINAL;
		}
	}
	if (st->timed_out) {
		timeout_tail(st, tail, sizeof(tail));
		if (st->timeout_seconds > 0)
			snprintf(why, len, "%s timed out after %lld s%s",
			    st->program, (long long)st->timeout_seconds, tail);
		else
			snprintf(why, len, "%s timed out%s", st->program, tail);
		return OUT_TRANSIENT;
	}
	if (st->signal != 0) {
		snprintf(why, len, "%s killed by signal %d (%s)%s",
		    st->program, st->signal, strsignal(st->signal), tail);
		return OUT_TRANSIENT;
	}
	if (st->exited && st->exit_code == 0) {
		*why = '\0';
		return OUT_OK;
	}
	if (engine_error(st, tail, sizeof(tail))) {
		snprintf(why, len, "container engine error (%s exit %d, not the "
		    "image's): %s", st->program, st->exit_code, tail);
		return OUT_TERMINAL;
	}
	if (st->container && st->exit_code == 125 &&
	    stderr_any(st, pull_errors)) {
		snprintf(why, len, "%s refused to start the container (exit "
		    "125): image not found and cannot be pulled%s",
		    st->program, tail);
		return OUT_TERMINAL;
	}
	if (st->container && stderr_any(st, unreachable_errors)) {
		snprintf(why, len, "container engine unreachable (%s exit %d)%s",
		    st->program, st->exit_code, tail);
		return OUT_TRANSIENT;
	}
	if (st->container && st->exit_code == 125) {
		snprintf(why, len, "%s refused to start the container (exit "
		    "125)%s", st->program, tail);
		return stderr_any(st, config_errors) ? OUT_TERMINAL :
		    OUT_TRANSIENT;
	}
	/* Apple's container: a usage error ("Error: Unknown option") is 64. */
	if (st->container && st->exit_code == 64 &&
	    stderr_has(st, "Error: ")) {
		snprintf(why, len, "%s refused its command line (exit 64)%s",
		    st->program, tail);
		return OUT_TERMINAL;
	}
	if (st->container && st->exit_code == 137) {
		snprintf(why, len, "container killed (exit 137, out of memory "
		    "or killed)%s", tail);
		return OUT_TRANSIENT;
	}
	if (st->exit_code == 126 || st->exit_code == 127) {
		snprintf(why, len, "%s exit %d (%s)%s", st->program,
		    st->exit_code, st->exit_code == 126 ? "command not "
		    "executable" : "command not found", tail);
		return OUT_TERMINAL;
	}
	if (cli_says(st, usage_errors)) {
		snprintf(why, len, "%s exit %d: refused its command line%s",
		    st->program, st->exit_code, tail);
		return OUT_TERMINAL;
	}
	if (cli_says(st, root_errors)) {
		snprintf(why, len, "%s exit %d: the CLI refuses to run as root "
		    "(set sandbox.docker.user or sandbox.apple.user to an "
		    "unprivileged UID:GID)%s", st->program, st->exit_code, tail);
		return OUT_TERMINAL;
	}
	if (workspace_denied(st)) {
		snprintf(why, len, "%s exit %d: cannot write the working "
		    "directory %s%s%s", st->program, st->exit_code,
		    st->workspace != NULL ? st->workspace : "",
		    st->workspace_denied ? " (the user the CLI runs as cannot "
		    "write there: give the directory to that user, see "
		    "TROUBLESHOOTING.md)" : "", tail);
		return OUT_TERMINAL;
	}
	if (cli_says(st, auth_errors)) {
		snprintf(why, len, "%s exit %d: authentication failed%s",
		    st->program, st->exit_code, tail);
		return OUT_TERMINAL;
	}
	snprintf(why, len, "%s exit %d%s", st->program, st->exit_code, tail);
	return OUT_TRANSIENT;
}
