"""Small EEG recordings for the importer tests, made in memory with MNE (no shipped binaries)."""

from __future__ import annotations

import mne
import numpy as np

SFREQ = 250.0
NAMES = ["FC3", "C3", "CP3", "Cz", "C4"]
ONSETS = {"rest": [1.0, 5.0], "move": [2.0, 6.0], "stop": [4.0, 8.0]}


def make_raw(names: list[str] = NAMES, sfreq: float = SFREQ, seconds: float = 10.0, seed: int = 0) -> mne.io.RawArray:
    """A small EEG recording (volts, as MNE keeps it) with rest/move/stop annotations."""
    rng = np.random.default_rng(seed)
    raw = mne.io.RawArray(rng.normal(0.0, 20e-6, (len(names), int(seconds * sfreq))),
                          mne.create_info(names, sfreq, "eeg"), verbose="error")
    onsets = [(onset, name) for name, times in ONSETS.items() for onset in times]
    raw.set_annotations(mne.Annotations([o for o, _ in onsets], [0.0] * len(onsets), [n for _, n in onsets]))
    return raw


def expected_events(sfreq: float = SFREQ) -> list[tuple[int, str]]:
    """The (sample, name) pairs of make_raw's annotations at ``sfreq``."""
    return sorted((round(onset * sfreq), name) for name, times in ONSETS.items() for onset in times)
