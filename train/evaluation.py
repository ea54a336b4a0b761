"""Evaluation protocols, each reporting the estimate beside the baselines, in the head and the cap frame.

Protocols
---------
- ``subject-grouped``: grouped k-fold over subjects (leave-one-subject-out when k >= n). No subject
  is ever in both a training and a test fold (:func:`check_grouped`). The headline.
- ``session split``: train on session-1 windows with the TMS labels, test on session-2 windows of
  the same subjects (the cap was re-placed in between).
- ``transfer``: train on all healthy subjects, test on all stroke patients.
- ``trial split``: ALWAYS labelled "identification": every session's windows are split into
  training and test trials, so the network can recognise the subject. Always run with the
  shuffled-label control (each subject gets another subject's hotspot): a small error under the
  control proves the split measures identification, not localisation.

The unit of estimation is a session (one cap placement, what the device runs): the estimator
(:mod:`train.estimator`: network, population prior, calibration, all fitted on the training subjects
only) gives each test session an estimate in the cap frame with a 90 % radius; the same session's cap
transform takes it to the head frame. A subject's error is the mean of its sessions' errors, and every
summary is over subjects. Errors are 3-D distances (mm, model frame: right-hemisphere subjects
mirrored into the left frame) to the true hotspot (simulated data) and to the noisy TMS label, in both
frames. Hyper-parameters are fixed (``train/configs/training.toml``), never tuned on test subjects.

Baselines (:mod:`train.baselines`) sit beside the estimate: population mean, FCC3h rule, ERD peak +
offset, the physics baseline (beamformer peak + learned shrinkage), and the source oracle. In the head
frame the estimate also knows the session's digitised cap (head size and how the cap sat), which the
head-frame population mean does not; ``cap_prior`` (the cap-frame population mean taken to the head frame
through the session's cap) shows how much of a head-frame gain that geometry alone gives. Skill is
``(population mean - estimate) / (population mean - oracle)``; the gain over the prior is the per-subject
``population mean error - estimate error`` with a 95 % bootstrap interval; coverage is the share of test
sessions whose true hotspot lies inside the 90 % radius.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from train.baselines import ErdPeakBaseline, PhysicsBaseline, anatomical_rule
from train.configs import TrainingConfig
from train.estimator import fit_estimator, labelled, session_label
from train.folds import Fold, check_grouped, grouped_folds
from train.metrics import (bootstrap_ci, percentile_interval, resampled_skill, skill, subject_resamples,
                           summarise_errors, wilson_interval)
from train.windows import SubjectWindows

METHODS = ("model", "population_mean", "cap_prior", "anatomical_rule", "erd_peak", "physics", "oracle")
TARGETS = ("truth", "label")
FRAMES = ("head", "cap")
FRAME = ("mm, model frame (right-hemisphere subjects mirrored into the left frame); 'head' = MNE head frame "
         "(TMS), 'cap' = the template cap as worn in the session")


@dataclass
class Baselines:
    """Per-session inputs of the ERD-peak and physics baselines (cap frame, model frame).

    Attributes
    ----------
    erd_peaks : mapping of (subject, session) to ndarray (3,)
    beamformer_peaks : mapping of (subject, session) to ndarray (3,)
    """

    erd_peaks: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    beamformer_peaks: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if n < 2 or not np.any(order == np.arange(n)):
            return order


def shuffled_targets(items: Sequence[SubjectWindows], seed: int = 0) -> dict[str, np.ndarray]:
    """Give each labelled subject another subject's label (a derangement; head frame, model frame)."""
    items = labelled(items)
    order = derangement(len(items), seed)
    return {item.subject: items[j].label for item, j in zip(items, order)}


