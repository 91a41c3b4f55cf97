/*
 * `sandbox doctor`, which works without a running daemon: it checks what
 * an invocation will need, one line per check with a fix hint, and exits
 * non-zero if any check fails; where a daemon runs, it asks the daemon
 * which keys it has, since its environment is the one that matters.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
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
#include "log.h"
#include "provider.h"
#include "sandbox.h"
#include "supervisor.h"
#include "util.h"


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
	char	buf[PATH_MAX], why[PATH_MAX + 512];

	return path_lookup(name, buf, sizeof(buf), why, sizeof(why)) ?
	    xstrdup(buf) : NULL;
}

static const char *
first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	return s;
}

/*
 * A throwaway container with a real run's flags (trial.c) runs `true`:
 * what the engine says when it fails is the first run's failure, in the
 * words classify() gives it (an engine error is not an image error). Then
 * the CLIs, looked up in the same container.
 */
static void
doctor_trial(struct doctor *d, const struct config *cf, int apple,
    int need_claude, int need_codex)
{
	const struct runtime_conf	*rt = apple ? &cf->apple : &cf->docker;
	struct run_status		 st;
	char				 tmpl[] = "/tmp/clawvisor-doctor-XXXXXX";
	char				 out[4096], err[1024], why[1024];
	const char			*fix;
	uid_t				 u;
	gid_t				 g;
	int				 status, prov, ok;

	if (mkdtemp(tmpl) == NULL) {
		check(d, 0, "sandbox", NULL, "mkdtemp: %s", strerror(errno));
		return;
	}
	/* The throwaway workspace is the container user's, as a real one. */
	if (getuid() == 0 && config_user(rt, &u, &g) == 0)
		(void)chown(tmpl, u, g);
	prov = need_claude ? PROV_ANTHROPIC : need_codex ? PROV_OPENAI :
	    PROV_COMMAND;
	if (trial_run(cf, apple ? MODE_APPLE : MODE_DOCKER, prov, tmpl, "true",
	    &status, out, sizeof(out), err, sizeof(err)) == -1) {
		check(d, 0, "sandbox", "see the message", "a container with a "
		    "real run's flags cannot be built: %s", err);
		goto done;
	}
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (ok) {
		check(d, 1, "sandbox", NULL, "a container with a real run's "
		    "flags (user, network, limits, mounts) ran `true` and was "
		    "removed");
	} else {
		memset(&st, 0, sizeof(st));
		st.exited = 1;
		st.exit_code = WEXITSTATUS(status);
		st.container = 1;
		st.program = rt->runtime_command;
		st.err_text = out;
		st.err_len = strlen(out);
		(void)classify(&st, why, sizeof(why));
		fix = strncmp(why, "container engine error", 22) == 0 ? "fix "
		    "the host as the engine's line says (docs/TROUBLESHOOTING.md"
		    ", \"Engine errors\")" : "see docs/TROUBLESHOOTING.md, "
		    "\"Invocation errors\"";
		check(d, 0, "sandbox", fix, "a container with a real run's flags "
		    "failed: %s", why);
		goto done;
	}
	if (!need_claude && !need_codex)
		goto done;
	if (trial_run(cf, apple ? MODE_APPLE : MODE_DOCKER, prov, tmpl,
	    need_claude && need_codex ? "command -v claude && command -v "
	    "codex" : need_claude ? "command -v claude" : "command -v codex",
	    &status, out, sizeof(out), err, sizeof(err)) == -1)
		status = W_EXITCODE(1, 0);
	check(d, WIFEXITED(status) && WEXITSTATUS(status) == 0, "clis",
	    "rebuild the image: clawvisor sandbox build-image",
	    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "%s%s%s in %s" :
	    "%s%s%s missing in %s", need_claude ? "claude" : "", need_claude &&
	    need_codex ? " and " : "", need_codex ? "codex" : "", rt->image);
done:
	(void)rmdir(tmpl);
}

