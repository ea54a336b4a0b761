"""EEG files through MNE's readers: EDF/EDF+, BDF/BDF+, BrainVision, FIF and GDF.

Only EEG channels are kept (stimulus, EOG and other channels are dropped), converted from
volts to microvolts. Events come from the file's annotations (EDF+ annotations, BrainVision
markers, FIF annotations; ``BAD``/``EDGE`` annotations are skipped) unless an events file is
given; a BrainVision ``Comment/`` marker prefix is dropped so a marker keeps its plain name.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError
from train.io.events import read_events_file
from train.io.signals import Signals

READERS: dict[str, Callable[..., mne.io.BaseRaw]] = {
    ".edf": mne.io.read_raw_edf,
    ".bdf": mne.io.read_raw_bdf,
    ".vhdr": mne.io.read_raw_brainvision,
    ".fif": mne.io.read_raw_fif,
    ".fif.gz": mne.io.read_raw_fif,
    ".gdf": mne.io.read_raw_gdf,
}
# MNE reads a truncated EDF/BDF/GDF with a warning and returns fewer samples; we refuse it.
_TRUNCATION_WARNING = "does not match the file size"
_READ_ERRORS = (OSError, ValueError, RuntimeError, EOFError, IndexError, KeyError, struct.error,
                UnicodeDecodeError, AssertionError, ZeroDivisionError, OverflowError, MemoryError)
_BRAINVISION_COMMENT = "Comment/"


def extension(path: Path) -> str:
    """Return the lower-case extension MNE dispatches on (``.fif.gz`` counts as one)."""
    name = path.name.lower()
    return ".fif.gz" if name.endswith(".fif.gz") else path.suffix.lower()


def read_eeg_file(path: Path, events_file: Path | None = None) -> Signals:
    """Read one EEG file with the MNE reader for its extension.

    Parameters
    ----------
    path : Path
        An ``.edf``, ``.bdf``, ``.vhdr``, ``.fif``/``.fif.gz`` or ``.gdf`` file.
    events_file : Path, optional
        Events to use instead of the file's annotations (see :mod:`train.io.events`).

    Returns
    -------
    Signals
        EEG channels in microvolts with their labels as written, and the events.

    Raises
    ------
    HotspotError
        BAD_FORMAT for an extension MNE is not asked to read here, BAD_FILE when the file
        is missing, unreadable, truncated or has no EEG channel.
    """
    reader = READERS.get(extension(path))
    if reader is None:
        raise HotspotError(f"{path}: unknown EEG format; use EDF, BDF, BrainVision (.vhdr), FIF or GDF",
                           ErrorCode.BAD_FORMAT)
    raw = _read_raw(reader, path)
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise HotspotError(f"{path} has no EEG channel (channel types: "
                           f"{', '.join(sorted(set(raw.get_channel_types())))})", ErrorCode.BAD_FILE)
    data_uv = raw.get_data(picks=picks) * 1e6
    sfreq = float(raw.info["sfreq"])
    if events_file is not None:
        events, event_id = read_events_file(events_file, sfreq, raw.first_samp)
    else:
        events, event_id = _events_from_annotations(raw)
    return Signals(data_uv, sfreq, [raw.ch_names[pick] for pick in picks], events, event_id)


def _read_raw(reader: Callable[..., mne.io.BaseRaw], path: Path) -> mne.io.BaseRaw:
    """Run an MNE reader with the data loaded; turn its failures and truncation warnings into errors."""
    if not path.is_file():
        raise HotspotError(f"{path} not found; check the path", ErrorCode.BAD_FILE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = reader(path, preload=True, verbose="warning")
        except _READ_ERRORS as err:
            raise HotspotError(f"cannot read {path} ({_one_line(err)}); the file is corrupt or truncated, export it "
                               "again", ErrorCode.BAD_FILE) from None
        except Exception as err:  # MNE's readers also raise a bare Exception on a corrupt file
            if type(err) is not Exception:
                raise
            raise HotspotError(f"cannot read {path} ({_one_line(err)}); the file is corrupt, export it again",
                               ErrorCode.BAD_FILE) from None
    if any(_TRUNCATION_WARNING in str(warning.message) for warning in caught):
        raise HotspotError(f"{path} is truncated (the header promises more data than the file holds); "
                           "copy or export it again", ErrorCode.BAD_FILE)
    _check_scaling(path, raw)
    return raw


def _one_line(err: BaseException) -> str:
    """The error on one line: its type, and its message when it has one."""
    message = " ".join(str(err).split())
    return f"{type(err).__name__}: {message}" if message and type(err) is not Exception else message or type(err).__name__


def _check_scaling(path: Path, raw: mne.io.BaseRaw) -> None:
    """Refuse EDF/BDF/GDF channels whose header range is empty (physical or digital minimum = maximum).

    MNE scales such a channel by 0 (or divides by 0) without a word; the range comes from MNE's
    parsed header (``raw._raw_extras``).
    """
    extras = getattr(raw, "_raw_extras", [{}])[0]
    if "physical_min" not in extras or "digital_min" not in extras:
        return
    names = list(extras.get("ch_names", raw.ch_names))
    empty = [names[i] if i < len(names) else str(i) for i in range(len(extras["physical_min"]))
             if extras["physical_max"][i] == extras["physical_min"][i]
             or extras["digital_max"][i] == extras["digital_min"][i]]
    if empty:
        raise HotspotError(f"{path}: channel(s) {', '.join(empty[:5])} have physical or digital minimum equal to "
                           "maximum in the header, so their values cannot be scaled; export the file again",
                           ErrorCode.BAD_FILE)


def _events_from_annotations(raw: mne.io.BaseRaw) -> tuple[np.ndarray, dict[str, int]]:
    """Events and names from the annotations, counted from the first sample of the data."""
    if len(raw.annotations) == 0:
        return np.zeros((0, 2), dtype=np.int64), {}
    events, event_id = mne.events_from_annotations(raw, verbose="error")
    names = {name.removeprefix(_BRAINVISION_COMMENT): code for name, code in event_id.items()}
    pairs = np.column_stack([events[:, 0] - raw.first_samp, events[:, 2]]).astype(np.int64)
    return pairs, names
