"""Train the hotspot estimator and write a model directory (``invoke train``).

``train_model(dataset, level, channels, config, out)`` is the Python API: it fits the estimator
(:mod:`train.estimator`: network, population prior, calibration) on every labelled subject and writes
the model directory. :func:`fit_network` is the part every evaluation protocol reuses on its training
folds. Training data are the accepted windows (edge.pipeline) of every subject with a TMS label, or
for level "source" the sessions' images; each target is the subject's label in its session's cap frame
(model, left-hemisphere frame).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.normalisation import Normalisation
from train.configs import TrainingConfig, load_channel_sets, load_training_config
from train.dataset import Dataset
from train.model import build_model, build_source_model, gaussian_nll, int8_size_bytes
from train.model_dir import predict_gaussian, write_model_dir
from train.tensorflow_setup import import_tensorflow
from train.windows import SubjectWindows, dataset_windows, make_spec, mirrored_copy, resolve_channels

LEVELS = ("raw", "filtered", "clean", "erd", "psd", "source")
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
        network.compile(optimizer=keras.optimizers.Adam(config.fit.learning_rate), loss=_loss(config.fit.loss))
        _COMPILED[key] = network
    network.set_weights(fresh.get_weights())
    for target, source in zip(network.layers, fresh.layers):
        if hasattr(source, "seed_generator"):
            target.seed_generator.state.assign(source.seed_generator.state)
    for variable in network.optimizer.variables:
        if "learning_rate" not in variable.path:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    return network


def _loss(name: str):
    """The Keras loss on the model's 6 outputs: Gaussian NLL, or MSE/Huber on the means only."""
    import keras

    if name == "gaussian_nll":
        return gaussian_nll
    if name == "laplace_nll":
        from train.model import laplace_nll

        return laplace_nll
    point = keras.losses.Huber(delta=10.0) if name == "huber" else keras.losses.MeanSquaredError()
    return lambda y_true, y_pred: point(y_true, y_pred[:, :3])


def fit_network(spec, inputs: np.ndarray, targets: np.ndarray, config: TrainingConfig, seed: int = 0,
                progress: str | None = None):
    """Fit a freshly initialised network on inputs and their targets.

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
        The level decides the architecture (:func:`train.model.build_source_model` for "source").
    inputs : ndarray, shape (n, rows, cols)
        Raw (un-normalised) inputs (windows from edge.pipeline, or source images).
    targets : ndarray, shape (n, 3)
        Hotspots, cap frame, mm, model frame.
    config : TrainingConfig
    seed : int
        Seeds Python, NumPy and TensorFlow (keras.utils.set_random_seed) for reproducibility.
    progress : str, optional
        Show a progress bar with this description.

    Returns
    -------
    model : keras.Model
        A new model holding the trained weights (input: normalised inputs, output: mean and log-SD, mm).
    normalisation : Normalisation
        Fitted on ``inputs`` only.
    """
    configure_tensorflow()
    import keras

    from train.estimator import fit_normalisation

    keras.utils.set_random_seed(seed)
    normalisation = fit_normalisation(spec, inputs)
    mean, std = targets.mean(axis=0), targets.std(axis=0)
    if spec.level == "source":
        model = build_source_model(inputs.shape[1:], spec.source_space.points_mm, mean, std, config.model)
        _initial_scores(model, len(spec.bands))
        epochs = config.fit.source_epochs
    else:
        model = build_model(inputs.shape[1:], mean, std, config.model)
        epochs = config.fit.epochs
    network = _compiled_network(model, config, (spec.level, tuple(inputs.shape[1:]), config.model, config.fit))
    callbacks = [progress_callback(epochs, progress)] if progress else []
    network.fit(normalisation.apply(inputs), targets.astype(np.float32), batch_size=config.fit.batch_size,
                epochs=epochs, shuffle=True, verbose=0, callbacks=callbacks)
    model.set_weights(network.get_weights())
    return model, normalisation


def _initial_scores(model, n_bands: int) -> None:
    """Start the source network's grid scores at the physics: strong power drop and good pattern fit score high.

    Without a convolution before it, the score layer weighs the (standardised) planes: -1 for each band's
    power change (more negative dB = stronger desynchronisation) and +1 for each band's pattern fit.
    """
    layer = model.get_layer("score")
    kernel, bias = layer.get_weights()
    if kernel.shape[2] == 2 * n_bands:
        kernel[...] = np.array([-1.0] * n_bands + [1.0] * n_bands).reshape(kernel.shape)
        layer.set_weights([kernel, np.zeros_like(bias)])


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
        Extra entries for ``metadata.json`` (e.g. the host-side preparation a check applied to its data).

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
    record = {
        "level": level,
        "channels": names,
        "mirror": config.data.mirror,
        "sfreq": spec.sfreq,
        "input_shape": list(inputs.shape[1:]),
        "prior": estimator.prior.to_dict(),
        "calibration": estimator.calibration.to_dict(),
        "aggregation": "session_csd" if level == "source" else "median_of_trials",
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
    return write_model_dir(out, estimator.model, spec, estimator.normalisation, {**(metadata or {}), **record})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke train``."""
    parser = ArgumentParser(prog="invoke train", description=__doc__.splitlines()[0])
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
