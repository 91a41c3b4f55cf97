/*
 * Logging shared by the supervisor and the workers: one line per record,
 * tagged with the process that wrote it, to logs/clawvisor.log and, in the
 * foreground, to stderr.
 */
#ifndef CLAWVISOR_LOG_H
#define CLAWVISOR_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

int	 log_open(const char *tag, const char *path, int to_stderr);
void	 log_set_tag(const char *tag);
void	 log_set_level(enum log_level);
int	 log_level_parse(const char *, enum log_level *);
const char *log_level_name(void);
void	 log_use_syslog(void);
int	 log_using_syslog(void);
int	 log_reopen(void);
void	 log_close(void);

void	 log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
