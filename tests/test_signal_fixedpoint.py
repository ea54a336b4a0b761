"""edge.fixedpoint against CMSIS-DSP's own C code (the cmsisdsp package), bit for bit."""

from __future__ import annotations

import zlib

import cmsisdsp
import numpy as np
import pytest
from scipy import signal
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.board import ads1299_uv_per_count
from edge.errors import HotspotError
from edge.fixedpoint import BiquadCascade, FixedPointFilter, counts_to_fixed, fixed_to_counts, fixed_to_uv, uv_to_fixed
from train.filter_design import design_filter

SFREQ = 250.0
DESIGNS = {
    "bandpass_8_30": dict(l_freq=8.0, h_freq=30.0),
    "bandpass_8_30_order4": dict(l_freq=8.0, h_freq=30.0, order=4),
    "notch_50": dict(notch_freq=50.0),
    "notch_60": dict(notch_freq=60.0),
    "highpass_1": dict(l_freq=1.0),
    "highpass_1_order1": dict(l_freq=1.0, order=1),
    "lowpass_40": dict(h_freq=40.0),
    "default_like": dict(l_freq=6.0, h_freq=35.0, notch_freq=60.0),
}


def cmsis_filter(spec: FixedPointFilter, x: np.ndarray, blocks: int = 1) -> np.ndarray:
    """Run CMSIS-DSP's arm_biquad_cascade_df1_{q31,q15} on one channel, in ``blocks`` calls."""
    if spec.q_format == "q31":
        instance, dtype = cmsisdsp.arm_biquad_casd_df1_inst_q31(), np.int32
        cmsisdsp.arm_biquad_cascade_df1_init_q31(instance, spec.n_stages, np.array(spec.coeffs, dtype),
                                                 np.zeros(4 * spec.n_stages, dtype), spec.post_shift)
        run = cmsisdsp.arm_biquad_cascade_df1_q31
    else:
        instance, dtype = cmsisdsp.arm_biquad_casd_df1_inst_q15(), np.int16
        cmsisdsp.arm_biquad_cascade_df1_init_q15(instance, spec.n_stages, np.array(spec.coeffs, dtype),
                                                 np.zeros(4 * spec.n_stages, dtype), spec.post_shift)
        run = cmsisdsp.arm_biquad_cascade_df1_q15
    parts = np.array_split(x.astype(dtype), blocks)
    return np.concatenate([np.asarray(run(instance, part), dtype=np.int64) for part in parts])


def random_input(rng: np.random.Generator, q_format: str, n_channels: int, n: int, level: float) -> np.ndarray:
    """Random integers: Gaussian at ``level`` of full scale plus a few full-scale spikes."""
    top = (1 << (31 if q_format == "q31" else 15))
    x = rng.normal(0.0, level * top, (n_channels, n))
    spikes = rng.random((n_channels, n)) < 0.01
    x[spikes] = rng.choice([-top, top - 1], size=spikes.sum())
    return np.clip(np.rint(x), -top, top - 1).astype(np.int64)


@pytest.mark.parametrize("q_format", ["q31", "q15"])
@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_bit_exact_with_cmsis_dsp(q_format: str, design: str) -> None:
    spec = design_filter(SFREQ, q_format=q_format, **DESIGNS[design])
    rng = np.random.default_rng(zlib.crc32(f"{q_format}{design}".encode()))
    n_channels = 3
    for level in (0.01, 0.3, 1.0):  # 1.0: stage outputs wrap (q31) or saturate (q15)
        x = random_input(rng, q_format, n_channels, 700, level)
        ours = BiquadCascade(spec, n_channels).process(x)
        for channel in range(n_channels):
            np.testing.assert_array_equal(ours[channel], cmsis_filter(spec, x[channel], blocks=3))


@pytest.mark.parametrize("q_format", ["q31", "q15"])
def test_overflow_cases_are_exercised_and_exact(q_format: str) -> None:
    """Full-scale input through a gain-64/2 band-pass: q31 must wrap and q15 must saturate, like CMSIS."""
    spec = design_filter(SFREQ, 8.0, 30.0, q_format=q_format)
    top = 1 << (31 if q_format == "q31" else 15)
    t = np.arange(2000)
    x = np.where(np.sin(2 * np.pi * 15 * t / SFREQ) >= 0, top - 1, -top)[None, :]
    ours = BiquadCascade(spec, 1).process(x)[0]
    np.testing.assert_array_equal(ours, cmsis_filter(spec, x[0]))
    ideal = signal.sosfilt(spec.as_sos(), x[0].astype(float))
    assert np.abs(ideal).max() > 2 * top  # the exact result does not fit: CMSIS must wrap or saturate
    if q_format == "q15":
        assert np.sum(np.abs(ours) >= top - 1) > 10  # saturated
    else:
        assert np.sum(np.sign(ours) != np.sign(ideal)) > 10  # wrapped around


