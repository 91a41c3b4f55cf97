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

static int
same_team(const struct config *cf, char **ids, size_t n)
{
	size_t	t, i, j;

	for (t = 0; t < cf->nteams; t++) {
		for (i = 0; i < n; i++) {
			for (j = 0; j < cf->teams[t].nagents; j++)
				if (strcmp(cf->teams[t].agents[j], ids[i]) == 0)
					break;
			if (j == cf->teams[t].nagents)
				break;
		}
		if (i == n)
			return 1;
	}
	return 0;
}

/*
 * TinyClaw's multiple-agent check: every @word in the message that is an
 * agent id; more than one, not all in one team, and nobody is invoked:
 * the reply is TinyClaw's canned text naming them ("@a, @b").
 */
static char *
route_multi(const struct config *cf, const char *raw)
{
	const struct agent	*a;
	const char		*p;
	char			*word, **ids = NULL, *list = NULL, *t;
	size_t			 n = 0, i, wl;

	for (p = raw; (p = strchr(p, '@')) != NULL; p++) {
		for (wl = 0; p[1 + wl] != '\0' &&
		    !isspace((unsigned char)p[1 + wl]); wl++)
			;
		if (wl == 0)
			continue;
		word = xstrndup(p + 1, wl);
		a = agent_ci(cf, word);
		free(word);
		if (a == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(ids[i], a->id) == 0)
				break;
		if (i == n) {
			ids = xreallocarray(ids, n + 1, sizeof(char *));
			ids[n++] = a->id;
		}
	}
	if (n > 1 && !same_team(cf, ids, n))
		for (i = 0; i < n; i++) {
			xasprintf(&t, "%s%s@%s", list != NULL ? list : "",
			    i > 0 ? ", " : "", ids[i]);
			free(list);
			list = t;
		}
	free(ids);
	return list;
}

int
route_message(const struct config *cf, json_object *msg, char **agent,
    char **text, int *team_routed, char **multi)
{
	const struct agent	*a = NULL;
	json_object		*v;
	const char		*raw, *p, *e;
	char			*word;

	*team_routed = 0;
	*multi = NULL;
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
	if ((*multi = route_multi(cf, raw)) != NULL) {
		*agent = xstrdup("error");
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

/* TinyClaw's reply to a message naming several agents (list: "@a, @b"). */
char *
route_multi_reply(const char *list)
{
	const char	*p, *e;
	char		*bullets = xstrdup(""), *t, *r;

	for (p = list; *p != '\0'; p = *e != '\0' ? e + 2 : e) {
		if ((e = strstr(p, ", ")) == NULL)
			e = p + strlen(p);
		xasprintf(&t, "%s%s\u2022 `%.*s [your message]`", bullets,
		    *bullets != '\0' ? "\n" : "", (int)(e - p), p);
		free(bullets);
		bullets = t;
	}
	xasprintf(&r, "\U0001F680 **Agent-to-Agent Collaboration - Coming Soon!**"
	    "\n\nYou mentioned multiple agents: %s\n\nRight now, I can only "
	    "route to one agent at a time. But we're working on something "
	    "cool:\n\n\u2728 **Multi-Agent Coordination** - Agents will be "
	    "able to collaborate on complex tasks!\n\u2728 **Smart Routing** - "
	    "Send instructions to multiple agents at once!\n\u2728 **Agent "
	    "Handoffs** - One agent can delegate to another!\n\nFor now, "
	    "please send separate messages to each agent:\n%s\n\n"
	    "_Stay tuned for updates! \U0001F389_", list, bullets);
	free(bullets);
	return r;
}
