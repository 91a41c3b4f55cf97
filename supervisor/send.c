/*
 * `clawvisor send [--agent ID] [--channel C] [--sender S] [--wait]
 * [--timeout SECONDS] TEXT...`: what a channel client does, from a shell.
 * The message is written under a dot-name in queue/incoming/ (which the
 * daemon never reads), given to the owner of that directory when we are
 * root (so that a daemon running as its own user can claim it), synced
 * and renamed into place. With --wait it then acts as that channel's
 * client for this message: it waits for the response in queue/outgoing/,
 * prints its text, and removes it.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "util.h"

#define SEND_WAIT_S	300
#define SEND_POLL_MS	50
#define SEND_REPLY_MAX	(64 * 1024 * 1024)

struct send {
	const char	*agent;
	const char	*channel;
	const char	*sender;
	int		 wait;
	long		 timeout;
	char		*text;
};

static int
send_usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "clawvisor: send: %s\n", why);
	fprintf(stderr, "usage: clawvisor [--home DIR] send [--agent ID] "
	    "[--channel C] [--sender S] [--wait] [--timeout SECONDS] "
	    "TEXT...\n");
	return 2;
}

/* What may stand in a file name as it is: A-Z a-z 0-9 . _ - */
static int
name_ok(const char *s)
{
	return *s != '\0' && *s != '.' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVW"
	    "XYZabcdefghijklmnopqrstuvwxyz0123456789._-") == strlen(s);
}

static int
send_args(struct send *s, int argc, char **argv)
{
	const char	*v;
	char		*end;
	size_t		 len = 0;
	int		 i, first;

	memset(s, 0, sizeof(*s));
	s->channel = "cli";
	s->timeout = SEND_WAIT_S;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--wait") == 0) {
			s->wait = 1;
			continue;
		}
		if (i + 1 == argc)
			return send_usage(NULL);
		v = argv[++i];
		if (strcmp(argv[i - 1], "--agent") == 0 && name_ok(v))
			s->agent = v;
		else if (strcmp(argv[i - 1], "--channel") == 0 && name_ok(v))
			s->channel = v;
		else if (strcmp(argv[i - 1], "--sender") == 0 && *v != '\0')
			s->sender = v;
		else if (strcmp(argv[i - 1], "--timeout") == 0) {
			errno = 0;
			s->timeout = strtol(v, &end, 10);
			if (errno != 0 || *end != '\0' || s->timeout < 1 ||
			    s->timeout > 86400)
				return send_usage("--timeout: expected seconds, "
				    "1 to 86400");
		} else
			return send_usage(strcmp(argv[i - 1], "--agent") == 0 ||
			    strcmp(argv[i - 1], "--channel") == 0 ? "an agent id "
			    "or channel is letters, digits, '.', '_' and '-'" :
			    NULL);
	}
	if (i == argc)
		return send_usage("no text");
	for (first = i; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s->text = xcalloc(1, len);
	for (i = first; i < argc; i++) {
		if (i > first)
			strlcat(s->text, " ", len);
		strlcat(s->text, argv[i], len);
	}
	if (s->text[strspn(s->text, " \t\n")] == '\0') {
		free(s->text);
		return send_usage("no text");
	}
	return 0;
}

/* The message, as TinyClaw's channel clients write one. */
static json_object *
send_message(const struct send *s, char *mid, size_t midlen)
{
	json_object	*o = json_object_new_object();
	struct passwd	*pw = getpwuid(getuid());
	char		 uid[32];
	int64_t		 now = now_ms();

	snprintf(mid, midlen, "%lld_%08x", (long long)now, arc4random());
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
	json_object_object_add(o, "channel", json_object_new_string(
	    s->channel));
	json_object_object_add(o, "sender", json_object_new_string(
	    s->sender != NULL ? s->sender : pw != NULL ? pw->pw_name : uid));
	json_object_object_add(o, "senderId", json_object_new_string(uid));
	json_object_object_add(o, "message", json_object_new_string(s->text));
	json_object_object_add(o, "timestamp", json_object_new_int64(now));
	json_object_object_add(o, "messageId", json_object_new_string(mid));
	if (s->agent != NULL)
		json_object_object_add(o, "agent", json_object_new_string(
		    s->agent));
	return o;
}

