"""
The control socket and the client subcommands (SPEC §7, issue 4): every
command through the CLI (human output, --json, exit status 0/1/2/69) and
through the raw protocol (one JSON object per line each way), the socket's
safety (mode, SO_PEERCRED, bounded lines and clients, stuck clients),
reload (good, bad, under load, pool resize), the sandbox commands, pause and
resume, the dead-letter commands and graceful stop.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import (BIN, NOTICE_TEXT, TIME_SCALE, deep_merge, read_json,
                      wait_for)

EX_USAGE = 2
EX_UNAVAILABLE = 69
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable

# -- helpers -----------------------------------------------------------------


def sock_path(home):
    return home.path / "run" / "clawvisor.sock"


def cli(home, *args, json_out=False, env=None, timeout=60):
    """`clawvisor --home H ARGS [--json]`, captured."""
    cmd = [BIN, "--home", str(home.path), *args]
    if json_out:
        cmd.append("--json")
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, env=env or home.env(),
                          stdin=subprocess.DEVNULL)


def cli_ok(home, *args, env=None):
    """The CLI's --json reply, asserting exit 0 and {"ok":true}."""
    r = cli(home, *args, json_out=True, env=env)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    rep = json.loads(lines[0])
    assert rep["ok"] is True, rep
    return rep


class Ctl:
    """A raw control connection: one JSON object per line each way."""

    def __init__(self, home=None, path=None, timeout=20):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(str(path or sock_path(home)))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def readline(self):
        """One line without its newline, or None at end of file."""
        while b"\n" not in self.buf:
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def reply(self):
        line = self.readline()
        assert line is not None, "the daemon closed the connection"
        return json.loads(line)

    def request(self, obj):
        self.send(json.dumps(obj).encode() + b"\n")
        return self.reply()

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def status(home):
    with Ctl(home) as c:
        r = c.request({"cmd": "status"})
    assert r["ok"] is True, r
    return r


def wait_status(home, pred, timeout=15, what="status"):
    last = {}

    def check():
        home.alive_check()
        last["s"] = status(home)
        return pred(last["s"])
    try:
        wait_for(check, timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last status: {last.get('s')}")
    return last["s"]


def busy(st):
    return [w for w in st["workers"] if w["state"] == "busy"]


def echo_agent(version, sleep=0.0, log=None):
    """A command agent replying "VERSION: MESSAGE" (after SLEEP seconds);
    with LOG, it first appends "START <ns> VERSION MESSAGE" there."""
    script = ""
    if log is not None:
        script += 'echo "START $(date +%s%N) ' + version + ' $1" >> "$0"; '
    if sleep:
        script += f"sleep {sleep}; "
    script += 'echo "' + version + ': $1"'
    return {"provider": "command",
            "command": ["sh", "-c", script, str(log or "x"), "{message}"]}


def gate_agent(gate):
    """A command agent that waits for the file GATE, then replies."""
    return {"provider": "command",
            "command": ["sh", "-c",
                        'while [ ! -e "$0" ]; do sleep 0.05; done; '
                        'echo "gated: $1"', str(gate), "{message}"]}


def failing_agent(log=None, stderr="boom"):
    """A command agent that fails (exit 1: transient) after appending the
    message to LOG."""
    script = ""
    if log is not None:
        script += 'echo "$1" >> "$0"; '
    script += f'echo "{stderr}" >&2; exit 1'
    return {"provider": "command",
            "command": ["sh", "-c", script, str(log or "x"), "{message}"]}


def reconfigure(home, override):
    home.write_settings(deep_merge(home.settings, override))


CLIENT_COMMANDS = [
    ["status"], ["reload"], ["pause"], ["resume"], ["stop"],
    ["sandbox", "show"], ["sandbox", "set", "host"],
    ["dead", "list"], ["dead", "show", "x"], ["dead", "requeue", "x"],
    ["dead", "requeue", "--all"], ["dead", "purge", "x"],
]

# -- no daemon, usage ----------------------------------------------------------


def test_no_daemon_exit_69_for_every_client_command(homes):
    h = homes(start=False)
    for args in CLIENT_COMMANDS:
        for js in (False, True):
            r = cli(h, *args, json_out=js)
            assert r.returncode == EX_UNAVAILABLE, (args, js, r)
            assert "no daemon" in r.stderr, (args, r.stderr)
            assert r.stdout == "", (args, r.stdout)
    # --home after the subcommand's own arguments, and $TINYCLAW_HOME.
    r = subprocess.run([BIN, "status", "--home", str(h.path)],
                       capture_output=True, text=True, env=h.env())
    assert r.returncode == EX_UNAVAILABLE, r
    r = subprocess.run([BIN, "dead", "list"], capture_output=True,
                       text=True, env=h.env({"TINYCLAW_HOME": str(h.path)}))
    assert r.returncode == EX_UNAVAILABLE, r
    assert str(h.path) in r.stderr

    # A stale socket (a file nobody listens on) is no daemon either.
    (h.path / "run").mkdir(mode=0o700, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock_path(h)))
    s.close()
    assert stat.S_ISSOCK(os.lstat(sock_path(h)).st_mode)
    for args in CLIENT_COMMANDS:
        r = cli(h, *args)
        assert r.returncode == EX_UNAVAILABLE, (args, r)


def test_no_daemon_after_stop(home):
    assert cli(home, "stop").returncode == 0
    assert home.proc.wait(15 * TIME_SCALE) == 0
    for args in CLIENT_COMMANDS:
        r = cli(home, *args, json_out=True)
        assert r.returncode == EX_UNAVAILABLE, (args, r)


class FakeDaemon:
    """Listens on a home's socket and answers every connection with the
    bytes given (None: close without a word); records what it was sent."""

    def __init__(self, home, answer):
        (home.path / "run").mkdir(mode=0o700, exist_ok=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(sock_path(home)))
        self.srv.listen(8)
        self.answer, self.got = answer, []
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                buf = b""
                while b"\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                self.got.append(buf)
                if self.answer is not None:
                    c.sendall(self.answer)

    def close(self):
        self.srv.close()


def test_client_exit_status_by_reply(homes):
    h = homes(start=False)
    cases = [
        (b'{"ok": true,  "odd":  [1, 2]}\n', 0),
        (b'{"ok":false,"error":"no, because"}\n', 1),
        (b"this is not json\n", 1),
        (b"[1, 2]\n", 1),
        (None, EX_UNAVAILABLE),
    ]
    for answer, want in cases:
        fake = FakeDaemon(h, answer)
        try:
            r = cli(h, "dead", "show", "x1")
            assert r.returncode == want, (answer, r)
            j = cli(h, "dead", "show", "x1", json_out=True)
            assert j.returncode == want, (answer, j)
            # The request: one JSON object on one line.
            assert fake.got[0].count(b"\n") == 1
            assert json.loads(fake.got[0]) == {"cmd": "dead.show",
                                               "id": "x1"}
        finally:
            fake.close()
            os.unlink(sock_path(h))
        if want == 0:
            # --json prints the daemon's reply as is, byte for byte.
            assert j.stdout.encode() == answer
        elif answer and answer.startswith(b'{"ok":false'):
            assert r.stderr == "clawvisor: no, because\n"
            assert j.stdout.encode() == answer
        elif want == 1:
            assert "bad reply" in r.stderr
        else:
            assert "without a reply" in r.stderr


USAGE_ERRORS = [
    ["bogus"], ["sandbox"], ["sandbox", "bogus"], ["sandbox", "set"],
    ["sandbox", "set", "docker", "extra"], ["sandbox", "show", "extra"],
    ["sandbox", "doctor", "extra"], ["sandbox", "build-image", "extra"],
    ["dead"], ["dead", "bogus"], ["dead", "show"], ["dead", "requeue"],
    ["dead", "purge"], ["dead", "list", "extra"],
    ["dead", "show", "a", "b"], ["status", "extra"], ["reload", "now"],
    ["pause", "x"], ["resume", "x"], ["stop", "x"],
]


def test_usage_errors_exit_2(home):
    before = (home.path / "settings.json").read_bytes()
    for args in USAGE_ERRORS:
        for js in (False, True):
            r = cli(home, *args, json_out=js)
            assert r.returncode == EX_USAGE, (args, js, r)
            assert r.stderr.strip() != "", args
    for argv in ([BIN], [BIN, "--home"], [BIN, "--home", str(home.path)]):
        r = subprocess.run(argv, capture_output=True, text=True,
                           env=home.env())
        assert r.returncode == EX_USAGE, (argv, r)
        assert "usage" in r.stderr
    # None of them reached the daemon: still serving, unchanged, unpaused.
    st = status(home)
    assert st["generation"] == 1
    assert st["mode"] == "host"
    assert st["paused"] is False
    assert (home.path / "settings.json").read_bytes() == before
    assert home.proc.poll() is None

# -- the socket ----------------------------------------------------------------


def test_socket_and_run_dir_modes(home):
    run = home.path / "run"
    st = os.lstat(run)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    st = os.lstat(sock_path(home))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    pid = int((run / "clawvisor.pid").read_text().strip())
    assert pid == home.pid
    assert status(home)["pid"] == home.pid


def test_second_serve_refused_and_live_socket_kept(home):
    ino = os.lstat(sock_path(home)).st_ino
    p = home.spawn()
    assert p.wait(10 * TIME_SCALE) != 0
    # The first daemon's socket was not unlinked: same file, still answers.
    assert os.lstat(sock_path(home)).st_ino == ino
    assert status(home)["pid"] == home.pid
    assert int((home.path / "run" / "clawvisor.pid").read_text()) == \
        home.pid


def test_stale_socket_replaced_live_listener_refused(homes):
    h = homes(start=False)
    run = h.path / "run"
    run.mkdir(mode=0o700)
    # A socket somebody else listens on: the daemon must not steal it.
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(sock_path(h)))
    other.listen(1)
    ino = os.lstat(sock_path(h)).st_ino
    try:
        p = h.spawn()
        assert p.wait(10 * TIME_SCALE) != 0
        assert os.lstat(sock_path(h)).st_ino == ino
        assert "live daemon" in h.stderr_text(p)
        assert not (run / "clawvisor.pid").exists()
    finally:
        other.close()
    # Now nobody listens: a stale socket, replaced at start.
    assert os.lstat(sock_path(h)).st_ino == ino
    h.start()
    assert status(h)["pid"] == h.pid
    assert stat.S_IMODE(os.lstat(sock_path(h)).st_mode) == 0o600


