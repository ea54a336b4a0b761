"""Hardware in the loop, faults of storage and of the time base: emulated Cyton → BrainFlow → runtime → monitor.

Each case runs the real device runtime (``python -m edge``) as a separate process, as in
``test_hil_session.py``, and checks: no crash (exit code 0, no traceback), no hotspot from a bad
window, the right session-log records, and the recovery time once the fault is gone.

Storage faults are real file-system faults: ``chattr +i`` on the session log (an unwritable file on
ext4: writes to the open file fail with EPERM) and a 64 KiB tmpfs that fills up (ENOSPC). Both
need root (CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN); elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.protocol import CueKind, MessageType, SessionState
from edge.runtime import HEALTH_INTERVAL_S
from edge.timebase import REALIGN_TOLERANCE_S, REALIGN_TOLERANCE_SAMPLES
from fixtures_chain import SPEED, DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.hil, pytest.mark.slow]

RECOVERY_S = 5.0



REPORTED_AS = {MessageType.HOTSPOT: ("hotspot", "prior"), MessageType.REDO: ("redo",)}
"""The last_result.json kinds each result message reports (a "prior" result is sent as a HOTSPOT)."""


def offline_trial_positions(chain) -> np.ndarray:
    """The chain's bundle on every trial of the clean held-out recording, offline (patient's frame, mm)."""
    from edge.bundle import load_bundle
    from edge.pipeline import compute_epochs

    bundle = load_bundle(chain.bundle_dir, chain.public_key)
    recording = chain.holdout.recordings[0]
    wearing = bundle.contract.wearing(chain.holdout.hand)
    raw = np.stack([recording.data[recording.ch_names.index(name)] for name in wearing.electrodes])
    epochs = compute_epochs(bundle.spec, raw, recording.cue_samples("move"))
    return wearing.to_patient(bundle.predict(np.asarray(epochs.inputs))[0])


def _no_traceback(rig: DeviceRig) -> str:
    stderr = rig.stderr_path.read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr


def _health(rig: DeviceRig) -> dict:
    try:
        return json.loads((rig.state_dir / "health.json").read_text())
    except (OSError, ValueError):
        return {}


def _errors(rig: DeviceRig, words: str) -> list[tuple[float, object]]:
    return [(t, m) for t, m in rig.messages(MessageType.ERROR) if words in m["message"]]


def _board_records(rig: DeviceRig) -> list[dict]:
    return rig.session_log().of_kind("board")


# --- storage ---------------------------------------------------------------------------------------------

def _chattr(flag: str, path: Path) -> None:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not possible here ({done.stderr.strip()}); needs root on ext4/xfs/btrfs")


def test_unwritable_session_log_keeps_the_session_going_and_recovers(chain, chain_settings, tmp_path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=1), trials=10, once=False)
    log_path = None
    try:
        rig.wait_for(lambda: rig.messages(MessageType.TRIAL_RESULT), 40, "the first trial")
        log_path = next((rig.state_dir / "sessions").glob("session-*.log"))
        _chattr("+i", log_path)
        frozen = time.monotonic()
        rig.wait_for(lambda: _errors(rig, "storage fault"), 30, "the storage-fault report")
        rig.wait_for(lambda: _health(rig).get("status") == "degraded: storage", 15, "health.json saying degraded")
        assert "Operation not permitted" in _health(rig)["storage"]
        rig.wait_for(lambda: [m for t, m in rig.messages(MessageType.TRIAL_RESULT) if t > frozen + 0.5], 30,
                     "a trial while the log cannot be written")
        _chattr("-i", log_path)
        thawed = time.monotonic()
        healthy = rig.wait_for(lambda: _health(rig).get("status") == "healthy" and time.monotonic(), 30,
                               "health.json healthy again")
        result = rig.result(rig.session_seconds() + 60)
        assert result.type in (MessageType.HOTSPOT, MessageType.REDO)
    finally:
        if log_path is not None:
            subprocess.run(["chattr", "-i", str(log_path)], capture_output=True)
        code = rig.close(terminate=True)
    assert code == 0
    _no_traceback(rig)
    # the records held in memory were written once the file could be written again: nothing is missing
    log = rig.session_log()
    assert log.corrupt == 0 and [r["trial"] for r in log.of_kind("trial")] == list(range(10))
    assert log.of_kind("result") and log.of_kind("start")
    last = json.loads((rig.state_dir / "last_result.json").read_text())
    assert last["kind"] in REPORTED_AS[result.type] and last["log"]["written"]
    assert healthy - thawed <= HEALTH_INTERVAL_S + 3.0  # the next append, then the next health.json


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs ({done.stderr.strip()}); needs root (CAP_SYS_ADMIN)")


class DiskFiller:
    """Keep the file system under ``folder`` full: take every page as soon as something frees one.

    (A writer whose temporary file fails frees its pages again; a real full disk stays full.)
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "filler"
        self._descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        self._stop = threading.Event()
        self._fill()
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        for size in (4096, 1):
            while True:
                try:
                    os.write(self._descriptor, b"\0" * size)
                except OSError:
                    break

    def _keep(self) -> None:
        while not self._stop.wait(0.01):
            self._fill()

    def release(self) -> None:
        """Stop filling and free the space (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        os.close(self._descriptor)
        self.path.unlink()


def test_full_disk_reports_the_result_over_the_link_and_recovers_when_space_returns(chain, chain_settings,
                                                                                   tmp_path: Path) -> None:
    state = tmp_path / "state"
    _mount_tmpfs(state, "64k")
    rig = filler = None
    try:
        rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=1), trials=6, once=False)
        rig.wait_for(lambda: rig.messages(MessageType.TRIAL_RESULT), 40, "the first trial")
        rig.wait_for(lambda: _health(rig).get("status") == "healthy", 15, "health.json")
        filler = DiskFiller(state)
        rig.wait_for(lambda: _errors(rig, "storage fault"), 30, "the storage-fault report")
        # health.json is rewritten in place (no room for a new file) and says so
        rig.wait_for(lambda: _health(rig).get("status") == "degraded: storage", 15, "health.json saying degraded")
        assert "No space left" in _health(rig)["storage"]
        result = rig.result(rig.session_seconds() + 60)
        assert result.type in (MessageType.HOTSPOT, MessageType.REDO)
        rig.wait_for(lambda: _errors(rig, "reported here only"), 5, "the device saying the result is not stored")
        assert not (state / "last_result.json").exists()
        # the log is readable up to its last complete record, a cut record costing only itself
        before = rig.session_log()
        assert before.corrupt <= 1 and before.of_kind("start") and before.of_kind("trial")
        filler.release()
        freed = time.monotonic()
        healthy = rig.wait_for(lambda: _health(rig).get("status") == "healthy" and time.monotonic(), 30,
                               "health.json healthy again")
        after = rig.session_log()
        last = json.loads((state / "last_result.json").read_text())
        code = rig.close(terminate=True)
    finally:
        if filler is not None:
            filler.release()
        if rig is not None and rig.process.poll() is None:
            rig.close(terminate=True)
        subprocess.run(["umount", "-l", str(state)], capture_output=True)
    assert code == 0
    _no_traceback(rig)
    assert [r["trial"] for r in after.of_kind("trial")] == list(range(6)) and after.of_kind("result")
    assert after.corrupt <= 1
    assert last["kind"] in REPORTED_AS[result.type]
    assert healthy - freed <= HEALTH_INTERVAL_S + 3.0  # written again at the next health interval


# --- sampling rate ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("hz", [200.0, 300.0])
def test_a_board_at_the_wrong_rate_stops_the_session_with_a_clear_redo(hz: float, chain, chain_settings,
                                                                         tmp_path: Path) -> None:
    rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=1), trials=4, once=False)
    rig.emulator.inject("rate", hz=hz)
    try:
        result = rig.result(60)
        assert result.type == MessageType.REDO
        assert any(f"{hz:.0f} Hz, not its declared 250 Hz" in reason for reason in result["reasons"]), result.fields
        assert [m for _, m in rig.messages(MessageType.ERROR) if m["code"] == 6]  # BAD_SAMPLING_RATE
        rig.wait_for(lambda: [m for _, m in rig.messages(MessageType.STATUS) if m["state"] == SessionState.FAULT],
                     5, "a status saying FAULT")
        rig.emulator.clear_faults()
        cleared = time.monotonic()
        recovered = rig.wait_for(
            lambda: [t for t, m in rig.messages(MessageType.STATUS) if t > cleared and m["state"] != SessionState.FAULT],
            30, "a status without the rate fault")
        log = rig.session_log()
    finally:
        code = rig.close(terminate=True)
    assert code == 0
    _no_traceback(rig)
    assert not rig.messages(MessageType.HOTSPOT)
    assert not [m for _, m in rig.messages(MessageType.TRIAL_RESULT) if m["good"]]  # stopped before any trial
    [fault] = [r for r in log.of_kind("board") if "rate_fault" in r]
    assert fault["measured_hz"] == pytest.approx(hz, rel=0.02)
    assert log.of_kind("result")[0]["result"]["kind"] == "redo"
    # back within the check's window (6 board seconds) plus one status interval
    assert recovered[0] - cleared <= 6.0 / SPEED + 2.0


# --- time base: duplicates, counter restart, garbage flood ----------------------------------------------

def _run_with_fault(chain, chain_settings, tmp_path: Path, fault: str, params: dict, fault_s: float = 2.5):
    rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=1), trials=10)
    try:
        rig.wait_for(lambda: rig.messages(MessageType.TRIAL_RESULT), 40, "the first trial")
        injected = time.monotonic()
        rig.emulator.inject(fault, **params)
        if fault != "restart":
            time.sleep(fault_s)
            rig.emulator.clear_faults()
        cleared = time.monotonic()
        recovered = rig.wait_for(
            lambda: [t for t, m in rig.messages(MessageType.STATUS) if t > cleared and m["signal_ok"]],
            RECOVERY_S + 1.0, "a healthy status after the fault")
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0
    _no_traceback(rig)
    assert result.type in (MessageType.HOTSPOT, MessageType.REDO)
    assert recovered[0] - cleared <= RECOVERY_S
    last = json.loads((rig.state_dir / "last_result.json").read_text())
    return rig, last, injected, cleared


def _lossy_trials(rig: DeviceRig) -> list[int]:
    """Trials rejected for lost samples (the recording's own artifacts may reject others)."""
    return [trial for trial, m in rig.trial_results().items() if any(" lost" in r for r in m["reasons"])]


def _totals(records: list[dict], name: str) -> int:
    return sum(int(record.get(name, 0)) for record in records)


def test_300_duplicate_packets_cost_no_phantom_loss(chain, chain_settings, tmp_path: Path) -> None:
    rig, last, _, _ = _run_with_fault(chain, chain_settings, tmp_path, "duplicate", {"count": 300})
    assert rig.emulator.stats.packets_duplicated == 300
    board = _board_records(rig)
    assert _totals(board, "duplicates") == 300 and _totals(board, "realigned") == 0
    assert last["lost_samples"] == 0  # before: each duplicate added up to 255 phantom lost samples
    assert not rig.session_log().of_kind("outage")
    assert not _lossy_trials(rig)


def test_a_counter_restart_is_realigned_to_the_host_clock(chain, chain_settings, tmp_path: Path) -> None:
    rig, last, _, _ = _run_with_fault(chain, chain_settings, tmp_path, "restart", {})
    [interrupted] = rig.emulator.stats.counter_restarts
    claimed = (256 - interrupted) % 256
    tolerance = REALIGN_TOLERANCE_SAMPLES + REALIGN_TOLERANCE_S * rig.spec.sfreq * SPEED
    board = _board_records(rig)
    if claimed > tolerance:
        assert _totals(board, "realigned") == claimed and last["lost_samples"] == 0
    else:
        assert last["lost_samples"] == claimed
    assert not rig.session_log().of_kind("outage")
    assert not _lossy_trials(rig)


def test_a_garbage_flood_gets_no_fake_sample_into_a_trial(chain, chain_settings, tmp_path: Path) -> None:
    rig, last, injected, cleared = _run_with_fault(chain, chain_settings, tmp_path, "garbage", {"rate": 1.0})
    assert rig.emulator.stats.fake_packets > 100
    board = _board_records(rig)
    assert _totals(board, "rejected") > 0
    # the real packets the noise misframed are lost (and counted); every trial that passed the signal check
    # computed what the same bundle computes offline on the clean recording (no fake value in its window)
    predictions = offline_trial_positions(chain)
    for trial, message in rig.trial_results().items():
        if message["good"]:
            assert np.linalg.norm(np.asarray(message["position_mm"]) - predictions[trial]) < 2.0, (trial, message)
    assert last["lost_samples"] > 0


def test_daisy_misorder_restarts_the_stream_and_spoils_only_the_trials_it_touched(chain, tmp_path: Path,
                                                                                 tmp_path_factory) -> None:
    from bundle_factory import build_bundle
    from hardware.emulator.sources import synthetic_source

    made = build_bundle(tmp_path_factory.mktemp("daisy-bundle"), sfreq=125.0)
    source = synthetic_source(16, 125.0, seconds=400.0, seed=5)
    session = {"min_good_trials": 1, "min_consistency": 0.0, "agreement_mm": 10.0}
    rig = DeviceRig(chain, tmp_path, session, trials=10, source=source, daisy=True,
                    bundle=(made["bundle"], made["public_key"]))
    try:
        rig.wait_for(lambda: rig.messages(MessageType.TRIAL_RESULT), 60, "the first trial")
        rig.emulator.inject("misorder")
        time.sleep(2.0)
        rig.emulator.clear_faults()
        cleared = time.monotonic()
        recovered = rig.wait_for(
            lambda: [t for t, m in rig.messages(MessageType.STATUS) if t > cleared and m["signal_ok"]],
            RECOVERY_S + 1.0, "a healthy status after the fault")
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0
    _no_traceback(rig)
    assert result.type in (MessageType.HOTSPOT, MessageType.REDO)
    assert recovered[0] - cleared <= RECOVERY_S
    log = rig.session_log()
    events = [event for record in log.of_kind("board") for event in record.get("events", [])]
    assert any(e["status"] == "stalled" and "out of order" in e["detail"] for e in events), events
    assert any(e["status"] == "recovered" for e in events)
    assert _totals(log.of_kind("board"), "misordered") >= 1
    spoiled = rig.spoiled_by_outages(log)
    assert spoiled, "the restarts leave an outage that overlaps a trial"
    results = rig.trial_results()
    for trial in spoiled:
        assert results[trial]["good"] == 0 and any("lost" in r for r in results[trial]["reasons"])
    cues = [m for _, m in rig.messages(MessageType.CUE) if m["kind"] == CueKind.DONE]
    assert cues
