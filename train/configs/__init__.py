"""Training configuration as data: channel sets and hyper-parameters, validated at load.

``channels.toml`` names the channel sets (``all``, ``nine``, ``five``, ...); ``training.toml``
holds the fixed hyper-parameters. A user file given with ``--config`` overrides tables of the
default training configuration key by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ErrorCode, HotspotError
from edge.validation import check_keys, check_option, read_toml, validate_type
from train.model import ModelConfig

CONFIG_DIR = Path(__file__).resolve().parent
CHANNELS_FILE = CONFIG_DIR / "channels.toml"
TRAINING_FILE = CONFIG_DIR / "training.toml"
ALL_CHANNELS = "dataset"
LOSSES = ("gaussian_nll", "laplace_nll", "mse", "huber")


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings (``[fit]``).

    ``loss`` "gaussian_nll" trains the mean and the per-axis SD; "mse" and "huber" (delta 10 mm) train
    the mean only (the SD head then stays at the training hotspots' SD). ``source_epochs`` is the
    training length of the source level's network, which sees one image per session (plus bootstrap
    images) rather than one window per trial.
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.003
    loss: str = "gaussian_nll"
    source_epochs: int = 30


@dataclass(frozen=True)
class EstimateConfig:
    """From predictions to the reported estimate (``[estimate]``; see :mod:`train.estimator`).

    Attributes
    ----------
    calibration_folds : int
        Subject-grouped folds inside the training subjects whose held-out predictions fit the prior
        combination (kappa) and the 90 % radius.
    bootstrap_images : int
        Level "source": extra training images per session, each from a bootstrap resample of its trials.
    label_noise_sd_mm : float
        Per-axis SD of a TMS label around the true hotspot (Sollmann et al. 2013 re-test), removed when
        the prior and the radius are calibrated on labels.
    min_erd_db : float
        Level "source": the session map must show a desynchronisation at least this deep (dB) for the
        EEG to count as localising; 0 = no such check.
    """

    calibration_folds: int = 3
    bootstrap_images: int = 20
    label_noise_sd_mm: float = 3.5
    min_erd_db: float = 0.0


@dataclass(frozen=True)
class DataConfig:
    """What the model sees (``[data]``)."""

    cue: str = "move"
    rest: str = "rest"
    mirror: bool = True
    augment_mirror: bool = False
    repair_bad_channels: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    """Everything :func:`train.training.train_model` needs besides data, level and channels.

    Attributes
    ----------
    model : ModelConfig
    fit : FitConfig
    data : DataConfig
    pipeline : dict
        Overrides of :class:`edge.pipeline.PipelineSpec` fields.
    estimate : EstimateConfig
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pipeline: dict = field(default_factory=dict)
    estimate: EstimateConfig = field(default_factory=EstimateConfig)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form (stored in the model directory's metadata)."""
        return {"model": vars(self.model).copy(), "fit": vars(self.fit).copy(), "data": vars(self.data).copy(),
                "pipeline": dict(self.pipeline), "estimate": vars(self.estimate).copy()}

    def replace(self, **tables: dict) -> "TrainingConfig":
        """Return a copy with the given tables' keys overridden (e.g. ``fit={"epochs": 3}``)."""
        merged = self.to_dict()
        for name, values in tables.items():
            if name not in merged:
                raise HotspotError(f"unknown training table [{name}]; known: {', '.join(merged)}",
                                   ErrorCode.BAD_CONFIG)
            merged[name].update(values)
        return training_config_from_dict(merged)


WHERE = "training configuration"


def _table(cls: type, data: dict, name: str):
    """A dataclass table checked key by key against the types of its defaults."""
    validate_type(data, dict, f"[{name}]", WHERE)
    check_keys(data, cls.__dataclass_fields__, f"[{name}]", WHERE)
    defaults = cls()
    return cls(**{key: validate_type(value, type(getattr(defaults, key)), f"[{name}] {key}", WHERE)
                  for key, value in data.items()})


def training_config_from_dict(data: dict) -> TrainingConfig:
    """Validate a mapping with tables ``model``, ``fit``, ``data``, ``pipeline``.

    Parameters
    ----------
    data : dict
        As read from TOML.

    Returns
    -------
    TrainingConfig

    Raises
    ------
    HotspotError
        On unknown tables or keys, wrong types or out-of-range values.
    """
    check_keys(data, ("model", "fit", "data", "pipeline", "estimate"), "the training configuration", WHERE)
    model = ModelConfig.from_dict(data.get("model", {}))
    fit = _table(FitConfig, data.get("fit", {}), "fit")
    if fit.epochs < 1 or fit.source_epochs < 1 or fit.batch_size < 1 or fit.learning_rate <= 0:
        raise HotspotError("[fit] epochs, source_epochs and batch_size must be >= 1 and learning_rate > 0",
                           ErrorCode.BAD_CONFIG)
    check_option(fit.loss, LOSSES, "[fit] loss", WHERE)
    data_config = _table(DataConfig, data.get("data", {}), "data")
    if data_config.augment_mirror and data_config.mirror:
        raise HotspotError("[data] augment_mirror needs mirror = false (a mirrored model sees one hemisphere)",
                           ErrorCode.BAD_CONFIG)
    pipeline = validate_type(data.get("pipeline", {}), dict, "[pipeline]", WHERE, "a table of PipelineSpec fields")
    estimate = _table(EstimateConfig, data.get("estimate", {}), "estimate")
    if (estimate.calibration_folds < 2 or estimate.bootstrap_images < 0 or not 0 <= estimate.label_noise_sd_mm < 50
            or not 0 <= estimate.min_erd_db < 30):
        raise HotspotError("[estimate] needs calibration_folds >= 2, bootstrap_images >= 0, label_noise_sd_mm in "
                           "[0, 50) and min_erd_db in [0, 30)", ErrorCode.BAD_CONFIG)
    return TrainingConfig(model=model, fit=fit, data=data_config, pipeline=dict(pipeline), estimate=estimate)


def load_training_config(path: Path | str | None = None) -> TrainingConfig:
    """Load the default training configuration, overridden table by table by ``path``.

    Parameters
    ----------
    path : path-like, optional
        A user TOML file with any of the tables ``[model]``, ``[fit]``, ``[data]``, ``[pipeline]``,
        ``[estimate]``.

    Returns
    -------
    TrainingConfig
    """
    merged = read_toml(TRAINING_FILE, "training configuration")
    if path:
        for name, values in read_toml(Path(path), "training configuration").items():
            merged.setdefault(name, {}).update(validate_type(values, dict, name, path))
    return training_config_from_dict(merged)


def load_channel_sets(path: Path | str | None = None) -> dict[str, list[str] | str]:
    """Read the named channel sets (``[sets]`` of ``channels.toml``).

    Returns
    -------
    dict
        Set name to a list of channel names, or to ``"dataset"`` for all channels of a dataset.
    """
    where = Path(path) if path else CHANNELS_FILE
    sets = validate_type(read_toml(where, "channel configuration").get("sets"), dict, "[sets]", where,
                         "a table of channel sets")
    if not sets:
        raise HotspotError(f"{where}: [sets] names no channel set", ErrorCode.BAD_CONFIG)
    for name, value in sets.items():
        valid_list = isinstance(value, list) and value and all(isinstance(ch, str) for ch in value)
        if not (valid_list or value == ALL_CHANNELS):
            raise HotspotError(f"channel set {name!r} must be a non-empty list of names or {ALL_CHANNELS!r}",
                               ErrorCode.BAD_CONFIG)
        if valid_list and len(set(value)) != len(value):
            raise HotspotError(f"channel set {name!r} lists a channel twice", ErrorCode.BAD_CONFIG)
    return sets