@dataclass
class ProtocolResult:
    """Per-session estimates of the model and the baselines, and their summaries.

    Attributes
    ----------
    protocol : str
        E.g. ``"subject-grouped 5-fold"``, ``"trial split (identification)"``.
    frame : str
    records : list of dict
        One per test session: ``subject``, ``session``, ``group``, ``mirrored``, ``fold``, ``n_windows``,
        ``truth``/``label``/``target`` ({frame: (3,) or None}; ``target`` is what the protocol scores
        against as "label": the shuffled-label control's assigned label), ``estimates``
        ({method: {frame: (3,) or None}}) and ``model`` (network mean/sd, radius90_mm, localised, erd_db).
    summary : dict
        See :func:`summarise`.
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


def _subject_errors(records: Sequence[dict], method: str, frame: str, target: str) -> dict[str, float]:
    """Each subject's mean error (mm) over its sessions where both the estimate and the target exist."""
    per_subject: dict[str, list[float]] = {}
    for record in records:
        estimate, goal = record["estimates"][method].get(frame), record[target].get(frame)
        if estimate is not None and goal is not None:
            per_subject.setdefault(record["subject"], []).append(float(np.linalg.norm(np.subtract(estimate, goal))))
    return {subject: float(np.mean(values)) for subject, values in per_subject.items()}


def subject_errors(records: Sequence[dict], frame: str = "cap", target: str = "label") -> dict[str, float]:
    """Each subject's mean error (mm) of the estimate over its sessions (``target`` "label" = the scored label)."""
    return _subject_errors(records, "model", frame, "target" if target == "label" else target)


def common_subject_errors(records: Sequence[dict], methods: Sequence[str], frame: str, target: str = "truth"
                          ) -> dict[str, np.ndarray]:
    """Per subject that has all of ``methods``: their mean errors (mm), in the order of ``methods``.

    ``target`` "label" scores against the scored label (the record's ``target``). Keys are sorted subjects,
    so two results over the same subjects line up for a paired comparison.
    """
    per_method = [_subject_errors(records, m, frame, "target" if target == "label" else target) for m in methods]
    common = sorted(set.intersection(*(set(errors) for errors in per_method)))
    return {subject: np.array([errors[subject] for errors in per_method]) for subject in common}


SKILL_METHODS = ("model", "population_mean", "oracle")
"""What skill is computed from: the estimate, the reference baseline and the floor."""


def skill_with_ci(records: Sequence[dict], frame: str, target: str = "truth", method: str = "model"
                  ) -> tuple[float, list[float]]:
    """Skill of ``method`` and its 95 % subject-bootstrap interval (subjects with every term)."""
    errors = np.array(list(common_subject_errors(records, (method, *SKILL_METHODS[1:]), frame, target).values()))
    if not len(errors):
        return float("nan"), [float("nan"), float("nan")]
    point = skill(*errors.mean(axis=0))
    return point, list(percentile_interval(resampled_skill(errors, subject_resamples(len(errors)))))


def skill_difference(records_a: Sequence[dict], records_b: Sequence[dict], frame: str, paired: bool,
                     target: str = "truth") -> dict:
    """Skill of result a minus skill of result b, with a 95 % bootstrap interval of the difference.

    Parameters
    ----------
    records_a, records_b : sequence of dict
        Records of two protocol results (:class:`ProtocolResult`).
    frame : {"head", "cap"}
    paired : bool
        True when both results are of the same subjects (e.g. five vs nine channels of one cohort): the
        subjects both have are resampled together. False for two cohorts (e.g. a replication cohort):
        each is resampled on its own.
    target : {"truth", "label"}

    Returns
    -------
    dict
        ``difference`` and ``ci95`` (skill units), ``n_subjects`` ([a, b]).
    """
    errors_a = common_subject_errors(records_a, SKILL_METHODS, frame, target)
    errors_b = common_subject_errors(records_b, SKILL_METHODS, frame, target)
    if paired:
        common = sorted(set(errors_a) & set(errors_b))
        errors_a, errors_b = ({s: errors[s] for s in common} for errors in (errors_a, errors_b))
    a, b = (np.array(list(errors.values())) for errors in (errors_a, errors_b))
    if not len(a) or not len(b):
        return {"difference": float("nan"), "ci95": [float("nan"), float("nan")], "n_subjects": [len(a), len(b)]}
    resamples_a = subject_resamples(len(a))
    resamples_b = resamples_a if paired else subject_resamples(len(b), seed=1)
    samples = resampled_skill(a, resamples_a) - resampled_skill(b, resamples_b)
    return {"difference": skill(*a.mean(axis=0)) - skill(*b.mean(axis=0)), "ci95": list(percentile_interval(samples)),
            "n_subjects": [len(a), len(b)]}


