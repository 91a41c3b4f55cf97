/*
 * Per-mode argv (SPEC §4, docs/SANDBOX.md). Host mode runs the CLI as is.
 * Container modes wrap it in `RUNTIME run ...`; secrets go only into a 0600
 * env-file under run/secrets/, never into argv. Every fail-closed check is
 * made here, before any process starts, and fails the job as terminal.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress_sb.h"
#include "egress_token.h"
#include "log.h"
#include "provider.h"
#include "sandbox.h"
#include "util.h"

struct argv_b {
	char	**v;
	size_t	  n;
	size_t	  cap;
};

static void
add(struct argv_b *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap == 0 ? 64 : a->cap * 2;
		a->v = xreallocarray(a->v, a->cap, sizeof(char *));
	}
	a->v[a->n++] = xstrdup(s);
	a->v[a->n] = NULL;
}

static void
add2(struct argv_b *a, const char *k, const char *v, const char *k2,
    const char *v2)
{
	char *s;

	xasprintf(&s, "%s%s%s%s", k, v, k2 != NULL ? k2 : "",
	    v2 != NULL ? v2 : "");
	add(a, s);
	free(s);
}

/* Like execvp's search: where is the executable NAME on PATH? */
/* The working directory inside: W, or an exec's own cwd mapped there. */
static void
add_cwd(struct argv_b *a, const struct job *j, const char *w)
{
	char *cwd;

	if (j->exec_cwd == NULL) {
		add(a, w);
		return;
	}
	cwd = provider_map_path(j, j->exec_cwd);
	add(a, cwd);
	free(cwd);
}

static int
path_find(const char *name, char *buf, size_t len)
{
	char	why[PATH_MAX + 512];

	return path_lookup(name, buf, len, why, sizeof(why));
}

static int
in_path(const char *name)
{
	char buf[4096];

	return path_find(name, buf, sizeof(buf));
}

static int
allowlisted(const struct job *j, const char *name)
{
	size_t i;

	for (i = 0; i < j->nallow; i++)
		if (strcmp(j->env_allowlist[i], name) == 0)
			return 1;
	return 0;
}

