"""edge.pipeline: offline compute_epochs and the online ring buffer give identical inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train.filter_design import default_filter
from edge.errors import ErrorCode, HotspotError
from edge.fixedpoint import BiquadCascade
from edge.levels import LEVELS
from edge.online import OnlinePipeline
from edge.pipeline import PipelineSpec, compute_epochs, compute_epochs_many
from edge.source import session_image
from train.source_space import build_source_space

SFREQ = 250.0
CHANNELS = ("FC3", "C5", "C3", "C1", "CP3")
FILTER = default_filter(SFREQ)
SOURCE_SPACE = build_source_space(CHANNELS)


def recording(seed: int = 0, seconds: float = 40.0) -> np.ndarray:
    """Cyton-like microvolts: per-channel DC offsets, slow drift, EEG-sized noise, a few lost samples."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    offsets = rng.uniform(-60000.0, 60000.0, (len(CHANNELS), 1))
    drift = np.cumsum(rng.normal(0.0, 0.5, (len(CHANNELS), n)), axis=1)
    data = offsets + drift + rng.normal(0.0, 15.0, (len(CHANNELS), n))
    data[1, 2000:2004] = np.nan
    return data


CUES = np.array([300, 1200, 2600, 4100, 5500, 7000, 8700, 9900])  # the first and last do not fit


def run_online(spec: PipelineSpec, data: np.ndarray, cues: np.ndarray, chunk_sizes: list[int],
               cue_lead: int) -> tuple[OnlinePipeline, list]:
    """Push ``data`` in chunks; each cue is added ``cue_lead`` samples before (negative: after) it arrives."""
    online = OnlinePipeline(spec)
    ready, position, next_cue, step = [], 0, 0, 0
    while position < data.shape[1]:
        size = chunk_sizes[step % len(chunk_sizes)]
        step += 1
        online.push(data[:, position:position + size])
        position += size
        while next_cue < len(cues) and cues[next_cue] - cue_lead <= position:
            online.add_cue(int(cues[next_cue]))
            next_cue += 1
        ready.extend(online.pop_ready())
    return online, ready


@pytest.mark.parametrize("level", LEVELS)
def test_online_equals_offline_for_every_level(level: str) -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, level, FILTER, source_space=SOURCE_SPACE if level == "source" else None)
    data = recording()
    offline = compute_epochs(spec, data, CUES)
    assert offline.inputs.shape == (6, *spec.input_shape) and offline.inputs.dtype == np.float32
    np.testing.assert_array_equal(offline.cue_samples, CUES[1:-1])
    for cue_lead in (1000, 0, -700):  # cue known long before, at, and well after its own sample
        online, ready = run_online(spec, data, CUES, [37, 1, 250, 400, 9], cue_lead)
        assert [cue for cue, _, _ in ready] == list(CUES[1:-1])
        for (cue, inputs, verdict), expected, expected_verdict in zip(ready, offline.inputs, offline.verdicts):
            np.testing.assert_array_equal(inputs, expected)
            assert verdict == expected_verdict
        assert online.dropped_cues == [300]  # starts before the stream
        if level == "source":  # the session image from the trials' cross-spectra is the same too
            online_csds = [online.csds[int(cue)] for cue in offline.cue_samples]
            for (move, rest), (move_off, rest_off) in zip(online_csds, offline.csds):
                np.testing.assert_array_equal(move, move_off)
                np.testing.assert_array_equal(rest, rest_off)
            np.testing.assert_array_equal(session_image(spec, *zip(*online_csds)),
                                          session_image(spec, *zip(*offline.csds)))
        else:
            assert offline.csds is None and not online.csds


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=6),
       cue_lead=st.integers(min_value=-1500, max_value=3000))
def test_any_chunking_and_cue_timing_gives_offline_inputs(chunks: list[int], cue_lead: int) -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "psd", FILTER)
    data = recording(seed=1, seconds=24.0)
    cues = np.array([700, 2300, 3900])
    offline = compute_epochs(spec, data, cues)
    _, ready = run_online(spec, data, cues, chunks, cue_lead)
    assert [cue for cue, _, _ in ready] == list(offline.cue_samples)
    for (_, inputs, _), expected in zip(ready, offline.inputs):
        np.testing.assert_array_equal(inputs, expected)


def test_filtered_level_is_the_continuous_fixed_point_filter_sliced() -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "filtered", FILTER, decim=1)
    data = recording()
    cascade = BiquadCascade(FILTER, len(CHANNELS))
    held = data.copy()
    held[1, 2000:2004] = held[1, 1999]  # lost samples hold the last valid one
    fixed = FILTER.to_fixed(held)
    cascade.warm_start(fixed[:, 0])
    expected = FILTER.to_uv(cascade.process(fixed))
    epochs = compute_epochs(spec, data, [2600])
    start = 2600 + spec.epoch_offset
    np.testing.assert_array_equal(epochs.inputs[0], expected[:, start:start + spec.epoch_samples].astype(np.float32))


def test_channel_starting_with_lost_samples_is_warm_started_at_its_first_valid_sample() -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "filtered", FILTER, decim=1)
    data = recording(seed=6, seconds=20.0)
    data[2, :700] = np.nan  # C3 delivers nothing for 2.8 s, then its 10s-of-mV offset appears at once
    epochs = compute_epochs(spec, data, [1200, 2800])
    assert np.abs(epochs.inputs).max() < 200.0  # no step transient of tens of millivolts
    for chunks in ([699, 1, 5000], [350, 351, 8], [4999]):
        _, ready = run_online(spec, data, np.array([1200, 2800]), chunks, cue_lead=0)
        for (_, inputs, _), expected in zip(ready, epochs.inputs):
            np.testing.assert_array_equal(inputs, expected)


