"""Training/evaluation benchmarks on the default simulated cohort (30 healthy + 29 stroke).

One full reproduction (``train.reproduce``, default grid) is run once per process and shared by the
benchmarks below. Every number states its protocol, frame and baseline.

- ``train_reproduce_time``: wall time of the full table (target <= 60 min on 2 cores).
- ``train_grouped_skill``: the headline: leave-one-subject-out on the evaluation cohort (seed 0), source
  level, nine and five channels, both frames, every baseline including the physics baseline, the gain
  over the prior with its bootstrap interval, the 90 % radius coverage, and the seed-2 replication.
- ``train_cohort_spread``: the same headline run on five cohorts of the default simulator (seeds 0-4): how
  far skill moves between cohorts, the scale of the seed-2 replication target.
- ``train_stroke_sensitivity``: how the stroke estimate depends on the simulator's stroke assumptions.
- ``train_channel_ratio``: 9-channel vs all-channel skill under grouped k-fold.
- ``train_trial_split_vs_paper`` / ``train_identification_long``: trial split (identification) and its
  shuffled-label control beside the paper's numbers.
- ``train_epoch_selection``: training lengths chosen by subject-grouped k-fold on a development cohort
  simulated with another seed (never the evaluation cohort).
- ``train_validate_real``: the sim-to-real check on eegmmidb (a model trained on simulated subjects of the
  eegmmidb schedule; held-out simulated subjects first, then the real runs; per trial, per pair, between hands).

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
FRAME = ("mm, head frame (TMS) and cap frame (the cap as worn in the session); right-hemisphere subjects mirrored "
         "into the left frame")
BASELINE = ("population mean of the training subjects' hotspots in the same frame (skill floor = simulator source "
            "oracle); beside it the physics baseline (beamformer peak + learned shrinkage), the population mean "
            "through the session's digitised cap, the FCC3h rule and the ERD peak")


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


GROUPED_TARGETS = {"healthy": {"head": 0.6, "cap": 0.6}, "stroke": {"head": 0.2, "cap": 0.2}}
GAIN_CI_LOW_TARGET_MM = -0.3
COVERAGE_TARGET = (0.85, 0.95)
REPLICATION_TOLERANCE = 0.15


def cohort(seed: int, name: str, overrides: dict | None = None) -> Path:
    """A simulated cohort folder under data/ (simulated once, then reused)."""
    from train.simulate import load_config, simulate_cohort

    folder = REPO / "data" / name
    if not (folder / "participants.tsv").is_file():
        simulate_cohort(load_config(None, {**(overrides or {}), "cohort": {
            **(overrides or {}).get("cohort", {}), "seed": seed}}), folder)
    return folder


def loso(folder: Path, level: str, channel_set: str, groups=("healthy", "stroke")) -> dict:
    """Leave-one-subject-out per group on one cohort: the protocol summaries (JSON-ready)."""
    from train.configs import load_training_config
    from train.evaluation import evaluate_grouped
    from train.io import load_dataset
    from train.reproduce import Inputs

    dataset = load_dataset(folder)
    dataset.to_float32()
    training = load_training_config()
    inputs = Inputs(dataset, training, folder.parent / f"{folder.name}-cache")
    items, spec = inputs.windows(level, channel_set), inputs.spec(level, channel_set)
    baselines = inputs.baselines(channel_set)
    out = {}
    for group in groups:
        members = [item for item in items if item.group == group]
        result = evaluate_grouped(spec, members, training, None, 0, baselines)
        out[group] = result.to_dict()
    return out


def skill_row(result: dict) -> dict:
    """The numbers of one protocol result that the targets are about, in both frames, with their intervals.

    Skill intervals are subject-bootstrap 95 % intervals, coverage intervals Wilson 95 % intervals over
    sessions; ``model_minus_physics_mm`` is the paired per-subject difference (negative = the estimate is
    closer to the truth than the physics baseline).
    """
    from train.evaluation import common_subject_errors, skill_with_ci
    from train.metrics import bootstrap_ci

    summary, records = result["summary"], result["records"]
    row = {"n_subjects": summary["n_subjects"], "n_sessions": summary["n_sessions"],
           "localised_share": summary["localised"]}
    for frame in ("head", "cap"):
        errors = summary["errors"][frame]["truth"]
        physics_skill, physics_ci = skill_with_ci(records, frame, "truth", method="physics")
        versus_physics = np.array([model - physics for model, physics in
                                   common_subject_errors(records, ("model", "physics"), frame).values()])
        row[frame] = {"skill": summary["skill"][frame]["truth"], "skill_ci95": summary["skill_ci95"][frame]["truth"],
                      "estimate_mm": errors["model"]["mean_mm"], "estimate_ci95_mm": errors["model"]["ci95_mm"],
                      **{f"{method}_mm": errors[method]["mean_mm"] for method in
                         ("population_mean", "cap_prior", "anatomical_rule", "erd_peak", "physics", "oracle")},
                      "physics_skill": physics_skill, "physics_skill_ci95": physics_ci,
                      "model_minus_physics_mm": {"mean_mm": float(versus_physics.mean()),
                                                 "ci95_mm": list(bootstrap_ci(versus_physics))},
                      "gain_over_prior_mm": summary["gain_over_prior_mm"][frame]["truth"],
                      "coverage90_truth": summary["coverage90"][frame]["truth"],
                      "coverage90_truth_ci95": summary["coverage90_ci95"][frame]["truth"],
                      "coverage90_label": summary["coverage90"][frame]["label"]}
    return row


@functools.lru_cache(maxsize=1)
def grouped_runs() -> dict:
    """LOSO on the evaluation cohort (seed 0; nine and five channels) and on a replication cohort (seed 2)."""
    started = time.perf_counter()
    evaluation = cohort(0, "bench-cohort")
    replication = cohort(2, "replication-cohort")
    runs = {"seed0_nine": loso(evaluation, "source", "nine"), "seed0_five": loso(evaluation, "source", "five"),
            "seed2_nine": loso(replication, "source", "nine")}
    runs["elapsed_s"] = round(time.perf_counter() - started, 1)
    return runs


@benchmark("train_grouped_skill")
def grouped_skill() -> dict:
    """Headline: the estimate (source level, nine channels) on unseen subjects, both frames, beside every baseline.

    Subject-grouped leave-one-subject-out on the default evaluation cohort (seed 0); hyper-parameters
    were chosen on the seed-1 development cohort only. The same code on a seed-2 cohort is the
    replication; five channels is the smaller headset.
    """
    from train.evaluation import skill_difference

    runs = grouped_runs()
    results = {"protocol": "subject-grouped leave-one-subject-out, per group; unit = session (one cap placement), "
                           "a subject's error = mean over its sessions",
               "level": "source", "frame": FRAME, "baseline": BASELINE, "targets": {
                   "skill": GROUPED_TARGETS, "gain_ci_low_mm": GAIN_CI_LOW_TARGET_MM,
                   "coverage90": list(COVERAGE_TARGET), "five_vs_nine_skill": 0.1,
                   "replication_within": REPLICATION_TOLERANCE, "beats_physics": True},
               "elapsed_s": runs["elapsed_s"], "groups": {}}
    for group in ("healthy", "stroke"):
        nine, five, again = (skill_row(runs[key][group]) for key in ("seed0_nine", "seed0_five", "seed2_nine"))
        records = {key: runs[key][group]["records"] for key in ("seed0_nine", "seed0_five", "seed2_nine")}
        checks, differences = {}, {}
        for frame in ("head", "cap"):
            target = GROUPED_TARGETS[group][frame]
            differences[frame] = {
                "five_minus_nine": skill_difference(records["seed0_five"], records["seed0_nine"], frame, paired=True),
                "seed2_minus_seed0": skill_difference(records["seed2_nine"], records["seed0_nine"], frame,
                                                      paired=False)}
            checks[frame] = {
                "skill_target_met": bool(nine[frame]["skill"] >= target),
                "skill_short_by": max(0.0, target - nine[frame]["skill"]),
                "gain_ci_low_met": bool(nine[frame]["gain_over_prior_mm"]["ci95_mm"][0] >= GAIN_CI_LOW_TARGET_MM),
                "coverage_met": bool(COVERAGE_TARGET[0] <= nine[frame]["coverage90_truth"] <= COVERAGE_TARGET[1]),
                "five_within_0_1_of_nine": bool(abs(five[frame]["skill"] - nine[frame]["skill"]) <= 0.1),
                "seed2_within_0_15": bool(abs(again[frame]["skill"] - nine[frame]["skill"]) <= REPLICATION_TOLERANCE),
                "beats_physics": bool(nine[frame]["estimate_mm"] < nine[frame]["physics_mm"])}
        results["groups"][group] = {"nine_channels_seed0": nine, "five_channels_seed0": five,
                                    "nine_channels_seed2": again, "skill_differences": differences, "checks": checks}
    return results


SPREAD_COHORTS = {0: ("evaluation", "bench-cohort"),
                  1: ("development (hyper-parameters chosen here: optimistic)", "dev-cohort"),
                  2: ("replication", "replication-cohort"),
                  3: ("additional", "spread-cohort-seed3"), 4: ("additional", "spread-cohort-seed4")}
"""Default-configuration cohorts by simulator seed: (role, folder under data/)."""


@benchmark("train_cohort_spread")
def cohort_spread() -> dict:
    """How much skill moves between cohorts of the default simulator: the scale the seed-2 replication is judged on.

    The same code (source level, nine channels, leave-one-subject-out) on five cohorts that differ only in
    the simulator's seed: the evaluation (0) and replication (2) cohorts of ``train_grouped_skill``, the
    development cohort (1) and two more (3, 4). Per cohort the estimate's and the physics baseline's skill
    with subject-bootstrap intervals; across cohorts their range and SD, and the share of cohort pairs whose
    skills agree within the replication tolerance.
    """
    runs = grouped_runs()
    per_seed = {0: runs["seed0_nine"], 2: runs["seed2_nine"]}
    for seed, (_, name) in SPREAD_COHORTS.items():
        if seed not in per_seed:
            per_seed[seed] = loso(cohort(seed, name), "source", "nine")
    cohorts, across = {}, {}
    for seed, (role, _) in SPREAD_COHORTS.items():
        cohorts[f"seed{seed}"] = {"role": role, "groups": {}}
        for group, result in per_seed[seed].items():
            full = skill_row(result)
            row = {"n_subjects": full["n_subjects"]}
            for frame in ("head", "cap"):
                numbers = full[frame]
                row[frame] = {**{key: numbers[key] for key in
                                 ("skill", "skill_ci95", "physics_skill", "physics_skill_ci95")},
                              "room_above_prior_mm": numbers["population_mean_mm"] - numbers["oracle_mm"],
                              "estimate_minus_physics_mm": numbers["estimate_mm"] - numbers["physics_mm"]}
            cohorts[f"seed{seed}"]["groups"][group] = row
    for group in ("healthy", "stroke"):
        across[group] = {}
        for frame in ("head", "cap"):
            across[group][frame] = {}
            for key in ("skill", "physics_skill"):
                values = np.array([c["groups"][group][frame][key] for c in cohorts.values()])
                pairs = [abs(a - b) <= REPLICATION_TOLERANCE for i, a in enumerate(values) for b in values[i + 1:]]
                across[group][frame][key] = {"min": float(values.min()), "max": float(values.max()),
                                             "sd": float(values.std(ddof=1)),
                                             "pairs_within_tolerance": f"{sum(pairs)}/{len(pairs)}"}
    return {"protocol": "subject-grouped leave-one-subject-out per group, source level, nine channels, one run per "
                        "cohort; cohorts differ only in the simulator's seed (default configuration)",
            "frame": FRAME, "baseline": BASELINE, "replication_tolerance": REPLICATION_TOLERANCE,
            "cohorts": cohorts, "across_cohorts": across}


@benchmark("train_stroke_sensitivity")
def stroke_sensitivity() -> dict:
    """At which lesioned-side ERD strength does the estimate start to carry information?

    Stroke-only cohorts (29 patients, two sessions, seed 3; defaults otherwise) with the simulator's
    stroke assumptions varied one at a time: the ipsilesional ERD factor (default U(0.2, 0.9) x
    (1 - 0.5 severity)) and the MEP-negative base rate (default 0.2). Source level, nine channels,
    leave-one-subject-out, cap frame, vs truth. The defaults are not changed to meet a target. Within the
    default cohort, the gain over the prior is also given per band of each patient's lesioned-side mu ERD.
    """
    variants = {
        "default": {},
        "ipsilesional_erd_0.5_1.0": {"stroke": {"ipsilesional_erd": [0.5, 1.0]}},
        "ipsilesional_erd_0.8_1.0": {"stroke": {"ipsilesional_erd": [0.8, 1.0]}},
        "ipsilesional_erd_1.0_1.0": {"stroke": {"ipsilesional_erd": [1.0, 1.0]}},
        "mep_negative_base_0.0": {"participants": {"mep_negative_base": 0.0}},
        "mep_negative_base_0.4": {"participants": {"mep_negative_base": 0.4}},
    }
    rows, by_erd = {}, None
    for name, overrides in variants.items():
        folder = cohort(3, f"stroke-sensitivity-{name}",
                        {**overrides, "cohort": {"n_healthy": 0, "n_stroke": 29}})
        result = loso(folder, "source", "nine", groups=("stroke",))["stroke"]
        rows[name] = {"overrides": overrides, **skill_row(result)}
        if name == "default":
            by_erd = _gain_by_erd(folder, result)
    return {"protocol": "stroke only, leave-one-subject-out, source level, nine channels", "frame": FRAME,
            "baseline": BASELINE, "cohort": "29 stroke patients, two sessions, simulator seed 3",
            "variants": rows, "default_cohort_gain_by_lesioned_side_mu_erd": by_erd}


def _gain_by_erd(folder: Path, result: dict) -> list[dict]:
    """Gain over the prior (cap frame, vs truth) per band of the patients' lesioned-side mu ERD depth."""
    truth = json.loads((folder / "truth.json").read_text())["subjects"]
    erd = {subject: entry["params"]["mu_erd"]["contra"] for subject, entry in truth.items()}
    per_subject: dict[str, list[float]] = {}
    for record in result["records"]:
        model = np.linalg.norm(np.subtract(record["estimates"]["model"]["cap"], record["truth"]["cap"]))
        prior = np.linalg.norm(np.subtract(record["estimates"]["population_mean"]["cap"], record["truth"]["cap"]))
        per_subject.setdefault(record["subject"], []).append(float(prior - model))
    bands = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 1.0)]
    out = []
    for low, high in bands:
        gains = [np.mean(v) for s, v in per_subject.items() if low <= erd[s] < high]
        out.append({"mu_erd_from": low, "mu_erd_to": high, "n_subjects": len(gains),
                    "mean_gain_mm": float(np.mean(gains)) if gains else None})
    return out


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
            s9 = nine["subject_grouped"]["summary"]["skill"]["head"]["truth"]
            sa = every["subject_grouped"]["summary"]["skill"]["head"]["truth"]
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
                     "trial_split_subject_mm_vs_label": trial["errors"]["head"]["label"]["model"]["mean_mm"],
                     "shuffled_control_subject_mm_vs_assigned_label":
                         control["errors"]["head"]["label"]["model"]["mean_mm"],
                     "subject_grouped_mm_vs_label": row["subject_grouped"]["summary"]["errors"]["head"]["label"][
                         "model"]["mean_mm"]})
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

    dataset = load_dataset(cohort(1, "dev-cohort"))
    dataset.to_float32()
    cnn = select_epochs(dataset, [3, 5, 10, 20, 40])
    source = select_epochs(dataset, [10, 30, 60], level="source")
    return {"psd_cnn": cnn, "source_network": source, "baseline": "the other candidates (same folds, same cohort)",
            "evaluation_cohort_seed": 0, "development_cohort_seed": 1}


