"""From the model's prediction to the reported estimate: prior combination and a calibrated radius.

Host evaluation and the device use this one module, so a reported radius means on the device what it
meant when its coverage was measured.

1. The model predicts a position and a per-axis standard deviation (Gaussian negative log-likelihood,
   cap frame, mm, the model's left-hemisphere frame).
   For level ``source`` the prediction is a learned blend of the network's mean and the physics
   estimate: the beamformer's own power-drop peak plus the training sessions' mean offset, moved a
   fraction ``physics_k`` toward the prior mean, or the prior mean itself when it lies farther than
   ``physics_gate_mm`` from it (:func:`physics_estimate`, the physics baseline's own rule). Physics is an
   input of the estimate, not only a baseline beside it (:func:`blended_mean`).
2. :func:`combine` weighs it against the population prior of the training subjects by precision, per
   axis. The model's variance is first multiplied by ``kappa``, fitted on held-out predictions of the
   training subjects (:class:`Calibration`): a network trained with a likelihood already shrinks toward
   the training mean, so ``kappa`` is what makes the combination neither double-count the prior nor trust
   an over-confident network. A prediction that carries no information (a standard deviation, after
   ``kappa``, as wide as the prior's or wider on every axis) gives the prior back (:func:`decide`).
3. A localised estimate reports ``Calibration.radius90_mm``: the distance from the estimate within which
   the true hotspot of 90 % of held-out training subjects lay (split-conformal, on the distances alone;
   :func:`train.estimator.fit_radius90`). It does not scale with the network's standard deviation: on the
   development cohorts that SD did not predict a session's error (correlation -0.11 to 0.15), and its size
   differs between the networks that were calibrated and the network that is shipped.
4. :func:`decide` says whether the EEG localised the hotspot at all; where it did not (too few good
   trials, a desynchronisation too weak to localise, a prediction outside the region the training
   population supports: farther than the learned ``gate_mm`` from the prior mean, or a prediction no
   narrower than the prior on any axis) the estimate *is* the prior, with the prior's radius, and the
   session says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import ErrorCode, HotspotError

Q90_3D = 2.500297
"""90 % quantile of the length of a 3-D standard normal vector (sqrt of chi-square(3) at 0.9)."""

def _vector(value, name: str, positive: bool = False) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (3,) or not np.all(np.isfinite(array)) or (positive and not np.all(array > 0)):
        raise HotspotError(f"{name} must be three finite{' positive' if positive else ''} numbers (mm)",
                           ErrorCode.BAD_BUNDLE)
    return array


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Prior:
    """The population prior: where training subjects' hotspots were (cap frame, model frame, mm).

    Attributes
    ----------
    mean_mm : ndarray, shape (3,)
        Mean of the training subjects' hotspot labels.
    sd_mm : ndarray, shape (3,)
        Per-axis spread of the *true* hotspots: the labels' SD with the TMS label noise removed.
    """

    mean_mm: np.ndarray
    sd_mm: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_mm", _vector(self.mean_mm, "prior mean_mm"))
        object.__setattr__(self, "sd_mm", _vector(self.sd_mm, "prior sd_mm", positive=True))

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"mean_mm": self.mean_mm.tolist(), "sd_mm": self.sd_mm.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Prior":
        """Build from :meth:`to_dict` output (one-line refusal when malformed)."""
        if not isinstance(data, dict) or set(data) != {"mean_mm", "sd_mm"}:
            raise HotspotError("prior must be an object {mean_mm, sd_mm}", ErrorCode.BAD_BUNDLE)
        return cls(mean_mm=data["mean_mm"], sd_mm=data["sd_mm"])


@dataclass(frozen=True)
class Calibration:
    """How far the model's own uncertainty is trusted, fitted on held-out training subjects.

    Attributes
    ----------
    kappa : float
        Factor on the model's variance in the prior combination (> 0).
    radius90_mm : float
        The 90 % radius of a localised estimate (mm, > 0): the distance from the estimate within which
        held-out training subjects' true hotspots lay 9 times in 10. The default (20 mm) is a placeholder
        for an estimator that was not calibrated; :func:`train.estimator.fit_estimator` always fits it.
    label_noise_sd_mm : float
        Per-axis SD of a TMS hotspot label around the true hotspot that calibration removed
        (Sollmann et al. 2013 re-test: 3.5 mm).
    min_erd_db : float or None
        Level ``source`` only: the strongest desynchronisation of the session map must reach this many
        dB below rest (a positive number) for the EEG to count as localising.
    gate_mm : float or None
        A prediction farther than this from the prior mean lies outside what the training population
        supports: the EEG counts as not localising (None: no gate). Fitted on held-out predictions.
    blend : float
        Level ``source``: weight of the network's mean against the physics estimate
        (:func:`physics_estimate`) in the prediction, in [0, 1]; 1 for the other levels.
    peak_offset_mm : ndarray (3,) or None
        Level ``source``: mean (label - beamformer peak) of the training sessions.
    physics_k : float
        Level ``source``: fraction the offset peak moves toward the prior mean, in [0, 1].
    physics_gate_mm : float or None
        Level ``source``: an offset peak farther than this from the prior mean is replaced by it (None: never).
    """

    kappa: float = 1.0
    radius90_mm: float = 20.0
    label_noise_sd_mm: float = 3.5
    min_erd_db: float | None = None
    gate_mm: float | None = None
    blend: float = 1.0
    peak_offset_mm: tuple[float, float, float] | None = None
    physics_k: float = 0.0
    physics_gate_mm: float | None = None

    def __post_init__(self) -> None:
        for name in ("kappa", "radius90_mm"):
            value = getattr(self, name)
            if not _number(value) or not np.isfinite(value) or value <= 0:
                raise HotspotError(f"calibration {name} must be a positive number, got {value!r}", ErrorCode.BAD_BUNDLE)
        if self.radius90_mm >= 1000:
            raise HotspotError("calibration radius90_mm must be below 1000 mm", ErrorCode.BAD_BUNDLE)
        if not _number(self.label_noise_sd_mm) or not 0 <= self.label_noise_sd_mm < 50:
            raise HotspotError("calibration label_noise_sd_mm must be in [0, 50) mm", ErrorCode.BAD_BUNDLE)
        if self.min_erd_db is not None and (not _number(self.min_erd_db)
                                            or not 0 <= self.min_erd_db < 30):
            raise HotspotError("calibration min_erd_db must be null or in [0, 30) dB", ErrorCode.BAD_BUNDLE)
        if self.gate_mm is not None and (not _number(self.gate_mm) or not 0 < self.gate_mm < 1000):
            raise HotspotError("calibration gate_mm must be null or in (0, 1000) mm", ErrorCode.BAD_BUNDLE)
        if not _number(self.blend) or not 0 <= self.blend <= 1:
            raise HotspotError("calibration blend must be in [0, 1]", ErrorCode.BAD_BUNDLE)
        if self.peak_offset_mm is not None:
            object.__setattr__(self, "peak_offset_mm", tuple(_vector(self.peak_offset_mm, "calibration peak_offset_mm")))
        elif self.blend < 1:
            raise HotspotError("calibration blend < 1 needs peak_offset_mm", ErrorCode.BAD_BUNDLE)
        if not _number(self.physics_k) or not 0 <= self.physics_k <= 1:
            raise HotspotError("calibration physics_k must be in [0, 1]", ErrorCode.BAD_BUNDLE)
        if self.physics_gate_mm is not None and (not _number(self.physics_gate_mm)
                                                 or not 0 < self.physics_gate_mm < 1000):
            raise HotspotError("calibration physics_gate_mm must be null or in (0, 1000) mm", ErrorCode.BAD_BUNDLE)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"kappa": float(self.kappa), "radius90_mm": float(self.radius90_mm),
                "label_noise_sd_mm": float(self.label_noise_sd_mm),
                "min_erd_db": None if self.min_erd_db is None else float(self.min_erd_db),
                "gate_mm": None if self.gate_mm is None else float(self.gate_mm), "blend": float(self.blend),
                "peak_offset_mm": None if self.peak_offset_mm is None else [float(v) for v in self.peak_offset_mm],
                "physics_k": float(self.physics_k),
                "physics_gate_mm": None if self.physics_gate_mm is None else float(self.physics_gate_mm)}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """Build from :meth:`to_dict` output (one-line refusal when malformed)."""
        if isinstance(data, dict) and "scale" in data:
            raise HotspotError("calibration has a radius 'scale' on the network's SD (before the distance-only 90 % "
                               "radius); retrain the model with 'invoke train' and rebuild the bundle", ErrorCode.BAD_BUNDLE)
        known = {"kappa", "radius90_mm", "label_noise_sd_mm", "min_erd_db", "gate_mm", "blend", "peak_offset_mm",
                 "physics_k", "physics_gate_mm"}
        if not isinstance(data, dict) or set(data) - known:
            raise HotspotError(f"calibration must be an object with keys {sorted(known)}", ErrorCode.BAD_BUNDLE)
        return cls(**data)


def physics_estimate(prior_mean_mm: np.ndarray, peaks_mm: np.ndarray, offset_mm: np.ndarray, k: float,
                     gate_mm: float | None) -> np.ndarray:
    """The physics baseline's estimate: offset peak moved a fraction ``k`` toward the mean, inside a gate.

    ``estimate = mean + (1 - k) (peak + offset - mean)`` when ``|peak + offset - mean| <= gate``, else
    ``mean``.

    Parameters
    ----------
    prior_mean_mm : ndarray (3,)
    peaks_mm : ndarray (..., 3)
        Beamformer power-drop peaks (:func:`edge.source.power_drop_peak`), cap frame, mm.
    offset_mm : ndarray (3,)
    k : float
    gate_mm : float or None

    Returns
    -------
    ndarray (..., 3)
    """
    mean = np.asarray(prior_mean_mm, dtype=np.float64)
    moved = np.asarray(peaks_mm, dtype=np.float64) + np.asarray(offset_mm, dtype=np.float64) - mean
    inside = (np.linalg.norm(moved, axis=-1, keepdims=True) <= gate_mm) if gate_mm is not None else True
    return mean + np.where(inside, (1.0 - k) * moved, 0.0)


def blended_mean(prior: Prior, calibration: Calibration, mean_mm: np.ndarray, peak_mm: np.ndarray | None
                 ) -> np.ndarray:
    """The prediction: the network's mean, blended (level ``source``) with the physics estimate."""
    mean = np.asarray(mean_mm, dtype=np.float64)
    if calibration.blend >= 1 or peak_mm is None:
        return mean
    anchor = physics_estimate(prior.mean_mm, peak_mm, calibration.peak_offset_mm, calibration.physics_k,
                              calibration.physics_gate_mm)
    return calibration.blend * mean + (1.0 - calibration.blend) * anchor


