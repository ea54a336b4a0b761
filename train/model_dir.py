"""The model directory: a trained Keras model plus everything needed to feed and interpret it.

Layout (the contract other areas rely on), schema 2::

    <dir>/model.keras       the Keras model; input (rows, cols) normalised window; output (6,):
                            [mean_x, mean_y, mean_z] cap frame mm (model frame), then the natural
                            log of the per-axis standard deviation in mm
    <dir>/metadata.json     {"schema": 2, the model contract's keys (edge.contract: "pipeline",
                             "normalisation", "channel_set", "mirror", "output", "electrodes", "prior",
                             "calibration"), then how the model was made: "metrics", "data_hash",
                             "code_version", "seed", "train_subjects", "dataset", "training", ...}
    <dir>/source_space.npz  level "source" only: the grid and leadfield (edge.source.SourceSpace);
                            ``pipeline.source_space`` records its sha256

Training writes the contract here once; ``invoke convert`` copies it verbatim into the bundle's manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract import CONTRACT_KEYS, ModelContract
from edge.errors import ErrorCode, HotspotError
from edge.estimate import Calibration, Prior
from edge.normalisation import Normalisation
from edge.source import FILE_NAME as SOURCE_SPACE_FILE
from edge.source import SourceSpace
from train.fitting import predict_gaussian
from train.tensorflow_setup import import_tensorflow

SCHEMA = 2
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
ELECTRODE_DECIMALS = 3
"""Electrode positions are stored to 1 µm."""


@dataclass
class ModelDir:
    """A loaded model directory.

    Attributes
    ----------
    path : Path
    model : keras.Model
    metadata : dict
        ``metadata.json`` as read (the contract's document and how the model was made).
    contract : edge.contract.ModelContract
        How the model is fed and read; :attr:`spec`, :attr:`normalisation`, :attr:`channels` and
        :attr:`mirror` are its fields.
    """

    path: Path
    model: object
    metadata: dict
    contract: ModelContract

    @property
    def spec(self):
        """The :class:`edge.pipeline.PipelineSpec` that computes the model's input windows."""
        return self.contract.spec

    @property
    def normalisation(self) -> Normalisation:
        """The model's input standardisation."""
        return self.contract.normalisation

    @property
    def channels(self) -> list[str]:
        """Channel names in model order (left-hemisphere names when :attr:`mirror`)."""
        return self.contract.channels

    @property
    def mirror(self) -> bool:
        """Whether right-hemisphere subjects are mirrored into the left frame."""
        return self.contract.mirror

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


def model_contract(spec, normalisation: Normalisation, mirror: bool, prior: Prior,
                   calibration: Calibration) -> ModelContract:
    """The contract of a model trained on the template head (the cap frame of ``train.head``).

    The output frame is the template's: its sphere model's centre and its 10-05 electrode positions
    (to 1 µm); the channel set is named from ``train/configs/channels.toml`` ("custom" when no set
    lists exactly the model's channels).

    Parameters
    ----------
    spec : edge.pipeline.PipelineSpec
    normalisation : Normalisation
    mirror : bool
    prior : edge.estimate.Prior
    calibration : edge.estimate.Calibration

    Returns
    -------
    edge.contract.ModelContract
    """
    from train.configs import load_channel_sets
    from train.head import standard_positions_head_mm
    from train.simulate.forward import head_sphere

    channel_set = next((name for name, names in load_channel_sets().items() if list(names) == list(spec.channels)),
                       "custom")
    electrodes = {name: np.round(point, ELECTRODE_DECIMALS) for name, point in standard_positions_head_mm().items()}
    return ModelContract(spec=spec, normalisation=normalisation, channel_set=channel_set, mirror=bool(mirror),
                         head_centre_mm=head_sphere(1.0).r0_mm, electrodes=electrodes, prior=prior,
                         calibration=calibration)


def write_model_dir(out: Path | str, model, contract: ModelContract, metadata: dict) -> Path:
    """Write ``model.keras`` and ``metadata.json`` (the contract, then ``metadata``) into ``out`` (created if needed).

    Parameters
    ----------
    out : path-like
        The model directory.
    model : keras.Model
    contract : edge.contract.ModelContract
        Written once here (level source: with ``source_space.npz``).
    metadata : dict
        How the model was made (metrics, data_hash, code_version, seed, train_subjects, dataset, ...),
        stored as given; none of the contract's keys.

    Returns
    -------
    Path
        ``out``.
    """
    overlap = sorted(set(metadata) & {"schema", *CONTRACT_KEYS})
    if overlap:
        raise ValueError(f"metadata repeats the contract's {', '.join(overlap)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"schema": SCHEMA, **contract.to_dict(), **metadata}
    if contract.spec.source_space is not None:
        (out / SOURCE_SPACE_FILE).write_bytes(contract.spec.source_space.to_bytes())
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
    """Read ``metadata.json`` of a model directory and check its schema (no TensorFlow needed).

    Raises
    ------
    HotspotError
        When the folder or file is missing, is not JSON or the schema is unknown.
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
    if not isinstance(metadata, dict) or "schema" not in metadata:
        raise HotspotError(f"{meta_path} lacks schema; retrain the model", ErrorCode.BAD_FORMAT)
    if metadata["schema"] != SCHEMA:
        raise HotspotError(f"{meta_path} has schema {metadata['schema']}, this version reads {SCHEMA}; "
                           "retrain the model", ErrorCode.BAD_FORMAT)
    return metadata


def read_contract(path: Path | str, metadata: dict | None = None) -> ModelContract:
    """The model contract of a model directory, validated (no TensorFlow needed).

    Parameters
    ----------
    path : path-like
        The model directory.
    metadata : dict, optional
        Its :func:`read_metadata` (read here when not given).

    Raises
    ------
    HotspotError
        ``BAD_FORMAT`` naming the missing or malformed field, or a source space file that is not the
        pipeline's.
    """
    path = Path(path)
    metadata = read_metadata(path) if metadata is None else metadata
    space_file = path / SOURCE_SPACE_FILE
    try:
        source_space = SourceSpace.from_bytes(space_file.read_bytes()) if space_file.is_file() else None
        return ModelContract.from_dict(metadata, source_space=source_space)
    except HotspotError as err:
        raise HotspotError(f"model directory {path}: {err.args[0]}; retrain the model", ErrorCode.BAD_FORMAT) from None


def load_model_dir(path: Path | str) -> ModelDir:
    """Load a model directory written by :func:`write_model_dir`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ModelDir
    """
    path = Path(path)
    metadata = read_metadata(path)
    contract = read_contract(path, metadata)
    if not (path / MODEL_FILE).is_file():
        raise HotspotError(f"{path / MODEL_FILE} missing; retrain the model", ErrorCode.BAD_FILE)
    import_tensorflow()
    import keras

    model = keras.saving.load_model(path / MODEL_FILE, compile=False)
    return ModelDir(path=path, model=model, metadata=metadata, contract=contract)