@pytest.fixture
def world_home(homes):
    """Homes under a directory uid 65534 may traverse (pytest's own
    temporary directories are 0700): homes() joins an absolute name as is.
    The daemons are stopped before the directory goes."""
    base = Path(tempfile.mkdtemp(prefix="clawvisor-ctl-", dir="/tmp"))
    os.chmod(base, 0o711)
    made = []

    def make(override=None):
        h = homes(override, start=False, name=str(base / f"h{len(made)}"))
        os.chmod(h.path, 0o711)
        h.start()
        made.append(h)
        return h
    yield make
    for h in made:
        for p in h.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10 * TIME_SCALE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5 * TIME_SCALE)
    shutil.rmtree(base, ignore_errors=True)


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

PEER_SCRIPT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print(json.dumps({"connect": "EACCES"}))
    sys.exit(0)
buf = b""
while True:
    try:
        c = s.recv(65536)
    except ConnectionResetError:
        c = b""
    if not c:
        break
    buf += c
print(json.dumps({"connect": "ok", "received": buf.decode()}))
"""


def as_nobody(*argv, cwd=None, env=None):
    return subprocess.run(NOBODY + list(argv), capture_output=True,
                          text=True, timeout=30, cwd=cwd, env=env)


def test_other_uid_refused(world_home):
    h = world_home()
    run, sock = h.path / "run", sock_path(h)
    # As created (run/ 0700, socket 0600) another uid cannot even connect.
    r = as_nobody(PY, "-c", PEER_SCRIPT, str(sock), env=h.env())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"connect": "EACCES"}

    # Open the modes for this test only: SO_PEERCRED must refuse it now.
    os.chmod(run, 0o711)
    os.chmod(sock, 0o666)
    try:
        r = as_nobody(PY, "-c", PEER_SCRIPT, str(sock), env=h.env())
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["connect"] == "ok"
        lines = got["received"].splitlines()
        # Not one status reply: at most a refusal, then the door shut.
        assert len(lines) <= 1, lines
        if lines:
            rep = json.loads(lines[0])
            assert rep["ok"] is False
            assert "permission" in rep["error"]
            assert "pid" not in rep
        wait_for(lambda: re.search(r"refused .*uid 65534", h.log()), 5,
                 what="a log line naming uid 65534")

        # The client subcommand as that uid: the daemon said no (exit 1),
        # never a status reply.
        for args in (["status"], ["stop"], ["dead", "list"]):
            r = as_nobody(BIN, "--home", str(h.path), *args, env=h.env())
            assert r.returncode == 1, (args, r.returncode, r.stdout,
                                       r.stderr)
            assert "permission denied" in r.stderr, r.stderr
            assert r.stdout == ""
        assert len(re.findall(r"refused .*uid 65534", h.log())) >= 4
    finally:
        os.chmod(run, 0o700)
        os.chmod(sock, 0o600)
    # Nothing the refused uid sent was obeyed: still running, unstopped.
    st = status(h)
    assert st["stopping"] is False and st["pid"] == h.pid
    assert h.proc.poll() is None


def test_malformed_and_unknown_keep_connection_usable(home):
    bad_lines = [
        b"hello",
        b"{",
        b"{}",
        b"[1,2]",
        b'"status"',
        b"42",
        b"null",
        b'{"cmd":5}',
        b'{"cmd":null}',
        b'{"cmd":"status"} trailing',
        b'{"cmd":"status"}{"cmd":"status"}',
        b"\x00\xff\xfe{{{",
        b'{"cmd":"status"}\x00junk',
        b'{"cmd":"stop"}\x00',
        b'{"cmd":"status\\u0000x"}',
        b'{"cmd":"stop\\u0000"}',
        b"",
        b"[" * 5000 + b"]" * 5000,
        b'{"cmd":"nope"}',
        b'{"cmd":"STATUS"}',
        b'{"cmd":"status.extra"}',
        b'{"cmd":"sandbox"}',
        b'{"cmd":"dead"}',
        b'{"cmd":"serve"}',
    ]
    with Ctl(home) as c:
        for line in bad_lines:
            c.send(line + b"\n")
            r = c.reply()
            assert r["ok"] is False, (line, r)
            assert isinstance(r["error"], str) and r["error"], (line, r)
            assert set(r) == {"ok", "error"}, r
            # Still usable: a good command on the same connection.
            assert c.request({"cmd": "status"})["pid"] == home.pid, line
        r = c.request({"cmd": "nope"})
        assert "unknown command" in r["error"] and "nope" in r["error"]

        # Pipelined requests: one reply each, in order.
        c.send(b'{"cmd":"status"}\n{"cmd":"bogus"}\n\n{"cmd":"dead.list"}\n')
        a, b, d, e = c.reply(), c.reply(), c.reply(), c.reply()
        assert a["ok"] is True and "workers" in a
        assert b["ok"] is False and "bogus" in b["error"]
        assert d["ok"] is False
        assert e == {"ok": True, "dead": []}

        # A request trickled in byte by byte, with CRLF: one reply.
        for ch in b'{"cmd": "status"}\r\n':
            c.send(bytes([ch]))
            time.sleep(0.002)
        assert c.reply()["pid"] == home.pid

        # Missing or ill-typed arguments are refused the same way.
        for req in ({"cmd": "dead.show"}, {"cmd": "dead.show", "id": 7},
                    {"cmd": "dead.show", "id": "../settings"},
                    {"cmd": "dead.show", "id": ""},
                    {"cmd": "dead.requeue"}, {"cmd": "dead.purge"},
                    {"cmd": "dead.purge", "id": "a/b"},
                    {"cmd": "sandbox.set"},
                    {"cmd": "sandbox.set", "mode": 5},
                    {"cmd": "sandbox.set", "mode": "vm"}):
            r = c.request(req)
            assert r["ok"] is False and r["error"], (req, r)
        assert c.request({"cmd": "status"})["ok"] is True
    assert status(home)["generation"] == 1
    assert home.proc.poll() is None


def test_long_lines(home):
    rnd = random.Random(4)
    garbage = bytes(rnd.choice(range(256)) for _ in range(4096))
    garbage = garbage.replace(b"\n", b"x") * 256            # 1 MiB
    assert len(garbage) == 1 << 20 and b"\n" not in garbage

    other = Ctl(home)
    with Ctl(home) as c:
        sender = threading.Thread(target=c.send, args=(garbage + b"\n",))
        sender.start()
        # Others are served meanwhile.
        assert other.request({"cmd": "status"})["ok"] is True
        sender.join(30)
        assert not sender.is_alive()
        r = c.reply()
        assert r["ok"] is False and "line" in r["error"], r
        # One error for the whole line, then the connection still works
        # (closing it cleanly would do too, but then no reply may follow).
        c.send(b'{"cmd":"status"}\n')
        line = c.readline()
        if line is not None:
            r = json.loads(line)
            assert r["ok"] is True and r["pid"] == home.pid, r
    other.close()

    with Ctl(home) as c:
        c.send(garbage + b"\n")
        r = c.reply()
        assert r["ok"] is False and "line" in r["error"]
        assert c.request({"cmd": "status"})["pid"] == home.pid
        # A valid request just under 64 KiB is served; just over is not.
        under = b'{"cmd":"status"' + b" " * (65535 - 16) + b"}"
        assert len(under) == 65535
        c.send(under + b"\n")
        assert c.reply()["ok"] is True
        over = b'{"cmd":"status"' + b" " * (65537 - 16) + b"}"
        c.send(over + b"\n")
        r = c.reply()
        assert r["ok"] is False and "line" in r["error"]
        assert c.request({"cmd": "dead.list"}) == {"ok": True, "dead": []}

    # 1 MiB with no newline at all, then the client goes away.
    c = Ctl(home)
    try:
        c.send(garbage)
    except (BrokenPipeError, ConnectionResetError):
        pass
    c.close()
    assert status(home)["pid"] == home.pid
    assert home.proc.poll() is None


def test_200_concurrent_raw_clients(home):
    n = 200
    connected = threading.Barrier(n + 1, timeout=60)
    done = threading.Barrier(n + 1, timeout=60)
    replies, errors = [None] * n, []

    def one(i):
        try:
            c = Ctl(home, timeout=60)
        except Exception as e:          # noqa: BLE001
            errors.append(f"{i}: connect: {e!r}")
            connected.abort()
            return
        try:
            connected.wait()
            replies[i] = c.request({"cmd": "status"})
            done.wait()
        except Exception as e:          # noqa: BLE001
            errors.append(f"{i}: {e!r}")
            done.abort()
        finally:
            c.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        connected.wait()        # 200 connections open at once
        done.wait()             # 200 replies while all are still open
    finally:
        for t in threads:
            t.join(60)
    assert not errors, errors[:5]
    for r in replies:
        assert r is not None and r["ok"] is True and r["pid"] == home.pid
        assert len(r["workers"]) == 4
    assert home.proc.poll() is None


def test_200_concurrent_cli_clients(home):
    procs = [subprocess.Popen([BIN, "--home", str(home.path), "status",
                               "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=home.env())
             for _ in range(200)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        r = json.loads(out)
        assert r["ok"] is True and r["pid"] == home.pid


def test_client_limit(home):
    held = []
    try:
        for _ in range(256):
            c = Ctl(home)
            assert c.request({"cmd": "status"})["ok"] is True
            held.append(c)
        # The 257th is told why and closed; the daemon keeps going.
        c = Ctl(home)
        r = c.reply()
        assert r["ok"] is False and "too many" in r["error"], r
        assert c.readline() is None
        c.close()
        r = cli(home, "status")
        assert r.returncode == 1, r
        assert "too many" in r.stderr
        # The held ones are still served.
        for c in held[:5] + held[-5:]:
            assert c.request({"cmd": "status"})["ok"] is True
        # A slot freed is a slot usable.
        held.pop().close()

        def freed():
            try:
                with Ctl(home) as c:
                    return c.request({"cmd": "status"})["ok"]
            except (AssertionError, OSError):
                return False
        wait_for(freed, 10, what="a freed client slot")
    finally:
        for c in held:
            c.close()
    assert cli(home, "status").returncode == 0


def test_stuck_and_slow_clients_do_not_block(home):
    # A client that sends half a line and nothing more.
    slow = Ctl(home)
    slow.send(b'{"cmd":"sta')
    # A client that keeps sending requests and never reads the replies.
    stuck = Ctl(home, timeout=60)
    sent = {"n": 0, "err": None}

    def flood():
        req = b'{"cmd":"sandbox.show"}\n' * 1000
        try:
            for _ in range(40):
                stuck.send(req)
                sent["n"] += 1000
        except OSError as e:
            sent["err"] = e
    t = threading.Thread(target=flood)
    t.start()
    try:
        # Others are answered promptly all along.
        for _ in range(10):
            t0 = time.monotonic()
            r = cli(home, "status", json_out=True, timeout=10)
            assert r.returncode == 0, r
            assert time.monotonic() - t0 < 5
        t.join(60)
        assert not t.is_alive()
        # Past the output bound the stuck client is dropped, not waited on.
        wait_for(lambda: "not reading" in home.log(), 20,
                 what="the stuck client dropped")
    finally:
        stuck.close()
    assert sent["err"] is not None or sent["n"] == 40000
    # The half line never became a request; that client is still connected
    # and can finish its line.
    slow.send(b'tus"}\n')
    assert slow.reply()["pid"] == home.pid
    slow.close()
    assert status(home)["ok"] is True

# -- status ----------------------------------------------------------------------


def test_status_fields_cli_and_raw(homes, tmp_path):
    gate = tmp_path / "gate"
    t_spawn = time.monotonic()
    h = homes({"agents": {"g1": gate_agent(gate), "g2": gate_agent(gate),
                          "g3": gate_agent(gate)},
               "sandbox": {"max_concurrency": 1, "max_waiters": 50},
               "supervisor": {"workers": 3}})
    t_ready = time.monotonic()
    wait_status(h, lambda s: len(s["workers"]) == 3 and
                all(w["state"] == "idle" for w in s["workers"]),
                what="3 idle workers")
    pids = h.wait_workers(3)
    m1 = h.drop("first", agent="g1")
    m2 = h.drop("second", agent="g1")
    m3 = h.drop("third", agent="g2")
    m4 = h.drop("fourth", agent="g3")

    st = wait_status(h, lambda s: len(busy(s)) == 1 and
                     s["permits"]["waiting"] == 2, what="1 busy, 2 waiting")
    assert st["ok"] is True
    assert st["pid"] == h.pid
    assert st["generation"] == 1
    assert st["paused"] is False and st["stopping"] is False
    assert st["mode"] == "host"
    ws = st["workers"]
    assert len(ws) == 3
    assert sorted(w["pid"] for w in ws) == pids
    (b,) = busy(st)
    assert b["agent"] == "g1"
    assert b["message"] == f"discord_{m1}.json"
    assert b["runningMs"] >= 0
    for w in ws:
        assert {"index", "pid", "state", "jobs"} <= set(w)
        if w is not b:
            assert w["state"] == "idle" and "agent" not in w
    assert st["permits"] == {"inUse": 1, "max": 1, "waiting": 2,
                             "maxWaiters": 50}
    q = st["queue"]
    assert q["incoming"] == 3 and q["processing"] == 1
    assert q["deferred"] == q["outgoing"] == q["deadLetter"] == \
        q["corrupt"] == 0
    assert st["lanes"] == {"g1": 2, "g2": 1, "g3": 1}
    assert set(st["counters"]) >= {"ok", "transient", "terminal",
                                   "retried", "dead"}
    assert all(v == 0 for k, v in st["counters"].items()
               if k != "received")

    # --json is the daemon's reply as is.
    j = cli_ok(h, "status")
    assert set(j) == set(st)
    assert j["permits"] == st["permits"] and j["queue"] == st["queue"]
    assert [w["pid"] for w in j["workers"]] == [w["pid"] for w in ws]

    # The human form says the same.
    r = cli(h, "status")
    assert r.returncode == 0, r
    out = r.stdout
    assert re.search(rf"pid {h.pid}\b.*configuration generation 1\b.*"
                     r"mode host", out), out
    assert "workers: 3" in out
    assert re.search(rf"worker \d+ pid {b['pid']} +busy .*running "
                     rf"discord_{re.escape(m1)}\.json for agent g1 "
                     r"\(\d+ ms\)", out), out
    assert len(re.findall(r"^ +worker \d+ pid \d+ +idle", out, re.M)) == 2
    assert "permits: 1 in use of 1, 2 waiting (max 50)" in out
    assert ("queue: incoming 3, processing 1, deferred 0, outgoing 0, "
            "dead-letter 0, corrupt 0") in out
    assert re.search(r"counters: ok 0, transient 0, terminal 0, "
                     r"retried 0, dead 0", out), out

    gate.write_text("")
    for mid in (m1, m2, m3, m4):
        h.wait_response(mid)
    st = wait_status(h, lambda s: not busy(s) and s["counters"]["ok"] == 4,
                     what="all done")
    assert st["permits"]["inUse"] == 0 and st["permits"]["waiting"] == 0
    assert st["queue"]["outgoing"] == 4
    assert st["queue"]["incoming"] == st["queue"]["processing"] == 0
    assert st["counters"]["received"] == 4
    assert sum(w["jobs"] for w in st["workers"]) == 4
    assert st["lanes"] == {}

    # Uptime: seconds since the daemon started.
    while time.monotonic() - t_ready < 2.2:
        time.sleep(0.1)
    lo = int(time.monotonic() - t_ready)
    st = status(h)
    hi = time.monotonic() - t_spawn
    assert lo <= st["uptimeSeconds"] <= hi + 1, (lo, st["uptimeSeconds"],
                                                hi)
    r = cli(h, "status")
    assert re.search(r"up (\d+)s", r.stdout)
    assert int(re.search(r"up (\d+)s", r.stdout).group(1)) >= lo


def test_status_counters_for_failures(homes, tmp_path):
    h = homes({"agents": {"good": echo_agent("v1"),
                          "flaky": failing_agent(),
                          "missing": {"provider": "command", "command":
                                      [str(tmp_path / "no-such-binary")]}},
               "sandbox": {"max_attempts": 2}})
    a = h.drop("fine", agent="good")
    b = h.drop("will fail", agent="flaky")
    c = h.drop("cannot run", agent="missing")
    h.wait_response(a)
    rec_b, _ = h.wait_dead(b)
    rec_c, _ = h.wait_dead(c)
    assert rec_b["errorClass"] == "transient" and rec_b["attempt"] == 2
    assert rec_c["errorClass"] == "terminal" and rec_c["attempt"] == 1
    st = wait_status(h, lambda s: s["counters"]["dead"] == 2,
                     what="2 dead")
    assert {k: st["counters"][k] for k in ("ok", "transient", "terminal",
                                           "retried", "dead")} == \
        {"ok": 1, "transient": 2, "terminal": 1, "retried": 1, "dead": 2}
    assert st["queue"]["deadLetter"] == 2
    assert st["queue"]["outgoing"] == 3     # one reply, two notices
    r = cli(h, "status")
    assert ("counters: ok 1, transient 2, terminal 1, retried 1, dead 2"
            in r.stdout), r.stdout
    assert "dead-letter 2" in r.stdout

# -- reload ------------------------------------------------------------------------


def test_reload_good_takes_effect(homes):
    h = homes({"agents": {"alpha": echo_agent("v1")}})
    assert h.wait_response(h.drop("one", agent="alpha"))["message"] == \
        "v1: one"

    reconfigure(h, {"agents": {"alpha": echo_agent("v2")}})
    r = cli(h, "reload")
    assert r.returncode == 0, r
    assert r.stdout == "configuration generation 2 in force\n"
    assert status(h)["generation"] == 2
    assert h.wait_response(h.drop("two", agent="alpha"))["message"] == \
        "v2: two"
    ev = [e for e in h.events("config_reloaded") if e["generation"] == 2]
    assert len(ev) == 1

    # SIGHUP does the same.
    reconfigure(h, {"agents": {"alpha": echo_agent("v3")}})
    h.signal(signal.SIGHUP)
    wait_status(h, lambda s: s["generation"] == 3, what="generation 3")
    assert h.wait_response(h.drop("three", agent="alpha"))["message"] == \
        "v3: three"

    # Over the raw protocol and with --json.
    reconfigure(h, {"agents": {"alpha": echo_agent("v4")}})
    with Ctl(h) as c:
        assert c.request({"cmd": "reload"}) == {"ok": True, "generation": 4}
    assert cli_ok(h, "reload") == {"ok": True, "generation": 5}
    assert h.wait_response(h.drop("four", agent="alpha"))["message"] == \
        "v4: four"
    # A new agent and a changed setting are in force too.
    reconfigure(h, {"agents": {"gamma": echo_agent("g")},
                    "sandbox": {"max_concurrency": 3}})
    assert cli(h, "reload").returncode == 0
    st = status(h)
    assert st["generation"] == 6 and st["permits"]["max"] == 3
    assert h.wait_response(h.drop("five", agent="gamma"))["message"] == \
        "g: five"


BAD_CONFIGS = [
    ("pids_limit", {"sandbox": {"docker": {"pids_limit": "many"}}},
     "sandbox.docker.pids_limit"),
    ("mode", {"sandbox": {"mode": "vm"}}, "sandbox.mode"),
    ("max_attempts", {"sandbox": {"max_attempts": 0}},
     "sandbox.max_attempts"),
    ("negative", {"sandbox": {"timeout_seconds": -1}},
     "sandbox.timeout_seconds"),
    ("workers", {"supervisor": {"workers": "four"}}, "supervisor.workers"),
    ("provider", {"agents": {"zeta": {"provider": "gemini"}}},
     "agents.zeta.provider"),
    ("command", {"agents": {"zeta": {"provider": "command"}}},
     "agents.zeta.command"),
    ("syntax", None, "settings.json"),
]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_reload_bad_keeps_old_config(homes, case):
    name, override, needle = case
    h = homes({"agents": {"alpha": echo_agent("v1")}})
    good = h.settings
    if override is None:
        h.write_settings(good, raw=json.dumps(good)[:-5])
    else:
        h.write_settings(deep_merge(good, override))
    before = len(h.events("config_reload_failed"))

    r = cli(h, "reload")
    assert r.returncode == 1, r
    assert needle in r.stderr, r.stderr
    assert r.stdout == ""
    st = status(h)
    assert st["generation"] == 1 and st["mode"] == "host"
    ev = h.events("config_reload_failed")
    assert len(ev) == before + 1
    assert needle in ev[-1]["error"] and ev[-1]["generation"] == 1
    assert needle in h.log()
    # The old configuration keeps serving.
    assert h.wait_response(h.drop("still", agent="alpha"))["message"] == \
        "v1: still"

    # The same over the raw protocol and --json, and on SIGHUP.
    with Ctl(h) as c:
        rep = c.request({"cmd": "reload"})
    assert rep["ok"] is False and needle in rep["error"], rep
    r = cli(h, "reload", json_out=True)
    assert r.returncode == 1
    assert json.loads(r.stdout)["ok"] is False
    h.signal(signal.SIGHUP)
    wait_for(lambda: len(h.events("config_reload_failed")) == before + 4, 10,
             what="config_reload_failed after SIGHUP")
    assert status(h)["generation"] == 1
    assert h.wait_response(h.drop("again", agent="alpha"))["message"] == \
        "v1: again"

    # Fixed, a reload works again.
    h.write_settings(deep_merge(good, {"agents":
                                       {"alpha": echo_agent("v2")}}))
    assert cli(h, "reload").returncode == 0
    assert status(h)["generation"] == 2
    assert h.wait_response(h.drop("fixed", agent="alpha"))["message"] == \
        "v2: fixed"


def test_concurrent_reloads_are_serialized(home):
    n = 20
    gens, errors = [], []

    def one():
        try:
            with Ctl(home) as c:
                r = c.request({"cmd": "reload"})
            assert r["ok"] is True, r
            gens.append(r["generation"])
        except Exception as e:          # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert sorted(gens) == list(range(2, n + 2))
    assert status(home)["generation"] == n + 1


@pytest.mark.parametrize("kind", ["command", "model"])
def test_reload_under_load(homes, tmp_path, kind):
    n, agents = 200, ["a1", "a2", "a3", "a4"]
    log = tmp_path / "starts.log"
    if kind == "command":
        conf = {a: echo_agent("v1", 0.05, log) for a in agents}
    else:
        conf = {a: {"provider": "anthropic", "model": "sonnet"}
                for a in agents}
    h = homes({"agents": conf, "supervisor": {"workers": 4}})
    mids = {}
    for i in range(n):
        a = agents[i % 4]
        text = f"n{i:03d}"
        mids[h.drop(text, agent=a)] = (a, text)
    order_a1 = [m for m, (a, _) in mids.items() if a == "a1"]

    # Once a1 is well under way (and far from done), change its command
    # (or model) and reload.
    wait_for(lambda: sum(1 for m in order_a1[:10] if h.responses(m)) >= 5,
             30, what="a1 under way")
    if kind == "command":
        new = {"a1": echo_agent("v2", 0.05, log)}
    else:
        new = {"a1": {"provider": "anthropic", "model": "opus"}}
    reconfigure(h, {"agents": new})
    t0_ns = time.time_ns()
    r = cli(h, "reload")
    t1_ns = time.time_ns()
    assert r.returncode == 0, r
    assert "generation 2" in r.stdout
    done_a1 = sum(1 for m in order_a1 if h.responses(m))
    assert done_a1 < len(order_a1) - 10, "a1 finished before the reload"

    # No message lost: 200 outcomes, each a response, each once.
    for m in mids:
        h.wait_response(m, timeout=90)
    assert len(h.files("outgoing")) == n
    assert h.files("dead-letter") == []
    for sub in ("incoming", "processing", "deferred"):
        assert h.files(sub) == [], sub
    st = status(h)
    assert st["counters"]["ok"] == n and st["generation"] == 2

    # What each invocation ran (each ran once), and when the supervisor
    # dispatched it (its sandbox_invocation_start event, in ms).
    ran = {}
    if kind == "command":
        for line in log.read_text().splitlines():
            _, _, version, text = line.split(" ", 3)
            assert text not in ran, f"{text} ran twice"
            ran[text] = version
    else:
        for c in h.calls():
            text = c["message"]
            model = c["argv"][c["argv"].index("--model") + 1]
            assert text not in ran, f"{text} ran twice"
            ran[text] = {"claude-sonnet-4-5": "v1",
                         "claude-opus-4-6": "v2"}[model]
    assert len(ran) == n
    dispatched = {}
    for e in h.events("sandbox_invocation_start"):
        assert e["messageId"] not in dispatched
        dispatched[e["messageId"]] = e["timestamp"]
    assert set(dispatched) == set(mids)
    t0_ms, t1_ms = t0_ns // 1_000_000, t1_ns // 1_000_000 + 1
    seen = []
    for m, (a, text) in mids.items():
        version = ran[text]
        reply = h.responses(m)[0]["message"]
        if kind == "command":
            assert reply == f"{version}: {text}"
        else:
            want = "claude-opus-4-6" if version == "v2" else \
                "claude-sonnet-4-5"
            assert f"model={want}" in reply, reply
        if a != "a1":
            assert version == "v1", (m, a, version)
            continue
        # In-flight ones finish under their own configuration; the ones
        # dispatched after the reload replied use the new one.
        t = dispatched[m]
        if t < t0_ms:
            assert version == "v1", (text, t, t0_ms)
        if t > t1_ms:
            assert version == "v2", (text, t, t1_ms)
        seen.append(version)
    # a1's messages ran in order: old ones, then new ones, both present.
    assert seen == sorted(seen), seen
    assert seen.count("v1") >= 5 and seen.count("v2") >= 10, seen


def test_pool_resize_on_reload(homes):
    agents = ["w1", "w2", "w3", "w4"]
    h = homes({"agents": {a: echo_agent("r", 0.3) for a in agents},
               "supervisor": {"workers": 2}})
    assert len(status(h)["workers"]) == 2
    h.wait_workers(2)
    mids = [h.drop(f"x{i}", agent=agents[i % 4]) for i in range(8)]
    wait_status(h, lambda s: len(busy(s)) == 2, what="2 busy")

    # Grow to 4 while busy.
    reconfigure(h, {"supervisor": {"workers": 4}})
    assert cli(h, "reload").returncode == 0
    st = wait_status(h, lambda s: len(s["workers"]) == 4 and
                     all(w["pid"] > 0 for w in s["workers"]),
                     what="4 workers")
    assert st["generation"] == 2
    h.wait_workers(4)
    wait_status(h, lambda s: len(busy(s)) >= 3, what="more than 2 busy")

    # Shrink to 1 while busy: nothing dropped.
    mids += [h.drop(f"y{i}", agent=agents[i % 4]) for i in range(8)]
    wait_status(h, lambda s: len(busy(s)) >= 2, what="busy before shrink")
    reconfigure(h, {"supervisor": {"workers": 1}})
    r = cli(h, "reload")
    assert r.returncode == 0 and "generation 3" in r.stdout
    for m in mids:
        assert h.wait_response(m, timeout=30)["message"].startswith("r: ")
    assert h.files("dead-letter") == []
    st = wait_status(h, lambda s: len(s["workers"]) == 1, what="1 worker")
    h.wait_workers(1)
    assert st["counters"]["ok"] == 16
    assert st["counters"]["transient"] == 0

    # One worker now: never more than one invocation at once.
    more = [h.drop(f"z{i}", agent=a) for i, a in enumerate(agents)]
    peak = 0
    while not all(h.responses(m) for m in more):
        s = status(h)
        assert len(s["workers"]) == 1
        peak = max(peak, len(busy(s)))
        time.sleep(0.05)
    assert peak == 1
    r = cli(h, "status")
    assert "workers: 1\n" in r.stdout

# -- sandbox show / set / env -----------------------------------------------------

SECRET_A = "sk-ant-api03-SECRETVALUEdoNotLeak0123456789"
SECRET_O = "sk-proj-OPENAISECRETdoNotLeak9876543210"
SECRET_ENV = {"ANTHROPIC_API_KEY": SECRET_A, "OPENAI_API_KEY": SECRET_O}


def assert_no_secret(text):
    assert SECRET_A not in text and SECRET_O not in text
    assert "SECRETVALUE" not in text and "OPENAISECRET" not in text


def test_sandbox_show_zero_values_and_no_secrets(homes):
    h = homes({"sandbox": {"timeout_seconds": 0, "max_concurrency": 0,
                           "backoff_seconds": 0, "kill_grace_seconds": 0,
                           "backoff_max_seconds": 0, "max_waiters": 0,
                           "docker": {"pids_limit": 0},
                           "max_attempts": None}},
              start=False)
    h.start(env=SECRET_ENV)
    r = cli(h, "sandbox", "show")
    assert r.returncode == 0, r
    assert_no_secret(r.stdout + r.stderr)
    human = json.loads(r.stdout)
    j = cli_ok(h, "sandbox", "show")
    with Ctl(h) as c:
        raw = c.request({"cmd": "sandbox.show"})
    for rep in (human, j, raw):
        sb = rep["sandbox"]
        for k in ("timeout_seconds", "max_concurrency", "backoff_seconds",
                  "kill_grace_seconds", "backoff_max_seconds",
                  "max_waiters"):
            assert sb[k] == 0, (k, sb[k])
        assert sb["docker"]["pids_limit"] == 0
        # Absent keys take the defaults.
        assert sb["max_attempts"] == 3
        assert sb["max_output_bytes"] == 10485760
        assert sb["max_message_bytes"] == 100000
        assert sb["mode"] == "host"
        assert sb["env_allowlist"] == ["ANTHROPIC_API_KEY",
                                       "CLAUDE_CODE_OAUTH_TOKEN",
                                       "OPENAI_API_KEY", "CODEX_API_KEY"]
        assert sb["docker"]["image"] == "tinyclaw/agent-runner:latest"
        assert sb["apple"]["runtime_command"] == "container"
        assert rep["supervisor"]["workers"] == 4
        assert rep["generation"] == 1
        assert set(rep["agents"]) == {"alpha", "beta"}
        assert rep["agents"]["alpha"]["provider"] == "anthropic"
        assert_no_secret(json.dumps(rep))
    assert set(j) == set(raw)
    st = status(h)
    assert st["permits"]["max"] == 0 and st["permits"]["maxWaiters"] == 0

    # sandbox.env says which keys the daemon has, never their values.
    with Ctl(h) as c:
        env = c.request({"cmd": "sandbox.env"})
    assert env["ok"] is True
    assert env["set"] == {"ANTHROPIC_API_KEY": True, "OPENAI_API_KEY": True,
                          "CLAUDE_CODE_OAUTH_TOKEN": False,
                          "CODEX_API_KEY": False}
    assert env["uid"] == os.getuid()
    assert_no_secret(json.dumps(env))


def test_no_secret_in_any_control_reply(homes):
    leak = {"provider": "command", "command": [
        "sh", "-c", 'echo "ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY '
        'OPENAI_API_KEY=$OPENAI_API_KEY" >&2; exit 1']}
    h = homes({"agents": {"leaky": leak}, "sandbox": {"max_attempts": 1}},
              start=False)
    h.start(env=SECRET_ENV)
    mid = h.drop("leak please", agent="leaky")
    h.wait_dead(mid)
    outs = []
    for args in (["status"], ["sandbox", "show"], ["dead", "list"]):
        for js in (False, True):
            r = cli(h, *args, json_out=js)
            assert r.returncode == 0, r
            outs.append(r.stdout + r.stderr)
    dead_id = cli_ok(h, "dead", "list")["dead"][0]["id"]
    r = cli(h, "dead", "show", dead_id)
    assert r.returncode == 0 and mid in r.stdout
    outs.append(r.stdout)
    with Ctl(h) as c:
        for req in ({"cmd": f"x ANTHROPIC_API_KEY={SECRET_A}"},
                    {"cmd": "dead.show", "id": f"OPENAI_API_KEY={SECRET_O}"},
                    {"cmd": "sandbox.set",
                     "mode": f"ANTHROPIC_API_KEY={SECRET_A}"}):
            rep = c.request(req)
            assert rep["ok"] is False
            outs.append(json.dumps(rep))
        outs.append(json.dumps(c.request({"cmd": "sandbox.env"})))
    for o in outs:
        assert_no_secret(o)


EXTRA_SETTINGS = {
    "channels": {"enabled": ["discord", "telegram"],
                 "discord": {"bot_token_env": "DISCORD_BOT_TOKEN"}},
    "monitoring": {"heartbeat_interval": 3600},
    "custom": [1, 2.5, 0.1, 1e300, -0, None, True, False, "x",
               {"nested": {"deep": [[], {}]}}, 9007199254740993],
    "unicode": "h\u00e9llo \u2713 \U0001f600 / \"quoted\" \\ \t",
    "teams": {"dev": {"name": "Dev", "agents": ["alpha", "beta"],
                      "leader_agent": "alpha"}},
}


def test_sandbox_set_docker_keeps_everything_and_reloads(homes):
    h = homes(EXTRA_SETTINGS | {"sandbox": {"timeout_seconds": 0,
                                            "docker": {"memory": "4g"}}},
              start=False)
    path = h.path / "settings.json"
    os.chmod(path, 0o640)
    h.start()
    before = read_json(path)
    ino = os.stat(path).st_ino
    names = sorted(os.listdir(h.path))

    r = cli(h, "sandbox", "set", "docker")
    assert r.returncode == 0, r
    assert r.stdout == "configuration generation 2 in force\n"
    after = read_json(path)
    want = json.loads(json.dumps(before))
    want["sandbox"]["mode"] = "docker"
    assert after == want
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_ino != ino                 # a new file renamed in place
    assert sorted(os.listdir(h.path)) == names  # no temporary left
    s = status(h)
    assert s["generation"] == 2 and s["mode"] == "docker"
    assert cli_ok(h, "sandbox", "show")["sandbox"]["mode"] == "docker"
    assert [e for e in h.events("config_reloaded")
            if e["generation"] == 2]

    # Back to host over the raw protocol; --json from the CLI.
    with Ctl(h) as c:
        rep = c.request({"cmd": "sandbox.set", "mode": "host"})
    assert rep == {"ok": True, "generation": 3}
    assert read_json(path) == before
    assert cli_ok(h, "sandbox", "set", "apple") == {"ok": True,
                                                    "generation": 4}
    assert read_json(path)["sandbox"]["mode"] == "apple"
    assert status(h)["mode"] == "apple"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_sandbox_set_without_sandbox_section(homes):
    h = homes({"sandbox": None})
    before = read_json(h.path / "settings.json")
    assert "sandbox" not in before
    r = cli(h, "sandbox", "set", "docker")
    assert r.returncode == 0, r
    after = read_json(h.path / "settings.json")
    assert after == before | {"sandbox": {"mode": "docker"}}
    assert status(h)["mode"] == "docker"


def test_sandbox_set_validates_and_leaves_file_untouched(homes):
    h = homes(EXTRA_SETTINGS | {"sandbox": {"apple": {"cpus": "1.5"}}},
              start=False)
    path = h.path / "settings.json"
    os.chmod(path, 0o640)
    h.start()
    raw = path.read_bytes()
    st0 = os.stat(path)
    names = sorted(os.listdir(h.path))

    def untouched():
        st = os.stat(path)
        assert path.read_bytes() == raw
        assert (st.st_ino, st.st_mtime_ns, st.st_mode) == \
            (st0.st_ino, st0.st_mtime_ns, st0.st_mode)
        assert sorted(os.listdir(h.path)) == names
        s = status(h)
        assert s["generation"] == 1 and s["mode"] == "host"

    for bad in ("vm", "Docker", "", "host ", "docker;rm"):
        r = cli(h, "sandbox", "set", bad)
        assert r.returncode == 1, (bad, r)
        assert "sandbox.mode" in r.stderr, r.stderr
        untouched()
    r = cli(h, "sandbox", "set", "vm", json_out=True)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
    # A valid mode that makes the whole file invalid (apple takes whole
    # CPUs only) is refused as well, naming the key.
    r = cli(h, "sandbox", "set", "apple")
    assert r.returncode == 1, r
    assert "sandbox.apple.cpus" in r.stderr, r.stderr
    untouched()
    with Ctl(h) as c:
        for req in ({"cmd": "sandbox.set"},
                    {"cmd": "sandbox.set", "mode": None},
                    {"cmd": "sandbox.set", "mode": ["docker"]},
                    {"cmd": "sandbox.set", "mode": "apple"},
                    {"cmd": "sandbox.set", "mode": "docker\x00junk"}):
            assert c.request(req)["ok"] is False, req
    untouched()
    assert not h.events("config_reloaded")

    # An invalid settings.json on disk is not overwritten either.
    path.write_text('{"sandbox": {"mode": "host", "max_attempts": 0}}')
    raw = path.read_bytes()
    r = cli(h, "sandbox", "set", "docker")
    assert r.returncode == 1, r
    assert "sandbox.max_attempts" in r.stderr
    assert path.read_bytes() == raw
    assert status(h)["generation"] == 1

# -- doctor and build-image --------------------------------------------------------

FAKE_RUNTIME = r"""#!/bin/sh
# A fake docker for the doctor and build-image tests.
[ -n "${FAKE_RT_LOG:-}" ] && echo "$*" >> "$FAKE_RT_LOG"
case "$1" in
info)
	if [ -n "${FAKE_RT_INFO_FAIL:-}" ]; then
		echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
		exit 1
	fi
	echo "Server Version: 99.0"
	;;
