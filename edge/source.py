"""The ``source`` level: a DICS beamformer power-change map (movement vs rest) on a cortical grid.

What it computes, for one epoch (or for the mean cross-spectra of a whole session):

1. **Cross-spectral densities.** The clean signal (fixed-point filtered, re-referenced as the spec
   says) of the movement window ``source_move`` and of the rest window (``source_rest``; the
   epoch's baseline by default; the session's pooled rest periods with ``baseline_mode =
   "session_rest"``, :mod:`edge.rest`) is cut into Hann-windowed segments of ``csd_nperseg`` samples with
   half overlap (constant detrend per segment). For each band of ``spec.bands`` the CSD is
   ``mean over segments of sum over the band's FFT bins of X X^H`` (µV², complex, channels x
   channels): one matrix per band and condition.
2. **Beamformer.** MNE's DICS with ``pick_ori=None`` (a unit-gain *vector* filter per grid point,
   three orientations), ``weight_norm=None``, ``inversion="matrix"``, ``real_filter=True``,
   ``depth=None``: the filter of grid point g is ``W_g = (L_g^T C^+ L_g)^-1 L_g^T C^+``, where
   ``L_g`` is the re-referenced leadfield (channels x 3) and ``C^+`` the regularised pseudo-inverse
   of the real part of the *common* CSD (mean of movement and rest): diagonal loading by
   ``source_reg`` times the mean eigenvalue, inverted on the data's rank (the number of channels
   minus one under a common-average or channel reference). This equals
   ``mne.beamformer.make_dics`` with those options (a test compares both).
3. **Power change.** The 3 x 3 source CSDs ``S = W_g C W_g^T`` of movement and rest give, for every
   orientation, a movement/rest power ratio; the map holds the smallest one (the orientation that
   desynchronises most), in dB: ``10 log10 min_o (o^T S_move o) / (o^T S_rest o)``, i.e. the
   smallest generalised eigenvalue. Negative values are an event-related desynchronisation (ERD).
4. **Pattern fit.** A beamformer's power change blurs where several sources and the background mix;
   the topography of the strongest desynchronisation itself is sharper. Per band, the re-referenced
   spatial filter with the largest rest/movement power ratio (the generalised eigenvector of the rest
   and the regularised movement CSD in the data's subspace, i.e. common spatial patterns) gives the
   pattern ``a = C_rest w``; each grid point's plane holds the share of that pattern a dipole there
   explains, ``|Q_g^T a|^2 / |a|^2`` with ``Q_g`` an orthonormal basis of the point's leadfield (a
   one-dimensional MUSIC scan, 0 ... 1).
5. **Image.** The grid is a ``rows x cols`` sheet over the hand region of the left hemisphere,
   rows from anterior to posterior and columns from medial to lateral. Planes are stacked along the
   rows: the power change of each band, then the pattern fit of each band, so the input is
   ``(2 * n_bands * rows, cols)``.

The grid and the leadfield (:class:`SourceSpace`) are computed on the host with MNE (template
sphere model, the model's channels at their standard 10-05 positions, cap frame) and travel with
the model: in the model directory and, hashed and signed, in the bundle (``source_space.npz``).
A session's map is the same computation on the mean CSDs of its good trials (:func:`session_image`),
which is far less noisy than any single trial.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import ErrorCode, HotspotError

if TYPE_CHECKING:
    from edge.pipeline import PipelineSpec
    from edge.rest import RestStats

FILE_NAME = "source_space.npz"
"""The source space's file in a model directory and a bundle."""


