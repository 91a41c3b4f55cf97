"""
Zero-secret sandboxes end to end in bwrap mode (SPEC §9, issue 15 layers
3-4): a local TLS server stands in for Anthropic's Messages API (a test CA
made at test time with openssl, `ca_file` pointing at it), a fake `claude`
speaks to it the way the real one does (ANTHROPIC_BASE_URL, x-api-key, a
streamed SSE reply) from inside the sandbox, through clawvisor-bridge and
the egress proxy.

Streaming is proven without timing: the stand-in sends the next SSE event
only once the fake CLI has recorded the previous one in its workspace, so a
reply held back anywhere on the path would hang, not pass.
"""
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from conftest import BIN, FAKES, open_up, wait_for


def status(h):
    r = subprocess.run([BIN, "--home", str(h.path), "status", "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

AGENT_UID = 65534

FAKE_CLAUDE = r'''#!/usr/bin/python3
# A fake claude, faithful on the wire: POST /v1/messages, stream: true, to
# ANTHROPIC_BASE_URL with x-api-key: $ANTHROPIC_API_KEY; SSE read event by
# event. It also dumps what it can see, for the test to scan.
import http.client, json, os, socket, sys
msg = sys.argv[-1]
cwd = os.getcwd()
dump = {"env": dict(os.environ), "files": {}}
with open("/proc/self/environ", "rb") as f:
    dump["proc_environ"] = f.read().decode(errors="replace")
for top in ("/etc", "/tmp", "/run", os.environ.get("HOME", "/"), cwd):
    for root, dirs, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            try:
                if os.path.getsize(p) < 1 << 20:
                    with open(p, "rb") as f:
                        dump["files"][p] = f.read().decode(errors="replace")
            except OSError:
                pass
# A direct connection to the host's stand-in: its own network has none.
try:
    socket.create_connection(("127.0.0.1", int(os.environ["STANDIN_PORT"])),
                             timeout=5)
    dump["direct"] = "connected"
except OSError as e:
    dump["direct"] = "refused: %s" % e
base = os.environ["ANTHROPIC_BASE_URL"]
host, port = base.split("//")[1].split(":")
tok = os.environ["ANTHROPIC_API_KEY"]
if msg.startswith("chunked"):
    # Two requests on one connection, bodies chunked: each head's token
    # is swapped on the way.
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    out = []
    for i in (1, 2):
        parts = [b'{"model": "m", "max_tokens": 8, ',
                 b'"messages": [{"role": "user", ',
                 b'"content": "part%d"}]}' % i]
        c.request("POST", "/v1/messages", body=iter(parts),
                  encode_chunked=True, headers={
                      "x-api-key": tok, "content-type": "application/json",
                      "transfer-encoding": "chunked"})
        r = c.getresponse()
        out.append(json.loads(r.read())["content"][0]["text"])
    print(" ".join(out))
    sys.exit(0)
if msg.startswith("websocket"):
    s = socket.create_connection((host, int(port)), timeout=60)
    s.sendall(("GET /v1/responses HTTP/1.1\r\nHost: %s:%s\r\n"
               "Authorization: Bearer %s\r\nConnection: Upgrade\r\n"
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
               % (host, port, tok)).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    frame = bytes([0x81, 0x05]) + b"hello" + bytes(range(256))
    s.sendall(frame)
    while len(rest) < len(frame):
        d = s.recv(4096)
        assert d
        rest += d
    print("ws echo ok" if rest == frame else "ws echo BAD")
    sys.exit(0)
c = http.client.HTTPConnection(host, int(port), timeout=60)
body = json.dumps({"model": "claude-test", "max_tokens": 64, "stream": True,
                   "messages": [{"role": "user", "content": msg}]})
c.request("POST", "/v1/messages", body=body, headers={
    "x-api-key": os.environ["ANTHROPIC_API_KEY"],
    "anthropic-version": "2023-06-01",
    "content-type": "application/json"})
r = c.getresponse()
if r.status != 200:
    print("API Error: %d %s" % (r.status, r.read().decode()), file=sys.stderr)
    sys.exit(1)
text, n, event = "", 0, None
while True:
    line = r.readline()
    if not line:
        break
    line = line.decode().rstrip("\n")
    if line.startswith("event: "):
        event = line[7:]
    elif line.startswith("data: ") and event == "content_block_delta":
        text += json.loads(line[6:])["delta"]["text"]
        n += 1
        open(os.path.join(cwd, "got-%d" % n), "w").close()
    elif line.startswith("data: ") and event == "message_stop":
        break
if event != "message_stop":
    print("API Error: Connection error.", file=sys.stderr)
    sys.exit(1)
with open(os.path.join(cwd, "dump.json"), "w") as f:
    json.dump(dump, f)
print(text)
'''


def make_ca(d, names=()):
    """A CA and a server certificate for 127.0.0.1 (and the DNS names
    given), made now."""
    def run(*a):
        subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj",
        "/CN=clawvisor test CA", "-addext",
        "basicConstraints=critical,CA:TRUE", "-addext",
        "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
        "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1" +
                "".join(",DNS:" + n for n in names) + "\n"
                "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem",
        "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days",
        "1", "-extfile", "ext.cnf")
    return os.path.join(d, "ca.pem"), os.path.join(d, "srv.pem"), \
        os.path.join(d, "srv.key")


class TLSStandIn:
    """A provider's front end: a ThreadingHTTPServer on 127.0.0.1 behind
    TLS with the test CA's certificate; subclasses give the handler."""

    def serve(self, handler, cert, key):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def agent_workdir(h, agent="alpha"):
    """The agent's working directory, made now and the agent user's, with
    the home open to that user on the way."""
    open_up(h.path)
    wd = h.workdir(agent)
    wd.mkdir(parents=True, exist_ok=True)
    os.chown(wd, AGENT_UID, AGENT_UID)
    return wd


def fake_claude_bin(tmp_path, script=FAKE_CLAUDE):
    """A directory holding script (FAKE_CLAUDE) as `claude`, open to the
    agent."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "claude").write_text(script)
    os.chmod(bindir / "claude", 0o755)
    open_up(bindir)
    return bindir


class StandIn(TLSStandIn):
    """Anthropic's Messages API, SSE, over TLS on 127.0.0.1."""

    def __init__(self, cert, key, workdir):
        self.seen = []          # (path, headers, body) of each request
        self.peers = []         # the proxy's address for each
        self.workdir = workdir
        self.abort = threading.Event()   # stop waiting: the path is cut
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                me.seen.append((self.path, dict(self.headers), None))
                me.peers.append(self.client_address)
                if self.headers.get("upgrade", "").lower() != "websocket":
                    self.send_error(404)
                    return
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.flush()
                while (d := self.rfile.read1(65536)):
                    self.wfile.write(d)
                    self.wfile.flush()
                self.close_connection = True

            def read_chunked(self):
                out = b""
                while True:
                    n = int(self.rfile.readline().split(b";")[0], 16)
                    if n == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(n)
                    self.rfile.readline()

            def do_POST(self):
                if self.headers.get("transfer-encoding", "").lower() == \
                        "chunked":
                    body = json.loads(self.read_chunked())
                else:
                    n = int(self.headers.get("content-length", 0))
                    body = json.loads(self.rfile.read(n))
                me.seen.append((self.path, dict(self.headers), body))
                me.peers.append(self.client_address)
                if not body.get("stream"):
                    text = "echo:" + body["messages"][0]["content"]
                    out = json.dumps({"content": [{"type": "text",
                                                   "text": text}]}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()

                def chunk(s):
                    b = s.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                    self.wfile.flush()
                chunk("event: message_start\ndata: {}\n\n")
                for i, word in enumerate(("streamed ", "through ",
                                          "egress"), 1):
                    chunk("event: content_block_delta\ndata: " +
                          json.dumps({"delta": {"type": "text_delta",
                                                "text": word}}) + "\n\n")
                    # The next event only once this one has arrived.
                    got = os.path.join(me.workdir, f"got-{i}")
                    end = time.monotonic() + 60
                    while not os.path.exists(got) and \
                            time.monotonic() < end and \
                            not me.abort.is_set():
                        time.sleep(0.02)
                    if me.abort.is_set():
                        return
                chunk("event: message_stop\ndata: {}\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.serve(H, cert, key)


@pytest.fixture
def e2e(homes, tmp_path):
    ca, cert, key = make_ca(str(tmp_path))
    bindir = fake_claude_bin(tmp_path)
    secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
    h = homes({"sandbox": {
        "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 120,
        "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "512m",
                  "limits": "best-effort"},
        "env_allowlist": ["ANTHROPIC_API_KEY", "STANDIN_PORT"],
        "egress": {"mode": "proxy", "ca_file": ca,
                   "providers": {"anthropic": {"url": "PLACEHOLDER"}}}},
        "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
        "supervisor": {"workers": 1}}, start=False)
    wd = agent_workdir(h)
    standin = StandIn(cert, key, str(wd))
    s = h.settings
    s["sandbox"]["egress"]["providers"]["anthropic"]["url"] = \
        f"https://127.0.0.1:{standin.port}"
    h.write_settings(s)
    env = {"ANTHROPIC_API_KEY": secret, "STANDIN_PORT": str(standin.port),
           "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:/bin"}
    h.start(env=env)
    h.secret, h.standin, h.wd = secret, standin, wd
    yield h
    standin.close()


def test_reply_streamed_key_swapped_token_only_inside(e2e):
    h = e2e
    mid = h.drop("hello through the proxy", agent="alpha")
    o = h.wait_outcome(mid, timeout=120)
    assert o[0] == "response", (o, h.log()[-3000:])
    assert o[1]["message"].strip() == "streamed through egress"
    # The system CAs (a symbolic link on Debian) and ca_file were read.
    assert "egress: CA file" not in h.log()
    assert "no CA certificates" not in h.log()
    # The stand-in saw the real key, never the token.
    assert len(h.standin.seen) == 1
    path, headers, body = h.standin.seen[0]
    assert path == "/v1/messages"
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["x-api-key"] == h.secret
    assert "cvtok-" not in json.dumps(headers)
    assert body["messages"][0]["content"] == "hello through the proxy"
    # Inside: the token, never the key, in the environment or any file.
    with open(h.wd / "dump.json") as f:
        dump = json.load(f)
    token = dump["env"]["ANTHROPIC_API_KEY"]
    assert token.startswith("cvtok-") and len(token) == 70
    assert dump["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:18899"
    assert dump["env"]["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert h.secret not in json.dumps(dump)
    assert dump["direct"].startswith("refused"), dump["direct"]
    # The token died with the invocation.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(30)
    c.connect(str(h.path / "egress" / "proxy.sock"))
    c.sendall(b"POST /v1/messages HTTP/1.1\r\nx-api-key: " +
              token.encode() + b"\r\nContent-Length: 2\r\n\r\n{}")
    got = b""
    while (d := c.recv(4096)):
        got += d
    assert got.startswith(b"HTTP/1.1 403"), got
    assert b"unknown or expired token" in got
    # In the metrics: the one request forwarded, the reused token refused.
    from test_egress_proxy import egress_metrics
    wait_for(lambda: egress_metrics(h)["refusals"], 10,
             what="the refusal in the metrics")
    assert egress_metrics(h) == {"requests": {"anthropic": 1},
                                 "refusals": {("none", "token"): 1}}
    # Neither the token nor the key in anything clawvisor wrote (the
    # workspace is the agent's: its dump holds its token, as it should).
    for root, _, files in os.walk(h.path):
        if root.startswith(str(h.workspace)):
            continue
        for n in files:
            p = os.path.join(root, n)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            assert h.secret.encode() not in data, p
            assert token.encode() not in data, p


def test_egress_killed_mid_stream_transient_then_back(e2e):
    """The egress process dies while a reply streams: that invocation
    fails as transient; after the respawn the next one goes through."""
    h = e2e
    st = status(h)["egress"]
    old = st["pid"]
    mid = h.drop("cut me off", agent="alpha")
    wait_for(lambda: (h.wd / "got-1").exists(), 60, what="the first event")
    os.kill(old, signal.SIGKILL)
    h.standin.abort.set()
    rec, _ = h.wait_dead(mid, timeout=120)
    assert rec["errorClass"] == "transient", rec
    wait_for(lambda: (e := status(h)["egress"]).get("state") == "running"
             and e.get("pid") != old and e.get("keys"), 30,
             what="the egress process back")
    for i in (1, 2, 3):
        (h.wd / f"got-{i}").unlink(missing_ok=True)
    h.standin.abort.clear()
    mid = h.drop("after the respawn", agent="alpha")
    r = h.wait_response(mid, timeout=120)
    assert r["message"].strip() == "streamed through egress"
    assert h.standin.seen[-1][1].get("x-api-key") == h.secret or \
        {k.lower(): v for k, v in h.standin.seen[-1][1].items()}[
            "x-api-key"] == h.secret


def key_of(headers, name):
    return {k.lower(): v for k, v in headers.items()}.get(name)


def test_keep_alive_and_chunked_bodies(e2e):
    """Two requests with chunked bodies on one connection: both arrive
    whole, each with the key, on one upstream connection."""
    h = e2e
    mid = h.drop("chunked please", agent="alpha")
    r = h.wait_response(mid, timeout=120)
    assert r["message"].strip() == "echo:part1 echo:part2"
    assert len(h.standin.seen) == 2
    for path, headers, body in h.standin.seen:
        assert key_of(headers, "x-api-key") == h.secret
        assert "cvtok-" not in json.dumps(headers)
    assert h.standin.peers[0] == h.standin.peers[1], h.standin.peers


def test_websocket_upgrade_relayed(e2e):
    h = e2e
    mid = h.drop("websocket please", agent="alpha")
    r = h.wait_response(mid, timeout=120)
    assert r["message"].strip() == "ws echo ok"
    path, headers, _ = h.standin.seen[0]
    assert path == "/v1/responses"
    # Anthropic's key goes as x-api-key, whatever header the token came in.
    assert key_of(headers, "x-api-key") == h.secret
    assert key_of(headers, "authorization") is None
    assert key_of(headers, "upgrade") == "websocket"
