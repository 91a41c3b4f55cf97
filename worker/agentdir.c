/*
 * TinyClaw's agent directory, set up as its queue processor does before
 * every call (src/lib/agent-setup.ts, 0.0.2 to 0.0.5): the files of its
 * install directory copied in when missing, and the teammates block between
 * its markers in AGENTS.md and .claude/CLAUDE.md rewritten. Done by the
 * worker, in the working directory only: every write is relative to the
 * directory's fd and follows no symbolic link, and a file that is there is
 * never overwritten, except for the marked block TinyClaw itself rewrites.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentdir.h"
#include "log.h"
#include "util.h"

#define AGENTDIR_MAX_FILE	(4 * 1024 * 1024)
#define AGENTDIR_MAX_DEPTH	8
#define AGENTDIR_MAX_ENTRIES	2000

static const char start_marker[] = "<!-- TEAMMATES_START -->";
static const char end_marker[] = "<!-- TEAMMATES_END -->";

struct agentdir {
	const struct job *job;
	int		 owned;		/* root: created entries get uid:gid */
	uid_t		 uid;
	gid_t		 gid;
	int		 entries;	/* copied from .claude/, bounded */
};

static void
agentdir_warn(struct agentdir *ad, const char *what, const char *why)
{
	log_warnx("agent %s: setting up %s/%s: %s", ad->job->agent_id,
	    ad->job->workdir, what, why);
}

/* What was created takes the working directory's owner (SANDBOX.md). */
static void
agentdir_own(struct agentdir *ad, int dfd, const char *name)
{
	if (ad->owned)
		(void)fchownat(dfd, name, ad->uid, ad->gid,
		    AT_SYMLINK_NOFOLLOW);
}

/*
 * A file of the install directory: the user's own tree, where a symbolic
 * link is followed, as TinyClaw's copyFileSync follows it. NULL if it is
 * not a regular file (or is missing: TinyClaw skips it too).
 */
static char *
agentdir_source(const char *dir, const char *name, size_t *len,
    mode_t *mode)
{
	struct stat	 st;
	char		*path, *buf = NULL;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	xasprintf(&path, "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	free(path);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > AGENTDIR_MAX_FILE)
		goto out;
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += n;
	}
	buf[off] = '\0';
	*len = off;
	*mode = st.st_mode & 0777;
out:
	close(fd);
	return buf;
}

/* An entry of the working directory, not following a link: 1 if there. */
static int
agentdir_exists(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT;
}

/*
 * Write a file through a temporary and a rename, so that no half file is
 * ever seen. was == NULL: a new file of this mode, created with
 * RENAME_NOREPLACE (one that appeared meanwhile wins); else a rewrite of
 * the file was describes, keeping its mode and owner.
 */
static int
agentdir_write(struct agentdir *ad, int dfd, const char *name,
    const char *data, size_t len, mode_t mode, const struct stat *was)
{
	char	tmp[64];
	int	saved;

	if (file_write_temp(dfd, tmp, sizeof(tmp), data, len, 0) == -1)
		return -1;
	if (fchmodat(dfd, tmp, was != NULL ? was->st_mode & 07777 : mode, 0)
	    == -1)
		goto fail;
	if (was == NULL)
		agentdir_own(ad, dfd, tmp);
	else if (geteuid() == 0)
		(void)fchownat(dfd, tmp, was->st_uid, was->st_gid,
		    AT_SYMLINK_NOFOLLOW);
	if (was != NULL ? renameat(dfd, tmp, dfd, name) :
	    renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE)) {
		if (was != NULL || errno != EEXIST)
			goto fail;
		unlinkat(dfd, tmp, 0);
	}
	return 0;
fail:
	saved = errno;
	unlinkat(dfd, tmp, 0);
	errno = saved;
	return -1;
}

/*
 * A directory of the working directory, made if missing; -1 if it cannot
 * be, or is a symbolic link (O_NOFOLLOW: never followed out).
 */
static int
agentdir_subdir(struct agentdir *ad, int dfd, const char *name,
    const char *what)
{
	struct stat	st;
	int		fd, saved;

	if (mkdirat(dfd, name, 0755) == 0)
		agentdir_own(ad, dfd, name);
	else if (errno != EEXIST) {
		agentdir_warn(ad, what, strerror(errno));
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		agentdir_warn(ad, what, fstatat(dfd, name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) ?
		    "is a symbolic link, not followed" : strerror(saved));
	}
	return fd;
}

