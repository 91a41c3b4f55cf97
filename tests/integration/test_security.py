"""The security audit (issue 6): hostile sizes, bytes and shapes in queue
files and in settings.json, and settings.json's permissions. Each case ends
the way docs/QUEUE.md and docs/CONFIGURATION.md say; the daemon stays up
under the same pid with bounded memory; what it writes stays UTF-8."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, NOTICE_TEXT, TIME_SCALE, WRAP, wait_for

MIB = 1024 * 1024
MAX_MESSAGE_FILE = 16 * MIB             # common/util.h
MSG_MAX_VALUES = 1024                   # supervisor/queue.c
SETTINGS_MAX = 4 * MIB                  # common/config.c
SETTINGS_MAX_VALUES = 65536             # common/config.c
# The supervisor's peak memory bound (tests/run raises it for sanitizers).
RSS_LIMIT_KB = int(os.environ.get("CLAWVISOR_RSS_LIMIT_KB", 64 * 1024))
FFFD = "\ufffd"


# -- helpers -------------------------------------------------------------

def corrupt_notes(h, names, timeout=30):
    """Wait until every name is in corrupt/ with its note; {name: note}."""
    c = h.q / "corrupt"

    def done():
        h.alive_check()
        have = set(os.listdir(c)) if c.is_dir() else set()
        return all(n in have and f"{n}.error" in have for n in names)
    wait_for(done, timeout, what=f"{names} in corrupt/")
    return {n: (c / f"{n}.error").read_text() for n in names}


def assert_same_daemon(h):
    """Still the daemon the test started: alive, its pid in the pid file,
    never restarted (one processor_start)."""
    h.alive_check()
    assert (h.path / "run" / "clawvisor.pid").read_text().strip() == \
        str(h.pid)
    assert [e["pid"] for e in h.events("processor_start")] == [h.pid]


def assert_hwm(h, limit_kb):
    """The supervisor's peak RSS under limit_kb (not under valgrind, where
    VmHWM is the tool's own memory)."""
    if WRAP:
        return
    hwm = h.vm_hwm_kb()
    print(f"supervisor VmHWM {hwm} kB (limit {limit_kb} kB)")
    assert hwm < limit_kb, f"supervisor VmHWM {hwm} kB >= {limit_kb} kB"


def non_utf8_files(h):
    """Every file the daemon wrote (responses, dead letters, deferred
    messages, corrupt notes, events, the log) that is not valid UTF-8.
    corrupt/ keeps the bad files byte for byte: only the notes count."""
    paths = []
    for sub in ("outgoing", "dead-letter", "deferred", "processing"):
        paths += h.files(sub)
    paths += [p for p in h.files("corrupt") if p.name.endswith(".error")]
    paths += sorted((h.path / "events").glob("*.json"))
    paths += [h.path / "logs" / "clawvisor.log"]
    bad = []
    for p in paths:
        try:
            p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append(f"{p}: {e}")
        except FileNotFoundError:
            pass
    return bad


def message(mid, text, **extra):
    obj = {"channel": "discord", "sender": "mallory", "senderId": "m-1",
           "message": text, "timestamp": 1, "messageId": mid}
    obj.update(extra)
    return obj


def run(h, *args, timeout=60, argv_prefix=(), env=None):
    """`clawvisor --home H ARGS`, captured."""
    return subprocess.run([*argv_prefix, BIN, "--home", str(h.path), *args],
                          capture_output=True, text=True,
                          timeout=timeout * TIME_SCALE,
                          env=env or h.env(), stdin=subprocess.DEVNULL)


def serve_refused(h, timeout=60):
    """`serve -f` on h, which must refuse to start: (status, stderr)."""
    p = h.spawn()
    rc = p.wait(timeout * TIME_SCALE)
    return rc, h.stderr_text(p)


def assert_nothing_started(h):
    run_dir = h.path / "run"
    assert not (run_dir / "clawvisor.pid").exists()
    assert not (run_dir / "clawvisor.sock").exists()
    assert h.events("processor_start") == []


