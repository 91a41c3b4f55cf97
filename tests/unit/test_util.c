/*
 * Helpers of common/util.c that decide file names: name_shorten() keeps a
 * name part within its bound, the same way every time, and keeps two long
 * parts with a common prefix apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void
test_short_kept(void **state)
{
	char *s;

	(void)state;
	s = name_shorten("discord", 64);
	assert_string_equal(s, "discord");
	free(s);
	s = name_shorten("", 64);
	assert_string_equal(s, "");
	free(s);
	/* Exactly at the bound: kept. */
	s = name_shorten("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 30);
	assert_string_equal(s, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	free(s);
}

static void
test_long_shortened(void **state)
{
	char	long1[301], long2[301], *a, *b, *c;
	size_t	i;

	(void)state;
	memset(long1, 'x', 300);
	long1[300] = '\0';
	memcpy(long2, long1, sizeof(long2));
	long2[299] = 'y';
	a = name_shorten(long1, 160);
	b = name_shorten(long2, 160);
	c = name_shorten(long1, 160);
	assert_int_equal(strlen(a), 160);
	assert_int_equal(strlen(b), 160);
	/* A prefix, a dash and 16 hex digits. */
	assert_memory_equal(a, long1, 143);
	assert_int_equal(a[143], '-');
	for (i = 144; i < 160; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	/* The same input, the same name; a different one, another. */
	assert_string_equal(a, c);
	assert_string_not_equal(a, b);
	/* One byte over the bound is shortened too. */
	free(c);
	long1[161] = '\0';
	c = name_shorten(long1, 160);
	assert_int_equal(strlen(c), 160);
	assert_int_equal(c[143], '-');
	free(a);
	free(b);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_kept),
		cmocka_unit_test(test_long_shortened),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
