/*
 * Per-invocation cgroups for bwrap mode (SPEC §8, docs/SANDBOX.md).
 *
 * v2 is used when a cgroup2 mount offers every controller the limits need
 * (at its root, or in the daemon's own cgroup when that is a delegated
 * subtree): one directory. Otherwise the v1 hierarchies of those
 * controllers: one directory in each (a hybrid host such as a container
 * with v1 memory, pids and cpu and an empty v2 mount). The directory goes
 * under the daemon's own cgroup of that hierarchy when it is writable,
 * else under the hierarchy's root. The child writes itself into each
 * cgroup.procs between fork and exec (runner.c), so that nothing it runs
 * is ever outside.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "util.h"

#define KILL_MS		2000	/* emptying a cgroup: at most */

static const char *const controllers[] = { "memory", "pids", "cpu" };

static int	sweep_dir(const char *, const char *, int);
static int	write_file(const char *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	append(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* "clawvisor-<8 hex of the home's FNV-1a>-": this home's cgroups only. */
static void
cgroup_prefix(const char *home, char *buf, size_t len)
{
	uint32_t	 h = 2166136261U;
	const char	*p;

	for (p = home; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619U;
	snprintf(buf, len, "clawvisor-%08x-", (unsigned)h);
}

static int
has_token(const char *list, const char *tok)
{
	size_t		 n = strlen(tok);
	const char	*p;

	for (p = list; (p = strstr(p, tok)) != NULL; p += n)
		if ((p == list || p[-1] == ',' || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
		    p[n] == '\n'))
			return 1;
	return 0;
}

/*
 * The mount point of the cgroup2 file system (ctl NULL), or of the v1
 * hierarchy holding ctl, from /proc/self/mountinfo.
 */
static int
find_mount(const char *ctl, char *out, size_t len)
{
	FILE	*f;
	char	 line[4096], *sep, *mnt, *fstype, *opts, *save;
	int	 i, found = 0;

	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if ((sep = strstr(line, " - ")) == NULL)
			continue;
		*sep = '\0';
		mnt = strtok_r(line, " ", &save);
		for (i = 0; i < 4 && mnt != NULL; i++)
			mnt = strtok_r(NULL, " ", &save);
		fstype = strtok_r(sep + 3, " ", &save);
		(void)strtok_r(NULL, " ", &save);	/* source */
		opts = strtok_r(NULL, " \n", &save);
		if (mnt == NULL || fstype == NULL)
			continue;
		if (ctl == NULL ? strcmp(fstype, "cgroup2") == 0 :
		    strcmp(fstype, "cgroup") == 0 && opts != NULL &&
		    has_token(opts, ctl)) {
			snprintf(out, len, "%s", mnt);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

/* Our own cgroup in that hierarchy, from /proc/self/cgroup. */
static void
own_path(const char *ctl, char *out, size_t len)
{
	FILE	*f;
	char	 line[4096], *a, *b;

	snprintf(out, len, "/");
	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((a = strchr(line, ':')) == NULL ||
		    (b = strchr(a + 1, ':')) == NULL)
			continue;
		*b = '\0';
		if (ctl == NULL ? strcmp(line, "0") == 0 && a[1] == '\0' :
		    has_token(a + 1, ctl)) {
			snprintf(out, len, "%s", b + 1);
			break;
		}
	}
	fclose(f);
}

/*
 * Our own v2 cgroup, seen as the base the invocations' cgroups go in: the
 * leaf cgroup_delegate() moved us into does not count (they are its
 * siblings).
 */
static void
v2_own(char *out, size_t len)
{
	char	*slash;

	own_path(NULL, out, len);
	if ((slash = strrchr(out, '/')) != NULL &&
	    strcmp(slash + 1, CGROUP_LEAF) == 0)
		*(slash == out ? slash + 1 : slash) = '\0';
}

/* The directory this home's cgroups go in, for ctl (NULL: v2). */
static int
parent_dir(const char *ctl, char *out, size_t len)
{
	char	mnt[PATH_MAX], own[PATH_MAX];

	if (find_mount(ctl, mnt, sizeof(mnt)) == -1)
		return -1;
	own_path(ctl, own, sizeof(own));
	if (snprintf(out, len, "%s%s", mnt, strcmp(own, "/") == 0 ? "" :
	    own) < (int)len && access(out, W_OK) == 0)
		return 0;
	snprintf(out, len, "%s", mnt);
	return 0;
}

static int
read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char	path[PATH_MAX];
	ssize_t	n;
	int	fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int	write_file(const char *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
write_file(const char *dir, const char *file, const char *fmt, ...)
{
	va_list	ap;
	char	path[PATH_MAX], val[128];
	int	fd, saved;
	ssize_t	n;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path))
		return -1;
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	n = write(fd, val, strlen(val));
	saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* "1.5" in microseconds of a 100 ms period: 150000. */
static long
cpu_quota(const char *cpus)
{
	double d = strtod(cpus, NULL);

	return d <= 0 ? 0 : (long)(d * 100000 + 0.5) < 1000 ? 1000 :
	    (long)(d * 100000 + 0.5);
}

static int
needed(const struct cgroup_limits *l, size_t i)
{
	switch (i) {
	case 0:
		return l->memory > 0;
	case 1:
		return l->pids > 0;
	default:
		return l->cpus != NULL;
	}
}

static void	append(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t len, const char *fmt, ...)
{
	va_list	ap;
	size_t	n = strlen(buf);

	if (n >= len - 1)
		return;
	if (n > 0)
		n += strlcpy(buf + n, "; ", len - n);
	if (n >= len - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/*
 * A v2 parent where every controller needed is enabled for children
 * (turned on if it can be): the mount root, else our own cgroup.
 */
static int
v2_parent(const struct cgroup_limits *l, char *out, size_t len)
{
	char	mnt[PATH_MAX], own[PATH_MAX], cand[2][PATH_MAX], buf[512];
	size_t	i, k;
	int	ok;

	if (find_mount(NULL, mnt, sizeof(mnt)) == -1)
		return -1;
	v2_own(own, sizeof(own));
	snprintf(cand[0], sizeof(cand[0]), "%s", mnt);
	if (snprintf(cand[1], sizeof(cand[1]), "%s%s", mnt, own) >=
	    (int)sizeof(cand[1]))
		cand[1][0] = '\0';
	for (k = 0; k < 2; k++) {
		if (cand[k][0] == '\0' || access(cand[k], W_OK) == -1)
			continue;
		for (i = 0; i < 3; i++)
			if (needed(l, i))
				(void)write_file(cand[k],
				    "cgroup.subtree_control", "+%s",
				    controllers[i]);
		if (read_file(cand[k], "cgroup.subtree_control", buf,
		    sizeof(buf)) == -1)
			continue;
		for (ok = 1, i = 0; i < 3; i++)
			if (needed(l, i) && !has_token(buf, controllers[i]))
				ok = 0;
		if (ok && strlcpy(out, cand[k], len) < len)
			return 0;
	}
	return -1;
}

static void
set_limits(struct cgroup *cg, const char *dir, size_t i,
    const struct cgroup_limits *l)
{
	const char	*v = cg->v2 ? "v2" : "v1";
	int		 r;

	switch (i) {
	case 0:
		r = write_file(dir, cg->v2 ? "memory.max" :
		    "memory.limit_in_bytes", "%lld", (long long)l->memory);
		if (r == 0) {
			/* No swap beyond it, where the kernel accounts it. */
			(void)write_file(dir, cg->v2 ? "memory.swap.max" :
			    "memory.memsw.limit_in_bytes", cg->v2 ? "0" :
			    "%lld", (long long)l->memory);
			free(cg->memdir);
			cg->memdir = xstrdup(dir);
		}
		break;
	case 1:
		r = write_file(dir, "pids.max", "%lld", (long long)l->pids);
		break;
	default:
		if (cg->v2)
			r = write_file(dir, "cpu.max", "%ld 100000",
			    cpu_quota(l->cpus));
		else
			r = write_file(dir, "cpu.cfs_period_us", "100000") ||
			    write_file(dir, "cpu.cfs_quota_us", "%ld",
			    cpu_quota(l->cpus));
		break;
	}
	if (r == 0)
		append(cg->held, sizeof(cg->held), "%s (%s)", controllers[i],
		    v);
	else
		append(cg->missing, sizeof(cg->missing), "%s: cannot set the "
		    "limit in %s: %s", controllers[i], dir, strerror(errno));
}

static int
add_dir(struct cgroup *cg, const char *parent, char *err, size_t errlen)
{
	char	*d;
	size_t	 i;

	xasprintf(&d, "%s/%s", parent, cg->name);
	for (i = 0; i < cg->ndirs; i++)
		if (strcmp(cg->dirs[i], d) == 0) {
			free(d);
			return (int)i;	/* co-mounted v1 controllers */
		}
	if (mkdir(d, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create cgroup %s: %s", d,
		    strerror(errno));
		free(d);
		return -1;
	}
	cg->dirs[cg->ndirs] = d;
	return (int)cg->ndirs++;
}

int
cgroup_create(struct cgroup *cg, const char *home, uint64_t id,
    const struct cgroup_limits *l, char *err, size_t errlen)
{
	char	prefix[64], parent[PATH_MAX], why[256];
	size_t	i;
	int	k;

	memset(cg, 0, sizeof(*cg));
	cgroup_prefix(home, prefix, sizeof(prefix));
	xasprintf(&cg->name, "%s%llu", prefix, (unsigned long long)id);
	if (v2_parent(l, parent, sizeof(parent)) == 0) {
		cg->v2 = 1;
		if ((k = add_dir(cg, parent, err, errlen)) == -1)
			goto fail;
		for (i = 0; i < 3; i++)
			if (needed(l, i))
				set_limits(cg, cg->dirs[k], i, l);
		return 0;
	}
	for (i = 0; i < 3; i++) {
		if (!needed(l, i))
			continue;
		if (parent_dir(controllers[i], parent, sizeof(parent)) == -1) {
			append(cg->missing, sizeof(cg->missing), "%s: no cgroup "
			    "v2 with the controller, and no v1 hierarchy",
			    controllers[i]);
			continue;
		}
		if ((k = add_dir(cg, parent, why, sizeof(why))) == -1) {
			append(cg->missing, sizeof(cg->missing), "%s: %s",
			    controllers[i], why);
			continue;
		}
		set_limits(cg, cg->dirs[k], i, l);
	}
	return 0;
fail:
	cgroup_destroy(cg);
	return -1;
}

size_t
cgroup_procs_fds(const struct cgroup *cg, int *fds, size_t max)
{
	char	path[PATH_MAX];
	size_t	i, n = 0;
	int	fd;

	for (i = 0; i < cg->ndirs && n < max; i++) {
		if (snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dirs[i]) >=
		    (int)sizeof(path))
			continue;
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) != -1)
			fds[n++] = fd;
	}
	return n;
}

int
cgroup_oom(const struct cgroup *cg)
{
	char		 buf[1024], *p;

	if (cg->memdir == NULL || read_file(cg->memdir, cg->v2 ?
	    "memory.events" : "memory.oom_control", buf, sizeof(buf)) == -1)
		return 0;
	if ((p = strstr(buf, "oom_kill ")) == NULL)
		return 0;
	return strtoll(p + 9, NULL, 10) > 0;
}

/* SIGKILL every process in dir until it is empty, then remove it. */
static int
empty_and_remove(const char *dir)
{
	struct timespec	 nap = { 0, 1000 * 1000 };
	int64_t		 deadline = mono_ms() + KILL_MS;
	char		 path[PATH_MAX];
	FILE		*f;
	long		 pid;

	/* cgroup.kill (Linux 5.14) takes the whole v2 cgroup at once. */
	(void)write_file(dir, "cgroup.kill", "1");
	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >=
	    (int)sizeof(path))
		return -1;
	for (;;) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || mono_ms() >= deadline)
			break;
		if ((f = fopen(path, "re")) != NULL) {
			while (fscanf(f, "%ld", &pid) == 1)
				if (pid > 0)
					kill((pid_t)pid, SIGKILL);
			fclose(f);
		}
		nanosleep(&nap, NULL);
	}
	log_warnx("cannot remove cgroup %s: %s", dir, strerror(errno));
	return -1;
}

