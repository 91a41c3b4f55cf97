/*
 * Job and result messages (common/job.c): a round trip through the wire
 * format keeps every field, and each missing, mistyped or out-of-range field
 * is refused with its name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipc.h"
#include "job.h"
#include "util.h"

static char *cmd[] = { "agent", "--say", "{message}" };
static char *allow[] = { "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "EXTRA" };
static char *files[] = { "/w/a.png", "/w/b c.pdf" };
static char *ro[] = { "/srv/a", "/srv/b" };

static void
sample_job(struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->id = 77;
	j->agent_id = "coder";
	j->provider = PROV_COMMAND;
	j->model = "opus";
	j->message = "héllo \"world\"\n/\\ {message}";
	j->reset = 1;
	j->command = cmd;
	j->ncommand = 3;
	j->workdir = "/home/u/tinyclaw-workspace/coder";
	j->home = "/home/u/.tinyclaw";
	j->mode = MODE_APPLE;
	j->timeout_seconds = 0;
	j->kill_grace_seconds = 3600;
	j->max_output_bytes = CONFIG_MAX_OUTPUT;
	j->env_allowlist = allow;
	j->nallow = 3;
	j->path_mapping = MAP_SAME_PATH;
	j->rt.runtime_command = "container";
	j->rt.image = "tinyclaw/agent-runner:latest";
	j->rt.network = NET_NONE;
	j->rt.memory = "512m";
	j->rt.cpus = "2";
	j->rt.pids_limit = INT32_MAX;
	j->rt.user = "501:20";
	j->templates = "/home/u/.tinyclaw";
	j->teammates = "\n### You\n\n- `@coder` \xe2\x80\x94 **Coder** (opus)\n";
	j->rt.ro_paths = ro;
	j->rt.nro_paths = 2;
	j->rt.limits_best_effort = 1;
	j->egress = 1;
	j->egress_token = "cvt_0123456789abcdef0123456789abcdef";
	j->egress_socket = "/h/egress/proxy.sock";
}

/* Through text and back, as the frame carries it. */
static json_object *
over_the_wire(json_object *o)
{
	json_object	*back;
	const char	*s;
	char		 err[128];

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	assert_int_equal(ipc_payload_parse(s, strlen(s), &back, err,
	    sizeof(err)), 0);
	json_object_put(o);
	return back;
}