static const char *
env_set(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* Fail closed: one of the provider's key variables must reach the CLI. */
static int
check_key(const struct job *j, char *err, size_t errlen)
{
	const char *const	*k;
	char			 names[128];
	int			 listed = 0;

	if ((k = provider_keys(j->provider)) == NULL)
		return 0;
	for (; *k != NULL; k++) {
		if (!allowlisted(j, *k))
			continue;
		listed = 1;
		if (env_set(*k) != NULL)
			return 0;
	}
	provider_keys_text(j->provider, names, sizeof(names));
	snprintf(err, errlen, "%s is required by the %s provider but %s",
	    names, config_provider_name(j->provider), listed ?
	    "is not set in the daemon's environment" :
	    "is not in sandbox.env_allowlist");
	return -1;
}

/*
 * OPENAI_API_KEY's value, when the sandbox gets it but no CODEX_API_KEY:
 * current `codex exec` reads only the latter, TinyClaw sets the former.
 * host: whether the allowlist applies (it does not on the host).
 */
static const char *
codex_handover(const struct job *j, int host)
{
	if ((host || allowlisted(j, "CODEX_API_KEY")) &&
	    env_set("CODEX_API_KEY") != NULL)
		return NULL;
	if (!host && !allowlisted(j, "OPENAI_API_KEY"))
		return NULL;
	return env_set("OPENAI_API_KEY");
}

/* The daemon's environment, plus CODEX_API_KEY when handed over. */
static char **
host_envp(const struct job *j)
{
	extern char	**environ;
	const char	 *v;
	char		**e;
	size_t		  n, i;

	if ((v = codex_handover(j, 1)) == NULL)
		return NULL;	/* inherit */
	for (n = 0; environ[n] != NULL; n++)
		;
	e = xcalloc(n + 2, sizeof(char *));
	for (i = 0; i < n; i++)
		e[i] = xstrdup(environ[i]);
	xasprintf(&e[n], "CODEX_API_KEY=%s", v);
	return e;
}

/* run/secrets/<id>.env: O_EXCL, 0600, in a 0700 directory. */
static int
write_env_file(const struct job *j, const char *w, struct sandbox_run *sb,
    char *err, size_t errlen)
{
	const char	*v;
	char		*dir, *line;
	size_t		 i;
	int		 fd;
	FILE		*f;

	xasprintf(&dir, "%s/run/secrets", j->home);
	if (mkdir_p(dir, 0700) == -1 || chmod(dir, 0700) == -1) {
		snprintf(err, errlen, "cannot create %s: %s", dir,
		    strerror(errno));
		free(dir);
		return -1;
	}
	xasprintf(&sb->env_file, "%s/%llu.env", dir,
	    (unsigned long long)j->id);
	free(dir);
	fd = open(sb->env_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "cannot create env-file %s: %s",
		    sb->env_file, strerror(errno));
		if (fd != -1)
			close(fd);
		free(sb->env_file);
		sb->env_file = NULL;
		return -1;
	}
	fprintf(f, "HOME=%s/.tinyclaw-home\n", strcmp(w, "/") == 0 ? "" : w);
	for (i = 0; i < j->nallow; i++) {
		if ((v = getenv(j->env_allowlist[i])) == NULL)
			continue;
		if (strchr(v, '\n') != NULL) {
			/* An env-file line cannot hold it. */
			snprintf(err, errlen, "%s contains a newline and "
			    "cannot be passed in an env-file",
			    j->env_allowlist[i]);
			fclose(f);
			return -1;
		}
		xasprintf(&line, "%s=%s\n", j->env_allowlist[i], v);
		fputs(line, f);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	if ((v = codex_handover(j, 0)) != NULL) {
		xasprintf(&line, "CODEX_API_KEY=%s\n", v);
		fputs(line, f);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	if (j->egress) {
		char **e = egress_sb_env(j, xcalloc(1, sizeof(char *)));

		for (i = 0; e[i] != NULL; i++)
			fprintf(f, "%s\n", e[i]);
		argv_free(e);
	}
	if (fflush(f) == EOF || fsync(fileno(f)) == -1) {
		snprintf(err, errlen, "cannot write env-file: %s",
		    strerror(errno));
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/*
 * run/containers/NAME names a container this home may have running, and
 * its runtime: a supervisor that starts after a crash removes them all.
 */
static int
record_container(const struct job *j, struct sandbox_run *sb, char *err,
    size_t errlen)
{
	char	*dir;
	FILE	*f;

	xasprintf(&dir, "%s/run/containers", j->home);
	if (mkdir_p(dir, 0700) == -1) {
		snprintf(err, errlen, "cannot create %s: %s", dir,
		    strerror(errno));
		free(dir);
		return -1;
	}
	xasprintf(&sb->record, "%s/%s", dir, sb->container);
	free(dir);
	if ((f = fopen(sb->record, "we")) == NULL) {
		snprintf(err, errlen, "cannot create %s: %s", sb->record,
		    strerror(errno));
		free(sb->record);
		sb->record = NULL;
		return -1;
	}
	fprintf(f, "%s\n", j->rt.runtime_command);
	fclose(f);
	return 0;
}

/*
 * Apple's container reads --env-file as UTF-8 and splits it at every
 * character of Foundation's CharacterSet.newlines (U+000A-U+000D, U+0085,
 * U+2028, U+2029; Parser.envFile in apple/container): a value holding one
 * would be cut in two, the rest read as a variable of its own. Such a
 * value, or one that is not UTF-8, cannot be passed: fail closed, naming
 * the variable only.
 */
static int
apple_env_ok(const struct job *j, char *err, size_t errlen)
{
	const unsigned char	*s;
	const char		*v;
	size_t			 i, k, n;

	for (i = 0; i < j->nallow; i++) {
		if ((v = getenv(j->env_allowlist[i])) == NULL)
			continue;
		for (s = (const unsigned char *)v; *s != '\0'; s += n) {
			if (*s < 0x80) {
				n = 1;
				if (*s >= 0x0a && *s <= 0x0d)
					goto bad;
				continue;
			}
			n = *s >= 0xf0 && *s <= 0xf4 ? 4 : *s >= 0xe0 ? 3 :
			    *s >= 0xc2 && *s <= 0xdf ? 2 : 0;
			if (n == 0 || (n == 3 && *s > 0xef))
				goto bad;
			for (k = 1; k < n; k++)
				if ((s[k] & 0xc0) != 0x80)
					goto bad;
			/* Overlong forms, surrogates, past U+10FFFF. */
			if ((s[0] == 0xe0 && s[1] < 0xa0) ||
			    (s[0] == 0xed && s[1] > 0x9f) ||
			    (s[0] == 0xf0 && s[1] < 0x90) ||
			    (s[0] == 0xf4 && s[1] > 0x8f))
				goto bad;
			if ((s[0] == 0xc2 && s[1] == 0x85) || (s[0] == 0xe2 &&
			    s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)))
				goto bad;
		}
		continue;
bad:
		snprintf(err, errlen, "%s holds a line break or is not UTF-8: "
		    "Apple's container cannot read it from an env-file",
		    j->env_allowlist[i]);
		return -1;
	}
	return 0;
}

static int
container_argv(const struct job *j, struct sandbox_run *sb, char *err,
    size_t errlen)
{
	struct argv_b	  a = { NULL, 0, 0 };
	char		**cli, uidgid[64], cpus[32], *w;
	size_t		  i;
	int		  apple = j->mode == MODE_APPLE;

	if (!in_path(j->rt.runtime_command)) {
		snprintf(err, errlen, "container runtime \"%s\" not found in "
		    "PATH (sandbox.%s.runtime_command)", j->rt.runtime_command,
		    apple ? "apple" : "docker");
		return -1;
	}
	if (!j->egress && check_key(j, err, errlen) == -1)
		return -1;
	if (!j->egress && j->rt.network == NET_NONE &&
	    j->provider != PROV_COMMAND) {
		snprintf(err, errlen, "network \"none\" cannot work with the "
		    "%s provider: its CLI must reach the API",
		    config_provider_name(j->provider));
		return -1;
	}
	if (strpbrk(j->workdir, ",\n") != NULL) {
		snprintf(err, errlen, "working directory %s has a character "
		    "a --mount option cannot carry", j->workdir);
		return -1;
	}
	if (j->egress && (strpbrk(j->egress_socket, ",\n") != NULL ||
	    strpbrk(j->egress_bridge, ",\n") != NULL)) {
		snprintf(err, errlen, "the egress socket or bridge path (%s, "
		    "%s) has a character a --mount option cannot carry",
		    j->egress_socket, j->egress_bridge);
		return -1;
	}
	snprintf(cpus, sizeof(cpus), "%s", j->rt.cpus);
	if (apple) {
		if (!config_cpus_valid(j->rt.cpus, 1)) {
			snprintf(err, errlen, "sandbox.apple.cpus: Apple's "
			    "container takes a whole number of CPUs, got "
			    "\"%s\"", j->rt.cpus);
			return -1;
		}
		/* "2.00" is 2: the digits before the point. */
		snprintf(cpus, sizeof(cpus), "%ld", strtol(j->rt.cpus, NULL,
		    10));
		/*
		 * Apple splits a --mount directive and a --label at every '='
		 * (split(separator: "=", maxSplits: 2) in Parser.mount and
		 * Parser.labels) and refuses three pieces: a path with one
		 * cannot be passed.
		 */
		if (strchr(j->workdir, '=') != NULL) {
			snprintf(err, errlen, "working directory %s has a '=', "
			    "which Apple's container --mount cannot carry",
			    j->workdir);
			return -1;
		}
		if (strchr(j->home, '=') != NULL) {
			snprintf(err, errlen, "home %s has a '=', which Apple's "
			    "container --label cannot carry", j->home);
			return -1;
		}
		if (apple_env_ok(j, err, errlen) == -1)
			return -1;
	}
	if (strcmp(j->rt.user, "auto") == 0)
		snprintf(uidgid, sizeof(uidgid), "%u:%u", (unsigned)getuid(),
		    (unsigned)getgid());
	else
		snprintf(uidgid, sizeof(uidgid), "%s", j->rt.user);
	w = j->path_mapping == MAP_MAPPED ? "/workspace" : j->workdir;
	if (write_env_file(j, w, sb, err, errlen) == -1)
		return -1;
	xasprintf(&sb->container, "clawvisor-%llu", (unsigned long long)j->id);
	if (record_container(j, sb, err, errlen) == -1)
		return -1;

	add(&a, j->rt.runtime_command);
	add(&a, "run");
	add(&a, "--rm");
	/* clawvisor exec with the caller's stdin: the runtime forwards it. */
	if (j->exec_argv != NULL && j->exec_stdin)
		add(&a, "--interactive");
	add(&a, "--name");
	add(&a, sb->container);
	add(&a, "--label");
	add2(&a, "clawvisor.home=", j->home, NULL, NULL);
	add(&a, "--workdir");
	add_cwd(&a, j, w);
	add(&a, "--network");
	/* With the proxy the only way out is its socket (SPEC §9). */
	add(&a, j->egress || j->rt.network == NET_NONE ? "none" : apple ?
	    "default" : "bridge");
	add(&a, "--memory");
	add(&a, j->rt.memory);
	add(&a, "--cpus");
	add(&a, cpus);
	if (!apple) {
		char pids[32];

		snprintf(pids, sizeof(pids), "%lld",
		    (long long)j->rt.pids_limit);
		add(&a, "--pids-limit");
		add(&a, pids);
		add(&a, "--security-opt");
		add(&a, "no-new-privileges");
	}
	add(&a, "--read-only");
	add(&a, "--cap-drop");
	add(&a, "ALL");
	add(&a, "--tmpfs");
	add(&a, apple ? "/tmp" : "/tmp:rw,noexec,nosuid,size=256m");
	add(&a, "--user");
	add(&a, uidgid);
	add(&a, "--mount");
	add2(&a, apple ? "type=bind,source=" : "type=bind,src=", j->workdir,
	    apple ? ",target=" : ",dst=", w);
	if (j->egress) {
		add(&a, "--mount");
		add2(&a, "type=bind,src=", j->egress_socket, ",dst="
		    EGRESS_SANDBOX_SOCKET, NULL);
		add(&a, "--mount");
		add2(&a, "type=bind,src=", j->egress_bridge, ",dst="
		    EGRESS_SANDBOX_BRIDGE ",readonly", NULL);
	}
	add(&a, "--env-file");
	add(&a, sb->env_file);
	add(&a, j->rt.image);
	cli = provider_argv(j, NULL);
	if (j->egress)
		cli = egress_sb_argv(j, cli);
	for (i = 0; cli[i] != NULL; i++)
		add(&a, cli[i]);
	argv_free(cli);
	sb->argv = a.v;
	/* The keys reach the container through the env-file alone. */
	sb->envp = runtime_env(j->env_allowlist, j->nallow,
	    j->runtime_pass_env, j->npass);
	sb->container_mode = 1;
	sb->on_timeout = xcalloc(4, sizeof(char *));
	sb->on_timeout[0] = xstrdup(j->rt.runtime_command);
	sb->on_timeout[1] = xstrdup("kill");
	sb->on_timeout[2] = xstrdup(sb->container);
	return 0;
}

/*
 * bwrap mode (SPEC §8, docs/SANDBOX.md "bwrap mode"). What the agent sees,
 * in this order, as bwrap makes it: a tmpfs root; these system paths
 * read-only (only those the host has; a top-level one that is a symbolic
 * link, /bin -> usr/bin, as the same link); its CLI's install directory
 * (an npm package's node_modules) and ro_paths read-only; a private /tmp,
 * /proc and /dev; its working directory read-write at W; then the root
 * made read-only. Nothing else.
 */
const char *const sandbox_bwrap_system[] = {
	"/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
	"/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime",
	/* Debian's awk, editor, ... in /usr/bin link through it. */
	"/etc/alternatives",
	NULL
};

/* Under a path the system list already shows? */
static int
bwrap_visible(const char *path)
{
	const char	*const *p;
	size_t		 n;

	for (p = sandbox_bwrap_system; *p != NULL; p++) {
		n = strlen(*p);
		if (strncmp(path, *p, n) == 0 && (path[n] == '\0' ||
		    path[n] == '/'))
			return 1;
	}
	return 0;
}

int
sandbox_cli_dir(const char *name, char *found, size_t flen, char *dir,
    size_t dlen)
{
	char	 real[PATH_MAX], *nm, *end;

	if (!path_find(name, found, flen) || realpath(found, real) == NULL)
		return -1;
	/* .../node_modules/PKG or .../node_modules/@SCOPE/PKG */
	if ((nm = strstr(real, "/node_modules/")) != NULL) {
		while ((end = strstr(nm + 1, "/node_modules/")) != NULL)
			nm = end;
		nm += strlen("/node_modules/");
		end = strchr(nm, '/');
		if (end != NULL && *nm == '@')
			end = strchr(end + 1, '/');
		if (end != NULL) {
			*end = '\0';
			snprintf(dir, dlen, "%s", real);
			return 0;
		}
	}
	if ((end = strrchr(real, '/')) != NULL)
		*end = '\0';
	snprintf(dir, dlen, "%s", *real != '\0' ? real : "/");
	return 0;
}

static void
bwrap_bind(struct argv_b *a, const char *how, const char *path)
{
	add(a, how);
	add(a, path);
	add(a, path);
}

/* The CLI: its package's node_modules, the PATH entry to it, node. */
static int
bwrap_cli(struct argv_b *a, const char *name, char *err, size_t errlen)
{
	char	found[PATH_MAX], dir[PATH_MAX], real[PATH_MAX], node[PATH_MAX];
	char	root[PATH_MAX], why[PATH_MAX + 512], *lib, *nm, *end;
	size_t	n;

	if (sandbox_cli_dir(name, found, sizeof(found), dir,
	    sizeof(dir)) == -1) {
		/* Why, as host mode and the doctor say it. */
		(void)path_lookup(name, found, sizeof(found), why,
		    sizeof(why));
		snprintf(err, errlen, "%s: bwrap mode runs the CLI installed "
		    "on the host, read-only", *why != '\0' ? why : name);
		return -1;
	}
	/*
	 * An npm package: the node_modules directory that holds it, where
	 * Node looks for what the package requires. npm hoists dependencies
	 * and platform packages (@openai/codex-linux-x64) beside the package
	 * in a --prefix or project install (DECISIONS 250).
	 */
	snprintf(root, sizeof(root), "%s", dir);
	if ((nm = strstr(root, "/node_modules/")) != NULL) {
		while ((end = strstr(nm + 1, "/node_modules/")) != NULL)
			nm = end;
		nm[strlen("/node_modules")] = '\0';
	}
	if (!bwrap_visible(root) && strcmp(root, "/") != 0)
		bwrap_bind(a, "--ro-bind", root);
	/* ~/.npm-global/bin/claude -> ../lib/node_modules/...: the link. */
	n = strlen(root);
	if (strchr(name, '/') == NULL && realpath(found, real) != NULL &&
	    strcmp(real, found) != 0 && !bwrap_visible(found) &&
	    !(strncmp(found, root, n) == 0 && found[n] == '/')) {
		add(a, "--symlink");
		add(a, real);
		add(a, found);
	}
	/* PREFIX/lib/node_modules/PKG: PREFIX/bin/node runs it. */
	if ((lib = strstr(dir, "/lib/node_modules/")) != NULL) {
		snprintf(node, sizeof(node), "%.*s/bin/node", (int)(lib - dir),
		    dir);
		if (!bwrap_visible(node) && access(node, X_OK) == 0)
			bwrap_bind(a, "--ro-bind", node);
	}
	return 0;
}

/* "auto": the owner of the working directory, never root. */
static int
bwrap_ids(const struct job *j, uid_t *uid, gid_t *gid, char *err,
    size_t errlen)
{
	struct stat	st;
	unsigned long	u, g;

	if (strcmp(j->rt.user, "auto") != 0) {
		if (sscanf(j->rt.user, "%lu:%lu", &u, &g) != 2 || u == 0) {
			snprintf(err, errlen, "sandbox.bwrap.user: \"%s\" is "
			    "not an unprivileged UID:GID", j->rt.user);
			return -1;
		}
		*uid = (uid_t)u;
		*gid = (gid_t)g;
		return 0;
	}
	if (stat(j->workdir, &st) == -1) {
		snprintf(err, errlen, "working directory %s: %s", j->workdir,
		    strerror(errno));
		return -1;
	}
	if (st.st_uid == 0) {
		snprintf(err, errlen, "working directory %s is owned by root: "
		    "sandbox.bwrap.user \"auto\" takes its owner and never runs "
		    "an agent as root; chown it to the agent's user or set "
		    "sandbox.bwrap.user to \"UID:GID\"", j->workdir);
		return -1;
	}
	*uid = st.st_uid;
	*gid = st.st_gid;
	return 0;
}

/*
 * Fail closed where the kernel will not give an unprivileged user a user
 * namespace: bwrap would fail in each run anyway, and the fix is a sysctl.
 */
static int
bwrap_userns(char *err, size_t errlen)
{
	static const struct {
		const char	*file;
		const char	*sysctl;
		const char	*refused;
	} k[] = {
		{ "/proc/sys/user/max_user_namespaces",
		    "user.max_user_namespaces", "0" },
		{ "/proc/sys/kernel/unprivileged_userns_clone",
		    "kernel.unprivileged_userns_clone", "0" },
		{ "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
		    "kernel.apparmor_restrict_unprivileged_userns", "1" },
	};
	char	buf[32];
	size_t	i;
	FILE	*f;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		if ((f = fopen(k[i].file, "re")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL &&
		    strncmp(buf, k[i].refused, strlen(k[i].refused)) == 0 &&
		    (buf[strlen(k[i].refused)] == '\n' ||
		    buf[strlen(k[i].refused)] == '\0')) {
			fclose(f);
			snprintf(err, errlen, "the kernel refuses unprivileged "
			    "user namespaces (%s = %s), which bwrap needs: set "
			    "sysctl %s=%s, or use another sandbox.mode",
			    k[i].sysctl, k[i].refused, k[i].sysctl,
			    strcmp(k[i].refused, "0") == 0 ? (i == 0 ?
			    "15000" : "1") : "0");
			return -1;
		}
		fclose(f);
	}
	return 0;
}

/* HOME, PATH and the allowlist: what the bwrap process passes on. */
static char **
bwrap_envp(const struct job *j, const char *w)
{
	const char	 *v;
	char		**e;
	size_t		  n = 0, i;

	e = xcalloc(j->nallow + 4, sizeof(char *));
	xasprintf(&e[n++], "HOME=%s/.tinyclaw-home", strcmp(w, "/") == 0 ?
	    "" : w);
	v = getenv("PATH");
	xasprintf(&e[n++], "PATH=%s", v != NULL ? v :
	    "/usr/local/bin:/usr/bin:/bin");
	for (i = 0; i < j->nallow; i++)
		if (strcmp(j->env_allowlist[i], "HOME") != 0 &&
		    strcmp(j->env_allowlist[i], "PATH") != 0 &&
		    (v = getenv(j->env_allowlist[i])) != NULL)
			xasprintf(&e[n++], "%s=%s", j->env_allowlist[i], v);
	if ((v = codex_handover(j, 0)) != NULL)
		xasprintf(&e[n++], "CODEX_API_KEY=%s", v);
	return e;
}

static int
bwrap_limits(const struct job *j, struct sandbox_run *sb, char *err,
    size_t errlen)
{
	struct cgroup_limits	l;

	l.memory = config_memory_bytes(j->rt.memory);
	l.cpus = j->rt.cpus;
	l.pids = j->rt.pids_limit;
	if (cgroup_create(&sb->cg, j->home, j->id, &l, err, errlen) == -1) {
		if (!j->rt.limits_best_effort)
			return -1;
		log_warnx("job %llu: no limit enforced (sandbox.bwrap.limits "
		    "is \"best-effort\"): %s", (unsigned long long)j->id, err);
		*err = '\0';
		return 0;
	}
	sb->has_cg = 1;
	if (*sb->cg.missing == '\0')
		return 0;
	if (!j->rt.limits_best_effort) {
		snprintf(err, errlen, "cannot enforce sandbox.bwrap limits (%s); "
		    "set sandbox.bwrap.limits to \"best-effort\" to run without "
		    "them", sb->cg.missing);
		return -1;
	}
	log_warnx("job %llu: limits not enforced (sandbox.bwrap.limits is "
	    "\"best-effort\"): %s", (unsigned long long)j->id, sb->cg.missing);
	return 0;
}

static int
bwrap_argv(const struct job *j, struct sandbox_run *sb, char *err,
    size_t errlen)
{
	struct argv_b	  a = { NULL, 0, 0 };
	struct stat	  st;
	const char	 *const *p, *w;
	char		**cli, buf[64], target[PATH_MAX];
	size_t		  i;
	ssize_t		  n;

	if (!in_path(j->rt.runtime_command)) {
		snprintf(err, errlen, "\"%s\" not found in PATH "
		    "(sandbox.bwrap.runtime_command): install bubblewrap "
		    "(apt-get install bubblewrap, dnf install bubblewrap)",
		    j->rt.runtime_command);
		return -1;
	}
	/* With the egress proxy the keys are its own and it is the way
	 * out: no key here, no network but its socket. */
	if (!j->egress && check_key(j, err, errlen) == -1)
		return -1;
	/*
	 * As in the container modes: with no network the CLI cannot reach
	 * its API.
	 */
	if (!j->egress && j->rt.network == NET_NONE &&
	    j->provider != PROV_COMMAND) {
		snprintf(err, errlen, "sandbox.bwrap.network \"none\" cannot "
		    "work with the %s provider: its CLI must reach the API; set "
		    "it to \"host\"", config_provider_name(j->provider));
		return -1;
	}
	if (bwrap_ids(j, &sb->uid, &sb->gid, err, errlen) == -1)
		return -1;
	if ((getuid() != 0 || sb->uid != 0) && bwrap_userns(err, errlen) == -1)
		return -1;
	sb->setid = getuid() == 0;
	w = j->path_mapping == MAP_MAPPED ? "/workspace" : j->workdir;

	add(&a, j->rt.runtime_command);
	add(&a, "--unshare-all");
	add(&a, "--unshare-user");	/* not "-try": fail rather than share */
	if (j->rt.network == NET_HOST)
		add(&a, "--share-net");
	add(&a, "--die-with-parent");
	add(&a, "--new-session");
	add(&a, "--cap-drop");
	add(&a, "ALL");
	snprintf(buf, sizeof(buf), "%lu", (unsigned long)sb->uid);
	add(&a, "--uid");
	add(&a, buf);
	snprintf(buf, sizeof(buf), "%lu", (unsigned long)sb->gid);
	add(&a, "--gid");
	add(&a, buf);
	/* First the private ones: a bind below may lie under /tmp. */
	add(&a, "--tmpfs");
	add(&a, "/tmp");
	add(&a, "--proc");
	add(&a, "/proc");
	add(&a, "--dev");
	add(&a, "/dev");
	for (p = sandbox_bwrap_system; *p != NULL; p++) {
		if (lstat(*p, &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode) && strchr(*p + 1, '/') == NULL &&
		    (n = readlink(*p, target, sizeof(target) - 1)) > 0) {
			target[n] = '\0';
			add(&a, "--symlink");
			add(&a, target);
			add(&a, *p);
		} else if (stat(*p, &st) == 0)
			bwrap_bind(&a, "--ro-bind", *p);
	}
	cli = provider_argv(j, NULL);
	if (bwrap_cli(&a, cli[0], err, errlen) == -1) {
		argv_free(cli);
		argv_free(a.v);
		return -1;
	}
	for (i = 0; i < j->rt.nro_paths; i++)
		bwrap_bind(&a, "--ro-bind-try", j->rt.ro_paths[i]);
	if (j->egress) {
		add(&a, "--bind");
		add(&a, j->egress_socket);
		add(&a, EGRESS_SANDBOX_SOCKET);
		add(&a, "--ro-bind");
		add(&a, j->egress_bridge);
		add(&a, EGRESS_SANDBOX_BRIDGE);
		cli = egress_sb_argv(j, cli);
	}
	add(&a, "--bind");
	add(&a, j->workdir);
	add(&a, w);
	add(&a, "--chdir");
	add_cwd(&a, j, w);
	add(&a, "--remount-ro");
	add(&a, "/");
	add(&a, "--");
	for (i = 0; cli[i] != NULL; i++)
		add(&a, cli[i]);
	argv_free(cli);
	sb->argv = a.v;
	/* No --setenv: values would be in argv. bwrap passes its own on. */
	sb->envp = bwrap_envp(j, w);
	if (j->egress)
		sb->envp = egress_sb_env(j, sb->envp);
	if (bwrap_limits(j, sb, err, errlen) == -1)
		return -1;
	return 0;
}

int
sandbox_prepare(const struct job *j, struct sandbox_run *sb, char *err,
    size_t errlen)
{
	memset(sb, 0, sizeof(*sb));
	if (j->mode == MODE_HOST) {
		sb->argv = provider_argv(j, NULL);
		sb->envp = host_envp(j);
		return 0;
	}
	if (j->mode == MODE_BWRAP) {
		if (bwrap_argv(j, sb, err, errlen) == -1) {
			sandbox_cleanup(sb);
			return -1;
		}
		return 0;
	}
	if (container_argv(j, sb, err, errlen) == -1) {
		sandbox_cleanup(sb);
		return -1;
	}
	return 0;
}

void
sandbox_cleanup(struct sandbox_run *sb)
{
	if (sb->env_file != NULL)
		unlink(sb->env_file);
	free(sb->env_file);
	if (sb->record != NULL)
		unlink(sb->record);
	free(sb->record);
	argv_free(sb->argv);
	argv_free(sb->envp);
	argv_free(sb->on_timeout);
	free(sb->container);
	if (sb->has_cg)
		cgroup_destroy(&sb->cg);
	memset(sb, 0, sizeof(*sb));
}
