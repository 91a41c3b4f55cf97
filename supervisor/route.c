/*
 * Routing as TinyClaw does it: a pre-routed "agent" field naming a
 * configured agent; else a leading "@id " naming, in order, an agent id, a
 * team id (its leader), an agent name or a team name, case-insensitively,
 * with the prefix stripped; else "default"; else the first agent.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "supervisor.h"
#include "util.h"

static const struct agent *
agent_ci(const struct config *cf, const char *id)
{
	size_t i;

	for (i = 0; i < cf->nagents; i++)
		if (strcasecmp(cf->agents[i].id, id) == 0)
			return &cf->agents[i];
	return NULL;
}

/* The agent a "@word" names, or NULL; *team set if through a team. */
const struct agent *
route_mention(const struct config *cf, const char *word, int *team)
{
	const struct agent	*a;
	size_t			 i;

	*team = 0;
	if ((a = agent_ci(cf, word)) != NULL)
		return a;
	for (i = 0; i < cf->nteams; i++)
		if (strcasecmp(cf->teams[i].id, word) == 0) {
			*team = 1;
			return config_agent(cf, cf->teams[i].leader);
		}
	for (i = 0; i < cf->nagents; i++)
		if (strcasecmp(cf->agents[i].name, word) == 0)
			return &cf->agents[i];
	for (i = 0; i < cf->nteams; i++)
		if (strcasecmp(cf->teams[i].name, word) == 0) {
			*team = 1;
			return config_agent(cf, cf->teams[i].leader);
		}
	return NULL;
}

static const struct agent *
route_default(const struct config *cf)
{
	const struct agent *a;

	if ((a = config_agent(cf, "default")) != NULL)
		return a;
	return cf->nagents > 0 ? &cf->agents[0] : NULL;
}

int
route_message(const struct config *cf, json_object *msg, char **agent,
    char **text, int *team_routed)
{
	const struct agent	*a = NULL;
	json_object		*v;
	const char		*raw, *p, *e;
	char			*word;

	*team_routed = 0;
	raw = json_object_get_string(json_object_object_get(msg, "message"));
	if (raw == NULL)
		raw = "";
	if (json_object_object_get_ex(msg, "agent", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    (a = config_agent(cf, json_object_get_string(v))) != NULL) {
		*agent = xstrdup(a->id);
		*text = xstrdup(raw);
		return 0;
	}
	/* TinyClaw: /^@(\S+)\s+([\s\S]*)$/ -- text must follow the id. */
	if (raw[0] == '@') {
		for (e = raw + 1; *e != '\0' && !isspace((unsigned char)*e); e++)
			;
		if (e > raw + 1 && *e != '\0') {
			word = xstrndup(raw + 1, e - raw - 1);
			a = route_mention(cf, word, team_routed);
			free(word);
			if (a != NULL) {
				for (p = e; isspace((unsigned char)*p); p++)
					;
				*agent = xstrdup(a->id);
				*text = xstrdup(p);
				return 0;
			}
		}
	}
	*team_routed = 0;
	a = route_default(cf);
	*agent = xstrdup(a != NULL ? a->id : "default");
	*text = xstrdup(raw);
	return 0;
}
