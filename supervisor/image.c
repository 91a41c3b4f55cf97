/*
 * `sandbox build-image [--base IMAGE] [--extra-ca FILE]`: the agent image
 * from contrib/Dockerfile.agent-runner, built in a context of its own (a
 * temporary directory with the Dockerfile and agent-runner/ca/, which
 * holds the extra CA when one is given: nothing else of the host goes to
 * the engine). The build's output is passed through as it comes; when the
 * base image cannot be pulled, it says so and names the offline route.
 * Works without a daemon.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "util.h"

#ifndef CLAWVISOR_DATADIR
#define CLAWVISOR_DATADIR "/usr/local/share/clawvisor"
#endif

#define IMAGE_TAIL	8192	/* the end of the build's output, searched */
#define IMAGE_FILE_MAX	(1024 * 1024)
#define CA_README	"Certificates (*.crt) here go into the image's CA store.\n"
#define OFFLINE_BASE	"localhost/clawvisor-node-base:22-bookworm"

/* What podman and docker say when a base image cannot be pulled. */
static const char *const pull_failures[] = {
	"initializing source docker://", "pinging container registry",
	"did not resolve to an alias", "requested access to the resource is "
	"denied", "manifest unknown", "failed to resolve source metadata",
	"error pulling image", "Error: creating build container",
	"dial tcp", "no such host", "TLS handshake timeout",
	"i/o timeout", "connection refused", NULL
};

static char *
find_dockerfile(void)
{
	char		 exe[PATH_MAX], *cand[3], *dir, *found = NULL;
	const char	*env = getenv("CLAWVISOR_CONTRIB");
	ssize_t		 n;
	int		 i, nc = 0;

	if (env != NULL)
		xasprintf(&cand[nc++], "%s/Dockerfile.agent-runner", env);
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		if ((dir = strrchr(exe, '/')) != NULL)
			*dir = '\0';
		/* Run from the build tree: build/ is beside contrib/. */
		xasprintf(&cand[nc++], "%s/../contrib/Dockerfile.agent-runner",
		    exe);
	}
	xasprintf(&cand[nc++], "%s/Dockerfile.agent-runner",
	    CLAWVISOR_DATADIR);
	for (i = 0; i < nc; i++) {
		if (found == NULL && access(cand[i], R_OK) == 0)
			found = cand[i];
		else
			free(cand[i]);
	}
	return found;
}

/* Create path (0644) with len bytes of buf; 0, or -1 with errno set. */
static int
write_new(const char *path, const char *buf, size_t len)
{
	ssize_t	n;
	int	fd, saved;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) ==
	    -1)
		return -1;
	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return close(fd);
}

