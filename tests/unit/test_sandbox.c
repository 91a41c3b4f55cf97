/*
 * The per-mode argv (worker/sandbox.c): the exact docker/podman and Apple
 * `container` command lines of SPEC §4, the private env-file that carries
 * the secrets, and every fail-closed check.
 */
#include <sys/stat.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "provider.h"
#include "sandbox.h"
#include "unit.h"
#include "util.h"

#define ANT_KEY		"sk-ant-SECRET-0123456789"
#define OAI_KEY		"sk-proj-SECRET-abcdefghij"
#define WORKDIR		"/srv/agents/coder"
#define IMAGE		"tinyclaw/agent-runner:latest"

static struct {
	char	*tmp;
	char	*bin;
	char	*home;
	char	*path;		/* PATH for the tests */
	char	*env_file;	/* home/run/secrets/42.env */
	char	*record;	/* home/run/containers/clawvisor-42 */
	char	*label;		/* --label value */
	char	 cwd[PATH_MAX];
} t;

static char *allow2[] = { "ANTHROPIC_API_KEY", "OPENAI_API_KEY" };

static void
make_exe(const char *dir, const char *name, mode_t mode)
{
	char *p;

	xasprintf(&p, "%s/%s", dir, name);
	unit_write(p, "#!/bin/sh\nexit 0\n", mode);
	free(p);
}

static int
group_setup(void **state)
{
	(void)state;
	if (getcwd(t.cwd, sizeof(t.cwd)) == NULL)
		return -1;
	t.tmp = unit_tmpdir();
	xasprintf(&t.bin, "%s/bin", t.tmp);
	xasprintf(&t.home, "%s/home", t.tmp);
	if (mkdir(t.bin, 0755) == -1 || mkdir(t.home, 0700) == -1)
		return -1;
	make_exe(t.bin, "docker", 0755);
	make_exe(t.bin, "podman", 0755);
	make_exe(t.bin, "container", 0755);
	make_exe(t.bin, "bwrap", 0755);
	make_exe(t.bin, "claude", 0755);
	make_exe(t.bin, "codex", 0755);
	make_exe(t.bin, "notexec", 0644);
	xasprintf(&t.path, "/nonexistent:%s", t.bin);
	xasprintf(&t.env_file, "%s/run/secrets/42.env", t.home);
	xasprintf(&t.record, "%s/run/containers/clawvisor-42", t.home);
	xasprintf(&t.label, "clawvisor.home=%s", t.home);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (chdir(t.cwd) == -1)
		return -1;
	unit_rmtree(t.tmp);
	free(t.tmp);
	free(t.bin);
	free(t.home);
	free(t.path);
	free(t.env_file);
	free(t.record);
	free(t.label);
	return 0;
}

static int
env_setup(void **state)
{
	(void)state;
	setenv("PATH", t.path, 1);
	setenv("ANTHROPIC_API_KEY", ANT_KEY, 1);
	setenv("OPENAI_API_KEY", OAI_KEY, 1);
	return 0;
}

static void
job_init(struct job *j, enum sandbox_mode mode)
{
	memset(j, 0, sizeof(*j));
	j->id = 42;
	j->agent_id = "coder";
	j->provider = PROV_ANTHROPIC;
	j->model = "sonnet";
	j->message = "hi there";
	j->workdir = WORKDIR;
	j->home = t.home;
	j->mode = mode;
	j->timeout_seconds = 600;
	j->kill_grace_seconds = 5;
	j->max_output_bytes = 1024;
	j->env_allowlist = allow2;
	j->nallow = 2;
	j->path_mapping = MAP_MAPPED;
	j->rt.runtime_command = mode == MODE_APPLE ? "container" : "docker";
	j->rt.image = IMAGE;
	j->rt.network = NET_DEFAULT;
	j->rt.memory = "2g";
	j->rt.cpus = mode == MODE_APPLE ? "1" : "1.0";
	j->rt.pids_limit = 256;
	j->rt.user = "1000:1001";
}

static void
check_argv(char **v, const char *const *want, const char *file, int line)
{
	size_t i;

	for (i = 0; want[i] != NULL && v[i] != NULL; i++)
		if (strcmp(v[i], want[i]) != 0)
			break;
	if (want[i] != NULL || v[i] != NULL) {
		print_error("argv[%zu] \"%s\", wanted \"%s\"\n", i,
		    v[i] != NULL ? v[i] : "(end)",
		    want[i] != NULL ? want[i] : "(end)");
		_fail(file, line);
	}
}
#define assert_argv(v, ...) do {					\
	const char *const want_[] = { __VA_ARGS__, NULL };		\
	check_argv(v, want_, __FILE__, __LINE__);			\
} while (0)

/* No secret reaches argv, in any form. */
/* Does the environment v hold NAME=…? */
static int
env_has(char **v, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; v[i] != NULL; i++)
		if (strncmp(v[i], name, n) == 0 && v[i][n] == '=')
			return 1;
	return 0;
}

static void
assert_no_secret(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++) {
		assert_null(strstr(v[i], ANT_KEY));
		assert_null(strstr(v[i], OAI_KEY));
		assert_null(strstr(v[i], "SECRET"));
		assert_null(strstr(v[i], "_API_KEY"));
		assert_string_not_equal(v[i], "-e");
		assert_string_not_equal(v[i], "--env");
	}
}

static void
assert_gone(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), -1);
}

