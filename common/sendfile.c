/*
 * The tag syntax is TinyClaw's, /\[send_file:\s*([^\]]+)\]/. Containment is
 * checked on the resolved path (realpath), so a symlink inside the working
 * directory that points outside it is refused.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sendfile.h"
#include "util.h"

#define TAG		"[send_file:"
#define MAX_FILES	64
/* Tags past this many are not resolved: each costs a realpath(3), and the
 * supervisor's loop waits for all of them. */
#define MAX_TAGS	1024

struct sb {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void
sb_add(struct sb *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap == 0 ? 256 : b->cap * 2;
		b->s = xreallocarray(b->s, b->cap, 1);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static int
inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return 1;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The host path for PATH as the agent wrote it, or NULL and *why. */
static char *
resolve(const char *path, const struct sendfile_ctx *c, const char **why)
{
	char		 host[PATH_MAX], real[PATH_MAX], wd[PATH_MAX];
	struct stat	 st;
	const char	*rest;
	int		 n;

	if (c->container && c->mapping == MAP_MAPPED && path[0] == '/') {
		if (strncmp(path, "/workspace", 10) != 0 ||
		    (path[10] != '/' && path[10] != '\0')) {
			*why = "outside the agent's working directory";
			return NULL;
		}
		rest = path + 10;
		n = snprintf(host, sizeof(host), "%s%s", c->workdir, rest);
	} else if (path[0] == '/')
		n = snprintf(host, sizeof(host), "%s", path);
	else
		n = snprintf(host, sizeof(host), "%s/%s", c->workdir, path);
	/* Cut short, it could name another file. */
	if (n < 0 || (size_t)n >= sizeof(host)) {
		*why = "path too long";
		return NULL;
	}
	if (realpath(host, real) == NULL) {
		*why = errno == ENOENT ? "no such file" : "cannot resolve";
		return NULL;
	}
	if (c->container) {
		if (realpath(c->workdir, wd) == NULL || !inside(real, wd)) {
			*why = "outside the agent's working directory";
			return NULL;
		}
	}
	if (stat(real, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return NULL;
	}
	return xstrdup(real);
}

char *
sendfile_scan(const char *text, const struct sendfile_ctx *c, char ***files,
    size_t *nfiles)
{
	struct sb	 out = { NULL, 0, 0 }, warn = { NULL, 0, 0 };
	const char	*p = text, *t, *a, *e, *why;
	char		*path, *host, *r;
	size_t		 i, n, ntags = 0;

	*files = NULL;
	*nfiles = 0;
	sb_add(&out, "", 0);
	while ((t = strstr(p, TAG)) != NULL) {
		a = t + strlen(TAG);
		while (isspace((unsigned char)*a))
			a++;
		/* No ']' left: no later tag can end either, and looking
		 * for one after each would be quadratic. */
		if ((e = strchr(a, ']')) == NULL)
			break;
		if (e == a) {
			sb_add(&out, p, a - p);
			p = a;
			continue;
		}
		sb_add(&out, p, t - p);
		p = e + 1;
		n = e - a;
		while (n > 0 && isspace((unsigned char)a[n - 1]))
			n--;
		path = xstrndup(a, n);
		why = "too many files";
		host = *nfiles < MAX_FILES && ++ntags <= MAX_TAGS && n > 0 ?
		    resolve(path, c, &why) : NULL;
		if (host == NULL) {
			sb_add(&warn, warn.len == 0 ? "" : "; ", warn.len == 0 ?
			    0 : 2);
			sb_add(&warn, path, strlen(path));
			sb_add(&warn, " (", 2);
			sb_add(&warn, why, strlen(why));
			sb_add(&warn, ")", 1);
			free(path);
			continue;
		}
		free(path);
		for (i = 0; i < *nfiles; i++)
			if (strcmp((*files)[i], host) == 0)
				break;
		if (i < *nfiles) {
			free(host);
			continue;
		}
		*files = xreallocarray(*files, *nfiles + 1, sizeof(char *));
		(*files)[(*nfiles)++] = host;
	}
	sb_add(&out, p, strlen(p));
	/* Trim what the tags left around. */
	n = out.len;
	while (n > 0 && isspace((unsigned char)out.s[n - 1]))
		n--;
	for (i = 0; i < n && isspace((unsigned char)out.s[i]); i++)
		;
	if (warn.len > 0)
		xasprintf(&r, "%.*s%s[clawvisor: could not attach: %s]",
		    (int)(n - i), out.s + i, n > i ? "\n\n" : "", warn.s);
	else
		r = xstrndup(out.s + i, n - i);
	free(out.s);
	free(warn.s);
	return r;
}
