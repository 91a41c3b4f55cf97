/*
 * settings.json validation (common/config.c): every error path names its key
 * path, present keys keep 0, absent and null keys take the SPEC §3 defaults,
 * the legacy "models" section becomes one "default" agent.
 */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "unit.h"
#include "util.h"

#define TEST_HOME	"/home/tester"

static char err[512];

static struct config *
parse(const char *json)
{
	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	return config_parse(json, strlen(json), "/h", err, sizeof(err));
}

/* The text must be refused with exactly the message want. */
static void
refused(const char *json, const char *want, const char *file, int line)
{
	struct config *cf;

	if ((cf = parse(json)) != NULL) {
		config_free(cf);
		_fail(file, line);
	}
	if (strcmp(err, want) != 0) {
		print_error("config: %s\n  error: %s\n  wanted: %s\n", json,
		    err, want);
		_fail(file, line);
	}
}
#define assert_refused(json, want) refused(json, want, __FILE__, __LINE__)

static struct config *
accepted(const char *json, const char *file, int line)
{
	struct config *cf;

	if ((cf = parse(json)) == NULL) {
		print_error("config: %s\n  refused: %s\n", json, err);
		_fail(file, line);
	}
	return cf;
}
#define assert_accepted(json) accepted(json, __FILE__, __LINE__)

/* {"a":{"b":VALUE}} for the path "a.b" (key names without dots). */
static char *
nest(const char *path, const char *value)
{
	char	*out, *dup, *key, *save = NULL;
	size_t	 depth = 0, len, i;
	FILE	*f;

	f = open_memstream(&out, &len);
	assert_non_null(f);
	dup = xstrdup(path);
	for (key = strtok_r(dup, ".", &save); key != NULL;
	    key = strtok_r(NULL, ".", &save)) {
		fprintf(f, "{\"%s\":", key);
		depth++;
	}
	fputs(value, f);
	for (i = 0; i < depth; i++)
		fputc('}', f);
	fclose(f);
	free(dup);
	return out;
}

static void
assert_nested_refused(const char *path, const char *value, const char *want,
    const char *file, int line)
{
	char *json = nest(path, value);

	refused(json, want, file, line);
	free(json);
}

/* A JSON object with n members PREFIX<i>: MEMBER. */
static char *
many(const char *prefix, size_t n, const char *member)
{
	char	*out;
	size_t	 len, i;
	FILE	*f;

	f = open_memstream(&out, &len);
	assert_non_null(f);
	fputc('{', f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s\"%s%zu\":%s", i == 0 ? "" : ",", prefix, i,
		    member);
	fputc('}', f);
	fclose(f);
	return out;
}

/* A JSON array of n strings PREFIX<i>. */
static char *
many_strings(const char *prefix, size_t n)
{
	char	*out;
	size_t	 len, i;
	FILE	*f;

	f = open_memstream(&out, &len);
	assert_non_null(f);
	fputc('[', f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s\"%s%zu\"", i == 0 ? "" : ",", prefix, i);
	fputc(']', f);
	fclose(f);
	return out;
}

static int
group_setup(void **state)
{
	(void)state;
	setenv("HOME", TEST_HOME, 1);
	return 0;
}

/* Integer keys: range, SPEC default, where the value lands. */
struct int_key {
	const char	*path;
	int64_t		 min;
	int64_t		 max;
	int64_t		 def;
	size_t		 off;
};

#define F(m)	offsetof(struct config, m)
static const struct int_key int_keys[] = {
	{ "sandbox.timeout_seconds", 0, INT32_MAX, 600, F(timeout_seconds) },
	{ "sandbox.max_attempts", 1, 1000, 3, F(max_attempts) },
	{ "sandbox.max_concurrency", 0, INT32_MAX, 0, F(max_concurrency) },
	{ "sandbox.max_waiters", 0, INT32_MAX, 1000, F(max_waiters) },
	{ "sandbox.max_output_bytes", 0, CONFIG_MAX_OUTPUT, 10485760,
	    F(max_output_bytes) },
	{ "sandbox.max_message_bytes", 0, MAX_MESSAGE_FILE, 100000,
	    F(max_message_bytes) },
	{ "sandbox.backoff_seconds", 0, 86400, 5, F(backoff_seconds) },
	{ "sandbox.backoff_max_seconds", 0, 86400, 300,
	    F(backoff_max_seconds) },
	{ "sandbox.kill_grace_seconds", 0, 3600, 5, F(kill_grace_seconds) },
	{ "sandbox.docker.pids_limit", 0, INT32_MAX, 256,
	    F(docker.pids_limit) },
	{ "sandbox.apple.pids_limit", 0, INT32_MAX, 256, F(apple.pids_limit) },
	{ "supervisor.workers", 1, CONFIG_MAX_WORKERS, 4, F(workers) },
	{ "supervisor.scan_interval_ms", 0, 86400000, 1000,
	    F(scan_interval_ms) },
	{ "supervisor.max_chain_steps", 1, 1000, 10, F(max_chain_steps) },
};
#undef F
#define NINT	(sizeof(int_keys) / sizeof(int_keys[0]))

static int64_t
int_at(const struct config *cf, size_t off)
{
	int64_t v;

	memcpy(&v, (const char *)cf + off, sizeof(v));
	return v;
}

static void
int_want(const struct int_key *k, int over, const char *got, char *buf,
    size_t len)
{
	if (k->max >= INT32_MAX && !over)
		snprintf(buf, len, "%s: expected an integer >= %lld, got %s",
		    k->path, (long long)k->min, got);
	else
		snprintf(buf, len, "%s: expected an integer between %lld and "
		    "%lld, got %s", k->path, (long long)k->min,
		    (long long)k->max, got);
}

static void
test_spec_example(void **state)
{
	(void)state;
	assert_refused("{\"sandbox\":{\"docker\":{\"pids_limit\":\"many\"}}}",
	    "sandbox.docker.pids_limit: expected an integer >= 0, "
	    "got \"many\"");
}

static void
test_defaults(void **state)
{
	struct config	*cf;
	size_t		 i;

	(void)state;
	cf = assert_accepted("{}");
	for (i = 0; i < NINT; i++)
		if (int_at(cf, int_keys[i].off) != int_keys[i].def)
			fail_msg("%s: %lld, default %lld", int_keys[i].path,
			    (long long)int_at(cf, int_keys[i].off),
			    (long long)int_keys[i].def);
	assert_string_equal(cf->home, "/h");
	assert_string_equal(cf->path, "/h/settings.json");
	assert_string_equal(cf->workspace, TEST_HOME "/tinyclaw-workspace");
	assert_int_equal(cf->mode, MODE_HOST);
	assert_int_equal(cf->path_mapping, MAP_MAPPED);
	assert_int_equal(cf->nallow, 4);
	assert_string_equal(cf->env_allowlist[0], "ANTHROPIC_API_KEY");
	assert_string_equal(cf->env_allowlist[1], "CLAUDE_CODE_OAUTH_TOKEN");
	assert_string_equal(cf->env_allowlist[2], "OPENAI_API_KEY");
	assert_string_equal(cf->env_allowlist[3], "CODEX_API_KEY");
	assert_string_equal(cf->docker.runtime_command, "docker");
	assert_string_equal(cf->docker.image, "tinyclaw/agent-runner:latest");
	assert_int_equal(cf->docker.network, NET_DEFAULT);
	assert_int_equal(cf->docker.network_restricted, 0);
	assert_string_equal(cf->docker.memory, "2g");
	assert_string_equal(cf->docker.cpus, "1.0");
	assert_string_equal(cf->docker.user, "auto");
	assert_string_equal(cf->apple.runtime_command, "container");
	assert_string_equal(cf->apple.image, "tinyclaw/agent-runner:latest");
	assert_int_equal(cf->apple.network, NET_DEFAULT);
	assert_string_equal(cf->apple.memory, "2g");
	assert_string_equal(cf->apple.cpus, "1");
	assert_string_equal(cf->apple.user, "auto");
	assert_int_equal(cf->nteams, 0);
	assert_string_equal(cf->warning, "");
	config_free(cf);
}

