"""Metric functions and grouped folds on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from train.evaluation import Fold, check_grouped, derangement, grouped_folds
from train.metrics import aggregate_trials, bootstrap_ci, euclidean_errors, skill, summarise_errors


def test_euclidean_errors_on_a_3_4_5_triangle():
    predicted = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 12.0]])
    target = np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    assert euclidean_errors(predicted, target) == pytest.approx([5.0, 13.0])
    assert euclidean_errors([1.0, 2.0, 2.0], [0.0, 0.0, 0.0]) == pytest.approx([3.0])


def test_aggregate_trials_takes_the_per_axis_median_and_median_distance():
    predictions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    estimate, dispersion = aggregate_trials(predictions)
    assert estimate == pytest.approx([1.5, 0.0, 0.0])
    assert dispersion == pytest.approx(np.median([1.5, 0.5, 0.5, 98.5]))
    with pytest.raises(ValueError):
        aggregate_trials(np.zeros((0, 3)))


def test_summarise_errors_on_known_values():
    summary = summarise_errors(np.array([5.0, 10.0, 15.0, 30.0]))
    assert summary["n"] == 4
    assert summary["mean_mm"] == pytest.approx(15.0)
    assert summary["sd_mm"] == pytest.approx(np.std([5, 10, 15, 30], ddof=1))
    assert summary["median_mm"] == pytest.approx(12.5)
    assert summary["within_10mm"] == pytest.approx(0.5)
    assert summary["within_20mm"] == pytest.approx(0.75)
    low, high = summary["ci95_mm"]
    assert 5.0 <= low < 15.0 < high <= 30.0


def test_bootstrap_ci_of_constant_values_is_the_constant_and_empty_is_nan():
    assert bootstrap_ci(np.full(10, 7.0)) == pytest.approx((7.0, 7.0))
    assert all(np.isnan(bootstrap_ci(np.array([]))))
    assert summarise_errors(np.array([]))["n"] == 0


def test_skill_is_one_at_the_oracle_zero_at_the_baseline_and_undefined_without_a_gap():
    assert skill(model_error=4.0, baseline_error=10.0, oracle_error=4.0) == pytest.approx(1.0)
    assert skill(10.0, 10.0, 4.0) == pytest.approx(0.0)
    assert skill(7.0, 10.0, 4.0) == pytest.approx(0.5)
    assert skill(13.0, 10.0, 4.0) == pytest.approx(-0.5)
    assert np.isnan(skill(5.0, 4.0, 4.0))


@pytest.mark.parametrize("k", [2, 5, None])
def test_grouped_folds_never_share_a_subject(k):
    subjects = [f"sub-{i:03d}" for i in range(13)]
    folds = grouped_folds(subjects, k, seed=3)
    assert len(folds) == (13 if k is None else k)
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert set(fold.train) | set(fold.test) == set(subjects)
    assert sorted(s for fold in folds for s in fold.test) == sorted(subjects)


def test_check_grouped_rejects_a_leaking_fold():
    with pytest.raises(AssertionError):
        check_grouped([Fold(train=("a", "b"), test=("b",)), Fold(train=("b",), test=("a",))], ["a", "b"])


def test_derangement_has_no_fixed_point():
    for seed in range(20):
        order = derangement(5, seed)
        assert sorted(order) == list(range(5))
        assert not np.any(order == np.arange(5))
