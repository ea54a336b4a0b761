"""Evaluation protocols, each reporting the model beside the baselines.

Protocols
---------
- ``subject-grouped``: grouped k-fold over subjects (leave-one-subject-out when k >= n). No subject
  is ever in both a training and a test fold (:func:`check_grouped`). The headline.
- ``session split``: train on session-1 windows with the TMS labels, test on session-2 windows of
  the same subjects (the cap was re-placed in between).
- ``transfer``: train on all healthy subjects, test on all stroke patients.
- ``trial split``: ALWAYS labelled "identification": every subject's windows are split into
  training and test trials, so the network can recognise the subject. Always run with the
  shuffled-label control (each subject gets another subject's hotspot): a small error under the
  control proves the split measures identification, not localisation.

Each test subject's estimate is the median of its window predictions; errors are 3-D distances
(head frame, mm, model frame) to the true hotspot (simulated data) and to the noisy TMS label.
Hyper-parameters are fixed (``train/configs/training.toml``), never tuned on test subjects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from train.baselines import ErdPeakBaseline, anatomical_rule, population_mean
from train.configs import TrainingConfig
from train.metrics import aggregate_trials, euclidean_errors, skill, summarise_errors
from train.model_dir import predict_windows
from train.training import fit_network, labelled, stack_training_data
from train.windows import SubjectWindows

METHODS = ("model", "population_mean", "anatomical_rule", "erd_peak", "oracle")
TARGETS = ("truth", "label")
FRAME = "head frame, mm (right-hemisphere subjects mirrored into the left frame)"


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


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if n < 2 or not np.any(order == np.arange(n)):
            return order


def shuffled_targets(items: Sequence[SubjectWindows], seed: int = 0) -> dict[str, np.ndarray]:
    """Give each labelled subject another subject's label (a derangement)."""
    items = labelled(items)
    order = derangement(len(items), seed)
    return {item.subject: items[j].label for item, j in zip(items, order)}


@dataclass
class ProtocolResult:
    """Per-subject estimates of the model and the baselines, and their summaries.

    Attributes
    ----------
    protocol : str
        E.g. ``"subject-grouped 5-fold"``, ``"trial split (identification)"``.
    frame : str
    records : list of dict
        One per test subject: ``subject``, ``group``, ``mirrored``, ``label``, ``truth``, ``estimates``
        (method -> (3,) or None), ``dispersion_mm``, ``n_windows``, ``fold``.
    summary : dict
        ``errors[target][method]`` (see :func:`train.metrics.summarise_errors`), ``skill[target]``.
    notes : list of str
    folds : list of Fold
        The subject partitions actually trained and tested (grouped protocols and transfer).
    """

    protocol: str
    frame: str = FRAME
    records: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    folds: list[Fold] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        def clean(value):
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, np.generic):
                return value.item()
            return value

        return clean({"protocol": self.protocol, "frame": self.frame, "summary": self.summary,
                      "notes": self.notes, "records": self.records,
                      "folds": [{"train": list(f.train), "test": list(f.test)} for f in self.folds]})


def summarise(result: ProtocolResult, target_key: str | None = None) -> ProtocolResult:
    """Fill ``result.summary`` from its records.

    For each target (``truth``, ``label``) and method, errors are summarised over the subjects where
    both exist. Skill is against the population mean with the oracle as the floor.
    ``target_key`` overrides the label target (the shuffled-label control scores against the
    label it was trained on, stored in each record under that key).
    """
    errors: dict = {}
    per_subject: dict = {}
    for target in TARGETS:
        key = target_key if (target == "label" and target_key) else target
        errors[target], per_subject[target] = {}, {}
        for method in METHODS:
            values = [float(euclidean_errors(r["estimates"][method], r[key])[0]) for r in result.records
                      if r.get(key) is not None and r["estimates"].get(method) is not None]
            errors[target][method] = summarise_errors(np.array(values))
    skills = {}
    for target in TARGETS:
        key = target_key if (target == "label" and target_key) else target
        usable = [r for r in result.records if r.get(key) is not None
                  and all(r["estimates"].get(m) is not None for m in ("model", "population_mean", "oracle"))]
        if not usable:
            skills[target] = float("nan")
            continue
        mean_error = {m: float(np.mean([euclidean_errors(r["estimates"][m], r[key])[0] for r in usable]))
                      for m in ("model", "population_mean", "oracle")}
        skills[target] = skill(mean_error["model"], mean_error["population_mean"], mean_error["oracle"])
    result.summary = {"errors": errors, "skill_vs_population_mean": skills,
                      "n_subjects": len(result.records)}
    return result


