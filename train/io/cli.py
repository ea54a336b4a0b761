"""``invoke load PATH`` / ``python -m train.io PATH``: import recordings and labels, print what was found."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError
from train.dataset import Dataset
from train.io.loading import load_dataset


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``invoke load``."""
    parser = ArgumentParser(prog="invoke load", description="Import EEG recordings and TMS labels and summarise them.")
    parser.add_argument("path", help="recording file, folder of recordings, or simulated (BIDS-like) folder")
    parser.add_argument("--labels", help="TMS labels: CSV (subject,x,y,z,frame), Brainsight .txt, Localite .xml")
    parser.add_argument("--fiducials", help="nasion/LPA/RPA per subject in the labels' space (CSV or Brainsight)")
    parser.add_argument("--events", help="events file (BIDS events.tsv or MNE .eve) for a single recording")
    parser.add_argument("--channels", help="comma-separated electrode names for files without them (OpenBCI)")
    parser.add_argument("--board", help="board of a BrainFlow CSV: cyton, cyton_daisy, ganglion, synthetic")
    parser.add_argument("--require-channels", help="comma-separated 10-05 names every recording must have")
    parser.add_argument("--sfreq", type=float, help="sampling rate every recording must have, Hz")
    parser.add_argument("--allow-no-events", action="store_true", help="accept recordings without events")
    parser.add_argument("--subject", help="subject of a Brainsight/Localite label file without sub-<id> in its path")
    parser.add_argument("--target", help="name of the hotspot target in a Brainsight/Localite file")
    return parser


def summary(dataset: Dataset) -> list[str]:
    """Return printable lines describing a dataset: subjects, recordings, rates, events and labels."""
    recordings = [recording for subject in dataset.subjects for recording in subject.recordings]
    rates = sorted({recording.sfreq for recording in recordings})
    lines = [f"dataset {dataset.name}: {len(dataset.subjects)} subject(s), {len(recordings)} recording(s), "
             f"{'/'.join(f'{rate:g}' for rate in rates)} Hz"]
    for subject in dataset.subjects:
        label = "none" if subject.label is None else "(" + ", ".join(f"{v:.1f}" for v in subject.label) + ") mm head"
        lines.append(f"{subject.subject}  group {subject.group}  hand {subject.hand}  label {label}")
        for recording in subject.recordings:
            counts = {name: int(np.sum(recording.events[:, 1] == code)) for name, code in recording.event_id.items()}
            events = " ".join(f"{name}={count}" for name, count in counts.items()) or "none"
            lines.append(f"  {recording.session}  {len(recording.ch_names)} ch  {recording.sfreq:g} Hz  "
                         f"{recording.data.shape[1] / recording.sfreq:.1f} s  events {events}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Load a dataset as the arguments say and print its summary.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; user errors are raised as :class:`edge.errors.HotspotError`.
    """
    args = build_parser().parse_args(argv)
    dataset = load_dataset(args.path, args.labels, args.fiducials, events=args.events,
                           channel_names=_names(args.channels), board=args.board,
                           required_channels=_names(args.require_channels), required_sfreq=args.sfreq,
                           require_events=not args.allow_no_events, label_subject=args.subject, target=args.target)
    print("\n".join(summary(dataset)))
    return 0
