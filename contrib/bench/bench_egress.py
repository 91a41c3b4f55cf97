"""
The egress part of bench.py (SPEC §9, issue 15): a TLS stand-in for the
Messages API on 127.0.0.1 (a CA made now with openssl), measured twice in
one run with the same Python client:

  direct   the client, in a process of its own, speaks TLS to the
           stand-in itself, as a CLI without the proxy would;
  proxy    the client runs as the `claude` of an agent in bwrap mode with
           sandbox.egress.mode "proxy", and goes through clawvisor-bridge
           and the egress proxy (which does the TLS and swaps the key).

The two paths are measured in alternate rounds (direct, proxied, direct,
...), so that a change of load on a shared machine hits both alike.
Figures: time to first byte of a streamed reply, p50 over keep-alive
requests; throughput of a streamed 1 MiB reply (bytes over time summed
over every reply of that path); the egress process's RSS after a warm-up
of 1,000 requests and after 10,000 more. Targets (issue 15): under 1 ms
added to TTFB p50, at least 90 % of direct throughput, RSS flat within
1 MiB.

What "direct" costs that "proxied" does not, and the reverse: direct, the
client decrypts TLS itself; proxied, the client reads plain HTTP on
loopback from the proxy, which does the TLS in one more process (the
bridge hands each connection to the proxy and then does nothing;
DECISIONS 260). The stand-in (Python, TLS) is the same for both and is,
with the Python client, most of the CPU of either path. Each path's CPU
per MiB (stand-in, egress, client) and the cores that kept busy are
printed: near the machine's count, the path is CPU-bound, and what the
proxy spends comes out of the throughput (DECISIONS 263).
"""
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

MEASURE = r'''
import http.client, json, os, ssl, sys, time
def run(conn, ttfb_n, mb_n, small_n, out):
    def ask(size):
        body = json.dumps({"model": "m", "stream": True, "size": size})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/messages", body=body, headers={
            "x-api-key": os.environ.get("ANTHROPIC_API_KEY", "direct"),
            "content-type": "application/json"})
        r = conn.getresponse()
        first = r.read1(65536)
        t1 = time.perf_counter()
        n = len(first)
        while True:
            d = r.read1(65536)
            if not d:
                break
            n += len(d)
        return t1 - t0, time.perf_counter() - t0, n
    first = ask(256)[0]
    ttfb = sorted(ask(256)[0] for _ in range(ttfb_n))
    c0 = sum(os.times()[:2])
    mb = [ask(1 << 20) for _ in range(mb_n)]
    out["cpu"] = sum(os.times()[:2]) - c0
    for _ in range(small_n):
        ask(64)
    out.update(first_ms=first * 1000, ttfb_ms=[t * 1000 for t in ttfb],
               bytes=sum(m[2] for m in mb), secs=sum(m[1] for m in mb))
'''

# The client of both paths, a process of its own either way (in the
# bench's process it would share the stand-in's GIL, which slowed the
# direct path alone: DECISIONS 263): plain HTTP to the bridge as the
# agent's `claude`, TLS to the stand-in (BENCH_CA) direct.
CLI = "#!/usr/bin/python3\n" + MEASURE + r'''
a = dict(x.split("=") for x in sys.argv[-1].split(","))
scheme, base = os.environ["ANTHROPIC_BASE_URL"].split("://")
host, port = base.split(":")
if scheme == "https":
    conn = http.client.HTTPSConnection(host, int(port), timeout=120,
        context=ssl.create_default_context(cafile=os.environ["BENCH_CA"]))
else:
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
out = {}
run(conn, int(a["ttfb"]), int(a["mb"]), int(a["small"]), out)
print(json.dumps(out))
'''


class StandIn:
    def __init__(self, cert, key):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As a provider's front end does: without it, each reply's
            # small writes wait for the client's delayed ACK (40 ms), in
            # both paths alike, and hide what the proxy adds.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                c0 = time.thread_time()
                n = int(self.headers.get("content-length", 0))
                size = json.loads(self.rfile.read(n)).get("size", 64)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                ev = b"event: content_block_delta\ndata: " + b"x" * 8150 + \
                    b"\n\n"
                left = size
                while left > 0:
                    b = ev[:min(left, len(ev))]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                    left -= len(b)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                if size >= 1 << 20:
                    stand_in.cpu += time.thread_time() - c0

        stand_in = self
        self.cpu = 0.0          # CPU seconds of the 1 MiB replies
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def make_ca(d):
    def run(*a):
        subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj",
        "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
        "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (Path(d) / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem",
        "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days",
        "1", "-extfile", "ext.cnf")
    return [str(Path(d) / f) for f in ("ca.pem", "srv.pem", "srv.key")]


