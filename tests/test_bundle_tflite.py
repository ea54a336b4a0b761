"""edge/tflite.py: the runtime fallback chain and float32 / int8 model I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import fake_windows, tiny_model

from convert.quantize import int8_tflite
from edge.errors import HotspotError
from edge.normalisation import Normalisation
from edge.tflite import TFLiteModel

REPO = Path(__file__).resolve().parents[1]
SHAPE = (5, 12)

FALLBACK = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(name)
sys.meta_path.insert(0, Blocker())
from edge.tflite import interpreter_class
print(interpreter_class()[0])
"""


def runtime_with_blocked(blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FALLBACK.format(blocked=blocked)], capture_output=True, text=True,
                          cwd=REPO)


def test_without_litert_the_loader_falls_back_to_tensorflow_lite() -> None:
    assert runtime_with_blocked(()).stdout.startswith("ai_edge_litert ")
    result = runtime_with_blocked(("ai_edge_litert", "tflite_runtime"))
    assert result.stdout.startswith("tensorflow.lite "), result.stderr[-1000:]


def test_without_any_runtime_the_error_says_what_to_install() -> None:
    result = runtime_with_blocked(("ai_edge_litert", "tflite_runtime", "tensorflow"))
    assert result.returncode != 0
    assert "pip install ai-edge-litert" in result.stderr


@pytest.fixture(scope="module")
def models() -> dict:
    windows = fake_windows(SHAPE, 140)
    normalised = Normalisation.fit(windows).apply(windows)
    model = tiny_model(SHAPE)
    return {"windows": normalised, "keras": model,
            "float32": TFLiteModel(int8_tflite(model, normalised, "float32")),
            "int8": TFLiteModel(int8_tflite(model, normalised, "int8"))}


def test_int8_io_is_quantised_with_the_tensor_scale_and_zero_point(models) -> None:
    int8, float_io = models["int8"], models["float32"]
    assert (int8.input.dtype, int8.output.dtype) == ("int8", "int8")
    assert (float_io.input.dtype, float_io.output.dtype) == ("float32", "float32")
    assert int8.input.scale > 0 and int8.output.scale > 0
    windows = models["windows"][:20]
    np.testing.assert_allclose(int8.predict(windows), float_io.predict(windows), atol=2 * int8.output.scale)
    keras_out = np.asarray(models["keras"](windows))
    np.testing.assert_allclose(int8.predict(windows), keras_out, atol=4 * int8.output.scale)


def test_a_window_of_the_wrong_size_is_refused(models) -> None:
    with pytest.raises(HotspotError, match="does not match the signal pipeline"):
        models["float32"].predict(np.zeros((5, 13), dtype=np.float32))
