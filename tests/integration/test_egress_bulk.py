"""
Large bodies through the egress proxy, byte for byte (SPEC §9, issue 15):
the proxy's buffers are consumed by offset and refilled in place, and its
upstream TLS is read ahead of libtls (egress/proxy.c); with
sandbox.egress.buffer_bytes set small and odd, a few MiB each way cross
the end of every buffer hundreds of times. Uploads with Content-Length and
chunked, replies chunked (chunk sizes from 1 byte to over 64 KiB) and with
Content-Length, all on one keep-alive connection, read by the fake CLI in
irregular pieces so that the proxy's side towards the bridge fills up and
drains again. Every body is checked by its SHA-256 at both ends.
"""
import hashlib
import http.server
import json
import urllib.parse
import uuid

import pytest

from conftest import FAKES
from test_egress_e2e import (AGENT_UID, TLSStandIn, agent_workdir,
                             fake_claude_bin, make_ca)

MIB = 1 << 20

FAKE_CLAUDE = r'''#!/usr/bin/python3
import hashlib, http.client, json, os, random, sys
base = os.environ["ANTHROPIC_BASE_URL"]
host, port = base.split("//")[1].split(":")
tok = os.environ["ANTHROPIC_API_KEY"]
c = http.client.HTTPConnection(host, int(port), timeout=120)
out = []
for i, (up, down) in enumerate((("length", "chunked"), ("chunked", "length"),
                                ("chunked", "chunked"))):
    body = random.Random(100 + i).randbytes(3 * (1 << 20) + 12345)
    size = 5 * (1 << 20) + 777
    path = "/v1/bulk?size=%d&mode=%s&seed=%d" % (size, down, 200 + i)
    h = {"x-api-key": tok, "content-type": "application/octet-stream"}
    if up == "chunked":
        cuts = [1, 5000, 65537, 3, 200000, 4095]
        pieces, at, k = [], 0, 0
        while at < len(body):
            pieces.append(body[at:at + cuts[k % len(cuts)]])
            at += cuts[k % len(cuts)]
            k += 1
        c.request("POST", path, body=iter(pieces), encode_chunked=True,
                  headers=dict(h, **{"transfer-encoding": "chunked"}))
    else:
        c.request("POST", path, body=body, headers=h)
    r = c.getresponse()
    got, k, reads = hashlib.sha256(), 0, [1, 70000, 13, 4096, 300000, 9999]
    n = 0
    while True:
        d = r.read(reads[k % len(reads)])
        k += 1
        if not d:
            break
        got.update(d)
        n += len(d)
    out.append({"status": r.status, "len": n, "sha": got.hexdigest(),
                "want": hashlib.sha256(random.Random(200 + i).randbytes(
                    size)).hexdigest(),
                "up_sha": hashlib.sha256(body).hexdigest(),
                "seen_up_sha": r.getheader("x-body-sha256")})
print(json.dumps(out))
'''


class BulkStandIn(TLSStandIn):
    """An API over TLS on 127.0.0.1 that hashes what it gets and sends
    back SIZE seeded random bytes, chunked or with Content-Length."""

    def __init__(self, cert, key):
        self.seen = []          # (headers, sha256 of the body, length)
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                sha, n = hashlib.sha256(), 0
                if self.headers.get("transfer-encoding", "").lower() == \
                        "chunked":
                    while True:
                        k = int(self.rfile.readline().split(b";")[0], 16)
                        if k == 0:
                            self.rfile.readline()
                            break
                        d = self.rfile.read(k)
                        sha.update(d)
                        n += len(d)
                        self.rfile.readline()
                else:
                    left = int(self.headers.get("content-length", 0))
                    while left > 0:
                        d = self.rfile.read(min(left, 65536))
                        sha.update(d)
                        n += len(d)
                        left -= len(d)
                me.seen.append((dict(self.headers), sha.hexdigest(), n))
                q = urllib.parse.parse_qs(
                    urllib.parse.urlsplit(self.path).query)
                import random
                data = random.Random(int(q["seed"][0])).randbytes(
                    int(q["size"][0]))
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("x-body-sha256", sha.hexdigest())
                cuts = [1, 7, 4093, 16384, 65539, 100000]
                if q["mode"][0] == "chunked":
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    at, k = 0, 0
                    while at < len(data):
                        b = data[at:at + cuts[k % len(cuts)]]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                        at += len(b)
                        k += 1
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    at, k = 0, 0
                    while at < len(data):
                        self.wfile.write(data[at:at + cuts[k % len(cuts)]])
                        at += cuts[k % len(cuts)]
                        k += 1
                self.wfile.flush()

        self.serve(H, cert, key)


@pytest.mark.parametrize("buffer_bytes", [4099, 262144])
def test_large_bodies_byte_exact_both_ways(homes, tmp_path, buffer_bytes):
    ca, cert, key = make_ca(str(tmp_path))
    bindir = fake_claude_bin(tmp_path, FAKE_CLAUDE)
    secret = f"sk-ant-api03-cvtest-{uuid.uuid4().hex}"
    standin = BulkStandIn(cert, key)
    try:
        h = homes({"sandbox": {
            "mode": "bwrap", "max_attempts": 1, "timeout_seconds": 300,
            "bwrap": {"user": f"{AGENT_UID}:{AGENT_UID}", "memory": "512m",
                      "limits": "best-effort"},
            "egress": {"mode": "proxy", "ca_file": ca,
                       "buffer_bytes": buffer_bytes,
                       "providers": {"anthropic": {
                           "url": f"https://127.0.0.1:{standin.port}"}}}},
            "agents": {"alpha": {"name": "A", "provider": "anthropic"}},
            "supervisor": {"workers": 1}}, start=False)
        agent_workdir(h)
        h.start(env={"ANTHROPIC_API_KEY": secret,
                     "PATH": f"{bindir}:{FAKES}:/usr/local/bin:/usr/bin:"
                             "/bin"})
        mid = h.drop("bulk", agent="alpha")
        r = h.wait_response(mid, timeout=300)
        out = json.loads(r["message"])
        assert len(out) == 3
        for o in out:
            assert o["status"] == 200, o
            assert o["len"] == 5 * MIB + 777, o
            assert o["sha"] == o["want"], o
            assert o["seen_up_sha"] == o["up_sha"], o
        # Three requests, each whole and with the key, on one upstream
        # connection's worth of keep-alive.
        assert len(standin.seen) == 3
        for headers, sha, n in standin.seen:
            assert n == 3 * MIB + 12345
            assert {k.lower(): v for k, v in headers.items()}[
                "x-api-key"] == secret
    finally:
        standin.close()
