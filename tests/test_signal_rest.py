"""The session-pooled rest baseline (edge.rest): right where pre-cue windows are contaminated, online == offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train.filter_design import default_filter
from edge.errors import HotspotError
from edge.levels import LEVELS
from edge.online import OnlinePipeline
from edge.pipeline import PipelineSpec, compute_epochs
from edge.rest import NO_REST_REASON
from edge.source import session_image
from train.source_space import build_source_space

SFREQ = 160.0
CHANNELS = ("C3", "Cz", "C4")
REST_S, MOVE_S = 4.0, 4.0


def alternating_recording(n_trials: int = 10, seed: int = 0, after_effect: float = 2.0):
    """A crafted eegmmidb-like run: rest 4 s, movement 4 s, hands alternating left, right, left, ...

    A 10 Hz rhythm sits on C3 and C4 (Cz holds background only). Moving a hand lowers the contralateral
    rhythm's amplitude to 0.6 (power -64 %). The last 2.5 s of every rest hold the *previous* (other) hand's
    after-effect: its contralateral rhythm at ``after_effect`` times its amplitude (a prolonged post-movement
    rebound), i.e. all of the pre-cue window -2 ... -0.5 s of the next cue. Pooled over the run's rest
    periods the after-effects of both hands balance out; before each cue they do not.

    Returns
    -------
    data : ndarray (3, n) in µV, rest_onsets, cues, hands
    """
    rng = np.random.default_rng(seed)
    trial = int((REST_S + MOVE_S) * SFREQ)
    n = n_trials * trial + int(2 * SFREQ)
    t = np.arange(n) / SFREQ
    envelope = np.ones((2, n))  # C3, C4
    hands = ["left" if k % 2 == 0 else "right" for k in range(n_trials)]
    rests = np.arange(n_trials) * trial
    cues = rests + int(REST_S * SFREQ)
    for k, (cue, hand) in enumerate(zip(cues, hands)):
        contra = 0 if hand == "right" else 1  # row of C3 / C4
        envelope[contra, cue:cue + int(MOVE_S * SFREQ)] = 0.6
        if k + 1 < n_trials:  # the next rest's last 2.5 s: this hand's after-effect
            following = cues[k + 1]
            envelope[contra, following - int(2.5 * SFREQ):following] = after_effect
    phase = rng.uniform(0, 2 * np.pi, 2)
    wobble = np.cumsum(rng.normal(0.0, 0.02, (2, n)), axis=1)  # a real rhythm's phase drifts
    rhythm = 20.0 * envelope * np.sin(2 * np.pi * 10.0 * t + phase[:, None] + wobble)
    data = rng.normal(0.0, 2.0, (3, n)) + 40000.0  # background and a DC offset
    data[0] += rhythm[0]
    data[2] += rhythm[1]
    return data, rests, cues, hands


def spec_for(level: str, mode: str, **extra) -> PipelineSpec:
    fields = dict(sfreq=SFREQ, channels=CHANNELS, level=level, filter=default_filter(SFREQ), reference="none",
                  tmin=-2.0, tmax=4.0, baseline_mode=mode)
    if level == "source":
        fields["source_space"] = build_source_space(CHANNELS)
    fields.update(extra)
    return PipelineSpec(**fields)


def contralateral_share(spec: PipelineSpec, data, rests, cues, hands) -> float:
    """Share of trials whose mean mu ERD over the movement is deeper on the contralateral side (C3 vs C4)."""
    epochs = compute_epochs(spec, data, cues, rests)
    ok = [verdict.ok for verdict in epochs.verdicts]
    frames = spec.erd_frame_starts
    movement = (frames >= spec.psd_slice.start) & (frames + spec.erd_window_samples <= spec.psd_slice.stop)
    mu = epochs.inputs[:, :len(CHANNELS), :][:, :, movement].mean(axis=2)  # band-major rows: mu first
    hand_of = dict(zip(cues.tolist(), hands))
    correct = [(mu[i, 0] < mu[i, 2]) == (hand_of[int(cue)] == "right")
               for i, cue in enumerate(epochs.cue_samples) if ok[i]]
    return float(np.mean(correct))


def test_pooled_rest_finds_the_side_where_pre_cue_windows_hold_the_other_hands_after_effect() -> None:
    data, rests, cues, hands = alternating_recording()
    later = cues[1:]  # the first cue has no previous movement
    assert contralateral_share(spec_for("erd", "pre_cue"), data, rests[1:], later, hands[1:]) == 0.0
    assert contralateral_share(spec_for("erd", "session_rest"), data, rests, later, hands[1:]) == 1.0
    # Rest windows clear of the after-effect (the first 1.5 s of each rest) find the side too.
    clear = spec_for("erd", "session_rest", rest_window=(0.5, 1.5))
    assert contralateral_share(clear, data, rests, later, hands[1:]) == 1.0
    # Without the after-effect both baselines find the side: the difference is the contaminated window.
    clean = alternating_recording(after_effect=1.0)
    assert contralateral_share(spec_for("erd", "pre_cue"), clean[0], clean[1][1:], clean[2][1:], clean[3][1:]) == 1.0


def test_erd_baseline_with_the_pooled_rest_and_its_pre_cue_version() -> None:
    from train.baselines import erd_map, trial_erd
    from train.dataset import Recording

    data, rests, cues, hands = alternating_recording()
    events = np.concatenate([np.c_[rests, np.full(len(rests), 1)],
                             np.c_[cues, [2 if hand == "left" else 3 for hand in hands]]])
    recording = Recording("sub-x", "run-1", data, SFREQ, list(CHANNELS), np.full((3, 3), np.nan),
                          events[np.argsort(events[:, 0], kind="stable")], {"T0": 1, "T1": 2, "T2": 3})
    for cue, hand in (("T1", "left"), ("T2", "right")):
        pre_cue = erd_map([recording], ["C3", "C4"], cue)
        pooled = erd_map([recording], ["C3", "C4"], cue, rest_event="T0")
        contra = 0 if hand == "right" else 1
        assert pooled[contra] > 0.5 and pooled[contra] > pooled[1 - contra] + 0.1  # contralateral drop
        assert pre_cue[1 - contra] > pre_cue[contra]  # the contaminated baseline names the wrong side
        per_trial = trial_erd([recording], ["C3", "C4"], cue, rest_event="T0")
        assert per_trial.shape == (len(recording.cue_samples(cue)), 2)
        assert np.all(per_trial[:, contra] > per_trial[:, 1 - contra])
    # a run in which the quality gate kept no trial of this hand (and one that kept some) gives no rows for it
    kept = [np.zeros(0, dtype=np.int64), recording.cue_samples("T1")[:2]]
    assert trial_erd([recording, recording], ["C3", "C4"], "T1", rest_event="T0", cue_samples=kept).shape == (2, 2)
    assert trial_erd([recording], ["C3", "C4"], "T1", cue_samples=kept[:1]).shape == (0, 2)


def test_an_epoch_before_any_rest_is_rejected_and_bad_rest_windows_are_not_pooled() -> None:
    data, rests, cues, _ = alternating_recording(n_trials=4)
    spec = spec_for("erd", "session_rest")
    epochs = compute_epochs(spec, data, cues, rests[1:])  # the second rest's window ends after the first epoch
    first = epochs.verdicts[0]
    assert not first.ok and NO_REST_REASON in first.reasons and not first.rejected
    assert not np.any(epochs.inputs[0]) and all(v.ok for v in epochs.verdicts[1:])
    spoiled = data.copy()
    spoiled[0, rests[2] + 100:rests[2] + 110] += 3000.0  # an electrode pop inside the third rest window
    online = OnlinePipeline(spec)
    for onset in rests:
        online.add_rest(int(onset))
    online.push(spoiled)
    assert len(online._rests) == len(rests) and online.n_rest_periods == len(rests) - 1
    clean_pool = compute_epochs(spec, data, cues[3:], rests)
    spoiled_pool = compute_epochs(spec, spoiled, cues[3:], np.delete(rests, 2))
    without = compute_epochs(spec, spoiled, cues[3:], rests)
    np.testing.assert_array_equal(without.inputs, spoiled_pool.inputs)  # the bad window is left out
    assert not np.array_equal(without.inputs, clean_pool.inputs)


def run_online(spec: PipelineSpec, data: np.ndarray, cues, rests, chunk_sizes: list[int], cue_lead: int,
               rest_lead: int) -> tuple[OnlinePipeline, list]:
    """Push ``data`` in chunks; cues and rest onsets are announced ``*_lead`` samples before they arrive.

    A rest is announced no later than its window's end (``rest_lead`` >= -end offset), as the device does.
    """
    online = OnlinePipeline(spec)
    ready, position, step = [], 0, 0
    pending_cues, pending_rests = list(cues), list(rests)
    while position < data.shape[1]:
        size = chunk_sizes[step % len(chunk_sizes)]
        step += 1
        online.push(data[:, position:position + size])
        position += size
        while pending_rests and pending_rests[0] - rest_lead <= position:
            online.add_rest(int(pending_rests.pop(0)))
        while pending_cues and pending_cues[0] - cue_lead <= position:
            online.add_cue(int(pending_cues.pop(0)))
        ready.extend(online.pop_ready())
    for rest in pending_rests:  # announced after the stream's last sample: still in the buffer
        online.add_rest(int(rest))
    for cue in pending_cues:
        online.add_cue(int(cue))
    ready.extend(online.pop_ready())
    return online, ready


@pytest.mark.parametrize("level", LEVELS)
def test_online_equals_offline_with_the_pooled_rest_for_every_level(level: str) -> None:
    data, rests, cues, _ = alternating_recording(n_trials=6, seed=2)
    data[1, 2700:2703] = np.nan  # a few lost samples inside the third rest window
    spec = spec_for(level, "session_rest")
    offline = compute_epochs(spec, data, cues, rests)
    assert len(offline.cue_samples) == len(cues) and offline.inputs.shape[1:] == spec.input_shape
    assert all(verdict.ok for verdict in offline.verdicts)
    for cue_lead, rest_lead in ((2000, 2000), (0, 0), (-700, -200)):
        online, ready = run_online(spec, data, cues, rests, [37, 1, 250, 400, 9], cue_lead, rest_lead)
        assert [cue for cue, _, _ in ready] == list(offline.cue_samples)
        for (_, inputs, verdict), expected, expected_verdict in zip(ready, offline.inputs, offline.verdicts):
            np.testing.assert_array_equal(inputs, expected)
            assert verdict == expected_verdict
        if level == "source":
            online_csds = [online.csds[int(cue)] for cue in offline.cue_samples]
            for (move, rest), (move_off, rest_off) in zip(online_csds, offline.csds):
                np.testing.assert_array_equal(move, move_off)
                np.testing.assert_array_equal(rest, rest_off)
            np.testing.assert_array_equal(session_image(spec, *zip(*online_csds)),
                                          session_image(spec, *zip(*offline.csds)))


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=6),
       cue_lead=st.integers(min_value=-1000, max_value=3000), rest_lead=st.integers(min_value=-240, max_value=3000))
def test_any_chunking_and_cue_and_rest_timing_gives_offline_inputs(chunks: list[int], cue_lead: int,
                                                                  rest_lead: int) -> None:
    data, rests, cues, _ = alternating_recording(n_trials=4, seed=3)
    spec = spec_for("erd", "session_rest")
    offline = compute_epochs(spec, data, cues, rests)
    online, ready = run_online(spec, data, cues, rests, chunks, cue_lead, rest_lead)
    assert [cue for cue, _, _ in ready] == list(offline.cue_samples)
    for (cue, inputs, verdict), expected, expected_verdict in zip(ready, offline.inputs, offline.verdicts):
        np.testing.assert_array_equal(inputs, expected)
        assert verdict == expected_verdict
        erd = online.pop_erd(cue)
        assert erd is not None and erd.shape == (2, len(CHANNELS))


def test_rest_onsets_are_ignored_by_a_pre_cue_baseline_and_late_ones_are_dropped() -> None:
    data, rests, cues, _ = alternating_recording(n_trials=4)
    pre_cue = spec_for("erd", "pre_cue")
    online = OnlinePipeline(pre_cue)
    assert online.add_rest(0) and not online._pending_rests
    np.testing.assert_array_equal(compute_epochs(pre_cue, data, cues, rests).inputs,
                                  compute_epochs(pre_cue, data, cues).inputs)
    online = OnlinePipeline(spec_for("erd", "session_rest"), buffer_seconds=2.0)
    online.push(data[:, :4000])
    assert not online.add_rest(int(rests[0])) and online.dropped_rests == [int(rests[0])]
    with pytest.raises(HotspotError, match="rest onsets"):
        compute_epochs(spec_for("erd", "session_rest"), data, cues)


def test_spec_states_and_validates_its_baseline() -> None:
    spec = spec_for("erd", "session_rest", tmin=0.0)
    assert spec.input_shape == (6, 15)  # 0 ... 4 s at 160 Hz: no pre-cue part is needed
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict()["baseline_mode"] == "session_rest"
    assert spec.to_dict()["rest_window"] == [0.5, 3.5]
    assert PipelineSpec(SFREQ, CHANNELS, "erd", default_filter(SFREQ)).baseline_mode == "pre_cue"
    for bad, message in [(dict(baseline_mode="post_cue"), "baseline_mode"),
                         (dict(rest_window=(1.0, 1.2)), "shorter than an ERD frame"),
                         (dict(rest_window=(-0.5, 1.0)), "rest_window"),
                         (dict(tmin=0.0, baseline_mode="pre_cue"), "baseline")]:
        with pytest.raises(HotspotError, match=message):
            spec_for("erd", "session_rest", **bad)
    with pytest.raises(HotspotError, match="source_rest"):
        spec_for("source", "session_rest", source_rest=(-2.0, -0.5))