/* Whether the docker-mode runtime is Podman (or docker as its alias). */
static int
is_podman(const struct runtime_conf *rt)
{
	char	*argv[3], out[256];

	argv[0] = rt->runtime_command;
	argv[1] = "--version";
	argv[2] = NULL;
	return run_output(argv, out, sizeof(out), 10) == 0 &&
	    strncasecmp(out, "podman", 6) == 0;
}

/* uid has a line in /etc/subuid (or /etc/subgid): by name or by number. */
static int
has_subids(const char *file, uid_t uid)
{
	struct passwd	*pw = getpwuid(uid);
	char		 line[512], num[32];
	FILE		*f;
	int		 found = 0;

	if ((f = fopen(file, "re")) == NULL)
		return 0;
	snprintf(num, sizeof(num), "%u:", (unsigned)uid);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strncmp(line, num, strlen(num)) == 0 || (pw != NULL &&
		    strncmp(line, pw->pw_name, strlen(pw->pw_name)) == 0 &&
		    line[strlen(pw->pw_name)] == ':');
	fclose(f);
	return found;
}

/*
 * Rootless Podman keeps images, storage and settings per user: checks run
 * as another user than the daemon's would look at the wrong ones. It needs
 * subordinate ids for the user, and the units set PODMAN_USERNS=keep-id so
 * that what the agent writes in the workspace is the user's.
 */
static int
doctor_rootless(struct doctor *d, const struct config *cf, json_object *denv)
{
	struct passwd	*pw;
	const char	*userns;
	char		 fix[512], name[64];
	long		 duid = (long)getuid();

	if (!is_podman(&cf->docker))
		return 0;
	if (denv != NULL)
		duid = (long)json_object_get_int64(json_object_object_get(denv,
		    "uid"));
	if ((pw = getpwuid((uid_t)duid)) != NULL)
		snprintf(name, sizeof(name), "%s", pw->pw_name);
	else
		snprintf(name, sizeof(name), "%ld", duid);
	if (duid != (long)getuid()) {
		snprintf(fix, sizeof(fix), "run the doctor as the daemon's "
		    "user: sudo -u %s clawvisor sandbox doctor (or runuser -u "
		    "%s -- clawvisor sandbox doctor)", name, name);
		check(d, 0, "user", fix, "the daemon runs as %s (uid %ld), this "
		    "doctor as uid %ld: Podman's images, storage and settings "
		    "are per user, so the checks below are not the daemon's",
		    name, duid, (long)getuid());
		return duid != 0;
	}
	if (duid == 0)
		return 0;		/* rootful Podman */
	snprintf(fix, sizeof(fix), "usermod --add-subuids 100000-165535 "
	    "--add-subgids 100000-165535 %s, then podman system migrate as "
	    "%s", name, name);
	if (!has_subids("/etc/subuid", (uid_t)duid) ||
	    !has_subids("/etc/subgid", (uid_t)duid))
		check(d, 0, "subids", fix, "%s has no subordinate ids in "
		    "/etc/subuid and /etc/subgid: rootless Podman cannot map "
		    "the container's users", name);
	else
		check(d, 1, "subids", NULL, "%s has subordinate ids in "
		    "/etc/subuid and /etc/subgid", name);
	userns = denv != NULL ? json_object_get_string(json_object_object_get(
	    denv, "podmanUserns")) : getenv("PODMAN_USERNS");
	check(d, 1, "userns", NULL, userns != NULL && strcmp(userns,
	    "keep-id") == 0 ? "PODMAN_USERNS=keep-id: files the agent writes "
	    "in the workspace are %s's" : "warning: PODMAN_USERNS is not "
	    "keep-id in the daemon's environment: files the agent writes in "
	    "the workspace belong to a subordinate uid of %s, not to %s (the "
	    "units set PODMAN_USERNS=keep-id)", name, name);
	return 1;
}