image)
	if [ -n "${FAKE_RT_NO_IMAGE:-}" ]; then
		echo "Error: No such image: $3" >&2
		exit 1
	fi
	echo "[{}]"
	;;
run)
	# The doctor's throwaway container runs `sh -c true`, then
	# `sh -c "command -v ..."`: the script is the last argument.
	for last; do :; done
	if [ -n "${FAKE_RT_RUN_ERR:-}" ]; then
		# What rootless Podman says without /dev/net/tun.
		echo 'Error: /usr/bin/slirp4netns failed: "open(\"/dev/net/tun\"): Permission denied"' >&2
		exit 126
	fi
	[ "$last" = true ] && exit 0
	[ -n "${FAKE_RT_NO_CLIS:-}" ] && exit 1
	echo /usr/local/bin/claude
	echo /usr/local/bin/codex
	;;
build)
	# What the build gets: the context's files, as the engine would.
	for last; do :; done
	[ -n "${FAKE_RT_LOG:-}" ] && (cd "$last" && find . -type f | sort |
	    while read -r f; do echo "ctx $f $(head -c 40 "$f" | head -n 1)"; done) >> "$FAKE_RT_LOG"
	if [ -n "${FAKE_RT_BUILD_FAIL:-}" ]; then
		echo "build failed: no space left" >&2
		exit 1
	fi
	if [ -n "${FAKE_RT_PULL_FAIL:-}" ]; then
		# Podman 4.3 without Docker Hub.
		echo "STEP 1/9: FROM docker.io/library/node:22-bookworm-slim"
		echo "Trying to pull docker.io/library/node:22-bookworm-slim..."
		echo 'Error: error creating build container: initializing source docker://node:22-bookworm-slim: pinging container registry registry-1.docker.io: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host' >&2
		exit 125
	fi
	echo "built"
	;;