/* Write it under a dot-name, hand it to the directory's owner, rename. */
static int
send_write(const char *dir, const char *name, const char *text)
{
	struct stat	 st;
	char		 tmp[NAME_MAX + 1];
	size_t		 len = strlen(text), off = 0;
	ssize_t		 n;
	int		 dfd, fd = -1, saved;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "clawvisor: send: %s: %s\n", dir,
		    strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof(tmp), ".send-%d-%08x.tmp", (int)getpid(),
	    arc4random());
	if (fstat(dfd, &st) == -1 || (fd = openat(dfd, tmp, O_WRONLY |
	    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto fail;
	while (off < len) {
		if ((n = write(fd, text + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	/* Root writing for a daemon of its own user: the file is the
	 * directory owner's, as the channel clients' are. */
	if ((geteuid() == 0 && st.st_uid != 0 &&
	    fchown(fd, st.st_uid, st.st_gid) == -1) || fsync(fd) == -1 ||
	    close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name) == -1)
		goto fail;
	close(dfd);
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	(void)unlinkat(dfd, tmp, 0);
	close(dfd);
	fprintf(stderr, "clawvisor: send: cannot write %s/%s: %s\n", dir, name,
	    strerror(saved));
	return -1;
}

/*
 * The response to mid in outgoing/ (CHANNEL_MID_TIMESTAMP.json), printed
 * and removed: 1 when found, 0 not yet. *status: 0, or 1 if the message
 * was dead-lettered (the response is its notice) or the file has no reply
 * text (not the daemon's: it is left where it is).
 */
static int
send_take(const char *home, const struct send *s, const char *mid,
    const char *name, int *status)
{
	json_object	*o, *files, *m;
	char		 dir[PATH_MAX], prefix[NAME_MAX + 1], path[PATH_MAX];
	char		*buf = NULL, why[256];
	DIR		*d;
	struct dirent	*de;
	size_t		 len, i;
	int		 dfd, found = 0;

	snprintf(dir, sizeof(dir), "%s/queue/outgoing", home);
	snprintf(prefix, sizeof(prefix), "%s_%s_", s->channel, mid);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		return 0;
	}
	while (!found && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    file_read_regular(dirfd(d), de->d_name, SEND_REPLY_MAX,
		    &buf, &len, why, sizeof(why)) != 0)
			continue;
		if ((o = json_tokener_parse(buf)) == NULL) {
			free(buf);
			buf = NULL;
			continue;
		}
		found = 1;
		if (!json_object_object_get_ex(o, "message", &m) ||
		    !json_object_is_type(m, json_type_string)) {
			fprintf(stderr, "clawvisor: send: %s/%s is no response: "
			    "it has no \"message\" text; left there\n", dir,
			    de->d_name);
			*status = 1;
			json_object_put(o);
			break;
		}
		printf("%s\n", json_object_get_string(m));
		files = json_object_object_get(o, "files");
		for (i = 0; json_object_is_type(files, json_type_array) &&
		    i < json_object_array_length(files); i++)
			if (json_object_is_type(json_object_array_get_idx(files,
			    i), json_type_string))
				fprintf(stderr, "file: %s\n",
				    json_object_get_string(
				    json_object_array_get_idx(files, i)));
		json_object_put(o);
		(void)unlinkat(dirfd(d), de->d_name, 0);
		snprintf(path, sizeof(path), "%s/queue/dead-letter/%s", home,
		    name);
		*status = access(path, F_OK) == 0;
	}
	free(buf);
	closedir(d);
	return found;
}

int
send_main(const char *home, int argc, char **argv)
{
	struct timespec	 nap = { 0, SEND_POLL_MS * 1000000L };
	struct send	 s;
	json_object	*msg;
	char		 mid[64], name[NAME_MAX + 1], dir[PATH_MAX];
	int64_t		 deadline;
	int		 fd, r, status = 0;

	if ((r = send_args(&s, argc, argv)) != 0)
		return r;
	/* Without a daemon a reply can never come: say so before writing. */
	if ((fd = client_connect(home, 1)) == -1) {
		if (s.wait) {
			fprintf(stderr, "clawvisor: send: no daemon runs on %s: "
			    "start it first (clawvisor serve)\n", home);
			free(s.text);
			return EX_UNAVAILABLE;
		}
		fprintf(stderr, "clawvisor: send: no daemon runs on %s: the "
		    "message waits in queue/incoming/ until one starts\n",
		    home);
	} else
		close(fd);
	msg = send_message(&s, mid, sizeof(mid));
	snprintf(name, sizeof(name), "%s_%s.json", s.channel, mid);
	snprintf(dir, sizeof(dir), "%s/queue/incoming", home);
	r = send_write(dir, name, json_object_to_json_string_ext(msg,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(msg);
	free(s.text);
	if (r == -1)
		return 1;
	if (!s.wait) {
		printf("%s\n", mid);
		return 0;
	}
	for (deadline = mono_ms() + s.timeout * 1000; mono_ms() < deadline;
	    nanosleep(&nap, NULL))
		if (send_take(home, &s, mid, name, &status))
			return status;
	fprintf(stderr, "clawvisor: send: no response to %s within %ld s; the "
	    "message is still queued (clawvisor status)\n", mid, s.timeout);
	return EX_TEMPFAIL;
}
