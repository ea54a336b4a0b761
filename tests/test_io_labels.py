"""TMS labels from CSV, Brainsight and Localite files end up in the head frame (or are refused clearly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from edge.errors import ErrorCode, HotspotError
from train.io.labels import read_fiducials, read_labels

# A subject's fiducials and hotspot in its head frame (mm): nasion on +y, LPA/RPA on the x axis.
HEAD_FIDUCIALS = {"nasion": np.array([0.0, 98.0, 0.0]), "lpa": np.array([-74.0, 0.0, 0.0]),
                  "rpa": np.array([76.0, 0.0, 0.0])}
HOTSPOT_HEAD = np.array([-38.0, 12.0, 88.0])
# The navigator's MRI space (RAS): rotated and shifted against the head frame.
ROTATION = Rotation.from_euler("xyz", [12.0, -7.0, 25.0], degrees=True).as_matrix()
SHIFT = np.array([3.0, -21.0, 40.0])


def to_mri(point: np.ndarray) -> np.ndarray:
    return ROTATION @ point + SHIFT


def ras_to_lps(point: np.ndarray) -> np.ndarray:
    return point * np.array([-1.0, -1.0, 1.0])


def fmt(point: np.ndarray, sep: str) -> str:
    return sep.join(f"{value:.6f}" for value in point)


def fiducials_csv(path: Path, subject: str = "S01", frame: str = "RAS") -> Path:
    convert = ras_to_lps if frame == "LPS" else (lambda p: p)
    lines = ["subject,point,x,y,z,frame"] + [f"{subject},{name},{fmt(convert(to_mri(p)), ',')},{frame}"
                                             for name, p in HEAD_FIDUCIALS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def brainsight_txt(path: Path, space: str = "NIfTI:Aligned", with_fiducials: bool = True,
                   targets: tuple[str, ...] = ("hotspot FDI",)) -> Path:
    convert = ras_to_lps if space == "Brainsight" else (lambda p: p)
    rotation = "\t".join(["1.0000", "0.0000", "0.0000", "0.0000", "1.0000", "0.0000", "0.0000", "0.0000", "1.0000"])
    lines = ["# Version: 12", f"# Coordinate system: {space}", "# Created by: Brainsight 2.5",
             "# Units: millimetres, degrees, milliseconds, and microvolts", "# Encoding: UTF-8",
             "# Notes: Each column is delimited by a tab.",
             "# Target Name\tLoc. X\tLoc. Y\tLoc. Z\tm0n0\tm0n1\tm0n2\tm1n0\tm1n1\tm1n2\tm2n0\tm2n1\tm2n2"]
    for index, name in enumerate(targets):
        point = to_mri(HOTSPOT_HEAD + np.array([0.0, 10.0 * index, 0.0]))
        lines.append(f"{name}\t{fmt(convert(point), chr(9))}\t{rotation}")
    if with_fiducials:
        lines.append("# Electrode Name\tSession Name\tLoc. X\tLoc. Y\tLoc. Z")
        for name, label in (("nasion", "Nasion"), ("lpa", "LPA"), ("rpa", "RPA")):
            lines.append(f"{label}\tSession 1\t{fmt(convert(to_mri(HEAD_FIDUCIALS[name])), chr(9))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def localite_xml(path: Path, space: str = "RAS", descriptions: tuple[str, ...] = ("Hotspot",)) -> Path:
    point = to_mri(HOTSPOT_HEAD)
    point = ras_to_lps(point) if space == "LPS" else point
    markers = []
    for index, description in enumerate(descriptions):
        shifted = point + np.array([0.0, 0.0, 5.0 * index])
        markers.append(f'''  <InstrumentMarker alwaysVisible="false" index="{index}" selected="false">
    <Marker additionalInformation="" color="#ff0000" description="{description}" set="true">
      <Matrix4D data00="0.0" data01="0.0" data02="1.0" data03="{shifted[0]:.6f}"
                data10="0.0" data11="-1.0" data12="0.0" data13="{shifted[1]:.6f}"
                data20="1.0" data21="0.0" data22="0.0" data23="{shifted[2]:.6f}"
                data30="0.0" data31="0.0" data32="0.0" data33="1.0"/>
    </Marker>
  </InstrumentMarker>''')
    space_attribute = f' coordinateSpace="{space}"' if space else ""
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<InstrumentMarkerList{space_attribute}>\n'
                    + "\n".join(markers) + "\n</InstrumentMarkerList>\n")
    return path


def test_csv_head_frame_labels_pass_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("subject,x,y,z,frame\nS01,-38.5,12.25,88,head\nsub-S02,-40,10,90,HEAD\n")
    labels = read_labels(path)
    assert sorted(labels) == ["sub-S01", "sub-S02"]
    np.testing.assert_array_equal(labels["sub-S01"], [-38.5, 12.25, 88.0])


@pytest.mark.parametrize("frame", ["RAS", "LPS"])
def test_csv_mri_labels_are_converted_with_fiducials(tmp_path: Path, frame: str) -> None:
    point = to_mri(HOTSPOT_HEAD)
    point = ras_to_lps(point) if frame == "LPS" else point
    path = tmp_path / "labels.csv"
    path.write_text(f"subject,x,y,z,frame\nS01,{fmt(point, ',')},{frame}\n")
    labels = read_labels(path, fiducials_csv(tmp_path / "fid.csv", frame=frame))
    np.testing.assert_allclose(labels["sub-S01"], HOTSPOT_HEAD, atol=1e-6)


def test_ras_label_with_lps_fiducials(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"subject,x,y,z,frame\nS01,{fmt(to_mri(HOTSPOT_HEAD), ',')},RAS\n")
    labels = read_labels(path, fiducials_csv(tmp_path / "fid.csv", frame="LPS"))
    np.testing.assert_allclose(labels["sub-S01"], HOTSPOT_HEAD, atol=1e-6)


@pytest.mark.parametrize("space", ["NIfTI:Aligned", "Brainsight", "World"])
def test_brainsight_export_with_its_own_fiducials(tmp_path: Path, space: str) -> None:
    path = brainsight_txt(tmp_path / "sub-P07_targets.txt", space=space)
    labels = read_labels(path)
    assert list(labels) == ["sub-P07"]
    np.testing.assert_allclose(labels["sub-P07"], HOTSPOT_HEAD, atol=1e-3)


def test_brainsight_target_chosen_by_name_and_fiducials_file(tmp_path: Path) -> None:
    path = brainsight_txt(tmp_path / "export.txt", with_fiducials=False, targets=("M1 grid 1", "M1 grid 2"))
    fiducials = brainsight_txt(tmp_path / "fiducials.txt", targets=())
    labels = read_labels(path, fiducials, subject="S01", target="m1 grid 2")
    np.testing.assert_allclose(labels["sub-S01"], HOTSPOT_HEAD + [0.0, 10.0, 0.0], atol=1e-3)
    assert list(read_fiducials(fiducials, subject="S01")) == ["sub-S01"]


@pytest.mark.parametrize("space", ["RAS", "LPS"])
def test_localite_instrument_marker(tmp_path: Path, space: str) -> None:
    folder = tmp_path / "sub-S01" / "InstrumentMarkers"
    folder.mkdir(parents=True)
    path = localite_xml(folder / "InstrumentMarker20240101120000000.xml", space=space,
                        descriptions=("entry", "Hotspot APB"))
    labels = read_labels(path, fiducials_csv(tmp_path / "fid.csv"))
    np.testing.assert_allclose(labels["sub-S01"], to_head_from_marker(1), atol=1e-6)


def to_head_from_marker(index: int) -> np.ndarray:
    """Head-frame position of the index-th marker written by localite_xml (shifted 5 mm along MRI z)."""
    return np.linalg.solve(ROTATION, to_mri(HOTSPOT_HEAD) + [0.0, 0.0, 5.0 * index] - SHIFT)


def test_folder_of_label_files(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("subject,x,y,z,frame\nS02,1,2,3,head\n")
    brainsight_txt(tmp_path / "sub-S01_targets.txt")
    labels = read_labels(tmp_path)
    assert sorted(labels) == ["sub-S01", "sub-S02"]


@pytest.mark.parametrize("content,needle", [
    ("subject,x,y,z\nS01,1,2,3\n", "no frame column"),
    ("subject,x,y,z,frame\nS01,1,2,3,\n", "has no frame"),
    ("subject,x,y,z,frame\nS01,1,2,3,MNI\n", "frame 'MNI'"),
    ("subject,x,y,z,frame\nS01,1,2,3,RAS\n", "--fiducials"),
    ("subject,x,y,z,frame\nS01,1,two,3,head\n", "non-numeric"),
    ("subject,x,y,z,frame\nS01,1,2,3,head\nsub-S01,1,2,3,head\n", "twice"),
])
def test_bad_csv_labels_are_refused(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(HotspotError, match=needle) as caught:
        read_labels(path)
    assert caught.value.code == ErrorCode.BAD_LABELS


def test_brainsight_without_coordinate_system_is_refused(tmp_path: Path) -> None:
    path = brainsight_txt(tmp_path / "sub-S01.txt")
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "Coordinate system" not in line))
    with pytest.raises(HotspotError, match="Coordinate system") as caught:
        read_labels(path)
    assert caught.value.code == ErrorCode.BAD_LABELS


def test_localite_without_coordinate_space_is_refused(tmp_path: Path) -> None:
    path = localite_xml(tmp_path / "sub-S01_InstrumentMarker.xml", space="")
    with pytest.raises(HotspotError, match="no frame"):
        read_labels(path, fiducials_csv(tmp_path / "fid.csv"))


def test_ambiguous_target_is_refused(tmp_path: Path) -> None:
    path = localite_xml(tmp_path / "sub-S01_markers.xml", descriptions=("a", "b"))
    with pytest.raises(HotspotError, match="'a', 'b'"):
        read_labels(path, fiducials_csv(tmp_path / "fid.csv"))


def test_world_space_with_foreign_fiducials_is_refused(tmp_path: Path) -> None:
    path = brainsight_txt(tmp_path / "sub-S01.txt", space="World", with_fiducials=False)
    with pytest.raises(HotspotError, match="axes are not stated"):
        read_labels(path, fiducials_csv(tmp_path / "fid.csv"))


def test_export_without_subject_is_refused(tmp_path: Path) -> None:
    path = brainsight_txt(tmp_path / "targets.txt")
    with pytest.raises(HotspotError, match="which subject"):
        read_labels(path)


def test_unknown_label_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text("{}")
    with pytest.raises(HotspotError) as caught:
        read_labels(path)
    assert caught.value.code == ErrorCode.BAD_FORMAT


def test_degenerate_fiducials_are_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\nS01,1,2,3,RAS\n")
    fiducials = tmp_path / "fid.csv"
    fiducials.write_text("subject,point,x,y,z,frame\nS01,nasion,0,90,0,RAS\nS01,lpa,5,5,5,RAS\nS01,rpa,5,5,5,RAS\n")
    with pytest.raises(HotspotError, match="do not define a head frame"):
        read_labels(labels, fiducials)


def test_fiducials_missing_a_point_are_refused(tmp_path: Path) -> None:
    fiducials = tmp_path / "fid.csv"
    fiducials.write_text("subject,point,x,y,z,frame\nS01,nasion,0,90,0,RAS\nS01,lpa,-70,0,0,RAS\n")
    with pytest.raises(HotspotError, match="lacks the fiducial"):
        read_fiducials(fiducials)
