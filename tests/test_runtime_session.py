"""The guided session on synthetic and simulated signals with real (tiny, untrained) signed schema-2 bundles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CHANNELS, NO_ERD, PRIOR, build_bundle, simulated_subject

from edge.bundle import load_bundle
from edge.config import SessionConfig
from edge.errors import ErrorCode, HotspotError
from edge.estimate import aggregate_trials, decide, prior_radius90
from edge.montage import mirror_channel_name, mirror_points
from edge.pipeline import compute_epochs
from edge.placement import scalp_placement
from edge.protocol import CueKind, MessageType
from edge.session import GuidedSession, cue_schedule
from edge.sessionlog import SessionLog, read_session_log

SESSION = SessionConfig(trials=5, lead_in_s=2.0, rest_s=3.0, move_s=4.0, post_s=1.0, min_good_trials=3,
                        min_consistency=0.0, agreement_mm=10.0, hand="right", autostart=True)
SFREQ = 250.0
RESULT_KEYS = {"kind", "position_mm", "frame", "radius90_mm", "confidence_text", "consistency", "placement",
               "localised", "reasons", "quality"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An informative network: it says 3 mm (per axis) against the prior's 4 mm."""
    made = build_bundle(tmp_path_factory.mktemp("tiny"))
    return load_bundle(made["bundle"], made["public_key"])


@pytest.fixture(scope="module")
def uninformative(tmp_path_factory):
    """A network that always says its prediction is uncertain to 50 mm per axis (far wider than the prior)."""
    made = build_bundle(tmp_path_factory.mktemp("wide"), sd_mm=50.0, sd_gain=0.0)
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


def offline_prediction(bundle, data: np.ndarray, config: SessionConfig) -> tuple[np.ndarray, np.ndarray]:
    """The same bundle on the whole recording, offline: per-axis median of the trial means, sqrt(median variance)."""
    cues = [c.sample for c in cue_schedule(config, SFREQ) if c.kind == CueKind.MOVE]
    epochs = compute_epochs(bundle.spec, data, cues)
    means, sds = bundle.predict(np.asarray(epochs.inputs))
    return aggregate_trials(means, sds)


def test_schedule_matches_the_simulators_fixed_schedule() -> None:
    from train.simulate import make_schedule

    task = {"rest_s": [3.0, 3.0], "move_s": 4.0, "post_s": 1.0, "lead_in_s": 2.0}
    simulated = make_schedule(task, SESSION.trials, SFREQ)
    cues = cue_schedule(SESSION, SFREQ)
    assert [c.sample for c in cues if c.kind == CueKind.REST] == simulated.starts.tolist()
    assert [c.sample for c in cues if c.kind == CueKind.MOVE] == simulated.cues.tolist()
    assert [c.sample for c in cues if c.kind == CueKind.STOP] == simulated.stops.tolist()
    assert cues[-1].kind == CueKind.DONE and cues[-1].sample <= simulated.n_samples


def test_clean_session_reports_the_prior_combined_offline_prediction(bundle, tmp_path: Path) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    log = SessionLog(tmp_path / "s.log")
    session, recorder = run(bundle, SESSION, data, chunk_sizes=(1, 13, 250, 5), log=log)
    log.close()
    result = session.result
    assert session.done and result.kind == "hotspot" and result.localised
    mean, sd = offline_prediction(bundle, data, SESSION)
    expected = decide(bundle.prior, bundle.calibration, mean, sd)
    assert expected.localised and expected.radius90_mm < prior_radius90(bundle.prior)
    hotspot = recorder.of(MessageType.HOTSPOT)[0]
    np.testing.assert_allclose(hotspot["position_mm"], expected.point_mm, atol=1e-6)
    np.testing.assert_allclose(result.position_mm, expected.point_mm, atol=1e-6)
    assert hotspot["radius_mm"] == pytest.approx(expected.radius90_mm) == result.radius90_mm
    assert hotspot["localised"] == 1 and hotspot["reasons"] == []
    assert hotspot["n_good"] == 5 and hotspot["bundle_id"] == bundle.bundle_id
    placement = scalp_placement(expected.point_mm, bundle.electrodes, bundle.head_centre_mm)
    assert result.placement == placement
    assert (hotspot["electrode"], hotspot["anterior_mm"], hotspot["lateral_mm"]) == (
        placement.electrode, placement.anterior_mm, placement.lateral_mm)
    record = result.to_dict()
    assert set(record) == RESULT_KEYS and record["frame"] == "cap" and record["kind"] == "hotspot"
    assert record["placement"] == placement.to_dict()
    assert set(record["placement"]) == {"electrode", "anterior_mm", "lateral_mm", "distance_mm"}
    assert record["confidence_text"].startswith("Confidence high: the hotspot lies within")
    assert 0.0 <= record["consistency"] <= 1.0
    cues = recorder.of(MessageType.CUE)
    assert [c["kind"] for c in cues] == [0, 1, 2] * 5 + [3]
    assert cues[1]["duration_ms"] == 4000 and cues[1]["n_trials"] == 5
    assert [r["trial"] for r in recorder.of(MessageType.TRIAL_RESULT)] == list(range(5))
    contents = read_session_log(tmp_path / "s.log")
    assert [r["trial"] for r in contents.of_kind("trial")] == list(range(5))
    assert all(np.all(np.asarray(r["sd_mm"]) > 0) for r in contents.of_kind("trial"))
    # each good trial logs its movement-period ERD (mu, beta; %) per worn electrode, a few numbers only
    erd = contents.of_kind("trial")[0]["erd_pct"]
    assert list(erd) == list(CHANNELS) and all(len(values) == 2 for values in erd.values())
    logged = contents.of_kind("result")[0]
    assert logged["result"]["kind"] == "hotspot"
    np.testing.assert_allclose(logged["prediction"]["mean_mm"], mean, atol=1e-3)
    np.testing.assert_allclose(logged["prediction"]["sd_mm"], sd, atol=1e-3)


