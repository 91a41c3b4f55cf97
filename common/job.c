/*
 * Job and result (de)serialisation. Decoding goes through the checked
 * getters of ipc.c: a missing or mistyped field is a protocol error. The
 * two texts of any size and any bytes, the job's message and the result's
 * reply, cross as base64: a JSON string of control characters takes six
 * bytes for one, so only a form of known size lets the frame cap agree
 * with max_message_bytes and max_output_bytes whatever the text holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "job.h"
#include "redact.h"
#include "util.h"

/* What a result holds besides its reply: the error (RESULT_ERROR_MAX
 * bytes, six times that escaped), the numbers, the keys. */
#define RESULT_OVERHEAD	(64 * 1024)

_Static_assert(B64_LEN(CONFIG_MAX_OUTPUT) + RESULT_OVERHEAD <= IPC_MAX_PAYLOAD,
    "a reply of max_output_bytes must fit in a frame");
_Static_assert(B64_LEN(MAX_MESSAGE_FILE) + 6 * 4 * 1024 * 1024 <=
    IPC_MAX_PAYLOAD, "a job's message (max_message_bytes) and its settings "
    "(4 MiB at most) must fit in a frame");

static const char *const outcome_names[] = { "ok", "transient", "terminal" };

const char *
outcome_name(enum outcome o)
{
	return outcome_names[o];
}

int
outcome_parse(const char *s, enum outcome *o)
{
	int i;

	for (i = 0; i < 3; i++)
		if (strcmp(s, outcome_names[i]) == 0) {
			*o = i;
			return 0;
		}
	return -1;
}

static json_object *
strv_json(char **v, size_t n)
{
	json_object	*a = json_object_new_array();
	size_t		 i;

	for (i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static int
strv_get(json_object *o, const char *key, char ***out, size_t *nout,
    char *err, size_t errlen)
{
	json_object	*a, *e;
	size_t		 i, n;

	*out = NULL;
	*nout = 0;
	if (!json_object_object_get_ex(o, key, &a) ||
	    !json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "field \"%s\": expected an array", key);
		return -1;
	}
	n = json_object_array_length(a);
	if (n > 4096) {
		snprintf(err, errlen, "field \"%s\": too many elements", key);
		return -1;
	}
	*out = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string)) {
			snprintf(err, errlen, "field \"%s\"[%zu]: expected a "
			    "string", key, i);
			return -1;
		}
		(*out)[i] = xstrdup(json_object_get_string(e));
		*nout = i + 1;
	}
	return 0;
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static void
add_b64(json_object *o, const char *key, const char *s, size_t len)
{
	char *b = b64_encode(s, len);

	json_object_object_add(o, key, json_object_new_string_len(b,
	    (int)B64_LEN(len)));
	free(b);
}

/*
 * A base64 field of at most max bytes once decoded. The text is a C
 * string: a NUL in it is refused rather than cut at.
 */
static int
get_b64(json_object *o, const char *key, size_t max, char **out, char *err,
    size_t errlen)
{
	json_object	*v;
	size_t		 n;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "field \"%s\": expected a string", key);
		return -1;
	}
	if ((size_t)json_object_get_string_len(v) > B64_LEN(max)) {
		snprintf(err, errlen, "field \"%s\": over %zu bytes", key,
		    max);
		return -1;
	}
	if ((*out = b64_decode(json_object_get_string(v),
	    json_object_get_string_len(v), &n)) == NULL) {
		snprintf(err, errlen, "field \"%s\": not base64", key);
		return -1;
	}
	if (strlen(*out) != n) {
		snprintf(err, errlen, "field \"%s\": holds a NUL byte", key);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

#define ADD_STR(o, k, v)	json_object_object_add(o, k, \
				    json_object_new_string(v))
#define ADD_INT(o, k, v)	json_object_object_add(o, k, \
				    json_object_new_int64(v))

