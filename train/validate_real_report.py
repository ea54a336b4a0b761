"""The sim-to-real check's report (``report.md``), rendered from :func:`train.validate_real.validate`'s dictionary.

Per measure (trial, (subject, hand) pair, between hands) the model (the gated decision), the network
alone, the ERD-lateralisation baseline and chance side by side, with the kept counts, Wilson intervals, the subject bootstrap and the targets; then
every real pair. Nothing here computes an estimate.
"""

from __future__ import annotations


def _share(entry: dict) -> str:
    if entry.get("share") is None:
        return "–"
    text = f"{entry['correct']}/{entry['n']} = {100 * entry['share']:.0f} %"
    if entry.get("ci95_wilson"):
        low, high = entry["ci95_wilson"]
        text += f" (Wilson 95 % {100 * low:.0f}-{100 * high:.0f} %"
        if entry.get("ci95_subject_bootstrap"):
            b_low, b_high = entry["ci95_subject_bootstrap"]
            text += f"; subject bootstrap {100 * b_low:.0f}-{100 * b_high:.0f} %"
        text += f"; p vs chance {entry['p_vs_chance']:.3g})"
    return text


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f} %"


def _chance(entry: dict) -> str:
    if not entry.get("range95"):
        return "50 %"
    low, high = entry["range95"]
    return f"50 % (a coin: {100 * low:.0f}-{100 * high:.0f} %)"


def measures_table(found: dict) -> list[str]:
    """Markdown rows: the three measures for the model, the network alone, the baseline and chance."""
    trials, pairs, hands = found["trials"], found["pairs"], found["between_hands"]
    rows = [("per trial", f"{trials['n_kept']} of {trials['n_trials']} trials", trials),
            ("per (subject, hand) pair", f"{pairs['n_usable']} of {pairs['n_pairs']} pairs", pairs),
            ("between hands, per subject", f"{hands['n_usable']} of {hands['n_subjects']} subjects", hands)]
    return ["| measure | kept | model | network alone | ERD baseline | chance |", "|---|---|---|---|---|---|",
            *(f"| {name} | {kept} | {_share(entry['model'])} | {_share(entry['network'])} | "
              f"{_share(entry['erd_baseline'])} | {_chance(entry['chance'])} |" for name, kept, entry in rows)]


def markdown_report(report: dict) -> str:
    """The check as a Markdown page: the simulated check, the real check, and the real pairs."""
    simulated, real = report["simulated"], report["real"]
    training = report["training"]
    low, median, high = training["windows_per_subject_min_median_max"]
    lines = ["# Sim-to-real check on eegmmidb (real fist open/close, 64 ch, 160 Hz)", "",
             f"Model `{report['model']}`: level `{report['level']}`, {len(report['channels'])} channels, trained on "
             f"{training['cohort']['n_subjects']} simulated subjects of the eegmmidb schedule (both hands, no "
             f"mirroring; windows per subject {low}-{high}, median {median:g}; "
             f"{training['subjects_with_repaired_channels']} subjects had channels repaired, none dropped). "
             f"Baseline: the run's pooled rest ({report['pipeline']['baseline_mode']}, "
             f"{report['pipeline']['rest_window'][0]:g}-{report['pipeline']['rest_window'][1]:g} s after each T0). "
             f"Preparation: {report['preparation']}. {report['frame']}.", "",
             f"Decision: {report['decision']}.", "",
             f"## Before real data: {simulated['data']}", "",
             *measures_table(simulated["measures"]), "",
             f"Target: hemisphere right for >= {100 * simulated['target_pairs']:.0f} % of pairs: "
             f"**{'met' if simulated['meets_target'] else 'NOT met'}**.", "",
             f"## Real eegmmidb ({real['data']})", "", *measures_table(real["measures"]), "",
             "| measure | target | model | network alone | ERD baseline | model >= baseline |",
             "|---|---|---|---|---|---|"]
    for measure, met in real["targets"].items():
        lines.append(f"| {measure.replace('_', ' ')} | >= {_percent(met['target_share'])} | "
                     f"{_percent(met['model_share'])} ({'met' if met['model_meets_target'] else 'missed'}) | "
                     f"{_percent(met['network_share'])} | {_percent(met['erd_baseline_share'])} | "
                     f"{'yes' if met['model_at_or_above_baseline'] else 'no'} |")
    lines += ["", "| subject | hand | kept / trials | model right | pair from the baseline | trials right (model) "
              "| trials from the baseline "
              "| network x (mm) | network right | trials right (network) | ERD lateralisation (L - R) | ERD right "
              "| trials right (ERD) |", "|---|---|---|---|---|---|---|---:|---|---|---:|---|---|"]
    for pair in real["pairs"]:
        if "estimate_mm" not in pair:
            lines.append(f"| {pair['subject']} | {pair['hand']} | 0 / {pair['n_trials']} |" + " – |" * 10)
            continue
        kept = pair["n_kept"]
        lines.append(f"| {pair['subject']} | {pair['hand']} | {kept} / {pair['n_trials']} | "
                     f"{'yes' if pair['model_contralateral'] else 'no'} | "
                     f"{'yes' if pair['model_pair_fallback'] else 'no'} | {pair['model_trials_right']}/{kept} | "
                     f"{pair['model_trials_fallback']}/{kept} | {pair['estimate_mm'][0]:+.1f} | "
                     f"{'yes' if pair['network_contralateral'] else 'no'} | {pair['network_trials_right']}/{kept} | "
                     f"{pair['erd_lateralisation']:+.3f} | {'yes' if pair['erd_contralateral'] else 'no'} | "
                     f"{pair['erd_trials_right']}/{kept} |")
    return "\n".join(lines) + "\n"
