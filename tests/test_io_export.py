"""Neuronavigation export: Localite and Brainsight files read back through our own importers within 0.01 mm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from edge.errors import ErrorCode, HotspotError
from edge.sessionlog import SessionLog
from train.io.labels import read_labels
from train.io.navigator import export_target, read_estimate, write_fiducials_csv
from train.io.labels import Fiducials

REPO = Path(__file__).resolve().parents[1]
POSITION = np.array([-41.237, 17.481, 96.052])


def result_json(tmp_path: Path, **extra) -> Path:
    record = {"kind": "hotspot", "position_mm": POSITION.tolist(), "frame": "cap", "radius90_mm": 12.0,
              "placement": {"electrode": "FCC3h", "anterior_mm": 3.0, "lateral_mm": 1.0, "distance_mm": 3.2},
              "quality": {"n_trials": 16, "n_good": 16, "needed": 8}, "reasons": []}
    record.update(extra)
    path = tmp_path / "last_result.json"
    path.write_text(json.dumps(record))
    return path


def patient_fiducials(frame: str) -> Fiducials:
    """Nasion/LPA/RPA of a made-up patient in an MRI space rotated and shifted against the head frame."""
    rotation = mne.transforms.rotation(0.1, -0.05, 0.2)[:3, :3]
    shift = np.array([3.0, -12.0, 25.0])
    head = {"nasion": np.array([0.0, 98.0, 0.0]), "lpa": np.array([-75.0, 0.0, 0.0]), "rpa": np.array([78.0, 0.0, 0.0])}
    mri = {name: rotation @ point + shift for name, point in head.items()}
    if frame == "LPS":
        mri = {name: point * np.array([-1.0, -1.0, 1.0]) for name, point in mri.items()}
    return Fiducials(mri["nasion"], mri["lpa"], mri["rpa"], frame, "patient MRI")


def test_round_trip_in_the_estimates_own_frame(tmp_path: Path) -> None:
    estimate = read_estimate(result_json(tmp_path))
    assert estimate.frame == "cap" and estimate.kind == "hotspot"
    xml, txt, fiducials = export_target(estimate, tmp_path / "out", "P07")
    assert xml.name == "sub-P07_hotspot_localite.xml" and fiducials.name == "sub-P07_fiducials.csv"
    assert "cap frame" in xml.read_text() and "cap frame" in txt.read_text()  # the frame is stated
    localite = read_labels(xml, fiducials)["sub-P07"]
    brainsight = read_labels(txt)["sub-P07"]  # fiducials embedded in its electrode section
    np.testing.assert_allclose(localite, POSITION, atol=0.01)
    np.testing.assert_allclose(brainsight, POSITION, atol=0.01)


@pytest.mark.parametrize("frame", ["RAS", "LPS"])
def test_round_trip_through_a_patients_mri_space(tmp_path: Path, frame: str) -> None:
    fiducials = patient_fiducials(frame)
    fiducials_file = write_fiducials_csv(tmp_path / "fid.csv", "P07", fiducials)
    xml, txt = export_target(read_estimate(result_json(tmp_path)), tmp_path / "out", "P07", fiducials=fiducials)
    assert f'coordinateSpace="{frame}"' in xml.read_text()
    assert ("Coordinate system: Brainsight" if frame == "LPS" else "Coordinate system: NIfTI:Scanner") in txt.read_text()
    written = np.array([float(v) for v in txt.read_text().splitlines()[7].split("\t")[1:4]])
    assert np.linalg.norm(written - POSITION) > 10.0  # really moved into the MRI space
    np.testing.assert_allclose(read_labels(xml, fiducials_file)["sub-P07"], POSITION, atol=0.01)
    np.testing.assert_allclose(read_labels(txt)["sub-P07"], POSITION, atol=0.01)
    np.testing.assert_allclose(read_labels(txt, fiducials_file)["sub-P07"], POSITION, atol=0.01)


def test_old_result_fields_and_session_logs_are_read(tmp_path: Path) -> None:
    old = result_json(tmp_path, position_head_mm=POSITION.tolist(), frame="head")
    data = json.loads(old.read_text())
    del data["position_mm"]
    old.write_text(json.dumps(data))
    assert read_estimate(old).frame == "head"
    log = SessionLog(tmp_path / "session.log")
    log.append("start", bundle_id="b")
    log.append("result", result=json.loads(result_json(tmp_path).read_text()))
    log.close()
    np.testing.assert_allclose(read_estimate(tmp_path / "session.log").position_mm, POSITION)


def test_nothing_to_export_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(HotspotError, match="asked for a redo") as info:
        read_estimate(result_json(tmp_path, kind="redo"))
    assert info.value.code == ErrorCode.BAD_ARGUMENT
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello\n")
    with pytest.raises(HotspotError, match="neither a result JSON nor a session log"):
        read_estimate(garbage)
    with pytest.raises(HotspotError, match="not found"):
        read_estimate(tmp_path / "missing.json")
    result = subprocess.run([sys.executable, "-m", "invoke", "export-target", "--result", str(garbage),
                             "--subject", "P07"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "neither a result JSON nor a session log" in result.stderr and "Traceback" not in result.stderr


def test_export_target_task_writes_the_files(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "invoke", "export-target", "--result",
                             str(result_json(tmp_path)), "--subject", "P07", "--out", str(tmp_path / "nav")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "nav").iterdir()) == [
        "sub-P07_fiducials.csv", "sub-P07_hotspot_brainsight.txt", "sub-P07_hotspot_localite.xml"]
