"""Simulate a whole cohort into the BIDS-like folder, print its summary; the ``invoke simulate`` CLI."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from edge.errors import ArgumentParser, ErrorCode, HotspotError
from edge.montage import mirror_channel_name
from train import workspace
from train.bids import write_dataset_files, write_recording
from train.simulate.config import SimulationConfig, as_config, load_config
from train.simulate.subject import HAND_EVENTS, simulate_subject
from train.simulate.summary import band_rms, mu_erd

GENERATED_BY = "hotspot-edge train.simulate"


def subject_plan(config: SimulationConfig) -> list[tuple[str, str, int]]:
    """(subject id, group, index in group) for every subject: healthy first, then stroke."""
    cohort = config["cohort"]
    plan = [("healthy", index) for index in range(cohort["n_healthy"])]
    plan += [("stroke", index) for index in range(cohort["n_stroke"])]
    return [(f"sub-{number:03d}", group, index) for number, (group, index) in enumerate(plan, start=1)]


def recording_stats(subject_hotspot_hemisphere: str, recording) -> dict[str, float | None]:
    """C3 amplitude (1-40 Hz RMS) and mu ERD at the hotspot-side C3/C4 and its mirror."""
    contra = "C3" if subject_hotspot_hemisphere == "left" else "C4"
    ipsi = mirror_channel_name(contra)
    present = [name for name in (contra, ipsi) if name in recording.ch_names]
    cue = "move" if "move" in recording.event_id else HAND_EVENTS["right" if contra == "C3" else "left"]
    erd = dict(zip(present, mu_erd(recording, present, cue=cue))) if present else {}
    return {"c3_rms_uv": band_rms(recording, "C3") if "C3" in recording.ch_names else None,
            "mu_erd_contra": float(erd[contra]) if contra in erd else None,
            "mu_erd_ipsi": float(erd[ipsi]) if ipsi in erd else None}


def _simulate_one(config: SimulationConfig, plan_item: tuple[str, str, int], out: Path) -> tuple[dict, dict, dict]:
    subject_id, group, index = plan_item
    subject, truth = simulate_subject(config, group, index, subject_id)
    for recording, session in zip(subject.recordings, truth["sessions"]):
        write_recording(recording, out, session["artifacts"]["bad_channels"], config["recording"]["reference"],
                        config["recording"]["line_freq"])
    row = {"participant_id": subject_id, "group": group, "hand": subject.hand, **subject.meta}
    stats = recording_stats(subject.meta["hotspot_hemisphere"], subject.recordings[0])
    if subject.label is not None:
        stats["label_error_mm"] = float(np.linalg.norm(subject.label - subject.truth))
    return row, truth, stats


def _prepare_output(out: Path) -> None:
    """Refuse a non-empty folder that is not a previous simulation; clear a previous simulation's subjects."""
    if not out.exists():
        out.mkdir(parents=True)
        return
    if not out.is_dir():
        raise HotspotError(f"output {out} exists and is not a folder; choose another --out", ErrorCode.BAD_ARGUMENT)
    description = out / "dataset_description.json"
    if description.is_file():
        try:
            generated = json.loads(description.read_text())["GeneratedBy"][0]["Name"]
        except (ValueError, KeyError, IndexError, TypeError):
            generated = ""
        if generated == GENERATED_BY:
            for folder in out.glob("sub-*"):
                shutil.rmtree(folder)
            return
    if any(out.iterdir()):
        raise HotspotError(f"output folder {out} is not empty and not a previous simulation; choose another --out",
                           ErrorCode.BAD_ARGUMENT)


def simulate_cohort(config: SimulationConfig | Mapping[str, Any] | str | Path | None, out: str | Path,
                    jobs: int | None = None) -> Path:
    """Simulate every subject of the configured cohort and write the BIDS-like folder.

    Parameters
    ----------
    config : SimulationConfig, mapping of overrides, TOML path or None (defaults)
    out : str or Path
        Output folder (created; a previous simulation there is replaced).
    jobs : int, optional
        Worker processes (default: CPU count). Results do not depend on it.

    Returns
    -------
    Path
        ``out``. Its ``summary.json`` holds the cohort summary (see :func:`summarise`).
    """
    config = as_config(config)
    out = Path(out)
    _prepare_output(out)
    plan = subject_plan(config)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(plan)))
    if jobs == 1:
        results = [_simulate_one(config, item, out) for item in plan]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_simulate_one, [config] * len(plan), plan, [out] * len(plan)))
    rows = [row for row, _, _ in results]
    truth = {row["participant_id"]: subject_truth for row, subject_truth, _ in results}
    header = f"# Exact configuration of this simulation ({config.source}).\n"
    write_dataset_files(out, rows, truth, header + tomli_w.dumps(config.to_dict()))
    summary = summarise(rows, [stats for _, _, stats in results])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out


