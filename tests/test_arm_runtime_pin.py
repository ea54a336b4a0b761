"""The TFLite runtime pin: one range in pyproject's edge extra and in edge/tflite.py, refused outside it.

(The aarch64 evidence for the range, and the device refusing 2.3.0 under emulation, are in
tests/test_arm_emulated.py.)
"""

from __future__ import annotations

import tomllib

import pytest

from edge.errors import ErrorCode, HotspotError
from edge.tflite import LITERT_PROVEN, LITERT_REQUIREMENT, check_runtime_version
from hardware.deploy.plan import REPO


def test_edge_extra_pins_the_proven_litert_range():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["edge"]
    [pin] = [line for line in extra if line.startswith("ai-edge-litert")]
    assert pin == LITERT_REQUIREMENT
    low, below = LITERT_PROVEN
    assert LITERT_REQUIREMENT == f"ai-edge-litert>={'.'.join(map(str, low))},<{'.'.join(map(str, below))}"


@pytest.mark.parametrize("version", ["2.0.2", "2.0.3", "2.1.0", "2.1.3", "2.1.6"])
def test_proven_litert_versions_are_accepted(version):
    check_runtime_version("ai_edge_litert", version)


@pytest.mark.parametrize("version", ["2.3.0", "2.2.0", "2.0.1", "1.4.0", "3.0", "(version unknown)"])
def test_other_litert_versions_are_refused_in_one_line_naming_the_bundles_runtime(version):
    with pytest.raises(HotspotError) as refused:
        check_runtime_version("ai_edge_litert", version, built_with="ai_edge_litert 2.1.6")
    message = str(refused.value)
    assert refused.value.code == ErrorCode.SELF_TEST_FAILED and "\n" not in message
    assert f"ai_edge_litert {version} is outside" in message and LITERT_REQUIREMENT in message
    assert "built with ai_edge_litert 2.1.6" in message


def test_other_runtimes_are_not_pinned():
    check_runtime_version("tensorflow.lite", "2.21.0")
    check_runtime_version("tflite_runtime", "2.14.0")
