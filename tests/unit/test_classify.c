/*
 * Outcome classification (classify() in common/provider.c): every rule of the
 * SPEC §5 table, the order in which the rules apply, and what the error text
 * keeps of stderr.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider.h"

struct rule {
	const char	*name;
	int		 exec_errno;
	int		 exited;
	int		 exit_code;
	int		 signal;
	int		 timed_out;
	int		 container;
	const char	*err_text;
	enum outcome	 want;
	const char	*why;		/* expected text, or NULL */
};

static const struct rule rules[] = {
	{ "exec ENOENT", ENOENT, 0, 0, 0, 0, 0, NULL, OUT_TERMINAL,
	  "cannot execute prog: No such file or directory" },
	{ "exec EACCES", EACCES, 0, 0, 0, 0, 0, NULL, OUT_TERMINAL,
	  "cannot execute prog: Permission denied" },
	{ "exec ENOEXEC", ENOEXEC, 0, 0, 0, 0, 0, NULL, OUT_TERMINAL, NULL },
	{ "exec ENOMEM", ENOMEM, 0, 0, 0, 0, 0, NULL, OUT_TRANSIENT,
	  "cannot execute prog: Cannot allocate memory" },
	{ "exec EAGAIN", EAGAIN, 0, 0, 0, 0, 0, NULL, OUT_TRANSIENT, NULL },
	{ "exec EMFILE", EMFILE, 0, 0, 0, 0, 0, NULL, OUT_TRANSIENT, NULL },
	{ "exec ETXTBSY", ETXTBSY, 0, 0, 0, 0, 0, NULL, OUT_TRANSIENT, NULL },
	/* An exec failure in a container mode: the runtime binary vanished. */
	{ "container exec ENOENT", ENOENT, 0, 0, 0, 0, 1, NULL, OUT_TERMINAL,
	  NULL },

	{ "exit 0", 0, 1, 0, 0, 0, 0, NULL, OUT_OK, "" },
	{ "exit 0 with noise", 0, 1, 0, 0, 0, 0,
	  "warning: unauthorized locale\n", OUT_OK, "" },
	{ "container exit 0", 0, 1, 0, 0, 0, 1, "", OUT_OK, "" },
	{ "exit 1", 0, 1, 1, 0, 0, 0, NULL, OUT_TRANSIENT, "prog exit 1" },
	{ "exit 2 with stderr", 0, 1, 2, 0, 0, 0,
	  "rate limited, try later\n", OUT_TRANSIENT,
	  "prog exit 2: rate limited, try later" },
	{ "exit 255", 0, 1, 255, 0, 0, 0, NULL, OUT_TRANSIENT, NULL },
	{ "exit 126", 0, 1, 126, 0, 0, 0, NULL, OUT_TERMINAL,
	  "prog exit 126 (command not executable)" },
	{ "exit 127", 0, 1, 127, 0, 0, 0, "sh: claude: not found\n",
	  OUT_TERMINAL, "prog exit 127 (command not found): sh: claude: "
	  "not found" },
	{ "container exit 127", 0, 1, 127, 0, 0, 1, NULL, OUT_TERMINAL,
	  NULL },
	{ "container exit 126", 0, 1, 126, 0, 0, 1, NULL, OUT_TERMINAL,
	  NULL },
	/* The engine's own error line on the host's set-up: not the image. */
	{ "engine: slirp4netns", 0, 1, 126, 0, 0, 1,
	  "Error: /usr/bin/slirp4netns failed: \"open(\\\"/dev/net/tun\\\"): "
	  "Permission denied\"\n", OUT_TERMINAL,
	  "container engine error (docker exit 126, not the image's): Error: "
	  "/usr/bin/slirp4netns failed: \"open(\\\"/dev/net/tun\\\"): "
	  "Permission denied\"" },
	{ "engine: rlimit", 0, 1, 126, 0, 0, 1,
	  "time=\"2026-12-07T01:02:03Z\" level=warning msg=\"x\"\n"
	  "Error: runc: runc create failed: unable to start container "
	  "process: error during container init: error setting rlimits for "
	  "ready process: error setting rlimit type 7: operation not "
	  "permitted: OCI permission denied\n", OUT_TERMINAL,
	  "container engine error (docker exit 126, not the image's): Error: "
	  "runc: runc create failed: unable to start container process: "
	  "error during container init: error setting rlimits for ready "
	  "process: error setting rlimit type 7: operation not permitted: "
	  "OCI permission denied" },
	{ "engine: docker daemon, cgroups", 0, 1, 125, 0, 0, 1,
	  "docker: Error response from daemon: failed to create task for "
	  "container: failed to create shim task: OCI runtime create failed: "
	  "cgroups: cgroup mountpoint does not exist: unknown.\n",
	  OUT_TERMINAL, NULL },
	{ "engine: subuid", 0, 1, 125, 0, 0, 1,
	  "Error: cannot set up namespace using \"/usr/bin/newuidmap\": "
	  "exit status 1\n", OUT_TERMINAL, NULL },
	/* The image's own problem stays one: exit 127, no engine line. */
	{ "image: command not found", 0, 1, 127, 0, 0, 1,
	  "Error: runc create failed: unable to start container process: "
	  "exec: \"claude\": executable file not found in $PATH: OCI runtime "
	  "attempted to invoke a command that was not found\n", OUT_TERMINAL,
	  "docker exit 127 (command not found): Error: runc create failed: "
	  "unable to start container process: exec: \"claude\": executable "
	  "file not found in $PATH: OCI runtime attempted to invoke a command "
	  "that was not found" },
	/* A CLI's own exit with such words is the CLI's. */
	{ "cli exit 1 saying cgroup", 0, 1, 1, 0, 0, 1,
	  "Error: cgroup v1 is deprecated\n", OUT_TRANSIENT,
	  "docker exit 1: Error: cgroup v1 is deprecated" },

	{ "timeout", 0, 0, 0, SIGKILL, 1, 0, NULL, OUT_TRANSIENT,
	  "prog timed out; no output" },
	{ "timeout after exit", 0, 1, 0, 0, 1, 0, NULL, OUT_TRANSIENT,
	  "prog timed out; no output" },
	{ "timeout in container", 0, 1, 137, 0, 1, 1, NULL, OUT_TRANSIENT,
	  "docker timed out; no output" },
	/* Its last line on stderr, whatever it says (not only errors). */
	{ "timeout with stderr", 0, 0, 0, SIGKILL, 1, 0,
	  "Retrying in 8 s (attempt 3/10)\n\n", OUT_TRANSIENT,
	  "prog timed out; last stderr: Retrying in 8 s (attempt 3/10)" },
	{ "SIGKILL", 0, 0, 0, SIGKILL, 0, 0, NULL, OUT_TRANSIENT,
	  "prog killed by signal 9 (Killed)" },
	{ "SIGSEGV", 0, 0, 0, SIGSEGV, 0, 0, "boom\n", OUT_TRANSIENT,
	  "prog killed by signal 11 (Segmentation fault): boom" },
	/* A signal wins over an auth message on stderr. */
	{ "SIGTERM with auth text", 0, 0, 0, SIGTERM, 0, 0,
	  "Invalid API key\n", OUT_TRANSIENT, NULL },

	{ "auth: invalid api key", 0, 1, 1, 0, 0, 0,
	  "Invalid API key \xc2\xb7 Please run /login\n", OUT_TERMINAL,
	  "prog exit 1: authentication failed: Invalid API key \xc2\xb7 "
	  "Please run /login" },
	{ "auth: 401", 0, 1, 1, 0, 0, 0, "Error: 401 Unauthorized\n",
	  OUT_TERMINAL, NULL },
	{ "auth: authentication_error", 0, 1, 1, 0, 0, 0,
	  "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\"}}",
	  OUT_TERMINAL, NULL },
	{ "auth: openai incorrect key", 0, 1, 1, 0, 0, 0,
	  "Incorrect API key provided: sk-...\n", OUT_TERMINAL, NULL },
	{ "auth: invalid_api_key", 0, 1, 2, 0, 0, 0,
	  "code: invalid_api_key\n", OUT_TERMINAL, NULL },
	{ "auth: not logged in", 0, 1, 1, 0, 0, 0, "You are NOT LOGGED IN\n",
	  OUT_TERMINAL, NULL },
	{ "auth inside a container", 0, 1, 1, 0, 0, 1,
	  "authentication failed\n", OUT_TERMINAL, NULL },

	{ "125 unknown flag", 0, 1, 125, 0, 0, 1,
	  "unknown flag: --pids-limit\nSee 'docker run --help'.\n",
	  OUT_TERMINAL, "docker refused to start the container (exit 125): "
	  "See 'docker run --help'." },
	{ "125 unknown shorthand flag", 0, 1, 125, 0, 0, 1,
	  "unknown shorthand flag: 'x' in -x\n", OUT_TERMINAL, NULL },
	{ "125 no such image", 0, 1, 125, 0, 0, 1,
	  "Unable to find image 'x:1' locally\nError response from daemon: "
	  "No such image: x:1\n", OUT_TERMINAL, NULL },
	{ "125 invalid reference format", 0, 1, 125, 0, 0, 1,
	  "docker: invalid reference format: repository name must be "
	  "lowercase.\n", OUT_TERMINAL, NULL },
	{ "125 pull access denied", 0, 1, 125, 0, 0, 1,
	  "pull access denied for tinyclaw/agent-runner\n", OUT_TERMINAL,
	  NULL },
	{ "125 podman image not known", 0, 1, 125, 0, 0, 1,
	  "Error: tinyclaw/x: image not known\n", OUT_TERMINAL, NULL },
	{ "125 manifest unknown", 0, 1, 125, 0, 0, 1,
	  "manifest unknown: manifest unknown\n", OUT_TERMINAL, NULL },
	{ "125 other", 0, 1, 125, 0, 0, 1,
	  "docker: Error response from daemon: failed to create task.\n",
	  OUT_TRANSIENT, "docker refused to start the container (exit 125): "
	  "docker: Error response from daemon: failed to create task." },
	{ "125 no stderr", 0, 1, 125, 0, 0, 1, NULL, OUT_TRANSIENT, NULL },
	/* 125 only means "the runtime refused" in a container mode... */
	{ "host exit 125 other", 0, 1, 125, 0, 0, 0,
	  "something went wrong\n", OUT_TRANSIENT, NULL },
	/* ...but a CLI refusing its own flags is terminal in any mode. */
	{ "host unknown flag", 0, 1, 125, 0, 0, 0,
	  "unknown flag: --x\n", OUT_TERMINAL, NULL },
	{ "claude unknown option", 0, 1, 1, 0, 0, 0,
	  "error: unknown option '--bogus'\n", OUT_TERMINAL, NULL },
	{ "codex unexpected argument", 0, 1, 2, 0, 0, 0,
	  "error: unexpected argument '--bogus' found\n", OUT_TERMINAL,
	  NULL },

	{ "engine unreachable", 0, 1, 1, 0, 0, 1,
	  "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
	  ". Is the docker daemon running?\n", OUT_TRANSIENT,
	  "container engine unreachable (docker exit 1): Cannot connect to "
	  "the Docker daemon at unix:///var/run/docker.sock. Is the docker "
	  "daemon running?" },
	/* Unreachable wins over 125 and over the config messages. */
	{ "engine unreachable 125", 0, 1, 125, 0, 0, 1,
	  "error during connect: invalid argument\n", OUT_TRANSIENT, NULL },
	{ "podman unreachable", 0, 1, 125, 0, 0, 1,
	  "Cannot connect to Podman. Please verify your connection\n",
	  OUT_TRANSIENT, NULL },
	{ "apple apiserver down", 0, 1, 1, 0, 0, 1,
	  "Error: XPC connection error: apiserver is not running\n",
	  OUT_TRANSIENT, NULL },

	{ "container 137", 0, 1, 137, 0, 0, 1, NULL, OUT_TRANSIENT,
	  "container killed (exit 137, out of memory or killed)" },
	{ "host 137", 0, 1, 137, 0, 0, 0, NULL, OUT_TRANSIENT,
	  "prog exit 137" },
};

