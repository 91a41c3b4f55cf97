/*
 * Framing for the supervisor/worker socketpairs. The header is packed by
 * hand in a fixed little-endian layout so that both ends agree without
 * depending on struct padding.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "util.h"

/* A buffer grown past this for one big frame is freed once it is empty. */
#define IPC_BUF_KEEP	(1024 * 1024)

void
ipc_init(struct ipc_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void
ipc_free(struct ipc_conn *c)
{
	free(c->in.data);
	free(c->out.data);
	memset(&c->in, 0, sizeof(c->in));
	memset(&c->out, 0, sizeof(c->out));
}

static void
put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const unsigned char *p, int n)
{
	uint64_t	v = 0;
	int		i;

	for (i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
ipc_hdr_pack(const struct ipc_hdr *h, unsigned char *p)
{
	put_le(p, h->version, 2);
	put_le(p + 2, h->type, 2);
	put_le(p + 4, h->len, 4);
	put_le(p + 8, h->id, 8);
}

int
ipc_hdr_unpack(const unsigned char *p, size_t len, struct ipc_hdr *h,
    char *err, size_t errlen)
{
	if (len < IPC_HDR_LEN) {
		snprintf(err, errlen, "short header: %zu of %d bytes", len,
		    IPC_HDR_LEN);
		return -1;
	}
	h->version = get_le(p, 2);
	h->type = get_le(p + 2, 2);
	h->len = get_le(p + 4, 4);
	h->id = get_le(p + 8, 8);
	if (h->version != IPC_VERSION) {
		snprintf(err, errlen, "protocol version %u, expected %u",
		    h->version, IPC_VERSION);
		return -1;
	}
	if (h->type == 0 || h->type >= MSG_TYPE_MAX) {
		snprintf(err, errlen, "unknown message type %u", h->type);
		return -1;
	}
	if (h->len > IPC_MAX_PAYLOAD) {
		snprintf(err, errlen, "frame of %u bytes over the limit of %u",
		    h->len, IPC_MAX_PAYLOAD);
		return -1;
	}
	return 0;
}

int
ipc_payload_parse(const char *p, size_t len, json_object **out, char *err,
    size_t errlen)
{
	struct json_tokener	*tok;
	enum json_tokener_error	 jerr;
	json_object		*obj;
	size_t			 used;

	*out = NULL;
	if (len == 0) {
		*out = json_object_new_object();
		return 0;
	}
	if (memchr(p, '\0', len) != NULL) {
		snprintf(err, errlen, "payload contains a NUL byte");
		return -1;
	}
	if ((tok = json_tokener_new_ex(64)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	obj = json_tokener_parse_ex(tok, p, (int)len);
	used = json_tokener_get_parse_end(tok);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	/* NULL with success is the JSON null: not an object, below. */
	if (obj == NULL && jerr != json_tokener_success) {
		snprintf(err, errlen, "payload is not JSON: %s",
		    jerr == json_tokener_continue ?
		    "unexpected end of payload" : json_tokener_error_desc(jerr));
		return -1;
	}
	if (used != len) {
		snprintf(err, errlen, "%zu bytes left over after the payload",
		    len - used);
		json_object_put(obj);
		return -1;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(err, errlen, "payload is not a JSON object");
		json_object_put(obj);
		return -1;
	}
	*out = obj;
	return 0;
}

static void
buf_reserve(struct ipc_buf *b, size_t more)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + more <= b->cap)
		return;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + more <= b->cap)
			return;
	}
	while (b->cap < b->len + more)
		b->cap = b->cap == 0 ? 4096 : b->cap * 2;
	b->data = xreallocarray(b->data, b->cap, 1);
}

