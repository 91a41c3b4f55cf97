/*
 * What each provider runs and how its output becomes a reply
 * (common/provider.c): the exact TinyClaw argv, model aliases, {message}
 * substitution, and the codex JSONL reply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider.h"
#include "util.h"

static void
job_init(struct job *j, enum provider p, const char *model, int reset)
{
	memset(j, 0, sizeof(*j));
	j->provider = p;
	j->model = (char *)model;
	j->reset = reset;
	j->message = "hello there";
}

static void
check_argv(const struct job *j, const char *const *want, const char *file,
    int line)
{
	char	**v;
	size_t	  argc = 12345, n, i;

	for (n = 0; want[n] != NULL; n++)
		;
	v = provider_argv(j, &argc);
	for (i = 0; i < n && v[i] != NULL; i++)
		if (strcmp(v[i], want[i]) != 0) {
			print_error("argv[%zu] \"%s\", wanted \"%s\"\n", i,
			    v[i], want[i]);
			argv_free(v);
			_fail(file, line);
		}
	if (argc != n || i != n || v[n] != NULL) {
		print_error("argc %zu, wanted %zu\n", argc, n);
		argv_free(v);
		_fail(file, line);
	}
	argv_free(v);
}
#define assert_argv(j, ...) do {					\
	static const char *const want_[] = { __VA_ARGS__, NULL };	\
	check_argv(j, want_, __FILE__, __LINE__);			\
} while (0)

static void
test_anthropic_argv(void **state)
{
	struct job j;

	(void)state;
	job_init(&j, PROV_ANTHROPIC, "sonnet", 0);
	assert_argv(&j, "claude", "--dangerously-skip-permissions", "--model",
	    "claude-sonnet-4-5", "-c", "-p", "--", "hello there");
	job_init(&j, PROV_ANTHROPIC, "opus", 1);
	assert_argv(&j, "claude", "--dangerously-skip-permissions", "--model",
	    "claude-opus-4-6", "-p", "--", "hello there");
	job_init(&j, PROV_ANTHROPIC, NULL, 0);
	assert_argv(&j, "claude", "--dangerously-skip-permissions", "-c",
	    "-p", "--", "hello there");
	job_init(&j, PROV_ANTHROPIC, "claude-3-haiku", 1);
	assert_argv(&j, "claude", "--dangerously-skip-permissions", "--model",
	    "claude-3-haiku", "-p", "--", "hello there");
	/* A message that looks like an option stays the -p argument. */
	job_init(&j, PROV_ANTHROPIC, NULL, 1);
	j.message = "--help";
	assert_argv(&j, "claude", "--dangerously-skip-permissions", "-p",
	    "--", "--help");
}

static void
test_openai_argv(void **state)
{
	struct job j;

	(void)state;
	job_init(&j, PROV_OPENAI, "gpt-5.3-codex", 0);
	assert_argv(&j, "codex", "exec", "resume", "--last", "--model",
	    "gpt-5.3-codex", "--skip-git-repo-check",
	    "--dangerously-bypass-approvals-and-sandbox", "--json",
	    "--", "hello there");
	job_init(&j, PROV_OPENAI, "gpt-5.3-codex", 1);
	assert_argv(&j, "codex", "exec", "--model", "gpt-5.3-codex",
	    "--skip-git-repo-check",
	    "--dangerously-bypass-approvals-and-sandbox", "--json",
	    "--", "hello there");
	job_init(&j, PROV_OPENAI, NULL, 0);
	assert_argv(&j, "codex", "exec", "resume", "--last",
	    "--skip-git-repo-check",
	    "--dangerously-bypass-approvals-and-sandbox", "--json",
	    "--", "hello there");
	/* The aliases are claude's: codex gets its model as written. */
	job_init(&j, PROV_OPENAI, "sonnet", 1);
	assert_argv(&j, "codex", "exec", "--model", "sonnet",
	    "--skip-git-repo-check",
	    "--dangerously-bypass-approvals-and-sandbox", "--json",
	    "--", "hello there");
}

