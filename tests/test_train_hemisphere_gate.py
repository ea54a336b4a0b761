"""The real check's hemisphere gate (train/hemisphere_gate.py): the network where confident, else the ERD baseline."""

from __future__ import annotations

import numpy as np
import pytest

from train.hemisphere_gate import (GRID_MM, contralateral_votes, fit_threshold, hemisphere_votes,
                                   left_fist_further_right)


def cohort(rng: np.random.Generator, network, n_pairs: int = 20, n_trials: int = 22, erd_right: float = 0.7):
    """Pairs with a known hemisphere: the baseline's side right on ``erd_right`` of trials, x from ``network``."""
    pairs = []
    for index in range(n_pairs):
        hand = ("left", "right")[index % 2]
        right_side = 1.0 if hand == "left" else -1.0  # the contralateral hemisphere's sign of x
        correct = rng.random(n_trials) < erd_right
        lateralisation = -right_side * np.where(correct, 1.0, -1.0) * rng.uniform(0.01, 0.3, n_trials)
        x = network(rng, right_side, n_trials)
        pairs.append({"hand": hand, "trial_x_mm": list(x), "erd_trial_lateralisation": list(lateralisation),
                      "estimate_mm": [float(np.median(x)), 0.0, 0.0], "erd_lateralisation": float(np.median(lateralisation))})
    return pairs


def test_votes_take_the_network_where_confident_and_the_baseline_elsewhere() -> None:
    x = np.array([30.0, -25.0, 4.0, -2.0, 0.0])
    lateralisation = np.array([0.2, 0.2, 0.2, -0.1, 0.0])  # > 0: left drop larger, left hemisphere
    np.testing.assert_array_equal(hemisphere_votes(x, lateralisation, 10.0), [1, -1, -1, 1, 0])
    np.testing.assert_array_equal(hemisphere_votes(x, lateralisation, 0.0), np.sign(x))
    np.testing.assert_array_equal(hemisphere_votes(x, lateralisation, 80.0), np.sign(-lateralisation))
    assert contralateral_votes("left", [1, 1, -1, 0]) == 2 and contralateral_votes("right", [1, 1, -1, 0]) == 1
    with pytest.raises(ValueError, match="lateralisations"):
        hemisphere_votes(x, lateralisation[:3], 10.0)
    # Between hands: the estimates decide when both are confident, else the lateralisations.
    assert left_fist_further_right((30.0, 0.1), (-20.0, -0.1), 10.0)
    assert not left_fist_further_right((30.0, 0.1), (5.0, -0.1), 10.0)  # right fist near the midline: the ERD
    assert left_fist_further_right((3.0, -0.1), (5.0, 0.2), 10.0)


def test_an_uninformative_network_falls_back_to_the_baseline_everywhere() -> None:
    rng = np.random.default_rng(0)
    pairs = cohort(rng, lambda rng, side, n: rng.normal(0.0, 6.0, n))  # x near the midline, unrelated to the side
    fit = fit_threshold(pairs)
    x = np.concatenate([pair["trial_x_mm"] for pair in pairs])
    votes = np.concatenate([hemisphere_votes(pair["trial_x_mm"], pair["erd_trial_lateralisation"], fit["threshold_mm"])
                            for pair in pairs])
    baseline = np.sign(-np.concatenate([pair["erd_trial_lateralisation"] for pair in pairs]))
    # a few far-out coin flips may happen to be right, but (nearly) every trial takes the baseline's side
    assert np.mean(np.abs(x) < fit["threshold_mm"]) > 0.95 and np.mean(votes == baseline) > 0.95
    assert fit["threshold_mm"] > max(abs(pair["estimate_mm"][0]) for pair in pairs)  # every pair: the baseline's
    assert fit["trials_right"][-1] > fit["trials_right"][0] + 0.1 * fit["n_trials"]  # baseline alone >> network


def test_a_confident_right_network_is_kept_and_a_half_informative_one_is_gated_at_its_confidence() -> None:
    rng = np.random.default_rng(1)
    pairs = cohort(rng, lambda rng, side, n: side * rng.uniform(25.0, 45.0, n))
    confident = fit_threshold(pairs)
    assert confident["threshold_mm"] <= 25.0  # every trial and pair keeps the network's side
    chosen = confident["grid_mm"].index(confident["threshold_mm"])
    assert confident["trials_right"][chosen] == confident["n_trials"] > confident["trials_right"][-1]
    assert confident["pairs_right"][chosen] == confident["n_pairs"] == 20

    def half(rng, side, n):  # right and confident on half the trials, a coin near the midline on the rest
        sure = rng.random(n) < 0.5
        return np.where(sure, side * rng.uniform(20.0, 45.0, n), rng.choice([-1.0, 1.0], n) * rng.uniform(0, 15.0, n))

    gated = fit_threshold(cohort(rng, half, n_pairs=40))
    assert 10.0 <= gated["threshold_mm"] <= 22.0  # the coin flips go to the baseline, the sure trials stay
    chosen = gated["grid_mm"].index(gated["threshold_mm"])
    assert gated["trials_right"][chosen] > max(gated["trials_right"][0], gated["trials_right"][-1])
    assert gated["grid_mm"] == list(GRID_MM) and len(gated["pairs_right"]) == len(GRID_MM)
    with pytest.raises(ValueError, match="no simulated pair"):
        fit_threshold([{"hand": "left", "trial_x_mm": [], "erd_trial_lateralisation": []}])