void
cgroup_destroy(struct cgroup *cg)
{
	size_t i;

	for (i = 0; i < cg->ndirs; i++) {
		(void)empty_and_remove(cg->dirs[i]);
		free(cg->dirs[i]);
	}
	free(cg->name);
	free(cg->memdir);
	memset(cg, 0, sizeof(*cg));
}

/* Every directory a cgroup of this home may be in, by name. */
static int
sweep_all(const char *home, const char *only)
{
	char	prefix[96], parent[PATH_MAX], own[PATH_MAX], mnt[PATH_MAX];
	size_t	i;
	int	n = 0;

	cgroup_prefix(home, prefix, sizeof(prefix));
	if (only != NULL)
		strlcat(prefix, only, sizeof(prefix));
	if (find_mount(NULL, mnt, sizeof(mnt)) == 0) {
		v2_own(own, sizeof(own));
		n += sweep_dir(mnt, prefix, only != NULL);
		if (strcmp(own, "/") != 0 && snprintf(parent, sizeof(parent),
		    "%s%s", mnt, own) < (int)sizeof(parent))
			n += sweep_dir(parent, prefix, only != NULL);
	}
	for (i = 0; i < 3; i++)
		if (parent_dir(controllers[i], parent, sizeof(parent)) == 0)
			n += sweep_dir(parent, prefix, only != NULL);
	return n;
}

