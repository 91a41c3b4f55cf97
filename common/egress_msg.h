/*
 * The bodies of the egress protocol's frames, read on either side: the
 * supervisor's orders as the egress process takes them, and the egress
 * process's reports as the supervisor takes them. The egress process is
 * the one that talks to sandboxes, so the supervisor keeps only what it
 * knows from its reports: a broken or subverted egress process can make
 * the counters wrong, not status lie about its state or crash its reader.
 */
#ifndef CLAWVISOR_EGRESS_MSG_H
#define CLAWVISOR_EGRESS_MSG_H

#include <json-c/json.h>

/* The labels the supervisor's metrics accept, NULL-terminated. */
extern const char *const egress_msg_providers[];
extern const char *const egress_msg_reasons[];

/* MSG_EGRESS_REGISTER's body: a token of a token's shape, an agent, a
 * provider in range. The strings point into o. 0, or -1. */
int	egress_msg_grant(json_object *o, const char **token,
	    const char **agent, int *provider);
/* MSG_EGRESS_STATS's body, as status shows it: the known counters that are
 * integers >= 0, and "keys", the known key names among the strings of that
 * array. A new object; never NULL. */
json_object	*egress_msg_stats(json_object *o);
/* o's member k if it is one of list's strings (that string), else NULL. */
const char	*egress_msg_label(json_object *o, const char *k,
		    const char *const *list);

#endif