static void
test_job_roundtrip(void **state)
{
	struct job	 in, out;
	json_object	*o;
	char		 err[128];
	size_t		 i;

	(void)state;
	sample_job(&in);
	o = over_the_wire(job_to_json(&in));
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);

	assert_int_equal(out.id, 0);	/* the id travels in the header */
	assert_string_equal(out.agent_id, in.agent_id);
	assert_int_equal(out.provider, in.provider);
	assert_string_equal(out.model, in.model);
	assert_string_equal(out.message, in.message);
	assert_int_equal(out.reset, 1);
	assert_int_equal(out.ncommand, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(out.command[i], cmd[i]);
	assert_null(out.command[3]);
	assert_string_equal(out.workdir, in.workdir);
	assert_string_equal(out.home, in.home);
	assert_int_equal(out.mode, MODE_APPLE);
	assert_int_equal(out.timeout_seconds, 0);
	assert_int_equal(out.kill_grace_seconds, 3600);
	assert_int_equal(out.max_output_bytes, CONFIG_MAX_OUTPUT);
	assert_int_equal(out.nallow, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(out.env_allowlist[i], allow[i]);
	assert_int_equal(out.path_mapping, MAP_SAME_PATH);
	assert_string_equal(out.rt.runtime_command, "container");
	assert_string_equal(out.rt.image, "tinyclaw/agent-runner:latest");
	assert_int_equal(out.rt.network, NET_NONE);
	assert_string_equal(out.rt.memory, "512m");
	assert_string_equal(out.rt.cpus, "2");
	assert_int_equal(out.rt.pids_limit, INT32_MAX);
	assert_string_equal(out.rt.user, "501:20");
	assert_string_equal(out.templates, in.templates);
	assert_string_equal(out.teammates, in.teammates);
	assert_int_equal(out.rt.nro_paths, 2);
	assert_string_equal(out.rt.ro_paths[1], "/srv/b");
	assert_int_equal(out.rt.limits_best_effort, 1);
	assert_int_equal(out.egress, 1);
	assert_string_equal(out.egress_token, in.egress_token);
	assert_string_equal(out.egress_socket, in.egress_socket);
	job_free(&out);
	assert_null(out.agent_id);
	assert_null(out.egress_token);
}

/* clawvisor exec's fields: present only on an exec's job, checked. */
static void
test_job_exec_fields(void **state)
{
	static char	*xargv[] = { "claude", "-p", "--", "-x" };
	struct job	 in, out;
	json_object	*o;
	char		 err[128];

	(void)state;
	sample_job(&in);
	o = over_the_wire(job_to_json(&in));
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), 0);
	assert_null(out.exec_argv);
	assert_null(out.exec_cwd);
	json_object_put(o);
	job_free(&out);
	in.exec_argv = xargv;
	in.nexec = 4;
	in.exec_cwd = "/home/u/tinyclaw-workspace/coder/src";
	in.exec_stdin = 1;
	o = over_the_wire(job_to_json(&in));
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), 0);
	assert_int_equal(out.nexec, 4);
	assert_string_equal(out.exec_argv[3], "-x");
	assert_null(out.exec_argv[4]);
	assert_string_equal(out.exec_cwd, in.exec_cwd);
	assert_int_equal(out.exec_stdin, 1);
	job_free(&out);
	/* An empty argv, a missing cwd: protocol errors. */
	json_object_object_add(o, "exec", json_object_new_array());
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), -1);
	job_free(&out);
	json_object_object_del(o, "exec_cwd");
	json_object_object_add(o, "exec", json_object_new_array());
	json_object_array_add(json_object_object_get(o, "exec"),
	    json_object_new_string("claude"));
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exec_cwd"));
	job_free(&out);
	json_object_put(o);
}

static void
test_job_roundtrip_minimal(void **state)
{
	struct job	 in, out;
	json_object	*o;
	char		 err[128];

	(void)state;
	sample_job(&in);
	in.provider = PROV_ANTHROPIC;
	in.model = NULL;		/* the CLI's default */
	in.reset = 0;
	in.command = NULL;
	in.ncommand = 0;
	in.env_allowlist = NULL;
	in.nallow = 0;
	in.mode = MODE_HOST;
	in.path_mapping = MAP_MAPPED;
	in.rt.network = NET_DEFAULT;
	in.message = "";
	in.templates = NULL;		/* no set-up */
	in.teammates = NULL;
	in.egress = 0;			/* the proxy off */
	in.egress_token = NULL;
	in.egress_socket = NULL;
	o = over_the_wire(job_to_json(&in));
	assert_int_equal(job_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);
	assert_int_equal(out.provider, PROV_ANTHROPIC);
	assert_null(out.model);
	assert_null(out.templates);
	assert_string_equal(out.teammates, "");
	assert_int_equal(out.egress, 0);
	assert_null(out.egress_token);
	assert_null(out.egress_socket);
	assert_int_equal(out.reset, 0);
	assert_int_equal(out.ncommand, 0);
	assert_non_null(out.command);	/* empty, NULL-terminated */
	assert_null(out.command[0]);
	assert_int_equal(out.nallow, 0);
	assert_int_equal(out.mode, MODE_HOST);
	assert_int_equal(out.path_mapping, MAP_MAPPED);
	assert_int_equal(out.rt.network, NET_DEFAULT);
	assert_string_equal(out.message, "");
	job_free(&out);
}

