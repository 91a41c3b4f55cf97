/*
 * Name lookups for the egress loop that never block it (DECISIONS 241):
 * glibc's getaddrinfo_a(3), its own threads doing the blocking part, and
 * an ev_async that wakes the loop when one is done.
 */
#ifndef CLAWVISOR_RESOLVE_H
#define CLAWVISOR_RESOLVE_H

#include <stdint.h>

#include <netdb.h>

#include <ev.h>

/* Lookups in flight at once in each lane; more wait their turn, in order. */
#define RESOLVE_MAX	8

/*
 * The lanes (DECISIONS 261): the provider URLs' names, from the settings,
 * and the names a sandbox asks for in a CONNECT. Hung lookups of the one
 * never hold up the other.
 */
#define RESOLVE_PROVIDER	0
#define RESOLVE_ALLOW		1
#define RESOLVE_NLANES		2

struct resolve;

/* err: 0 or an EAI_ code; res (the callee's to free) when 0. */
typedef void	(*resolve_fn)(void *arg, int err, struct addrinfo *res);

void		 resolve_init(struct ev_loop *);
/* fn is called from the loop, never from inside resolve_start(). */
struct resolve	*resolve_start(const char *host, uint16_t port, int lane,
		    resolve_fn, void *arg);
/* fn will not be called; a lookup under way finishes unseen. */
void		 resolve_cancel(struct resolve *);
/* Lookups in flight and waiting, for the tests through `status`. */
size_t		 resolve_pending(void);

#endif