static void
test_docker_argv(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	job_init(&j, MODE_DOCKER);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_argv(sb.argv, "docker", "run", "--rm", "--name", "clawvisor-42",
	    "--label", t.label, "--workdir", "/workspace", "--network",
	    "bridge", "--memory", "2g", "--cpus", "1.0", "--pids-limit", "256",
	    "--security-opt", "no-new-privileges", "--read-only",
	    "--cap-drop", "ALL", "--tmpfs", "/tmp:rw,noexec,nosuid,size=256m",
	    "--user", "1000:1001", "--mount",
	    "type=bind,src=" WORKDIR ",dst=/workspace", "--env-file",
	    t.env_file, IMAGE, "claude", "--dangerously-skip-permissions",
	    "--model", "claude-sonnet-4-5", "-c", "-p", "--", "hi there");
	assert_no_secret(sb.argv);
	assert_int_equal(sb.container_mode, 1);
	assert_string_equal(sb.container, "clawvisor-42");
	assert_string_equal(sb.env_file, t.env_file);
	/* The runtime's CLI gets PATH, never a key (docs/SANDBOX.md). */
	assert_non_null(sb.envp);
	assert_no_secret(sb.envp);
	assert_true(env_has(sb.envp, "PATH"));
	assert_false(env_has(sb.envp, "ANTHROPIC_API_KEY"));
	assert_false(env_has(sb.envp, "OPENAI_API_KEY"));
	/* On timeout the container is stopped by name. */
	assert_argv(sb.on_timeout, "docker", "kill", "clawvisor-42");
	sandbox_cleanup(&sb);
	assert_null(sb.argv);
	assert_gone(t.env_file);
}

static void
test_podman_codex(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	job_init(&j, MODE_DOCKER);
	j.id = 7;
	j.provider = PROV_OPENAI;
	j.model = NULL;
	j.reset = 1;
	j.path_mapping = MAP_SAME_PATH;
	j.rt.runtime_command = "podman";
	j.rt.memory = "512m";
	j.rt.cpus = "0.5";
	j.rt.pids_limit = 0;
	j.message = "-rf /";
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_argv(sb.argv, "podman", "run", "--rm", "--name", "clawvisor-7",
	    "--label", t.label, "--workdir", WORKDIR, "--network", "bridge",
	    "--memory", "512m", "--cpus", "0.5", "--pids-limit", "0",
	    "--security-opt", "no-new-privileges", "--read-only",
	    "--cap-drop", "ALL", "--tmpfs", "/tmp:rw,noexec,nosuid,size=256m",
	    "--user", "1000:1001", "--mount",
	    "type=bind,src=" WORKDIR ",dst=" WORKDIR, "--env-file",
	    sb.env_file, IMAGE, "codex", "exec", "--skip-git-repo-check",
	    "--dangerously-bypass-approvals-and-sandbox", "--json", "--", "-rf /");
	assert_true(strstr(sb.env_file, "/run/secrets/7.env") != NULL);
	assert_argv(sb.on_timeout, "podman", "kill", "clawvisor-7");
	assert_no_secret(sb.argv);
	sandbox_cleanup(&sb);
}

static void
test_apple_argv(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	job_init(&j, MODE_APPLE);
	j.rt.cpus = "2.0";	/* passed as an integer */
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_argv(sb.argv, "container", "run", "--rm", "--name",
	    "clawvisor-42", "--label", t.label, "--workdir", "/workspace",
	    "--network", "default", "--memory", "2g", "--cpus", "2",
	    "--read-only", "--cap-drop", "ALL", "--tmpfs", "/tmp",
	    "--user", "1000:1001", "--mount",
	    "type=bind,source=" WORKDIR ",target=/workspace", "--env-file",
	    t.env_file, IMAGE, "claude", "--dangerously-skip-permissions",
	    "--model", "claude-sonnet-4-5", "-c", "-p", "--", "hi there");
	assert_no_secret(sb.argv);
	assert_argv(sb.on_timeout, "container", "kill", "clawvisor-42");
	sandbox_cleanup(&sb);

	j.rt.cpus = "1";
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_string_equal(sb.argv[14], "1");
	assert_string_equal(sb.argv[13], "--cpus");
	sandbox_cleanup(&sb);
}

static void
test_apple_cpus_fail(void **state)
{
	static const char *const bad[] = { "1.5", "0", "0.0", "abc", "2x",
	    "0x10", "1e1", " 2", "inf" };
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256], want[256];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		job_init(&j, MODE_APPLE);
		j.rt.cpus = (char *)bad[i];
		assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)),
		    -1);
		snprintf(want, sizeof(want), "sandbox.apple.cpus: Apple's "
		    "container takes a whole number of CPUs, got \"%s\"",
		    bad[i]);
		assert_string_equal(err, want);
		assert_null(sb.argv);
		assert_gone(t.env_file);
	}
}

static void
test_network_none_command(void **state)
{
	static char		*cmd[] = { "tool", "{message}" };
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	/* A command agent needs no key and may run without a network. */
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("OPENAI_API_KEY");
	job_init(&j, MODE_DOCKER);
	j.provider = PROV_COMMAND;
	j.command = cmd;
	j.ncommand = 2;
	j.env_allowlist = NULL;
	j.nallow = 0;
	j.rt.network = NET_NONE;
	j.rt.user = "auto";
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_string_equal(sb.argv[9], "--network");
	assert_string_equal(sb.argv[10], "none");
	{
		char uidgid[64];

		snprintf(uidgid, sizeof(uidgid), "%u:%u", (unsigned)getuid(),
		    (unsigned)getgid());
		assert_string_equal(sb.argv[24], "--user");
		assert_string_equal(sb.argv[25], uidgid);
	}
	assert_string_equal(sb.argv[30], IMAGE);
	assert_string_equal(sb.argv[31], "tool");
	assert_string_equal(sb.argv[32], "hi there");
	assert_null(sb.argv[33]);
	sandbox_cleanup(&sb);

	job_init(&j, MODE_APPLE);
	j.provider = PROV_COMMAND;
	j.command = cmd;
	j.ncommand = 2;
	j.rt.network = NET_NONE;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_string_equal(sb.argv[10], "none");
	sandbox_cleanup(&sb);
}