@benchmark("train_validate_real")
def validate_real() -> dict:
    """The sim-to-real check: a model trained on the eegmmidb schedule, held-out simulated subjects, then eegmmidb."""
    from train.model_dir import load_model_dir
    from train.validate_real import load_check_config, train_check_model, validate

    config = load_check_config()
    started = time.perf_counter()
    model = train_check_model(config, REPO / "models" / "real-check", progress=False)
    train_s = time.perf_counter() - started
    report = validate(load_model_dir(model), REPO.parent / "shared" / "data" / "real" / "eegmmidb", config)
    keys = ("subject", "hand", "n_trials", "n_kept", "model_trials_fallback", "model_trials_right",
            "model_pair_fallback", "model_contralateral", "estimate_mm", "network_trials_right", "network_contralateral",
            "erd_lateralisation", "erd_trials_right", "erd_contralateral")
    simulated, real = report["simulated"], report["real"]
    return {"protocol": report["protocol"], "frame": report["frame"], "baseline": report["baseline"],
            "level": report["level"], "channels": report["channels"], "pipeline": report["pipeline"],
            "preparation": report["preparation"], "decision": report["decision"], "gate": report["gate"],
            "training": {**report["training"], "wall_time_s": round(train_s, 1)},
            "simulated": {"data": simulated["data"], "measures": simulated["measures"],
                          "target_pairs": simulated["target_pairs"], "meets_target": simulated["meets_target"]},
            "real": {"data": real["data"], "measures": real["measures"], "targets": real["targets"],
                     "meets_targets": real["meets_targets"], "repaired_channels": real["repaired_channels"],
                     "between_hands": real["between_hands"],
                     "pairs": [{key: pair[key] for key in keys if key in pair} for pair in real["pairs"]]}}


