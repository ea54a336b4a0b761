"""What every file reader hands back before names, positions and checks are applied."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Signals:
    """EEG samples and events as read from one file.

    Attributes
    ----------
    data : ndarray, shape (n_channels, n_samples)
        EEG in microvolts.
    sfreq : float
        Sampling rate, Hz.
    ch_names : list of str
        Channel labels as written in the file.
    events : ndarray of int, shape (n_events, 2)
        Sample index (from the first sample of ``data``) and event code.
    event_id : dict of str to int
        Event names to codes.
    """

    data: np.ndarray
    sfreq: float
    ch_names: list[str]
    events: np.ndarray
    event_id: dict[str, int]
