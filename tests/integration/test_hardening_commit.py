"""
Issue 12, items 3 and 4: every message ends in exactly one outcome even
when its names are long or its commit fails.

- Names: a response name built from a long channel or messageId is
  shortened to a prefix and a hash (under NAME_MAX); a message file name
  over 200 bytes (QUEUE_NAME_MAX) goes to corrupt/ with the reason; the
  names clawvisor derives from a name at the limit (NAME.reply, NAME.dead,
  STEM-N.json) all fit, and a dead letter's STEM-N.json can be requeued.
- A commit that fails (the queue's filesystem full: a small tmpfs that the
  test fills and then frees) is kept and tried again while the daemon runs:
  status shows it, the log says so, and once there is room the message
  completes without its agent running again.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, TIME_SCALE, deep_merge, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "chaos"))
from chaos import fill  # noqa: E402  (the chaos test's own, stdlib only)

NAME_MAX = 255
QUEUE_NAME_MAX = 200


def cli_json(h, *args):
    r = subprocess.run([BIN, "--home", str(h.path), *args, "--json"],
                       capture_output=True, text=True, timeout=60,
                       env=h.env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def status(h):
    return cli_json(h, "status")


# -- names -------------------------------------------------------------------


def test_long_channel_and_message_id_get_a_bounded_response_name(home):
    h = home
    mid = "x" * 300
    ch = "c" * 120
    h.drop("hello", agent="alpha", channel=ch, mid=mid, name="long-id.json")
    p = wait_for(lambda: h.files("outgoing"), 15, what="a response")
    assert len(p) == 1, p
    name = p[0].name
    r = json.loads(p[0].read_text())
    assert r["messageId"] == mid and r["channel"] == ch
    assert len(name) <= NAME_MAX, name
    # A prefix of each, then 16 hex digits of a hash of the whole.
    assert re.fullmatch(r"c{47}-[0-9a-f]{16}_x{143}-[0-9a-f]{16}_\d+\.json",
                        name), name
    assert not h.files("processing")


def test_long_heartbeat_id_gets_a_bounded_response_name(home):
    h = home
    mid = "heartbeat_alpha_" + "9" * 280
    h.drop("hello", agent="alpha", channel="heartbeat", mid=mid,
           name="hb.json")
    p = wait_for(lambda: h.files("outgoing"), 15, what="a response")
    name = p[0].name
    assert len(name) <= NAME_MAX and name.endswith(".json"), name
    assert re.fullmatch(r"heartbeat_alpha_9{127}-[0-9a-f]{16}\.json",
                        name), name
    assert json.loads(p[0].read_text())["messageId"] == mid
    # A second heartbeat of that id replaces it under the same name.
    h.drop("hello again", agent="alpha", channel="heartbeat", mid=mid,
           name="hb2.json")
    wait_for(lambda: "hello again" in p[0].read_text(), 15,
             what="the second heartbeat reply")
    assert [x.name for x in h.files("outgoing")] == [name]


def test_file_name_over_the_limit_goes_to_corrupt(home):
    h = home
    name = "n" * 245 + ".json"          # 250 bytes: NAME.reply would not fit
    h.drop("hello", agent="alpha", name=name, mid="too-long")
    notes = wait_for(lambda: [p for p in h.files("corrupt")
                              if p.name.endswith(".error")], 15,
                     what="a corrupt note")
    assert len(notes) == 1
    note = notes[0].read_text()
    assert f"file: {name}\n" in note
    assert "reason: file name is 250 bytes, over the limit of 200\n" in note
    kept = [p for p in h.files("corrupt") if not p.name.endswith(".error")]
    assert len(kept) == 1 and len(kept[0].name) <= QUEUE_NAME_MAX
    assert json.loads(kept[0].read_text())["messageId"] == "too-long"
    assert not h.files("incoming") and not h.files("processing")
    assert not h.calls()                # the agent never ran
    assert status(h)["counters"]["corrupt"] == 1


def test_name_at_the_limit_response_dead_letter_and_requeue(homes):
    h = homes({"sandbox": {"max_attempts": 1}})
    name = "a" * (QUEUE_NAME_MAX - 5) + ".json"
    mid = h.drop("hello", agent="alpha", name=name)
    h.wait_response(mid)
    # Twice the same name, dead both times: the second dead letter gets a
    # -2 name that still fits QUEUE_NAME_MAX, so that it can be requeued.
    dead = []
    for k in range(2):
        mid = h.drop("fail auth", agent="alpha", name=name,
                     mid=f"dead-{k}")
        dead.append(h.wait_dead(mid)[0]["_path"].name)
    assert dead[0] == name
    assert dead[1] != name and len(dead[1]) <= QUEUE_NAME_MAX, dead
    assert dead[1].endswith("-2.json")
    assert not h.files("processing") and not h.files("corrupt")
    # Requeued, it is read as a message again (not sent to corrupt/).
    cli_json(h, "dead", "requeue", dead[1][:-5])
    try:
        wait_for(lambda: len(h.dead_letters("dead-1")) == 1 and
                 h.dead_letters("dead-1")[0]["_path"].name == dead[1] and
                 len(h.calls("fail auth")) == 3, 30,
                 what="the requeued dead letter to fail again")
    except AssertionError as e:
        state = ([d["_path"].name for d in h.dead_letters("dead-1")],
                 len(h.calls("fail auth")), h.files("incoming"),
                 h.files("processing"), h.log()[-3000:])
        raise AssertionError(f"{e}: {state}") from None
    assert not h.files("corrupt")


# -- a full disk -------------------------------------------------------------


@pytest.fixture
def tmpfs_home(homes, tmp_path):
    """A stopped home whose queue/ is a 4 MiB tmpfs (the fakes' log and the
    daemon's log outside it); unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    h = homes({"sandbox": {"max_attempts": 1},
               "supervisor": {"workers": 2}}, start=False)
    h.fake_log = tmp_path / "fake.log"
    h.q.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700",
                        "tmpfs", str(h.q)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield h
    finally:
        for p in h.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10 * TIME_SCALE)
        subprocess.run(["umount", "-l", str(h.q)], check=False)


