"""
clawvisor-bridge (SPEC §9, issue 15 layer 4 part): the sandbox's end of the
egress path, run here on its own against a unix socket server of the
test's. It hands each connection on 127.0.0.1:PORT to the socket
(SCM_RIGHTS, DECISIONS 260); a server that answers "not taken" gets the
bytes copied instead. Either way a reply streamed in pieces reaches the
client piece by piece (the server sends the next piece only once the
client has acknowledged the last, so a bridge that held bytes back would
hang, not pass), megabytes go both ways (through the bridge's bounded
buffers when it copies), and the bridge exits with its child's status.
Static in every build.
"""
import os
import socket
import subprocess
import sys
import threading

import pytest

from conftest import REAL_BIN

BRIDGE = os.path.join(os.path.dirname(REAL_BIN), "clawvisor-bridge")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def serve_unix(path, handler, take=True, served=None):
    """A stand-in for the proxy's socket: each connection's first message
    is the bridge's hand-off (a NUL byte and the CLI's socket). take:
    answer "taken" and serve the CLI's socket itself, as the proxy does;
    False: answer "not taken" and serve the bytes the bridge copies; None:
    hand handler the unix connection as accepted. The family of each
    socket served is appended to served."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)

    def hello(u):
        if take is None:
            return handler(u)
        u.settimeout(30)
        msg, fds, _, _ = socket.recv_fds(u, 1, 4)
        assert msg == b"\0" and len(fds) == 1, (msg, fds)
        if take:
            c = socket.socket(fileno=fds[0])
            u.sendall(b"\0")
            u.close()
        else:
            os.close(fds[0])
            u.sendall(b"\1")
            c = u
        if served is not None:
            served.append(c.family)
        handler(c)

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=hello, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return srv


def run_bridge(port, sock, *cmd, timeout=60):
    return subprocess.run([BRIDGE, str(port), str(sock), *cmd],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_bridge_is_static():
    """In every build, the sanitizer ones included: it must start in an
    image that has no C library at all."""
    out = subprocess.run(["readelf", "-l", BRIDGE], capture_output=True,
                         text=True, check=True).stdout
    assert "INTERP" not in out, "clawvisor-bridge is not static"


def test_exit_status_is_the_childs(tmp_path):
    sock = tmp_path / "none.sock"
    assert run_bridge(free_port(), sock, "sh", "-c", "exit 7").returncode \
        == 7
    assert run_bridge(free_port(), sock, "sh", "-c",
                      "kill -TERM $$").returncode == 128 + 15
    r = run_bridge(free_port(), sock, "/nonexistent/cli")
    assert r.returncode == 127 and "/nonexistent/cli" in r.stderr
    r = run_bridge("0", sock, "true")
    assert r.returncode == 126 and "bad port" in r.stderr


CLIENT_STREAM = r"""
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
c.sendall(b"GET /stream\n")
got = b""
for piece in (b"one;", b"two;", b"three;"):
    while not got.endswith(piece):
        d = c.recv(100)
        assert d, got
        got += d
    c.sendall(b"ack " + piece)
c.shutdown(socket.SHUT_WR)
rest = c.recv(100)
assert rest == b"", rest
print(got.decode())
"""


@pytest.mark.parametrize("take", [True, False], ids=["handed", "copied"])
def test_pieces_arrive_one_by_one(tmp_path, take):
    sock = tmp_path / "proxy.sock"

    def handler(c):
        c.settimeout(30)
        assert c.recv(100) == b"GET /stream\n"
        for piece in (b"one;", b"two;", b"three;"):
            c.sendall(piece)
            want = b"ack " + piece
            got = b""
            while len(got) < len(want):
                d = c.recv(100)
                if not d:
                    return
                got += d
            assert got == want
        assert c.recv(10) == b""        # the half-close came through
        c.close()

    served = []
    srv = serve_unix(sock, handler, take, served)
    try:
        port = free_port()
        r = run_bridge(port, sock, sys.executable, "-c", CLIENT_STREAM,
                       str(port))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "one;two;three;"
        # Handed: the server spoke on the CLI's TCP socket itself.
        assert served == [socket.AF_INET if take else socket.AF_UNIX]
    finally:
        srv.close()


CLIENT_BULK = r"""
import hashlib, os, socket, sys, threading
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
data = os.urandom(5 << 20)
def send():
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
t.join()
print(hashlib.sha256(data).hexdigest(), h.hexdigest(), n)
"""


@pytest.mark.parametrize("take", [True, False], ids=["handed", "copied"])
def test_megabytes_both_ways(tmp_path, take):
    """The server echoes every byte back in blocks: both directions full
    at once (copied: through the bridge's 64 KiB buffers)."""
    sock = tmp_path / "proxy.sock"

    def handler(c):
        c.settimeout(60)
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
        c.close()

    served = []
    srv = serve_unix(sock, handler, take, served)
    try:
        port = free_port()
        r = run_bridge(port, sock, sys.executable, "-c", CLIENT_BULK,
                       str(port), timeout=120)
        assert r.returncode == 0, r.stderr
        sent, got, n = r.stdout.split()
        assert sent == got and int(n) == 5 << 20
        assert served == [socket.AF_INET if take else socket.AF_UNIX]
    finally:
        srv.close()


def test_no_proxy_socket_closes_the_connection(tmp_path):
    sock = tmp_path / "missing.sock"
    client = ("import socket,sys\n"
              "c=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
              "c.sendall(b'x')\n"
              "try:\n"
              "    print(repr(c.recv(10)))\n"
              "except ConnectionResetError:\n"
              "    print(repr(b''))\n")
    port = free_port()
    r = run_bridge(port, sock, sys.executable, "-c", client, str(port))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "b''"
    assert str(sock) in r.stderr

def test_proxy_full_its_503_reaches_the_cli_whole(tmp_path):
    """A proxy at max_connections writes its 503 and closes before it
    reads the hand-off: the bridge takes that first byte for the reply's,
    not for an answer, and the CLI gets the reply whole."""
    sock = tmp_path / "proxy.sock"
    busy = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n")

    def handler(c):
        c.sendall(busy)
        # The hand-off arrives after the reply (the real proxy may close
        # first; then the bridge's send fails and it copies).
        _, fds, _, _ = socket.recv_fds(c, 1, 1)
        for fd in fds:
            os.close(fd)
        c.close()
    srv = serve_unix(sock, handler, take=None)
    client = ("import socket,sys\n"
              "c=socket.create_connection(('127.0.0.1',int(sys.argv[1])),"
              "timeout=30)\n"
              "got=b''\n"
              "while (d := c.recv(100)):\n"
              "    got += d\n"
              "print(got.hex())\n")
    try:
        port = free_port()
        r = run_bridge(port, sock, sys.executable, "-c", client, str(port))
        assert r.returncode == 0, r.stderr
        assert bytes.fromhex(r.stdout.strip()) == busy
    finally:
        srv.close()
