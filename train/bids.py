"""The simulator's BIDS-like dataset folder: writer and reader.

Layout (CONTRACTS.md)::

    <out>/dataset_description.json, participants.tsv (+ .json), truth.json, simulation.toml
    <out>/sub-XXX/ses-N/eeg/sub-XXX_ses-N_task-handmove_{eeg.bdf, events.tsv, channels.tsv,
                                                        electrodes.tsv, coordsystem.json, eeg.json}

A session of several runs (the simulator's ``task.runs``; recordings called ``ses-N_run-R``) has one
file set per run, ``sub-XXX_ses-N_task-handmove_run-R_*``, in the session's folder.

EEG is written as 24-bit BDF through ``mne.export.export_raw`` (edfio underneath) with a
per-channel physical range, so a sample read back differs from the written one by at most half
a quantisation step, ``(max - min) / (2 * (2**24 - 2))`` of that channel. Events are BDF
annotations and events.tsv rows (``rest``, ``move``, ``stop`` with exact sample indices).
Electrode positions are the simulated (as placed) positions, head frame ("CapTrak": origin
between LPA and RPA, +x toward RPA, +y nasion), mm. ``truth.json`` holds full-precision
ground truth; participants.tsv rounds to 0.001 mm.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError
from train.dataset import Dataset, Recording, Subject

TASK = "handmove"
PARTICIPANT_COLUMNS = {
    "participant_id": "Subject identifier",
    "group": "healthy or stroke",
    "hand": "The hand that moved in the task (the paretic hand for stroke patients)",
    "lesion_side": "Hemisphere of the stroke lesion (n/a for healthy subjects)",
    "severity": "Stroke severity in [0, 1] (0 for healthy subjects)",
    "age": "Age in years",
    "has_tms": "Whether a TMS hotspot label exists (false: no motor evoked potential)",
    "hotspot_hemisphere": "Hemisphere of the sought hotspot (contralateral to the moving hand)",
    "head_scale": "Head size relative to the fsaverage template",
    **{f"truth_{axis}": f"True hotspot {axis}, head frame, mm" for axis in "xyz"},
    **{f"truth_mni_{axis}": f"True hotspot {axis}, MNI (fsaverage), mm" for axis in "xyz"},
    "truth_electrode": "10-05 electrode nearest to the true hotspot's scalp projection",
    **{f"label_{axis}": f"TMS hotspot label {axis}, head frame, mm (n/a: no TMS response)" for axis in "xyz"},
    **{f"label_mni_{axis}": f"TMS hotspot label {axis}, MNI (fsaverage), mm" for axis in "xyz"},
    "label_electrode": "10-05 electrode nearest to the TMS label's scalp projection",
}


def recording_stem(subject: str, session: str) -> str:
    """File-name stem of one recording, e.g. ``sub-001_ses-1_task-handmove`` (``..._task-handmove_run-2`` for
    the recording ``ses-1_run-2``)."""
    visit, _, run = session.partition("_")
    return f"{subject}_{visit}_task-{TASK}" + (f"_{run}" if run else "")


def _runs(folder: Path, subject: str, visit: str) -> list[str]:
    """The recordings of one session folder: ``ses-N``, or its runs ``ses-N_run-R`` in run order."""
    prefix = f"{subject}_{visit}_task-{TASK}"
    runs = sorted((path.name[len(prefix) + 1:-len("_eeg.bdf")] for path in folder.glob(f"{prefix}_run-*_eeg.bdf")),
                  key=lambda run: int(run.split("-")[1]) if run.split("-")[1].isdigit() else 0)
    return [f"{visit}_{run}" for run in runs] or [visit]


def _tsv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["n/a" if value is None else value for value in row])


def _json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def write_recording(recording: Recording, root: Path, bad_channels: Mapping[str, str] | None = None,
                    reference: str = "average", line_freq: float = 60.0) -> Path:
    """Write one recording and its sidecars under ``root/sub/ses/eeg``; return the BDF path."""
    folder = root / recording.subject / recording.session.partition("_")[0] / "eeg"
    folder.mkdir(parents=True, exist_ok=True)
    stem = recording_stem(recording.subject, recording.session)
    info = mne.create_info(recording.ch_names, recording.sfreq, "eeg")
    info["line_freq"] = line_freq
    raw = mne.io.RawArray(recording.data * 1e-6, info, verbose=False)
    names = {code: name for name, code in recording.event_id.items()}
    raw.set_annotations(mne.Annotations(onset=recording.events[:, 0] / recording.sfreq,
                                        duration=np.zeros(len(recording.events)),
                                        description=[names[code] for code in recording.events[:, 1]]))
    bdf = folder / f"{stem}_eeg.bdf"
    mne.export.export_raw(bdf, raw, fmt="bdf", physical_range="channelwise", overwrite=True, verbose=False)
    _tsv(folder / f"{stem}_events.tsv", ["onset", "duration", "sample", "trial_type", "value"],
         ([f"{sample / recording.sfreq:.6f}", 0, int(sample), names[code], int(code)]
          for sample, code in recording.events))
    bad = dict(bad_channels or {})
    _tsv(folder / f"{stem}_channels.tsv", ["name", "type", "units", "status", "status_description"],
         ([name, "EEG", "uV", "bad" if name in bad else "good", bad.get(name)] for name in recording.ch_names))
    _tsv(folder / f"{stem}_electrodes.tsv", ["name", "x", "y", "z"],
         ([name, *(f"{value:.4f}" for value in position)] for name, position in zip(recording.ch_names,
                                                                                      recording.ch_pos)))
    _json(folder / f"{stem}_coordsystem.json", {
        "EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "mm",
        "EEGCoordinateSystemDescription": "MNE head frame: origin between LPA and RPA, +x toward RPA, "
                                          "+y through the nasion, +z up (simulated electrode placement)"})
    _json(folder / f"{stem}_eeg.json", {
        "TaskName": TASK, "TaskDescription": ("rest (T0) and left (T1) or right (T2) fist movement alternate, "
                                              "hands random (eegmmidb schedule)" if "T0" in recording.event_id else
                                              "rest -> cue (move) -> repetitive hand movement -> stop -> post"),
        "SamplingFrequency": recording.sfreq, "PowerLineFrequency": line_freq, "EEGReference": reference,
        "EEGChannelCount": len(recording.ch_names), "RecordingType": "continuous",
        "RecordingDuration": recording.data.shape[1] / recording.sfreq, "SoftwareFilters": "n/a"})
    return bdf


def write_dataset_files(root: Path, participants: list[dict], truth: Mapping[str, dict], config_toml: str,
                        name: str = "hotspot-edge simulated cohort") -> None:
    """Write dataset_description.json, participants.tsv/.json, truth.json and simulation.toml."""
    root.mkdir(parents=True, exist_ok=True)
    _json(root / "dataset_description.json", {
        "Name": name, "BIDSVersion": "1.9.0", "DatasetType": "raw",
        "GeneratedBy": [{"Name": "hotspot-edge train.simulate"}]})
    columns = list(PARTICIPANT_COLUMNS)
    _tsv(root / "participants.tsv", columns, ([_tsv_value(row.get(column)) for column in columns]
                                              for row in participants))
    _json(root / "participants.json", {column: {"Description": text} for column, text in PARTICIPANT_COLUMNS.items()})
    _json(root / "truth.json", {"frame": "head (MNE), mm; MNI = fsaverage surface RAS, mm",
                                "subjects": dict(truth)})
    (root / "simulation.toml").write_text(config_toml, encoding="utf-8")


def _tsv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _read_tsv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t"))
    except OSError as err:
        raise HotspotError(f"cannot read {path}: {err.strerror}; is this a complete simulated dataset folder?",
                           ErrorCode.BAD_FILE) from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise HotspotError(f"cannot read {path}: {err.strerror}; is this a complete simulated dataset folder?",
                           ErrorCode.BAD_FILE) from None
    except json.JSONDecodeError as err:
        raise HotspotError(f"{path} is not valid JSON ({err.msg}); re-create the dataset", ErrorCode.BAD_FORMAT) \
            from None


def _point(value: object) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=float)


def _typed(value: str) -> object:
    if value == "n/a":
        return None
    if value in ("true", "false"):
        return value == "true"
    try:
        return float(value)
    except ValueError:
        return value


def read_recording(folder: Path, subject: str, session: str, channels: Sequence[str] | None = None
                   ) -> tuple[Recording, dict[str, str]]:
    """Read one recording written by :func:`write_recording`; return it and its bad channels.

    ``channels`` keeps only those channels, in that order (all when None).
    """
    stem = recording_stem(subject, session)
    bdf = folder / f"{stem}_eeg.bdf"
    if not bdf.is_file():
        raise HotspotError(f"missing EEG file {bdf}; re-create the dataset", ErrorCode.BAD_FILE)
    try:
        raw = mne.io.read_raw_bdf(bdf, preload=False, verbose=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise HotspotError(f"cannot read {bdf}: {err}; the file is damaged, re-create the dataset",
                           ErrorCode.BAD_FILE) from None
    rows = _read_tsv(folder / f"{stem}_channels.tsv")
    positions = {row["name"]: [float(row[axis]) for axis in "xyz"]
                 for row in _read_tsv(folder / f"{stem}_electrodes.tsv")}
    events = _read_tsv(folder / f"{stem}_events.tsv")
    if [row["name"] for row in rows] != raw.ch_names:
        raise HotspotError(f"{bdf.name} channels differ from its channels.tsv; re-create the dataset",
                           ErrorCode.BAD_FORMAT)
    if channels is not None:
        missing = [name for name in channels if name not in raw.ch_names]
        if missing:
            raise HotspotError(f"{bdf.name} lacks channel(s) {', '.join(missing)}; choose recorded channels",
                               ErrorCode.MISSING_CHANNELS)
        raw.pick(list(channels))
    event_id = {}
    for row in events:
        event_id.setdefault(row["trial_type"], int(row["value"]))
    recording = Recording(
        subject=subject, session=session, data=raw.get_data() * 1e6, sfreq=float(raw.info["sfreq"]),
        ch_names=list(raw.ch_names),
        ch_pos=np.array([positions.get(name, [np.nan] * 3) for name in raw.ch_names], dtype=float),
        events=np.array([[int(row["sample"]), int(row["value"])] for row in events], dtype=np.int64).reshape(-1, 2),
        event_id=event_id)
    bad = {row["name"]: row["status_description"] for row in rows
           if row["status"] == "bad" and row["name"] in recording.ch_names}
    return recording, bad


def read_bids_dataset(path: str | Path, channels: Sequence[str] | None = None) -> Dataset:
    """Read a simulated BIDS-like folder into the in-memory :class:`~train.dataset.Dataset`.

    Parameters
    ----------
    path : str or Path
        The folder written by ``train.simulate.simulate_cohort``.
    channels : sequence of str, optional
        Keep only these channels, in this order (default: all). The default cohort holds about
        8 GB of float64 samples with all 65 channels; e.g. the 18 channels of the "nine" set and
        its mirror take about 2.2 GB.

    Returns
    -------
    Dataset
        One Subject per participants.tsv row, with ``label`` (TMS label, head mm, None when
        there was no TMS response), ``truth`` and ``oracle`` from truth.json, ``meta`` with the
        participants.tsv fields plus ``bad_channels`` per session, and every session's recording
        (microvolts).

    Raises
    ------
    HotspotError
        When the folder or one of its files is missing or damaged.
    """
    root = Path(path)
    if not (root / "dataset_description.json").is_file():
        raise HotspotError(f"{root} is not a simulated dataset folder (no dataset_description.json); "
                           "run `invoke simulate --out DIR` first", ErrorCode.BAD_FILE)
    truth = _read_json(root / "truth.json").get("subjects", {})
    subjects = []
    for row in _read_tsv(root / "participants.tsv"):
        subject_id = row["participant_id"]
        meta = {key: _typed(value) for key, value in row.items() if key not in ("participant_id", "group", "hand")}
        recordings, bad_channels = [], {}
        for session_dir in sorted((root / subject_id).glob("ses-*"), key=lambda p: int(p.name.split("-")[1])):
            for session in _runs(session_dir / "eeg", subject_id, session_dir.name):
                recording, bad = read_recording(session_dir / "eeg", subject_id, session, channels)
                recordings.append(recording)
                bad_channels[session] = bad
        if not recordings:
            raise HotspotError(f"no recordings for {subject_id} under {root / subject_id}; re-create the dataset",
                               ErrorCode.BAD_FILE)
        meta["bad_channels"] = bad_channels
        sub_truth = truth.get(subject_id, {})
        subjects.append(Subject(subject=subject_id, group=row["group"], hand=row["hand"],
                                label=_point(sub_truth.get("label_head_mm")) if sub_truth else
                                _point(None if meta["label_x"] is None else
                                       [meta["label_x"], meta["label_y"], meta["label_z"]]),
                                truth=_point(sub_truth.get("truth_head_mm")),
                                oracle=_point(sub_truth.get("oracle_head_mm")), meta=meta, recordings=recordings))
    return Dataset(name=root.name, subjects=subjects)
