"""Hardware in the loop: emulated Cyton → BrainFlow's Cyton driver → runtime → serial → monitor.

Every case runs the real device runtime (``python -m edge --once``) as a separate process on the
session-scoped bundle of ``tests/fixtures_chain.py``, with the emulator faster than real time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from edge.protocol import CueKind, MessageType
from edge.sessionlog import read_session_log
from hardware.demo import offline_estimate
from fixtures_chain import SPEED, DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.hil, pytest.mark.slow]

RECOVERY_S = 5.0
FAULT_S = 2.5


def _epoch(rig: DeviceRig) -> tuple[float, float]:
    return float(rig.spec.tmin), float(rig.spec.tmax)


def test_held_out_subject_hotspot_within_offline_band(chain, chain_settings, tmp_path: Path) -> None:
    rig = DeviceRig(chain, tmp_path, chain_settings["session"])
    try:
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0, (tmp_path / "runtime.stderr").read_text()[-2000:]
    assert result.type == MessageType.HOTSPOT, result.fields
    predictions, offline = offline_estimate(chain)
    truth = np.asarray(chain.holdout.truth, dtype=float)
    reported = np.asarray(result["position_mm"], dtype=float)
    # The device computes what the same bundle computes offline on the same recording ...
    assert np.linalg.norm(reported - offline) < 1.0, (reported, offline)
    # ... and so lies within the model's offline error band for this subject (95th percentile of
    # the per-trial errors; subject-grouped: the subject was held out of training; head frame, mm).
    band = np.percentile(np.linalg.norm(predictions - truth, axis=1), 95)
    assert np.linalg.norm(reported - truth) <= band
    trials = rig.trial_results()
    assert sorted(trials) == list(range(chain.schedule["trials"]))
    cues = [m for _, m in rig.messages(MessageType.CUE)]
    assert [CueKind(m["kind"]) for m in cues[:3]] == [CueKind.REST, CueKind.MOVE, CueKind.STOP]
    assert cues[-1]["kind"] == CueKind.DONE
    last = (tmp_path / "state" / "last_result.json").read_text()
    assert '"kind": "hotspot"' in last and chain.holdout.subject not in last


FAULTS = {
    # name: (inject params, must the faulty windows fail the signal check?)
    "drop_1pct": ("drop", dict(rate=0.01, burst=1), False),
    "drop_20pct": ("drop", dict(rate=0.20, burst=4), True),
    "corrupt": ("corrupt", dict(rate=0.2), True),
    "railed": ("railed", dict(channel=3, polarity=1), True),
    "flat": ("flat", dict(channel=2, value_uv=0.0), True),
    "stall": ("stall", {}, True),
    "unplug": ("unplug", {}, True),
    "reset": ("reset", {}, False),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_fault_matrix(case: str, chain, chain_settings, tmp_path: Path) -> None:
    fault, params, must_fail = FAULTS[case]
    rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=1), trials=12)
    try:
        rig.wait_for(lambda: rig.messages(MessageType.TRIAL_RESULT), 30, "the first trial")
        injected = time.monotonic()
        rig.emulator.inject(fault, **params)
        if fault != "reset":
            time.sleep(FAULT_S)
            rig.emulator.clear_faults()
        cleared = time.monotonic()
        recovered = rig.wait_for(
            lambda: [t for t, m in rig.messages(MessageType.STATUS) if t > cleared and m["signal_ok"]],
            RECOVERY_S + 1.0, "a healthy status after the fault cleared")
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0, (tmp_path / "runtime.stderr").read_text()[-2000:]
    assert recovered[0] - cleared <= RECOVERY_S
    tmin, tmax = _epoch(rig)
    moves = {m["trial"]: t for t, m in rig.messages(MessageType.CUE) if m["kind"] == CueKind.MOVE}
    results = rig.trial_results()
    inside = [k for k, t in moves.items()
              if t + tmin / SPEED >= injected + 0.3 and t + tmax / SPEED <= cleared]
    if must_fail:
        assert [t for t, m in rig.messages(MessageType.STATUS) if injected < t < cleared and not m["signal_ok"]]
        assert inside, "the fault should cover at least one whole trial"
        assert all(results[k]["good"] == 0 for k in inside if k in results), {k: results[k].fields for k in inside}
    if result.type == MessageType.HOTSPOT:
        good = [k for k, m in results.items() if m["good"]]
        assert set(good).isdisjoint(inside if must_fail else [])
    late = [k for k, t in moves.items() if t + tmin / SPEED >= cleared + RECOVERY_S and k in results]
    assert all(results[k]["good"] for k in late), {k: results[k].fields for k in late}


def test_railed_all_session_gives_redo_naming_the_channel(chain, chain_settings, tmp_path: Path) -> None:
    rig = DeviceRig(chain, tmp_path, dict(chain_settings["session"], min_good_trials=2), trials=4)
    rig.emulator.inject("railed", channel=3, polarity=-1)
    try:
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0
    assert result.type == MessageType.REDO
    assert not rig.messages(MessageType.HOTSPOT)
    assert (rig.names[2], "railed", 4) in [tuple(f) for f in result["faults"]]
    assert any(f"{rig.names[2]} railed" in reason for reason in result["reasons"])


def test_kill_9_mid_session_keeps_every_completed_trial(chain, chain_settings, tmp_path: Path) -> None:
    rig = DeviceRig(chain, tmp_path, chain_settings["session"])
    try:
        rig.wait_for(lambda: len(rig.messages(MessageType.TRIAL_RESULT)) >= 3, 60, "three trials")
        os.kill(rig.process.pid, signal.SIGKILL)
        rig.process.wait(10)
        reported = sorted(rig.trial_results())
    finally:
        rig.close()
    logs = list((tmp_path / "state" / "sessions").glob("session-*.log"))
    assert len(logs) == 1
    contents = read_session_log(logs[0])
    logged = [record["trial"] for record in contents.of_kind("trial")]
    assert set(reported) <= set(logged) and logged == sorted(logged) and len(logged) >= 3
    assert contents.corrupt == 0 and not contents.of_kind("result")
    assert contents.of_kind("start")[0]["device_id"] == "demo-01"
