"""Issue 12, secrets: no piece of a secret in anything clawvisor writes when
a cut lands inside it (the 2048-byte stdout tail classify() reads, the
300-byte error line, output past max_output_bytes, a reply cut there), and
no allowlisted key in the environment of the container runtime's CLI.

Secrets of 40, 97 and 200 characters, each in an allowlisted variable of
the daemon's environment, are placed by a program across each cut edge at
several offsets (and at the end of a stream cut by the program's death); then the whole home (log, events, dead letters, responses,
the daemon's stderr) and the `dead list` output are searched for any run of
8 of their characters (docs/SANDBOX.md, "Secrets")."""
import json
import os
import random
import socket
import string
import subprocess
import sys

from conftest import BIN, TIME_SCALE

FRAGMENT = 8                    # common/redact.h REDACT_FRAGMENT
STDOUT_TAIL = 2048              # worker/worker.c
LINE_TAIL = 300                 # common/provider.c error_tail()
CAP = 3000                      # max_output_bytes here: under the 4000 cut

# Prints what the message asks for, placing the secret of $VAR so that the
# cut named by CASE keeps K of its characters. Exit 3 (transient, and with
# max_attempts 1 a dead letter) but for "reply".
PROGRAM = r"""
import os, sys
case, var, k = sys.argv[1].split()
k = int(k)
s = os.environ[var]
out, err = sys.stdout.write, sys.stderr.write
if case == "tail":
    # stdout's last 2048 bytes start K characters before the secret's end,
    # the rest blank: the last line with text is what is left of it.
    out("x" * 100 + "\n" + s + " " * (%(tail)d - k - 1) + "\n")
elif case == "line":
    # The error line's last 300 bytes start K characters before its end.
    err("error: " + s + " " + "y" * (%(line)d - k - 1) + "\n")
elif case == "named":
    # The same, in NAME=value shape: the cut takes the NAME= away.
    err("error: %%s=%%s " %% (var, s) + "y" * (%(line)d - k - 1) + "\n")
elif case == "cap":
    # stderr cut at max_output_bytes K characters into the secret.
    err("z" * (%(cap)d - 12 - k) + "\nerror: key " + s + "\nmore\n")
elif case == "killed":
    # Killed between two writes of a line: the stream ends K characters
    # into the secret, and the error says so with that line.
    err("error: key " + s[:k])
    sys.stderr.flush()
    os.kill(os.getpid(), 9)
elif case == "reply":
    # The reply cut at max_output_bytes K characters into the secret.
    out("r" * (%(cap)d - 1 - k) + " " + s + " and the rest\n")
    sys.exit(0)
sys.exit(3)
""" % {"tail": STDOUT_TAIL, "line": LINE_TAIL, "cap": CAP}


def make_secret(n, rnd):
    return "sk-" + "".join(rnd.choice(string.ascii_letters + string.digits)
                           for _ in range(n - 3))


