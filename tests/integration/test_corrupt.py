"""What is not a message goes to queue/corrupt/ with a note of why, its
bytes kept, and the daemon goes on (SPEC §2)."""
import hashlib
import json
import os
import stat
import time

from conftest import wait_for


def note(h, name):
    p = h.q / "corrupt" / f"{name}.error"
    assert p.exists(), f"no note for {name}: {os.listdir(h.q / 'corrupt')}"
    return p.read_text()


def wait_corrupt(h, names, timeout=10):
    def done():
        present = set(os.listdir(h.q / "corrupt"))
        return all(n in present and f"{n}.error" in present for n in names)
    t0 = time.monotonic()
    while not done():
        h.alive_check()
        assert time.monotonic() - t0 < timeout, (
            f"not all of {names} in corrupt/: "
            f"{sorted(os.listdir(h.q / 'corrupt'))}")
        time.sleep(0.05)


def test_corrupt_inputs(home):
    h = home
    inc = h.q / "incoming"
    good = {"channel": "discord", "sender": "bob", "message": "hi",
            "timestamp": 1, "messageId": "x"}
    bad_json = b'{"channel": "discord", "message": '
    missing = dict(good)
    del missing["sender"]
    missing_b = json.dumps(missing).encode()
    wrong_type = json.dumps(dict(good, messageId=42)).encode()
    not_object = b'["a", "list"]'
    trailing = json.dumps(good).encode() + b' {}'
    single = json.dumps(good).encode().replace(b'"hi"', b"'hi'")
    apostrophe = json.dumps(dict(good, message="don't")).encode()
    big = b'{"pad": "' + b"a" * (16 * 1024 * 1024) + b'"}'
    files = {
        "bad-json.json": bad_json,
        "missing-field.json": missing_b,
        "wrong-type.json": wrong_type,
        "not-object.json": not_object,
        "trailing.json": trailing,
        "single-quoted.json": single,
        "null.json": b"null\n",
        "huge.json": big,
    }
    sums = {}
    for name, data in files.items():
        h.drop_raw(name, data)
        sums[name] = hashlib.sha256(data).hexdigest()
    # A zero-byte file that is old: not a message still being written.
    empty = inc / ".tmp-empty"
    empty.write_bytes(b"")
    old = time.time() - 3600
    os.utime(empty, (old, old))
    os.rename(empty, inc / "empty-old.json")
    # Things that are not regular files.
    os.symlink("/etc/hostname", inc / "link.json")
    os.mkfifo(inc / "fifo.json")
    os.mkdir(inc / "dir.json")
    (inc / "dir.json" / "inside").write_text("kept")
    # A good message among them still gets its answer, and so does one
    # with an apostrophe in a string.
    mid = h.drop("still working", agent="alpha")
    h.drop_raw("apostrophe.json", apostrophe)

    names = list(files) + ["empty-old.json", "link.json", "fifo.json",
                           "dir.json"]
    wait_corrupt(h, names)
    assert h.wait_response(mid)["message"].endswith("): still working")
    # (Broken files above that still name a channel, a sender and
    # messageId "x" get a notice too: QUEUE.md.)
    wait_for(lambda: any(r["message"].endswith("): don't")
                         for r in h.responses("x")), 15,
             what="the apostrophe's answer")

    c = h.q / "corrupt"
    for name in files:
        got = hashlib.sha256((c / name).read_bytes()).hexdigest()
        assert got == sums[name], f"{name}: bytes changed"
    assert (c / "empty-old.json").read_bytes() == b""
    assert os.path.islink(c / "link.json")
    assert os.readlink(c / "link.json") == "/etc/hostname"
    assert os.path.exists("/etc/hostname"), "the link's target was moved"
    assert stat.S_ISFIFO(os.lstat(c / "fifo.json").st_mode)
    assert (c / "dir.json" / "inside").read_text() == "kept"

    # The notes say why.
    assert "not valid JSON" in note(h, "bad-json.json")
    assert '"sender"' in note(h, "missing-field.json")
    assert '"messageId"' in note(h, "wrong-type.json")
    assert "not a JSON object" in note(h, "not-object.json")
    assert "not valid JSON" in note(h, "trailing.json")
    # Where, as for any syntax error: line 1, the column of the quote.
    col = single.decode().index("'hi'") + 1
    assert f"not valid JSON at line 1, column {col}: a single-quoted " \
        "string, near" in note(h, "single-quoted.json")
    assert "reason: not a JSON object" in note(h, "null.json")
    assert "over the limit" in note(h, "huge.json")
    assert "empty" in note(h, "empty-old.json")
    assert "symbolic link" in note(h, "link.json")
    assert "not a regular file" in note(h, "fifo.json")
    assert "not a regular file" in note(h, "dir.json")
    for name in names:
        assert f"file: {name}" in note(h, name)

    assert os.listdir(inc) == []
    assert h.files("processing") == [] and h.files("dead-letter") == []
    # The daemon is still alive and answering.
    mid = h.drop("after the corrupt ones", agent="beta")
    h.wait_response(mid)


def test_young_empty_file_waits(home):
    # A zero-byte file just created may still be written to (TinyClaw's
    # clients write in place): it is left alone for a while, then moved.
    h = home
    p = h.q / "incoming" / "young.json"
    p.write_bytes(b"")
    time.sleep(1.0)
    assert p.exists(), "a fresh empty file was taken at once"
    assert not (h.q / "corrupt" / "young.json").exists()
    wait_corrupt(h, ["young.json"], timeout=6)
    assert "empty" in note(h, "young.json")


def test_written_in_place_then_completed(home):
    # A half-written file (not via rename) that is completed in time is
    # a message, not a corrupt file.
    h = home
    p = h.q / "incoming" / "slow_writer.json"
    msg = json.dumps({"channel": "discord", "sender": "carol",
                      "message": "written slowly", "timestamp": 1,
                      "messageId": "slowwriter1", "agent": "alpha"})
    with open(p, "w") as f:
        f.write(msg[:20])
        f.flush()
        time.sleep(0.6)
        f.write(msg[20:])
    r = h.wait_response("slowwriter1")
    assert r["message"].endswith("): written slowly")
    assert not (h.q / "corrupt" / "slow_writer.json").exists()


def test_same_name_twice_in_corrupt(home):
    h = home
    h.drop_raw("dup.json", b"first {")
    wait_corrupt(h, ["dup.json"])
    h.drop_raw("dup.json", b"second {")
    wait_corrupt(h, ["dup.json.1"])
    c = h.q / "corrupt"
    assert (c / "dup.json").read_bytes() == b"first {"
    assert (c / "dup.json.1").read_bytes() == b"second {"
