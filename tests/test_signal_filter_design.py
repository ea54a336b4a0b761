"""train.filter_design: quantised designs track SciPy's float64 filter at EEG amplitudes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from train.filter_design import default_filter, design_filter, main, reference_sos
from edge.errors import HotspotError, run_cli
from edge.fixedpoint import BiquadCascade, FixedPointFilter

SFREQ = 250.0
SECONDS = 40
SETTLE_S = 5


def realistic_eeg(seed: int = 3) -> np.ndarray:
    """40 s of EEG-like microvolts: 1/f-like background (15 uV rms), 10 uV mu at 10 Hz, 5 uV beta at 21 Hz."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SFREQ)
    background = signal.lfilter([1.0], [1.0, -0.95], rng.normal(size=n))
    t = np.arange(n) / SFREQ
    return 15.0 * background / background.std() + 10.0 * np.sin(2 * np.pi * 10 * t) + 5.0 * np.sin(2 * np.pi * 21 * t)


def passband_snr_db(design: dict, q_format: str, x_uv: np.ndarray, band: tuple[float, float]) -> float:
    """SNR (dB) of the fixed-point filter against float64 sosfilt of the unquantised design, inside ``band``."""
    spec = design_filter(SFREQ, q_format=q_format, **design)
    cascade = BiquadCascade(spec, 1)
    fixed = spec.to_fixed(x_uv[None, :])
    cascade.warm_start(fixed[:, 0])
    ours = spec.to_uv(cascade.process(fixed))[0]
    sos = reference_sos(SFREQ, **design)
    reference = signal.sosfilt(sos, x_uv, zi=signal.sosfilt_zi(sos) * x_uv[0])[0]
    settle = int(SETTLE_S * SFREQ)
    error_spectrum = np.abs(np.fft.rfft(ours[settle:] - reference[settle:])) ** 2
    signal_spectrum = np.abs(np.fft.rfft(reference[settle:])) ** 2
    freqs = np.fft.rfftfreq(len(reference) - settle, 1.0 / SFREQ)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return 10.0 * np.log10(signal_spectrum[inside].sum() / error_spectrum[inside].sum())


CASES = {
    "bandpass_8_30": (dict(l_freq=8.0, h_freq=30.0), (8.0, 30.0)),
    "notch_60": (dict(notch_freq=60.0), (1.0, 45.0)),
    "notch_50": (dict(notch_freq=50.0), (1.0, 40.0)),
    "highpass_1": (dict(l_freq=1.0, order=1), (2.0, 45.0)),
    "highpass_1_order2": (dict(l_freq=1.0, order=2), (2.0, 45.0)),
    "default": (dict(l_freq=6.0, h_freq=35.0, notch_freq=60.0), (6.0, 35.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_q31_passband_snr_at_least_100_db_with_cyton_dc_offset(case: str) -> None:
    design, band = CASES[case]
    x = realistic_eeg() + 61379.36  # the real Cyton file's DC offset on channel 0
    assert passband_snr_db(design, "q31", x, band) >= 100.0


@pytest.mark.parametrize("case", ["bandpass_8_30", "notch_60", "notch_50", "highpass_1", "default"])
def test_q15_passband_snr_at_least_60_db_on_offset_free_eeg(case: str) -> None:
    """q15 holds offset-free EEG only (full scale +-183 uV); its high-pass is first order (see the next test)."""
    design, band = CASES[case]
    assert passband_snr_db(design, "q15", realistic_eeg(), band) >= 60.0


def test_q15_second_order_high_pass_loses_to_rounding_noise_as_documented() -> None:
    """A second-order 1 Hz high-pass in q15 feeds each output rounding back through a pole pair at radius 0.98
    (+34 dB over 2-45 Hz, against +13 dB for the first-order pole): the README's reason for first order in q15."""
    design, band = CASES["highpass_1_order2"]
    first, second = (passband_snr_db(dict(design, order=order), "q15", realistic_eeg(), band) for order in (1, 2))
    assert second < 60.0 <= first
    assert first - second > 20.0


def test_quantised_response_matches_the_design() -> None:
    for q_format, tolerance in (("q31", 1e-6), ("q15", 2e-2)):
        spec = design_filter(SFREQ, 8.0, 30.0, 60.0, q_format=q_format)
        _, ours = signal.sosfreqz(spec.as_sos(), worN=512, fs=SFREQ)
        _, design = signal.sosfreqz(reference_sos(SFREQ, 8.0, 30.0, 60.0), worN=512, fs=SFREQ)
        np.testing.assert_allclose(np.abs(ours) / spec.gain, np.abs(design), atol=tolerance)


def test_design_places_zeros_and_shift_as_documented() -> None:
    spec = design_filter(SFREQ, 8.0, 30.0)
    b = spec.stage_coefficients[:, :3]
    np.testing.assert_array_equal(b[:, 0], -b[:, 2])  # every band-pass section is g * [1, 0, -1]
    np.testing.assert_array_equal(b[:, 1], 0)
    coefficients = spec.stage_coefficients / 2.0**31
    assert np.abs(coefficients).max() >= 0.5  # post_shift is the smallest that fits
    assert spec.gain == 64.0 and spec.post_shift >= 1
    assert design_filter(SFREQ, notch_freq=50.0).gain == 1.0  # DC passes: no gain


def test_default_filter_variants() -> None:
    assert "60 Hz" in default_filter(250.0).description
    assert "50 Hz" in default_filter(250.0, line_freq=50).description
    assert default_filter(250.0, q_format="q15").q_format == "q15"
    assert "notch" in default_filter(125.0).description  # Cyton + Daisy: 60 Hz is still below Nyquist
    assert "notch" not in default_filter(100.0).description
    with pytest.raises(HotspotError, match="50 or 60"):
        default_filter(250.0, line_freq=55)


@pytest.mark.parametrize("kwargs, message", [
    (dict(l_freq=30.0, h_freq=8.0), "l_freq < h_freq"),
    (dict(l_freq=200.0), "Nyquist"),
    (dict(), "at least one"),
    (dict(l_freq=1.0, order=0), "order"),
])
def test_bad_designs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(HotspotError, match=message):
        design_filter(SFREQ, **kwargs)


def test_command_line_prints_the_filter(capsys: pytest.CaptureFixture) -> None:
    assert main(["--sfreq", "250"]) == 0
    assert FixedPointFilter.from_dict(json.loads(capsys.readouterr().out)) == default_filter(250.0)
    assert main(["--sfreq", "250", "--l-freq", "8", "--h-freq", "30", "--q-format", "q15"]) == 0
    assert FixedPointFilter.from_dict(json.loads(capsys.readouterr().out)).q_format == "q15"
    assert run_cli(main, ["--sfreq", "250", "--l-freq", "300"]) == 2
    assert "Nyquist" in capsys.readouterr().err
