#!/bin/sh
# The chaos test's agent: `provider.sh STATE_DIR MESSAGE`, run by clawvisor
# through the `command` provider (host mode directly, apple mode through the
# fake `container`). POSIX sh.
#
# MESSAGE is what chaos.py wrote, words of the form key=value:
#   chaos tok=TOKEN id=MESSAGEID mode=MODE sleep=SECONDS fails=K
# MODE is one of
#   ok          sleep, then reply "chaos-reply id=MESSAGEID tok=TOKEN"
#   flaky       fail transiently (exit 1) on the first K runs, then as ok
#   transient   always fail transiently (exit 1)
#   exit127     exit 127 at once: terminal ("command not found")
#   auth        print "Invalid API key" on stderr and exit 1: terminal
#   signal      kill itself with SIGKILL: transient
#   hang        sleep far past timeout_seconds: the daemon times it out
# Runs are counted in STATE_DIR/TOKEN.runs (one line per run: pid and the
# time it started) so that chaos.py can tell how often each message was
# really started, and each run that succeeds adds a line (pid, time) to
# STATE_DIR/TOKEN.ok just before it replies: a run after a success must be
# explained by a kill in between.
state=$1
msg=$2
tok= id= mode=ok sleep=0 fails=0
for w in $msg; do
	case $w in
	tok=*) tok=${w#tok=} ;;
	id=*) id=${w#id=} ;;
	mode=*) mode=${w#mode=} ;;
	sleep=*) sleep=${w#sleep=} ;;
	fails=*) fails=${w#fails=} ;;
	esac
done
if [ -z "$tok" ]; then
	echo "provider.sh: no tok= in the message" >&2
	exit 2
fi
echo "$$ $(date +%s.%N)" >> "$state/$tok.runs"
n=$(wc -l < "$state/$tok.runs")

case $mode in
exit127)
	echo "provider.sh: pretending the CLI is missing" >&2
	exit 127 ;;
auth)
	echo "Error: Invalid API key" >&2
	exit 1 ;;
hang)
	sleep 60
	exit 0 ;;
esac

[ "$sleep" != 0 ] && sleep "$sleep"

case $mode in
transient)
	echo "provider.sh: transient failure, run $n" >&2
	exit 1 ;;
signal)
	kill -9 $$ ;;
flaky)
	if [ "$n" -le "$fails" ]; then
		echo "provider.sh: flaky failure, run $n of $fails" >&2
		exit 1
	fi ;;
esac
echo "$$ $(date +%s.%N)" >> "$state/$tok.ok"
echo "chaos-reply id=$id tok=$tok run=$n"
exit 0