static int
envp_has(char **e, const char *kv)
{
	for (; *e != NULL; e++)
		if (strcmp(*e, kv) == 0)
			return 1;
	return 0;
}

static void
test_host(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	job_init(&j, MODE_HOST);
	/* Host mode needs neither a runtime nor keys in an env-file. */
	setenv("PATH", "/nonexistent", 1);
	unsetenv("ANTHROPIC_API_KEY");
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_argv(sb.argv, "claude", "--dangerously-skip-permissions",
	    "--model", "claude-sonnet-4-5", "-c", "-p", "--", "hi there");
	assert_null(sb.env_file);
	assert_null(sb.container);
	assert_null(sb.on_timeout);
	assert_int_equal(sb.container_mode, 0);
	assert_gone(t.env_file);
	/* codex reads CODEX_API_KEY only: OPENAI_API_KEY's value is
	 * handed over, the rest of the environment inherited. */
	assert_non_null(sb.envp);
	assert_true(envp_has(sb.envp, "CODEX_API_KEY=" OAI_KEY));
	assert_true(envp_has(sb.envp, "OPENAI_API_KEY=" OAI_KEY));
	assert_true(envp_has(sb.envp, "PATH=/nonexistent"));
	sandbox_cleanup(&sb);
	/* With a CODEX_API_KEY of its own, the environment is inherited. */
	setenv("CODEX_API_KEY", "sk-codex-own-0123456789", 1);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_null(sb.envp);
	sandbox_cleanup(&sb);
	unsetenv("CODEX_API_KEY");
	unsetenv("OPENAI_API_KEY");
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_null(sb.envp);
	sandbox_cleanup(&sb);
	setenv("OPENAI_API_KEY", OAI_KEY, 1);
}

static void
test_env_file(void **state)
{
	static char		*allow[] = { "OPENAI_API_KEY", "UNSET_VAR",
				    "ANTHROPIC_API_KEY", "EXTRA" };
	struct sandbox_run	 sb;
	struct job		 j;
	struct stat		 st;
	char			 err[256], *dir, *text;

	(void)state;
	unsetenv("UNSET_VAR");
	setenv("EXTRA", "a value with spaces = and \"quotes\"", 1);
	xasprintf(&dir, "%s/run/secrets", t.home);
	/* A secrets directory with loose permissions is tightened. */
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);

	job_init(&j, MODE_DOCKER);
	j.env_allowlist = allow;
	j.nallow = 4;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(sb.env_file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, getuid());
	text = unit_read(sb.env_file);
	assert_non_null(text);
	/* HOME first; allowlisted variables in order; unset ones skipped. */
	assert_string_equal(text,
	    "HOME=/workspace/.tinyclaw-home\n"
	    "OPENAI_API_KEY=" OAI_KEY "\n"
	    "ANTHROPIC_API_KEY=" ANT_KEY "\n"
	    "EXTRA=a value with spaces = and \"quotes\"\n"
	    "CODEX_API_KEY=" OAI_KEY "\n");
	free(text);
	assert_no_secret(sb.argv);
	sandbox_cleanup(&sb);
	assert_gone(t.env_file);

	/* Same-path: HOME lives under the host path. */
	job_init(&j, MODE_APPLE);
	j.path_mapping = MAP_SAME_PATH;
	j.env_allowlist = NULL;
	j.nallow = 0;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	/* (no key allowlisted: refused, see test_fail_closed) */
	j.provider = PROV_COMMAND;
	j.command = allow;	/* any argv will do */
	j.ncommand = 1;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	text = unit_read(sb.env_file);
	assert_non_null(text);
	assert_string_equal(text, "HOME=" WORKDIR "/.tinyclaw-home\n");
	free(text);
	sandbox_cleanup(&sb);
	unsetenv("EXTRA");
	free(dir);
}

static void
test_container_record(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256], *text;

	(void)state;
	job_init(&j, MODE_DOCKER);
	j.rt.runtime_command = "podman";
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	/* The home's record of a container that may be running. */
	text = unit_read(t.record);
	assert_non_null(text);
	assert_string_equal(text, "podman\n");
	free(text);
	sandbox_cleanup(&sb);
	assert_gone(t.record);
}

struct fail_case {
	const char	*name;
	enum sandbox_mode mode;
	enum provider	 provider;
	const char	*runtime;
	int		 network_none;
	int		 allow;	/* 1: OpenAI key only, 2: Anthropic */
	const char	*unset;		/* variable to unset */
	const char	*empty;		/* variable to set to "" */
	const char	*workdir;
	const char	*err;
};

