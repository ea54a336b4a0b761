"""The boards the device reads, described once: BrainFlow's board descriptions plus what BrainFlow does not know.

BrainFlow knows, per board (``BoardShim.get_board_descr``): the sampling rate, the data rows of the
EEG channels, of the packet counter and of the timestamp, the other rows (on a Cyton the first holds
each packet's stop byte) and the default electrode names (the OpenBCI GUI's montage). Those facts are
read from BrainFlow, never restated. What BrainFlow does not describe is written here once:

* the ADS1299 front end of the OpenBCI boards (Cyton data format, docs.openbci.com): 4.5 V reference,
  24-bit counts, the gains 1, 2, 4, 6, 8, 12, 24 (the channel-setting command's gain code 0..6), 24
  after a reset, and ``uV = counts * 4.5 V / gain / (2**23 - 1) * 1e6`` as BrainFlow and the GUI scale it;
* how many 33-byte packets make one sample (the Daisy interleaves its 8 channels: two packets, the
  counter advancing by 2 per sample), and the 0xC0 stop byte of a Cyton's default board mode;
* how a board is reached (a serial port, a recorded file, nothing) and whether it has the ADS1299's
  lead-off current source (the contact check);
* the firmware's letter for each board input in channel and lead-off commands.

The board types a device config names are :data:`BOARD_TYPES`; ``playback`` replays a BrainFlow
recording of its master board (the data rows are the master's).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@contextlib.contextmanager
def _without_pkg_resources_warning() -> Iterator[None]:
    """BrainFlow imports setuptools' deprecated ``pkg_resources`` (at import or when it first loads its
    library): its own warning, nothing a user can act on, and it would turn a one-line self-test result or
    error into three lines."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        yield


with _without_pkg_resources_warning():
    from brainflow.board_shim import BoardIds, BoardShim

from edge.errors import ErrorCode, HotspotError

ADS1299_VREF_V = 4.5
ADS1299_BITS = 24
ADS1299_GAINS = (1, 2, 4, 6, 8, 12, 24)
"""Gains selectable by the channel-setting command's gain code 0..6."""
DEFAULT_GAIN = 24
"""The channels' gain after a reset (and BrainFlow's scaling)."""
STOP_BYTE = 0xC0
"""The stop byte of every packet a Cyton sends in its default board mode (accelerometer data)."""
CHANNEL_LETTERS = "12345678QWERTYUI"
"""The Cyton firmware's letter for board inputs 1..16 in ``x...X`` and ``z...Z`` commands."""


def ads1299_uv_per_count(gain: int = DEFAULT_GAIN) -> float:
    """Microvolts per ADC count, as BrainFlow and the OpenBCI GUI scale Cyton data.

    Parameters
    ----------
    gain : int
        The channel's programmable gain (one of :data:`ADS1299_GAINS`).

    Returns
    -------
    float
        ``4.5 V / gain / (2**23 - 1) * 1e6``.
    """
    return ADS1299_VREF_V / gain / (2 ** (ADS1299_BITS - 1) - 1) * 1e6


def ads1299_full_scale_uv(gain: int = DEFAULT_GAIN) -> float:
    """The ADS1299 input range (+-this many microvolts): ``2**23`` counts."""
    return ads1299_uv_per_count(gain) * 2 ** (ADS1299_BITS - 1)


@dataclass(frozen=True)
class _Facts:
    """What BrainFlow's description of a board type does not say."""

    board_id: BoardIds
    packets_per_sample: int
    link: str
    ads1299: bool


_FACTS = {
    "cyton": _Facts(BoardIds.CYTON_BOARD, 1, "serial", True),
    "cyton_daisy": _Facts(BoardIds.CYTON_DAISY_BOARD, 2, "serial", True),
    "synthetic": _Facts(BoardIds.SYNTHETIC_BOARD, 1, "none", False),
    "playback": _Facts(BoardIds.PLAYBACK_FILE_BOARD, 1, "file", False),
}
BOARD_TYPES = tuple(_FACTS)
"""Board types a device reads (``[board] type``)."""
OPENBCI_BOARDS = tuple(name for name, facts in _FACTS.items() if facts.ads1299)
"""The live OpenBCI boards: ADS1299 counts over the Cyton's serial protocol (what the emulator speaks)."""
MASTER_BOARDS = ("cyton", "cyton_daisy", "synthetic")
"""Boards a ``playback`` recording may come from."""


