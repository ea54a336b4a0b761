"""Model input windows per subject, computed by the device's own signal path (edge.pipeline).

Mirroring (one model for both hemispheres)
------------------------------------------
The model's channel list names left-hemisphere electrodes. A subject who moved the left hand has
the hotspot in the right hemisphere: we read the mirrored channels (C4 for C3, ...) and negate the x
of the labels, so in the model's frame every hotspot is in the left hemisphere. The prediction's x
is negated back afterwards (:func:`edge.montage.mirror_points`; mirroring is its own inverse). With ``mirror=False`` nothing is mirrored
and the channel set must cover both hemispheres. Which electrodes a subject wears, and whether they are
mirrored, is :func:`edge.contract.worn_electrodes` (the rule the device follows).

Frames
------
Labels, truths and oracles are kept in the head frame (model frame: mirrored when ``mirrored``) and,
per session, in the cap frame (:mod:`train.frames`): the frame of the cap as worn, fitted from the
session's digitised electrodes. Models predict in the cap frame; a cap-frame estimate goes back to the
head frame through the same session's cap transform (:meth:`SubjectWindows.to_head`).

Windows of a whole dataset are cached on disk (``.npz``) keyed by the dataset's content hash and
the pipeline spec, because the reproduction table needs the same inputs many times.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.contract import worn_electrodes
from edge.errors import ErrorCode, HotspotError
from edge.montage import mirror_channel_name, mirror_points
from train.bad_channels import repaired_data
from train.configs import ALL_CHANNELS
from train.dataset import Dataset, Recording, Subject
from train.frames import CapTransform, cap_transform


@dataclass
class SubjectWindows:
    """All usable input windows of one subject, in the model's frame.

    Attributes
    ----------
    subject, group, hand : str
    mirrored : bool
        True when data and positions were mirrored into the left-hemisphere frame.
    inputs : ndarray, shape (n, rows, cols), float32
    sessions : ndarray of str, shape (n,)
        The session of each window.
    label, truth, oracle : ndarray (3,) or None
        TMS label, true hotspot and source-oracle estimate, head mm, model frame.
    caps : dict of str to CapTransform
        Each session's cap transform (subject's own head frame, not mirrored).
    csds : ndarray of complex64, shape (n, 2, n_bands, n_channels, n_channels), or None
        Level "source": each window's movement and rest cross-spectra (``edge.source``).
    """

    subject: str
    group: str
    hand: str
    mirrored: bool
    inputs: np.ndarray
    sessions: np.ndarray
    label: np.ndarray | None
    truth: np.ndarray | None
    oracle: np.ndarray | None
    caps: dict = field(default_factory=dict)
    csds: np.ndarray | None = None

    def cap(self, session: str) -> CapTransform:
        """The session's cap transform (identity when unknown)."""
        return self.caps.get(str(session), CapTransform.identity())

    def to_cap(self, point: np.ndarray | None, session: str) -> np.ndarray | None:
        """A head-frame point (model frame) in the session's cap frame (model frame)."""
        if point is None:
            return None
        unmirrored = to_model_frame(point, self.mirrored)
        return to_model_frame(self.cap(session).to_cap(unmirrored), self.mirrored)

    def to_head(self, point: np.ndarray | None, session: str) -> np.ndarray | None:
        """A cap-frame point (model frame) of a session in the head frame (model frame)."""
        if point is None:
            return None
        unmirrored = to_model_frame(point, self.mirrored)
        return to_model_frame(self.cap(session).to_head(unmirrored), self.mirrored)

    def session_names(self) -> list[str]:
        """The sessions that have windows, in order of first appearance."""
        return list(dict.fromkeys(str(s) for s in self.sessions))

    def subset(self, mask: np.ndarray) -> "SubjectWindows":
        """The same subject with only the windows where ``mask`` is true."""
        return replace(self, inputs=self.inputs[mask], sessions=self.sessions[mask],
                       csds=None if self.csds is None else self.csds[mask])

    def window_targets(self, target: str = "label") -> np.ndarray:
        """Each window's ``target`` ("label" or "truth") in its session's cap frame (model frame), (n, 3)."""
        point = getattr(self, target)
        if point is None:
            raise HotspotError(f"{self.subject} has no {target}", ErrorCode.BAD_LABELS)
        per_session = {s: self.to_cap(point, s) for s in self.session_names()}
        return np.array([per_session[str(s)] for s in self.sessions], dtype=np.float64).reshape(-1, 3)