def run_on_full_disk(h, *messages):
    """Drop messages (paused), fill the tmpfs, resume: they run while the
    disk is full. Their messageIds and the filler's path."""
    cli_json(h, "pause")
    mids = [h.drop(text, agent="alpha", mid=mid) for text, mid in messages]
    filler = h.q / ".fill"
    fill(filler)
    cli_json(h, "resume")
    return mids, filler


def test_failed_commit_is_retried_until_the_disk_has_room(tmpfs_home):
    h = tmpfs_home
    h.start()
    (ok, bad), filler = run_on_full_disk(
        h, ("hello from a full disk", "full-ok"),
        ("fail auth on a full disk", "full-dead"))
    # Both ran (once each), neither could be committed: both wait, claimed.
    wait_for(lambda: status(h)["queue"]["commitsWaiting"] == 2, 30,
             what="two commits waiting")
    assert len(h.calls("hello from a full disk")) == 1
    assert len(h.calls("fail auth on a full disk")) == 1
    assert {p.name for p in h.files("processing")} >= {
        "discord_full-ok.json"}
    assert not h.files("outgoing") and not h.files("dead-letter")
    log = h.log()
    assert re.search(r"discord_full-ok\.json: commit failed, kept in memory "
                     r"and tried again in \d+s: cannot write processing/"
                     r"discord_full-ok\.json\.reply: No space left on device",
                     log), log[-3000:]
    assert "discord_full-dead.json: commit failed" in log
    out = subprocess.run([BIN, "--home", str(h.path), "status"],
                         capture_output=True, text=True, env=h.env())
    assert "commits waiting to be tried again (disk full?): 2" in out.stdout
    # Several tries fail while the disk stays full.
    time.sleep(4)
    assert not h.files("outgoing")
    os.unlink(filler)
    r = h.wait_response(ok, timeout=60)
    assert r["message"] != ""
    rec, notice = h.wait_dead(bad, timeout=60)
    assert rec["errorClass"] == "terminal"
    wait_for(lambda: status(h)["queue"]["commitsWaiting"] == 0, 30,
             what="no commit waiting")
    assert not h.files("processing")
    # Each agent ran once: the reply was kept, not made again.
    assert len(h.calls("hello from a full disk")) == 1
    assert len(h.calls("fail auth on a full disk")) == 1
    assert len(h.responses(ok)) == 1 and len(h.dead_letters(bad)) == 1
    assert re.search(r"discord_full-ok\.json: committed after \d+ tries",
                     h.log())
    assert h.stop() == 0


