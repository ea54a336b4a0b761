"""The offline wheelhouse: target platforms, pip resolution for another CPU, native-library checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy_factory import edge_wheel, local_target, wheelhouse  # noqa: F401  (session fixtures)
from edge.errors import HotspotError, run_cli
from hardware.deploy.cli import main as deploy_main
from hardware.deploy.plan import REPO, DeployPlan
from hardware.deploy.wheels import (ELF_MACHINES, Target, Wheel, check_native, elf_machines, make_wheelhouse, resolve,
                                    target_from_platform)

PI = Target("aarch64", (2, 36), (3, 11))


def elf_header(machine: str) -> bytes:
    """The first 20 bytes of a little-endian 64-bit ELF shared object for ``machine``."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + ELF_MACHINES[machine].to_bytes(2, "little")


def fake_native_wheel(folder: Path, machine: str) -> Wheel:
    """A py3-none-any wheel carrying one shared library built for ``machine`` (what BrainFlow ships)."""
    path = folder / f"brainflow-5.23.0-py3-none-any-{machine}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("brainflow/__init__.py", "")
        archive.writestr("brainflow/lib/libBoardController.so", elf_header(machine) + bytes(64))
        archive.writestr("brainflow/lib/BoardController.dll", b"MZ" + bytes(64))
    return Wheel("brainflow", "5.23.0", path, "0" * 64)


def test_platform_tags_cover_older_glibc_and_legacy_names():
    assert target_from_platform("manylinux2014_aarch64", "3.11") == Target("aarch64", (2, 17), (3, 11))
    tags = target_from_platform("manylinux_2_36_aarch64", "3.11").platforms
    assert tags[0] == "manylinux_2_36_aarch64" and tags[-1] == "linux_aarch64"
    assert {"manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(tags)
    assert "manylinux1_x86_64" in Target("x86_64", (2, 36), (3, 11)).platforms


@pytest.mark.parametrize("platform, python, words", [
    ("win_amd64", "3.11", "not understood"),
    ("manylinux_2_36_armv7l", "3.11", "not understood"),
    ("manylinux_2_36_aarch64", "3.9", "3.11 or newer"),
])
def test_bad_wheelhouse_arguments_are_one_line_errors(platform, python, words, capsys):
    assert run_cli(deploy_main, ["wheelhouse", "--platform", platform, "--python", python]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_elf_machines_reads_shared_library_headers(tmp_path):
    assert elf_machines(fake_native_wheel(tmp_path, "aarch64").path) == {ELF_MACHINES["aarch64"]}


def test_native_check_refuses_a_pure_wheel_with_another_cpus_libraries(tmp_path):
    x86_build, arm_build = fake_native_wheel(tmp_path, "x86_64"), fake_native_wheel(tmp_path, "aarch64")
    with pytest.raises(HotspotError, match="no aarch64 build of .*brainflow.*BrainFlow on the Pi"):
        check_native([x86_build], PI, "wh")
    check_native([arm_build], PI, "wh")
    check_native([x86_build], Target("x86_64", (2, 36), (3, 11)), "wh")


@pytest.mark.slow
def test_pypi_brainflow_wheel_has_no_aarch64_library(wheelhouse):
    [brainflow] = [wheel for wheel in wheelhouse.glob("brainflow-*.whl")]
    assert ELF_MACHINES["x86_64"] in elf_machines(brainflow)
    assert ELF_MACHINES["aarch64"] not in elf_machines(brainflow)


@pytest.mark.slow
def test_resolution_for_this_machine_pins_every_wheel_from_the_wheelhouse(wheelhouse, edge_wheel):
    wheels = resolve(f"{edge_wheel}[edge]", [wheelhouse], local_target())
    names = {wheel.name.lower().replace("_", "-") for wheel in wheels}
    assert {"hotspot-edge", "numpy", "brainflow", "ai-edge-litert", "cryptography", "cobs", "pyserial",
            "setuptools"} <= names
    assert all(wheel.path.parent in (wheelhouse, edge_wheel.parent) for wheel in wheels)
    assert all(len(wheel.sha256) == 64 for wheel in wheels)


@pytest.mark.slow
def test_deploy_refuses_a_wheelhouse_without_the_targets_wheels(wheelhouse, edge_wheel, tmp_path):
    from bundle_factory import CHANNELS

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("model.tflite", "manifest.json", "manifest.json.sig", "golden.npz"):
        (bundle / name).write_bytes(b"x")
    config = tmp_path / "device.toml"
    channels = "\n".join(f"{name} = {index}" for index, name in enumerate(CHANNELS, start=1))
    config.write_text(f'[device]\nid = "t"\nstate_dir = "/var/lib/hotspot-edge"\n[board]\ntype = "synthetic"\n'
                      f'[channels]\n{channels}\n[bundle]\npath = "b"\npublic_key = "k"\n'
                      "[session]\ntrials = 2\nrest_s = 1.0\nmove_s = 1.0\nmin_good_trials = 1\n")
    plan = DeployPlan(bundle=bundle, config=config, public_key=config, wheelhouse=wheelhouse, edge_wheel=edge_wheel)
    try:
        with pytest.raises(HotspotError, match=r"lacks a wheel for numpy.*aarch64.*invoke wheelhouse"):
            plan.release_for(PI, config, "/opt/hotspot-edge/trust/signing.pub")
    finally:
        plan.close()


@pytest.mark.slow
def test_wheelhouse_takes_a_supplied_platform_wheel_over_the_index_one(wheelhouse, tmp_path):
    [pypi] = wheelhouse.glob("brainflow-*-py3-none-any.whl")
    shutil.copy(pypi, tmp_path / pypi.name)
    target = local_target()
    subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--platform-tag", f"linux_{target.machine}",
                    str(tmp_path / pypi.name)], check=True, capture_output=True)
    [built] = tmp_path.glob(f"brainflow-*-linux_{target.machine}.whl")
    out = tmp_path / "wheelhouse"
    out.mkdir()
    for wheel in wheelhouse.glob("*.whl"):
        if not wheel.name.startswith("brainflow-"):
            shutil.copy(wheel, out / wheel.name)
    wheels = make_wheelhouse(out, target, [built], REPO)
    [chosen] = [wheel for wheel in wheels if wheel.name == "brainflow"]
    assert chosen.path == out / built.name
    assert not (out / pypi.name).exists()
