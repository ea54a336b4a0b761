"""Events from an events file: a BIDS ``*_events.tsv`` or an MNE events file (``.eve``, ``-eve.fif``).

Events embedded in a recording (EDF+/BDF+ annotations, BrainVision markers, FIF annotations,
BrainFlow marker channel) are read by the recording's own reader; this module reads the
separate files that some recordings come with.
"""

from __future__ import annotations

import csv
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError



def sibling_events_file(recording: Path) -> Path | None:
    """Return the BIDS events file next to a ``*_eeg.<ext>`` recording, if there is one.

    Parameters
    ----------
    recording : Path
        The EEG file.

    Returns
    -------
    Path or None
        ``<prefix>_events.tsv`` when the file is named ``<prefix>_eeg.<ext>`` and it exists.
    """
    stem = recording.name.split(".")[0]
    if not stem.endswith("_eeg"):
        return None
    candidate = recording.with_name(stem[: -len("_eeg")] + "_events.tsv")
    return candidate if candidate.is_file() else None


def read_events_file(path: Path, sfreq: float, first_samp: int = 0) -> tuple[np.ndarray, dict[str, int]]:
    """Read events from a BIDS events TSV or an MNE events file.

    Parameters
    ----------
    path : Path
        ``*.tsv`` (BIDS: ``onset`` in seconds, ``trial_type`` names, optional ``sample`` and
        ``value`` columns) or an MNE events file (``.eve``, ``.txt``, ``-eve.fif``; event names
        are the codes as text).
    sfreq : float
        Sampling rate of the recording, Hz (to turn onsets into samples).
    first_samp : int
        The recording's first sample number (MNE events files count from the acquisition
        start; the result counts from the first sample of the data).

    Returns
    -------
    events : ndarray of int, shape (n_events, 2)
        Sample index and code, sorted by sample.
    event_id : dict of str to int

    Raises
    ------
    HotspotError
        If the file is missing or cannot be read as either kind.
    """
    path = Path(path)
    if not path.is_file():
        raise HotspotError(f"events file {path} not found; give an existing events file", ErrorCode.BAD_FILE)
    if path.suffix.lower() == ".tsv":
        return _read_bids_events(path, sfreq)
    try:
        events = mne.read_events(path, verbose="error")
    except (OSError, ValueError, RuntimeError) as err:
        raise HotspotError(f"cannot read events file {path} ({err}); give a BIDS events.tsv or an MNE "
                           "events file", ErrorCode.BAD_FILE) from err
    pairs = np.column_stack([events[:, 0] - first_samp, events[:, 2]]).astype(np.int64)
    return pairs, {str(code): int(code) for code in np.unique(events[:, 2])}


def _read_bids_events(path: Path, sfreq: float) -> tuple[np.ndarray, dict[str, int]]:
    """Read a BIDS ``events.tsv``: names from ``trial_type`` (else ``value``), samples from onsets."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return np.zeros((0, 2), dtype=np.int64), {}
    name_column = "trial_type" if "trial_type" in rows[0] else "value"
    if "onset" not in rows[0] or name_column not in rows[0]:
        raise HotspotError(f"events file {path} needs the columns onset and trial_type (or value); found "
                           f"{', '.join(rows[0])}", ErrorCode.BAD_FILE)
    names = [row[name_column] for row in rows]
    event_id = _event_codes(rows, names)
    try:
        samples = [int(row["sample"]) if row.get("sample", "n/a") not in ("", "n/a") else
                   int(round(float(row["onset"]) * sfreq)) for row in rows]
    except ValueError as err:
        raise HotspotError(f"events file {path} has a non-numeric onset or sample ({err})",
                           ErrorCode.BAD_FILE) from err
    events = np.array([[sample, event_id[name]] for sample, name in zip(samples, names)], dtype=np.int64)
    return events[np.argsort(events[:, 0], kind="stable")], event_id


def _event_codes(rows: list[dict[str, str]], names: list[str]) -> dict[str, int]:
    """Codes from the ``value`` column when it gives each name one distinct integer, else 1..n by name."""
    values: dict[str, set[str]] = {}
    for name, row in zip(names, rows):
        values.setdefault(name, set()).add(row.get("value", ""))
    codes = {name: next(iter(found)) for name, found in values.items() if len(found) == 1}
    if (len(codes) == len(values) and all(code.lstrip("-").isdigit() for code in codes.values())
            and len(set(codes.values())) == len(codes)):
        return {name: int(code) for name, code in sorted(codes.items())}
    return {name: code for code, name in enumerate(sorted(values), start=1)}
