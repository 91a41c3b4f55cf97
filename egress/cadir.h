/*
 * The trusted certificates as a hashed directory for libtls's ca_path
 * (egress/cadir.c).
 */
#ifndef CLAWVISOR_CADIR_H
#define CLAWVISOR_CADIR_H

#include <stddef.h>

/*
 * The system's directory of trusted certificates ($SSL_CERT_DIR, else
 * OpenSSL's default) if it is hashed (c_rehash names in it), else NULL.
 */
const char	*cadir_system(void);

/*
 * Make dir (0700) hold every certificate of files (NULL entries skipped),
 * one file each, named by subject hash, in place of what an earlier call
 * left there. The number of certificates written, or -1 (logged).
 */
long	cadir_build(const char *dir, const char *const files[],
	    size_t nfiles);

#endif
