"""The session-pooled rest baseline: "rest" taken from the rest periods a session marks, not from before each cue.

Why. With the pre-cue baseline (``PipelineSpec.baseline``, default -2 ... -0.5 s) the "rest" of an epoch is
whatever happened just before its cue. In the PhysioNet eegmmidb runs 4 s movements alternate with 4 s
rests and 76 % of cues follow a movement of the *other* hand, so the pre-cue window mostly holds that
movement's after-effect (ERD recovery, beta rebound) and pushes a lateralisation to the wrong side. A
schedule with explicit rest periods (eegmmidb ``T0``, the simulator's ``rest`` events, the device's REST
cues) gives a cleaner reference: the rest periods themselves.

Definition (``PipelineSpec.baseline_mode = "session_rest"``):

1. Each rest period with onset sample ``r`` contributes its *rest window* ``[r + a, r + b)`` with
   ``(a, b) = PipelineSpec.rest_window`` (s; default 0.5 ... 3.5 s after the onset: past the transition
   out of the previous movement and before the anticipation of the next cue).
2. A rest window's statistics (:class:`RestStats`) come from the same streams an epoch is cut from:
   the held raw microvolts (their mean, for level "raw"), the re-referenced fixed-point filter output
   (its mean, for levels clean/erd/psd; the mean short-time band power over the ERD frames that fit in
   the window, for level "erd"; the band cross-spectra, for level "source"), and the quality verdict
   of the window (a rest window that fails the quality rules is not used).
3. The epoch of a cue, ending at sample ``e`` (exclusive), uses the mean of the statistics of every good
   rest window that ended by then (``r + b <= e``), each rest period weighing the same. This is causal:
   when an epoch is complete the device has seen every rest it uses, so offline
   (:func:`edge.pipeline.compute_epochs`) and online (:class:`edge.online.OnlinePipeline`) give
   identical inputs. An epoch before which no good rest window has ended is rejected (its verdict says so).

The rest is pooled per recording (one continuous stream: an eegmmidb run, a device session), because
amplitudes change when the cap is re-placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.levels import band_power_frames, rereference
from edge.quality import assess_window

if TYPE_CHECKING:
    from edge.pipeline import PipelineSpec

BASELINE_MODES = ("pre_cue", "session_rest")
"""``PipelineSpec.baseline_mode`` values: the epoch's own pre-cue window, or the session's pooled rest."""

NO_REST_REASON = "no good rest period has ended before this epoch (session-rest baseline)"
"""The verdict's reason for an epoch that has no rest to be relative to."""


@dataclass(frozen=True)
class RestStats:
    """The statistics of one rest window, or (from :func:`pooled_rest`) the mean of several.

    Attributes
    ----------
    end : int
        First sample after the window (for a pool: the end of the epoch it serves).
    ok : bool
        The window passed the quality rules (always True for a pool).
    raw_mean : ndarray, shape (n_channels,)
        Mean of the held raw microvolts.
    clean_mean : ndarray, shape (n_channels,), or None
        Mean of the re-referenced filter output (µV); None for level "raw".
    power : ndarray, shape (n_bands, n_channels), or None
        Mean short-time band power (µV², the ERD level's frames) over the window; None for level "raw".
    csd : ndarray of complex128, shape (n_bands, n_channels, n_channels), or None
        Band cross-spectra (level "source" only).
    n_periods : int
        Rest periods behind these numbers.
    """

    end: int
    ok: bool
    raw_mean: np.ndarray
    clean_mean: np.ndarray | None
    power: np.ndarray | None
    csd: np.ndarray | None
    n_periods: int = 1


def rest_statistics(spec: "PipelineSpec", end: int, raw: np.ndarray, held: np.ndarray,
                    filtered: np.ndarray | None) -> RestStats:
    """Statistics of one rest window.

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
    end : int
        Stream sample just after the window.
    raw : ndarray, shape (n_channels, spec.rest_samples)
        Raw microvolts with NaN for lost samples (judged by the quality rules).
    held : ndarray, same shape
        Raw microvolts with lost samples held.
    filtered : ndarray or None, same shape
        The stream filter's output (None for level "raw").

    Returns
    -------
    RestStats
    """
    from edge.source import band_csd

    checks_artifacts = spec.level in ("clean", "erd", "psd", "source")
    verdict = assess_window(raw, spec.channels, spec.quality, filtered if checks_artifacts else None,
                            spec.filter.full_scale_uv if filtered is not None else None)
    clean_mean = power = csd = None
    if filtered is not None:
        clean = rereference(filtered, spec.reference, spec.channels)
        clean_mean = clean.mean(axis=1)
        if clean.shape[1] >= spec.erd_window_samples:
            power = band_power_frames(clean - clean_mean[:, None], spec.sfreq, spec.erd_window_samples,
                                      spec.erd_step_samples, spec.bands).mean(axis=-1)
        if spec.level == "source":
            csd = band_csd(clean, spec.sfreq, spec.csd_samples, spec.bands)
    return RestStats(end=int(end), ok=bool(verdict.ok), raw_mean=held.mean(axis=1), clean_mean=clean_mean,
                     power=power, csd=csd)


def pooled_rest(windows: Sequence[RestStats], end: int) -> RestStats | None:
    """The mean of the good rest windows that ended by sample ``end`` (None when there is none).

    Parameters
    ----------
    windows : sequence of RestStats
        A recording's rest windows, sorted by ``end`` (the order fixes the floating-point sums, so
        offline and online pools are bit-identical).
    end : int
        First sample after the epoch.
    """
    used = [w for w in windows if w.ok and w.end <= end]
    if not used:
        return None

    def mean(name: str) -> np.ndarray | None:
        values = [getattr(w, name) for w in used]
        return None if values[0] is None else np.mean(np.stack(values), axis=0)

    return RestStats(end=int(end), ok=True, raw_mean=mean("raw_mean"), clean_mean=mean("clean_mean"),
                     power=mean("power"), csd=mean("csd"), n_periods=len(used))
