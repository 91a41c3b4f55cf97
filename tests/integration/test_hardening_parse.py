"""Issue 12, parsing and limits: a reply of any bytes up to max_output_bytes
crosses the worker's socketpair whole and the agent runs once; out-of-range
numbers, NUL characters and bare JSON values in a message are refused or
clamped with a reason, never cut or retried for ever."""
import json
import os

import pytest

from conftest import NOTICE_TEXT, wait_for

# config.h's CONFIG_MAX_OUTPUT: max_output_bytes at its maximum.
MAX_OUTPUT = 64 * 1024 * 1024
CUT_NOTE = "\n\n[Response truncated...]"
# The supervisor's peak memory over its size before a big reply, as a
# multiple of the reply's size as the worker sends it (UTF-8: an invalid
# byte is three): what it holds of it at once is the frame (base64, 4/3 of
# it), json-c's two copies of that while it parses, then the decoded reply
# and its UTF-8-clean copy. A sanitizer build keeps freed memory in
# quarantine (up to 256 MiB): room for that too.
SANITIZED = int(os.environ.get("CLAWVISOR_RSS_LIMIT_KB", 0)) > 64 * 1024
RSS_FACTOR = 5
RSS_EXTRA_KB = 256 * 1024 if SANITIZED else 0


def printer_agent(home, byte, count):
    """A command agent that prints count copies of byte and counts its
    runs, one line each, in runs.log of its home."""
    runs = home.path / "runs.log"
    script = (f"echo run >> '{runs}'; head -c {count} /dev/zero | "
              f"tr '\\000' '\\{byte:03o}'")
    return {"name": "Printer", "provider": "command",
            "command": ["sh", "-c", script]}, runs


def runs_of(path):
    try:
        return path.read_text().count("run\n")
    except FileNotFoundError:
        return 0


# (byte, what the supervisor makes of it in the response: an invalid UTF-8
# byte is U+FFFD, three bytes for one)
WORST_BYTES = [
    pytest.param(0x01, "\x01", id="control"),    # \u0001: six bytes in JSON
    pytest.param(0x1f, "\x1f", id="control-1f"),
    pytest.param(0x22, '"', id="quote"),         # \": two
    pytest.param(0x5c, "\\", id="backslash"),    # \\: two
    pytest.param(0xff, "\ufffd", id="invalid-utf8"),
]


@pytest.mark.parametrize("byte,char", WORST_BYTES)
def test_worst_case_reply_crosses_whole_and_runs_once(homes, byte, char):
    # 17 MB of control characters are 102 MB as a JSON string: past the
    # old 80 MiB frame cap, which killed the worker, retried a run that
    # had succeeded and made a dead letter of it after three.
    size = 17 * 1000 * 1000
    h = homes(start=False)
    agent, runs = printer_agent(h, byte, size)
    h.write_settings({**h.settings,
                      "agents": {**h.settings["agents"], "printer": agent},
                      "sandbox": {**h.settings["sandbox"],
                                  "max_output_bytes": MAX_OUTPUT - 1}})
    h.start()
    base_kb = h.vm_hwm_kb()
    mid = h.drop("print", agent="printer")
    r = h.wait_response(mid, timeout=120)
    assert r["message"] == char * 3900 + CUT_NOTE
    (end,) = h.wait_events("sandbox_invocation_end", mid)
    assert end["outcome"] == "ok"
    assert end["truncated"] is False         # all of it came through
    assert runs_of(runs) == 1
    assert not h.events("sandbox_invocation_error")
    assert "protocol error" not in h.log()
    assert "worker died" not in h.log()
    hwm = h.vm_hwm_kb()
    print(f"supervisor VmHWM {base_kb} kB before, {hwm} kB after")
    carried = len(char.encode()) * size
    assert hwm - base_kb < RSS_FACTOR * carried // 1024 + RSS_EXTRA_KB, \
        (base_kb, hwm)
    # The same worker goes on working.
    m2 = h.drop("after the big one", agent="alpha")
    assert h.wait_response(m2)["message"].endswith("): after the big one")
