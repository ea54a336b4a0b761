"""Subject-grouped folds: no subject is ever in both a training and a test set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """One train/test partition by subject identifier."""

    train: tuple[str, ...]
    test: tuple[str, ...]


def grouped_folds(subjects: Sequence[str], k: int | None, seed: int = 0) -> list[Fold]:
    """Split subjects into ``k`` groups (leave-one-subject-out when ``k`` is None or >= n).

    Parameters
    ----------
    subjects : sequence of str
        Subject identifiers (unique).
    k : int or None
        Number of folds (>= 2).
    seed : int
        Seed of the subject shuffle.

    Returns
    -------
    list of Fold
        Disjoint test groups covering every subject once.
    """
    subjects = list(subjects)
    if len(set(subjects)) != len(subjects):
        raise ValueError("subject identifiers must be unique")
    if len(subjects) < 2:
        raise ValueError("grouped evaluation needs at least two subjects")
    n_folds = len(subjects) if k is None or k >= len(subjects) else int(k)
    if n_folds < 2:
        raise ValueError("grouped evaluation needs k >= 2")
    order = np.random.default_rng(seed).permutation(len(subjects))
    groups = np.array_split(order, n_folds)
    folds = []
    for group in groups:
        test = tuple(sorted(subjects[i] for i in group))
        folds.append(Fold(train=tuple(sorted(set(subjects) - set(test))), test=test))
    check_grouped(folds, subjects)
    return folds


def check_grouped(folds: Sequence[Fold], subjects: Sequence[str]) -> None:
    """Raise AssertionError unless no subject is in both train and test of any fold and every
    subject is tested exactly once."""
    tested: list[str] = []
    for fold in folds:
        overlap = set(fold.train) & set(fold.test)
        assert not overlap, f"subject(s) {sorted(overlap)} in both train and test"
        tested += fold.test
    assert sorted(tested) == sorted(subjects), "every subject must be tested exactly once"
