/*
 * What each provider runs and how its output becomes a reply (SPEC §4), and
 * the one classify() every mode goes through (SPEC §5, docs/OUTCOMES.md).
 */
#ifndef CLAWVISOR_PROVIDER_H
#define CLAWVISOR_PROVIDER_H

#include <stddef.h>

#include "job.h"

#define CODEX_EMPTY_REPLY "Sorry, I could not generate a response from Codex."

/* The CLI argv (NULL-terminated) for the job's provider, without sandbox. */
char		**provider_argv(const struct job *, size_t *argc);
void		  argv_free(char **);
char		**provider_exec_argv(const struct job *, size_t *argc);
char		 *provider_map_path(const struct job *, const char *path);
const char	 *provider_model_id(const char *model);
/* The variables the provider's CLI can take its credential from, in order
 * of preference, NULL-terminated; NULL for the command provider. */
const char *const *provider_keys(enum provider);
/* "A or B", for messages. */
void		  provider_keys_text(enum provider, char *, size_t);
/* The reply text from the program's stdout (codex: its JSONL). */
char		 *provider_reply(const struct job *, const char *, size_t);
char		 *codex_parse(const char *, size_t);
/* codex --json's own failure report: the message of its last turn.failed
 * event, else of its last error event; NULL if none. */
char		 *codex_failure(const char *, size_t);

/* How a run ended, as the worker saw it. */
struct run_status {
	int	 exec_errno;	/* exec failed with this; 0: it ran */
	int	 exited;	/* 1: exit_code is valid */
	int	 exit_code;
	int	 signal;	/* killed by this signal */
	int	 timed_out;
	int64_t	 timeout_seconds;	/* the limit it ran under, for messages */
	int	 container;	/* ran through docker/podman/container */
	const char *program;	/* argv[0], for messages */
	const char *err_text;	/* stderr, possibly truncated */
	size_t	 err_len;
	const char *out_text;	/* the end of stdout */
	size_t	 out_len;
	/* The CLI's own report of its failure (codex's turn.failed), or
	 * NULL: the error text comes from it first. */
	const char *report;
	/* The working directory as the CLI sees it, and whether the
	 * container's user cannot write it (worker.c): a "permission
	 * denied" there is not retried. */
	const char *workspace;
	int	 workspace_denied;
};

enum outcome	  classify(const struct run_status *, char *why, size_t);

#endif
