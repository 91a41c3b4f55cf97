# Behaviour shared by the fake `claude` and `codex` (sourced, not run).
# POSIX sh: it must run under dash and busybox sh alike.
#
# Each call appends one "start" line to $FAKE_LOG (if set) and, when it ends
# by itself, one "end" line:
#   start prog=P pid=N t=UPTIME data=HEX
#   end prog=P pid=N t=UPTIME status=N
# HEX is, in lower-case hex, the working directory and then every argv
# element (argv[0] as the program's name), each followed by a NUL byte: any
# argument fits on one line. UPTIME is /proc/uptime's first field (1/100 s).
#
# What the fake does is driven by the message text:
#   sleep N [...]     sleep N seconds, then reply
#   sleep-once N      sleep N seconds the first time (marker in cwd), then not
#   fail transient    "overloaded", exit 1 (claude: on stdout, codex: stderr)
#   fail auth         "Invalid API key", exit 1 (the same)
#   flaky K           fail (transient) until the K-th call, counted in cwd
#   big N             print N bytes ("abcdefghi\n" repeated) as the reply
#   spawn [stubborn]  start a grandchild that writes its pid to spawn.pid in
#                     cwd, then sleep 60; "stubborn" ignores SIGTERM first
#   show keys         reply "keys: NAME:SHA256 ..." for each credential the
#                     CLIs read (or "unset"), never a value
#   anything else     reply with a line that contains the message

fake_log_start() {
	[ -n "${FAKE_LOG:-}" ] || return 0
	read -r fake_up fake_rest < /proc/uptime
	fake_data=$(printf '%s\0' "$(pwd -P)" "$FAKE_PROG" "$@" |
	    od -An -v -tx1 | tr -d ' \n')
	printf 'start prog=%s pid=%s t=%s data=%s\n' "$FAKE_PROG" "$$" \
	    "$fake_up" "$fake_data" >> "$FAKE_LOG"
}

fake_exit() {
	if [ -n "${FAKE_LOG:-}" ]; then
		read -r fake_up fake_rest < /proc/uptime
		printf 'end prog=%s pid=%s t=%s status=%s\n' "$FAKE_PROG" "$$" \
		    "$fake_up" "$1" >> "$FAKE_LOG"
	fi
	exit "$1"
}

# fake_state_dir NAME MESSAGE: the real CLIs keep their state in $HOME/NAME
# (claude: .claude, codex: .codex) and stop when they cannot create it. The
# fakes do so only under a sandbox's HOME (W/.tinyclaw-home), never in the
# tester's own. MESSAGE (%s: the path) is what the CLI prints, on stderr.
fake_state_dir() {
	case "${HOME:-}" in
	*/.tinyclaw-home) ;;
	*) return 0 ;;
	esac
	if ! mkdir -p "$HOME/$1" 2>/dev/null; then
		printf "$2\n" "$HOME/$1" >&2
		fake_exit 1
	fi
}

# An option the real tool does not know: its message, its status.
fake_usage_error() {
	printf '%s\n' "$1" >&2
	fake_exit "$2"
}

# fake_behave MESSAGE: do what the message asks. Returns 0 when the caller
# should print a reply, or exits (failure modes). Sets fake_big when the
# reply is N raw bytes rather than text.
fake_behave() {
	fake_big=
	case "$1" in
	"sleep-once "*)
		fake_n=${1#sleep-once }
		fake_n=${fake_n%% *}
		if [ ! -e sleep-once.done ]; then
			: > sleep-once.done
			sleep "$fake_n"
		fi
		;;
	"sleep "*)
		fake_n=${1#sleep }
		fake_n=${fake_n%% *}
		sleep "$fake_n"
		;;
	"fail transient"*)
		fake_fail_transient
		;;
	"fail auth"*)
		fake_fail_auth
		;;
	"flaky "*)
		fake_n=${1#flaky }
		fake_n=${fake_n%% *}
		fake_c=0
		[ -f flaky.count ] && read -r fake_c < flaky.count
		fake_c=$((fake_c + 1))
		echo "$fake_c" > flaky.count
		[ "$fake_c" -ge "$fake_n" ] || fake_fail_transient
		;;
	"big "*)
		fake_big=${1#big }
		fake_big=${fake_big%% *}
		;;
	"show keys"*)
		fake_keys=
		for fake_k in ANTHROPIC_API_KEY CLAUDE_CODE_OAUTH_TOKEN \
		    OPENAI_API_KEY CODEX_API_KEY; do
			eval "fake_v=\${$fake_k:-}"
			if [ -n "$fake_v" ]; then
				fake_v=$(printf '%s' "$fake_v" | sha256sum |
				    cut -d' ' -f1)
			else
				fake_v=unset
			fi
			fake_keys="$fake_keys $fake_k:$fake_v"
		done
		prompt="keys:$fake_keys"
		;;
	"spawn"*)
		case "$1" in *stubborn*) trap '' TERM ;; esac
		sh -c 'echo $$ > spawn.pid.tmp && mv spawn.pid.tmp spawn.pid; exec sleep 60' &
		sleep 60
		;;
	esac
	return 0
}

fake_big_output() {
	yes abcdefghi | head -c "$1"
}

# JSON string body (no quotes) of $1, for codex's JSONL. sed does the
# escapes (awks differ on backslashes in gsub), awk joins the lines.
fake_json() {
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
	    -e "s/$(printf '\t')/\\\\t/g" |
	    awk '{ if (NR > 1) printf "%s", "\\n"; printf "%s", $0 }'
}
