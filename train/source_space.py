"""The source level's grid and leadfield, computed on the host with MNE (``edge.source.SourceSpace``).

The grid (``train/configs/source.toml``) is a ``rows x cols`` sheet over the hand region of the left
hemisphere in the cap frame (the fsaverage template head frame, mm): points on the sphere through the
population hotspot centroid, concentric with the template's fitted sphere model, ``spacing_mm`` apart
along the sphere (arc length) toward anterior and lateral from the centroid.
Row 0 is the most anterior, column 0 the most medial.

The leadfield is MNE's forward solution (``mne.make_forward_solution``) of a discrete volume source
space at those points, for the model's channels at their standard fsaverage 10-05 positions, with the
template's 4-shell sphere model (``train.simulate.forward.head_sphere(1.0)``): three orthogonal
dipoles per point, µV per nAm, not re-referenced (the device re-references it like the data).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.source import SourceSpace
from edge.validation import Table, read_toml, validate_type
from train.head import mni_to_head, standard_positions_head_mm
from train.simulate.forward import head_sphere

CONFIG_FILE = Path(__file__).resolve().parent / "configs" / "source.toml"


@dataclass(frozen=True)
class GridConfig:
    """The grid of ``source.toml`` ``[grid]``.

    Attributes
    ----------
    centre_mni : tuple of float
        Grid centre, MNI (fsaverage) mm, left hemisphere.
    rows, cols : int
        Points along anterior->posterior and medial->lateral.
    spacing_mm : float
        Arc length between neighbouring points (mm, on the grid's sphere).
    """

    centre_mni: tuple[float, float, float] = (-38.6, -15.4, 62.0)
    rows: int = 13
    cols: int = 13
    spacing_mm: float = 5.0


def load_grid_config(path: Path | str | None = None) -> GridConfig:
    """Read and validate ``[grid]`` of a source TOML file (default ``train/configs/source.toml``)."""
    path = Path(path) if path else CONFIG_FILE
    table = Table(read_toml(path, "source configuration"), "top level", path).table("grid", required=False)
    table.check_known(GridConfig.__dataclass_fields__)
    centre = table.get("centre_mni", list, list(GridConfig.centre_mni), "three numbers")
    config = GridConfig(centre_mni=tuple(validate_type(v, float, f"[grid] centre_mni[{i}]", path)
                                         for i, v in enumerate(centre)),
                        rows=table.get("rows", int, GridConfig.rows), cols=table.get("cols", int, GridConfig.cols),
                        spacing_mm=table.get("spacing_mm", float, GridConfig.spacing_mm))
    if len(config.centre_mni) != 3 or config.centre_mni[0] >= 0:
        raise HotspotError(f"{path}: [grid] centre_mni must be three numbers in the left hemisphere (x < 0)",
                           ErrorCode.BAD_CONFIG)
    if not (1 <= config.rows <= 41 and 1 <= config.cols <= 41 and 1.0 <= config.spacing_mm <= 20.0):
        raise HotspotError(f"{path}: [grid] needs 1-41 rows and cols and a spacing of 1-20 mm", ErrorCode.BAD_CONFIG)
    return config


def grid_points(config: GridConfig = GridConfig()) -> np.ndarray:
    """The grid's points, cap frame (template head frame), mm, row-major; shape (rows * cols, 3)."""
    sphere = head_sphere(1.0)
    centre = mni_to_head(np.asarray(config.centre_mni, dtype=float))
    radial = centre - sphere.r0_mm
    radius = float(np.linalg.norm(radial))
    radial /= radius
    anterior = np.array([0.0, 1.0, 0.0]) - radial[1] * radial
    anterior /= np.linalg.norm(anterior)
    lateral = np.cross(anterior, radial)
    if lateral[0] > 0:  # lateral points away from the midline: -x in the left hemisphere
        lateral = -lateral
    # angles along the sphere: arc lengths of spacing_mm from the centre, anterior and lateral
    alpha = (np.arange(config.rows)[::-1] - (config.rows - 1) / 2) * config.spacing_mm / radius
    beta = (np.arange(config.cols) - (config.cols - 1) / 2) * config.spacing_mm / radius
    alpha, beta = np.meshgrid(alpha, beta, indexing="ij")
    directions = (np.cos(alpha) * np.cos(beta))[..., None] * radial + (np.sin(alpha) * np.cos(beta))[..., None] \
        * anterior + np.sin(beta)[..., None] * lateral
    return sphere.r0_mm + radius * directions.reshape(-1, 3)


def mne_forward(points_mm: np.ndarray, channels: Sequence[str]) -> mne.Forward:
    """MNE's free-orientation forward solution of a discrete source space (head frame) for ``channels``."""
    positions = standard_positions_head_mm(channels)
    info = mne.create_info(list(channels), 250.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage({name: pos / 1000.0 for name, pos in positions.items()},
                                                   coord_frame="head"), verbose=False)
    normals = np.tile([0.0, 0.0, 1.0], (len(points_mm), 1))
    source = mne.setup_volume_source_space(pos={"rr": np.asarray(points_mm) / 1000.0, "nn": normals},
                                           verbose=False)
    return mne.make_forward_solution(info, trans=None, src=source, bem=head_sphere(1.0).conductor_model(),
                                     meg=False, eeg=True, verbose=False)


@functools.lru_cache(maxsize=8)
def _source_space(channels: tuple[str, ...], config: GridConfig) -> SourceSpace:
    points = grid_points(config)
    forward = mne_forward(points, channels)
    gain = forward["sol"]["data"] * 1e-9 * 1e6  # V per A m -> µV per nAm
    leadfield = gain.reshape(len(channels), len(points), 3)
    return SourceSpace(points_mm=points, shape=(config.rows, config.cols), channels=channels, leadfield=leadfield)


def build_source_space(channels: Sequence[str], config: GridConfig | None = None) -> SourceSpace:
    """The grid and leadfield for ``channels`` (model order, 10-05 names), as the device will use them."""
    return _source_space(tuple(channels), config or load_grid_config())
