/*
 * The daemon's figures for Prometheus (SPEC §11, docs/METRICS.md): the
 * counters kept here, the exposition, and the HTTP listener that serves it
 * (metrics_http.c). Each count is one call at the place every such outcome
 * already passes through.
 */
#ifndef CLAWVISOR_METRICS_H
#define CLAWVISOR_METRICS_H

#include <stddef.h>

#include "config.h"
#include "job.h"

struct msg;

/* metrics.c: counts, from the supervisor's loop only */
void	 metrics_invocation(const struct msg *, enum outcome);	/* pool.c */
void	 metrics_pickup(const char *name);	/* queue.c: claimed from incoming/ */
void	 metrics_dead_letter(const char *cls);	/* commit.c */
void	 metrics_commit_failure(void);		/* commit.c */
void	 metrics_worker_restart(void);		/* pool.c */
void	 metrics_event(const char *type);	/* event.c: reloads */
/*
 * For the egress process (issue 15): one request forwarded (reason NULL)
 * or refused for reason, a constant string of the egress code, never
 * text from a request. provider is a configured provider name.
 */
void	 metrics_egress(const char *provider, const char *reason);
/* The text exposition (format 0.0.4), for free(). */
char	*metrics_render(size_t *len);
void	 metrics_free(void);

/* metrics_http.c: GET /metrics on supervisor.metrics_listen */
int	 metrics_http_start(void);
int	 metrics_http_reload(const struct config *, char *err, size_t errlen);
void	 metrics_http_close(void);

/* The request side of metrics_http.c, apart for tests/fuzz/fuzz_http.c. */
#define METRICS_HTTP_MAX_REQUEST	4096
struct metrics_req;
struct metrics_req *metrics_req_new(void);
/*
 * Feed what arrived. 0: more is needed; else the HTTP status to answer
 * with (200 for GET /metrics, 400, 404, 405, 431), and feeding is over.
 */
int	 metrics_req_feed(struct metrics_req *, const char *, size_t);
int	 metrics_req_head(const struct metrics_req *);	/* a HEAD request */
void	 metrics_req_free(struct metrics_req *);

#endif