static void
test_fail_closed(void **state)
{
	static const struct fail_case cases[] = {
		{ "runtime not in PATH", MODE_DOCKER, PROV_ANTHROPIC,
		  "nerdctl", 0, 0, NULL, NULL, NULL,
		  "container runtime \"nerdctl\" not found in PATH "
		  "(sandbox.docker.runtime_command)" },
		{ "apple runtime not in PATH", MODE_APPLE, PROV_ANTHROPIC,
		  "container-missing", 0, 0, NULL, NULL, NULL,
		  "container runtime \"container-missing\" not found in PATH "
		  "(sandbox.apple.runtime_command)" },
		{ "runtime not executable", MODE_DOCKER, PROV_ANTHROPIC,
		  "notexec", 0, 0, NULL, NULL, NULL,
		  "container runtime \"notexec\" not found in PATH "
		  "(sandbox.docker.runtime_command)" },
		{ "runtime path missing", MODE_DOCKER, PROV_ANTHROPIC,
		  "/nonexistent/docker", 0, 0, NULL, NULL, NULL,
		  "container runtime \"/nonexistent/docker\" not found in "
		  "PATH (sandbox.docker.runtime_command)" },
		{ "anthropic key not allowlisted", MODE_DOCKER,
		  PROV_ANTHROPIC, NULL, 0, 1, NULL, NULL, NULL,
		  "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN is required "
		  "by the anthropic provider but is not in "
		  "sandbox.env_allowlist" },
		{ "anthropic key unset", MODE_DOCKER, PROV_ANTHROPIC, NULL,
		  0, 0, "ANTHROPIC_API_KEY", NULL, NULL,
		  "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN is required "
		  "by the anthropic provider but is not set in the daemon's "
		  "environment" },
		{ "anthropic key empty", MODE_APPLE, PROV_ANTHROPIC, NULL,
		  0, 0, NULL, "ANTHROPIC_API_KEY", NULL,
		  "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN is required "
		  "by the anthropic provider but is not set in the daemon's "
		  "environment" },
		{ "openai key unset", MODE_DOCKER, PROV_OPENAI, NULL, 0, 0,
		  "OPENAI_API_KEY", NULL, NULL,
		  "CODEX_API_KEY or OPENAI_API_KEY is required by the openai "
		  "provider but is not set in the daemon's environment" },
		{ "openai key not allowlisted", MODE_APPLE, PROV_OPENAI, NULL,
		  0, 2, NULL, NULL, NULL,
		  "CODEX_API_KEY or OPENAI_API_KEY is required by the openai "
		  "provider but is not in sandbox.env_allowlist" },
		{ "network none, anthropic", MODE_DOCKER, PROV_ANTHROPIC,
		  NULL, 1, 0, NULL, NULL, NULL,
		  "network \"none\" cannot work with the anthropic provider: "
		  "its CLI must reach the API" },
		{ "network none, openai", MODE_APPLE, PROV_OPENAI, NULL, 1, 0,
		  NULL, NULL, NULL,
		  "network \"none\" cannot work with the openai provider: "
		  "its CLI must reach the API" },
		{ "comma in workdir", MODE_DOCKER, PROV_ANTHROPIC, NULL, 0, 0,
		  NULL, NULL, "/srv/a,readonly",
		  "working directory /srv/a,readonly has a character a "
		  "--mount option cannot carry" },
		{ "newline in workdir", MODE_APPLE, PROV_ANTHROPIC, NULL, 0,
		  0, NULL, NULL, "/srv/a\nb",
		  "working directory /srv/a\nb has a character a --mount "
		  "option cannot carry" },
	};
	static char		*only_openai[] = { "OPENAI_API_KEY" };
	static char		*only_anthropic[] = { "ANTHROPIC_API_KEY" };
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fail_case *c = &cases[i];

		env_setup(NULL);
		job_init(&j, c->mode);
		j.provider = c->provider;
		if (c->runtime != NULL)
			j.rt.runtime_command = (char *)c->runtime;
		if (c->network_none)
			j.rt.network = NET_NONE;
		if (c->allow != 0) {
			j.env_allowlist = c->allow == 1 ? only_openai :
			    only_anthropic;
			j.nallow = 1;
		}
		if (c->unset != NULL)
			unsetenv(c->unset);
		if (c->empty != NULL)
			setenv(c->empty, "", 1);
		if (c->workdir != NULL)
			j.workdir = (char *)c->workdir;
		strlcpy(err, "", sizeof(err));
		if (sandbox_prepare(&j, &sb, err, sizeof(err)) != -1) {
			sandbox_cleanup(&sb);
			fail_msg("%s: accepted", c->name);
		}
		if (strcmp(err, c->err) != 0)
			fail_msg("%s: \"%s\", wanted \"%s\"", c->name, err,
			    c->err);
		/* Nothing is left to run or to clean up; no secret on disk. */
		assert_null(sb.argv);
		assert_null(sb.env_file);
		assert_null(sb.container);
		assert_gone(t.env_file);
		assert_gone(t.record);
	}
}

