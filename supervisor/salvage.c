/*
 * Who sent a file that is not a valid message. TinyClaw 0.0.5 runs
 * jsonrepair over what it reads and answers a heartbeat with an unescaped
 * quote in it; clawvisor stays strict and keeps such a file in corrupt/,
 * but when the bytes still name a channel, a sender and a messageId the
 * sender gets a notice, so that the user learns the message was not
 * processed. Only string values of those keys are taken, each decoded by
 * json-c on its own.
 */
#include <string.h>

#include <json-c/json.h>

#include "supervisor.h"
#include "util.h"

/* Longer values are not what TinyClaw's clients write there. */
#define SALVAGE_VALUE_MAX	512

static const char *const salvage_keys[] = {
	"channel", "sender", "senderId", "messageId", "message", NULL
};

/* The JSON string starting at p (a '"'), decoded; NULL if there is none. */
static json_object *
salvage_string(const char *p, const char *end)
{
	const char	*q;
	json_object	*v;
	char		*lit;

	for (q = p + 1; q < end && *q != '"'; q++)
		if (*q == '\\' && ++q == end)
			return NULL;
	if (q >= end || q - p > SALVAGE_VALUE_MAX * 6)
		return NULL;
	lit = xstrndup(p, (size_t)(q - p + 1));
	v = json_tokener_parse(lit);
	free(lit);
	if (v != NULL && !json_object_is_type(v, json_type_string)) {
		json_object_put(v);
		v = NULL;
	}
	return v;
}

/* The first "key": "string" in buf; NULL if none. */
static json_object *
salvage_value(const char *buf, size_t len, const char *key)
{
	const char	*p = buf, *end = buf + len, *k;
	json_object	*v;
	size_t		 kl = strlen(key);

	while ((k = memmem(p, (size_t)(end - p), key, kl)) != NULL) {
		p = k + kl;
		if (k == buf || k[-1] != '"' || p >= end || *p != '"')
			continue;
		for (p++; p < end && strchr(" \t\r\n", *p) != NULL; p++)
			;
		if (p >= end || *p != ':')
			continue;
		for (p++; p < end && strchr(" \t\r\n", *p) != NULL; p++)
			;
		if (p < end && *p == '"' && (v = salvage_string(p, end)) !=
		    NULL)
			return v;
	}
	return NULL;
}

/* One line of valid UTF-8, not empty, fit for a file name part. */
static int
salvage_ok(json_object *v, const char *key)
{
	const char	*s = json_object_get_string(v);
	size_t		 i, n = (size_t)json_object_get_string_len(v);

	if (strcmp(key, "message") == 0)
		return utf8_valid(s, n);
	if (n == 0 || n > SALVAGE_VALUE_MAX || !utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '/' || s[i] == '\\')
			return 0;
	return 1;
}

json_object *
salvage_sender(const char *buf, size_t len)
{
	json_object	*o, *v;
	size_t		 i;

	o = json_object_new_object();
	for (i = 0; salvage_keys[i] != NULL; i++) {
		if ((v = salvage_value(buf, len, salvage_keys[i])) == NULL)
			continue;
		if (salvage_ok(v, salvage_keys[i]))
			json_object_object_add(o, salvage_keys[i], v);
		else
			json_object_put(v);
	}
	if (!json_object_object_get_ex(o, "channel", NULL) ||
	    !json_object_object_get_ex(o, "sender", NULL) ||
	    !json_object_object_get_ex(o, "messageId", NULL)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}