def test_consistency_is_the_share_of_good_trials_near_the_sessions_prediction(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=4)
    session, _ = run(bundle, SESSION, data)
    trials = np.array([o.position_mm for o in session.outcomes.values() if o.good])
    distances = np.linalg.norm(trials - session.result.prediction_mm, axis=1)
    assert session.result.consistency == pytest.approx(np.mean(distances <= SESSION.agreement_mm))
    tight = dataclasses.replace(SESSION, agreement_mm=float(np.sort(distances)[1]) + 1e-6)
    assert run(bundle, tight, data)[0].result.consistency == pytest.approx(2 / 5)


def test_an_uninformative_network_returns_the_prior_and_says_so(uninformative) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    session, recorder = run(uninformative, SESSION, data)
    result = session.result
    assert result.kind == "prior" and not result.localised
    np.testing.assert_allclose(result.position_mm, PRIOR.mean_mm)
    assert result.radius90_mm == pytest.approx(prior_radius90(PRIOR))
    assert result.reasons == ["the EEG did not narrow down the population's hotspot region"]
    assert "could not pinpoint" in result.to_dict()["confidence_text"]
    assert "within 10 mm in 9 of 10 people" in result.to_dict()["confidence_text"]
    hotspot = recorder.of(MessageType.HOTSPOT)[0]
    assert hotspot["localised"] == 0 and hotspot["reasons"] == result.reasons
    assert hotspot["radius_mm"] == pytest.approx(prior_radius90(PRIOR))
    assert not recorder.of(MessageType.REDO)
    assert result.prediction_sd_mm == pytest.approx([50.0] * 3, rel=1e-3)


def test_the_placement_instruction_has_no_depth_component(bundle) -> None:
    result = run(bundle, SESSION, eeg(session_length(SESSION) / SFREQ + 1, seed=2))[0].result
    placement = result.placement
    assert set(result.to_dict()["placement"]) == {"electrode", "anterior_mm", "lateral_mm", "distance_mm"}
    # electrode + the two tangential offsets is a point on the scalp at the electrode's radius, on the ray from
    # the head centre through the estimate: nothing of the estimate's depth remains in the instruction
    centre = bundle.head_centre_mm
    electrode = np.asarray(bundle.electrodes[placement.electrode])
    normal = (electrode - centre) / np.linalg.norm(electrode - centre)
    anterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    anterior /= np.linalg.norm(anterior)
    lateral = np.cross(anterior, normal) * (1 if np.cross(anterior, normal)[0] < 0 else -1)  # left hemisphere
    offset = placement.anterior_mm * anterior + placement.lateral_mm * lateral
    assert abs(np.dot(offset, normal)) < 1e-9
    direction = (result.position_mm - centre) / np.linalg.norm(result.position_mm - centre)
    scalp = centre + direction * np.linalg.norm(electrode - centre)
    assert np.linalg.norm(scalp - electrode - offset) < 0.2 * np.linalg.norm(offset) + 1.0  # tangent-plane offset
    deeper = scalp_placement(centre + 0.7 * (result.position_mm - centre), bundle.electrodes, centre)
    assert (deeper.electrode, deeper.anterior_mm, deeper.lateral_mm) == pytest.approx(
        (placement.electrode, placement.anterior_mm, placement.lateral_mm))


