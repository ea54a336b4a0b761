"""OpenBCI board descriptions and default electrode maps, read from ``boards.toml``.

The numbers (channel counts, sampling rates, ADC reference and gains, BrainFlow ids and rows)
are data in ``hardware/boards.toml``; this module validates them at load and converts between
ADS1299 counts and microvolts the way the board's firmware and BrainFlow's driver do.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError

BOARDS_FILE = Path(__file__).with_name("boards.toml")


@dataclass(frozen=True)
class Board:
    """One OpenBCI board as seen over its serial link.

    Attributes
    ----------
    name : str
        ``"cyton"`` or ``"cyton_daisy"``.
    brainflow_id : int
        BrainFlow's ``BoardIds`` value.
    n_channels : int
        EEG channels (8 or 16).
    sampling_rate : int
        Samples per second per channel.
    packets_per_sample : int
        33-byte packets per sample (2 for the Daisy, which interleaves its 8 channels).
    vref_v : float
        ADS1299 reference voltage in volts.
    adc_bits : int
        ADC resolution (24).
    default_gain : int
        Programmable gain after a reset (``d``).
    gains : tuple of int
        Gains selectable by the channel-setting command's gain code 0..6.
    eeg_rows : tuple of int
        BrainFlow data rows of EEG channels 1..n.
    package_num_row : int
        BrainFlow data row of the packet counter.
    """

    name: str
    brainflow_id: int
    n_channels: int
    sampling_rate: int
    packets_per_sample: int
    vref_v: float
    adc_bits: int
    default_gain: int
    gains: tuple[int, ...]
    eeg_rows: tuple[int, ...]
    package_num_row: int

    @property
    def max_count(self) -> int:
        """Largest positive ADC count (``2**(adc_bits-1) - 1``)."""
        return 2 ** (self.adc_bits - 1) - 1

    def uv_per_count(self, gain: int | None = None) -> float:
        """Return microvolts per ADC count at ``gain`` (default: the board's default gain)."""
        gain = self.default_gain if gain is None else gain
        return self.vref_v / gain / self.max_count * 1e6

    def counts_from_uv(self, uv: np.ndarray, gain: int | None = None) -> np.ndarray:
        """Quantise microvolts to ADC counts, saturating at the rails like the ADS1299.

        Parameters
        ----------
        uv : ndarray
            Microvolts (NaN is treated as 0).
        gain : int, optional
            Channel gain (default: the board's default gain).

        Returns
        -------
        ndarray of int64
            Counts in ``[-2**(adc_bits-1), 2**(adc_bits-1) - 1]``.
        """
        counts = np.rint(np.nan_to_num(np.asarray(uv, dtype=np.float64)) / self.uv_per_count(gain))
        return np.clip(counts, -self.max_count - 1, self.max_count).astype(np.int64)

    def uv_from_counts(self, counts: np.ndarray, gain: int | None = None) -> np.ndarray:
        """Return microvolts for ADC counts at ``gain``."""
        return np.asarray(counts, dtype=np.float64) * self.uv_per_count(gain)


@dataclass(frozen=True)
class ChannelMap:
    """Which 10-05 electrode sits on which board channel.

    Attributes
    ----------
    name : str
        Map name in ``boards.toml``.
    board : str
        Board name the map is for.
    channels : dict of str to int
        10-05 name to 1-based board channel.
    """

    name: str
    board: str
    channels: dict[str, int]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise HotspotError(f"{BOARDS_FILE}: {message}; fix the file", ErrorCode.BAD_CONFIG)


@cache
def _table() -> dict:
    with BOARDS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def board_names() -> list[str]:
    """Return the names of the described boards."""
    return sorted(_table().get("boards", {}))


def load_board(name: str) -> Board:
    """Return the validated description of board ``name`` (``"cyton"`` or ``"cyton_daisy"``).

    Raises
    ------
    HotspotError
        If the board is unknown or its description is inconsistent.
    """
    boards = _table().get("boards", {})
    if name not in boards:
        raise HotspotError(f"unknown board {name!r}; use one of {', '.join(sorted(boards))}", ErrorCode.BAD_ARGUMENT)
    raw = boards[name]
    fields = set(Board.__dataclass_fields__) - {"name"}
    _require(set(raw) == fields, f"board {name} must have exactly the keys {sorted(fields)}")
    board = Board(name=name, **{key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()})
    _require(len(board.eeg_rows) == board.n_channels, f"board {name}: eeg_rows must list n_channels rows")
    _require(board.default_gain in board.gains, f"board {name}: default_gain must be one of gains")
    _require(board.n_channels == 8 * board.packets_per_sample, f"board {name}: 8 channels per packet")
    return board


def map_names() -> list[str]:
    """Return the names of the default electrode maps."""
    return sorted(_table().get("maps", {}))


def load_map(name: str) -> ChannelMap:
    """Return the default electrode map ``name`` (10-05 name to board channel), validated.

    Raises
    ------
    HotspotError
        If the map is unknown or names a channel the board does not have.
    """
    maps = _table().get("maps", {})
    if name not in maps:
        raise HotspotError(f"unknown channel map {name!r}; use one of {', '.join(sorted(maps))}",
                           ErrorCode.BAD_ARGUMENT)
    raw = maps[name]
    board = load_board(raw["board"])
    channels = {str(key): int(value) for key, value in raw["channels"].items()}
    _require(all(1 <= value <= board.n_channels for value in channels.values()),
             f"map {name}: board channels must be 1..{board.n_channels}")
    _require(len(set(channels.values())) == len(channels), f"map {name}: a board channel is used twice")
    return ChannelMap(name=name, board=board.name, channels=channels)