def to_model_frame(point: np.ndarray | None, mirrored: bool) -> np.ndarray | None:
    """Map a head-frame point into the model's frame (negate x when mirrored)."""
    if point is None:
        return None
    point = np.asarray(point, dtype=float)
    return mirror_points(point) if mirrored else point


def resolve_channels(dataset: Dataset, channel_set: list[str] | str, mirror: bool) -> list[str]:
    """Turn a channel set into the model's channel list.

    Parameters
    ----------
    dataset : Dataset
    channel_set : list of str or ``"dataset"``
        Explicit names, or every channel all recordings share.
    mirror : bool
        With mirroring, every channel's mirror must exist too (right-hemisphere subjects read it).

    Returns
    -------
    list of str
        Channel names in model order.
    """
    recordings = [rec for subject in dataset.subjects for rec in subject.recordings]
    if not recordings:
        raise HotspotError(f"dataset {dataset.name!r} has no recordings", ErrorCode.BAD_FILE)
    shared = set(recordings[0].ch_names)
    for recording in recordings[1:]:
        shared &= set(recording.ch_names)
    if channel_set == ALL_CHANNELS:
        order = [name for name in recordings[0].ch_names if name in shared]
        return [name for name in order if not mirror or mirror_channel_name(name) in shared]
    needed = set(channel_set) | ({mirror_channel_name(name) for name in channel_set} if mirror else set())
    missing = sorted(needed - shared)
    if missing:
        raise HotspotError(f"channel(s) {', '.join(missing)} are not in every recording of {dataset.name!r}; "
                           "choose another channel set", ErrorCode.MISSING_CHANNELS)
    return list(channel_set)


def make_spec(level: str, channels: list[str], sfreq: float, overrides: dict | None = None):
    """Build the :class:`edge.pipeline.PipelineSpec` for a level and channel list.

    The filter is :func:`train.filter_design.default_filter` at ``sfreq``; ``overrides`` replace
    any other spec field (from ``[pipeline]`` of the training configuration). Level "source" gets its
    grid and leadfield for ``channels`` from :func:`train.source_space.build_source_space`.
    """
    from train.filter_design import default_filter
    from edge.pipeline import PipelineSpec

    fields = {"sfreq": float(sfreq), "channels": tuple(channels), "level": level, "filter": default_filter(sfreq)}
    if level == "source":
        from train.source_space import build_source_space

        fields["source_space"] = build_source_space(channels)
    fields.update(overrides or {})
    try:
        return PipelineSpec(**fields)
    except TypeError as err:
        raise HotspotError(f"bad [pipeline] setting ({err}); see edge.pipeline.PipelineSpec",
                           ErrorCode.BAD_CONFIG) from None