static void
test_null_is_absent(void **state)
{
	struct config	*def, *cf;
	json_object	*a, *b;
	size_t		 i;

	(void)state;
	def = assert_accepted("{}");
	cf = assert_accepted("{\"workspace\":{\"path\":null},"
	    "\"sandbox\":{\"mode\":null,\"timeout_seconds\":null,"
	    "\"max_attempts\":null,\"max_concurrency\":null,"
	    "\"max_waiters\":null,\"max_output_bytes\":null,"
	    "\"max_message_bytes\":null,\"backoff_seconds\":null,"
	    "\"backoff_max_seconds\":null,\"kill_grace_seconds\":null,"
	    "\"env_allowlist\":null,\"path_mapping_mode\":null,"
	    "\"docker\":{\"runtime_command\":null,\"image\":null,"
	    "\"network\":null,\"memory\":null,\"cpus\":null,"
	    "\"pids_limit\":null,\"user\":null},\"apple\":null},"
	    "\"supervisor\":{\"workers\":null,\"scan_interval_ms\":null},"
	    "\"agents\":null,\"teams\":null,\"models\":null}");
	a = config_sandbox_json(def);
	b = config_sandbox_json(cf);
	assert_string_equal(json_object_to_json_string(a),
	    json_object_to_json_string(b));
	json_object_put(a);
	json_object_put(b);
	for (i = 0; i < NINT; i++)
		assert_int_equal(int_at(cf, int_keys[i].off), int_keys[i].def);
	assert_string_equal(cf->workspace, def->workspace);
	assert_int_equal(cf->nagents, 1);
	assert_string_equal(cf->agents[0].id, "default");
	config_free(def);
	config_free(cf);

	/* Whole sections set to null, and null fields of an agent. */
	cf = assert_accepted("{\"workspace\":null,\"sandbox\":null,"
	    "\"supervisor\":null,\"agents\":{\"a\":{\"name\":null,"
	    "\"provider\":null,\"model\":null,\"working_directory\":null,"
	    "\"sandbox_mode\":null}},\"teams\":{\"t\":{\"agents\":[\"a\"],"
	    "\"leader_agent\":null,\"name\":null}}}");
	assert_int_equal(cf->timeout_seconds, 600);
	assert_int_equal(cf->workers, 4);
	assert_string_equal(cf->agents[0].name, "a");
	assert_int_equal(cf->agents[0].provider, PROV_ANTHROPIC);
	assert_null(cf->agents[0].model);
	assert_int_equal(cf->agents[0].mode, MODE_INHERIT);
	assert_string_equal(cf->agents[0].workdir,
	    TEST_HOME "/tinyclaw-workspace/a");
	assert_string_equal(cf->teams[0].leader, "a");
	assert_string_equal(cf->teams[0].name, "t");
	config_free(cf);
}

static void
test_zero_kept(void **state)
{
	struct config	*cf;
	size_t		 i;

	(void)state;
	cf = assert_accepted("{\"sandbox\":{\"timeout_seconds\":0,"
	    "\"max_concurrency\":0,\"max_waiters\":0,\"max_output_bytes\":0,"
	    "\"max_message_bytes\":0,\"backoff_seconds\":0,"
	    "\"backoff_max_seconds\":0,\"kill_grace_seconds\":0,"
	    "\"docker\":{\"pids_limit\":0},\"apple\":{\"pids_limit\":0}},"
	    "\"supervisor\":{\"scan_interval_ms\":0}}");
	assert_int_equal(cf->timeout_seconds, 0);
	assert_int_equal(cf->max_concurrency, 0);
	assert_int_equal(cf->max_waiters, 0);
	assert_int_equal(cf->max_output_bytes, 0);
	assert_int_equal(cf->max_message_bytes, 0);
	assert_int_equal(cf->backoff_seconds, 0);
	assert_int_equal(cf->backoff_max_seconds, 0);
	assert_int_equal(cf->kill_grace_seconds, 0);
	assert_int_equal(cf->docker.pids_limit, 0);
	assert_int_equal(cf->apple.pids_limit, 0);
	assert_int_equal(cf->scan_interval_ms, 0);
	/* Untouched keys still take their default. */
	assert_int_equal(cf->max_attempts, 3);
	assert_int_equal(cf->workers, 4);
	config_free(cf);

	/* Each key alone: 0 where allowed, and only that key changes. */
	for (i = 0; i < NINT; i++) {
		char *json;

		if (int_keys[i].min > 0)
			continue;
		json = nest(int_keys[i].path, "0");
		cf = assert_accepted(json);
		assert_int_equal(int_at(cf, int_keys[i].off), 0);
		free(json);
		config_free(cf);
	}
}

static void
test_int_wrong_type(void **state)
{
	static const char *const bad[][2] = {
		{ "\"many\"", "\"many\"" },
		{ "\"5\"", "\"5\"" },
		{ "1.5", "1.5" },
		{ "true", "true" },
		{ "[]", "[]" },
		{ "{}", "{}" },
	};
	char	want[256];
	size_t	i, j;

	(void)state;
	for (i = 0; i < NINT; i++)
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			int_want(&int_keys[i], 0, bad[j][1], want,
			    sizeof(want));
			assert_nested_refused(int_keys[i].path, bad[j][0], want,
			    __FILE__, __LINE__);
		}
}

static void
test_int_negative(void **state)
{
	char	want[256];
	size_t	i;

	(void)state;
	for (i = 0; i < NINT; i++) {
		int_want(&int_keys[i], 0, "-1", want, sizeof(want));
		assert_nested_refused(int_keys[i].path, "-1", want,
		    __FILE__, __LINE__);
	}
}

static void
test_int_bounds(void **state)
{
	struct config	*cf;
	char		 val[32], want[256], *json;
	size_t		 i;

	(void)state;
	for (i = 0; i < NINT; i++) {
		const struct int_key *k = &int_keys[i];

		/* Both bounds are accepted and stored. */
		snprintf(val, sizeof(val), "%lld", (long long)k->min);
		json = nest(k->path, val);
		cf = assert_accepted(json);
		assert_int_equal(int_at(cf, k->off), k->min);
		config_free(cf);
		free(json);
		snprintf(val, sizeof(val), "%lld", (long long)k->max);
		json = nest(k->path, val);
		cf = assert_accepted(json);
		assert_int_equal(int_at(cf, k->off), k->max);
		config_free(cf);
		free(json);

		/* One past either bound is refused. */
		snprintf(val, sizeof(val), "%lld", (long long)k->max + 1);
		int_want(k, 1, val, want, sizeof(want));
		assert_nested_refused(k->path, val, want, __FILE__, __LINE__);
		snprintf(val, sizeof(val), "%lld", (long long)k->min - 1);
		int_want(k, 0, val, want, sizeof(want));
		assert_nested_refused(k->path, val, want, __FILE__, __LINE__);
	}
}

/*
 * Past 64 bits json-c reads the nearest bound; the error still shows the
 * number as the user wrote it, not 18446744073709551615.
 */
static void
test_int_overflow_as_written(void **state)
{
	static const char *const vals[] = { "99999999999999999999",
	    "18446744073709551616", "-9223372036854775809",
	    "-99999999999999999999999999999999999999999999999999" };
	char	want[256];
	size_t	i, k;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		for (k = 0; k < NINT; k++) {
			int_want(&int_keys[k], vals[i][0] != '-', vals[i],
			    want, sizeof(want));
			if (strlen(vals[i]) > 40) {
				/* Cut as every value in an error is. */
				char *p = strstr(want, ", got ");
				snprintf(p, want + sizeof(want) - p,
				    ", got %.37s...", vals[i]);
			}
			assert_nested_refused(int_keys[k].path, vals[i], want,
			    __FILE__, __LINE__);
		}
	/* Two different texts for one key: neither is guessed. */
	assert_refused("{\"sandbox\":{\"docker\":{\"pids_limit\":"
	    "99999999999999999999},\"apple\":{\"pids_limit\":"
	    "88888888888888888888}}}", "sandbox.docker.pids_limit: expected "
	    "an integer between 0 and 2147483647, got 18446744073709551615");
	/* Written exactly, the bound is shown as it is. */
	assert_refused("{\"sandbox\":{\"max_attempts\":"
	    "18446744073709551615}}", "sandbox.max_attempts: expected an "
	    "integer between 1 and 1000, got 18446744073709551615");
}

static void
test_max_attempts(void **state)
{
	(void)state;
	assert_refused("{\"sandbox\":{\"max_attempts\":0}}",
	    "sandbox.max_attempts: expected an integer between 1 and 1000, "
	    "got 0");
	assert_refused("{\"supervisor\":{\"workers\":0}}",
	    "supervisor.workers: expected an integer between 1 and 256, "
	    "got 0");
}

static void
test_string_wrong_type(void **state)
{
	static const char *const keys[] = {
		"workspace.path",
		"sandbox.docker.runtime_command", "sandbox.docker.image",
		"sandbox.docker.memory", "sandbox.docker.cpus",
		"sandbox.docker.user",
		"sandbox.apple.runtime_command", "sandbox.apple.image",
		"sandbox.apple.memory", "sandbox.apple.cpus",
		"sandbox.apple.user",
		"models.anthropic.model",
		"agents.a.name", "agents.a.model",
		"agents.a.working_directory",
	};
	char	want[256];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "%s: expected a string, got true",
		    keys[i]);
		assert_nested_refused(keys[i], "true", want, __FILE__,
		    __LINE__);
		snprintf(want, sizeof(want), "%s: expected a string, got "
		    "[\"x\"]", keys[i]);
		assert_nested_refused(keys[i], "[\"x\"]", want, __FILE__,
		    __LINE__);
	}
	/* cpus may be a number, but not any other type. */
	assert_nested_refused("sandbox.docker.cpus", "{}",
	    "sandbox.docker.cpus: expected a string, got {}", __FILE__,
	    __LINE__);
	assert_refused("{\"agents\":{\"a\":{}},\"teams\":{\"t\":{\"agents\":"
	    "[\"a\"],\"name\":1}}}", "teams.t.name: expected a string, got 1");
	assert_refused("{\"agents\":{\"a\":{}},\"teams\":{\"t\":{\"agents\":"
	    "[\"a\"],\"leader_agent\":false}}}",
	    "teams.t.leader_agent: expected a string, got false");
	assert_refused("{\"models\":{\"provider\":\"openai\",\"openai\":"
	    "{\"model\":5}}}", "models.openai.model: expected a string, got 5");
}

static void
test_string_nul(void **state)
{
	(void)state;
	assert_refused("{\"sandbox\":{\"docker\":{\"image\":\"a\\u0000b\"}}}",
	    "sandbox.docker.image: expected a string without NUL, "
	    "got \"a\\u0000b\"");
	assert_refused("{\"agents\":{\"a\":{\"model\":\"x\\u0000\"}}}",
	    "agents.a.model: expected a string without NUL, got \"x\\u0000\"");
}

