/*
 * Events for TinyClaw's visualiser and tools: one JSON file per event in
 * events/, named <ms>-<random>.json, {"type":…,"timestamp":ms,…} and a
 * newline, written atomically. Files older than a day are pruned.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

#define RETENTION_MS	(24LL * 3600 * 1000)
#define PRUNE_EVERY_MS	(60LL * 1000)

static int64_t last_prune;

static void
event_prune(int64_t now)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	last_prune = now;
	if ((fd = dup(sv.dir_events)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strtoll(de->d_name, NULL, 10) >
		    now - RETENTION_MS)
			continue;
		if (fstatat(sv.dir_events, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			unlinkat(sv.dir_events, de->d_name, 0);
	}
	closedir(d);
}

/* Takes ownership of fields (which may be NULL). */
void
event_emit(const char *type, json_object *fields)
{
	json_object	*o;
	const char	*s;
	char		 name[64], *buf;
	int64_t		 now = now_ms();
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	int		 i;

	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "timestamp", json_object_new_int64(now));
	if (fields != NULL) {
		json_object_object_foreach(fields, k, v)
			json_object_object_add(o, k, json_object_get(v));
		json_object_put(fields);
	}
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	xasprintf(&buf, "%s\n", s);
	i = snprintf(name, sizeof(name), "%lld-", (long long)now);
	for (; i < 20; i++)
		name[i] = alnum[arc4random_uniform(sizeof(alnum) - 1)];
	snprintf(name + i, sizeof(name) - i, ".json");
	if (file_write_atomic(sv.dir_events, name, buf, strlen(buf), 1) == -1)
		log_warnx("cannot write event %s: %s", type, strerror(errno));
	free(buf);
	json_object_put(o);
	if (now - last_prune > PRUNE_EVERY_MS)
		event_prune(now);
}
