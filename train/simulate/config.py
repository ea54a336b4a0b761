"""The simulator's configuration: defaults.toml plus a user TOML file plus overrides, validated.

The defaults (with the source of every number) are in ``defaults.toml`` beside this module.
A user file or override dict may set any subset of those keys; an unknown key, a wrong type
or an out-of-range value raises :class:`~edge.errors.HotspotError` naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ErrorCode, HotspotError
from edge.validation import check_option, read_toml, validate_type

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
EEGMMIDB_CONFIG = Path(__file__).with_name("eegmmidb.toml")
"""The eegmmidb schedule (PhysioNet runs 3/7/11: montage, rate, alternating random-hand trials), overriding
the defaults."""

# Lists whose length may differ from the default's.
_VARIABLE_LENGTH = {"recording.channels", "artifacts.emg_channels", "artifacts.line_harmonics"}
_CHOICES = {
    "recording.reference": ("average", "FCz", "linked_mastoids"),
    "recording.line_freq": (50.0, 60.0),
    "participants.healthy_hand": ("right", "left"),
    "task.schedule": ("guided", "eegmmidb"),
    "rhythms.calibrate_at": ("central", "capped"),
}
# Two-value lists that are not [lo, hi] ranges (everything else of length 2 is one).
_NOT_PAIRS = {"hotspot.mni_centre", "hotspot.sd_mm", "hotspot.muscle_offset_mm", "generators.mu_offset_mm",
              "generators.beta_offset_mm", "generators.alpha_mni", "artifacts.line_harmonics",
              "participants.severity_beta", "recording.channels", "artifacts.emg_channels",
              "rhythms.aperiodic_exponent_young", "rhythms.aperiodic_exponent_older"}
# Values that are probabilities or fractions in [0, 1].
_UNIT_INTERVAL = {"participants.lesion_left_probability", "participants.mep_negative_base",
                  "artifacts.emg_task_locked_probability", "artifacts.blink_fraction_at_cz",
                  "modulation.mu_erd", "modulation.beta_erd", "modulation.ipsilateral_erd",
                  "artifacts.bad_channel_fraction", "modulation.trial_variability", "task.hand_switch"}
# Values that may be negative (coordinates and offsets).
_SIGNED = {"hotspot.mni_centre", "hotspot.muscle_offset_mm", "generators.mu_offset_mm",
           "generators.beta_offset_mm", "generators.alpha_mni"}
# Values that must be strictly positive.
_POSITIVE = {"recording.sfreq", "cohort.sessions", "task.runs", "task.move_s", "task.post_s", "modulation.ramp_tau_s",
             "modulation.rebound_duration_s", "artifacts.drift_max_hz", "geometry.head_scale",
             "participants.severity_beta", "generators.patch_dipoles", "generators.background_dipoles",
             "rhythms.mu_bandwidth_hz", "rhythms.beta_bandwidth_hz", "rhythms.alpha_bandwidth_hz",
             "rhythms.alpha_fluctuation_hz"}


@dataclass(frozen=True)
class SimulationConfig:
    """A validated simulator configuration: sections of plain values, as in defaults.toml.

    Read values as ``config["task"]["move_s"]``. ``source`` says where non-default values
    came from (a file path and/or "overrides").
    """

    values: Mapping[str, Mapping[str, Any]]
    source: str = "defaults"

    def __getitem__(self, section: str) -> Mapping[str, Any]:
        return self.values[section]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return a deep copy of the values as plain dicts."""
        return copy.deepcopy({name: dict(section) for name, section in self.values.items()})

    def with_overrides(self, overrides: Mapping[str, Any]) -> SimulationConfig:
        """Return a new validated config with ``overrides`` (nested dict) applied."""
        return _build(self.to_dict(), overrides, f"{self.source}+overrides")


WHERE = "simulation config"


def _defaults() -> dict[str, dict[str, Any]]:
    return read_toml(DEFAULTS_PATH, "simulation defaults")


def _fail(key: str, message: str) -> HotspotError:
    return HotspotError(f"{WHERE}: '{key}' {message}", ErrorCode.BAD_CONFIG)


def _check_scalar(key: str, value: Any, default: Any) -> Any:
    return validate_type(value, type(default), f"'{key}'", WHERE)


def _check_value(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, list):
        validate_type(value, list, f"'{key}'", WHERE, f"a list like {default!r}")
        if key not in _VARIABLE_LENGTH and len(value) != len(default):
            raise _fail(key, f"must have {len(default)} values, got {len(value)}")
        if not value:
            raise _fail(key, "must not be empty")
        return [_check_scalar(f"{key}[{index}]", item, default[0]) for index, item in enumerate(value)]
    return _check_scalar(key, value, default)


