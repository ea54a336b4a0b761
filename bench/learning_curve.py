"""How many training subjects the source image needs before it says more than its power-drop peak.

``train_image_learning_curve`` is the evidence behind one missed target of the headline: the estimate
does not beat the physics baseline (beamformer peak + learned shrinkage). It asks whether the whole
source image (every plane the network sees) carries information beyond its peak, and how many training
subjects it takes to learn it:

* training pool: default-configuration cohorts of simulator seeds 8-15 (simulated for this benchmark,
  never evaluated on); test: the development cohort (seed 1). The evaluation (0), replication (2) and
  spread (3, 4) cohorts are not touched, nor the eegmmidb check's seeds (5-7);
* for n training subjects drawn from the pool (per group; five draws below the whole pool), the physics
  baseline (:class:`train.baselines.PhysicsBaseline`) is fitted on their sessions, then a ridge correction
  of its residual on the standardised image plus peak, its penalty chosen by subject-grouped 5-fold
  cross-validation;
* error vs the true hotspot, cap frame (mm, model frame), a subject's error = mean over its sessions;
  baseline: the population mean of the drawn training subjects' labels.
"""

from __future__ import annotations

import numpy as np

from bench.harness import benchmark
from bench.training import cohort

POOL_SEEDS = tuple(range(8, 16))
"""Simulator seeds of the training pool (default configuration)."""

TEST_COHORT = (1, "dev-cohort")
"""(seed, folder under data/) of the cohort the curve is measured on: the development cohort."""

SIZES = (30, 60, 120)
"""Training subjects per group drawn from the pool (plus the whole pool)."""

DRAWS = 5
"""Random draws per size below the whole pool."""

ALPHAS = tuple(float(a) for a in np.geomspace(10.0, 1e7, 15))
"""Candidate ridge penalties (on standardised features)."""

CV_FOLDS = 5


def session_table(seed: int, name: str) -> list[dict]:
    """Every labelled session of a cohort: its source image and peak, label and truth (cap frame, model frame)."""
    from edge.source import power_drop_peak
    from train.configs import load_training_config
    from train.estimator import labelled, session_inputs
    from train.io import load_dataset
    from train.reproduce import Inputs

    folder = cohort(seed, name)
    dataset = load_dataset(folder)
    dataset.to_float32()
    inputs = Inputs(dataset, load_training_config(), folder.parent / f"{folder.name}-cache")
    spec = inputs.spec("source", "nine")
    rows = []
    for item in labelled(inputs.windows("source", "nine")):
        for session, images in session_inputs(spec, item).items():
            peak = power_drop_peak(spec, images[0])
            rows.append({"subject": f"seed{seed}/{item.subject}", "group": item.group,
                         "features": np.concatenate([np.ravel(images[0]), peak]), "peak": peak,
                         "label": item.to_cap(item.label, session), "truth": item.to_cap(item.truth, session)})
    return rows