def _recording_input(recording: Recording, channels: list[str], spec, cue: str, repair: bool = False,
                     rest: str = "rest") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The recording's ``channels`` at ``spec.sfreq`` (resampled if needed), its cue samples and its rest onsets.

    With ``repair``, channels bad over the whole recording are first interpolated
    (:func:`train.bad_channels.repaired_data`). Rest onsets (events ``rest``) are read only for a pipeline
    whose baseline is the session's pooled rest (``spec.baseline_mode = "session_rest"``); else None.
    """
    needed = [cue] + ([rest] if spec.baseline_mode == "session_rest" else [])
    for name, setting in zip(needed, ("cue", "rest")):
        if name not in recording.event_id:
            raise HotspotError(f"{recording.subject} {recording.session} has no {name!r} events "
                               f"(found {', '.join(recording.event_id) or 'none'}); set [data] {setting}",
                               ErrorCode.NO_EVENTS)
    index = {name: i for i, name in enumerate(recording.ch_names)}
    samples = repaired_data(recording) if repair else recording.data
    data = samples[[index[name] for name in channels]]
    cues = recording.cue_samples(cue)
    rests = recording.cue_samples(rest) if spec.baseline_mode == "session_rest" else None
    if not np.isclose(recording.sfreq, spec.sfreq):
        from fractions import Fraction

        from scipy.signal import resample_poly

        ratio = Fraction(float(spec.sfreq) / float(recording.sfreq)).limit_denominator(1000)
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=1)
        scale = float(spec.sfreq) / float(recording.sfreq)
        cues = np.round(cues * scale).astype(np.int64)
        rests = None if rests is None else np.round(rests * scale).astype(np.int64)
    return data, cues, rests


def _accepted(epochs) -> np.ndarray:
    inputs = np.asarray(epochs.inputs, dtype=np.float32)
    keep = np.array([bool(verdict.ok) for verdict in epochs.verdicts], dtype=bool)
    return inputs[keep] if len(inputs) else inputs


def _accepted_csds(epochs, n_channels: int, n_bands: int) -> np.ndarray:
    """The accepted epochs' (move, rest) CSDs as complex64 (n, 2, n_bands, n_channels, n_channels)."""
    kept = [np.stack(pair) for pair, verdict in zip(epochs.csds, epochs.verdicts) if verdict.ok]
    shape = (0, 2, n_bands, n_channels, n_channels)
    return np.stack(kept).astype(np.complex64) if kept else np.zeros(shape, dtype=np.complex64)


def compute_windows(dataset: Dataset, spec, cue: str, mirror: bool, repair: bool = False,
                    rest: str = "rest") -> list[SubjectWindows]:
    """Compute every subject's accepted windows in the model's frame (see module notes).

    All recordings go through :func:`edge.pipeline.compute_epochs_many` (filtered side by side in
    batches, identical to one :func:`edge.pipeline.compute_epochs` call each); each recording's input
    is read only when its batch is filtered, so memory stays bounded for 64-channel cohorts. ``repair`` interpolates
    each recording's session-bad channels first (:mod:`train.bad_channels`; all-channel models only). ``rest``
    names the rest-onset events a session-rest baseline pools its rest over.
    """
    from edge.pipeline import compute_epochs_many

    owners, sources = [], []
    for index, subject in enumerate(dataset.subjects):
        channels = list(worn_electrodes(spec.channels, mirror, subject.hand).electrodes)
        for recording in subject.recordings:
            owners.append((index, recording.session))
            sources.append((recording, channels))
    jobs = (_recording_input(recording, channels, spec, cue, repair, rest) for recording, channels in sources)
    results = compute_epochs_many(spec, jobs)
    parts: dict[int, list[tuple[str, np.ndarray, np.ndarray | None]]] = {}
    for (index, session), epochs in zip(owners, results):
        csds = _accepted_csds(epochs, len(spec.channels), len(spec.bands)) if spec.level == "source" else None
        parts.setdefault(index, []).append((session, _accepted(epochs).reshape((-1, *spec.input_shape)), csds))
    windows = []
    for index, subject in enumerate(dataset.subjects):
        mirrored = worn_electrodes(spec.channels, mirror, subject.hand).mirrored
        pieces = parts.get(index, [])
        inputs = (np.concatenate([w for _, w, _ in pieces]) if pieces
                  else np.zeros((0, *spec.input_shape), dtype=np.float32))
        sessions = np.asarray([session for session, w, _ in pieces for _ in range(len(w))], dtype=str)
        csds = None
        if spec.level == "source":
            csds = (np.concatenate([c for _, _, c in pieces]) if pieces else
                    np.zeros((0, 2, len(spec.bands), len(spec.channels), len(spec.channels)), dtype=np.complex64))
        windows.append(_subject_windows(subject, mirrored, inputs, sessions, csds))
    return windows


