/*
 * The proxy's buffers (struct pbuf: consumed by offset, filled in place;
 * DECISIONS 231) and what upstream TLS reads and writes through
 * (tls_connect_cbs: the upstream read ahead of libtls; DECISIONS 232).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "cadir.h"
#include "log.h"
#include "pconn.h"
#include "util.h"

char *
pbuf_data(const struct pbuf *b)
{
	return b->b + b->off;
}

/* Room for n more bytes at the end: where they go. */
char *
pbuf_tail(struct pbuf *b, size_t n)
{
	if (b->off + b->len + n > b->cap && b->off > 0) {
		memmove(b->b, b->b + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		b->cap = b->len + n;
		b->b = xreallocarray(b->b, b->cap, 1);
	}
	return b->b + b->off + b->len;
}

void
pbuf_add(struct pbuf *b, const char *p, size_t n)
{
	memcpy(pbuf_tail(b, n), p, n);
	b->len += n;
}

void
pbuf_drop(struct pbuf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

void
pbuf_clear(struct pbuf *b)
{
	b->off = b->len = 0;
}

size_t
pbuf_room(const struct pbuf *b)
{
	size_t max = (size_t)px.conf.buffer_bytes;

	return b->len >= max ? 0 : max - b->len;
}

/*
 * The system CAs and ca_file: as hashed directories (cadir.c), which
 * libtls reads lazily: the system's own when it is hashed, and the home's
 * with what is not in it. If that cannot be made, as one bundle in
 * memory, which libtls parses again at each connection.
 */
struct tls_config *
proxy_tls_config(const struct egress_conf *ec, const char *cadir)
{
	struct tls_config	*cfg;
	const char		*files[2], *sys;
	char			*text, *path = NULL;
	struct pbuf		 all = { NULL, 0, 0, 0 };
	size_t			 i, len;
	long			 n = -1;

	files[0] = tls_default_ca_cert_file();
	files[1] = ec->ca_file;
	if ((cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new");
	sys = cadir_system();
	if (cadir != NULL)
		n = cadir_build(cadir, sys != NULL ? files + 1 : files,
		    sys != NULL ? 1 : 2);
	/* OpenSSL looks in each directory of a list a:b in turn. */
	if (sys != NULL && n > 0)
		xasprintf(&path, "%s:%s", sys, cadir);
	else if (sys != NULL && n == 0)
		path = xstrdup(sys);
	else if (n > 0)
		path = xstrdup(cadir);
	if (path != NULL && tls_config_set_ca_path(cfg, path) == 0) {
		log_info("egress: trusted certificates from %s", path);
		free(path);
		return cfg;
	}
	free(path);
	if (n == 0)
		goto none;
	for (i = 0; i < 2; i++) {
		if (files[i] == NULL)
			continue;
		/* The system bundle is a symbolic link on Debian: followed. */
		if ((text = (char *)tls_load_file(files[i], &len, NULL)) ==
		    NULL) {
			log_warnx("egress: CA file %s: %s", files[i],
			    strerror(errno));
			continue;
		}
		pbuf_add(&all, text, len);
		pbuf_add(&all, "\n", 1);
		tls_unload_file((uint8_t *)text, len);
	}
	if (all.len > 0 && tls_config_set_ca_mem(cfg, (uint8_t *)all.b,
	    all.len) == 0) {
		log_info("egress: trusted certificates in memory (%zu bytes, "
		    "parsed again at each upstream connection)", all.len);
		free(all.b);
		return cfg;
	}
	free(all.b);
none:
	log_warnx("egress: no CA certificates: every upstream TLS "
	    "handshake will fail (%s)", tls_config_error(cfg));
	return cfg;
}

/*
 * libtls's reads of the upstream socket, served from c->uin: one read(2)
 * of up to PCONN_TLS_AHEAD bytes, and none at all once a short read has
 * said the socket is drained, until the loop says it is readable again.
 */
ssize_t
pconn_tls_read(struct tls *t, void *buf, size_t len, void *arg)
{
	struct pconn	*c = arg;
	ssize_t		 n;
	size_t		 ahead;

	(void)t;
	if (c->uin.len == 0) {
		if (!c->u_rd)
			return TLS_WANT_POLLIN;
		ahead = (size_t)px.conf.buffer_bytes < PCONN_TLS_AHEAD ?
		    (size_t)px.conf.buffer_bytes : PCONN_TLS_AHEAD;
		n = read(c->ufd, pbuf_tail(&c->uin, ahead), ahead);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			c->u_rd = 0;
			return TLS_WANT_POLLIN;
		}
		if (n <= 0)
			return n;
		if ((size_t)n < ahead)
			c->u_rd = 0;
		c->uin.len = (size_t)n;
	}
	if (len > c->uin.len)
		len = c->uin.len;
	memcpy(buf, pbuf_data(&c->uin), len);
	pbuf_drop(&c->uin, len);
	return (ssize_t)len;
}

ssize_t
pconn_tls_write(struct tls *t, const void *buf, size_t len, void *arg)
{
	struct pconn	*c = arg;
	ssize_t		 n;

	(void)t;
	if ((n = write(c->ufd, buf, len)) == -1 && (errno == EAGAIN ||
	    errno == EINTR))
		return TLS_WANT_POLLOUT;
	return n;
}
