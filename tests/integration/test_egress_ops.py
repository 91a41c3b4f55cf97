"""
Operating the egress process (SPEC §9, issue 15 "Operations"):

- `sandbox doctor` has the egress process check each provider URL's TLS
  handshake (a TLS stand-in with a test CA made now): ok with ca_file, the
  libtls error and the ca_file fix without it or with a name the
  certificate does not hold, a refused connection, and "no network here:
  not checked" for a name that does not resolve;
- `clawvisor status` prints an egress line;
- a hung DNS resolver (a fake one on 127.53.X.Y:53 that answers nothing
  until the test lets it, bind-mounted as /etc/resolv.conf in a mount
  namespace of the daemon's own) does not stall the egress loop: a tunnel
  to an allowed address goes through while the lookups hang, and the hung
  connections get their refusal when the resolver gives up;
- the keys' values are wiped in a clawvisor process's initial environment
  block whether or not it ever sets a process title;
- an OAuth token goes upstream with Claude Code's anthropic-beta flag.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import BIN, wait_for
from test_egress_e2e import make_ca
from test_egress_proxy import echo_server, reason


def status(h):
    r = subprocess.run([BIN, "--home", str(h.path), "status", "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ctl(h, *args):
    return subprocess.run([BIN, "--home", str(h.path), *args],
                          capture_output=True, text=True, timeout=120,
                          env=h.env(), stdin=subprocess.DEVNULL)


def tls_checks(h):
    r = ctl(h, "sandbox", "doctor", "--json")
    out = json.loads(r.stdout)
    return [c for c in out["checks"] if c["name"] == "egress tls" and
            c["detail"].startswith("anthropic ")], r


class TLSServer:
    """Accepts, completes a TLS handshake, closes."""

    def __init__(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.handshakes = 0

        def loop():
            while True:
                try:
                    c, _ = self.srv.accept()
                except OSError:
                    return
                try:
                    with ctx.wrap_socket(c, server_side=True):
                        self.handshakes += 1
                except (OSError, ssl.SSLError):
                    pass
                c.close()
        threading.Thread(target=loop, daemon=True).start()

    def close(self):
        self.srv.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def tlsd(homes, tmp_path):
    ca, cert, key = make_ca(str(tmp_path))
    srv = TLSServer(cert, key)
    h = homes({"sandbox": {"mode": "bwrap", "egress": {
        "mode": "proxy", "ca_file": ca, "providers": {
            "anthropic": {"url": f"https://127.0.0.1:{srv.port}"}}}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    h.start(env={"ANTHROPIC_API_KEY": "sk-ant-cvtest-ops"})
    wait_for(lambda: status(h)["egress"].get("state") == "running", 10,
             what="egress running")
    h.ca, h.srv = ca, srv
    yield h
    srv.close()


def set_egress(h, **kw):
    s = h.settings
    s["sandbox"]["egress"].update(kw)
    h.write_settings(s)
    r = ctl(h, "reload")
    assert r.returncode == 0, r.stdout + r.stderr


def test_doctor_tls_ok_then_verify_fails_without_ca_file(tlsd):
    h = tlsd
    checks, _ = tls_checks(h)
    assert len(checks) == 1, checks
    c = checks[0]
    assert c["ok"], c
    assert c["detail"].startswith(
        f"anthropic https://127.0.0.1:{h.srv.port}: ok, TLSv1."), c
    assert "certificate of 127.0.0.1 verified" in c["detail"], c
    assert "clawvisor test CA" in c["detail"], c
    assert h.srv.handshakes >= 1
    # Human text too.
    r = ctl(h, "sandbox", "doctor")
    assert "egress tls" in r.stdout and "ok, TLSv1." in r.stdout, r.stdout

    # The stand-in's CA no longer given: the handshake fails and the
    # doctor names the cause and the fix.
    s = h.settings
    del s["sandbox"]["egress"]["ca_file"]
    h.write_settings(s)
    assert ctl(h, "reload").returncode == 0
    checks, r = tls_checks(h)
    c = checks[0]
    assert not c["ok"], c
    assert "certificate verification failed: unable to get local issuer " \
        "certificate" in c["detail"], c
    assert "ca_file" in c["fix"], c
    assert r.returncode == 1
    r = ctl(h, "sandbox", "doctor")
    assert "FAIL  egress tls" in r.stdout, r.stdout
    assert "fix: set sandbox.egress.ca_file" in r.stdout, r.stdout


def test_doctor_tls_name_mismatch_refused_and_unresolvable(tlsd):
    h = tlsd
    # The certificate is for 127.0.0.1 only.
    set_egress(h, providers={"anthropic": {
        "url": f"https://localhost:{h.srv.port}"}})
    c = tls_checks(h)[0][0]
    assert not c["ok"], c
    assert "localhost" in c["detail"] and "not present in server " \
        "certificate" in c["detail"], c
    assert "ca_file" in c["fix"], c

    port = closed_port()
    set_egress(h, providers={"anthropic": {
        "url": f"https://127.0.0.1:{port}"}})
    c = tls_checks(h)[0][0]
    assert not c["ok"], c
    assert "Connection refused" in c["detail"], c
    assert "url" in c["fix"], c

    # .invalid never resolves (RFC 6761): not a failure, a note.
    set_egress(h, providers={"anthropic": {
        "url": "https://api.clawvisor-test.invalid"}})
    checks, r = tls_checks(h)
    c = checks[0]
    assert c["ok"], c
    assert "no network here: not checked" in c["detail"], c
    assert "api.clawvisor-test.invalid" in c["detail"], c
    # The egress process was never blocked or restarted by any of it.
    eg = status(h)["egress"]
    assert eg["state"] == "running" and eg["restarts"] == 0, eg


def test_status_has_an_egress_line(tlsd):
    h = tlsd
    st = status(h)["egress"]
    r = ctl(h, "status")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("egress:")]
    assert line == [f"egress: running pid {st['pid']}, respawns 0, tokens "
                    "live 0, requests forwarded 0, tunnels 0, refused 0, "
                    "connections open 0"], r.stdout
    # After a respawn, with a refusal counted by the new process.
    os.kill(st["pid"], signal.SIGKILL)
    wait_for(lambda: (e := status(h)["egress"])["state"] == "running" and
             e["pid"] != st["pid"], 20, what="egress respawned")
    c = socket.socket(socket.AF_UNIX)
    c.connect(str(h.path / "egress" / "proxy.sock"))
    c.sendall(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com"
              b"\r\n\r\n")
    assert b"403" in c.recv(4096)
    c.close()
    st = wait_for(lambda: (e := status(h)["egress"]).get("refused") == 1
                  and e, 10, what="refusal counted")
    r = ctl(h, "status")
    assert (f"egress: running pid {st['pid']}, respawns 1, tokens live 0, "
            "requests forwarded 0, tunnels 0, refused 1") in r.stdout, \
        r.stdout


def test_status_no_egress_line_when_off(homes):
    h = homes({"sandbox": {"egress": {"mode": "off"}}})
    r = ctl(h, "status")
    assert r.returncode == 0 and "egress:" not in r.stdout, r.stdout


def test_initial_environment_block_wiped(homes):
    """A clawvisor process that never sets a title (send --wait, waiting
    for the reply of a paused daemon) still has no key value in
    /proc/PID/environ: the wipe does not rest on setproctitle()."""
    h = homes()
    assert ctl(h, "pause").returncode == 0
    key = "sk-ant-cvtest-environ-0123456789"
    oauth = "sk-ant-oat01-cvtest-environ-9876"
    p = subprocess.Popen([BIN, "--home", str(h.path), "send", "--wait",
                          "--timeout", "60", "hello"],
                         env=h.env({"ANTHROPIC_API_KEY": key,
                                    "CLAUDE_CODE_OAUTH_TOKEN": oauth,
                                    "CLAWVISOR_OPS_MARK": "visible"}),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        def env():
            with open(f"/proc/{p.pid}/environ", "rb") as f:
                return f.read()
        # Past exec: another variable of ours is there, untouched ...
        wait_for(lambda: b"CLAWVISOR_OPS_MARK=visible" in env() and
                 b"ANTHROPIC_API_KEY=" in env(), 10, what="exec'd")
        # ... and the keys' names stay, their values do not.
        wait_for(lambda: key.encode() not in env() and
                 oauth.encode() not in env(), 10,
                 what="the keys wiped from the initial block")
        assert p.poll() is None, "send --wait should still be waiting"
        e = env()
        assert b"ANTHROPIC_API_KEY=\0" in e or \
            b"ANTHROPIC_API_KEY=" + b"\0" * len(key) in e
    finally:
        p.kill()
        p.wait()


def nxdomain(query):
    """The answer "no such name" to a DNS query: its id, its question."""
    i = 12
    while query[i]:
        i += 1 + query[i]
    flags = 0x8083 | (query[2] & 1) << 8     # QR, RD as asked, RA, NXDOMAIN
    return query[:2] + flags.to_bytes(2, "big") + query[4:6] + \
        b"\0" * 6 + query[12:i + 5]


def test_hung_resolver_does_not_stall_the_loop(homes, tmp_path):
    # A DNS server that takes every query and answers none until the test
    # says so (then "no such name", as a resolver's timeout would end it
    # too, without the wait: the libc's 25 s below never comes).
    # On an address of 127/8 of its own: runs in parallel do not meet.
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(20):
        addr = "127.53.%d.%d" % tuple(os.urandom(2))
        try:
            dns.bind((addr, 53))
            break
        except OSError as e:
            err = e
    else:
        pytest.fail(f"cannot bind the fake DNS server on 127.53.X.Y:53: "
                    f"{err}")
    queries, held = [], []
    release = threading.Event()
    lock = threading.Lock()

    def serve():
        while True:
            try:
                d, peer = dns.recvfrom(4096)
            except OSError:
                return
            queries.append(d)
            with lock:
                held.append((d, peer))
                if not release.is_set():
                    continue
                out = held[:]
                held.clear()
            for q, to in out:
                dns.sendto(nxdomain(q), to)

    def answer_all():
        with lock:
            release.set()
            out = held[:]
            held.clear()
        for q, to in out:
            dns.sendto(nxdomain(q), to)
    threading.Thread(target=serve, daemon=True).start()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {addr}\noptions timeout:25 attempts:1\n")
    echo = echo_server()
    port = echo.getsockname()[1]
    h = homes({"sandbox": {"mode": "bwrap", "egress": {
        "mode": "proxy", "max_connections": 64,
        "allow": ["hang.clawvisor-test.example:443",
                  f"127.0.0.1:{port}"]}},
        "supervisor": {"workers": 1}}, start=False)
    # The daemon in a mount namespace of its own where /etc/resolv.conf
    # is the hanging one; exec'd through, so the pid is the daemon's.
    err = open(h.path / "daemon-ns.stderr", "wb")
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv),
         BIN, "--home", str(h.path), "serve", "-f"],
        stdin=subprocess.DEVNULL, stdout=err, stderr=err,
        env=h.env({"ANTHROPIC_API_KEY": "sk-ant-cvtest-dns"}),
        cwd=str(h.path))
    err.close()
    p.stderr_path = h.path / "daemon-ns.stderr"
    h.procs.append(p)
    h.proc = p
    try:
        def up():
            r = ctl(h, "status", "--json")
            assert p.poll() is None, p.stderr_path.read_text()
            return r.returncode == 0 and json.loads(r.stdout)[
                "egress"].get("state") == "running"
        wait_for(up, 20, what="egress running")
        sock = str(h.path / "egress" / "proxy.sock")
        # More hung lookups than run at once (RESOLVE_MAX 8).
        hung = []
        for _ in range(10):
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(120)
            c.connect(sock)
            c.sendall(b"CONNECT hang.clawvisor-test.example:443 HTTP/1.1"
                      b"\r\nHost: hang.clawvisor-test.example:443\r\n\r\n")
            hung.append(c)
        wait_for(lambda: len(queries) > 0, 20, what="a query at the fake DNS")
        # The loop is free: a tunnel to an allowed address, byte for byte.
        t = socket.socket(socket.AF_UNIX)
        t.settimeout(60)
        t.connect(sock)
        t.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:"
                  f"{port}\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            got += t.recv(4096)
        assert got.startswith(b"HTTP/1.1 200"), got
        t.sendall(b"ping through a free loop")
        assert t.recv(4096) == b"ping through a free loop"
        t.close()
        # ... and status (the supervisor's view of the egress reports).
        assert status(h)["egress"]["state"] == "running"
        # While every hung lookup is still pending: no answer yet.
        for c in hung:
            c.setblocking(False)
            with pytest.raises(BlockingIOError):
                c.recv(1)
            c.setblocking(True)
        # Half of them go away (their lookups cancelled or orphaned); the
        # others get the refusal once the resolver gives up.
        for c in hung[:5]:
            c.close()
        answer_all()
        for c in hung[5:]:
            out = b""
            while (d := c.recv(65536)):
                out += d
            line, body = reason(out)
            assert line.startswith("HTTP/1.1 403"), out
            assert body.strip() == "egress: the host's name does not " \
                "resolve", out
            c.close()
        # Counted once each: 5 refusals, 1 tunnel (a CONNECT counts as a
        # tunnel only once its address passed the checks).
        eg = wait_for(lambda: (e := status(h)["egress"])["refused"] >= 5
                      and e, 10, what="the refusals counted")
        assert eg["tunnels"] == 1, eg
        assert eg["state"] == "running" and eg["restarts"] == 0, eg
        assert eg["connectionsOpen"] == 0 or wait_for(
            lambda: status(h)["egress"]["connectionsOpen"] == 0, 10,
            what="connections closed")
    finally:
        dns.close()
        echo.close()


def test_oauth_token_goes_with_its_beta_flag(homes, tmp_path):
    """With CLAUDE_CODE_OAUTH_TOKEN only, the stand-in gets it as
    Authorization: Bearer with anthropic-beta: oauth-2025-04-20 (what
    claude-code sends with an OAuth token), and no x-api-key."""
    from test_egress_e2e import AGENT_UID, StandIn, fake_claude_bin, open_up
    from conftest import FAKES
    ca, cert, key = make_ca(str(tmp_path))
    bindir = fake_claude_bin(tmp_path)
    oauth = "sk-ant-oat01-cvtest-" + os.urandom(16).hex()
    h = homes({"sandbox": {
        "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 120,
        "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "512m",
                  "limits": "best-effort"},
        "env_allowlist": ["CLAUDE_CODE_OAUTH_TOKEN", "STANDIN_PORT"],
        "egress": {"mode": "proxy", "ca_file": ca}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    open_up(h.path)
    wd = h.workdir("alpha")
    wd.mkdir(parents=True, exist_ok=True)
    os.chown(wd, AGENT_UID, AGENT_UID)
    standin = StandIn(cert, key, str(wd))
    try:
        s = h.settings
        s["sandbox"]["egress"]["providers"] = {"anthropic": {
            "url": f"https://127.0.0.1:{standin.port}"}}
        h.write_settings(s)
        env = {"CLAUDE_CODE_OAUTH_TOKEN": oauth,
               "STANDIN_PORT": str(standin.port),
               "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:/bin"}
        # No API key at all (the suite's bwrap mode sets a dummy one).
        h.start(env={**env, "ANTHROPIC_API_KEY": ""})
        mid = h.drop("hello with oauth", agent="alpha")
        o = h.wait_outcome(mid, timeout=120)
        assert o[0] == "response", (o, h.log()[-3000:])
        assert o[1]["message"].strip() == "streamed through egress"
        assert len(standin.seen) == 1
        _, headers, _ = standin.seen[0]
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["authorization"] == f"Bearer {oauth}"
        assert "x-api-key" not in lower
        assert lower["anthropic-beta"] == "oauth-2025-04-20"
        assert "cvtok-" not in json.dumps(headers)
        with open(wd / "dump.json") as f:
            dump = json.load(f)
        assert oauth not in json.dumps(dump)
        assert dump["env"]["ANTHROPIC_API_KEY"].startswith("cvtok-")
    finally:
        standin.close()
