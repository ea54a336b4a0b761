"""Template head geometry: 10-05 electrode positions, the scalp, and MNI <-> head transforms.

Everything comes from the fsaverage files and the ``fsaverage_1005`` montage shipped inside
the mne wheel (no downloads). The montage and surfaces are in fsaverage's MRI (surface RAS)
coordinates, which we treat as MNI (strictly MNI305, a few mm from MNI152;
science.md §3.1). ``fsaverage-trans.fif`` maps the MNE "head" frame (origin between LPA and
RPA, +x toward RPA, +y through the nasion, +z up) to that MRI frame. All public functions
work in millimetres.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np

from edge.errors import ErrorCode, HotspotError

FSAVERAGE_DIR = Path(mne.__file__).parent / "data" / "fsaverage"
MONTAGE = "fsaverage_1005"


@functools.lru_cache(maxsize=1)
def _head_to_mri() -> np.ndarray:
    """The 4x4 head -> MRI transform of fsaverage, in metres."""
    trans = mne.read_trans(FSAVERAGE_DIR / "fsaverage-trans.fif")
    return np.array(trans["trans"])


def _apply(matrix_m: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform given in metres to points in millimetres."""
    points = np.asarray(points_mm, dtype=float)
    moved = mne.transforms.apply_trans(matrix_m, points.reshape(-1, 3) / 1000.0) * 1000.0
    return moved.reshape(points.shape)


def mni_to_head(points_mm: np.ndarray) -> np.ndarray:
    """Map MNI (fsaverage MRI) points to the template head frame.

    Parameters
    ----------
    points_mm : ndarray, shape (..., 3)
        Points in MNI/fsaverage surface RAS, mm.

    Returns
    -------
    ndarray, shape (..., 3)
        The same points in the MNE head frame, mm.
    """
    return _apply(np.linalg.inv(_head_to_mri()), points_mm)


def head_to_mni(points_mm: np.ndarray) -> np.ndarray:
    """Map template head-frame points to MNI (fsaverage MRI) coordinates.

    Parameters
    ----------
    points_mm : ndarray, shape (..., 3)
        Points in the MNE head frame, mm.

    Returns
    -------
    ndarray, shape (..., 3)
        The same points in MNI/fsaverage surface RAS, mm.
    """
    return _apply(_head_to_mri(), points_mm)


@functools.lru_cache(maxsize=1)
def _all_positions() -> dict[str, np.ndarray]:
    """Every fsaverage_1005 electrode in the head frame, mm."""
    positions = mne.channels.make_standard_montage(MONTAGE).get_positions()["ch_pos"]
    names = list(positions)
    table = mni_to_head(np.array([positions[name] for name in names]) * 1000.0)
    return {name: table[index] for index, name in enumerate(names)}


def standard_positions_head_mm(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Return 10-05 electrode positions of the fsaverage template in the head frame.

    Parameters
    ----------
    names : sequence of str, optional
        Electrode names in MNE's spelling (``"C3"``, ``"FCC3h"``); all 335 when None.

    Returns
    -------
    dict of str to ndarray, shape (3,)
        Positions in mm, in the order asked for.

    Raises
    ------
    HotspotError
        If a name is not a 10-05 electrode of the template.
    """
    table = _all_positions()
    if names is None:
        return {name: position.copy() for name, position in table.items()}
    unknown = [name for name in names if name not in table]
    if unknown:
        raise HotspotError(f"unknown 10-05 electrode name(s) {', '.join(unknown)}; use MNE spelling such as "
                           "'C3', 'FCC3h', 'CPz'", ErrorCode.MISSING_CHANNELS)
    return {name: table[name].copy() for name in names}


@functools.lru_cache(maxsize=1)
def _scalp_vertices() -> np.ndarray:
    surface = mne.read_bem_surfaces(FSAVERAGE_DIR / "fsaverage-head.fif", verbose=False)[0]
    return mni_to_head(surface["rr"] * 1000.0)


def scalp_vertices_head_mm() -> np.ndarray:
    """Return the fsaverage scalp surface vertices (2,033) in the head frame, mm."""
    return _scalp_vertices().copy()


def nearest_scalp_point(points_mm: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Project points onto the (scaled) template scalp: nearest scalp vertex and its distance.

    Parameters
    ----------
    points_mm : ndarray, shape (n, 3) or (3,)
        Points in the head frame, mm.
    scale : float
        Head scale of the subject; the template scalp is scaled about the head-frame origin.

    Returns
    -------
    scalp_mm : ndarray, same shape as ``points_mm``
        Nearest scalp vertex of each point (head frame, mm).
    depth_mm : ndarray, shape (n,) or ()
        Distance from each point to that vertex (the depth below the scalp), mm.
        The mesh's vertex spacing is about 8 mm, so depths are accurate to about 1-2 mm.
    """
    points = np.asarray(points_mm, dtype=float)
    flat = points.reshape(-1, 3)
    vertices = _scalp_vertices() * scale
    distances = np.linalg.norm(flat[:, None, :] - vertices[None, :, :], axis=2)
    index = np.argmin(distances, axis=1)
    scalp = vertices[index].reshape(points.shape)
    depth = distances[np.arange(len(flat)), index].reshape(points.shape[:-1])
    return scalp, depth
