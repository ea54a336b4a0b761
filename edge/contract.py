"""The model contract: everything needed to feed a trained model and to interpret what it says.

Training writes the contract once into the model directory (``metadata.json``), conversion copies it
verbatim into the bundle's manifest, and the device reads it from there; every field exists once, so
nothing has to be cross-checked on the way. Its keys (top level of both documents)::

    pipeline        the PipelineSpec: sampling rate, channels in model order (left-hemisphere names
                    when ``mirror``), level, epoch window, filter, band / PSD / source parameters;
                    level source: "source_space": {"file": "source_space.npz", "sha256"} (the
                    leadfield reference; the arrays travel as that file)
    normalisation   per-element input mean and std (shape = the pipeline's input shape)
    channel_set     the channel set's name in train/configs/channels.toml, or "custom"
    mirror          true when right-hemisphere subjects are mirrored into the left frame
    output          {"frame": "cap", "units": "mm", "hemisphere": "left",
                     "values": ["mean_mm", "log_sd_mm"], "head_centre_mm": [x, y, z]}
                    (the model's six outputs; head_centre_mm: centre of the template's sphere
                    model, where the scalp projection of edge.placement starts)
    electrodes      {name: [x, y, z]} 10-05 positions of the cap, cap frame, mm (placement)
    prior           edge.estimate.Prior: the training subjects' hotspot mean and spread
    calibration     edge.estimate.Calibration: kappa, 90 % radius, label noise, min_erd_db ...

What follows from these is derived, never stored: the level and the channels (the pipeline's), the
input shape, and how a session aggregates its trials (:func:`aggregation_for`).

Mirroring: one model serves both hemispheres when ``mirror`` is true. :func:`worn_electrodes` is the
one answer to "which electrodes does this patient wear for the model, and is the model's output
mirrored": a patient moving the left hand (hotspot in the right hemisphere) wears the mirrored
electrodes and the output's x is negated back, but only for a mirrored model; a bilateral model
(``mirror = false``) is fed and read as it is, whichever hand moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.estimate import Calibration, Prior
from edge.montage import mirror_channel_name, mirror_channel_names, mirror_points
from edge.normalisation import Normalisation
from edge.pipeline import PipelineSpec
from edge.source import SourceSpace

CONTRACT_KEYS = ("pipeline", "normalisation", "channel_set", "mirror", "output", "electrodes", "prior",
                 "calibration")
OUTPUT_VALUES = ("mean_mm", "log_sd_mm")
N_OUTPUTS = 6
"""The model's outputs: mean position (3, mm) then log standard deviation (3, ln mm)."""
LOG_SD_RANGE = (-1.0, 4.0)
"""The model's log-sd outputs (ln mm) are clipped to this range, as in training: sd 0.37 ... 55 mm."""
MAX_HEAD_MM = 300.0
"""Largest coordinate (head frame, mm) an electrode position may have: a head is about 200 mm across."""


def output_description(head_centre_mm: Sequence[float]) -> dict:
    """The contract's ``output`` entry: cap-frame mean and log sd, left hemisphere, with the head centre."""
    return {"frame": "cap", "units": "mm", "hemisphere": "left", "values": list(OUTPUT_VALUES),
            "head_centre_mm": [float(v) for v in head_centre_mm]}


def aggregation_for(level: str) -> str:
    """How a session turns its good trials into one prediction, for an input level.

    ``"session_csd"`` (level source: the model runs once on the session image of the good trials'
    mean cross-spectra) or ``"median_of_trials"`` (every other level).
    """
    return "session_csd" if level == "source" else "median_of_trials"


