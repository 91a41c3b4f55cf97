/*
 * The proxy's connections, shared by the proxy's files and private to
 * them: proxy.c accepts, decides and ends connections; proxy_relay.c
 * moves their bytes; proxy_buf.c has their buffers and upstream TLS's
 * callbacks.
 */
#ifndef CLAWVISOR_PCONN_H
#define CLAWVISOR_PCONN_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdint.h>

#include <ev.h>

#include "egress_conf.h"
#include "proxy_req.h"

struct resolve;
struct tls;
struct tls_config;

enum pstate { P_HEAD, P_RESOLVING, P_CONNECTING, P_HANDSHAKE, P_RELAY, P_CLOSING };

/*
 * Bytes b[off, off + len): a consumer advances off, so a partial write
 * moves nothing; the bytes are moved down only when a read needs the
 * room at the end (pbuf_tail).
 */
struct pbuf {
	char	*b;
	size_t	 off;
	size_t	 len;
	size_t	 cap;
};

/*
 * Raw TLS bytes read from the upstream ahead of libtls, which asks for a
 * record's 5-byte header and then its body: one read(2) of up to this
 * much serves several records instead of two reads each.
 */
#define PCONN_TLS_AHEAD	65536
/* At most this much is read from one side before the other is served. */
#define PCONN_ROUND	65536

struct pconn {
	TAILQ_ENTRY(pconn)	 entry;
	enum pstate		 st;
	int			 cfd;
	int			 ufd;
	struct tls		*tls;
	int			 tls_wants;	/* the handshake's EV_READ/EV_WRITE */
	int			 tls_rw;	/* what tls_read last asked for */
	int			 tls_ww;	/* what tls_write last asked for */
	int			 c_rd;		/* the bridge's side may be readable */
	int			 hello;		/* its first byte not read yet */
	int			 u_rd;		/* the upstream may be readable */
	struct pbuf		 uin;		/* raw TLS read ahead */
	ev_io			 cio;
	ev_io			 uio;
	ev_timer		 idle;
	struct proxy_req	 req;
	int			 body;		/* in a request's body */
	int			 tunnel;	/* raw both ways from now on */
	int			 connect;	/* a CONNECT waits for its 200 */
	int			 provider;	/* of the upstream, or -1 */
	struct resolve		*rq;		/* the upstream's name lookup */
	int			 dial_check;	/* refuse private addresses */
	uint64_t		 job;
	char			*agent;
	char			*host;
	struct pbuf		 cin;		/* from the bridge, unprocessed */
	struct pbuf		 c2u;
	struct pbuf		 u2c;
	int			 c_eof;
	int			 u_eof;
	int			 u_shut;
};

/* The proxy: its socket, its settings and its connections. */
struct proxy_env {
	struct ev_loop		*loop;
	int			 lfd;
	ev_io			 lio;
	char			*path;
	char			*cadir;		/* HOME/egress/ca */
	struct egress_conf	 conf;
	struct tls_config	*tls;
	TAILQ_HEAD(, pconn)	 conns;
};
extern struct proxy_env px;

/* proxy_buf.c */
char		*pbuf_data(const struct pbuf *);
char		*pbuf_tail(struct pbuf *, size_t);
void		 pbuf_add(struct pbuf *, const char *, size_t);
void		 pbuf_drop(struct pbuf *, size_t);
void		 pbuf_clear(struct pbuf *);
size_t		 pbuf_room(const struct pbuf *);
struct tls_config *proxy_tls_config(const struct egress_conf *,
		    const char *);
ssize_t		 pconn_tls_read(struct tls *, void *, size_t, void *);
ssize_t		 pconn_tls_write(struct tls *, const void *, size_t, void *);

/* proxy_relay.c: one round of everything that can move; 1 if any did. */
int		 pconn_step(struct pconn *);

/* proxy.c */
int		 pconn_process(struct pconn *);
void		 pconn_refuse(struct pconn *, int, const char *, int,
		    const char *, const char *);

#endif
