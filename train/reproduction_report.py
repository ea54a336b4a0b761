"""The reproduction's report: the side-by-side table (``table.md``) and its figures, from ``results.json``'s report.

:mod:`train.reproduce` runs the evaluation and hands its report dictionary here; nothing here computes
an estimate. The table states each row's protocol, frame and baselines (the population mean, the
FCC3h rule, the ERD peak, the physics baseline, the source oracle) beside the paper's numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.metrics import format_summary


def _mm(summary: dict) -> str:
    return "n/a" if not summary["n"] else f"{summary['mean_mm']:.2f} ± {summary['sd_mm']:.2f}"


def _skill(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


BASELINES = ("population_mean", "cap_prior", "anatomical_rule", "erd_peak", "physics", "oracle")


def _errors(result: dict, frame: str, target: str, method: str = "model") -> dict:
    return result["summary"]["errors"][frame][target][method]


def markdown_table(report: dict) -> str:
    """The side-by-side table (paper, trial split, control, subject-grouped with baselines and skill, both frames)."""
    lines = [
        "# Reproduction of Choi et al. 2025 (J NeuroEng Rehabil 22:193)", "",
        f"Dataset `{report['dataset']}` ({report['n_subjects']} subjects, hash {report['data_hash'][:12]}). "
        f"Frame: {report['frame']}. The unit of estimation is a session (one cap placement); a subject's error is "
        "the mean over its sessions, and errors are mean ± SD over subjects, in mm. Skill = (population mean - "
        "estimate) / (population mean - oracle) against the true hotspot, in the same frame.", "",
        "**Trial split = identification**: trials of the same subjects are in training and test. The shuffled-label "
        "control trains and scores every subject with another subject's hotspot; an equally small error there "
        "shows the split measures subject identification, not localisation. **Subject-grouped** = no subject in "
        "both training and test (the honest number).", "",
        "Baselines beside every subject-grouped row, on the same test sessions and against the truth: population "
        "mean of the training subjects' hotspots, the FCC3h anatomical rule, interpolated ERD peak + mean training "
        "offset, the physics baseline (beamformer power-drop peak + learned shrinkage toward the population mean), "
        "and the simulator's source oracle.", "",
        "| level | group | channels | paper (mm) | trial split (identification) vs label | shuffled-label control "
        "| grouped vs label (head) | grouped vs truth (head) | population mean | population mean through the cap "
        "| FCC3h rule | ERD peak + offset | physics | source oracle | skill head | grouped vs truth (cap) "
        "| population mean (cap) | physics (cap) | skill cap | coverage 90 % (truth, cap) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        paper = f"{row['paper']['mean_mm']:.2f}" if row["paper"] else "–"
        trial, control, grouped = row["trial_split"], row["trial_split_control"], row["subject_grouped"]
        summary = grouped["summary"]
        lines.append(
            f"| {row['level']} | {row['group']} | {row['channel_set']} | {paper} | "
            f"{_mm(_errors(trial, 'head', 'label'))} | {_mm(_errors(control, 'head', 'label'))} | "
            f"{_mm(_errors(grouped, 'head', 'label'))} | {_mm(_errors(grouped, 'head', 'truth'))} | "
            + "".join(f"{_mm(_errors(grouped, 'head', 'truth', method))} | " for method in BASELINES)
            + f"{_skill(summary['skill']['head']['truth'])} | {_mm(_errors(grouped, 'cap', 'truth'))} | "
            f"{_mm(_errors(grouped, 'cap', 'truth', 'population_mean'))} | "
            f"{_mm(_errors(grouped, 'cap', 'truth', 'physics'))} | {_skill(summary['skill']['cap']['truth'])} | "
            f"{_share(summary['coverage90']['cap']['truth'])} |")
    if any(not row["subject_grouped"]["summary"]["n_subjects"] for row in report["rows"]):
        lines += ["", "n/a: no subject had enough accepted windows for this row (the device's quality verdict "
                  "rejects a whole window when any of its channels is flat, railed or above the artifact "
                  "threshold, and only the sets in `repair_bad_channels` get session-bad channels "
                  "interpolated; see `notes` in results.json)."]
    if not report.get("complete", True):
        lines += ["", f"**Partial table**: {len(report['rows'])} of the configured cells were finished."]
    notes = [f"- {p['level']}/{p['group']}/{p['channel_set']}: {p['note']}" for p in
             (row["paper"] for row in report["rows"]) if p]
    if notes:
        lines += ["", "Paper numbers (abstract only; the mapping to rows is our reading):", *notes]
    headline = report["headline"]
    lines += ["", f"## Headline: level `{headline['level']}`, channels `{headline['channel_set']}`", ""]
    for frame in ("head", "cap"):
        lines += [f"### {frame} frame, error vs the true hotspot", "",
                  "| protocol | estimate | population mean | population mean through the cap | FCC3h rule "
                  "| ERD peak + offset | physics | oracle | skill (95 % CI) | gain over prior (95 % CI) "
                  "| coverage 90 % (95 % CI) |",
                  "|---|---|---|---|---|---|---|---|---:|---|---:|"]
        for name, result in headline["protocols"].items():
            summary = result["summary"]
            if not summary["n_subjects"]:
                lines.append(f"| {result['protocol']} | {'; '.join(result['notes'])} | | | | | | | | | |")
                continue
            gain = summary["gain_over_prior_mm"][frame]["truth"]
            cells = [format_summary(_errors(result, frame, "truth"))]
            cells += [_mm(_errors(result, frame, "truth", m)) for m in BASELINES]
            cells += [_with_interval(_skill(summary["skill"][frame]["truth"]),
                                     summary.get("skill_ci95", {}).get(frame, {}).get("truth"), _skill),
                      f"{gain['mean_mm']:+.2f} ({gain['ci95_mm'][0]:+.2f} … {gain['ci95_mm'][1]:+.2f})",
                      _with_interval(_share(summary["coverage90"][frame]["truth"]),
                                     summary.get("coverage90_ci95", {}).get(frame, {}).get("truth"), _share)]
            lines.append(f"| {result['protocol']} ({name}) | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"Wall time: {report['elapsed_s']:.0f} s.", ""]
    return "\n".join(lines)


def _share(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.0f} %"


def _with_interval(text: str, interval: list[float] | None, form) -> str:
    """``text`` followed by its 95 % interval in the same form (results written before intervals have none)."""
    if not interval or not all(value is not None and np.isfinite(value) for value in interval):
        return text
    return f"{text} ({form(interval[0])} … {form(interval[1])})"


def write_figures(report: dict, out: Path) -> list[Path]:
    """Scalp maps of true vs predicted hotspots (headline LOSO) and error distributions per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train.head import standard_positions_head_mm

    written = []
    electrodes = standard_positions_head_mm(["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1", "FCC3h",
                                             "Cz", "FCz", "CPz"])
    for name, result in report["headline"]["protocols"].items():
        if not name.startswith("loso_") or not result["records"]:
            continue
        figure, axis = plt.subplots(figsize=(6, 6))
        for label, position in electrodes.items():
            axis.plot(position[0], position[1], "s", color="0.7", markersize=4)
            axis.annotate(label, position[:2], fontsize=7, color="0.4", xytext=(3, 3), textcoords="offset points")
        for record in result["records"]:
            truth = record["truth"]["head"] if record["truth"]["head"] is not None else record["label"]["head"]
            estimate = record["estimates"]["model"]["head"]
            if truth is None or estimate is None:
                continue
            axis.plot([truth[0], estimate[0]], [truth[1], estimate[1]], "-", color="0.6", linewidth=0.8)
            axis.plot(truth[0], truth[1], "o", color="tab:green", markersize=4)
            axis.plot(estimate[0], estimate[1], "x", color="tab:red", markersize=5)
        axis.plot([], [], "o", color="tab:green", label="true hotspot")
        axis.plot([], [], "x", color="tab:red", label="predicted (LOSO)")
        axis.set_xlabel("x (mm, head frame, toward right ear)")
        axis.set_ylabel("y (mm, toward nasion)")
        axis.set_title(f"{result['protocol']}: {name.removeprefix('loso_')}\n(top view, left-hemisphere frame)")
        axis.set_aspect("equal")
        axis.legend(loc="lower right", fontsize=8)
        path = out / f"scalp_map_{name.removeprefix('loso_')}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    written.append(_error_distributions(report, out, plt))
    return written