def summarise(result: ProtocolResult) -> ProtocolResult:
    """Fill ``result.summary`` from its records.

    ``errors[frame][target][method]`` (:func:`train.metrics.summarise_errors` over subjects),
    ``skill[frame][target]`` (against the population mean, oracle as floor, on subjects where all three
    exist) with ``skill_ci95[frame][target]`` (its subject-bootstrap 95 % interval),
    ``gain_over_prior_mm[frame][target]`` (mean over subjects of population-mean error minus model error, with
    its 95 % bootstrap CI), ``coverage90`` (share of sessions whose truth / label lies inside the radius, per
    frame) with ``coverage90_ci95`` (its Wilson 95 % interval over sessions), ``localised`` (share of sessions
    the EEG localised), ``n_subjects``, ``n_sessions``. ``target`` "label" scores against each record's
    ``target`` (the assigned label).
    """
    summary: dict = {"errors": {}, "skill": {}, "skill_ci95": {}, "gain_over_prior_mm": {}, "coverage90": {},
                     "coverage90_ci95": {},
                     "n_subjects": len({r["subject"] for r in result.records}), "n_sessions": len(result.records)}
    for frame in FRAMES:
        for part in ("errors", "skill", "skill_ci95", "gain_over_prior_mm"):
            summary[part][frame] = {}
        for target in TARGETS:
            key = "target" if target == "label" else "truth"
            per_method = {m: _subject_errors(result.records, m, frame, key) for m in METHODS}
            summary["errors"][frame][target] = {m: summarise_errors(np.array(list(v.values())))
                                                for m, v in per_method.items()}
            summary["skill"][frame][target], summary["skill_ci95"][frame][target] = skill_with_ci(
                result.records, frame, target)
            paired = common_subject_errors(result.records, ("population_mean", "model"), frame, target)
            gains = np.array([prior - model for prior, model in paired.values()])
            low, high = bootstrap_ci(gains)
            summary["gain_over_prior_mm"][frame][target] = {
                "mean_mm": float(gains.mean()) if len(gains) else float("nan"), "ci95_mm": [low, high]}
        inside = {target: [float(np.linalg.norm(np.subtract(r["estimates"]["model"][frame], r[key][frame]))
                                 <= r["model"]["radius90_mm"])
                           for r in result.records if r[key].get(frame) is not None]
                  for target, key in (("truth", "truth"), ("label", "target"))}
        summary["coverage90"][frame] = {target: float(np.mean(v)) if v else float("nan") for target, v in inside.items()}
        summary["coverage90_ci95"][frame] = {target: wilson_interval(int(sum(v)), len(v))
                                             for target, v in inside.items()}
    summary["localised"] = (float(np.mean([r["model"]["localised"] for r in result.records]))
                            if result.records else float("nan"))
    result.summary = summary
    return result


def _frames(item: SubjectWindows, session: str, cap_point: np.ndarray | None) -> dict:
    """A cap-frame point (model frame) and its head-frame image through the session's cap."""
    if cap_point is None:
        return {"head": None, "cap": None}
    return {"head": item.to_head(cap_point, session), "cap": np.asarray(cap_point, dtype=float)}


class _FoldBaselines:
    """The baselines fitted on one fold's training subjects."""

    def __init__(self, train: Sequence[SubjectWindows], baselines: Baselines, targets: dict, prior_mean_cap: np.ndarray
                 ) -> None:
        train = labelled(train)
        heads = [np.asarray(targets.get(item.subject, item.label), dtype=float) for item in train]
        self.mean_head = np.mean(heads, axis=0)
        self.mean_cap = prior_mean_cap
        self.rule = anatomical_rule()
        sessions = [(item, s) for item in train for s in item.session_names()]
        labels = {(item.subject, s): session_label(item, s, targets) for item, s in sessions}
        erd = [(baselines.erd_peaks.get((i.subject, s)), labels[i.subject, s]) for i, s in sessions]
        self.erd = ErdPeakBaseline.fit([p for p, _ in erd], [label for _, label in erd])
        physics = [(baselines.beamformer_peaks[(i.subject, s)], labels[i.subject, s]) for i, s in sessions
                   if (i.subject, s) in baselines.beamformer_peaks]
        self.physics = (PhysicsBaseline.fit([p for p, _ in physics], [label for _, label in physics], prior_mean_cap)
                        if physics else None)
        self.baselines = baselines

    def estimates(self, item: SubjectWindows, session: str) -> dict:
        key = (item.subject, session)
        beam = self.baselines.beamformer_peaks.get(key)
        return {"population_mean": {"head": self.mean_head, "cap": self.mean_cap},
                "cap_prior": _frames(item, session, self.mean_cap),
                "anatomical_rule": _frames(item, session, self.rule),
                "erd_peak": _frames(item, session, self.erd.predict(self.baselines.erd_peaks.get(key))),
                "physics": _frames(item, session, None if self.physics is None else self.physics.predict(beam)),
                "oracle": {"head": item.oracle, "cap": item.to_cap(item.oracle, session)}}


