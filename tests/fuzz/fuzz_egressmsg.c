/*
 * The egress protocol's bodies (common/egress_msg.c) as either peer could
 * send them: the input is parsed as JSON (a frame's payload is one JSON
 * value, ipc_payload_parse) and read as a token registration, a stats
 * report and the metrics' labels. What must hold whatever the input: a
 * registration taken has a token's shape and a provider in range; the
 * stats kept hold only known counters, integers >= 0, and known key names
 * once each, and read again they are the same; a label is NULL or one of
 * its list.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "egress_msg.h"
#include "egress_token.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const counters[] = { "tokensLive", "tokensRegistered",
    "tokensRevoked", "connections", "connectionsOpen", "forwarded",
    "tunnels", "refused", NULL };

static int
listed(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static void
check_stats(json_object *in)
{
	json_object	*out, *again, *k;
	size_t		 i, j, n;

	out = egress_msg_stats(in);
	if (!json_object_is_type(out, json_type_object))
		abort();
	json_object_object_foreach(out, name, v) {
		if (strcmp(name, "keys") == 0)
			continue;
		if (!listed(name, counters) ||
		    !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) < 0)
			abort();
	}
	if (!json_object_object_get_ex(out, "keys", &k) ||
	    !json_object_is_type(k, json_type_array) ||
	    (n = json_object_array_length(k)) > EGRESS_NKEYS)
		abort();
	for (i = 0; i < n; i++) {
		for (j = 0; j < EGRESS_NKEYS; j++)
			if (strcmp(json_object_get_string(
			    json_object_array_get_idx(k, i)),
			    egress_key_names[j]) == 0)
				break;
		if (j == EGRESS_NKEYS)
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(json_object_get_string(
			    json_object_array_get_idx(k, i)),
			    json_object_get_string(
			    json_object_array_get_idx(k, j))) == 0)
				abort();
	}
	again = egress_msg_stats(out);
	if (!json_object_equal(out, again))
		abort();
	json_object_put(again);
	json_object_put(out);
}

static void
check_label(json_object *o, const char *k, const char *const *list)
{
	const char	*l = egress_msg_label(o, k, list);
	size_t		 i;

	if (l == NULL)
		return;
	for (i = 0; list[i] != NULL; i++)
		if (l == list[i])
			return;
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener	*tok;
	json_object		*o;
	const char		*t, *a;
	int			 p;

	if ((tok = json_tokener_new()) == NULL)
		abort();
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (o == NULL)
		return 0;
	if (egress_msg_grant(o, &t, &a, &p) == 0 &&
	    (!egress_token_shape(t, strlen(t)) || a == NULL || p < 0 ||
	    p > PROV_COMMAND))
		abort();
	check_stats(o);
	check_label(o, "provider", egress_msg_providers);
	check_label(o, "reason", egress_msg_reasons);
	json_object_put(o);
	return 0;
}