def split_outputs(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's six outputs (..., 6) as (mean_mm (..., 3), sd_mm (..., 3)); log sds clipped to LOG_SD_RANGE."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return outputs[..., :3], np.exp(np.clip(outputs[..., 3:], *LOG_SD_RANGE))


@dataclass(frozen=True)
class Wearing:
    """Which electrodes a patient wears for a model, and whether the model's output is mirrored.

    Attributes
    ----------
    electrodes : tuple of str
        The electrodes worn, in the model's channel order (the mirrored names when ``mirrored``).
    mirrored : bool
        The patient's data are mirrored into the model's left-hemisphere frame, so the output's x is
        negated back into the patient's hemisphere (:meth:`to_patient`).
    """

    electrodes: tuple[str, ...]
    mirrored: bool

    def to_patient(self, point_mm: np.ndarray) -> np.ndarray:
        """A model-frame point (..., 3) in the patient's frame (x negated when mirrored; its own inverse)."""
        point = np.asarray(point_mm, dtype=float)
        return mirror_points(point) if self.mirrored else point

    def worn_name(self, model_name: str) -> str:
        """The electrode worn for a model-frame electrode name (mirrored when ``mirrored``)."""
        return mirror_channel_name(model_name) if self.mirrored else model_name


def worn_electrodes(channels: Sequence[str], mirror: bool, hand: str) -> Wearing:
    """Which electrodes are worn for a model's channels, and whether its output is mirrored.

    Parameters
    ----------
    channels : sequence of str
        The model's channels in model order (``ModelContract.channels``; left-hemisphere names
        when ``mirror``).
    mirror : bool
        The contract's mirror rule: right-hemisphere subjects are mirrored into the left frame.
    hand : str
        The hand that moves in the session (``"right"``, ``"left"``; any other value, such as an
        imported recording's ``"unknown"``, is read as it is).

    Returns
    -------
    Wearing
        Mirrored exactly when the model mirrors and the left hand moves (hotspot in the right hemisphere).
    """
    mirrored = bool(mirror) and hand == "left"
    return Wearing(tuple(mirror_channel_names(channels) if mirrored else channels), mirrored)


def _refuse(message: str) -> HotspotError:
    return HotspotError(message, ErrorCode.BAD_FORMAT)


def _electrodes(data: object) -> dict[str, np.ndarray]:
    try:
        electrodes = {str(name): np.asarray(point, dtype=float) for name, point in data.items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise _refuse(f"'electrodes' is malformed ({err})") from None
    if not electrodes or any(p.shape != (3,) or not np.all(np.abs(p) <= MAX_HEAD_MM) for p in electrodes.values()):
        raise _refuse(f"'electrodes' must map names to [x, y, z] in mm within +-{MAX_HEAD_MM:g} mm of the head origin")
    return electrodes


def _head_centre(output: object) -> np.ndarray:
    centre = output.get("head_centre_mm") if isinstance(output, dict) else None
    try:
        centre = np.asarray(centre, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        centre = np.zeros(0)
    if (not isinstance(output, dict) or centre.shape != (3,) or not np.all(np.isfinite(centre))
            or output != output_description(centre)):
        raise _refuse(f"output {output} is not the cap-frame mean_mm + log_sd_mm of the left hemisphere with a head "
                      "centre; this version cannot interpret it")
    return centre


@dataclass(frozen=True)
class ModelContract:
    """The model contract (see the module notes for its document form).

    Attributes
    ----------
    spec : PipelineSpec
        The signal path that computes the model's input (with its source space for level source).
    normalisation : Normalisation
        Input standardisation applied before the model.
    channel_set : str
        The channel set's name, or ``"custom"``.
    mirror : bool
        Whether right-hemisphere subjects are mirrored into the left frame (:func:`worn_electrodes`).
    head_centre_mm : ndarray, shape (3,)
        Centre of the template's sphere model, cap frame, mm (the output frame's origin for placement).
    electrodes : dict of str to ndarray (3,)
        The cap's 10-05 electrode positions, cap frame, mm (placement instructions).
    prior : Prior
        The training subjects' hotspot mean and spread (cap frame, model frame, mm).
    calibration : Calibration
        How far the model's uncertainty is trusted and the 90 % radius of a localised estimate.
    """

    spec: PipelineSpec
    normalisation: Normalisation
    channel_set: str
    mirror: bool
    head_centre_mm: np.ndarray
    electrodes: dict[str, np.ndarray]
    prior: Prior
    calibration: Calibration

    def __post_init__(self) -> None:
        if self.normalisation.mean.shape != tuple(self.spec.input_shape):
            raise _refuse(f"normalisation shape {self.normalisation.mean.shape} is not the pipeline's input shape "
                          f"{tuple(self.spec.input_shape)}")

    @property
    def level(self) -> str:
        """The input level (the pipeline's)."""
        return self.spec.level

    @property
    def channels(self) -> list[str]:
        """Model channel names in model order (left-hemisphere names when :attr:`mirror`)."""
        return list(self.spec.channels)

    @property
    def aggregation(self) -> str:
        """How a session aggregates its good trials (:func:`aggregation_for` the level)."""
        return aggregation_for(self.spec.level)

    def wearing(self, hand: str) -> Wearing:
        """:func:`worn_electrodes` for this model and the hand that moves."""
        return worn_electrodes(self.spec.channels, self.mirror, hand)

    def outputs(self, model, inputs: np.ndarray) -> np.ndarray:
        """A model's six raw outputs for pipeline output (normalised here, as on the device).

        Parameters
        ----------
        model
            Anything with ``predict(normalised_inputs)`` (:class:`edge.tflite.TFLiteModel`).
        inputs : ndarray, shape (rows, cols) or (n, rows, cols)
            Windows (or session images) exactly as the pipeline produced them.

        Returns
        -------
        ndarray, shape (6,) or (n, 6)
            ``[mean_x, mean_y, mean_z, log_sd_x, log_sd_y, log_sd_z]`` (mm and ln mm).
        """
        return np.asarray(model.predict(self.normalisation.apply(inputs)), dtype=np.float64)

    def to_dict(self) -> dict:
        """The contract's document form (JSON-ready; see the module notes)."""
        return {"pipeline": self.spec.to_dict(), "normalisation": self.normalisation.to_dict(),
                "channel_set": self.channel_set, "mirror": self.mirror,
                "output": output_description(self.head_centre_mm),
                "electrodes": {name: [float(v) for v in point] for name, point in self.electrodes.items()},
                "prior": self.prior.to_dict(), "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping, source_space: SourceSpace | None = None) -> "ModelContract":
        """Read and validate the contract from a document (other keys of ``data`` are ignored).

        Parameters
        ----------
        data : mapping
            A model directory's metadata or a bundle's manifest.
        source_space : SourceSpace, optional
            Level source: the grid and leadfield read from the file the pipeline references.

        Raises
        ------
        HotspotError
            One line naming the missing or malformed field (callers add where it came from and
            what to do).
        """
        missing = [key for key in CONTRACT_KEYS if key not in data]
        if missing:
            raise _refuse(f"the model contract lacks {', '.join(missing)}")
        spec = PipelineSpec.from_dict(data["pipeline"], source_space=source_space)
        if not isinstance(data["mirror"], bool):
            raise _refuse("'mirror' must be true or false")
        if not isinstance(data["channel_set"], str):
            raise _refuse("'channel_set' must be a name")
        return cls(spec=spec, normalisation=Normalisation.from_dict(data["normalisation"]),
                   channel_set=data["channel_set"], mirror=data["mirror"], head_centre_mm=_head_centre(data["output"]),
                   electrodes=_electrodes(data["electrodes"]), prior=Prior.from_dict(data["prior"]),
                   calibration=Calibration.from_dict(data["calibration"]))
