"""The estimator: the network, the population prior and the calibration, fitted on training subjects only.

What is fitted, from the training subjects alone (never a test subject):

1. **Network.** Per-trial windows (levels raw ... psd), each with its session's cap-frame label; or, for
   level "source", one image per session from the mean cross-spectra of its trials plus
   ``bootstrap_images`` images from bootstrap resamples of its trials (a session's estimate uses the
   image of all its trials). Loss: Gaussian negative log-likelihood (mean and per-axis SD).
2. **Prior.** Mean and per-axis SD of the training subjects' cap-frame labels (each subject's sessions
   averaged first); the SD has the TMS label noise (``label_noise_sd_mm``) removed, so it describes true
   hotspots.
3. **Calibration** (:class:`edge.estimate.Calibration`). The training subjects are split into
   ``calibration_folds`` subject-grouped folds; a network trained on the others predicts each fold's
   sessions. On those held-out predictions, ``kappa`` (how much the network's variance is trusted in the
   prior combination), ``gate_mm`` (how far from the prior mean a prediction may lie before it is
   treated as a failure to localise) and, for level "source", ``blend`` (the network's mean against the
   physics baseline's estimate, :func:`edge.estimate.physics_estimate`, fitted on the same training
   subjects as the network) minimise the mean distance to the labels, and ``radius90_mm`` is the 90 %
   radius of the localised held-out estimates around the *true* hotspot (:func:`fit_radius90`: the
   split-conformal quantile of their distances to the labels, with the label noise taken out).

A session's estimate is then :func:`edge.estimate.decide` of its prediction: the device runs the same
function with the same prior and calibration from the bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.contract import aggregation_for
from edge.errors import ErrorCode, HotspotError
from edge.estimate import Calibration, Prior, combine, decide, narrows_prior, prior_radius90
from edge.normalisation import Normalisation
from edge.session import session_prediction
from edge.source import power_drop_peak, session_image
from train.configs import TrainingConfig
from train.fitting import fit_network, predict_gaussian
from train.folds import grouped_folds
from train.windows import SubjectWindows

KAPPA_GRID = tuple(float(k) for k in np.geomspace(1 / 64, 64.0, 25))
"""Candidate factors on the network's variance in the prior combination."""


def labelled(items: Sequence[SubjectWindows]) -> list[SubjectWindows]:
    """The subjects that have a TMS label and at least one accepted window."""
    return [item for item in items if item.label is not None and len(item.inputs)]


def session_label(item: SubjectWindows, session: str, targets: dict | None = None) -> np.ndarray:
    """A session's training target: the subject's label (or its override) in that session's cap frame."""
    head = (targets or {}).get(item.subject, item.label)
    return item.to_cap(np.asarray(head, dtype=float), session)


# ----- inputs -----------------------------------------------------------------------------------------------
_IMAGES: dict[tuple, np.ndarray] = {}


def _images(spec, csds: np.ndarray, seed: tuple, n_bootstrap: int) -> np.ndarray:
    """The session image of all ``csds`` followed by ``n_bootstrap`` bootstrap images (cached)."""
    key = (spec.to_dict()["source_space"]["sha256"], spec.source_reg, spec.reference, n_bootstrap, seed,
           hashlib.sha1(np.ascontiguousarray(csds).tobytes()).hexdigest())
    if key not in _IMAGES:
        moves, rests = csds[:, 0].astype(np.complex128), csds[:, 1].astype(np.complex128)
        images = [session_image(spec, moves, rests)]
        rng = np.random.default_rng(np.random.SeedSequence([int(hashlib.sha1(repr(seed).encode()).hexdigest()[:8],
                                                                 16)]))
        for _ in range(n_bootstrap):
            pick = rng.integers(0, len(csds), len(csds))
            images.append(session_image(spec, moves[pick], rests[pick]))
        _IMAGES[key] = np.stack(images)
    return _IMAGES[key]


def session_inputs(spec, item: SubjectWindows, n_bootstrap: int = 0) -> dict[str, np.ndarray]:
    """Each session's model inputs: its windows, or (level "source") its image and bootstrap images."""
    out = {}
    for session in item.session_names():
        mask = item.sessions == session
        if spec.level == "source":
            out[session] = _images(spec, item.csds[mask], (item.subject, session), n_bootstrap)
        else:
            out[session] = item.inputs[mask]
    return out