def test_many_recordings_side_by_side_equal_one_at_a_time() -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "clean", FILTER)
    recordings = [(recording(seed, seconds), cues) for seed, seconds, cues in
                  [(2, 30.0, [1000, 5000]), (3, 12.0, [800, 2400]), (4, 20.0, [600, 4400, 4900])]]
    together = compute_epochs_many(spec, recordings, batch_samples=2 * len(CHANNELS) * 7500)  # two batches
    for (raw, cues), many in zip(recordings, together):
        one = compute_epochs(spec, raw, cues)
        np.testing.assert_array_equal(many.inputs, one.inputs)
        np.testing.assert_array_equal(many.cue_samples, one.cue_samples)
        assert many.verdicts == one.verdicts


def test_late_cue_beyond_the_buffer_is_dropped_and_lost_samples_are_reported() -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "clean", FILTER)
    online = OnlinePipeline(spec, buffer_seconds=2.0)
    data = recording()
    online.push(data[:, :5000])
    assert online.add_cue(4000)  # still buffered: its epoch ended 4000 + 1000 = 5000
    assert not online.add_cue(1200)  # long gone
    assert online.dropped_cues == [1200]
    online.push(data[:, 5000:])
    [(cue, _, verdict)] = online.pop_ready()
    assert cue == 4000 and verdict.ok
    lossy = compute_epochs(spec, data, [2100]).verdicts[0]
    assert "lost" in lossy.per_channel["C5"] and lossy.ok  # 4 of 1500 samples: under the 2 % limit


def test_spec_round_trip_shapes_and_validation() -> None:
    spec = PipelineSpec(SFREQ, CHANNELS, "erd", FILTER)
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert spec.input_shape == (2 * len(CHANNELS), 23)
    assert PipelineSpec(SFREQ, CHANNELS, "raw", FILTER).input_shape == (5, 750)
    assert PipelineSpec(SFREQ, CHANNELS, "psd", FILTER).input_shape == (5, 30)
    source = PipelineSpec(SFREQ, CHANNELS, "source", FILTER, source_space=SOURCE_SPACE)
    assert source.input_shape == (4 * 13, 13)
    assert PipelineSpec.from_dict(json.loads(json.dumps(source.to_dict())), source_space=SOURCE_SPACE) == source
    with pytest.raises(HotspotError, match="source_space"):
        PipelineSpec.from_dict(json.loads(json.dumps(source.to_dict())))
    with pytest.raises(HotspotError, match="source space"):
        PipelineSpec(SFREQ, CHANNELS, "source", FILTER)
    with pytest.raises(HotspotError, match="source_move"):
        PipelineSpec(SFREQ, CHANNELS, "source", FILTER, source_space=SOURCE_SPACE, source_move=(3.0, 4.5))
    for bad, message in [(dict(level="spectrum"), "level"), (dict(tmin=1.0), "tmin <= 0"),
                         (dict(baseline=(-3.0, 0.0)), "baseline"), (dict(reference="Cz"), "reference"),
                         (dict(psd_nperseg=2000), "psd_nperseg"), (dict(channels=("C3", "C3")), "distinct")]:
        with pytest.raises(HotspotError, match=message):
            PipelineSpec(**{**dict(sfreq=SFREQ, channels=CHANNELS, level="psd", filter=FILTER), **bad})
    with pytest.raises(HotspotError, match="unknown keys"):
        PipelineSpec.from_dict({**spec.to_dict(), "window": 3})
    with pytest.raises(HotspotError, match="channels in spec order"):
        compute_epochs(spec, np.zeros((3, 100)), [50])


@pytest.mark.parametrize("key, value, message", [
    ("tmax", 1e300, "tmax = 1e+300 must be in -60.0..60.0"), ("tmin", float("-inf"), "tmin = -inf must be in"),
    ("sfreq", float("nan"), "sfreq = nan must be in 1.0..16000.0"), ("sfreq", 1e9, "sfreq = 1000000000.0 must be"),
    ("erd_window", float("inf"), "erd_window = inf must be in"), ("rest_window", [0.5, 1e300], "rest_window = 1e+300"),
    ("source_rest", [-1.0, float("inf")], "source_rest = inf"), ("decim", 2.5, "decim = 2.5 must be an integer"),
    ("psd_nperseg", True, "psd_nperseg = True must be an integer"), ("decim", 10 ** 9, "decim must be between 1 and"),
])
def test_a_described_pipeline_out_of_physical_bounds_is_one_clear_refusal(key: str, value, message: str) -> None:
    """Times beyond a minute, rates beyond the ADS1299's, non-integer sample counts: refused before any seconds
    become samples (1e300 s would otherwise be an unallocatable epoch, inf an OverflowError)."""
    described = {**PipelineSpec(SFREQ, CHANNELS, "erd", FILTER).to_dict(), key: value}
    with pytest.raises(HotspotError) as caught:
        PipelineSpec.from_dict(json.loads(json.dumps(described)))
    assert caught.value.code is ErrorCode.BAD_CONFIG
    assert message in str(caught.value) and "\n" not in str(caught.value)
