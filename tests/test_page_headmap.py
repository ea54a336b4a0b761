"""edge.headmap: the head drawing's projection is MNE's topomap projection; placements stay on the scalp."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from mne.channels.layout import _auto_topomap_coords

from edge import headmap
from train.head import standard_positions_head_mm

NAMES = ["Fpz", "Fz", "FC3", "C5", "C3", "C1", "Cz", "CP3", "T7", "T8", "Pz", "Oz", "FCC3h"]


@pytest.mark.parametrize("origin_mm", [(0.0, 0.0, 0.0), (0.0, 0.0, 40.0)])
def test_projection_equals_mne_topomap_coordinates(origin_mm) -> None:
    positions = standard_positions_head_mm(NAMES)
    info = mne.create_info(NAMES, 250.0, "eeg")
    montage = mne.channels.make_dig_montage({name: positions[name] / 1000.0 for name in NAMES}, coord_frame="head")
    info.set_montage(montage)
    sphere = np.array([*origin_mm, headmap.HEAD_RADIUS_MM]) / 1000.0
    expected = _auto_topomap_coords(info, picks=list(range(len(NAMES))), ignore_overlap=False, to_sphere=True,
                                    sphere=sphere) * 1000.0
    ours = headmap.project(np.array([positions[name] for name in NAMES]), origin_mm)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_layout_is_in_head_outline_units_with_the_nose_up() -> None:
    positions = standard_positions_head_mm(NAMES)
    drawn = headmap.layout(positions, ["Fpz", "Oz", "T7", "T8", "Cz", "C3", "nonexistent"])
    assert set(drawn) == {"Fpz", "Oz", "T7", "T8", "Cz", "C3"}
    assert drawn["Fpz"][1] > 0.6 > drawn["Cz"][1] > -0.6 > drawn["Oz"][1]  # nose up
    assert drawn["T7"][0] < drawn["C3"][0] < 0 < drawn["T8"][0]  # left ear to the left
    assert abs(drawn["Cz"][0]) < 0.05 and abs(drawn["Cz"][1]) < 0.15


def test_placement_point_moves_along_the_scalp_without_depth() -> None:
    c3 = standard_positions_head_mm(["C3"])["C3"]
    point = headmap.placement_point(c3, anterior_mm=10.0, lateral_mm=5.0, side=-1)
    assert np.linalg.norm(point) == pytest.approx(np.linalg.norm(c3))  # same sphere: no depth component
    assert point[1] > c3[1] and point[0] < c3[0]  # toward the nose, away from the midline (left)
    assert np.linalg.norm(point - c3) == pytest.approx(np.hypot(10.0, 5.0), rel=0.02)
    anterior, lateral = headmap.tangent_directions(c3, side=-1)
    assert anterior @ c3 == pytest.approx(0.0, abs=1e-9) and lateral @ c3 == pytest.approx(0.0, abs=1e-9)
    c4 = standard_positions_head_mm(["C4"])["C4"]
    assert headmap.placement_point(c4, 0.0, 8.0, side=1)[0] > c4[0]  # right hemisphere: lateral is +x
    # On the drawing, 10 mm of scalp arc toward the nose moves the point by mm_to_drawing(10) (to ~10 %).
    moved = headmap.project(headmap.placement_point(c3, 10.0, 0.0, -1)) - headmap.project(c3)
    assert np.linalg.norm(moved) / headmap.HEAD_RADIUS_MM == pytest.approx(headmap.mm_to_drawing(10.0), rel=0.12)


def test_scalp_circle_keeps_its_arc_radius_on_the_sphere() -> None:
    c3 = standard_positions_head_mm(["C3"])["C3"]
    ring = headmap.scalp_circle(c3, 15.0, n=36)
    sphere = np.linalg.norm(c3)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), sphere)
    arcs = sphere * np.arccos(np.clip(ring @ c3 / sphere ** 2, -1, 1))
    np.testing.assert_allclose(arcs, 15.0, rtol=1e-9)


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (0.0, -4.0, 35.0)])
@pytest.mark.parametrize("hotspot", [(-38.0, 14.0, 60.0), (-30.0, -6.0, 70.0), (37.0, 10.0, 62.0)])
def test_placement_point_inverts_the_device_placement_instruction(centre, hotspot) -> None:
    from edge.placement import scalp_placement

    electrodes = standard_positions_head_mm()
    placement = scalp_placement(np.array(hotspot), electrodes, np.array(centre))
    side = -1 if hotspot[0] < 0 else 1
    point = headmap.placement_point(electrodes[placement.electrode], placement.anterior_mm, placement.lateral_mm,
                                    side, centre)
    ray = (np.array(hotspot) - centre) / np.linalg.norm(np.array(hotspot) - centre)
    back = (point - centre) / np.linalg.norm(point - centre)
    assert np.linalg.norm(np.cross(ray, back)) < 1e-9 and ray @ back > 0  # the scalp point above the hotspot
    assert np.linalg.norm(point - centre) == pytest.approx(np.linalg.norm(electrodes[placement.electrode]
                                                                         - centre))
