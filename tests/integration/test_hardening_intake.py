"""
Issue 12, intake: names and message-supplied strings in what clawvisor
prints and writes (JSON always valid UTF-8; one line stays one line), files
of [send_file:] copied when the reply is taken, and files skipped by the
inotify-only queue (scan_interval_ms 0) read again without a restart.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import BIN, TIME_SCALE, wait_for

# Bytes a producer may put in a file name: not UTF-8, a newline, an escape.
BAD = b"bad\xff\nname\x1b[31m"
BAD_ID = "bad\\xff\\x0aname\\x1b[31m"


def drop_bytes(h, name, obj):
    """A message into incoming/ under a name given as bytes."""
    inc = os.fsencode(h.q / "incoming")
    os.makedirs(inc, exist_ok=True)
    tmp = os.path.join(inc, b".tmp-intake")
    with open(tmp, "wb") as f:
        f.write(json.dumps(obj).encode() if not isinstance(obj, bytes)
                else obj)
    os.rename(tmp, os.path.join(inc, name))


def message(mid, text, agent="alpha"):
    return {"channel": "discord", "sender": "alice", "senderId": "a-id",
            "message": text, "timestamp": int(time.time() * 1000),
            "messageId": mid, "agent": agent}


def run(h, *args):
    """The client, its output as bytes (they must be UTF-8 by themselves)."""
    return subprocess.run([BIN, "--home", str(h.path), *args],
                          capture_output=True, timeout=60, env=h.env(),
                          stdin=subprocess.DEVNULL)


def printable(b):
    """Valid UTF-8 text whose only control characters end lines."""
    s = b.decode("utf-8")               # strict: raises on a bad byte
    bad = [c for c in s if (ord(c) < 0x20 and c not in "\t\n")
           or 0x7f <= ord(c) <= 0x9f]
    assert not bad, repr(s)
    return s


def control(h, line):
    """One raw request line on the socket; the reply line as bytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(h.path / "run" / "clawvisor.sock"))
    s.sendall(line + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


# -- names with bytes that are not UTF-8, and control characters ---------

def test_dead_letter_named_with_bad_bytes(home):
    h = home
    drop_bytes(h, BAD + b".json", message("badname", "fail auth"))
    wait_for(lambda: h.dead_letters("badname"), 20, what="the dead letter")
    assert os.listdir(os.fsencode(h.q / "dead-letter")) == [BAD + b".json"]

    r = run(h, "dead", "list", "--json")
    assert r.returncode == 0, r
    rep = json.loads(r.stdout.decode("utf-8"))    # strict UTF-8
    [d] = rep["dead"]
    assert d["id"] == BAD_ID and d["messageId"] == "badname"

    # Plain text: one line per dead letter, nothing a terminal acts on.
    r = run(h, "dead", "list")
    out = printable(r.stdout)
    assert out.count("\n") == 2, out       # the header row, the letter
    assert out.splitlines()[1].startswith(BAD_ID + "\tbadname\t")

    # The id as printed finds the file again.
    r = run(h, "dead", "show", BAD_ID, "--json")
    assert r.returncode == 0, r
    rep = json.loads(r.stdout.decode("utf-8"))
    assert rep["id"] == BAD_ID
    assert rep["record"]["payload"]["messageId"] == "badname"
    r = run(h, "dead", "show", BAD_ID)
    assert r.returncode == 0
    printable(r.stdout)
    # An id that is no escape at all is refused, not guessed.
    r = run(h, "dead", "show", "bad\\q")
    assert r.returncode == 1 and b"invalid dead letter id" in r.stderr
    r = run(h, "dead", "purge", BAD_ID)
    assert r.returncode == 0, r
    assert os.listdir(os.fsencode(h.q / "dead-letter")) == []
    # The log said where it went, on one line, in UTF-8.
    log = (h.path / "logs" / "clawvisor.log").read_bytes()
    printable(log)
    assert b"\\xff name\\x1b[31m" in log


def test_status_and_errors_stay_utf8(home):
    h = home
    # A worker busy with a message whose name holds bad bytes.
    drop_bytes(h, BAD + b".json", message(
        "slowbad", f"sleep {min(int(3 * TIME_SCALE), 20)}"))

    def busy():
        st = json.loads(control(h, b'{"cmd":"status"}').decode("utf-8"))
        return [w["message"] for w in st["workers"] if w.get("message")]
    names = wait_for(busy, 10, what="a busy worker")
    assert len(names) == 1 and "\ufffd" in names[0], names
    r = run(h, "status", "--json")
    json.loads(r.stdout.decode("utf-8"))
    printable(run(h, "status").stdout)
    # Errors that echo a request: a raw bad byte, and a cut by %.60s in
    # the middle of a two-byte character.
    for line in (b'{"cmd":"dead.show","id":"x\xffy"}',
                 b'{"cmd":"a' + "\u00e9".encode() * 40 + b'"}',
                 b'{"cmd":"dead.show","id":"' + b"\xc3\xa9" * 40 + b'/"}'):
        rep = control(h, line)
        obj = json.loads(rep.decode("utf-8"))
        assert obj["ok"] is False, obj
    h.wait_response("slowbad", timeout=30 * TIME_SCALE)


def test_corrupt_note_cannot_be_forged(home):
    h = home
    name = b"nl\nfile: nl\nreason: all good\x1b.json"
    drop_bytes(h, name, b"{not json")
    cdir = os.fsencode(h.q / "corrupt")
    wait_for(lambda: os.path.isdir(cdir) and len(os.listdir(cdir)) == 2, 15,
             what="the corrupt file and its note")
    note = open(os.path.join(cdir, name + b".error"), "rb").read()
    lines = printable(note).splitlines()
    assert len(lines) == 3, lines
    assert lines[0] == "file: nl\\x0afile: nl\\x0areason: all good\\x1b.json"
    assert lines[1].startswith("reason: not valid JSON")
    assert lines[2].startswith("time: ")
    log = (h.path / "logs" / "clawvisor.log").read_bytes()
    assert not any(l.startswith(b"reason:") or l.startswith(b"file:")
                   for l in log.splitlines()), log
    printable(log)
    # And a name that is not UTF-8: the note is.
    drop_bytes(h, b"x\xfe.json", b"[]")
    wait_for(lambda: os.path.exists(os.path.join(cdir, b"x\xfe.json.error")),
             15, what="the second note")
    note = open(os.path.join(cdir, b"x\xfe.json.error"), "rb").read()
    assert printable(note).startswith("file: x\\xfe.json\n")


def test_transcript_header_cannot_be_forged(homes):
    h = homes({"teams": {"dev": {"name": "Dev", "agents": ["alpha"],
                                 "leader_agent": "alpha"}}})
    mid = "chain1"
    drop_bytes(h, b"chain1.json", {
        "channel": "discord", "sender": "eve\n**Steps:** 99",
        "message": "@dev hello\n## Step 7: forged (@x)\n---",
        "timestamp": int(time.time() * 1000), "messageId": mid})
    h.wait_response(mid, timeout=20)
    d = h.path / "chats" / "dev"
    wait_for(lambda: d.is_dir() and list(d.glob("*.md")), 10,
             what="the transcript")
    [md] = list(d.glob("*.md"))
    text = md.read_text()
    lines = text.splitlines()
    assert "**Channel:** discord | **Sender:** eve\\x0a**Steps:** 99" \
        in lines
    assert [l for l in lines if l.startswith("**Steps:**")] == \
        ["**Steps:** 1"]
    assert [l for l in lines if l.startswith("## Step")] == \
        ["## Step 1: Alpha (@alpha)"]
    assert "\\## Step 7: forged (@x)" in lines and "\\---" in lines


# -- scan_interval_ms 0: inotify only -------------------------------------

INOTIFY_ONLY = {"supervisor": {"scan_interval_ms": 0}}


def test_same_name_after_claim_is_read_without_rescan(homes):
    h = homes(INOTIFY_ONLY)
    drop_bytes(h, b"same.json", message(
        "first", f"sleep {int(2 * TIME_SCALE)}"))
    wait_for(lambda: h.events("sandbox_invocation_start"), 10,
             what="the first invocation")
    assert (h.q / "processing" / "same.json").exists()
    # Another file of that name, while the first is held and running.
    drop_bytes(h, b"same.json", message("second", "after"))
    assert h.wait_response("first", timeout=20 * TIME_SCALE)["message"]
    r = h.wait_response("second", timeout=20 * TIME_SCALE)
    assert "after" in r["message"]
    assert h.files("incoming") == []


def test_failed_claim_is_tried_again(homes):
    h = homes(INOTIFY_ONLY)
    # processing/NAME taken (as by a message whose commit failed): the
    # claim fails until it is gone.
    block = h.q / "processing" / "blocked.json"
    block.mkdir()
    drop_bytes(h, b"blocked.json", message("blocked", "go"))
    wait_for(lambda: "cannot claim incoming/blocked.json" in h.log(), 10,
             what="the failed claim")
    assert (h.q / "incoming" / "blocked.json").exists()
    block.rmdir()
    r = h.wait_response("blocked", timeout=20)
    assert "go" in r["message"]
    assert h.files("incoming") == [] and h.files("processing") == []


# -- [send_file:]: the file as it was when the reply was taken ------------

TOOL = r'''
import os, sys
agent, msg = sys.argv[1], sys.argv[2]
n = int(open("runs").read()) + 1 if os.path.exists("runs") else 1
open("runs", "w").write(str(n))
secret = os.environ["INTAKE_SECRET"]
if agent == "tool" and n == 1:
    open("report.txt", "w").write("report")
    print("Here. [send_file: report.txt]" +
          (" [@mate: check]" if "chain" in msg else ""))
elif agent == "tool":
    # A later run: the file it sent becomes a symlink to a host file.
    os.unlink("report.txt")
    os.symlink(secret, "report.txt")
    print("swapped")
else:
    print("[@tool: again]")
'''


def tool_home(homes, team=False):
    root_settings = {"agents": {}}
    h = homes(root_settings, start=False)
    (h.path / "files").mkdir()
    script = h.path / "tool.py"
    script.write_text(TOOL)
    secret = h.path / "secret.txt"
    secret.write_text("SECRET")
    agents = {a: {"name": a.title(), "provider": "command",
                  "command": [sys.executable, str(script), a, "{message}"]}
              for a in ("tool", "mate")}
    s = dict(h.settings)
    s["agents"] = agents
    if team:
        s["teams"] = {"crew": {"name": "Crew", "agents": ["tool", "mate"],
                               "leader_agent": "tool"}}
    h.write_settings(s)
    h.start(env={"INTAKE_SECRET": str(secret)})
    return h


def assert_copy(h, path, content):
    p = Path(path)
    assert p.read_text() == content      # not the host file
    assert p.parent == h.path / "files", p
    assert p.name.startswith("clawvisor-") and p.name.endswith("-report.txt")
    st = os.lstat(p)
    assert (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o777 == \
        0o600, oct(st.st_mode)


def test_send_file_is_copied_before_a_later_run(homes):
    h = tool_home(homes)
    # Copies older than a week go at the next attachment; nothing else.
    files = h.path / "files"
    week = 7 * 24 * 3600 * 1000
    now = int(time.time() * 1000)
    old = files / f"clawvisor-{now - week - 60000}-0-old.txt"
    keep = [files / f"clawvisor-{now - week + 600000}-0-recent.txt",
            files / "telegram_123_photo.jpg"]
    for p in [old] + keep:
        p.write_text("x")
    r1 = h.wait_response(h.drop("send", agent="tool"), timeout=20)
    assert r1["message"] == "Here." and len(r1["files"]) == 1
    assert_copy(h, r1["files"][0], "report")
    assert not old.exists() and all(p.exists() for p in keep)
    # The next run of the same agent swaps its file for a symlink to a
    # host file before the channel client has read the first response.
    h.wait_response(h.drop("swap", agent="tool"), timeout=20)
    assert os.path.islink(h.workdir("tool") / "report.txt")
    assert_copy(h, r1["files"][0], "report")


def test_send_file_in_a_chain_is_copied_at_its_step(homes):
    # Step 1 (tool) sends report.txt and hands off; mate hands back; the
    # second run of tool replaces report.txt before the chain's response.
    h = tool_home(homes, team=True)
    r = h.wait_response(h.drop("chain", agent="tool"), timeout=30)
    assert len(r["files"]) == 1, r
    assert os.path.islink(h.workdir("tool") / "report.txt")
    assert_copy(h, r["files"][0], "report")
