/*
 * settings.json, parsed and validated into one immutable struct config.
 * A reload builds a whole new one; the old one stays in force until the new
 * one has passed validation (SPEC §3).
 */
#ifndef CLAWVISOR_CONFIG_H
#define CLAWVISOR_CONFIG_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "egress_conf.h"

enum sandbox_mode { MODE_HOST, MODE_DOCKER, MODE_APPLE, MODE_BWRAP,
    MODE_INHERIT };
enum provider { PROV_ANTHROPIC, PROV_OPENAI, PROV_COMMAND };
enum path_mapping { MAP_MAPPED, MAP_SAME_PATH };
enum network_mode { NET_DEFAULT, NET_NONE, NET_HOST };

#define CONFIG_MAX_AGENTS	1024
#define CONFIG_MAX_TEAMS	1024
#define CONFIG_MAX_ARRAY	256	/* command argv, allowlist, team members */
#define CONFIG_MAX_WORKERS	256
#define CONFIG_MAX_OUTPUT	(64LL * 1024 * 1024)
#define CONFIG_MAX_ATTEMPTS	1000
#define CONFIG_MAX_BACKOFF	86400	/* seconds */

struct agent {
	char		 *id;
	char		 *name;
	enum provider	  provider;
	char		 *model;		/* NULL: the CLI's default */
	char		 *workdir;		/* absolute */
	enum sandbox_mode mode;			/* MODE_INHERIT: sandbox.mode */
	char		**command;		/* PROV_COMMAND argv */
	size_t		  ncommand;
	/* A provider TinyClaw has and clawvisor does not run: the agent's
	 * messages fail as terminal with this reason; NULL: it runs. */
	char		 *refused;
	char		 *provider_text;	/* the provider as written */
};

struct team {
	char		 *id;
	char		 *name;
	char		**agents;
	size_t		  nagents;
	char		 *leader;
};

struct runtime_conf {
	char		*runtime_command;
	char		*image;
	enum network_mode network;
	int		 network_restricted;	/* "restricted": warned once */
	char		*memory;
	char		*cpus;
	int64_t		 pids_limit;		/* docker only */
	char		*user;			/* "auto" or "UID:GID" */
	/* bwrap only (SPEC §8): extra read-only host paths, and whether a
	 * limit that cannot be enforced only warns. */
	char		**ro_paths;
	size_t		 nro_paths;
	int		 limits_best_effort;
};

struct config {
	char		*home;
	char		*path;			/* settings.json */
	char		*workspace;
	char		*tinyclaw_dir;		/* tinyclaw.install_dir; NULL: unset */
	struct agent	*agents;
	size_t		 nagents;
	struct team	*teams;
	size_t		 nteams;

	enum sandbox_mode mode;
	int64_t		 timeout_seconds;
	int64_t		 max_attempts;
	int64_t		 max_concurrency;
	int64_t		 max_waiters;
	int64_t		 max_output_bytes;
	int64_t		 max_message_bytes;
	int64_t		 backoff_seconds;
	int64_t		 backoff_max_seconds;
	int64_t		 kill_grace_seconds;
	char		**env_allowlist;
	size_t		 nallow;
	char		**runtime_pass_env;	/* NAME or PREFIX*, for the CLI */
	size_t		 npass;
	enum path_mapping path_mapping;
	struct runtime_conf docker;
	struct runtime_conf apple;
	struct runtime_conf bwrap;		/* image unused ("") */
	struct egress_conf egress;		/* SPEC §9 */

	int64_t		 workers;
	int64_t		 scan_interval_ms;
	int64_t		 max_chain_steps;
	int		 watch_settings;	/* reload on a change on disk */
	char		*metrics_listen;	/* NULL: off (docs/METRICS.md) */

	char		 warning[1024];	/* non-fatal notes joined by "; ", or "" */
};

struct config	*config_load(const char *home, char *err, size_t errlen);
struct config	*config_parse(const char *text, size_t len, const char *home,
		    char *err, size_t errlen);
void		 config_free(struct config *);
/* Add a non-fatal note to cf->warning (cut when it is full). */
void		 config_warn(struct config *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
const struct agent *config_agent(const struct config *, const char *id);
const struct team  *config_team(const struct config *, const char *id);
enum sandbox_mode config_agent_mode(const struct config *,
		    const struct agent *);
const char	*config_mode_name(enum sandbox_mode);
/* A --cpus value the engines take, as a decimal (whole: Apple's). */
int		 config_cpus_valid(const char *, int whole);
const char	*config_provider_name(enum provider);
const char	*config_agent_provider(const struct agent *);
/* A container mode's "UID:GID": 0 and the ids; "auto": -1. */
int		 config_user(const struct runtime_conf *, uid_t *, gid_t *);
/* "2g", "512m", "1073741824" in bytes; -1 if it is not one. */
int64_t		 config_memory_bytes(const char *);
/* The effective settings as JSON (sandbox show, status); no secrets. */
json_object	*config_sandbox_json(const struct config *);

#endif