static void
test_command_argv(void **state)
{
	char		*cmd[] = { "/usr/bin/agent", "--in", "{message}",
			    "x{message}", "{message}", "{MESSAGE}", NULL };
	char		*one[] = { "date", NULL };
	struct job	 j;

	(void)state;
	job_init(&j, PROV_COMMAND, "ignored", 0);
	j.command = cmd;
	j.ncommand = 6;
	/* Only a whole "{message}" element is replaced, each time. */
	assert_argv(&j, "/usr/bin/agent", "--in", "hello there", "x{message}",
	    "hello there", "{MESSAGE}");
	j.command = one;
	j.ncommand = 1;
	assert_argv(&j, "date");
	/* The message is not split or interpreted. */
	j.command = cmd;
	j.ncommand = 3;
	j.message = "a b; rm -rf / $(x) {message}";
	assert_argv(&j, "/usr/bin/agent", "--in",
	    "a b; rm -rf / $(x) {message}");
}

static void
test_argv_null_argc(void **state)
{
	struct job	  j;
	char		**v;

	(void)state;
	job_init(&j, PROV_ANTHROPIC, NULL, 1);
	v = provider_argv(&j, NULL);
	assert_string_equal(v[0], "claude");
	assert_string_equal(v[3], "--");
	assert_string_equal(v[4], "hello there");
	assert_null(v[5]);
	argv_free(v);
	argv_free(NULL);
}

static void
test_model_aliases(void **state)
{
	(void)state;
	assert_string_equal(provider_model_id("sonnet"), "claude-sonnet-4-5");
	assert_string_equal(provider_model_id("opus"), "claude-opus-4-6");
	assert_string_equal(provider_model_id("claude-opus-4-6"),
	    "claude-opus-4-6");
	assert_string_equal(provider_model_id("Sonnet"), "Sonnet");
	assert_string_equal(provider_model_id("haiku"), "haiku");
	assert_string_equal(provider_model_id(""), "");
	assert_null(provider_model_id(NULL));
}

static void
check_codex(const char *jsonl, const char *want, const char *file, int line)
{
	char *r;

	r = codex_parse(jsonl, strlen(jsonl));
	if (want == NULL && r == NULL)
		return;
	if (want == NULL || r == NULL || strcmp(r, want) != 0) {
		print_error("codex reply \"%s\", wanted \"%s\"\n",
		    r != NULL ? r : "(null)", want != NULL ? want : "(null)");
		free(r);
		_fail(file, line);
		return;
	}
	free(r);
}
#define assert_codex(jsonl, want) check_codex(jsonl, want, __FILE__, __LINE__)

static void
test_codex_parse(void **state)
{
	(void)state;
	/* A real-looking session: only agent_message items count. */
	assert_codex(
	    "{\"type\":\"thread.started\",\"thread_id\":\"t1\"}\n"
	    "{\"type\":\"turn.started\"}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"id\":\"i0\",\"type\":"
	    "\"reasoning\",\"text\":\"thinking\"}}\n"
	    "{\"type\":\"item.started\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"partial\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"id\":\"i1\",\"type\":"
	    "\"command_execution\",\"command\":\"ls\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"id\":\"i2\",\"type\":"
	    "\"agent_message\",\"text\":\"Hello!\"}}\n"
	    "{\"type\":\"turn.completed\",\"usage\":{}}\n",
	    "Hello!");
	/* Several messages, in order, joined by a blank line. */
	assert_codex(
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"one\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"two\\nlines\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"three\"}}\n",
	    "one\n\ntwo\nlines\n\nthree");
	/* Lines that are not JSON are skipped; no final newline needed. */
	assert_codex(
	    "Reading prompt from stdin...\n"
	    "\n"
	    "{not json\n"
	    "[1,2,3]\n"
	    "\"a string\"\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"  padded  \"}}",
	    "padded");
	/* CRLF line ends. */
	assert_codex(
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"a\"}}\r\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"b\"}}\r\n",
	    "a\n\nb");
	/* Malformed events are ignored, not fatal. */
	assert_codex(
	    "{\"type\":\"item.completed\"}\n"
	    "{\"type\":\"item.completed\",\"item\":\"agent_message\"}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":"
	    "\"agent_message\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":42}}\n"
	    "{\"type\":7,\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"x\"}}\n"
	    "{\"item\":{\"type\":\"agent_message\",\"text\":\"x\"}}\n",
	    NULL);
	assert_codex("", NULL);
	assert_codex("\n\n\n", NULL);
	assert_codex("{\"type\":\"turn.failed\",\"error\":{\"message\":"
	    "\"quota\"}}\n", NULL);
}

static void
test_codex_len(void **state)
{
	static const char text[] =
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"first\"}}\n"
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"second\"}}\n";
	char *r;

	(void)state;
	/* Only len bytes count: the second event is cut off. */
	r = codex_parse(text, strchr(text, '\n') - text + 20);
	assert_non_null(r);
	assert_string_equal(r, "first");
	free(r);
}

