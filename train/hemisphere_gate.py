"""The real check's hemisphere decision: the network where it is confident, the ERD lateralisation elsewhere.

A network trained on simulated subjects can lose on real recordings what a plain ERD lateralisation of its
own input keeps (issue 12: 10/14 pairs from the input read as left-minus-right ERD, 8/14 from the network).
Physics is information, and the baseline is one the model must beat, so the check decides the hemisphere of a
trial, and of a (subject, hand) pair, by

- the network's hemisphere (the sign of its cap-frame x; for a pair, of the median over its trials) where the
  network is confident, ``|x| >= threshold``;
- the ERD lateralisation's hemisphere (the side whose mu/beta drop is larger; for a pair, of the median drop
  per channel) where it is not.

Between hands, the left fist must point further right than the right fist: by the network's estimates when
both pairs' are confident, else by the two lateralisations.

The threshold (mm) is fitted on a simulated development cohort only (:func:`fit_threshold`), by the
one-standard-error rule in favour of the baseline: the largest threshold (the most trials left to the
baseline) whose trials decided right are within one standard error of the best threshold's. The standard
error is paired: the square root of the trials the two thresholds decide differently (McNemar), so the
network takes a trial over only where, in simulation, it has been right more often than the baseline by
more than chance would explain. A threshold of 0 is the network alone; one above every estimate is the
baseline alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID_MM = tuple(float(value) for value in range(0, 81))
"""Candidate thresholds, mm from the midline (0 = network alone; 80 mm lies beyond any hand-area hotspot, so
every trial falls back to the baseline)."""


def hemisphere_votes(x_mm: Sequence[float], lateralisation: Sequence[float], threshold_mm: float) -> np.ndarray:
    """Per trial (or pair), the hemisphere decided: +1 right, -1 left, 0 undecided (an exact tie).

    Parameters
    ----------
    x_mm : sequence of float
        The network's estimate per trial (or pair), cap-frame x in mm (x > 0: right hemisphere).
    lateralisation : sequence of float
        The ERD lateralisation per trial (or pair): mean drop over C3/FC3/CP3 minus over C4/FC4/CP4 (fractions
        of rest power; > 0: the left hemisphere desynchronised more, so the hotspot is left).
    threshold_mm : float
        Items with ``|x| < threshold_mm`` take the lateralisation's side.

    Returns
    -------
    ndarray of int, shape (n_items,)
    """
    x, lateralisation = np.asarray(x_mm, dtype=float), np.asarray(lateralisation, dtype=float)
    if x.shape != lateralisation.shape:
        raise ValueError(f"{x.shape} network estimates but {lateralisation.shape} lateralisations")
    return np.where(np.abs(x) >= threshold_mm, np.sign(x), np.sign(-lateralisation)).astype(int)


def left_fist_further_right(left: tuple[float, float], right: tuple[float, float], threshold_mm: float) -> bool:
    """Between hands: does the left fist's pair point further right than the right fist's?

    Parameters
    ----------
    left, right : tuple of float
        Each pair's network estimate x (mm) and ERD lateralisation (:func:`hemisphere_votes`).
    threshold_mm : float
        The network's estimates decide when both lie at least this far from the midline; else the
        lateralisations do (the right fist's must be the more left-lateralised).
    """
    if min(abs(left[0]), abs(right[0])) >= threshold_mm:
        return bool(left[0] > right[0])
    return bool(right[1] > left[1])


def contralateral_votes(hand: str, votes: np.ndarray) -> int:
    """How many votes name the hemisphere opposite ``hand`` ("left" or "right")."""
    return int(np.sum(np.asarray(votes) == (1 if hand == "left" else -1)))


def fit_threshold(pairs: Sequence[dict], grid: Sequence[float] = GRID_MM) -> dict:
    """Fit the threshold on simulated (subject, hand) pairs whose hemisphere is known.

    Parameters
    ----------
    pairs : sequence of dict
        Records with ``hand``, ``trial_x_mm``, ``erd_trial_lateralisation``, ``estimate_mm`` and
        ``erd_lateralisation`` (the check's pair records of a simulated development cohort; pairs without kept
        trials are skipped).
    grid : sequence of float
        Candidate thresholds, mm.

    Returns
    -------
    dict
        ``threshold_mm`` (by the one-standard-error rule), ``best_mm`` (most trials right, the smallest on
        ties), and per candidate the trials whose decision is contralateral (``trials_right``, of
        ``n_trials``), the paired standard error of its difference from the best (``se_vs_best``, trials) and
        the pairs decided contralateral (``pairs_right``, of ``n_pairs``).
    """
    usable = [pair for pair in pairs if pair.get("trial_x_mm")]
    if not usable:
        raise ValueError("no simulated pair with kept trials to fit the threshold on")
    correct, pairs_right = [], []
    for threshold in grid:
        right = [hemisphere_votes(pair["trial_x_mm"], pair["erd_trial_lateralisation"], threshold)
                 == (1 if pair["hand"] == "left" else -1) for pair in usable]
        correct.append(np.concatenate(right))
        pairs_right.append(sum(contralateral_votes(pair["hand"], hemisphere_votes(
            [pair["estimate_mm"][0]], [pair["erd_lateralisation"]], threshold)) for pair in usable))
    trials_right = [int(right.sum()) for right in correct]
    best = int(np.argmax(trials_right))  # the first maximum: the smallest threshold
    se = [float(np.sqrt(np.sum(right != correct[best]))) for right in correct]
    chosen = max(i for i in range(len(grid)) if trials_right[best] - trials_right[i] <= se[i])
    return {"threshold_mm": float(grid[chosen]), "best_mm": float(grid[best]), "grid_mm": [float(v) for v in grid],
            "trials_right": trials_right, "se_vs_best": [round(value, 2) for value in se],
            "n_trials": int(len(correct[best])), "pairs_right": pairs_right, "n_pairs": len(usable)}
