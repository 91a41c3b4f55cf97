"""A huge reply: bounded capture (max_output_bytes), bounded supervisor
memory, TinyClaw's cut at 4000 characters (SPEC §3, §6)."""
import itertools
import os

# The supervisor's peak memory bound. A sanitizer build keeps shadow memory
# and a free quarantine, so tests/run gives it a bound of its own.
RSS_LIMIT_KB = int(os.environ.get("CLAWVISOR_RSS_LIMIT_KB", 64 * 1024))

CUT_NOTE = "\n\n[Response truncated...]"


def pattern(n):
    """The first n characters the fake prints for "big"."""
    return "".join(itertools.islice(itertools.cycle("abcdefghi\n"), n))


def test_30mb_reply_bounded(home):
    base_kb = home.vm_hwm_kb()
    mid = home.drop("big 31457280", agent="alpha")
    r = home.wait_response(mid, timeout=60)
    assert r["message"] == pattern(3900) + CUT_NOTE
    (end,) = home.wait_events("sandbox_invocation_end", mid)
    assert end["outcome"] == "ok"
    assert end["truncated"] is True          # capped at 10 MiB, the rest
    # drained and dropped
    hwm = home.vm_hwm_kb()
    print(f"supervisor VmHWM {base_kb} kB before, {hwm} kB after")
    assert hwm < RSS_LIMIT_KB, (base_kb, hwm)
    # The daemon goes on working.
    m2 = home.drop("after the big one", agent="alpha")
    assert home.wait_response(m2)["message"].endswith("): after the big one")


def test_reply_cut_as_tinyclaw(home):
    # 4000 characters exactly are kept; 4001 are cut to 3900 + the note.
    a = home.drop("big 4000", agent="alpha")
    b = home.drop("big 4001", agent="beta")   # codex: raw text is no reply
    c = home.drop("big 4001", agent="alpha")
    ra, rc = home.wait_response(a), home.wait_response(c)
    # The reply is trimmed: the pattern's 4000th character is a newline.
    assert ra["message"] == pattern(4000).strip()
    assert rc["message"] == pattern(3900) + CUT_NOTE
    rb = home.wait_response(b)
    assert rb["message"] == ("Sorry, I could not generate a response from "
                             "Codex.")