static void
fill(struct run_status *st, const struct rule *r)
{
	memset(st, 0, sizeof(*st));
	st->exec_errno = r->exec_errno;
	st->exited = r->exited;
	st->exit_code = r->exit_code;
	st->signal = r->signal;
	st->timed_out = r->timed_out;
	st->container = r->container;
	st->program = r->container && r->exec_errno == 0 ? "docker" : "prog";
	st->err_text = r->err_text;
	st->err_len = r->err_text != NULL ? strlen(r->err_text) : 0;
}

static void
test_rules(void **state)
{
	struct run_status	st;
	enum outcome		o;
	char			why[512];
	size_t			i;
	int			bad = 0;

	(void)state;
	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		fill(&st, &rules[i]);
		memset(why, '#', sizeof(why) - 1);
		why[sizeof(why) - 1] = '\0';
		o = classify(&st, why, sizeof(why));
		if (o != rules[i].want) {
			print_error("%s: %s, wanted %s (%s)\n", rules[i].name,
			    outcome_name(o), outcome_name(rules[i].want), why);
			bad++;
		}
		if (rules[i].why != NULL && strcmp(why, rules[i].why) != 0) {
			print_error("%s: why \"%s\", wanted \"%s\"\n",
			    rules[i].name, why, rules[i].why);
			bad++;
		}
		/* A failure always says why; success says nothing. */
		if ((o == OUT_OK) != (why[0] == '\0')) {
			print_error("%s: why \"%s\"\n", rules[i].name, why);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* stderr is a buffer with a length, not a C string. */
static void
test_err_len_bounds(void **state)
{
	struct run_status	st;
	char			why[256];
	static const char	text[] = "unauthorized";

	(void)state;
	memset(&st, 0, sizeof(st));
	st.exited = 1;
	st.exit_code = 1;
	st.program = "claude";
	st.err_text = text;
	st.err_len = 5;		/* "unaut" */
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "claude exit 1: unaut");
	st.err_len = sizeof(text) - 1;
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);

	/* Not NUL-terminated at all. */
	{
		char raw[8];

		memcpy(raw, "no such ", 8);
		memset(&st, 0, sizeof(st));
		st.exited = 1;
		st.exit_code = 125;
		st.container = 1;
		st.program = "docker";
		st.err_text = raw;
		st.err_len = sizeof(raw);
		assert_int_equal(classify(&st, why, sizeof(why)),
		    OUT_TRANSIENT);
		assert_string_equal(why, "docker refused to start the "
		    "container (exit 125): no such");
	}
}

