"""Neuronavigation export: a session's estimate as a Localite InstrumentMarker XML and a Brainsight target file.

The files are written in exactly the formats :mod:`train.io.labels` reads (a test reads them back
within 0.01 mm), so an estimate can go into the navigator a clinic already uses and come back out
as a label.

Frames
------
The estimate is in the frame its result states (the MNE head frame, or the template cap frame of
issue 11; millimetres, +x right, +y nose, +z up: RAS axes). Navigators work in the patient's MRI
space, which a device does not know:

* **with fiducials** (``--fiducials``: the patient's nasion, LPA and RPA in the navigator's space,
  a CSV or a Brainsight export, as for the importers) the point is mapped into that space with the
  inverse of MNE's ``get_ras_to_neuromag_trans`` and written in the fiducials' axes (RAS or LPS).
  The estimate's frame is taken as the patient's head frame defined by those fiducials;
* **without them** the point stays in its own frame, written with RAS axes, together with that
  frame's own fiducials (nasion on +y, LPA and RPA on the x axis, from the fsaverage template), in the
  Brainsight file's electrode section and in a fiducials CSV beside the Localite file, so that either
  file reads back unchanged.

The marker's orientation is the identity (the device estimates a position, not a coil orientation).
Both files state the frame in a comment/notes line.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.sessionlog import read_session_log
from train import workspace
from train.head import FSAVERAGE_DIR, mni_to_head
from train.io.labels import AXES, Fiducials, canonical_subject, read_fiducials

LPS_FLIP = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Estimate:
    """The point to export.

    Attributes
    ----------
    position_mm : ndarray (3,)
        In ``frame`` (RAS axes, mm).
    frame : str
        ``"head"`` or ``"cap"`` (what the result says).
    kind : str
        ``"hotspot"`` or ``"prior"``.
    source : str
        The file it came from (for the notes).
    """

    position_mm: np.ndarray
    frame: str
    kind: str
    source: str


def read_estimate(path: str | Path) -> Estimate:
    """The estimate of a ``last_result.json`` or of a session log's result record.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when it cannot be read, ``BAD_FORMAT`` when it holds no result, ``BAD_ARGUMENT``
        when the session asked for a redo (there is nothing to export).
    """
    path = Path(path)
    if not path.is_file():
        raise HotspotError(f"{path} not found; give a last_result.json or a session log", ErrorCode.BAD_FILE)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        results = read_session_log(path).of_kind("result")
        if not results:
            raise HotspotError(f"{path} is neither a result JSON nor a session log with a result",
                               ErrorCode.BAD_FORMAT) from None
        record = results[-1].get("result", {})
    if not isinstance(record, dict) or "kind" not in record:
        raise HotspotError(f"{path} holds no session result", ErrorCode.BAD_FORMAT)
    if record["kind"] == "redo":
        raise HotspotError(f"{path}: the session asked for a redo; there is no estimate to export",
                           ErrorCode.BAD_ARGUMENT)
    position = record.get("position_mm", record.get("position_head_mm"))
    try:
        position = np.asarray(position, dtype=float).reshape(3)
    except (TypeError, ValueError):
        raise HotspotError(f"{path}: the result has no position in mm", ErrorCode.BAD_FORMAT) from None
    if not np.all(np.isfinite(position)):
        raise HotspotError(f"{path}: the result's position is not finite", ErrorCode.BAD_FORMAT)
    return Estimate(position, str(record.get("frame", "head")), str(record["kind"]), str(path))


def template_fiducials() -> Fiducials:
    """The head frame's own nasion, LPA and RPA (fsaverage's, in the head frame; RAS axes, mm)."""
    points = {point["ident"]: point["r"] for point in mne.io.read_fiducials(
        FSAVERAGE_DIR / "fsaverage-fiducials.fif")[0]}
    ident = {"lpa": 1, "nasion": 2, "rpa": 3}
    head = {name: mni_to_head(np.asarray(points[number]) * 1000.0) for name, number in ident.items()}
    return Fiducials(head["nasion"], head["lpa"], head["rpa"], "RAS", "fsaverage template (head frame)")


def head_to_space(position_mm: np.ndarray, fiducials: Fiducials) -> np.ndarray:
    """Map a head-frame point into the space (and axes) the fiducials are given in."""
    as_ras = [p * LPS_FLIP if fiducials.frame == "LPS" else p for p in (fiducials.nasion, fiducials.lpa, fiducials.rpa)]
    trans = mne.transforms.get_ras_to_neuromag_trans(*as_ras)
    ras = mne.transforms.apply_trans(np.linalg.inv(trans), np.asarray(position_mm, dtype=float))
    return ras * LPS_FLIP if fiducials.frame == "LPS" else ras


def _notes(estimate: Estimate, fiducials: Fiducials | None) -> str:
    what = "population prior (the EEG could not localise)" if estimate.kind == "prior" else "EEG hotspot estimate"
    if fiducials is None:
        return (f"hotspot-edge {what} from {Path(estimate.source).name}; {estimate.frame} frame (RAS axes, mm); "
                "fiducials: that frame's own (fsaverage template)")
    return (f"hotspot-edge {what} from {Path(estimate.source).name}; {estimate.frame} frame taken as the "
            f"patient's head frame of the fiducials in {fiducials.source}; written in their space ({fiducials.frame})")


def write_localite(path: Path, point: np.ndarray, frame: str, name: str, notes: str) -> Path:
    """A Localite ``InstrumentMarkerList`` with one marker at ``point`` (identity orientation)."""
    root = ElementTree.Element("InstrumentMarkerList", coordinateSpace=frame)
    root.append(ElementTree.Comment(f" {notes} "))
    marker = ElementTree.SubElement(ElementTree.SubElement(root, "InstrumentMarker", alwaysVisible="false",
                                                           index="0", selected="false"),
                                    "Marker", additionalInformation=notes, color="#ff0000", description=name,
                                    set="true")
    matrix = {f"data{row}{col}": f"{1.0 if row == col else 0.0:.1f}" for row in range(4) for col in range(4)}
    matrix.update({f"data{axis}3": f"{value:.6f}" for axis, value in enumerate(point)})
    ElementTree.SubElement(marker, "Matrix4D", **matrix)
    tree = ElementTree.ElementTree(root)
    ElementTree.indent(tree)
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path


def write_brainsight(path: Path, point: np.ndarray, space: str, name: str, notes: str,
                     fiducials: dict[str, np.ndarray]) -> Path:
    """A Brainsight target export: one target and the fiducials in its electrode section."""
    rows = [["# Version: 12"], [f"# Coordinate system: {space}"], ["# Created by: hotspot-edge"],
            ["# Units: millimetres, degrees, milliseconds, and microvolts"], ["# Encoding: UTF-8"],
            [f"# Notes: {notes}"],
            ["# Target Name", "Loc. X", "Loc. Y", "Loc. Z", "m0n0", "m0n1", "m0n2", "m1n0", "m1n1", "m1n2",
             "m2n0", "m2n1", "m2n2"],
            [name, *(f"{v:.6f}" for v in point), "1", "0", "0", "0", "1", "0", "0", "0", "1"],
            ["# Electrode Name", "Session Name", "Loc. X", "Loc. Y", "Loc. Z"]]
    rows += [[label, "hotspot-edge", *(f"{v:.6f}" for v in fiducials[key])]
             for key, label in (("nasion", "Nasion"), ("lpa", "LPA"), ("rpa", "RPA"))]
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
    return path


def write_fiducials_csv(path: Path, subject: str, fiducials: Fiducials) -> Path:
    """The fiducials CSV :func:`train.io.labels.read_fiducials` reads (``subject,point,x,y,z,frame``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["subject", "point", "x", "y", "z", "frame"])
        for name in ("nasion", "lpa", "rpa"):
            writer.writerow([subject, name, *(f"{v:.6f}" for v in getattr(fiducials, name)), fiducials.frame])
    return path


