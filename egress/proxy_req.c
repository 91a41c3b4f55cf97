/*
 * A request head from the bridge, parsed by libhttp-parser, classified
 * and rewritten. The parser is paused when the head is whole, so that the
 * caller decides before a byte of body moves; every piece is bounded
 * (PROXY_MAX_HEAD in all, PROXY_MAX_HEADERS headers).
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_req.h"
#include "util.h"

struct sbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void
sbuf_add(struct sbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap == 0 ? 1024 : b->cap * 2;
		b->s = xreallocarray(b->s, b->cap, 1);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

static int
proxy_req_append(struct proxy_req *r, char **s, const char *at, size_t len)
{
	size_t old = *s == NULL ? 0 : strlen(*s);

	r->head += len;
	if (r->head > PROXY_MAX_HEAD) {
		snprintf(r->err, sizeof(r->err), "request head over %d bytes",
		    PROXY_MAX_HEAD);
		return -1;
	}
	/* The parser refuses NUL in a head; a NUL here would cut the text. */
	if (memchr(at, '\0', len) != NULL) {
		snprintf(r->err, sizeof(r->err), "NUL in the request head");
		return -1;
	}
	*s = xreallocarray(*s, old + len + 1, 1);
	memcpy(*s + old, at, len);
	(*s)[old + len] = '\0';
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct proxy_req *r = p->data;

	return proxy_req_append(r, &r->url, at, len);
}

static int
on_field(http_parser *p, const char *at, size_t len)
{
	struct proxy_req *r = p->data;

	if (r->nh == 0 || r->in_value) {
		if (r->nh == PROXY_MAX_HEADERS) {
			snprintf(r->err, sizeof(r->err), "over %d headers",
			    PROXY_MAX_HEADERS);
			return -1;
		}
		r->nh++;
		r->in_value = 0;
	}
	return proxy_req_append(r, &r->h[r->nh - 1].name, at, len);
}

static int
on_value(http_parser *p, const char *at, size_t len)
{
	struct proxy_req *r = p->data;

	r->in_value = 1;
	return proxy_req_append(r, &r->h[r->nh - 1].value, at, len);
}