/* The other credential variable of each provider is enough on its own. */
static void
test_key_alternatives(void **state)
{
	static char		*oauth[] = { "CLAUDE_CODE_OAUTH_TOKEN" };
	static char		*codex[] = { "CODEX_API_KEY", "OPENAI_API_KEY" };
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256], *text;

	(void)state;
	unsetenv("ANTHROPIC_API_KEY");
	setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-TOKEN-0123456789", 1);
	job_init(&j, MODE_DOCKER);
	j.env_allowlist = oauth;
	j.nallow = 1;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	text = unit_read(sb.env_file);
	assert_string_equal(text, "HOME=/workspace/.tinyclaw-home\n"
	    "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-TOKEN-0123456789\n");
	free(text);
	sandbox_cleanup(&sb);
	unsetenv("CLAUDE_CODE_OAUTH_TOKEN");

	/* Both set: each as it is, no hand-over. */
	setenv("CODEX_API_KEY", "sk-codex-own-0123456789", 1);
	job_init(&j, MODE_DOCKER);
	j.provider = PROV_OPENAI;
	j.env_allowlist = codex;
	j.nallow = 2;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	text = unit_read(sb.env_file);
	assert_string_equal(text, "HOME=/workspace/.tinyclaw-home\n"
	    "CODEX_API_KEY=sk-codex-own-0123456789\n"
	    "OPENAI_API_KEY=" OAI_KEY "\n");
	free(text);
	sandbox_cleanup(&sb);
	/* CODEX_API_KEY alone. */
	unsetenv("OPENAI_API_KEY");
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	sandbox_cleanup(&sb);
	unsetenv("CODEX_API_KEY");
	setenv("OPENAI_API_KEY", OAI_KEY, 1);
	setenv("ANTHROPIC_API_KEY", ANT_KEY, 1);
}

static void
test_newline_secret(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256];

	(void)state;
	setenv("OPENAI_API_KEY", "line1\nEVIL=1", 1);
	job_init(&j, MODE_DOCKER);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, "OPENAI_API_KEY contains a newline and cannot "
	    "be passed in an env-file");
	/* The half-written env-file is gone. */
	assert_gone(t.env_file);
	assert_null(sb.argv);
}

/* A planted file or symlink where the env-file goes is never written. */
static void
test_env_file_planted(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256], *target, *text, *want;

	(void)state;
	xasprintf(&target, "%s/target", t.tmp);
	unit_write(target, "untouched", 0644);
	job_init(&j, MODE_DOCKER);
	/* The directory exists after any container run. */
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	sandbox_cleanup(&sb);
	assert_int_equal(symlink(target, t.env_file), 0);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	xasprintf(&want, "cannot create env-file %s: File exists",
	    t.env_file);
	assert_string_equal(err, want);
	free(want);
	text = unit_read(target);
	assert_non_null(text);
	assert_string_equal(text, "untouched");
	free(text);
	/* And the planted link is not ours to remove. */
	assert_int_equal(unlink(t.env_file), 0);
	unlink(target);
	free(target);
}

static void
test_runtime_lookup(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[256], *abs;

	(void)state;
	/* An absolute runtime path is used as is. */
	xasprintf(&abs, "%s/docker", t.bin);
	job_init(&j, MODE_DOCKER);
	j.rt.runtime_command = abs;
	setenv("PATH", "/nonexistent", 1);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	assert_string_equal(sb.argv[0], abs);
	assert_string_equal(sb.on_timeout[0], abs);
	sandbox_cleanup(&sb);
	free(abs);

	/* An empty PATH element is the current directory, as for execvp. */
	assert_int_equal(chdir(t.bin), 0);
	job_init(&j, MODE_DOCKER);
	setenv("PATH", "/nonexistent::/alsonot", 1);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	sandbox_cleanup(&sb);
	setenv("PATH", "/nonexistent:", 1);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	sandbox_cleanup(&sb);
	setenv("PATH", "/nonexistent", 1);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_int_equal(chdir(t.cwd), 0);
}

/*
 * The runtime's CLI: the built-in names and prefixes, the pass list, and
 * never an allowlisted name, even one that a prefix of either takes in.
 */
/*
 * bwrap mode (SPEC §8): the system part of the view, computed here from
 * the SPEC's own list (not sandbox.c's): what the host has, a top-level
 * symbolic link as the same link.
 */
static const char *const spec_system[] = {
	"/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ssl",
	"/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
	"/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime",
	"/etc/alternatives", NULL
};

static void
bwrap_want(char ***want, size_t *n, const char *s)
{
	*want = xreallocarray(*want, *n + 2, sizeof(char *));
	(*want)[(*n)++] = xstrdup(s);
	(*want)[*n] = NULL;
}

static char **
bwrap_expected(const char *uid, const char *gid, int share_net,
    const char *const *mid, const char *work, const char *w,
    const char *const *cli)
{
	static const char *const head[] = { "bwrap", "--unshare-all",
	    "--unshare-user", NULL };
	static const char *const head2[] = { "--die-with-parent",
	    "--new-session", "--cap-drop", "ALL", NULL };
	static const char *const priv[] = { "--tmpfs", "/tmp", "--proc",
	    "/proc", "--dev", "/dev", NULL };
	const char *const	*p;
	char			**v = NULL, target[PATH_MAX];
	size_t			  n = 0;
	struct stat		  st;
	ssize_t			  k;

	for (p = head; *p != NULL; p++)
		bwrap_want(&v, &n, *p);
	if (share_net)
		bwrap_want(&v, &n, "--share-net");
	for (p = head2; *p != NULL; p++)
		bwrap_want(&v, &n, *p);
	bwrap_want(&v, &n, "--uid");
	bwrap_want(&v, &n, uid);
	bwrap_want(&v, &n, "--gid");
	bwrap_want(&v, &n, gid);
	for (p = priv; *p != NULL; p++)
		bwrap_want(&v, &n, *p);
	for (p = spec_system; *p != NULL; p++) {
		if (lstat(*p, &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode) && strchr(*p + 1, '/') == NULL) {
			k = readlink(*p, target, sizeof(target) - 1);
			assert_true(k > 0);
			target[k] = '\0';
			bwrap_want(&v, &n, "--symlink");
			bwrap_want(&v, &n, target);
			bwrap_want(&v, &n, *p);
		} else if (stat(*p, &st) == 0) {
			bwrap_want(&v, &n, "--ro-bind");
			bwrap_want(&v, &n, *p);
			bwrap_want(&v, &n, *p);
		}
	}
	for (p = mid; *p != NULL; p++)
		bwrap_want(&v, &n, *p);
	bwrap_want(&v, &n, "--bind");
	bwrap_want(&v, &n, work);
	bwrap_want(&v, &n, w);
	bwrap_want(&v, &n, "--chdir");
	bwrap_want(&v, &n, w);
	bwrap_want(&v, &n, "--remount-ro");
	bwrap_want(&v, &n, "/");
	bwrap_want(&v, &n, "--");
	for (p = cli; *p != NULL; p++)
		bwrap_want(&v, &n, *p);
	return v;
}