def test_commit_waiting_at_stop_is_finished_by_the_next_start(tmpfs_home):
    """A stop while the reply could not even be written: the message goes
    back to incoming/ un-failed (no attempt counted: max_attempts is 1
    here) and runs again at the next start; one outcome."""
    h = tmpfs_home
    h.start()
    (mid,), filler = run_on_full_disk(h, ("hello before a stop", "stop-ok"))
    wait_for(lambda: status(h)["queue"]["commitsWaiting"] == 1, 30,
             what="a commit waiting")
    assert h.stop() == 0
    assert re.search(r"discord_stop-ok\.json: commit not finished at exit "
                     r"\(.*No space left on device\): handed back to "
                     r"incoming/", h.log()), h.log()[-2000:]
    assert [p.name for p in h.files("incoming")] == ["discord_stop-ok.json"]
    os.unlink(filler)
    h.start()
    h.wait_response(mid, timeout=30)
    assert len(h.responses(mid)) == 1 and not h.dead_letters(mid)
    assert len(h.calls("hello before a stop")) == 2
    assert not h.files("processing")


def test_corrupt_file_waits_for_room_for_its_note(tmpfs_home):
    """A bad file met while the disk is full is not moved to corrupt/
    without its note: it stays in incoming/ until the note can be
    written."""
    h = tmpfs_home
    h.start()
    inc = h.q / "incoming"
    (inc / ".bad.tmp").write_bytes(b'{"channel": "discord"}')
    filler = h.q / ".fill"
    fill(filler)
    os.rename(inc / ".bad.tmp", inc / "bad.json")
    wait_for(lambda: "cannot write corrupt/bad.json.error: No space left "
             "on device: bad.json left in place" in h.log(), 15,
             what="the note's failure in the log")
    assert [p.name for p in h.files("incoming")] == ["bad.json"]
    assert not h.files("corrupt")
    os.unlink(filler)
    wait_for(lambda: [p.name for p in h.files("corrupt")] ==
             ["bad.json", "bad.json.error"], 15, what="bad.json in corrupt/")
    assert "reason: missing or non-string field" in \
        (h.q / "corrupt" / "bad.json.error").read_text()
    assert not h.files("incoming")


def test_recovery_on_a_full_disk(tmpfs_home):
    """A crash during a run, and a start on a full disk: recovery cannot
    park the retry in deferred/, so it runs from processing/; its reply
    waits for room, and is delivered once there is some."""
    h = tmpfs_home
    h.write_settings(deep_merge(h.settings, {"sandbox": {"max_attempts": 3}}))
    h.start()
    mid = h.drop("sleep 3", agent="alpha", mid="crash-full")
    wait_for(lambda: h.calls("sleep 3"), 15, what="the agent running")
    h.kill()
    filler = h.q / ".fill"
    fill(filler)
    h.start()
    wait_for(lambda: status(h)["queue"]["commitsWaiting"] == 1, 30,
             what="the rerun's commit waiting")
    log = h.log()
    assert "cannot write deferred/discord_crash-full.json: No space left " \
        "on device: retried from processing/" in log, log[-3000:]
    assert len(h.calls("sleep 3")) == 2
    assert not h.files("outgoing")
    os.unlink(filler)
    r = h.wait_response(mid, timeout=60)
    assert r["message"] != ""
    assert len(h.calls("sleep 3")) == 2
    assert not h.files("processing") and not h.files("deferred")
