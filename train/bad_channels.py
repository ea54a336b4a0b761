"""Session-bad channels of a recording, repaired by MNE's spherical-spline interpolation.

The device rejects a window when any of its 5-9 channels is flat, railed or an artifact, and training
on those channel sets must reject exactly the same windows. A model that reads all 64 channels is a
host-side research setting (the reproduction table's all-channel rows): there almost every session has
an electrode that is flat or railed for the whole recording, so the per-window rule would leave no
window at all. For such models the usual offline practice applies instead: mark the channels that are
bad over the whole recording and interpolate them from their neighbours (``mne`` ``interpolate_bads``,
spherical splines, Perrin et al. 1989) before the signal path sees the data. Windows are still judged
by the device's rule afterwards, so transient artifacts keep rejecting windows.

A host-side analysis that re-references to the common average of all channels (the sim-to-real check)
must also catch channels that are not flat but far noisier (or quieter) than the rest, because the common
average spreads them to every channel: PREP's deviation criterion (Bigdely-Shamlo et al. 2015, Front.
Neuroinform. 9:16), a robust z-score above 5 of each channel's robust amplitude after a 1 Hz high-pass
(:func:`find_deviant_channels`).
"""

from __future__ import annotations

import numpy as np

from edge.quality import QualityThresholds, assess_window
from train.dataset import Recording

BAD_FLAGS = frozenset({"flat", "railed"})
DEVIATION_Z = 5.0
"""PREP's threshold on the robust z-score of a channel's robust amplitude."""


def find_bad_channels(recording: Recording, thresholds: QualityThresholds | None = None) -> list[str]:
    """Channels that are flat, railed or without a finite sample over the whole recording.

    Parameters
    ----------
    recording : Recording
    thresholds : QualityThresholds, optional
        The device's limits (default: the OpenBCI GUI's).

    Returns
    -------
    list of str
        Names in recording order.
    """
    verdict = assess_window(recording.data, recording.ch_names, thresholds)
    finite = np.isfinite(recording.data).any(axis=1)
    return [name for i, name in enumerate(recording.ch_names)
            if BAD_FLAGS & set(verdict.per_channel[name]) or not finite[i]]


def find_deviant_channels(recording: Recording, z: float = DEVIATION_Z) -> list[str]:
    """Channels whose amplitude deviates from the others' (PREP's deviation criterion).

    Each channel's robust amplitude is the interquartile range of its 1 Hz high-passed samples scaled to a
    normal SD (0.7413 IQR); a channel is deviant when the robust z-score of that amplitude among all
    channels (median and scaled IQR across channels) exceeds ``z`` in either direction.

    Parameters
    ----------
    recording : Recording
    z : float

    Returns
    -------
    list of str
        Names in recording order.
    """
    import mne
    from scipy.stats import iqr

    finite = np.isfinite(recording.data).all(axis=1)
    if finite.sum() < 3:
        return []
    data = mne.filter.filter_data(np.asarray(recording.data[finite], dtype=np.float64), recording.sfreq, 1.0, None,
                                  verbose="error")
    amplitude = iqr(data, axis=1, scale="normal")
    spread = iqr(amplitude, scale="normal")
    if spread <= 0:
        return []
    scores = np.abs(amplitude - np.median(amplitude)) / spread
    names = [name for name, ok in zip(recording.ch_names, finite) if ok]
    deviant = {name for name, score in zip(names, scores) if score > z}
    return [name for name in recording.ch_names if name in deviant]


def session_bad_channels(recording: Recording, thresholds: QualityThresholds | None = None,
                         deviant: bool = False) -> list[str]:
    """:func:`find_bad_channels`, and with ``deviant`` also :func:`find_deviant_channels` (recording order)."""
    found = set(find_bad_channels(recording, thresholds))
    if deviant:
        found |= set(find_deviant_channels(recording))
    return [name for name in recording.ch_names if name in found]


def repaired_data(recording: Recording, thresholds: QualityThresholds | None = None,
                  bads: list[str] | None = None) -> np.ndarray:
    """The recording's samples with its session-bad channels interpolated from the good ones.

    Channels without a known position are neither used nor repaired; a recording without bad
    channels (or without at least four good, placed ones) is returned unchanged.

    Parameters
    ----------
    recording : Recording
    thresholds : QualityThresholds, optional
    bads : list of str, optional
        The channels to repair (default: :func:`find_bad_channels`).

    Returns
    -------
    ndarray, shape (n_channels, n_samples)
        Microvolts, same dtype as ``recording.data``.
    """
    placed = np.isfinite(recording.ch_pos).all(axis=1)
    found = find_bad_channels(recording, thresholds) if bads is None else bads
    bads = [name for name in found if placed[recording.ch_names.index(name)]]
    if not bads or placed.sum() - len(bads) < 4:
        return recording.data
    import mne

    names = [name for i, name in enumerate(recording.ch_names) if placed[i]]
    rows = np.flatnonzero(placed)
    raw = mne.io.RawArray(np.nan_to_num(np.asarray(recording.data[rows], dtype=np.float64)),
                          mne.create_info(names, recording.sfreq, "eeg"), verbose="error")
    montage = mne.channels.make_dig_montage(
        {name: recording.ch_pos[row] / 1000.0 for name, row in zip(names, rows)}, coord_frame="head")
    raw.set_montage(montage, verbose="error")
    raw.info["bads"] = bads
    raw.interpolate_bads(reset_bads=True, verbose="error")
    data = np.array(recording.data, copy=True)
    data[rows] = raw.get_data().astype(data.dtype)
    return data
