/*
 * [send_file: PATH] resolution (common/sendfile.c) on a scratch tree: the
 * container path mapping, containment after symlinks in container modes,
 * stripping of the tags and the warning for files that could not be sent.
 */
#include <sys/stat.h>

#include <fcntl.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sendfile.h"
#include "unit.h"
#include "util.h"

struct tree {
	char	*tmp;		/* as created */
	char	*root;		/* realpath of tmp */
	char	*work;		/* root/work: the working directory */
	char	*a;		/* work/a.txt */
	char	*b;		/* work/sub/b.txt */
	char	*outside;	/* root/outside.txt */
};

static struct tree t;

static int
tree_setup(void **state)
{
	char	 real[PATH_MAX], *p;

	(void)state;
	t.tmp = unit_tmpdir();
	if (realpath(t.tmp, real) == NULL)
		return -1;
	t.root = xstrdup(real);
	xasprintf(&t.work, "%s/work", t.root);
	xasprintf(&t.a, "%s/a.txt", t.work);
	xasprintf(&t.b, "%s/sub/b.txt", t.work);
	xasprintf(&t.outside, "%s/outside.txt", t.root);
	if (mkdir(t.work, 0755) == -1)
		return -1;
	xasprintf(&p, "%s/sub", t.work);
	if (mkdir(p, 0755) == -1)
		return -1;
	free(p);
	xasprintf(&p, "%s/dir", t.work);
	if (mkdir(p, 0755) == -1)
		return -1;
	free(p);
	unit_write(t.a, "a", 0644);
	unit_write(t.b, "b", 0644);
	unit_write(t.outside, "secret", 0644);
	xasprintf(&p, "%s/link_out", t.work);
	if (symlink(t.outside, p) == -1)
		return -1;
	free(p);
	xasprintf(&p, "%s/link_in", t.work);
	if (symlink("sub/b.txt", p) == -1)
		return -1;
	free(p);
	return 0;
}

static int
tree_teardown(void **state)
{
	(void)state;
	unit_rmtree(t.tmp);
	free(t.tmp);
	free(t.root);
	free(t.work);
	free(t.a);
	free(t.b);
	free(t.outside);
	return 0;
}

static void
free_files(char **files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
}

/* Scan text; the reply must be want and the files those listed. */
static void
check(const struct sendfile_ctx *c, const char *text, const char *want,
    const char *file, int line, ...)
{
	va_list	  ap;
	char	**files, *r;
	const char *f;
	size_t	  n, i = 0;
	int	  ok;

	r = sendfile_scan(text, c, &files, &n);
	ok = strcmp(r, want) == 0;
	if (!ok)
		print_error("reply \"%s\"\n  wanted \"%s\"\n", r, want);
	va_start(ap, line);
	while ((f = va_arg(ap, const char *)) != NULL) {
		if (i >= n || strcmp(files[i], f) != 0) {
			print_error("file %zu: \"%s\", wanted \"%s\"\n", i,
			    i < n ? files[i] : "(none)", f);
			ok = 0;
		}
		i++;
	}
	va_end(ap);
	if (i != n) {
		print_error("%zu files, wanted %zu\n", n, i);
		ok = 0;
	}
	free(r);
	free_files(files, n);
	if (!ok)
		_fail(file, line);
}
#define assert_scan(c, text, want, ...) \
	check(c, text, want, __FILE__, __LINE__, __VA_ARGS__)

static void
test_host(void **state)
{
	struct sendfile_ctx	 c = { 0, MAP_MAPPED, NULL, NULL, NULL };
	char			*text;

	(void)state;
	c.workdir = t.work;
	assert_scan(&c, "Here it is [send_file: a.txt]", "Here it is", t.a,
	    NULL);
	assert_scan(&c, "[send_file:sub/b.txt]", "", t.b, NULL);
	/* On the host any readable path goes, and symlinks are resolved. */
	xasprintf(&text, "[send_file: %s] and [send_file: link_out]",
	    t.outside);
	assert_scan(&c, text, "and", t.outside, NULL);
	free(text);
	/* No mapping on the host: /workspace is just a path. */
	assert_scan(&c, "[send_file: /workspace/a.txt]",
	    "[clawvisor: could not attach: /workspace/a.txt (no such file)]",
	    NULL);
}

