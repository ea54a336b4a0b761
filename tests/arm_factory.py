"""Session fixtures of the arm tier: the Pi wheelhouse, the emulated Pi and the wheelhouse installed into it.

Everything is real: ``pi_wheelhouse`` is what ``invoke wheelhouse --platform pi`` writes (BrainFlow
cross-built from the vendored source, cached by the tarball's sha256), ``pi`` is Debian bookworm's
arm64 Python 3.11 unpacked by mmdebstrap and run by qemu-aarch64-static as a Raspberry Pi 4
(Cortex-A72), and ``pi_site`` holds the wheelhouse's aarch64 packages for it. The tools come from
Debian (.ci/run installs them); without them the tier fails under CI and is skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hardware.pi.brainflow import TOOLCHAIN
from hardware.pi.cache import cache_dir
from hardware.pi.root import TOOLS, EmulatedPi, emulated_pi, install_target

PI_WHEELHOUSE = "wheelhouse-pi-cp311"


def require_arm_tools() -> None:
    """Fail (CI) or skip (elsewhere) when qemu, mmdebstrap or the cross toolchain is missing."""
    missing = sorted({package for command, package in {**TOOLS, **TOOLCHAIN}.items() if not shutil.which(command)})
    if not missing:
        return
    reason = f"the arm tier needs Debian's {' '.join(missing)} (apt-get install them; .ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def pi_env(site: Path, **extra: str) -> dict:
    """The environment of an emulated process: only the Pi's own packages on ``PYTHONPATH``."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "PYTHONPATH": str(site), **extra}


@pytest.fixture(scope="session")
def pi_wheelhouse() -> Path:
    """``invoke wheelhouse --platform pi`` into the cache (wheels and the BrainFlow build are reused)."""
    from edge.errors import run_cli
    from hardware.deploy.cli import main as deploy_main

    require_arm_tools()
    folder = cache_dir() / PI_WHEELHOUSE
    assert run_cli(deploy_main, ["wheelhouse", "--platform", "pi", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="session")
def pi() -> EmulatedPi:
    """An emulated Raspberry Pi 4: Debian bookworm arm64 Python 3.11 under qemu as a Cortex-A72."""
    require_arm_tools()
    return emulated_pi("pi4")


@pytest.fixture(scope="session")
def pi_site(pi, pi_wheelhouse, tmp_path_factory) -> Path:
    """hotspot-edge[edge] installed from the Pi wheelhouse for the emulated Pi (aarch64 wheels only)."""
    return install_target(pi, "hotspot-edge[edge]", pi_wheelhouse, tmp_path_factory.mktemp("pi-site") / "site")