def test_chunking_does_not_change_the_result(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=3)
    first, _ = run(bundle, SESSION, data, chunk_sizes=(1000,))
    second, _ = run(bundle, SESSION, data, chunk_sizes=(3, 17))
    np.testing.assert_array_equal(first.result.position_mm, second.result.position_mm)
    assert first.result.to_dict() == second.result.to_dict()


def test_railed_channel_gives_a_redo_naming_it_with_the_prior_and_its_radius(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1)
    data[2] = 187_000.0
    session, recorder = run(bundle, SESSION, data)
    result = session.result
    assert result.kind == "redo" and not recorder.of(MessageType.HOTSPOT)
    redo = recorder.of(MessageType.REDO)[0]
    assert (CHANNELS[2], "railed", 5) in redo["faults"]
    assert redo["reasons"][0] == "only 0 of 5 trials passed the signal check; 3 needed"
    assert f"{CHANNELS[2]} railed in 5 trial(s)" in redo["reasons"]
    assert redo["localised"] == 0 and redo["radius_mm"] == pytest.approx(prior_radius90(PRIOR))
    np.testing.assert_allclose(result.position_mm, PRIOR.mean_mm)
    assert redo["electrode"] == result.placement.electrode
    record = result.to_dict()
    assert set(record) == RESULT_KEYS and record["localised"] is False and record["consistency"] == 0.0
    assert "could not pinpoint" in record["confidence_text"]
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


def test_left_hand_mirrors_channels_estimate_and_placement(bundle) -> None:
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=5)
    left = run(bundle, SESSION, data)[0].result
    mirrored_config = dataclasses.replace(SESSION, hand="left")
    session, recorder = run(bundle, mirrored_config, data)
    right = session.result
    assert session.worn_names == [mirror_channel_name(n) for n in CHANNELS]
    np.testing.assert_allclose(right.position_mm, mirror_points(left.position_mm))
    assert right.radius90_mm == left.radius90_mm and right.kind == left.kind == "hotspot"
    # the same offsets (forward, outward) from the mirrored electrode
    assert right.placement.electrode == mirror_channel_name(left.placement.electrode) != left.placement.electrode
    assert (right.placement.anterior_mm, right.placement.lateral_mm) == (left.placement.anterior_mm,
                                                                         left.placement.lateral_mm)
    assert recorder.of(MessageType.HOTSPOT)[0]["position_mm"][0] > 0


def test_a_bilateral_bundle_is_not_mirrored_for_a_left_hand_patient(tmp_path) -> None:
    made = build_bundle(tmp_path, mirror=False)
    bilateral = load_bundle(made["bundle"], made["public_key"])
    assert bilateral.mirror is False
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=5)
    right_hand = run(bilateral, SESSION, data)[0].result
    session, recorder = run(bilateral, dataclasses.replace(SESSION, hand="left"), data)
    left_hand = session.result
    # the model's own channels are worn and its output is reported as it is: no mirroring
    assert session.worn_names == list(CHANNELS)
    np.testing.assert_allclose(left_hand.position_mm, right_hand.position_mm)
    assert left_hand.placement == right_hand.placement
    assert recorder.of(MessageType.HOTSPOT)[0]["position_mm"][0] < 0


def test_disagreeing_trials_give_a_redo_only_when_min_consistency_asks(bundle) -> None:
    strict = dataclasses.replace(SESSION, agreement_mm=1e-3, min_consistency=1.0)
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=9)
    session, _ = run(bundle, strict, data)
    assert session.result.kind == "redo" and not session.result.localised
    assert session.result.reasons[0].startswith("the good trials disagree: 0% within 0.001 mm")
    lenient = run(bundle, dataclasses.replace(strict, min_consistency=0.0), data)[0].result
    assert lenient.kind == "hotspot" and lenient.consistency == 0.0


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


# --- level source on simulated subjects -------------------------------------------------------------------------

SOURCE_SESSION = dataclasses.replace(SESSION, trials=20, min_good_trials=10)


@pytest.fixture(scope="module")
def source_bundle(tmp_path_factory):
    """Level source (the real MNE leadfield), an informative network (3 mm vs the prior's 4 mm), min_erd_db 2 dB."""
    made = build_bundle(tmp_path_factory.mktemp("source"), level="source")
    return load_bundle(made["bundle"], made["public_key"])


