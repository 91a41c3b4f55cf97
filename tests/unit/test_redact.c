/*
 * Secret redaction (common/redact.c): NAME=value for allowlisted names, and
 * the literal values of those variables wherever they appear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_token.h"
#include "redact.h"
#include "util.h"

static char *names[] = { "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SHORT" };
#define NNAMES	(sizeof(names) / sizeof(names[0]))

static void
check(const char *text, const char *want, const char *file, int line)
{
	char *r;

	r = redact(text, names, NNAMES);
	if (r == NULL || strcmp(r, want) != 0) {
		print_error("redact(\"%s\")\n  got    \"%s\"\n"
		    "  wanted \"%s\"\n", text, r != NULL ? r : "(null)", want);
		free(r);
		_fail(file, line);
	}
	free(r);
}
#define assert_redacted(text, want) check(text, want, __FILE__, __LINE__)

static int
env_setup(void **state)
{
	(void)state;
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("OPENAI_API_KEY");
	unsetenv("SHORT");
	return 0;
}

static void
test_assignments(void **state)
{
	(void)state;
	assert_redacted("ANTHROPIC_API_KEY=sk-ant-123 rest",
	    "ANTHROPIC_API_KEY=" REDACTED " rest");
	assert_redacted("env: OPENAI_API_KEY=abc\nnext line",
	    "env: OPENAI_API_KEY=" REDACTED "\nnext line");
	/* The value ends at a quote, a comma or white space. */
	assert_redacted("{\"e\":\"OPENAI_API_KEY=abc\",\"f\":1}",
	    "{\"e\":\"OPENAI_API_KEY=" REDACTED "\",\"f\":1}");
	assert_redacted("'ANTHROPIC_API_KEY=x',y",
	    "'ANTHROPIC_API_KEY=" REDACTED "',y");
	assert_redacted("OPENAI_API_KEY=a,OPENAI_API_KEY=b",
	    "OPENAI_API_KEY=" REDACTED ",OPENAI_API_KEY=" REDACTED);
	/* At the very end, and with an empty value. */
	assert_redacted("x ANTHROPIC_API_KEY=", "x ANTHROPIC_API_KEY="
	    REDACTED);
	assert_redacted("--env SHORT=hunter2\t!", "--env SHORT=" REDACTED
	    "\t!");
}

static void
test_not_assignments(void **state)
{
	(void)state;
	/* Inside a longer name, another name, no '=', other case. */
	assert_redacted("MY_ANTHROPIC_API_KEY=foo", "MY_ANTHROPIC_API_KEY=foo");
	assert_redacted("OPENAI_API_KEY2=foo", "OPENAI_API_KEY2=foo");
	assert_redacted("PATH=/usr/bin", "PATH=/usr/bin");
	assert_redacted("OPENAI_API_KEY is not set", "OPENAI_API_KEY is not "
	    "set");
	assert_redacted("openai_api_key=foo", "openai_api_key=foo");
	assert_redacted("", "");
	/* After a character that cannot be in a name: a match. */
	assert_redacted("export:OPENAI_API_KEY=zz", "export:OPENAI_API_KEY="
	    REDACTED);
}

static void
test_values(void **state)
{
	(void)state;
	setenv("ANTHROPIC_API_KEY", "sk-ant-live-0123456789", 1);
	setenv("OPENAI_API_KEY", "sk-proj-abcdef", 1);
	assert_redacted("401: key sk-ant-live-0123456789 rejected",
	    "401: key " REDACTED " rejected");
	assert_redacted("sk-proj-abcdefsk-ant-live-0123456789",
	    REDACTED REDACTED);
	assert_redacted("Bearer sk-proj-abcdef, again sk-proj-abcdef.",
	    "Bearer " REDACTED ", again " REDACTED ".");
	/* A prefix of a value is not the value. */
	assert_redacted("sk-ant-live-01234 and sk-proj-abcde",
	    "sk-ant-live-01234 and sk-proj-abcde");
	/* Both shapes at once. */
	assert_redacted("ANTHROPIC_API_KEY=sk-ant-live-0123456789 used",
	    "ANTHROPIC_API_KEY=" REDACTED " used");
}

static void
test_short_values(void **state)
{
	(void)state;
	/* Values under six characters would redact ordinary words. */
	setenv("SHORT", "the", 1);
	setenv("OPENAI_API_KEY", "12345", 1);
	assert_redacted("the cat paid 12345", "the cat paid 12345");
	setenv("OPENAI_API_KEY", "123456", 1);
	assert_redacted("the cat paid 123456", "the cat paid " REDACTED);
	/* An empty value is never matched. */
	setenv("OPENAI_API_KEY", "", 1);
	assert_redacted("nothing here", "nothing here");
}

static void
test_no_names(void **state)
{
	char *r;

	(void)state;
	setenv("OPENAI_API_KEY", "sk-proj-abcdef", 1);
	r = redact("OPENAI_API_KEY=sk-proj-abcdef", NULL, 0);
	assert_string_equal(r, "OPENAI_API_KEY=sk-proj-abcdef");
	free(r);
	/* Only the listed names count, not every secret-looking one. */
	r = redact("OPENAI_API_KEY=sk-proj-abcdef", names, 1);
	assert_string_equal(r, "OPENAI_API_KEY=sk-proj-abcdef");
	free(r);
}

