"""TMS hotspot labels from a CSV table, a Brainsight export or a Localite InstrumentMarker file.

Every label ends up in the MNE head frame in millimetres (origin between LPA and RPA, +x toward
RPA, +y through the nasion, +z up; see train/dataset.py).

Formats
-------
CSV (``.csv``)
    Columns ``subject,x,y,z,frame`` (mm). ``frame`` is ``head`` (taken as is), or ``RAS`` /
    ``LPS`` for a point in the subject's MRI or navigator space, which needs fiducials.
Brainsight (``.txt``)
    The tab-separated export: ``# Coordinate system: <space>`` header, a ``# Target Name`` section
    with ``Loc. X/Y/Z`` columns, optionally an ``# Electrode Name`` section. ``Brainsight`` space is
    LPS, ``NIfTI:*`` spaces are RAS, ``World`` is the project's own world space (its axes are not
    stated, so its fiducials must come from the same export). Nasion/LPA/RPA in the electrode
    section serve as that subject's fiducials when no fiducials file is given.
Localite (``.xml``)
    ``<InstrumentMarkerList coordinateSpace="RAS|LPS">`` with ``<InstrumentMarker><Marker
    description=...><Matrix4D data00..data33/>``; the position is the matrix translation
    ``(data03, data13, data23)``.

Brainsight and Localite files hold one subject: the subject comes from a ``sub-<id>`` part of the
file name or its folders, or is given. When a file holds several targets, the one named
``target``, else the only one, else the only one whose name contains "hotspot" is the label.
The exported point is the coil position over the scalp, in the navigator's MRI space.

Fiducials
---------
A CSV with columns ``subject,point,x,y,z,frame`` (``point`` = nasion, lpa, rpa; ``frame`` = RAS
or LPS, the space of the labels) or a Brainsight export whose electrode section has Nasion, LPA
and RPA. The head frame comes from ``mne.transforms.get_ras_to_neuromag_trans``.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError

HEAD = "head"
AXES = ("RAS", "LPS")
LABEL_SUFFIXES = (".csv", ".txt", ".xml")
MAX_COORDINATE_MM = 500.0
"""Largest coordinate magnitude accepted (mm): head frames and scanner spaces stay well inside it."""
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
_FIDUCIAL_NAMES = {"nasion": "nasion", "nas": "nasion", "lpa": "lpa", "rpa": "rpa"}
_SUBJECT_PART = re.compile(r"sub-([A-Za-z0-9]+)")


@dataclass(frozen=True)
class Point:
    """A point as a file gives it: position (mm), the frame it is in and where it came from.

    ``frame`` is ``"head"``, ``"RAS"``, ``"LPS"`` or ``None`` when the axes are not stated
    (Brainsight ``World``); ``source`` names the file (and space) for messages and for matching
    labels with fiducials of the same export.
    """

    position: np.ndarray
    frame: str | None
    source: str


@dataclass(frozen=True)
class Fiducials:
    """Nasion, LPA and RPA of one subject in one MRI/navigator space (mm)."""

    nasion: np.ndarray
    lpa: np.ndarray
    rpa: np.ndarray
    frame: str | None
    source: str


def canonical_subject(subject: str) -> str:
    """Return a subject id with the ``sub-`` prefix (``"S001"`` and ``"sub-S001"`` both give ``"sub-S001"``)."""
    subject = subject.strip()
    return subject if subject.startswith("sub-") else f"sub-{subject}"


def read_labels(path: str | Path, fiducials: str | Path | None = None, *, subject: str | None = None,
                target: str | None = None) -> dict[str, np.ndarray]:
    """Read TMS hotspot labels and return them in the head frame.

    Parameters
    ----------
    path : str or Path
        A label file (``.csv``, Brainsight ``.txt``, Localite ``.xml``) or a folder of them.
    fiducials : str or Path, optional
        Nasion/LPA/RPA of each subject in the labels' space (CSV or Brainsight export); needed
        for every label that is not already in the head frame.
    subject : str, optional
        The subject of a Brainsight/Localite file whose path has no ``sub-<id>`` part.
    target : str, optional
        Which target/marker of a Brainsight/Localite file is the hotspot.

    Returns
    -------
    dict of str to ndarray, shape (3,)
        Subject id (``sub-`` prefixed) to the label, head frame, mm.

    Raises
    ------
    HotspotError
        BAD_FILE for a missing or unreadable file, BAD_FORMAT for an unknown file type,
        BAD_LABELS for a label without a frame, without fiducials, a duplicated subject,
        an unknown subject or an ambiguous target.
    """
    points = _read_label_points(Path(path), subject, target)
    table = read_fiducials(fiducials, subject) if fiducials is not None else {}
    embedded = _embedded_fiducials(Path(path), subject)
    return {name: _to_head(name, point, table.get(name) or embedded.get(name)) for name, point in points.items()}


def read_fiducials(path: str | Path, subject: str | None = None) -> dict[str, Fiducials]:
    """Read nasion/LPA/RPA per subject from a CSV (``subject,point,x,y,z,frame``) or a Brainsight export.

    Parameters
    ----------
    path : str or Path
        The fiducials file.
    subject : str, optional
        The subject of a Brainsight export whose path has no ``sub-<id>`` part.

    Returns
    -------
    dict of str to Fiducials
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".csv":
        return _read_fiducials_csv(path)
    if path.suffix.lower() == ".txt":
        found = _brainsight_fiducials(path, _subject_of(path, subject))
        if not found:
            raise HotspotError(f"{path} has no Nasion, LPA and RPA in its electrode section; export them "
                               "from Brainsight or give a fiducials CSV", ErrorCode.BAD_LABELS)
        return found
    raise HotspotError(f"{path}: unknown fiducials format; use a CSV (subject,point,x,y,z,frame) or a "
                       "Brainsight .txt export", ErrorCode.BAD_FORMAT)