esac
exit 0
"""


@pytest.fixture
def fake_runtime(tmp_path):
    p = tmp_path / "fakert" / "docker"
    p.parent.mkdir()
    p.write_text(FAKE_RUNTIME)
    p.chmod(0o755)
    return p


def doctor(h, env=None):
    """Run the doctor both ways: (exit status, human lines, json)."""
    r = cli(h, "sandbox", "doctor", env=env)
    j = cli(h, "sandbox", "doctor", json_out=True, env=env)
    assert j.returncode == r.returncode, (r, j)
    rep = json.loads(j.stdout)
    assert rep["ok"] is (r.returncode == 0)
    lines = r.stdout.splitlines()
    # One line per check, each failure followed by its fix hint, and a
    # summary line.
    assert re.fullmatch(r"\d+ check\(s\) failed", lines[-1]), lines
    checks = [ln for ln in lines[:-1] if not re.match(r"^\s+fix: ", ln)]
    for i, ln in enumerate(lines[:-1]):
        assert re.match(r"^(ok|FAIL)\s+\S+\s+\S", ln) or \
            re.match(r"^\s+fix: \S", ln), ln
        if ln.startswith("FAIL"):
            assert re.match(r"^\s+fix: \S", lines[i + 1]), lines
    assert len(checks) == len(rep["checks"])
    nfail = sum(1 for c in rep["checks"] if not c["ok"])
    assert int(lines[-1].split()[0]) == nfail
    assert sum(1 for ln in checks if ln.startswith("FAIL")) == nfail
    for c in rep["checks"]:
        assert c["name"] and isinstance(c["detail"], str)
        if not c["ok"]:
            assert c["fix"]
    assert (r.returncode == 0) == (nfail == 0)
    return r.returncode, lines, rep


def failed(rep):
    return {c["name"]: c for c in rep["checks"] if not c["ok"]}


def test_doctor_without_daemon_missing_runtime(homes, tmp_path):
    h = homes({"sandbox": {"mode": "docker", "docker": {
        "runtime_command": str(tmp_path / "nowhere" / "docker")}}},
        start=False)
    rc, lines, rep = doctor(h)
    assert rc != 0
    assert rc != EX_UNAVAILABLE
    f = failed(rep)
    assert "runtime" in f
    assert "nowhere" in f["runtime"]["detail"]
    assert "runtime_command" in f["runtime"]["fix"]
    i = next(i for i, ln in enumerate(lines) if ln.startswith("FAIL") and
             "runtime" in ln)
    assert "nowhere/docker" in lines[i]
    assert "fix:" in lines[i + 1]
    assert any(ln.startswith("ok") and "settings" in ln for ln in lines)

    # An invalid settings.json is a failed check too, not a crash.
    h.write_settings(None, raw='{"sandbox": {"mode": "vm"}}')
    rc, lines, rep = doctor(h)
    assert rc != 0
    assert "sandbox.mode" in failed(rep)["settings"]["detail"]


def test_doctor_keys_in_the_daemons_environment(homes, fake_runtime):
    conf = {"sandbox": {"mode": "docker",
                        "docker": {"runtime_command": str(fake_runtime),
                                   "user": "10001:10001"}}}
    h = homes(conf, start=False)
    clean = h.env()
    for k in SECRET_ENV:
        clean.pop(k, None)
    with_keys = h.env(SECRET_ENV)

    # No daemon: the caller's environment is all there is.
    rc, lines, rep = doctor(h, env=clean)
    assert rc != 0
    f = failed(rep)
    assert set(f) == {"keys"}, f
    assert "no daemon" in f["keys"]["detail"]
    rc, lines, rep = doctor(h, env=with_keys)
    assert rc == 0, lines
    names = {c["name"] for c in rep["checks"]}
    assert {"settings", "runtime", "engine", "image", "clis", "allowlist",
            "keys", "network", "uid", "workspace"} <= names
    assert_no_secret("\n".join(lines) + json.dumps(rep))

    # A daemon with the keys: the caller need not have them.
    h.start(env=SECRET_ENV)
    rc, lines, rep = doctor(h, env=clean)
    assert rc == 0, lines
    keys = [c for c in rep["checks"] if c["name"] == "keys"]
    assert len(keys) == 2 and all("daemon" in c["detail"] for c in keys)
    assert_no_secret("\n".join(lines) + json.dumps(rep))
    h.stop()

    # A daemon without them: the caller having them does not count.
    h.start()
    rc, lines, rep = doctor(h, env=with_keys)
    assert rc != 0
    assert set(failed(rep)) == {"keys"}
    assert "daemon" in failed(rep)["keys"]["detail"]
    assert "restart" in failed(rep)["keys"]["fix"]


DOCTOR_FAILURES = [
    ("engine", {"FAKE_RT_INFO_FAIL": "1"}, {}, "Cannot connect"),
    ("image", {"FAKE_RT_NO_IMAGE": "1"}, {}, "not present"),
    ("clis", {"FAKE_RT_NO_CLIS": "1"}, {}, "missing"),
    # `run` fails while info and image inspect work: the engine's own
    # line, as an engine error, not "rebuild the image".
    ("sandbox", {"FAKE_RT_RUN_ERR": "1"}, {},
     "a container with a real run's flags failed: container engine error "
     "(FAKE exit 126, not the image's): Error: /usr/bin/slirp4netns failed: "
     "\"open(\\\"/dev/net/tun\\\"): Permission denied\""),
    ("allowlist", {}, {"sandbox": {"env_allowlist": ["OPENAI_API_KEY"]}},
     "ANTHROPIC_API_KEY"),
    ("uid", {}, {"sandbox": {"docker": {"user": "0:0"}}}, "root"),
    ("network", {}, {"sandbox": {"docker": {"network": "none"}}},
     "cannot reach their API"),
    ("workspace", {}, "WORKSPACE", "not writable"),
]


@pytest.mark.parametrize("case", DOCTOR_FAILURES,
                         ids=[c[0] for c in DOCTOR_FAILURES])
def test_doctor_each_failing_check(homes, fake_runtime, tmp_path, case):
    name, env, override, needle = case
    # The fake's switches reach it in the throwaway container's run as
    # they would any runtime: through runtime_pass_env.
    conf = {"sandbox": {"mode": "docker", "runtime_pass_env": ["FAKE_RT_*"],
                        "docker": {"runtime_command": str(fake_runtime),
                                   "user": "10001:10001"}}}
    if override == "WORKSPACE":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        h = homes(conf, start=False)
        reconfigure(h, {"workspace": {"path": str(blocker / "ws")}})
    else:
        h = homes(deep_merge(conf, override), start=False)
    rc, lines, rep = doctor(h, env=h.env(SECRET_ENV | env))
    assert rc != 0
    f = failed(rep)
    assert name in f, rep
    assert needle.replace("FAKE", str(fake_runtime)) in f[name]["detail"], \
        f[name]
    assert f[name]["fix"]
    if name == "sandbox":
        assert "Engine errors" in f[name]["fix"], f[name]
        assert "clis" not in f      # not run after the failed container
    if name in ("engine", "image"):
        # What depends on the failed check is not reported as failed too.
        assert set(f) == {name}
    if name == "image":
        assert "build-image" in f[name]["fix"]


def test_doctor_network_against_the_providers(homes, fake_runtime):
    conf = {"sandbox": {"mode": "docker",
                        "docker": {"runtime_command": str(fake_runtime),
                                   "user": "10001:10001"}}}
    h = homes(conf, start=False)
    env = h.env(SECRET_ENV)

    def net():
        rc, lines, rep = doctor(h, env=env)
        c = [c for c in rep["checks"] if c["name"] == "network"]
        assert len(c) == 1, rep
        return rc, c[0]

    rc, c = net()
    assert rc == 0 and c["ok"]
    assert "sandbox.docker.network" in c["detail"]
    assert "bridge" in c["detail"]
    # TinyClaw's "restricted": accepted, and said to be the default.
    reconfigure(h, {"sandbox": {"docker": {"network": "restricted"}}})
    rc, c = net()
    assert rc == 0 and c["ok"]
    assert "no restricted network" in c["detail"]
    # "none" only for the command provider.
    reconfigure(h, {"sandbox": {"docker": {"network": "none"}}})
    rc, c = net()
    assert rc != 0 and not c["ok"]
    assert "sandbox.docker.network" in c["fix"]
    reconfigure(h, {"agents": {a: {"provider": "command",
                                   "command": ["/bin/true"]}
                               for a in h.settings["agents"]}})
    rc, c = net()
    assert c["ok"], c
    assert "no network" in c["detail"]


def test_doctor_root_containers_and_claude(homes, fake_runtime):
    """user "auto" under a root daemon runs containers as root, where the
    claude CLI refuses --dangerously-skip-permissions; codex does not."""
    assert os.getuid() == 0     # the suite runs as root (podman)
    conf = {"sandbox": {"mode": "docker",
                        "docker": {"runtime_command": str(fake_runtime)}}}
    h = homes(conf, start=False)
    rc, lines, rep = doctor(h, env=h.env(SECRET_ENV))
    assert rc != 0
    f = failed(rep)
    assert set(f) == {"uid"}, f
    assert "claude refuses to run as root" in f["uid"]["detail"]
    assert "sandbox.docker.user" in f["uid"]["fix"]
    reconfigure(h, {"agents": {"alpha": None}})
    rc, lines, rep = doctor(h, env=h.env(SECRET_ENV))
    assert rc == 0, lines
    (uid,) = [c for c in rep["checks"] if c["name"] == "uid"]
    assert "0:0" in uid["detail"]


def test_doctor_creates_nothing(homes, fake_runtime, tmp_path):
    conf = {"sandbox": {"mode": "docker",
                        "docker": {"runtime_command": str(fake_runtime),
                                   "user": "10001:10001"}}}
    h = homes(conf, start=False)
    ws = tmp_path / "not-yet" / "ws"
    reconfigure(h, {"workspace": {"path": str(ws)}})
    rc, lines, rep = doctor(h, env=h.env(SECRET_ENV))
    assert rc == 0, lines
    c = [c for c in rep["checks"] if c["name"] == "workspace"]
    assert len(c) == 1 and "will be created" in c[0]["detail"], c
    assert not ws.exists() and not ws.parent.exists()


def test_doctor_host_mode_with_daemon(home):
    rc, lines, rep = doctor(home)
    assert rc == 0, lines
    clis = [c for c in rep["checks"] if c["name"] == "cli"]
    assert len(clis) == 2       # claude (alpha) and codex (beta), on PATH
    env = home.env()
    env["PATH"] = "/usr/bin:/bin"
    rc, lines, rep = doctor(home, env=env)
    assert rc != 0
    assert "cli" in failed(rep)
    assert "claude" in "\n".join(lines)


def test_build_image(homes, fake_runtime, tmp_path):
    ctx = tmp_path / "contrib"
    ctx.mkdir()
    (ctx / "Dockerfile.agent-runner").write_text("FROM scratch\n")
    rtlog = tmp_path / "rt.log"
    h = homes({"sandbox": {"docker": {"runtime_command": str(fake_runtime),
                                      "image": "example/runner:7"}}},
              start=False)
    env = h.env({"CLAWVISOR_CONTRIB": str(ctx), "FAKE_RT_LOG": str(rtlog)})
    r = cli(h, "sandbox", "build-image", env=env)
    assert r.returncode == 0, r
    # A context of its own: the Dockerfile and agent-runner/ca/ (its
    # README alone without --extra-ca), nothing else; removed after.
    build, *files = rtlog.read_text().splitlines()
    m = re.fullmatch(r"build -t example/runner:7 -f (/tmp/clawvisor-build-"
                     r"\w+)/Dockerfile.agent-runner (\S+)", build)
    assert m and m[1] == m[2], build
    assert files == ["ctx ./Dockerfile.agent-runner FROM scratch",
                     "ctx ./agent-runner/ca/README Certificates (*.crt) "
                     "here go into the im"], files
    assert not os.path.exists(m[1])
    assert "built" in r.stdout      # the build's output passed through
    assert "clawvisor sandbox set docker" in r.stdout
    assert "sandbox doctor" in r.stdout

    # --base and --extra-ca (a PEM certificate, refused otherwise).
    ca = tmp_path / "corp.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END "
                  "CERTIFICATE-----\n")
    rtlog.unlink()
    r = cli(h, "sandbox", "build-image", "--base", "localhost/b:1",
            "--extra-ca", str(ca), env=env)
    assert r.returncode == 0, r
    build, *files = rtlog.read_text().splitlines()
    assert " --build-arg BASE=localhost/b:1 /tmp/clawvisor-build-" in build
    assert files[1] == "ctx ./agent-runner/ca/extra.crt -----BEGIN " \
        "CERTIFICATE-----", files
    ca.write_text("not a certificate\n")
    r = cli(h, "sandbox", "build-image", "--extra-ca", str(ca), env=env)
    assert r.returncode == 1, r
    assert r.stderr == f"clawvisor: {ca}: not a PEM certificate (no " \
        "\"-----BEGIN CERTIFICATE-----\" line)\n", r.stderr
    for bad in (["--base"], ["--extra-ca", ""], ["--base", "a", "--base",
                                                "b"], ["extra"]):
        r = cli(h, "sandbox", "build-image", *bad, env=env)
        assert r.returncode == 2 and "usage: clawvisor sandbox " \
            "build-image [--base IMAGE] [--extra-ca FILE]" in r.stderr, bad

    env["FAKE_RT_BUILD_FAIL"] = "1"
    r = cli(h, "sandbox", "build-image", env=env)
    assert r.returncode == 1, r
    assert r.stderr.endswith("clawvisor: the image build failed\n"), r

    # No registry: said so, with the offline route.
    del env["FAKE_RT_BUILD_FAIL"]
    env["FAKE_RT_PULL_FAIL"] = "1"
    r = cli(h, "sandbox", "build-image", env=env)
    assert r.returncode == 1, r
    assert "clawvisor: the image build failed: the base image docker.io/" \
        "library/node:22-bookworm-slim cannot be pulled (Error: error " \
        "creating build container: initializing source docker://" in \
        r.stderr, r.stderr
    assert "contrib/agent-runner/verify-image.sh" in r.stderr
    assert "clawvisor sandbox build-image --base localhost/clawvisor-node-" \
        "base:22-bookworm" in r.stderr

    reconfigure(h, {"sandbox": {"docker": {"runtime_command":
                                           str(tmp_path / "none")}}})
    r = cli(h, "sandbox", "build-image", env=env)
    assert r.returncode == 1, r

# -- pause / resume ----------------------------------------------------------------


def test_pause_and_resume(homes):
    h = homes({"agents": {"alpha": echo_agent("v1"),
                          "slow": echo_agent("s", 1.0)}})
    # In flight when paused: it finishes.
    inflight = h.drop("long", agent="slow")
    wait_status(h, lambda s: len(busy(s)) == 1, what="busy")
    r = cli(h, "pause")
    assert r.returncode == 0 and r.stdout == "ok\n", r
    assert h.wait_response(inflight)["message"] == "s: long"

    st = status(h)
    assert st["paused"] is True
    assert ", PAUSED" in cli(h, "status").stdout
    # Dropped while paused: left alone.
    mid = h.drop("wait for me", agent="alpha")
    time.sleep(1.5)
    assert h.outcome(mid) is None
    assert [p.name for p in h.files("incoming")] == [f"discord_{mid}.json"]
    assert h.files("processing") == []
    st = status(h)
    assert not busy(st) and st["queue"]["incoming"] == 1
    # Pausing again is harmless; raw protocol and --json too.
    with Ctl(h) as c:
        assert c.request({"cmd": "pause"}) == {"ok": True}
    assert cli_ok(h, "pause") == {"ok": True}
    time.sleep(0.3)
    assert h.outcome(mid) is None

    r = cli(h, "resume")
    assert r.returncode == 0 and r.stdout == "ok\n", r
    assert h.wait_response(mid)["message"] == "v1: wait for me"
    assert status(h)["paused"] is False
    assert "PAUSED" not in cli(h, "status").stdout
    with Ctl(h) as c:
        assert c.request({"cmd": "resume"}) == {"ok": True}
    assert cli_ok(h, "resume") == {"ok": True}
    assert h.wait_response(h.drop("after", agent="alpha"))["message"] == \
        "v1: after"

# -- dead letters ------------------------------------------------------------------


def make_dead(h, texts, agent="broken"):
    mids = [h.drop(t, agent=agent) for t in texts]
    recs = {m: h.wait_dead(m)[0] for m in mids}
    return mids, recs


def test_dead_list_and_show(homes, tmp_path):
    h = homes({"agents": {"broken": failing_agent()},
               "sandbox": {"max_attempts": 2}})
    r = cli(h, "dead", "list")
    assert r.returncode == 0 and r.stdout == "no dead letters\n"
    assert cli_ok(h, "dead", "list") == {"ok": True, "dead": []}

    mids, recs = make_dead(h, ["d one", "d two", "d three"])
    ids = {m: f"discord_{m}" for m in mids}
    for m in mids:
        assert recs[m]["_path"].name == ids[m] + ".json"

    r = cli(h, "dead", "list")
    assert r.returncode == 0, r
    header, *lines = r.stdout.splitlines()
    assert header == "ID\tMESSAGE ID\tAGENT\tCLASS\tATTEMPTS\tFAILED AT\tERROR"
    assert len(lines) == 3
    for m in mids:
        (ln,) = [ln for ln in lines if ln.startswith(ids[m] + "\t")]
        f = ln.split("\t")
        assert f[0] == ids[m] and f[1] == m and f[2] == "broken"
        assert f[3] == "transient" and f[4] == "2/2"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f[5])
        assert "boom" in f[6]
    j = cli_ok(h, "dead", "list")
    with Ctl(h) as c:
        assert c.request({"cmd": "dead.list"}) == j
    assert sorted(d["id"] for d in j["dead"]) == sorted(ids.values())
    for d in j["dead"]:
        m = d["messageId"]
        assert d["id"] == ids[m] and d["agent"] == "broken"
        assert d["errorClass"] == "transient"
        assert d["attempt"] == 2 and d["maxAttempts"] == 2
        assert d["failedAt"] == recs[m]["failedAt"]
        assert "boom" in d["errorMessage"]

    m = mids[0]
    rec = {k: v for k, v in recs[m].items() if k != "_path"}
    for ident in (ids[m], ids[m] + ".json"):
        j = cli_ok(h, "dead", "show", ident)
        assert j["id"] == ids[m]
        assert j["record"] == rec
        r = cli(h, "dead", "show", ident)
        assert r.returncode == 0
        assert json.loads(r.stdout)["record"] == rec
    with Ctl(h) as c:
        assert c.request({"cmd": "dead.show", "id": ids[m]})["record"] == rec

    for bad, why in (("nope", "no dead letter"), ("../settings", "invalid"),
                     (".hidden", "invalid"), ("", "invalid")):
        r = cli(h, "dead", "show", bad)
        assert r.returncode == 1, (bad, r)
        assert why in r.stderr, (bad, r.stderr)
        r = cli(h, "dead", "show", bad, json_out=True)
        assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False


def test_dead_requeue_resets_attempts_and_succeeds(homes, tmp_path):
    calls = tmp_path / "broken.calls"
    h = homes({"agents": {"broken": failing_agent(calls),
                          "alpha": echo_agent("v1")},
               "sandbox": {"max_attempts": 2}})
    mids, recs = make_dead(h, ["r one", "r two", "r three"])
    assert len(calls.read_text().splitlines()) == 6
    for m in mids:
        # The dead letter's payload carries the retry bookkeeping.
        assert recs[m]["payload"]["attempt"] >= 1
        assert "lastError" in recs[m]["payload"]
    a, b, c = (f"discord_{m}" for m in mids)
    orig = {}
    for m in mids:
        p = {k: v for k, v in recs[m]["payload"].items()
             if k not in ("attempt", "firstSeenAt", "errorClass",
                          "lastError", "retryAt")}
        orig[m] = p

    # Paused, so the requeued file can be looked at in incoming/.
    assert cli(h, "pause").returncode == 0
    r = cli(h, "dead", "requeue", a)
    assert r.returncode == 0 and r.stdout == "1 requeued\n", r
    (f,) = h.files("incoming")
    assert f.name == a + ".json"
    q = read_json(f)
    assert q == orig[mids[0]]
    for k in ("attempt", "firstSeenAt", "errorClass", "lastError",
              "retryAt"):
        assert k not in q
    assert not (h.q / "dead-letter" / (a + ".json")).exists()
    assert [d["id"] for d in cli_ok(h, "dead", "list")["dead"]] == \
        sorted([b, c])

    # A message of that name already waiting: refused, the letter kept.
    h.drop("blocker", agent="alpha", name=b + ".json")
    r = cli(h, "dead", "requeue", b)
    assert r.returncode == 1, r
    assert "incoming" in r.stderr
    assert (h.q / "dead-letter" / (b + ".json")).exists()
    # Unknown and invalid ids.
    for bad in ("nope", "../x", ""):
        r = cli(h, "dead", "requeue", bad)
        assert r.returncode == 1, (bad, r)
    with Ctl(h) as conn:
        assert conn.request({"cmd": "dead.requeue"})["ok"] is False
        assert conn.request({"cmd": "dead.requeue", "all": False})["ok"] \
            is False

    # Still broken: the requeued message gets all its attempts again.
    n0 = len(calls.read_text().splitlines())
    assert cli(h, "resume").returncode == 0
    wait_for(lambda: h.responses(mids[0]) and
             (h.q / "dead-letter" / (a + ".json")).exists(), 15,
             what="requeued message dead again")
    again = read_json(h.q / "dead-letter" / (a + ".json"))
    assert again["attempt"] == 2 and again["maxAttempts"] == 2
    assert len(calls.read_text().splitlines()) == n0 + 2

    # Fixed by a reload, everything requeued succeeds.
    reconfigure(h, {"agents": {"broken": echo_agent("fixed")}})
    assert cli(h, "reload").returncode == 0
    r = cli(h, "dead", "requeue", "--all")
    assert r.returncode == 0 and r.stdout == "3 requeued\n", r
    assert h.files("dead-letter") == []
    for m in mids:
        def fixed(m=m):
            return [x for x in h.responses(m)
                    if x["message"] == f"fixed: {orig[m]['message']}"]
        wait_for(fixed, 15, what=f"{m} answered by the fixed agent")
    assert cli_ok(h, "dead", "list") == {"ok": True, "dead": []}
    assert cli(h, "dead", "list").stdout == "no dead letters\n"
    r = cli(h, "dead", "requeue", "--all", json_out=True)
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"ok": True, "requeued": 0, "failed": 0}


def test_dead_purge(homes):
    h = homes({"agents": {"broken": failing_agent()},
               "sandbox": {"max_attempts": 1}})
    mids, _ = make_dead(h, ["p one", "p two"])
    a, b = (f"discord_{m}" for m in mids)
    r = cli(h, "dead", "purge", a)
    assert r.returncode == 0 and r.stdout == "ok\n", r
    assert not (h.q / "dead-letter" / (a + ".json")).exists()
    assert [d["id"] for d in cli_ok(h, "dead", "list")["dead"]] == [b]
    r = cli(h, "dead", "purge", a)
    assert r.returncode == 1 and "no dead letter" in r.stderr
    for bad in ("../settings", ".x", "", "a/b"):
        r = cli(h, "dead", "purge", bad)
        assert r.returncode == 1, (bad, r)
    assert (h.path / "settings.json").exists()
    with Ctl(h) as c:
        # Not the id asked for: a NUL inside does not cut it short.
        r = c.request({"cmd": "dead.purge", "id": b + "\x00junk"})
        assert r["ok"] is False, r
        assert (h.q / "dead-letter" / (b + ".json")).exists()
        assert c.request({"cmd": "dead.purge", "id": b + ".json"}) == \
            {"ok": True}
    assert h.files("dead-letter") == []
    assert cli(h, "dead", "purge", b, json_out=True).returncode == 1
    # Purged is gone: not requeued, not processed again.
    r = cli(h, "dead", "requeue", "--all")
    assert r.returncode == 0 and r.stdout == "0 requeued\n"

def test_dead_unreadable_records(home):
    d = home.q / "dead-letter"
    (d / "junk.json").write_text("not json {")
    (d / "nopayload.json").write_text('{"errorClass": "terminal"}')
    (d / "notes.txt").write_text("not a dead letter at all")
    j = cli_ok(home, "dead", "list")
    assert [x["id"] for x in j["dead"]] == ["nopayload"]
    r = cli(home, "dead", "list")
    assert r.returncode == 0 and \
        r.stdout.splitlines()[1].startswith("nopayload\t\t-\t"), r
    r = cli(home, "dead", "show", "junk")
    assert r.returncode == 1 and "not a dead letter" in r.stderr, r
    r = cli(home, "dead", "requeue", "nopayload")
    assert r.returncode == 1 and "payload" in r.stderr, r
    r = cli(home, "dead", "requeue", "--all", json_out=True)
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"ok": True, "requeued": 0, "failed": 2}
    assert sorted(p.name for p in home.files("dead-letter")) == \
        ["junk.json", "nopayload.json", "notes.txt"]
    assert home.files("incoming") == []
    assert cli(home, "dead", "purge", "junk").returncode == 0
    assert cli(home, "dead", "purge", "notes.txt").returncode == 1
    assert (d / "notes.txt").exists()
    assert status(home)["pid"] == home.pid

# -- stop --------------------------------------------------------------------------


def test_stop_idle(home):
    run = home.path / "run"
    r = cli(home, "stop")
    assert r.returncode == 0 and r.stdout == "ok\n", r
    assert home.proc.wait(10 * TIME_SCALE) == 0
    assert not (run / "clawvisor.sock").exists()
    assert not (run / "clawvisor.pid").exists()
    assert cli(home, "status").returncode == EX_UNAVAILABLE


def test_stop_raw_protocol(home):
    with Ctl(home) as c:
        assert c.request({"cmd": "stop"}) == {"ok": True}
    assert home.proc.wait(10 * TIME_SCALE) == 0
    assert not sock_path(home).exists()


def test_stop_with_pipelined_requests(home):
    # Nothing in flight, so the stop closes every client at once; the
    # requests after it in the same read must not touch a freed client.
    with Ctl(home) as c:
        c.send(b'{"cmd":"stop"}\n{"cmd":"status"}\n{"cmd":"dead.list"}\n'
               b'{"cmd":"stop"}\n')
        assert c.reply() == {"ok": True}
        while (line := c.readline()) is not None:
            assert json.loads(line)["ok"] is True
    assert home.proc.wait(10 * TIME_SCALE) == 0
    assert not sock_path(home).exists()
    assert not (home.path / "run" / "clawvisor.pid").exists()


def test_stop_from_many_clients_at_once(home):
    conns = [Ctl(home) for _ in range(20)]
    for c in conns:
        try:
            c.send(b'{"cmd":"stop"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass        # already stopped and closed: fine
    for c in conns:
        line = c.readline()
        assert line is None or json.loads(line) == {"ok": True}
        c.close()
    assert home.proc.wait(10 * TIME_SCALE) == 0
    assert not sock_path(home).exists()


def test_stop_hands_back_in_flight(homes):
    h = homes({"sandbox": {"kill_grace_seconds": 2}})
    mid = h.drop("sleep-once 30 handed back", agent="alpha")
    st = wait_status(h, lambda s: len(busy(s)) == 1, what="in flight")
    assert busy(st)[0]["message"] == f"discord_{mid}.json"
    t0 = time.monotonic()
    r = cli(h, "stop")
    assert r.returncode == 0, r

    # During the grace period: still answering, stopping, claiming nothing.
    st = status(h)
    assert st["stopping"] is True
    assert ", STOPPING" in cli(h, "status").stdout
    r = cli(h, "reload")
    assert r.returncode == 1 and "stopping" in r.stderr
    late = h.drop("arrived while stopping", agent="beta")

    assert h.proc.wait(15 * TIME_SCALE) == 0
    assert time.monotonic() - t0 < 10
    run = h.path / "run"
    assert not (run / "clawvisor.sock").exists()
    assert not (run / "clawvisor.pid").exists()
    names = sorted(p.name for p in h.files("incoming"))
    assert names == sorted([f"discord_{mid}.json", f"discord_{late}.json"])
    back = read_json(h.q / "incoming" / f"discord_{mid}.json")
    assert "attempt" not in back            # no attempt counted
    assert back["message"] == "sleep-once 30 handed back"
    assert h.outcome(mid) is None and h.outcome(late) is None
    assert h.files("processing") == [] and h.files("dead-letter") == []
    assert h.calls("arrived while stopping") == []
    assert cli(h, "status").returncode == EX_UNAVAILABLE

    # The next daemon finishes both, once each.
    h.start()
    assert "handed back" in h.wait_response(mid)["message"]
    h.wait_response(late)
    assert len(h.responses(mid)) == 1
    assert len(h.calls("sleep-once 30 handed back")) == 2
    assert status(h)["counters"]["transient"] == 0


def test_stop_lets_in_flight_finish_within_grace(homes):
    h = homes({"sandbox": {"kill_grace_seconds": 10}})
    mid = h.drop("sleep 1 finish me", agent="alpha")
    wait_status(h, lambda s: len(busy(s)) == 1, what="in flight")
    t0 = time.monotonic()
    assert cli(h, "stop").returncode == 0
    assert h.proc.wait(15 * TIME_SCALE) == 0
    assert time.monotonic() - t0 < 5
    assert "finish me" in h.responses(mid)[0]["message"]
    assert h.files("incoming") == [] and h.files("processing") == []
    assert not sock_path(h).exists()


# -- help, version, send -------------------------------------------------------


COMMANDS = ["serve", "status", "metrics", "reload", "pause", "resume", "stop",
            "send", "exec", "shim",
            "sandbox show", "sandbox set", "sandbox doctor",
            "sandbox build-image", "dead list", "dead show", "dead requeue",
            "dead purge", "help", "--version"]


def test_help_and_version(homes):
    h = homes(start=False)
    for args in (["--help"], ["-h"], ["help"]):
        r = cli(h, *args)
        assert r.returncode == 0 and r.stderr == "", (args, r)
        for c in COMMANDS:
            assert f"clawvisor [--home DIR] {c}" in r.stdout, (c, r.stdout)
    # One command's usage and what it does; a usage error says all.
    r = cli(h, "help", "dead")
    assert r.returncode == 0, r
    assert [ln.split()[4] for ln in r.stdout.splitlines()
            if ln.startswith("  clawvisor")] == ["list", "show", "requeue",
                                                 "purge"]
    r = cli(h, "help", "nope")
    assert r.returncode == 2 and 'no command "nope"' in r.stderr, r
    r = cli(h, "no-such-command")
    assert r.returncode == 2, r
    r = subprocess.run([BIN], capture_output=True, text=True)
    assert r.returncode == 2 and "clawvisor [--home DIR] send" in r.stderr
    for args in (["--version"], ["-V"], ["version"]):
        r = cli(h, *args)
        assert r.returncode == 0, r
        assert re.fullmatch(r"clawvisor \d+\.\d+\.\d+ \(worker protocol "
                            r"\d+\)\n", r.stdout), r.stdout


def test_send(homes, tmp_path):
    h = homes({"agents": {"echo": echo_agent("v1"),
                          "broken": failing_agent()},
               "sandbox": {"max_attempts": 1}}, start=False)
    # No daemon: --wait refuses (a reply could never come), writes nothing.
    r = cli(h, "send", "--wait", "hello")
    assert r.returncode == 69 and "no daemon runs on" in r.stderr, r
    assert h.files("incoming") == []
    h.start()
    # The reply printed, its response taken from outgoing/ as a channel
    # client takes it.
    r = cli(h, "send", "--agent", "echo", "--wait", "hello", "there")
    assert r.returncode == 0, r
    assert r.stdout == "v1: hello there\n", r
    assert h.files("outgoing") == []
    # Without --wait: the messageId; the message as a channel client
    # writes one.
    r = cli(h, "send", "--agent", "echo", "--channel", "ops", "--sender",
            "Ann", "hi")
    assert r.returncode == 0, r
    mid = r.stdout.strip()
    assert re.fullmatch(r"\d+_[0-9a-f]{8}", mid), mid
    resp = h.wait_response(mid)
    assert resp["_path"].name.startswith(f"ops_{mid}_")
    assert resp["message"] == "v1: hi" and resp["agent"] == "echo"
    assert resp["sender"] == "Ann" and resp["channel"] == "ops"
    assert resp["senderId"] == str(os.getuid())
    # A dead letter: its notice printed, exit 1.
    r = cli(h, "send", "--agent", "broken", "--wait", "fail")
    assert r.returncode == 1, r
    assert r.stdout == NOTICE_TEXT + "\n", r
    # Bad arguments: usage, nothing written.
    for bad in (["send"], ["send", "--agent"], ["send", "--agent", "a/b",
                                                "x"],
                ["send", "--channel", "", "x"], ["send", "--timeout", "0",
                                                 "x"], ["send", "   "]):
        r = cli(h, *bad)
        assert r.returncode == 2 and "usage: clawvisor" in r.stderr, bad
    assert h.files("incoming") == []


def test_send_wait_file_without_reply_text(homes):
    """A file in outgoing/ named for send's message but without a
    "message" string (not the daemon's): named on stderr, exit 1, left
    where it is; no crash (a NULL reply text went to puts())."""
    h = homes({"agents": {"echo": echo_agent("v1")}})
    assert cli(h, "pause").returncode == 0
    p = subprocess.Popen([BIN, "--home", str(h.path), "send", "--wait",
                          "--timeout", "60", "hello"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=h.env(), text=True)
    try:
        name = wait_for(lambda: [f.name for f in h.files("incoming")], 30,
                        what="send's message")[0]
        mid = name[len("cli_"):-len(".json")]
        bad = h.path / "queue" / "outgoing" / f"cli_{mid}_1.json"
        tmp = bad.with_name(".tmp")
        tmp.write_text(json.dumps({"channel": "cli", "files": [None, 5],
                                   "message": None}))
        os.rename(tmp, bad)
        out, err = p.communicate(timeout=30 * TIME_SCALE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, (p.returncode, err)
    assert out == ""
    assert f"{bad} is no response: it has no \"message\" text; left " \
        "there" in err, err
    assert bad.exists()
