"""invoke deploy of the Pi wheelhouse into the emulated Raspberry Pi, through a real sshd on 127.0.0.1.

The device's Python (``deploy.python``) is the emulated Pi's launcher, so every step runs on aarch64
as on a Pi: preflight probes aarch64 / glibc 2.36 / Python 3.11, pip resolves the release against
the Pi wheelhouse (BrainFlow cross-built here), the release's venv is made and filled by the
emulated interpreter, the signature check and the self-test run LiteRT's ARM kernels, and the
restarted runtime (BrainFlow's aarch64 synthetic board) reports healthy with the new bundle.
"""

from __future__ import annotations

import platform

import pytest

from arm_factory import pi, pi_wheelhouse  # noqa: F401  (fixtures)
from deploy_factory import edge_wheel  # noqa: F401  (session fixture)
from hardware.deploy.plan import REPO
from hardware.deploy.release import bundle_id_of
from hardware.deploy.wheels import ELF_MACHINES, elf_machine
from hardware.pi.brainflow import vendored_source, wheel_version
from sshd_fixture import start_sshd
from test_deploy_ssh import SshDevice, bundles, client_key  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.arm, pytest.mark.ssh, pytest.mark.slow]

HEALTH_TIMEOUT_S = "240"
"""Seconds for the restarted runtime to report healthy: imports and bundle load run emulated."""


@pytest.fixture
def pi_device(tmp_path, client_key, edge_wheel):
    server = start_sshd(tmp_path / "sshd", client_key)
    device = SshDevice(server, tmp_path, edge_wheel)
    yield device
    device.stop_runtime()
    server.stop()


def test_deploy_of_the_pi_wheelhouse_runs_on_aarch64_and_switches(pi, pi_wheelhouse, pi_device, bundles):
    [result] = pi_device.deploy(bundles["a"], bundles["public_key"], pi_wheelhouse,
                                **{"--python": str(pi.python), "--health-timeout": HEALTH_TIMEOUT_S})
    assert result.ok and result.outcome == "deployed", result.message
    assert pi_device.current() == result.release
    release = pi_device.prefix / "releases" / result.release
    # The release's venv was made by the emulated interpreter: its python is the Pi launcher, and
    # what pip installed is the Pi wheelhouse's aarch64 BrainFlow and LiteRT.
    assert (release / "venv" / "bin" / "python").resolve() == pi.python.resolve()
    site = release / "venv" / "lib" / "python3.11" / "site-packages"
    for library in ("brainflow/lib/libBoardController.so", "ai_edge_litert/libpywrap_litert_common.so"):
        assert elf_machine((site / library).read_bytes()[:20]) == ELF_MACHINES["aarch64"], library
    assert (site / f"brainflow-{wheel_version(vendored_source(REPO))}.dist-info").is_dir()
    # The runtime now running is the new release's, healthy with the new bundle, on aarch64.
    health = pi_device.health()
    assert health["status"] == "healthy" and health["bundle_id"] == bundle_id_of(bundles["a"])
    assert pi_device.runtime_alive()
    assert open(f"/proc/{pi_device.runtime_pid()}/cmdline", "rb").read().split(b"\0")[0].endswith(b"qemu-aarch64-static")
    assert platform.machine() != "aarch64"  # ... on an x86 host: the ARM code ran emulated