def _baseline_estimates(train: Sequence[SubjectWindows], test: SubjectWindows, train_targets: dict,
                        peaks: dict[str, np.ndarray | None], rule: np.ndarray) -> dict:
    labels = [train_targets.get(item.subject, item.label) for item in labelled(train)]
    erd = ErdPeakBaseline.fit([peaks.get(item.subject) for item in labelled(train)], labels)
    return {"population_mean": population_mean(np.array(labels)), "anatomical_rule": rule,
            "erd_peak": erd.predict(peaks.get(test.subject)), "oracle": test.oracle}


def _record(test: SubjectWindows, predictions: np.ndarray, baselines: dict, fold: int, **extra) -> dict:
    estimate, dispersion = aggregate_trials(predictions)
    return {"subject": test.subject, "group": test.group, "mirrored": test.mirrored,
            "label": test.label, "truth": test.truth, "estimates": {"model": estimate, **baselines},
            "dispersion_mm": dispersion, "n_windows": int(len(predictions)), "fold": fold, **extra}


def _fit(items: Sequence[SubjectWindows], config: TrainingConfig, seed: int, targets: dict | None = None):
    inputs, outputs = stack_training_data(items, targets)
    return fit_network(inputs, outputs, config, seed)


def evaluate_grouped(items: Sequence[SubjectWindows], config: TrainingConfig, k: int | None = 5, seed: int = 0,
                     peaks: dict | None = None, shuffle_labels: bool = False, progress=None) -> ProtocolResult:
    """Subject-grouped k-fold (LOSO when ``k`` is None): train on some subjects, test on the others.

    Parameters
    ----------
    items : sequence of SubjectWindows
    config : TrainingConfig
    k : int or None
        Folds; None = leave-one-subject-out.
    seed : int
    peaks : dict, optional
        Subject -> ERD peak (model frame) for the ERD baseline.
    shuffle_labels : bool
        Control: train on a derangement of the training subjects' labels; test against the true
        labels. It should do no better than the population-mean baseline.
    progress : callable, optional
        Called with a short description before each fold (e.g. a tqdm bar's ``set_description``).

    Returns
    -------
    ProtocolResult
    """
    items = labelled(items)
    by_id = {item.subject: item for item in items}
    if len(by_id) < 2:
        result = ProtocolResult(protocol="subject-grouped" + (" shuffled-label control" if shuffle_labels else ""))
        result.notes.append("skipped: needs at least two labelled subjects with accepted windows")
        return summarise(result)
    folds = grouped_folds(list(by_id), k, seed)
    name = "leave-one-subject-out" if len(folds) == len(items) else f"{len(folds)}-fold"
    result = ProtocolResult(protocol=f"subject-grouped {name}" + (" shuffled-label control" if shuffle_labels else ""))
    rule = anatomical_rule()
    for index, fold in enumerate(folds):
        if progress:
            progress(f"fold {index + 1}/{len(folds)}")
        train = [by_id[s] for s in fold.train]
        result.folds.append(Fold(train=tuple(item.subject for item in train), test=fold.test))
        targets = shuffled_targets(train, seed + index) if shuffle_labels else {}
        model, normalisation = _fit(train, config, seed + index, targets)
        for subject in fold.test:
            test = by_id[subject]
            predictions = predict_windows(model, normalisation, test.inputs)
            result.records.append(_record(test, predictions, _baseline_estimates(train, test, targets, peaks or {}, rule),
                                          index))
    if shuffle_labels:
        result.notes.append("control: training labels deranged among training subjects; scored against true labels")
    return summarise(result)


def evaluate_transfer(items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                      peaks: dict | None = None, source: str = "healthy", target: str = "stroke") -> ProtocolResult:
    """Train on every ``source``-group subject, test on every ``target``-group subject."""
    items = labelled(items)
    train = [item for item in items if item.group == source]
    test_items = [item for item in items if item.group == target]
    result = ProtocolResult(protocol=f"transfer {source} -> {target} (subject-grouped)")
    if not train or not test_items:
        result.notes.append(f"skipped: needs labelled {source} and {target} subjects")
        return summarise(result)
    result.folds.append(Fold(tuple(i.subject for i in train), tuple(i.subject for i in test_items)))
    check_grouped(result.folds, [i.subject for i in test_items])
    model, normalisation = _fit(train, config, seed)
    rule = anatomical_rule()
    for test in test_items:
        predictions = predict_windows(model, normalisation, test.inputs)
        result.records.append(_record(test, predictions, _baseline_estimates(train, test, {}, peaks or {}, rule), 0))
    return summarise(result)