def summarise(rows: Sequence[Mapping], stats: Sequence[Mapping]) -> dict:
    """Cohort summary: counts, MEP-negative, label error, C3 amplitude range, mean mu ERD contra vs ipsi."""
    def values(key: str, group: str | None = None) -> list[float]:
        return [entry[key] for row, entry in zip(rows, stats)
                if entry.get(key) is not None and (group is None or row["group"] == group)]

    summary: dict[str, Any] = {"n_subjects": len(rows)}
    for group in ("healthy", "stroke"):
        members = [row for row in rows if row["group"] == group]
        summary[group] = {
            "n": len(members),
            "hotspot_left": sum(row["hotspot_hemisphere"] == "left" for row in members),
            "hotspot_right": sum(row["hotspot_hemisphere"] == "right" for row in members),
            "mep_negative": sum(not row["has_tms"] for row in members),
            "mean_mu_erd_contra": float(np.mean(values("mu_erd_contra", group))) if values("mu_erd_contra", group)
            else None,
            "mean_mu_erd_ipsi": float(np.mean(values("mu_erd_ipsi", group))) if values("mu_erd_ipsi", group)
            else None,
        }
    errors, amplitudes = values("label_error_mm"), values("c3_rms_uv")
    summary["mean_label_error_mm"] = float(np.mean(errors)) if errors else None
    summary["c3_rms_uv_range"] = [float(min(amplitudes)), float(max(amplitudes))] if amplitudes else None
    return summary


def format_summary(summary: Mapping, out: Path) -> str:
    """Human-readable lines for the CLI."""
    def number(value, pattern="{:.2f}"):
        return "n/a" if value is None else pattern.format(value)

    lines = [f"simulated {summary['n_subjects']} subjects into {out}"]
    for group in ("healthy", "stroke"):
        part = summary[group]
        lines.append(f"  {group:8s} n={part['n']:3d}"
                     f"  hotspot left/right={part['hotspot_left']}/{part['hotspot_right']}"
                     f"  MEP-negative={part['mep_negative']}  mean mu ERD (8-13 Hz, C3/C4, ses-1) contra="
                     f"{number(part['mean_mu_erd_contra'], '{:.0%}')} ipsi={number(part['mean_mu_erd_ipsi'], '{:.0%}')}")
    amplitude = summary["c3_rms_uv_range"]
    lines.append(f"  mean |TMS label - truth| = {number(summary['mean_label_error_mm'])} mm (head frame)")
    lines.append("  C3 amplitude (1-40 Hz RMS, ses-1) = "
                 + ("n/a (no C3)" if amplitude is None else f"{amplitude[0]:.1f}-{amplitude[1]:.1f} uV"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: simulate a cohort (``invoke simulate``) and print its summary."""
    parser = ArgumentParser(prog="invoke simulate", description="Simulate a hand-movement EEG cohort with "
                                     "known motor hotspots into a BIDS-like folder.")
    parser.add_argument("--out", default=str(workspace.DATA), help=f"output folder ({workspace.DATA})")
    parser.add_argument("--config", default=None, help="TOML file overriding train/simulate/defaults.toml")
    parser.add_argument("--seed", type=int, default=None, help="random seed (cohort.seed)")
    parser.add_argument("--n-healthy", type=int, default=None, help="number of healthy subjects (cohort.n_healthy)")
    parser.add_argument("--n-stroke", type=int, default=None, help="number of stroke patients (cohort.n_stroke)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    args = parser.parse_args(argv)
    cohort = {key: value for key, value in (("seed", args.seed), ("n_healthy", args.n_healthy),
                                            ("n_stroke", args.n_stroke)) if value is not None}
    config = load_config(args.config, {"cohort": cohort} if cohort else None)
    out = simulate_cohort(config, args.out, args.jobs)
    print(format_summary(json.loads((out / "summary.json").read_text()), out))
    return 0
