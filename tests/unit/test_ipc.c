/*
 * The supervisor/worker framing (common/ipc.c): header layout and checks,
 * payload parsing, and whole frames over a real socketpair, delivered in
 * every possible split and cut short by EOF.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc.h"
#include "util.h"

struct pair {
	int		fd[2];
	struct ipc_conn	tx;
	struct ipc_conn	rx;
};

static int
pair_setup(void **state)
{
	struct pair *p;

	p = xcalloc(1, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) == -1)
		return -1;
	ipc_init(&p->tx, p->fd[0]);
	ipc_init(&p->rx, p->fd[1]);
	*state = p;
	return 0;
}

static int
pair_teardown(void **state)
{
	struct pair *p = *state;

	ipc_free(&p->tx);
	ipc_free(&p->rx);
	if (p->fd[0] != -1)
		close(p->fd[0]);
	if (p->fd[1] != -1)
		close(p->fd[1]);
	free(p);
	return 0;
}

/* A raw frame, header and payload, in buf; its length. */
static size_t
frame(unsigned char *buf, unsigned version, unsigned type, uint64_t id,
    const char *payload, size_t len)
{
	struct ipc_hdr h;

	h.version = version;
	h.type = type;
	h.len = (uint32_t)len;
	h.id = id;
	ipc_hdr_pack(&h, buf);
	memcpy(buf + IPC_HDR_LEN, payload, len);
	return IPC_HDR_LEN + len;
}

static void
write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= n;
	}
}

static void
test_hdr_roundtrip(void **state)
{
	static const unsigned char want[IPC_HDR_LEN] = {
		IPC_VERSION, 0x00, 0x04, 0x00, 0x04, 0x03, 0x02, 0x01,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	};
	struct ipc_hdr	h = { IPC_VERSION, MSG_JOB_DONE, 0x01020304,
			    0x1122334455667788ULL }, g;
	unsigned char	buf[IPC_HDR_LEN];
	char		err[128];

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	ipc_hdr_pack(&h, buf);
	/* Little-endian, fixed layout, independent of struct padding. */
	assert_memory_equal(buf, want, sizeof(want));
	memset(&g, 0, sizeof(g));
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), 0);
	assert_int_equal(g.version, IPC_VERSION);
	assert_int_equal(g.type, MSG_JOB_DONE);
	assert_int_equal(g.len, 0x01020304);
	assert_true(g.id == 0x1122334455667788ULL);

	/* Every known type, the largest id and payload. */
	for (h.type = MSG_HELLO; h.type < MSG_TYPE_MAX; h.type++) {
		h.id = UINT64_MAX;
		h.len = IPC_MAX_PAYLOAD;
		ipc_hdr_pack(&h, buf);
		assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
		    sizeof(err)), 0);
		assert_int_equal(g.type, h.type);
		assert_true(g.id == UINT64_MAX);
		assert_int_equal(g.len, IPC_MAX_PAYLOAD);
	}
}

static void
test_hdr_short(void **state)
{
	unsigned char	buf[IPC_HDR_LEN];
	struct ipc_hdr	h = { IPC_VERSION, MSG_HELLO, 0, 0 }, g;
	char		err[128];

	(void)state;
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, IPC_HDR_LEN - 1, &g, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "short header: 15 of 16 bytes");
	assert_int_equal(ipc_hdr_unpack(buf, 0, &g, err, sizeof(err)), -1);
	assert_string_equal(err, "short header: 0 of 16 bytes");
}

static void
test_hdr_bad_version(void **state)
{
	unsigned char	buf[IPC_HDR_LEN];
	struct ipc_hdr	h = { 1, MSG_HELLO, 0, 0 }, g;
	char		err[128];

	(void)state;
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), -1);
	/* Version 1 sent the message and the reply as JSON strings. */
	assert_string_equal(err, "protocol version 1, expected 2");
	h.version = 0;
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "protocol version 0, expected 2");
	h.version = 0x0101;	/* byte order mixed up */
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "protocol version 257, expected 2");
}