/* TinyClaw's fs.copyFileSync when the target is missing. */
static void
agentdir_copy(struct agentdir *ad, const char *srcdir, const char *src,
    int dfd, const char *name, const char *what)
{
	char	*data;
	size_t	 len;
	mode_t	 mode;

	if (agentdir_exists(dfd, name))
		return;
	if ((data = agentdir_source(srcdir, src, &len, &mode)) == NULL)
		return;
	if (agentdir_write(ad, dfd, name, data, len, mode, NULL) == -1)
		agentdir_warn(ad, what, strerror(errno));
	free(data);
}

/* TinyClaw's copyDirSync, file by file, each only when missing. */
static void
agentdir_copy_tree(struct agentdir *ad, const char *src, int dfd,
    const char *what, int depth)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*path, *sub;
	int		 fd;

	if (depth > AGENTDIR_MAX_DEPTH || (d = opendir(src)) == NULL)
		return;
	while ((de = readdir(d)) != NULL &&
	    ad->entries++ < AGENTDIR_MAX_ENTRIES) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		xasprintf(&path, "%s/%s", src, de->d_name);
		xasprintf(&sub, "%s/%s", what, de->d_name);
		if (stat(path, &st) == -1)
			;	/* a dangling link: nothing to copy */
		else if (S_ISDIR(st.st_mode)) {
			if ((fd = agentdir_subdir(ad, dfd, de->d_name, sub))
			    != -1) {
				agentdir_copy_tree(ad, path, fd, sub,
				    depth + 1);
				close(fd);
			}
		} else if (S_ISREG(st.st_mode))
			agentdir_copy(ad, src, de->d_name, dfd, de->d_name,
			    sub);
		free(path);
		free(sub);
	}
	closedir(d);
}

/* A link to the install's skills, as TinyClaw makes it, when missing. */
static void
agentdir_link(struct agentdir *ad, int dfd, const char *target,
    const char *what)
{
	if (symlinkat(target, dfd, "skills") == 0)
		agentdir_own(ad, dfd, "skills");
	else if (errno != EEXIST)
		agentdir_warn(ad, what, strerror(errno));
}

static void
agentdir_templates(struct agentdir *ad, int wfd, int cfd)
{
	const char	*t = ad->job->templates;
	struct stat	 st;
	char		*skills, *claude;
	int		 fd;

	/* .claude/CLAUDE.md is AGENTS.md's copy: it wins over a CLAUDE.md
	 * of the install's .claude/, as TinyClaw copies it last. */
	if (cfd != -1) {
		agentdir_copy(ad, t, "AGENTS.md", cfd, "CLAUDE.md",
		    ".claude/CLAUDE.md");
		xasprintf(&claude, "%s/.claude", t);
		agentdir_copy_tree(ad, claude, cfd, ".claude", 0);
		free(claude);
	}
	agentdir_copy(ad, t, "heartbeat.md", wfd, "heartbeat.md",
	    "heartbeat.md");
	agentdir_copy(ad, t, "AGENTS.md", wfd, "AGENTS.md", "AGENTS.md");

	/* 0.0.3 to 0.0.5: .agent/skills if the install has it, else
	 * .agents/skills, linked as .claude/skills and .agent/skills. */
	xasprintf(&skills, "%s/.agent/skills", t);
	if (stat(skills, &st) == -1 || !S_ISDIR(st.st_mode)) {
		free(skills);
		xasprintf(&skills, "%s/.agents/skills", t);
	}
	if (stat(skills, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (cfd != -1)
			agentdir_link(ad, cfd, skills, ".claude/skills");
		if ((fd = agentdir_subdir(ad, wfd, ".agent", ".agent")) != -1) {
			agentdir_link(ad, fd, skills, ".agent/skills");
			close(fd);
		}
	}
	free(skills);

	if ((fd = agentdir_subdir(ad, wfd, ".tinyclaw", ".tinyclaw")) != -1) {
		agentdir_copy(ad, t, "SOUL.md", fd, "SOUL.md",
		    ".tinyclaw/SOUL.md");
		close(fd);
	}
}

/*
 * The text with the block between the markers replaced, as TinyClaw's
 * updateAgentTeammates does (the first of each marker); NULL without both
 * markers in order.
 */
static char *
agentdir_splice(const char *text, const char *block)
{
	const char	*s, *e;
	char		*out;

	if ((s = strstr(text, start_marker)) == NULL ||
	    (e = strstr(text, end_marker)) == NULL ||
	    e < s + sizeof(start_marker) - 1)
		return NULL;
	s += sizeof(start_marker) - 1;
	xasprintf(&out, "%.*s%s%s", (int)(s - text), text, block, e);
	return out;
}

/* The file's new text when it differs; write it, keeping mode and owner. */
static void
agentdir_update(struct agentdir *ad, int dfd, const char *name,
    const char *old, const char *new, const char *what)
{
	struct stat	st;

	if (strcmp(old, new) == 0)
		return;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT || agentdir_write(ad, dfd, name, new,
		    strlen(new), 0644, NULL) == -1)
			agentdir_warn(ad, what, strerror(errno));
		return;
	}
	if (agentdir_write(ad, dfd, name, new, strlen(new), 0, &st) == -1)
		agentdir_warn(ad, what, strerror(errno));
}

