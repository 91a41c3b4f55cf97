/*
 * A reply with [send_file: PATH] tags, as an agent could write it to get a
 * file out. The first input byte picks the mode (host, container with the
 * mapped /workspace, container with the same path); the rest is the reply.
 * The working directory holds files, a directory, a FIFO and symlinks
 * that point outside it. Whatever the text, a container-mode result is a
 * regular file inside the working directory, and there are at most 64.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sendfile.h"
#include "util.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	top[PATH_MAX];		/* realpath of the temp dir */
static char	wd[PATH_MAX];		/* top/work: the agent's workdir */

static void
at(char *buf, const char *rel)
{
	snprintf(buf, PATH_MAX, "%s/%s", top, rel);
}

static void
dir_at(const char *rel)
{
	char p[PATH_MAX];

	at(p, rel);
	if (mkdir(p, 0700) == -1)
		abort();
}

static void
file_at(const char *rel, const char *text)
{
	char	p[PATH_MAX];
	int	fd;

	at(p, rel);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
}

static void
link_at(const char *target, const char *rel)
{
	char p[PATH_MAX];

	at(p, rel);
	if (symlink(target, p) == -1)
		abort();
}

static void
cleanup(void)
{
	static const char *const names[] = { "work/report.txt",
	    "work/sub/notes.md", "work/escape", "work/escape-dir", "work/loop",
	    "work/inside-link", "work/fifo", "work/sub", "work/dir.txt",
	    "work", "outside/secret.txt", "outside", NULL };
	char	p[PATH_MAX];
	int	i;

	for (i = 0; names[i] != NULL; i++) {
		at(p, names[i]);
		if (unlink(p) == -1)
			rmdir(p);
	}
	rmdir(top);
}

static char *
repeat(const char *s, size_t n)
{
	size_t	 l = strlen(s), i;
	char	*buf = xmalloc(l * n + 1);

	for (i = 0; i < n; i++)
		memcpy(buf + i * l, s, l);
	buf[l * n] = '\0';
	return buf;
}

/*
 * Regressions too big for the corpus. 4 MB of tags without a closing ']'
 * took seconds when each tag looked for one to the end of the text
 * (quadratic); and a reply of thousands of tags cost a realpath(3) each,
 * with the supervisor's loop waiting: past MAX_TAGS (1024) they are not
 * looked up.
 */
static void
selfcheck(void)
{
	struct sendfile_ctx	 c = { 1, MAP_MAPPED, wd, NULL, NULL };
	char			*text, *r, **files;
	size_t			 nfiles;
	clock_t			 t;

	text = repeat("[send_file:", 4 * 1024 * 1024 / 11);
	t = clock();
	r = sendfile_scan(text, &c, &files, &nfiles);
	t = clock() - t;
	if (t > CLOCKS_PER_SEC || nfiles != 0 || strcmp(r, text) != 0) {
		fprintf(stderr, "selfcheck: sendfile_scan of 4 MB of open tags "
		    "took %.2f s of CPU\n", (double)t / CLOCKS_PER_SEC);
		abort();
	}
	free(r);
	free(text);
	text = repeat("[send_file: missing] ", 1100);
	r = sendfile_scan(text, &c, &files, &nfiles);
	if (nfiles != 0 || strstr(r, "missing (no such file)") == NULL ||
	    strstr(r, "missing (too many files)") == NULL) {
		fprintf(stderr, "selfcheck: tags past 1024 were looked up\n");
		abort();
	}
	free(r);
	free(text);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*tmp = getenv("TMPDIR");
	char		 t[PATH_MAX], p[PATH_MAX];

	(void)argc;
	(void)argv;
	log_open("fuzz", NULL, 0);
	snprintf(t, sizeof(t), "%s/fuzz-sendfile.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(t) == NULL || realpath(t, top) == NULL)
		abort();
	dir_at("work");
	dir_at("work/sub");
	dir_at("work/dir.txt");
	dir_at("outside");
	file_at("work/report.txt", "report\n");
	file_at("work/sub/notes.md", "notes\n");
	file_at("outside/secret.txt", "secret\n");
	at(p, "work/fifo");
	if (mkfifo(p, 0600) == -1)
		abort();
	at(p, "outside/secret.txt");
	link_at(p, "work/escape");
	link_at("../outside", "work/escape-dir");
	link_at("loop", "work/loop");
	link_at("sub/notes.md", "work/inside-link");
	at(wd, "work");
	atexit(cleanup);
	selfcheck();
	return 0;
}

static int
inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sendfile_ctx	 c;
	struct stat		 st;
	char			*text, *r, **files;
	size_t			 nfiles, i, j;

	if (size == 0)
		return 0;
	memset(&c, 0, sizeof(c));
	c.workdir = wd;
	switch (data[0] % 3) {
	case 0:
		c.container = 0;
		break;
	case 1:
		c.container = 1;
		c.mapping = MAP_MAPPED;
		break;
	default:
		c.container = 1;
		c.mapping = MAP_SAME_PATH;
		break;
	}
	/* A reply is a C string by the time it is scanned. */
	text = xstrndup((const char *)data + 1, size - 1);
	r = sendfile_scan(text, &c, &files, &nfiles);
	if (r == NULL || nfiles > 64 || (nfiles > 0) != (files != NULL))
		abort();
	for (i = 0; i < nfiles; i++) {
		if (files[i][0] != '/' || stat(files[i], &st) == -1 ||
		    !S_ISREG(st.st_mode))
			abort();
		if (c.container && !inside(files[i], wd))
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(files[i], files[j]) == 0)
				abort();
	}
	for (i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	free(r);
	/* The name of a copy: within NAME_MAX, one component, UTF-8. */
	r = sendfile_copy_name("clawvisor-1796000000000-7-", text);
	if (strlen(r) > NAME_MAX || strchr(r, '/') != NULL ||
	    !utf8_valid(r, strlen(r)))
		abort();
	free(r);
	free(text);
	return 0;
}