static void
test_long_value_cut(void **state)
{
	(void)state;
	/* What was found is quoted, but cut short to keep the line sane. */
	assert_refused("{\"sandbox\":{\"mode\":\""
	    "aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd\"}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", "
	    "got \"aaaaaaaaaabbbbbbbbbbccccccccccdddddd...");
}

static void
test_object_wrong_type(void **state)
{
	static const char *const keys[] = {
		"workspace", "sandbox", "supervisor", "agents", "teams",
		"models", "sandbox.docker", "sandbox.apple", "sandbox.bwrap",
		"models.anthropic",
	};
	char	want[256];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "%s: expected an object, got 5",
		    keys[i]);
		assert_nested_refused(keys[i], "5", want, __FILE__, __LINE__);
		snprintf(want, sizeof(want), "%s: expected an object, got "
		    "\"x\"", keys[i]);
		assert_nested_refused(keys[i], "\"x\"", want, __FILE__,
		    __LINE__);
		snprintf(want, sizeof(want), "%s: expected an object, got []",
		    keys[i]);
		assert_nested_refused(keys[i], "[]", want, __FILE__, __LINE__);
	}
	assert_refused("{\"models\":{\"provider\":\"openai\",\"openai\":5}}",
	    "models.openai: expected an object, got 5");
}

static void
test_enums(void **state)
{
	struct config *cf;

	(void)state;
	assert_refused("{\"sandbox\":{\"mode\":\"vm\"}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", "
	    "got \"vm\"");
	assert_refused("{\"sandbox\":{\"mode\":\"Docker\"}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", "
	    "got \"Docker\"");
	assert_refused("{\"sandbox\":{\"mode\":1}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", "
	    "got 1");
	assert_refused("{\"sandbox\":{\"mode\":\"\"}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", "
	    "got \"\"");
	assert_refused("{\"sandbox\":{\"path_mapping_mode\":\"identity\"}}",
	    "sandbox.path_mapping_mode: expected one of \"mapped\" or "
	    "\"same-path\", got \"identity\"");
	assert_refused("{\"sandbox\":{\"docker\":{\"network\":\"bridge\"}}}",
	    "sandbox.docker.network: expected one of \"default\", \"none\" or "
	    "\"restricted\", got \"bridge\"");
	assert_refused("{\"sandbox\":{\"apple\":{\"network\":false}}}",
	    "sandbox.apple.network: expected one of \"default\", \"none\" or "
	    "\"restricted\", got false");
	assert_refused("{\"agents\":{\"a\":{\"provider\":\"google\"}}}",
	    "agents.a.provider: expected one of \"anthropic\", \"openai\" or "
	    "\"command\", got \"google\"");
	assert_refused("{\"agents\":{\"a\":{\"provider\":[]}}}",
	    "agents.a.provider: expected one of \"anthropic\", \"openai\" or "
	    "\"command\", got []");
	assert_refused("{\"agents\":{\"a\":{\"sandbox_mode\":\"vm\"}}}",
	    "agents.a.sandbox_mode: expected one of \"host\", \"docker\", "
	    "\"apple\" or \"bwrap\", got \"vm\"");

	cf = assert_accepted("{\"sandbox\":{\"mode\":\"docker\","
	    "\"path_mapping_mode\":\"same-path\",\"docker\":{\"network\":"
	    "\"none\"},\"apple\":{\"network\":\"none\"}}}");
	assert_int_equal(cf->mode, MODE_DOCKER);
	assert_int_equal(cf->path_mapping, MAP_SAME_PATH);
	assert_int_equal(cf->docker.network, NET_NONE);
	assert_int_equal(cf->apple.network, NET_NONE);
	assert_string_equal(cf->warning, "");
	config_free(cf);
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"apple\"}}");
	assert_int_equal(cf->mode, MODE_APPLE);
	config_free(cf);
}

static void
test_network_restricted(void **state)
{
	struct config *cf;

	(void)state;
	cf = assert_accepted("{\"sandbox\":{\"docker\":{\"network\":"
	    "\"restricted\"}}}");
	assert_int_equal(cf->docker.network, NET_DEFAULT);
	assert_int_equal(cf->docker.network_restricted, 1);
	assert_int_equal(cf->apple.network_restricted, 0);
	assert_non_null(strstr(cf->warning, "\"restricted\" is treated as "
	    "\"default\""));
	config_free(cf);
}

static void
test_runtime_values(void **state)
{
	static const char *const bad[][2] = {
		{ "{\"sandbox\":{\"docker\":{\"runtime_command\":\"\"}}}",
		  "sandbox.docker.runtime_command: expected a program name, "
		  "got \"\"" },
		{ "{\"sandbox\":{\"apple\":{\"runtime_command\":\"\"}}}",
		  "sandbox.apple.runtime_command: expected a program name, "
		  "got \"\"" },
		{ "{\"sandbox\":{\"docker\":{\"image\":\"\"}}}",
		  "sandbox.docker.image: expected an image name, got \"\"" },
		{ "{\"sandbox\":{\"docker\":{\"image\":\"-v\"}}}",
		  "sandbox.docker.image: expected an image name, got \"-v\"" },
		{ "{\"sandbox\":{\"apple\":{\"image\":\"--rm\"}}}",
		  "sandbox.apple.image: expected an image name, got \"--rm\"" },
		{ "{\"sandbox\":{\"docker\":{\"memory\":\"lots\"}}}",
		  "sandbox.docker.memory: expected a size such as \"2g\", "
		  "got \"lots\"" },
		{ "{\"sandbox\":{\"docker\":{\"memory\":\"2x\"}}}",
		  "sandbox.docker.memory: expected a size such as \"2g\", "
		  "got \"2x\"" },
		{ "{\"sandbox\":{\"apple\":{\"memory\":\"\"}}}",
		  "sandbox.apple.memory: expected a size such as \"2g\", "
		  "got \"\"" },
		{ "{\"sandbox\":{\"docker\":{\"memory\":\"2gbx\"}}}",
		  "sandbox.docker.memory: expected a size such as \"2g\", "
		  "got \"2gbx\"" },
		{ "{\"sandbox\":{\"docker\":{\"user\":\"root\"}}}",
		  "sandbox.docker.user: expected \"auto\" or \"UID:GID\", "
		  "got \"root\"" },
		{ "{\"sandbox\":{\"docker\":{\"user\":\"1000\"}}}",
		  "sandbox.docker.user: expected \"auto\" or \"UID:GID\", "
		  "got \"1000\"" },
		{ "{\"sandbox\":{\"apple\":{\"user\":\"1000:\"}}}",
		  "sandbox.apple.user: expected \"auto\" or \"UID:GID\", "
		  "got \"1000:\"" },
		{ "{\"sandbox\":{\"docker\":{\"user\":\"1000:10x\"}}}",
		  "sandbox.docker.user: expected \"auto\" or \"UID:GID\", "
		  "got \"1000:10x\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"abc\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"abc\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"0\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"0\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":-1}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"-1\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"1.5x\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1.5x\"" },
		{ "{\"sandbox\":{\"apple\":{\"cpus\":\"\"}}}",
		  "sandbox.apple.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"\"" },		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"0x10\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"0x10\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"1e3\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1e3\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"inf\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"inf\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"nan\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"nan\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\" 1\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \" 1\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"1 \"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1 \"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"+1\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"+1\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\".5\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \".5\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"1.\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1.\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"0.001\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"0.001\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"0.0050\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"0.0050\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"1.0000000001\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1.0000000001\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"4096.5\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"4096.5\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"4097\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"4097\"" },
		{ "{\"sandbox\":{\"docker\":{\"cpus\":\"00000000000000000004097\"}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"00000000000000000004097\"" },
		/* A JSON number keeps its text: 1e3 is refused too. */
		{ "{\"sandbox\":{\"docker\":{\"cpus\":1e3}}}",
		  "sandbox.docker.cpus: expected a decimal number of CPUs "
		  "from 0.01 to 4096 such as \"1.0\", got \"1e3\"" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i][0], bad[i][1]);
}

static void
test_runtime_accepted(void **state)
{
	struct config *cf;

	(void)state;
	cf = assert_accepted("{\"sandbox\":{\"docker\":{\"runtime_command\":"
	    "\"podman\",\"image\":\"ghcr.io/x/y:1\",\"memory\":\"512m\","
	    "\"cpus\":2,\"user\":\"1000:1000\"},\"apple\":{\"memory\":"
	    "\"1073741824\",\"cpus\":0.5,\"user\":\"0:0\"}}}");
	assert_string_equal(cf->docker.runtime_command, "podman");
	assert_string_equal(cf->docker.image, "ghcr.io/x/y:1");
	assert_string_equal(cf->docker.memory, "512m");
	assert_string_equal(cf->docker.cpus, "2");
	assert_string_equal(cf->docker.user, "1000:1000");
	assert_string_equal(cf->apple.memory, "1073741824");
	assert_string_equal(cf->apple.cpus, "0.5");
	assert_string_equal(cf->apple.user, "0:0");
	config_free(cf);
	cf = assert_accepted("{\"sandbox\":{\"docker\":{\"memory\":\"2GB\","
	    "\"cpus\":\"0.25\"}}}");
	assert_string_equal(cf->docker.memory, "2GB");
	assert_string_equal(cf->docker.cpus, "0.25");
	config_free(cf);	/* The edges docker takes: 0.01, nine decimals, 4096. */
	cf = assert_accepted("{\"sandbox\":{\"docker\":{\"cpus\":\"0.01\"},"
	    "\"apple\":{\"cpus\":\"4096.000000000\"}}}");
	assert_string_equal(cf->docker.cpus, "0.01");
	config_free(cf);
	cf = assert_accepted("{\"sandbox\":{\"docker\":{\"cpus\":"
	    "\"0.123456789\"},\"apple\":{\"cpus\":\"4096\"}}}");
	config_free(cf);
}