def test_random_coefficients_and_post_shifts_are_exact() -> None:
    rng = np.random.default_rng(7)
    for q_format, top, per_stage in (("q31", 1 << 31, 5), ("q15", 1 << 15, 6)):
        for post_shift in (0, 1, 3):
            n_stages = 3
            coeffs = rng.integers(-top // 2, top // 2, size=(n_stages, per_stage))
            if q_format == "q15":
                coeffs[:, 1] = 0
            spec = FixedPointFilter(q_format, tuple(coeffs.ravel()), post_shift, n_stages, 1.0)
            x = random_input(rng, q_format, 2, 300, 0.5)
            ours = BiquadCascade(spec, 2).process(x)
            for channel in range(2):
                np.testing.assert_array_equal(ours[channel], cmsis_filter(spec, x[channel]))


@settings(max_examples=40, deadline=None)
@given(splits=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
       q_format=st.sampled_from(["q31", "q15"]), seed=st.integers(0, 2**16))
def test_any_split_into_chunks_gives_identical_integers(splits: list[int], q_format: str, seed: int) -> None:
    spec = design_filter(SFREQ, 6.0, 35.0, 60.0, q_format=q_format)
    x = random_input(np.random.default_rng(seed), q_format, 2, 400, 0.2)
    whole = BiquadCascade(spec, 2).process(x)
    chunked = BiquadCascade(spec, 2)
    bounds = [0, *sorted(splits), x.shape[1]]
    pieces = [chunked.process(x[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def test_state_has_cmsis_layout_and_reset_restarts() -> None:
    spec = design_filter(SFREQ, 8.0, 30.0)
    cascade = BiquadCascade(spec, 2)
    x = random_input(np.random.default_rng(1), "q31", 2, 50, 0.1)
    y = cascade.process(x)
    state = cascade.state
    assert state.shape == (2, spec.n_stages, 4)
    np.testing.assert_array_equal(state[:, 0, 0], x[:, -1])  # stage 0: x[n-1], x[n-2], y[n-1], y[n-2]
    np.testing.assert_array_equal(state[:, 0, 1], x[:, -2])
    np.testing.assert_array_equal(state[:, -1, 2], y[:, -1])
    np.testing.assert_array_equal(state[:, -1, 3], y[:, -2])
    cascade.reset()
    np.testing.assert_array_equal(cascade.process(x), y)


def test_warm_start_removes_the_dc_transient() -> None:
    spec = design_filter(SFREQ, 6.0, 35.0, 60.0)
    offset = spec.to_fixed(np.array([[61379.36], [-21309.75]]))  # the real Cyton file's first offsets
    x = np.repeat(offset, 500, axis=1)
    cold = spec.to_uv(BiquadCascade(spec, 2).process(x))
    warm_cascade = BiquadCascade(spec, 2)
    warm_cascade.warm_start(x[:, 0])
    warm = spec.to_uv(warm_cascade.process(x))
    assert np.abs(cold).max() > 1000.0  # a 60 mV step rings through the band-pass
    assert np.abs(warm).max() < 0.01  # microvolts


def test_scaling_round_trip_and_exact_counts() -> None:
    spec = design_filter(SFREQ, 8.0, 30.0)
    counts = np.array([-(2**23), -1, 0, 1, 12345, 2**23 - 1])
    np.testing.assert_array_equal(counts_to_fixed(counts, spec.full_scale_uv), counts * 64)
    np.testing.assert_allclose(fixed_to_counts(counts * 64, spec.full_scale_uv), counts, rtol=1e-12)
    uv = counts * ads1299_uv_per_count()
    np.testing.assert_allclose(fixed_to_uv(uv_to_fixed(uv, spec.full_scale_uv), spec.full_scale_uv), uv,
                               atol=spec.full_scale_uv / 2**31)
    assert uv_to_fixed(np.array([1e12, -1e12, np.nan]), 100.0, "q15").tolist() == [32767, -32768, 0]


def test_filter_description_round_trip_and_validation() -> None:
    spec = design_filter(SFREQ, 8.0, 30.0, 50.0, q_format="q15")
    assert FixedPointFilter.from_dict(spec.to_dict()) == spec
    with pytest.raises(HotspotError, match="coefficients per stage"):
        FixedPointFilter("q31", (1, 2, 3), 0, 1, 1.0)
    with pytest.raises(HotspotError, match="padding 0"):
        FixedPointFilter("q15", (1, 5, 1, 1, 1, 1), 0, 1, 1.0)
    with pytest.raises(HotspotError, match="fit in q15"):
        FixedPointFilter("q15", (40000, 0, 1, 1, 1, 1), 0, 1, 1.0)
    with pytest.raises(HotspotError, match="unknown fixed-point format"):
        FixedPointFilter("q7", (1,), 0, 1, 1.0)
    with pytest.raises(HotspotError, match="malformed"):
        FixedPointFilter.from_dict({"q_format": "q31"})
    with pytest.raises(HotspotError, match="block of samples"):
        BiquadCascade(spec, 2).process(np.zeros((3, 4), dtype=np.int64))
