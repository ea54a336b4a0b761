"""The two frames every accuracy number is given in: head and cap.

- **Head frame** (MNE "head", from the fiducials, mm): where neuronavigated TMS measures the hotspot.
- **Cap frame**: the head frame of the template cap as worn in one session, i.e. the frame in which
  the session's electrodes sit at their standard fsaverage 10-05 positions. The EEG sees the hotspot
  relative to the electrodes, and a patient at home places the tDCS electrode relative to the cap, so
  this is the frame the models predict in and the device reports in.

A session's cap transform is the similarity transform (scale, rotation, translation; Umeyama 1991)
that maps the template positions of its recorded electrodes onto their worn, digitised positions
(``Recording.ch_pos``: the simulator's ``electrodes.tsv``, a clinic's digitisation). It is fitted by
least squares over every electrode with a known position, so electrode jitter averages out. A
recording without positions gets the identity (the cap is assumed to sit as the template says).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.dataset import Recording
from train.head import standard_positions_head_mm

MIN_ELECTRODES = 4
"""Fewer digitised electrodes than this cannot fix a rotation and scale robustly: identity is used."""


@dataclass(frozen=True)
class CapTransform:
    """``head = scale * rotation @ cap + translation`` (mm).

    Attributes
    ----------
    scale : float
    rotation : ndarray, shape (3, 3)
    translation_mm : ndarray, shape (3,)
    """

    scale: float
    rotation: np.ndarray
    translation_mm: np.ndarray

    @classmethod
    def identity(cls) -> "CapTransform":
        """The cap as the template says (no digitised electrodes)."""
        return cls(1.0, np.eye(3), np.zeros(3))

    def to_head(self, points_mm: np.ndarray) -> np.ndarray:
        """Cap-frame points (..., 3) to the head frame."""
        return self.scale * np.asarray(points_mm, dtype=float) @ self.rotation.T + self.translation_mm

    def to_cap(self, points_mm: np.ndarray) -> np.ndarray:
        """Head-frame points (..., 3) to the cap frame."""
        return (np.asarray(points_mm, dtype=float) - self.translation_mm) @ self.rotation / self.scale

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"scale": float(self.scale), "rotation": np.asarray(self.rotation).tolist(),
                "translation_mm": np.asarray(self.translation_mm).tolist()}


def fit_similarity(template_mm: np.ndarray, worn_mm: np.ndarray) -> CapTransform:
    """Least-squares similarity transform with ``worn ~ scale * R @ template + t`` (Umeyama 1991)."""
    template, worn = np.asarray(template_mm, dtype=float), np.asarray(worn_mm, dtype=float)
    mean_t, mean_w = template.mean(axis=0), worn.mean(axis=0)
    a, b = template - mean_t, worn - mean_w
    u, s, vt = np.linalg.svd(b.T @ a / len(a))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(s) @ sign) / (np.sum(a ** 2) / len(a)))
    return CapTransform(scale=scale, rotation=rotation, translation_mm=mean_w - scale * rotation @ mean_t)


def cap_transform(recording: Recording) -> CapTransform:
    """The session's cap transform from its digitised electrodes (identity without them)."""
    template = standard_positions_head_mm()
    known = [i for i, name in enumerate(recording.ch_names)
             if name in template and np.all(np.isfinite(recording.ch_pos[i]))]
    if len(known) < MIN_ELECTRODES:
        return CapTransform.identity()
    return fit_similarity(np.array([template[recording.ch_names[i]] for i in known]), recording.ch_pos[known])
