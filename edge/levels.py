"""The input levels: each turns one epoch (channels x samples) into the CNN's 2-D float32 input.

The epoch spans ``[tmin, tmax)`` seconds around the movement cue (``edge.pipeline.PipelineSpec``; default
-2...+4 s at 250 Hz = 1500 samples). Definitions (all numpy; the filter is the device's fixed-point one):

L1 ``raw``       raw microvolts minus each channel's mean over the baseline, every ``decim``-th sample
                 (channels x time). No filter, so no anti-aliasing either: raw means raw.
L2 ``filtered``  the fixed-point filter's output (continuous causal filtering of the whole stream, then
                 sliced), every ``decim``-th sample (channels x time).
L3 ``clean``     L2 re-referenced (common average over the model's channels by default) and baseline
                 corrected; epochs with railed/flat/lossy channels or a filtered peak-to-peak above the
                 artifact threshold are rejected by their verdict (channels x time).
L4 ``erd``       event-related (de)synchronisation per band: short-time band power of the L3 signal
                 (Hann windows of ``erd_window`` s every ``erd_step`` s, |FFT|^2 summed over the band's bins)
                 relative to its mean over the baseline frames, in percent: ``100 * (P - R) / R``
                 (negative = desynchronisation). Rows are band-major: all channels' mu, then all channels'
                 beta (bands x channels rows, time-frame columns).
L5 ``psd``       log10 Welch PSD (uV^2/Hz; Hann, ``nperseg``, ``noverlap``, constant detrend, density
                 scaling, mean over segments: scipy.signal.welch's defaults) of the L3 signal over
                 ``[psd_tmin, psd_tmax)``, frequencies ``fmin..fmax`` (channels x frequency).
L6 ``source``    DICS beamformer power change, movement vs rest, on a cortical grid of the hand region
                 (:mod:`edge.source`; bands x grid rows, grid columns).

"Baseline" is the epoch's pre-cue window (``PipelineSpec.baseline``) by default. With
``PipelineSpec.baseline_mode = "session_rest"`` it is the rest pooled over the session's rest periods
(:mod:`edge.rest`): baseline correction subtracts the pooled rest's mean, the ERD is relative to the pooled
rest's band power, and the source level's rest cross-spectra are the pooled ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import ErrorCode, HotspotError

if TYPE_CHECKING:
    from edge.pipeline import PipelineSpec
    from edge.rest import RestStats

LEVELS = ("raw", "filtered", "clean", "erd", "psd", "source")
"""Level names; "source" is defined in :mod:`edge.source`."""

#: Floor added before log10 of the PSD (uV^2/Hz), so that a flat channel does not give -inf.
PSD_FLOOR = 1e-12
#: Smallest baseline band power (uV^2) an ERD is relative to, so that a flat baseline stays finite.
POWER_FLOOR = 1e-12


def hann(n: int) -> np.ndarray:
    """Periodic Hann window (SciPy's ``get_window("hann", n)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def welch_psd(x: np.ndarray, sfreq: float, nperseg: int, noverlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density along the last axis, as ``scipy.signal.welch`` computes it.

    Hann window, constant detrend per segment, one-sided density scaling, mean over segments.

    Parameters
    ----------
    x : ndarray, shape (..., n_samples)
        Signal.
    sfreq : float
        Sampling rate (Hz).
    nperseg, noverlap : int
        Segment length and overlap in samples (``n_samples >= nperseg > noverlap >= 0``).

    Returns
    -------
    freqs : ndarray, shape (nperseg // 2 + 1,)
    psd : ndarray, shape (..., nperseg // 2 + 1)
    """
    x = np.asarray(x, dtype=np.float64)
    if not 0 <= noverlap < nperseg <= x.shape[-1]:
        raise HotspotError(f"Welch needs n_samples ({x.shape[-1]}) >= nperseg ({nperseg}) > noverlap "
                           f"({noverlap}) >= 0", ErrorCode.BAD_CONFIG)
    step = nperseg - noverlap
    n_segments = (x.shape[-1] - noverlap) // step
    starts = np.arange(n_segments) * step
    segments = x[..., starts[:, None] + np.arange(nperseg)]
    segments = segments - segments.mean(axis=-1, keepdims=True)
    window = hann(nperseg)
    spectrum = np.abs(np.fft.rfft(segments * window, axis=-1)) ** 2 / (sfreq * np.sum(window ** 2))
    if nperseg % 2:
        spectrum[..., 1:] *= 2.0
    else:
        spectrum[..., 1:-1] *= 2.0
    return np.fft.rfftfreq(nperseg, 1.0 / sfreq), spectrum.mean(axis=-2)


def rereference(x: np.ndarray, reference: str, channels: Sequence[str]) -> np.ndarray:
    """Re-reference rows of ``x``: "average" (common average), "none", or one channel's name."""
    if reference == "none":
        return x
    if reference == "average":
        return x - x.mean(axis=0, keepdims=True)
    if reference in channels:
        return x - x[list(channels).index(reference)]
    raise HotspotError(f"reference {reference!r} is neither 'average', 'none' nor one of the channels",
                       ErrorCode.BAD_CONFIG)


def baseline_correct(x: np.ndarray, baseline: slice) -> np.ndarray:
    """Subtract each row's mean over the ``baseline`` samples."""
    return x - x[:, baseline].mean(axis=1, keepdims=True)


def band_power_frames(x: np.ndarray, sfreq: float, window: int, step: int,
                      bands: Sequence[tuple[float, float]]) -> np.ndarray:
    """Short-time band power: (n_bands, n_channels, n_frames), Hann-windowed |FFT|^2 summed over each band."""
    n_frames = (x.shape[-1] - window) // step + 1
    if n_frames < 1:
        raise HotspotError(f"an ERD frame of {window} samples does not fit in {x.shape[-1]}", ErrorCode.BAD_CONFIG)
    starts = np.arange(n_frames) * step
    frames = x[:, starts[:, None] + np.arange(window)] * hann(window)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(window, 1.0 / sfreq)
    out = []
    for low, high in bands:
        in_band = (freqs >= low) & (freqs < high)
        if not in_band.any():
            raise HotspotError(f"band {low}-{high} Hz has no FFT bin at {window} samples", ErrorCode.BAD_CONFIG)
        out.append(power[..., in_band].sum(axis=-1))
    return np.stack(out)


def erd_percent(x: np.ndarray, sfreq: float, window: int, step: int, bands: Sequence[tuple[float, float]],
                baseline_frames: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    """ERD/ERS in percent of a reference band power, rows band-major: (n_bands * n_channels, n_frames).

    The reference is the mean power over ``baseline_frames`` of ``x`` itself, or ``reference``
    ((n_bands, n_channels) µV², e.g. a session's pooled rest) when given.
    """
    power = band_power_frames(x, sfreq, window, step, bands)
    if reference is None:
        reference = power[..., baseline_frames].mean(axis=-1)
    reference = np.maximum(np.asarray(reference)[..., None], POWER_FLOOR)
    erd = 100.0 * (power - reference) / reference
    return erd.reshape(-1, erd.shape[-1])


def log_psd(x: np.ndarray, sfreq: float, nperseg: int, noverlap: int, fmin: float, fmax: float) -> np.ndarray:
    """log10 Welch PSD of each row, restricted to ``fmin <= f <= fmax``: (n_channels, n_freqs)."""
    freqs, psd = welch_psd(x, sfreq, nperseg, noverlap)
    keep = (freqs >= fmin) & (freqs <= fmax)
    return np.log10(psd[:, keep] + PSD_FLOOR)


def clean_epoch(spec: "PipelineSpec", filtered_epoch_uv: np.ndarray, rest: "RestStats | None" = None) -> np.ndarray:
    """The L3 signal before decimation: re-referenced filter output minus its baseline (pre-cue or pooled rest)."""
    referenced = rereference(filtered_epoch_uv, spec.reference, spec.channels)
    if spec.baseline_mode == "session_rest":
        return referenced - rest.clean_mean[:, None]
    return baseline_correct(referenced, spec.baseline_slice)


def epoch_erd(spec: "PipelineSpec", clean: np.ndarray, rest: "RestStats | None" = None) -> np.ndarray:
    """The L4 input of a clean epoch: relative to its baseline frames, or to the pooled rest's power."""
    if spec.baseline_mode == "session_rest":
        return erd_percent(clean, spec.sfreq, spec.erd_window_samples, spec.erd_step_samples, spec.bands,
                           reference=rest.power)
    return erd_percent(clean, spec.sfreq, spec.erd_window_samples, spec.erd_step_samples, spec.bands,
                       spec.erd_baseline_frames)


def movement_erd(spec: "PipelineSpec", filtered_epoch_uv: np.ndarray,
                 rest: "RestStats | None" = None) -> np.ndarray | None:
    """Mean ERD/ERS per band and channel over the movement period: the numbers a session topography needs.

    The L4 computation (re-reference, baseline correction, short-time band power relative to the baseline
    frames) averaged over the ERD frames that lie entirely inside ``[psd_tmin, psd_tmax)`` (the movement
    period, default 0 ... 4 s after the cue).

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
    filtered_epoch_uv : ndarray, shape (n_channels, spec.epoch_samples)
        The fixed-point filter's output over the epoch.
    rest : edge.rest.RestStats, optional
        The pooled rest (``baseline_mode = "session_rest"``).

    Returns
    -------
    ndarray, shape (n_bands, n_channels), or None
        Percent (negative = desynchronisation); None when no ERD frame fits in the baseline or the movement
        period, or (session rest) when there is no rest yet.
    """
    starts = spec.erd_frame_starts
    period = spec.psd_slice
    inside = (starts >= period.start) & (starts + spec.erd_window_samples <= period.stop)
    session_rest = spec.baseline_mode == "session_rest"
    if not inside.any() or (rest is None if session_rest else not len(spec.erd_baseline_frames)):
        return None
    erd = epoch_erd(spec, clean_epoch(spec, filtered_epoch_uv, rest), rest)
    return erd[:, inside].mean(axis=1).reshape(len(spec.bands), len(spec.channels))


def level_input(spec: "PipelineSpec", raw_epoch_uv: np.ndarray, filtered_epoch_uv: np.ndarray | None,
                rest: "RestStats | None" = None) -> np.ndarray:
    """Compute ``spec.level``'s 2-D float32 input from one epoch.

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
        Level and its parameters.
    raw_epoch_uv : ndarray, shape (n_channels, spec.epoch_samples)
        Raw microvolts with lost samples already held (no NaN).
    filtered_epoch_uv : ndarray or None
        The fixed-point filter's output over the same samples (None only for level "raw").
    rest : edge.rest.RestStats, optional
        The pooled rest, required when ``spec.baseline_mode`` is "session_rest".

    Returns
    -------
    ndarray of float32, shape ``spec.input_shape``
    """
    if spec.baseline_mode == "session_rest" and rest is None:
        raise HotspotError("a session-rest baseline needs the pooled rest (edge.rest.pooled_rest)",
                           ErrorCode.BAD_SAMPLES)
    if spec.level == "raw":
        if spec.baseline_mode == "session_rest":
            out = (raw_epoch_uv - rest.raw_mean[:, None])[:, ::spec.decim]
        else:
            out = baseline_correct(raw_epoch_uv, spec.baseline_slice)[:, ::spec.decim]
    elif spec.level == "filtered":
        out = filtered_epoch_uv[:, ::spec.decim]
    elif spec.level == "source":
        from edge.source import epoch_csds, source_image

        out = source_image(spec, *epoch_csds(spec, rereference(filtered_epoch_uv, spec.reference, spec.channels),
                                             rest))
    else:
        clean = clean_epoch(spec, filtered_epoch_uv, rest)
        if spec.level == "clean":
            out = clean[:, ::spec.decim]
        elif spec.level == "erd":
            out = epoch_erd(spec, clean, rest)
        else:
            out = log_psd(clean[:, spec.psd_slice], spec.sfreq, spec.psd_nperseg, spec.psd_noverlap,
                          spec.psd_fmin, spec.psd_fmax)
    return np.ascontiguousarray(out, dtype=np.float32)
