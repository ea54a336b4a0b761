"""Where things go on a flat drawing of the head seen from above (the session page and the report).

Points in the head frame (mm; +x toward the right ear, +y toward the nose, +z up) are drawn with
MNE's topomap projection: azimuthal equidistant about a sphere origin, so a point at polar angle
``pol`` from the vertex and distance ``r`` from the origin lands ``pol * r / (pi / 2)`` from the
centre (MNE's ``_auto_topomap_coords`` with ``to_sphere=True``; a test checks they agree). With MNE's
default sphere (origin 0, radius 95 mm) the head outline is the circle of radius 95 mm, and the
electrodes of the 10-20 equator (Fpz, T7, Oz, T8) lie near it.

A placement instruction (a cap electrode plus a tangential offset on the scalp, anterior = toward
the nose, lateral = away from the midline) becomes a point on the sphere through that electrode:
the offset is taken in the scalp's tangent plane at the electrode and the result is put back on
the sphere. Along the scalp, ``s`` mm of arc from the vertex become ``s * 2 / pi`` mm on the drawing
(whatever the sphere's radius); across that direction lengths are stretched by ``pol / sin(pol)``
(about 1.1 at the motor strip), so an offset or a radius drawn with :func:`mm_to_drawing` is accurate
to about 10 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

HEAD_RADIUS_MM = 95.0
"""MNE's default head sphere radius (``HEAD_SIZE_DEFAULT``): the head outline of the drawing."""


def project(points_mm: np.ndarray, origin_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Project head-frame points onto the drawing plane (MNE's topomap projection), mm.

    Parameters
    ----------
    points_mm : ndarray, shape (..., 3)
        Points in the head frame, mm.
    origin_mm : sequence of 3 floats
        The sphere origin the projection is taken about (MNE's ``sphere[:3]``), mm.

    Returns
    -------
    ndarray, shape (..., 2)
        Drawing coordinates in mm (x to the right ear, y to the nose), origin's x/y added back as MNE does.
    """
    origin = np.asarray(origin_mm, dtype=float)
    relative = np.asarray(points_mm, dtype=float) - origin
    radius = np.linalg.norm(relative, axis=-1)
    horizontal = np.hypot(relative[..., 0], relative[..., 1])
    polar = np.arctan2(horizontal, relative[..., 2])
    azimuth = np.arctan2(relative[..., 1], relative[..., 0])
    distance = polar * radius / (np.pi / 2.0)
    return np.stack([distance * np.cos(azimuth), distance * np.sin(azimuth)], axis=-1) + origin[:2]


def layout(positions_mm: Mapping[str, Sequence[float]], names: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Drawing positions of named electrodes in head-outline units (the outline is the unit circle).

    Parameters
    ----------
    positions_mm : mapping of str to 3 floats
        Electrode positions, head frame, mm (a bundle's ``electrodes``).
    names : sequence of str, optional
        Which electrodes (all when None); names missing from ``positions_mm`` are left out.

    Returns
    -------
    dict of str to [x, y]
        Rounded to 1e-4 of the head radius.
    """
    chosen = [name for name in (names if names is not None else positions_mm) if name in positions_mm]
    if not chosen:
        return {}
    flat = project(np.array([positions_mm[name] for name in chosen], dtype=float)) / HEAD_RADIUS_MM
    return {name: [round(float(x), 4), round(float(y), 4)] for name, (x, y) in zip(chosen, flat)}


def tangent_directions(electrode_mm: Sequence[float], side: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the scalp at an electrode: anterior (toward the nose) and lateral.

    Parameters
    ----------
    electrode_mm : 3 floats
        The electrode, head frame, mm (the scalp normal is taken from the head-frame origin).
    side : {-1, 1}
        The hemisphere: -1 left (lateral = toward -x), +1 right.

    Returns
    -------
    anterior, lateral : ndarray, shape (3,)
    """
    point = np.asarray(electrode_mm, dtype=float)
    normal = point / np.linalg.norm(point)

    def along_scalp(direction: np.ndarray) -> np.ndarray:
        tangent = direction - (direction @ normal) * normal
        return tangent / np.linalg.norm(tangent)

    return along_scalp(np.array([0.0, 1.0, 0.0])), along_scalp(np.array([float(np.sign(side) or 1), 0.0, 0.0]))


def placement_point(electrode_mm: Sequence[float], anterior_mm: float, lateral_mm: float, side: int) -> np.ndarray:
    """The scalp point of a placement instruction (electrode + tangential offset), head frame, mm.

    Parameters
    ----------
    electrode_mm : 3 floats
        The cap electrode, head frame, mm.
    anterior_mm, lateral_mm : float
        The offset along the scalp: toward the nose, and away from the midline.
    side : {-1, 1}
        The hemisphere the instruction is for (-1 left, +1 right).

    Returns
    -------
    ndarray, shape (3,)
        On the sphere (about the head-frame origin) through the electrode.
    """
    point = np.asarray(electrode_mm, dtype=float)
    anterior, lateral = tangent_directions(point, side)
    moved = point + anterior_mm * anterior + lateral_mm * lateral
    return moved / np.linalg.norm(moved) * np.linalg.norm(point)


def scalp_circle(centre_mm: Sequence[float], radius_mm: float, n: int = 72) -> np.ndarray:
    """Points ``radius_mm`` of arc from a scalp point on the sphere (about the origin) through it.

    Parameters
    ----------
    centre_mm : 3 floats
        The circle's centre, head frame, mm.
    radius_mm : float
        Its radius along the scalp (arc length), mm.
    n : int
        Number of points.

    Returns
    -------
    ndarray, shape (n, 3)
        Head frame, mm (project them with :func:`project` to draw the region).
    """
    centre = np.asarray(centre_mm, dtype=float)
    sphere = np.linalg.norm(centre)
    axis = centre / sphere
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    angle = float(radius_mm) / sphere
    phi = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)[:, None]
    return sphere * (np.cos(angle) * axis + np.sin(angle) * (np.cos(phi) * u + np.sin(phi) * v))


def mm_to_drawing(length_mm: float) -> float:
    """A length along the scalp in head-outline units (exact along the radial direction; see the notes)."""
    return float(length_mm) * 2.0 / np.pi / HEAD_RADIUS_MM
