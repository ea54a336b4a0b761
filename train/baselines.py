"""Reference estimates every result table reports beside the model (mm, model frame; cap or head frame).

All but the population mean are found in the cap frame (the template cap as worn) and taken to the
head frame through the session's cap transform (:mod:`train.frames`), like the model's estimate.

- ``population_mean``: the mean hotspot of the *training* subjects, in each frame (the headline
  reference; skill is measured against it).
- ``anatomical_rule``: a fixed point, the FCC3h electrode of the fsaverage template projected
  :data:`RULE_DEPTH_MM` below the scalp toward the head-frame origin (hotspots are cortical points;
  FCC3h lies about 9 mm from the population centroid's scalp projection, science.md §0).
- ``erd_peak``: the interpolated peak of the session's mu/beta ERD map (power drop during movement
  relative to rest, per channel, at the template electrode positions; ERD-weighted centroid of the top
  electrodes) plus the mean (label - peak) offset of the training sessions.

"Rest" for an ERD is the pre-cue window :data:`REST_WINDOW_S` of each trial by default. Where a schedule
marks its rest periods (eegmmidb ``T0``, the simulator's ``rest``), ``rest_event`` pools the rest over them
instead: :data:`REST_PERIOD_S` after each rest onset, the median power over a recording's rest periods
(the pipeline's session-rest baseline, :mod:`edge.rest`, does the same causally). On eegmmidb the 2 s
before a cue mostly hold the other hand's after-effect, so the pre-cue window is not a rest there.
- ``physics``: the source level's beamformer: the grid point of the strongest power drop (mu + beta) in
  the session's DICS map (:mod:`edge.source`), moved a learned fraction ``k`` toward the population mean,
  or replaced by the mean when it lies farther than a learned ``R`` from it (:class:`PhysicsBaseline`;
  ``k``, ``R`` and the mean offset fitted on the training sessions only).
- ``oracle``: the simulator's source oracle (best estimate from the true EEG sources); a floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.contract import worn_electrodes
from edge.estimate import physics_estimate
from train.dataset import Recording, Subject
from train.windows import to_model_frame

RULE_ELECTRODE = "FCC3h"
RULE_DEPTH_MM = 20.5
ERD_BAND_HZ = (8.0, 30.0)
REST_WINDOW_S = (-2.5, -0.5)
"""Pre-cue rest window (s around each cue)."""
REST_PERIOD_S = (0.5, 3.5)
"""Part of each marked rest period used by a pooled rest (s after the rest onset)."""
MOVE_WINDOW_S = (0.5, 3.5)
"""Movement window (s after each cue)."""
TOP_CHANNELS = 3


def population_mean(train_labels: np.ndarray) -> np.ndarray:
    """The mean of the training subjects' hotspots, (3,) head mm (model frame)."""
    labels = np.atleast_2d(np.asarray(train_labels, dtype=float))
    return labels.mean(axis=0)


def anatomical_rule() -> np.ndarray:
    """FCC3h projected :data:`RULE_DEPTH_MM` toward the head-frame origin, (3,) head mm (left hemisphere)."""
    from train.head import standard_positions_head_mm

    scalp = standard_positions_head_mm([RULE_ELECTRODE])[RULE_ELECTRODE]
    return scalp - RULE_DEPTH_MM * scalp / np.linalg.norm(scalp)


