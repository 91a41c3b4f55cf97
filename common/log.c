/*
 * One log line per call: "TIME TAG[PID]: LEVEL: text". The file is opened
 * O_APPEND so that the supervisor and every worker can share it; each line is
 * written with a single write(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static char		 log_tag[32] = "clawvisor";
static char		*log_path;
static int		 log_fd = -1;
static int		 log_stderr = 1;
static enum log_level	 log_lvl = LOG_LVL_INFO;
static int		 log_syslog;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int
log_open(const char *tag, const char *path, int to_stderr)
{
	log_set_tag(tag);
	log_stderr = to_stderr;
	free(log_path);
	log_path = path != NULL ? strdup(path) : NULL;
	return log_reopen();
}

void
log_set_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void
log_set_level(enum log_level lvl)
{
	log_lvl = lvl;
}

const char *
log_level_name(void)
{
	return log_names[log_lvl];
}

/* Lines go to syslog (LOG_DAEMON) instead of the log file. */
void
log_use_syslog(void)
{
	log_syslog = 1;
	openlog("clawvisor", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_using_syslog(void)
{
	return log_syslog;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

/* Called at start and on SIGUSR1, after logrotate has moved the file. */
int
log_reopen(void)
{
	int fd;

	if (log_path == NULL || log_syslog)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (log_fd != -1)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void
log_close(void)
{
	if (log_fd != -1)
		close(log_fd);
	log_fd = -1;
	free(log_path);
	log_path = NULL;
}

/*
 * One record, one line of text: a newline inside it (a file name, an
 * agent's error) becomes a space, so it cannot forge a record; other
 * control characters (an escape sequence for the terminal that shows the
 * log) and bytes that are not UTF-8 become \xNN. No allocation: this is
 * also how fatal() reports running out of memory.
 */
static void
log_clean(const char *in, char *out, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 i = 0, o = 0, n, k, left = strlen(in);
	unsigned		 cp;
	int			 esc;

	while (i < left) {
		if ((n = utf8_seq(p + i, left - i, &cp)) == 0)
			n = 1, cp = 0x80;
		esc = cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
		if (cp == '\n' || cp == '\r' || cp == '\t')
			esc = 0, cp = ' ';
		if (o + (esc ? 4 * n : n) >= len)
			break;
		if (cp == ' ')
			out[o++] = ' ';
		else if (esc)
			for (k = 0; k < n; k++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[i + k] >> 4];
				out[o++] = hex[p[i + k] & 15];
			}
		else {
			memcpy(out + o, p + i, n);
			o += n;
		}
		i += n;
	}
	out[o] = '\0';
}

static void	log_vwrite(enum log_level, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));

static void
log_vwrite(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char		 raw[3800], text[3800], line[4096];
	struct timespec	 ts;
	struct tm	 tm;
	int		 n, saved = errno;

	if (lvl > log_lvl)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	log_clean(raw, text, sizeof(text));
	if (log_syslog)
		syslog(prio[lvl], "%s: %s", log_tag, text);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_tag,
	    (int)getpid(), log_names[lvl], text);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A failed log write has nowhere left to be reported. */
	if (log_fd != -1 && !log_syslog)
		(void)!write(log_fd, line, n);
	if (log_stderr)
		(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(lvl, fmt, ap);
	va_end(ap);
}

#define LOG_FN(name, lvl)					\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	log_vwrite(lvl, fmt, ap);				\
	va_end(ap);						\
}

LOG_FN(log_error, LOG_LVL_ERROR)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
fatal(const char *fmt, ...)
{
	char	buf[1024];
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERROR, "fatal: %s: %s", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	char	buf[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERROR, "fatal: %s", buf);
	exit(1);
}