def fragments(secret):
    return {secret[i:i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


def leaks(data, secrets):
    """(name, fragment) for each piece of a secret found in data."""
    found = []
    for name, s in secrets.items():
        for f in fragments(s):
            if f.encode() in data:
                found.append((name, f))
    return found


def files_leaking(root, secrets):
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                got = leaks(fh.read(), secrets)
            if got:
                hits.append((p, got[:3]))
    return hits


def test_secret_cut_at_every_edge(homes, tmp_path):
    rnd = random.Random(12)
    secrets = {"CV_SECRET_A": make_secret(40, rnd),
               "CV_SECRET_B": make_secret(97, rnd),
               "CV_SECRET_C": make_secret(200, rnd)}
    prog = tmp_path / "placer.py"
    prog.write_text(PROGRAM)
    h = homes({"agents": {"cutter": {
        "name": "Cutter", "provider": "command",
        "command": [sys.executable, str(prog), "{message}"]}},
        "sandbox": {"max_attempts": 1, "max_output_bytes": CAP,
                    "env_allowlist": ["ANTHROPIC_API_KEY"] +
                    sorted(secrets)}}, start=False)
    h.start(env=secrets)
    mids = {}
    for var, s in secrets.items():
        n = len(s)
        for k in sorted({FRAGMENT, FRAGMENT + 1, n // 2, n - 1}):
            for case in ("tail", "line", "named", "cap", "killed",
                         "reply"):
                msg = f"{case} {var} {k}"
                mids[msg] = h.drop(msg, agent="cutter")
    for msg, mid in mids.items():
        kind, rec, _ = h.wait_outcome(mid, timeout=60)
        if msg.startswith("reply"):
            assert kind == "response", (msg, rec)
            # The reply is there, only the piece of the secret is not.
            assert rec["message"].startswith("rrrr"), (msg, rec)
            assert rec["message"].endswith("[REDACTED]"), (msg, rec)
        else:
            assert kind == "dead", (msg, rec)
            want = "signal 9" if msg.startswith("killed") else "exit 3"
            assert want in rec["errorMessage"], (msg, rec)
    # Every run's end and error events are written before the files go.
    h.wait_events("sandbox_invocation_end", n=len(mids), timeout=30)
    failed = [m for m in mids if not m.startswith("reply")]
    h.wait_events("sandbox_invocation_error", n=len(failed), timeout=30)
    listing = subprocess.run([BIN, "--home", str(h.path), "dead", "list"],
                             capture_output=True, env=h.env())
    assert listing.returncode == 0, listing
    # A header row, then one line per dead letter.
    assert listing.stdout.count(b"\n") == len(failed) + (1 if failed else 0)
    listing_json = subprocess.run(
        [BIN, "--home", str(h.path), "dead", "list", "--json"],
        capture_output=True, env=h.env())
    assert listing_json.returncode == 0, listing_json
    assert leaks(listing.stdout + listing.stderr, secrets) == []
    assert leaks(listing_json.stdout + listing_json.stderr, secrets) == []
    h.stop()
    assert files_leaking(h.path, secrets) == []


def control(h, obj):
    """One request on the control socket, its raw reply line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(h.path / "run" / "clawvisor.sock"))
    s.sendall(json.dumps(obj).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


def test_control_error_quotes_no_piece(homes):
    """An error reply quotes at most 40 or 60 characters of what it was
    sent: a secret sent as a command name, a mode or a dead letter id is
    redacted before that cut, not after it."""
    rnd = random.Random(1212)
    secret = make_secret(120, rnd)
    h = homes({"sandbox": {"env_allowlist": ["ANTHROPIC_API_KEY",
                                             "CV_SECRET"]}}, start=False)
    h.start(env={"CV_SECRET": secret})
    for req in ({"cmd": secret}, {"cmd": "x " + secret},
                {"cmd": "sandbox.set", "mode": secret},
                {"cmd": "dead.show", "id": secret},
                {"cmd": "dead.purge", "id": "." + secret}):
        line = control(h, req)
        rep = json.loads(line)
        assert rep["ok"] is False, (req, rep)
        assert "[REDACTED]" in rep["error"], (req, rep)
        assert leaks(line, {"CV_SECRET": secret}) == [], (req, rep)
    h.stop()
    assert files_leaking(h.path, {"CV_SECRET": secret}) == []


# -- the container runtime's CLI: only what it needs, never a key ----------

FAKE_RUNTIME = r"""#!/bin/sh
# A container runtime that keeps the environment it was given (NUL-separated,
# as /proc/PID/environ has it) and, for `run`, the names its --env-file
# holds; `run` answers with its last argument, or sleeps for "sleep".
d='__DUMP__'
n="$1-$$"
cat /proc/$$/environ > "$d/$n.environ"
case "$1" in
run)
	prev=
	for a; do
		if [ "$prev" = --env-file ]; then
			cut -d= -f1 "$a" > "$d/$n.envfile"
		fi
		prev=$a
		last=$a
	done
	case "$last" in
	sleep*) exec sleep 60 ;;
	esac
	echo "runtime said: $last"
	;;
esac
exit 0
"""


def environs(dump):
    """{file name: {NAME: value}} for every environment the fake kept."""
    out = {}
    for p in sorted(dump.glob("*.environ")):
        env = {}
        for kv in p.read_bytes().split(b"\0"):
            if b"=" in kv:
                k, v = kv.decode().split("=", 1)
                env[k] = v
        out[p.name] = env
    return out


def test_runtime_cli_env_has_no_key(homes, tmp_path):
    rnd = random.Random(1213)
    keys = {"ANTHROPIC_API_KEY": make_secret(60, rnd),
            "OPENAI_API_KEY": make_secret(70, rnd),
            "CV_KEY": make_secret(50, rnd)}
    dump = tmp_path / "dump"
    dump.mkdir()
    fake = tmp_path / "fake-runtime"
    fake.write_text(FAKE_RUNTIME.replace("__DUMP__", str(dump)))
    fake.chmod(0o755)
    h = homes({"agents": {"boxed": {
        "name": "Boxed", "provider": "command",
        "command": ["echo", "{message}"]}},
        "sandbox": {"mode": "docker", "timeout_seconds": 3,
                    "kill_grace_seconds": 1, "max_attempts": 1,
                    "env_allowlist": sorted(keys),
                    "runtime_pass_env": ["CLAWVISOR_TEST_TAG",
                                         "CV_PASSED_*"],
                    "docker": {"runtime_command": str(fake),
                               "image": "cv-test-image"}}}, start=False)
    runtime_vars = {"DOCKER_HOST": "unix:///nonexistent/docker.sock",
                    "XDG_RUNTIME_DIR": str(tmp_path),
                    "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
                    "HTTPS_PROXY": "http://proxy.invalid:3128",
                    "CV_PASSED_ONE": "yes"}
    env = dict(keys, CV_UNRELATED="no", NOTIFY_SOCKET="/nonexistent",
               **runtime_vars)
    # A container an earlier crash left: removed at start, by the
    # supervisor's own `RUNTIME kill` and `rm -f`.
    (h.path / "run" / "containers").mkdir(parents=True)
    (h.path / "run" / "containers" / "clawvisor-4242").write_text(
        f"{fake}\n")
    h.start(env=env)
    r = h.wait_response(h.drop("hello", agent="boxed"), timeout=30)
    assert r["message"] == "runtime said: hello"
    # A timeout: the worker's `RUNTIME kill` and `rm -f`.
    h.wait_dead(h.drop("sleep", agent="boxed"), timeout=60)
    h.stop()

    seen = environs(dump)
    kinds = sorted({name.split("-")[0] for name in seen})
    # The sweep's kill, rm and ps; the runs; the timeout's kill and rm.
    assert kinds == ["kill", "ps", "rm", "run"], kinds
    assert len([n for n in seen if n.startswith("kill-")]) >= 2
    for name, e in seen.items():
        for k, v in keys.items():
            assert k not in e, (name, k)
            assert v not in "\0".join(f"{a}={b}" for a, b in e.items()), \
                (name, k)
        for k, v in runtime_vars.items():
            assert e.get(k) == v, (name, k, e.get(k))
        assert e.get("CLAWVISOR_TEST_TAG") == h.tag, name
        assert "PATH" in e and "HOME" in e, (name, sorted(e))
        assert "CV_UNRELATED" not in e and "NOTIFY_SOCKET" not in e, \
            (name, sorted(e))
    # The keys still reach the container, through its env-file only.
    files = sorted(dump.glob("run-*.envfile"))
    assert files
    for f in files:
        names = f.read_text().split()
        assert set(keys) <= set(names), (f.name, names)


def test_runtime_pass_env_refuses_a_key(homes):
    h = homes({"sandbox": {"runtime_pass_env": ["OPENAI_API_KEY"]}},
              start=False)
    p = h.spawn()
    assert p.wait(30 * TIME_SCALE) == 78
    err = p.stderr_path.read_text()
    assert "sandbox.runtime_pass_env[0]: OPENAI_API_KEY is in " \
        "sandbox.env_allowlist" in err, err
    for bad in ("", "*", "A*B", "1X", "X-Y"):
        h = homes({"sandbox": {"runtime_pass_env": ["OK", bad]}},
                  start=False)
        p = h.spawn()
        assert p.wait(30 * TIME_SCALE) == 78, bad
        assert "sandbox.runtime_pass_env[1]: expected a variable name" in \
            p.stderr_path.read_text(), bad
