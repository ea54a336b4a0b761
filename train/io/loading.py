"""A file or folder of recordings (plus TMS labels) -> one :class:`train.dataset.Dataset`.

A folder with ``participants.tsv`` is a BIDS-like simulated cohort and goes to
``train.bids.read_bids_dataset``; any other folder is searched (recursively) for recording
files, which are grouped into subjects by their names (see :mod:`train.io.recording`).
Group and hand of imported subjects are ``"unknown"``; labels come only from a label file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError
from train.dataset import Dataset, Recording, Subject
from train.io.labels import read_labels
from train.io.recording import check_recording, is_recording_file, read_recording

PARTICIPANTS = "participants.tsv"


def load_dataset(path: str | Path, labels: str | Path | None = None, fiducials: str | Path | None = None, *,
                 events: str | Path | None = None, channel_names: Sequence[str] | None = None,
                 board: str | None = None, required_channels: Sequence[str] | None = None,
                 required_sfreq: float | None = None, require_events: bool = True,
                 label_subject: str | None = None, target: str | None = None) -> Dataset:
    """Load recordings and TMS labels into one dataset.

    Parameters
    ----------
    path : str or Path
        A recording file, a folder of recordings, or a BIDS-like simulated cohort folder.
    labels : str or Path, optional
        TMS hotspot labels (see :func:`train.io.labels.read_labels`). They replace the labels of
        a simulated cohort; a subject the file does not label gets none.
    fiducials : str or Path, optional
        Nasion/LPA/RPA for labels that are not in the head frame.
    events : str or Path, optional
        Events file for a single recording file.
    channel_names : sequence of str, optional
        Channel names for recordings whose files name no electrodes (OpenBCI).
    board : str, optional
        Board of BrainFlow CSV files (see :func:`train.io.read_recording`).
    required_channels : sequence of str, optional
        10-05 names every recording must have.
    required_sfreq : float, optional
        The sampling rate every recording must have, Hz.
    require_events : bool
        Refuse recordings without events.
    label_subject, target : str, optional
        Subject and target name for a single-subject Brainsight/Localite label file.

    Returns
    -------
    Dataset
        Named after the folder (or file stem); subjects in order of their first recording.

    Raises
    ------
    HotspotError
        Everything :func:`train.io.read_recording` raises; BAD_FILE when a folder holds no
        recordings; BAD_SAMPLING_RATE when recordings differ in rate; BAD_LABELS when a label
        names a subject without recordings; BAD_ARGUMENT for fiducials without labels or an
        events file with a folder.
    """
    path = Path(path)
    if fiducials is not None and labels is None:
        raise HotspotError("fiducials were given without labels; give the TMS labels they belong to",
                           ErrorCode.BAD_ARGUMENT)
    if not path.exists():
        raise HotspotError(f"{path} not found; check the path", ErrorCode.BAD_FILE)
    if path.is_dir() and events is not None:
        raise HotspotError("an events file belongs to one recording; give a recording file, not a folder",
                           ErrorCode.BAD_ARGUMENT)
    if (path / PARTICIPANTS).is_file():
        dataset = _read_simulated(path, required_channels, required_sfreq, require_events)
    else:
        options = dict(events=events, channel_names=channel_names, board=board, required_channels=required_channels,
                       required_sfreq=required_sfreq, require_events=require_events)
        dataset = _group(path.name if path.is_dir() else path.name.split(".")[0],
                         [read_recording(file, **options) for file in _recording_files(path)])
    if labels is not None:
        _attach_labels(dataset, read_labels(labels, fiducials, subject=label_subject, target=target), labels)
    return dataset


def _read_simulated(path: Path, required_channels: Sequence[str] | None, required_sfreq: float | None,
                    require_events: bool) -> Dataset:
    from train.bids import read_bids_dataset

    dataset = read_bids_dataset(path)
    recordings = [(subject, recording) for subject in dataset.subjects for recording in subject.recordings]
    for subject, recording in recordings:
        check_recording(recording, f"{path}/{subject.subject}/{recording.session}", required_channels,
                        required_sfreq, require_events)
    _check_same_rate([recording for _, recording in recordings],
                     [f"{subject.subject} {recording.session}" for subject, recording in recordings])
    return dataset


def _recording_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(file for file in path.rglob("*") if file.is_file() and is_recording_file(file))
    if not files:
        raise HotspotError(f"no EEG recordings (EDF, BDF, BrainVision, FIF, GDF, OpenBCI) in {path}",
                           ErrorCode.BAD_FILE)
    return files


def _group(name: str, recordings: list[Recording]) -> Dataset:
    _check_same_rate(recordings, [f"{recording.subject} {recording.session}" for recording in recordings])
    subjects: dict[str, Subject] = {}
    for recording in recordings:
        subject = subjects.setdefault(recording.subject, Subject(recording.subject, "unknown", "unknown", None))
        subject.recordings.append(recording)
    return Dataset(name=name, subjects=list(subjects.values()))


def _check_same_rate(recordings: list[Recording], names: list[str]) -> None:
    rates = sorted({recording.sfreq for recording in recordings})
    if len(rates) > 1:
        first = {rate: names[[r.sfreq for r in recordings].index(rate)] for rate in rates}
        listing = ", ".join(f"{first[rate]} at {rate:g} Hz" for rate in rates)
        raise HotspotError(f"recordings differ in sampling rate ({listing}); resample them to one rate or load "
                           "them separately", ErrorCode.BAD_SAMPLING_RATE)


def _attach_labels(dataset: Dataset, labels: dict[str, np.ndarray], source: str | Path) -> None:
    known = {subject.subject: subject for subject in dataset.subjects}
    unknown = sorted(name for name in labels if name not in known)
    if unknown:
        raise HotspotError(f"{source} labels subject(s) {', '.join(unknown)} with no recordings (recordings are of "
                           f"{', '.join(known)}); fix the subject ids", ErrorCode.BAD_LABELS)
    for subject in dataset.subjects:
        subject.label = labels.get(subject.subject)