# -- 64 MiB and other oversized message files -----------------------------

def test_64mib_files_refused(home):
    """64 MiB of well-formed message and 64 MiB of junk: each goes to
    corrupt/ as it is, for its size, without being read into memory."""
    h = home
    size = 64 * MIB
    head = b'{"channel": "discord", "sender": "mallory", "messageId": ' \
        b'"huge64", "agent": "alpha", "message": "'
    msg = head + b"a" * (size - len(head) - 2) + b'"}'
    junk = (b"\xff\x00{[\"junk\\" * (size // 10 + 1))[:size]
    files = {"discord_huge64.json": msg, "junk64.json": junk}
    sums = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    for name, data in files.items():
        h.drop_raw(name, data)
    del msg, junk, files

    notes = corrupt_notes(h, list(sums), timeout=60)
    c = h.q / "corrupt"
    for name, note in notes.items():
        assert f"file: {name}\n" in note
        assert (f"reason: file is {size} bytes, over the limit of "
                f"{MAX_MESSAGE_FILE}\n") in note, note
        data = (c / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sums[name], name
        assert f"{name} is not a valid message (file is {size} bytes" \
            in h.log()
    # Exactly that one outcome: no response, no dead letter, nothing left.
    assert h.outcome("huge64") is None
    assert h.files("outgoing") == [] and h.files("dead-letter") == []
    assert h.files("incoming") == [] and h.files("processing") == []
    assert_same_daemon(h)
    assert_hwm(h, RSS_LIMIT_KB)
    mid = h.drop("after 64 MiB", agent="alpha")
    assert h.wait_response(mid)["message"].endswith("): after 64 MiB")


def test_many_values_refused_before_parsing(home):
    """350000 empty objects are 1 MB on disk and would cost json-c some
    270 MB (750 bytes each): such a file is refused for its number of
    values before it is parsed. A message with many values, under the
    limit, is still answered."""
    h = home
    empties = ",".join(["{}"] * 350000)
    bomb = json.dumps(message("bomb", "boom", agent="alpha"))[:-1] + \
        f', "x": [{empties}]}}'
    h.drop_raw("discord_bomb.json", bomb)
    # Unknown fields are kept, so a message may carry a list: 900 values.
    fine = message("listy", "many values", agent="alpha",
                   files=[f"/tmp/f{i}" for i in range(900)])
    h.drop(None, obj=fine)
    over = message("overlisty", "too many", agent="alpha",
                   files=[f"/tmp/f{i}" for i in range(MSG_MAX_VALUES)])
    h.drop(None, obj=over)

    notes = corrupt_notes(h, ["discord_bomb.json", "discord_overlisty.json"])
    for note in notes.values():
        assert f"reason: more than {MSG_MAX_VALUES} JSON values\n" in note
    assert h.wait_response("listy")["message"].endswith("): many values")
    assert h.outcome("bomb") is None and h.outcome("overlisty") is None
    assert_same_daemon(h)
    assert_hwm(h, RSS_LIMIT_KB)


def test_message_just_under_the_file_limit(home):
    """16 MiB exactly is still a message: read, then refused when it is
    about to run (sandbox.max_message_bytes) as one dead letter and its
    notice. The supervisor's peak stays within a few copies of it."""
    h = home
    head = b'{"channel": "discord", "sender": "mallory", "messageId": ' \
        b'"big16", "agent": "alpha", "timestamp": 1, "message": "'
    text_len = MAX_MESSAGE_FILE - len(head) - 2
    h.drop_raw("discord_big16.json", head + b"b" * text_len + b'"}')
    dead, notice = h.wait_dead("big16", timeout=120)
    assert dead["errorClass"] == "terminal"
    assert dead["errorMessage"] == (
        f"message is {text_len} bytes, over the limit of 100000 "
        "(sandbox.max_message_bytes)")
    assert notice["message"] == NOTICE_TEXT
    assert len(h.dead_letters("big16")) == 1
    assert len(h.responses("big16")) == 1
    assert h.files("corrupt") == [] and h.calls() == []
    assert_same_daemon(h)
    # Measured at 123 MiB: the file, json-c's buffer and string, the text
    # routed, and the dead letter and notice serialised.
    assert_hwm(h, RSS_LIMIT_KB * 5 // 2)
    mid = h.drop("after 16 MiB", agent="alpha")
    h.wait_response(mid)


def test_own_rewrites_over_the_file_limit_recovered(homes):
    """A message near 16 MiB that failed once is rewritten (attempt,
    lastError, ..., pretty-printed) past 16 MiB: found in deferred/, or
    claimed in processing/ by a daemon that then died, it is the daemon's
    own file and is read back, not sent to corrupt/."""
    h = homes(start=False)
    text_len = MAX_MESSAGE_FILE - 200
    names = {}
    for mid, sub in (("rw-deferred", "deferred"),
                     ("rw-processing", "processing")):
        rec = {"channel": "discord", "sender": "mallory", "messageId": mid,
               "agent": "alpha", "timestamp": 1, "message": "r" * text_len,
               "attempt": 1, "firstSeenAt": int(time.time() * 1000),
               "lastError": "x" * 300, "lastErrorClass": "transient",
               "retryAt": int(time.time() * 1000)}
        data = json.dumps(rec, indent=2).encode()
        assert len(data) > MAX_MESSAGE_FILE
        d = h.q / sub
        d.mkdir(parents=True, exist_ok=True)
        names[mid] = f"discord_{mid}.json"
        (d / names[mid]).write_bytes(data)
    h.start()
    for mid in names:
        dead, notice = h.wait_dead(mid, timeout=120)
        assert dead["errorMessage"].startswith(f"message is {text_len} "
                                               "bytes, over the limit"), dead
        assert len(dead["payload"]["message"]) == text_len
        assert notice["message"] == NOTICE_TEXT
    assert h.files("corrupt") == [], h.files("corrupt")
    assert h.files("processing") == [] and h.files("deferred") == []


# -- bytes that are not UTF-8 ------------------------------------------------

# (raw bytes in a JSON string, the text they must become: each invalid byte
# one U+FFFD, as in replies; json-c makes an escaped lone surrogate one).
BAD_BYTES = [
    (b"\xff", FFFD),                                # never valid
    (b"\xc0\xaf", FFFD * 2),                        # overlong "/"
    (b"\xe2\x82", FFFD * 2),                        # cut short
    (b"\xed\xa0\x80", FFFD * 3),                    # a surrogate, encoded
    (b"\xf4\x90\x80\x80", FFFD * 4),                # past U+10FFFF
    (b"\\ud800", FFFD),                             # lone high surrogate
    (b"\\udc00\\ud800", FFFD * 2),                  # a pair the wrong way
    (b"\\ud83d\\ude00", "\U0001F600"),              # a real pair: kept
    ("é€😀".encode(), "é€😀"),                      # valid: kept
]


def test_invalid_utf8_in_messages(home):
    """Invalid UTF-8 in any field is read with each invalid byte as U+FFFD:
    every such message is answered once, and every file the daemon writes
    is valid UTF-8."""
    h = home
    expect = {}
    for i, (raw, text) in enumerate(BAD_BYTES):
        mid = f"u8-{i}"
        body = b"say " + raw + b" end"
        data = (b'{"channel": "discord", "sender": "m\xffl\\ud800ory", '
                b'"senderId": "\xc0\xaf", "agent": "alpha", '
                b'"timestamp": 1, "messageId": "' + mid.encode() +
                b'", "message": "' + body + b'"}')
        h.drop_raw(f"discord_{mid}.json", data)
        expect[mid] = f"say {text} end"
    # In the agent field: no agent of that name, so the default agent.
    h.drop_raw("discord_u8-agent.json",
               b'{"channel": "discord", "sender": "s", "timestamp": 1, '
               b'"messageId": "u8-agent", "agent": "al\xfepha", '
               b'"message": "routed"}')
    # A message that fails: its dead letter carries the text, cleaned.
    h.drop_raw("discord_u8-dead.json",
               b'{"channel": "discord", "sender": "s\xff", "timestamp": 1, '
               b'"messageId": "u8-dead", "agent": "alpha", '
               b'"message": "fail auth \xff\xfe"}')

    for mid, text in expect.items():
        r = h.wait_response(mid)
        assert r["originalMessage"] == text, (mid, r)
        assert r["message"].endswith(f"): {text}"), (mid, r)
        assert r["sender"] == f"m{FFFD}l{FFFD}ory"
        (ev,) = h.wait_events("message_received", mid)
        assert ev["message"] == text and ev["sender"] == r["sender"]
    r = h.wait_response("u8-agent")
    assert r["originalMessage"] == "routed" and r["agent"] == "alpha"
    dead, notice = h.wait_dead("u8-dead")
    assert dead["payload"]["message"] == f"fail auth {FFFD}{FFFD}"
    assert dead["payload"]["sender"] == f"s{FFFD}"
    assert notice["originalMessage"] == f"fail auth {FFFD}{FFFD}"

    # One outcome each, nothing in corrupt/, and all of it UTF-8.
    for mid in [*expect, "u8-agent"]:
        assert len(h.responses(mid)) == 1 and h.dead_letters(mid) == []
    assert len(h.responses("u8-dead")) == len(h.dead_letters("u8-dead")) \
        == 1
    assert h.files("corrupt") == []
    h.wait_events("response_ready", "u8-agent")
    assert non_utf8_files(h) == []
    assert_same_daemon(h)


def test_invalid_utf8_from_the_agent(homes):
    """An agent that writes invalid UTF-8: the reply is cleaned, and so is
    the stderr line quoted in a dead letter, an event and the log, which
    is cut at a character boundary, never inside one."""
    # 13 + 400 + 1 bytes: the last 300 start inside an "é".
    line = "unauthorized " + "é" * 200 + "x"
    fail = ("printf 'bad \\377\\300\\257 bytes\\n%s\\n' \"$0\" >&2; exit 1")
    h = homes({"agents": {
        "liar": {"provider": "command",
                 "command": ["sh", "-c", "printf 'out \\377\\300 x\\n'",
                             "{message}"]},
        "failer": {"provider": "command",
                   "command": ["sh", "-c", fail, line]}}})
    r = h.wait_response(h.drop("hi", agent="liar"))
    assert r["message"] == f"out {FFFD}{FFFD} x"
    mid = h.drop("go", agent="failer")
    dead, _ = h.wait_dead(mid)
    err = dead["errorMessage"]
    assert dead["errorClass"] == "terminal"
    assert err.startswith("sh exit 1: authentication failed: "), err
    tail = err.split("authentication failed: ", 1)[1]
    assert tail == "é" * 149 + "x", tail
    assert len(tail.encode()) <= 300
    (ev,) = h.wait_events("sandbox_invocation_error", mid)
    assert ev["error"] == err
    assert non_utf8_files(h) == []


# -- deep nesting --------------------------------------------------------------

def nested(open_, close, n, inner="1"):
    return open_ * n + inner + close * n


def test_deep_nesting(home):
    """JSON nested deeper than json-c's 64 levels goes to corrupt/ with a
    reason, in the file as a whole or inside a field; 64 levels are still
    a message. Nothing crashes: same supervisor, same workers."""
    h = home
    workers = h.wait_workers(4)
    good = json.dumps(message("n64", "deep but fine", agent="alpha"))[:-1]
    files = {
        # 100000 levels: more values than a message may have.
        "arrays-100k.json": (nested("[", "]", 100000), "more than 1024"),
        "objects-100k.json": (nested('{"a":', "}", 100000),
                              "more than 1024"),
        "unclosed-100k.json": ("[" * 100000, "more than 1024"),
        "field-100k.json": (good + ', "x": ' + nested("[", "]", 100000)
                            + "}", "more than 1024"),
        # Few values but deep: json-c's depth limit.
        "arrays-500.json": (nested("[", "]", 500), "nesting too deep"),
        "objects-500.json": (nested('{"a":', "}", 500), "nesting too deep"),
        "unclosed-500.json": ("[" * 500, "nesting too deep"),
        # The object, 63 arrays, the number in the last: 65 levels.
        "field-65.json": (good + ', "x": ' + nested("[", "]", 63) + "}",
                          "nesting too deep"),
    }
    for name, (data, _) in files.items():
        h.drop_raw(name, data)
    # 64 levels, the most json-c takes.
    h.drop_raw("discord_n64.json",
               good + ', "x": ' + nested("[", "]", 62) + "}")
    notes = corrupt_notes(h, list(files))
    for name, (_, why) in files.items():
        assert why in notes[name], (name, notes[name])
    # (The bad files name messageId n64 too: their senders get notices,
    # QUEUE.md.)
    wait_for(lambda: any(r["message"].endswith("): deep but fine")
                         for r in h.responses("n64")), 15,
             what="the answer to the 64-level message")
    assert len(h.files("corrupt")) == 2 * len(files)
    # As deep, and failed: its dead letter (one level more) is listed and
    # shown like any other (json_tokener_parse stops at 32 levels).
    h.drop_raw("discord_n64dead.json",
               json.dumps(message("n64dead", "fail auth", agent="alpha"))
               [:-1] + ', "x": ' + nested("[", "]", 62) + "}")
    dead, _ = h.wait_dead("n64dead")
    r = run(h, "dead", "list")
    assert r.returncode == 0 and "\tn64dead\t" in r.stdout, r
    r = run(h, "dead", "show", "discord_n64dead", "--json")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["record"]["payload"]["x"] == \
        dead["payload"]["x"]
    assert_same_daemon(h)
    assert h.worker_pids() == workers
    mid = h.drop("after the deep ones", agent="beta")
    h.wait_response(mid)


# -- settings.json: huge, unreadable, world-writable, missing ----------------

def many(n, value):
    return {f"a{i}": value for i in range(n)}


# (id, settings override, what the error must say). Each is refused at
# start (exit 78) and on reload; none may take the daemon's memory up.
HUGE_SETTINGS = [
    ("allowlist-1M", {"sandbox": {"env_allowlist": ["A"] * 1000000}},
     f"settings.json: more than {SETTINGS_MAX_VALUES} JSON values"),
    ("allowlist-300", {"sandbox": {"env_allowlist": ["A"] * 300}},
     "sandbox.env_allowlist: expected at most 256 elements, got 300"),
    ("agents-100k", {"agents": many(100000, {"provider": "anthropic"})},
     f"settings.json: more than {SETTINGS_MAX_VALUES} JSON values"),
    ("agents-2000", {"agents": many(2000, {"provider": "anthropic"})},
     "agents: expected at most 1024 agents, got 2000"),
    ("team-100k", {"teams": {"t": {"agents": ["alpha"] * 100000}}},
     f"settings.json: more than {SETTINGS_MAX_VALUES} JSON values"),
    ("team-300", {"teams": {"t": {"agents": ["alpha"] * 300}}},
     "teams.t.agents: expected at most 256 elements, got 300"),
    ("command-1M", {"agents": {"c": {"provider": "command",
                                     "command": ["x"] * 1000000}}},
     f"settings.json: more than {SETTINGS_MAX_VALUES} JSON values"),
    ("unknown-empties", {"tinyclaw_extra": [{}] * 1300000},
     f"settings.json: more than {SETTINGS_MAX_VALUES} JSON values"),
    ("over-4mib", {"tinyclaw_extra": "p" * SETTINGS_MAX},
     f"over the limit of {SETTINGS_MAX}"),
]


def huge_text(h, override):
    s = dict(h.settings)
    s.update(override)
    return json.dumps(s, separators=(",", ":"))


@pytest.mark.parametrize("case", HUGE_SETTINGS,
                         ids=[c[0] for c in HUGE_SETTINGS])
def test_huge_settings_refused_at_start(homes, case):
    _, override, error = case
    h = homes(start=False)
    h.write_settings(h.settings, raw=huge_text(h, override))
    t0 = time.monotonic()
    rc, err = serve_refused(h)
    took = time.monotonic() - t0
    assert rc == 78, (rc, err)
    assert error in err, err
    assert took < 30 * TIME_SCALE, f"took {took:.1f}s to refuse"
    assert_nothing_started(h)


def test_huge_settings_refused_on_reload(home):
    """The same files on a running daemon: each reload refused with its
    error, the generation kept, the supervisor's memory bounded (json-c
    would have spent 1 GB on the million empty objects), and a settings
    file with 60000 values under an unknown key still accepted."""
    h = home
    good = h.settings
    for name, override, error in HUGE_SETTINGS:
        h.write_settings(good, raw=huge_text(h, override))
        r = run(h, "reload")
        assert r.returncode == 1, (name, r)
        assert error in r.stderr, (name, r.stderr)
    ev = wait_for(lambda: (e := h.events("config_reload_failed")) and
                  len(e) == len(HUGE_SETTINGS) and e, 10,
                  what="a config_reload_failed event for each")
    assert all(e["generation"] == 1 for e in ev)
    # Deep: json-c's limit of 64 levels names the file.
    h.write_settings(good, raw=json.dumps(good)[:-1] + ', "deep": ' +
                     nested("[", "]", 100) + "}")
    r = run(h, "reload")
    assert r.returncode == 1
    assert re.search(re.escape(str(h.path / "settings.json")) +
                     r":1:\d+: not valid JSON: nesting too deep", r.stderr), \
        r.stderr
    # Under the limit: accepted.
    h.write_settings(good, raw=huge_text(h, {"tinyclaw_extra":
                                             list(range(60000))}))
    r = run(h, "reload")
    assert r.returncode == 0, r
    wait_for(lambda: h.events("config_reloaded"), 10, what="reload")
    # As deep as it may be (64 levels): `sandbox set` rewrites it.
    h.write_settings(good, raw=json.dumps(good)[:-1] + ', "deep": ' +
                     nested("[", "]", 62) + "}")
    r = run(h, "sandbox", "set", "host")
    assert r.returncode == 0, r
    deep = json.loads((h.path / "settings.json").read_text())["deep"]
    assert deep == json.loads(nested("[", "]", 62))
    assert_same_daemon(h)
    assert_hwm(h, RSS_LIMIT_KB)
    mid = h.drop("after the huge settings", agent="alpha")
    h.wait_response(mid)


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv (util-linux) to run as uid 65534")


@pytest.fixture
def nobody_home(homes):
    """A home owned by uid 65534 under a directory it may traverse
    (pytest's temporary directories are 0700). Its daemons are stopped
    before the directory is removed (the homes fixture comes after)."""
    base = Path(tempfile.mkdtemp(prefix="clawvisor-sec-", dir="/tmp"))
    os.chmod(base, 0o711)

    def make(override=None):
        h = homes(override, start=False, name=str(base / "home"))
        for d, _, fs in os.walk(h.path):
            for n in [d, *(os.path.join(d, f) for f in fs)]:
                os.chown(n, 65534, 65534)
        made.append(h)
        return h
    made = []
    yield make
    for h in made:
        for p in h.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15 * TIME_SCALE)
    shutil.rmtree(base, ignore_errors=True)


def start_as_nobody(h, timeout=15):
    """`serve -f` as uid 65534, registered with h like h.start()."""
    since = time.time() * 1000 - 1
    n = len(h.procs)
    path = h.path / f"daemon-{n}.stderr"
    with open(path, "wb") as err:
        p = subprocess.Popen(NOBODY + [BIN, "--home", str(h.path), "serve",
                                       "-f"], stdin=subprocess.DEVNULL,
                             stdout=err, stderr=err, env=h.env(),
                             cwd=str(h.path))
    p.stderr_path = path
    h.procs.append(p)
    h.proc = p

    def ready():
        h.alive_check()
        return any(e.get("pid") == p.pid and e["timestamp"] >= since
                   for e in h.events("processor_start"))
    wait_for(ready, timeout, what="processor_start")
    return p


@needs_root
def test_unreadable_settings_as_nobody(nobody_home):
    h = nobody_home()
    settings = h.path / "settings.json"
    os.chmod(settings, 0)
    want = f"{settings}: cannot open: Permission denied"

    # At start: exit 78 (EX_CONFIG), the file and the cause named, and no
    # pid file, no socket, no worker.
    p = subprocess.Popen(NOBODY + [BIN, "--home", str(h.path), "serve",
                                   "-f"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=h.env(), text=True)
    h.procs.append(p)
    out, _ = p.communicate(timeout=30 * TIME_SCALE)
    assert p.returncode == 78, (p.returncode, out)
    assert want in out, out
    assert_nothing_started(h)
    assert want in h.log()
    # The same without a daemon: `sandbox doctor` fails its settings check.
    r = run(h, "sandbox", "doctor", argv_prefix=NOBODY)
    assert r.returncode != 0
    assert want in r.stdout + r.stderr, r

    # On reload: refused, the running configuration kept.
    os.chmod(settings, 0o600)
    start_as_nobody(h)
    os.chmod(settings, 0)
    r = run(h, "reload", argv_prefix=NOBODY)
    assert r.returncode == 1, r
    assert want in r.stderr, r.stderr
    (ev,) = h.wait_events("config_reload_failed")
    assert want in ev["error"] and ev["generation"] == 1
    mid = h.drop("still running", agent="alpha")
    assert h.wait_response(mid)["message"].endswith("): still running")
    assert_same_daemon(h)


# Podman's first words, as `podman --version` says them; the rest answers
# as a rootless Podman with no image would.
FAKE_PODMAN = r"""#!/bin/sh
case "$1" in
--version) echo "podman version 4.3.1" ;;
info) echo "host:" ;;
image) echo "Error: $3: image not known" >&2; exit 125 ;;
*) exit 0 ;;
esac
"""


@needs_root
def test_doctor_rootless_podman_as_the_daemons_user(nobody_home):
    h = nobody_home({"sandbox": {"mode": "docker", "docker": {
        "runtime_command": "FAKE", "user": "10001:10001"}}})
    fake = h.path / "podman"
    fake.write_text(FAKE_PODMAN)
    fake.chmod(0o755)
    settings = json.loads((h.path / "settings.json").read_text())
    settings["sandbox"]["docker"]["runtime_command"] = str(fake)
    (h.path / "settings.json").write_text(json.dumps(settings))
    start_as_nobody(h)             # no PODMAN_USERNS in its environment

    def checks(prefix=()):
        r = run(h, "sandbox", "doctor", "--json", argv_prefix=prefix)
        assert r.stdout.startswith("{"), r
        return {c["name"]: c for c in json.loads(r.stdout)["checks"]}

    # As root: the daemon's user's storage is not root's; say so first.
    c = checks()
    assert not c["user"]["ok"], c
    assert c["user"]["detail"].startswith(
        "the daemon runs as nobody (uid 65534), this doctor as uid 0: "
        "Podman's images, storage and settings are per user"), c["user"]
    assert c["user"]["fix"] == (
        "run the doctor as the daemon's user: sudo -u nobody clawvisor "
        "sandbox doctor (or runuser -u nobody -- clawvisor sandbox doctor)")
    # As the daemon's user: its subordinate ids (none here), its
    # PODMAN_USERNS, and an image missing from its own storage.
    c = checks(NOBODY)
    assert "user" not in c, c
    assert not c["subids"]["ok"], c
    assert c["subids"]["fix"].startswith(
        "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
        "nobody"), c["subids"]
    assert c["userns"]["ok"] and c["userns"]["detail"].startswith(
        "warning: PODMAN_USERNS is not keep-id"), c["userns"]
    assert not c["image"]["ok"]
    assert "not present in this user's Podman storage (images are per " \
        "user: one built as root or as another user is not visible here)" \
        in c["image"]["detail"], c["image"]
    assert "podman save tinyclaw/agent-runner:latest | podman load" in \
        c["image"]["fix"], c["image"]


def test_world_writable_settings_warned(homes):
    h = homes(start=False)
    settings = h.path / "settings.json"
    os.chmod(settings, 0o666)
    warning = (f"warn: {settings} is world-writable: any local user can "
               "change what runs; chmod o-w it")
    h.start()
    assert h.log().count(warning) == 1, h.log()
    # Said again on every reload while it stays so, and by doctor.
    h.signal(signal.SIGHUP)
    wait_for(lambda: h.log().count(warning) == 2, 10,
             what="the warning again on reload")
    r = run(h, "sandbox", "doctor")
    assert warning.split("warn: ")[1] in r.stdout, r.stdout
    # Fixed: no more warning.
    os.chmod(settings, 0o600)
    h.signal(signal.SIGHUP)
    wait_for(lambda: len(h.events("config_reloaded")) == 2, 10,
             what="second reload")
    assert h.log().count(warning) == 2
    mid = h.drop("loaded all the same", agent="alpha")
    h.wait_response(mid)


def test_world_writable_directories_warned(homes):
    """The home, queue/, incoming/ and outgoing/ writable by every user:
    each said at start, with what a local user could do."""
    h = homes(start=False)
    what = {"": "replace settings.json",
            "/queue": "replace the queue's directories",
            "/queue/incoming": "submit prompts to the agents",
            "/queue/outgoing": "forge or remove replies"}
    for sub in what:
        d = Path(f"{h.path}{sub}")
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o777)
    h.start()
    for sub, does in what.items():
        w = (f"warn: {h.path}{sub} is world-writable: any local user can "
             f"{does}; chmod o-w it")
        assert h.log().count(w) == 1, (w, h.log())
    mid = h.drop("answered all the same", agent="alpha")
    h.wait_response(mid)
    h.stop()
    for sub in what:
        os.chmod(f"{h.path}{sub}", 0o700)
    h.start()
    h.wait_response(h.drop("and quietly once fixed", agent="alpha"))
    assert h.log().count("is world-writable") == len(what)


def test_missing_settings_runs_on_defaults(homes, tmp_path):
    """No settings.json: TinyClaw's defaults (one "default" agent, claude,
    workspace ~/tinyclaw-workspace) and a warning, not an error. A
    dangling symlink counts as missing; a symlink to a file is refused."""
    h = homes(start=False)
    settings = h.path / "settings.json"
    settings.unlink()
    env = {"HOME": str(tmp_path / "user")}
    h.start(env=env)
    assert f"warn: {settings}: no such file, running on defaults" in h.log()
    (ev,) = h.events("processor_start")
    assert ev["agents"] == ["default"] and ev["teams"] == []
    r = h.wait_response(h.drop("hello defaults"))
    assert r["agent"] == "default"
    assert r["message"] == ("claude reply (model=claude-sonnet-4-5 "
                            "continue=1 skip=1): hello defaults")
    (call,) = h.calls("hello defaults")
    assert call["cwd"] == str(tmp_path / "user" / "tinyclaw-workspace" /
                              "default")
    assert h.stop() == 0

    os.symlink(tmp_path / "nowhere.json", settings)
    h.start(env=env)
    assert h.log().count("no such file, running on defaults") == 2
    assert h.stop() == 0

    real = tmp_path / "real-settings.json"
    real.write_text(json.dumps(h.settings))
    settings.unlink()
    os.symlink(real, settings)
    rc, err = serve_refused(h)
    assert rc == 78, (rc, err)
    assert f"{settings}: cannot open: is a symbolic link" in err