def _records(estimator, test: SubjectWindows, fold_baselines: _FoldBaselines, fold: int,
             targets: dict | None = None) -> list[dict]:
    records = []
    for estimate in estimator.estimate(test):
        session = estimate.session
        target_head = (targets or {}).get(test.subject, test.label)
        records.append({
            "subject": test.subject, "session": session, "group": test.group, "mirrored": test.mirrored,
            "fold": fold, "n_windows": int(np.sum(test.sessions == session)),
            "truth": {"head": test.truth, "cap": test.to_cap(test.truth, session)},
            "label": {"head": test.label, "cap": test.to_cap(test.label, session)},
            "target": {"head": target_head, "cap": test.to_cap(target_head, session)},
            "estimates": {"model": _frames(test, session, estimate.point_mm),
                          **fold_baselines.estimates(test, session)},
            "model": {"mean_mm": estimate.mean_mm, "sd_mm": estimate.sd_mm, "peak_mm": estimate.peak_mm,
                      "radius90_mm": estimate.radius90_mm, "localised": estimate.localised,
                      "erd_db": estimate.erd_db}})
    return records


def _evaluate_fold(spec, train: Sequence[SubjectWindows], tests: Sequence[SubjectWindows], config: TrainingConfig,
                   seed: int, baselines: Baselines, fold: int, targets: dict | None = None) -> list[dict]:
    targets = targets or {}
    estimator = fit_estimator(spec, train, config, seed, targets)
    fold_baselines = _FoldBaselines(train, baselines, targets, estimator.prior.mean_mm)
    return [record for test in tests for record in _records(estimator, test, fold_baselines, fold, targets)]


