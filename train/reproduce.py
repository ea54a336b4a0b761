"""``invoke reproduce``: the paper's table under the trial split and under subject-grouped evaluation.

For every input level x group x channel set (``train/configs/reproduce.toml``) the same fixed
network is evaluated

- under the paper's trial split, labelled "identification", with its shuffled-label control, and
- under subject-grouped k-fold (no subject in both training and test),

side by side with the numbers of Choi et al. 2025 and with the baselines (population mean, FCC3h rule,
ERD peak, the physics baseline, the source oracle), in the head and the cap frame. The headline
configuration additionally gets leave-one-subject-out, its shuffled-label control, the session split
and healthy -> stroke transfer. Outputs in ``--out``: ``results.json``, ``table.md``,
``scalp_map_<group>.png`` (true vs predicted hotspots per subject) and ``error_distributions.png``
(rendered by :mod:`train.reproduction_report`; this module configures and runs).
Computed input windows are cached in ``<out>/cache`` (or ``--cache``). The channel sets named in
``repair_bad_channels`` (the all-channel rows) get each recording's session-bad channels
interpolated first (:mod:`train.bad_channels`); the device's 9 and 5 channel sets keep its rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.source import power_drop_peak
from edge.validation import REQUIRED, Table, check_option, read_toml, validate_type
from train import workspace
from train.baselines import erd_peaks
from train.configs import CONFIG_DIR, TrainingConfig, load_channel_sets, load_training_config
from train.dataset import Dataset
from train.estimator import session_inputs
from train.evaluation import (Baselines, evaluate_grouped, evaluate_session_split, evaluate_transfer,
                              evaluate_trial_split)
from train.reproduction_report import markdown_table, write_figures
from train.training import LEVELS, channel_list, dataset_sfreq
from train.windows import dataset_windows, make_spec

REPRODUCE_FILE = CONFIG_DIR / "reproduce.toml"
GROUPS = ("healthy", "stroke")


@dataclass(frozen=True)
class ReproduceConfig:
    """The grid and protocol settings of the reproduction (see ``reproduce.toml``)."""

    levels: tuple[str, ...]
    groups: tuple[str, ...]
    channel_sets: tuple[str, ...]
    grouped_folds: int
    trial_test_fraction: float
    seed: int
    headline_level: str
    headline_channel_set: str
    repair_channel_sets: tuple[str, ...] = ()
    paper: tuple[dict, ...] = ()
    training: dict = field(default_factory=dict)


def load_reproduce_config(path: Path | str | None = None, small: bool = False) -> ReproduceConfig:
    """Read ``reproduce.toml`` (or ``path``); ``small`` applies its ``[small]`` table.

    Raises
    ------
    HotspotError
        On unknown levels, groups or channel sets, or bad numbers.
    """
    source = Path(path) if path else REPRODUCE_FILE
    data = read_toml(source, "reproduce configuration", f"compare with {REPRODUCE_FILE}")
    top = Table(data, "top level", source)
    top.check_known(("levels", "groups", "channel_sets", "grouped_folds", "trial_test_fraction", "seed", "headline",
                     "repair_bad_channels", "paper", "training", "small"))
    training = dict(top.get("training", dict, {}))
    if small:
        reduced = dict(top.get("small", dict, {}))
        training = {**training, **validate_type(reduced.pop("training", {}), dict, "[small] training", source)}
        top = Table({**data, **reduced}, "top level", source)
    sets = load_channel_sets()

    def names(key: str, options, default=REQUIRED) -> tuple[str, ...]:
        values = top.get(key, list, default, "a list of names")
        return tuple(check_option(value, options, f"{key}[{i}]", source) for i, value in enumerate(values))

    headline = top.table("headline")
    config = ReproduceConfig(
        levels=names("levels", LEVELS), groups=names("groups", GROUPS), channel_sets=names("channel_sets", sets),
        grouped_folds=top.integer("grouped_folds", REQUIRED, 2, 1000),
        trial_test_fraction=top.number("trial_test_fraction", REQUIRED, 0.0, 1.0),
        seed=top.get("seed", int, 0), headline_level=headline.string("level", REQUIRED, LEVELS),
        headline_channel_set=headline.string("channel_set", REQUIRED, tuple(sets)),
        repair_channel_sets=names("repair_bad_channels", sets, []), paper=tuple(top.get("paper", list, [])),
        training=training)
    if not 0 < config.trial_test_fraction < 1:
        raise HotspotError(f"{source}: trial_test_fraction = {config.trial_test_fraction} must be in (0, 1)",
                           ErrorCode.BAD_CONFIG)
    return config


class Inputs:
    """Windows and baseline inputs per (level, channel set), computed once and cached on disk."""

    def __init__(self, dataset: Dataset, training: TrainingConfig, cache_dir: Path | None = None,
                 repair_channel_sets: Sequence[str] = ()) -> None:
        self.dataset, self.training, self.cache_dir = dataset, training, cache_dir
        self.repair_channel_sets = tuple(repair_channel_sets)
        self.sfreq = dataset_sfreq(dataset)
        self.data_hash = dataset.content_hash()
        self._baselines: dict[str, Baselines] = {}
        self._channels: dict[str, list[str]] = {}

    def channels(self, channel_set: str) -> list[str]:
        """The model channel list of a named set."""
        if channel_set not in self._channels:
            self._channels[channel_set] = channel_list(self.dataset, channel_set, self.training.data.mirror)
        return self._channels[channel_set]

    def spec(self, level: str, channel_set: str):
        """The pipeline spec of one level and channel set."""
        return make_spec(level, self.channels(channel_set), self.sfreq, self.training.pipeline)

    def windows(self, level: str, channel_set: str):
        """All subjects' windows for one level and channel set (session-bad channels repaired for the
        sets named in ``repair_channel_sets`` or when the training configuration asks for it)."""
        repair = self.training.data.repair_bad_channels or channel_set in self.repair_channel_sets
        return dataset_windows(self.dataset, self.spec(level, channel_set), self.training.data.cue,
                               self.training.data.mirror, self.cache_dir, self.data_hash, repair)

    def baselines(self, channel_set: str) -> Baselines:
        """Each session's ERD peak and beamformer peak (cap frame, model frame) on a channel set."""
        if channel_set not in self._baselines:
            spec = self.spec("source", channel_set)
            beamformer = {(item.subject, session): power_drop_peak(spec, images[0])
                          for item in self.windows("source", channel_set)
                          for session, images in session_inputs(spec, item).items()}
            erd = {(subject.subject, session): peak for subject in self.dataset.subjects
                   for session, peak in erd_peaks(subject, self.channels(channel_set), self.training.data.mirror,
                                                  self.training.data.cue).items()}
            self._baselines[channel_set] = Baselines(erd_peaks=erd, beamformer_peaks=beamformer)
        return self._baselines[channel_set]


