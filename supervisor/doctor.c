/*
 * `sandbox doctor` and `sandbox build-image`, which work without a running
 * daemon. The doctor checks what an invocation will need, one line per
 * check with a fix hint, and exits non-zero if any check fails; where a
 * daemon runs, it asks the daemon which keys it has, since its environment
 * is the one that matters.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cgroup.h"
#include "client.h"
#include "config.h"
#include "provider.h"
#include "sandbox.h"
#include "supervisor.h"
#include "util.h"

#ifndef CLAWVISOR_DATADIR
#define CLAWVISOR_DATADIR "/usr/local/share/clawvisor"
#endif

struct doctor {
	json_object	*checks;
	int		 failed;
	int		 json;
};

static void
check(struct doctor *d, int ok, const char *name, const char *fix,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
check(struct doctor *d, int ok, const char *name, const char *fix,
    const char *fmt, ...)
{
	json_object	*o;
	char		 detail[1024];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (!ok)
		d->failed++;
	if (d->json) {
		o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "ok", json_object_new_boolean(ok));
		json_object_object_add(o, "detail",
		    json_object_new_string(detail));
		if (!ok && fix != NULL)
			json_object_object_add(o, "fix",
			    json_object_new_string(fix));
		json_object_array_add(d->checks, o);
		return;
	}
	printf("%-4s  %-10s %s\n", ok ? "ok" : "FAIL", name, detail);
	if (!ok && fix != NULL)
		printf("      %-10s fix: %s\n", "", fix);
}

static char *
which(const char *name)
{
	const char	*path, *p, *e;
	char		 buf[PATH_MAX];

	if (strchr(name, '/') != NULL)
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)(e - p),
		    e == p ? "." : p, name);
		if (access(buf, X_OK) == 0)
			return xstrdup(buf);
		if (*e == '\0')
			return NULL;
	}
}

static const char *
first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

static void
doctor_runtime(struct doctor *d, const struct config *cf, int apple,
    int need_claude, int need_codex)
{
	const struct runtime_conf	*rt = apple ? &cf->apple : &cf->docker;
	char				*path, out[4096], fix[512];
	char				*argv[12];
	int				 r;

	if ((path = which(rt->runtime_command)) == NULL) {
		snprintf(fix, sizeof(fix), apple ? "install Apple's container "
		    "CLI, or set sandbox.apple.runtime_command" : "install "
		    "docker or podman, or set sandbox.docker.runtime_command");
		check(d, 0, "runtime", fix, "\"%s\" not found in PATH",
		    rt->runtime_command);
		return;
	}
	check(d, 1, "runtime", NULL, "%s", path);
	free(path);
	argv[0] = rt->runtime_command;
	argv[1] = apple ? "system" : "info";
	argv[2] = apple ? "status" : NULL;
	argv[3] = NULL;
	r = run_output(argv, out, sizeof(out), 30);
	check(d, r == 0, "engine", apple ? "container system start" :
	    "start the engine (systemctl start docker, or podman system "
	    "service) and check DOCKER_HOST", r == 0 ? "%s %s answers" :
	    "%s %s failed: %s", rt->runtime_command, apple ? "system status" :
	    "info", r == 0 ? "" : first_line(out));
	if (r != 0)
		return;
	argv[1] = "image";
	argv[2] = "inspect";
	argv[3] = rt->image;
	argv[4] = NULL;
	r = run_output(argv, out, sizeof(out), 30);
	check(d, r == 0, "image", "clawvisor sandbox build-image", r == 0 ?
	    "%s present" : "%s not present", rt->image);
	if (r != 0 || (!need_claude && !need_codex))
		return;
	argv[1] = "run";
	argv[2] = "--rm";
	argv[3] = "--network";
	argv[4] = "none";
	argv[5] = rt->image;
	argv[6] = "sh";
	argv[7] = "-c";
	argv[8] = need_claude && need_codex ? "command -v claude && command "
	    "-v codex" : need_claude ? "command -v claude" : "command -v codex";
	argv[9] = NULL;
	r = run_output(argv, out, sizeof(out), 120);
	check(d, r == 0, "clis", "rebuild the image: clawvisor sandbox "
	    "build-image", r == 0 ? "%s%s%s in %s" : "%s%s%s missing in %s",
	    need_claude ? "claude" : "", need_claude && need_codex ? " and " :
	    "", need_codex ? "codex" : "", rt->image);
}

/* The daemon's view of the keys, or NULL without a daemon. */
static json_object *
daemon_env(const char *home)
{
	json_object	*req, *rep;
	char		*line;
	int		 fd;

	if ((fd = client_connect(home, 1)) == -1)
		return NULL;
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(
	    "sandbox.env"));
	line = client_request(fd, req);
	close(fd);
	json_object_put(req);
	if (line == NULL)
		return NULL;
	rep = json_tokener_parse(line);
	free(line);
	return rep;
}