static void
test_container_mapped(void **state)
{
	struct sendfile_ctx	 c = { 1, MAP_MAPPED, NULL, NULL, NULL };
	char			*text, *want;

	(void)state;
	c.workdir = t.work;
	assert_scan(&c, "[send_file: /workspace/a.txt]", "", t.a, NULL);
	assert_scan(&c, "x [send_file: /workspace/sub/b.txt] y", "x  y", t.b,
	    NULL);
	assert_scan(&c, "[send_file: sub/b.txt]", "", t.b, NULL);
	/* A symlink that stays inside is fine. */
	assert_scan(&c, "[send_file: /workspace/link_in]", "", t.b, NULL);

	/* Outside the mount, by path, by .., or through a symlink. */
	assert_scan(&c, "R [send_file: /etc/hostname]",
	    "R\n\n[clawvisor: could not attach: /etc/hostname (outside the "
	    "agent's working directory)]", NULL);
	assert_scan(&c, "[send_file: /workspacex/a.txt]",
	    "[clawvisor: could not attach: /workspacex/a.txt (outside the "
	    "agent's working directory)]", NULL);
	assert_scan(&c, "[send_file: /workspace/../outside.txt]",
	    "[clawvisor: could not attach: /workspace/../outside.txt (outside "
	    "the agent's working directory)]", NULL);
	assert_scan(&c, "[send_file: ../outside.txt]",
	    "[clawvisor: could not attach: ../outside.txt (outside the "
	    "agent's working directory)]", NULL);
	assert_scan(&c, "[send_file: /workspace/link_out]",
	    "[clawvisor: could not attach: /workspace/link_out (outside the "
	    "agent's working directory)]", NULL);
	/* The host path of the file is not a container path. */
	xasprintf(&text, "[send_file: %s]", t.a);
	xasprintf(&want, "[clawvisor: could not attach: %s (outside the "
	    "agent's working directory)]", t.a);
	assert_scan(&c, text, want, NULL);
	free(text);
	free(want);
}

static void
test_container_same_path(void **state)
{
	struct sendfile_ctx	 c = { 1, MAP_SAME_PATH, NULL, NULL, NULL };
	char			*text, *want;

	(void)state;
	c.workdir = t.work;
	xasprintf(&text, "ok [send_file: %s]", t.a);
	assert_scan(&c, text, "ok", t.a, NULL);
	free(text);
	assert_scan(&c, "[send_file: a.txt]", "", t.a, NULL);
	xasprintf(&text, "[send_file: %s]", t.outside);
	xasprintf(&want, "[clawvisor: could not attach: %s (outside the "
	    "agent's working directory)]", t.outside);
	assert_scan(&c, text, want, NULL);
	free(text);
	free(want);
	/* A sibling whose name starts with the working directory's. */
	xasprintf(&text, "%s2", t.work);
	assert_int_equal(mkdir(text, 0755), 0);
	free(text);
	xasprintf(&text, "%s2/f", t.work);
	unit_write(text, "f", 0644);
	xasprintf(&want, "[send_file: %s]", text);
	{
		char *w2;

		xasprintf(&w2, "[clawvisor: could not attach: %s (outside the "
		    "agent's working directory)]", text);
		assert_scan(&c, want, w2, NULL);
		free(w2);
	}
	unlink(text);
	free(want);
	free(text);
	xasprintf(&text, "%s2", t.work);
	rmdir(text);
	free(text);
}

