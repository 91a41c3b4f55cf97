/*
 * `clawvisor help [COMMAND]`, `--help` and `--version`: every command's
 * usage from one table, which the usage error prints too.
 */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "ipc.h"

#ifndef CLAWVISOR_VERSION
#define CLAWVISOR_VERSION "unknown"
#endif

struct help {
	const char	*name;		/* what `help NAME` matches */
	const char	*usage;
	const char	*what;
};

static const struct help helps[] = {
	{ "serve", "serve [-f] [--log-level debug|info|warn|error] [--syslog]",
	  "run the daemon on the home (-f: in the foreground, logging to "
	  "stderr too)" },
	{ "status", "status [--json]",
	  "workers, permits, queue depths, counters, warnings" },
	{ "metrics", "metrics",
	  "the daemon's figures in Prometheus' text format (docs/METRICS.md)" },
	{ "reload", "reload [--json]",
	  "read settings.json again (as SIGHUP); a bad file is refused and "
	  "the running configuration kept" },
	{ "pause", "pause [--json]", "start no new invocation" },
	{ "resume", "resume [--json]", "start invocations again" },
	{ "stop", "stop [--json]",
	  "stop gracefully: in-flight work finishes or is handed back" },
	{ "send", "send [--agent ID] [--channel C] [--sender S] [--wait] "
	  "[--timeout SECONDS] TEXT...",
	  "drop a message into queue/incoming/ as a channel client does; "
	  "--wait prints the reply" },
	{ "exec", "exec [--agent ID] [--json-status] -- PROGRAM ARGS...",
	  "run one invocation of an agent's CLI through the daemon's sandbox, "
	  "output streamed, its exit status (docs/EXEC.md)" },
	{ "shim", "shim DIR",
	  "write claude and codex shims into DIR: put DIR first on an "
	  "orchestrator's PATH and its runs go through exec" },
	{ "sandbox", "sandbox show [--json]", "the sandbox settings in force" },
	{ "sandbox", "sandbox set host|docker|apple|bwrap",
	  "change sandbox.mode in settings.json, then reload" },
	{ "sandbox", "sandbox doctor [--json]",
	  "check what the agents' invocations will need (no daemon needed)" },
	{ "sandbox", "sandbox build-image [--base IMAGE] [--extra-ca FILE]",
	  "build the agent-runner image (no daemon needed)" },
	{ "dead", "dead list [--json]", "the dead letters, one line each" },
	{ "dead", "dead show ID [--json]", "one dead letter in full" },
	{ "dead", "dead requeue ID|--all [--json]",
	  "put dead letters back into queue/incoming/ with their attempts "
	  "reset" },
	{ "dead", "dead purge ID [--json]", "remove a dead letter" },
	{ "help", "help [COMMAND]", "this text, or one command's" },
	{ "version", "--version", "the version and the worker protocol's" },
};

#define NHELPS	(sizeof(helps) / sizeof(helps[0]))

static void
help_lines(FILE *f, const char *name, int what)
{
	size_t	i;

	for (i = 0; i < NHELPS; i++) {
		if (name != NULL && strcmp(helps[i].name, name) != 0)
			continue;
		fprintf(f, "  clawvisor [--home DIR] %s\n", helps[i].usage);
		if (what)
			fprintf(f, "      %s\n", helps[i].what);
	}
}

void
help_usage(FILE *f)
{
	fprintf(f, "usage:\n");
	help_lines(f, NULL, 0);
	fprintf(f, "The home is --home DIR, else $TINYCLAW_HOME, else "
	    "~/.tinyclaw. `clawvisor help` says what each command does.\n");
}

int
help_main(int argc, char **argv)
{
	size_t	i;

	if (argc > 2)
		goto usage;
	if (argc < 2) {
		printf("clawvisor runs TinyClaw's agents in sandboxes.\n\n");
		help_lines(stdout, NULL, 1);
		printf("\nThe home is --home DIR, else $TINYCLAW_HOME, else "
		    "~/.tinyclaw. Manual: clawvisor(8), "
		    "clawvisor-settings(5).\n");
		return 0;
	}
	for (i = 0; i < NHELPS; i++)
		if (strcmp(helps[i].name, argv[1]) == 0) {
			help_lines(stdout, argv[1], 1);
			return 0;
		}
	fprintf(stderr, "clawvisor: help: no command \"%s\"\n", argv[1]);
usage:
	help_usage(stderr);
	return 2;
}

int
version_main(void)
{
	printf("clawvisor %s (worker protocol %d)\n", CLAWVISOR_VERSION,
	    IPC_VERSION);
	return 0;
}
