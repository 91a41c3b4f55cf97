/*
 * Turning a job into what the runner executes, per mode: the argv (the CLI
 * itself on the host, wrapped in `RUNTIME run ...` in a container mode), the
 * environment, and what to clean up afterwards. Fail-closed checks happen
 * here, before anything starts.
 */
#ifndef CLAWVISOR_SANDBOX_H
#define CLAWVISOR_SANDBOX_H

#include <stddef.h>

#include "job.h"

struct sandbox_run {
	char	**argv;
	char	**envp;		/* NULL: inherit (host); runtime_env() */
	char	**on_timeout;	/* container kill, or NULL */
	char	 *env_file;	/* removed by sandbox_cleanup() */
	char	 *container;	/* clawvisor-<id>, or NULL */
	char	 *record;	/* run/containers/<name>, removed after */
	int	  container_mode;
};

/* 0, or -1 with a terminal reason in err: never a fallback to host. */
int	sandbox_prepare(const struct job *, struct sandbox_run *, char *err,
	    size_t errlen);
void	sandbox_cleanup(struct sandbox_run *);


#endif
