/*
 * Moving a proxy connection's bytes (egress/proxy.c has the rest): the
 * bridge's hand-off of the CLI's socket, the upstream's connect and TLS
 * handshake, and each round of the relay both ways, bounded by
 * sandbox.egress.buffer_bytes. Responses go through unparsed, as they
 * come; requests through pconn_process(), which finds each head.
 */
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "handoff.h"
#include "log.h"
#include "pconn.h"

/* Upstream I/O, TLS or plain: >0, 0 at EOF, -1 broken, -2 try later. */
static ssize_t
pconn_uio(struct pconn *c, int wr, void *buf, size_t len)
{
	ssize_t n;

	if (c->tls != NULL) {
		n = wr ? tls_write(c->tls, buf, len) : tls_read(c->tls, buf,
		    len);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			*(wr ? &c->tls_ww : &c->tls_rw) =
			    n == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
			return -2;
		}
		*(wr ? &c->tls_ww : &c->tls_rw) = wr ? EV_WRITE : EV_READ;
		return n < 0 ? -1 : n;
	}
	if (!wr && !c->u_rd)
		return -2;
	n = wr ? write(c->ufd, buf, len) : read(c->ufd, buf, len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		if (!wr)
			c->u_rd = 0;
		return -2;
	}
	if (!wr && n > 0 && (size_t)n < len)
		c->u_rd = 0;
	return n;
}

/*
 * The connection's first byte: a bridge's hand-off of the CLI's socket,
 * served from now on in place of the unix one, or the start of a request
 * on the unix socket itself (egress/handoff.c).
 */
static void
pconn_hello(struct pconn *c)
{
	char	byte;
	int	fd, r;

	if ((r = handoff_recv(c->cfd, &byte, &fd)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			c->c_rd = 0;
		else
			c->c_eof = 1;
		return;
	}
	c->hello = 0;
	if (r == 0) {
		c->c_eof = 1;
		return;
	}
	if (byte != '\0') {
		pbuf_add(&c->cin, &byte, 1);
		return;
	}
	/* A fresh socket has room for one byte: this write does not wait. */
	byte = fd != -1 ? HANDOFF_TAKEN : HANDOFF_COPY;
	if (write(c->cfd, &byte, 1) != 1) {
		if (fd != -1)
			close(fd);
		c->c_eof = 1;
		return;
	}
	if (fd == -1)
		return;
	ev_io_stop(px.loop, &c->cio);
	close(c->cfd);
	c->cfd = fd;
	ev_io_set(&c->cio, fd, 0);
}

/* One round of everything that can move; 1 if something did. */
int
pconn_step(struct pconn *c)
{
	ssize_t	n;
	size_t	room, got;
	int	moved = 0, err, spins = 0;
	socklen_t sl = sizeof(err);

	/*
	 * From the bridge, straight into cin, as much as there is room for;
	 * a short read means the socket is drained: no read(2) again until
	 * the loop says it is readable.
	 */
	if (c->hello && !c->c_eof && c->c_rd && c->st != P_CLOSING) {
		pconn_hello(c);
		/* Nothing yet (EAGAIN) is no progress. */
		moved = !c->hello || c->c_eof;
	}
	if (!c->c_eof && c->c_rd && c->st != P_CLOSING &&
	    (room = pbuf_room(&c->cin)) > 0) {
		if (room > PCONN_ROUND)
			room = PCONN_ROUND;
		n = read(c->cfd, pbuf_tail(&c->cin, room), room);
		if (n > 0) {
			c->cin.len += (size_t)n;
			if ((size_t)n < room)
				c->c_rd = 0;
			moved = 1;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			c->c_eof = 1;
			moved = 1;
		} else
			c->c_rd = 0;
	}
	if (pconn_process(c))
		moved = 1;
	/* The upstream's connect and handshake. */
	if (c->st == P_CONNECTING) {
		if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
		    err == EINPROGRESS)
			return moved;
		if (err != 0) {
			pconn_refuse(c, 502, "upstream", c->provider, c->host,
			    "egress: cannot reach the host");
			return 1;
		}
		if (c->connect) {
			c->st = P_RELAY;
			c->connect = 0;
			static const char ok[] = "HTTP/1.1 200 Connection "
			    "established\r\n\r\n";

			pbuf_add(&c->u2c, ok, sizeof(ok) - 1);
		} else {
			if ((c->tls = tls_client()) == NULL ||
			    tls_configure(c->tls, px.tls) == -1 ||
			    tls_connect_cbs(c->tls, pconn_tls_read,
			    pconn_tls_write, c, c->host) == -1) {
				log_warnx("egress: TLS to %s: %s", c->host,
				    c->tls ? tls_error(c->tls) : "tls_client");
				pconn_refuse(c, 502, "tls", c->provider,
				    c->host, "egress: TLS setup failed");
				return 1;
			}
			c->st = P_HANDSHAKE;
		}
		moved = 1;
	}
	if (c->st == P_HANDSHAKE) {
		n = tls_handshake(c->tls);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			c->tls_wants = n == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
			return moved;
		}
		c->tls_wants = 0;
		if (n == -1) {
			log_warnx("egress: TLS to %s: %s", c->host,
			    tls_error(c->tls));
			pconn_refuse(c, 502, "tls", c->provider, c->host,
			    "egress: the provider's certificate did not verify");
			return 1;
		}
		c->st = P_RELAY;
		moved = 1;
	}
	if (c->st != P_RELAY)
		goto client;
	/* To the upstream. */
	if (c->c2u.len > 0) {
		n = pconn_uio(c, 1, pbuf_data(&c->c2u), c->c2u.len);
		if (n > 0) {
			pbuf_drop(&c->c2u, (size_t)n);
			moved = 1;
		} else if (n == -1 || n == 0) {
			c->u_eof = 1;
			pbuf_clear(&c->c2u);
		}
	}
	if (c->c_eof && c->cin.len == 0 && c->c2u.len == 0 && !c->u_shut &&
	    c->tls == NULL) {
		(void)shutdown(c->ufd, SHUT_WR);
		c->u_shut = 1;
	}
	/*
	 * From the upstream, straight into u2c: what is there now (several
	 * TLS records), up to a round's worth, written to the bridge below in
	 * one go. Never waits for more: an SSE event goes on as it comes.
	 */
	for (got = 0; !c->u_eof && got < PCONN_ROUND &&
	    (room = pbuf_room(&c->u2c)) > 0; got += (size_t)n) {
		if (room > PCONN_ROUND - got)
			room = PCONN_ROUND - got;
		n = pconn_uio(c, 0, pbuf_tail(&c->u2c, room), room);
		/*
		 * A TLS 1.3 session ticket or key update is taken in and
		 * tls_read wants more, though records may be waiting in uin,
		 * where the loop cannot see them: go on with those.
		 */
		if (n == -2 && c->tls != NULL && c->uin.len > 0 &&
		    spins++ < 16) {
			n = 0;
			continue;
		}
		if (n == -2)
			break;
		spins = 0;
		if (n == 0 || n == -1) {
			c->u_eof = 1;
			moved = 1;
			break;
		}
		c->u2c.len += (size_t)n;
		moved = 1;
	}
client:
	if (c->u2c.len > 0) {
		n = write(c->cfd, pbuf_data(&c->u2c), c->u2c.len);
		if (n > 0) {
			pbuf_drop(&c->u2c, (size_t)n);
			moved = 1;
		} else if (n == -1 && errno != EAGAIN && errno != EINTR) {
			c->c_eof = c->u_eof = 1;
			pbuf_clear(&c->u2c);
			c->st = P_CLOSING;
		}
	}
	return moved;
}