static void
test_apple_cpus(void **state)
{
	static const char *want = "sandbox.apple.cpus: expected a whole number "
	    "of CPUs (Apple's container takes an integer), got \"1.5\"";
	struct config *cf;

	(void)state;
	assert_refused("{\"sandbox\":{\"mode\":\"apple\",\"apple\":{\"cpus\":"
	    "\"1.5\"}}}", want);
	/* As a JSON number too. */
	assert_refused("{\"sandbox\":{\"mode\":\"apple\",\"apple\":{\"cpus\":"
	    "1.5}}}", want);
	/* One agent in apple mode is enough to make it matter. */
	assert_refused("{\"sandbox\":{\"apple\":{\"cpus\":\"1.5\"}},"
	    "\"agents\":{\"a\":{},\"b\":{\"sandbox_mode\":\"apple\"}}}", want);
	/* Unused, it is not checked. */
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"docker\",\"apple\":"
	    "{\"cpus\":\"1.5\"}},\"agents\":{\"a\":{\"sandbox_mode\":"
	    "\"host\"}}}");
	assert_string_equal(cf->apple.cpus, "1.5");
	config_free(cf);
	/* Whole numbers, however written, are fine. */
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"apple\",\"apple\":"
	    "{\"cpus\":\"2.0\"}}}");
	assert_string_equal(cf->apple.cpus, "2.0");
	config_free(cf);
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"apple\",\"apple\":"
	    "{\"cpus\":4}}}");
	assert_string_equal(cf->apple.cpus, "4");
	config_free(cf);
	/* strtod's forms are not decimals: "0x10" was 16, "1e1" 10. */
	assert_refused("{\"sandbox\":{\"mode\":\"apple\",\"apple\":{\"cpus\":"
	    "\"0x10\"}}}", "sandbox.apple.cpus: expected a decimal number of "
	    "CPUs from 0.01 to 4096 such as \"1.0\", got \"0x10\"");
	assert_refused("{\"sandbox\":{\"mode\":\"apple\",\"apple\":{\"cpus\":"
	    "\"0.5\"}}}", "sandbox.apple.cpus: expected a whole number "
	    "of CPUs (Apple's container takes an integer), got \"0.5\"");
	/* The docker cpus are never held to it. */
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"apple\",\"docker\":"
	    "{\"cpus\":\"1.5\"}}}");
	config_free(cf);
}

static void
test_env_allowlist(void **state)
{
	struct config *cf;

	(void)state;
	assert_refused("{\"sandbox\":{\"env_allowlist\":\"OPENAI_API_KEY\"}}",
	    "sandbox.env_allowlist: expected an array of strings, "
	    "got \"OPENAI_API_KEY\"");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[\"A\",5]}}",
	    "sandbox.env_allowlist[1]: expected a string, got 5");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[null]}}",
	    "sandbox.env_allowlist[0]: expected a string, got nothing");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[\"OK\",\"A-B\"]}}",
	    "sandbox.env_allowlist[1]: expected an environment variable "
	    "name, got \"A-B\"");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[\"1ABC\"]}}",
	    "sandbox.env_allowlist[0]: expected an environment variable "
	    "name, got \"1ABC\"");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[\"\"]}}",
	    "sandbox.env_allowlist[0]: expected an environment variable "
	    "name, got \"\"");
	assert_refused("{\"sandbox\":{\"env_allowlist\":[\"A=B\"]}}",
	    "sandbox.env_allowlist[0]: expected an environment variable "
	    "name, got \"A=B\"");

	cf = assert_accepted("{\"sandbox\":{\"env_allowlist\":[]}}");
	assert_int_equal(cf->nallow, 0);
	config_free(cf);
	cf = assert_accepted("{\"sandbox\":{\"env_allowlist\":"
	    "[\"ANTHROPIC_API_KEY\",\"_X1\"]}}");
	assert_int_equal(cf->nallow, 2);
	assert_string_equal(cf->env_allowlist[1], "_X1");
	config_free(cf);
}

static void
test_array_limits(void **state)
{
	struct config	*cf;
	char		*arr, *json;

	(void)state;
	arr = many_strings("V", CONFIG_MAX_ARRAY + 1);
	xasprintf(&json, "{\"sandbox\":{\"env_allowlist\":%s}}", arr);
	assert_refused(json, "sandbox.env_allowlist: expected at most 256 "
	    "elements, got 257");
	free(json);
	xasprintf(&json, "{\"agents\":{\"c\":{\"provider\":\"command\","
	    "\"command\":%s}}}", arr);
	assert_refused(json, "agents.c.command: expected at most 256 "
	    "elements, got 257");
	free(json);
	free(arr);

	arr = many_strings("V", CONFIG_MAX_ARRAY);
	xasprintf(&json, "{\"sandbox\":{\"env_allowlist\":%s}}", arr);
	cf = assert_accepted(json);
	assert_int_equal(cf->nallow, CONFIG_MAX_ARRAY);
	assert_string_equal(cf->env_allowlist[255], "V255");
	config_free(cf);
	free(json);
	free(arr);

	/* A team of 257 members (the agents exist). */
	arr = many_strings("a", CONFIG_MAX_ARRAY + 1);
	json = many("a", CONFIG_MAX_ARRAY + 1, "{}");
	{
		char *full;

		xasprintf(&full, "{\"agents\":%s,\"teams\":{\"t\":"
		    "{\"agents\":%s}}}", json, arr);
		assert_refused(full, "teams.t.agents: expected at most 256 "
		    "elements, got 257");
		free(full);
	}
	free(json);
	free(arr);
}

static void
test_agents(void **state)
{
	struct config		*cf;
	const struct agent	*a;

	(void)state;
	cf = assert_accepted("{\"workspace\":{\"path\":\"/ws\"},\"sandbox\":"
	    "{\"mode\":\"docker\"},\"agents\":{"
	    "\"coder\":{\"name\":\"Coder\",\"provider\":\"anthropic\","
	    "\"model\":\"opus\",\"working_directory\":\"/srv/coder\"},"
	    "\"cx\":{\"provider\":\"openai\",\"model\":\"\","
	    "\"working_directory\":\"rel/dir\",\"sandbox_mode\":\"host\"},"
	    "\"home.dir\":{\"working_directory\":\"~/agents/h\"},"
	    "\"sh_1\":{\"provider\":\"command\",\"command\":[\"echo\","
	    "\"{message}\"],\"sandbox_mode\":\"apple\"}}}");
	assert_int_equal(cf->nagents, 4);

	a = config_agent(cf, "coder");
	assert_non_null(a);
	assert_string_equal(a->name, "Coder");
	assert_int_equal(a->provider, PROV_ANTHROPIC);
	assert_string_equal(a->model, "opus");
	assert_string_equal(a->workdir, "/srv/coder");
	assert_int_equal(a->mode, MODE_INHERIT);
	assert_int_equal(config_agent_mode(cf, a), MODE_DOCKER);

	a = config_agent(cf, "cx");
	assert_non_null(a);
	assert_string_equal(a->name, "cx");
	assert_int_equal(a->provider, PROV_OPENAI);
	assert_null(a->model);		/* "": the CLI's default */
	assert_string_equal(a->workdir, "/ws/rel/dir");
	assert_int_equal(config_agent_mode(cf, a), MODE_HOST);

	a = config_agent(cf, "home.dir");
	assert_non_null(a);
	assert_string_equal(a->workdir, TEST_HOME "/agents/h");

	a = config_agent(cf, "sh_1");
	assert_non_null(a);
	assert_int_equal(a->provider, PROV_COMMAND);
	assert_int_equal(a->ncommand, 2);
	assert_string_equal(a->command[0], "echo");
	assert_string_equal(a->command[1], "{message}");
	assert_null(a->command[2]);
	assert_string_equal(a->workdir, "/ws/sh_1");
	assert_int_equal(config_agent_mode(cf, a), MODE_APPLE);

	assert_null(config_agent(cf, "nobody"));
	config_free(cf);
}

