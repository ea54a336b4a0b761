"""Training/evaluation benchmarks on the default simulated cohort (30 healthy + 29 stroke).

One full reproduction (``train.reproduce``, default grid) is run once per process and shared by the
benchmarks below. Every number states its protocol, frame and baseline.

- ``train_reproduce_time``: wall time of the full table (target <= 60 min on 2 cores).
- ``train_grouped_skill``: headline leave-one-subject-out skill, healthy and stroke
  (targets >= 0.5 and >= 0.4).
- ``train_channel_ratio``: 9-channel vs all-channel skill under grouped k-fold (target >= 0.8).
- ``train_trial_split_vs_paper``: trial split (identification) and its shuffled-label control beside
  the paper's numbers.
- ``train_epoch_selection``: the training length chosen by subject-grouped k-fold on a development
  cohort simulated with another seed (never the evaluation cohort).
- ``train_simulator_sensitivity`` / ``train_large_cohort_transfer``: why the skill targets are missed
  (wider hotspot spread, generators at the hotspot, 200 training subjects).
- ``train_validate_real``: the sim-to-real check on eegmmidb (contralateral share vs the ERD
  lateralisation baseline; target >= 85 % and not below the baseline).

A finished reproduction of the same cohort (same content hash) in ``reports/bench-reproduce`` is reused.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import numpy as np

from bench.harness import benchmark

REPO = Path(__file__).resolve().parents[1]
COHORT_DIR = REPO / "data" / "bench-cohort"
REPORT_DIR = REPO / "reports" / "bench-reproduce"
FRAME = "head frame, mm, right-hemisphere subjects mirrored into the left frame"
BASELINE = "population mean of the training subjects' hotspots (skill floor = simulator source oracle)"


@functools.lru_cache(maxsize=1)
def reproduction() -> dict:
    """Simulate the default cohort (once; cached in data/bench-cohort) and run the full table."""
    from train.io import load_dataset
    from train.reproduce import config_record, effective_training, load_reproduce_config, run_reproduction
    from train.simulate import load_config, simulate_cohort

    simulate_started = time.perf_counter()
    if not (COHORT_DIR / "participants.tsv").is_file():
        simulate_cohort(load_config(None, {}), COHORT_DIR)
    simulate_s = time.perf_counter() - simulate_started
    dataset = load_dataset(COHORT_DIR)
    config = load_reproduce_config()
    previous = REPORT_DIR / "results.json"
    if previous.is_file():
        report = json.loads(previous.read_text())
        if (report.get("complete") and report.get("data_hash") == dataset.content_hash()
                and report.get("config") == config_record(config, effective_training(config))):
            report["reused_from"] = str(previous)
            report["simulate_s"] = round(simulate_s, 1)
            return report
    report = run_reproduction(dataset, config, REPORT_DIR, progress=False)
    report["simulate_s"] = round(simulate_s, 1)
    return report


def _row(report: dict, level: str, channel_set: str, group: str) -> dict | None:
    for row in report["rows"]:
        if (row["level"], row["channel_set"], row["group"]) == (level, channel_set, group):
            return row
    return None


@benchmark("train_reproduce_time")
def reproduce_time() -> dict:
    """Wall time of the full reproduction table on the default cohort."""
    report = reproduction()
    return {"table_complete": report["complete"], "cells_done": len(report["rows"]),
            "table_wall_time_s": report["elapsed_s"], "target_s": 3600,
            "meets_target": bool(report["complete"] and report["elapsed_s"] <= 3600),
            "cohort_simulation_s": report["simulate_s"], "n_subjects": report["n_subjects"],
            "grouped_folds": report["config"]["grouped_folds"],
            "cpu_count": os.cpu_count(), "report": str(REPORT_DIR / "table.md")}


@benchmark("train_grouped_skill")
def grouped_skill() -> dict:
    """Headline leave-one-subject-out skill vs the population mean, healthy and stroke."""
    report = reproduction()
    headline = report["headline"]
    results = {"protocol": "subject-grouped leave-one-subject-out", "frame": FRAME, "baseline": BASELINE,
               "table_complete": report["complete"],
               "level": headline["level"], "channel_set": headline["channel_set"]}
    for group, target in (("healthy", 0.5), ("stroke", 0.4)):
        result = headline["protocols"].get(f"loso_{group}")
        control = headline["protocols"].get(f"grouped_control_{group}")
        if not result:
            continue
        errors = result["summary"]["errors"]["truth"]
        value = result["summary"]["skill_vs_population_mean"]["truth"]
        results[group] = {
            "skill_vs_truth": value, "target": target, "meets_target": bool(np.isfinite(value) and value >= target),
            "skill_vs_tms_label": result["summary"]["skill_vs_population_mean"]["label"],
            "model_mean_mm_vs_truth": errors["model"]["mean_mm"],
            "population_mean_mm_vs_truth": errors["population_mean"]["mean_mm"],
            "anatomical_rule_mm_vs_truth": errors["anatomical_rule"]["mean_mm"],
            "erd_peak_mm_vs_truth": errors["erd_peak"]["mean_mm"],
            "oracle_mm_vs_truth": errors["oracle"]["mean_mm"],
            "model_mean_mm_vs_label": result["summary"]["errors"]["label"]["model"]["mean_mm"],
            "shuffled_label_control_mm_vs_label": control["summary"]["errors"]["label"]["model"]["mean_mm"]
            if control else None}
    return results


@benchmark("train_channel_ratio")
def channel_ratio() -> dict:
    """Skill with 9 channels divided by skill with all channels (grouped k-fold, per level and group)."""
    report = reproduction()
    ratios = {}
    for level in report["config"]["levels"]:
        for group in report["config"]["groups"]:
            nine, every = _row(report, level, "nine", group), _row(report, level, "all", group)
            if not nine or not every:
                continue
            s9 = nine["subject_grouped"]["summary"]["skill_vs_population_mean"]["truth"]
            sa = every["subject_grouped"]["summary"]["skill_vs_population_mean"]["truth"]
            ratios[f"{level}/{group}"] = {"skill_nine": s9, "skill_all": sa,
                                          "ratio": s9 / sa if np.isfinite(sa) and sa > 0 else None}
    return {"protocol": f"subject-grouped {report['config']['grouped_folds']}-fold", "frame": FRAME,
            "baseline": BASELINE, "target_ratio": 0.8, "table_complete": report["complete"],
            "per_level_group": ratios}


@benchmark("train_trial_split_vs_paper")
def trial_split_vs_paper() -> dict:
    """The paper's trial split (identification) and its shuffled-label control, beside the paper."""
    report = reproduction()
    rows = []
    for row in report["rows"]:
        trial = row["trial_split"]["summary"]
        control = row["trial_split_control"]["summary"]
        rows.append({"level": row["level"], "group": row["group"], "channel_set": row["channel_set"],
                     "paper_mm": row["paper"]["mean_mm"] if row["paper"] else None,
                     "trial_split_subject_mm_vs_label": trial["errors"]["label"]["model"]["mean_mm"],
                     "trial_split_window_mm_vs_label": trial["mean_window_error_mm"],
                     "shuffled_control_subject_mm_vs_assigned_label": control["errors"]["label"]["model"]["mean_mm"],
                     "subject_grouped_mm_vs_label": row["subject_grouped"]["summary"]["errors"]["label"]["model"][
                         "mean_mm"]})
    with_paper = [r for r in rows if r["paper_mm"] is not None]
    return {"protocol": "trial split within subjects (identification) + shuffled-label control", "frame": FRAME,
            "baseline": "the paper's reported mean errors (Choi et al. 2025 abstract)",
            "table_complete": report["complete"],
            "at_or_below_paper": [r["trial_split_subject_mm_vs_label"] <= r["paper_mm"] for r in with_paper],
            "rows": rows}


