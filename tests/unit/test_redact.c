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

#include "redact.h"

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
	};

	return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}
