/*
 * A file dropped in queue/incoming/: queue_parse() takes its bytes as
 * they are on disk, and what it accepts is routed as queue_msg_new() would
 * (against a fixed configuration with agents and a team).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char settings[] =
    "{\"agents\": {"
    "\"default\": {\"name\": \"Default\"},"
    "\"coder\": {\"name\": \"Coder\", \"provider\": \"openai\"},"
    "\"writer\": {\"name\": \"Writer\"},"
    "\"ops\": {\"name\": \"Ops\", \"provider\": \"command\","
    " \"command\": [\"/bin/true\"]}},"
    "\"teams\": {\"dev\": {\"name\": \"Dev Team\","
    " \"agents\": [\"coder\", \"writer\"], \"leader_agent\": \"coder\"}}}";

static struct config *conf;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	setenv("HOME", "/home/fuzz", 1);
	log_open("fuzz", NULL, 0);
	if ((conf = config_parse(settings, strlen(settings),
	    "/home/fuzz/.tinyclaw", err, sizeof(err))) == NULL)
		abort();
	return 0;
}

/* Who a broken file names: the three fields, each one line of UTF-8. */
static void
salvage(const char *data, size_t size)
{
	static const char *const need[] = { "channel", "sender", "messageId" };
	json_object	*o, *v;
	const char	*s;
	size_t		 i, n;

	if ((o = salvage_sender(data, size)) == NULL)
		return;
	for (i = 0; i < 3; i++) {
		if (!json_object_object_get_ex(o, need[i], &v) ||
		    !json_object_is_type(v, json_type_string))
			abort();
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
		if (n == 0 || !utf8_valid(s, n) || memchr(s, '/', n) != NULL ||
		    memchr(s, '\n', n) != NULL)
			abort();
	}
	json_object_put(o);
}

static void
route(json_object *obj)
{
	char	*agent, *text, *multi, *reply;
	int	 team;

	if (route_message(conf, obj, &agent, &text, &team, &multi) != 0)
		abort();
	/* Routed to a configured agent, or to "error" for a multi-mention. */
	if (multi != NULL) {
		if (strcmp(agent, "error") != 0)
			abort();
		reply = route_multi_reply(multi);
		free(reply);
	} else if (config_agent(conf, agent) == NULL)
		abort();
	free(agent);
	free(text);
	free(multi);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object	*obj, *v;
	char		 why[256];
	int		 incomplete, n;

	why[0] = '\0';
	if (queue_parse((const char *)data, size, &obj, &incomplete, why,
	    sizeof(why)) == -1) {
		if (obj != NULL || why[0] == '\0' ||
		    !utf8_valid(why, strlen(why)) || strchr(why, '\n') != NULL)
			abort();
		salvage((const char *)data, size);
		return 0;
	}
	if (obj == NULL || incomplete ||
	    !json_object_is_type(obj, json_type_object))
		abort();
	/* What is accepted has no NUL in its text, and numbers in range. */
	v = json_object_object_get(obj, "message");
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		abort();
	n = queue_msg_attempt("fuzz", obj);
	if (n < 0 || n > CONFIG_MAX_ATTEMPTS)
		abort();
	if (queue_msg_first_seen("fuzz", obj) < 0 ||
	    queue_msg_retry_at("fuzz", obj) < 0)
		abort();
	route(obj);
	json_object_put(obj);
	return 0;
}