@dataclass(frozen=True, eq=False)
class SourceSpace:
    """A cortical grid and its leadfield for the model's channels (cap frame, mm).

    The cap frame is the template head frame of the cap as worn: electrodes sit at their standard
    fsaverage 10-05 positions. Right-hemisphere sessions are mirrored into the left frame before
    they reach the model, like every other level.

    Attributes
    ----------
    points_mm : ndarray, shape (rows * cols, 3)
        Grid points, cap frame, mm, row-major: row 0 is the most anterior, column 0 the most medial.
    shape : (int, int)
        ``(rows, cols)`` of the grid.
    channels : tuple of str
        The channels the leadfield is for, in model order.
    leadfield : ndarray, shape (n_channels, rows * cols, 3)
        Potential at each electrode (against infinity, not re-referenced) of a unit dipole along
        head-frame x, y, z at each grid point, µV per nAm.
    """

    points_mm: np.ndarray
    shape: tuple[int, int]
    channels: tuple[str, ...]
    leadfield: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "points_mm", np.asarray(self.points_mm, dtype=np.float64))
        object.__setattr__(self, "leadfield", np.asarray(self.leadfield, dtype=np.float64))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "channels", tuple(str(name) for name in self.channels))
        rows, cols = self.shape if len(self.shape) == 2 else (0, 0)
        n_points = rows * cols
        if (n_points < 1 or self.points_mm.shape != (n_points, 3)
                or self.leadfield.shape != (len(self.channels), n_points, 3)
                or not np.all(np.isfinite(self.points_mm)) or not np.all(np.isfinite(self.leadfield))):
            raise HotspotError(f"source space: points {self.points_mm.shape}, leadfield {self.leadfield.shape} and "
                               f"shape {self.shape} for {len(self.channels)} channels do not fit together (or are not "
                               "finite); recompute it with train.source_space", ErrorCode.BAD_BUNDLE)

    def to_bytes(self) -> bytes:
        """The ``.npz`` file content (float32 arrays, deterministic for hashing)."""
        buffer = io.BytesIO()
        np.savez(buffer, points_mm=self.points_mm.astype(np.float32), shape=np.asarray(self.shape, dtype=np.int64),
                 channels=np.asarray(self.channels, dtype=str), leadfield=self.leadfield.astype(np.float32))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, content: bytes) -> "SourceSpace":
        """Read what :meth:`to_bytes` wrote; a malformed file is refused with one line."""
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
                return cls(points_mm=arrays["points_mm"], shape=tuple(arrays["shape"]),
                           channels=tuple(arrays["channels"]), leadfield=arrays["leadfield"])
        except HotspotError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise HotspotError(f"{FILE_NAME} is not a source space file ({err}); recompute it with "
                               "train.source_space", ErrorCode.BAD_BUNDLE) from None

    @property
    def sha256(self) -> str:
        """Hash of :meth:`to_bytes`, recorded in the pipeline description."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def reference_operator(reference: str, channels: Sequence[str]) -> tuple[np.ndarray, int]:
    """The re-referencing matrix of ``edge.levels.rereference`` and the rank it leaves.

    Returns
    -------
    matrix : ndarray, shape (n, n)
        ``clean = matrix @ filtered`` for "average", "none" or a channel name.
    rank : int
        ``n - 1`` for a common-average or channel reference, ``n`` for "none".
    """
    n = len(channels)
    if reference == "none":
        return np.eye(n), n
    if reference == "average":
        return np.eye(n) - 1.0 / n, n - 1
    matrix = np.eye(n)
    matrix[:, list(channels).index(reference)] -= 1.0
    return matrix, n - 1


def band_csd(x: np.ndarray, sfreq: float, nperseg: int, bands: Sequence[tuple[float, float]]) -> np.ndarray:
    """Cross-spectral density of each band: Hann segments with half overlap, summed over the band's bins.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
        Signal (µV), ``n_samples >= nperseg``.
    sfreq : float
        Sampling rate (Hz).
    nperseg : int
        Segment length (samples); segments step by ``nperseg // 2``.
    bands : sequence of (low, high)
        Bands in Hz; a bin at frequency f belongs to a band when ``low <= f < high``.

    Returns
    -------
    ndarray of complex128, shape (n_bands, n_channels, n_channels)
        ``mean_segments sum_bins X X^H`` per band (µV², Hermitian).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < nperseg or nperseg < 2:
        raise HotspotError(f"a CSD segment of {nperseg} samples does not fit in {x.shape[-1]}", ErrorCode.BAD_CONFIG)
    step = max(nperseg // 2, 1)
    starts = np.arange((x.shape[-1] - nperseg) // step + 1) * step
    segments = x[:, starts[:, None] + np.arange(nperseg)]
    segments = segments - segments.mean(axis=-1, keepdims=True)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)
    spectra = np.fft.rfft(segments * window, axis=-1)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sfreq)
    out = []
    for low, high in bands:
        in_band = (freqs >= low) & (freqs < high)
        if not in_band.any():
            raise HotspotError(f"band {low}-{high} Hz has no FFT bin at {nperseg} samples", ErrorCode.BAD_CONFIG)
        coefficients = spectra[:, :, in_band].reshape(len(x), -1)
        out.append(coefficients @ coefficients.conj().T / len(starts))
    return np.stack(out)


