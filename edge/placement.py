"""Where the electrode goes, in cap terms: the nearest cap electrode and a tangential offset on the scalp.

A hotspot estimate is a cortical point in the cap frame (the template head frame of the cap as worn,
mm). A person placing a tDCS electrode needs a spot on the scalp relative to the cap: the point is
projected onto the scalp along the line from the head's centre (the centre of the template's sphere
model) through it, and described as the nearest cap electrode plus an offset in the scalp's tangent
plane at that electrode: so many millimetres toward the nose (anterior) and away from the midline
(lateral). The instruction has no depth component by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    """A scalp position relative to a cap electrode.

    Attributes
    ----------
    electrode : str
        The nearest cap electrode (10-05 name).
    anterior_mm : float
        Offset toward the nose (negative: toward the back of the head), along the scalp.
    lateral_mm : float
        Offset away from the midline (negative: toward it), along the scalp.
    """

    electrode: str
    anterior_mm: float
    lateral_mm: float

    @property
    def distance_mm(self) -> float:
        """How far from the electrode, along the scalp's tangent plane."""
        return float(np.hypot(self.anterior_mm, self.lateral_mm))

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"electrode": self.electrode, "anterior_mm": round(self.anterior_mm, 1),
                "lateral_mm": round(self.lateral_mm, 1), "distance_mm": round(self.distance_mm, 1)}

    def describe(self) -> str:
        """E.g. ``"12 mm forward and 4 mm toward the middle from C3"``."""
        parts = []
        if abs(self.anterior_mm) >= 0.5:
            parts.append(f"{abs(self.anterior_mm):.0f} mm {'forward' if self.anterior_mm > 0 else 'backward'}")
        if abs(self.lateral_mm) >= 0.5:
            parts.append(f"{abs(self.lateral_mm):.0f} mm {'outward' if self.lateral_mm > 0 else 'toward the middle'}")
        return " and ".join(parts) + f" from {self.electrode}" if parts else f"on {self.electrode}"


def scalp_placement(point_mm: np.ndarray, electrodes_mm: Mapping[str, np.ndarray],
                    head_centre_mm: np.ndarray) -> Placement:
    """The cap instruction for a cortical point (cap frame, mm).

    Parameters
    ----------
    point_mm : ndarray, shape (3,)
        The estimate, cap frame (head frame of the template cap), mm; either hemisphere.
    electrodes_mm : mapping of str to (3,)
        The cap's electrodes at their template positions (cap frame, mm).
    head_centre_mm : ndarray, shape (3,)
        Centre of the template's sphere model (cap frame, mm); the scalp projection runs from it.

    Returns
    -------
    Placement
    """
    centre = np.asarray(head_centre_mm, dtype=float)
    point = np.asarray(point_mm, dtype=float)
    names = list(electrodes_mm)
    table = np.array([np.asarray(electrodes_mm[name], dtype=float) for name in names])
    direction = (point - centre) / np.linalg.norm(point - centre)
    radii = np.linalg.norm(table - centre, axis=1)
    scalp = centre + direction * np.median(radii)
    index = int(np.argmin(np.linalg.norm(table - scalp, axis=1)))
    electrode = table[index]
    normal = (electrode - centre) / radii[index]
    scalp = centre + direction * radii[index]  # the scalp at that electrode's radius
    offset = scalp - electrode
    offset -= np.dot(offset, normal) * normal  # tangential: no depth component
    anterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    anterior /= np.linalg.norm(anterior)
    lateral = np.cross(anterior, normal)
    if np.dot(lateral, [np.sign(point[0]) or 1.0, 0.0, 0.0]) < 0:  # away from the midline, on the point's side
        lateral = -lateral
    return Placement(electrode=names[index], anterior_mm=float(np.dot(offset, anterior)),
                     lateral_mm=float(np.dot(offset, lateral)))
