"""The guided session on synthetic signals with a real (tiny, untrained) signed bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CHANNELS, build_bundle

from edge.bundle import load_bundle
from edge.config import SessionConfig
from edge.errors import ErrorCode, HotspotError
from edge.montage import mirror_channel_name
from edge.pipeline import compute_epochs
from edge.protocol import CueKind, MessageType
from edge.session import GuidedSession, cue_schedule
from edge.sessionlog import SessionLog, read_session_log

SESSION = SessionConfig(trials=5, lead_in_s=2.0, rest_s=3.0, move_s=4.0, post_s=1.0, min_good_trials=3,
                        min_confidence=0.0, agreement_mm=10.0, hand="right", autostart=True)
SFREQ = 250.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    made = build_bundle(tmp_path_factory.mktemp("tiny"))
    return load_bundle(made["bundle"], made["public_key"])


def eeg(seconds: float, seed: int = 0) -> np.ndarray:
    """EEG-like µV: 10 Hz rhythm plus noise, five channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SFREQ)) / SFREQ
    return 10 * np.sin(2 * np.pi * 10 * t) * rng.uniform(0.5, 1.5, (5, 1)) + rng.normal(0, 5, (5, t.size))


def session_length(config: SessionConfig) -> int:
    return cue_schedule(config, SFREQ)[-1].sample + 1


class Recorder:
    """Collects what the session emits, as the runtime's links would receive it."""

    def __init__(self) -> None:
        self.messages: list[tuple[MessageType, dict]] = []

    def __call__(self, message_type: MessageType, **fields) -> None:
        self.messages.append((message_type, fields))

    def of(self, message_type: MessageType) -> list[dict]:
        return [fields for kind, fields in self.messages if kind == message_type]


def run(bundle, config: SessionConfig, data: np.ndarray, chunk_sizes=(7,), log=None) -> tuple[GuidedSession, Recorder]:
    recorder = Recorder()
    session = GuidedSession(config, bundle, recorder, log)
    position, index = 0, 0
    while position < data.shape[1] and not session.done:
        size = chunk_sizes[index % len(chunk_sizes)]
        session.push(data[:, position:position + size])
        position += size
        index += 1
    return session, recorder


def offline_median(bundle, data: np.ndarray, config: SessionConfig) -> np.ndarray:
    cues = [c.sample for c in cue_schedule(config, SFREQ) if c.kind == CueKind.MOVE]
    epochs = compute_epochs(bundle.spec, data, cues)
    return np.median([bundle.predict(x) for x in epochs.inputs], axis=0)


def test_schedule_matches_the_simulators_fixed_schedule() -> None:
    from train.simulate import make_schedule

    task = {"rest_s": [3.0, 3.0], "move_s": 4.0, "post_s": 1.0, "lead_in_s": 2.0}
    simulated = make_schedule(task, SESSION.trials, SFREQ)
    cues = cue_schedule(SESSION, SFREQ)
    assert [c.sample for c in cues if c.kind == CueKind.REST] == simulated.starts.tolist()
    assert [c.sample for c in cues if c.kind == CueKind.MOVE] == simulated.cues.tolist()
    assert [c.sample for c in cues if c.kind == CueKind.STOP] == simulated.stops.tolist()
    assert cues[-1].kind == CueKind.DONE and cues[-1].sample <= simulated.n_samples


def test_clean_session_reports_the_median_of_the_offline_predictions(bundle, tmp_path: Path) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    log = SessionLog(tmp_path / "s.log")
    session, recorder = run(bundle, SESSION, data, chunk_sizes=(1, 13, 250, 5), log=log)
    log.close()
    assert session.done and session.result.kind == "hotspot"
    hotspot = recorder.of(MessageType.HOTSPOT)[0]
    np.testing.assert_allclose(hotspot["position_mm"], offline_median(bundle, data, SESSION), atol=1e-6)
    assert hotspot["n_good"] == 5 and hotspot["bundle_id"] == bundle.bundle_id
    name, offset = session.result.electrode, session.result.offset_mm
    np.testing.assert_allclose(np.asarray(bundle.electrodes.get(name, session._electrodes[name])) + offset,
                               hotspot["position_mm"], atol=1e-6)
    cues = recorder.of(MessageType.CUE)
    assert [c["kind"] for c in cues] == [0, 1, 2] * 5 + [3]
    assert cues[1]["duration_ms"] == 4000 and cues[1]["n_trials"] == 5
    assert [r["trial"] for r in recorder.of(MessageType.TRIAL_RESULT)] == list(range(5))
    contents = read_session_log(tmp_path / "s.log")
    assert [r["trial"] for r in contents.of_kind("trial")] == list(range(5))
    assert contents.of_kind("result")[0]["result"]["kind"] == "hotspot"
    # each good trial logs its movement-period ERD (mu, beta; %) per worn electrode, a few numbers only
    erd = contents.of_kind("trial")[0]["erd_pct"]
    assert list(erd) == list(CHANNELS) and all(len(values) == 2 for values in erd.values())


def test_chunking_does_not_change_the_result(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=3)
    first, _ = run(bundle, SESSION, data, chunk_sizes=(1000,))
    second, _ = run(bundle, SESSION, data, chunk_sizes=(3, 17))
    np.testing.assert_array_equal(first.result.position_mm, second.result.position_mm)


