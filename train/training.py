"""Train the hotspot estimator and write a model directory (``invoke train``).

``train_model(dataset, level, channels, config, out)`` is the Python API: it fits the estimator
(:mod:`train.estimator`: network, population prior, calibration) on every labelled subject and writes
the model directory with its contract (:mod:`train.model_dir`). Fitting the network itself, the part
every evaluation protocol reuses on its training folds, is :mod:`train.fitting`. Training data are the accepted windows (edge.pipeline) of every subject with a TMS label, or
for level "source" the sessions' images; each target is the subject's label in its session's cap frame
(model, left-hemisphere frame).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from train.configs import TrainingConfig, load_channel_sets, load_training_config
from train.dataset import Dataset
from train.fitting import predict_gaussian
from train.model import int8_size_bytes
from train import workspace
from train.model_dir import model_contract, write_model_dir
from train.windows import dataset_windows, make_spec, mirrored_copy, resolve_channels

LEVELS = ("raw", "filtered", "clean", "erd", "psd", "source")
def code_version() -> str:
    """The git commit of this checkout (with ``-dirty`` when modified), else the package version."""
    try:
        root = Path(__file__).resolve().parents[1]
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                   text=True, timeout=10, check=True)
        return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return version("hotspot-edge")


def resolve_config(config: TrainingConfig | dict | Path | str | None) -> TrainingConfig:
    """Accept a TrainingConfig, a mapping of table overrides, a TOML path or None (defaults)."""
    if isinstance(config, TrainingConfig):
        return config
    if isinstance(config, dict):
        return load_training_config().replace(**config)
    return load_training_config(config)


def channel_list(dataset: Dataset, channels: str | Sequence[str], mirror: bool) -> list[str]:
    """Resolve a channel-set name (from channels.toml) or an explicit list against ``dataset``."""
    if isinstance(channels, str):
        sets = load_channel_sets()
        if channels not in sets:
            raise HotspotError(f"unknown channel set {channels!r}; known: {', '.join(sets)}", ErrorCode.BAD_ARGUMENT)
        channels = sets[channels]
    return resolve_channels(dataset, channels if isinstance(channels, str) else list(channels), mirror)


def dataset_sfreq(dataset: Dataset) -> float:
    """The sampling rate of the dataset's recordings (they must agree)."""
    rates = {float(rec.sfreq) for subject in dataset.subjects for rec in subject.recordings}
    if len(rates) != 1:
        raise HotspotError(f"recordings have different sampling rates {sorted(rates)}; resample them to one rate",
                           ErrorCode.BAD_SAMPLING_RATE)
    return rates.pop()


def train_model(dataset: Dataset, level: str, channels: str | Sequence[str],
                config: TrainingConfig | dict | Path | str | None, out: Path | str, seed: int = 0,
                progress: bool = True, cache_dir: Path | str | None = None, metadata: dict | None = None) -> Path:
    """Fit the estimator on every labelled subject of ``dataset`` and write a model directory.

    Parameters
    ----------
    dataset : Dataset
    level : str
        Input level: ``raw``, ``filtered``, ``clean``, ``erd``, ``psd`` or ``source``.
    channels : str or sequence of str
        A channel-set name from ``train/configs/channels.toml`` (``all``, ``nine``, ``five``,
        ``bilateral``) or an explicit list (left-hemisphere names when mirroring).
    config : TrainingConfig, dict, path or None
        Hyper-parameters (None: ``train/configs/training.toml``; a dict overrides its tables).
    out : path-like
        The model directory to write.
    seed : int
        Random seed.
    progress : bool
        Show a progress bar.
    cache_dir : path-like, optional
        Cache for computed input windows.
    metadata : dict, optional
        Extra entries for ``metadata.json`` (e.g. the host-side preparation a check applied to its data);
        none of the model contract's keys (:mod:`train.model_dir` writes the contract).

    Returns
    -------
    Path
        ``out``.
    """
    from train.estimator import fit_estimator, labelled, training_examples

    if level not in LEVELS:
        raise HotspotError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}", ErrorCode.BAD_ARGUMENT)
    config = resolve_config(config)
    names = channel_list(dataset, channels, config.data.mirror)
    spec = make_spec(level, names, dataset_sfreq(dataset), config.pipeline)
    data_hash = dataset.content_hash()
    items = labelled(dataset_windows(dataset, spec, config.data.cue, config.data.mirror, cache_dir, data_hash,
                                     config.data.repair_bad_channels, config.data.rest))
    if config.data.augment_mirror:
        items = items + [mirrored_copy(item, spec) for item in items]
    estimator = fit_estimator(spec, items, config, seed, progress="train" if progress else None)
    inputs, targets = training_examples(spec, items, config)
    fitted, _ = predict_gaussian(estimator.model, estimator.normalisation, inputs)
    contract = model_contract(spec, estimator.normalisation, config.data.mirror, estimator.prior,
                              estimator.calibration)
    record = {
        "metrics": {"training_fit": {
            "protocol": "in-sample: inputs of the training subjects themselves (not an accuracy estimate)",
            "frame": "cap, mm, model (left-hemisphere) frame",
            "mean_input_error_mm": float(np.linalg.norm(fitted - targets, axis=1).mean()),
            "n_inputs": int(len(inputs))}},
        "int8_size_estimate_bytes": int8_size_bytes(estimator.model),
        "data_hash": data_hash,
        "code_version": code_version(),
        "seed": int(seed),
        "train_subjects": sorted({item.subject for item in items}),
        "dataset": dataset.name,
        "training": config.to_dict(),
    }
    return write_model_dir(out, estimator.model, contract, {**(metadata or {}), **record})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke train``."""
    parser = ArgumentParser(prog="invoke train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(workspace.DATA),
                        help=f"dataset folder (simulated BIDS-like or EEG files; {workspace.DATA})")
    parser.add_argument("--out", default=str(workspace.MODEL), help=f"model directory to write ({workspace.MODEL})")
    parser.add_argument("--level", default="psd", choices=LEVELS, help="input processing level")
    parser.add_argument("--channels", default="nine", help="channel set name from train/configs/channels.toml")
    parser.add_argument("--config", default="", help="TOML overriding train/configs/training.toml")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--cache", default="", help="folder to cache computed input windows")
    args = parser.parse_args(argv)
    from train.io import load_dataset

    data = Path(args.data)
    if not data.exists():
        raise HotspotError(f"dataset {data} not found; run `invoke simulate --out {data}` first", ErrorCode.BAD_FILE)
    dataset = load_dataset(data)
    out = train_model(dataset, args.level, args.channels, args.config or None, args.out, seed=args.seed,
                      cache_dir=args.cache or None)
    print(f"model directory written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