static void
test_agent_errors(void **state)
{
	static const char *const bad[][2] = {
		{ "{\"agents\":{\"bad id\":{}}}",
		  "agents.bad id: agent id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\"a/b\":{}}}",
		  "agents.a/b: agent id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\"..\":{}}}",
		  "agents...: agent id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\".\":{}}}",
		  "agents..: agent id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\"@x\":{}}}",
		  "agents.@x: agent id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\"ok\":{},\"a\":5}}",
		  "agents.a: expected an object, got 5" },
		{ "{\"agents\":{\"a\":\"x\"}}",
		  "agents.a: expected an object, got \"x\"" },
		{ "{\"agents\":{\"c\":{\"provider\":\"command\"}}}",
		  "agents.c.command: expected a non-empty array of strings, "
		  "got nothing" },
		{ "{\"agents\":{\"c\":{\"provider\":\"command\","
		  "\"command\":null}}}",
		  "agents.c.command: expected a non-empty array of strings, "
		  "got nothing" },
		{ "{\"agents\":{\"c\":{\"provider\":\"command\","
		  "\"command\":[]}}}",
		  "agents.c.command: expected a non-empty array of strings, "
		  "got []" },
		{ "{\"agents\":{\"c\":{\"provider\":\"command\","
		  "\"command\":\"echo hi\"}}}",
		  "agents.c.command: expected an array of strings, "
		  "got \"echo hi\"" },
		{ "{\"agents\":{\"c\":{\"provider\":\"command\","
		  "\"command\":[\"echo\",7]}}}",
		  "agents.c.command[1]: expected a string, got 7" },
	};
	char	id[200], *json, want[300];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i][0], bad[i][1]);

	/* 128 characters is the longest id. */
	memset(id, 'a', 129);
	id[129] = '\0';
	xasprintf(&json, "{\"agents\":{\"%s\":{}}}", id);
	snprintf(want, sizeof(want), "agents.%s: agent id must be letters, "
	    "digits, '.', '_' or '-'", id + 1);
	assert_refused(json, want);
	free(json);
	id[128] = '\0';
	xasprintf(&json, "{\"agents\":{\"%s\":{}}}", id);
	config_free(assert_accepted(json));
	free(json);
}

static void
test_agent_limit(void **state)
{
	struct config	*cf;
	char		*agents, *json;

	(void)state;
	agents = many("a", CONFIG_MAX_AGENTS + 1, "{}");
	xasprintf(&json, "{\"agents\":%s}", agents);
	assert_refused(json, "agents: expected at most 1024 agents, got 1025");
	free(json);
	free(agents);

	agents = many("a", CONFIG_MAX_AGENTS, "{}");
	xasprintf(&json, "{\"agents\":%s}", agents);
	cf = assert_accepted(json);
	assert_int_equal(cf->nagents, CONFIG_MAX_AGENTS);
	assert_non_null(config_agent(cf, "a1023"));
	config_free(cf);
	free(json);
	free(agents);
}

static void
test_teams(void **state)
{
	struct config		*cf;
	const struct team	*t;

	(void)state;
	cf = assert_accepted("{\"agents\":{\"a\":{},\"b\":{},\"c\":{}},"
	    "\"teams\":{\"dev\":{\"name\":\"Dev Team\",\"agents\":[\"a\","
	    "\"b\"],\"leader_agent\":\"b\"},\"ops\":{\"agents\":[\"c\"]}}}");
	assert_int_equal(cf->nteams, 2);
	t = config_team(cf, "dev");
	assert_non_null(t);
	assert_string_equal(t->name, "Dev Team");
	assert_int_equal(t->nagents, 2);
	assert_string_equal(t->agents[0], "a");
	assert_string_equal(t->agents[1], "b");
	assert_string_equal(t->leader, "b");
	t = config_team(cf, "ops");
	assert_non_null(t);
	assert_string_equal(t->name, "ops");
	/* The first member leads by default. */
	assert_string_equal(t->leader, "c");
	assert_null(config_team(cf, "a"));
	config_free(cf);
}

/* What TinyClaw's `agent remove` leaves behind: warnings, never an error. */
static void
test_team_missing_agents(void **state)
{
	struct config		*cf;
	const struct team	*t;

	(void)state;
	cf = assert_accepted("{\"agents\":{\"a\":{},\"c\":{}},"
	    "\"teams\":{\"dev\":{\"agents\":[\"a\",\"ghost\",\"c\"],"
	    "\"leader_agent\":\"ghost\"},\"gone\":{\"agents\":[\"x\"],"
	    "\"leader_agent\":\"x\"},\"ok\":{\"agents\":[\"c\"],"
	    "\"leader_agent\":\"a\"}}}");
	assert_int_equal(cf->nteams, 2);
	t = config_team(cf, "dev");
	assert_non_null(t);
	assert_int_equal(t->nagents, 2);
	assert_string_equal(t->agents[0], "a");
	assert_string_equal(t->agents[1], "c");
	assert_string_equal(t->leader, "a");
	assert_null(config_team(cf, "gone"));
	t = config_team(cf, "ok");
	assert_non_null(t);
	assert_string_equal(t->leader, "c");
	assert_string_equal(cf->warning,
	    "teams.dev.agents: no agent \"ghost\", dropped from the team; "
	    "teams.dev.leader_agent: \"ghost\" is not one of the team's "
	    "agents; \"a\" leads instead; "
	    "teams.gone.agents: no agent \"x\", dropped from the team; "
	    "teams.gone: no agent of the team exists, the team is ignored; "
	    "teams.ok.leader_agent: \"a\" is not one of the team's agents; "
	    "\"c\" leads instead");
	config_free(cf);
	/* Legacy mode: the only agent is "default". */
	cf = assert_accepted("{\"teams\":{\"t\":{\"agents\":[\"coder\"]}}}");
	assert_int_equal(cf->nteams, 0);
	assert_non_null(strstr(cf->warning, "no agent \"coder\""));
	config_free(cf);
}

static void
test_team_errors(void **state)
{
	static const char *const bad[][2] = {
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"bad team\":"
		  "{\"agents\":[\"a\"]}}}",
		  "teams.bad team: team id must be letters, digits, '.', '_' "
		  "or '-'" },
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"t\":[\"a\"]}}",
		  "teams.t: expected an object, got [\"a\"]" },
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"t\":{}}}",
		  "teams.t.agents: expected a non-empty array of strings, "
		  "got nothing" },
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"t\":{\"agents\":[]}}}",
		  "teams.t.agents: expected a non-empty array of strings, "
		  "got []" },
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"t\":{\"agents\":"
		  "\"a\"}}}",
		  "teams.t.agents: expected an array of strings, got \"a\"" },
		{ "{\"agents\":{\"a\":{}},\"teams\":{\"t\":{\"agents\":"
		  "[\"a\",{}]}}}",
		  "teams.t.agents[1]: expected a string, got {}" },
	};
	struct config	*cf;
	char		*teams, *json;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i][0], bad[i][1]);

	teams = many("t", CONFIG_MAX_TEAMS + 1, "{\"agents\":[\"a\"]}");
	xasprintf(&json, "{\"agents\":{\"a\":{}},\"teams\":%s}", teams);
	assert_refused(json, "teams: expected at most 1024 teams, got 1025");
	free(json);
	free(teams);
	teams = many("t", CONFIG_MAX_TEAMS, "{\"agents\":[\"a\"]}");
	xasprintf(&json, "{\"agents\":{\"a\":{}},\"teams\":%s}", teams);
	cf = assert_accepted(json);
	assert_int_equal(cf->nteams, CONFIG_MAX_TEAMS);
	config_free(cf);
	free(json);
	free(teams);
}

static void
assert_legacy(const char *json, enum provider prov, const char *model)
{
	struct config *cf;

	cf = assert_accepted(json);
	assert_int_equal(cf->nagents, 1);
	assert_string_equal(cf->agents[0].id, "default");
	assert_string_equal(cf->agents[0].name, "Default");
	assert_int_equal(cf->agents[0].provider, prov);
	assert_string_equal(cf->agents[0].model, model);
	assert_string_equal(cf->agents[0].workdir, "/ws/default");
	assert_int_equal(cf->agents[0].mode, MODE_INHERIT);
	assert_non_null(config_agent(cf, "default"));
	config_free(cf);
}

static void
test_legacy(void **state)
{
	(void)state;
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"}}", PROV_ANTHROPIC,
	    "sonnet");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"agents\":{}}",
	    PROV_ANTHROPIC, "sonnet");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":{}}",
	    PROV_ANTHROPIC, "sonnet");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"anthropic\":{\"model\":\"opus\"}}}", PROV_ANTHROPIC, "opus");
	/* An openai section alone means openai. */
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"openai\":{}}}", PROV_OPENAI, "gpt-5.3-codex");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"openai\":{\"model\":\"o4\"}}}", PROV_OPENAI, "o4");
	/* Both sections without a provider: anthropic, as TinyClaw. */
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"openai\":{\"model\":\"o4\"},\"anthropic\":{\"model\":"
	    "\"opus\"}}}", PROV_ANTHROPIC, "opus");
	/* An explicit provider wins. */
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"provider\":\"openai\",\"anthropic\":{\"model\":\"opus\"}}}",
	    PROV_OPENAI, "gpt-5.3-codex");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"provider\":\"anthropic\",\"openai\":{\"model\":\"o4\"}}}",
	    PROV_ANTHROPIC, "sonnet");
	/* Null sections and models are absent. */
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"provider\":null,\"openai\":null,\"anthropic\":{\"model\":"
	    "null}}}", PROV_ANTHROPIC, "sonnet");
	assert_legacy("{\"workspace\":{\"path\":\"/ws\"},\"models\":"
	    "{\"openai\":{\"model\":null}}}", PROV_OPENAI, "gpt-5.3-codex");

	assert_refused("{\"models\":{\"provider\":\"command\"}}",
	    "models.provider: expected one of \"anthropic\" or \"openai\", "
	    "got \"command\"");
	assert_refused("{\"models\":{\"provider\":3}}",
	    "models.provider: expected one of \"anthropic\" or \"openai\", "
	    "got 3");
	assert_refused("{\"models\":{\"anthropic\":{\"model\":[]}}}",
	    "models.anthropic.model: expected a string, got []");
}