def export_target(estimate: Estimate, out: str | Path, subject: str, name: str = "hotspot",
                  fiducials: Fiducials | None = None) -> list[Path]:
    """Write the Localite and Brainsight files (and, without fiducials, the frame's fiducials CSV).

    Parameters
    ----------
    estimate : Estimate
    out : str or Path
        The folder (created).
    subject : str
        The pseudonymous subject id the files are named by (``sub-<id>_...``), never a name.
    name : str
        The marker / target name.
    fiducials : Fiducials, optional
        The patient's fiducials in the navigator's space.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    subject = canonical_subject(subject)
    notes = _notes(estimate, fiducials)
    space = fiducials if fiducials is not None else template_fiducials()
    point = head_to_space(estimate.position_mm, fiducials) if fiducials is not None else estimate.position_mm
    brainsight_space = "Brainsight" if space.frame == "LPS" else "NIfTI:Scanner"
    written = [write_localite(out / f"{subject}_hotspot_localite.xml", point, space.frame, name, notes),
               write_brainsight(out / f"{subject}_hotspot_brainsight.txt", point, brainsight_space, name, notes,
                                {key: getattr(space, key) for key in ("nasion", "lpa", "rpa")})]
    if fiducials is None:
        written.append(write_fiducials_csv(out / f"{subject}_fiducials.csv", subject, space))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``invoke export-target``: a session's estimate for Localite and Brainsight."""
    parser = ArgumentParser(prog="invoke export-target", description=__doc__.splitlines()[0])
    parser.add_argument("--result", required=True, help="last_result.json or a session log")
    parser.add_argument("--out", default=str(workspace.EXPORT / "target"),
                        help=f"folder for the files ({workspace.EXPORT / 'target'})")
    parser.add_argument("--subject", required=True, help="pseudonymous subject id for the file names (sub-<id>)")
    parser.add_argument("--fiducials", help="the patient's nasion/LPA/RPA in the navigator's space (CSV or Brainsight)")
    parser.add_argument("--name", default="hotspot", help="marker / target name")
    args = parser.parse_args(argv)
    estimate = read_estimate(args.result)
    fiducials = None
    if args.fiducials:
        found = read_fiducials(args.fiducials, args.subject)
        subject = canonical_subject(args.subject)
        if subject not in found:
            raise HotspotError(f"{args.fiducials} has no fiducials for {subject}; it has "
                               f"{', '.join(sorted(found)) or 'none'}", ErrorCode.BAD_LABELS)
        fiducials = found[subject]
        if fiducials.frame not in AXES:
            raise HotspotError(f"{args.fiducials}: the fiducials' axes are not stated (Brainsight 'World' space); "
                               "export them in NIfTI or Brainsight space", ErrorCode.BAD_LABELS)
    for path in export_target(estimate, args.out, args.subject, args.name, fiducials):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