static void
doctor_runtime(struct doctor *d, const struct config *cf, int apple,
    int need_claude, int need_codex, int rootless)
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
	if (r != 0 && rootless)
		snprintf(fix, sizeof(fix), "clawvisor sandbox build-image as "
		    "this user, or copy it from where it was built: sudo podman "
		    "save %s | podman load", rt->image);
	check(d, r == 0, "image", rootless ? fix : "clawvisor sandbox "
	    "build-image (without Docker Hub: contrib/agent-runner/"
	    "verify-image.sh, then clawvisor sandbox build-image --base "
	    "localhost/clawvisor-node-base:22-bookworm)", r == 0 ? "%s present" : rootless ? "%s not present "
	    "in this user's Podman storage (images are per user: one built "
	    "as root or as another user is not visible here)" :
	    "%s not present", rt->image);
	if (r != 0)
		return;
	doctor_trial(d, cf, apple, need_claude, need_codex);
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

/* bwrap mode: found, a real sandbox starts, limits, the CLIs inside. */
static void
doctor_bwrap(struct doctor *d, const struct config *cf, int need_claude,
    int need_codex)
{
	struct cgroup_limits	 l;
	char			*path, tmpl[] = "/tmp/clawvisor-doctor-XXXXXX";
	char			 err[1024], held[1024], fix[512], out[4096];
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
	if (trial_run(cf, MODE_BWRAP, PROV_COMMAND, tmpl, "true", &status,
	    out, sizeof(out), err, sizeof(err)) == -1)
		check(d, 0, "sandbox", fix, "%s", err);
	else
		check(d, WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "sandbox", fix, WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0 ? "a test sandbox started and "
		    "was torn down%s" : "a test sandbox failed: %s",
		    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" :
		    first_line(out));
	for (i = 0; i < 2; i++) {
		const char *cli = i == 0 ? "claude" : "codex";

		if (!(i == 0 ? need_claude : need_codex))
			continue;
		snprintf(fix, sizeof(fix), "install %s on the host (its "
		    "directory is mounted read-only), or add its directory "
		    "to sandbox.bwrap.ro_paths", cli);
		if (trial_run(cf, MODE_BWRAP, i == 0 ? PROV_ANTHROPIC :
		    PROV_OPENAI, tmpl, i == 0 ? "command -v claude" :
		    "command -v codex", &status, out, sizeof(out), err,
		    sizeof(err)) == -1)
			check(d, 0, "cli", fix, "%s", err);
		else
			check(d, WIFEXITED(status) && WEXITSTATUS(status) == 0,
			    "cli", fix, WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0 ? "%s is visible inside "
			    "the sandbox: %s" : "%s is not visible inside the "
			    "sandbox%s", cli, first_line(out));
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

/* One request to the daemon's control socket; its reply, or NULL. */
static json_object *
doctor_ask(const char *home, json_object *req)
{
	json_object	*rep;
	char		*line;
	int		 fd;

	if ((fd = client_connect(home, 1)) == -1)
		return NULL;
	line = client_request(fd, req);
	close(fd);
	if (line == NULL)
		return NULL;
	rep = json_tokener_parse(line);
	free(line);
	return rep;
}

/*
 * The providers' TLS, checked by the egress process with its own CAs and
 * lookups (DECISIONS 242): asked, then its answer polled for; the egress
 * process bounds the check at 10 s. "unchecked" (no network here) is a
 * note, not a failure: a host without a route out cannot say more.
 */
static void
doctor_egress_tls(struct doctor *d, const char *home,
    const int used[EGRESS_NPROVIDERS])
{
	json_object	*req, *rep = NULL, *a, *p, *provs;
	const char	*res, *detail, *url;
	int64_t		 seq;
	size_t		 i;
	int		 tries;
	char		 fix[512];

	provs = json_object_new_array();
	for (i = 0; i < EGRESS_NPROVIDERS; i++)
		if (used[i])
			json_object_array_add(provs, json_object_new_string(
			    config_provider_name((enum provider)i)));
	if (json_object_array_length(provs) == 0) {
		json_object_put(provs);
		return;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(
	    "egress.check"));
	json_object_object_add(req, "providers", provs);
	rep = doctor_ask(home, req);
	json_object_put(req);
	if (rep == NULL || !json_object_object_get_ex(rep, "seq", &a)) {
		check(d, 0, "egress tls", "see the log: the supervisor "
		    "respawns it", "the egress process cannot check the "
		    "providers' TLS: %s", rep != NULL && json_object_object_get(
		    rep, "error") != NULL ? json_object_get_string(
		    json_object_object_get(rep, "error")) : "no answer");
		json_object_put(rep);
		return;
	}
	seq = json_object_get_int64(a);
	json_object_put(rep);
	rep = NULL;
	for (tries = 0; tries < 150; tries++) {
		req = json_object_new_object();
		json_object_object_add(req, "cmd", json_object_new_string(
		    "egress.check"));
		json_object_object_add(req, "seq", json_object_new_int64(seq));
		rep = doctor_ask(home, req);
		json_object_put(req);
		if (rep != NULL && json_object_get_boolean(
		    json_object_object_get(rep, "done")))
			break;
		json_object_put(rep);
		rep = NULL;
		usleep(100000);
	}
	if (rep == NULL || !json_object_object_get_ex(rep, "providers", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		check(d, 0, "egress tls", "see the log", "the egress process "
		    "did not answer the TLS check%s%s", rep != NULL ? ": " : "",
		    rep != NULL ? json_object_get_string(json_object_object_get(
		    rep, "error")) : "");
		json_object_put(rep);
		return;
	}
	for (i = 0; i < json_object_array_length(a); i++) {
		p = json_object_array_get_idx(a, i);
		res = json_object_get_string(json_object_object_get(p,
		    "result"));
		detail = json_object_get_string(json_object_object_get(p,
		    "detail"));
		url = json_object_get_string(json_object_object_get(p, "url"));
		/* libtls's texts: "certificate verification failed: ...",
		 * "name `H' not present in server certificate". */
		snprintf(fix, sizeof(fix), "%s", strstr(detail, "TLS "
		    "handshake") != NULL ? "set sandbox.egress.ca_file "
		    "to the CA bundle that signed the provider's certificate "
		    "(a corporate proxy's CA, a stand-in's test CA), or fix the "
		    "host in the provider's url" : "check the provider's url in "
		    "sandbox.egress.providers and that its host accepts "
		    "connections from here");
		check(d, strcmp(res, "failed") != 0, "egress tls", fix,
		    "%s %s: %s%s", json_object_get_string(
		    json_object_object_get(p, "provider")), url,
		    strcmp(res, "ok") == 0 ? "ok, " : "", detail);
	}
	json_object_put(rep);
}

/* SPEC §9: the egress process, as the daemon reports it. */
static void
doctor_egress(struct doctor *d, const char *home, const struct config *cf,
    json_object *denv, int docker, const int used[EGRESS_NPROVIDERS])
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
	if (state != NULL && strcmp(state, "running") == 0)
		doctor_egress_tls(d, home, used);
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
	char		 err[512], found[PATH_MAX], why[PATH_MAX + 512];
	size_t		 i;
	int		 used[MODE_INHERIT] = { 0 }, claude[MODE_INHERIT] = { 0 };
	int		 codex[MODE_INHERIT] = { 0 }, m, rootless;
	int		 provs[EGRESS_NPROVIDERS] = { 0 };

	d.checks = json_object_new_array();
	/* What the doctor finds is its checks: the warnings a throwaway
	 * sandbox's set-up would log (trial.c) are in them already. */
	log_set_level(LOG_LVL_ERROR);
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
			/* As a dead letter would say it (worker.c). */
			if (path_lookup(cli, found, sizeof(found), why,
			    sizeof(why)))
				check(&d, 1, "cli", NULL, "%s: %s", cli, found);
			else
				check(&d, 0, "cli", "install it, or fix PATH, "
				    "or use another sandbox.mode", "%s (host "
				    "mode)", why);
		}
	for (m = MODE_DOCKER; m <= MODE_APPLE; m++) {
		if (!used[m])
			continue;
		rootless = m == MODE_DOCKER && doctor_rootless(&d, cf, denv);
		doctor_runtime(&d, cf, m == MODE_APPLE, claude[m], codex[m],
		    rootless);
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
	for (m = 0; m < MODE_INHERIT; m++) {
		provs[PROV_ANTHROPIC] |= claude[m];
		provs[PROV_OPENAI] |= codex[m];
	}
	doctor_egress(&d, home, cf, denv, used[MODE_DOCKER], provs);
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