def _paper_number(config: ReproduceConfig, level: str, group: str, channel_set: str) -> dict | None:
    for entry in config.paper:
        if (entry.get("level"), entry.get("group"), entry.get("channel_set")) == (level, group, channel_set):
            return entry
    return None


def config_record(config: ReproduceConfig, training: TrainingConfig) -> dict:
    """The settings a report was made with, as stored in ``results.json`` (JSON types only)."""
    record = {**{k: v for k, v in vars(config).items() if k != "paper"}, "training_config": training.to_dict()}
    return json.loads(json.dumps(record, default=_json_default))


def effective_training(config: ReproduceConfig) -> TrainingConfig:
    """``training.toml`` with the reproduction's ``[training]`` overrides applied."""
    training = load_training_config()
    return training.replace(**config.training) if config.training else training


def run_reproduction(dataset: Dataset, config: ReproduceConfig, out: Path | str, cache_dir: Path | str | None = None,
                     progress: bool = True) -> dict:
    """Run the whole table and the headline protocols; write JSON, markdown and figures.

    To halve memory (a 59-subject, two-session cohort is about 8 GB as float64), every recording's
    samples are converted to float32 in place; :meth:`train.dataset.Dataset.content_hash` already
    hashes float32 samples, so the dataset's hash does not change.

    Parameters
    ----------
    dataset : Dataset
        A simulated cohort (truth and oracle are needed for skill).
    config : ReproduceConfig
    out : path-like
        Output folder.
    cache_dir : path-like, optional
        Window cache (default ``<out>/cache``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The report written to ``results.json``.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset.to_float32()
    training = effective_training(config)
    inputs = Inputs(dataset, training, Path(cache_dir) if cache_dir else out / "cache", config.repair_channel_sets)
    groups_present = {subject.group for subject in dataset.subjects}
    groups = [group for group in config.groups if group in groups_present]
    cells = [(lvl, cs, g) for lvl in config.levels for cs in config.channel_sets for g in groups]
    bar = tqdm(total=len(cells) + 1, desc="headline", unit="step", disable=not progress)
    report = {
        "dataset": dataset.name, "data_hash": inputs.data_hash, "n_subjects": len(dataset.subjects),
        "frame": "mm, head frame (TMS) and cap frame (the cap as worn); right-hemisphere subjects mirrored into "
                 "the left frame",
        "baseline_for_skill": "population mean of the training subjects' hotspots (same frame); oracle = simulator "
                              "source oracle",
        "config": config_record(config, training),
        "headline": run_headline(inputs, config, training, groups), "rows": [], "complete": False}
    bar.update(1)
    for level, channel_set, group in cells:
        bar.set_description(f"{level}/{channel_set}/{group}")
        _write_partial(report, out, started)
        items = [item for item in inputs.windows(level, channel_set) if item.group == group]
        spec, baselines = inputs.spec(level, channel_set), inputs.baselines(channel_set)
        grouped = evaluate_grouped(spec, items, training, config.grouped_folds, config.seed, baselines)
        trial = evaluate_trial_split(spec, items, training, config.seed, baselines,
                                     test_fraction=config.trial_test_fraction)
        control = evaluate_trial_split(spec, items, training, config.seed, baselines, shuffle_labels=True,
                                       test_fraction=config.trial_test_fraction)
        report["rows"].append({"level": level, "channel_set": channel_set, "group": group,
                               "paper": _paper_number(config, level, group, channel_set),
                               "trial_split": trial.to_dict(), "trial_split_control": control.to_dict(),
                               "subject_grouped": grouped.to_dict()})
        bar.update(1)
    bar.close()
    report["complete"] = True
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    (out / "table.md").write_text(markdown_table(report))
    write_figures(report, out)
    return report


def _write_partial(report: dict, out: Path, started: float) -> None:
    """Keep ``results.json`` current while the table runs (``complete`` stays false until the end)."""
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")


def run_headline(inputs: Inputs, config: ReproduceConfig, training: TrainingConfig, groups: Sequence[str]) -> dict:
    """Leave-one-subject-out per group (with the shuffled-label control under grouped k-fold, to keep the
    time budget), session split and healthy -> stroke transfer, for the headline setting."""
    items = inputs.windows(config.headline_level, config.headline_channel_set)
    spec = inputs.spec(config.headline_level, config.headline_channel_set)
    baselines = inputs.baselines(config.headline_channel_set)
    headline = {"level": config.headline_level, "channel_set": config.headline_channel_set, "protocols": {}}
    for group in groups:
        members = [item for item in items if item.group == group]
        headline["protocols"][f"loso_{group}"] = evaluate_grouped(spec, members, training, None, config.seed,
                                                                  baselines).to_dict()
        headline["protocols"][f"grouped_control_{group}"] = evaluate_grouped(
            spec, members, training, config.grouped_folds, config.seed, baselines, shuffle_labels=True).to_dict()
        headline["protocols"][f"session_{group}"] = evaluate_session_split(spec, members, training, config.seed,
                                                                           baselines).to_dict()
    if {"healthy", "stroke"} <= set(groups):
        headline["protocols"]["transfer_healthy_to_stroke"] = evaluate_transfer(spec, items, training, config.seed,
                                                                                baselines).to_dict()
    return headline


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke reproduce``."""
    parser = ArgumentParser(prog="invoke reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(workspace.DATA), help=f"simulated dataset folder ({workspace.DATA})")
    parser.add_argument("--out", default=str(workspace.REPORTS / "reproduce"),
                        help=f"report folder ({workspace.REPORTS / 'reproduce'})")
    parser.add_argument("--config", default="", help="reproduce TOML (default train/configs/reproduce.toml)")
    parser.add_argument("--small", action="store_true", help="reduced grid and epochs (tests, quick looks)")
    parser.add_argument("--cache", default="", help="window cache folder (default <out>/cache)")
    args = parser.parse_args(argv)
    config = load_reproduce_config(args.config or None, small=args.small)
    data = Path(args.data)
    if not data.exists():
        raise HotspotError(f"dataset {data} not found; run `invoke simulate --out {data}` first", ErrorCode.BAD_FILE)
    from train.io import load_dataset

    report = run_reproduction(load_dataset(data), config, args.out, args.cache or None)
    print((Path(args.out) / "table.md").read_text())
    print(f"wrote {args.out}/results.json, table.md and figures in {report['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
