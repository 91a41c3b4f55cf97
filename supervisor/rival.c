/*
 * Another queue processor on the same home. TinyClaw's Node processor
 * (`node dist/queue-processor.js`, which `tinyclaw start` and `restart`
 * launch) claims the same files, and at its start moves every file in
 * processing/ back to incoming/, clawvisor's claimed ones included.
 * status and sandbox doctor look for it in /proc.
 */
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor.h"
#include "util.h"

#define RIVAL_SCRIPT	"queue-processor.js"

/* /proc/PID/FILE, NUL-separated, at most len - 1 bytes; -1 on error. */
static ssize_t
proc_read(const char *pid, const char *file, char *buf, size_t len)
{
	char	path[320];
	ssize_t	n, got = 0;
	int	fd;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)got < len - 1 &&
	    (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return got;
}

static const char *
env_get(const char *env, size_t len, const char *name)
{
	const char	*p;
	size_t		 l = strlen(name);

	for (p = env; p < env + len; p += strlen(p) + 1)
		if (strncmp(p, name, l) == 0 && p[l] == '=')
			return p + l + 1;
	return NULL;
}

/*
 * The home TinyClaw's config.ts gives the process: $TINYCLAW_HOME, else
 * SCRIPT_DIR/.tinyclaw if it has a settings.json, else ~/.tinyclaw.
 * 0, or -1 when its environment cannot be read.
 */
static int
rival_home(const char *pid, const char *script, char *out, size_t len)
{
	char		 env[16384], link[320], cwd[PATH_MAX], dir[PATH_MAX * 2];
	char		*s;
	const char	*v;
	ssize_t		 n, envlen;

	if ((envlen = proc_read(pid, "environ", env, sizeof(env))) == -1)
		return -1;
	if ((v = env_get(env, (size_t)envlen, "TINYCLAW_HOME")) != NULL &&
	    *v != '\0') {
		strlcpy(out, v, len);
		return 0;
	}
	snprintf(link, sizeof(link), "/proc/%s/cwd", pid);
	if (script[0] == '/')
		strlcpy(dir, script, sizeof(dir));
	else if ((n = readlink(link, cwd, sizeof(cwd) - 1)) != -1) {
		cwd[n] = '\0';
		snprintf(dir, sizeof(dir), "%s/%s", cwd, script);
	} else
		dir[0] = '\0';
	/* SCRIPT_DIR is two levels up from dist/queue-processor.js. */
	if ((s = strrchr(dir, '/')) != NULL) {
		*s = '\0';
		if ((s = strrchr(dir, '/')) != NULL) {
			strlcpy(s, "/.tinyclaw/settings.json",
			    sizeof(dir) - (size_t)(s - dir));
			if (access(dir, F_OK) == 0) {
				*strrchr(dir, '/') = '\0';
				strlcpy(out, dir, len);
				return 0;
			}
		}
	}
	if ((v = env_get(env, (size_t)envlen, "HOME")) == NULL)
		return -1;
	snprintf(out, len, "%s/.tinyclaw", v);
	return 0;
}

static int
same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	if (realpath(a, ra) == NULL || realpath(b, rb) == NULL)
		return strcmp(a, b) == 0;
	return strcmp(ra, rb) == 0;
}

int
rival_find(const char *home, char *what, size_t len)
{
	DIR		*d;
	struct dirent	*e;
	char		 argv[4096], rhome[PATH_MAX];
	const char	*a, *script;
	ssize_t		 n;
	int		 found = 0;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    atoi(e->d_name) == getpid())
			continue;
		if ((n = proc_read(e->d_name, "cmdline", argv,
		    sizeof(argv))) <= 0)
			continue;
		script = NULL;
		for (a = argv; a < argv + n; a += strlen(a) + 1) {
			size_t l = strlen(a);

			if (l >= strlen(RIVAL_SCRIPT) && strcmp(a + l -
			    strlen(RIVAL_SCRIPT), RIVAL_SCRIPT) == 0)
				script = a;
		}
		if (script == NULL)
			continue;
		if (rival_home(e->d_name, script, rhome, sizeof(rhome)) == -1) {
			snprintf(what, len, "TinyClaw's queue processor runs "
			    "(pid %s, %s); its home could not be read: if it "
			    "is %s, it takes messages from clawvisor", e->d_name,
			    script, home);
			found = 1;
		} else if (same_dir(rhome, home)) {
			snprintf(what, len, "TinyClaw's queue processor runs on "
			    "this home (pid %s, %s): it claims the same "
			    "messages and moves clawvisor's back from "
			    "processing/ when it starts; stop it (`pkill -f "
			    "dist/queue-processor.js`) and keep `tinyclaw "
			    "start` from starting it (docs/MIGRATION.md)",
			    e->d_name, script);
			found = 1;
		}
	}
	closedir(d);
	return found;
}