static void
bwrap_job(struct job *j)
{
	job_init(j, MODE_BWRAP);
	j->rt.runtime_command = "bwrap";
	j->rt.image = "";
	j->rt.network = NET_HOST;
	/* No cgroup is asserted here (the integration tests do). */
	j->rt.limits_best_effort = 1;
}

static void
test_bwrap_argv(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[512], *home, *path, bin[PATH_MAX];
	char			**want;
	static const char *const cli[] = { "claude",
	    "--dangerously-skip-permissions", "--model", "claude-sonnet-4-5",
	    "-c", "-p", "--", "hi there", NULL };
	static char *ro[] = { "/opt/tools", "/srv/data" };
	const char		*mid[16];
	size_t			 i;

	(void)state;
	assert_non_null(realpath(t.bin, bin));
	bwrap_job(&j);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	mid[0] = "--ro-bind";
	mid[1] = bin;
	mid[2] = bin;
	mid[3] = NULL;
	want = bwrap_expected("1000", "1001", 1, mid, WORKDIR, "/workspace",
	    cli);
	check_argv(sb.argv, (const char *const *)want, __FILE__, __LINE__);
	argv_free(want);
	assert_no_secret(sb.argv);
	assert_int_equal(sb.container_mode, 0);
	assert_null(sb.on_timeout);
	assert_int_equal(sb.uid, 1000);
	assert_int_equal(sb.gid, 1001);
	assert_int_equal(sb.setid, getuid() == 0);
	/* The keys reach it through bwrap's own environment: only these. */
	xasprintf(&home, "HOME=/workspace/.tinyclaw-home");
	xasprintf(&path, "PATH=%s", t.path);
	assert_argv(sb.envp, home, path, "ANTHROPIC_API_KEY=" ANT_KEY,
	    "OPENAI_API_KEY=" OAI_KEY, "CODEX_API_KEY=" OAI_KEY);
	free(home);
	free(path);
	sandbox_cleanup(&sb);

	/* network host, same-path, ro_paths, a fresh codex session. */
	bwrap_job(&j);
	j.path_mapping = MAP_SAME_PATH;
	j.rt.ro_paths = ro;
	j.rt.nro_paths = 2;
	j.rt.user = "4242:77";
	j.provider = PROV_OPENAI;
	j.model = NULL;
	j.reset = 1;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	i = 0;
	mid[i++] = "--ro-bind";
	mid[i++] = bin;
	mid[i++] = bin;
	mid[i++] = "--ro-bind-try";
	mid[i++] = "/opt/tools";
	mid[i++] = "/opt/tools";
	mid[i++] = "--ro-bind-try";
	mid[i++] = "/srv/data";
	mid[i++] = "/srv/data";
	mid[i] = NULL;
	{
		char **c = provider_argv(&j, NULL);

		want = bwrap_expected("4242", "77", 1, mid, WORKDIR, WORKDIR,
		    (const char *const *)c);
		check_argv(sb.argv, (const char *const *)want, __FILE__,
		    __LINE__);
		argv_free(want);
		argv_free(c);
	}
	assert_true(env_has(sb.envp, "HOME"));
	assert_string_equal(sb.envp[0], "HOME=" WORKDIR "/.tinyclaw-home");
	sandbox_cleanup(&sb);

	/* network none (the command provider): no --share-net. */
	bwrap_job(&j);
	j.rt.network = NET_NONE;
	j.provider = PROV_COMMAND;
	{
		static char *cmd[] = { "/bin/sh", "-c", "{message}" };
		char **c;

		j.command = cmd;
		j.ncommand = 3;
		assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)),
		    0);
		c = provider_argv(&j, NULL);
		/* sh is in /usr or /bin: nothing more to mount. */
		want = bwrap_expected("1000", "1001", 0, (const char *[]){
		    NULL }, WORKDIR, "/workspace", (const char *const *)c);
		check_argv(sb.argv, (const char *const *)want, __FILE__,
		    __LINE__);
		argv_free(want);
		argv_free(c);
		sandbox_cleanup(&sb);
	}
}

