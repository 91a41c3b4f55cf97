/*
 * Tokens (common/egress_token.c): their shape, 256 random bits, no two
 * alike, and the comparison the proxy uses. The egress protocol's bodies
 * (common/egress_msg.c): what each side keeps of what the other sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "egress_msg.h"
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

static json_object *
parse(const char *text)
{
	json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

static void
test_grant(void **state)
{
	char		 tok[EGRESS_TOKEN_LEN + 1], text[256];
	const char	*t, *a;
	int		 p;
	json_object	*o;

	(void)state;
	egress_token_new(tok, sizeof(tok));
	snprintf(text, sizeof(text), "{\"token\":\"%s\",\"agent\":\"alpha\","
	    "\"provider\":1}", tok);
	o = parse(text);
	assert_int_equal(egress_msg_grant(o, &t, &a, &p), 0);
	assert_string_equal(t, tok);
	assert_string_equal(a, "alpha");
	assert_int_equal(p, PROV_OPENAI);
	json_object_put(o);
	/* A provider out of range or of another type, no agent, a token of
	 * another shape: refused. */
	snprintf(text, sizeof(text), "{\"token\":\"%s\",\"agent\":\"a\","
	    "\"provider\":3}", tok);
	o = parse(text);
	assert_int_equal(egress_msg_grant(o, &t, &a, &p), -1);
	json_object_put(o);
	snprintf(text, sizeof(text), "{\"token\":\"%s\",\"agent\":\"a\","
	    "\"provider\":\"0\"}", tok);
	o = parse(text);
	assert_int_equal(egress_msg_grant(o, &t, &a, &p), -1);
	json_object_put(o);
	snprintf(text, sizeof(text), "{\"token\":\"%s\",\"provider\":0}", tok);
	o = parse(text);
	assert_int_equal(egress_msg_grant(o, &t, &a, &p), -1);
	json_object_put(o);
	o = parse("{\"token\":\"sk-ant-real\",\"agent\":\"a\",\"provider\":0}");
	assert_int_equal(egress_msg_grant(o, &t, &a, &p), -1);
	json_object_put(o);
}

static void
test_stats_known_fields_only(void **state)
{
	json_object	*in, *out, *v;

	(void)state;
	/* What egress.c sends comes through whole. */
	in = parse("{\"tokensLive\":1,\"tokensRegistered\":5,"
	    "\"tokensRevoked\":4,\"keys\":[\"ANTHROPIC_API_KEY\","
	    "\"OPENAI_API_KEY\"],\"connections\":9,\"connectionsOpen\":2,"
	    "\"forwarded\":7,\"tunnels\":1,\"refused\":3}");
	out = egress_msg_stats(in);
	assert_true(json_object_equal(in, out));
	json_object_put(out);
	json_object_put(in);
	/* Status's own fields cannot be replaced, unknown ones are dropped,
	 * a counter that is not an integer >= 0 is left out, and "keys"
	 * holds only known names, once each (a null in it crashed the
	 * supervisor's egress_holds() before). */
	in = parse("{\"state\":\"running\",\"pid\":1,\"restarts\":0,"
	    "\"x\":{},\"tokensLive\":-1,\"tokensRevoked\":\"2\","
	    "\"forwarded\":1.5,\"refused\":6,\"keys\":[null,5,{},"
	    "\"HOME\",\"OPENAI_API_KEY\",\"OPENAI_API_KEY\","
	    "\"ANTHROPIC_API_KEY\"]}");
	out = egress_msg_stats(in);
	assert_string_equal(json_object_to_json_string_ext(out,
	    JSON_C_TO_STRING_PLAIN), "{\"refused\":6,\"keys\":["
	    "\"ANTHROPIC_API_KEY\",\"OPENAI_API_KEY\"]}");
	json_object_put(out);
	json_object_put(in);
	/* Not an object, or "keys" not an array: no keys. */
	in = parse("[1,2]");
	out = egress_msg_stats(in);
	assert_true(json_object_object_get_ex(out, "keys", &v));
	assert_int_equal(json_object_array_length(v), 0);
	assert_int_equal(json_object_object_length(out), 1);
	json_object_put(out);
	json_object_put(in);
	in = parse("{\"keys\":\"ANTHROPIC_API_KEY\"}");
	out = egress_msg_stats(in);
	assert_true(json_object_object_get_ex(out, "keys", &v));
	assert_int_equal(json_object_array_length(v), 0);
	json_object_put(out);
	json_object_put(in);
}

static void
test_labels_from_the_list(void **state)
{
	json_object *o;

	(void)state;
	o = parse("{\"provider\":\"openai\",\"reason\":\"no such\","
	    "\"n\":5,\"z\":null}");
	assert_ptr_equal(egress_msg_label(o, "provider", egress_msg_providers),
	    egress_msg_providers[1]);
	assert_null(egress_msg_label(o, "reason", egress_msg_reasons));
	assert_null(egress_msg_label(o, "n", egress_msg_reasons));
	assert_null(egress_msg_label(o, "z", egress_msg_reasons));
	assert_null(egress_msg_label(o, "none", egress_msg_reasons));
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_shape_and_uniqueness),
		cmocka_unit_test(test_token_shape_refused),
		cmocka_unit_test(test_token_equal),
		cmocka_unit_test(test_grant),
		cmocka_unit_test(test_stats_known_fields_only),
		cmocka_unit_test(test_labels_from_the_list),
	};

	return cmocka_run_group_tests_name("egress", tests, NULL, NULL);
}