static void
test_hdr_unknown_type(void **state)
{
	static const unsigned types[] = { 0, MSG_TYPE_MAX, 0xffff };
	unsigned char	buf[IPC_HDR_LEN];
	struct ipc_hdr	h = { IPC_VERSION, 0, 0, 0 }, g;
	char		err[128], want[64];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		h.type = types[i];
		ipc_hdr_pack(&h, buf);
		assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
		    sizeof(err)), -1);
		snprintf(want, sizeof(want), "unknown message type %u",
		    types[i]);
		assert_string_equal(err, want);
	}
}

static void
test_hdr_oversize(void **state)
{
	unsigned char	buf[IPC_HDR_LEN];
	struct ipc_hdr	h = { IPC_VERSION, MSG_JOB_RUN,
			    IPC_MAX_PAYLOAD + 1, 7 }, g;
	char		err[128], want[128];

	(void)state;
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), -1);
	snprintf(want, sizeof(want), "frame of %u bytes over the limit of %u",
	    IPC_MAX_PAYLOAD + 1, IPC_MAX_PAYLOAD);
	assert_string_equal(err, want);
	h.len = UINT32_MAX;
	ipc_hdr_pack(&h, buf);
	assert_int_equal(ipc_hdr_unpack(buf, sizeof(buf), &g, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "over the limit"));
}

static void
test_payload_parse(void **state)
{
	static const struct {
		const char	*text;
		size_t		 len;
		const char	*err;
	} bad[] = {
		{ "{\"a\":1} x", 9, "1 bytes left over after the payload" },
		{ "{\"a\":1}{\"b\":2}", 14, "7 bytes left over after the "
		  "payload" },
		{ "{}{", 3, "1 bytes left over after the payload" },
		{ "[1,2]", 5, "payload is not a JSON object" },
		{ "\"text\"", 6, "payload is not a JSON object" },
		{ "42 ", 3, "payload is not a JSON object" },
		{ "null ", 5, "payload is not a JSON object" },
		{ "{\"a\":\"x\0y\"}", 11, "payload contains a NUL byte" },
		{ "{}\0", 3, "payload contains a NUL byte" },
		{ "{\"a\":", 5, "payload is not JSON: unexpected end of "
		  "payload" },
		{ " ", 1, "payload is not JSON: unexpected end of payload" },
	};
	json_object	*o, *v;
	char		 err[128];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = (json_object *)1;
		err[0] = '\0';
		assert_int_equal(ipc_payload_parse(bad[i].text, bad[i].len, &o,
		    err, sizeof(err)), -1);
		assert_null(o);
		assert_string_equal(err, bad[i].err);
	}
	assert_int_equal(ipc_payload_parse("{a}", 3, &o, err, sizeof(err)),
	    -1);
	assert_true(strncmp(err, "payload is not JSON: ", 21) == 0);

	/* An empty payload is an empty object. */
	assert_int_equal(ipc_payload_parse("", 0, &o, err, sizeof(err)), 0);
	assert_true(json_object_is_type(o, json_type_object));
	assert_int_equal(json_object_object_length(o), 0);
	json_object_put(o);

	/* Only len bytes are read: what follows is not looked at. */
	assert_int_equal(ipc_payload_parse("{\"k\":\"v\"}garbage", 9, &o, err,
	    sizeof(err)), 0);
	assert_true(json_object_object_get_ex(o, "k", &v));
	assert_string_equal(json_object_get_string(v), "v");
	json_object_put(o);
}

static void
test_queue_next(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o, *v;

	o = json_object_new_object();
	json_object_object_add(o, "text", json_object_new_string("a/b \"q\""));
	assert_int_equal(ipc_queue(&p->tx, MSG_JOB_RUN, 42, o), 0);
	json_object_put(o);
	assert_int_equal(ipc_queue(&p->tx, MSG_JOB_CANCEL, 43, NULL), 0);
	assert_int_equal(ipc_flush_blocking(&p->tx), 1);
	assert_int_equal(p->tx.out.len, 0);

	/* Nothing is decoded before it has been read. */
	assert_int_equal(ipc_next(&p->rx, &h, &o), 0);
	assert_null(o);
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 1);
	assert_int_equal(h.version, IPC_VERSION);
	assert_int_equal(h.type, MSG_JOB_RUN);
	assert_int_equal(h.id, 42);
	assert_true(json_object_object_get_ex(o, "text", &v));
	assert_string_equal(json_object_get_string(v), "a/b \"q\"");
	json_object_put(o);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 1);
	assert_int_equal(h.type, MSG_JOB_CANCEL);
	assert_int_equal(h.id, 43);
	assert_int_equal(h.len, 0);
	assert_true(json_object_is_type(o, json_type_object));
	json_object_put(o);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 0);
	assert_int_equal(ipc_eof_check(&p->rx), 0);
}

