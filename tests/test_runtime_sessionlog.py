"""Session log: durable appends, truncated tails and corrupted lines tolerated on reload."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import HotspotError
from edge.sessionlog import SessionLog, read_session_log


def test_records_round_trip_with_nan_as_null(tmp_path: Path) -> None:
    log = SessionLog.new(tmp_path)
    log.append("start", device_id="pt-1", n_trials=3)
    log.append("trial", trial=0, good=True, position_mm=np.array([-40.0, 10.0, math.nan]))
    log.close()
    contents = read_session_log(log.path)
    assert [r["kind"] for r in contents.records] == ["start", "trial"]
    assert contents.records[1]["position_mm"] == [-40.0, 10.0, None]
    assert [r["seq"] for r in contents.records] == [0, 1]
    assert contents.corrupt == 0 and not contents.truncated_tail


def test_truncated_tail_and_corrupt_line_are_tolerated(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "s.log")
    for trial in range(4):
        log.append("trial", trial=trial)
    log.close()
    raw = bytearray((tmp_path / "s.log").read_bytes())
    lines = raw.split(b"\n")
    lines[1] = lines[1].replace(b'"trial":1', b'"trial":7')
    damaged = b"\n".join(lines[:-2]) + b"\n" + lines[-2][: len(lines[-2]) // 2]
    (tmp_path / "s.log").write_bytes(damaged)
    contents = read_session_log(tmp_path / "s.log")
    assert [r["trial"] for r in contents.of_kind("trial")] == [0, 2]
    assert contents.corrupt == 1 and contents.truncated_tail


def test_killed_writer_loses_nothing_already_appended(tmp_path: Path) -> None:
    path = tmp_path / "k.log"
    code = (f"from edge.sessionlog import SessionLog\nimport os, signal\nlog = SessionLog({str(path)!r})\n"
            "for t in range(5):\n    log.append('trial', trial=t)\n"
            "os.write(log._fd, b'0badc0de {\"kind\": \"tri')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == -9
    contents = read_session_log(path)
    assert [r["trial"] for r in contents.of_kind("trial")] == list(range(5))


def test_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HotspotError, match="cannot read session log"):
        read_session_log(tmp_path / "none.log")


def test_a_file_size_limit_cuts_a_record_and_costs_only_that_record(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG after a partial write): a real cut line
    path = tmp_path / "f.log"
    code = f"""
import json, resource, signal
from edge.sessionlog import SessionLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
log = SessionLog({str(path)!r})
for trial in range(3):
    log.append("trial", trial=trial, note="x" * 40)
resource.setrlimit(resource.RLIMIT_FSIZE, (log.path.stat().st_size + 60, hard))
for trial in range(3, 6):
    log.append("trial", trial=trial, note="x" * 40)  # the first is cut, the others refused
failing = (log.error.errno, log.failures, [r["trial"] for r in log.unwritten])
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.append("result", outcome="hotspot")  # storage is back: the unwritten records follow
print(json.dumps([failing, log.error, len(log.unwritten)]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (errno_, failures, unwritten), error, left = __import__("json").loads(result.stdout)
    assert errno_ == 27 and failures == 3 and unwritten == [3, 4, 5]  # EFBIG
    assert error is None and left == 0
    contents = read_session_log(path)
    # every record is there once: 3, 4, 5 were written again after the cut line was ended
    assert [r.get("trial", r["kind"]) for r in contents.records] == [0, 1, 2, 3, 4, 5, "result"]
    assert contents.corrupt == 1 and not contents.truncated_tail


def test_an_unwritable_folder_keeps_the_records_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the sessions folder should be")
    log = SessionLog.new(blocker)
    log.append("start", device_id="pt-1")
    log.append("result", outcome="redo")
    log.close()
    assert isinstance(log.error, OSError) and log.failures == 2
    assert [r["kind"] for r in log.unwritten] == ["start", "result"] and log.records == log.unwritten


def test_a_complete_record_after_a_cut_one_on_the_same_line_is_recovered(tmp_path: Path) -> None:
    # what a writer that did not end the cut line left behind: two records merged into one line
    log = SessionLog(tmp_path / "m.log")
    for trial in range(3):
        log.append("trial", trial=trial)
    log.close()
    lines = (tmp_path / "m.log").read_bytes().split(b"\n")
    merged = lines[0] + b"\n" + lines[1][:30] + lines[2] + b"\n"
    (tmp_path / "m.log").write_bytes(merged)
    contents = read_session_log(tmp_path / "m.log")
    assert [r["trial"] for r in contents.records] == [0, 2] and contents.corrupt == 1
