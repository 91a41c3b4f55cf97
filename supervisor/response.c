/*
 * Responses as TinyClaw writes them: {channel, sender, senderId?, message,
 * originalMessage, timestamp, messageId, agent, files?}, the text made valid
 * UTF-8, [send_file:] tags resolved, and cut past 4000 characters as
 * TinyClaw cuts (3900 characters and "[Response truncated...]"), counting
 * characters as JavaScript does, in UTF-16 code units.
 */
#include <stdlib.h>
#include <string.h>

#include "sendfile.h"
#include "supervisor.h"
#include "util.h"

#define CUT_OVER	4000
#define CUT_KEEP	3900
#define CUT_NOTE	"\n\n[Response truncated...]"

/*
 * Length in UTF-16 code units, as JavaScript's String.length counts, and
 * the byte length of the longest prefix of at most `units` code units that
 * does not split a character. Invalid bytes count one unit each.
 */
size_t
utf16_span(const char *s, size_t units, size_t *prefix)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n, total = 0, len = strlen(s);
	unsigned		 cp;

	if (prefix != NULL)
		*prefix = 0;
	while (i < len) {
		if ((n = utf8_seq(p + i, len - i, &cp)) == 0) {
			n = 1;
			cp = 0;
		}
		total += cp >= 0x10000 ? 2 : 1;
		if (prefix != NULL && total <= units)
			*prefix = i + n;
		i += n;
	}
	return total;
}

/* JavaScript's s.length. */
size_t
utf16_len(const char *s)
{
	return utf16_span(s, 0, NULL);
}

/* Text must be valid UTF-8 (utf8_clean). */
char *
response_cut(const char *s)
{
	size_t	 keep;
	char	*r;

	if (utf16_span(s, CUT_KEEP, &keep) <= CUT_OVER)
		return xstrdup(s);
	r = xmalloc(keep + sizeof(CUT_NOTE));
	memcpy(r, s, keep);
	memcpy(r + keep, CUT_NOTE, sizeof(CUT_NOTE));
	return r;
}

static void
copy_field(json_object *dst, json_object *src, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(src, key, &v))
		json_object_object_add(dst, key, json_object_get(v));
}

/*
 * Every response, notice and canned reply is built here. senderId goes
 * along: TinyClaw 0.0.5's clients forget a message after 10 minutes and
 * then deliver a response to its senderId, or throw it away if it has none
 * (a dead-letter notice comes about 30 minutes after the message with the
 * default timeout and attempts).
 */
static json_object *
response_base(json_object *msg, const char *text)
{
	json_object *o = json_object_new_object();

	copy_field(o, msg, "channel");
	copy_field(o, msg, "sender");
	copy_field(o, msg, "senderId");
	json_object_object_add(o, "message", json_object_new_string(text));
	json_object_object_add(o, "originalMessage", json_object_get(
	    json_object_object_get(msg, "message")));
	json_object_object_add(o, "timestamp",
	    json_object_new_int64(now_ms()));
	copy_field(o, msg, "messageId");
	return o;
}

json_object *
response_notice(json_object *msg, const char *agent, const char *text)
{
	json_object *o = response_base(msg, text);

	if (agent != NULL)
		json_object_object_add(o, "agent", json_object_new_string(agent));
	return o;
}

/*
 * The agent's reply made valid UTF-8, its [send_file:] tags resolved in
 * the agent's own working directory and mapping; the resolved files are
 * copied now, while no later run of the agent can have changed them (att
 * remembers them across a chain's steps), and the copies appended to
 * *files (deduplicated).
 */
char *
response_scan(struct msg *m, const char *reply, char ***files, size_t *nfiles,
    struct attach_list *att)
{
	struct sendfile_ctx	 c;
	char			*clean, *text, **found;
	size_t			 nfound, i, j;

	clean = utf8_clean(reply, strlen(reply));
	c.container = m->job_mode != MODE_HOST;
	c.mapping = m->job_mapping;
	c.workdir = m->job_workdir != NULL ? m->job_workdir : "/";
	attach_ctx(&c, att);
	text = sendfile_scan(clean, &c, &found, &nfound);
	free(clean);
	for (i = 0; i < nfound; i++) {
		for (j = 0; j < *nfiles; j++)
			if (strcmp((*files)[j], found[i]) == 0)
				break;
		if (j < *nfiles) {
			free(found[i]);
			continue;
		}
		*files = xreallocarray(*files, *nfiles + 1, sizeof(char *));
		(*files)[(*nfiles)++] = found[i];
	}
	free(found);
	return text;
}

/* The response file's content for m: text cut as TinyClaw cuts it. */
json_object *
response_final(struct msg *m, const char *text, char **files, size_t nfiles)
{
	json_object	*o, *a;
	char		*cut;
	size_t		 i;

	cut = response_cut(text);
	o = response_notice(m->obj, m->agent, cut);
	free(cut);
	if (nfiles > 0) {
		a = json_object_new_array();
		for (i = 0; i < nfiles; i++)
			json_object_array_add(a,
			    json_object_new_string(files[i]));
		json_object_object_add(o, "files", a);
	}
	return o;
}

json_object *
response_build(struct msg *m, const char *reply, char **extra,
    size_t nextra)
{
	struct attach_list	 att;
	json_object		*o;
	char			*text, **files = NULL;
	size_t			 nfiles = 0, i;

	memset(&att, 0, sizeof(att));
	for (i = 0; i < nextra; i++) {
		files = xreallocarray(files, nfiles + 1, sizeof(char *));
		files[nfiles++] = xstrdup(extra[i]);
	}
	text = response_scan(m, reply, &files, &nfiles, &att);
	attach_list_free(&att);
	o = response_final(m, text, files, nfiles);
	for (i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	free(text);
	return o;
}