def _to_head(subject: str, point: Point, fiducials: Fiducials | None) -> np.ndarray:
    """Convert one label to the head frame with the subject's fiducials."""
    if point.frame == HEAD:
        return point.position.copy()
    if fiducials is None:
        raise HotspotError(f"label of {subject} from {point.source} is in {point.frame or 'its own'} space, not "
                           "the head frame; give that subject's nasion/LPA/RPA in the same space (--fiducials)",
                           ErrorCode.BAD_LABELS)
    same_export = fiducials.source == point.source
    if not same_export and (point.frame is None or fiducials.frame is None):
        raise HotspotError(f"label of {subject} from {point.source} is in a space whose axes are not stated; "
                           "export the fiducials in the same file or use NIfTI/Brainsight space",
                           ErrorCode.BAD_LABELS)
    nasion, lpa, rpa = (_as_ras(p, fiducials.frame) for p in (fiducials.nasion, fiducials.lpa, fiducials.rpa))
    if np.linalg.norm(np.cross(rpa - lpa, nasion - lpa)) < 1.0:  # mm^2: coincident or collinear points
        raise HotspotError(f"fiducials of {subject} from {fiducials.source} do not define a head frame (points "
                           "coincide or lie on a line); check nasion, LPA and RPA", ErrorCode.BAD_LABELS)
    trans = mne.transforms.get_ras_to_neuromag_trans(nasion, lpa, rpa)
    return mne.transforms.apply_trans(trans, _as_ras(point.position, point.frame))


def _as_ras(position: np.ndarray, frame: str | None) -> np.ndarray:
    return position * _LPS_TO_RAS if frame == "LPS" else position


