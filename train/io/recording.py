"""One recording file -> a checked :class:`train.dataset.Recording` (10-05 names, head-frame positions, uV).

Formats by extension: ``.edf``, ``.bdf``, ``.vhdr`` (BrainVision), ``.fif``/``.fif.gz`` and
``.gdf`` through MNE (:mod:`train.io.eeg`); ``.txt``/``.csv`` that are OpenBCI GUI recordings or
BrainFlow CSV files (:mod:`train.io.openbci`).

Subject and session come from the file name: BIDS entities (``sub-01_ses-2_task-x_run-1_eeg.edf``
-> ``sub-01``, ``ses-2_run-1``), PhysioNet eegmmidb names (``S001R03.edf`` -> ``sub-S001``,
``run-03``: the three runs of one visit share the cap, so they are runs, not sessions), else the
file stem (``rec.edf`` -> ``sub-rec``, ``ses-1``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError
from train.dataset import Recording
from train.io import eeg, openbci
from train.io.channels import standardize_names, template_positions
from train.io.events import read_events_file, sibling_events_file
from train.io.signals import Signals

OPENBCI_SUFFIXES = (".txt", ".csv")
RECORDING_SUFFIXES = (*eeg.READERS, *OPENBCI_SUFFIXES)
_EEGMMIDB = re.compile(r"(S\d{3})R(\d{2})")
_BIDS_ENTITY = re.compile(r"(sub|ses|run)-([A-Za-z0-9]+)")


def is_recording_file(path: Path) -> bool:
    """Return True for a recording file (by extension, not MNE ``-eve.fif`` events; ``.txt``/``.csv`` if OpenBCI)."""
    suffix = eeg.extension(path)
    if suffix in eeg.READERS:
        return not path.name.lower().removesuffix(suffix).endswith(("-eve", "_eve"))
    return suffix in OPENBCI_SUFFIXES and (openbci.is_openbci_gui_file(path) or openbci.is_brainflow_csv(path))


def read_recording(path: str | Path, *, events: str | Path | None = None, channel_names: Sequence[str] | None = None,
                   board: str | None = None, required_channels: Sequence[str] | None = None,
                   required_sfreq: float | None = None, require_events: bool = True) -> Recording:
    """Read one EEG recording and check it.

    Parameters
    ----------
    path : str or Path
        The recording (see the module docstring for formats).
    events : str or Path, optional
        An events file (BIDS ``events.tsv`` or MNE events file) to use instead of the
        file's own annotations/markers. A BIDS ``<prefix>_events.tsv`` beside a
        ``<prefix>_eeg.<ext>`` file is used automatically.
    channel_names : sequence of str, optional
        Names for the EEG channels in file order, replacing the file's labels (OpenBCI files
        name no electrodes; the default is the board's default montage).
    board : str, optional
        Board of a BrainFlow CSV (``cyton``, ``cyton_daisy``, ``ganglion``, ``synthetic``)
        when the number of rows does not tell.
    required_channels : sequence of str, optional
        10-05 names that must be present.
    required_sfreq : float, optional
        The sampling rate the recording must have, Hz.
    require_events : bool
        Refuse a recording without events (a task recording needs its cues).

    Returns
    -------
    Recording
        Channel names in MNE's 10-05 spelling, template head-frame positions (NaN for
        non-10-05 names), samples in microvolts, events sorted by sample.

    Raises
    ------
    HotspotError
        BAD_FILE (missing, unreadable, truncated, empty), BAD_FORMAT (unknown format),
        MISSING_CHANNELS, BAD_SAMPLING_RATE, BAD_SAMPLES (NaN/inf), NO_EVENTS.
    """
    path = Path(path)
    if not path.is_file():
        raise HotspotError(f"{path} not found; check the path", ErrorCode.BAD_FILE)
    signals = _read_signals(path, Path(events) if events is not None else None, board, channel_names)
    names = standardize_names(signals.ch_names)
    _check(path, signals, names, required_channels, required_sfreq, require_events)
    subject, session = identify(path)
    order = np.argsort(signals.events[:, 0], kind="stable")
    return Recording(subject=subject, session=session, data=signals.data, sfreq=signals.sfreq, ch_names=names,
                     ch_pos=template_positions(names), events=signals.events[order], event_id=signals.event_id)


def identify(path: Path) -> tuple[str, str]:
    """Return (subject, session) for a recording file (see the module docstring)."""
    stem = path.name.split(".")[0]
    eegmmidb = _EEGMMIDB.fullmatch(stem)
    if eegmmidb:
        return f"sub-{eegmmidb.group(1)}", f"run-{eegmmidb.group(2)}"
    entities = dict(_BIDS_ENTITY.findall(stem))
    if "sub" in entities:
        parts = [f"{key}-{entities[key]}" for key in ("ses", "run") if key in entities]
        return f"sub-{entities['sub']}", "_".join(parts) or "ses-1"
    return f"sub-{re.sub(r'[^A-Za-z0-9]', '', stem) or 'unnamed'}", "ses-1"


def check_recording(recording: Recording, source: str, required_channels: Sequence[str] | None,
                    required_sfreq: float | None, require_events: bool) -> None:
    """Apply the checks of :func:`read_recording` to a recording from another reader."""
    signals = Signals(recording.data, recording.sfreq, recording.ch_names, recording.events, recording.event_id)
    _check(Path(source), signals, recording.ch_names, required_channels, required_sfreq, require_events)


def _read_signals(path: Path, events: Path | None, board: str | None,
                  channel_names: Sequence[str] | None) -> Signals:
    suffix = eeg.extension(path)
    names = list(channel_names) if channel_names is not None else None
    if suffix in eeg.READERS:
        signals = eeg.read_eeg_file(path, events or sibling_events_file(path))
        if names is not None:
            if len(names) != len(signals.ch_names):
                raise HotspotError(f"{path} has {len(signals.ch_names)} EEG channels but {len(names)} channel "
                                   "names were given", ErrorCode.BAD_ARGUMENT)
            signals.ch_names = names
        return signals
    if suffix in OPENBCI_SUFFIXES and openbci.is_openbci_gui_file(path):
        signals = openbci.read_gui_file(path, names)
    elif suffix in OPENBCI_SUFFIXES and openbci.is_brainflow_csv(path):
        signals = openbci.read_brainflow_csv(path, board, names)
    else:
        raise HotspotError(f"{path}: unknown recording format; use EDF, BDF, BrainVision (.vhdr), FIF, GDF, an "
                           "OpenBCI GUI .txt or a BrainFlow CSV", ErrorCode.BAD_FORMAT)
    if events is not None:
        signals.events, signals.event_id = read_events_file(events, signals.sfreq)
    return signals


def _check(path: Path, signals: Signals, names: list[str], required_channels: Sequence[str] | None,
           required_sfreq: float | None, require_events: bool) -> None:
    if signals.data.ndim != 2 or signals.data.shape[1] == 0:
        raise HotspotError(f"{path} holds no samples; record again or export again", ErrorCode.BAD_FILE)
    missing = [name for name in required_channels or () if name not in names]
    if missing:
        raise HotspotError(f"{path} lacks the required channel(s) {', '.join(missing)} (it has "
                           f"{', '.join(names)})", ErrorCode.MISSING_CHANNELS)
    if required_sfreq is not None and not np.isclose(signals.sfreq, required_sfreq):
        raise HotspotError(f"{path} is sampled at {signals.sfreq:g} Hz, not the required {required_sfreq:g} Hz; "
                           "resample it or ask for its rate", ErrorCode.BAD_SAMPLING_RATE)
    finite = np.isfinite(signals.data)
    if not finite.all():
        bad = [names[index] for index in np.flatnonzero(~finite.all(axis=1))]
        raise HotspotError(f"{path} has {int((~finite).sum())} NaN or infinite sample(s) in channel(s) "
                           f"{', '.join(bad)}; repair or drop those channels", ErrorCode.BAD_SAMPLES)
    if require_events and len(signals.events) == 0:
        raise HotspotError(f"{path} has no events (no annotations or markers); give an events file with the "
                           "movement cues, or allow recordings without events", ErrorCode.NO_EVENTS)