@dataclass(frozen=True)
class Board:
    """One board type as the device reads it through BrainFlow.

    Attributes
    ----------
    name : str
        One of :data:`BOARD_TYPES`.
    board_id : int
        BrainFlow's ``BoardIds`` value of the session (``PLAYBACK_FILE_BOARD`` for playback).
    data_board_id : int
        The board whose data rows the session delivers (playback: its master board; else ``board_id``).
    sampling_rate : float
        Samples per second per channel (BrainFlow).
    eeg_rows : tuple of int
        BrainFlow data rows of EEG channels 1..n (BrainFlow).
    counter_row, timestamp_row : int
        BrainFlow data rows of the packet counter and of the host timestamp (BrainFlow).
    stop_byte_row : int or None
        Row of each packet's stop byte (BrainFlow's first "other" row) for a live OpenBCI board; None for
        boards whose packets carry none.
    eeg_names : tuple of str
        BrainFlow's default electrode names (the OpenBCI GUI's montage).
    packets_per_sample : int
        33-byte packets per sample (2 for the Daisy); the packet counter advances by this much per sample.
    link : str
        ``"serial"`` (needs ``serial_port``), ``"file"`` (needs a recording) or ``"none"``.
    ads1299 : bool
        Live ADS1299 counts: the ADC's range bounds every value, and the lead-off current source exists.
    """

    name: str
    board_id: int
    data_board_id: int
    sampling_rate: float
    eeg_rows: tuple[int, ...]
    counter_row: int
    timestamp_row: int
    stop_byte_row: int | None
    eeg_names: tuple[str, ...]
    packets_per_sample: int
    link: str
    ads1299: bool

    @property
    def n_channels(self) -> int:
        """EEG channels (board inputs 1..n)."""
        return len(self.eeg_rows)

    @property
    def gains(self) -> tuple[int, ...]:
        """Gains selectable by the channel-setting command's gain code 0..6."""
        return ADS1299_GAINS

    @property
    def default_gain(self) -> int:
        """The channels' gain after a reset."""
        return DEFAULT_GAIN

    @property
    def max_count(self) -> int:
        """Largest positive ADC count (``2**23 - 1``)."""
        return 2 ** (ADS1299_BITS - 1) - 1

    def uv_per_count(self, gain: int | None = None) -> float:
        """Microvolts per ADC count at ``gain`` (default: :data:`DEFAULT_GAIN`)."""
        return ads1299_uv_per_count(DEFAULT_GAIN if gain is None else gain)

    def counts_from_uv(self, uv: np.ndarray, gain: int | None = None) -> np.ndarray:
        """Quantise microvolts to ADC counts, saturating at the rails like the ADS1299.

        Parameters
        ----------
        uv : ndarray
            Microvolts (NaN is treated as 0).
        gain : int, optional
            Channel gain (default: :data:`DEFAULT_GAIN`).

        Returns
        -------
        ndarray of int64
            Counts in ``[-2**23, 2**23 - 1]``.
        """
        counts = np.rint(np.nan_to_num(np.asarray(uv, dtype=np.float64)) / self.uv_per_count(gain))
        return np.clip(counts, -self.max_count - 1, self.max_count).astype(np.int64)

    def uv_from_counts(self, counts: np.ndarray, gain: int | None = None) -> np.ndarray:
        """Microvolts for ADC counts at ``gain``."""
        return np.asarray(counts, dtype=np.float64) * self.uv_per_count(gain)


@functools.cache
def load_board(name: str, master_board: str = "cyton") -> Board:
    """The description of board type ``name`` (``master_board``: the board a playback file was recorded with).

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` for an unknown board type or master board.
    """
    if name not in _FACTS:
        raise HotspotError(f"unknown board type {name!r}; use one of {', '.join(BOARD_TYPES)}", ErrorCode.BAD_CONFIG)
    if name == "playback" and master_board not in MASTER_BOARDS:
        raise HotspotError(f"playback master board must be {', '.join(MASTER_BOARDS)}, not {master_board!r}",
                           ErrorCode.BAD_CONFIG)
    facts = _FACTS[name]
    data = _FACTS[master_board] if name == "playback" else facts
    with _without_pkg_resources_warning():  # the first description loads BrainFlow's library
        descr = BoardShim.get_board_descr(data.board_id)
    return Board(name=name, board_id=int(facts.board_id), data_board_id=int(data.board_id),
                 sampling_rate=float(descr["sampling_rate"]), eeg_rows=tuple(descr["eeg_channels"]),
                 counter_row=int(descr["package_num_channel"]), timestamp_row=int(descr["timestamp_channel"]),
                 stop_byte_row=int(descr["other_channels"][0]) if facts.ads1299 else None,
                 eeg_names=tuple(descr["eeg_names"].split(",")), packets_per_sample=data.packets_per_sample,
                 link=facts.link, ads1299=facts.ads1299)
