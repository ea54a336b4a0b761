"""Template head geometry (train/head.py) against the numbers computed in science.md §2.1 / §3.1."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import HotspotError
from edge.montage import mirror_channel_name, nearest_electrode
from train.head import head_to_mni, mni_to_head, nearest_scalp_point, standard_positions_head_mm

HOTSPOT_MNI = np.array([-38.6, -15.4, 62.0])


def test_positions_are_head_frame_millimetres() -> None:
    positions = standard_positions_head_mm()
    assert len(positions) == 335
    c3, c4, cz, nasion_side = positions["C3"], positions["C4"], positions["Cz"], positions["Fpz"]
    assert c3[0] < -50 and c4[0] > 50  # +x toward the right ear
    assert nasion_side[1] > 80  # +y toward the nasion
    assert 120 < cz[2] < 170 and abs(cz[0]) < 5  # vertex near the midline, above the ear line
    for name in ("C3", "FC3", "CP5", "FCC3h"):
        mirrored = positions[mirror_channel_name(name)] * np.array([-1, 1, 1])
        assert np.linalg.norm(mirrored - positions[name]) < 8.0  # fsaverage is nearly symmetric


def test_selected_names_keep_order_and_unknown_names_are_refused() -> None:
    assert list(standard_positions_head_mm(["FCC3h", "C3"])) == ["FCC3h", "C3"]
    with pytest.raises(HotspotError, match="C99"):
        standard_positions_head_mm(["C3", "C99"])


def test_mni_head_round_trip_and_the_hotspot_centroid() -> None:
    points = np.array([[-38.6, -15.4, 62.0], [10.0, 20.0, 30.0]])
    assert np.allclose(head_to_mni(mni_to_head(points)), points, atol=1e-9)
    hotspot = mni_to_head(HOTSPOT_MNI)
    scalp, depth = nearest_scalp_point(hotspot)
    assert depth == pytest.approx(20.5, abs=0.5)  # science.md §2.1: 20.5 mm below the scalp
    name, _ = nearest_electrode(scalp, standard_positions_head_mm())
    assert name == "FCC3h"  # science.md §2.1: nearest 10-05 electrode 9.4 mm away
    assert np.linalg.norm(scalp - standard_positions_head_mm(["FCC3h"])["FCC3h"]) < 12.0