/* claude installed by npm under a prefix: the package, the link, node. */
static void
test_bwrap_npm_cli(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[512], *pfx, *pkg, *bin, *lnk, *node, *cli;
	char			*newpath, rpkg[PATH_MAX], rnode[PATH_MAX];
	char			 rnm[PATH_MAX];
	char			 found[PATH_MAX], dir[PATH_MAX];
	size_t			 i;
	int			 seen_pkg = 0, seen_link = 0, seen_node = 0;

	(void)state;
	xasprintf(&pfx, "%s/npm", t.tmp);
	xasprintf(&pkg, "%s/lib/node_modules/@anthropic-ai/claude-code",
	    pfx);
	xasprintf(&bin, "%s/bin", pfx);
	assert_int_equal(mkdir_p(pkg, 0755), 0);
	assert_int_equal(mkdir_p(bin, 0755), 0);
	xasprintf(&cli, "%s/cli.js", pkg);
	unit_write(cli, "#!/usr/bin/env node\n", 0755);
	xasprintf(&lnk, "%s/claude", bin);
	unlink(lnk);
	assert_int_equal(symlink("../lib/node_modules/@anthropic-ai/"
	    "claude-code/cli.js", lnk), 0);
	xasprintf(&node, "%s/node", bin);
	unit_write(node, "#!/bin/sh\n", 0755);
	xasprintf(&newpath, "%s:%s", bin, t.path);
	setenv("PATH", newpath, 1);
	assert_int_equal(sandbox_cli_dir("claude", found, sizeof(found), dir,
	    sizeof(dir)), 0);
	assert_non_null(realpath(pkg, rpkg));
	assert_non_null(realpath(node, rnode));
	/* Mounted: the node_modules that holds the package (its hoisted
	 * siblings too), not the package alone. */
	snprintf(rnm, sizeof(rnm), "%.*s", (int)(strstr(rpkg,
	    "/node_modules/") - rpkg + strlen("/node_modules")), rpkg);
	assert_string_equal(dir, rpkg);
	assert_string_equal(found, lnk);

	bwrap_job(&j);
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	for (i = 0; sb.argv[i] != NULL && strcmp(sb.argv[i], "--") != 0;
	    i++) {
		if (strcmp(sb.argv[i], "--ro-bind") == 0 &&
		    strcmp(sb.argv[i + 1], rnm) == 0)
			seen_pkg = 1;
		assert_false(strcmp(sb.argv[i], "--ro-bind") == 0 &&
		    strcmp(sb.argv[i + 1], rpkg) == 0);
		if (strcmp(sb.argv[i], "--symlink") == 0 &&
		    strcmp(sb.argv[i + 2], lnk) == 0) {
			assert_non_null(strstr(sb.argv[i + 1], "/cli.js"));
			seen_link = 1;
		}
		if (strcmp(sb.argv[i], "--ro-bind") == 0 &&
		    strcmp(sb.argv[i + 1], rnode) == 0)
			seen_node = 1;
	}
	assert_true(seen_pkg);
	assert_true(seen_link);
	assert_true(seen_node);
	sandbox_cleanup(&sb);
	setenv("PATH", t.path, 1);
	free(pfx); free(pkg); free(bin); free(lnk); free(node); free(cli);
	free(newpath);
}

/*
 * codex installed with `npm install --prefix DIR`: the link in
 * DIR/node_modules/.bin, the platform package hoisted beside the CLI's.
 * Mounted: DIR/node_modules (both packages and the link), no --symlink.
 */
static void
test_bwrap_npm_prefix_cli(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[512], *nm, *pkg, *plat, *bin, *lnk, *newpath;
	char			 rnm[PATH_MAX];
	size_t			 i;
	int			 seen_nm = 0;

	(void)state;
	xasprintf(&nm, "%s/pfx/node_modules", t.tmp);
	xasprintf(&pkg, "%s/@openai/codex/bin", nm);
	xasprintf(&plat, "%s/@openai/codex-linux-x64/vendor", nm);
	xasprintf(&bin, "%s/.bin", nm);
	assert_int_equal(mkdir_p(pkg, 0755), 0);
	assert_int_equal(mkdir_p(plat, 0755), 0);
	assert_int_equal(mkdir_p(bin, 0755), 0);
	free(pkg);
	xasprintf(&pkg, "%s/@openai/codex/bin/codex.js", nm);
	unit_write(pkg, "#!/usr/bin/env node\n", 0755);
	xasprintf(&lnk, "%s/codex", bin);
	unlink(lnk);
	assert_int_equal(symlink("../@openai/codex/bin/codex.js", lnk), 0);
	xasprintf(&newpath, "%s:%s", bin, t.path);
	setenv("PATH", newpath, 1);
	assert_non_null(realpath(nm, rnm));

	bwrap_job(&j);
	j.provider = PROV_OPENAI;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), 0);
	for (i = 0; sb.argv[i] != NULL && strcmp(sb.argv[i], "--") != 0;
	    i++) {
		if (strcmp(sb.argv[i], "--ro-bind") == 0 &&
		    strcmp(sb.argv[i + 1], rnm) == 0)
			seen_nm = 1;
		/* Not the package alone; .bin/codex is in the mount. */
		assert_null(strstr(sb.argv[i], "/@openai/codex"));
		if (strcmp(sb.argv[i], "--symlink") == 0)
			assert_string_not_equal(sb.argv[i + 2], lnk);
	}
	assert_true(seen_nm);
	sandbox_cleanup(&sb);
	setenv("PATH", t.path, 1);
	free(nm); free(pkg); free(plat); free(bin); free(lnk); free(newpath);
}