static void
agentdir_teammates(struct agentdir *ad, int wfd, int cfd)
{
	const char	*block = ad->job->teammates;
	char		*text = NULL, *claude = NULL, *new = NULL, err[128];
	size_t		 len, end;
	int		 r, own = -1;

	r = file_read_regular(wfd, "AGENTS.md", AGENTDIR_MAX_FILE, &text,
	    &len, err, sizeof(err));
	if (r != 0) {
		if (r != -2)
			agentdir_warn(ad, "AGENTS.md", err);
		goto out;
	}
	if (strlen(text) != len || (new = agentdir_splice(text, block)) ==
	    NULL)
		goto out;	/* no markers: TinyClaw leaves both files */
	agentdir_update(ad, wfd, "AGENTS.md", text, new, "AGENTS.md");
	free(new);
	new = NULL;
	/* TinyClaw makes .claude/ for it if it has to (with templates, the
	 * set-up has tried already). */
	if (cfd == -1 && (ad->job->templates != NULL || (cfd = own =
	    agentdir_subdir(ad, wfd, ".claude", ".claude")) == -1))
		goto out;

	r = file_read_regular(cfd, "CLAUDE.md", AGENTDIR_MAX_FILE, &claude,
	    &len, err, sizeof(err));
	if (r == -2) {
		claude = xstrdup("");
		len = 0;
	} else if (r != 0 || strlen(claude) != len) {
		agentdir_warn(ad, ".claude/CLAUDE.md", r != 0 ? err :
		    "has a NUL byte");
		goto out;
	}
	if ((new = agentdir_splice(claude, block)) == NULL) {
		/* No markers: TinyClaw appends them, after trimEnd(). */
		for (end = len; end > 0 && strchr(" \t\n\r\v\f",
		    claude[end - 1]) != NULL; end--)
			;
		xasprintf(&new, "%.*s\n\n%s%s%s\n", (int)end, claude,
		    start_marker, block, end_marker);
	}
	agentdir_update(ad, cfd, "CLAUDE.md", claude, new,
	    ".claude/CLAUDE.md");
out:
	if (own != -1)
		close(own);
	free(text);
	free(claude);
	free(new);
}

void
agentdir_setup(const struct job *j)
{
	struct agentdir	ad;
	struct stat	st;
	int		wfd, cfd = -1;

	memset(&ad, 0, sizeof(ad));
	ad.job = j;
	if (j->provider == PROV_COMMAND)
		return;		/* not a TinyClaw agent */
	if ((wfd = open(j->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1) {
		agentdir_warn(&ad, ".", strerror(errno));
		return;
	}
	if (fstat(wfd, &st) == 0 && geteuid() == 0) {
		ad.owned = 1;
		ad.uid = st.st_uid;
		ad.gid = st.st_gid;
	}
	if (j->templates != NULL) {
		cfd = agentdir_subdir(&ad, wfd, ".claude", ".claude");
		agentdir_templates(&ad, wfd, cfd);
	}
	agentdir_teammates(&ad, wfd, cfd);
	if (cfd != -1)
		close(cfd);
	close(wfd);
}