static int
sweep_dir(const char *parent, const char *prefix, int exact)
{
	struct dirent	*de;
	DIR		*d;
	char		 path[PATH_MAX];
	int		 n = 0;

	if ((d = opendir(parent)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (exact ? strcmp(de->d_name, prefix) != 0 :
		    strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", parent, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (empty_and_remove(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Move every process of dir into leaf; how many were left behind. */
static int
move_all(const char *dir, const char *leaf)
{
	char	 path[PATH_MAX];
	FILE	*f;
	long	 pid;
	int	 tries, left = 0;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >=
	    (int)sizeof(path))
		return -1;
	/* Again while it moves: a process may fork as we read. */
	for (tries = 0; tries < 3; tries++) {
		if ((f = fopen(path, "re")) == NULL)
			return -1;
		left = 0;
		while (fscanf(f, "%ld", &pid) == 1)
			if (write_file(leaf, "cgroup.procs", "%ld", pid) == -1 &&
			    errno != ESRCH)
				left++;
		fclose(f);
		if (left == 0)
			break;
	}
	return left;
}

int
cgroup_delegate(char *msg, size_t len)
{
	char	mnt[PATH_MAX], own[PATH_MAX], dir[PATH_MAX], leaf[PATH_MAX];
	char	avail[512], on[512];
	size_t	i;
	int	want = 0;

	*msg = '\0';
	if (find_mount(NULL, mnt, sizeof(mnt)) == -1 ||
	    access(mnt, W_OK) == 0)
		return 0;	/* no v2, or root: the mount's root is used */
	v2_own(own, sizeof(own));
	if (strcmp(own, "/") == 0 || snprintf(dir, sizeof(dir), "%s%s", mnt,
	    own) >= (int)sizeof(dir) || access(dir, W_OK) == -1 ||
	    read_file(dir, "cgroup.controllers", avail, sizeof(avail)) == -1 ||
	    read_file(dir, "cgroup.subtree_control", on, sizeof(on)) == -1)
		return 0;	/* not a delegated subtree */
	for (i = 0; i < 3; i++)
		if (has_token(avail, controllers[i]) &&
		    !has_token(on, controllers[i]))
			want = 1;
	if (!want)
		return 0;
	if (snprintf(leaf, sizeof(leaf), "%s/%s", dir, CGROUP_LEAF) >=
	    (int)sizeof(leaf))
		return 0;
	if (mkdir(leaf, 0755) == -1 && errno != EEXIST) {
		snprintf(msg, len, "cannot create cgroup %s: %s", leaf,
		    strerror(errno));
		return -1;
	}
	if (move_all(dir, leaf) != 0) {
		snprintf(msg, len, "cannot move the processes of cgroup %s "
		    "into %s: %s", dir, leaf, strerror(errno));
		return -1;
	}
	for (i = 0; i < 3; i++)
		if (has_token(avail, controllers[i]) &&
		    !has_token(on, controllers[i]) && write_file(dir,
		    "cgroup.subtree_control", "+%s", controllers[i]) == -1) {
			snprintf(msg, len, "cannot enable %s in cgroup %s: %s",
			    controllers[i], dir, strerror(errno));
			return -1;
		}
	snprintf(msg, len, "cgroup v2: moved into %s; memory, pids and cpu "
	    "enabled in %s for the invocations' cgroups", leaf, dir);
	return 1;
}

int
cgroup_sweep(const char *home)
{
	return sweep_all(home, NULL);
}

void
cgroup_remove(const char *home, uint64_t id)
{
	char name[32];

	snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
	(void)sweep_all(home, name);
}

void
cgroup_describe(const struct cgroup_limits *l, char *buf, size_t len)
{
	struct cgroup	cg;
	char		err[256];

	*buf = '\0';
	/* A throwaway cgroup, for the doctor: what holds is what was set. */
	if (cgroup_create(&cg, "doctor", (uint64_t)getpid(), l, err,
	    sizeof(err)) == -1) {
		snprintf(buf, len, "%s", err);
		return;
	}
	snprintf(buf, len, "%s%s%s", *cg.held != '\0' ? cg.held : "none",
	    *cg.missing != '\0' ? "; not enforced: " : "", cg.missing);
	cgroup_destroy(&cg);
}
