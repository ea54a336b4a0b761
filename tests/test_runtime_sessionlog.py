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
            "log._file.write(b'0badc0de {\"kind\": \"tri')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == -9
    contents = read_session_log(path)
    assert [r["trial"] for r in contents.of_kind("trial")] == list(range(5))


def test_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HotspotError, match="cannot read session log"):
        read_session_log(tmp_path / "none.log")
