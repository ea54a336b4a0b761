"""``invoke validate-real``: does the model put the hotspot in the right hemisphere on real EEG?

The sim-to-real check on the PhysioNet eegmmidb recordings (64 channels, 160 Hz; runs 3/7/11: T0
rest, T1 left-fist and T2 right-fist open/close). For each subject and hand, the trials of that
hand are resampled to the model's rate, the model's channels are picked, and the model predicts a
hotspot per trial; the subject-hand estimate is the median. The model is NOT told which hand moved:
it must be trained on both hemispheres without mirroring (``[data] mirror = false``, e.g.
``train/configs/real_check.toml``), so the hemisphere is its own inference. A pair counts as
correct when the estimate's x lies in the hemisphere contralateral to the moving hand (x > 0 for
the left fist, x < 0 for the right fist; head frame).

Beside it, the ERD-lateralisation baseline on the same files: mu/beta (8-30 Hz) power drop during
movement relative to the rest before the cue, averaged over C3/FC3/CP3 versus C4/FC4/CP4; the side
with the larger drop is its hemisphere. Target: >= 85 % contralateral, never below the baseline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from train import workspace
from train.baselines import erd_map
from train.dataset import Recording
from train.metrics import aggregate_trials
from train.model_dir import ModelDir, load_model_dir
from train.windows import recording_windows

HAND_EVENTS = {"left": "T1", "right": "T2"}
LEFT_CHANNELS = ("C3", "FC3", "CP3")
RIGHT_CHANNELS = ("C4", "FC4", "CP4")
TARGET_SHARE = 0.85
_FILE = re.compile(r"^(S\d{3})R(\d{2})\.edf$", re.IGNORECASE)


def find_runs(folder: Path) -> dict[str, list[Path]]:
    """Subject -> its eegmmidb EDF runs in ``folder`` (files named ``SxxxRyy.edf``)."""
    if not folder.is_dir():
        raise HotspotError(f"eegmmidb folder {folder} not found; pass --data ../shared/data/real/eegmmidb",
                           ErrorCode.BAD_FILE)
    runs: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match:
            runs.setdefault(match.group(1).upper(), []).append(path)
    if not runs:
        raise HotspotError(f"no SxxxRyy.edf files in {folder}", ErrorCode.BAD_FILE)
    return runs


def contralateral(hand: str, x_mm: float) -> bool:
    """Whether a head-frame x lies in the hemisphere opposite ``hand`` (x > 0 is the right hemisphere)."""
    return bool(x_mm > 0) if hand == "left" else bool(x_mm < 0)


def erd_lateralisation(recordings: Sequence[Recording], hand: str) -> float:
    """Mean ERD over C3/FC3/CP3 minus mean ERD over C4/FC4/CP4 for ``hand``'s trials.

    Positive: the larger power drop is on the left hemisphere.
    """
    cue = HAND_EVENTS[hand]
    usable = [rec for rec in recordings if cue in rec.event_id]
    values = erd_map(usable, list(LEFT_CHANNELS + RIGHT_CHANNELS), cue)
    return float(values[:3].mean() - values[3:].mean())


def check_model(model_dir: ModelDir) -> None:
    """Refuse mirrored models: they cannot infer the hemisphere themselves."""
    if model_dir.mirror:
        raise HotspotError(f"{model_dir.path} was trained with mirroring, so it cannot tell the hemisphere; train "
                           "one with --config train/configs/real_check.toml (mirror = false)", ErrorCode.BAD_ARGUMENT)


def validate(model_dir: ModelDir, folder: Path) -> dict:
    """Run the check on every subject in ``folder``; returns the report dictionary."""
    from train.io import read_recording

    check_model(model_dir)
    pairs = []
    for subject, paths in find_runs(folder).items():
        recordings = [read_recording(path) for path in paths]
        missing = sorted(set(model_dir.channels + list(LEFT_CHANNELS + RIGHT_CHANNELS)) - set(recordings[0].ch_names))
        if missing:
            raise HotspotError(f"{subject} lacks channel(s) {', '.join(missing)} the check needs",
                               ErrorCode.MISSING_CHANNELS)
        for hand, cue in HAND_EVENTS.items():
            worn = list(model_dir.contract.wearing(hand).electrodes)
            windows = [recording_windows(rec, model_dir.spec, cue, worn) for rec in recordings
                       if cue in rec.event_id]
            inputs = np.concatenate(windows) if windows else np.zeros((0, *model_dir.spec.input_shape))
            lateralisation = erd_lateralisation(recordings, hand)
            erd_x = -1.0 if lateralisation > 0 else 1.0
            record = {"subject": subject, "hand": hand, "n_trials": int(len(inputs)),
                      "erd_lateralisation": lateralisation,
                      "erd_contralateral": contralateral(hand, erd_x)}
            if len(inputs):
                predictions = model_dir.predict(inputs)
                estimate, dispersion = aggregate_trials(predictions)
                record.update({"estimate_mm": estimate.tolist(), "dispersion_mm": dispersion,
                               "trial_share_contralateral": float(np.mean([contralateral(hand, x)
                                                                           for x in predictions[:, 0]])),
                               "model_contralateral": contralateral(hand, float(estimate[0]))})
            else:
                record.update({"estimate_mm": None, "model_contralateral": False})
            pairs.append(record)
    model_share = float(np.mean([p["model_contralateral"] for p in pairs]))
    erd_share = float(np.mean([p["erd_contralateral"] for p in pairs]))
    return {"model": str(model_dir.path), "level": model_dir.contract.level, "channels": model_dir.channels,
            "data": str(folder), "frame": "head frame, mm (x > 0 = right hemisphere)", "n_pairs": len(pairs),
            "model_contralateral_share": model_share, "erd_baseline_contralateral_share": erd_share,
            "target_share": TARGET_SHARE, "meets_target": bool(model_share >= TARGET_SHARE and model_share >= erd_share),
            "pairs": pairs}


def markdown_report(report: dict) -> str:
    """Per (subject, hand) table and the two shares."""
    lines = ["# Sim-to-real check on eegmmidb (real fist open/close, 64 ch, 160 Hz)", "",
             f"Model `{report['model']}` (level `{report['level']}`, {len(report['channels'])} channels, trained on "
             "simulated data of both hemispheres, no mirroring). The model is not told which hand moved.", "",
             f"- model: hotspot contralateral to the moving hand in **{100 * report['model_contralateral_share']:.0f} %** "
             f"of {report['n_pairs']} (subject, hand) pairs",
             f"- ERD-lateralisation baseline (C3/FC3/CP3 vs C4/FC4/CP4, 8-30 Hz, movement vs rest): "
             f"**{100 * report['erd_baseline_contralateral_share']:.0f} %**",
             f"- target: >= {100 * report['target_share']:.0f} % and not below the baseline: "
             f"**{'met' if report['meets_target'] else 'NOT met'}**", "",
             "| subject | hand | trials | model estimate x, y, z (mm) | model contralateral | trials contralateral "
             "| ERD lateralisation (L - R) | ERD contralateral |", "|---|---|---:|---|---|---:|---:|---|"]
    for pair in report["pairs"]:
        estimate = ", ".join(f"{v:.1f}" for v in pair["estimate_mm"]) if pair["estimate_mm"] else "–"
        share = f"{100 * pair['trial_share_contralateral']:.0f} %" if "trial_share_contralateral" in pair else "–"
        lines.append(f"| {pair['subject']} | {pair['hand']} | {pair['n_trials']} | {estimate} | "
                     f"{'yes' if pair['model_contralateral'] else 'no'} | {share} | "
                     f"{pair['erd_lateralisation']:+.3f} | {'yes' if pair['erd_contralateral'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke validate-real``."""
    parser = ArgumentParser(prog="invoke validate-real", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(workspace.MODEL),
                        help=f"model directory trained with mirror = false ({workspace.MODEL})")
    parser.add_argument("--data", default=str(workspace.REAL_EEGMMIDB),
                        help=f"folder with the eegmmidb SxxxRyy.edf files ({workspace.REAL_EEGMMIDB})")
    parser.add_argument("--out", default=str(workspace.REPORTS / "validate-real"),
                        help=f"report folder ({workspace.REPORTS / 'validate-real'})")
    args = parser.parse_args(argv)
    report = validate(load_model_dir(args.model), Path(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(markdown_report(report))
    print(markdown_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
