"""
The egress proxy's socket (SPEC §9, issue 15 layer 3), talked to directly
as the bridge would: the bridge's hand-off of the CLI's socket (taken only
when it is one connected stream socket), refusals with a one-line reason, CONNECT only to
allowed hosts and never to a private address behind a name, a tunnel byte
for byte to an allowed IP literal, refusals logged once per host a minute
and sent as events, and the bounds (connections, idle time).

Provider requests with a live token need an invocation running behind the
bridge; those are layer 4's tests.
"""
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import BIN, wait_for

TOKEN = "cvtok-" + "0123456789abcdef" * 4


def status(h):
    r = subprocess.run([BIN, "--home", str(h.path), "status", "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def echo_server():
    """A TCP echo server on 127.0.0.1: its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve(c):
        with c:
            while (d := c.recv(65536)):
                c.sendall(d)

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return srv


@pytest.fixture
def proxy(homes):
    made = []

    def make(egress=None):
        echo = echo_server()
        made.append(echo)
        port = echo.getsockname()[1]
        e = {"mode": "proxy",
             "allow": [f"127.0.0.1:{port}", f"localhost:{port}",
                       "registry.npmjs.org:443"]}
        e.update(egress or {})
        h = homes({"sandbox": {"mode": "bwrap", "egress": e},
                   "supervisor": {"workers": 1}}, start=False)
        h.start(env={"ANTHROPIC_API_KEY": "sk-ant-cvtest-proxy"})
        h.sock = h.path / "egress" / "proxy.sock"
        h.echo_port = port
        wait_for(lambda: status(h)["egress"].get("state") == "running",
                 10, what="egress running")
        return h
    yield make
    for s in made:
        s.close()


def talk(h, data, timeout=30):
    """Send data on a new connection; everything until the proxy closes."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(timeout)
    c.connect(str(h.sock))
    if data:
        c.sendall(data)
    out = b""
    while (d := c.recv(65536)):
        out += d
    c.close()
    return out


def reason(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode()
    return status_line, body.decode()


def test_socket_in_place(proxy):
    h = proxy()
    st = os.stat(h.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_IMODE(os.stat(h.sock.parent).st_mode) == 0o711


def test_refusals_say_why(proxy):
    h = proxy()
    cases = [
        (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         b"Content-Length: 2\r\n\r\n{}",
         "egress: no token in the request (x-api-key or Authorization: "
         "Bearer)"),
        (b"POST /v1/messages HTTP/1.1\r\nx-api-key: " + TOKEN.encode() +
         b"\r\nContent-Length: 2\r\n\r\n{}",
         "egress: unknown or expired token"),
        (b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
         "egress: only the provider's API and CONNECT to "
         "sandbox.egress.allow go out; this host is neither"),
        (b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
         "egress: CONNECT to this host:port is not in "
         "sandbox.egress.allow"),
        (b"CONNECT registry.npmjs.org:80 HTTP/1.1\r\n\r\n",
         "egress: CONNECT to this host:port is not in "
         "sandbox.egress.allow"),
        (b"GARBAGE\r\n\r\n", "egress: malformed request"),
    ]
    for req, why in cases:
        line, body = reason(talk(h, req))
        assert line == "HTTP/1.1 403 Forbidden", (req, line)
        assert body == why + "\n", (req, body)
    # Each refusal counted by provider (none before a token) and reason, a
    # word of a fixed list, never the host.
    wait_for(lambda: sum(egress_metrics(h)["refusals"].values()) == 6, 10,
             what="6 refusals in the metrics")
    assert egress_metrics(h) == {"requests": {}, "refusals": {
        ("none", "request"): 2, ("none", "token"): 1,
        ("none", "not_allowed"): 2, ("none", "malformed"): 1}}


UNKNOWN = (b"POST /v1/messages HTTP/1.1\r\nx-api-key: " + TOKEN.encode() +
           b"\r\nContent-Length: 2\r\n\r\n{}")


def read_all(c):
    out = b""
    while (d := c.recv(65536)):
        out += d
    return out


def tcp_pair():
    """Two ends of a connection on 127.0.0.1, as the CLI and the bridge
    have it."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    a = socket.create_connection(lst.getsockname(), timeout=30)
    b, _ = lst.accept()
    lst.close()
    return a, b


def hand(h, fds, byte=b"\0"):
    """A bridge's hand-off of fds; the unix socket and the proxy's answer."""
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(30)
    u.connect(str(h.sock))
    socket.send_fds(u, [byte], fds)
    return u, u.recv(1)


def test_handoff_serves_the_cli_socket(proxy):
    """The proxy answers "taken", closes the unix socket and serves the
    CLI's TCP socket itself: the bridge is out of the data path."""
    h = proxy()
    cli, bridge_end = tcp_pair()
    u, answer = hand(h, [bridge_end.fileno()])
    bridge_end.close()              # as the bridge does once it is taken
    assert answer == b"\0"
    assert u.recv(10) == b""        # the unix socket is done with
    u.close()
    cli.sendall(UNKNOWN)
    line, body = reason(read_all(cli))
    assert line == "HTTP/1.1 403 Forbidden"
    assert body == "egress: unknown or expired token\n"
    cli.close()


def test_handoff_not_taken_but_the_unix_socket_served(proxy):
    """A NUL without a socket, with a pipe, with a listening socket or with
    two sockets: "not taken", the descriptors closed (their other ends see
    the end), and the request on the unix socket itself is answered."""
    h = proxy()
    r, w = os.pipe()
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    a1, b1 = tcp_pair()
    a2, b2 = tcp_pair()
    for fds in ([], [r], [lst.fileno()], [b1.fileno(), b2.fileno()]):
        u, answer = hand(h, fds)
        assert answer == b"\1", fds
        u.sendall(UNKNOWN)
        line, body = reason(read_all(u))
        assert body == "egress: unknown or expired token\n", fds
        u.close()
    os.close(r)
    b1.close()
    b2.close()
    # No copy left in the egress process: the pipe and both connections
    # have no reader or peer any more.
    with pytest.raises(BrokenPipeError):
        os.write(w, b"x")
    assert a1.recv(10) == b"" and a2.recv(10) == b""
    for s in (a1, a2, lst):
        s.close()
    os.close(w)


def egress_metrics(h):
    """clawvisor metrics' egress families: {requests: {provider: n},
    refusals: {(provider, reason): n}}."""
    out = subprocess.run([BIN, "--home", str(h.path), "metrics"],
                         capture_output=True, text=True, env=h.env(),
                         timeout=30).stdout
    got = {"requests": {}, "refusals": {}}
    for m in re.finditer(r'^clawvisor_egress_requests_total\{provider="'
                         r'(\w+)"\} (\d+)$', out, re.M):
        got["requests"][m[1]] = int(m[2])
    for m in re.finditer(r'^clawvisor_egress_refusals_total\{provider="'
                         r'(\w+)",reason="(\w+)"\} (\d+)$', out, re.M):
        got["refusals"][(m[1], m[2])] = int(m[3])
    return got


def test_allowed_name_to_loopback_refused_literal_tunnelled(proxy):
    h = proxy()
    line, body = reason(talk(
        h, f"CONNECT localhost:{h.echo_port} HTTP/1.1\r\n\r\n".encode()))
    assert line == "HTTP/1.1 403 Forbidden"
    assert "loopback, link-local, private or metadata" in body
    # The IP literal entry is taken as meant: a tunnel, byte for byte.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(30)
    c.connect(str(h.sock))
    c.sendall(f"CONNECT 127.0.0.1:{h.echo_port} HTTP/1.1\r\n"
              f"Host: 127.0.0.1:{h.echo_port}\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += c.recv(100)
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head == b"HTTP/1.1 200 Connection established"
    payload = bytes(range(256)) * 4096          # 1 MiB, every byte value
    threading.Thread(target=c.sendall, args=(payload,), daemon=True).start()
    while len(rest) < len(payload):
        d = c.recv(65536)
        assert d
        rest += d
    assert rest == payload
    c.close()
    st = wait_for(lambda: (s := status(h))["egress"].get("tunnels") == 1
                  and s, 10, what="the tunnel counted")
    assert st["egress"]["refused"] >= 1


def test_refusals_logged_once_per_host_and_sent_as_events(proxy):
    h = proxy()
    for _ in range(3):
        talk(h, b"CONNECT once.example:443 HTTP/1.1\r\n\r\n")
    wait_for(lambda: h.events("egress_refused"), 10,
             what="an egress_refused event")
    time.sleep(0.5)
    lines = [ln for ln in h.log().splitlines()
             if "egress refused a request to once.example:443" in ln]
    assert len(lines) == 1, lines
    evs = [e for e in h.events("egress_refused")
           if e.get("host") == "once.example:443"]
    assert len(evs) == 1, evs
    assert evs[0]["reason"].startswith("egress: CONNECT")
    # Logged once, counted each time.
    assert egress_metrics(h)["refusals"] == {("none", "not_allowed"): 3}
    assert "sk-ant-cvtest-proxy" not in h.log()


def test_bounds_connections_and_idle(proxy):
    h = proxy({"max_connections": 2, "idle_timeout_seconds": 5})
    held = []
    for _ in range(2):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(30)
        c.connect(str(h.sock))
        held.append(c)
    wait_for(lambda: status(h)["egress"].get("connectionsOpen") == 2, 10,
             what="two connections open")
    # The third is answered at once, before it sends anything.
    line, _ = reason(talk(h, b""))
    assert line == "HTTP/1.1 503 Service Unavailable"
    # Idle for 5 s: the proxy closes them.
    for c in held:
        assert c.recv(10) == b""
        c.close()
    wait_for(lambda: status(h)["egress"].get("connectionsOpen") == 0, 10,
             what="no connection open")
