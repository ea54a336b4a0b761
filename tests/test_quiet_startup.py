"""TensorFlow starts quietly on a CPU machine (no CUDA/absl noise) and real warnings still show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOISE = ("Could not find cuda drivers", "cuInit", "absl::InitializeLog", "oneDNN custom operations",
         "cpu_feature_guard", "fully_quantize", "XNNPACK delegate")

SCRIPT = """
import os, warnings
import numpy as np
from train.model import ModelConfig, build_model
from train.tensorflow_setup import quiet_native_logs
from convert.quantize import float_tflite, int8_tflite
from edge.tflite import TFLiteModel

model = build_model((5, 30), np.array([-40.0, 10.0, 70.0]), np.array([5.0, 5.0, 5.0]), ModelConfig())
content = int8_tflite(model, np.random.default_rng(0).normal(size=(120, 5, 30)).astype(np.float32))
float_tflite(model)
print("ok", len(content))
with quiet_native_logs():
    os.write(2, b"W0000 00:00:1.0  1 real.cc:7] a real native warning\\n")
warnings.warn("a real Python warning")
"""


@pytest.mark.slow
def test_tensorflow_start_up_and_conversion_print_no_noise_but_keep_real_warnings() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("ok ")
    for noise in NOISE:
        assert noise not in result.stderr, result.stderr
    assert "a real native warning" in result.stderr
    assert "UserWarning: a real Python warning" in result.stderr