def _check_range(key: str, value: Any) -> None:
    numbers = value if isinstance(value, list) else [value]
    if key in _CHOICES:
        check_option(value, _CHOICES[key], f"'{key}'", WHERE)
    if not all(isinstance(number, (int, float)) for number in numbers):
        return
    if key not in _SIGNED and any(number < 0 for number in numbers):
        raise _fail(key, f"must not be negative, got {value!r}")
    if key in _POSITIVE and any(number <= 0 for number in numbers):
        raise _fail(key, f"must be positive, got {value!r}")
    if key in _UNIT_INTERVAL and any(number > 1 for number in numbers):
        raise _fail(key, f"must be within [0, 1], got {value!r}")
    if (isinstance(value, list) and len(value) == 2 and key not in _NOT_PAIRS
            and not key.endswith("_mean_sd") and value[0] > value[1]):
        raise _fail(key, f"is a [low, high] range and needs low <= high, got {value!r}")


def _check_cross(values: dict[str, dict[str, Any]]) -> None:
    recording = values["recording"]
    low, high = recording["band_hz"]
    if not 0 < low < high <= recording["sfreq"] / 2:
        raise _fail("recording.band_hz", f"must satisfy 0 < low < high <= sfreq/2, got {recording['band_hz']!r}")
    channels = recording["channels"]
    if len(set(channels)) != len(channels):
        raise _fail("recording.channels", "lists a channel twice")
    from train.head import standard_positions_head_mm

    known = standard_positions_head_mm()
    unknown = [name for name in channels if name not in known]
    if unknown:
        raise _fail("recording.channels", f"has unknown 10-05 name(s) {', '.join(unknown)}")
    if recording["reference"] == "FCz" and "FCz" not in channels:
        raise _fail("recording.reference", "is FCz but FCz is not in recording.channels")
    if recording["reference"] == "average" and len(channels) < 2:
        raise _fail("recording.reference", "is average, which needs at least 2 channels")
    if recording["reference"] == "FCz" and len(channels) < 2:
        raise _fail("recording.channels", "needs at least one channel besides the FCz reference")
    if values["cohort"]["n_healthy"] + values["cohort"]["n_stroke"] < 1:
        raise _fail("cohort.n_healthy", "plus cohort.n_stroke must be at least 1")
    for key in ("trials_healthy", "trials_stroke"):
        if values["task"][key] < 1:
            raise _fail(f"task.{key}", "must be at least 1")


def _build(base: dict[str, dict[str, Any]], overrides: Mapping[str, Any], source: str) -> SimulationConfig:
    defaults = _defaults()
    merged = copy.deepcopy(base)
    validate_type(overrides, Mapping, "the simulation config", WHERE, "a table of sections")
    for section, table in overrides.items():
        if section not in defaults:
            raise _fail(section, f"is not a config section; known: {', '.join(defaults)}")
        validate_type(table, Mapping, f"'{section}'", WHERE, "a table of keys")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if key not in defaults[section]:
                raise _fail(dotted, "is not a known key (see train/simulate/defaults.toml)")
            merged[section][key] = _check_value(dotted, value, defaults[section][key])
            _check_range(dotted, merged[section][key])
    _check_cross(merged)
    return SimulationConfig(values=merged, source=source)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> SimulationConfig:
    """Load the defaults, apply a TOML file and then an override dict, and validate.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file setting any subset of the keys in ``defaults.toml``.
    overrides : mapping, optional
        Nested ``{section: {key: value}}`` applied after the file.

    Returns
    -------
    SimulationConfig

    Raises
    ------
    HotspotError
        One line naming the file or key when the file cannot be read, a key is unknown,
        a value has the wrong type or is out of range.
    """
    config = _build(_defaults(), {}, "defaults")
    if path is not None:
        path = Path(path)
        config = _build(config.to_dict(), read_toml(path, WHERE, "pass an existing TOML file"), str(path))
    if overrides:
        config = config.with_overrides(overrides)
    return config


def as_config(config: SimulationConfig | Mapping[str, Any] | str | Path | None) -> SimulationConfig:
    """Turn a config, an override dict, a TOML path or None (defaults) into a SimulationConfig."""
    if isinstance(config, SimulationConfig):
        return config
    if config is None or isinstance(config, (str, Path)):
        return load_config(config)
    return load_config(None, config)
