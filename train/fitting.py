"""Fitting the network and running it on raw inputs (the part of training every protocol shares).

:func:`fit_network` trains a freshly initialised network (:mod:`train.model`) on inputs and their targets
(cap frame, mm, model frame) with its own input normalisation; every evaluation protocol calls it on its
training folds, and :mod:`train.estimator` wraps it with the prior and the calibration.
:func:`predict_windows` / :func:`predict_gaussian` run a network on raw (un-normalised) inputs.
"""

from __future__ import annotations

import os

import numpy as np

from edge.contract import split_outputs
from edge.errors import ErrorCode, HotspotError
from edge.normalisation import Normalisation
from train.configs import TrainingConfig
from train.model import build_model, build_source_model, gaussian_nll
from train.tensorflow_setup import import_tensorflow

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


def fit_normalisation(spec, inputs: np.ndarray) -> Normalisation:
    """Per-element standardisation; per plane for the source level (its maps compare across the grid)."""
    if spec.level == "source":
        return Normalisation.fit_planes(inputs, inputs.shape[1] // spec.source_space.shape[0])
    return Normalisation.fit(inputs)


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


def predict_gaussian(model, normalisation: Normalisation, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means (n, 3) and per-axis standard deviations (n, 3) in mm of raw inputs."""
    return split_outputs(predict_windows(model, normalisation, inputs))


def predict_windows(model, normalisation: Normalisation, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Normalise ``inputs`` and run ``model`` on them; returns the raw outputs (n, 6)."""
    windows = np.asarray(inputs, dtype=np.float32)
    if windows.ndim == 2:
        windows = windows[None]
    expected = tuple(normalisation.mean.shape)
    if windows.ndim != 3 or windows.shape[1:] != expected:
        raise HotspotError(f"input windows have shape {windows.shape[1:]}, the model expects {expected}; "
                           "compute them with the model's pipeline spec", ErrorCode.BAD_ARGUMENT)
    if len(windows) == 0:
        return np.zeros((0, 6))
    normalised = normalisation.apply(windows)
    outputs = [np.asarray(model(normalised[start:start + batch_size], training=False))
               for start in range(0, len(normalised), batch_size)]
    return np.concatenate(outputs).astype(np.float64)
