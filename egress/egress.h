/*
 * The egress process (SPEC §9): the only process that holds the provider
 * keys. `clawvisor egress`, started and respawned by the supervisor with
 * its end of a socketpair on fd 3, as OpenSMTPD's lka holds what the
 * other processes must not.
 */
#ifndef CLAWVISOR_EGRESS_H
#define CLAWVISOR_EGRESS_H

#include <stdint.h>
#include <sys/queue.h>

#include "egress_token.h"

/* A live token: from MSG_EGRESS_REGISTER until MSG_EGRESS_REVOKE. */
struct egress_grant {
	TAILQ_ENTRY(egress_grant) entry;
	uint64_t	 job;
	char		 token[EGRESS_TOKEN_LEN + 1];
	char		*agent;
	int		 provider;	/* enum provider */
};

int	egress_main(int fd, const char *home, int log_stderr);

/*
 * The grant a token names, or NULL. Orders already sent by the supervisor
 * are read first: it registers a token before it dispatches the job, so a
 * request that carries it never comes before its registration is readable.
 */
const struct egress_grant *egress_grant_find(const char *token);
/* The real key for a provider, or NULL (none in the daemon's environment):
 * x-api-key or the Bearer value, as *bearer says. */
const char *egress_key(int provider, int *bearer);

#endif