def narrows_prior(prior: Prior, sd_mm: np.ndarray, kappa: float) -> np.ndarray:
    """Per axis: whether the prediction (its variance times ``kappa``) is narrower than the prior.

    A network trained on the population already knows the population; where its sd is as wide as
    the prior's or wider it says nothing the training subjects' hotspots did not.
    """
    return kappa * np.square(np.asarray(sd_mm, dtype=np.float64)) < np.square(prior.sd_mm)


def combine(prior: Prior, mean_mm: np.ndarray, sd_mm: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision-weighted combination of a prediction with the prior, per axis.

    Parameters
    ----------
    prior : Prior
    mean_mm, sd_mm : ndarray, shape (..., 3)
        The model's prediction and its per-axis standard deviation (cap frame, mm; an infinite sd
        is allowed and means no information).
    kappa : float
        Factor on the model's variance (see :class:`Calibration`).

    Returns
    -------
    point : ndarray, shape (..., 3)
    sd : ndarray, shape (..., 3)
        The combined estimate and its per-axis standard deviation.
    """
    with np.errstate(divide="ignore"):
        model_precision = 1.0 / (kappa * np.square(np.asarray(sd_mm, dtype=np.float64)))  # 0 for an infinite sd
    prior_precision = 1.0 / np.square(prior.sd_mm)
    weight = model_precision / (prior_precision + model_precision)
    point = prior.mean_mm + weight * (np.asarray(mean_mm, dtype=np.float64) - prior.mean_mm)
    return point, np.sqrt(1.0 / (prior_precision + model_precision))


def aggregate_trials(means_mm: np.ndarray, sds_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A session's prediction from its trials' predictions (levels other than ``source``).

    Parameters
    ----------
    means_mm, sds_mm : ndarray, shape (n_trials, 3)
        Each good trial's predicted position and per-axis standard deviation (mm).

    Returns
    -------
    mean : ndarray, shape (3,)
        Per-axis median of the trial means (robust to outlying trials).
    sd : ndarray, shape (3,)
        Per-axis ``sqrt(median of the trial variances)``: the typical single-trial uncertainty. It is
        not divided by the number of trials, because trials of one session share the subject's
        anatomy and cap placement, which no number of trials averages out; ``Calibration.kappa``
        (fitted on session estimates of held-out training subjects) corrects it either way.
    """
    means = np.atleast_2d(np.asarray(means_mm, dtype=np.float64))
    sds = np.atleast_2d(np.asarray(sds_mm, dtype=np.float64))
    if len(means) == 0 or means.shape != sds.shape or means.shape[1] != 3:
        raise HotspotError(f"trial predictions must be (n >= 1, 3) means and sds, got {means.shape} and {sds.shape}",
                           ErrorCode.BAD_SAMPLES)
    return np.median(means, axis=0), np.sqrt(np.median(np.square(sds), axis=0))


