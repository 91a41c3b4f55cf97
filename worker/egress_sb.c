/*
 * What a sandbox gets with the egress proxy on (SPEC §9): its CLI behind
 * clawvisor-bridge, the token where the CLI expects its key, the bridge's
 * address as the base URL and as the HTTP(S) proxy; never a key. The
 * mounts themselves are made by the mode's argv builder (sandbox.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_sb.h"
#include "egress_token.h"
#include "util.h"

char **
egress_sb_argv(const struct job *j, char **cli)
{
	char	**v, port[8];
	size_t	  n = 0, i, len;

	for (len = 0; cli[len] != NULL; len++)
		;
	v = xcalloc(len + 6, sizeof(char *));
	snprintf(port, sizeof(port), "%d", EGRESS_BRIDGE_PORT);
	v[n++] = xstrdup(EGRESS_SANDBOX_BRIDGE);
	v[n++] = xstrdup(port);
	v[n++] = xstrdup(EGRESS_SANDBOX_SOCKET);
	for (i = 0; i < len; i++) {
		v[n++] = cli[i];
		/* codex-cli ignores OPENAI_BASE_URL; it honours this. */
		if (i == 0 && j->provider == PROV_OPENAI) {
			v[n++] = xstrdup("-c");
			xasprintf(&v[n++], "openai_base_url=\"http://127.0.0.1:%d"
			    "/v1\"", EGRESS_BRIDGE_PORT);
		}
	}
	free(cli);
	return v;
}

char **
egress_sb_env(const struct job *j, char **envp)
{
	char	 url[64];
	size_t	 n;

	for (n = 0; envp[n] != NULL; n++)
		;
	envp = xreallocarray(envp, n + 16, sizeof(char *));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", EGRESS_BRIDGE_PORT);
	if (j->egress_token != NULL && j->provider == PROV_ANTHROPIC)
		xasprintf(&envp[n++], "ANTHROPIC_API_KEY=%s", j->egress_token);
	if (j->egress_token != NULL && j->provider == PROV_OPENAI) {
		xasprintf(&envp[n++], "CODEX_API_KEY=%s", j->egress_token);
		xasprintf(&envp[n++], "OPENAI_API_KEY=%s", j->egress_token);
	}
	xasprintf(&envp[n++], "ANTHROPIC_BASE_URL=%s", url);
	xasprintf(&envp[n++], "HTTPS_PROXY=%s", url);
	xasprintf(&envp[n++], "HTTP_PROXY=%s", url);
	xasprintf(&envp[n++], "https_proxy=%s", url);
	xasprintf(&envp[n++], "http_proxy=%s", url);
	envp[n++] = xstrdup("NO_PROXY=127.0.0.1,localhost");
	envp[n++] = xstrdup("no_proxy=127.0.0.1,localhost");
	envp[n++] = xstrdup("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1");
	envp[n] = NULL;
	return envp;
}
