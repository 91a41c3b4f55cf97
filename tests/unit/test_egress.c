/*
 * Tokens (common/egress_token.c): their shape, 256 random bits, no two
 * alike, and the comparison the proxy uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_token.h"
#include "unit.h"

#define NTOKENS	2000

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_token_shape_and_uniqueness(void **state)
{
	char	**t, buf[EGRESS_TOKEN_LEN + 1];
	size_t	  i, j, seen[16] = { 0 };

	(void)state;
	assert_int_equal(EGRESS_TOKEN_LEN, 6 + 64);
	t = calloc(NTOKENS, sizeof(*t));
	assert_non_null(t);
	for (i = 0; i < NTOKENS; i++) {
		egress_token_new(buf, sizeof(buf));
		assert_int_equal(strlen(buf), EGRESS_TOKEN_LEN);
		assert_memory_equal(buf, "cvtok-", 6);
		assert_true(egress_token_shape(buf, strlen(buf)));
		for (j = 6; j < EGRESS_TOKEN_LEN; j++)
			seen[buf[j] <= '9' ? buf[j] - '0' : buf[j] - 'a' + 10]++;
		t[i] = strdup(buf);
	}
	qsort(t, NTOKENS, sizeof(*t), cmp);
	for (i = 1; i < NTOKENS; i++)
		assert_string_not_equal(t[i - 1], t[i]);
	/* Every hex digit comes up about 1/16 of the time: 8000 each of
	 * 128000; a stuck or biased source falls far outside. */
	for (i = 0; i < 16; i++)
		assert_in_range(seen[i], 6000, 10000);
	for (i = 0; i < NTOKENS; i++)
		free(t[i]);
	free(t);
}

static void
test_token_shape_refused(void **state)
{
	char buf[EGRESS_TOKEN_LEN + 1];

	(void)state;
	egress_token_new(buf, sizeof(buf));
	assert_false(egress_token_shape(buf, strlen(buf) - 1));
	buf[10] = 'G';
	assert_false(egress_token_shape(buf, strlen(buf)));
	buf[10] = 'a';
	buf[0] = 'C';
	assert_false(egress_token_shape(buf, strlen(buf)));
	assert_false(egress_token_shape("sk-ant-api03-x", 14));
	assert_false(egress_token_shape("", 0));
}

static void
test_token_equal(void **state)
{
	char a[EGRESS_TOKEN_LEN + 1], b[EGRESS_TOKEN_LEN + 1];

	(void)state;
	egress_token_new(a, sizeof(a));
	memcpy(b, a, sizeof(a));
	assert_true(egress_token_equal(a, b));
	b[EGRESS_TOKEN_LEN - 1] ^= 1;
	assert_false(egress_token_equal(a, b));
	assert_false(egress_token_equal(a, "cvtok-"));
	assert_false(egress_token_equal("", a));
	assert_true(egress_token_equal("", ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_shape_and_uniqueness),
		cmocka_unit_test(test_token_shape_refused),
		cmocka_unit_test(test_token_equal),
	};

	return cmocka_run_group_tests_name("egress", tests, NULL, NULL);
}