static int
allowlisted(const struct config *cf, const char *k)
{
	size_t i;

	for (i = 0; i < cf->nallow; i++)
		if (strcmp(cf->env_allowlist[i], k) == 0)
			return 1;
	return 0;
}

static int
doctor_key_set(json_object *denv, const char *key)
{
	const char *v;

	if (denv != NULL)
		return json_object_get_boolean(json_object_object_get(
		    json_object_object_get(denv, "set"), key));
	return (v = getenv(key)) != NULL && *v != '\0';
}

/* One of the provider's key variables is allowlisted, and set. */
static void
doctor_key(struct doctor *d, const struct config *cf, json_object *denv,
    enum provider p)
{
	const char *const	*k, *listed = NULL, *set = NULL;
	char			 names[128], fix[256];

	for (k = provider_keys(p); *k != NULL; k++) {
		if (!allowlisted(cf, *k))
			continue;
		if (listed == NULL)
			listed = *k;
		if (set == NULL && doctor_key_set(denv, *k))
			set = *k;
	}
	provider_keys_text(p, names, sizeof(names));
	snprintf(fix, sizeof(fix), "add \"%s\" to sandbox.env_allowlist",
	    provider_keys(p)[0]);
	check(d, listed != NULL, "allowlist", fix, listed != NULL ?
	    "%s is allowlisted" : "%s is not in sandbox.env_allowlist",
	    listed != NULL ? listed : names);
	snprintf(fix, sizeof(fix), "set %s in the environment the daemon "
	    "starts with (e.g. the systemd unit's EnvironmentFile), then "
	    "restart it", provider_keys(p)[0]);
	check(d, set != NULL, "keys", fix, "%s is %sset %s", set != NULL ?
	    set : names, set != NULL ? "" : "not ", denv != NULL ?
	    "in the daemon's environment" : "in this shell (no daemon "
	    "running)");
}

static void
doctor_uid(struct doctor *d, const struct config *cf, json_object *denv,
    int apple, int need_claude)
{
	const char	*user = apple ? cf->apple.user : cf->docker.user;
	const char	*key = apple ? "sandbox.apple.user" : "sandbox.docker.user";
	long		 uid = getuid(), gid = getgid();
	char		 fix[256];

	if (denv != NULL) {
		uid = (long)json_object_get_int64(json_object_object_get(denv,
		    "uid"));
		gid = (long)json_object_get_int64(json_object_object_get(denv,
		    "gid"));
	}
	snprintf(fix, sizeof(fix), "set %s to an unprivileged UID:GID (the "
	    "agent-runner image's user is 10001:10001)", key);
	if (strcmp(user, "auto") != 0)
		check(d, strncmp(user, "0:", 2) != 0, "uid", fix,
		    "containers run as %s%s", user, strncmp(user, "0:", 2) == 0 ?
		    " (root)" : "");
	else if (uid == 0 && need_claude)
		check(d, 0, "uid", fix, "containers run as 0:%ld, the daemon's "
		    "own uid:gid (root): claude refuses to run as root", gid);
	else
		check(d, 1, "uid", NULL, "containers run as %ld:%ld, the "
		    "daemon's own uid:gid", uid, gid);
}

/*
 * The network the containers get, against the providers that run in them:
 * a cloud provider's CLI must reach its API (a run with network "none"
 * fails closed, docs/SANDBOX.md).
 */
