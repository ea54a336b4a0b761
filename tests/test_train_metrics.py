"""Metric functions and grouped folds on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from train.evaluation import (Fold, check_grouped, derangement, grouped_folds, skill_difference, skill_with_ci)
from train.metrics import (aggregate_trials, bootstrap_ci, euclidean_errors, resampled_skill, skill, subject_resamples,
                           summarise_errors, wilson_interval)


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


def test_resampled_skill_is_skill_on_each_resample_and_nan_without_a_gap():
    errors = np.array([[4.0, 10.0, 4.0], [10.0, 10.0, 4.0], [6.0, 6.0, 6.0]])
    resamples = np.array([[0, 1], [0, 0], [2, 2]])
    assert resampled_skill(errors, resamples)[:2] == pytest.approx([0.5, 1.0])
    assert np.isnan(resampled_skill(errors, resamples)[2])
    assert subject_resamples(5, n_boot=7).shape == (7, 5)
    np.testing.assert_array_equal(subject_resamples(5, seed=3), subject_resamples(5, seed=3))


def test_wilson_interval_on_known_values():
    low, high = wilson_interval(38, 45)  # 0.844: the interval of a share near 0.9 over 45 sessions
    assert low == pytest.approx(0.7121, abs=1e-3) and high == pytest.approx(0.9225, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))


def _records(model_mm: list[float], prior_mm: float, oracle_mm: float, prefix: str = "sub") -> list[dict]:
    """One session per subject; each method's estimate lies its error away from the truth along x."""
    def at(error):
        return {"cap": np.array([error, 0.0, 0.0])}
    return [{"subject": f"{prefix}-{i}", "truth": {"cap": np.zeros(3)},
             "estimates": {"model": at(m), "population_mean": at(prior_mm), "oracle": at(oracle_mm)}}
            for i, m in enumerate(model_mm)]


def test_skill_interval_brackets_the_skill_and_collapses_for_identical_subjects():
    records = _records([5.0, 6.0, 7.0, 8.0, 9.0, 4.0], prior_mm=10.0, oracle_mm=4.0)
    point, (low, high) = skill_with_ci(records, "cap")
    assert point == pytest.approx(skill(6.5, 10.0, 4.0))
    assert low < point < high
    point, (low, high) = skill_with_ci(_records([7.0] * 6, 10.0, 4.0), "cap")
    assert point == low == high == pytest.approx(0.5)


def test_skill_difference_paired_cancels_shared_subjects_and_independent_does_not():
    a = _records([5.0, 6.0, 7.0, 8.0, 9.0, 4.0], prior_mm=10.0, oracle_mm=4.0)
    paired = skill_difference(a, a, "cap", paired=True)
    assert paired["difference"] == pytest.approx(0.0) and paired["ci95"] == pytest.approx([0.0, 0.0])
    independent = skill_difference(_records([5.0, 6.0, 7.0, 8.0, 9.0, 4.0], 10.0, 4.0, "other"), a, "cap",
                                   paired=False)
    assert independent["difference"] == pytest.approx(0.0) and independent["ci95"][0] < 0 < independent["ci95"][1]
    assert independent["n_subjects"] == [6, 6]
    better = skill_difference(_records([4.0] * 6, 10.0, 4.0), a, "cap", paired=True)
    assert better["difference"] == pytest.approx(1.0 - skill(6.5, 10.0, 4.0)) and better["ci95"][0] > 0


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
