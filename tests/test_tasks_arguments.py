"""Invoke tasks with typed options validate them like the commands they wrap: one line, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, words", [
    (["train", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["select-epochs", "--folds", "abc"], "argument --folds: invalid int value: 'abc'"),
    (["convert", "--budget-mm", "abc"], "argument --budget-mm: invalid float value: 'abc'"),
    (["emulate", "--speed", "abc"], "argument --speed: invalid float value: 'abc'"),
    (["monitor", "--port", "/dev/null", "--baud", "abc"], "argument --baud: invalid int value: 'abc'"),
    (["convert", "--io", "int4"], "argument --io: invalid choice: 'int4'"),
    (["convert", "--bundle-version", "1.5"], "argument --bundle-version: invalid int value: '1.5'"),
    (["bench", "--only", "no-such-benchmark"], "no-such-benchmark"),
    (["validate-real", "--jobs", "abc"], "argument --jobs: invalid int value: 'abc'"),
])
def test_a_bad_option_is_one_line_and_exit_2(argv: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "invoke", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "usage:" not in done.stderr
