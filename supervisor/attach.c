/*
 * Files a reply attaches with [send_file:], copied into HOME/files/ (the
 * directory TinyClaw's channel clients already use for attachments) when
 * the reply is taken: the response names a file of clawvisor's, which no
 * later run of an agent can replace by a symlink to a host file before the
 * channel client reads it. Copies are removed a week after they were made.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sendfile.h"
#include "supervisor.h"
#include "util.h"

/* The loop waits while a file is copied: bounded, a file and a reply. */
#define ATTACH_FILE_MAX		(64u * 1024 * 1024)
#define ATTACH_REPLY_MAX	(256u * 1024 * 1024)
#define ATTACH_PREFIX		"clawvisor-"
#define RETENTION_MS		(7LL * 24 * 3600 * 1000)
#define PRUNE_EVERY_MS		(3600LL * 1000)

static struct {
	int		 dir;
	int64_t		 last_prune;
	unsigned	 seq;
} at = { .dir = -1 };

/* Copies older than RETENTION_MS, by the time in their name. */
static void
attach_prune(int64_t now)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		*end;
	long long	 ms;
	int		 fd;

	at.last_prune = now;
	if ((fd = dup(at.dir)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		/* Only clawvisor-MS-SEQ-*: the channel clients' own stay. */
		if (strncmp(de->d_name, ATTACH_PREFIX,
		    strlen(ATTACH_PREFIX)) != 0)
			continue;
		ms = strtoll(de->d_name + strlen(ATTACH_PREFIX), &end, 10);
		if (*end != '-' || ms > now - RETENTION_MS)
			continue;
		if (fstatat(at.dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			unlinkat(at.dir, de->d_name, 0);
	}
	closedir(d);
}

static int
attach_dir(void)
{
	char *p;

	if (at.dir != -1)
		return at.dir;
	xasprintf(&p, "%s/files", sv.home);
	if (mkdir_p(p, 0700) == -1 || (at.dir = open(p, O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) == -1)
		log_error("cannot open %s: %s", p, strerror(errno));
	free(p);
	return at.dir;
}

/* sendfile_ctx's attach: a copy of real, deduplicated in l. */
static char *
attach_file(const char *real, void *arg, const char **why)
{
	struct attach_list	*l = arg;
	struct stat		 st;
	const char		*base;
	char			*prefix, *name, *path;
	size_t			 i, max;
	int64_t			 now = now_ms();

	for (i = 0; i < l->n; i++)
		if (strcmp(l->src[i], real) == 0)
			return xstrdup(l->dst[i]);
	if (attach_dir() == -1) {
		*why = "cannot create the copy";
		return NULL;
	}
	if (now - at.last_prune > PRUNE_EVERY_MS)
		attach_prune(now);
	max = ATTACH_REPLY_MAX - l->bytes;
	if (max > ATTACH_FILE_MAX)
		max = ATTACH_FILE_MAX;
	base = strrchr(real, '/') != NULL ? strrchr(real, '/') + 1 : real;
	xasprintf(&prefix, ATTACH_PREFIX "%lld-%u-", (long long)now,
	    at.seq++);
	name = sendfile_copy_name(prefix, base);
	free(prefix);
	if (sendfile_copy(real, at.dir, name, max, why) == -1) {
		free(name);
		return NULL;
	}
	if (fstatat(at.dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		l->bytes += (size_t)st.st_size;
	xasprintf(&path, "%s/files/%s", sv.home, name);
	free(name);
	l->src = xreallocarray(l->src, l->n + 1, sizeof(char *));
	l->dst = xreallocarray(l->dst, l->n + 1, sizeof(char *));
	l->src[l->n] = xstrdup(real);
	l->dst[l->n] = xstrdup(path);
	l->n++;
	return path;
}

/* How a response's files are attached: copied, recorded in l. */
void
attach_ctx(struct sendfile_ctx *c, struct attach_list *l)
{
	c->attach = attach_file;
	c->arg = l;
}

void
attach_list_free(struct attach_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->src[i]);
		free(l->dst[i]);
	}
	free(l->src);
	free(l->dst);
	memset(l, 0, sizeof(*l));
}