def evaluate_grouped(spec, items: Sequence[SubjectWindows], config: TrainingConfig, k: int | None = 5, seed: int = 0,
                     baselines: Baselines | None = None, shuffle_labels: bool = False, progress=None) -> ProtocolResult:
    """Subject-grouped k-fold (LOSO when ``k`` is None): train on some subjects, test on the others.

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
    items : sequence of SubjectWindows
    config : TrainingConfig
    k : int or None
        Folds; None = leave-one-subject-out.
    seed : int
    baselines : Baselines, optional
        Per-session ERD and beamformer peaks for those baselines.
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
    suffix = " shuffled-label control" if shuffle_labels else ""
    folds = grouped_folds(list(by_id), k, seed) if len(by_id) >= 2 else []
    if not folds or min(len(fold.train) for fold in folds) < 2:
        result = ProtocolResult(protocol="subject-grouped" + suffix)
        result.notes.append("skipped: every fold needs at least two labelled training subjects with accepted windows")
        return summarise(result)
    name = "leave-one-subject-out" if len(folds) == len(items) else f"{len(folds)}-fold"
    result = ProtocolResult(protocol=f"subject-grouped {name}" + suffix)
    for index, fold in enumerate(folds):
        if progress:
            progress(f"fold {index + 1}/{len(folds)}")
        train = [by_id[s] for s in fold.train]
        result.folds.append(Fold(train=tuple(item.subject for item in train), test=fold.test))
        targets = shuffled_targets(train, seed + index) if shuffle_labels else {}
        result.records += _evaluate_fold(spec, train, [by_id[s] for s in fold.test], config, seed + index,
                                         baselines or Baselines(), index, targets)
    if shuffle_labels:
        result.notes.append("control: training labels deranged among training subjects; scored against true labels")
    return summarise(result)


def evaluate_transfer(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                      baselines: Baselines | None = None, source: str = "healthy", target: str = "stroke"
                      ) -> ProtocolResult:
    """Train on every ``source``-group subject, test on every ``target``-group subject."""
    items = labelled(items)
    train = [item for item in items if item.group == source]
    test_items = [item for item in items if item.group == target]
    result = ProtocolResult(protocol=f"transfer {source} -> {target} (subject-grouped)")
    if len(train) < 3 or not test_items:
        result.notes.append(f"skipped: needs labelled {source} (at least three) and {target} subjects")
        return summarise(result)
    result.folds.append(Fold(tuple(i.subject for i in train), tuple(i.subject for i in test_items)))
    check_grouped(result.folds, [i.subject for i in test_items])
    result.records = _evaluate_fold(spec, train, test_items, config, seed, baselines or Baselines(), 0)
    return summarise(result)


def evaluate_session_split(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                           baselines: Baselines | None = None, train_session: str | None = None) -> ProtocolResult:
    """Train on the first session's windows of every subject, test on their later sessions.

    The same subjects are in training and test (with a re-placed cap), so this is within-subject;
    it shows how much of the trial-split result survives a new recording session.
    """
    items = labelled(items)
    sessions = sorted({str(s) for item in items for s in item.sessions})
    result = ProtocolResult(protocol="session split (same subjects, new session; within-subject)")
    if len(sessions) < 2 or len(items) < 3:
        result.notes.append("skipped: the dataset has a single session (or fewer than three subjects)")
        return summarise(result)
    first = train_session or sessions[0]
    train, test_items = [], []
    for item in items:
        in_first = item.sessions == first
        if in_first.any() and (~in_first).any():
            train.append(item.subset(in_first))
            test_items.append(item.subset(~in_first))
    result.records = _evaluate_fold(spec, train, test_items, config, seed, baselines or Baselines(), 0)
    result.notes.append(f"trained on {first}, tested on {', '.join(s for s in sessions if s != first)}")
    return summarise(result)


def trial_split(items: Sequence[SubjectWindows], test_fraction: float = 0.2, seed: int = 0
                ) -> tuple[list[SubjectWindows], list[SubjectWindows]]:
    """Split every session's windows into training and test trials (the papers' likely protocol)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for item in labelled(items):
        mask = np.zeros(len(item.inputs), dtype=bool)
        for session in item.session_names():
            rows = np.flatnonzero(item.sessions == session)
            if len(rows) >= 2:
                mask[rng.choice(rows, size=max(1, int(round(test_fraction * len(rows)))), replace=False)] = True
        if mask.any() and (~mask).any():
            train.append(item.subset(~mask))
            test.append(item.subset(mask))
    return train, test


def evaluate_trial_split(spec, items: Sequence[SubjectWindows], config: TrainingConfig, seed: int = 0,
                         baselines: Baselines | None = None, shuffle_labels: bool = False,
                         test_fraction: float = 0.2) -> ProtocolResult:
    """The papers' trial split, labelled "identification"; optionally the shuffled-label control.

    With ``shuffle_labels`` every subject's windows get another subject's label for training AND
    scoring (errors against "label" are against that assigned label): if the error stays small, the
    network identifies subjects rather than localising hotspots.
    """
    train, test_items = trial_split(items, test_fraction, seed)
    protocol = "trial split (identification)" + (" shuffled-label control" if shuffle_labels else "")
    result = ProtocolResult(protocol=protocol)
    if len(train) < 3:
        result.notes.append("skipped: needs at least three labelled subjects with two or more accepted windows")
        return summarise(result)
    targets = shuffled_targets(train, seed) if shuffle_labels else {}
    result.records = _evaluate_fold(spec, train, test_items, config, seed, baselines or Baselines(), 0, targets)
    result = summarise(result)
    result.notes.append("identification: the same subjects' trials are in training and test")
    if shuffle_labels:
        result.notes.append("control: each subject trained and scored with another subject's label")
    return result