static void
doctor_network(struct doctor *d, const struct config *cf, int apple,
    int cloud)
{
	const struct runtime_conf	*rt = apple ? &cf->apple : &cf->docker;
	const char			*key = apple ? "sandbox.apple.network" :
					    "sandbox.docker.network";
	char				 fix[256];

	if (rt->network == NET_NONE) {
		snprintf(fix, sizeof(fix), "set %s to \"default\", or use the "
		    "command provider", key);
		check(d, !cloud, "network", fix, cloud ? "%s is \"none\": the "
		    "claude and codex CLIs cannot reach their API" : "%s is "
		    "\"none\": no network in the containers", key);
		return;
	}
	check(d, 1, "network", NULL, "%s is \"%s\": --network %s, outbound "
	    "access through the engine's NAT%s", key, rt->network_restricted ?
	    "restricted" : "default", apple ? "default" : "bridge",
	    rt->network_restricted ? " (clawvisor has no restricted network: "
	    "the same as default)" : "");
}

/*
 * A directory the daemon will need to write in: there and writable, or
 * missing with its nearest existing parent writable (the worker creates
 * it at the first run). The doctor creates nothing.
 */
static int
writable_or_creatable(const char *path)
{
	struct stat	 st;
	char		*p, *slash;
	int		 ok;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) && access(path, W_OK) == 0;
	if (errno != ENOENT)
		return 0;
	p = xstrdup(path);
	for (;;) {
		if ((slash = strrchr(p, '/')) == NULL) {
			ok = 0;
			break;
		}
		if (slash == p)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(p, &st) == 0) {
			ok = S_ISDIR(st.st_mode) && access(p, W_OK) == 0;
			break;
		}
		if (errno != ENOENT || slash == p) {
			ok = 0;
			break;
		}
	}
	free(p);
	return ok;
}

/*
 * Run a bwrap sandbox built exactly as a worker builds one (sandbox.c),
 * with `sh -c SCRIPT` in place of the CLI, placed in its cgroup and under
 * the agent's ids as runner.c does. 0 and its exit status, or -1.
 */
static int
doctor_bwrap_run(const struct config *cf, enum provider prov,
    const char *workdir, const char *script, int *status, char *err,
    size_t errlen)
{
	struct sandbox_run	 sb;
	struct job		 j;
	struct pollfd		 pfd;
	char			*allow[1] = { NULL }, out[1024];
	char			*cmd[3] = { "sh", "-c", NULL };
	int			 fds[CGROUP_MAX_DIRS], pe[2], rc = -1;
	int			 placeholder = 0;
	size_t			 i, n = 0, len = 0;
	ssize_t			 r;
	pid_t			 pid;
	int64_t			 deadline;

	memset(&j, 0, sizeof(j));
	j.id = (uint64_t)getpid();
	j.agent_id = "doctor";
	j.provider = prov;
	j.message = "";
	cmd[2] = (char *)script;
	j.command = cmd;
	j.ncommand = 3;
	j.workdir = (char *)workdir;
	j.home = cf->home;
	j.mode = MODE_BWRAP;
	j.env_allowlist = allow;
	j.path_mapping = cf->path_mapping;
	j.rt = cf->bwrap;
	j.rt.limits_best_effort = 1;	/* the limits are checked apart */
	/*
	 * The provider's view (its CLI's directory mounted): sandbox.c
	 * wants its key set, which does not matter here; a placeholder in
	 * this short-lived process's environment stands in for it.
	 */
	if (prov != PROV_COMMAND) {
		allow[0] = (char *)provider_keys(prov)[0];
		j.nallow = 1;
		if (getenv(allow[0]) == NULL) {
			setenv(allow[0], "doctor-placeholder", 1);
			placeholder = 1;
		}
	}
	r = sandbox_prepare(&j, &sb, err, errlen);
	if (placeholder)
		unsetenv(allow[0]);
	if (r == -1)
		return -1;
	if (prov != PROV_COMMAND) {
		/* That view, sh's command line. */
		for (i = 0; strcmp(sb.argv[i], "--") != 0; i++)
			;
		for (n = i + 1; sb.argv[n] != NULL; n++)
			free(sb.argv[n]);
		sb.argv[i + 1] = xstrdup("sh");
		sb.argv[i + 2] = xstrdup("-c");
		sb.argv[i + 3] = xstrdup(script);
		sb.argv[i + 4] = NULL;
		n = 0;
	}
	if (sb.has_cg)
		n = cgroup_procs_fds(&sb.cg, fds, CGROUP_MAX_DIRS);
	if (pipe2(pe, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto done;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pe[0]);
		close(pe[1]);
		goto done;
	}
	if (pid == 0) {
		gid_t g = sb.gid;

		for (i = 0; i < n; i++)
			if (write(fds[i], "0", 1) != 1)
				_exit(125);
		if (sb.setid && (setgroups(1, &g) == -1 ||
		    setresgid(g, g, g) == -1 ||
		    setresuid(sb.uid, sb.uid, sb.uid) == -1))
			_exit(126);
		if (dup2(pe[1], 2) == -1 || dup2(pe[1], 1) == -1 ||
		    chdir(workdir) == -1)
			_exit(127);
		execvpe(sb.argv[0], sb.argv, sb.envp);
		_exit(127);
	}
	close(pe[1]);
	pfd.fd = pe[0];
	pfd.events = POLLIN;
	deadline = mono_ms() + 30000;
	while (mono_ms() < deadline && poll(&pfd, 1, 200) >= 0) {
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		r = read(pe[0], out + len, sizeof(out) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == sizeof(out) - 1)
			len = 0;	/* keep reading, keep the end */
	}
	out[len] = '\0';
	close(pe[0]);
	if (mono_ms() >= deadline)
		kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) == -1 && errno == EINTR)
		;
	snprintf(err, errlen, "%s", first_line(out));
	rc = 0;