/* Replace (or, with value NULL, remove) one field; "rt.x" is in "rt". */
static json_object *
with(json_object *o, const char *key, const char *value)
{
	json_object	*target, *v;
	char		 k[64], *dot;

	snprintf(k, sizeof(k), "%s", key);
	target = o;
	if ((dot = strchr(k, '.')) != NULL) {
		*dot = '\0';
		assert_true(json_object_object_get_ex(o, k, &target));
		memmove(k, dot + 1, strlen(dot + 1) + 1);
	}
	if (value == NULL)
		json_object_object_del(target, k);
	else if (strcmp(value, "null") == 0)
		json_object_object_add(target, k, NULL);
	else {
		v = json_tokener_parse(value);
		assert_non_null(v);
		json_object_object_add(target, k, v);
	}
	return o;
}

/* Decoders that own what they decode, failed or not. */
typedef int (*decoder)(json_object *, char *, size_t);

static int
decode_job(json_object *o, char *err, size_t len)
{
	struct job	j;
	int		r;

	r = job_from_json(o, &j, err, len);
	/* What was decoded before an error is the caller's to free. */
	job_free(&j);
	return r;
}

static int
decode_result(json_object *o, char *err, size_t len)
{
	struct job_result	r;
	int			rc;

	rc = result_from_json(o, &r, err, len);
	result_free(&r);
	return rc;
}

/* o (consumed), one field changed as bad[1] says, fails with bad[2]. */
static void
assert_bad_field(decoder decode, json_object *o, const char *const *bad)
{
	const char	*what = bad[1] != NULL ? bad[1] : "(removed)";
	char		 err[128];

	strlcpy(err, "unset", sizeof(err));
	if (decode(with(o, bad[0], bad[1]), err, sizeof(err)) != -1)
		fail_msg("%s=%s accepted", bad[0], what);
	if (strcmp(err, bad[2]) != 0)
		fail_msg("%s=%s: \"%s\", wanted \"%s\"", bad[0], what, err,
		    bad[2]);
	json_object_put(o);
}

static void
test_job_bad_fields(void **state)
{
	static const char *const bad[][3] = {
		{ "agent", NULL, "field \"agent\": expected a string" },
		{ "agent", "5", "field \"agent\": expected a string" },
		{ "provider", NULL, "field \"provider\": expected an integer" },
		{ "provider", "\"command\"",
		  "field \"provider\": expected an integer" },
		{ "provider", "3", "field \"provider\": 3 out of range" },
		{ "provider", "-1", "field \"provider\": -1 out of range" },
		{ "model", NULL, "field \"model\": expected a string" },
		{ "message64", "null",
		  "field \"message64\": expected a string" },
		{ "message64", NULL,
		  "field \"message64\": expected a string" },
		{ "message64", "\"aGk\"", "field \"message64\": not base64" },
		{ "message64", "\"aG=k\"", "field \"message64\": not base64" },
		{ "message64", "\"aGl=\"", "field \"message64\": not base64" },
		{ "message64", "\"a\\nGk=\"",
		  "field \"message64\": not base64" },
		{ "message64", "\"YQBi\"",
		  "field \"message64\": holds a NUL byte" },
		{ "reset", "2", "field \"reset\": 2 out of range" },
		{ "reset", "true", "field \"reset\": expected an integer" },
		{ "command", NULL, "field \"command\": expected an array" },
		{ "command", "{}", "field \"command\": expected an array" },
		{ "command", "[\"a\",1]",
		  "field \"command\"[1]: expected a string" },
		{ "command", "[null]",
		  "field \"command\"[0]: expected a string" },
		{ "workdir", "[]", "field \"workdir\": expected a string" },
		{ "home", NULL, "field \"home\": expected a string" },
		{ "mode", "4", "field \"mode\": 4 out of range" },
		{ "mode", "1.0", "field \"mode\": expected an integer" },
		{ "timeout", "-1", "field \"timeout\": -1 out of range" },
		{ "timeout", "2147483648",
		  "field \"timeout\": 2147483648 out of range" },
		{ "grace", NULL, "field \"grace\": expected an integer" },
		{ "max_output", "67108865",
		  "field \"max_output\": 67108865 out of range" },
		{ "allow", "\"ANTHROPIC_API_KEY\"",
		  "field \"allow\": expected an array" },
		{ "allow", "[\"A\",[]]", "field \"allow\"[1]: expected a "
		  "string" },
		{ "mapping", "2", "field \"mapping\": 2 out of range" },
		{ "rt", NULL, "field \"rt\": expected an object" },
		{ "rt", "[]", "field \"rt\": expected an object" },
		{ "rt.runtime", NULL, "field \"runtime\": expected a string" },
		{ "rt.image", "0", "field \"image\": expected a string" },
		{ "rt.network", "3", "field \"network\": 3 out of range" },
		{ "rt.memory", NULL, "field \"memory\": expected a string" },
		{ "rt.cpus", "1", "field \"cpus\": expected a string" },
		{ "rt.pids", "-5", "field \"pids\": -5 out of range" },
		{ "rt.user", NULL, "field \"user\": expected a string" },
		{ "rt.ro", NULL, "field \"ro\": expected an array" },
		{ "rt.ro", "[1]", "field \"ro\"[0]: expected a string" },
		{ "rt.best_effort", "2", "field \"best_effort\": 2 out of range" },
	};
	struct job	j;
	size_t		i;

	(void)state;
	sample_job(&j);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_bad_field(decode_job, job_to_json(&j), bad[i]);
}

