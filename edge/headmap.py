"""Where things go on a flat drawing of the head seen from above (the session page and the report).

Points in the head frame (mm; +x toward the right ear, +y toward the nose, +z up) are drawn with
MNE's topomap projection: azimuthal equidistant about a sphere origin, so a point at polar angle
``pol`` from the vertex and distance ``r`` from the origin lands ``pol * r / (pi / 2)`` from the
centre (MNE's ``_auto_topomap_coords`` with ``to_sphere=True``; a test checks they agree). With MNE's
default sphere (origin 0, radius 95 mm) the head outline is the circle of radius 95 mm, and the
electrodes of the 10-20 equator (Fpz, T7, Oz, T8) lie near it.

A placement instruction (a cap electrode plus a tangential offset on the scalp, anterior = toward
the nose, lateral = away from the midline; :mod:`edge.placement`) becomes the point on the sphere
through that electrode it was computed from. Along the scalp, ``s`` mm of arc from the vertex become ``s * 2 / pi`` mm on the drawing
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


def tangent_directions(electrode_mm: Sequence[float], side: int,
                       centre_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the scalp at an electrode: anterior (toward the nose) and lateral.

    The convention of :func:`edge.placement.scalp_placement`: anterior is the head's +y direction in the
    scalp's tangent plane, lateral is perpendicular to it in that plane, pointing away from the midline.

    Parameters
    ----------
    electrode_mm : 3 floats
        The electrode, head/cap frame, mm.
    side : {-1, 1}
        The hemisphere: -1 left (lateral toward -x), +1 right.
    centre_mm : 3 floats
        The head centre the scalp normal is taken from.

    Returns
    -------
    anterior, lateral : ndarray, shape (3,)
    """
    normal = np.asarray(electrode_mm, dtype=float) - np.asarray(centre_mm, dtype=float)
    normal /= np.linalg.norm(normal)
    anterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    anterior /= np.linalg.norm(anterior)
    lateral = np.cross(anterior, normal)
    if lateral[0] * (np.sign(side) or 1.0) < 0:
        lateral = -lateral
    return anterior, lateral


def placement_point(electrode_mm: Sequence[float], anterior_mm: float, lateral_mm: float, side: int,
                    centre_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The scalp point of a placement instruction (electrode + tangential offset), head/cap frame, mm.

    The inverse of :func:`edge.placement.scalp_placement`: the offset is taken in the scalp's tangent plane
    at the electrode and the point is brought back onto the sphere (about ``centre_mm``) through the
    electrode along the electrode's normal, so the scalp point that instruction came from is recovered
    (a test checks the round trip).

    Parameters
    ----------
    electrode_mm : 3 floats
        The cap electrode, mm.
    anterior_mm, lateral_mm : float
        The offset along the scalp: toward the nose, and away from the midline.
    side : {-1, 1}
        The hemisphere the instruction is for (-1 left, +1 right).
    centre_mm : 3 floats
        The head centre (the template sphere's) the instruction was computed with.

    Returns
    -------
    ndarray, shape (3,)
    """
    centre = np.asarray(centre_mm, dtype=float)
    radial = np.asarray(electrode_mm, dtype=float) - centre
    radius = np.linalg.norm(radial)
    anterior, lateral = tangent_directions(electrode_mm, side, centre_mm)
    tangential = anterior_mm * anterior + lateral_mm * lateral
    drop = radius - np.sqrt(max(radius ** 2 - float(tangential @ tangential), 0.0))
    return centre + radial + tangential - drop * radial / radius


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
