/*
 * Helpers shared by the unit tests: scratch directories under $TMPDIR that
 * are removed afterwards, and small file utilities.
 */
#ifndef CLAWVISOR_UNIT_H
#define CLAWVISOR_UNIT_H

#include <stddef.h>
#include <sys/types.h>

char	*unit_tmpdir(void);
void	 unit_rmtree(const char *);
void	 unit_write(const char *path, const char *text, mode_t mode);
char	*unit_read(const char *path);

#endif