done:
	for (i = 0; i < n; i++)
		close(fds[i]);
	sandbox_cleanup(&sb);
	return rc;
}

/* bwrap mode: found, a real sandbox starts, limits, the CLIs inside. */
static void
doctor_bwrap(struct doctor *d, const struct config *cf, int need_claude,
    int need_codex)
{
	struct cgroup_limits	 l;
	char			*path, tmpl[] = "/tmp/clawvisor-doctor-XXXXXX";
	char			 err[1024], held[1024], fix[512];
	int			 status, i;
	unsigned long		 u, g;

	path = which(cf->bwrap.runtime_command);
	check(d, path != NULL, "bwrap", "install bubblewrap (apt-get install "
	    "bubblewrap), or set sandbox.bwrap.runtime_command",
	    path != NULL ? "%s: %s" : "\"%s\" not found in PATH%s",
	    cf->bwrap.runtime_command, path != NULL ? path : "");
	free(path);
	if (cf->bwrap.network == NET_HOST)
		check(d, 1, "network", NULL, "warning: sandbox.bwrap.network "
		    "is \"host\": sandboxes share the host's network, its "
		    "loopback included");
	else
		check(d, !need_claude && !need_codex, "network", "set "
		    "sandbox.bwrap.network to \"host\", or use the command "
		    "provider", "sandbox.bwrap.network is \"none\": a loopback "
		    "of the sandbox's own, nothing else%s", need_claude ||
		    need_codex ? "; claude and codex cannot reach their API" :
		    "");
	l.memory = config_memory_bytes(cf->bwrap.memory);
	l.cpus = cf->bwrap.cpus;
	l.pids = cf->bwrap.pids_limit;
	cgroup_describe(&l, held, sizeof(held));
	check(d, strstr(held, "not enforced") == NULL &&
	    strncmp(held, "cannot", 6) != 0 ? 1 : cf->bwrap.limits_best_effort,
	    "limits", "run the daemon where it can create cgroups (root, or a "
	    "delegated cgroup v2 subtree), or set sandbox.bwrap.limits to "
	    "\"best-effort\"", "memory %s, cpus %s, pids_limit %lld: %s%s",
	    cf->bwrap.memory, cf->bwrap.cpus, (long long)cf->bwrap.pids_limit,
	    held, cf->bwrap.limits_best_effort ? " (best-effort)" : "");
	if (mkdtemp(tmpl) == NULL) {
		check(d, 0, "sandbox", NULL, "mkdtemp: %s", strerror(errno));
		return;
	}
	/* The throwaway workspace is the agent user's, as a real one. */
	if (strcmp(cf->bwrap.user, "auto") != 0 &&
	    sscanf(cf->bwrap.user, "%lu:%lu", &u, &g) == 2)
		(void)chown(tmpl, (uid_t)u, (gid_t)g);
	else if (getuid() == 0)
		(void)chown(tmpl, 65534, 65534);
	snprintf(fix, sizeof(fix), "see the message; docs/TROUBLESHOOTING.md "
	    "(bwrap mode)");
	if (doctor_bwrap_run(cf, PROV_COMMAND, tmpl, "true", &status, err,
	    sizeof(err)) == -1)
		check(d, 0, "sandbox", fix, "%s", err);
	else
		check(d, WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "sandbox", fix, WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0 ? "a test sandbox started and "
		    "was torn down" : "a test sandbox failed: %s", err);
	for (i = 0; i < 2; i++) {
		const char *cli = i == 0 ? "claude" : "codex";

		if (!(i == 0 ? need_claude : need_codex))
			continue;
		snprintf(fix, sizeof(fix), "install %s on the host (its "
		    "directory is mounted read-only), or add its directory "
		    "to sandbox.bwrap.ro_paths", cli);
		if (doctor_bwrap_run(cf, i == 0 ? PROV_ANTHROPIC : PROV_OPENAI,
		    tmpl, i == 0 ? "command -v claude" : "command -v codex",
		    &status, err, sizeof(err)) == -1)
			check(d, 0, "cli", fix, "%s", err);
		else
			check(d, WIFEXITED(status) && WEXITSTATUS(status) == 0,
			    "cli", fix, WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0 ? "%s is visible inside "
			    "the sandbox: %s" : "%s is not visible inside the "
			    "sandbox%s", cli, err);
	}
	(void)rmdir(tmpl);
}

