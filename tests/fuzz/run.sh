#!/bin/sh
# Run every libFuzzer target for a bounded time each, on a copy of its seed
# corpus, with leak detection; print one line per target and a total.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     (default 60 s, all targets)
#
# The build directory is build-fuzz at the top of the tree (FUZZ_BUILD to
# change it); it is configured and built if needed, with clang. A target
# passes if libFuzzer exits 0 with no crash, leak or timeout. What a failing
# target found is kept and its path printed. Exit status: 0 if all passed.
# FUZZ_JOBS targets run at once (default: one a CPU), each for SECONDS;
# their lines come in the order of the targets.
set -u

secs=${1:-60}
[ $# -gt 0 ] && shift
case $secs in
''|*[!0-9]*) echo "usage: $0 [seconds] [target...]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$top/build-fuzz}
all="config message ipc control codex sendfile http exec proxy egressmsg"
targets=${*:-$all}

if ! command -v "${CC:-clang}" >/dev/null; then
	echo "no ${CC:-clang}: the targets need clang and its runtime" \
	    "(apt-get install clang libclang-rt-dev)" >&2
	exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
	CC=${CC:-clang} meson setup "$build" "$top" -Dfuzz=true -Dtests=false \
	    >/dev/null || { echo "meson setup failed" >&2; exit 2; }
fi
meson compile -C "$build" >/dev/null ||
    { echo "build failed: meson compile -C $build" >&2; exit 2; }
for t in $targets; do
	if [ ! -x "$build/tests/fuzz/fuzz_$t" ]; then
		echo "no $build/tests/fuzz/fuzz_$t: is subdir('tests/fuzz')" \
		    "in meson.build, and -Dfuzz=true set?" >&2
		exit 2
	fi
done

# Scratch space: corpus copies, findings, and the targets' temporary homes
# (a tmpfs if there is one: the control target fsyncs).
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/clawvisor-fuzz.XXXXXX") || exit 2
keep=0

# One target, its verdict in $work/$t/result: "pass" or "fail", then the
# lines to print.
fuzz_one() {
	t=$1
	mkdir -p "$work/$t/corpus" "$work/$t/found" "$work/$t/tmp"
	cp "$here/corpus/$t/"* "$work/$t/corpus/" 2>/dev/null
	dict=
	[ -f "$here/dict/$t.dict" ] && dict=-dict=$here/dict/$t.dict
	log=$work/$t/log
	start=$(date +%s)
	# shellcheck disable=SC2086
	TMPDIR=$work/$t/tmp "$build/tests/fuzz/fuzz_$t" \
	    -max_total_time="$secs" -detect_leaks=1 -timeout=30 \
	    -print_final_stats=1 \
	    -artifact_prefix="$work/$t/found/" $dict \
	    "$work/$t/corpus" >"$log" 2>&1
	rc=$?
	took=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
	    sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	found=$(ls "$work/$t/found" | wc -l)
	if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] &&
	    ! grep -q -E '^==[0-9]+==ERROR|runtime error:' "$log"; then
		{
			echo pass
			printf '%-9s pass  %4ss  %10s execs  cov %s  corpus %s\n' \
			    "$t" "$took" "${execs:-?}" "${cov:-?}" \
			    "$(ls "$work/$t/corpus" | wc -l)"
		} >"$work/$t/result"
	else
		what=$(grep -m 1 -E '^SUMMARY: |runtime error:|^==[0-9]+==ERROR' \
		    "$log" | sed 's/^==[0-9]*==//' | cut -c 1-100)
		{
			echo fail
			printf '%-9s FAIL  %4ss  exit %s  %s\n' "$t" "$took" "$rc" \
			    "${what:-see the log}"
			printf '          log %s\n' "$log"
			for f in "$work/$t/found"/*; do
				[ -e "$f" ] && printf '          input %s\n' "$f"
			done
		} >"$work/$t/result"
	fi
}

# FUZZ_JOBS targets at a time (default: one a CPU; each target
# is one process that keeps its core busy for its whole time), each for
# the same $secs; their lines in the order of $targets.
njobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $njobs in
''|*[!0-9]*|0) njobs=1 ;;
esac
pass=0
fail=0
batch=
n=0
report() {
	for b in $batch; do
		r=$work/$b/result
		if [ ! -f "$r" ]; then
			printf '%-9s FAIL  no verdict: its run died\n' "$b"
			fail=$((fail + 1))
			keep=1
			continue
		fi
		if [ "$(head -n 1 "$r")" = pass ]; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			keep=1
		fi
		tail -n +2 "$r"
	done
	batch=
	n=0
}
for t in $targets; do
	fuzz_one "$t" &
	batch="$batch $t"
	n=$((n + 1))
	if [ "$n" -ge "$njobs" ]; then
		wait
		report
	fi
done
wait
report
[ "$keep" -eq 0 ] && rm -rf "$work"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