static int
on_headers_complete(http_parser *p)
{
	struct proxy_req	*r = p->data;
	size_t			 i;

	for (i = 0; i < r->nh; i++)
		if (r->h[i].value == NULL)
			r->h[i].value = xstrdup("");
	if (r->url == NULL)
		r->url = xstrdup("");
	r->complete = 1;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings proxy_req_settings = {
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
};

void
proxy_req_init(struct proxy_req *r)
{
	memset(r, 0, sizeof(*r));
	http_parser_init(&r->p, HTTP_REQUEST);
	r->p.data = r;
}

void
proxy_req_free(struct proxy_req *r)
{
	size_t i;

	free(r->url);
	for (i = 0; i < r->nh; i++) {
		/* A header may hold the token: it goes wiped. */
		if (r->h[i].value != NULL)
			explicit_bzero(r->h[i].value, strlen(r->h[i].value));
		free(r->h[i].name);
		free(r->h[i].value);
	}
	memset(r, 0, sizeof(*r));
}

long
proxy_req_feed(struct proxy_req *r, const char *buf, size_t len)
{
	size_t			n;
	enum http_errno		e;

	if (r->complete)
		return 0;
	n = http_parser_execute(&r->p, &proxy_req_settings, buf, len);
	e = HTTP_PARSER_ERRNO(&r->p);
	/* Paused on the LF that ends the head, which it leaves unread. */
	if (e == HPE_PAUSED && r->complete)
		return (long)n + (n < len && buf[n] == '\n');
	if (e != HPE_OK) {
		if (*r->err == '\0')
			snprintf(r->err, sizeof(r->err), "malformed request: %s",
			    http_errno_description(e));
		return -1;
	}
	return (long)n;
}

const char *
proxy_req_header(const struct proxy_req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nh; i++)
		if (r->h[i].name != NULL && strcasecmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

/* "host:port" or "[v6]:port": 0 and the parts, or -1. */
static int
proxy_authority(const char *a, char **host, uint16_t *port)
{
	const char	*colon, *h = a, *he;
	char		*end;
	long		 n;
	size_t		 i;

	if (*a == '[') {
		if ((he = strchr(a, ']')) == NULL || he[1] != ':')
			return -1;
		h = a + 1;
		colon = he + 1;
	} else {
		if ((colon = strrchr(a, ':')) == NULL)
			return -1;
		he = colon;
	}
	if (he == h || colon[1] < '0' || colon[1] > '9' || strlen(colon) > 6)
		return -1;
	n = strtol(colon + 1, &end, 10);
	if (*end != '\0' || n < 1 || n > 65535)
		return -1;
	for (i = 0; h + i < he; i++)
		if (!(h[i] == '.' || h[i] == '-' || h[i] == ':' ||
		    (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z')) || (*a != '[' && h[i] == ':'))
			return -1;
	*host = xstrndup(h, he - h);
	*port = (uint16_t)n;
	return 0;
}

/* The token from x-api-key or Authorization: Bearer, or NULL. */
static const char *
proxy_req_token(const struct proxy_req *r)
{
	const char *v;

	if ((v = proxy_req_header(r, "x-api-key")) != NULL && *v != '\0')
		return v;
	if ((v = proxy_req_header(r, "authorization")) != NULL &&
	    strncasecmp(v, "Bearer ", 7) == 0 && v[7] != '\0')
		return v + 7;
	return NULL;
}

void
proxy_req_classify(const struct proxy_req *r, struct proxy_target *t)
{
	const char *u = r->url, *rest;

	memset(t, 0, sizeof(*t));
	t->kind = PK_REFUSE;
	if (r->p.method == HTTP_CONNECT) {
		if (proxy_authority(u, &t->host, &t->port) == -1) {
			t->why = "egress: CONNECT needs host:port";
			return;
		}
		t->kind = PK_CONNECT;
		return;
	}
	/* Absolute form: only the bridge itself, reached through
	 * HTTP_PROXY by a client that does not honour NO_PROXY. */
	if (strncasecmp(u, "http://", 7) == 0) {
		rest = u + 7;
		if (strncmp(rest, "127.0.0.1", 9) == 0 &&
		    (rest[9] == ':' || rest[9] == '/'))
			rest += 9;
		else if (strncasecmp(rest, "localhost", 9) == 0 &&
		    (rest[9] == ':' || rest[9] == '/'))
			rest += 9;
		else {
			t->why = "egress: only the provider's API and CONNECT "
			    "to sandbox.egress.allow go out; this host is "
			    "neither";
			return;
		}
		if (*rest == ':')
			rest += strspn(rest + 1, "0123456789") + 1;
		u = rest;
	}
	if (*u != '/') {
		t->why = "egress: only the provider's API and CONNECT to "
		    "sandbox.egress.allow go out; this request is neither";
		return;
	}
	if ((t->token = proxy_req_token(r)) == NULL) {
		t->why = "egress: no token in the request (x-api-key or "
		    "Authorization: Bearer)";
		return;
	}
	t->path = u;
	t->kind = PK_PROVIDER;
}

void
proxy_target_free(struct proxy_target *t)
{
	free(t->host);
	memset(t, 0, sizeof(*t));
}

/* Headers the provider never sees: the token's, ours, the hop's. */
static int
proxy_hdr_dropped(const char *name)
{
	static const char *const drop[] = { "host", "x-api-key",
	    "authorization", "proxy-authorization", "proxy-connection" };
	size_t i;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (strcasecmp(name, drop[i]) == 0)
			return 1;
	return 0;
}

/*
 * One anthropic-beta header: the request's own flags, each once, and beta
 * last, as Claude Code sends it with an OAuth token (DECISIONS 243).
 */
static void
proxy_req_beta(struct sbuf *b, const struct proxy_req *r, const char *beta)
{
	const char	*v, *e;
	size_t		 i, n, out = 0;

	sbuf_str(b, "anthropic-beta: ");
	for (i = 0; i < r->nh; i++) {
		if (strcasecmp(r->h[i].name, "anthropic-beta") != 0)
			continue;
		for (v = r->h[i].value; *v != '\0'; v = *e == ',' ? e + 1 : e) {
			v += strspn(v, " \t");
			e = v + strcspn(v, ",");
			for (n = (size_t)(e - v); n > 0 && (v[n - 1] == ' ' ||
			    v[n - 1] == '\t'); n--)
				;
			if (n == 0 || (n == strlen(beta) &&
			    memcmp(v, beta, n) == 0))
				continue;
			if (out++ > 0)
				sbuf_str(b, ",");
			sbuf_add(b, v, n);
		}
	}
	if (out > 0)
		sbuf_str(b, ",");
	sbuf_str(b, beta);
	sbuf_str(b, "\r\n");
}

char *
proxy_req_rewrite(const struct proxy_req *r, const char *path,
    const struct egress_url *up, const char *key, int bearer,
    const char *beta, size_t *len)
{
	struct sbuf	 b = { NULL, 0, 0 };
	char		 port[8];
	size_t		 i;

	sbuf_str(&b, http_method_str(r->p.method));
	sbuf_str(&b, " ");
	sbuf_str(&b, up->path);
	sbuf_str(&b, path);
	sbuf_str(&b, " HTTP/1.1\r\nHost: ");
	if (strchr(up->host, ':') != NULL) {
		sbuf_str(&b, "[");
		sbuf_str(&b, up->host);
		sbuf_str(&b, "]");
	} else
		sbuf_str(&b, up->host);
	if (up->port != 443) {
		snprintf(port, sizeof(port), ":%u", up->port);
		sbuf_str(&b, port);
	}
	sbuf_str(&b, "\r\n");
	for (i = 0; i < r->nh; i++) {
		if (proxy_hdr_dropped(r->h[i].name) || (beta != NULL &&
		    strcasecmp(r->h[i].name, "anthropic-beta") == 0))
			continue;
		sbuf_str(&b, r->h[i].name);
		sbuf_str(&b, ": ");
		sbuf_str(&b, r->h[i].value);
		sbuf_str(&b, "\r\n");
	}
	if (beta != NULL)
		proxy_req_beta(&b, r, beta);
	sbuf_str(&b, bearer ? "Authorization: Bearer " : "x-api-key: ");
	sbuf_str(&b, key);
	sbuf_str(&b, "\r\n\r\n");
	*len = b.len;
	return b.s;
}

const struct egress_allow *
proxy_allow_match(const struct egress_conf *ec, const char *host,
    uint16_t port)
{
	size_t	i, hl = strlen(host), el;

	for (i = 0; i < ec->nallow; i++) {
		if (ec->allow[i].port != port)
			continue;
		el = strlen(ec->allow[i].host);
		if (ec->allow[i].wildcard ? hl > el && strcasecmp(host + hl -
		    el, ec->allow[i].host) == 0 : strcasecmp(host,
		    ec->allow[i].host) == 0)
			return &ec->allow[i];
	}
	return NULL;
}

static int
proxy_v4_forbidden(uint32_t a)
{
	static const struct { uint32_t net, mask; } nets[] = {
		{ 0x00000000, 0xff000000 },	/* 0/8 "this network" */
		{ 0x0a000000, 0xff000000 },	/* 10/8 */
		{ 0x64400000, 0xffc00000 },	/* 100.64/10 CGNAT, metadata */
		{ 0x7f000000, 0xff000000 },	/* 127/8 */
		{ 0xa9fe0000, 0xffff0000 },	/* 169.254/16, 169.254.169.254 */
		{ 0xac100000, 0xfff00000 },	/* 172.16/12 */
		{ 0xc0000000, 0xffffff00 },	/* 192.0.0/24 */
		{ 0xc0a80000, 0xffff0000 },	/* 192.168/16 */
		{ 0xc6120000, 0xfffe0000 },	/* 198.18/15 benchmarking */
		{ 0xe0000000, 0xe0000000 },	/* multicast and 240/4 */
	};
	size_t i;

	for (i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
		if ((a & nets[i].mask) == nets[i].net)
			return 1;
	return 0;
}

int
proxy_addr_forbidden(const struct sockaddr *sa)
{
	const unsigned char	*b;
	uint32_t		 v4;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const unsigned char zero[16];

	if (sa->sa_family == AF_INET)
		return proxy_v4_forbidden(ntohl(((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr.s_addr));
	if (sa->sa_family != AF_INET6)
		return 1;
	b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
		v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
		    (uint32_t)b[14] << 8 | b[15];
		return proxy_v4_forbidden(v4);
	}
	if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
		return 1;			/* :: and ::1 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return 1;			/* fe80::/10 link-local */
	if ((b[0] & 0xfe) == 0xfc)
		return 1;			/* fc00::/7, fd00:ec2::254 */
	if (b[0] == 0xff)
		return 1;			/* multicast */
	return 0;
}