static void
test_json_errors(void **state)
{
	static const char *const bad[][2] = {
		/* Strict parsing, as JSON.parse: trailing data is refused. */
		{ "{} {}", "/h/settings.json:1:4: not valid JSON: "
		  "unexpected character" },
		{ "{}x", "/h/settings.json:1:3: not valid JSON: unexpected "
		  "character" },
		{ "{\"sandbox\":{}}\n]", "/h/settings.json:2:1: not valid "
		  "JSON: unexpected character" },
		{ "{\"a\":1,}", "/h/settings.json:1:8: not valid JSON: "
		  "unexpected character" },
		{ "{\n  \"a\": 1\n  \"b\": 2\n}", "/h/settings.json:3:3: "
		  "not valid JSON: object value separator ',' expected" },
		/* Columns in characters, not bytes. */
		{ "{\"\u00e9\u00e9\": x}", "/h/settings.json:1:8: not valid "
		  "JSON: unexpected character" },
		{ "[]", "settings.json: expected a JSON object" },
		{ "\"settings\"", "settings.json: expected a JSON object" },
		{ "42\n", "settings.json: expected a JSON object" },
		{ "null\n", "settings.json: expected a JSON object" },
		/* json-c's strict mode takes these; JSON.parse does not. */
		{ "{'agents':{}}", "/h/settings.json:1:2: not valid JSON: a "
		  "single-quoted string" },
		{ "{\"a\":'x'}", "/h/settings.json:1:6: not valid JSON: a "
		  "single-quoted string" },
		{ "{\"sandbox\":", "/h/settings.json:1:12: not valid JSON: "
		  "unexpected end of file" },
		{ "", "/h/settings.json:1:1: not valid JSON: unexpected end of "
		  "file" },
	};
	struct config	*cf;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i][0], bad[i][1]);

	/* Syntax errors say what json-c found. */
	assert_null(cf = parse("{\"a\" 1}"));
	assert_true(strncmp(err, "/h/settings.json:1:6: not valid JSON: ",
	    38) == 0);
	assert_true(strlen(err) > 38);
	assert_null(cf = parse("{\"a\":tru}"));
	assert_true(strncmp(err, "/h/settings.json:1:", 19) == 0);

	/* Surrounding white space is fine; a NUL after the object is not. */
	cf = assert_accepted(" \n{}\n\n");
	config_free(cf);
	assert_null(cf = config_parse("{}\0{}", 5, "/h", err, sizeof(err)));
	assert_string_equal(err, "/h/settings.json:1:3: not valid JSON: "
	    "unexpected data after the JSON object");
}

static void
test_workspace(void **state)
{
	struct config *cf;

	(void)state;
	assert_refused("{\"workspace\":{\"path\":\"rel/ws\"}}",
	    "workspace.path: expected an absolute path, got \"rel/ws\"");
	assert_refused("{\"workspace\":{\"path\":\"\"}}",
	    "workspace.path: expected an absolute path, got \"\"");
	/* ~user is not expanded, so it is not absolute. */
	assert_refused("{\"workspace\":{\"path\":\"~bob/ws\"}}",
	    "workspace.path: expected an absolute path, got \"~bob/ws\"");
	cf = assert_accepted("{\"workspace\":{\"path\":\"~/ws\"}}");
	assert_string_equal(cf->workspace, TEST_HOME "/ws");
	config_free(cf);
	cf = assert_accepted("{\"workspace\":{\"path\":\"~\"}}");
	assert_string_equal(cf->workspace, TEST_HOME);
	config_free(cf);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(config_mode_name(MODE_HOST), "host");
	assert_string_equal(config_mode_name(MODE_DOCKER), "docker");
	assert_string_equal(config_mode_name(MODE_APPLE), "apple");
	assert_string_equal(config_mode_name(MODE_INHERIT), "inherit");
	assert_string_equal(config_provider_name(PROV_ANTHROPIC), "anthropic");
	assert_string_equal(config_provider_name(PROV_OPENAI), "openai");
	assert_string_equal(config_provider_name(PROV_COMMAND), "command");
}

static void
test_sandbox_json(void **state)
{
	struct config	*cf;
	json_object	*o, *d, *a, *v;

	(void)state;
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"docker\","
	    "\"timeout_seconds\":0,\"docker\":{\"network\":\"restricted\","
	    "\"pids_limit\":64},\"apple\":{\"network\":\"none\"}}}");
	o = config_sandbox_json(cf);
	assert_true(json_object_object_get_ex(o, "mode", &v));
	assert_string_equal(json_object_get_string(v), "docker");
	assert_true(json_object_object_get_ex(o, "timeout_seconds", &v));
	assert_int_equal(json_object_get_int64(v), 0);
	assert_true(json_object_object_get_ex(o, "max_waiters", &v));
	assert_int_equal(json_object_get_int64(v), 1000);
	assert_true(json_object_object_get_ex(o, "env_allowlist", &v));
	assert_int_equal(json_object_array_length(v), 4);
	assert_true(json_object_object_get_ex(o, "path_mapping_mode", &v));
	assert_string_equal(json_object_get_string(v), "mapped");
	assert_true(json_object_object_get_ex(o, "docker", &d));
	assert_true(json_object_object_get_ex(d, "network", &v));
	assert_string_equal(json_object_get_string(v), "restricted");
	assert_true(json_object_object_get_ex(d, "pids_limit", &v));
	assert_int_equal(json_object_get_int64(v), 64);
	assert_true(json_object_object_get_ex(o, "apple", &a));
	assert_true(json_object_object_get_ex(a, "network", &v));
	assert_string_equal(json_object_get_string(v), "none");
	assert_true(json_object_object_get_ex(a, "cpus", &v));
	assert_string_equal(json_object_get_string(v), "1");
	/* Apple's container has no --pids-limit. */
	assert_false(json_object_object_get_ex(a, "pids_limit", &v));
	json_object_put(o);
	config_free(cf);
}

/* sandbox.bwrap (SPEC §8): defaults, every key, errors naming the key. */
static void
test_bwrap(void **state)
{
	struct config	*cf;
	json_object	*o, *b, *v;

	(void)state;
	cf = assert_accepted("{}");
	assert_string_equal(cf->bwrap.runtime_command, "bwrap");
	assert_int_equal(cf->bwrap.network, NET_NONE);
	assert_string_equal(cf->bwrap.user, "auto");
	assert_int_equal(cf->bwrap.nro_paths, 0);
	assert_string_equal(cf->bwrap.memory, "2g");
	assert_string_equal(cf->bwrap.cpus, "1.0");
	assert_int_equal(cf->bwrap.pids_limit, 256);
	assert_int_equal(cf->bwrap.limits_best_effort, 0);
	assert_string_equal(cf->warning, "");
	config_free(cf);

	cf = assert_accepted("{\"sandbox\":{\"mode\":\"bwrap\",\"bwrap\":{"
	    "\"runtime_command\":\"/opt/bwrap\",\"network\":\"host\","
	    "\"user\":\"1000:1000\",\"ro_paths\":[\"/opt/tools\",\"/srv/x\"],"
	    "\"memory\":\"512m\",\"cpus\":0.5,\"pids_limit\":64,"
	    "\"limits\":\"best-effort\"}},\"agents\":{\"a\":{"
	    "\"sandbox_mode\":\"bwrap\"}}}");
	assert_int_equal(cf->mode, MODE_BWRAP);
	assert_int_equal(cf->agents[0].mode, MODE_BWRAP);
	assert_string_equal(config_mode_name(MODE_BWRAP), "bwrap");
	assert_string_equal(cf->bwrap.runtime_command, "/opt/bwrap");
	assert_int_equal(cf->bwrap.network, NET_HOST);
	assert_string_equal(cf->bwrap.user, "1000:1000");
	assert_int_equal(cf->bwrap.nro_paths, 2);
	assert_string_equal(cf->bwrap.ro_paths[1], "/srv/x");
	assert_string_equal(cf->bwrap.memory, "512m");
	assert_string_equal(cf->bwrap.cpus, "0.5");
	assert_int_equal(cf->bwrap.pids_limit, 64);
	assert_int_equal(cf->bwrap.limits_best_effort, 1);
	/* network host in use: said at every load. */
	assert_non_null(strstr(cf->warning, "sandbox.bwrap.network is "
	    "\"host\""));
	o = config_sandbox_json(cf);
	assert_true(json_object_object_get_ex(o, "mode", &v));
	assert_string_equal(json_object_get_string(v), "bwrap");
	assert_true(json_object_object_get_ex(o, "bwrap", &b));
	assert_true(json_object_object_get_ex(b, "network", &v));
	assert_string_equal(json_object_get_string(v), "host");
	assert_true(json_object_object_get_ex(b, "limits", &v));
	assert_string_equal(json_object_get_string(v), "best-effort");
	assert_true(json_object_object_get_ex(b, "ro_paths", &v));
	assert_int_equal(json_object_array_length(v), 2);
	assert_true(json_object_object_get_ex(b, "pids_limit", &v));
	assert_int_equal(json_object_get_int64(v), 64);
	assert_false(json_object_object_get_ex(b, "image", &v));
	json_object_put(o);
	config_free(cf);

	/* host unused by any agent: no warning. */
	cf = assert_accepted("{\"sandbox\":{\"bwrap\":{\"network\":\"host\"}}}");
	assert_string_equal(cf->warning, "");
	config_free(cf);

	assert_refused("{\"sandbox\":{\"mode\":\"bwarp\"}}",
	    "sandbox.mode: expected one of \"host\", \"docker\", \"apple\" or "
	    "\"bwrap\", got \"bwarp\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"network\":\"default\"}}}",
	    "sandbox.bwrap.network: expected one of \"none\" or \"host\", "
	    "got \"default\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"user\":\"0:0\"}}}",
	    "sandbox.bwrap.user: the agent never runs as root (uid 0), got "
	    "\"0:0\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"user\":\"me\"}}}",
	    "sandbox.bwrap.user: expected \"auto\" or \"UID:GID\", got \"me\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"ro_paths\":[\"rel\"]}}}",
	    "sandbox.bwrap.ro_paths[0]: expected an absolute path other than "
	    "/, got \"rel\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"ro_paths\":[\"/a\","
	    "\"/\"]}}}", "sandbox.bwrap.ro_paths[1]: expected an absolute "
	    "path other than /, got \"/\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"ro_paths\":[\"/a/..\"]}}}",
	    "sandbox.bwrap.ro_paths[0]: expected an absolute path other than "
	    "/, got \"/a/..\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"ro_paths\":[1]}}}",
	    "sandbox.bwrap.ro_paths[0]: expected a string, got 1");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"memory\":\"lots\"}}}",
	    "sandbox.bwrap.memory: expected a size of at least 4k such as "
	    "\"2g\", got \"lots\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"memory\":\"12\"}}}",
	    "sandbox.bwrap.memory: expected a size of at least 4k such as "
	    "\"2g\", got \"12\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"cpus\":\"0\"}}}",
	    "sandbox.bwrap.cpus: expected a decimal number of CPUs from 0.01 "
	    "to 4096 such as \"1.0\", got \"0\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"pids_limit\":-1}}}",
	    "sandbox.bwrap.pids_limit: expected an integer >= 0, got -1");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"limits\":\"loose\"}}}",
	    "sandbox.bwrap.limits: expected one of \"strict\" or "
	    "\"best-effort\", got \"loose\"");
	assert_refused("{\"sandbox\":{\"bwrap\":{\"runtime_command\":\"\"}}}",
	    "sandbox.bwrap.runtime_command: expected a program name, got \"\"");
	assert_refused("{\"sandbox\":{\"bwrap\":[]}}",
	    "sandbox.bwrap: expected an object, got []");
	assert_int_equal(config_memory_bytes("2g"), 2147483648LL);
	assert_int_equal(config_memory_bytes("512m"), 536870912LL);
	assert_int_equal(config_memory_bytes("64kb"), 65536);
	assert_int_equal(config_memory_bytes("100"), 100);
	assert_int_equal(config_memory_bytes("x"), -1);
	assert_int_equal(config_memory_bytes("99999999999999999999g"), -1);
}