@benchmark("train_epoch_selection")
def epoch_selection() -> dict:
    """Score 3/5/10/20/40 epochs by grouped 5-fold on a development cohort (seed 1, not the evaluation cohort)."""
    from train.io import load_dataset
    from train.selection import select_epochs
    from train.simulate import load_config, simulate_cohort

    cohort = REPO / "data" / "dev-cohort"
    if not (cohort / "participants.tsv").is_file():
        simulate_cohort(load_config(None, {"cohort": {"seed": 1}}), cohort)
    result = select_epochs(load_dataset(cohort), [3, 5, 10, 20, 40])
    return {**result, "baseline": "the other candidates (same folds, same cohort)",
            "evaluation_cohort_seed": 0, "development_cohort_seed": 1}


@benchmark("train_validate_real")
def validate_real() -> dict:
    """Train the both-hemisphere model (no mirroring) on a simulated cohort and check it on eegmmidb."""
    from train.io import load_dataset
    from train.configs import CONFIG_DIR
    from train.model_dir import load_model_dir
    from train.simulate import load_config, simulate_cohort
    from train.training import train_model
    from train.validate_real import validate

    cohort = REPO / "data" / "real-check-cohort"
    if not (cohort / "participants.tsv").is_file():
        channels = ["FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
                    "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "F3", "Fz", "F4", "P3", "Pz", "P4", "O1", "O2"]
        simulate_cohort(load_config(None, {"cohort": {"n_healthy": 20, "n_stroke": 20, "sessions": 1, "seed": 5},
                                           "recording": {"channels": channels}}), cohort)
    model = train_model(load_dataset(cohort), "erd", "bilateral", CONFIG_DIR / "real_check.toml",
                        REPO / "models" / "real-check-erd", progress=False)
    report = validate(load_model_dir(model), REPO.parent / "shared" / "data" / "real" / "eegmmidb")
    return {"protocol": "sim-to-real: trained on simulated subjects only, tested on real eegmmidb S001-S007",
            "frame": "head frame; x > 0 = right hemisphere",
            "baseline": "ERD lateralisation, 8-30 Hz drop at C3/FC3/CP3 vs C4/FC4/CP4 relative to pre-cue rest",
            "level": report["level"], "n_pairs": report["n_pairs"],
            "model_contralateral_share": report["model_contralateral_share"],
            "erd_baseline_contralateral_share": report["erd_baseline_contralateral_share"],
            "target_share": report["target_share"], "meets_target": report["meets_target"],
            "pairs": [{k: p[k] for k in ("subject", "hand", "n_trials", "model_contralateral", "erd_contralateral")}
                      for p in report["pairs"]]}


@benchmark("train_identification_long")
def identification_long() -> dict:
    """Trial split (identification) and its shuffled-label control trained long enough to memorise.

    The table trains every protocol for the same fixed epochs; here the trial split of the paper's
    rows that have data gets 60 epochs (the memorisation regime the papers' numbers suggest). Both
    the true and the shuffled labels reach millimetre errors, so the split measures identification.
    """
    from train.configs import load_training_config
    from train.evaluation import evaluate_trial_split
    from train.io import load_dataset
    from train.reproduce import Inputs, load_reproduce_config

    if not (COHORT_DIR / "participants.tsv").is_file():
        reproduction()
    dataset = load_dataset(COHORT_DIR)
    training = load_training_config()
    config = load_reproduce_config()
    inputs = Inputs(dataset, training, REPORT_DIR / "cache", config.repair_channel_sets)
    long = training.replace(fit={"epochs": 60})
    rows = []
    for paper in config.paper:
        items = [item for item in inputs.windows(paper["level"], paper["channel_set"]) if item.group == paper["group"]]
        trial = evaluate_trial_split(items, long, 0)
        control = evaluate_trial_split(items, long, 0, shuffle_labels=True)
        rows.append({"level": paper["level"], "group": paper["group"], "channel_set": paper["channel_set"],
                     "paper_mm": paper["mean_mm"], "n_subjects": trial.summary["n_subjects"],
                     "trial_split_subject_mm_vs_label": trial.summary["errors"]["label"]["model"]["mean_mm"],
                     "trial_split_window_mm_vs_label": trial.summary["mean_window_error_mm"],
                     "shuffled_control_subject_mm_vs_assigned_label":
                         control.summary["errors"]["label"]["model"]["mean_mm"],
                     "shuffled_control_window_mm": control.summary["mean_window_error_mm"]})
    return {"protocol": "trial split within subjects (identification), 60 epochs, + shuffled-label control",
            "frame": FRAME, "baseline": "the paper's reported mean errors (Choi et al. 2025 abstract)", "rows": rows}


SENSITIVITY = {
    "default": {},
    "hotspot_sd_7mm": {"hotspot": {"sd_mm": [7.0, 7.0, 7.0]}},
    "generator_at_hotspot": {"generators": {"spread_sd_mm": 0.0, "mu_offset_mm": [0.0, 0.0, 0.0]}},
    "hotspot_sd_7mm_generator_at_hotspot": {"hotspot": {"sd_mm": [7.0, 7.0, 7.0]},
                                            "generators": {"spread_sd_mm": 0.0, "mu_offset_mm": [0.0, 0.0, 0.0]}},
}


@benchmark("train_simulator_sensitivity")
def simulator_sensitivity() -> dict:
    """Grouped skill of the fixed network as the simulator's hotspot spread and generator coupling change.

    Why the skill targets are missed: healthy-only cohorts (30 subjects, one session, seed 2, neither
    the evaluation nor the development cohort), PSD, nine channels, subject-grouped 5-fold, the fixed
    training settings, and again with 40 epochs. ``hotspot_sd_7mm`` is the science notes' "hard" inter-subject spread (the
    >= 0.05 probability map); ``generator_at_hotspot`` puts the mu/beta generators exactly at the
    hotspot (no 5 mm spread, no postcentral mu offset).
    """
    from train.configs import load_training_config
    from train.evaluation import evaluate_grouped
    from train.io import load_dataset
    from train.simulate import load_config, simulate_cohort
    from train.reproduce import Inputs

    training = load_training_config()
    rows = {}
    for name, overrides in SENSITIVITY.items():
        folder = REPO / "data" / f"sensitivity-{name}"
        if not (folder / "participants.tsv").is_file():
            cohort = {"cohort": {"seed": 2, "n_healthy": 30, "n_stroke": 0, "sessions": 1}}
            simulate_cohort(load_config(None, {**cohort, **overrides}), folder)
        windows = Inputs(load_dataset(folder), training).windows("psd", "nine")
        rows[name] = {"overrides": overrides}
        for epochs in (training.fit.epochs, 40):
            result = evaluate_grouped(windows, training.replace(fit={"epochs": epochs}), 5, 0)
            errors = result.summary["errors"]["truth"]
            rows[name].update({"n_subjects": result.summary["n_subjects"],
                               "population_mean_mm": errors["population_mean"]["mean_mm"],
                               "oracle_mm": errors["oracle"]["mean_mm"],
                               f"model_mm_{epochs}_epochs": errors["model"]["mean_mm"],
                               f"skill_vs_truth_{epochs}_epochs": result.summary["skill_vs_population_mean"]["truth"]})
    return {"protocol": "subject-grouped 5-fold, healthy only, PSD, nine channels, training.toml settings "
                        "(and the same with 40 epochs)",
            "frame": FRAME, "baseline": BASELINE, "cohort": "30 healthy, one session, simulator seed 2",
            "configurations": rows}


@benchmark("train_large_cohort_transfer")
def large_cohort_transfer() -> dict:
    """Does more training data help? Train on 200 other simulated healthy subjects, test on the evaluation cohort.

    The training cohort (seed 11, one session, default simulator otherwise) shares no subject with the
    evaluation cohort, so this is subject-grouped by construction. PSD, nine channels, the fixed
    training settings and 30 epochs; errors vs the truth, baseline = population mean of the 200.
    """
    import dataclasses
    import gc

    from train.configs import load_training_config
    from train.evaluation import evaluate_transfer
    from train.io import load_dataset
    from train.simulate import load_config, simulate_cohort
    from train.reproduce import Inputs

    training = load_training_config()
    large = REPO / "data" / "large-healthy"
    if not (large / "participants.tsv").is_file():
        simulate_cohort(load_config(None, {"cohort": {"seed": 11, "n_healthy": 200, "n_stroke": 0, "sessions": 1}}),
                        large)
    if not (COHORT_DIR / "participants.tsv").is_file():
        reproduction()

    def windows(folder: Path, prefix: str) -> list:
        dataset = load_dataset(folder)
        dataset.to_float32()
        items = [dataclasses.replace(item, subject=prefix + item.subject)
                 for item in Inputs(dataset, training).windows("psd", "nine")]
        del dataset
        gc.collect()
        return items

    train = [dataclasses.replace(item, group="large") for item in windows(large, "large-")]
    test = windows(COHORT_DIR, "eval-")
    rows = []
    for epochs in (training.fit.epochs, 30):
        for group in ("healthy", "stroke"):
            result = evaluate_transfer(train + [item for item in test if item.group == group],
                                       training.replace(fit={"epochs": epochs}), 0, source="large", target=group)
            errors = result.summary["errors"]["truth"]
            rows.append({"epochs": epochs, "group": group, "n_test_subjects": result.summary["n_subjects"],
                         "model_mm": errors["model"]["mean_mm"],
                         "population_mean_mm": errors["population_mean"]["mean_mm"],
                         "oracle_mm": errors["oracle"]["mean_mm"],
                         "skill_vs_truth": result.summary["skill_vs_population_mean"]["truth"]})
    return {"protocol": "train on 200 other simulated healthy subjects, test on the evaluation cohort (subject-grouped)",
            "frame": FRAME, "baseline": "population mean of the 200 training subjects' TMS labels",
            "n_training_subjects": len(train), "rows": rows}
