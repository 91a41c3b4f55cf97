"""
The sd_notify protocol, as systemd's Type=notify sees it: the test binds a
unix datagram socket, starts `clawvisor serve -f` with NOTIFY_SOCKET
pointing at it, and reads what the daemon sends: READY=1 (with MAINPID)
once the control socket answers, RELOADING=1 (with MONOTONIC_USEC) then
READY=1 around every reload, refused or not, and STOPPING=1 on SIGTERM.

Self-contained on purpose (its own small helpers, no conftest fixtures):
the daemon comes from $CLAWVISOR_BIN.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import TIME_SCALE

BIN = os.environ.get("CLAWVISOR_BIN", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build",
    "clawvisor"))

SETTINGS = {
    "agents": {
        "echo": {
            "provider": "command",
            "command": ["/bin/echo", "{message}"],
        }
    },
    "sandbox": {"mode": "host", "timeout_seconds": 30},
    "supervisor": {"workers": 1},
}


def parse(datagram):
    """KEY=VALUE lines of one notification, as a dict."""
    out = {}
    for line in datagram.decode().split("\n"):
        if line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


class Daemon:
    """One `clawvisor serve -f` on a temporary home, with a notify socket."""

    def __init__(self, root, abstract=False, extra_args=()):
        self.home = root / "home"
        self.home.mkdir()
        settings = dict(SETTINGS, workspace={"path": str(root / "ws")})
        (self.home / "settings.json").write_text(json.dumps(settings))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"clawvisor-notify-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.addr = "@" + name
        else:
            self.addr = str(root / "notify.sock")
            self.sock.bind(self.addr)
        self.env = dict(os.environ, NOTIFY_SOCKET=self.addr)
        self.env.pop("TINYCLAW_HOME", None)
        self.err = open(root / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "-f", "--home", str(self.home), *extra_args],
            env=self.env, stdin=subprocess.DEVNULL,
            stdout=self.err, stderr=self.err)

    @property
    def control(self):
        return self.home / "run" / "clawvisor.sock"

    def recv(self, timeout=10):
        """The next notification, or AssertionError."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no notification within {timeout}s; "
                                 f"daemon exit {self.proc.poll()}")
        return parse(data)

    def assert_quiet(self, wait=0.3):
        """Nothing more was sent."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        raise AssertionError(f"unexpected notification {data!r}")

    def client(self, *args):
        return subprocess.run([BIN, "--home", str(self.home), *args],
                              env=self.env, capture_output=True, text=True,
                              timeout=30)

    def control_answers(self):
        """A status request on the control socket gets an ok reply."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(str(self.control))
            s.sendall(b'{"cmd":"status"}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return json.loads(buf).get("ok") is True

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10 * TIME_SCALE)
        self.sock.close()
        self.err.close()


@pytest.fixture
def root():
    # Short: a unix socket path holds at most 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="cv-notify-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons():
    started = []
    yield started
    for d in started:
        d.close()


def start(daemons, root, **kw):
    d = Daemon(root, **kw)
    daemons.append(d)
    return d


def assert_ready(d):
    msg = d.recv()
    assert msg.get("READY") == "1", msg
    assert msg.get("MAINPID") == str(d.proc.pid), msg
    # READY comes only once the control socket is up and answering.
    assert d.control.is_socket()
    assert d.control_answers()
    return msg


def assert_reload_pair(d, before_us):
    msg = d.recv()
    assert msg.get("RELOADING") == "1", msg
    # CLOCK_MONOTONIC, in microseconds, taken when the reload began.
    usec = int(msg["MONOTONIC_USEC"])
    after_us = time.monotonic_ns() // 1000
    assert before_us <= usec <= after_us, (before_us, usec, after_us)
    ready = d.recv()
    assert ready.get("READY") == "1", ready
    return ready


def test_ready_reload_stopping(daemons, root):
    d = start(daemons, root)
    assert_ready(d)
    d.assert_quiet()

    # SIGHUP: RELOADING=1 with a timestamp, then READY=1 again.
    before = time.monotonic_ns() // 1000
    d.proc.send_signal(signal.SIGHUP)
    ready = assert_reload_pair(d, before)
    assert "STATUS" not in ready, ready
    d.assert_quiet()

    # `clawvisor reload` goes the same way.
    before = time.monotonic_ns() // 1000
    r = d.client("reload")
    assert r.returncode == 0, r.stderr
    assert_reload_pair(d, before)

    # SIGTERM: STOPPING=1, then a clean exit.
    d.proc.send_signal(signal.SIGTERM)
    msg = d.recv()
    assert msg.get("STOPPING") == "1", msg
    assert d.proc.wait(15 * TIME_SCALE) == 0
    assert not d.control.exists()


def test_refused_reload_still_reports_ready(daemons, root):
    """A bad settings.json on reload must not leave systemd waiting in
    "reloading": READY=1 comes back, with a STATUS saying why."""
    d = start(daemons, root)
    assert_ready(d)
    (d.home / "settings.json").write_text(
        json.dumps({"sandbox": {"mode": "bogus"}}))
    before = time.monotonic_ns() // 1000
    d.proc.send_signal(signal.SIGHUP)
    ready = assert_reload_pair(d, before)
    assert "refused" in ready.get("STATUS", ""), ready
    # Still serving on the old configuration.
    assert d.proc.poll() is None
    assert d.control_answers()

    d.proc.send_signal(signal.SIGINT)
    assert d.recv().get("STOPPING") == "1"
    assert d.proc.wait(15 * TIME_SCALE) == 0


def test_stop_command_sends_stopping(daemons, root):
    d = start(daemons, root)
    assert_ready(d)
    r = d.client("stop")
    assert r.returncode == 0, r.stderr
    assert d.recv().get("STOPPING") == "1"
    assert d.proc.wait(15 * TIME_SCALE) == 0


def test_abstract_notify_socket(daemons, root):
    """NOTIFY_SOCKET may name an abstract socket ("@name")."""
    d = start(daemons, root, abstract=True)
    assert_ready(d)
    d.proc.send_signal(signal.SIGTERM)
    assert d.recv().get("STOPPING") == "1"
    assert d.proc.wait(15 * TIME_SCALE) == 0


def test_config_error_sends_no_ready(daemons, root):
    """A settings error at start is exit 78 (EX_CONFIG) and never READY=1:
    systemd sees the start fail (and RestartPreventExitStatus=78 holds)."""
    home = root / "home"
    home.mkdir()
    (home / "settings.json").write_text('{"sandbox": {"max_attempts": 0}}')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = str(root / "notify.sock")
    sock.bind(addr)
    try:
        env = dict(os.environ, NOTIFY_SOCKET=addr)
        env.pop("TINYCLAW_HOME", None)
        r = subprocess.run([BIN, "serve", "-f", "--home", str(home)],
                           env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 78, r.stderr
        assert "sandbox.max_attempts" in r.stderr
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(4096)
    finally:
        sock.close()


def test_syslog_option(daemons, root):
    """--syslog: lines go to syslog(3) instead of logs/clawvisor.log, and the
    daemon works as usual (with or without a syslog daemon listening)."""
    d = start(daemons, root, extra_args=("--syslog",))
    assert_ready(d)
    r = d.client("status")
    assert r.returncode == 0, r.stderr
    log = d.home / "logs" / "clawvisor.log"
    assert not log.exists() or log.stat().st_size == 0
    d.proc.send_signal(signal.SIGTERM)
    assert d.recv().get("STOPPING") == "1"
    assert d.proc.wait(15 * TIME_SCALE) == 0
