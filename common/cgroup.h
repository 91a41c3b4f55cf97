/*
 * A cgroup of one bwrap invocation's own (SPEC §8): memory, cpus and
 * pids_limit, on cgroup v2 where the host has usable controllers, else on
 * the v1 hierarchies. Named clawvisor-<hash of the home>-<job id>, so that
 * a supervisor that starts after a crash finds and removes its own.
 */
#ifndef CLAWVISOR_CGROUP_H
#define CLAWVISOR_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#define CGROUP_MAX_DIRS	3

struct cgroup {
	char	*name;
	char	*dirs[CGROUP_MAX_DIRS];	/* created: one (v2), one per v1 */
	size_t	 ndirs;
	int	 v2;
	char	*memdir;		/* where the OOM kills are counted */
	char	 held[128];		/* "memory (v1), pids (v1), ..." */
	char	 missing[512];		/* what could not be enforced, why */
};

struct cgroup_limits {
	int64_t		 memory;	/* bytes; 0: none */
	const char	*cpus;		/* decimal; NULL: none */
	int64_t		 pids;		/* 0: none */
};

/*
 * Create it and set the limits. 0: created, with what could not be set
 * (if anything) in cg->missing; -1: nothing created, why in err.
 */
int	cgroup_create(struct cgroup *, const char *home, uint64_t id,
	    const struct cgroup_limits *, char *err, size_t errlen);
/* Open each cgroup's process list for the child to join: fds returned. */
size_t	cgroup_procs_fds(const struct cgroup *, int *fds, size_t max);
/* Whether the kernel killed something in it for its memory limit. */
int	cgroup_oom(const struct cgroup *);
/* Kill every process left in it, remove it, free it. */
void	cgroup_destroy(struct cgroup *);
/* Kill what is in job id's cgroups and remove them (its worker died). */
void	cgroup_remove(const char *home, uint64_t id);
/*
 * cgroup v2 in a delegated subtree (systemd Delegate=yes): a cgroup with
 * processes in it cannot enable controllers for children, so move this
 * process's cgroup's processes (the daemon's) into a leaf of their own,
 * CGROUP_LEAF, and enable memory, pids and cpu beside it. 0: nothing to
 * do; 1: done, what in msg; -1: failed, why in msg.
 */
#define CGROUP_LEAF	"clawvisor.daemon"
int	cgroup_delegate(char *msg, size_t len);
/* Remove this home's cgroups left by an earlier run; how many. */
int	cgroup_sweep(const char *home);
/* Which controllers hold and how (the doctor), into buf. */
void	cgroup_describe(const struct cgroup_limits *, char *buf, size_t len);

#endif
