/*
 * Helper for contrib/bench/bench.py: the physical limits the daemon is
 * measured against, without Python's own overhead in the way.
 *
 *   benchhelp spawn N PROG [fork]
 *                                posix_spawn(PROG) + waitpid, N times in a
 *                                row (glibc's posix_spawn is a vfork: no
 *                                copy of the caller's memory), or with
 *                                "fork" fork + execv + waitpid; prints the
 *                                elapsed seconds
 *   benchhelp fsync DIR N BYTES  N atomic writes into DIR: create a dot-named
 *                                temporary (O_EXCL), write BYTES, fsync,
 *                                close, rename; prints one line per write,
 *                                its cost in microseconds
 *
 * Built by bench.py with `cc -O2`. Not part of clawvisor.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

extern char **environ;

static int
spawn(long n, char *prog, int use_fork)
{
	char	*argv[] = { prog, NULL };
	double	 t0;
	pid_t	 pid;
	long	 i;
	int	 st, e;

	t0 = now();
	for (i = 0; i < n; i++) {
		if (!use_fork) {
			if ((e = posix_spawn(&pid, prog, NULL, NULL, argv,
			    environ)) != 0) {
				fprintf(stderr, "posix_spawn: %s\n",
				    strerror(e));
				return 1;
			}
		} else if ((pid = fork()) == -1) {
			perror("fork");
			return 1;
		} else if (pid == 0) {
			execv(prog, argv);
			_exit(127);
		}
		while (waitpid(pid, &st, 0) == -1)
			if (errno != EINTR) {
				perror("waitpid");
				return 1;
			}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "%s failed\n", prog);
			return 1;
		}
	}
	printf("%.6f\n", now() - t0);
	return 0;
}

static int
fsyncs(const char *dir, long n, long bytes)
{
	char	 tmp[64], name[64], *buf;
	double	 t0;
	long	 i;
	int	 dfd, fd;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1) {
		perror(dir);
		return 1;
	}
	buf = malloc(bytes + 1);
	memset(buf, 'x', bytes);
	for (i = 0; i < n; i++) {
		snprintf(tmp, sizeof(tmp), ".tmp.%d.%ld", (int)getpid(), i);
		snprintf(name, sizeof(name), "f%ld.json", i);
		t0 = now();
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (fd == -1 || write(fd, buf, bytes) != bytes ||
		    fsync(fd) == -1 || close(fd) == -1 ||
		    renameat(dfd, tmp, dfd, name) == -1) {
			perror("atomic write");
			return 1;
		}
		printf("%.3f\n", (now() - t0) * 1e6);
	}
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "spawn") == 0)
		return spawn(atol(argv[2]), argv[3], argc == 5 &&
		    strcmp(argv[4], "fork") == 0);
	if (argc == 5 && strcmp(argv[1], "fsync") == 0)
		return fsyncs(argv[2], atol(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: benchhelp spawn N PROG [fork] | "
	    "fsync DIR N BYTES\n");
	return 2;
}
