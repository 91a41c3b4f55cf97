/*
 * Redaction works on two things: the "NAME=value" shape, whatever the value
 * (a key echoed by a tool may differ from ours), and the literal value of
 * each allowlisted variable in our environment, wherever it appears. Text
 * is redacted whole, before anything cuts it: a cut through a secret leaves
 * a piece that neither shape matches. Where the rest is gone (output past
 * max_output_bytes), a piece of a value at the cut edge is redacted too.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "egress_token.h"
#include "redact.h"
#include "util.h"

/* Shorter values would redact ordinary words. */
#define VALUE_MIN	6

struct sbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

struct span {
	const char	*s;
	size_t		 len;
};

static void
sbuf_add(struct sbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap == 0 ? 256 : b->cap * 2;
		b->s = xreallocarray(b->s, b->cap, 1);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static int
is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* If p starts NAME= for an allowlisted name (not inside a longer name). */
static size_t
match_assign(const char *start, const char *p, const char *end,
    const struct span *names, size_t n)
{
	size_t i, l;

	if (p > start && is_name_char(p[-1]))
		return 0;
	for (i = 0; i < n; i++) {
		l = names[i].len;
		if (*p == *names[i].s && (size_t)(end - p) > l &&
		    memcmp(p, names[i].s, l) == 0 && p[l] == '=')
			return l + 1;
	}
	return 0;
}

static size_t
match_value(const char *p, const char *end, const struct span *vals,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (*p == *vals[i].s && (size_t)(end - p) >= vals[i].len &&
		    memcmp(p, vals[i].s, vals[i].len) == 0)
			return vals[i].len;
	return 0;
}

/*
 * An egress token (SPEC §9) by its shape, whole or the start of one: the
 * worker and the daemon never hold its value in their environment, so
 * match_value() could not find it.
 */
static size_t
match_token(const char *p, const char *end)
{
	size_t	pl = sizeof(EGRESS_TOKEN_PREFIX) - 1, l;

	if ((size_t)(end - p) <= pl || memcmp(p, EGRESS_TOKEN_PREFIX, pl) != 0)
		return 0;
	for (l = pl; p + l < end && ((p[l] >= '0' && p[l] <= '9') ||
	    (p[l] >= 'a' && p[l] <= 'f')); l++)
		;
	return l > pl ? l : 0;
}

/*
 * The longest piece of REDACT_FRAGMENT or more bytes at the start of
 * text[0..len) that ends a value (head), or at its end that starts one
 * (!head); 0 if none.
 */
static size_t
match_edge(const char *text, size_t len, const struct span *vals, size_t n,
    int head)
{
	size_t i, k, best = 0;

	for (i = 0; i < n; i++)
		for (k = vals[i].len < len ? vals[i].len : len;
		    k >= REDACT_FRAGMENT && k > best; k--)
			if (head ? text[k - 1] == vals[i].s[vals[i].len - 1] &&
			    memcmp(text, vals[i].s + vals[i].len - k, k) == 0 :
			    text[len - k] == vals[i].s[0] &&
			    memcmp(text + len - k, vals[i].s, k) == 0) {
				best = k;
				break;
			}
	return best;
}

char *
redact_cut(const char *text, size_t len, char *const *names, size_t n,
    int cut, size_t *outlen)
{
	struct sbuf	 b = { NULL, 0, 0 };
	struct span	*nm, *vals;
	const char	*p = text, *end = text + len, *lit, *v;
	size_t		 i, l, nv = 0, head = 0, tail = 0;

	nm = xcalloc(n + 1, sizeof(*nm));
	vals = xcalloc(n + 1, sizeof(*vals));
	for (i = 0; i < n; i++) {
		nm[i].s = names[i];
		nm[i].len = strlen(names[i]);
		if ((v = getenv(names[i])) != NULL &&
		    (l = strlen(v)) >= VALUE_MIN) {
			vals[nv].s = v;
			vals[nv++].len = l;
		}
	}
	if (nv > 0 && (cut & REDACT_CUT_START))
		head = match_edge(text, len, vals, nv, 1);
	/* Cut at both ends, all of it may be from inside one value. */
	if ((cut & REDACT_CUT_START) && (cut & REDACT_CUT_END) &&
	    len >= REDACT_FRAGMENT)
		for (i = 0; i < nv && head < len; i++)
			if (memmem(vals[i].s, vals[i].len, text, len) != NULL)
				head = len;
	if (nv > 0 && (cut & REDACT_CUT_END))
		tail = match_edge(text, len, vals, nv, 0);
	sbuf_add(&b, "", 0);
	if (head > 0) {
		sbuf_add(&b, REDACTED, strlen(REDACTED));
		p += head;
	}
	/* A match may run into the tail piece; the rest of it goes below. */
	for (lit = p; p < end - tail; ) {
		if ((l = match_assign(text, p, end, nm, n)) > 0) {
			sbuf_add(&b, lit, p + l - lit);
			sbuf_add(&b, REDACTED, strlen(REDACTED));
			p += l;
			while (p < end && !isspace((unsigned char)*p) &&
			    *p != '"' && *p != '\'' && *p != ',')
				p++;
			lit = p;
		} else if ((l = match_token(p, end)) > 0) {
			sbuf_add(&b, lit, p - lit);
			sbuf_add(&b, REDACTED, strlen(REDACTED));
			p += l;
			lit = p;
		} else if ((l = match_value(p, end, vals, nv)) > 0) {
			sbuf_add(&b, lit, p - lit);
			sbuf_add(&b, REDACTED, strlen(REDACTED));
			p += l;
			lit = p;
		} else
			p++;
	}
	if (p > lit)
		sbuf_add(&b, lit, p - lit);
	if (p < end)
		sbuf_add(&b, REDACTED, strlen(REDACTED));
	free(nm);
	free(vals);
	if (outlen != NULL)
		*outlen = b.len;
	return b.s;
}

char *
redact(const char *text, char *const *names, size_t n)
{
	return redact_cut(text, strlen(text), names, n, 0, NULL);
}