/* Copy from into to; with pem, from must hold a certificate. */
static int
copy_file(const char *from, const char *to, int pem, char *err,
    size_t errlen)
{
	char	*buf = NULL, why[256];
	size_t	 len;
	int	 r, rc = -1;

	if ((r = file_read_regular(AT_FDCWD, from, IMAGE_FILE_MAX, &buf, &len,
	    why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", from, r == -2 ? "no such file" :
		    why);
		return -1;
	}
	if (pem && memmem(buf, len, "-----BEGIN CERTIFICATE-----", 27) ==
	    NULL)
		snprintf(err, errlen, "%s: not a PEM certificate (no \"-----"
		    "BEGIN CERTIFICATE-----\" line)", from);
	else if (write_new(to, buf, len) == -1)
		snprintf(err, errlen, "cannot write %.200s: %s", to,
		    strerror(errno));
	else
		rc = 0;
	free(buf);
	return rc;
}

/*
 * The build context: DIR/Dockerfile.agent-runner and DIR/agent-runner/ca/
 * (the Dockerfile copies that directory in), with the extra CA as
 * extra.crt, or a README alone.
 */
static int
make_context(const char *dockerfile, const char *extra_ca, char *dir,
    char *err, size_t errlen)
{
	char	path[PATH_MAX];

	if (mkdtemp(dir) == NULL) {
		snprintf(err, errlen, "mkdtemp %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/Dockerfile.agent-runner", dir);
	if (copy_file(dockerfile, path, 0, err, errlen) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/agent-runner", dir);
	if (mkdir(path, 0755) == -1) {
		snprintf(err, errlen, "mkdir %.200s: %s", path,
		    strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agent-runner/ca", dir);
	if (mkdir(path, 0755) == -1) {
		snprintf(err, errlen, "mkdir %.200s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (extra_ca != NULL) {
		snprintf(path, sizeof(path), "%s/agent-runner/ca/extra.crt",
		    dir);
		return copy_file(extra_ca, path, 1, err, errlen);
	}
	snprintf(path, sizeof(path), "%s/agent-runner/ca/README", dir);
	if (write_new(path, CA_README, strlen(CA_README)) == -1) {
		snprintf(err, errlen, "cannot write %.200s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
remove_context(const char *dir)
{
	char	path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/agent-runner/ca/extra.crt", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/agent-runner/ca/README", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/agent-runner/ca", dir);
	(void)rmdir(path);
	snprintf(path, sizeof(path), "%s/agent-runner", dir);
	(void)rmdir(path);
	snprintf(path, sizeof(path), "%s/Dockerfile.agent-runner", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

/*
 * Run argv with its output passed through to ours; its exit status (-1:
 * not run or killed), and the end of what it printed in tail.
 */
static int
run_tee(char *const argv[], char *tail, size_t len)
{
	char	 buf[4096];
	size_t	 used = 0, n;
	ssize_t	 r;
	pid_t	 pid;
	int	 p[2], st;

	*tail = '\0';
	if (len <= sizeof(buf) || pipe2(p, O_CLOEXEC) == -1)
		return -1;
	fflush(stdout);
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		if (dup2(p[1], 1) == -1 || dup2(p[1], 2) == -1)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "clawvisor: cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while ((r = read(p[0], buf, sizeof(buf))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		(void)!write(1, buf, (size_t)r);
		/* Keep the last len - 1 bytes (len is over sizeof(buf)). */
		n = (size_t)r;
		if (used + n > len - 1) {
			memmove(tail, tail + used + n - (len - 1),
			    len - 1 - n);
			used = len - 1 - n;
		}
		memcpy(tail + used, buf, n);
		used += n;
		tail[used] = '\0';
	}
	close(p[0]);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The line of tail that says the base could not be pulled, or NULL. */
static const char *
pull_failed(char *tail)
{
	const char	*const *p;
	char		*line, *save;

	for (line = strtok_r(tail, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		for (p = pull_failures; *p != NULL; p++)
			if (strcasestr(line, *p) != NULL)
				return line;
	return NULL;
}

int
build_image_main(const char *home, const char *base, const char *extra_ca)
{
	struct config	*cf;
	const struct runtime_conf *rt;
	char		 err[512], ctx[] = "/tmp/clawvisor-build-XXXXXX";
	char		 file[PATH_MAX], tail[IMAGE_TAIL], *dockerfile, *basearg;
	char		*argv[12];
	const char	*line;
	int		 n = 0, r = 1;

	if ((cf = config_load(home, err, sizeof(err))) == NULL) {
		fprintf(stderr, "clawvisor: %s\n", err);
		return 1;
	}
	rt = cf->mode == MODE_APPLE ? &cf->apple : &cf->docker;
	if ((dockerfile = find_dockerfile()) == NULL) {
		fprintf(stderr, "clawvisor: Dockerfile.agent-runner not found "
		    "(set CLAWVISOR_CONTRIB to the directory that holds it)\n");
		config_free(cf);
		return 1;
	}
	if (make_context(dockerfile, extra_ca, ctx, err, sizeof(err)) == -1) {
		fprintf(stderr, "clawvisor: %s\n", err);
		goto done;
	}
	snprintf(file, sizeof(file), "%s/Dockerfile.agent-runner", ctx);
	xasprintf(&basearg, "BASE=%s", base != NULL ? base : "");
	argv[n++] = rt->runtime_command;
	argv[n++] = "build";
	argv[n++] = "-t";
	argv[n++] = rt->image;
	argv[n++] = "-f";
	argv[n++] = file;
	if (base != NULL) {
		argv[n++] = "--build-arg";
		argv[n++] = basearg;
	}
	argv[n++] = ctx;
	argv[n] = NULL;
	printf("building %s with %s from %s%s%s%s%s\n", rt->image,
	    rt->runtime_command, dockerfile, base != NULL ? ", base " : "",
	    base != NULL ? base : "", extra_ca != NULL ? ", extra CA " : "",
	    extra_ca != NULL ? extra_ca : "");
	if (run_tee(argv, tail, sizeof(tail)) == 0)
		r = 0;
	free(basearg);
	if (r != 0) {
		if ((line = pull_failed(tail)) != NULL)
			fprintf(stderr, "clawvisor: the image build failed: the "
			    "base image %s cannot be pulled (%.200s).\n"
			    "Without its registry, build a base from Debian "
			    "packages and the npm registry, then build on it:\n"
			    "  sh contrib/agent-runner/verify-image.sh     # "
			    "makes %s\n"
			    "  clawvisor sandbox build-image --base %s\n"
			    "(a proxy that intercepts TLS: add "
			    "--extra-ca FILE)\n", base != NULL ? base :
			    "docker.io/library/node:22-bookworm-slim", line,
			    OFFLINE_BASE, OFFLINE_BASE);
		else
			fprintf(stderr, "clawvisor: the image build failed\n");
		goto done;
	}
	printf("\nbuilt %s. Next:\n"
	    "  clawvisor sandbox set %s     # run agents in containers\n"
	    "  clawvisor sandbox doctor         # check runtime, image, keys\n",
	    rt->image, cf->mode == MODE_APPLE ? "apple" : "docker");
done:
	remove_context(ctx);
	free(dockerfile);
	config_free(cf);
	return r;
}
