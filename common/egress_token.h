/*
 * Per-invocation tokens (SPEC §9): what a sandbox holds instead of a key.
 * "cvtok-" and 64 hex digits, 256 bits from arc4random_buf(3); the prefix
 * makes one easy to find and redact wherever it would appear.
 */
#ifndef CLAWVISOR_EGRESS_TOKEN_H
#define CLAWVISOR_EGRESS_TOKEN_H

#include <stddef.h>

#define EGRESS_TOKEN_PREFIX	"cvtok-"
#define EGRESS_TOKEN_BYTES	32
#define EGRESS_TOKEN_LEN	(sizeof(EGRESS_TOKEN_PREFIX) - 1 + \
				    2 * EGRESS_TOKEN_BYTES)

/* Inside a sandbox: where the bridge listens, and where the proxy's socket
 * and the bridge are mounted. */
#define EGRESS_BRIDGE_PORT	18899
#define EGRESS_SANDBOX_SOCKET	"/run/clawvisor/egress.sock"
#define EGRESS_SANDBOX_BRIDGE	"/run/clawvisor/bridge"

/* The provider key variables the egress process takes (SPEC §9). */
#define EGRESS_NKEYS	4
extern const char *const egress_key_names[EGRESS_NKEYS];

/* The proxy's socket under a home: egress/proxy.sock (malloc'ed). */
char	*egress_socket_path(const char *home);
/* A fresh token in buf (at least EGRESS_TOKEN_LEN + 1 bytes). */
void	egress_token_new(char *buf, size_t len);
/* Whether s is a token's shape (not whether it is live). */
int	egress_token_shape(const char *s, size_t len);
/* Wipe the keys' values in the process's initial environment block. */
void	egress_env_scrub(char **envp);
/* Equality in a time that does not depend on where they differ. */
int	egress_token_equal(const char *a, const char *b);

#endif
