/*
 * settings.json as a hostile user could write it: config_parse() must give
 * a config that keeps its invariants, or NULL and an error text, and never
 * crash or leak either way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "config.h"
#include "listen.h"
#include "log.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* "~/..." paths expand the same way on every run. */
	setenv("HOME", "/home/fuzz", 1);
	log_open("fuzz", NULL, 0);
	return 0;
}

static void
check(const struct config *cf)
{
	json_object	*o;
	size_t		 i, j;

	if (cf->workspace == NULL || cf->workspace[0] != '/' ||
	    cf->nagents == 0 || cf->nagents > CONFIG_MAX_AGENTS ||
	    cf->nteams > CONFIG_MAX_TEAMS || cf->workers < 1 ||
	    cf->workers > CONFIG_MAX_WORKERS || cf->max_attempts < 1 ||
	    cf->max_output_bytes > CONFIG_MAX_OUTPUT ||
	    cf->nallow > CONFIG_MAX_ARRAY)
		abort();
	for (i = 0; i < cf->nagents; i++) {
		if (cf->agents[i].workdir[0] != '/' ||
		    config_agent(cf, cf->agents[i].id) == NULL)
			abort();
		/* A refused agent (opencode, custom) never runs. */
		if (cf->agents[i].refused == NULL &&
		    cf->agents[i].provider == PROV_COMMAND &&
		    (cf->agents[i].ncommand == 0 ||
		    cf->agents[i].ncommand > CONFIG_MAX_ARRAY))
			abort();
		(void)config_mode_name(config_agent_mode(cf, &cf->agents[i]));
		(void)config_provider_name(cf->agents[i].provider);
	}
	for (i = 0; i < cf->nteams; i++) {
		/* The leader and every member are configured agents. */
		if (config_agent(cf, cf->teams[i].leader) == NULL ||
		    config_team(cf, cf->teams[i].id) == NULL)
			abort();
		for (j = 0; j < cf->teams[i].nagents; j++)
			if (config_agent(cf, cf->teams[i].agents[j]) == NULL)
				abort();
	}
	/* An accepted metrics_listen is loopback or an absolute path. */
	if (cf->metrics_listen != NULL) {
		struct listen_addr	la;
		char			why[160];

		if (listen_parse(cf->metrics_listen, &la, why,
		    sizeof(why)) == -1)
			abort();
		if (la.family == AF_INET && (ntohl(((struct sockaddr_in *)
		    &la.ss)->sin_addr.s_addr) >> 24) != 127)
			abort();
		if (la.family == AF_INET6 && !IN6_IS_ADDR_LOOPBACK(
		    &((struct sockaddr_in6 *)&la.ss)->sin6_addr))
			abort();
		if (la.family == AF_UNIX && la.path[0] != '/')
			abort();
	}
	o = config_sandbox_json(cf);
	(void)json_object_to_json_string(o);
	json_object_put(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*cf;
	char		 err[512];

	cf = config_parse((const char *)data, size, "/home/fuzz/.tinyclaw",
	    err, sizeof(err));
	if (cf == NULL) {
		if (err[0] == '\0')
			abort();	/* a refusal always says why */
		return 0;
	}
	check(cf);
	config_free(cf);
	return 0;
}