def evaluate_session_split(items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                           peaks: dict | None = None, train_session: str | None = None) -> ProtocolResult:
    """Train on the first session's windows of every subject, test on their later sessions.

    The same subjects are in training and test (with a re-placed cap), so this is within-subject;
    it shows how much of the trial-split result survives a new recording session.
    """
    items = labelled(items)
    sessions = sorted({str(s) for item in items for s in item.sessions})
    result = ProtocolResult(protocol="session split (same subjects, new session; within-subject)")
    if len(sessions) < 2 or len(items) < 1:
        result.notes.append("skipped: the dataset has a single session")
        return summarise(result)
    first = train_session or sessions[0]
    train, test_items = [], []
    for item in items:
        in_first = item.sessions == first
        if in_first.any() and (~in_first).any():
            train.append(_subset(item, in_first))
            test_items.append(_subset(item, ~in_first))
    model, normalisation = _fit(train, config, seed)
    rule = anatomical_rule()
    for test in test_items:
        predictions = predict_windows(model, normalisation, test.inputs)
        result.records.append(_record(test, predictions, _baseline_estimates(train, test, {}, peaks or {}, rule), 0))
    result.notes.append(f"trained on {first}, tested on {', '.join(s for s in sessions if s != first)}")
    return summarise(result)


def _subset(item: SubjectWindows, mask: np.ndarray) -> SubjectWindows:
    return SubjectWindows(subject=item.subject, group=item.group, hand=item.hand, mirrored=item.mirrored,
                          inputs=item.inputs[mask], sessions=item.sessions[mask], label=item.label,
                          truth=item.truth, oracle=item.oracle)


def trial_split(items: Sequence[SubjectWindows], test_fraction: float = 0.2, seed: int = 0
                ) -> tuple[list[SubjectWindows], list[SubjectWindows]]:
    """Split every subject's windows into training and test trials (the papers' likely protocol)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for item in labelled(items):
        n = len(item.inputs)
        if n < 2:
            continue
        n_test = max(1, int(round(test_fraction * n)))
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=n_test, replace=False)] = True
        train.append(_subset(item, ~mask))
        test.append(_subset(item, mask))
    return train, test


def evaluate_trial_split(items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                         peaks: dict | None = None, shuffle_labels: bool = False,
                         test_fraction: float = 0.2) -> ProtocolResult:
    """The papers' trial split, labelled "identification"; optionally the shuffled-label control.

    With ``shuffle_labels`` every subject's windows get another subject's label for training AND
    scoring (``summary.errors.label`` is against that assigned label): if the error stays small,
    the network identifies subjects rather than localising hotspots.
    """
    train, test_items = trial_split(items, test_fraction, seed)
    protocol = "trial split (identification)" + (" shuffled-label control" if shuffle_labels else "")
    result = ProtocolResult(protocol=protocol)
    if len(train) < 2:
        result.notes.append("skipped: needs at least two labelled subjects with two or more accepted windows")
        result = summarise(result)
        result.summary["mean_window_error_mm"] = float("nan")
        return result
    targets = shuffled_targets(train, seed) if shuffle_labels else {}
    model, normalisation = _fit(train, config, seed, targets)
    rule = anatomical_rule()
    window_errors = []
    for test in test_items:
        predictions = predict_windows(model, normalisation, test.inputs)
        assigned = targets.get(test.subject, test.label)
        window_errors.append(euclidean_errors(predictions, assigned))
        result.records.append(_record(test, predictions, _baseline_estimates(train, test, targets, peaks or {}, rule),
                                      0, assigned_label=assigned))
    result = summarise(result, target_key="assigned_label")
    all_window_errors = np.concatenate(window_errors) if window_errors else np.zeros(0)
    result.summary["mean_window_error_mm"] = float(all_window_errors.mean()) if len(all_window_errors) else float("nan")
    result.notes.append("identification: the same subjects' trials are in training and test")
    if shuffle_labels:
        result.notes.append("control: each subject trained and scored with another subject's label")
    return result
