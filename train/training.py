"""Train the hotspot CNN and write a model directory (``invoke train``).

``train_model(dataset, level, channels, config, out)`` is the Python API; :func:`fit_network` is the
part every evaluation protocol reuses on its training folds. Training data are the accepted windows
(edge.pipeline) of every subject with a TMS label; each window's target is its subject's label in
the model's (left-hemisphere) frame.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError, run_cli
from edge.normalisation import Normalisation
from train.configs import TrainingConfig, load_channel_sets, load_training_config
from train.dataset import Dataset
from train.model import build_model, int8_size_bytes
from train.model_dir import predict_windows, write_model_dir
from train.tensorflow_setup import import_tensorflow
from train.windows import SubjectWindows, dataset_windows, make_spec, mirrored_copy, resolve_channels

LEVELS = ("raw", "filtered", "clean", "erd", "psd")
_CONFIGURED = False


def configure_tensorflow(threads: int | None = None) -> None:
    """Quiet TensorFlow's logs and use ``threads`` CPU threads (default: all cores, max 2 for ops)."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    tf = import_tensorflow()
    count = threads or min(2, os.cpu_count() or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow was already initialised by the caller; keep its settings
    _CONFIGURED = True


def labelled(items: Sequence[SubjectWindows]) -> list[SubjectWindows]:
    """The subjects that have a TMS label and at least one accepted window."""
    return [item for item in items if item.label is not None and len(item.inputs)]


def stack_training_data(items: Sequence[SubjectWindows], targets: dict[str, np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Stack windows and per-window targets (each subject's label unless ``targets`` overrides it)."""
    items = labelled(items)
    if not items:
        raise HotspotError("no labelled subject with accepted windows to train on; check labels and data quality",
                           ErrorCode.BAD_LABELS)
    inputs = np.concatenate([item.inputs for item in items]).astype(np.float32)
    labels = [np.asarray((targets or {}).get(item.subject, item.label), dtype=np.float32) for item in items]
    outputs = np.concatenate([np.repeat(label[None], len(item.inputs), axis=0) for item, label in zip(items, labels)])
    return inputs, outputs


def progress_callback(epochs: int, description: str):
    """Return a Keras callback that shows a tqdm bar over ``epochs`` with the current loss."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc=description, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.2f}")
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


_COMPILED: dict[tuple, object] = {}


def _compiled_network(fresh, config: TrainingConfig, key: tuple):
    """A compiled network of ``fresh``'s architecture, reset to ``fresh``'s initial state.

    Compiling and tracing a new Keras model costs seconds, which dominates the many small fits of
    an evaluation; so one compiled network per architecture is kept and re-initialised: weights and
    dropout seed states from ``fresh``, optimizer moments and step counter zeroed. The result is
    identical to training ``fresh`` itself.
    """
    import keras

    network = _COMPILED.get(key)
    if network is None:
        network = keras.models.clone_model(fresh)
        loss = keras.losses.Huber(delta=10.0) if config.fit.loss == "huber" else keras.losses.MeanSquaredError()
        network.compile(optimizer=keras.optimizers.Adam(config.fit.learning_rate), loss=loss)
        _COMPILED[key] = network
    network.set_weights(fresh.get_weights())
    for target, source in zip(network.layers, fresh.layers):
        if hasattr(source, "seed_generator"):
            target.seed_generator.state.assign(source.seed_generator.state)
    for variable in network.optimizer.variables:
        if "learning_rate" not in variable.path:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    return network


def fit_network(inputs: np.ndarray, targets: np.ndarray, config: TrainingConfig, seed: int = 0,
                progress: str | None = None):
    """Fit a freshly initialised network on windows and their targets.

    Parameters
    ----------
    inputs : ndarray, shape (n, rows, cols)
        Raw (un-normalised) windows from edge.pipeline.
    targets : ndarray, shape (n, 3)
        Hotspots, head mm, model frame.
    config : TrainingConfig
    seed : int
        Seeds Python, NumPy and TensorFlow (keras.utils.set_random_seed) for reproducibility.
    progress : str, optional
        Show a progress bar with this description.

    Returns
    -------
    model : keras.Model
        A new model holding the trained weights (input: normalised windows, output: head mm).
    normalisation : Normalisation
        Fitted on ``inputs`` only.
    """
    configure_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    normalisation = Normalisation.fit(inputs)
    model = build_model(inputs.shape[1:], targets.mean(axis=0), targets.std(axis=0), config.model)
    network = _compiled_network(model, config, (tuple(inputs.shape[1:]), config.model, config.fit))
    callbacks = [progress_callback(config.fit.epochs, progress)] if progress else []
    network.fit(normalisation.apply(inputs), targets.astype(np.float32), batch_size=config.fit.batch_size,
                epochs=config.fit.epochs, shuffle=True, verbose=0, callbacks=callbacks)
    model.set_weights(network.get_weights())
    return model, normalisation


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
                progress: bool = True, cache_dir: Path | str | None = None) -> Path:
    """Train the deployable model on every labelled subject of ``dataset`` and write a model directory.

    Parameters
    ----------
    dataset : Dataset
    level : str
        Input level: ``raw``, ``filtered``, ``clean``, ``erd`` or ``psd``.
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

    Returns
    -------
    Path
        ``out``.
    """
    if level not in LEVELS:
        raise HotspotError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}", ErrorCode.BAD_ARGUMENT)
    config = resolve_config(config)
    names = channel_list(dataset, channels, config.data.mirror)
    spec = make_spec(level, names, dataset_sfreq(dataset), config.pipeline)
    data_hash = dataset.content_hash()
    items = labelled(dataset_windows(dataset, spec, config.data.cue, config.data.mirror, cache_dir, data_hash,
                                     config.data.repair_bad_channels))
    if config.data.augment_mirror:
        items = items + [mirrored_copy(item, spec) for item in items]
    inputs, targets = stack_training_data(items)
    model, normalisation = fit_network(inputs, targets, config, seed, progress="train" if progress else None)
    fitted = predict_windows(model, normalisation, inputs)
    metadata = {
        "level": level,
        "channels": names,
        "mirror": config.data.mirror,
        "sfreq": spec.sfreq,
        "input_shape": list(inputs.shape[1:]),
        "metrics": {"training_fit": {
            "protocol": "in-sample: windows of the training subjects themselves (not an accuracy estimate)",
            "frame": "head, mm, model (left-hemisphere) frame",
            "mean_window_error_mm": float(np.linalg.norm(fitted - targets, axis=1).mean()),
            "n_windows": int(len(inputs))}},
        "int8_size_estimate_bytes": int8_size_bytes(model),
        "data_hash": data_hash,
        "code_version": code_version(),
        "seed": int(seed),
        "train_subjects": sorted({item.subject for item in items}),
        "dataset": dataset.name,
        "training": config.to_dict(),
    }
    return write_model_dir(out, model, spec, normalisation, metadata)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke train``."""
    parser = argparse.ArgumentParser(prog="invoke train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (simulated BIDS-like or EEG files)")
    parser.add_argument("--out", required=True, help="model directory to write")
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
