"""Error statistics over subjects: distances, summaries with bootstrap CIs, skill, trial aggregation.

Every error is a 3-D Euclidean distance in the head frame, in millimetres. Summaries are over
*subjects* (one number per subject: the distance of the subject's aggregated estimate), never over
trials, so that subjects with many trials do not dominate.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def euclidean_errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distance between two (n, 3) arrays (or two points).

    Parameters
    ----------
    predicted, target : ndarray, shape (n, 3) or (3,)
        Points, head frame, mm.

    Returns
    -------
    ndarray, shape (n,)
        Distances in mm.
    """
    predicted = np.atleast_2d(np.asarray(predicted, dtype=float))
    target = np.atleast_2d(np.asarray(target, dtype=float))
    return np.linalg.norm(predicted - target, axis=1)


def aggregate_trials(predictions: np.ndarray) -> tuple[np.ndarray, float]:
    """A subject's estimate from its trial predictions: the per-axis median, and its dispersion.

    Parameters
    ----------
    predictions : ndarray, shape (n_trials, 3)
        Per-window predictions, head mm.

    Returns
    -------
    estimate : ndarray, shape (3,)
        Per-axis median (robust to outlying trials).
    dispersion_mm : float
        Median distance of the trial predictions from the estimate (0 for one trial).
    """
    predictions = np.atleast_2d(np.asarray(predictions, dtype=float))
    if len(predictions) == 0:
        raise ValueError("no trial predictions to aggregate")
    estimate = np.median(predictions, axis=0)
    return estimate, float(np.median(euclidean_errors(predictions, estimate)))


def subject_resamples(n_subjects: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of subject indices (with replacement), shape ``(n_boot, n_subjects)``.

    Two statistics computed on the same resamples of the same subjects give a paired bootstrap.
    """
    return np.random.default_rng(seed).integers(0, n_subjects, size=(n_boot, n_subjects))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (NaN samples ignored)."""
    samples = np.asarray(samples, dtype=float)
    if not np.any(np.isfinite(samples)):
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    return float(np.nanpercentile(samples, tail)), float(np.nanpercentile(samples, 100.0 - tail))


def bootstrap_ci(values: np.ndarray, statistic=np.mean, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values`` (resampling subjects).

    Parameters
    ----------
    values : ndarray, shape (n,)
        One value per subject.
    statistic : callable
        Reduces an array along ``axis=1``, e.g. ``np.mean``.
    n_boot : int
        Bootstrap resamples.
    level : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (low, high) : tuple of float
        NaN when ``values`` is empty; the value itself for a single subject.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    return percentile_interval(statistic(values[subject_resamples(len(values), n_boot, seed)], axis=1), level)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> list[float]:
    """Wilson score interval of a proportion (e.g. a radius's coverage over sessions); NaNs for ``n = 0``."""
    if n == 0:
        return [float("nan"), float("nan")]
    interval = binomtest(int(successes), int(n)).proportion_ci(level, method="wilson")
    return [float(interval.low), float(interval.high)]


def resampled_skill(errors_mm: np.ndarray, resamples: np.ndarray) -> np.ndarray:
    """:func:`skill` on each bootstrap resample of subjects.

    Parameters
    ----------
    errors_mm : ndarray, shape (n_subjects, 3)
        Per subject the mean error (mm) of the model, the reference baseline and the oracle.
    resamples : ndarray of int, shape (n_boot, n_subjects)
        Subject indices (:func:`subject_resamples`).

    Returns
    -------
    ndarray, shape (n_boot,)
        NaN where a resample's oracle is not better than its baseline.
    """
    means = np.asarray(errors_mm, dtype=float)[resamples].mean(axis=1)
    span = means[:, 1] - means[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, (means[:, 1] - means[:, 0]) / span, np.nan)


def summarise_errors(errors: np.ndarray, seed: int = 0) -> dict:
    """Mean ± SD, median, 95 % bootstrap CI of the mean, and shares within 10 and 20 mm.

    Parameters
    ----------
    errors : ndarray, shape (n_subjects,)
        One distance (mm) per subject.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``n``, ``mean_mm``, ``sd_mm`` (sample SD, ddof=1; 0 for one subject), ``median_mm``,
        ``ci95_mm`` ([low, high] of the mean), ``within_10mm``, ``within_20mm`` (fractions).
    """
    errors = np.asarray(errors, dtype=float)
    if len(errors) == 0:
        nan = float("nan")
        return {"n": 0, "mean_mm": nan, "sd_mm": nan, "median_mm": nan, "ci95_mm": [nan, nan],
                "within_10mm": nan, "within_20mm": nan}
    low, high = bootstrap_ci(errors, seed=seed)
    return {
        "n": int(len(errors)),
        "mean_mm": float(errors.mean()),
        "sd_mm": float(errors.std(ddof=1)) if len(errors) > 1 else 0.0,
        "median_mm": float(np.median(errors)),
        "ci95_mm": [low, high],
        "within_10mm": float(np.mean(errors <= 10.0)),
        "within_20mm": float(np.mean(errors <= 20.0)),
    }


def skill(model_error: float, baseline_error: float, oracle_error: float) -> float:
    """Skill = (baseline - model) / (baseline - oracle).

    1 means as good as the oracle, 0 as good as the baseline, negative worse than the baseline.
    NaN when the oracle is not better than the baseline (the score is undefined).

    Parameters
    ----------
    model_error, baseline_error, oracle_error : float
        Mean errors (mm) of the model, the reference baseline and the oracle on the same subjects.
    """
    span = baseline_error - oracle_error
    if not np.isfinite(span) or span <= 0:
        return float("nan")
    return float((baseline_error - model_error) / span)


def format_summary(summary: dict) -> str:
    """One-line text, e.g. ``"8.3 ± 3.1 mm (median 7.9, 95% CI 7.2-9.4; ≤10 mm 70%, ≤20 mm 97%; n=30)"``."""
    if summary["n"] == 0:
        return "n/a (no subjects)"
    low, high = summary["ci95_mm"]
    return (f"{summary['mean_mm']:.2f} ± {summary['sd_mm']:.2f} mm (median {summary['median_mm']:.2f}, "
            f"95% CI {low:.2f}-{high:.2f}; ≤10 mm {100 * summary['within_10mm']:.0f}%, "
            f"≤20 mm {100 * summary['within_20mm']:.0f}%; n={summary['n']})")