static void
test_provider_reply(void **state)
{
	static const char codex[] =
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"from codex\"}}\n";
	static const char nul[] =
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"bad \\u0000 rest\"}}\n";
	static const char blank[] =
	    "{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\","
	    "\"text\":\"  \"}}\n";
	struct job	 j;
	char		*r;

	(void)state;
	job_init(&j, PROV_ANTHROPIC, NULL, 0);
	r = provider_reply(&j, "\n  Hi there.\n\n", 14);
	assert_string_equal(r, "Hi there.");
	free(r);
	/* Binary-safe length: the reply stops at len. */
	r = provider_reply(&j, "abcdef", 3);
	assert_string_equal(r, "abc");
	free(r);
	r = provider_reply(&j, "", 0);
	assert_string_equal(r, "");
	free(r);
	/* A NUL or an invalid byte is U+FFFD, not the end of the reply. */
	r = provider_reply(&j, "bad \0 rest\xff", 11);
	assert_string_equal(r, "bad \xef\xbf\xbd rest\xef\xbf\xbd");
	free(r);

	job_init(&j, PROV_COMMAND, NULL, 0);
	r = provider_reply(&j, "plain stdout\n", 13);
	assert_string_equal(r, "plain stdout");
	free(r);

	job_init(&j, PROV_OPENAI, NULL, 0);
	r = provider_reply(&j, codex, sizeof(codex) - 1);
	assert_string_equal(r, "from codex");
	free(r);
	r = provider_reply(&j, nul, sizeof(nul) - 1);
	assert_string_equal(r, "bad \xef\xbf\xbd rest");
	free(r);
	/* No message at all, or only an empty one: the TinyClaw fallback. */
	r = provider_reply(&j, "garbage\n", 8);
	assert_string_equal(r, CODEX_EMPTY_REPLY);
	free(r);
	r = provider_reply(&j, blank, sizeof(blank) - 1);
	assert_string_equal(r, CODEX_EMPTY_REPLY);
	free(r);
}

/* clawvisor exec: the caller's argv, paths inside the workdir mapped in a
 * sandbox with path_mapping_mode mapped, the CLI's path dropped in an
 * image. */
static void
test_exec_argv(void **state)
{
	char		*argv[] = { "/opt/bin/claude", "-p", "/w/alpha/src/a.c",
			    "/w/alpha", "/w/alphabet/x", "--", "/etc/passwd",
			    NULL };
	struct job	 j;
	static const char *const host[] = { "/opt/bin/claude", "-p",
	    "/w/alpha/src/a.c", "/w/alpha", "/w/alphabet/x", "--",
	    "/etc/passwd", NULL };
	static const char *const bwrap[] = { "/opt/bin/claude", "-p",
	    "/workspace/src/a.c", "/workspace", "/w/alphabet/x", "--",
	    "/etc/passwd", NULL };
	static const char *const docker[] = { "claude", "-p",
	    "/workspace/src/a.c", "/workspace", "/w/alphabet/x", "--",
	    "/etc/passwd", NULL };

	(void)state;
	job_init(&j, PROV_ANTHROPIC, "sonnet", 0);
	j.workdir = "/w/alpha";
	j.exec_argv = argv;
	j.nexec = 7;
	j.mode = MODE_HOST;
	j.path_mapping = MAP_MAPPED;
	check_argv(&j, host, __FILE__, __LINE__);
	j.mode = MODE_BWRAP;
	check_argv(&j, bwrap, __FILE__, __LINE__);
	j.path_mapping = MAP_SAME_PATH;
	check_argv(&j, host, __FILE__, __LINE__);
	j.mode = MODE_DOCKER;
	j.path_mapping = MAP_MAPPED;
	check_argv(&j, docker, __FILE__, __LINE__);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anthropic_argv),
		cmocka_unit_test(test_exec_argv),
		cmocka_unit_test(test_openai_argv),
		cmocka_unit_test(test_command_argv),
		cmocka_unit_test(test_argv_null_argc),
		cmocka_unit_test(test_model_aliases),
		cmocka_unit_test(test_codex_parse),
		cmocka_unit_test(test_codex_len),
		cmocka_unit_test(test_provider_reply),
	};

	return cmocka_run_group_tests_name("provider", tests, NULL, NULL);
}
