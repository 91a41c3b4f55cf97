/*
 * One invocation as it crosses the socketpair: the job the supervisor hands
 * to a worker (everything the worker needs, so a reload never changes a job
 * already handed out) and the result the worker sends back.
 */
#ifndef CLAWVISOR_JOB_H
#define CLAWVISOR_JOB_H

#include <stdint.h>

#include <json-c/json.h>

#include "config.h"

enum outcome { OUT_OK, OUT_TRANSIENT, OUT_TERMINAL };

struct job {
	uint64_t	 id;
	char		*agent_id;
	enum provider	 provider;
	char		*model;
	char		*message;
	int		 reset;		/* no -c / resume --last */
	char		**command;	/* PROV_COMMAND */
	size_t		 ncommand;
	char		*workdir;
	char		*home;
	enum sandbox_mode mode;
	int64_t		 timeout_seconds;
	int64_t		 kill_grace_seconds;
	int64_t		 max_output_bytes;
	char		**env_allowlist;
	size_t		 nallow;
	char		**runtime_pass_env;
	size_t		 npass;
	enum path_mapping path_mapping;
	struct runtime_conf rt;		/* the one of the job's mode */
	/* TinyClaw's agent directory set-up (worker/agentdir.c): the install
	 * directory to copy from (NULL: none) and the teammates block. */
	char		*templates;
	char		*teammates;
	/* clawvisor exec (supervisor/exec.c): the caller's argv instead of
	 * the provider's, run in exec_cwd (inside workdir); its stdio are
	 * the caller's descriptors, passed with the job (stdin too if
	 * exec_stdin, else /dev/null). exec_argv NULL: a queued message. */
	char		**exec_argv;
	size_t		 nexec;
	char		*exec_cwd;
	int		 exec_stdin;
	/* SPEC §9: with the proxy on, the invocation's token (NULL: none
	 * registered, unless provider is command) and the proxy's socket
	 * (NULL: egress is not running); either missing fails it closed. */
	int		 egress;
	char		*egress_token;
	char		*egress_socket;
	char		*egress_bridge;		/* clawvisor-bridge's path */
};

struct job_result {
	uint64_t	 id;
	enum outcome	 outcome;
	char		*reply;		/* ok: the agent's text */
	char		*error;		/* not ok: why, secrets redacted */
	int		 exit_code;	/* -1: none */
	int		 signal;	/* 0: none */
	int		 timed_out;
	/* Output past max_output_bytes was dropped: 1 for a queued run;
	 * for an exec, which stream(s), RESULT_CUT_STDOUT|_STDERR. */
	int		 truncated;
	/* exec: the child ran and its exit_code or signal is the caller's
	 * status, whatever outcome classify() gave it (DECISIONS.md 306). */
	int		 child;
	int64_t		 duration_ms;
	char		**files;	/* resolved [send_file:] paths */
	size_t		 nfiles;
};

const char	*outcome_name(enum outcome);
int		 outcome_parse(const char *, enum outcome *);

json_object	*job_to_json(const struct job *);
int		 job_from_json(json_object *, struct job *, char *, size_t);
void		 job_free(struct job *);

#define RESULT_CUT_STDOUT	0x1
#define RESULT_CUT_STDERR	0x2

/* The longest error a result carries, in bytes. */
#define RESULT_ERROR_MAX	4096

void		 result_bound(struct job_result *, size_t max_reply);
json_object	*result_to_json(const struct job_result *);
int		 result_from_json(json_object *, struct job_result *, char *,
		    size_t);
void		 result_free(struct job_result *);

#endif