/*
 * A container that runs as a configured UID:GID other than the daemon's
 * must be able to write the agent's working directory, as the run will
 * need: an existing one by its owner and mode, a missing one is created
 * owned by that user only if the daemon is root (worker.c).
 */
static void
doctor_workdir_user(struct doctor *d, const struct config *cf,
    const struct agent *a, long duid, long dgid)
{
	const struct runtime_conf	*rt;
	struct stat			 st;
	char				 fix[512];
	uid_t				 uid;
	gid_t				 gid;
	int				 m = config_agent_mode(cf, a);

	if (m == MODE_HOST || a->refused != NULL)
		return;
	rt = m == MODE_APPLE ? &cf->apple : &cf->docker;
	if (config_user(rt, &uid, &gid) == -1 ||
	    ((long)uid == duid && (long)gid == dgid))
		return;
	snprintf(fix, sizeof(fix), "chown %u:%u %s, or make it writable by "
	    "that user", (unsigned)uid, (unsigned)gid, a->workdir);
	if (stat(a->workdir, &st) == 0) {
		if (!dir_writable_by(&st, uid, gid))
			check(d, 0, "workspace", fix, "%s (agent %s) is owned "
			    "by %u:%u, mode %04o: the container user %s cannot"
			    " write it", a->workdir, a->id,
			    (unsigned)st.st_uid, (unsigned)st.st_gid,
			    (unsigned)(st.st_mode & 07777), rt->user);
	} else if (duid != 0)
		check(d, 0, "workspace", fix, "%s (agent %s) will be created "
		    "by the daemon (uid %ld), which cannot give it to the "
		    "container user %s", a->workdir, a->id, duid, rt->user);
}

static void
doctor_workspace(struct doctor *d, const struct config *cf,
    json_object *denv)
{
	long	duid = getuid(), dgid = getgid();
	struct stat	st;
	char		fix[512];
	size_t		i;
	int		ok = writable_or_creatable(cf->workspace);

	snprintf(fix, sizeof(fix), "create %s writable by the daemon's user, "
	    "or set workspace.path", cf->workspace);
	check(d, ok, "workspace", fix, !ok ? "%s is not writable" :
	    stat(cf->workspace, &st) == 0 ? "%s is writable" :
	    "%s will be created at the first run", cf->workspace);
	for (i = 0; ok && i < cf->nagents; i++)
		if (!writable_or_creatable(cf->agents[i].workdir))
			check(d, 0, "workspace", fix, "%s (agent %s) is not "
			    "writable", cf->agents[i].workdir,
			    cf->agents[i].id);
	if (denv != NULL) {
		duid = (long)json_object_get_int64(json_object_object_get(denv,
		    "uid"));
		dgid = (long)json_object_get_int64(json_object_object_get(denv,
		    "gid"));
	}
	for (i = 0; ok && i < cf->nagents; i++)
		doctor_workdir_user(d, cf, &cf->agents[i], duid, dgid);
}