static void
test_job_too_many_elements(void **state)
{
	struct job	 j;
	json_object	*o, *a;
	char		 err[128];
	int		 i;

	(void)state;
	sample_job(&j);
	o = with(job_to_json(&j), "command", "[]");
	json_object_object_get_ex(o, "command", &a);
	for (i = 0; i < 4097; i++)
		json_object_array_add(a, json_object_new_string("x"));
	assert_int_equal(job_from_json(o, &j, err, sizeof(err)), -1);
	assert_string_equal(err, "field \"command\": too many elements");
	job_free(&j);
	json_object_put(o);
}

static void
sample_result(struct job_result *r)
{
	memset(r, 0, sizeof(*r));
	r->outcome = OUT_TERMINAL;
	r->reply = "partial reply";
	r->error = "claude exit 1: authentication failed";
	r->exit_code = 255;
	r->signal = 9;
	r->timed_out = 1;
	r->truncated = 1;
	r->duration_ms = INT64_MAX;
	r->files = files;
	r->nfiles = 2;
}

static void
test_result_roundtrip(void **state)
{
	struct job_result	 in, out;
	json_object		*o;
	char			 err[128];

	(void)state;
	sample_result(&in);
	o = over_the_wire(result_to_json(&in));
	assert_int_equal(result_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);
	assert_int_equal(out.outcome, OUT_TERMINAL);
	assert_string_equal(out.reply, "partial reply");
	assert_string_equal(out.error, in.error);
	assert_int_equal(out.exit_code, 255);
	assert_int_equal(out.signal, 9);
	assert_int_equal(out.timed_out, 1);
	assert_int_equal(out.truncated, 1);
	assert_true(out.duration_ms == INT64_MAX);
	assert_int_equal(out.nfiles, 2);
	assert_string_equal(out.files[0], "/w/a.png");
	assert_string_equal(out.files[1], "/w/b c.pdf");
	result_free(&out);

	/* NULL texts and no exit code, as a worker_fail() sends them. */
	memset(&in, 0, sizeof(in));
	in.outcome = OUT_OK;
	in.exit_code = -1;
	o = over_the_wire(result_to_json(&in));
	assert_int_equal(result_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);
	assert_int_equal(out.outcome, OUT_OK);
	assert_string_equal(out.reply, "");
	assert_string_equal(out.error, "");
	assert_int_equal(out.exit_code, -1);
	assert_int_equal(out.signal, 0);
	assert_int_equal(out.nfiles, 0);
	result_free(&out);

	in.outcome = OUT_TRANSIENT;
	o = over_the_wire(result_to_json(&in));
	assert_int_equal(result_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);
	assert_int_equal(out.outcome, OUT_TRANSIENT);
	assert_int_equal(out.child, 0);
	result_free(&out);

	/* An exec's: the child's status, both streams cut. */
	in.child = 1;
	in.exit_code = 1;
	in.truncated = RESULT_CUT_STDOUT | RESULT_CUT_STDERR;
	o = over_the_wire(result_to_json(&in));
	assert_int_equal(result_from_json(o, &out, err, sizeof(err)), 0);
	json_object_put(o);
	assert_int_equal(out.outcome, OUT_TRANSIENT);
	assert_int_equal(out.child, 1);
	assert_int_equal(out.exit_code, 1);
	assert_int_equal(out.truncated, 3);
	result_free(&out);
}