/* Frames in every split: each cut point, and one byte at a time. */
static void
test_split_reads(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o, *v;
	unsigned char	 buf[256];
	size_t		 total, cut, i, got;
	int		 r;

	total = frame(buf, IPC_VERSION, MSG_JOB_STARTED, 1,
	    "{\"pid\":1234}", 12);
	total += frame(buf + total, IPC_VERSION, MSG_JOB_DONE, 2,
	    "{\"outcome\":\"ok\",\"reply\":\"hello\"}", 32);

	for (cut = 0; cut <= total; cut++) {
		got = 0;
		if (cut > 0) {
			write_all(p->fd[0], buf, cut);
			assert_int_equal(ipc_fill(&p->rx), 1);
			while ((r = ipc_next(&p->rx, &h, &o)) == 1) {
				got++;
				json_object_put(o);
			}
			assert_int_equal(r, 0);
			/* A frame is only returned once it is complete. */
			assert_int_equal(got, cut >= IPC_HDR_LEN + 12 ?
			    (cut == total ? 2 : 1) : 0);
		}
		if (cut < total) {
			write_all(p->fd[0], buf + cut, total - cut);
			assert_int_equal(ipc_fill(&p->rx), 1);
			while ((r = ipc_next(&p->rx, &h, &o)) == 1) {
				got++;
				if (got == 2) {
					assert_int_equal(h.type, MSG_JOB_DONE);
					assert_int_equal(h.id, 2);
					assert_true(json_object_object_get_ex(o,
					    "reply", &v));
					assert_string_equal(
					    json_object_get_string(v), "hello");
				}
				json_object_put(o);
			}
			assert_int_equal(r, 0);
		}
		assert_int_equal(got, 2);
		assert_int_equal(ipc_eof_check(&p->rx), 0);
	}

	/* One byte per read. */
	got = 0;
	for (i = 0; i < total; i++) {
		write_all(p->fd[0], buf + i, 1);
		assert_int_equal(ipc_fill(&p->rx), 1);
		while ((r = ipc_next(&p->rx, &h, &o)) == 1) {
			got++;
			assert_int_equal(h.id, got);
			json_object_put(o);
		}
		assert_int_equal(r, 0);
		if (i + 1 < IPC_HDR_LEN + 12)
			assert_int_equal(got, 0);
	}
	assert_int_equal(got, 2);
}

/* A frame larger than the socket buffer and the first read buffer. */
static void
test_big_frame(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o, *v;
	char		*big;
	size_t		 n = 3 * 1024 * 1024, rounds = 0;
	int		 fl, r = 0, done = 0;

	big = xmalloc(n + 1);
	memset(big, 'z', n);
	big[n] = '\0';
	big[0] = 'A';
	big[n - 1] = 'Z';
	o = json_object_new_object();
	json_object_object_add(o, "big", json_object_new_string(big));
	assert_int_equal(ipc_queue(&p->tx, MSG_JOB_DONE, 9, o), 0);
	json_object_put(o);
	o = json_object_new_object();
	json_object_object_add(o, "after", json_object_new_int(1));
	assert_int_equal(ipc_queue(&p->tx, MSG_HELLO, 10, o), 0);
	json_object_put(o);

	fl = fcntl(p->fd[0], F_GETFL);
	assert_int_equal(fcntl(p->fd[0], F_SETFL, fl | O_NONBLOCK), 0);
	fl = fcntl(p->fd[1], F_GETFL);
	assert_int_equal(fcntl(p->fd[1], F_SETFL, fl | O_NONBLOCK), 0);
	while (done < 2) {
		assert_true(++rounds < 100000);
		if (r != 1)
			assert_int_not_equal(r = ipc_flush(&p->tx), -1);
		/* Nothing to read is not an error. */
		assert_int_equal(ipc_fill(&p->rx), 1);
		while (ipc_next(&p->rx, &h, &o) == 1) {
			if (++done == 1) {
				assert_int_equal(h.id, 9);
				assert_true(json_object_object_get_ex(o, "big",
				    &v));
				assert_int_equal(json_object_get_string_len(v),
				    n);
				assert_string_equal(json_object_get_string(v),
				    big);
			} else {
				assert_int_equal(h.id, 10);
				assert_true(json_object_object_get_ex(o,
				    "after", &v));
			}
			json_object_put(o);
		}
		assert_string_equal(p->rx.err, "");
	}
	/* The writer really did have to wait for the reader. */
	assert_true(rounds > 1);
	free(big);
}

