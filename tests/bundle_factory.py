"""Tiny models and bundles built inside the tests (tflite-micro style: no binaries in the repository)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from convert.bundle_writer import write_bundle
from convert.quantize import int8_tflite
from convert.signing import generate_keypair
from edge.normalisation import Normalisation

CHANNELS = ("FC3", "C5", "C3", "C1", "CP3")
HOTSPOT_MM = (-38.0, 12.0, 78.0)


def tiny_spec(sfreq: float = 250.0):
    """A real PipelineSpec (PSD level, five channels, the default fixed-point filter; 250 Hz: a Cyton)."""
    from convert.filter_design import default_filter
    from edge.pipeline import PipelineSpec

    return PipelineSpec(sfreq=sfreq, channels=CHANNELS, level="psd", filter=default_filter(sfreq))


def tiny_model(input_shape: tuple[int, int], seed: int = 0):
    """A small spatial-first CNN with a fixed Rescaling to head-frame mm (untrained weights)."""
    import keras

    keras.utils.set_random_seed(seed)
    rows, cols = input_shape
    inputs = keras.Input((rows, cols))
    x = keras.layers.Reshape((rows, cols, 1))(inputs)
    x = keras.layers.Conv2D(4, (rows, 1), activation="relu6")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu6")(x)
    x = keras.layers.Dense(3)(x)
    outputs = keras.layers.Rescaling(4.0, offset=list(HOTSPOT_MM))(x)
    return keras.Model(inputs, outputs)


def fake_windows(input_shape: tuple[int, int], n: int, seed: int = 0) -> np.ndarray:
    """Positive, PSD-like windows (float32) of the pipeline's shape."""
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 3.0, size=(n, *input_shape)).astype(np.float32)


def build_bundle(folder: Path, io_type: str = "float32", sfreq: float = 250.0) -> dict:
    """Write a key pair and a signed bundle under ``folder``; return what a test needs to check it."""
    spec = tiny_spec(sfreq)
    windows = fake_windows(spec.input_shape, 160)
    normalisation = Normalisation.fit(windows[:120])
    model = tiny_model(spec.input_shape)
    content = int8_tflite(model, normalisation.apply(windows[:120]), io_type)
    private_key, public_key = generate_keypair(folder / "keys" / "signing.key")
    bundle = write_bundle(folder / "bundle", model_content=content, spec=spec, normalisation=normalisation,
                          golden_inputs=windows[120:124], private_key=private_key,
                          electrodes={"C3": [-52.0, 1.0, 62.0], "FC3": [-46.0, 25.0, 64.0]}, mirror=True,
                          channel_set="five", provenance={"purpose": "test"})
    return {"bundle": bundle, "private_key": private_key, "public_key": public_key, "model": model,
            "normalisation": normalisation, "windows": windows, "spec": spec}


def copy_bundle(source: Path, target: Path) -> Path:
    """Copy a bundle folder (tests corrupt the copy, never the shared original)."""
    shutil.copytree(source, target)
    return target
