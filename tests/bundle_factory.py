"""Tiny models, model directories and bundles built inside the tests (tflite-micro style: no binaries in the
repository), following the model contract of schema 2: the model outputs ``[mean_mm (3), log_sd_mm (3)]`` in the
cap frame, and the model directory / bundle carry the prior, the calibration and (level source) the source space."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from convert.bundle_writer import write_bundle
from convert.quantize import int8_tflite
from convert.signing import generate_keypair
from edge.contract import ModelContract
from edge.estimate import Calibration, Prior
from edge.normalisation import Normalisation

CHANNELS = ("FC3", "C5", "C3", "C1", "CP3")
HOTSPOT_MM = (-38.0, 12.0, 78.0)
PRIOR = Prior(mean_mm=HOTSPOT_MM, sd_mm=(4.0, 4.0, 4.0))
CALIBRATION = Calibration(kappa=1.0, radius90_mm=9.0, label_noise_sd_mm=3.5)
SOURCE_CALIBRATION = Calibration(kappa=1.0, radius90_mm=9.0, label_noise_sd_mm=3.5, min_erd_db=2.0)
SPREAD_MM = 4.0
"""How far (SD, mm) the untrained model's mean output wanders around HOTSPOT_MM."""
NO_ERD = {"mu_erd": [0.0, 0.0], "beta_erd": [0.0, 0.0]}
"""Simulator [modulation] override: the movement desynchronises neither mu nor beta."""


def head_centre_mm() -> np.ndarray:
    """Centre of the template sphere model (cap frame, mm), as the host's training code records it."""
    from train.simulate.forward import head_sphere

    return head_sphere(1.0).r0_mm


def cap_electrodes() -> dict[str, list[float]]:
    """The cap's 10-05 positions (template head frame = cap frame, mm)."""
    from train.head import standard_positions_head_mm

    return {name: position.tolist() for name, position in standard_positions_head_mm().items()}


def tiny_spec(level: str = "psd", channels: tuple[str, ...] = CHANNELS, sfreq: float = 250.0):
    """A real PipelineSpec (five channels, the default fixed-point filter; 250 Hz: a Cyton, 125 Hz: a
    Cyton + Daisy); level source gets the real
    MNE leadfield of ``train.source_space``."""
    from train.filter_design import default_filter
    from edge.pipeline import PipelineSpec

    source_space = None
    if level == "source":
        from train.source_space import build_source_space

        source_space = build_source_space(channels)
    return PipelineSpec(sfreq=sfreq, channels=channels, level=level, filter=default_filter(sfreq),
                        source_space=source_space)


def tiny_model(input_shape: tuple[int, int], seed: int = 0, sd_mm: float = 3.0, sd_gain: float = 0.2,
               mean_mm=HOTSPOT_MM, spread_mm: float = SPREAD_MM):
    """A small spatial-first CNN with 6 outputs (untrained weights) and a frozen affine output layer.

    The frozen ``to_cap_mm`` layer maps standardised units to ``mean_mm + spread_mm * z`` (mm) and
    ``log(sd_mm) + sd_gain * z`` (ln mm): ``sd_gain = 0`` gives a network that always says ``sd_mm``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rows, cols = input_shape
    inputs = keras.Input((rows, cols))
    x = keras.layers.Reshape((rows, cols, 1))(inputs)
    x = keras.layers.Conv2D(4, (rows, 1), activation="relu6")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu6")(x)
    x = keras.layers.Dense(6)(x)
    scale = np.diag([spread_mm] * 3 + [sd_gain] * 3).astype(np.float32)
    offset = np.array(list(mean_mm) + [np.log(sd_mm)] * 3, dtype=np.float32)
    output = keras.layers.Dense(6, trainable=False, name="to_cap_mm")
    outputs = output(x)
    output.set_weights([scale, offset])
    return keras.Model(inputs, outputs)


def fake_windows(input_shape: tuple[int, int], n: int, seed: int = 0, level: str = "psd") -> np.ndarray:
    """Positive, PSD-like windows (float32) of the pipeline's shape; dB-like maps for level source."""
    rng = np.random.default_rng(seed)
    if level == "source":
        return rng.normal(-1.0, 1.0, size=(n, *input_shape)).astype(np.float32)
    return rng.gamma(2.0, 3.0, size=(n, *input_shape)).astype(np.float32)