static void
test_eof_inside_frame(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o;
	unsigned char	 buf[128];
	size_t		 len;

	len = frame(buf, IPC_VERSION, MSG_JOB_DONE, 5, "{\"x\":\"yyyy\"}",
	    12);
	write_all(p->fd[0], buf, len - 4);
	close(p->fd[0]);
	p->fd[0] = -1;
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 0);
	assert_int_equal(ipc_fill(&p->rx), 0);		/* EOF */
	assert_int_equal(ipc_next(&p->rx, &h, &o), 0);
	assert_int_equal(ipc_eof_check(&p->rx), -1);
	assert_string_equal(p->rx.err, "short read: connection closed inside "
	    "a frame (24 bytes pending)");
}

static void
test_eof_inside_header(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o;
	unsigned char	 buf[128];
	size_t		 len;

	/* A whole frame, then five bytes of the next header. */
	len = frame(buf, IPC_VERSION, MSG_HELLO, 1, "{}", 2);
	write_all(p->fd[0], buf, len);
	write_all(p->fd[0], buf, 5);
	close(p->fd[0]);
	p->fd[0] = -1;
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 1);
	json_object_put(o);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 0);
	assert_int_equal(ipc_fill(&p->rx), 0);
	assert_int_equal(ipc_eof_check(&p->rx), -1);
	assert_non_null(strstr(p->rx.err, "(5 bytes pending)"));
}

static void
test_eof_on_boundary(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	json_object	*o;

	assert_int_equal(ipc_queue(&p->tx, MSG_HELLO, 0, NULL), 0);
	assert_int_equal(ipc_flush_blocking(&p->tx), 1);
	close(p->fd[0]);
	p->fd[0] = -1;
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(ipc_next(&p->rx, &h, &o), 1);
	json_object_put(o);
	assert_int_equal(ipc_fill(&p->rx), 0);
	assert_int_equal(ipc_eof_check(&p->rx), 0);
}

static void
test_next_bad_frames(void **state)
{
	static const struct {
		unsigned	 version;
		unsigned	 type;
		const char	*payload;
		size_t		 len;
		const char	*err;
	} bad[] = {
		{ 9, MSG_HELLO, "{}", 2, "protocol version 9, expected 2" },
		{ IPC_VERSION, 77, "{}", 2, "unknown message type 77" },
		{ IPC_VERSION, MSG_HELLO, "{} x", 4, "1 bytes left over after "
		  "the payload" },
		{ IPC_VERSION, MSG_HELLO, "[]", 2, "payload is not a JSON "
		  "object" },
		{ IPC_VERSION, MSG_HELLO, "{\"a\0\":1}", 8, "payload contains "
		  "a NUL byte" },
	};
	struct pair	*p = *state;
	struct ipc_hdr	 h;
	struct ipc_conn	 rx;
	json_object	*o;
	unsigned char	 buf[128];
	size_t		 i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ipc_init(&rx, p->fd[1]);
		len = frame(buf, bad[i].version, bad[i].type, 1,
		    bad[i].payload, bad[i].len);
		write_all(p->fd[0], buf, len);
		assert_int_equal(ipc_fill(&rx), 1);
		assert_int_equal(ipc_next(&rx, &h, &o), -1);
		assert_null(o);
		assert_string_equal(rx.err, bad[i].err);
		ipc_free(&rx);
	}
}

