"""Source time courses: spectrally shaped noise (1/f, rhythms, bands) and task modulation.

All noise is made in the frequency domain (one inverse real FFT per batch of series), so a
whole session is a few vectorised array operations. For a spectral amplitude shape ``H`` on
the rFFT grid, :func:`shaped_noise` returns series whose one-sided power spectral density is
``2 |H(f)|^2 / sfreq`` and whose variance over a band is ``(2 / n) * sum(|H|^2 over the band)``
(:func:`band_variance`), which lets the simulator calibrate amplitudes analytically. The FFT
runs on a fast length (:func:`fft_length`, >= n) and the series are cropped to n samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft


def fft_length(n_samples: int) -> int:
    """The FFT length used for series of ``n_samples`` (a fast size >= n_samples)."""
    return scipy.fft.next_fast_len(n_samples, real=True)


def frequencies(n_samples: int, sfreq: float) -> np.ndarray:
    """The rFFT frequency grid on which shapes for series of ``n_samples`` are given."""
    return np.fft.rfftfreq(fft_length(n_samples), 1.0 / sfreq)


def powerlaw_shape(freqs: np.ndarray, exponent: float, band: tuple[float, float]) -> np.ndarray:
    """Amplitude shape of 1/f^exponent power inside ``band`` (zero outside)."""
    shape = np.zeros_like(freqs)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    shape[inside] = freqs[inside] ** (-exponent / 2.0)
    return shape


def peak_shape(freqs: np.ndarray, centre_hz: float, fwhm_hz: float) -> np.ndarray:
    """Gaussian amplitude shape with power FWHM ``fwhm_hz`` and peak 1 at ``centre_hz``."""
    sigma_power = fwhm_hz / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.exp(-0.25 * ((freqs - centre_hz) / sigma_power) ** 2)


def band_shape(freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Flat amplitude shape 1 inside ``band`` (inclusive), 0 outside."""
    return ((freqs >= band[0]) & (freqs <= band[1])).astype(float)


def band_variance(shape: np.ndarray, freqs: np.ndarray, band: tuple[float, float], n_samples: int) -> float:
    """Expected variance, within ``band``, of :func:`shaped_noise` made with ``shape``."""
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return float(2.0 / fft_length(n_samples) * np.sum(shape[inside] ** 2))


def shaped_noise(rng: np.random.Generator, shapes: np.ndarray, n_samples: int) -> np.ndarray:
    """Gaussian noise series with the given spectral amplitude shapes.

    Parameters
    ----------
    rng : numpy Generator
    shapes : ndarray, shape (n_series, n_freqs) or (n_freqs,)
        Amplitude shape per series on the grid of :func:`frequencies` (one series when 1-D).
    n_samples : int

    Returns
    -------
    ndarray, shape (n_series, n_samples)
        One-sided PSD ``2 |shape|^2 / sfreq`` per series.
    """
    shapes = np.atleast_2d(shapes)
    length = fft_length(n_samples)
    active = np.flatnonzero(np.any(shapes > 1e-9 * shapes.max(), axis=0))  # random numbers only where needed
    spectrum = np.zeros((shapes.shape[0], length // 2 + 1), dtype=complex)
    size = (shapes.shape[0], len(active))
    spectrum[:, active] = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) * shapes[:, active]
    spectrum *= np.sqrt(length / 2.0)
    return scipy.fft.irfft(spectrum, n=length, axis=-1)[:, :n_samples]


def unit_band_noise(rng: np.random.Generator, n_series: int, n_samples: int, sfreq: float,
                    band: tuple[float, float]) -> np.ndarray:
    """Band-limited Gaussian noise with unit variance (expected) per series."""
    freqs = frequencies(n_samples, sfreq)
    shape = band_shape(freqs, band)
    variance = band_variance(shape, freqs, band, n_samples)
    return shaped_noise(rng, np.broadcast_to(shape, (n_series, len(freqs))), n_samples) / np.sqrt(variance)


@dataclass(frozen=True)
class TrialModulation:
    """Per-trial parameters of one generator's task modulation (power gains).

    Attributes
    ----------
    depth : ndarray, shape (n_trials,)
        ERD depth, a fraction of power (0 = none).
    onset_s : ndarray, shape (n_trials,)
        ERD onset after the movement cue.
    rebound : ndarray, shape (n_trials,)
        Post-movement rebound, extra power fraction at its peak (0 = none).
    rebound_peak_s : ndarray, shape (n_trials,)
        Rebound peak time after the movement end.
    """

    depth: np.ndarray
    onset_s: np.ndarray
    rebound: np.ndarray
    rebound_peak_s: np.ndarray


def power_gain(n_samples: int, sfreq: float, cues: np.ndarray, stops: np.ndarray, modulation: TrialModulation,
               ramp_tau_s: float, rebound_fwhm_s: float) -> np.ndarray:
    """Power gain over a whole recording: 1 at rest, ERD during movement, rebound after it.

    ERD ramps in with time constant ``ramp_tau_s`` from cue + onset, and recovers with the same
    time constant after the movement end; the rebound is a Gaussian bump of FWHM
    ``rebound_fwhm_s`` peaking ``rebound_peak_s`` after the movement end.

    Parameters
    ----------
    n_samples : int
    sfreq : float
    cues, stops : ndarray of int, shape (n_trials,)
        Sample of each movement cue and movement end, increasing.
    modulation : TrialModulation
    ramp_tau_s, rebound_fwhm_s : float

    Returns
    -------
    ndarray, shape (n_samples,)
    """
    samples = np.arange(n_samples)
    trial = np.searchsorted(cues, samples, side="right") - 1
    inside = trial >= 0
    index = np.clip(trial, 0, None)
    since_cue = (samples - cues[index]) / sfreq
    since_stop = (samples - stops[index]) / sfreq
    ramp_in = 1.0 - np.exp(-np.clip(since_cue - modulation.onset_s[index], 0.0, None) / ramp_tau_s)
    ramp_in *= since_cue >= modulation.onset_s[index]
    at_stop = 1.0 - np.exp(-np.clip((stops[index] - cues[index]) / sfreq - modulation.onset_s[index], 0.0, None)
                           / ramp_tau_s)
    erd = np.where(since_stop < 0, ramp_in, at_stop * np.exp(-np.clip(since_stop, 0.0, None) / ramp_tau_s))
    erd *= modulation.depth[index]
    sigma = rebound_fwhm_s / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    rebound = modulation.rebound[index] * np.exp(-0.5 * ((since_stop - modulation.rebound_peak_s[index]) / sigma) ** 2)
    rebound *= since_stop >= 0
    return np.where(inside, (1.0 - erd) * (1.0 + rebound), 1.0)


def slow_fluctuation(rng: np.random.Generator, n_samples: int, sfreq: float, max_hz: float,
                     log_sd: float) -> np.ndarray:
    """A positive, slowly varying amplitude factor: exp(N(0, log_sd) low-passed below ``max_hz``)."""
    return np.exp(log_sd * unit_band_noise(rng, 1, n_samples, sfreq, (1.0 / (n_samples / sfreq), max_hz))[0])
