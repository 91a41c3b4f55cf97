/*
 * Redaction works on two things: the "NAME=value" shape, whatever the value
 * (a key echoed by a tool may differ from ours), and the literal value of
 * each allowlisted variable in our environment, wherever it appears.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
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
match_assign(const char *start, const char *p, char *const *names, size_t n)
{
	size_t i, l;

	if (p > start && is_name_char(p[-1]))
		return 0;
	for (i = 0; i < n; i++) {
		l = strlen(names[i]);
		if (strncmp(p, names[i], l) == 0 && p[l] == '=')
			return l + 1;
	}
	return 0;
}

static size_t
match_value(const char *p, const char **vals, size_t n)
{
	size_t i, l;

	for (i = 0; i < n; i++) {
		if (vals[i] == NULL || *p != *vals[i])
			continue;
		l = strlen(vals[i]);
		if (strncmp(p, vals[i], l) == 0)
			return l;
	}
	return 0;
}

char *
redact(const char *text, char *const *names, size_t n)
{
	struct sbuf	  b = { NULL, 0, 0 };
	const char	 *p = text, **vals;
	size_t		  i, l;

	vals = xcalloc(n, sizeof(*vals));
	for (i = 0; i < n; i++)
		/* Short values would redact ordinary words. */
		if ((vals[i] = getenv(names[i])) != NULL &&
		    strlen(vals[i]) < 6)
			vals[i] = NULL;
	sbuf_add(&b, "", 0);
	while (*p != '\0') {
		if ((l = match_assign(text, p, names, n)) > 0) {
			sbuf_add(&b, p, l);
			sbuf_add(&b, REDACTED, strlen(REDACTED));
			p += l;
			while (*p != '\0' && !isspace((unsigned char)*p) &&
			    *p != '"' && *p != '\'' && *p != ',')
				p++;
		} else if ((l = match_value(p, vals, n)) > 0) {
			sbuf_add(&b, REDACTED, strlen(REDACTED));
			p += l;
		} else
			sbuf_add(&b, p++, 1);
	}
	free(vals);
	return b.s;
}