json_object *
job_to_json(const struct job *j)
{
	json_object *o = json_object_new_object(), *rt;

	ADD_STR(o, "agent", j->agent_id);
	ADD_INT(o, "provider", j->provider);
	ADD_STR(o, "model", j->model != NULL ? j->model : "");
	add_b64(o, "message64", j->message, strlen(j->message));
	ADD_INT(o, "reset", j->reset);
	json_object_object_add(o, "command", strv_json(j->command,
	    j->ncommand));
	ADD_STR(o, "workdir", j->workdir);
	ADD_STR(o, "home", j->home);
	ADD_INT(o, "mode", j->mode);
	ADD_INT(o, "timeout", j->timeout_seconds);
	ADD_INT(o, "grace", j->kill_grace_seconds);
	ADD_INT(o, "max_output", j->max_output_bytes);
	json_object_object_add(o, "allow", strv_json(j->env_allowlist,
	    j->nallow));
	json_object_object_add(o, "pass", strv_json(j->runtime_pass_env,
	    j->npass));
	ADD_INT(o, "mapping", j->path_mapping);
	rt = json_object_new_object();
	ADD_STR(rt, "runtime", j->rt.runtime_command);
	ADD_STR(rt, "image", j->rt.image);
	ADD_INT(rt, "network", j->rt.network);
	ADD_STR(rt, "memory", j->rt.memory);
	ADD_STR(rt, "cpus", j->rt.cpus);
	ADD_INT(rt, "pids", j->rt.pids_limit);
	ADD_STR(rt, "user", j->rt.user);
	json_object_object_add(rt, "ro", strv_json(j->rt.ro_paths,
	    j->rt.nro_paths));
	ADD_INT(rt, "best_effort", j->rt.limits_best_effort);
	json_object_object_add(o, "rt", rt);
	ADD_STR(o, "templates", j->templates != NULL ? j->templates : "");
	ADD_STR(o, "teammates", j->teammates != NULL ? j->teammates : "");
	if (j->exec_argv != NULL) {
		json_object_object_add(o, "exec", strv_json(j->exec_argv,
		    j->nexec));
		ADD_STR(o, "exec_cwd", j->exec_cwd);
		ADD_INT(o, "exec_stdin", j->exec_stdin);
	}
	ADD_INT(o, "egress", j->egress);
	ADD_STR(o, "egress_token", j->egress_token != NULL ? j->egress_token :
	    "");
	ADD_STR(o, "egress_socket", j->egress_socket != NULL ?
	    j->egress_socket : "");
	ADD_STR(o, "egress_bridge", j->egress_bridge != NULL ?
	    j->egress_bridge : "");
	return o;
}

static int
get_dup(json_object *o, const char *key, char **out, char *err, size_t len)
{
	const char *s;

	if (ipc_get_str(o, key, &s, err, len) == -1)
		return -1;
	*out = xstrdup(s);
	return 0;
}

