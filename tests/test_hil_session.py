"""Hardware in the loop: emulated Cyton → BrainFlow's Cyton driver → runtime → serial → monitor.

Every case runs the real device runtime (``python -m edge --once``) as a separate process on the
session-scoped bundle of ``tests/fixtures_chain.py``, with the emulator faster than real time.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from edge.protocol import CueKind, MessageType
from edge.sessionlog import read_session_log
from hardware.demo import offline_estimate, result_lines, run_device_session, true_cap_transform
from fixtures_chain import SPEED, DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.hil, pytest.mark.slow]

RECOVERY_S = 5.0
FAULT_S = 2.5


def _epoch(rig: DeviceRig) -> tuple[float, float]:
    return float(rig.spec.tmin), float(rig.spec.tmax)


def _assert_device_equals_offline(chain, messages: list) -> None:
    """The device computed what the same bundle computes offline on the same recording (cap frame, mm).

    Up to an int8 output step where the board's 24-bit counts nudge an input across a quantisation bin:
    the same estimate, radius and decision, and before the prior combination the same session prediction
    (whether or not it localised).
    """
    result = messages[-1]
    assert result.type == MessageType.HOTSPOT, result.fields
    offline = offline_estimate(chain)
    reported = np.asarray(result["position_mm"], dtype=float)
    assert np.linalg.norm(reported - offline.estimate.point_mm) < 1.0, (reported, offline.estimate.point_mm)
    assert result["radius_mm"] == pytest.approx(offline.estimate.radius90_mm, abs=0.5)
    assert bool(result["localised"]) == offline.estimate.localised
    assert result["electrode"] and 0.0 <= result["consistency"] <= 1.0
    log = read_session_log(next((chain.workdir / "device" / "state" / "sessions").glob("session-*.log")))
    logged = np.asarray(log.of_kind("result")[0]["prediction"]["mean_mm"], dtype=float)
    assert np.linalg.norm(logged - offline.prediction_mm) < 1.0, (logged, offline.prediction_mm)


def _assert_stopped_cleanly(device_dir: Path) -> None:
    """The runtime (page on, ``--once``) stopped without a traceback, and its last health.json says so."""
    stderr = (device_dir / "runtime.stderr").read_text()
    assert "Traceback" not in stderr and "while stopping" not in stderr, stderr[-2000:]
    health = json.loads((device_dir / "state" / "health.json").read_text())
    assert health["status"] == "stopped" and health["sessions_done"] == 1, health


def test_held_out_subject_result_matches_offline_and_the_demo_reports_it_in_both_frames(chain, chain_settings) -> None:
    # The demo's own device step: emulator → python -m edge --once → null-modem → monitor.
    messages = run_device_session(chain, chain_settings, show=lambda line: None)
    _assert_device_equals_offline(chain, messages)
    _assert_stopped_cleanly(chain.workdir / "device")
    result = messages[-1]
    offline = offline_estimate(chain)
    reported = np.asarray(result["position_mm"], dtype=float)
    trials = [m["trial"] for m in messages if m.type == MessageType.TRIAL_RESULT]
    assert trials == list(range(chain.schedule["trials"]))
    cues = [m for m in messages if m.type == MessageType.CUE]
    assert [CueKind(m["kind"]) for m in cues[:3]] == [CueKind.REST, CueKind.MOVE, CueKind.STOP]
    assert cues[-1]["kind"] == CueKind.DONE
    last = json.loads((chain.workdir / "device" / "state" / "last_result.json").read_text())
    assert last["kind"] in ("hotspot", "prior") and last["frame"] == "cap" and chain.holdout.subject not in str(last)
    assert last["placement"]["electrode"] == result["electrode"]
    assert last["radius90_mm"] == pytest.approx(result["radius_mm"], abs=0.01)
    # What invoke demo prints: estimate, placement, radius and frame; the truth in the same (cap) frame via the
    # session's true cap transform and in the head frame; the error, inside/outside; the prior beside it.
    lines = result_lines(chain, result, offline)
    cap = true_cap_transform(chain)
    truth_cap = cap.to_cap(np.asarray(chain.holdout.truth, dtype=float))
    error = np.linalg.norm(reported - truth_cap)
    assert lines[0].startswith(f"device estimate   ({reported[0]:+.1f}") and "cap frame" in lines[0]
    assert f"place the electrode {result['electrode']}" in lines[1] or f"from {result['electrode']}" in lines[1] \
        or f"on {result['electrode']}" in lines[1]
    assert f"within {result['radius_mm']:.1f} mm with 90 % probability" in lines[1]
    inside = "inside" if error <= result["radius_mm"] else "OUTSIDE"
    assert f"{error:.1f} mm from the estimate, {inside} the 90 % radius" in lines[2]
    assert "head frame" in lines[3] and "population prior" in lines[5] and "cap frame" in lines[5]
    assert np.linalg.norm(cap.to_head(truth_cap) - chain.holdout.truth) < 1e-9


def test_the_full_demo_runs_the_source_level_on_nine_channels_of_a_cyton_daisy(tmp_path: Path) -> None:
    # `invoke demo` without --fast: the headline model (level source, nine channels) needs the Daisy's
    # inputs, so the held-out subject streams from an emulated Cyton + Daisy at 125 Hz through BrainFlow's
    # Cyton Daisy driver, and the device's result equals the same bundle's offline estimate.
    from edge.bundle import load_bundle
    from edge.config import load_config
    from hardware.demo import build_chain, load_settings

    settings = load_settings(fast=False)
    assert (settings["level"], settings["channels"], settings["board"]) == ("source", "nine", "cyton_daisy")
    built, _ = build_chain(tmp_path / "demo", settings, show=lambda line: None)
    bundle = load_bundle(built.bundle_dir, built.public_key)
    assert bundle.spec.level == "source" and bundle.spec.sfreq == 125.0
    messages = run_device_session(built, settings, show=lambda line: None)
    config = load_config(built.workdir / "device" / "device.toml")
    assert config.board.type == "cyton_daisy" and len(config.channels) == 9
    _assert_device_equals_offline(built, messages)
    _assert_stopped_cleanly(built.workdir / "device")


def test_a_weak_erd_subject_streamed_through_the_device_gets_cannot_localise(tmp_path: Path) -> None:
    # A level-source bundle (the real leadfield, min_erd_db 2 dB) and a simulated subject whose movement
    # desynchronises nothing, streamed emulator → BrainFlow → runtime → serial → monitor.
    from bundle_factory import NO_ERD, PRIOR, build_bundle, simulated_subject
    from test_runtime_session import SOURCE_SESSION

    from edge.estimate import prior_radius90
    from hardware.demo import Chain

    made = build_bundle(tmp_path / "made", level="source")
    subject = simulated_subject(SOURCE_SESSION, 0, NO_ERD)
    schedule = {key: getattr(SOURCE_SESSION, key) for key in ("trials", "lead_in_s", "rest_s", "move_s", "post_s")}
    weak = Chain(tmp_path, None, subject, None, made["bundle"], made["public_key"], schedule)
    rig = DeviceRig(weak, tmp_path / "device", {"min_good_trials": SOURCE_SESSION.min_good_trials})
    try:
        result = rig.result(rig.session_seconds() + 60)
    finally:
        code = rig.close()
    assert code == 0, (tmp_path / "device" / "runtime.stderr").read_text()[-2000:]
    assert result.type == MessageType.HOTSPOT and result["localised"] == 0, result.fields
    assert result["n_good"] >= SOURCE_SESSION.min_good_trials
    assert result["radius_mm"] == pytest.approx(prior_radius90(PRIOR), abs=1e-3)
    np.testing.assert_allclose(result["position_mm"], PRIOR.mean_mm, atol=1e-3)
    assert len(result["reasons"]) == 1 and result["reasons"][0].startswith(
        "the movement changed the motor rhythms too little")
    last = json.loads((tmp_path / "device" / "state" / "last_result.json").read_text())
    assert last["kind"] == "prior" and last["localised"] is False and last["frame"] == "cap"
    assert "could not pinpoint" in last["confidence_text"]


FAULTS = {
    # name: (inject params, the quality flag the fault must raise in the trials it spoils, or None
    # when the windows may legitimately pass (1 % loss is within the signal check's 2 % allowance))
    "drop_1pct": ("drop", dict(rate=0.01, burst=1), None),
    "drop_20pct": ("drop", dict(rate=0.20, burst=4), "lost"),
    "corrupt": ("corrupt", dict(rate=0.2), "lost"),
    "railed": ("railed", dict(channel=3, polarity=1), "railed"),
    "flat": ("flat", dict(channel=2, value_uv=0.0), "flat"),
    "stall": ("stall", {}, "lost"),
    "unplug": ("unplug", {}, "lost"),
    "reset": ("reset", {}, "lost"),
}
OUTAGES = ("stall", "unplug", "reset")


def _flags(result) -> set[str]:
    return {reason.split(" ", 1)[1] for reason in result["reasons"]}


@pytest.mark.parametrize("case", list(FAULTS))
def test_fault_matrix(case: str, chain, chain_settings, tmp_path: Path) -> None:
    fault, params, flag = FAULTS[case]
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
    # No crash, and the signal is back (the live check passes) within 5 s of the fault clearing.
    assert code == 0, (tmp_path / "runtime.stderr").read_text()[-2000:]
    assert recovered[0] - cleared <= RECOVERY_S
    assert result.type in (MessageType.HOTSPOT, MessageType.REDO)
    results = rig.trial_results()
    tmin, tmax = _epoch(rig)
    if flag is None:
        return
    assert [t for t, m in rig.messages(MessageType.STATUS) if injected < t <= cleared + 2.0 and not m["signal_ok"]]
    log = read_session_log(next((tmp_path / "state" / "sessions").glob("session-*.log")))
    if case in OUTAGES:
        # Samples missing while the board was gone: every trial whose epoch misses more of them than the
        # signal check allows is bad (one the outage only clips may be good).
        assert log.of_kind("outage"), "the outage should be in the session log"
        spoiled = rig.spoiled_by_outages(log)
    else:
        # A signal fault: every trial whose epoch lies wholly inside the fault (wall clock) is bad.
        moves = {m["trial"]: t for t, m in rig.messages(MessageType.CUE) if m["kind"] == CueKind.MOVE}
        spoiled = [k for k, t in moves.items() if t + tmin / SPEED >= injected + 0.3 and t + tmax / SPEED <= cleared]
        assert spoiled, "the fault should cover at least one whole trial"
    for trial in spoiled:
        assert results[trial]["good"] == 0 and flag in _flags(results[trial]), results[trial].fields
    # Trials that start 5 s after the fault cleared are not spoiled by it.
    moves = {m["trial"]: t for t, m in rig.messages(MessageType.CUE) if m["kind"] == CueKind.MOVE}
    late = [k for k, t in moves.items() if t + tmin / SPEED >= cleared + RECOVERY_S and k in results]
    assert all(flag not in _flags(results[k]) for k in late), {k: results[k].fields for k in late}


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


def test_demo_prints_the_page_address_and_keeps_it_open_until_ctrl_c(chain, chain_settings) -> None:
    import json
    import threading
    import urllib.request

    from hardware.demo import DeviceSession

    # a shell's background job inherits SIGINT ignored; the user's Ctrl-C below must reach this process
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    lines: list[str] = []
    device = DeviceSession(chain, chain_settings, show=lines.append, keep_open=True)
    messages = device.run()
    try:
        assert messages[-1].type in (MessageType.HOTSPOT, MessageType.REDO)
        shown = [line for line in lines if "session page: http://127.0.0.1:" in line]
        assert shown and f"pairing code {device.code}" in shown[0]
        assert device.runtime.poll() is None  # still running after the result
        with urllib.request.urlopen(device.url + "api/state", timeout=10) as response:
            state = json.loads(response.read())
        assert state["result"] is not None and state["step"] == "result"
    finally:
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # the user's Ctrl-C
        device.wait_while_open()
        signal.signal(signal.SIGINT, previous)
    assert device.runtime.poll() is not None and device.closed
    assert any("stays open" in line for line in lines)
    _assert_stopped_cleanly(device.device_dir)  # stopped by the demo's SIGTERM, its page closed last
