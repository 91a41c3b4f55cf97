/*
 * The egress protocol's bodies (egress_msg.h): each read by a fixed list of
 * names and types, whatever else a frame holds. Fuzzed by
 * tests/fuzz/fuzz_egressmsg.c.
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "egress_msg.h"
#include "egress_token.h"
#include "ipc.h"

const char *const egress_msg_providers[] = { "anthropic", "openai", "none",
    NULL };
const char *const egress_msg_reasons[] = { "request", "not_allowed",
    "address", "token", "no_key", "upstream", "malformed", "tls", NULL };

/* The counters of MSG_EGRESS_STATS (docs/CONTROL.md, status "egress"). */
static const char *const egress_msg_counters[] = { "tokensLive",
    "tokensRegistered", "tokensRevoked", "connections", "connectionsOpen",
    "forwarded", "tunnels", "refused", NULL };

int
egress_msg_grant(json_object *o, const char **token, const char **agent,
    int *provider)
{
	int64_t	prov;
	char	err[64];

	if (ipc_get_str(o, "token", token, err, sizeof(err)) == -1 ||
	    ipc_get_str(o, "agent", agent, err, sizeof(err)) == -1 ||
	    ipc_get_int(o, "provider", 0, PROV_COMMAND, &prov, err,
	    sizeof(err)) == -1 || !egress_token_shape(*token, strlen(*token)))
		return -1;
	*provider = (int)prov;
	return 0;
}

json_object *
egress_msg_stats(json_object *o)
{
	json_object	*out = json_object_new_object(), *v, *keys, *k;
	size_t		 i, j;

	for (i = 0; egress_msg_counters[i] != NULL; i++)
		if (json_object_object_get_ex(o, egress_msg_counters[i], &v) &&
		    json_object_is_type(v, json_type_int) &&
		    json_object_get_int64(v) >= 0)
			json_object_object_add(out, egress_msg_counters[i],
			    json_object_new_int64(json_object_get_int64(v)));
	keys = json_object_new_array();
	if (json_object_object_get_ex(o, "keys", &v) &&
	    json_object_is_type(v, json_type_array))
		for (i = 0; i < EGRESS_NKEYS; i++)
			for (j = 0; j < json_object_array_length(v); j++) {
				k = json_object_array_get_idx(v, j);
				if (json_object_is_type(k, json_type_string) &&
				    strcmp(json_object_get_string(k),
				    egress_key_names[i]) == 0) {
					json_object_array_add(keys,
					    json_object_new_string(
					    egress_key_names[i]));
					break;
				}
			}
	json_object_object_add(out, "keys", keys);
	return out;
}

const char *
egress_msg_label(json_object *o, const char *k, const char *const *list)
{
	json_object	*v;
	const char	*s;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return *list;
	return NULL;
}
