#!/usr/bin/python3
"""
A fake `claude` / `codex` for the exec tests (tests/integration/
test_exec.py), installed under both names. Queued runs (clawvisor's own
argv: --dangerously-skip-permissions ... -p -- MESSAGE, or codex exec ...)
answer "reply: MESSAGE". Exec'd runs act on their first argument:

  lines N GAP    N stream-json lines, GAP s apart, each with its write time
  stdin          copy stdin to stdout
  exit N         exit with N
  kill           SIGKILL itself
  sleep S        write "sleeping PID" then sleep S
  big N          N MiB of 'x' on stdout, then "done" on stderr
  bytes          every byte value 0..255 on stdout, "E" on stderr
  cwd ARGS...    the cwd and ARGS as JSON
  spew O E       O bytes on stdout, E on stderr (pattern(), interleaved)
  spewhold O S   O bytes on stdout (pattern()), "over" on stderr, sleep S
  say N TEXT     TEXT on stderr, exit N (a provider's error and status)

Every run appends "start|end TIME AGENT KIND PID" to $EXEC_LOG, so that
the tests can count what overlapped.
"""
import json
import os
import signal
import sys
import time

LOG = os.environ.get("EXEC_LOG")


def log(what, kind):
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{what} {time.time():.6f} {os.path.basename(os.getcwd())}"
                    f" {kind} {os.getpid()}\n")


def pattern(n, k):
    """n bytes whose every position is told apart from its neighbours'."""
    return bytes((i * k + i // 256) % 256 for i in range(n))


def main(argv):
    queued = "--dangerously-skip-permissions" in argv or \
        (argv[:1] == ["exec"] and "--json" in argv)
    kind = "queued" if queued else "exec"
    log("start", kind)
    try:
        return run(argv, queued)
    finally:
        log("end", kind)


def run(argv, queued):
    out = sys.stdout.buffer
    if queued:
        msg = argv[-1]
        if argv[:1] == ["exec"]:
            out.write(json.dumps({"type": "item.completed", "item": {
                "type": "agent_message", "text": "reply: " + msg}}).encode()
                + b"\n")
        else:
            time.sleep(0.2)
            out.write(("reply: " + msg + "\n").encode())
        return 0
    cmd = argv[0] if argv else ""
    if cmd == "lines":
        n, gap = int(argv[1]), float(argv[2])
        for i in range(n):
            out.write(json.dumps({"type": "assistant", "i": i,
                                  "t": time.time()}).encode() + b"\n")
            out.flush()
            time.sleep(gap)
        out.write(json.dumps({"type": "result", "result": "ok"}).encode()
                  + b"\n")
        return 0
    if cmd == "stdin":
        out.write(sys.stdin.buffer.read())
        return 0
    if cmd == "exit":
        sys.stderr.write("leaving with " + argv[1] + "\n")
        return int(argv[1])
    if cmd == "kill":
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if cmd == "sleep":
        out.write(f"sleeping {os.getpid()}\n".encode())
        out.flush()
        time.sleep(float(argv[1]))
        return 0
    if cmd == "big":
        chunk = b"x" * (1 << 20)
        for _ in range(int(argv[1])):
            out.write(chunk)
        out.flush()
        sys.stderr.write("done\n")
        return 0
    if cmd == "bytes":
        out.write(bytes(range(256)))
        out.flush()
        sys.stderr.write("E")
        return 0
    if cmd == "cwd":
        out.write(json.dumps({"cwd": os.getcwd(), "args": argv[1:]}).encode()
                  + b"\n")
        return 0
    if cmd == "hold":
        time.sleep(float(argv[1]))
        out.write(b"held\n")
        return 0
    if cmd == "spew":
        o, e = pattern(int(argv[1]), 7), pattern(int(argv[2]), 11)
        step = 4000
        for i in range(0, max(len(o), len(e)), step):
            out.write(o[i:i + step])
            out.flush()
            sys.stderr.buffer.write(e[i:i + step])
            sys.stderr.buffer.flush()
        return 0
    if cmd == "spewhold":
        out.write(pattern(int(argv[1]), 7))
        out.flush()
        sys.stderr.write("over\n")
        sys.stderr.flush()
        time.sleep(float(argv[2]))
        return 0
    if cmd == "say":
        sys.stderr.write(" ".join(argv[2:]) + "\n")
        return int(argv[1])
    sys.stderr.write("fake: unknown " + cmd + "\n")
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
