"""Per-recording physiology checks used by the cohort summary and the tests.

Definitions (stated once, used everywhere):

- *band RMS*: RMS of a channel after a zero-phase 4th-order Butterworth band-pass (scipy),
  over the whole recording; the "C3 amplitude" is the 1-40 Hz band RMS at C3.
- *mu ERD*: 1 - median over trials of the mean 8-13 Hz power from cue + 1 s to movement end,
  divided by the median over trials of the mean 8-13 Hz power from cue - 2.5 s to cue - 0.5 s;
  positive = power drops during movement. The cue is ``move`` (guided schedule) or the hand's
  ``T1``/``T2`` (eegmmidb schedule, where the next event, a ``T0``, ends the movement). Medians
  keep the few artifact-hit trials (pops, EMG, blinks) from dominating, as artifact rejection would.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from train.dataset import Recording

MU_BAND_HZ = (8.0, 13.0)


def band_power(recording: Recording, band: tuple[float, float], channels: list[str] | None = None) -> np.ndarray:
    """Instantaneous band power (uV^2) of the given channels (all by default), shape (n_channels, n_samples)."""
    rows = slice(None) if channels is None else [recording.ch_names.index(name) for name in channels]
    sos = butter(4, band, btype="bandpass", fs=recording.sfreq, output="sos")
    return sosfiltfilt(sos, recording.data[rows], axis=1) ** 2


def band_rms(recording: Recording, channel: str, band: tuple[float, float] = (1.0, 40.0)) -> float:
    """Band-limited RMS of one channel over the whole recording, uV."""
    return float(np.sqrt(band_power(recording, band, [channel])[0].mean()))


def mu_erd(recording: Recording, channels: list[str] | None = None, band: tuple[float, float] = MU_BAND_HZ,
           cue: str = "move") -> np.ndarray:
    """Mu ERD of the given channels (all by default; fraction of power lost during movement)."""
    power = band_power(recording, band, channels)
    sfreq = recording.sfreq
    cues = recording.cue_samples(cue)
    if "stop" in recording.event_id:
        stops = recording.cue_samples("stop")
    else:  # the next event ends the movement
        following = np.searchsorted(recording.events[:, 0], cues, side="right")
        stops = np.where(following < len(recording.events),
                         recording.events[np.minimum(following, len(recording.events) - 1), 0], recording.data.shape[1])
    rest = [power[:, int(cue - 2.5 * sfreq): int(cue - 0.5 * sfreq)].mean(axis=1) for cue in cues
            if cue - 2.5 * sfreq >= 0]
    move = [power[:, int(cue + sfreq): int(stop)].mean(axis=1) for cue, stop in zip(cues, stops)
            if stop > cue + sfreq]
    return 1.0 - np.median(move, axis=0) / np.median(rest, axis=0)