/* An oversize length is refused from the header alone, before any wait. */
static void
test_next_oversize(void **state)
{
	struct pair	*p = *state;
	struct ipc_hdr	 h = { IPC_VERSION, MSG_JOB_DONE,
			     IPC_MAX_PAYLOAD + 1, 3 };
	json_object	*o;
	unsigned char	 buf[IPC_HDR_LEN];

	ipc_hdr_pack(&h, buf);
	write_all(p->fd[0], buf, sizeof(buf));
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(ipc_next(&p->rx, &h, &o), -1);
	assert_non_null(strstr(p->rx.err, "over the limit"));
	/* Nothing was reserved for the announced payload. */
	assert_true(p->rx.in.cap < IPC_MAX_PAYLOAD);
}

static void
test_fill_nothing(void **state)
{
	struct pair	*p = *state;
	int		 fl;

	fl = fcntl(p->fd[1], F_GETFL);
	assert_int_equal(fcntl(p->fd[1], F_SETFL, fl | O_NONBLOCK), 0);
	assert_int_equal(ipc_fill(&p->rx), 1);
	assert_int_equal(p->rx.in.len, 0);
	assert_string_equal(p->rx.err, "");
}

static void
test_io_errors(void **state)
{
	struct pair	*p = *state;
	struct ipc_conn	 c;

	/* Writing to a closed peer. */
	close(p->fd[1]);
	p->fd[1] = -1;
	assert_int_equal(ipc_queue(&p->tx, MSG_HELLO, 0, NULL), 0);
	assert_int_equal(ipc_flush(&p->tx), -1);
	assert_string_equal(p->tx.err, "write: Broken pipe");

	/* Reading a descriptor that is not open. */
	ipc_init(&c, -1);
	assert_int_equal(ipc_fill(&c), -1);
	assert_string_equal(c.err, "read: Bad file descriptor");
	ipc_free(&c);
}

static void
test_getters(void **state)
{
	json_object	*o;
	const char	*s = NULL;
	int64_t		 n = 0;
	char		 err[128];

	(void)state;
	o = json_tokener_parse("{\"s\":\"str\",\"i\":7,\"neg\":-3,"
	    "\"d\":1.5,\"is\":\"7\",\"big\":9223372036854775807}");
	assert_non_null(o);
	assert_int_equal(ipc_get_str(o, "s", &s, err, sizeof(err)), 0);
	assert_string_equal(s, "str");
	assert_int_equal(ipc_get_str(o, "missing", &s, err, sizeof(err)), -1);
	assert_string_equal(err, "field \"missing\": expected a string");
	assert_int_equal(ipc_get_str(o, "i", &s, err, sizeof(err)), -1);
	assert_string_equal(err, "field \"i\": expected a string");

	assert_int_equal(ipc_get_int(o, "i", 0, 10, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 7);
	assert_int_equal(ipc_get_int(o, "i", 7, 7, &n, err, sizeof(err)), 0);
	assert_int_equal(ipc_get_int(o, "i", 0, 6, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "field \"i\": 7 out of range");
	assert_int_equal(ipc_get_int(o, "neg", 0, 10, &n, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "field \"neg\": -3 out of range");
	assert_int_equal(ipc_get_int(o, "d", 0, 10, &n, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "field \"d\": expected an integer");
	assert_int_equal(ipc_get_int(o, "is", 0, 10, &n, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "field \"is\": expected an integer");
	assert_int_equal(ipc_get_int(o, "nope", 0, 10, &n, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "field \"nope\": expected an integer");
	assert_int_equal(ipc_get_int(o, "big", 0, INT64_MAX, &n, err,
	    sizeof(err)), 0);
	assert_true(n == INT64_MAX);
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_short),
		cmocka_unit_test(test_hdr_bad_version),
		cmocka_unit_test(test_hdr_unknown_type),
		cmocka_unit_test(test_hdr_oversize),
		cmocka_unit_test(test_payload_parse),
		cmocka_unit_test_setup_teardown(test_queue_next, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(test_split_reads, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(test_big_frame, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(test_eof_inside_frame,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_eof_inside_header,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_eof_on_boundary,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_next_bad_frames,
		    pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_next_oversize, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(test_fill_nothing, pair_setup,
		    pair_teardown),
		cmocka_unit_test_setup_teardown(test_io_errors, pair_setup,
		    pair_teardown),
		cmocka_unit_test(test_getters),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("ipc", tests, NULL, NULL);
}