static void
test_result_bad_fields(void **state)
{
	static const char *const bad[][3] = {
		{ "outcome", NULL, "field \"outcome\": expected a string" },
		{ "outcome", "0", "field \"outcome\": expected a string" },
		{ "outcome", "null", "field \"outcome\": expected a string" },
		{ "outcome", "\"maybe\"", "field \"outcome\": unknown value" },
		{ "outcome", "\"OK\"", "field \"outcome\": unknown value" },
		{ "reply64", NULL, "field \"reply64\": expected a string" },
		{ "reply64", "\"cGFydGlhbCByZXBseQ\"",
		  "field \"reply64\": not base64" },
		{ "reply64", "\"AA==\"",
		  "field \"reply64\": holds a NUL byte" },
		{ "error", "{}", "field \"error\": expected a string" },
		{ "exit", "256", "field \"exit\": 256 out of range" },
		{ "exit", "-2", "field \"exit\": -2 out of range" },
		{ "exit", NULL, "field \"exit\": expected an integer" },
		{ "signal", "-1", "field \"signal\": -1 out of range" },
		{ "signal", "129", "field \"signal\": 129 out of range" },
		{ "timed_out", "2", "field \"timed_out\": 2 out of range" },
		{ "truncated", "\"1\"", "field \"truncated\": expected an "
		  "integer" },
		{ "truncated", "4", "field \"truncated\": 4 out of range" },
		{ "child", "2", "field \"child\": 2 out of range" },
		{ "child", "true", "field \"child\": expected an integer" },
		{ "duration_ms", "-1", "field \"duration_ms\": -1 out of "
		  "range" },
		{ "files", NULL, "field \"files\": expected an array" },
		{ "files", "[\"/a\",2]", "field \"files\"[1]: expected a "
		  "string" },
	};
	struct job_result	r;
	size_t			i;

	(void)state;
	sample_result(&r);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_bad_field(decode_result, result_to_json(&r), bad[i]);
}

static void
test_outcome_names(void **state)
{
	enum outcome o = OUT_OK;

	(void)state;
	assert_string_equal(outcome_name(OUT_OK), "ok");
	assert_string_equal(outcome_name(OUT_TRANSIENT), "transient");
	assert_string_equal(outcome_name(OUT_TERMINAL), "terminal");
	assert_int_equal(outcome_parse("terminal", &o), 0);
	assert_int_equal(o, OUT_TERMINAL);
	assert_int_equal(outcome_parse("transient", &o), 0);
	assert_int_equal(o, OUT_TRANSIENT);
	assert_int_equal(outcome_parse("ok", &o), 0);
	assert_int_equal(o, OUT_OK);
	assert_int_equal(outcome_parse("fatal", &o), -1);
	assert_int_equal(outcome_parse("", &o), -1);
	assert_int_equal(o, OUT_OK);
}

/* Every length of every byte value, and the padding, both ways. */
static void
test_b64(void **state)
{
	unsigned char	 in[300];
	char		*e, *d;
	size_t		 n, i, dl;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	for (n = 0; n < sizeof(in); n++) {
		e = b64_encode(in, n);
		assert_int_equal(strlen(e), B64_LEN(n));
		d = b64_decode(e, strlen(e), &dl);
		assert_non_null(d);
		assert_int_equal(dl, n);
		assert_memory_equal(d, in, n);
		assert_int_equal(d[n], '\0');
		free(e);
		free(d);
	}
	e = b64_encode("foobar", 6);
	assert_string_equal(e, "Zm9vYmFy");
	free(e);
	e = b64_encode("fo", 2);
	assert_string_equal(e, "Zm8=");
	free(e);
	assert_null(b64_decode("Zm9", 3, &dl));
	assert_null(b64_decode("Zm9=Zm8=", 8, &dl));
	assert_null(b64_decode("Z===", 4, &dl));
	assert_null(b64_decode("Zm9*", 4, &dl));
	assert_null(b64_decode("Zm9=", 4, &dl));	/* bits left over */
}