int
ipc_queue(struct ipc_conn *c, enum ipc_type type, uint64_t id,
    json_object *obj)
{
	struct ipc_hdr	 h;
	const char	*s = "";
	size_t		 len = 0;

	if (obj != NULL) {
		s = json_object_to_json_string_ext(obj,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		len = strlen(s);
	}
	if (len > IPC_MAX_PAYLOAD) {
		snprintf(c->err, sizeof(c->err), "payload of %zu bytes over "
		    "the limit", len);
		return -1;
	}
	h.version = IPC_VERSION;
	h.type = type;
	h.len = (uint32_t)len;
	h.id = id;
	buf_reserve(&c->out, IPC_HDR_LEN + len);
	ipc_hdr_pack(&h, (unsigned char *)c->out.data + c->out.len);
	memcpy(c->out.data + c->out.len + IPC_HDR_LEN, s, len);
	c->out.len += IPC_HDR_LEN + len;
	return 0;
}

int
ipc_flush(struct ipc_conn *c)
{
	ssize_t n;

	while (c->out.off < c->out.len) {
		n = write(c->fd, c->out.data + c->out.off,
		    c->out.len - c->out.off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			snprintf(c->err, sizeof(c->err), "write: %s",
			    strerror(errno));
			return -1;
		}
		c->out.off += n;
	}
	c->out.off = c->out.len = 0;
	if (c->out.cap > IPC_BUF_KEEP) {
		free(c->out.data);
		c->out.data = NULL;
		c->out.cap = 0;
	}
	return 1;
}

int
ipc_flush_blocking(struct ipc_conn *c)
{
	struct pollfd	pfd;
	int		r;

	while ((r = ipc_flush(c)) == 0) {
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR) {
			snprintf(c->err, sizeof(c->err), "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
	return r;
}

int
ipc_fill(struct ipc_conn *c)
{
	ssize_t n;

	buf_reserve(&c->in, 65536);
	for (;;) {
		n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == -1) {
		if (errno == EAGAIN)
			return 1;
		snprintf(c->err, sizeof(c->err), "read: %s", strerror(errno));
		return -1;
	}
	if (n == 0)
		return 0;
	c->in.len += n;
	return 1;
}

int
ipc_next(struct ipc_conn *c, struct ipc_hdr *h, json_object **obj)
{
	const unsigned char	*p;
	size_t			 avail = c->in.len - c->in.off;

	*obj = NULL;
	if (avail < IPC_HDR_LEN)
		return 0;
	p = (const unsigned char *)c->in.data + c->in.off;
	if (ipc_hdr_unpack(p, avail, h, c->err, sizeof(c->err)) == -1)
		return -1;
	if (avail < IPC_HDR_LEN + (size_t)h->len) {
		/* Make room for the whole frame in one go. */
		buf_reserve(&c->in, IPC_HDR_LEN + h->len - avail);
		return 0;
	}
	if (ipc_payload_parse((const char *)p + IPC_HDR_LEN, h->len, obj,
	    c->err, sizeof(c->err)) == -1)
		return -1;
	c->in.off += IPC_HDR_LEN + h->len;
	if (c->in.off == c->in.len && c->in.cap > IPC_BUF_KEEP) {
		/* A big frame is parsed: do not keep its room for good. */
		free(c->in.data);
		c->in.data = NULL;
		c->in.off = c->in.len = c->in.cap = 0;
	}
	return 1;
}

int
ipc_eof_check(struct ipc_conn *c)
{
	size_t avail = c->in.len - c->in.off;

	if (avail == 0)
		return 0;
	snprintf(c->err, sizeof(c->err), "short read: connection closed "
	    "inside a frame (%zu bytes pending)", avail);
	return -1;
}

int
ipc_get_str(json_object *o, const char *key, const char **out, char *err,
    size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "field \"%s\": expected a string", key);
		return -1;
	}
	*out = json_object_get_string(v);
	return 0;
}

int
ipc_get_int(json_object *o, const char *key, int64_t min, int64_t max,
    int64_t *out, char *err, size_t errlen)
{
	json_object	*v;
	int64_t		 n;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "field \"%s\": expected an integer", key);
		return -1;
	}
	n = json_object_get_int64(v);
	if (n < min || n > max) {
		snprintf(err, errlen, "field \"%s\": %lld out of range",
		    key, (long long)n);
		return -1;
	}
	*out = n;
	return 0;
}

/*
 * sendmsg(2) of buf with nfds descriptors (SCM_RIGHTS) on any stream
 * socket: what was sent, or -1 with errno. EINTR is retried.
 */
ssize_t
ipc_send_fds(int sock, const void *buf, size_t len, const int *fds,
    size_t nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(IPC_MAX_FDS * sizeof(int))];
	} cm;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	ssize_t		 n;

	if (nfds == 0 || nfds > IPC_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	return n;
}

/*
 * recvmsg(2) into buf, appending the descriptors passed with those bytes
 * to fds[*nfds...] (close-on-exec), at most max in all: more, or a set the
 * kernel had to cut, are closed and *over is set. What was read, 0 at
 * EOF, or -1 with errno (EINTR is retried).
 */
ssize_t
ipc_recv_fds(int sock, void *buf, size_t len, int *fds, size_t max,
    size_t *nfds, int *over)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(IPC_MAX_FDS * sizeof(int))];
	} cm;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	ssize_t		 n;
	size_t		 i, k;
	int		 fd;

	*over = 0;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
			if (*nfds < max)
				fds[(*nfds)++] = fd;
			else {
				close(fd);
				*over = 1;
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		*over = 1;
	return n;
}

/*
 * Descriptors ride with the first bytes of what is pending in c->out
 * (SCM_RIGHTS); the rest goes through ipc_flush(). The caller queued a
 * frame on an empty buffer, so the descriptors arrive with its header.
 * Same return as ipc_flush().
 */
int
ipc_flush_fds(struct ipc_conn *c, const int *fds, size_t nfds)
{
	ssize_t n;

	if (c->out.off >= c->out.len) {
		snprintf(c->err, sizeof(c->err), "descriptors without a frame");
		return -1;
	}
	if ((n = ipc_send_fds(c->fd, c->out.data + c->out.off,
	    c->out.len - c->out.off, fds, nfds)) == -1) {
		snprintf(c->err, sizeof(c->err), "sendmsg: %s",
		    strerror(errno));
		return -1;
	}
	c->out.off += n;
	return ipc_flush(c);
}

/*
 * ipc_fill() that also takes descriptors passed with the bytes read: up
 * to max of them into fds[*nfds...]; more than that are closed and the
 * call fails (a protocol error).
 */
int
ipc_fill_fds(struct ipc_conn *c, int *fds, size_t max, size_t *nfds)
{
	ssize_t	n;
	int	over;

	buf_reserve(&c->in, 65536);
	n = ipc_recv_fds(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len,
	    fds, max, nfds, &over);
	if (n == -1) {
		if (errno == EAGAIN)
			return 1;
		snprintf(c->err, sizeof(c->err), "recvmsg: %s",
		    strerror(errno));
		return -1;
	}
	if (over) {
		snprintf(c->err, sizeof(c->err), "too many descriptors passed");
		return -1;
	}
	if (n == 0)
		return 0;
	c->in.len += n;
	return 1;
}