/* config_load: the file on disk, in a scratch home. */
static int
home_setup(void **state)
{
	*state = unit_tmpdir();
	return 0;
}

static int
home_teardown(void **state)
{
	unit_rmtree(*state);
	free(*state);
	return 0;
}

static char *
settings_path(const char *home)
{
	char *p;

	xasprintf(&p, "%s/settings.json", home);
	return p;
}

static void
test_load_missing(void **state)
{
	const char	*home = *state;
	struct config	*cf;
	char		*want;

	cf = config_load(home, err, sizeof(err));
	assert_non_null(cf);
	xasprintf(&want, "%s/settings.json: no such file, running on "
	    "defaults", home);
	assert_string_equal(cf->warning, want);
	assert_int_equal(cf->timeout_seconds, 600);
	assert_int_equal(cf->mode, MODE_HOST);
	assert_string_equal(cf->home, home);
	assert_int_equal(cf->nagents, 1);
	free(want);
	config_free(cf);
}

static void
test_load_file(void **state)
{
	const char	*home = *state;
	struct config	*cf;
	char		*path;

	path = settings_path(home);
	unit_write(path, "{\"sandbox\":{\"mode\":\"docker\","
	    "\"max_attempts\":7}}\n", 0600);
	cf = config_load(home, err, sizeof(err));
	assert_non_null(cf);
	assert_int_equal(cf->mode, MODE_DOCKER);
	assert_int_equal(cf->max_attempts, 7);
	assert_string_equal(cf->warning, "");
	assert_string_equal(cf->path, path);
	config_free(cf);
	free(path);
}

static void
test_load_world_writable(void **state)
{
	const char	*home = *state;
	struct config	*cf;
	char		*path, *want;

	path = settings_path(home);
	unit_write(path, "{}", 0666);
	cf = config_load(home, err, sizeof(err));
	assert_non_null(cf);
	xasprintf(&want, "%s is world-writable: any local user can change "
	    "what runs; chmod o-w it", path);
	assert_string_equal(cf->warning, want);
	config_free(cf);
	free(want);

	/* Group-writable is the owner's business: no warning. */
	assert_int_equal(chmod(path, 0660), 0);
	cf = config_load(home, err, sizeof(err));
	assert_non_null(cf);
	assert_string_equal(cf->warning, "");
	config_free(cf);
	free(path);
}

