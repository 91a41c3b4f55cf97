/*
 * Tokens: 256 random bits, hex, behind a fixed prefix. arc4random_buf()
 * (libbsd's, seeded from getrandom(2)) never fails and never blocks after
 * boot, so a token can be made inside the dispatch path.
 */
#include <stdlib.h>
#include <string.h>

#include "egress_token.h"
#include "util.h"

const char *const egress_key_names[EGRESS_NKEYS] = { "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY" };

/*
 * The block the kernel laid out at exec (what /proc/PID/environ shows)
 * holds every key given to us. setproctitle_init() has copied environ to
 * the heap, so getenv() no longer reads this block: its key values are
 * wiped here, whatever setproctitle() later writes over it (DECISIONS
 * 240). A value still in use (no copy was made) is left alone.
 */
void
egress_env_scrub(char **envp)
{
	size_t	 i, j, n;
	char	*v;

	for (i = 0; i < EGRESS_NKEYS; i++) {
		n = strlen(egress_key_names[i]);
		v = getenv(egress_key_names[i]);
		for (j = 0; envp != NULL && envp[j] != NULL; j++)
			if (strncmp(envp[j], egress_key_names[i], n) == 0 &&
			    envp[j][n] == '=' && envp[j] + n + 1 != v)
				explicit_bzero(envp[j] + n + 1,
				    strlen(envp[j] + n + 1));
	}
}

void
egress_token_new(char *buf, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 r[EGRESS_TOKEN_BYTES];
	size_t			 i, p = sizeof(EGRESS_TOKEN_PREFIX) - 1;

	if (len < EGRESS_TOKEN_LEN + 1)
		abort();
	arc4random_buf(r, sizeof(r));
	memcpy(buf, EGRESS_TOKEN_PREFIX, p);
	for (i = 0; i < sizeof(r); i++) {
		buf[p++] = hex[r[i] >> 4];
		buf[p++] = hex[r[i] & 0xf];
	}
	buf[p] = '\0';
	explicit_bzero(r, sizeof(r));
}

int
egress_token_shape(const char *s, size_t len)
{
	size_t i, p = sizeof(EGRESS_TOKEN_PREFIX) - 1;

	if (len != EGRESS_TOKEN_LEN || memcmp(s, EGRESS_TOKEN_PREFIX, p) != 0)
		return 0;
	for (i = p; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' &&
		    s[i] <= 'f')))
			return 0;
	return 1;
}

int
egress_token_equal(const char *a, const char *b)
{
	size_t		i, la = strlen(a), lb = strlen(b);
	unsigned char	d = 0;

	if (la != lb)
		return 0;
	for (i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return d == 0;
}

char *
egress_socket_path(const char *home)
{
	char *p;

	xasprintf(&p, "%s/egress/proxy.sock", home);
	return p;
}