static void
test_unresolved(void **state)
{
	struct sendfile_ctx c = { 1, MAP_MAPPED, NULL, NULL, NULL };

	(void)state;
	c.workdir = t.work;
	assert_scan(&c, "Done.\n[send_file: nope.txt]\n",
	    "Done.\n\n[clawvisor: could not attach: nope.txt (no such file)]",
	    NULL);
	assert_scan(&c, "[send_file: dir]",
	    "[clawvisor: could not attach: dir (not a regular file)]", NULL);
	/* Sent files and warnings together; warnings joined by "; ". */
	assert_scan(&c, "Here [send_file: a.txt] and [send_file: x] and "
	    "[send_file: /workspace/dir] done",
	    "Here  and  and  done\n\n[clawvisor: could not attach: x (no such "
	    "file); /workspace/dir (not a regular file)]", t.a, NULL);
}

static void
test_tags(void **state)
{
	struct sendfile_ctx c = { 0, MAP_MAPPED, NULL, NULL, NULL };

	(void)state;
	c.workdir = t.work;
	/* White space around the path does not count. */
	assert_scan(&c, "[send_file:   a.txt  ]", "", t.a, NULL);
	assert_scan(&c, "[send_file:\ta.txt\n]", "", t.a, NULL);
	/* The same file twice is sent once; both tags go. */
	assert_scan(&c, "1 [send_file: a.txt] 2 [send_file: ./a.txt] 3",
	    "1  2  3", t.a, NULL);
	assert_scan(&c, "[send_file: sub/b.txt][send_file: a.txt]", "", t.b,
	    t.a, NULL);
	/* Not tags: no closing bracket, empty path, other spelling. */
	assert_scan(&c, "see [send_file: a.txt", "see [send_file: a.txt",
	    NULL);
	assert_scan(&c, "[send_file:] [send_file:  ]", "[send_file:] "
	    "[send_file:  ]", NULL);
	assert_scan(&c, "[send_file :a.txt] [SEND_FILE: a.txt]",
	    "[send_file :a.txt] [SEND_FILE: a.txt]", NULL);
	/* An empty tag does not swallow the next one. */
	assert_scan(&c, "[send_file:][send_file: a.txt]", "[send_file:]",
	    t.a, NULL);
	assert_scan(&c, "", "", NULL);
	assert_scan(&c, "  just text \n", "just text", NULL);
}

static void
test_too_many(void **state)
{
	struct sendfile_ctx	  c = { 0, MAP_MAPPED, NULL, NULL, NULL };
	char			 *text, *p, **files, *r;
	size_t			  n, i;
	FILE			 *f;

	(void)state;
	c.workdir = t.work;
	f = open_memstream(&text, &n);
	assert_non_null(f);
	for (i = 0; i < 66; i++) {
		xasprintf(&p, "%s/f%zu", t.work, i);
		unit_write(p, "x", 0644);
		free(p);
		fprintf(f, "[send_file: f%zu]", i);
	}
	fclose(f);
	r = sendfile_scan(text, &c, &files, &n);
	assert_int_equal(n, 64);
	xasprintf(&p, "%s/f63", t.work);
	assert_string_equal(files[63], p);
	free(p);
	assert_string_equal(r, "[clawvisor: could not attach: f64 (too many "
	    "files); f65 (too many files)]");
	free(r);
	free_files(files, n);
	free(text);
	for (i = 0; i < 66; i++) {
		xasprintf(&p, "%s/f%zu", t.work, i);
		unlink(p);
		free(p);
	}
}

static char *
slurp(int dirfd, const char *name)
{
	char	*buf, err[128];
	size_t	 len;

	if (file_read_regular(dirfd, name, 1 << 20, &buf, &len, err,
	    sizeof(err)) != 0)
		return NULL;
	return buf;
}