def _error_distributions(report: dict, out: Path, plt) -> Path:
    from train.metrics import euclidean_errors

    def errors(result: dict, method: str, target: str) -> list[float]:
        return [float(euclidean_errors(r["estimates"][method]["head"], r[target]["head"])[0])
                for r in result["records"]
                if r[target].get("head") is not None and r["estimates"][method].get("head") is not None]

    series = []
    headline = report["headline"]
    for row in report["rows"]:
        if (row["level"], row["channel_set"]) == (headline["level"], headline["channel_set"]):
            series.append((f"trial split\n{row['group']}", errors(row["trial_split"], "model", "label")))
            series.append((f"shuffled ctrl\n{row['group']}", errors(row["trial_split_control"], "model", "target")))
            series.append((f"grouped k-fold\n{row['group']}", errors(row["subject_grouped"], "model", "label")))
    for name, result in headline["protocols"].items():
        if result["records"]:
            series.append((name.replace("_", "\n", 1), errors(result, "model", "label")))
            if name.startswith("loso_"):
                series.append((f"pop. mean\n{name.removeprefix('loso_')}", errors(result, "population_mean", "label")))
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(series)), 4.5))
    axis.boxplot([values or [np.nan] for _, values in series], showfliers=True)
    axis.set_xticks(range(1, len(series) + 1), [name for name, _ in series], fontsize=7)
    axis.set_ylabel("error vs TMS label (mm, head frame, per session)")
    axis.set_title(f"Error distributions per protocol ({headline['level']}, {headline['channel_set']} channels)")
    axis.axhline(8.1, color="tab:orange", linestyle=":", linewidth=1)
    axis.text(0.6, 8.4, "TMS re-test 8.1 mm", fontsize=7, color="tab:orange")
    path = out / "error_distributions.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