static void
test_long_text(void **state)
{
	char	*text, *r;
	size_t	 n = 100000, i;

	(void)state;
	setenv("OPENAI_API_KEY", "sk-proj-abcdef", 1);
	text = malloc(n + 1);
	assert_non_null(text);
	for (i = 0; i < n; i++)
		text[i] = "abc \n"[i % 5];
	text[n] = '\0';
	memcpy(text + n - 14, "sk-proj-abcdef", 14);
	r = redact(text, names, NNAMES);
	assert_int_equal(strlen(r), n - 14 + strlen(REDACTED));
	assert_string_equal(r + n - 14, REDACTED);
	assert_memory_equal(r, text, n - 14);
	free(r);
	free(text);
}

/*
 * A secret of 40 to 200 characters (issue 12), from characters that make
 * no accidental match with the text around it.
 */
static char *
make_secret(size_t len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
	    "klmnopqrstuvwxyz0123456789-_";
	char	*s;
	size_t	 i;

	s = malloc(len + 1);
	assert_non_null(s);
	for (i = 0; i < len; i++)
		s[i] = alphabet[(i * 7 + len) % (sizeof(alphabet) - 1)];
	s[len] = '\0';
	return s;
}

/* No piece of REDACT_FRAGMENT characters of secret anywhere in text. */
static void
assert_no_fragment(const char *text, size_t len, const char *secret,
    size_t cut)
{
	size_t i, slen = strlen(secret);

	for (i = 0; i + REDACT_FRAGMENT <= slen; i++)
		if (memmem(text, len, secret + i, REDACT_FRAGMENT) != NULL)
			fail_msg("secret of %zu cut at %zu: \"%.*s\" (at %zu) "
			    "left in \"%.*s\"", slen, cut, REDACT_FRAGMENT,
			    secret + i, i, (int)len, text);
}

/* r[0..len) is want (a string), or the test fails saying where. */
static void
assert_result(const char *r, size_t len, const char *want, size_t slen,
    size_t cut)
{
	if (len != strlen(want) || memcmp(r, want, len) != 0)
		fail_msg("secret of %zu cut at %zu: got \"%.*s\", wanted "
		    "\"%s\"", slen, cut, (int)len, r, want);
}

/*
 * Output cut at max_output_bytes at every offset inside the secret, the
 * rest dropped: the piece left at the end is redacted, in both shapes;
 * under REDACT_FRAGMENT characters, a piece is kept.
 */
static void
test_cut_end_every_offset(void **state)
{
	const char	*pre[] = { "error: key ", "ANTHROPIC_API_KEY=" };
	char		*secret, text[512], want[512], *r;
	size_t		 slen, cut, plen, len, i;

	(void)state;
	for (slen = 40; slen <= 200; slen++) {
		secret = make_secret(slen);
		setenv("ANTHROPIC_API_KEY", secret, 1);
		for (i = 0; i < 2; i++) {
			plen = strlen(pre[i]);
			for (cut = 0; cut <= slen; cut++) {
				len = plen + cut;
				memcpy(text, pre[i], plen);
				memcpy(text + plen, secret, cut);
				r = redact_cut(text, len, names, NNAMES,
				    REDACT_CUT_END, &len);
				if (i == 1 || cut >= REDACT_FRAGMENT)
					snprintf(want, sizeof(want), "%s%s",
					    pre[i], REDACTED);
				else
					snprintf(want, sizeof(want), "%s%.*s",
					    pre[i], (int)cut, secret);
				assert_result(r, len, want, slen, cut);
				free(r);
			}
		}
		/* Once for each length, the slow way. */
		memcpy(text, "key ", 4);
		memcpy(text + 4, secret, slen / 2);
		r = redact_cut(text, 4 + slen / 2, names, NNAMES,
		    REDACT_CUT_END, &len);
		assert_no_fragment(r, len, secret, slen / 2);
		free(r);
		free(secret);
	}
}

/*
 * A tail taken from the start of a cut: the piece of the secret at the
 * start is redacted; so is the rest of a NAME=value whose name was cut off
 * when the whole was redacted first.
 */
static void
test_cut_start_every_offset(void **state)
{
	char	*secret, text[512], want[512], *r, *whole;
	size_t	 slen, cut, len, wlen;

	(void)state;
	for (slen = 40; slen <= 200; slen++) {
		secret = make_secret(slen);
		setenv("ANTHROPIC_API_KEY", secret, 1);
		snprintf(text, sizeof(text), "%s and more", secret);
		for (cut = 0; cut < slen; cut++) {
			len = strlen(text + cut);
			r = redact_cut(text + cut, len, names, NNAMES,
			    REDACT_CUT_START, &len);
			if (slen - cut >= REDACT_FRAGMENT)
				snprintf(want, sizeof(want), "%s and more",
				    REDACTED);
			else
				snprintf(want, sizeof(want), "%s and more",
				    secret + cut);
			assert_result(r, len, want, slen, cut);
			free(r);
		}
		/* Redacted whole first, a secret not ours: cut anywhere. */
		unsetenv("ANTHROPIC_API_KEY");
		snprintf(text, sizeof(text), "x ANTHROPIC_API_KEY=%s y",
		    secret);
		whole = redact(text, names, NNAMES);
		wlen = strlen(whole);
		for (cut = 0; cut <= wlen; cut++)
			assert_no_fragment(whole + cut, wlen - cut, secret,
			    cut);
		free(whole);
		free(secret);
	}
}