static void
test_why_tail(void **state)
{
	struct run_status	st;
	char			why[512], big[1000];

	(void)state;
	memset(&st, 0, sizeof(st));
	st.exited = 1;
	st.exit_code = 3;
	st.program = "codex";
	/* The last line with text, not the first. */
	st.err_text = "first line\nsecond line\n\n  \n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "codex exit 3: second line");

	/* Only the last 300 bytes of a long line. */
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 4, "END\n", 4);
	st.err_text = big;
	st.err_len = sizeof(big);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_int_equal(strlen(why), strlen("codex exit 3: ") + 300);
	assert_true(strcmp(why + strlen(why) - 3, "END") == 0);

	/* A small buffer is cut, never overrun. */
	memset(why, 'X', sizeof(why));
	assert_int_equal(classify(&st, why, 10), OUT_TRANSIENT);
	assert_int_equal(strlen(why), 9);
	assert_int_equal(why[10], 'X');
}

/*
 * The claude CLI prints its errors on stdout, with at most a warning on
 * stderr (as measured with claude-code 2.1.330 in the agent-runner image,
 * docs/SANDBOX.md): the error is read from stdout's last line too.
 */
static void
test_stdout_errors(void **state)
{
	struct run_status	st;
	char			why[512];

	(void)state;
	memset(&st, 0, sizeof(st));
	st.exited = 1;
	st.exit_code = 1;
	st.container = 1;
	st.program = "podman";

	/* The API cannot be reached: transient, and the error says so. */
	st.err_text = "\xe2\x9a\xa0 Claude Sonnet 4.5 will be retired on "
	    "November 30, 2026.\n";
	st.err_len = strlen(st.err_text);
	st.out_text = "API Error: Can't reach the API server (ENOTFOUND)\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "podman exit 1: API Error: Can't reach the "
	    "API server (ENOTFOUND)");

	/* A wrong key, said on stdout alone: terminal. */
	st.err_text = "";
	st.err_len = 0;
	st.out_text = "Invalid API key \xc2\xb7 Fix external API key\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);
	assert_string_equal(why, "podman exit 1: authentication failed: "
	    "Invalid API key \xc2\xb7 Fix external API key");

	/* Only stdout's last line counts: a reply quoting the words does not. */
	st.out_text = "Unauthorized access is what the invalid api key "
	    "meant.\nthen it crashed\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "podman exit 1: then it crashed");

	/* stderr's "error" line comes before stdout's. */
	st.err_text = "Error: something broke\nhint: see --help\n";
	st.err_len = strlen(st.err_text);
	st.out_text = "API Error: other\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "podman exit 1: Error: something broke");

	/* Run as root, claude will not skip its permission prompts. */
	st.err_text = "--dangerously-skip-permissions cannot be used with "
	    "root/sudo privileges for security reasons\n";
	st.err_len = strlen(st.err_text);
	st.out_text = NULL;
	st.out_len = 0;
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);
	assert_non_null(strstr(why, "refuses to run as root"));
	assert_non_null(strstr(why, "root/sudo privileges"));

	/* Success is success, whatever stdout says. */
	st.exit_code = 0;
	st.out_text = "Invalid API key\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_OK);
}