def _read_label_points(path: Path, subject: str | None, target: str | None) -> dict[str, Point]:
    """Label points per subject from one file or every label file in a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in LABEL_SUFFIXES)
        if not files:
            raise HotspotError(f"no label files (.csv, .txt, .xml) in {path}", ErrorCode.BAD_FILE)
        points: dict[str, Point] = {}
        for file in files:
            found = _read_label_points(file, subject, target)
            duplicated = sorted(set(found) & set(points))
            if duplicated:
                raise HotspotError(f"{file} labels {', '.join(duplicated)} again; keep one label per subject",
                                   ErrorCode.BAD_LABELS)
            points.update(found)
        return points
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_labels_csv(path)
    if suffix == ".txt":
        return {_subject_of(path, subject): _brainsight_target(path, target)}
    if suffix == ".xml":
        return {_subject_of(path, subject): _localite_target(path, target)}
    raise HotspotError(f"{path}: unknown label format; use a CSV (subject,x,y,z,frame), a Brainsight .txt "
                       "export or a Localite InstrumentMarker .xml", ErrorCode.BAD_FORMAT)


def _embedded_fiducials(path: Path, subject: str | None) -> dict[str, Fiducials]:
    """Fiducials from the electrode sections of Brainsight label exports (file or folder)."""
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path] if path.suffix.lower() == ".txt" else []
    found: dict[str, Fiducials] = {}
    for file in files:
        found.update(_brainsight_fiducials(file, _subject_of(file, subject)))
    return found


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise HotspotError(f"{path} not found; check the path", ErrorCode.BAD_FILE)


def _subject_of(path: Path, subject: str | None) -> str:
    """The subject a single-subject export belongs to: given, or a ``sub-<id>`` part of its path."""
    if subject is not None:
        return canonical_subject(subject)
    for part in (path.name, *(parent.name for parent in path.parents)):
        match = _SUBJECT_PART.search(part)
        if match:
            return f"sub-{match.group(1)}"
    raise HotspotError(f"cannot tell which subject {path} belongs to; name it sub-<id>_... or give the subject",
                       ErrorCode.BAD_LABELS)


def _read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [{(key or "").strip().lower(): (value or "").strip() for key, value in row.items()
                     if isinstance(value, str)} for row in reader]
            columns = [(name or "").strip().lower() for name in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as err:
        raise HotspotError(f"{path} is not a text CSV ({type(err).__name__}); export the labels as CSV text "
                           "(subject,x,y,z,frame)", ErrorCode.BAD_LABELS) from None
    missing = [name for name in required if name not in columns]
    if "frame" in missing:
        raise HotspotError(f"{path} has no frame column; add one saying head, RAS or LPS for each row",
                           ErrorCode.BAD_LABELS)
    if missing:
        raise HotspotError(f"{path} lacks the column(s) {', '.join(missing)}; expected {','.join(required)}",
                           ErrorCode.BAD_LABELS)
    return rows


def _position(path: Path, row: dict[str, str]) -> np.ndarray:
    try:
        position = np.array([float(row["x"]), float(row["y"]), float(row["z"])])
    except ValueError as err:
        raise HotspotError(f"{path}: row of {row.get('subject', '?')} has a non-numeric coordinate ({err})",
                           ErrorCode.BAD_LABELS) from err
    if not np.all(np.isfinite(position)):
        raise HotspotError(f"{path}: row of {row.get('subject', '?')} has a NaN or infinite coordinate",
                           ErrorCode.BAD_LABELS)
    if np.abs(position).max() > MAX_COORDINATE_MM:
        raise HotspotError(f"{path}: row of {row.get('subject', '?')} has a coordinate of {np.abs(position).max():.4g} "
                           f"mm, beyond +-{MAX_COORDINATE_MM:g} mm of any head or scanner space; check the units (mm) "
                           "and the export", ErrorCode.BAD_LABELS)
    return position


def _frame(path: Path, text: str, what: str, allowed: tuple[str, ...]) -> str:
    if not text:
        raise HotspotError(f"{what} in {path} has no frame; say head, RAS or LPS", ErrorCode.BAD_LABELS)
    frame = HEAD if text.lower() == HEAD else text.upper()
    if frame not in allowed:
        raise HotspotError(f"{what} in {path} has frame '{text}'; use one of {', '.join(allowed)}",
                           ErrorCode.BAD_LABELS)
    return frame


def _read_labels_csv(path: Path) -> dict[str, Point]:
    points: dict[str, Point] = {}
    for row in _read_csv_rows(path, ("subject", "x", "y", "z", "frame")):
        subject = canonical_subject(row["subject"])
        if subject in points:
            raise HotspotError(f"{path} labels {subject} twice; keep one label per subject", ErrorCode.BAD_LABELS)
        frame = _frame(path, row["frame"], f"label of {subject}", (HEAD, *AXES))
        points[subject] = Point(_position(path, row), frame, str(path))
    if not points:
        raise HotspotError(f"{path} has no labels", ErrorCode.BAD_LABELS)
    return points


def _read_fiducials_csv(path: Path) -> dict[str, Fiducials]:
    collected: dict[str, dict[str, np.ndarray]] = {}
    frames: dict[str, str] = {}
    for row in _read_csv_rows(path, ("subject", "point", "x", "y", "z", "frame")):
        subject = canonical_subject(row["subject"])
        name = _FIDUCIAL_NAMES.get(row["point"].lower())
        if name is None:
            raise HotspotError(f"{path}: point '{row['point']}' of {subject} is not nasion, lpa or rpa",
                               ErrorCode.BAD_LABELS)
        frame = _frame(path, row["frame"], f"fiducial {name} of {subject}", AXES)
        if frames.setdefault(subject, frame) != frame:
            raise HotspotError(f"{path}: fiducials of {subject} mix RAS and LPS; give all three in one frame",
                               ErrorCode.BAD_LABELS)
        collected.setdefault(subject, {})[name] = _position(path, row)
    result = {}
    for subject, named in collected.items():
        missing = [name for name in ("nasion", "lpa", "rpa") if name not in named]
        if missing:
            raise HotspotError(f"{path}: {subject} lacks the fiducial(s) {', '.join(missing)}", ErrorCode.BAD_LABELS)
        result[subject] = Fiducials(named["nasion"], named["lpa"], named["rpa"], frames[subject], str(path))
    return result


def _brainsight_sections(path: Path) -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """Header values (``# Key: value``) and sections (``# <Kind> Name<TAB>columns`` + rows) of an export."""
    header: dict[str, str] = {}
    sections: dict[str, list[dict[str, str]]] = {}
    columns: list[str] | None = None
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line.startswith("#") and "\t" in line:
                columns = line.lstrip("# ").split("\t")
                sections[columns[0]] = []
            elif line.startswith("#"):
                columns = None
                key, _, value = line.lstrip("# ").partition(":")
                header[key.strip().lower()] = value.strip()
            elif line.strip() and columns is not None:
                sections[columns[0]].append(dict(zip(columns, line.split("\t"))))
    return header, sections


def _brainsight_frame(path: Path, header: dict[str, str]) -> tuple[str | None, str]:
    """Axes and a source tag (file + space name) from ``# Coordinate system:``."""
    space = header.get("coordinate system", "")
    if not space:
        raise HotspotError(f"{path} has no '# Coordinate system:' header, so its labels have no frame; export "
                           "again from Brainsight", ErrorCode.BAD_LABELS)
    axes = "LPS" if space.lower() == "brainsight" else "RAS" if space.lower().startswith("nifti") else None
    return axes, f"{path} ({space})"


def _brainsight_position(path: Path, row: dict[str, str]) -> np.ndarray:
    return _position(path, {"subject": next(iter(row.values()), "?"),
                            "x": row.get("Loc. X", ""), "y": row.get("Loc. Y", ""), "z": row.get("Loc. Z", "")})


def _brainsight_target(path: Path, target: str | None) -> Point:
    header, sections = _brainsight_sections(path)
    axes, source = _brainsight_frame(path, header)
    rows = sections.get("Target Name", [])
    if not rows:
        raise HotspotError(f"{path} has no '# Target Name' section with targets; export the hotspot target",
                           ErrorCode.BAD_LABELS)
    names = [row["Target Name"] for row in rows]
    chosen = rows[_choose(path, names, target)]
    return Point(_brainsight_position(path, chosen), axes, source)


def _brainsight_fiducials(path: Path, subject: str) -> dict[str, Fiducials]:
    header, sections = _brainsight_sections(path)
    named = {_FIDUCIAL_NAMES.get(row["Electrode Name"].strip().lower()): row
             for row in sections.get("Electrode Name", [])}
    if not all(name in named for name in ("nasion", "lpa", "rpa")):
        return {}
    axes, source = _brainsight_frame(path, header)
    positions = {name: _brainsight_position(path, named[name]) for name in ("nasion", "lpa", "rpa")}
    return {subject: Fiducials(positions["nasion"], positions["lpa"], positions["rpa"], axes, source)}


def _localite_target(path: Path, target: str | None) -> Point:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as err:
        raise HotspotError(f"cannot read {path} as XML ({err}); the file is corrupt or truncated",
                           ErrorCode.BAD_FILE) from err
    if root.tag != "InstrumentMarkerList":
        raise HotspotError(f"{path} is not a Localite InstrumentMarkerList (root element <{root.tag}>)",
                           ErrorCode.BAD_FORMAT)
    frame = _frame(path, (root.get("coordinateSpace") or "").strip(), "the marker list", AXES)
    markers = [marker.find("Marker") for marker in root.iter("InstrumentMarker")]
    markers = [marker for marker in markers if marker is not None and marker.find("Matrix4D") is not None]
    if not markers:
        raise HotspotError(f"{path} has no instrument marker with a Matrix4D", ErrorCode.BAD_LABELS)
    chosen = markers[_choose(path, [marker.get("description", "") for marker in markers], target)]
    matrix = chosen.find("Matrix4D")
    row = {"subject": chosen.get("description", "?"),
           "x": matrix.get("data03", ""), "y": matrix.get("data13", ""), "z": matrix.get("data23", "")}
    return Point(_position(path, row), frame, f"{path} ({frame})")


def _choose(path: Path, names: list[str], target: str | None) -> int:
    """Index of the hotspot among a file's targets (see the module docstring)."""
    if target is not None:
        matches = [index for index, name in enumerate(names) if name.strip().lower() == target.strip().lower()]
    elif len(names) == 1:
        matches = [0]
    else:
        matches = [index for index, name in enumerate(names) if "hotspot" in name.lower()]
    if len(matches) != 1:
        raise HotspotError(f"{path} holds the targets {', '.join(repr(name) for name in names)}; say which is the "
                           "hotspot (target name)", ErrorCode.BAD_LABELS)
    return matches[0]
