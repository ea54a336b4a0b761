"""What the board emulator streams: synthetic EEG, or a recording placed on the board's inputs.

:func:`synthetic_source` needs numpy only; :func:`recording_source` reads any format ``train.io`` reads
(host only: ``train`` and SciPy are imported when it is called, never by the emulator's core).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.board import Board
from edge.errors import ErrorCode, HotspotError
from hardware.electrode_maps import load_map


def synthetic_source(n_channels: int, sfreq: float, seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """Return EEG-like microvolts: pink-ish noise plus a 10 Hz rhythm per channel.

    Parameters
    ----------
    n_channels : int
        Rows.
    sfreq : float
        Sampling rate in Hz.
    seconds : float
        Length.
    seed : int
        Random seed.

    Returns
    -------
    ndarray, shape (n_channels, round(seconds * sfreq))
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq))
    white = rng.standard_normal((n_channels, n))
    spectrum = np.fft.rfft(white, axis=1)
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum /= np.sqrt(np.maximum(freqs, 1.0))
    noise = np.fft.irfft(spectrum, n=n, axis=1)
    noise *= 10.0 / noise.std(axis=1, keepdims=True)
    t = np.arange(n) / sfreq
    phases = rng.uniform(0, 2 * np.pi, size=(n_channels, 1))
    return noise + 8.0 * np.sin(2 * np.pi * 10.0 * t + phases)


def recording_source(path: Path, board: Board, channel_map: str, subject: str | None) -> np.ndarray:
    """Load a recording (any format ``train.io`` reads, or a subject of a dataset folder) as board rows.

    Channels are placed on board channels by the named default map (:mod:`hardware.electrode_maps`);
    board channels the map leaves free stay at 0 µV. The recording is resampled to the board rate.
    """
    from train.io import load_dataset, read_recording  # host-only imports, loaded when used

    mapping = load_map(channel_map)
    if mapping.board != board.name:
        raise HotspotError(f"channel map {channel_map} is for the {mapping.board}, not the {board.name}",
                           ErrorCode.BAD_ARGUMENT)
    if path.is_dir():
        dataset = load_dataset(path)
        subjects = [item.subject for item in dataset.subjects]
        if subject is not None and subject not in subjects:
            raise HotspotError(f"{path} has no subject {subject}; pick one of {', '.join(subjects)}",
                               ErrorCode.BAD_ARGUMENT)
        chosen = dataset.subject(subject) if subject else dataset.subjects[0]
        if not chosen.recordings:
            raise HotspotError(f"{path}: subject {chosen.subject} has no recordings", ErrorCode.BAD_FILE)
        recording = chosen.recordings[0]
    else:
        recording = read_recording(path, required_channels=list(mapping.channels), require_events=False)
    missing = [name for name in mapping.channels if name not in recording.ch_names]
    if missing:
        raise HotspotError(f"{path} lacks channels {', '.join(missing)} of map {channel_map}; pick another --map",
                           ErrorCode.MISSING_CHANNELS)
    data = recording.data
    if recording.sfreq != board.sampling_rate:
        from fractions import Fraction

        from scipy.signal import resample_poly

        ratio = Fraction(board.sampling_rate / recording.sfreq).limit_denominator(1000)
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=1)
    source = np.zeros((board.n_channels, data.shape[1]))
    for name, channel in mapping.channels.items():
        source[channel - 1] = data[recording.ch_names.index(name)]
    return source