/* Only a piece at a cut edge, and only one of REDACT_FRAGMENT or more. */
static void
test_cut_no_false_match(void **state)
{
	char	*r;
	size_t	 len;

	(void)state;
	setenv("ANTHROPIC_API_KEY", "sk-ant-api03-0123456789abcdef", 1);
	/* Seven characters of it at the end: an ordinary word's length. */
	r = redact_cut("key sk-ant-", 11, names, NNAMES, REDACT_CUT_END,
	    &len);
	assert_string_equal(r, "key sk-ant-");
	free(r);
	r = redact_cut("key sk-ant-a", 12, names, NNAMES, REDACT_CUT_END,
	    &len);
	assert_string_equal(r, "key " REDACTED);
	free(r);
	/* Not at the edge, or no cut there: kept. */
	r = redact_cut("sk-ant-api03 is how keys start", 30, names, NNAMES,
	    REDACT_CUT_END | REDACT_CUT_START, &len);
	assert_string_equal(r, "sk-ant-api03 is how keys start");
	free(r);
	r = redact_cut("start sk-ant-api03", 18, names, NNAMES, 0, &len);
	assert_string_equal(r, "start sk-ant-api03");
	free(r);
	/* The end of it at the start of a text cut there. */
	r = redact_cut("3456789abcdef said", 18, names, NNAMES,
	    REDACT_CUT_START, &len);
	assert_string_equal(r, REDACTED " said");
	free(r);
	/* A whole value, then a piece of it at the edge. */
	r = redact_cut("sk-ant-api03-0123456789abcdef sk-ant-api03-01", 45,
	    names, NNAMES, REDACT_CUT_END, &len);
	assert_string_equal(r, REDACTED " " REDACTED);
	free(r);
	/* The whole text a piece of it. */
	r = redact_cut("t-api03-0123", 12, names, NNAMES, REDACT_CUT_START |
	    REDACT_CUT_END, &len);
	assert_string_equal(r, REDACTED);
	free(r);
	/* A value under six characters is never matched, cut or not. */
	setenv("SHORT", "hunter", 1);
	unsetenv("ANTHROPIC_API_KEY");
	r = redact_cut("a hunt", 6, names, NNAMES, REDACT_CUT_END, &len);
	assert_string_equal(r, "a hunt");
	free(r);
}

/* Captured output may hold NUL bytes: they and what follows are kept. */
static void
test_cut_nul_bytes(void **state)
{
	static const char text[] = "a\0b sk-proj-abcdef\0c";
	char	*r;
	size_t	 len;

	(void)state;
	setenv("OPENAI_API_KEY", "sk-proj-abcdef", 1);
	r = redact_cut(text, sizeof(text) - 1, names, NNAMES, 0, &len);
	assert_int_equal(len, 6 + strlen(REDACTED));
	assert_memory_equal(r, "a\0b " REDACTED "\0c", len);
	free(r);
}

/* Egress tokens by their shape, whole or cut, wherever they are. */
static void
test_tokens(void **state)
{
	char	tok[EGRESS_TOKEN_LEN + 1], *text, *r;

	(void)state;
	egress_token_new(tok, sizeof(tok));
	xasprintf(&text, "401 for key %s, and again:%s.", tok, tok);
	r = redact(text, names, NNAMES);
	assert_string_equal(r, "401 for key [REDACTED], and again:"
	    "[REDACTED].");
	free(r);
	free(text);
	/* The start of one, cut off. */
	tok[20] = '\0';
	xasprintf(&text, "...%s", tok);
	r = redact(text, names, NNAMES);
	assert_string_equal(r, "...[REDACTED]");
	free(r);
	free(text);
	/* The prefix alone, or words that look like it, are left. */
	r = redact("cvtok- cvtok-xyz cvtoken", names, NNAMES);
	assert_string_equal(r, "cvtok- cvtok-xyz cvtoken");
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_assignments, env_setup),
		cmocka_unit_test_setup(test_not_assignments, env_setup),
		cmocka_unit_test_setup(test_values, env_setup),
		cmocka_unit_test_setup(test_short_values, env_setup),
		cmocka_unit_test_setup(test_no_names, env_setup),
		cmocka_unit_test_setup(test_long_text, env_setup),
		cmocka_unit_test_setup(test_cut_end_every_offset, env_setup),
		cmocka_unit_test_setup(test_cut_start_every_offset, env_setup),
		cmocka_unit_test_setup(test_cut_no_false_match, env_setup),
		cmocka_unit_test_setup(test_cut_nul_bytes, env_setup),
		cmocka_unit_test_setup(test_tokens, env_setup),
	};

	return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}
