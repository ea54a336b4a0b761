"""Acquisition benchmarks: CPU share while streaming in real time, and recovery time after faults."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import numpy as np

from bench.harness import benchmark
from edge.acquisition import Acquisition
from hardware.emulator.cyton import CytonEmulator
from hardware.emulator.sources import synthetic_source

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
SOAK_FAULTS = (("drop", {"rate": 0.1}), ("corrupt", {"rate": 0.05}), ("stall", {}), ("unplug", {}), ("reset", {}),
               ("duplicate", {"count": 300}), ("restart", {}), ("garbage", {"rate": 1.0}))
ONE_SHOT = ("reset", "restart")


class IndexTracker:
    """Where each received sample lands relative to its true index (the source is a ramp of its own index).

    ``offset = index - true index`` of the latest received sample; a fault's phantom loss is how far it moved
    that offset (positive: the index ran ahead, counting samples that were never lost).
    """

    def __init__(self, ramp_row: int, tolerance: float) -> None:
        self.ramp_row, self.tolerance = ramp_row, tolerance
        self.received = self.lost = self.misplaced = 0
        self.max_error = 0
        self.offset = 0

    def add(self, chunk) -> None:
        good = np.isfinite(chunk.data_uv[self.ramp_row])
        self.received += int(good.sum())
        self.lost += chunk.lost
        if not good.any():
            return
        offsets = (chunk.sample_index[good] - np.rint(chunk.data_uv[self.ramp_row, good]).astype(np.int64)
                   + RAMP_PERIOD // 2) % RAMP_PERIOD - RAMP_PERIOD // 2
        self.misplaced += int(np.count_nonzero(np.abs(offsets) > self.tolerance))
        self.max_error = max(self.max_error, int(np.abs(offsets).max()))
        self.offset = int(offsets[-1])


def _ramp_source(seconds: float) -> np.ndarray:
    n = int(seconds * 250) + 10_000
    source = synthetic_source(8, 250.0, seconds=n / 250.0)
    source[7] = np.arange(n) % RAMP_PERIOD  # within the ADC range of +-187 500 uV
    return source


@benchmark("acquisition_soak")
def acquisition_soak() -> dict:
    """Half an hour of board time (10x real time) with a random fault every ~30 board seconds.

    The source carries its own sample index as a ramp (modulo 2**17), so every received sample shows
    whether it landed at the right index after drops, corruption, stalls, unplugs, resets, duplicated
    packets, counter restarts and line-noise floods. Per fault: the phantom loss it caused (how far it
    moved the index from the truth; the outages are sized from the host clock, so they may move it a
    little either way).
    """
    source = _ramp_source(SOAK_BOARD_S)
    rng = np.random.default_rng(0)
    tracker = IndexTracker(7, 0.05 * 250 * SOAK_SPEED)
    phantom: dict[str, list[int]] = {name: [] for name, _ in SOAK_FAULTS}
    wall_s = SOAK_BOARD_S / SOAK_SPEED
    with CytonEmulator(source, speed=SOAK_SPEED, loop=False, seed=1) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=SOAK_SPEED) as acquisition:
            start = time.monotonic()
            next_fault = start + 3.0
            current: tuple[str, int] | None = None
            while time.monotonic() - start < wall_s:
                if time.monotonic() >= next_fault:
                    if current is not None:
                        phantom[current[0]].append(tracker.offset - current[1])
                    name, params = SOAK_FAULTS[rng.integers(len(SOAK_FAULTS))]
                    current = (name, tracker.offset)
                    emulator.inject(name, **params) if name in ONE_SHOT else emulator.inject(name, duration=2.0,
                                                                                             **params)
                    next_fault = time.monotonic() + 3.0 + float(rng.uniform(0.0, 3.0))
                tracker.add(acquisition.read(timeout_s=0.05))
            if current is not None:
                phantom[current[0]].append(tracker.offset - current[1])
            stats = acquisition.stats
        counts = {"duplicated": emulator.stats.packets_duplicated, "fake_packets": emulator.stats.fake_packets,
                  "counter_restarts": len(emulator.stats.counter_restarts)}
    return {"board_seconds": SOAK_BOARD_S, "speed": SOAK_SPEED,
            "faults_injected": {name: len(values) for name, values in phantom.items()},
            "emulator": counts, "received": tracker.received, "lost": tracker.lost, "reconnects": stats.reconnects,
            "duplicates_dropped": stats.duplicates, "packets_rejected": stats.rejected,
            "realigned_samples": stats.realigned, "ambiguous_gaps": stats.ambiguous_gaps,
            "overflowed": stats.overflowed, "misplaced_samples": tracker.misplaced,
            "max_index_error_samples": tracker.max_error, "final_index_error_samples": tracker.offset,
            "phantom_loss_samples": {name: {"total": int(sum(values)), "max_abs": int(max(map(abs, values), default=0))}
                                     for name, values in phantom.items()},
            "note": "index error = index - true index of a received sample; misplaced = more than 50 ms (host time) "
                    "off; phantom loss = how far one fault moved the index error (samples)"}


TIMEBASE_EVENTS = 40
TIMEBASE_GAP_S = (1.5, 2.5)


@benchmark("acquisition_timebase")
def acquisition_timebase() -> dict:
    """Duplicated packets and counter restarts at real time (1x), one every 1.5-2.5 s: the phantom loss of each.

    At 1x the host clock resolves a sample (4 ms) well, so every counter restart is re-aligned; the
    soak runs at 10x, where a restart that claims fewer than 3 samples stays within the clock's tolerance.
    """
    source = _ramp_source(TIMEBASE_EVENTS * TIMEBASE_GAP_S[1] + 30.0)
    rng = np.random.default_rng(3)  # random spacing: the restarts hit the counter anywhere in its period
    tracker = IndexTracker(7, 0.05 * 250)
    phantom: dict[str, list[int]] = {"duplicate": [], "restart": []}
    with CytonEmulator(source, speed=1.0, loop=False, seed=2) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0) as acquisition:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                tracker.add(acquisition.read(timeout_s=0.05))
            for event in range(TIMEBASE_EVENTS):
                name = ("duplicate", "restart")[event % 2]
                before = tracker.offset
                emulator.inject(name, **({"count": 300} if name == "duplicate" else {}))
                deadline = time.monotonic() + float(rng.uniform(*TIMEBASE_GAP_S))
                while time.monotonic() < deadline:
                    tracker.add(acquisition.read(timeout_s=0.05))
                phantom[name].append(tracker.offset - before)
            stats = acquisition.stats
        restarted_at = emulator.stats.counter_restarts
    return {"speed": 1.0, "events": {name: len(values) for name, values in phantom.items()},
            "duplicated_packets": TIMEBASE_EVENTS // 2 * 300, "duplicates_dropped": stats.duplicates,
            "restart_counters": restarted_at, "realigned_samples": stats.realigned,
            "claimed_by_the_counter": int(sum((256 - c) % 256 for c in restarted_at)),
            "received": tracker.received, "lost": tracker.lost,
            "phantom_loss_samples": {name: {"total": int(sum(values)), "max_abs": int(max(map(abs, values), default=0))}
                                     for name, values in phantom.items()},
            "max_index_error_samples": tracker.max_error, "misplaced_samples": tracker.misplaced}