/* Where agent directories are set up from (worker/agentdir.c). */
/* SPEC §9: the egress process, as the daemon reports it. */
static void
doctor_egress(struct doctor *d, const struct config *cf, json_object *denv,
    int docker)
{
	json_object	*eg = NULL, *v;
	const char	*state = NULL;

	if (cf->egress.mode != EGRESS_PROXY)
		return;
	if (denv != NULL && json_object_object_get_ex(denv, "egress", &eg) &&
	    json_object_object_get_ex(eg, "state", &v))
		state = json_object_get_string(v);
	if (denv == NULL)
		check(d, 1, "egress", NULL, "no daemon running: the egress "
		    "process is checked when it runs");
	else
		check(d, state != NULL && strcmp(state, "running") == 0,
		    "egress", "see the log: the supervisor respawns it",
		    "the egress process is %s", state != NULL ? state :
		    "not reported by the daemon");
	check(d, 1, "egress network", NULL, "sandboxes get no network of "
	    "their own with sandbox.egress.mode \"proxy\", whatever the "
	    "mode's network says");
	check(d, 1, "egress proxy", NULL, "sandboxes reach the proxy through "
	    "clawvisor-bridge (%s)", docker ? "bwrap, docker/podman" : "bwrap");
}

static void
doctor_tinyclaw(struct doctor *d, const struct config *cf)
{
	const char *why;

	if (cf->tinyclaw_dir == NULL) {
		check(d, 1, "tinyclaw", NULL, "tinyclaw.install_dir is not set: "
		    "agent directories are not set up from TinyClaw's files "
		    "(their teammates blocks are kept up to date)");
		return;
	}
	if ((why = teammates_install_bad(cf->tinyclaw_dir)) == NULL)
		check(d, 1, "tinyclaw", NULL, "agent directories are set up "
		    "from %s", cf->tinyclaw_dir);
	else
		check(d, 0, "tinyclaw", "set tinyclaw.install_dir to TinyClaw's"
		    " install directory (the one with its AGENTS.md, "
		    "heartbeat.md and SOUL.md)", "%s/AGENTS.md: %s: agent "
		    "directories are not set up from it", cf->tinyclaw_dir,
		    why);
}

int
doctor_main(const char *home, int json)
{
	struct doctor	 d = { NULL, 0, json };
	struct config	*cf;
	json_object	*denv, *o;
	char		 err[512], *p;
	size_t		 i;
	int		 used[MODE_INHERIT] = { 0 }, claude[MODE_INHERIT] = { 0 };
	int		 codex[MODE_INHERIT] = { 0 }, m;

	d.checks = json_object_new_array();
	if ((cf = config_load(home, err, sizeof(err))) == NULL) {
		check(&d, 0, "settings", "correct settings.json", "%s", err);
		goto out;
	}
	check(&d, 1, "settings", NULL, "%s is valid%s%s", cf->path,
	    *cf->warning ? "; warning: " : "", cf->warning);
	for (i = 0; i < cf->nagents; i++) {
		if (cf->agents[i].refused != NULL) {
			check(&d, 0, "agent", "set the agent's provider to "
			    "\"anthropic\", \"openai\" or \"command\", or "
			    "remove it", "%s", cf->agents[i].refused);
			continue;
		}
		m = config_agent_mode(cf, &cf->agents[i]);
		used[m] = 1;
		claude[m] |= cf->agents[i].provider == PROV_ANTHROPIC;
		codex[m] |= cf->agents[i].provider == PROV_OPENAI;
	}
	if (rival_find(home, err, sizeof(err)))
		check(&d, 0, "processor", "stop TinyClaw's queue processor and "
		    "keep `tinyclaw start` from starting it "
		    "(docs/MIGRATION.md)", "%s", err);
	else
		check(&d, 1, "processor", NULL, "no TinyClaw queue processor "
		    "runs on %s", home);
	denv = daemon_env(home);
	if (used[MODE_HOST])
		for (i = 0; i < 2; i++) {
			const char *cli = i == 0 ? "claude" : "codex";

			if (!(i == 0 ? claude : codex)[MODE_HOST])
				continue;
			p = which(cli);
			check(&d, p != NULL, "cli", "install it, or use a "
			    "container mode", p != NULL ? "%s: %s" :
			    "%s not found in PATH (host mode)%s", cli,
			    p != NULL ? p : "");
			free(p);
		}
	for (m = MODE_DOCKER; m <= MODE_APPLE; m++) {
		if (!used[m])
			continue;
		doctor_runtime(&d, cf, m == MODE_APPLE, claude[m], codex[m]);
		if (claude[m])
			doctor_key(&d, cf, denv, PROV_ANTHROPIC);
		if (codex[m])
			doctor_key(&d, cf, denv, PROV_OPENAI);
		doctor_network(&d, cf, m == MODE_APPLE, claude[m] ||
		    codex[m]);
		doctor_uid(&d, cf, denv, m == MODE_APPLE, claude[m]);
	}
	if (used[MODE_BWRAP]) {
		if (claude[MODE_BWRAP])
			doctor_key(&d, cf, denv, PROV_ANTHROPIC);
		if (codex[MODE_BWRAP])
			doctor_key(&d, cf, denv, PROV_OPENAI);
		doctor_bwrap(&d, cf, claude[MODE_BWRAP], codex[MODE_BWRAP]);
	}
	doctor_egress(&d, cf, denv, used[MODE_DOCKER]);
	doctor_workspace(&d, cf, denv);
	doctor_tinyclaw(&d, cf);
	json_object_put(denv);
	config_free(cf);
out:
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "ok",
		    json_object_new_boolean(d.failed == 0));
		json_object_object_add(o, "checks", d.checks);
		printf("%s\n", json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		json_object_put(d.checks);
		printf("%d check(s) failed\n", d.failed);
	}
	return d.failed == 0 ? 0 : 1;
}

