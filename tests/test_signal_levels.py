"""edge.levels: Welch PSD equals SciPy's, and each level means what levels.md says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import signal

from train.filter_design import default_filter
from edge.errors import HotspotError
from edge.levels import hann, level_input, rereference, welch_psd
from edge.online import OnlinePipeline
from edge.pipeline import PipelineSpec, compute_epochs

SFREQ = 250.0
CHANNELS = ("C3", "C1", "CP3")


@pytest.mark.parametrize("n, nperseg, noverlap", [(1000, 250, 125), (1000, 256, 0), (777, 101, 50), (500, 500, 0)])
def test_welch_matches_scipy_within_1e6_relative(n: int, nperseg: int, noverlap: int) -> None:
    x = np.random.default_rng(n + nperseg).normal(3.0, 20.0, (4, n))
    freqs, ours = welch_psd(x, SFREQ, nperseg, noverlap)
    ref_freqs, reference = signal.welch(x, fs=SFREQ, window="hann", nperseg=nperseg, noverlap=noverlap,
                                        detrend="constant", scaling="density", axis=-1)
    np.testing.assert_allclose(freqs, ref_freqs, rtol=0, atol=0)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=0)
    np.testing.assert_allclose(hann(nperseg), signal.get_window("hann", nperseg), rtol=0, atol=1e-15)


def test_welch_refuses_segments_longer_than_the_signal() -> None:
    with pytest.raises(HotspotError, match="nperseg"):
        welch_psd(np.zeros((1, 100)), SFREQ, 200, 100)


def mu_desynchronising_recording(seconds: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """A 10 Hz rhythm on C3 that drops to a quarter of its amplitude 0.5-3.5 s after every cue."""
    rng = np.random.default_rng(5)
    n = int(seconds * SFREQ)
    t = np.arange(n) / SFREQ
    cues = np.arange(int(4 * SFREQ), n - int(5 * SFREQ), int(6 * SFREQ))
    envelope = np.ones(n)
    for cue in cues:
        envelope[cue + int(0.5 * SFREQ):cue + int(3.5 * SFREQ)] = 0.25
    data = rng.normal(0.0, 2.0, (len(CHANNELS), n)) + 20000.0
    data[0] += 20.0 * envelope * np.sin(2 * np.pi * 10.0 * t)
    return data, cues


def test_erd_shows_mu_desynchronisation_after_the_cue() -> None:
    data, cues = mu_desynchronising_recording()
    spec = PipelineSpec(SFREQ, CHANNELS, "erd", default_filter(SFREQ), reference="none")
    epochs = compute_epochs(spec, data, cues)
    frame_centres = spec.tmin + (spec.erd_frame_starts + spec.erd_window_samples / 2) / SFREQ
    during = (frame_centres > 1.0) & (frame_centres < 3.0)
    mu_c3 = epochs.inputs[:, 0, :]  # band-major rows: mu of channel 0 first
    assert np.all(mu_c3[:, during] < -80.0)  # power drops to 1/16: ERD about -94 %
    assert np.abs(mu_c3[:, spec.erd_baseline_frames].mean()) < 5.0
    beta_rows = epochs.inputs[:, len(CHANNELS):, :]
    assert np.abs(beta_rows[:, :, during].mean()) < 40.0  # noise only: no systematic change


def test_movement_erd_is_the_erd_level_averaged_over_the_movement_period_online_too() -> None:
    # What a session logs per trial for the clinician's ERD topography: small numbers, no raw EEG.
    data, cues = mu_desynchronising_recording()
    psd_spec = PipelineSpec(SFREQ, CHANNELS, "psd", default_filter(SFREQ), reference="none")
    erd_spec = dataclasses.replace(psd_spec, level="erd")
    erd_levels = compute_epochs(erd_spec, data, cues).inputs
    starts = erd_spec.erd_frame_starts
    inside = (starts >= erd_spec.psd_slice.start) & (starts + erd_spec.erd_window_samples <= erd_spec.psd_slice.stop)
    expected = erd_levels[:, :, inside].mean(axis=2).reshape(len(cues), 2, len(CHANNELS))
    online = OnlinePipeline(psd_spec)
    for cue in cues:
        online.add_cue(int(cue))
    got = {}
    for start in range(0, data.shape[1], 97):
        online.push(data[:, start:start + 97])
        for cue, _, _ in online.pop_ready():
            got[cue] = online.pop_erd(cue)
    np.testing.assert_allclose(np.array([got[int(c)] for c in cues]), expected, rtol=1e-5, atol=1e-3)
    assert np.all(expected[:, 0, 0] < -60.0)  # mu ERD on the desynchronising channel
    assert online.pop_erd(int(cues[0])) is None  # handed out once
    raw = OnlinePipeline(dataclasses.replace(psd_spec, level="raw"))
    raw.add_cue(int(cues[0]))
    raw.push(data)
    assert raw.pop_ready() and raw.pop_erd(int(cues[0])) is None  # no filter: no ERD


def test_psd_level_peaks_at_the_rhythm_and_uses_the_movement_window() -> None:
    data, cues = mu_desynchronising_recording()
    spec = PipelineSpec(SFREQ, CHANNELS, "psd", default_filter(SFREQ), reference="none", psd_tmin=-2.0,
                        psd_tmax=0.0)
    epochs = compute_epochs(spec, data, cues)
    assert spec.psd_freqs[np.argmax(epochs.inputs[0, 0])] == 10.0
    after = compute_epochs(PipelineSpec(SFREQ, CHANNELS, "psd", default_filter(SFREQ), reference="none"), data, cues)
    ten = list(spec.psd_freqs).index(10.0)
    assert after.inputs[0, 0, ten] < epochs.inputs[0, 0, ten] - 0.8  # at least 6 dB less mu power moving


def test_time_levels_baseline_reference_and_decimation() -> None:
    data, cues = mu_desynchronising_recording()
    raw_spec = PipelineSpec(SFREQ, CHANNELS, "raw", default_filter(SFREQ), decim=1)
    raw = compute_epochs(raw_spec, data, cues).inputs
    np.testing.assert_allclose(raw[:, :, raw_spec.baseline_slice].mean(axis=2), 0.0, atol=1e-3)
    clean_spec = PipelineSpec(SFREQ, CHANNELS, "clean", default_filter(SFREQ), decim=5)
    clean = compute_epochs(clean_spec, data, cues).inputs
    assert clean.shape[2] == 300
    np.testing.assert_allclose(clean.sum(axis=1), 0.0, atol=1e-3)  # common average reference
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(rereference(x, "C1", CHANNELS), x - x[1])
    with pytest.raises(HotspotError, match="reference"):
        rereference(x, "Cz", CHANNELS)


def test_level_input_is_float32_of_the_declared_shape() -> None:
    rng = np.random.default_rng(0)
    for level in ("raw", "filtered", "clean", "erd", "psd"):
        spec = PipelineSpec(SFREQ, CHANNELS, level, default_filter(SFREQ))
        epoch = rng.normal(0.0, 10.0, (len(CHANNELS), spec.epoch_samples))
        out = level_input(spec, epoch, epoch)
        assert out.dtype == np.float32 and out.shape == spec.input_shape and np.all(np.isfinite(out))
        flat_baseline = epoch.copy()
        flat_baseline[:, spec.baseline_slice] = 0.0
        assert np.all(np.isfinite(level_input(spec, flat_baseline, flat_baseline)))
