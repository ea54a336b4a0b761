"""10-05 electrode names: left/right mirroring and nearest-electrode lookup.

One model serves both hemispheres: data from a patient whose hotspot is in the right
hemisphere is mirrored (channel names and x coordinates) into the left-hemisphere frame
before the model sees it, and the model's output is mirrored back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

_NAME = re.compile(r"^([A-Za-z]+?)(\d+h?|z|Z)?$")


def mirror_channel_name(name: str) -> str:
    """Return the name of the electrode mirrored across the midline.

    Odd numbers (left) become the next even number (right) and vice versa; ``h``
    (half-position) suffixes are kept; midline (``z``) names are unchanged.

    Parameters
    ----------
    name : str
        A 10-05 name such as ``"C3"``, ``"FCC3h"``, ``"CPz"``.

    Returns
    -------
    str
        The mirrored name, e.g. ``"C4"``, ``"FCC4h"``, ``"CPz"``.
    """
    match = _NAME.match(name)
    if match is None or match.group(2) is None:
        return name
    stem, suffix = match.group(1), match.group(2)
    if suffix in ("z", "Z"):
        return name
    half = suffix.endswith("h")
    number = int(suffix.rstrip("h"))
    mirrored = number + 1 if number % 2 == 1 else number - 1
    return f"{stem}{mirrored}{'h' if half else ''}"


def mirror_channel_names(names: Iterable[str]) -> list[str]:
    """Mirror every name in ``names`` (see :func:`mirror_channel_name`)."""
    return [mirror_channel_name(name) for name in names]


def mirror_points(points_mm: np.ndarray) -> np.ndarray:
    """Mirror head-frame points across the midsagittal plane (negate x).

    Parameters
    ----------
    points_mm : ndarray, shape (..., 3)
        Points in the MNE head frame (x toward RPA), millimetres.

    Returns
    -------
    ndarray, shape (..., 3)
        The mirrored points.
    """
    mirrored = np.array(points_mm, dtype=float, copy=True)
    mirrored[..., 0] *= -1.0
    return mirrored


def nearest_electrode(point_mm: np.ndarray, positions_mm: Mapping[str, Iterable[float]]) -> tuple[str, np.ndarray]:
    """Find the electrode nearest to a head-frame point.

    Parameters
    ----------
    point_mm : ndarray, shape (3,)
        The point (head frame, mm).
    positions_mm : mapping of str to 3 floats
        Electrode positions (head frame, mm).

    Returns
    -------
    name : str
        The nearest electrode.
    offset_mm : ndarray, shape (3,)
        ``point_mm`` minus that electrode's position.
    """
    names = list(positions_mm)
    table = np.array([list(positions_mm[name]) for name in names], dtype=float)
    point = np.asarray(point_mm, dtype=float)
    index = int(np.argmin(np.linalg.norm(table - point, axis=1)))
    return names[index], point - table[index]
