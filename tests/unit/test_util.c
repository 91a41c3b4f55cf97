/*
 * common/util.c's text helpers: str_escape() makes any bytes one line of
 * printable UTF-8 and str_unescape() gives them back; utf8_ensure(). And
 * the one that decides file names: name_shorten() keeps a name part within
 * its bound, the same way every time, and keeps two long parts with a
 * common prefix apart.
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
check_escape(const char *in, size_t len, int bs, const char *want)
{
	char *e, *back;

	e = str_escape(in, len, bs);
	assert_string_equal(e, want);
	assert_true(utf8_valid(e, strlen(e)));
	if (bs) {
		assert_int_equal(str_unescape(e, &back), 0);
		assert_memory_equal(back, in, len);
		assert_int_equal(strlen(back), len);
		free(back);
	}
	free(e);
}

static void
test_escape(void **state)
{
	(void)state;
	check_escape("plain.json", 10, 1, "plain.json");
	check_escape("a\nb\tc\x1b[0m", 9, 1, "a\\x0ab\\x09c\\x1b[0m");
	check_escape("bad\xff\xc3", 5, 1, "bad\\xff\\xc3");
	check_escape("\xc3\xa9t\xc3\xa9", 5, 1, "\xc3\xa9t\xc3\xa9");
	/* C1 controls (U+009B is a CSI) and DEL. */
	check_escape("x\xc2\x9b" "1m\x7f", 6, 1, "x\\xc2\\x9b1m\\x7f");
	check_escape("a\\b", 3, 1, "a\\\\b");
	check_escape("a\\b", 3, 0, "a\\b");
	check_escape("\\x41", 4, 1, "\\\\x41");
}

static void
test_unescape_refuses(void **state)
{
	char *out;

	(void)state;
	assert_int_equal(str_unescape("a\\", &out), -1);
	assert_int_equal(str_unescape("a\\n", &out), -1);
	assert_int_equal(str_unescape("a\\x4", &out), -1);
	assert_int_equal(str_unescape("a\\xzz", &out), -1);
	assert_int_equal(str_unescape("a\\x00", &out), -1);
	assert_int_equal(str_unescape("A\\x42\\\\", &out), 0);
	assert_string_equal(out, "AB\\");
	free(out);
}

static void
test_ensure(void **state)
{
	const char	*r;
	char		*buf;

	(void)state;
	r = utf8_ensure("ok \xc3\xa9", &buf);
	assert_null(buf);
	assert_string_equal(r, "ok \xc3\xa9");
	r = utf8_ensure("{\"id\":\"x\xff\"}", &buf);
	assert_non_null(buf);
	assert_string_equal(r, "{\"id\":\"x\xef\xbf\xbd\"}");
	free(buf);
	assert_false(utf8_valid("a\0b", 3));
	assert_false(utf8_valid("\xed\xa0\x80", 3));	/* a surrogate */
}

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
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_unescape_refuses),
		cmocka_unit_test(test_ensure),
		cmocka_unit_test(test_short_kept),
		cmocka_unit_test(test_long_shortened),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
