/*
 * Running one program for a worker: fork/exec in its own session, capture
 * of stdout and stderr up to a cap, timeout with SIGTERM then SIGKILL to the
 * whole process group, optionally the end of every process it left outside
 * that group, and a close-on-exec pipe that tells "could not exec" from
 * "ran and failed".
 */
#ifndef CLAWVISOR_RUNNER_H
#define CLAWVISOR_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "provider.h"

struct capture {
	char	*data;		/* relay: the end of the stream only */
	size_t	 len;
	size_t	 alloc;
	size_t	 cap;		/* max_output_bytes */
	int	 truncated;
	int	 fd;
	ev_io	 io;
	/*
	 * clawvisor exec: the caller's descriptor the child's bytes are
	 * relayed to (-1: none, captured as above), what is read and not
	 * yet written there (at most RELAY_CHUNK), and how many bytes the
	 * child wrote in all.
	 */
	int	 sink;
	int	 sink_sock;	/* a socket: send(MSG_DONTWAIT) */
	int	 sink_dead;	/* a write failed: drain and drop */
	ev_io	 wio;
	char	*pend;
	size_t	 poff;
	size_t	 plen;
	uint64_t total;
	int	 tail_cut;	/* data lost its beginning */
};

struct runner;
typedef void (*runner_cb)(struct runner *, void *);

struct runner_spec {
	char		**argv;
	char		**envp;		/* NULL: the worker's environment */
	const char	 *workdir;
	int64_t		  timeout_seconds;	/* 0: none */
	int64_t		  kill_grace_seconds;
	int64_t		  max_output_bytes;
	/* Run when the timeout fires, before the signals (container kill). */
	char		**on_timeout;
	/*
	 * Be a child subreaper while it runs, and when it ends kill every
	 * process it left, in its group or not (runner_kill_strays).
	 */
	int		  reap_strays;
	/*
	 * bwrap mode: the child writes itself into these cgroup.procs
	 * before it execs (so nothing it runs is ever outside), then, if
	 * setid, takes uid:gid (a root daemon's bwrap runs unprivileged).
	 */
	const int	 *cgroup_fds;
	/*
	 * clawvisor exec: the caller's stdin (-1: /dev/null), given to the
	 * child as it is, and its stdout and stderr, to which the child's
	 * pipes are relayed up to max_output_bytes each, the worker waiting
	 * on the caller's reads (docs/EXEC.md); only the end of each stream
	 * is kept, for classify(). NULL: pipes captured up to
	 * max_output_bytes.
	 */
	const int	 *stdio;
	size_t		  ncgroup_fds;
	int		  setid;
	uid_t		  uid;
	gid_t		  gid;
};

struct runner {
	struct ev_loop	*loop;
	pid_t		 pid;
	int		 execfd;
	ev_child	 child;
	ev_timer	 timeout;
	ev_timer	 grace;
	ev_timer	 drain;
	struct capture	 out;
	struct capture	 err;
	int		 reaped;
	int		 status;
	int		 exec_errno;
	int		 exec_stage;	/* 1: chdir, 2: exec, 3: cgroup,
					   4: uid */
	int		 timed_out;
	int		 cancelled;
	int		 relay;		/* spec.stdio: relaying to the caller */
	int		 relay_off;	/* timeout, cancel: nothing more sent */
	int64_t		 started_ms;
	int64_t		 duration_ms;
	int64_t		 grace_seconds;
	int		 subreaper;	/* we are one for this run */
	char		**on_timeout;
	char		**envp;		/* the spec's, for on_timeout too */
	runner_cb	 cb;
	void		*arg;
};

struct runner	*runner_start(struct ev_loop *, const struct runner_spec *,
		    runner_cb, void *, char *err, size_t errlen);
/* Stop it now, as a timeout would (graceful stop, supervisor's cancel). */
void		 runner_cancel(struct runner *);
/* How it ended; the texts are the caller's to set, once redacted. */
void		 runner_status(const struct runner *, struct run_status *);
void		 runner_free(struct runner *);

/* Between runner.c and relay.c. */
void		 runner_capture_close(struct runner *, struct capture *);
void		 runner_maybe_done(struct runner *);
void		 relay_init(struct runner *, struct capture *, int, int,
		    int64_t);
void		 relay_stop(struct runner *);
int		 relay_pending(const struct runner *);
int		 relay_drain(struct runner *);
void		 relay_free(struct runner *, struct capture *);

#endif
