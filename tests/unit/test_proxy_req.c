/*
 * The proxy's request head (egress/proxy_req.c): parsed by libhttp-parser
 * a byte at a time or whole, stopped at the end of the head, classified,
 * rewritten with the token swapped for the key, and the address checks of
 * CONNECT.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_req.h"
#include "unit.h"

#define TOKEN	"cvtok-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static const char post[] =
    "POST /v1/messages?beta=true HTTP/1.1\r\n"
    "Host: 127.0.0.1:8899\r\n"
    "x-api-key: " TOKEN "\r\n"
    "anthropic-version: 2023-06-01\r\n"
    "Content-Type: application/json\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "Content-Length: 7\r\n"
    "\r\n"
    "{\"a\":1}";

static void
test_head_whole_and_bytewise(void **state)
{
	struct proxy_req	r;
	size_t			i, used = 0;
	long			n;

	(void)state;
	proxy_req_init(&r);
	n = proxy_req_feed(&r, post, strlen(post));
	assert_true(r.complete);
	/* Stopped at the end of the head: the body is the caller's. */
	assert_int_equal(n, strlen(post) - 7);
	assert_string_equal(r.url, "/v1/messages?beta=true");
	assert_int_equal(r.nh, 6);
	assert_string_equal(proxy_req_header(&r, "X-API-KEY"), TOKEN);
	assert_string_equal(proxy_req_header(&r, "content-length"), "7");
	assert_null(proxy_req_header(&r, "authorization"));
	assert_int_equal(proxy_req_feed(&r, "more", 4), 0);
	proxy_req_free(&r);

	proxy_req_init(&r);
	for (i = 0; i < strlen(post) && !r.complete; i++) {
		n = proxy_req_feed(&r, post + i, 1);
		assert_true(n == 0 || n == 1);
		used += (size_t)n;
	}
	assert_true(r.complete);
	assert_int_equal(used, strlen(post) - 7);
	assert_string_equal(proxy_req_header(&r, "anthropic-version"),
	    "2023-06-01");
	proxy_req_free(&r);
}

static void
test_head_refused(void **state)
{
	struct proxy_req	 r;
	char			*big;
	size_t			 i;

	(void)state;
	proxy_req_init(&r);
	assert_int_equal(proxy_req_feed(&r, "GET / HTTP/1.1\r\nBad Header\r\n"
	    "\r\n", 29), -1);
	assert_non_null(strstr(r.err, "malformed request"));
	proxy_req_free(&r);

	proxy_req_init(&r);
	assert_int_equal(proxy_req_feed(&r, "GET / HTTP/1.1\r\nX: a\r\n b\r\n"
	    "\r\n", 26) >= 0 || *r.err != '\0', 1);
	proxy_req_free(&r);

	/* Over the head's bound. */
	big = malloc(PROXY_MAX_HEAD + 64);
	assert_non_null(big);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', PROXY_MAX_HEAD + 40);
	proxy_req_init(&r);
	assert_int_equal(proxy_req_feed(&r, big, PROXY_MAX_HEAD + 59), -1);
	assert_non_null(strstr(r.err, "request head over"));
	proxy_req_free(&r);
	free(big);

	/* Over the number of headers. */
	proxy_req_init(&r);
	assert_int_equal(proxy_req_feed(&r, "GET / HTTP/1.1\r\n", 16), 16);
	for (i = 0; i <= PROXY_MAX_HEADERS; i++)
		if (proxy_req_feed(&r, "A: b\r\n", 6) == -1)
			break;
	assert_int_equal(i, PROXY_MAX_HEADERS);
	assert_non_null(strstr(r.err, "headers"));
	proxy_req_free(&r);
}

static void
classify(const char *head, struct proxy_req *r, struct proxy_target *t)
{
	proxy_req_init(r);
	assert_true(proxy_req_feed(r, head, strlen(head)) > 0);
	assert_true(r->complete);
	proxy_req_classify(r, t);
}