static void
test_bwrap_fail_closed(void **state)
{
	struct sandbox_run	 sb;
	struct job		 j;
	char			 err[512];

	(void)state;
	bwrap_job(&j);
	j.rt.runtime_command = "no-such-bwrap";
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, "\"no-such-bwrap\" not found in PATH "
	    "(sandbox.bwrap.runtime_command): install bubblewrap (apt-get "
	    "install bubblewrap, dnf install bubblewrap)");
	assert_null(sb.argv);

	bwrap_job(&j);
	j.rt.user = "auto";
	j.workdir = "/usr";	/* root's everywhere */
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, "working directory /usr is owned by root: "
	    "sandbox.bwrap.user \"auto\" takes its owner and never runs an "
	    "agent as root; chown it to the agent's user or set "
	    "sandbox.bwrap.user to \"UID:GID\"");

	bwrap_job(&j);
	j.rt.user = "0:0";	/* a job from a tampered frame */
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, "sandbox.bwrap.user: \"0:0\" is not an "
	    "unprivileged UID:GID");

	bwrap_job(&j);
	unsetenv("ANTHROPIC_API_KEY");
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not set in the daemon's environment"));
	setenv("ANTHROPIC_API_KEY", ANT_KEY, 1);

	bwrap_job(&j);
	j.rt.network = NET_NONE;
	assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)), -1);
	assert_string_equal(err, "sandbox.bwrap.network \"none\" cannot "
	    "work with the anthropic provider: its CLI must reach the API; "
	    "set it to \"host\"");

	bwrap_job(&j);
	j.provider = PROV_COMMAND;
	{
		static char *cmd[] = { "no-such-tool", "{message}" };

		j.command = cmd;
		j.ncommand = 2;
		assert_int_equal(sandbox_prepare(&j, &sb, err, sizeof(err)),
		    -1);
		char	 want[8192];
		const char *path = getenv("PATH");

		snprintf(want, sizeof(want), "no-such-tool not found in PATH "
		    "(%.200s%s): bwrap mode runs the CLI installed on the "
		    "host, read-only", path != NULL ? path :
		    "/usr/local/bin:/usr/bin:/bin", path != NULL &&
		    strlen(path) > 200 ? "..." : "");
		assert_string_equal(err, want);
	}
}

static void
test_runtime_env(void **state)
{
	char	*allow[] = { "ANTHROPIC_API_KEY", "DOCKER_TOKEN", "CV_KEY" };
	char	*pass[] = { "AWS_*", "CV_KEY", "EXACT" };
	char	**v;

	(void)state;
	setenv("DOCKER_HOST", "unix:///x", 1);
	setenv("DOCKER_TOKEN", "sk-SECRET-docker", 1);
	setenv("CONTAINERS_CONF", "/x", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/1", 1);
	setenv("AWS_PROFILE", "p", 1);
	setenv("CV_KEY", "sk-SECRET-cv", 1);
	setenv("EXACT", "1", 1);
	setenv("EXACTLY", "1", 1);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	setenv("HOSTNAME_X", "1", 1);
	v = runtime_env(allow, 3, pass, 3);
	assert_true(env_has(v, "PATH"));
	assert_true(env_has(v, "DOCKER_HOST"));
	assert_true(env_has(v, "CONTAINERS_CONF"));
	assert_true(env_has(v, "XDG_RUNTIME_DIR"));
	assert_true(env_has(v, "AWS_PROFILE"));
	assert_true(env_has(v, "EXACT"));
	assert_false(env_has(v, "EXACTLY"));
	assert_false(env_has(v, "NOTIFY_SOCKET"));
	assert_false(env_has(v, "HOSTNAME_X"));
	assert_false(env_has(v, "ANTHROPIC_API_KEY"));
	assert_false(env_has(v, "OPENAI_API_KEY"));	/* not needed either */
	assert_false(env_has(v, "DOCKER_TOKEN"));
	assert_false(env_has(v, "CV_KEY"));
	assert_no_secret(v);
	argv_free(v);
	/* Nothing passed: the built-in list alone. */
	v = runtime_env(NULL, 0, NULL, 0);
	assert_true(env_has(v, "DOCKER_TOKEN"));
	assert_false(env_has(v, "AWS_PROFILE"));
	assert_false(env_has(v, "ANTHROPIC_API_KEY"));
	argv_free(v);
	unsetenv("DOCKER_TOKEN");
	unsetenv("CV_KEY");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_runtime_env, env_setup),
		cmocka_unit_test_setup(test_docker_argv, env_setup),
		cmocka_unit_test_setup(test_podman_codex, env_setup),
		cmocka_unit_test_setup(test_apple_argv, env_setup),
		cmocka_unit_test_setup(test_apple_cpus_fail, env_setup),
		cmocka_unit_test_setup(test_network_none_command, env_setup),
		cmocka_unit_test_setup(test_host, env_setup),
		cmocka_unit_test_setup(test_env_file, env_setup),
		cmocka_unit_test_setup(test_container_record, env_setup),
		cmocka_unit_test_setup(test_fail_closed, env_setup),
		cmocka_unit_test_setup(test_key_alternatives, env_setup),
		cmocka_unit_test_setup(test_newline_secret, env_setup),
		cmocka_unit_test_setup(test_env_file_planted, env_setup),
		cmocka_unit_test_setup(test_runtime_lookup, env_setup),
		cmocka_unit_test_setup(test_bwrap_argv, env_setup),
		cmocka_unit_test_setup(test_bwrap_npm_cli, env_setup),
		cmocka_unit_test_setup(test_bwrap_npm_prefix_cli, env_setup),
		cmocka_unit_test_setup(test_bwrap_fail_closed, env_setup),
	};

	return cmocka_run_group_tests_name("sandbox", tests, group_setup,
	    group_teardown);
}