def _subject_windows(subject: Subject, mirrored: bool, inputs: np.ndarray, sessions: np.ndarray,
                     csds: np.ndarray | None) -> SubjectWindows:
    return SubjectWindows(subject=subject.subject, group=subject.group, hand=subject.hand, mirrored=mirrored,
                          inputs=inputs, sessions=sessions, label=to_model_frame(subject.label, mirrored),
                          truth=to_model_frame(subject.truth, mirrored), oracle=to_model_frame(subject.oracle, mirrored),
                          caps={rec.session: cap_transform(rec) for rec in subject.recordings}, csds=csds)


def cache_key(dataset_hash: str, spec, cue: str, mirror: bool, repair: bool = False, rest: str = "rest") -> str:
    """A short hash identifying the windows of one dataset under one spec."""
    fields = {"data": dataset_hash, "spec": spec.to_dict(), "cue": cue, "mirror": mirror}
    if repair:
        fields["repair_bad_channels"] = True
    if spec.baseline_mode == "session_rest":
        fields["rest"] = rest
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def dataset_windows(dataset: Dataset, spec, cue: str = "move", mirror: bool = True,
                    cache_dir: Path | str | None = None, dataset_hash: str | None = None,
                    repair: bool = False, rest: str = "rest") -> list[SubjectWindows]:
    """Compute (or load from the cache) the windows of every subject of ``dataset``.

    Parameters
    ----------
    dataset : Dataset
    spec : edge.pipeline.PipelineSpec
    cue : str
    mirror : bool
    cache_dir : path-like, optional
        Folder for ``windows-<key>.npz`` files; no caching when None.
    dataset_hash : str, optional
        ``dataset.content_hash()`` if already known.
    repair : bool
        Interpolate each recording's session-bad channels first (:mod:`train.bad_channels`).
    rest : str
        Event name of the rest onsets, read when ``spec.baseline_mode`` is "session_rest".

    Returns
    -------
    list of SubjectWindows
    """
    path = None
    if cache_dir is not None:
        key = cache_key(dataset_hash or dataset.content_hash(), spec, cue, mirror, repair, rest)
        path = Path(cache_dir) / f"windows-{key}.npz"
        if path.is_file():
            return _load_cache(path, dataset, spec, mirror)
    result = compute_windows(dataset, spec, cue, mirror, repair, rest)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, item in enumerate(result):
            arrays[f"inputs_{i}"] = item.inputs
            arrays[f"sessions_{i}"] = item.sessions
            if item.csds is not None:
                arrays[f"csds_{i}"] = item.csds
        np.savez(path, **arrays)
    return result


def _load_cache(path: Path, dataset: Dataset, spec, mirror: bool) -> list[SubjectWindows]:
    with np.load(path) as arrays:
        result = []
        for i, subject in enumerate(dataset.subjects):
            mirrored = worn_electrodes(spec.channels, mirror, subject.hand).mirrored
            csds = arrays[f"csds_{i}"] if f"csds_{i}" in arrays.files else None
            result.append(_subject_windows(subject, mirrored, arrays[f"inputs_{i}"], arrays[f"sessions_{i}"], csds))
    return result


def mirrored_copy(item: SubjectWindows, spec) -> SubjectWindows:
    """Return ``item`` with rows permuted to the mirrored channels and x of the points negated.

    Used to augment a non-mirrored (both-hemisphere) model; needs a channel list closed under
    mirroring.
    """
    channels = list(spec.channels)
    try:
        swap = [channels.index(mirror_channel_name(name)) for name in channels]
    except ValueError:
        raise HotspotError("augment_mirror needs a channel set that contains every channel's mirror "
                           "(e.g. 'bilateral' or 'all')", ErrorCode.BAD_CONFIG) from None
    if spec.level == "source":
        raise HotspotError("augment_mirror does not apply to level 'source' (its grid covers one hemisphere)",
                           ErrorCode.BAD_CONFIG)
    n_blocks = item.inputs.shape[1] // len(channels)  # ERD rows are band-major blocks of channels
    order = [block * len(channels) + row for block in range(n_blocks) for row in swap]
    return replace(item, mirrored=not item.mirrored, inputs=item.inputs[:, order],
                   label=to_model_frame(item.label, True), truth=to_model_frame(item.truth, True),
                   oracle=to_model_frame(item.oracle, True))
