"""Input normalisation shared by training, conversion and the device: ``(x - mean) / std``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import ErrorCode, HotspotError


@dataclass(frozen=True)
class Normalisation:
    """Per-element standardisation of one model input (rows x columns).

    Attributes
    ----------
    mean, std : ndarray, shape (n_rows, n_cols)
        Statistics computed on the training subjects only; ``std`` is strictly positive.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, inputs: np.ndarray, floor: float = 1e-6) -> "Normalisation":
        """Compute the statistics of ``inputs`` (shape (n_windows, n_rows, n_cols)).

        Parameters
        ----------
        inputs : ndarray, shape (n_windows, n_rows, n_cols)
            Training windows.
        floor : float
            Smallest allowed standard deviation, relative to the largest one.

        Returns
        -------
        Normalisation
        """
        inputs = np.asarray(inputs, dtype=np.float64)
        mean = inputs.mean(axis=0)
        std = inputs.std(axis=0)
        std = np.maximum(std, floor * max(float(std.max()), 1e-12))
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))

    @classmethod
    def fit_planes(cls, inputs: np.ndarray, n_planes: int, floor: float = 1e-6) -> "Normalisation":
        """One mean and SD per plane (a block of rows), shared by all its elements.

        The source level's planes are maps over a grid whose values compare across grid points (a
        power change in dB, a pattern fit): standardising every grid point on its own would erase
        where the map peaks, so each plane is standardised as a whole.

        Parameters
        ----------
        inputs : ndarray, shape (n_windows, n_rows, n_cols)
            Training inputs; ``n_rows`` is a multiple of ``n_planes``.
        n_planes : int
            Number of equal row blocks.
        floor : float
            Smallest allowed standard deviation, relative to the largest one.

        Returns
        -------
        Normalisation
        """
        inputs = np.asarray(inputs, dtype=np.float64)
        n, rows, cols = inputs.shape
        blocks = inputs.reshape(n, n_planes, rows // n_planes, cols)
        mean = blocks.mean(axis=(0, 2, 3))
        std = blocks.std(axis=(0, 2, 3))
        std = np.maximum(std, floor * max(float(std.max()), 1e-12))
        shape = (n_planes, rows // n_planes, cols)
        return cls(mean=np.broadcast_to(mean[:, None, None], shape).reshape(rows, cols).astype(np.float32),
                   std=np.broadcast_to(std[:, None, None], shape).reshape(rows, cols).astype(np.float32))

    def apply(self, inputs: np.ndarray) -> np.ndarray:
        """Return ``(inputs - mean) / std`` as float32 (works on one window or a batch)."""
        return ((np.asarray(inputs, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalisation":
        """Build from :meth:`to_dict` output, checking shapes and values."""
        try:
            mean = np.asarray(data["mean"], dtype=np.float32)
            std = np.asarray(data["std"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise HotspotError(f"normalisation needs numeric 'mean' and 'std' arrays ({err}); re-export the model",
                               ErrorCode.BAD_BUNDLE) from None
        if mean.shape != std.shape or mean.ndim != 2 or not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise HotspotError("normalisation 'mean'/'std' must be finite 2-D arrays of one shape with std > 0; "
                               "re-export the model", ErrorCode.BAD_BUNDLE)
        return cls(mean=mean, std=std)
