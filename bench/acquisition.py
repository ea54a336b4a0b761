"""Acquisition benchmarks: CPU share while streaming in real time, and recovery time after faults."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import numpy as np

from bench.harness import benchmark
from edge.acquisition import Acquisition
from hardware.emulator import CytonEmulator, synthetic_source

STREAM_S = 20.0
RECOVERY_REPEATS = 3
FAULT_S = 4.0


@benchmark("acquisition_cpu")
def acquisition_cpu() -> dict:
    """CPU share of one core, and memory growth, of reading a Cyton in real time through BrainFlow.

    The emulator runs in its own process so that only the acquisition (BrainFlow's reader thread and
    our worker thread) is measured. The benchmark harness's own imports are not counted: memory is
    the growth of the peak RSS from before the acquisition started.
    """
    emulator = subprocess.Popen([sys.executable, "-m", "hardware.emulator", "--board", "cyton",
                                 "--seconds", str(STREAM_S + 10)], stdout=subprocess.PIPE, text=True)
    try:
        port = emulator.stdout.readline().strip()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        acquisition = Acquisition("cyton", serial_port=port)
        acquisition.start()
        samples = lost = 0
        cpu_start, wall_start = time.process_time(), time.monotonic()
        while time.monotonic() - wall_start < STREAM_S:
            chunk = acquisition.read(timeout_s=0.05)
            samples += chunk.sample_index.size
            lost += chunk.lost
        cpu, wall = time.process_time() - cpu_start, time.monotonic() - wall_start
        acquisition.stop()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return {
        "board": "cyton", "channels": 8, "sampling_rate_hz": 250, "seconds": round(wall, 2),
        "samples": samples, "lost": lost,
        "cpu_share_of_one_core_pct": round(100.0 * cpu / wall, 2),
        "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024.0, 1),
    }


def _recovery_s(fault: str) -> float:
    """Seconds from the end of a fault (longer than the watchdog) until a re-prepared session delivers."""
    with CytonEmulator(synthetic_source(8, 250.0, seconds=120.0), speed=1.0) as emulator:
        with Acquisition("cyton", serial_port=emulator.port) as acquisition:
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                acquisition.read(timeout_s=0.05)
            emulator.inject(fault)
            if fault != "reset":
                time.sleep(FAULT_S)
                emulator.clear_faults()
            cleared = time.monotonic()
            reconnected = False
            while time.monotonic() - cleared < 15.0:
                chunk = acquisition.read(timeout_s=0.02)
                reconnected = reconnected or chunk.reconnected
                if reconnected and np.isfinite(chunk.data_uv).any():
                    return time.monotonic() - cleared
    return float("inf")


@benchmark("acquisition_recovery")
def acquisition_recovery() -> dict:
    """Time from a fault's end to the first sample again (default watchdog 2 s, backoff 0.25-1 s)."""
    result = {"watchdog_s": 2.0, "fault_s": FAULT_S, "repeats": RECOVERY_REPEATS}
    for fault in ("stall", "unplug", "reset"):
        times = [_recovery_s(fault) for _ in range(RECOVERY_REPEATS)]
        result[fault] = {"median_s": round(float(np.median(times)), 2), "max_s": round(max(times), 2)}
    return result


SOAK_BOARD_S = 1800.0
SOAK_SPEED = 10.0
RAMP_PERIOD = 2**17


@benchmark("acquisition_soak")
def acquisition_soak() -> dict:
    """Half an hour of board time (10x real time) with a random fault every ~30 board seconds.

    The source carries its own sample index as a ramp (modulo 2**17), so every received sample shows
    whether it landed at the right index after drops, corruption, stalls, unplugs and resets.
    """
    n = int(SOAK_BOARD_S * 250) + 10_000
    source = synthetic_source(8, 250.0, seconds=n / 250.0)
    source[7] = np.arange(n) % RAMP_PERIOD  # within the ADC range of +-187 500 uV
    rng = np.random.default_rng(0)
    faults = [("drop", {"rate": 0.1}), ("corrupt", {"rate": 0.05}), ("stall", {}), ("unplug", {}), ("reset", {})]
    injected: dict[str, int] = {}
    received = lost = misplaced = 0
    wall_s = SOAK_BOARD_S / SOAK_SPEED
    with CytonEmulator(source, speed=SOAK_SPEED, loop=False, seed=1) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=SOAK_SPEED) as acquisition:
            start = time.monotonic()
            next_fault = start + 3.0
            while time.monotonic() - start < wall_s:
                if time.monotonic() >= next_fault:
                    name, params = faults[rng.integers(len(faults))]
                    emulator.inject(name, **params) if name == "reset" else emulator.inject(name, duration=2.0,
                                                                                            **params)
                    injected[name] = injected.get(name, 0) + 1
                    next_fault = time.monotonic() + 3.0 + float(rng.uniform(0.0, 3.0))
                chunk = acquisition.read(timeout_s=0.05)
                good = np.isfinite(chunk.data_uv[7])
                received += int(good.sum())
                lost += chunk.lost
                offsets = (np.rint(chunk.data_uv[7, good]).astype(np.int64) - chunk.sample_index[good]
                           + RAMP_PERIOD // 2) % RAMP_PERIOD - RAMP_PERIOD // 2
                misplaced += int(np.count_nonzero(np.abs(offsets) > 0.05 * 250 * SOAK_SPEED))
            stats = acquisition.stats
    return {"board_seconds": SOAK_BOARD_S, "speed": SOAK_SPEED, "faults_injected": injected,
            "received": received, "lost": lost, "reconnects": stats.reconnects,
            "ambiguous_gaps": stats.ambiguous_gaps, "overflowed": stats.overflowed,
            "misplaced_samples": misplaced,
            "note": "misplaced = received samples more than 50 ms (host time) from their true index"}
