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
};

char	*sendfile_scan(const char *text, const struct sendfile_ctx *,
	    char ***files, size_t *nfiles);

#endif