static char *
find_dockerfile(void)
{
	char		 exe[PATH_MAX], *cand[3], *dir, *found = NULL;
	const char	*env = getenv("CLAWVISOR_CONTRIB");
	ssize_t		 n;
	int		 i, nc = 0;

	if (env != NULL)
		xasprintf(&cand[nc++], "%s/Dockerfile.agent-runner", env);
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		if ((dir = strrchr(exe, '/')) != NULL)
			*dir = '\0';
		/* Run from the build tree: build/ is beside contrib/. */
		xasprintf(&cand[nc++], "%s/../contrib/Dockerfile.agent-runner",
		    exe);
	}
	xasprintf(&cand[nc++], "%s/Dockerfile.agent-runner",
	    CLAWVISOR_DATADIR);
	for (i = 0; i < nc; i++) {
		if (found == NULL && access(cand[i], R_OK) == 0)
			found = cand[i];
		else
			free(cand[i]);
	}
	return found;
}

int
build_image_main(const char *home)
{
	struct config	*cf;
	const struct runtime_conf *rt;
	char		 err[512], *file, *ctx, *argv[10];
	pid_t		 pid;
	int		 st;

	if ((cf = config_load(home, err, sizeof(err))) == NULL) {
		fprintf(stderr, "clawvisor: %s\n", err);
		return 1;
	}
	rt = cf->mode == MODE_APPLE ? &cf->apple : &cf->docker;
	if ((file = find_dockerfile()) == NULL) {
		fprintf(stderr, "clawvisor: Dockerfile.agent-runner not found "
		    "(set CLAWVISOR_CONTRIB to the directory that holds it)\n");
		config_free(cf);
		return 1;
	}
	ctx = xstrdup(file);
	*strrchr(ctx, '/') = '\0';
	argv[0] = rt->runtime_command;
	argv[1] = "build";
	argv[2] = "-t";
	argv[3] = rt->image;
	argv[4] = "-f";
	argv[5] = file;
	argv[6] = ctx;
	argv[7] = NULL;
	printf("building %s with %s from %s\n", rt->image,
	    rt->runtime_command, file);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "clawvisor: cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	st = -1;
	if (pid > 0)
		waitpid(pid, &st, 0);
	free(file);
	free(ctx);
	if (pid == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "clawvisor: the image build failed\n");
		config_free(cf);
		return 1;
	}
	printf("\nbuilt %s. Next:\n"
	    "  clawvisor sandbox set %s     # run agents in containers\n"
	    "  clawvisor sandbox doctor         # check runtime, image, keys\n",
	    rt->image, cf->mode == MODE_APPLE ? "apple" : "docker");
	config_free(cf);
	return 0;
}