int
job_from_json(json_object *o, struct job *j, char *err, size_t len)
{
	json_object	*rt;
	int64_t		 n;

	memset(j, 0, sizeof(*j));
	if (get_dup(o, "agent", &j->agent_id, err, len) == -1 ||
	    ipc_get_int(o, "provider", 0, PROV_COMMAND, &n, err, len) == -1)
		return -1;
	j->provider = n;
	if (get_dup(o, "model", &j->model, err, len) == -1 ||
	    get_b64(o, "message64", MAX_MESSAGE_FILE, &j->message, err,
	    len) == -1 ||
	    ipc_get_int(o, "reset", 0, 1, &n, err, len) == -1)
		return -1;
	j->reset = n;
	if (*j->model == '\0') {
		free(j->model);
		j->model = NULL;
	}
	if (strv_get(o, "command", &j->command, &j->ncommand, err, len)
	    == -1 ||
	    get_dup(o, "workdir", &j->workdir, err, len) == -1 ||
	    get_dup(o, "home", &j->home, err, len) == -1 ||
	    ipc_get_int(o, "mode", 0, MODE_BWRAP, &n, err, len) == -1)
		return -1;
	j->mode = n;
	if (ipc_get_int(o, "timeout", 0, INT32_MAX, &j->timeout_seconds, err,
	    len) == -1 ||
	    ipc_get_int(o, "grace", 0, INT32_MAX, &j->kill_grace_seconds, err,
	    len) == -1 ||
	    ipc_get_int(o, "max_output", 0, CONFIG_MAX_OUTPUT,
	    &j->max_output_bytes, err, len) == -1 ||
	    strv_get(o, "allow", &j->env_allowlist, &j->nallow, err, len)
	    == -1 ||
	    strv_get(o, "pass", &j->runtime_pass_env, &j->npass, err, len)
	    == -1 ||
	    ipc_get_int(o, "mapping", 0, MAP_SAME_PATH, &n, err, len) == -1)
		return -1;
	j->path_mapping = n;
	if (!json_object_object_get_ex(o, "rt", &rt) ||
	    !json_object_is_type(rt, json_type_object)) {
		snprintf(err, len, "field \"rt\": expected an object");
		return -1;
	}
	if (get_dup(rt, "runtime", &j->rt.runtime_command, err, len) == -1 ||
	    get_dup(rt, "image", &j->rt.image, err, len) == -1 ||
	    ipc_get_int(rt, "network", 0, NET_HOST, &n, err, len) == -1)
		return -1;
	j->rt.network = n;
	if (get_dup(rt, "memory", &j->rt.memory, err, len) == -1 ||
	    get_dup(rt, "cpus", &j->rt.cpus, err, len) == -1 ||
	    ipc_get_int(rt, "pids", 0, INT32_MAX, &j->rt.pids_limit, err, len)
	    == -1 ||
	    get_dup(rt, "user", &j->rt.user, err, len) == -1 ||
	    strv_get(rt, "ro", &j->rt.ro_paths, &j->rt.nro_paths, err, len)
	    == -1 ||
	    ipc_get_int(rt, "best_effort", 0, 1, &n, err, len) == -1)
		return -1;
	j->rt.limits_best_effort = n;
	if (get_dup(o, "templates", &j->templates, err, len) == -1 ||
	    get_dup(o, "teammates", &j->teammates, err, len) == -1)
		return -1;
	if (*j->templates == '\0') {
		free(j->templates);
		j->templates = NULL;
	}
	if (ipc_get_int(o, "egress", 0, 1, &n, err, len) == -1 ||
	    get_dup(o, "egress_token", &j->egress_token, err, len) == -1 ||
	    get_dup(o, "egress_socket", &j->egress_socket, err, len) == -1 ||
	    get_dup(o, "egress_bridge", &j->egress_bridge, err, len) == -1)
		return -1;
	j->egress = n;
	if (*j->egress_token == '\0') {
		free(j->egress_token);
		j->egress_token = NULL;
	}
	if (*j->egress_socket == '\0') {
		free(j->egress_socket);
		j->egress_socket = NULL;
	}
	if (*j->egress_bridge == '\0') {
		free(j->egress_bridge);
		j->egress_bridge = NULL;
	}
	if (!json_object_object_get_ex(o, "exec", NULL))
		return 0;
	if (strv_get(o, "exec", &j->exec_argv, &j->nexec, err, len) == -1 ||
	    get_dup(o, "exec_cwd", &j->exec_cwd, err, len) == -1 ||
	    ipc_get_int(o, "exec_stdin", 0, 1, &n, err, len) == -1)
		return -1;
	j->exec_stdin = n;
	if (j->nexec == 0) {
		snprintf(err, len, "field \"exec\": empty");
		return -1;
	}
	return 0;
}

void
job_free(struct job *j)
{
	free(j->agent_id);
	free(j->model);
	free(j->message);
	strv_free(j->command, j->ncommand);
	free(j->workdir);
	free(j->home);
	strv_free(j->env_allowlist, j->nallow);
	strv_free(j->runtime_pass_env, j->npass);
	free(j->rt.runtime_command);
	free(j->rt.image);
	free(j->rt.memory);
	free(j->rt.cpus);
	free(j->rt.user);
	free(j->templates);
	free(j->teammates);
	if (j->egress_token != NULL)
		explicit_bzero(j->egress_token, strlen(j->egress_token));
	free(j->egress_token);
	free(j->egress_socket);
	free(j->egress_bridge);
	strv_free(j->rt.ro_paths, j->rt.nro_paths);
	strv_free(j->exec_argv, j->nexec);
	free(j->exec_cwd);
	memset(j, 0, sizeof(*j));
}

