/*
 * [send_file: PATH] tags in a reply: resolved to host files (through the
 * container path mapping, and in container modes only inside the agent's
 * working directory), stripped from the text, and any that could not be
 * resolved named in a warning appended to it.
 */
#ifndef CLAWVISOR_SENDFILE_H
#define CLAWVISOR_SENDFILE_H

#include <stddef.h>

#include "config.h"

struct sendfile_ctx {
	int			 container;
	enum path_mapping	 mapping;
	const char		*workdir;	/* host path */
	/*
	 * Called for each resolved file (once per path): what the response
	 * lists instead (a copy, sendfile_copy()), or NULL and *why. NULL
	 * here: the resolved path itself.
	 */
	char			*(*attach)(const char *real, void *arg,
				    const char **why);
	void			*arg;
};

char	*sendfile_scan(const char *text, const struct sendfile_ctx *,
	    char ***files, size_t *nfiles);

/*
 * Copy the regular file real (as resolved: symlinks are not followed, and
 * the file opened must still be that path) to a new file dir/name, mode
 * 0600, if it has at most max bytes. 0, or -1 and *why.
 */
int	 sendfile_copy(const char *real, int dirfd, const char *name,
	    size_t max, const char **why);
/* A file name for a copy: prefix, then base (made printable UTF-8 without
 * '/'), cut to NAME_MAX bytes keeping its extension. */
char	*sendfile_copy_name(const char *prefix, const char *base);

#endif