def band_power(segments: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """Mean Welch power in ``band`` of each segment and channel.

    Parameters
    ----------
    segments : ndarray, shape (n_segments, n_channels, n_samples)
    sfreq : float
    band : (low, high) Hz

    Returns
    -------
    ndarray, shape (n_segments, n_channels)
    """
    from scipy.signal import welch

    if len(segments) == 0:  # e.g. a run whose trials of one hand the quality gate all rejected
        return np.zeros((0, segments.shape[1]))
    nperseg = min(segments.shape[-1], int(round(sfreq)))
    freqs, psd = welch(segments, fs=sfreq, nperseg=nperseg, axis=-1)
    keep = (freqs >= band[0]) & (freqs <= band[1])
    return psd[..., keep].mean(axis=-1)


def _fits(recording: Recording, onsets: np.ndarray, *windows_s: tuple[float, float]) -> np.ndarray:
    """The onsets around which every window lies inside the recording."""
    onsets = np.asarray(onsets, dtype=np.int64)
    keep = np.ones(len(onsets), dtype=bool)
    for window in windows_s:
        start, stop = (int(round(edge * recording.sfreq)) for edge in window)
        keep &= (onsets + start >= 0) & (onsets + stop <= recording.data.shape[1])
    return onsets[keep]


def _segments(recording: Recording, rows: list[int], onsets: np.ndarray, window_s: tuple[float, float]) -> np.ndarray:
    start, stop = (int(round(edge * recording.sfreq)) for edge in window_s)
    return (np.stack([recording.data[rows, onset + start:onset + stop] for onset in onsets]) if len(onsets)
            else np.zeros((0, len(rows), stop - start)))


def _powers(recording: Recording, channels: Sequence[str], cue: str, band: tuple[float, float],
            rest_event: str | None, cues: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Movement power per trial (n, channels) and rest power per trial (pre-cue) or of the recording (pooled)."""
    index = {name: i for i, name in enumerate(recording.ch_names)}
    rows = [index[name] for name in channels]
    cues = recording.cue_samples(cue) if cues is None else np.asarray(cues, dtype=np.int64)
    if rest_event is None:
        cues = _fits(recording, cues, MOVE_WINDOW_S, REST_WINDOW_S)
        rest = band_power(_segments(recording, rows, cues, REST_WINDOW_S), recording.sfreq, band)
    else:
        cues = _fits(recording, cues, MOVE_WINDOW_S)
        periods = (_fits(recording, recording.cue_samples(rest_event), REST_PERIOD_S)
                   if rest_event in recording.event_id else np.zeros(0, dtype=np.int64))
        if not len(periods):
            from edge.errors import ErrorCode, HotspotError

            raise HotspotError(f"{recording.subject} {recording.session} has no complete {rest_event!r} rest period "
                               "to pool the rest from", ErrorCode.NO_EVENTS)
        rest = np.median(band_power(_segments(recording, rows, periods, REST_PERIOD_S), recording.sfreq, band),
                         axis=0)
    return band_power(_segments(recording, rows, cues, MOVE_WINDOW_S), recording.sfreq, band), rest


def trial_erd(recordings: Sequence[Recording], channels: Sequence[str], cue: str = "move",
              band: tuple[float, float] = ERD_BAND_HZ, rest_event: str | None = None,
              cue_samples: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Per-trial, per-channel ERD ``1 - P_move / P_rest`` in ``band`` (positive: the power dropped).

    Parameters
    ----------
    recordings, channels, cue, band
        As for :func:`erd_map`.
    rest_event : str, optional
        Pool the rest over this event's rest periods (:data:`REST_PERIOD_S`; the median per recording);
        default: each trial's own pre-cue window :data:`REST_WINDOW_S`.
    cue_samples : sequence of ndarray, optional
        Per recording, the cue samples to use (e.g. the trials a quality gate kept); default: every
        ``cue`` event.

    Returns
    -------
    ndarray, shape (n_trials, len(channels))
        Trials in recording order, then cue order (trials whose windows do not fit are left out).
    """
    out = []
    for i, recording in enumerate(recordings):
        cues = None if cue_samples is None else cue_samples[i]
        move, rest = _powers(recording, channels, cue, band, rest_event, cues)
        out.append(1.0 - move / np.maximum(rest, 1e-12))
    return np.concatenate(out) if out else np.zeros((0, len(channels)))


def erd_map(recordings: Sequence[Recording], channels: Sequence[str], cue: str = "move",
            band: tuple[float, float] = ERD_BAND_HZ, rest_event: str | None = None) -> np.ndarray:
    """Per-channel ERD of a subject's trials in ``band`` (positive values: the power dropped during movement).

    Movement is :data:`MOVE_WINDOW_S` after each cue. With the pre-cue rest (default) the ERD is
    ``1 - median_trials(P_move) / median_trials(P_rest)``, rest being :data:`REST_WINDOW_S` around each cue;
    with ``rest_event`` it is the median over trials of :func:`trial_erd` (each trial relative to its
    recording's pooled rest).

    Parameters
    ----------
    recordings : sequence of Recording
        One subject's recordings, all containing ``channels`` and ``cue`` events.
    channels : sequence of str
    cue : str
    band : (low, high) Hz
    rest_event : str, optional
        The event marking rest onsets (eegmmidb ``T0``, the simulator's ``rest``).

    Returns
    -------
    ndarray, shape (len(channels),)
    """
    if rest_event is not None:
        return np.median(trial_erd(recordings, channels, cue, band, rest_event), axis=0)
    rest, move = [], []
    for recording in recordings:
        move_power, rest_power = _powers(recording, channels, cue, band, None)
        rest.append(rest_power)
        move.append(move_power)
    rest_power = np.median(np.concatenate(rest), axis=0)
    move_power = np.median(np.concatenate(move), axis=0)
    return 1.0 - move_power / np.maximum(rest_power, 1e-12)


def interpolated_peak(values: np.ndarray, positions_mm: np.ndarray, n_top: int = TOP_CHANNELS) -> np.ndarray:
    """Interpolated ERD peak: the ERD-weighted centroid of the ``n_top`` electrodes with the largest ERD.

    A weighted centroid stays inside the montage (a spline peak runs to the montage's edge on noisy
    single-subject maps).

    Parameters
    ----------
    values : ndarray, shape (n_channels,)
        ERD per electrode (positive = power drop).
    positions_mm : ndarray, shape (n_channels, 3)
        Electrode positions, head mm.
    n_top : int
        Electrodes in the centroid.

    Returns
    -------
    ndarray, shape (3,)
    """
    values = np.asarray(values, dtype=float)
    top = np.argsort(values)[::-1][:max(1, min(n_top, len(values)))]
    weights = np.clip(values[top], 0.0, None)
    if weights.sum() <= 0:
        return positions_mm[top[0]].astype(float)
    return (weights[:, None] * positions_mm[top]).sum(axis=0) / weights.sum()


def erd_peaks(subject: Subject, channels: Sequence[str], mirror: bool, cue: str = "move",
              hemisphere_only: bool = True) -> dict[str, np.ndarray]:
    """The scalp point of largest interpolated ERD of each of ``subject``'s sessions (cap frame, model frame).

    Parameters
    ----------
    subject : Subject
    channels : sequence of str
        The model's channels (left-hemisphere names when ``mirror``).
    mirror : bool
        Read mirrored channels for right-hemisphere subjects and return the mirrored point.
    cue : str
    hemisphere_only : bool
        Search only the hemisphere of the hotspot (x < 0 in the model frame) when mirroring.

    Returns
    -------
    dict of str to ndarray (3,)
        Session -> peak, for the sessions that have the channels and cues.
    """
    from train.head import standard_positions_head_mm

    worn = worn_electrodes(channels, mirror, subject.hand)
    names = list(worn.electrodes)
    template = standard_positions_head_mm(names)
    positions = to_model_frame(np.array([template[name] for name in names]), worn.mirrored)
    keep = positions[:, 0] < 0 if hemisphere_only and mirror else np.ones(len(names), dtype=bool)
    peaks = {}
    for recording in subject.recordings:
        if cue in recording.event_id and set(names) <= set(recording.ch_names):
            values = erd_map([recording], names, cue)
            peaks[recording.session] = interpolated_peak(values[keep], positions[keep])
    return peaks


@dataclass
class ErdPeakBaseline:
    """ERD peak plus the mean (label - peak) offset of the training sessions.

    Attributes
    ----------
    offset_mm : ndarray, shape (3,)
    """

    offset_mm: np.ndarray

    @classmethod
    def fit(cls, peaks: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> "ErdPeakBaseline":
        """Learn the offset from training sessions' peaks and labels (cap frame, model frame)."""
        pairs = [(p, l) for p, l in zip(peaks, labels) if p is not None and l is not None]
        if not pairs:
            return cls(offset_mm=np.zeros(3))
        return cls(offset_mm=np.mean([np.asarray(l) - np.asarray(p) for p, l in pairs], axis=0))

    def predict(self, peak: np.ndarray | None) -> np.ndarray | None:
        """Estimate a hotspot from a session's ERD peak (None when no peak)."""
        return None if peak is None else np.asarray(peak, dtype=float) + self.offset_mm


SHRINK_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
GATE_GRID_MM = (5.0, 10.0, 15.0, 20.0, 30.0, None)


@dataclass
class PhysicsBaseline:
    """Beamformer peak + mean offset, moved a fraction ``k`` toward the population mean, inside a gate ``R``.

    ``estimate = mean + (1 - k) (peak + offset - mean)`` when ``|peak + offset - mean| <= R``, else ``mean``
    (:func:`edge.estimate.physics_estimate`, which the estimate itself also uses).

    Attributes
    ----------
    mean_mm, offset_mm : ndarray, shape (3,)
    k : float
    gate_mm : float or None
    """

    mean_mm: np.ndarray
    offset_mm: np.ndarray
    k: float
    gate_mm: float | None

    @classmethod
    def fit(cls, peaks: Sequence[np.ndarray], labels: Sequence[np.ndarray], mean_mm: np.ndarray) -> "PhysicsBaseline":
        """Fit offset, ``k`` and ``R`` on training sessions (their peaks and cap-frame labels)."""
        peaks, labels = np.asarray(peaks, dtype=float), np.asarray(labels, dtype=float)
        offset = (labels - peaks).mean(axis=0)
        best = None
        for k in SHRINK_GRID:
            for gate in GATE_GRID_MM:
                candidate = cls(np.asarray(mean_mm, dtype=float), offset, float(k), gate)
                error = float(np.mean(np.linalg.norm(candidate.predict_many(peaks) - labels, axis=1)))
                if best is None or error < best[0] - 1e-9:
                    best = (error, candidate)
        return best[1]

    def predict_many(self, peaks: np.ndarray) -> np.ndarray:
        """Estimates for peaks (n, 3)."""
        return physics_estimate(self.mean_mm, peaks, self.offset_mm, self.k, self.gate_mm)

    def predict(self, peak: np.ndarray | None) -> np.ndarray | None:
        """Estimate for one session's beamformer peak (None when no peak)."""
        return None if peak is None else self.predict_many(np.asarray(peak)[None])[0]