def training_examples(spec, items: Sequence[SubjectWindows], config: TrainingConfig,
                      targets: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and cap-frame targets the network is trained on (see the module notes)."""
    inputs, outputs = [], []
    n_bootstrap = config.estimate.bootstrap_images if spec.level == "source" else 0
    for item in labelled(items):
        for session, examples in session_inputs(spec, item, n_bootstrap).items():
            inputs.append(examples)
            outputs.append(np.repeat(session_label(item, session, targets)[None], len(examples), axis=0))
    if not inputs:
        raise HotspotError("no labelled subject with accepted windows to train on; check labels and data quality",
                           ErrorCode.BAD_LABELS)
    return np.concatenate(inputs).astype(np.float32), np.concatenate(outputs).astype(np.float32)


# ----- prior and calibration --------------------------------------------------------------------------------
def population_prior(items: Sequence[SubjectWindows], label_noise_sd_mm: float, targets: dict | None = None) -> Prior:
    """Mean and true-hotspot SD of the training subjects' cap-frame labels (subjects weigh equally)."""
    labels = np.array([np.mean([session_label(item, s, targets) for s in item.session_names()], axis=0)
                       for item in labelled(items)])
    variance = labels.var(axis=0, ddof=1) if len(labels) > 1 else np.full(3, 25.0)
    return Prior(mean_mm=labels.mean(axis=0), sd_mm=np.sqrt(np.maximum(variance - label_noise_sd_mm ** 2, 1.0)))


@dataclass
class HeldOut:
    """Held-out predictions of one calibration fold, with the prior (and, for level source, the physics
    baseline) fitted on the subjects it was trained on."""

    prior: Prior
    means: np.ndarray
    sds: np.ndarray
    labels: np.ndarray
    physics: np.ndarray | None = None


GATE_GRID_MM = (5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 30.0, None)
"""Candidate gates: a prediction farther than this from the prior mean falls back to the prior."""


BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate weights of the network's mean against the beamformer peak (level source)."""


def _gated(fold: "HeldOut", kappa: float, gate: float | None, blend: float = 1.0
           ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out estimates under (kappa, gate, blend), decided as :func:`edge.estimate.decide` does: points and
    which were localised (inside the gate and narrower than the prior on some axis)."""
    means = fold.means
    if blend < 1 and fold.physics is not None:
        means = blend * means + (1.0 - blend) * fold.physics
    points, _ = combine(fold.prior, means, fold.sds, kappa)
    inside = np.any(narrows_prior(fold.prior, fold.sds, kappa), axis=1)
    if gate is not None:
        inside &= np.linalg.norm(means - fold.prior.mean_mm, axis=1) <= gate
    points = np.where(inside[:, None], points, fold.prior.mean_mm)
    return points, inside


def fit_combination(folds: Sequence["HeldOut"]) -> tuple[float, float | None, float]:
    """The (kappa, gate, blend) whose estimates are closest to the labels on held-out predictions."""
    def error(kappa: float, gate: float | None, blend: float) -> float:
        return float(np.mean(np.concatenate([np.linalg.norm(_gated(f, kappa, gate, blend)[0] - f.labels, axis=1)
                                             for f in folds])))

    blends = BLEND_GRID if all(f.physics is not None for f in folds) else (1.0,)
    candidates = [(kappa, gate, blend) for kappa in KAPPA_GRID for gate in GATE_GRID_MM for blend in blends]
    errors = [error(*candidate) for candidate in candidates]
    return candidates[int(np.argmin(errors))]


def fit_physics(spec, items: Sequence[SubjectWindows], prior: Prior, targets: dict | None = None):
    """The physics baseline (:class:`train.baselines.PhysicsBaseline`) fitted on the sessions of ``items``
    (level source; else None): each session map's power-drop peak against its cap-frame label."""
    from train.baselines import PhysicsBaseline

    if spec.level != "source":
        return None
    pairs = [(power_drop_peak(spec, images[0]), session_label(item, session, targets))
             for item in labelled(items) for session, images in session_inputs(spec, item).items()]
    return PhysicsBaseline.fit([p for p, _ in pairs], [label for _, label in pairs], prior.mean_mm)


def fit_radius90(residuals_mm: np.ndarray, label_noise_sd_mm: float, coverage: float = 0.9) -> float:
    """The radius (mm) around an estimate that holds the true hotspot of ``coverage`` of held-out sessions.

    Split-conformal on the distances alone: the ``ceil((n + 1) coverage)``-th smallest held-out distance
    ``|estimate - label|``, so that a new subject exchangeable with the held-out ones falls inside with
    probability at least ``coverage``. The labels are TMS hotspots, each off the true hotspot by
    independent noise of ``label_noise_sd_mm`` per axis, which adds ``3 noise^2`` to the mean squared
    distance; every distance is shrunk by the same factor ``sqrt(1 - 3 noise^2 / mean(d^2))`` to take it
    out. Of the ways tried on the development cohorts (seeds 1 and 3, nine channels, four group x cohort
    cells), this one's mean coverage of the truth was nearest 90 % (0.90, 0.98, 0.83, 0.87); subtracting
    the noise's own 90 % radius from the quantile gave 0.86-0.96 / 0.81-0.88, the network-SD-scaled radius
    it replaces 0.87-0.88 / 0.72-0.84.

    Parameters
    ----------
    residuals_mm : ndarray, shape (n, 3)
        ``estimate - label`` of held-out sessions the EEG localised (mm).
    label_noise_sd_mm : float
    coverage : float

    Returns
    -------
    float
        The radius, at least 1 mm.
    """
    distances = np.sort(np.linalg.norm(np.asarray(residuals_mm, dtype=np.float64), axis=1))
    if len(distances) == 0:
        raise HotspotError("no localised held-out session to calibrate the 90 % radius on", ErrorCode.BAD_LABELS)
    rank = min(len(distances), int(np.ceil((len(distances) + 1) * coverage)))
    shrink = np.sqrt(max(0.0, 1.0 - 3.0 * label_noise_sd_mm ** 2 / float(np.mean(np.square(distances)))))
    return max(1.0, float(shrink * distances[rank - 1]))


# ----- the estimator ----------------------------------------------------------------------------------------
@dataclass
class SessionEstimate:
    """One session's estimate (cap frame, model frame, mm).

    Attributes
    ----------
    subject, session : str
    mean_mm, sd_mm : ndarray (3,)
        The network's prediction for the session.
    peak_mm : ndarray (3,) or None
        Level "source": the session map's power-drop peak (an input of the estimate).
    point_mm : ndarray (3,)
        The reported estimate (prior combination, or the prior when it cannot localise).
    radius90_mm : float
    localised : bool
    erd_db : float or None
        Level "source": the session map's strongest desynchronisation (dB).
    trial_means_mm : ndarray (n, 3)
        The network's prediction for each trial (for the trials' consistency).
    """

    subject: str
    session: str
    mean_mm: np.ndarray
    sd_mm: np.ndarray
    peak_mm: np.ndarray | None
    point_mm: np.ndarray
    radius90_mm: float
    localised: bool
    erd_db: float | None
    trial_means_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


@dataclass
class Estimator:
    """A fitted network with its normalisation, prior and calibration (everything a bundle ships)."""

    spec: object
    model: object
    normalisation: Normalisation
    prior: Prior
    calibration: Calibration

    @classmethod
    def from_model_dir(cls, model_dir) -> "Estimator":
        """The estimator a loaded :class:`train.model_dir.ModelDir` holds (network, contract's prior and calibration)."""
        contract = model_dir.contract
        return cls(contract.spec, model_dir.model, contract.normalisation, contract.prior, contract.calibration)

    def predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and SDs (n, 3) of raw (un-normalised) inputs."""
        return predict_gaussian(self.model, self.normalisation, inputs)

    def session_predictions(self, item: SubjectWindows) -> dict[str, tuple]:
        """Per session: (mean, sd, erd_db, peak, trial means) before the prior, aggregated as the device does
        (:func:`edge.session.session_prediction`)."""
        def predict_one(input2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            means, sds = self.predict(input2d[None])
            return means[0], sds[0]

        aggregation = aggregation_for(self.spec.level)
        out = {}
        for session in item.session_names():
            mask = item.sessions == session
            trial_means, trial_sds = self.predict(item.inputs[mask])
            spectra = (None if item.csds is None else
                       [(pair[0].astype(np.complex128), pair[1].astype(np.complex128)) for pair in item.csds[mask]])
            prediction = session_prediction(predict_one, self.spec, aggregation, trial_means, trial_sds, spectra)
            out[session] = (prediction.mean_mm, prediction.sd_mm, prediction.erd_db, prediction.peak_mm, trial_means)
        return out

    def estimate(self, item: SubjectWindows) -> list[SessionEstimate]:
        """The reported estimate of each of ``item``'s sessions."""
        results = []
        for session, (mean, sd, erd_db, peak, trial_means) in self.session_predictions(item).items():
            decision = decide(self.prior, self.calibration, mean, sd, erd_db, peak_mm=peak)
            results.append(SessionEstimate(item.subject, session, mean, sd, peak, decision.point_mm,
                                           decision.radius90_mm, decision.localised, erd_db, trial_means))
        return results


def fit_network_for(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int,
                    targets: dict | None = None, progress: str | None = None):
    """Train the level's network on ``items``; returns (model, normalisation)."""

    inputs, outputs = training_examples(spec, items, config, targets)
    return fit_network(spec, inputs, outputs, config, seed, progress=progress)


def _physics_fields(spec, items: Sequence[SubjectWindows], prior: Prior, targets: dict | None) -> dict:
    physics = fit_physics(spec, items, prior, targets)
    if physics is None:
        return {}
    return {"peak_offset_mm": physics.offset_mm, "physics_k": physics.k, "physics_gate_mm": physics.gate_mm}


def calibration_predictions(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int,
                            targets: dict | None = None) -> list[HeldOut]:
    """Held-out session predictions of subject-grouped folds inside ``items`` (each with its fold's prior)."""
    settings = config.estimate
    by_id = {item.subject: item for item in items}
    folds = grouped_folds(list(by_id), min(settings.calibration_folds, len(by_id)), seed)
    held_out = []
    for index, fold in enumerate(folds):
        inner = [by_id[s] for s in fold.train]
        model, normalisation = fit_network_for(spec, inner, config, seed + 1000 + index, targets)
        predictor = Estimator(spec, model, normalisation, population_prior(inner, settings.label_noise_sd_mm, targets),
                              Calibration())
        means, sds, labels, peaks = [], [], [], []
        for subject in fold.test:
            for session, (mean, sd, _, peak, _) in predictor.session_predictions(by_id[subject]).items():
                means.append(mean)
                sds.append(sd)
                peaks.append(peak)
                labels.append(session_label(by_id[subject], session, targets))
        physics = fit_physics(spec, inner, predictor.prior, targets)
        held_out.append(HeldOut(predictor.prior, np.array(means), np.array(sds), np.array(labels),
                                None if physics is None else physics.predict_many(np.array(peaks))))
    return held_out


def fit_estimator(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                  targets: dict | None = None, progress: str | None = None) -> Estimator:
    """Fit network, prior and calibration on training subjects (see the module notes).

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
    items : sequence of SubjectWindows
        Training subjects (those without a label or windows are skipped).
    config : TrainingConfig
    seed : int
    targets : dict, optional
        Subject -> head-frame label override (model frame), e.g. the shuffled-label control.
    progress : str, optional
        Progress bar description for the final fit.

    Returns
    -------
    Estimator
    """
    items = labelled(items)
    settings = config.estimate
    prior = population_prior(items, settings.label_noise_sd_mm, targets)
    held_out = calibration_predictions(spec, items, config, seed, targets)
    kappa, gate, blend = fit_combination(held_out)
    gated = [_gated(fold, kappa, gate, blend) for fold in held_out]
    residuals = np.concatenate([(points - fold.labels)[inside] for (points, inside), fold in zip(gated, held_out)])
    radius = (fit_radius90(residuals, settings.label_noise_sd_mm) if len(residuals)
              else prior_radius90(prior))
    calibration = Calibration(kappa=kappa, radius90_mm=radius, label_noise_sd_mm=settings.label_noise_sd_mm,
                              min_erd_db=settings.min_erd_db if spec.level == "source" and settings.min_erd_db > 0
                              else None, gate_mm=gate, blend=blend, **_physics_fields(spec, items, prior, targets))
    model, normalisation = fit_network_for(spec, items, config, seed, targets, progress)
    return Estimator(spec, model, normalisation, prior, calibration)