/*
 * codex's own report of a failed turn (stdout, --json) names the cause; its
 * stderr holds websocket log lines that say ERROR whatever the cause.
 */
static void
test_codex_report(void **state)
{
	static const char out[] =
	    "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n"
	    "{\"type\":\"error\",\"message\":\"Reconnecting... 1/5\"}\n"
	    "not json\n"
	    "{\"type\":\"turn.failed\",\"error\":{\"message\":"
	    "\"unexpected status 401 Unauthorized: Incorrect API key "
	    "provided\"}}\n";
	struct run_status	 st;
	char			 why[512], *r;

	(void)state;
	r = codex_failure(out, sizeof(out) - 1);
	assert_string_equal(r, "unexpected status 401 Unauthorized: "
	    "Incorrect API key provided");
	memset(&st, 0, sizeof(st));
	st.exited = 1;
	st.exit_code = 1;
	st.program = "codex";
	st.err_text = "2026-12-07T00:00:01Z ERROR codex_api::endpoint::"
	    "responses_websocket: failed to connect to websocket: IO error\n";
	st.err_len = strlen(st.err_text);
	st.out_text = out;
	st.out_len = sizeof(out) - 1;
	st.report = r;
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);
	assert_string_equal(why, "codex exit 1: authentication failed: "
	    "unexpected status 401 Unauthorized: Incorrect API key provided");
	free(r);

	/* Without turn.failed, the last error event; without either, NULL. */
	r = codex_failure(out, strstr(out, "not json") - out);
	assert_string_equal(r, "Reconnecting... 1/5");
	free(r);
	assert_null(codex_failure("{\"type\":\"turn.failed\"}\n"
	    "{\"type\":\"error\",\"message\":5}\n[1]\n", 56));
	assert_null(codex_failure(NULL, 0));
}

