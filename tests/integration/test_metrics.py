"""Metrics (SPEC §11, docs/METRICS.md): `clawvisor metrics`, the control
command `metrics`, and GET /metrics on supervisor.metrics_listen, checked
by Debian's promtool in every state and scraped by a real Prometheus."""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import BIN, SUITE_MODE, TIME_SCALE, wait_for

# The suite's second pass runs every agent in bwrap mode (tests/run).
MODE = "bwrap" if SUITE_MODE == "bwrap" else "host"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool not installed")

FAMILIES = {
    "clawvisor_build_info": "gauge",
    "clawvisor_start_time_seconds": "gauge",
    "clawvisor_config_generation": "gauge",
    "clawvisor_config_reloads_total": "counter",
    "clawvisor_messages_received_total": "counter",
    "clawvisor_messages_finished_total": "counter",
    "clawvisor_retries_total": "counter",
    "clawvisor_dead_letters_total": "counter",
    "clawvisor_corrupt_files_total": "counter",
    "clawvisor_commit_failures_total": "counter",
    "clawvisor_invocations_total": "counter",
    "clawvisor_invocation_duration_seconds": "histogram",
    "clawvisor_queue_messages": "gauge",
    "clawvisor_message_pickup_delay_seconds": "histogram",
    "clawvisor_commits_waiting": "gauge",
    "clawvisor_permits_in_use": "gauge",
    "clawvisor_permits_limit": "gauge",
    "clawvisor_permit_waiters": "gauge",
    "clawvisor_permit_waiters_limit": "gauge",
    "clawvisor_workers": "gauge",
    "clawvisor_worker_restarts_total": "counter",
    "clawvisor_egress_requests_total": "counter",
    "clawvisor_egress_refusals_total": "counter",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(h, *args, timeout=30):
    return subprocess.run([BIN, "--home", str(h.path), *args],
                          capture_output=True, text=True,
                          timeout=timeout * TIME_SCALE)


def metrics_text(h):
    r = cli(h, "metrics")
    assert r.returncode == 0, r.stderr
    return r.stdout


def promtool_ok(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # promtool's linter speaks up on stdout even when it passes.
    assert r.stdout.strip() == "" and r.stderr.strip() == "", \
        r.stdout + r.stderr


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def parse(text):
    """{(name, ((label, value), ...)): float}, and the families' types."""
    samples, types, helps = {}, {}, set()
    for ln in text.splitlines():
        if ln.startswith("# HELP "):
            helps.add(ln.split()[2])
            continue
        if ln.startswith("# TYPE "):
            _, _, name, t = ln.split()
            types[name] = t
            continue
        m = LINE.match(ln)
        assert m, f"not a sample line: {ln!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                         m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    assert set(types) == helps, "every family has both HELP and TYPE"
    return samples, types


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and
               set(labels.items()) <= set(ls))


def checked(h):
    """The exposition, through promtool, parsed."""
    text = metrics_text(h)
    promtool_ok(text)
    samples, types = parse(text)
    for fam, t in FAMILIES.items():
        assert types.get(fam) == t, (fam, types.get(fam))
    for (name, _), _v in samples.items():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, name
    return samples


def http_get(addr, path="/metrics", method="GET"):
    req = urllib.request.Request(f"http://{addr}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10 * TIME_SCALE) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def raw_request(connect, data, read_timeout=20):
    """Send data on a new connection, read until the server closes."""
    s = connect()
    s.settimeout(read_timeout * TIME_SCALE)
    s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out


@needs_promtool
def test_metrics_fresh_daemon(homes):
    h = homes()
    shown = json.loads(cli(h, "sandbox", "show", "--json").stdout)
    assert shown["supervisor"]["metrics_listen"] is None
    s = checked(h)
    assert val(s, "clawvisor_build_info", version="0.1.0") == 1
    assert val(s, "clawvisor_config_generation") == 1
    start = val(s, "clawvisor_start_time_seconds")
    assert abs(start - time.time()) < 120 * TIME_SCALE
    for name in ("clawvisor_messages_received_total",
                 "clawvisor_retries_total", "clawvisor_corrupt_files_total",
                 "clawvisor_commit_failures_total",
                 "clawvisor_worker_restarts_total"):
        assert val(s, name) == 0, name
    # Configured agents start at zero, each in its mode, every outcome.
    for agent in ("alpha", "beta"):
        for o in ("ok", "transient", "terminal"):
            assert (("clawvisor_invocations_total",
                     (("agent", agent), ("mode", MODE),
                      ("outcome", o))) in s)
    wait_for(lambda: val(checked(h), "clawvisor_workers", state="idle")
             == 4, 20, what="4 idle workers")
    assert val(s, "clawvisor_permit_waiters_limit") == 1000
    assert val(s, "clawvisor_queue_messages", queue="incoming") == 0
    # --json: the daemon's reply as is, the text in "metrics".
    r = cli(h, "metrics", "--json")
    assert r.returncode == 0
    o = json.loads(r.stdout)
    assert o["ok"] is True and o["metrics"].startswith("# HELP ")


@needs_promtool
def test_metrics_follow_outcomes_and_reloads(homes):
    h = homes({"sandbox": {"max_attempts": 2, "backoff_seconds": 0}})
    checked(h)
    ok = h.drop("hello", agent="alpha")
    h.wait_response(ok)
    s = checked(h)
    assert val(s, "clawvisor_messages_received_total") == 1
    assert val(s, "clawvisor_messages_finished_total", outcome="ok") == 1
    assert val(s, "clawvisor_invocations_total", agent="alpha",
               mode=MODE, outcome="ok") == 1
    assert val(s, "clawvisor_invocation_duration_seconds_count",
               mode=MODE) == 1
    assert val(s, "clawvisor_message_pickup_delay_seconds_count") == 1

    term = h.drop("fail auth", agent="beta")
    h.wait_dead(term)
    s = checked(h)
    assert val(s, "clawvisor_invocations_total", agent="beta", mode=MODE,
               outcome="terminal") == 1
    assert val(s, "clawvisor_dead_letters_total", **{"class": "terminal"}) \
        == 1
    assert val(s, "clawvisor_messages_finished_total",
               outcome="dead_letter") == 1

    tr = h.drop("fail transient", agent="alpha")
    h.wait_dead(tr)
    s = checked(h)
    assert val(s, "clawvisor_invocations_total", agent="alpha", mode=MODE,
               outcome="transient") == 2
    assert val(s, "clawvisor_retries_total") == 1
    assert val(s, "clawvisor_dead_letters_total",
               **{"class": "transient"}) == 1
    assert val(s, "clawvisor_queue_messages", queue="dead-letter") == 2

    h.drop_raw("broken.json", b"{not json")
    wait_for(lambda: val(checked(h), "clawvisor_corrupt_files_total") == 1,
             15, what="the corrupt file counted")

    # A reload keeps every counter; a refused one is counted too.
    before = checked(h)
    r = cli(h, "reload")
    assert r.returncode == 0, r.stderr
    s = checked(h)
    assert val(s, "clawvisor_config_generation") == 2
    assert val(s, "clawvisor_config_reloads_total", result="ok") == 1
    keep = ("clawvisor_messages_received_total",
            "clawvisor_messages_finished_total",
            "clawvisor_invocations_total", "clawvisor_retries_total",
            "clawvisor_dead_letters_total", "clawvisor_corrupt_files_total",
            "clawvisor_invocation_duration_seconds_count")
    for name in keep:
        assert total(s, name) == total(before, name), name
    h.write_settings(h.settings, raw="{ broken")
    r = cli(h, "reload")
    assert r.returncode == 1
    s = checked(h)
    assert val(s, "clawvisor_config_reloads_total", result="failed") == 1
    assert val(s, "clawvisor_config_generation") == 2
    # A restart begins at zero, as Prometheus expects.
    h.write_settings(h.settings)
    h.stop()
    h.start()
    s = checked(h)
    for name in keep:
        assert total(s, name) == 0, name


@needs_promtool
def test_metrics_worker_restart_counted(homes):
    h = homes({"supervisor": {"workers": 1}})
    h.wait_workers(1)
    os.kill(h.worker_pids()[0], signal.SIGKILL)
    wait_for(lambda: val(checked(h), "clawvisor_worker_restarts_total")
             == 1, 30, what="the restart counted")


@pytest.mark.parametrize("bad", [
    "0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "192.168.1.1:80",
    "example.com:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
    "relative/metrics.sock", "",
])
def test_metrics_listen_refuses_non_loopback(homes, bad):
    h = homes({"supervisor": {"metrics_listen": bad}}, start=False)
    p = h.spawn()
    assert p.wait(30 * TIME_SCALE) == 78
    err = h.stderr_text(p)
    assert "supervisor.metrics_listen" in err, err


def test_metrics_listen_port_in_use_at_start(homes):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        h = homes({"supervisor": {"metrics_listen": f"127.0.0.1:{taken}"}},
                  start=False)
        p = h.spawn()
        assert p.wait(30 * TIME_SCALE) == 1
    err = h.stderr_text(p)
    assert f"supervisor.metrics_listen: cannot listen on 127.0.0.1:{taken}" \
        in err, err
    assert not (h.path / "run" / "clawvisor.pid").exists()


def test_metrics_listen_refused_on_reload(homes):
    port = free_port()
    h = homes({"supervisor": {"metrics_listen": f"127.0.0.1:{port}"}})
    assert http_get(f"127.0.0.1:{port}")[0] == 200
    s = dict(h.settings)
    s["supervisor"] = dict(s["supervisor"], metrics_listen="0.0.0.0:9464")
    h.write_settings(s)
    r = cli(h, "reload")
    assert r.returncode == 1
    assert "supervisor.metrics_listen" in r.stderr
    assert "not a loopback address" in r.stderr
    # The old configuration, listener included, is still in force.
    assert http_get(f"127.0.0.1:{port}")[0] == 200
    # A port someone else holds: refused the same way, nothing changes.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        s["supervisor"] = dict(s["supervisor"],
                               metrics_listen=f"127.0.0.1:{taken}")
        h.write_settings(s)
        r = cli(h, "reload")
        assert r.returncode == 1
        assert "supervisor.metrics_listen: cannot listen on" in r.stderr
    assert http_get(f"127.0.0.1:{port}")[0] == 200
    # A good new address: served there, no longer at the old one.
    new = free_port()
    s["supervisor"] = dict(s["supervisor"],
                           metrics_listen=f"127.0.0.1:{new}")
    h.write_settings(s)
    assert cli(h, "reload").returncode == 0
    assert http_get(f"127.0.0.1:{new}")[0] == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


@needs_promtool
def test_metrics_http_requests(homes, tmp_path):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    h = homes({"supervisor": {"metrics_listen": addr}})
    shown = json.loads(cli(h, "sandbox", "show", "--json").stdout)
    assert shown["supervisor"]["metrics_listen"] == addr
    status, hdrs, body = http_get(addr)
    assert status == 200
    assert hdrs["Content-Type"] == \
        "text/plain; version=0.0.4; charset=utf-8"
    promtool_ok(body)
    assert "clawvisor_build_info" in body
    assert http_get(addr, "/metrics?x=1")[0] == 200
    status, hdrs, body = http_get(addr, method="HEAD")
    assert status == 200 and body == ""
    assert http_get(addr, "/")[0] == 404
    assert http_get(addr, "/metricsx")[0] == 404
    status, hdrs, _ = http_get(addr, method="POST")
    assert status == 405 and hdrs["Allow"] == "GET, HEAD"
    assert http_get(addr, method="DELETE")[0] == 405

    def conn():
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    assert raw_request(conn, b"NONSENSE\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    # A request past the bound: 431, and the connection closed.
    big = (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000 +
           b"\r\n\r\n")
    assert raw_request(conn, big).startswith(b"HTTP/1.1 431 ")
    # Two pipelined requests: one answer, then the close.
    two = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    out = raw_request(conn, two)
    assert out.startswith(b"HTTP/1.1 200 ") and out.count(b"HTTP/1.1") == 1

    # A unix socket path, by reload.
    path = str(tmp_path / "m.sock")
    s = dict(h.settings)
    s["supervisor"] = dict(s["supervisor"], metrics_listen=path)
    h.write_settings(s)
    assert cli(h, "reload").returncode == 0

    def uconn():
        u = socket.socket(socket.AF_UNIX)
        u.connect(path)
        return u
    out = raw_request(uconn, b"GET /metrics HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    promtool_ok(body.decode())
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    h.stop()
    assert not os.path.exists(path)


def test_metrics_slow_clients_do_not_stall_the_queue(homes):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    h = homes({"supervisor": {"metrics_listen": addr}})
    # More slow clients than the listener takes (16): each sends half a
    # request and then nothing.
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /metr")
        slow.append(s)
    # The queue goes on meanwhile, and so does the control socket.
    t0 = time.monotonic()
    mids = [h.drop(f"hello {i}", agent="alpha") for i in range(5)]
    for mid in mids:
        h.wait_response(mid, timeout=30)
    assert cli(h, "metrics").returncode == 0
    # Each slow client is dropped by the daemon (5 s to send a request):
    # a reset, or an end if it was still in the backlog at the stop.
    for s in slow:
        s.settimeout(60 * TIME_SCALE)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    # A slow reader of a big answer does not hold the loop either: it
    # asks, then never reads (the answer fits the socket buffers, so this
    # shows the daemon does not wait for it).
    lazy = socket.create_connection(("127.0.0.1", port), timeout=10)
    lazy.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    mid = h.drop("after the slow ones", agent="alpha")
    h.wait_response(mid, timeout=30)
    lazy.close()
    # Then the listener serves again at once, and what it serves lints.
    status, _, body = http_get(addr)
    assert status == 200
    if PROMTOOL is not None:
        promtool_ok(body)
    assert time.monotonic() - t0 < 300 * TIME_SCALE


# -- a real Prometheus server --------------------------------------------

def prom_query(base, q):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        o = json.loads(r.read())
    assert o["status"] == "success", o
    res = o["data"]["result"]
    return None if not res else float(res[0]["value"][1])


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed")
def test_prometheus_scrapes_what_was_sent(homes, tmp_path):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    h = homes({"sandbox": {"max_attempts": 3, "backoff_seconds": 0},
               "supervisor": {"metrics_listen": addr}})
    pport = free_port()
    pdir = tmp_path / "prometheus"
    (pdir / "data").mkdir(parents=True)
    (pdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: clawvisor\n"
        f"    static_configs:\n      - targets: ['{addr}']\n")
    log = open(pdir / "prometheus.log", "wb")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={pdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={pdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{pport}",
         "--log.level=warn"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        cwd=str(pdir), env={"PATH": os.environ.get("PATH", "/usr/bin")})
    log.close()
    base = f"http://127.0.0.1:{pport}"
    try:
        def up():
            try:
                return prom_query(base, 'up{job="clawvisor"}') == 1
            except (OSError, ValueError):
                assert prom.poll() is None, \
                    (pdir / "prometheus.log").read_text()
                return False
        wait_for(up, 60, interval=0.5, what="Prometheus scraping clawvisor")

        # What the test sends: 2 ok, 1 transient then ok, 1 terminal,
        # 1 corrupt file.
        oks = [h.drop(f"hello {i}", agent="alpha") for i in range(2)]
        flaky = h.drop("flaky 2", agent="beta")
        term = h.drop("fail auth", agent="alpha")
        h.drop_raw("garbage.json", b"\x00 not a message")
        for mid in oks + [flaky]:
            h.wait_response(mid, timeout=30)
        h.wait_dead(term, timeout=30)
        wait_for(lambda: h.files("corrupt"), 15, what="the corrupt file")

        expect = {
            'clawvisor_messages_received_total': 4,
            'clawvisor_messages_finished_total{outcome="ok"}': 3,
            'clawvisor_messages_finished_total{outcome="dead_letter"}': 1,
            'clawvisor_dead_letters_total{class="terminal"}': 1,
            'clawvisor_dead_letters_total{class="transient"}': 0,
            'clawvisor_retries_total': 1,
            'clawvisor_corrupt_files_total': 1,
            'sum(clawvisor_invocations_total{outcome="ok"})': 3,
            'sum(clawvisor_invocations_total{outcome="transient"})': 1,
            'sum(clawvisor_invocations_total{outcome="terminal"})': 1,
            'clawvisor_invocations_total{agent="alpha",outcome="ok"}': 2,
            'clawvisor_invocations_total{agent="beta",outcome="ok"}': 1,
            'clawvisor_invocations_total{agent="beta",'
            'outcome="transient"}': 1,
            'clawvisor_invocations_total{agent="alpha",'
            'outcome="terminal"}': 1,
            'sum(clawvisor_invocation_duration_seconds_count)': 5,
            'sum(clawvisor_invocation_duration_seconds_bucket'
            '{le="+Inf"})': 5,
            'clawvisor_message_pickup_delay_seconds_count': 4,
            'clawvisor_queue_messages{queue="dead-letter"}': 1,
            'clawvisor_queue_messages{queue="corrupt"}': 1,
            'clawvisor_queue_messages{queue="incoming"}': 0,
        }
        got = {}

        def all_scraped():
            for q in expect:
                got[q] = prom_query(base, q)
            return all(got[q] == w for q, w in expect.items())
        try:
            wait_for(all_scraped, 60, interval=0.5,
                     what="Prometheus to hold the figures sent")
        except AssertionError:
            bad = {q: (got.get(q), w) for q, w in expect.items()
                   if got.get(q) != w}
            raise AssertionError(f"Prometheus has (got, want): {bad}")
        # Nothing else finished: no ok beyond the three, no retry beyond
        # the one.
        assert prom_query(base, "sum(clawvisor_invocations_total)") == 5
        if PROMTOOL is not None:
            promtool_ok(http_get(addr)[2])
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait(10)


def test_metrics_slow_reader_dropped(homes, tmp_path):
    """An answer bigger than the socket buffers, to a client that never
    reads it: the daemon does not wait for it (the queue goes on) and drops
    the client after its 10 s. A unix socket: its buffers do not grow as
    TCP's do, so the answer cannot all be queued at once."""
    # 1000 agents with long ids: an answer of about half a megabyte.
    agents = {f"a{i:04d}-" + "x" * 110: {"name": f"A{i}",
                                         "provider": "anthropic"}
              for i in range(1000)}
    agents["alpha"] = {"name": "Alpha", "provider": "anthropic"}
    path = str(tmp_path / "m.sock")
    h = homes({"agents": agents, "supervisor": {"metrics_listen": path}})

    def uconn():
        u = socket.socket(socket.AF_UNIX)
        u.connect(path)
        return u
    full = raw_request(uconn, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert full.startswith(b"HTTP/1.1 200 ") and len(full) > 400000
    lazy = uconn()
    lazy.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    # It reads nothing; meanwhile messages are answered and scrapes served.
    mid = h.drop("while a reader stalls", agent="alpha")
    h.wait_response(mid, timeout=30)
    assert raw_request(uconn, b"GET /metrics HTTP/1.0\r\n\r\n").startswith(
        b"HTTP/1.1 200 ")
    # Then the daemon gives up on it: its end closes (a hang-up seen
    # without reading, which would let it send more), then what it had
    # sent is there, then the end, short of the whole answer.
    p = select.poll()
    p.register(lazy, select.POLLHUP | select.POLLRDHUP)
    wait_for(lambda: p.poll(0), 60, interval=0.2,
             what="the daemon to drop the reader")
    got = b""
    lazy.settimeout(30 * TIME_SCALE)
    try:
        while True:
            b = lazy.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    lazy.close()
    assert got.startswith(b"HTTP/1.1 200 ")
    assert len(got) < len(full), (len(got), len(full))