json_object *
result_to_json(const struct job_result *r)
{
	json_object *o = json_object_new_object();

	ADD_STR(o, "outcome", outcome_name(r->outcome));
	add_b64(o, "reply64", r->reply != NULL ? r->reply : "",
	    r->reply != NULL ? strlen(r->reply) : 0);
	ADD_STR(o, "error", r->error != NULL ? r->error : "");
	ADD_INT(o, "exit", r->exit_code);
	ADD_INT(o, "signal", r->signal);
	ADD_INT(o, "timed_out", r->timed_out);
	ADD_INT(o, "truncated", r->truncated);
	if (r->child)
		ADD_INT(o, "child", r->child);
	ADD_INT(o, "duration_ms", r->duration_ms);
	json_object_object_add(o, "files", strv_json(r->files, r->nfiles));
	return o;
}

int
result_from_json(json_object *o, struct job_result *r, char *err, size_t len)
{
	const char	*s;
	int64_t		 n;

	memset(r, 0, sizeof(*r));
	if (ipc_get_str(o, "outcome", &s, err, len) == -1)
		return -1;
	if (outcome_parse(s, &r->outcome) == -1) {
		snprintf(err, len, "field \"outcome\": unknown value");
		return -1;
	}
	if (get_b64(o, "reply64", CONFIG_MAX_OUTPUT, &r->reply, err,
	    len) == -1 ||
	    get_dup(o, "error", &r->error, err, len) == -1 ||
	    ipc_get_int(o, "exit", -1, 255, &n, err, len) == -1)
		return -1;
	r->exit_code = n;
	if (ipc_get_int(o, "signal", 0, 128, &n, err, len) == -1)
		return -1;
	r->signal = n;
	if (ipc_get_int(o, "timed_out", 0, 1, &n, err, len) == -1)
		return -1;
	r->timed_out = n;
	if (ipc_get_int(o, "truncated", 0, RESULT_CUT_STDOUT |
	    RESULT_CUT_STDERR, &n, err, len) == -1)
		return -1;
	r->truncated = n;
	/* Only an exec's result has it. */
	if (json_object_object_get_ex(o, "child", NULL)) {
		if (ipc_get_int(o, "child", 0, 1, &n, err, len) == -1)
			return -1;
		r->child = n;
	}
	if (ipc_get_int(o, "duration_ms", 0, INT64_MAX, &r->duration_ms, err,
	    len) == -1 ||
	    strv_get(o, "files", &r->files, &r->nfiles, err, len) == -1)
		return -1;
	return 0;
}

/*
 * What a worker may send, whatever the program printed: a reply of at most
 * max bytes (the UTF-8 cleaning and the redaction can make more of
 * max_output_bytes; the rest is dropped and the result marked truncated,
 * as output past the cap is), and an error of at most RESULT_ERROR_MAX.
 */
void
result_bound(struct job_result *r, size_t max)
{
	size_t n, cut, ml, k;

	if (max > CONFIG_MAX_OUTPUT)
		max = CONFIG_MAX_OUTPUT;
	if (r->reply != NULL && (n = strlen(r->reply)) > max) {
		cut = utf8_prefix(r->reply, n, max);
		/*
		 * Not through a [REDACTED] marker (a redacted piece at the end
		 * of captured output is one): keep it whole, a few bytes over
		 * max, which RESULT_OVERHEAD covers.
		 */
		ml = strlen(REDACTED);
		for (k = 1; k < ml && k <= cut; k++)
			if (cut - k + ml <= n &&
			    memcmp(r->reply + cut - k, REDACTED, ml) == 0) {
				cut = cut - k + ml;
				break;
			}
		r->reply[cut] = '\0';
		r->truncated = 1;
	}
	if (r->error != NULL && (n = strlen(r->error)) > RESULT_ERROR_MAX)
		r->error[utf8_prefix(r->error, n, RESULT_ERROR_MAX)] = '\0';
}

void
result_free(struct job_result *r)
{
	free(r->reply);
	free(r->error);
	strv_free(r->files, r->nfiles);
	memset(r, 0, sizeof(*r));
}