def test_railed_channel_gives_a_redo_naming_it(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    data[2] = 187_000.0
    session, recorder = run(bundle, SESSION, data)
    assert session.result.kind == "redo" and not recorder.of(MessageType.HOTSPOT)
    redo = recorder.of(MessageType.REDO)[0]
    assert (CHANNELS[2], "railed", 5) in redo["faults"]
    assert redo["reasons"][0] == "only 0 of 5 trials passed the signal check; 3 needed"
    assert f"{CHANNELS[2]} railed in 5 trial(s)" in redo["reasons"]
    quality = recorder.of(MessageType.QUALITY)
    assert len(quality) == 5 and (CHANNELS[2], "railed", 1) in quality[0]["faults"]


def test_lost_samples_spoil_only_the_trials_they_hit(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    cues = [c.sample for c in cue_schedule(SESSION, SFREQ) if c.kind == CueKind.MOVE]
    data[:, cues[1]:cues[1] + 100] = np.nan
    session, recorder = run(bundle, SESSION, data)
    good = {r["trial"]: r["good"] for r in recorder.of(MessageType.TRIAL_RESULT)}
    assert good == {0: 1, 1: 0, 2: 1, 3: 1, 4: 1}
    assert session.result.kind == "hotspot" and session.result.n_good == 4


def test_left_hand_mirrors_channels_and_output(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=5)
    left = run(bundle, SESSION, data)[0].result
    mirrored_config = dataclasses.replace(SESSION, hand="left")
    session, recorder = run(bundle, mirrored_config, data)
    assert session.worn_names == [mirror_channel_name(n) for n in CHANNELS]
    np.testing.assert_allclose(session.result.position_mm, left.position_mm * [-1, 1, 1])
    assert session.result.electrode == mirror_channel_name(left.electrode)
    np.testing.assert_allclose(session.result.offset_mm, left.offset_mm * [-1, 1, 1], atol=1e-9)


def test_disagreeing_trials_give_a_redo(bundle) -> None:
    strict = dataclasses.replace(SESSION, agreement_mm=1e-3, min_confidence=1.0)
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=9)
    session, _ = run(bundle, strict, data)
    assert session.result.kind == "redo"
    assert session.result.reasons[0].startswith("the good trials disagree")


def test_stop_ends_early_with_a_redo(bundle) -> None:
    recorder = Recorder()
    session = GuidedSession(SESSION, bundle, recorder)
    session.push(eeg(12))
    result = session.stop("stopped by the host")
    assert result.kind == "redo" and result.reasons[0] == "stopped by the host"
    assert recorder.of(MessageType.REDO)


def test_schedule_too_short_for_the_epoch_is_a_config_error(bundle) -> None:
    with pytest.raises(HotspotError, match=r"epochs -2..4 s around the move cue") as info:
        GuidedSession(dataclasses.replace(SESSION, rest_s=1.0), bundle, Recorder())
    assert info.value.code == ErrorCode.BAD_CONFIG


def test_outages_are_logged_and_spoil_their_trials(bundle, tmp_path: Path) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    cues = [c.sample for c in cue_schedule(SESSION, SFREQ) if c.kind == CueKind.MOVE]
    data[:, cues[2] + 300:cues[2] + 600] = np.nan
    log = SessionLog(tmp_path / "o.log")
    session, _ = run(bundle, SESSION, data, chunk_sizes=(64, 1, 200), log=log)
    log.close()
    contents = read_session_log(tmp_path / "o.log")
    assert [(r["start_sample"], r["samples"]) for r in contents.of_kind("outage")] == [(cues[2] + 300, 300)]
    assert {r["trial"]: r["good"] for r in contents.of_kind("trial")}[2] is False
    assert {tuple(f) for f in contents.of_kind("trial")[2]["faults"]} >= {(c, "lost") for c in CHANNELS}


def test_session_rest_bundle_pools_the_rest_cues_and_matches_the_offline_inputs(bundle) -> None:
    """A bundle whose pipeline pools the rest (edge.rest) gets every REST cue; trials equal compute_epochs."""
    pooled = dataclasses.replace(bundle, spec=dataclasses.replace(bundle.spec, baseline_mode="session_rest",
                                                                  rest_window=(0.5, 2.5)))
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=4)
    session, recorder = run(pooled, SESSION, data, chunk_sizes=(1, 13, 250, 5))
    assert session.done and session.pipeline.n_rest_periods == SESSION.trials
    schedule = cue_schedule(SESSION, SFREQ)
    rests = [c.sample for c in schedule if c.kind == CueKind.REST]
    cues = [c.sample for c in schedule if c.kind == CueKind.MOVE]
    offline = compute_epochs(pooled.spec, data, cues, rests)
    positions = [r["position_mm"] for r in recorder.of(MessageType.TRIAL_RESULT)]
    np.testing.assert_allclose(positions, [pooled.predict(x) for x in offline.inputs], atol=1e-6)
    with pytest.raises(HotspotError, match="rest_s is 3") as info:
        GuidedSession(SESSION, dataclasses.replace(pooled, spec=dataclasses.replace(pooled.spec,
                                                                                   rest_window=(0.5, 3.5))),
                      Recorder())
    assert info.value.code == ErrorCode.BAD_CONFIG
