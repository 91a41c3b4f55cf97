/*
 * The tag syntax is TinyClaw's, /\[send_file:\s*([^\]]+)\]/. Containment is
 * checked on the resolved path (realpath), so a symlink inside the working
 * directory that points outside it is refused.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	char		*path, *host, *r, **seen = NULL, *att;
	size_t		 i, n, ntags = 0, nseen = 0;

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
		for (i = 0; host != NULL && i < nseen; i++)
			if (strcmp(seen[i], host) == 0)
				break;
		if (host != NULL && i < nseen) {
			free(host);
			free(path);
			continue;
		}
		att = host;
		if (host != NULL && c->attach != NULL) {
			seen = xreallocarray(seen, nseen + 1, sizeof(char *));
			seen[nseen++] = host;
			att = c->attach(host, c->arg, &why);
		} else if (host != NULL) {
			seen = xreallocarray(seen, nseen + 1, sizeof(char *));
			seen[nseen++] = xstrdup(host);
		}
		if (att == NULL) {
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
		*files = xreallocarray(*files, *nfiles + 1, sizeof(char *));
		(*files)[(*nfiles)++] = att;
	}
	for (i = 0; i < nseen; i++)
		free(seen[i]);
	free(seen);
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

/*
 * The agent's file as it is now, into a file of clawvisor's own: the
 * channel client reads the path in the response later, by which time a
 * later run of the agent may have put a symlink to a host file in its
 * place. The file is opened without following a symlink, and the path the
 * kernel has for what was opened must still be the one resolved (and
 * checked for containment): a directory of the path swapped for a symlink
 * since then is refused too.
 */
int
sendfile_copy(const char *real, int dirfd, const char *name, size_t max,
    const char **why)
{
	struct stat	 st;
	char		 proc[64], now[PATH_MAX], buf[65536];
	off_t		 left;
	ssize_t		 n, w, k;
	int		 in, out = -1;

	in = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY);
	if (in == -1) {
		*why = errno == ENOENT ? "no such file" : errno == ELOOP ?
		    "changed while being attached" : "cannot open";
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in);
	if ((n = readlink(proc, now, sizeof(now) - 1)) == -1) {
		*why = "cannot verify the path";
		goto fail;
	}
	now[n] = '\0';
	if (strcmp(now, real) != 0) {
		*why = "changed while being attached";
		goto fail;
	}
	if (fstat(in, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	if ((uintmax_t)st.st_size > max) {
		*why = "too large";
		goto fail;
	}
	out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (out == -1) {
		*why = "cannot create the copy";
		goto fail;
	}
	/* What it holds now, up to the size it had when it was checked. */
	for (left = st.st_size; left > 0; left -= n) {
		n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n == -1) {
			/* Another filesystem, an old kernel: by hand. */
			n = read(in, buf, (size_t)left < sizeof(buf) ?
			    (size_t)left : sizeof(buf));
			if (n == -1 && errno == EINTR) {
				n = 0;
				continue;
			}
			for (w = 0; n > 0 && w < n; w += k)
				if ((k = write(out, buf + w, n - w)) == -1)
					break;
			if (n > 0 && w < n)
				n = -1;
		}
		if (n == -1) {
			*why = "cannot copy";
			goto fail;
		}
		if (n == 0)
			break;		/* it shrank */
	}
	/* Durable before the response that names it can be. */
	if (fsync(out) == -1) {
		*why = "cannot copy";
		goto fail;
	}
	k = close(out);
	out = -1;
	if (k == -1) {
		*why = "cannot copy";
		unlinkat(dirfd, name, 0);
		goto fail;
	}
	close(in);
	return 0;
fail:
	if (out != -1) {
		close(out);
		unlinkat(dirfd, name, 0);
	}
	close(in);
	return -1;
}

char *
sendfile_copy_name(const char *prefix, const char *base)
{
	const unsigned char	*p = (const unsigned char *)base;
	const char		*dot;
	char			*clean, *o, *name;
	size_t			 i = 0, n, len = strlen(base), room, keep, ext;
	unsigned		 cp;

	o = clean = xmalloc(len + 1);
	while (i < len) {
		n = utf8_seq(p + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 &&
		    cp <= 0x9f) || cp == '/' || cp == '\\') {
			*o++ = '_';
			i += n == 0 ? 1 : n;
			continue;
		}
		memcpy(o, p + i, n);
		o += n;
		i += n;
	}
	*o = '\0';
	len = strlen(clean);
	room = NAME_MAX > strlen(prefix) ? NAME_MAX - strlen(prefix) : 0;
	if (len > room) {
		/* Keep the extension (channel clients choose how to send
		 * by it), cut the stem between characters. */
		dot = strrchr(clean, '.');
		ext = dot != NULL && strlen(dot) <= 16 ? strlen(dot) : 0;
		keep = room > ext ? room - ext : 0;
		while (keep > 0 && ((unsigned char)clean[keep] & 0xc0) == 0x80)
			keep--;
		memmove(clean + keep, clean + len - ext, ext + 1);
	}
	xasprintf(&name, "%s%s", prefix, clean);
	free(clean);
	return name;
}