def regularised_pinv(matrix: np.ndarray, reg: float, rank: int) -> np.ndarray:
    """MNE's ``_reg_pinv``: diagonal loading by ``reg`` x mean eigenvalue, inverse on the top ``rank``."""
    values, vectors = np.linalg.eigh(matrix)
    values, vectors = values[::-1], vectors[:, ::-1]
    loaded = values + reg * values.mean()
    kept = vectors[:, :rank]
    return (kept / loaded[:rank]) @ kept.T


def dics_filters(leadfield: np.ndarray, common_csd: np.ndarray, reg: float, rank: int) -> np.ndarray:
    """Unit-gain vector DICS filters (``make_dics`` with pick_ori=None, inversion="matrix").

    Parameters
    ----------
    leadfield : ndarray, shape (n_channels, n_points, 3)
        Re-referenced leadfield.
    common_csd : ndarray, shape (n_channels, n_channels)
        The CSD the filter is built from (its real part is used).
    reg : float
        Diagonal loading relative to the mean eigenvalue.
    rank : int
        Rank the pseudo-inverse keeps.

    Returns
    -------
    ndarray, shape (n_points, 3, n_channels)
    """
    inverse = regularised_pinv(np.real(common_csd), reg, rank)
    gains = leadfield.transpose(1, 0, 2)                                    # points, channels, 3
    numerator = np.einsum("pci,cd->pid", gains, inverse)                    # points, 3, channels
    denominator = np.einsum("pid,pdj->pij", numerator, gains)               # points, 3, 3
    return np.linalg.solve(denominator, numerator)


def power_change_db(filters: np.ndarray, move_csd: np.ndarray, rest_csd: np.ndarray) -> np.ndarray:
    """Movement/rest source power ratio of the most desynchronising orientation, dB, per grid point.

    Parameters
    ----------
    filters : ndarray, shape (n_points, 3, n_channels)
    move_csd, rest_csd : ndarray, shape (n_channels, n_channels)

    Returns
    -------
    ndarray, shape (n_points,)
        ``10 log10`` of the smallest generalised eigenvalue of (source CSD in movement, at rest).
    """
    move = np.einsum("pic,cd,pjd->pij", filters, np.real(move_csd), filters)
    rest = np.einsum("pic,cd,pjd->pij", filters, np.real(rest_csd), filters)
    rest = (rest + rest.transpose(0, 2, 1)) / 2
    scale = np.trace(rest, axis1=1, axis2=2)[:, None, None] / 3.0
    ridge = 1e-9 * np.maximum(scale, np.finfo(float).tiny) * np.eye(3)
    whitening = np.linalg.inv(np.linalg.cholesky(rest + ridge))
    ratio = whitening @ move @ whitening.transpose(0, 2, 1)
    smallest = np.linalg.eigvalsh((ratio + ratio.transpose(0, 2, 1)) / 2)[:, 0]
    return 10.0 * np.log10(np.maximum(smallest, 1e-12))


def pattern_fit(leadfield: np.ndarray, move_csd: np.ndarray, rest_csd: np.ndarray, reg: float,
                rank: int) -> np.ndarray:
    """Share of the strongest desynchronisation's scalp pattern a dipole at each grid point explains.

    Parameters
    ----------
    leadfield : ndarray, shape (n_channels, n_points, 3)
        Re-referenced leadfield.
    move_csd, rest_csd : ndarray, shape (n_channels, n_channels)
    reg : float
        Diagonal loading of the movement CSD, relative to its mean eigenvalue in the data's subspace.
    rank : int
        Dimension of the data's subspace (the leading eigenvectors of the summed CSDs).

    Returns
    -------
    ndarray, shape (n_points,)
        ``|Q_g^T a|^2 / |a|^2`` in [0, 1].
    """
    rest, move = np.real(rest_csd), np.real(move_csd)
    _, vectors = np.linalg.eigh(rest + move)
    basis = vectors[:, ::-1][:, :rank]                      # the data's subspace
    rest_sub, move_sub = basis.T @ rest @ basis, basis.T @ move @ basis
    move_sub = move_sub + reg * np.trace(move_sub) / rank * np.eye(rank)
    whitening = np.linalg.inv(np.linalg.cholesky(move_sub))
    values, vectors = np.linalg.eigh(whitening @ rest_sub @ whitening.T)
    weights = whitening.T @ vectors[:, -1]                  # largest rest/movement power ratio
    pattern = basis @ (rest_sub @ weights)
    pattern /= np.linalg.norm(pattern)
    q, _ = np.linalg.qr(leadfield.transpose(1, 0, 2))       # points, channels, 3
    return np.sum(np.square(np.einsum("pci,c->pi", q, pattern)), axis=1)


