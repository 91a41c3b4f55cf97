/*
 * The egress proxy (SPEC §9): a unix socket in the home's run directory,
 * mounted into each sandbox behind clawvisor-bridge. Provider requests
 * carrying a live token go to the provider over TLS with the key instead;
 * CONNECT goes to allowed hosts only; the rest is refused with a 403.
 */
#ifndef CLAWVISOR_PROXY_H
#define CLAWVISOR_PROXY_H

#include <stdint.h>

#include <ev.h>
#include <json-c/json.h>

struct tls_config;

#include "egress_conf.h"

/* Bind and listen; 0, or -1 with the reason logged. */
int	proxy_start(struct ev_loop *, const char *home,
	    const struct egress_conf *);
/* The settings of a reload (bounds, allow, providers, CAs). */
int	proxy_configure(const struct egress_conf *);
/* Close every connection of this job: its token is revoked. */
void	proxy_job_end(uint64_t job);
void	proxy_stop(void);
/* What the proxy connects with, for the doctor's check (check.c). */
const struct egress_conf *proxy_conf(void);
struct tls_config *proxy_tls(void);

/* check.c: the TLS check of the provider URLs, asked by the supervisor
 * (MSG_EGRESS_CHECK, req {providers: [names]}); its answer goes back in
 * one MSG_EGRESS_CHECKED frame with the same id. */
void	check_start(struct ev_loop *, uint64_t seq, json_object *req);
void	check_stop(void);
void	egress_checked(uint64_t seq, json_object *);

/* Counters, for the egress process's report. */
struct proxy_stats {
	uint64_t	connections;	/* accepted */
	uint64_t	open;		/* open now */
	uint64_t	forwarded;	/* provider requests sent on */
	uint64_t	tunnels;	/* CONNECTs let through */
	uint64_t	refused;
};
extern struct proxy_stats proxy_stats;

/*
 * egress.c: a refusal, for the supervisor's log, events and metrics
 * (reason: a word of a fixed list, prov: the provider or -1), and a
 * request forwarded to prov, for its metrics.
 */
void	egress_refused(const char *host, const char *agent, int prov,
	    const char *reason, const char *why);
void	egress_forwarded(int prov);

#endif
