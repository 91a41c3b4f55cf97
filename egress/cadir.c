/*
 * The certificates upstream TLS trusts (the system's and ca_file's) as
 * hashed directories for libtls's ca_path (DECISIONS 262). Given the
 * certificates in memory (tls_config_set_ca_mem), libtls parses the whole
 * bundle again for every connection it makes: about 140 certificates,
 * tens of milliseconds of the egress loop per upstream connection, while
 * every other connection waits. Given directories, OpenSSL reads only the
 * issuers a handshake asks for, each file named SUBJECTHASH.N as
 * c_rehash(1) names them.
 *
 * The system's own directory (OpenSSL's default, /etc/ssl/certs on
 * Debian, or $SSL_CERT_DIR) is used as it is when it is hashed, as
 * update-ca-certificates leaves it; then only ca_file's certificates are
 * written, into the home's directory. A system without one gets its
 * bundle written there too.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cadir.h"
#include "log.h"
#include "util.h"

/* A name c_rehash would give: 8 hex digits, a dot, a number. */
static int
cadir_ours(const char *name)
{
	size_t i;

	for (i = 0; i < 8; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	if (name[8] != '.' || name[9] == '\0')
		return 0;
	for (i = 9; name[i] != '\0'; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return 1;
}

/* The certificates of an earlier build gone; 0, or -1 with errno. */
static int
cadir_empty(int dfd)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (cadir_ours(de->d_name))
			(void)unlinkat(dfd, de->d_name, 0);
	closedir(d);
	return 0;
}

/* x as the next free SUBJECTHASH.N in dfd; 0, or -1 with errno. */
static int
cadir_add(int dfd, X509 *x)
{
	char	 name[32];
	FILE	*f;
	int	 fd, n, ok;

	for (n = 0; n < 1000; n++) {
		snprintf(name, sizeof(name), "%08lx.%d",
		    X509_subject_name_hash(x), n);
		if ((fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600)) != -1)
			break;
		if (errno != EEXIST)
			return -1;
	}
	if (n == 1000) {
		errno = EEXIST;
		return -1;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	ok = PEM_write_X509(f, x);
	if (fclose(f) == EOF || !ok) {
		if (ok)
			errno = EIO;
		return -1;
	}
	return 0;
}

const char *
cadir_system(void)
{
	DIR		*d;
	struct dirent	*de;
	const char	*dir;
	int		 hashed = 0;

	if ((dir = getenv(X509_get_default_cert_dir_env())) == NULL ||
	    *dir == '\0')
		dir = X509_get_default_cert_dir();
	/* A list (OpenSSL takes a:b) is not looked into: taken as it is. */
	if (strchr(dir, ':') != NULL)
		return dir;
	if ((d = opendir(dir)) == NULL)
		return NULL;
	while (!hashed && (de = readdir(d)) != NULL)
		hashed = cadir_ours(de->d_name);
	closedir(d);
	return hashed ? dir : NULL;
}

long
cadir_build(const char *dir, const char *const files[], size_t nfiles)
{
	X509	*x;
	FILE	*f;
	size_t	 i;
	int64_t	 t0 = mono_ms();
	long	 n = 0;
	int	 dfd;

	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warnx("egress: CA directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (cadir_empty(dfd) == -1) {
		log_warnx("egress: CA directory %s: %s", dir, strerror(errno));
		close(dfd);
		return -1;
	}
	for (i = 0; i < nfiles; i++) {
		if (files[i] == NULL)
			continue;
		/* The system bundle is a symbolic link on Debian: followed. */
		if ((f = fopen(files[i], "re")) == NULL) {
			log_warnx("egress: CA file %s: %s", files[i],
			    strerror(errno));
			continue;
		}
		while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
			if (cadir_add(dfd, x) == 0)
				n++;
			else
				log_warnx("egress: CA directory %s: %s", dir,
				    strerror(errno));
			X509_free(x);
		}
		/* The end of the file reads as "no start line". */
		ERR_clear_error();
		fclose(f);
	}
	close(dfd);
	log_debug("egress: %ld certificates written to %s (%lld ms)", n, dir,
	    (long long)(mono_ms() - t0));
	return n;
}