def epoch_csds(spec: "PipelineSpec", clean: np.ndarray, rest: "RestStats | None" = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Movement and rest CSDs of one clean epoch (re-referenced filter output).

    The rest CSD is the epoch's own rest window, or with ``baseline_mode = "session_rest"`` the pooled
    rest's (``rest.csd``, :mod:`edge.rest`).

    Returns
    -------
    move, rest : ndarray of complex128, shape (n_bands, n_channels, n_channels)
    """
    move = band_csd(clean[:, spec.source_move_slice], spec.sfreq, spec.csd_samples, spec.bands)
    if spec.baseline_mode == "session_rest":
        return move, rest.csd
    return move, band_csd(clean[:, spec.source_rest_slice], spec.sfreq, spec.csd_samples, spec.bands)


def source_image(spec: "PipelineSpec", move: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The level's image from movement and rest CSDs (one epoch's, or a session's mean).

    Parameters
    ----------
    spec : PipelineSpec
        Level ``source`` with its :class:`SourceSpace` attached.
    move, rest : ndarray, shape (n_bands, n_channels, n_channels)

    Returns
    -------
    ndarray of float32, shape ``(2 * n_bands * rows, cols)``
        Power change (dB) of each band, then pattern fit of each band, per grid point.
    """
    space = spec.source_space
    operator, rank = reference_operator(spec.reference, spec.channels)
    leadfield = np.einsum("ab,bpi->api", operator, space.leadfield)
    changes, fits = [], []
    for band in range(len(spec.bands)):
        filters = dics_filters(leadfield, (move[band] + rest[band]) / 2.0, spec.source_reg, rank)
        changes.append(power_change_db(filters, move[band], rest[band]).reshape(space.shape))
        fits.append(pattern_fit(leadfield, move[band], rest[band], spec.source_reg, rank).reshape(space.shape))
    return np.ascontiguousarray(np.concatenate(changes + fits), dtype=np.float32)


def power_drop_peak(spec: "PipelineSpec", image: np.ndarray) -> np.ndarray:
    """The grid point (cap frame, model frame, mm) of the strongest power drop, the bands' changes summed.

    This is the beamformer's own answer; the physics baseline and the estimate both start from it.
    """
    rows = spec.source_space.shape[0]
    changes = np.asarray(image, dtype=np.float64)[:len(spec.bands) * rows].reshape(len(spec.bands), -1).sum(axis=0)
    return spec.source_space.points_mm[int(np.argmin(changes))].copy()


def strongest_desynchronisation_db(spec: "PipelineSpec", image: np.ndarray) -> float:
    """How far (dB, positive) the most desynchronised grid point's power fell, summed over the bands."""
    rows = spec.source_space.shape[0]
    changes = np.asarray(image, dtype=np.float64)[:len(spec.bands) * rows]
    return float(-changes.reshape(len(spec.bands), -1).sum(axis=0).min())


def session_image(spec: "PipelineSpec", moves: Sequence[np.ndarray], rests: Sequence[np.ndarray]) -> np.ndarray:
    """A session's image: :func:`source_image` of the mean CSDs of its (good) trials."""
    if not len(moves) or len(moves) != len(rests):
        raise HotspotError("a session image needs the CSDs of at least one good trial", ErrorCode.BAD_SAMPLES)
    return source_image(spec, np.mean(np.asarray(moves), axis=0), np.mean(np.asarray(rests), axis=0))
