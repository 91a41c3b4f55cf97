/*
 * The egress proxy's request head (egress/proxy_req.c) as a sandbox could
 * send it: parsed in two pieces split where the first byte says, then
 * classified, and a provider request rewritten. What must hold whatever the
 * input: the rewritten head ends at its one blank line, carries exactly one
 * credential header, ours with the key, at its end: none the sandbox sent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_req.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define KEY	"sk-ant-FUZZKEY"

static size_t
count_ci(const char *s, const char *pat)
{
	size_t	n = 0, l = strlen(pat);

	for (; *s != '\0'; s++)
		if (strncasecmp(s, pat, l) == 0)
			n++;
	return n;
}

static void
check(const struct proxy_req *r, const struct proxy_target *t, int bearer)
{
	static struct egress_url up = { "https://api.example", "api.example",
	    443, "/base" };
	char	*out, want[64];
	size_t	 len;

	out = proxy_req_rewrite(r, t->path, &up, KEY, bearer,
	    bearer ? PROXY_OAUTH_BETA : NULL, &len);
	if (len != strlen(out) || len < 4 ||
	    strcmp(out + len - 4, "\r\n\r\n") != 0 ||
	    strstr(out, "\r\n\r\n") != out + len - 4)
		abort();
	if (count_ci(out, "\r\nx-api-key:") != (bearer ? 0u : 1u) ||
	    count_ci(out, "\r\nauthorization:") != (bearer ? 1u : 0u) ||
	    count_ci(out, "\r\nhost:") != 1 ||
	    (bearer && count_ci(out, "\r\nanthropic-beta:") != 1))
		abort();
	/* The one credential header is ours, with the key: the token's
	 * carriers (x-api-key, Authorization) are gone. */
	snprintf(want, sizeof(want), "\r\n%s%s\r\n\r\n", bearer ?
	    "Authorization: Bearer " : "x-api-key: ", KEY);
	if (len < strlen(want) || strcmp(out + len - strlen(want), want) != 0)
		abort();
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct egress_allow allow[2] = {
		{ "registry.npmjs.org", 443, 0, 0 },
		{ ".github.com", 443, 1, 0 },
	};
	struct egress_conf	ec;
	struct proxy_req	r;
	struct proxy_target	t;
	size_t			cut;
	long			n, m = 0;

	if (size < 1)
		return 0;
	cut = data[0] % (size);
	data++;
	size--;
	if (cut > size)
		cut = size;
	proxy_req_init(&r);
	n = proxy_req_feed(&r, (const char *)data, cut);
	if (n >= 0 && !r.complete)
		m = proxy_req_feed(&r, (const char *)data + cut, size - cut);
	if (n < 0 || m < 0 || (size_t)(n + m) > size) {
		if ((n >= 0 && m >= 0) || r.err[0] == '\0')
			abort();
		proxy_req_free(&r);
		return 0;
	}
	if (r.complete) {
		proxy_req_classify(&r, &t);
		if (t.kind == PK_PROVIDER)
			check(&r, &t, data[0] & 1);
		else if (t.kind == PK_CONNECT) {
			memset(&ec, 0, sizeof(ec));
			ec.allow = allow;
			ec.nallow = 2;
			(void)proxy_allow_match(&ec, t.host, t.port);
		} else if (t.why == NULL)
			abort();
		proxy_target_free(&t);
	}
	proxy_req_free(&r);
	return 0;
}