/* A CLI that cannot write its working directory: retrying cannot help. */
/* A timeout says how long it waited and what it saw last. */
static void
test_timeout_text(void **state)
{
	struct run_status	st;
	char			why[512];

	(void)state;
	memset(&st, 0, sizeof(st));
	st.program = "claude";
	st.timed_out = 1;
	st.signal = SIGKILL;
	st.timeout_seconds = 30;
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "claude timed out after 30 s; no output");
	/* stderr first, then stdout's tail. */
	st.out_text = "{\"type\":\"system\"}\n";
	st.out_len = strlen(st.out_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "claude timed out after 30 s; last output: "
	    "{\"type\":\"system\"}");
	st.err_text = "API overloaded, retrying\nstill waiting\n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
	assert_string_equal(why, "claude timed out after 30 s; last stderr: "
	    "still waiting");
}

static void
test_workspace_denied(void **state)
{
	struct run_status	st;
	char			why[512];

	(void)state;
	memset(&st, 0, sizeof(st));
	st.exited = 1;
	st.exit_code = 1;
	st.container = 1;
	st.program = "podman";
	st.workspace = "/workspace";
	st.err_text = "Error: EACCES: permission denied, mkdir "
	    "'/workspace/.tinyclaw-home/.claude'\n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);
	assert_string_equal(why, "podman exit 1: cannot write the working "
	    "directory /workspace: Error: EACCES: permission denied, mkdir "
	    "'/workspace/.tinyclaw-home/.claude'");

	/* Denied elsewhere: not the workspace, the usual rules. */
	st.err_text = "Error: EACCES: permission denied, open '/etc/x'\n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);

	/* No path, but the worker found the user cannot write it. */
	st.workspace_denied = 1;
	st.err_text = "Error: Permission denied (os error 13)\n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TERMINAL);
	assert_non_null(strstr(why, "the user the CLI runs as cannot "
	    "write there"));

	/* Not writable, but the run failed for another reason. */
	st.err_text = "Error: stream disconnected\n";
	st.err_len = strlen(st.err_text);
	assert_int_equal(classify(&st, why, sizeof(why)), OUT_TRANSIENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_err_len_bounds),
		cmocka_unit_test(test_why_tail),
		cmocka_unit_test(test_stdout_errors),
		cmocka_unit_test(test_codex_report),
		cmocka_unit_test(test_timeout_text),
		cmocka_unit_test(test_workspace_denied),
	};

	return cmocka_run_group_tests_name("classify", tests, NULL, NULL);
}
