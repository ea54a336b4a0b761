"""OpenBCI recordings: OpenBCI GUI v5/v6 text files and BrainFlow CSV files.

A BrainFlow CSV (written by ``DataFilter.write_file``, tab-separated, one row per sample) is
read with BrainFlow's own ``DataFilter.read_file``, which returns BrainFlow's row layout.
An OpenBCI GUI ``.txt`` file carries ``%`` header lines (``%Sample Rate = 250 Hz``,
``%Board = OpenBCI_GUI$BoardCytonSerial``), a column-header line and comma-separated rows whose
first columns are that same row layout, plus a formatted wall-clock column; we drop the header
and the formatted column (the conversion ../shared/data/real/openbci/README.md describes) and
read the rest as numbers. Either way the board description from ``BoardShim`` tells which rows
are EEG (microvolts) and which is the marker row. Non-zero markers become events whose code is
the marker value and whose name is that value as text (``"1"``).

Channel names: the files do not say where the electrodes were. Unless names are given, the
EEG rows get the board's default montage from BrainFlow's board description (Cyton:
Fp1, Fp2, C3, C4, P7, P8, O1, O2) -- an assumption about the cap, not a fact from the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from brainflow.board_shim import BoardIds, BoardShim
from brainflow.data_filter import DataFilter
from brainflow.exit_codes import BrainFlowError

from edge.errors import ErrorCode, HotspotError
from train.io.signals import Signals

GUI_MAGIC = "%OpenBCI"
MAX_SAMPLING_RATE_HZ = 16000.0
"""The highest rate an OpenBCI board samples at (the Cyton's ADS1299 tops out at 16 kHz)."""
BOARDS = {
    "cyton": BoardIds.CYTON_BOARD,
    "cyton_daisy": BoardIds.CYTON_DAISY_BOARD,
    "ganglion": BoardIds.GANGLION_BOARD,
    "synthetic": BoardIds.SYNTHETIC_BOARD,
}
# Board names in the GUI's "%Board = OpenBCI_GUI$Board..." header, most specific first.
_GUI_BOARDS = (("CytonSerialDaisy", "cyton_daisy"), ("CytonWifiDaisy", "cyton_daisy"), ("Cyton", "cyton"),
               ("Ganglion", "ganglion"), ("Synthetic", "synthetic"))


def is_openbci_gui_file(path: Path) -> bool:
    """Return True when ``path`` starts with the OpenBCI GUI header (``%OpenBCI``)."""
    with path.open("rb") as handle:
        return handle.read(len(GUI_MAGIC)).decode("ascii", errors="replace") == GUI_MAGIC


def is_brainflow_csv(path: Path) -> bool:
    """Return True when the first line of ``path`` is tab-separated numbers (a BrainFlow CSV)."""
    with path.open("rb") as handle:
        first = handle.readline().decode("ascii", errors="replace").strip()
    try:
        return len([float(value) for value in first.split("\t")]) > 1
    except ValueError:
        return False


def read_gui_file(path: Path, channel_names: list[str] | None = None) -> Signals:
    """Read an OpenBCI GUI text recording.

    Parameters
    ----------
    path : Path
        The GUI's ``OpenBCI-RAW-*.txt`` / ``OpenBCI_GUI-v6-*.txt`` file.
    channel_names : list of str, optional
        Electrode names of the EEG rows (default: the board's default montage).

    Returns
    -------
    Signals

    Raises
    ------
    HotspotError
        BAD_FORMAT for an unknown board or a header without a sampling rate, BAD_FILE for rows
        that are not numbers or have the wrong number of columns (e.g. a truncated last row).
    """
    header = _gui_header(path)
    board_id = _gui_board(path, header.get("Board", ""))
    sfreq = _gui_sampling_rate(path, header)
    n_rows = BoardShim.get_num_rows(board_id)
    try:
        table = np.loadtxt(path, delimiter=",", comments="%", skiprows=len(header) + 1,
                           usecols=range(n_rows), ndmin=2)
    except ValueError as err:
        raise HotspotError(f"cannot read the samples of {path} ({err}); the file is corrupt or truncated",
                           ErrorCode.BAD_FILE) from err
    return _signals(path, table.T, board_id, sfreq, channel_names)


def read_brainflow_csv(path: Path, board: str | None = None, channel_names: list[str] | None = None) -> Signals:
    """Read a BrainFlow CSV written by ``DataFilter.write_file`` with ``DataFilter.read_file``.

    Parameters
    ----------
    path : Path
        The file.
    board : str, optional
        ``"cyton"``, ``"cyton_daisy"``, ``"ganglion"`` or ``"synthetic"``; inferred from the number
        of rows when that number belongs to one of them only (Cyton 24, Ganglion 15).
    channel_names : list of str, optional
        Electrode names of the EEG rows (default: the board's default montage).

    Returns
    -------
    Signals

    Raises
    ------
    HotspotError
        BAD_FILE when BrainFlow cannot read the file, BAD_FORMAT when the board is unknown or
        does not match the number of rows.
    """
    DataFilter.disable_data_logger()
    try:
        data = DataFilter.read_file(str(path))
    except BrainFlowError as err:
        raise HotspotError(f"BrainFlow cannot read {path} ({err}); the file is corrupt, truncated or not a "
                           "BrainFlow CSV", ErrorCode.BAD_FILE) from err
    board_id = _csv_board(path, data.shape[0], board)
    return _signals(path, data, board_id, float(BoardShim.get_sampling_rate(board_id)), channel_names)


def _signals(path: Path, rows: np.ndarray, board_id: BoardIds, sfreq: float,
             channel_names: list[str] | None) -> Signals:
    """EEG rows, names and marker events of a BrainFlow-layout array."""
    description = BoardShim.get_board_descr(board_id)
    eeg_rows = description["eeg_channels"]
    names = channel_names if channel_names is not None else description["eeg_names"].split(",")
    if len(names) != len(eeg_rows):
        raise HotspotError(f"{path} has {len(eeg_rows)} EEG channels but {len(names)} channel names were given",
                           ErrorCode.BAD_ARGUMENT)
    markers = rows[description["marker_channel"]]
    samples = np.flatnonzero(markers)
    codes = markers[samples].astype(np.int64)
    events = np.column_stack([samples, codes]).astype(np.int64)
    event_id = {str(code): int(code) for code in np.unique(codes)}
    return Signals(np.ascontiguousarray(rows[eeg_rows], dtype=float), sfreq, list(names), events, event_id)


def _gui_header(path: Path) -> dict[str, str]:
    """The ``%Key = value`` lines at the top of a GUI file (``%OpenBCI Raw EXG Data`` has no value)."""
    header: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("%"):
                break
            key, _, value = line[1:].partition("=")
            header[key.strip()] = value.strip()
    return header


def _gui_board(path: Path, board_text: str) -> BoardIds:
    for marker, name in _GUI_BOARDS:
        if marker in board_text:
            return BOARDS[name]
    raise HotspotError(f"{path}: board '{board_text}' in the GUI header is not supported; record with a "
                       f"{', '.join(BOARDS)} board", ErrorCode.BAD_FORMAT)


def _gui_sampling_rate(path: Path, header: dict[str, str]) -> float:
    text = header.get("Sample Rate", "").removesuffix("Hz").strip()
    try:
        sfreq = float(text)
    except ValueError as err:
        raise HotspotError(f"{path}: the GUI header has no '%Sample Rate = <n> Hz' line",
                           ErrorCode.BAD_FORMAT) from err
    if not 0 < sfreq <= MAX_SAMPLING_RATE_HZ:
        raise HotspotError(f"{path}: the GUI header's sample rate {text} Hz is not a sampling rate (0 < rate <= "
                           f"{MAX_SAMPLING_RATE_HZ:g} Hz); the header is damaged", ErrorCode.BAD_FORMAT)
    return sfreq


def _csv_board(path: Path, n_rows: int, board: str | None) -> BoardIds:
    if board is not None:
        if board not in BOARDS:
            raise HotspotError(f"unknown board '{board}'; use one of {', '.join(BOARDS)}", ErrorCode.BAD_ARGUMENT)
        board_id = BOARDS[board]
        if BoardShim.get_num_rows(board_id) != n_rows:
            raise HotspotError(f"{path} has {n_rows} rows but a {board} recording has "
                               f"{BoardShim.get_num_rows(board_id)}; check the board", ErrorCode.BAD_FORMAT)
        return board_id
    matches = [name for name, board_id in BOARDS.items() if BoardShim.get_num_rows(board_id) == n_rows]
    if len(matches) != 1:
        raise HotspotError(f"{path} has {n_rows} rows per sample, which "
                           f"{'fits ' + ' and '.join(matches) if matches else 'fits no supported board'}; "
                           f"name the board ({', '.join(BOARDS)})", ErrorCode.BAD_FORMAT)
    return BOARDS[matches[0]]
