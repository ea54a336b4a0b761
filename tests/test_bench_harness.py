"""bench.harness: named benchmarks run and write JSON; unknown names are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness
from edge.errors import HotspotError

REPO = Path(__file__).resolve().parents[1]


def test_a_registered_benchmark_writes_its_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "discover", lambda: {"tiny": lambda: {"value": 3}})
    results = harness.run_benchmarks(["tiny"], tmp_path)
    written = json.loads((tmp_path / "tiny.json").read_text())
    assert written["results"] == {"value": 3} == results["tiny"]["results"]
    assert written["benchmark"] == "tiny" and written["machine"]["cpu_count"] >= 1


def test_unknown_benchmark_is_refused_with_the_known_names(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "discover", lambda: {"tiny": lambda: {}})
    with pytest.raises(HotspotError, match="unknown benchmark.*nope.*known: tiny"):
        harness.run_benchmarks(["nope"], tmp_path)
    assert not list(tmp_path.iterdir())


def test_module_entry_point_lists_every_area_benchmark() -> None:
    listed = subprocess.run([sys.executable, "-m", "bench.harness", "--list"], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout.split()
    for name in ("simulator_cohort", "signal_hop", "convert", "runtime_hop", "acquisition_recovery",
                 "train_grouped_skill"):
        assert name in listed