def build_bundle(folder: Path, io_type: str = "float32", level: str = "psd", sd_mm: float = 3.0,
                 sd_gain: float = 0.2, calibration: Calibration | None = None, prior: Prior = PRIOR,
                 mean_mm=HOTSPOT_MM, sfreq: float = 250.0, mirror: bool = True) -> dict:
    """Write a key pair and a signed schema-2 bundle under ``folder``; return what a test needs to check it.

    ``mirror = False`` makes a bilateral model: nobody's data are mirrored into it."""
    spec = tiny_spec(level, sfreq=sfreq)
    windows = fake_windows(spec.input_shape, 160, level=level)
    normalisation = Normalisation.fit(windows[:120])
    model = tiny_model(spec.input_shape, sd_mm=sd_mm, sd_gain=sd_gain, mean_mm=mean_mm)
    content = int8_tflite(model, normalisation.apply(windows[:120]), io_type)
    calibration = calibration or (SOURCE_CALIBRATION if level == "source" else CALIBRATION)
    private_key, public_key = generate_keypair(folder / "keys" / "signing.key")
    contract = ModelContract(spec=spec, normalisation=normalisation, channel_set="five", mirror=mirror,
                             head_centre_mm=head_centre_mm(), electrodes=cap_electrodes(), prior=prior,
                             calibration=calibration)
    bundle = write_bundle(folder / "bundle", model_content=content, contract=contract, golden_inputs=windows[120:124],
                          private_key=private_key, provenance={"purpose": "test"})
    return {"bundle": bundle, "private_key": private_key, "public_key": public_key, "model": model,
            "normalisation": normalisation, "windows": windows, "spec": spec, "prior": prior,
            "calibration": calibration, "contract": contract}


def write_model_dir(out: Path, model, spec, normalisation: Normalisation, metadata: dict, mirror: bool,
                    prior: Prior = PRIOR, calibration: Calibration | None = None) -> Path:
    """A schema-2 model directory (train.model_dir.write_model_dir) with a prior and a calibration of our choice."""
    from train.model_dir import model_contract
    from train.model_dir import write_model_dir as write

    calibration = calibration or (SOURCE_CALIBRATION if spec.level == "source" else CALIBRATION)
    return write(out, model, model_contract(spec, normalisation, mirror, prior, calibration), metadata)


def simulated_subject(schedule, index: int, modulation: dict | None = None, channels=CHANNELS):
    """A simulated healthy subject (right hand, one session) on a device session's fixed schedule.

    ``schedule`` is an ``edge.config.SessionConfig``; ``modulation`` overrides the simulator's
    ``[modulation]`` (e.g. ``{"mu_erd": [0, 0], "beta_erd": [0, 0]}`` for no desynchronisation).
    The recording carries ``channels`` plus a few others (the simulator's average reference).
    """
    from train.simulate import load_config, simulate_subject

    overrides = {"cohort": {"sessions": 1},
                 "task": {"trials_healthy": schedule.trials, "rest_s": [schedule.rest_s] * 2,
                          "move_s": schedule.move_s, "post_s": schedule.post_s, "lead_in_s": schedule.lead_in_s},
                 "recording": {"channels": list(channels) + ["Cz", "FC4", "C6", "C4", "C2", "CP4"]},
                 "artifacts": {"bad_channel_fraction": [0.0, 0.0]}}
    if modulation:
        overrides["modulation"] = modulation
    subject, _ = simulate_subject(load_config(None, overrides), "healthy", index)
    assert subject.hand == "right"
    return subject


def copy_bundle(source: Path, target: Path) -> Path:
    """Copy a bundle folder (tests corrupt the copy, never the shared original)."""
    shutil.copytree(source, target)
    return target