static void
test_classify(void **state)
{
	struct proxy_req	r;
	struct proxy_target	t;

	(void)state;
	classify(post, &r, &t);
	assert_int_equal(t.kind, PK_PROVIDER);
	assert_string_equal(t.token, TOKEN);
	assert_string_equal(t.path, "/v1/messages?beta=true");
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("POST /v1/responses HTTP/1.1\r\nAuthorization: Bearer "
	    TOKEN "\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_PROVIDER);
	assert_string_equal(t.token, TOKEN);
	proxy_target_free(&t);
	proxy_req_free(&r);

	/* The bridge through HTTP_PROXY: the path is kept. */
	classify("GET http://127.0.0.1:8899/v1/models HTTP/1.1\r\n"
	    "x-api-key: " TOKEN "\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_PROVIDER);
	assert_string_equal(t.path, "/v1/models");
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("GET http://evil.example/steal HTTP/1.1\r\nx-api-key: "
	    TOKEN "\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_REFUSE);
	assert_non_null(strstr(t.why, "this host is neither"));
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("POST /v1/messages HTTP/1.1\r\nAuthorization: Basic x\r\n"
	    "\r\n", &r, &t);
	assert_int_equal(t.kind, PK_REFUSE);
	assert_string_equal(t.why, "egress: no token in the request "
	    "(x-api-key or Authorization: Bearer)");
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: "
	    "registry.npmjs.org:443\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_CONNECT);
	assert_string_equal(t.host, "registry.npmjs.org");
	assert_int_equal(t.port, 443);
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("CONNECT [::1]:22 HTTP/1.1\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_CONNECT);
	assert_string_equal(t.host, "::1");
	assert_int_equal(t.port, 22);
	proxy_target_free(&t);
	proxy_req_free(&r);

	classify("CONNECT a:b:443 HTTP/1.1\r\n\r\n", &r, &t);
	assert_int_equal(t.kind, PK_REFUSE);
	proxy_target_free(&t);
	proxy_req_free(&r);
}

static void
test_rewrite(void **state)
{
	struct proxy_req	 r;
	struct proxy_target	 t;
	struct egress_url	 up;
	const char		*why;
	char			*out;
	size_t			 len;

	(void)state;
	assert_int_equal(egress_url_parse("https://api.anthropic.com", &up,
	    &why), 0);
	classify(post, &r, &t);
	out = proxy_req_rewrite(&r, t.path, &up, "sk-ant-REAL", 0, NULL, &len);
	assert_int_equal(strlen(out), len);
	assert_string_equal(out,
	    "POST /v1/messages?beta=true HTTP/1.1\r\n"
	    "Host: api.anthropic.com\r\n"
	    "anthropic-version: 2023-06-01\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 7\r\n"
	    "x-api-key: sk-ant-REAL\r\n\r\n");
	assert_null(strstr(out, "cvtok-"));
	free(out);
	proxy_target_free(&t);
	proxy_req_free(&r);
	free(up.url);
	free(up.host);
	free(up.path);

	assert_int_equal(egress_url_parse("https://[::1]:9443/openai/", &up,
	    &why), 0);
	classify("POST /v1/responses HTTP/1.1\r\nAuthorization: Bearer "
	    TOKEN "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &r,
	    &t);
	out = proxy_req_rewrite(&r, t.path, &up, "sk-REAL", 1, NULL, &len);
	assert_string_equal(out,
	    "POST /openai/v1/responses HTTP/1.1\r\n"
	    "Host: [::1]:9443\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\n"
	    "Authorization: Bearer sk-REAL\r\n\r\n");
	free(out);
	proxy_target_free(&t);
	proxy_req_free(&r);

	/* An OAuth token: its beta flag once, after the request's own. */
	classify("POST /v1/messages HTTP/1.1\r\nx-api-key: " TOKEN "\r\n"
	    "anthropic-beta: a-1, oauth-2025-04-20 ,,b-2\r\n"
	    "Anthropic-Beta: c-3\r\n\r\n", &r, &t);
	out = proxy_req_rewrite(&r, t.path, &up, "sk-ant-oat01-REAL", 1,
	    PROXY_OAUTH_BETA, &len);
	assert_string_equal(out,
	    "POST /openai/v1/messages HTTP/1.1\r\n"
	    "Host: [::1]:9443\r\n"
	    "anthropic-beta: a-1,b-2,c-3,oauth-2025-04-20\r\n"
	    "Authorization: Bearer sk-ant-oat01-REAL\r\n\r\n");
	free(out);
	proxy_target_free(&t);
	proxy_req_free(&r);
	classify("POST /v1/messages HTTP/1.1\r\nx-api-key: " TOKEN
	    "\r\n\r\n", &r, &t);
	out = proxy_req_rewrite(&r, t.path, &up, "sk-ant-oat01-REAL", 1,
	    PROXY_OAUTH_BETA, &len);
	assert_non_null(strstr(out,
	    "\r\nanthropic-beta: oauth-2025-04-20\r\n"));
	free(out);
	proxy_target_free(&t);
	proxy_req_free(&r);
	free(up.url);
	free(up.host);
	free(up.path);
}

static void
test_allow_and_addresses(void **state)
{
	struct egress_conf	 ec;
	struct egress_allow	 a[3];
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	size_t			 i;
	static const char *const bad4[] = { "127.0.0.1", "10.1.2.3",
	    "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
	    "100.100.100.200", "0.0.0.0", "224.0.0.1", "255.255.255.255" };
	static const char *const good4[] = { "1.1.1.1", "172.32.0.1",
	    "160.79.104.10", "100.128.0.1" };
	static const char *const bad6[] = { "::1", "::", "fe80::1",
	    "fd00:ec2::254", "fc00::1", "ff02::1", "::ffff:127.0.0.1",
	    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe" };
	static const char *const good6[] = { "2606:4700::1111",
	    "::ffff:1.1.1.1" };

	(void)state;
	memset(&ec, 0, sizeof(ec));
	assert_int_equal(egress_allow_parse("registry.npmjs.org:443", &a[0]),
	    0);
	assert_int_equal(egress_allow_parse("*.github.com:443", &a[1]), 0);
	assert_int_equal(egress_allow_parse("10.0.0.5:8080", &a[2]), 0);
	ec.allow = a;
	ec.nallow = 3;
	assert_ptr_equal(proxy_allow_match(&ec, "registry.npmjs.org", 443),
	    &a[0]);
	assert_ptr_equal(proxy_allow_match(&ec, "REGISTRY.npmjs.org", 443),
	    &a[0]);
	assert_null(proxy_allow_match(&ec, "registry.npmjs.org", 80));
	assert_ptr_equal(proxy_allow_match(&ec, "api.github.com", 443), &a[1]);
	assert_null(proxy_allow_match(&ec, "github.com", 443));
	assert_null(proxy_allow_match(&ec, "evilgithub.com", 443));
	assert_ptr_equal(proxy_allow_match(&ec, "10.0.0.5", 8080), &a[2]);
	assert_true(a[2].literal);
	for (i = 0; i < 3; i++)
		free(a[i].host);

	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	for (i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
		assert_int_equal(inet_pton(AF_INET, bad4[i], &s4.sin_addr), 1);
		if (!proxy_addr_forbidden((struct sockaddr *)&s4))
			fail_msg("%s allowed", bad4[i]);
	}
	for (i = 0; i < sizeof(good4) / sizeof(good4[0]); i++) {
		assert_int_equal(inet_pton(AF_INET, good4[i], &s4.sin_addr), 1);
		if (proxy_addr_forbidden((struct sockaddr *)&s4))
			fail_msg("%s refused", good4[i]);
	}
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	for (i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		assert_int_equal(inet_pton(AF_INET6, bad6[i], &s6.sin6_addr), 1);
		if (!proxy_addr_forbidden((struct sockaddr *)&s6))
			fail_msg("%s allowed", bad6[i]);
	}
	for (i = 0; i < sizeof(good6) / sizeof(good6[0]); i++) {
		assert_int_equal(inet_pton(AF_INET6, good6[i], &s6.sin6_addr),
		    1);
		if (proxy_addr_forbidden((struct sockaddr *)&s6))
			fail_msg("%s refused", good6[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_whole_and_bytewise),
		cmocka_unit_test(test_head_refused),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_allow_and_addresses),
	};

	return cmocka_run_group_tests_name("proxy_req", tests, NULL, NULL);
}