def gaussian_radius90(sd_mm: np.ndarray) -> np.ndarray:
    """The 90 % radius (mm) of a Gaussian with per-axis standard deviations ``sd_mm`` (..., 3):
    ``Q90 * rms(sd)`` (exact for equal axes)."""
    rms = np.sqrt(np.mean(np.square(np.asarray(sd_mm, dtype=np.float64)), axis=-1))
    return Q90_3D * rms


def prior_radius90(prior: Prior) -> float:
    """The 90 % radius of the prior itself (what a session that cannot localise reports)."""
    return float(gaussian_radius90(prior.sd_mm))


@dataclass(frozen=True)
class Estimate:
    """What a session reports (cap frame, model frame, mm).

    Attributes
    ----------
    point_mm : ndarray, shape (3,)
    radius90_mm : float
    localised : bool
        False: the EEG could not localise; ``point_mm`` is the prior mean.
    reasons : list of str
        Why it could not localise (empty when localised).
    """

    point_mm: np.ndarray
    radius90_mm: float
    localised: bool
    reasons: list[str]


def decide(prior: Prior, calibration: Calibration, mean_mm: np.ndarray | None, sd_mm: np.ndarray | None,
           erd_db: float | None = None, reasons: list[str] | None = None, peak_mm: np.ndarray | None = None
           ) -> Estimate:
    """Combine a session's prediction with the prior, or fall back to the prior and say why.

    Parameters
    ----------
    prior, calibration
    mean_mm, sd_mm : ndarray (3,) or None
        The network's prediction for the session (None when there is none, e.g. too few good trials).
    erd_db : float, optional
        Level ``source``: the session map's strongest desynchronisation (dB below rest, positive).
    peak_mm : ndarray (3,), optional
        Level ``source``: the session map's power-drop peak (:func:`edge.source.power_drop_peak`).
    reasons : list of str, optional
        Reasons already known that the EEG cannot localise (e.g. too few good trials).

    Returns
    -------
    Estimate
    """
    reasons = list(reasons or [])
    fallback = prior_radius90(prior)
    if mean_mm is not None:
        mean_mm = blended_mean(prior, calibration, mean_mm, peak_mm)
    if mean_mm is None or sd_mm is None:
        reasons = reasons or ["no prediction"]
    elif calibration.min_erd_db is not None and erd_db is not None and erd_db < calibration.min_erd_db:
        reasons.append(f"the movement changed the motor rhythms too little ({erd_db:.1f} dB, at least "
                       f"{calibration.min_erd_db:.1f} dB needed)")
    elif calibration.gate_mm is not None and np.linalg.norm(np.asarray(mean_mm) - prior.mean_mm) > calibration.gate_mm:
        reasons.append(f"the EEG points {np.linalg.norm(np.asarray(mean_mm) - prior.mean_mm):.0f} mm from where "
                       f"hotspots are found, farther than the {calibration.gate_mm:.0f} mm it can be trusted")
    elif not np.any(narrows_prior(prior, sd_mm, calibration.kappa)):
        reasons.append("the EEG did not narrow down the population's hotspot region")
    if not reasons:
        point, _ = combine(prior, mean_mm, sd_mm, calibration.kappa)
        return Estimate(point_mm=point, radius90_mm=float(calibration.radius90_mm), localised=True, reasons=[])
    return Estimate(point_mm=prior.mean_mm.copy(), radius90_mm=fallback, localised=False, reasons=reasons)


def confidence_text(radius90_mm: float, localised: bool) -> str:
    """A plain-language sentence for patients and clinicians, derived from the 90 % radius."""
    if not localised:
        return (f"The EEG could not pinpoint your hotspot; this is the usual position for most people, "
                f"within {radius90_mm:.0f} mm in 9 of 10 people.")
    word = "high" if radius90_mm <= 10 else "moderate" if radius90_mm <= 20 else "low"
    return f"Confidence {word}: the hotspot lies within {radius90_mm:.0f} mm of this spot with 90 % probability."