def simulated_session_data(index: int, modulation: dict | None = None) -> np.ndarray:
    """A simulated healthy subject on the session's fixed schedule, the model's channels in model order (µV)."""
    recording = simulated_subject(SOURCE_SESSION, index, modulation).recordings[0]
    assert recording.cue_samples("move").tolist() == [
        c.sample for c in cue_schedule(SOURCE_SESSION, SFREQ) if c.kind == CueKind.MOVE]
    return recording.data[[recording.ch_names.index(name) for name in CHANNELS]]


def test_a_weak_erd_subject_gets_cannot_localise_with_the_prior_and_its_radius(source_bundle) -> None:
    from edge.source import session_image, strongest_desynchronisation_db

    data = simulated_session_data(0, NO_ERD)
    session, recorder = run(source_bundle, SOURCE_SESSION, data, chunk_sizes=(125, 7, 250))
    result = session.result
    threshold = source_bundle.calibration.min_erd_db
    assert result.n_good >= SOURCE_SESSION.min_good_trials
    assert result.erd_db < threshold
    assert result.kind == "prior" and not result.localised
    np.testing.assert_allclose(result.position_mm, PRIOR.mean_mm)
    assert result.radius90_mm == pytest.approx(prior_radius90(PRIOR))
    assert result.reasons == [f"the movement changed the motor rhythms too little ({result.erd_db:.1f} dB, at least "
                              f"{threshold:.1f} dB needed)"]
    record = result.to_dict()
    assert record["kind"] == "prior" and record["localised"] is False
    assert record["confidence_text"].startswith("The EEG could not pinpoint your hotspot; this is the usual position")
    hotspot = recorder.of(MessageType.HOTSPOT)[0]
    assert hotspot["localised"] == 0 and hotspot["radius_mm"] == pytest.approx(prior_radius90(PRIOR))
    # the session map is the one computed offline from the same good trials (online = offline)
    cues = [c.sample for c in cue_schedule(SOURCE_SESSION, SFREQ) if c.kind == CueKind.MOVE]
    epochs = compute_epochs(source_bundle.spec, data, cues)
    good = [spectra for spectra, verdict in zip(epochs.csds, epochs.verdicts) if verdict.ok]
    image = session_image(source_bundle.spec, [m for m, _ in good], [r for _, r in good])
    assert result.erd_db == pytest.approx(strongest_desynchronisation_db(source_bundle.spec, image), abs=1e-4)
    np.testing.assert_allclose(result.prediction_mm, source_bundle.predict(image)[0], atol=1e-4)


def test_the_same_subject_with_the_usual_erd_passes_the_erd_gate(source_bundle) -> None:
    result = run(source_bundle, SOURCE_SESSION, simulated_session_data(0), chunk_sizes=(125,))[0].result
    assert result.erd_db >= source_bundle.calibration.min_erd_db
    assert result.kind == "hotspot" and result.localised and result.reasons == []
    assert result.radius90_mm < prior_radius90(PRIOR)
def with_spec(bundle, **changes):
    """The same bundle with its contract's pipeline spec changed (e.g. its baseline)."""
    spec = dataclasses.replace(bundle.spec, **changes)
    return dataclasses.replace(bundle, contract=dataclasses.replace(bundle.contract, spec=spec))


def test_session_rest_bundle_pools_the_rest_cues_and_matches_the_offline_inputs(bundle) -> None:
    """A bundle whose pipeline pools the rest (edge.rest) gets every REST cue; trials equal compute_epochs."""
    pooled = with_spec(bundle, baseline_mode="session_rest", rest_window=(0.5, 2.5))
    data = eeg(session_length(SESSION) / SFREQ + 1, seed=4)
    session, recorder = run(pooled, SESSION, data, chunk_sizes=(1, 13, 250, 5))
    assert session.done and session.pipeline.n_rest_periods == SESSION.trials
    schedule = cue_schedule(SESSION, SFREQ)
    rests = [c.sample for c in schedule if c.kind == CueKind.REST]
    cues = [c.sample for c in schedule if c.kind == CueKind.MOVE]
    offline = compute_epochs(pooled.spec, data, cues, rests)
    positions = [r["position_mm"] for r in recorder.of(MessageType.TRIAL_RESULT)]
    np.testing.assert_allclose(positions, [pooled.predict(x)[0] for x in offline.inputs], atol=1e-6)
    with pytest.raises(HotspotError, match="rest_s is 3") as info:
        GuidedSession(SESSION, with_spec(pooled, rest_window=(0.5, 3.5)), Recorder())
    assert info.value.code == ErrorCode.BAD_CONFIG
