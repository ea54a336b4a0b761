"""``invoke select-epochs``: choose the training length on a development cohort, never on test subjects.

The number of epochs is the one training setting that visibly trades under- against over-fitting.
It is chosen here by subject-grouped k-fold on a *development* cohort (a simulated cohort drawn
with another seed, so none of its subjects is in the evaluation cohort), scored against the TMS
labels, which is all a clinic could score against. The choice follows the one-standard-error rule
(Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, 7.10): the fewest epochs whose mean
error is within one standard error (of the per-subject paired difference) of the best candidate's, so
that a difference the development cohort cannot resolve does not buy a longer training. The winner is
written into ``train/configs/training.toml`` by hand, with the result file cited beside it; the
evaluation cohort is never looked at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from train import workspace
from train.configs import TrainingConfig, load_training_config
from train.dataset import Dataset
from train.evaluation import evaluate_grouped, subject_errors
from train.reproduce import Inputs


def select_epochs(dataset: Dataset, candidates: Sequence[int], level: str = "psd", channel_set: str = "nine",
                  folds: int = 5, seed: int = 0, training: TrainingConfig | None = None) -> dict:
    """Score each candidate epoch count by subject-grouped k-fold on ``dataset`` and pick the best.

    Parameters
    ----------
    dataset : Dataset
        The development cohort (never the evaluation cohort).
    candidates : sequence of int
        Epoch counts to try.
    level, channel_set : str
        The input level and channel set the choice is made for.
    folds : int
        Grouped folds per group.
    seed : int
    training : TrainingConfig, optional
        Everything else (default: ``training.toml``).

    Returns
    -------
    dict
        ``errors_mm[group][epochs]`` (mean error vs TMS label over subjects; NaN for a group too small
        for grouped folds), ``mean_mm[epochs]`` (mean over the scored groups), ``scored_groups``,
        ``best`` (the smallest mean), ``standard_error_mm[epochs]`` (of the paired per-subject difference
        to the best) and ``selected`` (the fewest epochs within one standard error of the best).
    """
    if not candidates or any(int(epochs) < 1 for epochs in candidates):
        raise HotspotError("epoch candidates must be integers >= 1", ErrorCode.BAD_ARGUMENT)
    training = training or load_training_config()
    inputs = Inputs(dataset, training)
    items = inputs.windows(level, channel_set)
    groups = sorted({item.group for item in items})
    errors: dict[str, dict[int, float]] = {}
    per_subject: dict[int, dict[str, float]] = {}
    spec = inputs.spec(level, channel_set)
    setting = "source_epochs" if level == "source" else "epochs"
    for group in groups:
        members = [item for item in items if item.group == group]
        errors[group] = {}
        for epochs in sorted({int(c) for c in candidates}):
            result = evaluate_grouped(spec, members, training.replace(fit={setting: epochs}), folds, seed)
            errors[group][epochs] = float(result.summary["errors"]["cap"]["label"]["model"]["mean_mm"])
            per_subject.setdefault(epochs, {}).update(subject_errors(result.records))
    scored = [group for group in groups if all(np.isfinite(v) for v in errors[group].values())]
    if not scored:
        raise HotspotError("no group has enough labelled subjects for grouped folds; use a larger development cohort",
                           ErrorCode.BAD_ARGUMENT)
    mean = {epochs: float(np.mean([errors[group][epochs] for group in scored])) for epochs in errors[scored[0]]}
    best = min(sorted(mean), key=lambda epochs: mean[epochs])
    subjects = sorted(per_subject[best])
    standard_error = {}
    for epochs in mean:
        differences = np.array([per_subject[epochs][s] - per_subject[best][s] for s in subjects
                                if s in per_subject[epochs]])
        standard_error[epochs] = float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 \
            else 0.0
    selected = min(epochs for epochs in mean if mean[epochs] <= mean[best] + standard_error[epochs])
    return {"dataset": dataset.name, "data_hash": inputs.data_hash, "level": level,
            "channel_set": channel_set, "protocol": f"subject-grouped {folds}-fold on the development cohort",
            "target": "TMS label (what a clinic can measure)", "setting": f"[fit] {setting}",
            "frame": "cap frame, mm, model frame (mirrored)",
            "errors_mm": errors, "scored_groups": scored, "mean_mm": mean, "best": best,
            "standard_error_mm": standard_error, "rule": "fewest epochs within one standard error of the best",
            "selected": selected}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke select-epochs``."""
    parser = ArgumentParser(prog="invoke select-epochs", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(workspace.DEVELOPMENT_COHORT),
                        help=f"development cohort folder, not the evaluation cohort ({workspace.DEVELOPMENT_COHORT})")
    parser.add_argument("--out", default=str(workspace.REPORTS / "select-epochs.json"),
                        help=f"JSON file for the scores ({workspace.REPORTS / 'select-epochs.json'})")
    parser.add_argument("--candidates", default="3,5,10,20,40", help="comma-separated epoch counts")
    parser.add_argument("--level", default="psd")
    parser.add_argument("--channels", default="nine")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        candidates = [int(text) for text in args.candidates.split(",")]
    except ValueError:
        raise HotspotError(f"--candidates must be comma-separated integers, got {args.candidates!r}",
                           ErrorCode.BAD_ARGUMENT) from None
    data = Path(args.data)
    if not data.exists():
        raise HotspotError(f"dataset {data} not found; simulate a development cohort with another seed first",
                           ErrorCode.BAD_FILE)
    from train.io import load_dataset

    result = select_epochs(load_dataset(data), candidates, args.level, args.channels, args.folds)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for epochs, value in result["mean_mm"].items():
        print(f"{epochs:4d} epochs: {value:.2f} mm mean grouped error vs label")
    print(f"selected: {result['selected']} epochs (wrote {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