static void
test_load_errors(void **state)
{
	const char	*home = *state;
	struct config	*cf;
	char		*path, *want_link, *want_dir, *want;

	path = settings_path(home);
	xasprintf(&want_link, "%s: cannot open: is a symbolic link", path);
	xasprintf(&want_dir, "%s: not a regular file", path);
	unit_write(path, "{\"sandbox\":{\"mode\":\"vm\"}}", 0600);
	assert_null(cf = config_load(home, err, sizeof(err)));
	assert_string_equal(err, "sandbox.mode: expected one of \"host\", "
	    "\"docker\", \"apple\" or \"bwrap\", got \"vm\"");

	/* The full path, line and column, as a compiler says it. */
	unit_write(path, "{\n  \"sandbox\": {\"mode\": \"host\",}\n}\n", 0600);
	assert_null(cf = config_load(home, err, sizeof(err)));
	xasprintf(&want, "%s:2:30: not valid JSON: unexpected character",
	    path);
	assert_string_equal(err, want);
	free(want);

	/* A symbolic link is refused, not followed. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	assert_null(cf = config_load(home, err, sizeof(err)));
	assert_string_equal(err, want_link);

	/* So is a directory. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_null(cf = config_load(home, err, sizeof(err)));
	assert_string_equal(err, want_dir);
	assert_int_equal(rmdir(path), 0);
	free(want_link);
	free(want_dir);
	free(path);
}

/* sandbox.egress (SPEC §9): defaults, every key, errors naming the key. */
static void
test_egress(void **state)
{
	struct config	*cf;
	json_object	*o, *e, *v, *p;

	(void)state;
	cf = assert_accepted("{}");
	assert_int_equal(cf->egress.mode, EGRESS_OFF);
	assert_int_equal(cf->egress.nallow, 0);
	assert_null(cf->egress.ca_file);
	assert_string_equal(cf->egress.providers[0].url,
	    "https://api.anthropic.com");
	assert_string_equal(cf->egress.providers[0].host, "api.anthropic.com");
	assert_int_equal(cf->egress.providers[0].port, 443);
	assert_string_equal(cf->egress.providers[0].path, "");
	assert_string_equal(cf->egress.providers[1].host, "api.openai.com");
	assert_int_equal(cf->egress.max_connections, 256);
	assert_int_equal(cf->egress.buffer_bytes, 262144);
	assert_int_equal(cf->egress.idle_timeout_seconds, 300);
	config_free(cf);

	cf = assert_accepted("{\"sandbox\":{\"mode\":\"bwrap\",\"egress\":{"
	    "\"mode\":\"proxy\",\"allow\":[\"registry.npmjs.org:443\","
	    "\"*.github.com:443\",\"10.1.2.3:8080\",\"[fd00::1]:22\"],"
	    "\"providers\":{\"anthropic\":{\"url\":\"https://127.0.0.1:8443/"
	    "\"},\"openai\":{\"url\":\"https://[::1]:9443/v1/\"}},"
	    "\"ca_file\":\"/etc/test-ca.pem\",\"max_connections\":8,"
	    "\"buffer_bytes\":4096,\"idle_timeout_seconds\":1},"
	    "\"docker\":{\"network\":\"default\"}}}");
	assert_int_equal(cf->egress.mode, EGRESS_PROXY);
	assert_int_equal(cf->egress.nallow, 4);
	assert_string_equal(cf->egress.allow[0].host, "registry.npmjs.org");
	assert_int_equal(cf->egress.allow[0].port, 443);
	assert_false(cf->egress.allow[0].wildcard);
	assert_false(cf->egress.allow[0].literal);
	assert_string_equal(cf->egress.allow[1].host, ".github.com");
	assert_true(cf->egress.allow[1].wildcard);
	assert_true(cf->egress.allow[2].literal);
	assert_int_equal(cf->egress.allow[2].port, 8080);
	assert_string_equal(cf->egress.allow[3].host, "fd00::1");
	assert_true(cf->egress.allow[3].literal);
	assert_string_equal(cf->egress.providers[0].host, "127.0.0.1");
	assert_int_equal(cf->egress.providers[0].port, 8443);
	assert_string_equal(cf->egress.providers[0].path, "");
	assert_string_equal(cf->egress.providers[1].host, "::1");
	assert_int_equal(cf->egress.providers[1].port, 9443);
	assert_string_equal(cf->egress.providers[1].path, "/v1");
	assert_string_equal(cf->egress.ca_file, "/etc/test-ca.pem");
	assert_int_equal(cf->egress.max_connections, 8);
	assert_int_equal(cf->egress.buffer_bytes, 4096);
	assert_int_equal(cf->egress.idle_timeout_seconds, 1);
	o = config_sandbox_json(cf);
	assert_true(json_object_object_get_ex(o, "egress", &e));
	assert_true(json_object_object_get_ex(e, "mode", &v));
	assert_string_equal(json_object_get_string(v), "proxy");
	assert_true(json_object_object_get_ex(e, "allow", &v));
	assert_int_equal(json_object_array_length(v), 4);
	assert_string_equal(json_object_get_string(
	    json_object_array_get_idx(v, 1)), "*.github.com:443");
	assert_string_equal(json_object_get_string(
	    json_object_array_get_idx(v, 3)), "[fd00::1]:22");
	assert_true(json_object_object_get_ex(e, "providers", &p));
	assert_true(json_object_object_get_ex(p, "openai", &p));
	assert_true(json_object_object_get_ex(p, "url", &v));
	assert_string_equal(json_object_get_string(v),
	    "https://[::1]:9443/v1/");
	assert_true(json_object_object_get_ex(e, "sandbox_network", &v));
	assert_string_equal(json_object_get_string(v), "none + the proxy");
	assert_true(json_object_object_get_ex(e, "ca_file", &v));
	assert_string_equal(json_object_get_string(v), "/etc/test-ca.pem");
	json_object_put(o);
	config_free(cf);

	/* docker mode and an agent in bwrap: accepted. */
	cf = assert_accepted("{\"sandbox\":{\"mode\":\"docker\",\"egress\":{"
	    "\"mode\":\"proxy\"}},\"agents\":{\"a\":{\"sandbox_mode\":"
	    "\"bwrap\"}}}");
	config_free(cf);
	/* off: any mode, bwrap host included. */
	cf = assert_accepted("{\"sandbox\":{\"egress\":{\"mode\":\"off\"},"
	    "\"bwrap\":{\"network\":\"host\"}}}");
	config_free(cf);

	assert_refused("{\"sandbox\":{\"egress\":{\"mode\":\"proxy\"}}}",
	    "sandbox.egress.mode: \"proxy\" needs a docker, podman or bwrap "
	    "sandbox, got sandbox.mode \"host\"");
	assert_refused("{\"sandbox\":{\"mode\":\"apple\",\"egress\":{\"mode\":"
	    "\"proxy\"}}}", "sandbox.egress.mode: \"proxy\" needs a docker, "
	    "podman or bwrap sandbox, got sandbox.mode \"apple\"");
	assert_refused("{\"sandbox\":{\"mode\":\"docker\",\"egress\":{\"mode\":"
	    "\"proxy\"}},\"agents\":{\"h\":{\"sandbox_mode\":\"host\"}}}",
	    "agents.h.sandbox_mode: \"host\" cannot be used with "
	    "sandbox.egress.mode \"proxy\" (it needs a docker, podman or bwrap "
	    "sandbox)");
	assert_refused("{\"sandbox\":{\"mode\":\"bwrap\",\"egress\":{\"mode\":"
	    "\"proxy\"},\"bwrap\":{\"network\":\"host\"}}}",
	    "sandbox.bwrap.network: \"host\" cannot be used with "
	    "sandbox.egress.mode \"proxy\": the sandbox would reach the "
	    "network around the proxy");
	assert_refused("{\"sandbox\":{\"egress\":[]}}",
	    "sandbox.egress: expected an object");
	assert_refused("{\"sandbox\":{\"egress\":{\"mode\":\"on\"}}}",
	    "sandbox.egress.mode: expected one of \"off\" or \"proxy\", got "
	    "\"on\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"mode\":1}}}",
	    "sandbox.egress.mode: expected one of \"off\" or \"proxy\", got 1");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":\"x:1\"}}}",
	    "sandbox.egress.allow: expected an array of \"host:port\" strings, "
	    "got \"x:1\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"a.com:443\","
	    "\"b.com\"]}}}", "sandbox.egress.allow[1]: expected \"host:port\", "
	    "\"*.domain:port\", \"IPv4:port\" or \"[IPv6]:port\", got "
	    "\"b.com\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"a.com:0\"]}}}",
	    "sandbox.egress.allow[0]: expected \"host:port\", \"*.domain:port\""
	    ", \"IPv4:port\" or \"[IPv6]:port\", got \"a.com:0\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"a.com:65536\""
	    "]}}}", "sandbox.egress.allow[0]: expected \"host:port\", "
	    "\"*.domain:port\", \"IPv4:port\" or \"[IPv6]:port\", got "
	    "\"a.com:65536\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"::1:22\"]}}}",
	    "sandbox.egress.allow[0]: expected \"host:port\", \"*.domain:port\""
	    ", \"IPv4:port\" or \"[IPv6]:port\", got \"::1:22\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"*.10.0.0.1:1\""
	    "]}}}", "sandbox.egress.allow[0]: expected \"host:port\", "
	    "\"*.domain:port\", \"IPv4:port\" or \"[IPv6]:port\", got "
	    "\"*.10.0.0.1:1\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[\"a_b.com:1\"]}}}",
	    "sandbox.egress.allow[0]: expected \"host:port\", \"*.domain:port\""
	    ", \"IPv4:port\" or \"[IPv6]:port\", got \"a_b.com:1\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"allow\":[2]}}}",
	    "sandbox.egress.allow[0]: expected \"host:port\", \"*.domain:port\""
	    ", \"IPv4:port\" or \"[IPv6]:port\", got 2");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"anthropc\":"
	    "{}}}}}", "sandbox.egress.providers: expected \"anthropic\" or "
	    "\"openai\", got \"anthropc\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"openai\":"
	    "\"https://x\"}}}}", "sandbox.egress.providers.openai: expected an "
	    "object, got \"https://x\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"openai\":{"
	    "\"url\":\"http://api.openai.com\"}}}}}",
	    "sandbox.egress.providers.openai.url: expected an https:// URL (the "
	    "key never travels in clear), got \"http://api.openai.com\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"anthropic\":"
	    "{\"url\":\"https://u@h\"}}}}}", "sandbox.egress.providers."
	    "anthropic.url: expected https://HOST[:PORT][/PATH], got "
	    "\"https://u@h\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"anthropic\":"
	    "{\"url\":\"https://h/p?q=1\"}}}}}", "sandbox.egress.providers."
	    "anthropic.url: expected a path without query, fragment, escapes "
	    "or spaces, got \"https://h/p?q=1\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"providers\":{\"anthropic\":"
	    "{\"url\":5}}}}}", "sandbox.egress.providers.anthropic.url: "
	    "expected a string, got 5");
	assert_refused("{\"sandbox\":{\"egress\":{\"ca_file\":\"ca.pem\"}}}",
	    "sandbox.egress.ca_file: expected an absolute path or null, got "
	    "\"ca.pem\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"max_connections\":0}}}",
	    "sandbox.egress.max_connections: expected an integer between 1 and "
	    "65536, got 0");
	assert_refused("{\"sandbox\":{\"egress\":{\"buffer_bytes\":\"1m\"}}}",
	    "sandbox.egress.buffer_bytes: expected an integer between 4096 and "
	    "67108864, got \"1m\"");
	assert_refused("{\"sandbox\":{\"egress\":{\"idle_timeout_seconds\":"
	    "-1}}}", "sandbox.egress.idle_timeout_seconds: expected an integer "
	    "between 1 and 86400, got -1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_null_is_absent),
		cmocka_unit_test(test_zero_kept),
		cmocka_unit_test(test_int_wrong_type),
		cmocka_unit_test(test_int_negative),
		cmocka_unit_test(test_int_bounds),
		cmocka_unit_test(test_int_overflow_as_written),
		cmocka_unit_test(test_max_attempts),
		cmocka_unit_test(test_string_wrong_type),
		cmocka_unit_test(test_string_nul),
		cmocka_unit_test(test_long_value_cut),
		cmocka_unit_test(test_object_wrong_type),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_network_restricted),
		cmocka_unit_test(test_runtime_values),
		cmocka_unit_test(test_runtime_accepted),
		cmocka_unit_test(test_apple_cpus),
		cmocka_unit_test(test_env_allowlist),
		cmocka_unit_test(test_array_limits),
		cmocka_unit_test(test_agents),
		cmocka_unit_test(test_agent_errors),
		cmocka_unit_test(test_agent_limit),
		cmocka_unit_test(test_teams),
		cmocka_unit_test(test_team_missing_agents),
		cmocka_unit_test(test_team_errors),
		cmocka_unit_test(test_legacy),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_workspace),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sandbox_json),
		cmocka_unit_test(test_bwrap),
		cmocka_unit_test(test_egress),
		cmocka_unit_test_setup_teardown(test_load_missing, home_setup,
		    home_teardown),
		cmocka_unit_test_setup_teardown(test_load_file, home_setup,
		    home_teardown),
		cmocka_unit_test_setup_teardown(test_load_world_writable,
		    home_setup, home_teardown),
		cmocka_unit_test_setup_teardown(test_load_errors, home_setup,
		    home_teardown),
	};

	return cmocka_run_group_tests_name("config", tests, group_setup,
	    NULL);
}
