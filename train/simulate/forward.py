"""Forward model: MNE's multi-shell sphere fitted to the template head, and dipole leadfields.

The sphere is ``mne.make_sphere_model("auto", "auto")`` fitted once to the fsaverage_1005
electrodes (science.md §3.2: r0 about (-1.5, 10.4, 42.3) mm, R about 99 mm, default layer radii
0.90/0.92/0.97/1.0 R and conductivities), then scaled with each subject's head scale.
Leadfields come from ``mne.make_forward_dipole`` in one call per subject (all dipoles, all
sessions' electrode sets). Sources must lie inside the inner sphere, so callers clamp them with
:func:`clamp_inside`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import mne
import numpy as np

from train.head import standard_positions_head_mm

INNER_LAYER = 0.90  # innermost shell radius relative to R in MNE's default sphere


@functools.lru_cache(maxsize=1)
def _template_sphere() -> tuple[np.ndarray, float]:
    positions = standard_positions_head_mm()
    montage = mne.channels.make_dig_montage({name: pos / 1000.0 for name, pos in positions.items()},
                                            coord_frame="head")
    info = mne.create_info(list(positions), 250.0, "eeg")
    info.set_montage(montage, verbose=False)
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    return np.asarray(sphere["r0"]) * 1000.0, float(sphere.radius) * 1000.0


@dataclass(frozen=True)
class HeadSphere:
    """One subject's sphere model (head frame, mm).

    Attributes
    ----------
    scale : float
        Head scale relative to the template.
    r0_mm : ndarray, shape (3,)
        Sphere centre.
    radius_mm : float
        Outer (scalp) radius.
    """

    scale: float
    r0_mm: np.ndarray
    radius_mm: float

    @property
    def inner_radius_mm(self) -> float:
        """Radius of the innermost shell (sources must lie inside it)."""
        return INNER_LAYER * self.radius_mm

    def conductor_model(self) -> mne.bem.ConductorModel:
        """The MNE sphere conductor model with default layers, in metres."""
        return mne.make_sphere_model(r0=tuple(self.r0_mm / 1000.0), head_radius=self.radius_mm / 1000.0,
                                     verbose=False)


def head_sphere(scale: float) -> HeadSphere:
    """Return the template sphere scaled by ``scale`` about the head-frame origin."""
    r0, radius = _template_sphere()
    return HeadSphere(scale=float(scale), r0_mm=r0 * scale, radius_mm=radius * scale)


def clamp_inside(points_mm: np.ndarray, sphere: HeadSphere, margin_mm: float) -> np.ndarray:
    """Move points radially (from the sphere centre) to at most ``inner radius - margin``.

    Parameters
    ----------
    points_mm : ndarray, shape (n, 3)
        Source positions, head frame, mm.
    sphere : HeadSphere
    margin_mm : float
        Minimum distance below the inner shell.

    Returns
    -------
    ndarray, shape (n, 3)
    """
    relative = np.asarray(points_mm, dtype=float) - sphere.r0_mm
    distance = np.linalg.norm(relative, axis=-1, keepdims=True)
    limit = sphere.inner_radius_mm - margin_mm
    factor = np.minimum(1.0, limit / np.maximum(distance, 1e-9))
    return sphere.r0_mm + relative * factor


def radial_directions(points_mm: np.ndarray, sphere: HeadSphere) -> np.ndarray:
    """Unit vectors from the sphere centre through each point."""
    relative = np.asarray(points_mm, dtype=float) - sphere.r0_mm
    return relative / np.linalg.norm(relative, axis=-1, keepdims=True)


def leadfield(positions_mm: np.ndarray, orientations: np.ndarray, electrode_names: Sequence[str],
              electrodes_mm: np.ndarray, sphere: HeadSphere) -> np.ndarray:
    """Potentials at the electrodes (against infinity) of fixed-orientation dipoles.

    Parameters
    ----------
    positions_mm : ndarray, shape (n_dipoles, 3)
        Dipole positions, head frame, mm (inside the inner shell).
    orientations : ndarray, shape (n_dipoles, 3)
        Unit orientation vectors.
    electrode_names : sequence of str
        Unique names, one per row of ``electrodes_mm``.
    electrodes_mm : ndarray, shape (n_electrodes, 3)
        Electrode positions, head frame, mm.
    sphere : HeadSphere

    Returns
    -------
    ndarray, shape (n_electrodes, n_dipoles)
        Microvolts per nAm of dipole moment, unreferenced.
    """
    names = list(electrode_names)
    info = mne.create_info(names, 1000.0, "eeg")
    montage = mne.channels.make_dig_montage(
        {name: position / 1000.0 for name, position in zip(names, np.asarray(electrodes_mm))}, coord_frame="head")
    info.set_montage(montage, verbose=False)
    n_dipoles = len(positions_mm)
    dipoles = mne.Dipole(times=np.arange(n_dipoles) / 1000.0, pos=np.asarray(positions_mm) / 1000.0,
                         amplitude=np.full(n_dipoles, 1e-9), ori=np.asarray(orientations),
                         gof=np.ones(n_dipoles))
    forward, _ = mne.make_forward_dipole(dipoles, sphere.conductor_model(), info, trans=None, verbose=False)
    gain = forward["sol"]["data"]  # V per A*m
    return gain * 1e-9 * 1e6