@benchmark("train_identification_long")
def identification_long() -> dict:
    """Trial split (identification) and its shuffled-label control trained long enough to memorise.

    The table trains every protocol for the same fixed epochs; here the trial split of the paper's
    rows gets 60 epochs (the memorisation regime the papers' numbers suggest). Both the true and the
    shuffled labels reach millimetre errors, so the split measures identification. Head frame, vs the
    (assigned) TMS label, per session.
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
        spec = inputs.spec(paper["level"], paper["channel_set"])
        trial = evaluate_trial_split(spec, items, long, 0)
        control = evaluate_trial_split(spec, items, long, 0, shuffle_labels=True)
        rows.append({"level": paper["level"], "group": paper["group"], "channel_set": paper["channel_set"],
                     "paper_mm": paper["mean_mm"], "n_subjects": trial.summary["n_subjects"],
                     "trial_split_subject_mm_vs_label": trial.summary["errors"]["head"]["label"]["model"]["mean_mm"],
                     "shuffled_control_subject_mm_vs_assigned_label":
                         control.summary["errors"]["head"]["label"]["model"]["mean_mm"]})
    return {"protocol": "trial split within subjects (identification), 60 epochs, + shuffled-label control",
            "frame": FRAME, "baseline": "the paper's reported mean errors (Choi et al. 2025 abstract)", "rows": rows}
