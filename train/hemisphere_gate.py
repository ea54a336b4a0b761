"""The real check's hemisphere decision: the network where it is confident, the ERD lateralisation elsewhere.

A network trained on simulated subjects can lose on real recordings what a plain ERD lateralisation of its
own input keeps (issue 12: 10/14 pairs from the input read as left-minus-right ERD, 8/14 from the network).
Physics is information, and the baseline is one the model must beat, so the check's decision per trial is

- the network's hemisphere (the sign of its cap-frame x) where the network is confident, ``|x| >= threshold``;
- the ERD lateralisation's hemisphere (the side whose mu/beta drop is larger) where it is not.

The threshold (mm) is fitted on a simulated development cohort only (:func:`fit_threshold`): the one whose
decisions are contralateral for the most trials, the smallest on ties (the network is preferred). A
threshold of 0 is the network alone; one above every estimate is the baseline alone.

A (subject, hand) pair's decision is the majority of its trials' decisions (for the network alone this is the
sign of the median x), and between hands the left-fist pair must vote for the right hemisphere more often
than the right-fist pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID_MM = tuple(float(value) for value in range(0, 81))
"""Candidate thresholds, mm from the midline (0 = network alone; 80 mm lies beyond any hand-area hotspot, so
every trial falls back to the baseline)."""


def trial_votes(x_mm: Sequence[float], lateralisation: Sequence[float], threshold_mm: float) -> np.ndarray:
    """Per trial, the hemisphere decided: +1 right, -1 left, 0 undecided (an exact tie).

    Parameters
    ----------
    x_mm : sequence of float
        The network's estimate per trial, cap-frame x in mm (x > 0: right hemisphere).
    lateralisation : sequence of float
        The ERD lateralisation per trial: mean drop over C3/FC3/CP3 minus over C4/FC4/CP4 (fractions of rest
        power; > 0: the left hemisphere desynchronised more, so the hotspot is left).
    threshold_mm : float
        Trials with ``|x| < threshold_mm`` take the lateralisation's side.

    Returns
    -------
    ndarray of int, shape (n_trials,)
    """
    x, lateralisation = np.asarray(x_mm, dtype=float), np.asarray(lateralisation, dtype=float)
    if x.shape != lateralisation.shape:
        raise ValueError(f"{x.shape} network estimates but {lateralisation.shape} lateralisations")
    return np.where(np.abs(x) >= threshold_mm, np.sign(x), np.sign(-lateralisation)).astype(int)


def contralateral_votes(hand: str, votes: np.ndarray) -> int:
    """How many votes name the hemisphere opposite ``hand`` ("left" or "right")."""
    return int(np.sum(np.asarray(votes) == (1 if hand == "left" else -1)))


def fit_threshold(pairs: Sequence[dict], grid: Sequence[float] = GRID_MM) -> dict:
    """Fit the threshold on simulated (subject, hand) pairs whose hemisphere is known.

    Parameters
    ----------
    pairs : sequence of dict
        Records with ``hand``, ``trial_x_mm`` and ``erd_trial_lateralisation`` (the check's pair records of a
        simulated development cohort; pairs without kept trials are skipped).
    grid : sequence of float
        Candidate thresholds, mm.

    Returns
    -------
    dict
        ``threshold_mm``, and per candidate the trials whose decision is contralateral (``trials_right``, of
        ``n_trials``) and the pairs whose majority is (``pairs_right``, of ``n_pairs``).
    """
    usable = [pair for pair in pairs if pair.get("trial_x_mm")]
    if not usable:
        raise ValueError("no simulated pair with kept trials to fit the threshold on")
    trials_right, pairs_right = [], []
    for threshold in grid:
        right = majority = 0
        for pair in usable:
            votes = trial_votes(pair["trial_x_mm"], pair["erd_trial_lateralisation"], threshold)
            right += contralateral_votes(pair["hand"], votes)
            majority += contralateral_votes(pair["hand"], [np.sign(votes.sum())])
        trials_right.append(right)
        pairs_right.append(majority)
    best = int(np.argmax(trials_right))  # the first maximum: the smallest threshold
    return {"threshold_mm": float(grid[best]), "grid_mm": [float(value) for value in grid],
            "trials_right": trials_right, "n_trials": int(sum(len(pair["trial_x_mm"]) for pair in usable)),
            "pairs_right": pairs_right, "n_pairs": len(usable)}
