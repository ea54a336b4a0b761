"""The model directory: a trained Keras model plus everything needed to feed and interpret it.

Layout (the contract other areas rely on), schema 2::

    <dir>/model.keras       the Keras model; input (rows, cols) normalised window; output (6,):
                            [mean_x, mean_y, mean_z] cap frame mm (model frame), then the natural log
                            of the per-axis standard deviation in mm
    <dir>/metadata.json     {"schema": 2, "level", "channels", "pipeline", "normalisation", "mirror",
                             "prior" (edge.estimate.Prior), "calibration" (edge.estimate.Calibration),
                             "aggregation" ("session_csd" for level source, else "median_of_trials"),
                             "output": {"frame": "cap", "units": "mm", "hemisphere": "left",
                                        "values": ["mean_mm", "log_sd_mm"], "head_centre_mm"},
                             "metrics", "data_hash", "code_version", "seed", "train_subjects", "dataset", ...}
    <dir>/source_space.npz  level "source" only: the grid and leadfield (edge.source.SourceSpace);
                            ``pipeline.source_space`` records its sha256

``channels`` are in model order and name left-hemisphere electrodes when ``mirror`` is true: for a
subject whose hotspot is in the right hemisphere, read the mirrored channels and negate the x of the
prediction (:mod:`edge.montage`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.bundle import split_outputs
from edge.normalisation import Normalisation
from train.tensorflow_setup import import_tensorflow

SCHEMA = 2
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
REQUIRED_KEYS = ("schema", "level", "channels", "pipeline", "normalisation", "mirror", "output", "prior",
                 "calibration", "aggregation")


@dataclass
class ModelDir:
    """A loaded model directory.

    Attributes
    ----------
    path : Path
    model : keras.Model
    metadata : dict
    spec : edge.pipeline.PipelineSpec
        The signal path that computes the model's input windows.
    normalisation : Normalisation
    """

    path: Path
    model: object
    metadata: dict
    spec: object
    normalisation: Normalisation

    @property
    def channels(self) -> list[str]:
        """Channel names in model order (left-hemisphere names when :attr:`mirror`)."""
        return list(self.metadata["channels"])

    @property
    def mirror(self) -> bool:
        """Whether right-hemisphere subjects are mirrored into the left frame."""
        return bool(self.metadata["mirror"])

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Predicted hotspots (means) for raw (un-normalised) inputs.

        Parameters
        ----------
        inputs : ndarray, shape (n, rows, cols) or (rows, cols)
            Windows from :func:`edge.pipeline.compute_epochs` with :attr:`spec` (or source images).

        Returns
        -------
        ndarray, shape (n, 3)
            Hotspots, cap frame, mm, in the model's (left-hemisphere when mirrored) frame.
        """
        return predict_gaussian(self.model, self.normalisation, inputs)[0]

    @property
    def estimator(self):
        """The :class:`train.estimator.Estimator` this directory holds (network, prior, calibration)."""
        from edge.estimate import Calibration, Prior
        from train.estimator import Estimator

        return Estimator(self.spec, self.model, self.normalisation, Prior.from_dict(self.metadata["prior"]),
                         Calibration.from_dict(self.metadata["calibration"]))


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


def write_model_dir(out: Path | str, model, spec, normalisation: Normalisation, metadata: dict) -> Path:
    """Write ``model.keras`` and ``metadata.json`` into ``out`` (created if needed).

    Parameters
    ----------
    out : path-like
        The model directory.
    model : keras.Model
    spec : edge.pipeline.PipelineSpec
    normalisation : Normalisation
    metadata : dict
        At least ``level``, ``channels``, ``mirror``, ``prior``, ``calibration`` and ``aggregation``; other
        keys (metrics, data_hash, code_version, seed, train_subjects, dataset, ...) are stored as given.

    Returns
    -------
    Path
        ``out``.
    """
    from edge.source import FILE_NAME as SOURCE_SPACE_FILE
    from train.simulate.forward import head_sphere

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"schema": SCHEMA, **metadata, "pipeline": spec.to_dict(), "normalisation": normalisation.to_dict(),
              "output": {"frame": "cap", "units": "mm", "hemisphere": "left", "values": ["mean_mm", "log_sd_mm"],
                         "head_centre_mm": head_sphere(1.0).r0_mm.tolist()}}
    if spec.source_space is not None:
        (out / SOURCE_SPACE_FILE).write_bytes(spec.source_space.to_bytes())
    model.save(out / MODEL_FILE)
    (out / METADATA_FILE).write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
    return out


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in metadata.json")


def read_metadata(path: Path | str) -> dict:
    """Read and check ``metadata.json`` of a model directory (no TensorFlow needed).

    Raises
    ------
    HotspotError
        When the folder, file or a required key is missing or the schema is unknown.
    """
    path = Path(path)
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise HotspotError(f"{path} is not a model directory ({METADATA_FILE} missing); run `invoke train` first",
                           ErrorCode.BAD_FILE)
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise HotspotError(f"{meta_path} is not valid JSON ({err}); retrain the model", ErrorCode.BAD_FORMAT) from None
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise HotspotError(f"{meta_path} lacks {', '.join(missing)}; retrain the model", ErrorCode.BAD_FORMAT)
    if metadata["schema"] != SCHEMA:
        raise HotspotError(f"{meta_path} has schema {metadata['schema']}, this version reads {SCHEMA}; "
                           "retrain the model", ErrorCode.BAD_FORMAT)
    return metadata


def load_model_dir(path: Path | str) -> ModelDir:
    """Load a model directory written by :func:`write_model_dir`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ModelDir
    """
    import_tensorflow()
    import keras

    from edge.pipeline import PipelineSpec
    from edge.source import FILE_NAME as SOURCE_SPACE_FILE
    from edge.source import SourceSpace

    path = Path(path)
    metadata = read_metadata(path)
    if not (path / MODEL_FILE).is_file():
        raise HotspotError(f"{path / MODEL_FILE} missing; retrain the model", ErrorCode.BAD_FILE)
    space_file = path / SOURCE_SPACE_FILE
    source_space = SourceSpace.from_bytes(space_file.read_bytes()) if space_file.is_file() else None
    spec = PipelineSpec.from_dict(metadata["pipeline"], source_space=source_space)
    normalisation = Normalisation.from_dict(metadata["normalisation"])
    model = keras.saving.load_model(path / MODEL_FILE, compile=False)
    return ModelDir(path=path, model=model, metadata=metadata, spec=spec, normalisation=normalisation)
