/*
 * Scratch directories and file helpers for the unit tests. A failure here is
 * a broken test environment, so it aborts the test program.
 */
#include <sys/stat.h>

#include <err.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

char *
unit_tmpdir(void)
{
	const char	*base;
	char		*d;

	if ((base = getenv("TMPDIR")) == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&d, "%s/clawvisor-unit.XXXXXX", base) == -1)
		err(1, "asprintf");
	if (mkdtemp(d) == NULL)
		err(1, "mkdtemp %s", d);
	return d;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

void
unit_rmtree(const char *dir)
{
	if (dir != NULL && nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1)
		warn("nftw %s", dir);
}

void
unit_write(const char *path, const char *text, mode_t mode)
{
	int	fd;
	size_t	len = strlen(text);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd == -1 || write(fd, text, len) != (ssize_t)len)
		err(1, "write %s", path);
	if (fchmod(fd, mode) == -1)
		err(1, "fchmod %s", path);
	close(fd);
}

/* The whole file as a string, or NULL if it cannot be opened. */
char *
unit_read(const char *path)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 len = 0;
	ssize_t	 n;
	char	 chunk[4096];

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	if ((buf = calloc(1, 1)) == NULL)
		err(1, "calloc");
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if ((buf = realloc(buf, len + n + 1)) == NULL)
			err(1, "realloc");
		memcpy(buf + len, chunk, n);
		len += n;
		buf[len] = '\0';
	}
	fclose(f);
	return buf;
}
