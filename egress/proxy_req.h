/*
 * The proxy's view of one request from a sandbox (SPEC §9): its head read
 * with libhttp-parser (Node.js's parser, not ours), what it asks for (a
 * provider call through the bridge, a CONNECT, or something refused), and
 * the head rewritten for the provider with the token swapped for the key.
 * No I/O here: the fuzz target and the unit tests drive it directly.
 */
#ifndef CLAWVISOR_PROXY_REQ_H
#define CLAWVISOR_PROXY_REQ_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "egress_conf.h"

#define PROXY_MAX_HEAD		65536	/* request line and headers */
#define PROXY_MAX_HEADERS	128

struct proxy_hdr {
	char	*name;
	char	*value;
};

struct proxy_req {
	http_parser		 p;
	char			*url;
	struct proxy_hdr	 h[PROXY_MAX_HEADERS];
	size_t			 nh;
	size_t			 head;		/* bytes of head so far */
	int			 in_value;	/* the last piece was a value */
	int			 complete;	/* the head is whole */
	char			 err[128];
};

enum proxy_kind { PK_PROVIDER, PK_CONNECT, PK_REFUSE };

struct proxy_target {
	enum proxy_kind	 kind;
	char		*host;		/* PK_CONNECT */
	uint16_t	 port;
	const char	*token;		/* PK_PROVIDER: in the request */
	const char	*path;		/* PK_PROVIDER: origin-form */
	const char	*why;		/* PK_REFUSE: the one-line reason */
};

void	 proxy_req_init(struct proxy_req *);
void	 proxy_req_free(struct proxy_req *);
/*
 * Feed bytes of the head: the number used (the rest is body or the next
 * request), with r->complete set once the head is whole; -1 with r->err
 * on a malformed or oversize head.
 */
long	 proxy_req_feed(struct proxy_req *, const char *, size_t);
const char *proxy_req_header(const struct proxy_req *, const char *);
/* What the request asks for; t->host is for proxy_target_free(). */
void	 proxy_req_classify(const struct proxy_req *, struct proxy_target *);
void	 proxy_target_free(struct proxy_target *);
/*
 * The head for the provider: path under up->path, Host of up, the token's
 * headers and hop-by-hop proxy headers out, the key in (x-api-key, or
 * Authorization: Bearer when bearer). beta (not NULL): added to the
 * request's anthropic-beta flags, once. Malloc'ed, *len set.
 */
char	*proxy_req_rewrite(const struct proxy_req *, const char *path,
	    const struct egress_url *up, const char *key, int bearer,
	    const char *beta, size_t *len);
/* What Claude Code adds to anthropic-beta when it sends an OAuth token
 * (claude-code 2.1.x); the API refuses an OAuth token without it. */
#define PROXY_OAUTH_BETA	"oauth-2025-04-20"
/* Whether allow lets CONNECT host:port through (before the address). */
const struct egress_allow *proxy_allow_match(const struct egress_conf *,
	    const char *host, uint16_t port);
/* Loopback, link-local (metadata), private, unspecified, multicast. */
int	 proxy_addr_forbidden(const struct sockaddr *);

#endif