def ridge_weights(features: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge regression with an unpenalised intercept: weights (n_features + 1, n_targets)."""
    design = np.c_[features, np.ones(len(features))]
    penalty = alpha * np.diag(np.r_[np.ones(features.shape[1]), 0.0])
    return np.linalg.solve(design.T @ design + penalty, design.T @ targets)


def ridge_predict(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Predictions of :func:`ridge_weights`."""
    return np.c_[features, np.ones(len(features))] @ weights


def fit_ridge(features: np.ndarray, targets: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge weights with the penalty of least subject-grouped cross-validated distance error."""
    from train.folds import grouped_folds

    tested = [np.isin(subjects, fold.test) for fold in grouped_folds(np.unique(subjects).tolist(), CV_FOLDS)]
    errors = []
    for alpha in ALPHAS:
        total = 0.0
        for test in tested:
            weights = ridge_weights(features[~test], targets[~test], alpha)
            total += float(np.linalg.norm(ridge_predict(weights, features[test]) - targets[test], axis=1).sum())
        errors.append(total)
    alpha = ALPHAS[int(np.argmin(errors))]
    return ridge_weights(features, targets, alpha), alpha


def subject_means(errors: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Per-subject mean of session errors (subjects in sorted order)."""
    return np.array([errors[subjects == name].mean() for name in np.unique(subjects)])


def one_draw(train: list[dict], test: list[dict]) -> dict:
    """Fit on ``train`` sessions, measure on ``test`` sessions: subject-mean errors (mm) of each method."""
    from train.baselines import PhysicsBaseline

    features = np.array([row["features"] for row in train])
    labels = np.array([row["label"] for row in train])
    subjects = np.array([row["subject"] for row in train])
    peaks = np.array([row["peak"] for row in train])
    prior = np.mean([labels[subjects == name].mean(axis=0) for name in np.unique(subjects)], axis=0)
    physics = PhysicsBaseline.fit(peaks, labels, prior)
    centre, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    weights, alpha = fit_ridge((features - centre) / scale, labels - physics.predict_many(peaks), subjects)

    test_features = np.array([row["features"] for row in test])
    truth = np.array([row["truth"] for row in test])
    test_subjects = np.array([row["subject"] for row in test])
    physics_points = physics.predict_many(np.array([row["peak"] for row in test]))
    points = {"population_mean": np.broadcast_to(prior, truth.shape), "physics": physics_points,
              "physics_plus_image": physics_points + ridge_predict(weights, (test_features - centre) / scale)}
    errors = {method: subject_means(np.linalg.norm(p - truth, axis=1), test_subjects) for method, p in points.items()}
    return {"errors": errors, "alpha": alpha}


@benchmark("train_image_learning_curve")
def image_learning_curve() -> dict:
    """The physics baseline and a correction from the whole source image, against the number of training subjects."""
    from train.metrics import bootstrap_ci

    pool = [row for seed in POOL_SEEDS for row in session_table(seed, f"dev-cohort-seed{seed}")]
    test = session_table(*TEST_COHORT)
    rng = np.random.default_rng(0)
    groups = {}
    for group in ("healthy", "stroke"):
        members = [row for row in pool if row["group"] == group]
        tests = [row for row in test if row["group"] == group]
        names = sorted({row["subject"] for row in members})
        curve = []
        for size in sorted({min(size, len(names)) for size in SIZES} | {len(names)}):
            draws = []
            for _ in range(DRAWS if size < len(names) else 1):
                chosen = set(rng.choice(names, size, replace=False))
                draws.append(one_draw([row for row in members if row["subject"] in chosen], tests))
            difference = np.array([d["errors"]["physics_plus_image"] - d["errors"]["physics"] for d in draws])
            curve.append({
                "training_subjects": size, "draws": len(draws),
                **{f"{method}_mm": float(np.mean([d["errors"][method].mean() for d in draws]))
                   for method in ("population_mean", "physics", "physics_plus_image")},
                "image_minus_physics_mm": float(difference.mean()),
                "image_minus_physics_ci95_mm": list(bootstrap_ci(difference.mean(axis=0))),
                "ridge_alphas": [d["alpha"] for d in draws]})
        groups[group] = {"pool_subjects": len(names), "test_subjects": len({row["subject"] for row in tests}),
                         "curve": curve}
    return {"protocol": "train on n subjects drawn from default cohorts of seeds 8-15, test on the development "
                        "cohort (seed 1); per group; source level, nine channels; a subject's error = mean over "
                        "its sessions; interval: subject bootstrap of the draws' mean paired difference",
            "frame": "mm, cap frame (the cap as worn in the session), model frame",
            "baseline": "population mean of the drawn training subjects' labels; the physics baseline "
                        "(beamformer peak + learned shrinkage) fitted on the same draw",
            "pool_seeds": list(POOL_SEEDS), "test_seed": TEST_COHORT[0], "groups": groups}
