"""The one in-memory dataset every importer and the simulator produce and training consumes.

Frames and units
----------------
All positions are in the MNE "head" frame (origin between LPA and RPA, +x toward RPA,
+y through the nasion, +z up), in millimetres. EEG samples are in microvolts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

GROUPS = ("healthy", "stroke", "unknown")
HANDS = ("left", "right", "unknown")


@dataclass
class Recording:
    """One continuous EEG recording of one subject in one session.

    Attributes
    ----------
    subject, session : str
        Identifiers, e.g. ``"sub-001"`` and ``"ses-1"``.
    data : ndarray, shape (n_channels, n_samples)
        EEG in microvolts (float64).
    sfreq : float
        Sampling rate in Hz.
    ch_names : list of str
        10-05 channel names in MNE's spelling (``"FC3"``, ``"CPz"``).
    ch_pos : ndarray, shape (n_channels, 3)
        Electrode positions, head frame, mm; NaN rows where unknown.
    events : ndarray of int, shape (n_events, 2)
        Sample index and event code, sorted by sample.
    event_id : dict of str to int
        Event names to codes. The simulator writes ``rest``, ``move`` (the movement cue)
        and ``stop`` (movement end); eegmmidb files give ``T0``, ``T1``, ``T2``.
    """

    subject: str
    session: str
    data: np.ndarray
    sfreq: float
    ch_names: list[str]
    ch_pos: np.ndarray
    events: np.ndarray
    event_id: dict[str, int]

    def cue_samples(self, name: str) -> np.ndarray:
        """Return the sample indices of the events called ``name``."""
        code = self.event_id[name]
        return self.events[self.events[:, 1] == code, 0].astype(np.int64)


@dataclass
class Subject:
    """One participant with labels, ground truth (simulated data only) and recordings.

    Attributes
    ----------
    subject : str
        Identifier, e.g. ``"sub-001"``.
    group : str
        ``"healthy"``, ``"stroke"`` or ``"unknown"``.
    hand : str
        The hand that moved in the task (the paretic hand for stroke patients);
        the hotspot sought is in the opposite hemisphere.
    label : ndarray, shape (3,), or None
        The TMS hotspot label, head frame, mm; None when there is no TMS response.
    truth : ndarray, shape (3,), or None
        The true hotspot (simulated data only), head frame, mm.
    oracle : ndarray, shape (3,), or None
        The simulator's source-oracle estimate (best estimate from the true EEG source
        positions), head frame, mm.
    meta : dict
        Anything else (severity, lesion side, age, MNI coordinates, nearest electrodes).
    recordings : list of Recording
    """

    subject: str
    group: str
    hand: str
    label: np.ndarray | None
    truth: np.ndarray | None = None
    oracle: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)


@dataclass
class Dataset:
    """A list of subjects, with a content hash for provenance.

    Attributes
    ----------
    name : str
        Where it came from (a folder name or ``"simulated"``).
    subjects : list of Subject
    """

    name: str
    subjects: list[Subject]

    def subject(self, subject_id: str) -> Subject:
        """Return the subject called ``subject_id``."""
        for subject in self.subjects:
            if subject.subject == subject_id:
                return subject
        raise KeyError(subject_id)

    def to_float32(self) -> None:
        """Store every recording's samples as float32, in place (half the memory of float64).

        :meth:`content_hash` already hashes float32 samples, so the hash does not change.
        """
        for subject in self.subjects:
            for recording in subject.recordings:
                recording.data = np.asarray(recording.data, dtype=np.float32)

    def content_hash(self) -> str:
        """Return a sha256 over every recording's samples, channels, events and every label."""
        digest = hashlib.sha256()
        for subject in self.subjects:
            digest.update(subject.subject.encode())
            digest.update(subject.group.encode() + subject.hand.encode())
            if subject.label is not None:
                digest.update(np.asarray(subject.label, dtype="<f8").tobytes())
            for recording in subject.recordings:
                digest.update(recording.session.encode())
                digest.update(",".join(recording.ch_names).encode())
                digest.update(np.float64(recording.sfreq).tobytes())
                digest.update(np.ascontiguousarray(recording.data, dtype="<f4").tobytes())
                digest.update(np.ascontiguousarray(recording.events, dtype="<i8").tobytes())
        return digest.hexdigest()
