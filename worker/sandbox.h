/*
 * Turning a job into what the runner executes, per mode: the argv (the CLI
 * itself on the host, wrapped in `RUNTIME run ...` in a container mode), the
 * environment, and what to clean up afterwards. Fail-closed checks happen
 * here, before anything starts.
 */
#ifndef CLAWVISOR_SANDBOX_H
#define CLAWVISOR_SANDBOX_H

#include <stddef.h>

#include <sys/types.h>

#include "cgroup.h"
#include "job.h"

struct sandbox_run {
	char	**argv;
	char	**envp;		/* NULL: inherit (host); runtime_env() */
	char	**on_timeout;	/* container kill, or NULL */
	char	 *env_file;	/* removed by sandbox_cleanup() */
	char	 *container;	/* clawvisor-<id>, or NULL */
	char	 *record;	/* run/containers/<name>, removed after */
	int	  container_mode;
	/* bwrap: the invocation's cgroup, and the ids the child takes
	 * before it execs bwrap when the daemon is root. */
	struct cgroup cg;
	int	  has_cg;
	int	  setid;
	uid_t	  uid;
	gid_t	  gid;
};

/* The read-only system paths of bwrap mode (SPEC §8), NULL-terminated. */
extern const char *const sandbox_bwrap_system[];

/*
 * The directory to mount for the CLI NAME as found on PATH: its package
 * directory (a global npm prefix's lib/node_modules/@scope/pkg), else the
 * directory of the file it resolves to. found: where PATH had it.
 */
int	sandbox_cli_dir(const char *name, char *found, size_t flen, char *dir,
	    size_t dlen);

/* 0, or -1 with a terminal reason in err: never a fallback to host. */
int	sandbox_prepare(const struct job *, struct sandbox_run *, char *err,
	    size_t errlen);
void	sandbox_cleanup(struct sandbox_run *);


#endif
