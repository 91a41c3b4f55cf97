#!/bin/sh
# The exec fake of tests/integration/exec/fake_cli.py for the podman image
# (busybox sh, no python): test_exec_engines.py puts it in the suite's
# image as /usr/local/bin/claude. Exec'd runs act on their first argument:
#
#   lines N GAP    N stream-json lines, GAP s apart, then a "result" line;
#                  each carries "up", /proc/uptime when written (busybox
#                  date has no sub-second clock; uptime is not namespaced,
#                  so the test maps it to the host's clock)
#   exit N         "leaving with N" on stderr, exit N
#   sleep S        "sleeping PID" then sleep S
case "${1:-}" in
lines)
	i=0
	while [ "$i" -lt "$2" ]; do
		read -r up _ < /proc/uptime
		printf '{"type":"assistant","i":%d,"up":%s}\n' "$i" "$up"
		sleep "$3"
		i=$((i + 1))
	done
	printf '{"type":"result","result":"ok"}\n'
	exit 0
	;;
exit)
	echo "leaving with $2" >&2
	exit "$2"
	;;
sleep)
	echo "sleeping $$"
	exec sleep "$2"
	;;
esac
echo "fake: unknown ${1:-}" >&2
exit 64
