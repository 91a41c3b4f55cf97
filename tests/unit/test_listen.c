/*
 * supervisor.metrics_listen addresses (common/listen.c): loopback literals
 * and absolute unix socket paths are taken, anything else is refused with
 * a reason; a unix path that something still answers on is not taken over.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "listen.h"
#include "unit.h"

static void
test_loopback_taken(void **state)
{
	static const char *const good[] = { "127.0.0.1:9464",
	    "127.1.2.3:1", "localhost:65535", "[::1]:9464", "/run/m.sock" };
	struct listen_addr	la;
	char			why[160];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		why[0] = '\0';
		if (listen_parse(good[i], &la, why, sizeof(why)) != 0) {
			print_error("%s refused: %s\n", good[i], why);
			fail();
		}
	}
	assert_int_equal(listen_parse("127.0.0.1:9464", &la, why,
	    sizeof(why)), 0);
	assert_int_equal(la.family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&la.ss)->sin_port),
	    9464);
	assert_int_equal(listen_parse("[::1]:80", &la, why, sizeof(why)), 0);
	assert_int_equal(la.family, AF_INET6);
	assert_int_equal(listen_parse("/tmp/x.sock", &la, why, sizeof(why)), 0);
	assert_int_equal(la.family, AF_UNIX);
	assert_string_equal(la.path, "/tmp/x.sock");
}

static void
test_others_refused(void **state)
{
	static const struct { const char *spec, *why; } bad[] = {
		{ "0.0.0.0:9464", "not a loopback address" },
		{ "10.0.0.1:9464", "not a loopback address" },
		{ "128.0.0.1:9464", "not a loopback address" },
		{ "[::]:9464", "not a loopback address" },
		{ "[::ffff:127.0.0.1]:9464", "not a loopback address" },
		{ "[fe80::1]:9464", "not a loopback address" },
		{ "example.com:9464", "not the name" },
		{ "127.0.0.1", "expected a loopback HOST:PORT" },
		{ "127.0.0.1:", "port" },
		{ "127.0.0.1:0", "port" },
		{ "127.0.0.1:65536", "port" },
		{ "127.0.0.1:+80", "port" },
		{ "127.0.0.1:80x", "port" },
		{ "::1:9464", "expected" },
		{ "[::1]9464", "expected" },
		{ ":9464", "expected" },
		{ "", "expected" },
		{ "metrics.sock", "expected" },
		{ "unix:/run/m.sock", "expected" },
	};
	struct listen_addr	la;
	char			why[160], longpath[200];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (listen_parse(bad[i].spec, &la, why, sizeof(why)) != -1 ||
		    strstr(why, bad[i].why) == NULL) {
			print_error("\"%s\": got \"%s\", wanted \"%s\"\n",
			    bad[i].spec, why, bad[i].why);
			fail();
		}
	}
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(listen_parse(longpath, &la, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "shorter than"));
}

static void
test_unix_socket(void **state)
{
	struct listen_addr	 la;
	struct stat		 st;
	char			 why[160], *dir, *path, *file, *text;
	int			 fd, fd2;

	(void)state;
	dir = unit_tmpdir();
	if (asprintf(&path, "%s/m.sock", dir) == -1 ||
	    asprintf(&file, "%s/plain", dir) == -1)
		fail();
	assert_int_equal(listen_parse(path, &la, why, sizeof(why)), 0);
	fd = listen_open(&la, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	/* Someone answers on it: not taken over. */
	assert_int_equal(listen_open(&la, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "something answers on it"));
	/* Left behind by a dead listener: taken over. */
	close(fd);
	fd2 = listen_open(&la, why, sizeof(why));
	assert_true(fd2 >= 0);
	close(fd2);
	/* Not a socket: left alone. */
	unit_write(file, "keep", 0600);
	assert_int_equal(listen_parse(file, &la, why, sizeof(why)), 0);
	assert_int_equal(listen_open(&la, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not a socket"));
	text = unit_read(file);
	assert_string_equal(text, "keep");
	free(text);
	free(path);
	free(file);
	unit_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_taken),
		cmocka_unit_test(test_others_refused),
		cmocka_unit_test(test_unix_socket),
	};

	return cmocka_run_group_tests_name("listen", tests, NULL, NULL);
}
