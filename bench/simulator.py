"""Benchmark "simulator_cohort": the default 30 + 29 cohort (2 sessions each) to a BIDS-like folder.

Target: <= 180 s on 2 cores (issue 2, section 2). Runs with one worker per CPU (the default).
Besides wall time it records the CPU seconds of this process and its workers and the load
average, because the CI boxes are shared: ``cpu_seconds / workers`` is the wall time an idle
machine with that many cores would need.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path

from bench.harness import benchmark
from train.simulate import load_config, simulate_cohort

TARGET_S = 180.0


@benchmark("simulator_cohort")
def simulator_cohort() -> dict:
    """Time the default cohort simulation, end to end (draws, forward models, EEG, BDF files)."""
    config = load_config()
    load_before = os.getloadavg()[0]

    def cpu_seconds() -> float:
        return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                   for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    with tempfile.TemporaryDirectory() as folder:
        started, cpu_started = time.perf_counter(), cpu_seconds()
        out = simulate_cohort(config, Path(folder) / "cohort")
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        summary = json.loads((out / "summary.json").read_text())
        size_mb = sum(path.stat().st_size for path in out.rglob("*") if path.is_file()) / 1e6
    return {
        "n_subjects": summary["n_subjects"],
        "sessions_per_subject": config["cohort"]["sessions"],
        "channels": len(config["recording"]["channels"]),
        "workers": os.cpu_count(),
        "seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "idle_machine_estimate_seconds": round(cpu / (os.cpu_count() or 1), 1),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "target_seconds": TARGET_S,
        "within_target": elapsed <= TARGET_S,
        "dataset_mb": round(size_mb, 1),
        "summary": summary,
    }