/*
 * The frame a result makes for the worst bytes a reply can hold: control
 * characters (six bytes each as a JSON string), quotes and backslashes
 * (two), U+FFFD (three bytes already). Its size is that of the reply in
 * base64 and a few fields, whatever the bytes: the _Static_assert in job.c
 * then says that CONFIG_MAX_OUTPUT fits the frame cap. Each comes back
 * whole.
 */
static void
worst_case_frame(const char *fill, size_t n)
{
	struct job_result	 in, out;
	struct ipc_conn		 c;
	struct ipc_hdr		 h;
	json_object		*o, *back;
	char			 err[128], *reply;
	size_t			 k, fl = strlen(fill);

	reply = xmalloc(n + 1);
	for (k = 0; k + fl <= n; k += fl)
		memcpy(reply + k, fill, fl);
	memset(reply + k, 'x', n - k);
	reply[n] = '\0';
	memset(&in, 0, sizeof(in));
	in.outcome = OUT_OK;
	in.reply = reply;
	in.error = "";
	ipc_init(&c, -1);
	o = result_to_json(&in);
	assert_int_equal(ipc_queue(&c, MSG_JOB_DONE, 1, o), 0);
	json_object_put(o);
	assert_int_equal(ipc_hdr_unpack((unsigned char *)c.out.data,
	    c.out.len, &h, err, sizeof(err)), 0);
	assert_true(h.len <= B64_LEN(n) + 1024);
	assert_int_equal(ipc_payload_parse(c.out.data + IPC_HDR_LEN, h.len,
	    &back, err, sizeof(err)), 0);
	assert_int_equal(result_from_json(back, &out, err, sizeof(err)), 0);
	json_object_put(back);
	assert_int_equal(strlen(out.reply), n);
	assert_memory_equal(out.reply, reply, n);
	result_free(&out);
	ipc_free(&c);
	free(reply);
}

static void
test_result_worst_case_fits(void **state)
{
	static const char *const fill[] = { "\x01", "\x1f", "\"", "\\",
	    "\xef\xbf\xbd" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(fill) / sizeof(fill[0]); i++)
		worst_case_frame(fill[i], 1024 * 1024);
}

/* What the worker sends is cut to the cap on a character boundary. */
static void
test_result_bound(void **state)
{
	struct job_result	r;
	char			long_error[RESULT_ERROR_MAX + 10];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.reply = xstrdup("ab\xef\xbf\xbd");	/* "ab" and U+FFFD */
	r.error = xstrdup("");
	result_bound(&r, 4);
	assert_string_equal(r.reply, "ab");
	assert_int_equal(r.truncated, 1);
	r.truncated = 0;
	result_bound(&r, 2);
	assert_string_equal(r.reply, "ab");
	assert_int_equal(r.truncated, 0);
	memset(long_error, 'e', sizeof(long_error) - 1);
	long_error[sizeof(long_error) - 1] = '\0';
	free(r.error);
	r.error = xstrdup(long_error);
	result_bound(&r, 2);
	assert_int_equal(strlen(r.error), RESULT_ERROR_MAX);
	result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_roundtrip),
		cmocka_unit_test(test_job_exec_fields),
		cmocka_unit_test(test_job_roundtrip_minimal),
		cmocka_unit_test(test_job_bad_fields),
		cmocka_unit_test(test_job_too_many_elements),
		cmocka_unit_test(test_result_roundtrip),
		cmocka_unit_test(test_result_bad_fields),
		cmocka_unit_test(test_outcome_names),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_result_worst_case_fits),
		cmocka_unit_test(test_result_bound),
	};

	return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
