/*
 * What the worker needs to set an agent's directory up as TinyClaw does
 * (worker/agentdir.c): the teammates block, built from the configuration
 * in force, and whether tinyclaw.install_dir holds TinyClaw's files.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

static void
teammates_line(char **block, const struct agent *a)
{
	char *s;

	/* TinyClaw prints an absent model as "(undefined)": left out. */
	xasprintf(&s, "%s- `@%s` \xe2\x80\x94 **%s**%s%s%s\n", *block, a->id,
	    a->name, a->model != NULL ? " (" : "", a->model != NULL ?
	    a->model : "", a->model != NULL ? ")" : "");
	free(*block);
	*block = s;
}

/*
 * TinyClaw's block (agent-setup.ts, updateAgentTeammates): the agent
 * itself, then every other member of every team it is in, once, in the
 * order of the teams and their members in settings.json.
 */
char *
teammates_block(const struct config *cf, const struct agent *self)
{
	const struct agent	*a, **seen;
	const struct team	*t;
	char			*block, *s;
	size_t			 i, k, m, nseen = 0;

	block = xstrdup("\n### You\n\n");
	teammates_line(&block, self);
	seen = xcalloc(cf->nagents + 1, sizeof(*seen));
	for (i = 0; i < cf->nteams; i++) {
		t = &cf->teams[i];
		for (k = 0; k < t->nagents; k++)
			if (strcmp(t->agents[k], self->id) == 0)
				break;
		if (k == t->nagents)
			continue;
		for (k = 0; k < t->nagents; k++) {
			if (strcmp(t->agents[k], self->id) == 0 ||
			    (a = config_agent(cf, t->agents[k])) == NULL)
				continue;
			for (m = 0; m < nseen && seen[m] != a; m++)
				;
			if (m < nseen || nseen == cf->nagents)
				continue;
			if (nseen == 0) {
				xasprintf(&s, "%s\n### Your Teammates\n\n",
				    block);
				free(block);
				block = s;
			}
			seen[nseen++] = a;
			teammates_line(&block, a);
		}
	}
	free(seen);
	return block;
}

/*
 * Whether dir is TinyClaw's install directory, as far as the set-up needs:
 * its AGENTS.md is a readable file. NULL, or why not.
 */
const char *
teammates_install_bad(const char *dir)
{
	struct stat	 st;
	char		*path;
	const char	*why = NULL;

	xasprintf(&path, "%s/AGENTS.md", dir);
	if (stat(path, &st) == -1)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (access(path, R_OK) == -1)
		why = strerror(errno);
	free(path);
	return why;
}

/*
 * The install directory jobs copy from, or NULL: not set, or without its
 * AGENTS.md. Said once at start, and again only when a reload changes it.
 */
const char *
teammates_templates(const struct config *cf)
{
	static char	*said;
	char		*msg;
	const char	*dir = NULL, *why;

	if (cf->tinyclaw_dir == NULL)
		msg = xstrdup("tinyclaw.install_dir is not set: agent "
		    "directories get no AGENTS.md, .claude/, heartbeat.md, "
		    "skills or SOUL.md from TinyClaw (set it to TinyClaw's "
		    "install directory, ~/.tinyclaw for its installer); "
		    "teammates blocks are still kept up to date");
	else if ((why = teammates_install_bad(cf->tinyclaw_dir)) == NULL) {
		dir = cf->tinyclaw_dir;
		msg = xstrdup("");
	} else
		xasprintf(&msg, "tinyclaw.install_dir: %s/AGENTS.md: %s: agent "
		    "directories are not set up from it", cf->tinyclaw_dir, why);
	if (said == NULL || strcmp(said, msg) != 0) {
		if (*msg != '\0')
			log_warnx("%s", msg);
		free(said);
		said = msg;
	} else
		free(msg);
	return dir;
}