def cpu_s(pid):
    """User + system CPU seconds of pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def invoke(home, agent, text, timeout=900):
    mid = "bench-" + uuid.uuid4().hex[:8]
    msg = {"channel": "bench", "sender": "b", "senderId": "b",
           "message": text, "timestamp": int(time.time() * 1000),
           "messageId": mid, "agent": agent}
    tmp = home / "queue" / "incoming" / f".{mid}.tmp"
    tmp.write_text(json.dumps(msg))
    os.rename(tmp, home / "queue" / "incoming" / f"bench_{mid}.json")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for d in ("outgoing", "dead-letter"):
            for p in (home / "queue" / d).glob(f"*{mid}*"):
                try:
                    r = json.loads(p.read_text())
                except ValueError:
                    continue
                if d == "dead-letter":
                    raise RuntimeError("invocation failed: " +
                                       r.get("errorMessage", "?")[:300])
                return r["message"]
        time.sleep(0.05)
    raise RuntimeError("invocation timed out")


def run(bench, quick):
    if shutil.which("bwrap") is None:
        raise RuntimeError("bwrap is not installed")
    work = bench.work / "egress"
    work.mkdir()
    ca, cert, key = make_ca(str(work))
    api = StandIn(cert, key)
    rounds, ttfb_n, mb_n = (4, 25, 25) if quick else (10, 30, 100)
    small_n = 10000
    try:
        # Direct: the same client in a process of its own, TLS of its own.
        def direct_round():
            c0 = api.cpu
            r = json.loads(subprocess.run(
                ["/usr/bin/python3", "-c", CLI,
                 f"ttfb={ttfb_n},mb={mb_n},small=0"], env=dict(
                     os.environ, BENCH_CA=ca,
                     ANTHROPIC_BASE_URL=f"https://127.0.0.1:{api.port}"),
                capture_output=True, text=True, check=True,
                timeout=900).stdout)
            r["stand_in_cpu"] = api.cpu - c0
            return r
        # Through the proxy.
        home = work / "home"
        (home / "queue" / "incoming").mkdir(parents=True)
        os.chmod(work, 0o711)
        os.chmod(home, 0o711)
        bindir = work / "bin"
        bindir.mkdir()
        (bindir / "claude").write_text(CLI)
        os.chmod(bindir, 0o755)
        os.chmod(bindir / "claude", 0o755)
        uid = 65534 if os.getuid() == 0 else os.getuid()
        ws = home / "workspace" / "bench"
        ws.mkdir(parents=True)
        os.chmod(home / "workspace", 0o711)
        if os.getuid() == 0:
            os.chown(ws, uid, uid)
        (home / "settings.json").write_text(json.dumps({
            "workspace": {"path": str(home / "workspace")},
            "sandbox": {"mode": "bwrap", "max_attempts": 1,
                        "timeout_seconds": 1800,
                        "bwrap": {"user": f"{uid}:{uid}",
                                  "limits": "best-effort"},
                        "egress": {"mode": "proxy", "ca_file": ca,
                                   "providers": {"anthropic": {
                                       "url": f"https://127.0.0.1:"
                                              f"{api.port}"}}}},
            "agents": {"bench": {"name": "B", "provider": "anthropic"}},
            "supervisor": {"workers": 1}}))
        env = dict(os.environ, ANTHROPIC_API_KEY="sk-ant-bench-" +
                   uuid.uuid4().hex, PATH=f"{bindir}:/usr/bin:/bin")
        d = subprocess.Popen([str(bench.bin), "--home", str(home), "serve",
                              "-f"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        try:
            sock = home / "egress" / "proxy.sock"
            end = time.monotonic() + 30
            while not sock.exists() and time.monotonic() < end:
                time.sleep(0.05)
            st = json.loads(subprocess.run(
                [str(bench.bin), "--home", str(home), "status", "--json"],
                capture_output=True, text=True, env=env).stdout)
            epid = st["egress"]["pid"]
            invoke(home, "bench", "ttfb=1,mb=1,small=1000")
            direct_round()
            d_rounds, p_rounds = [], []
            ecpu = 0.0
            for _ in range(rounds):
                d_rounds.append(direct_round())
                c0, s0 = cpu_s(epid), api.cpu
                p_rounds.append(json.loads(invoke(
                    home, "bench", f"ttfb={ttfb_n},mb={mb_n},small=0")))
                p_rounds[-1]["stand_in_cpu"] = api.cpu - s0
                ecpu += cpu_s(epid) - c0
            rss0 = rss_kb(epid)
            invoke(home, "bench", f"ttfb=1,mb=0,small={small_n}")
            rss1 = rss_kb(epid)
        finally:
            d.terminate()
            d.wait(30)
    finally:
        api.close()
    def total(rs):
        t = sorted(x for r in rs for x in r["ttfb_ms"])
        f = sorted(r["first_ms"] for r in rs)
        return {"ttfb_p50_ms": t[len(t) // 2],
                "first_p50_ms": f[len(f) // 2],
                "mib_per_s": sum(r["bytes"] for r in rs) /
                sum(r["secs"] for r in rs) / (1 << 20)}
    direct, out = total(d_rounds), total(p_rounds)
    per = sorted(p["bytes"] / p["secs"] / (d["bytes"] / d["secs"])
                 for d, p in zip(d_rounds, p_rounds))
    added = out["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
    ratio = out["mib_per_s"] / direct["mib_per_s"]
    bench.row("egress", "TTFB p50, direct (ms)",
              f"{direct['ttfb_p50_ms']:.3f}",
              f"{rounds} x {ttfb_n} requests, rounds alternated")
    bench.row("egress", "TTFB p50, through the proxy (ms)",
              f"{out['ttfb_p50_ms']:.3f}",
              f"+{added:.3f} ms (target < 1 ms)")
    bench.row("egress", "TTFB of a connection's first request, p50 (ms)",
              f"{direct['first_p50_ms']:.3f} / {out['first_p50_ms']:.3f}",
              f"direct / through the proxy: "
              f"{out['first_p50_ms'] - direct['first_p50_ms']:+.3f} ms "
              f"(a TLS handshake each; {rounds} connections)")
    bench.row("egress", "1 MiB streamed, direct (MiB/s)",
              f"{direct['mib_per_s']:.1f}", f"{rounds} x {mb_n} replies")
    bench.row("egress", "1 MiB streamed, through the proxy (MiB/s)",
              f"{out['mib_per_s']:.1f}",
              f"{ratio * 100:.0f} % of direct (target >= 90 %); rounds "
              f"{per[0] * 100:.0f}-{per[len(per) // 2] * 100:.0f}-"
              f"{per[-1] * 100:.0f} % (min-median-max)")
    mib = sum(p["bytes"] for p in p_rounds) / (1 << 20)
    emib = ecpu * 1000 / mib
    bench.row("egress", "egress process CPU per MiB proxied (ms)",
              f"{emib:.2f}",
              "user + system over the proxied rounds (TTFB requests "
              "included), clock ticks")

    # Where the CPU of the 1 MiB replies went, and how many of the
    # machine's cores that kept busy: near NCPU, the path is CPU-bound and
    # what the proxy spends is throughput lost.
    def cpu(rs, egress=0.0):
        m = sum(r["bytes"] for r in rs) / (1 << 20)
        wall = sum(r["secs"] for r in rs)
        s, c = (sum(r[k] for r in rs) for k in ("stand_in_cpu", "cpu"))
        return s * 1000 / m, c * 1000 / m, (s + c + egress) / wall
    ds, dc, dbusy = cpu(d_rounds)
    ps, pc, pbusy = cpu(p_rounds, ecpu)
    bench.row("egress", "CPU per MiB streamed, direct (ms)",
              f"{ds:.2f} + {dc:.2f}",
              f"stand-in + client; {dbusy:.2f} of {os.cpu_count()} cores "
              "busy")
    bench.row("egress", "CPU per MiB streamed, through the proxy (ms)",
              f"{ps:.2f} + {emib:.2f} + {pc:.2f}",
              f"stand-in + egress + client; {pbusy:.2f} of "
              f"{os.cpu_count()} cores busy")
    bench.row("egress", "egress RSS after 1,000 / +10,000 requests (KiB)",
              f"{rss0} / {rss1}",
              f"{(rss1 - rss0) / 1024:+.2f} MiB (target within 1 MiB)")