/* sendfile_copy: what was resolved, as it is now, or nothing. */
static void
test_copy(void **state)
{
	struct stat	 st;
	const char	*why;
	char		*dir, *p, *q, *buf;
	int		 fd;

	(void)state;
	xasprintf(&dir, "%s/copies", t.root);
	assert_int_equal(mkdir(dir, 0700), 0);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd != -1);

	why = NULL;
	assert_int_equal(sendfile_copy(t.a, fd, "c1", 100, &why), 0);
	assert_non_null(buf = slurp(fd, "c1"));
	assert_string_equal(buf, "a");
	free(buf);
	assert_int_equal(fstatat(fd, "c1", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* The name is taken: never replaced, never followed. */
	assert_int_equal(sendfile_copy(t.a, fd, "c1", 100, &why), -1);
	assert_string_equal(why, "cannot create the copy");
	assert_int_equal(symlinkat(t.outside, fd, "c2"), 0);
	assert_int_equal(sendfile_copy(t.b, fd, "c2", 100, &why), -1);
	assert_non_null(buf = slurp(AT_FDCWD, t.outside));
	assert_string_equal(buf, "secret");
	free(buf);
	/* Over the bound. */
	assert_int_equal(sendfile_copy(t.a, fd, "c3", 0, &why), -1);
	assert_string_equal(why, "too large");
	assert_int_equal(faccessat(fd, "c3", F_OK, 0), -1);

	/* Swapped since it was resolved: the file by a symlink to a host
	 * file, or a directory of its path by a symlink elsewhere. */
	xasprintf(&p, "%s/swap.txt", t.work);
	assert_int_equal(symlink(t.outside, p), 0);
	assert_int_equal(sendfile_copy(p, fd, "c4", 100, &why), -1);
	assert_string_equal(why, "changed while being attached");
	unlink(p);
	free(p);
	xasprintf(&p, "%s/sub", t.work);
	xasprintf(&q, "%s/sub.moved", t.work);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink(q, p), 0);
	assert_int_equal(sendfile_copy(t.b, fd, "c5", 100, &why), -1);
	assert_string_equal(why, "changed while being attached");
	assert_int_equal(faccessat(fd, "c5", F_OK, 0), -1);
	unlink(p);
	assert_int_equal(rename(q, p), 0);
	free(p);
	free(q);
	/* Not a regular file; gone. */
	xasprintf(&p, "%s/dir", t.work);
	assert_int_equal(sendfile_copy(p, fd, "c6", 100, &why), -1);
	assert_string_equal(why, "not a regular file");
	free(p);
	assert_int_equal(sendfile_copy("/nonexistent/x", fd, "c7", 100, &why),
	    -1);
	assert_string_equal(why, "no such file");
	close(fd);
	free(dir);
}

static void
test_copy_name(void **state)
{
	char	*n, *base;
	size_t	 i;

	(void)state;
	n = sendfile_copy_name("p-", "report.pdf");
	assert_string_equal(n, "p-report.pdf");
	free(n);
	n = sendfile_copy_name("p-", "a\nb\x1b\xff\\c \xc3\xa9.txt");
	assert_string_equal(n, "p-a_b___c \xc3\xa9.txt");
	free(n);
	/* Too long for NAME_MAX: the stem is cut, between characters. */
	base = xmalloc(600);
	for (i = 0; i < 300; i++)
		memcpy(base + 2 * i, "\xc3\xa9", 2);
	strcpy(base + 590, ".png");
	n = sendfile_copy_name("clawvisor-1-2-", base);
	assert_true(strlen(n) <= NAME_MAX);
	assert_true(strlen(n) > NAME_MAX - 2);
	assert_string_equal(n + strlen(n) - 4, ".png");
	assert_true(strncmp(n, "clawvisor-1-2-\xc3\xa9", 16) == 0);
	assert_true(utf8_valid(n, strlen(n)));
	free(n);
	free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_copy_name),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_container_mapped),
		cmocka_unit_test(test_container_same_path),
		cmocka_unit_test(test_unresolved),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_too_many),
	};

	return cmocka_run_group_tests_name("sendfile", tests, tree_setup,
	    tree_teardown);
}
