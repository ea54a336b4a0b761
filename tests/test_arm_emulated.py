"""The device stack on aarch64: the Pi wheelhouse, and the runtime under an emulated Raspberry Pi.

The emulated Pi (``tests/arm_factory.py``) is Debian bookworm's arm64 Python 3.11 under
qemu-aarch64-static as a Cortex-A72 (Pi 4), with the Pi wheelhouse installed: numpy, LiteRT,
cryptography ... from PyPI's aarch64 wheels and BrainFlow cross-built from source. Nothing is
mocked: the self-test runs the bundle's golden vectors through LiteRT's ARM kernels, the filter
test runs the fixed-point filter on a real EEG recording on both CPUs, and the HIL session has
BrainFlow's aarch64 Cyton driver read the x86 board emulator's pty.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arm_factory import pi, pi_env, pi_site, pi_wheelhouse  # noqa: F401  (fixtures)
from edge.protocol import MessageType
from edge.tflite import LITERT_PROVEN
from fixtures_chain import SPEED, DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)
from hardware.deploy.plan import REPO
from hardware.deploy.wheels import ELF_MACHINES, PI_TARGET, elf_machine, elf_machines, resolve, run_pip
from hardware.pi.brainflow import LIBRARIES, build_brainflow_wheel, vendored_source, wheel_version
from hardware.pi.cache import cache_dir, sha256_file
from hardware.pi.root import emulated_pi

pytestmark = [pytest.mark.arm, pytest.mark.slow]

ARM_SPEED = 4.0
"""The emulated board streams this many times faster than real time to the emulated Pi."""
UNPROVEN_LITERT = "2.3.0"

FILTER_SCRIPT = """
import json
import sys
import numpy as np
from edge.fixedpoint import BiquadCascade, FixedPointFilter
data = np.load(sys.argv[1])
spec = FixedPointFilter.from_dict(json.loads(str(data["spec"])))
cascade = BiquadCascade(spec, data["fixed"].shape[0])
cascade.warm_start(data["fixed"][:, 0])
chunks = [cascade.process(data["fixed"][:, i:i + 125]) for i in range(0, data["fixed"].shape[1], 125)]
np.save(sys.argv[2], np.concatenate(chunks, axis=1))
"""


def _self_test_config(path: Path, bundle: Path, public_key: Path, channels: list[str]) -> Path:
    lines = ["[device]", 'id = "arm-01"', f'state_dir = "{path.parent / "state"}"', "", "[board]",
             'type = "synthetic"', "", "[channels]", *[f"{name} = {i + 1}" for i, name in enumerate(channels)], "",
             "[bundle]", f'path = "{bundle}"', f'public_key = "{public_key}"', "",
             "[session]", "trials = 2", "rest_s = 1.0", "move_s = 1.0", "min_good_trials = 1", ""]
    path.write_text("\n".join(lines))
    return path


def test_pi_wheelhouse_holds_hotspot_edge_litert_and_brainflow_built_for_aarch64(pi_wheelhouse, caplog):
    wheels = resolve("hotspot-edge[edge]", [pi_wheelhouse], PI_TARGET)
    by_name = {wheel.name.lower().replace("_", "-"): wheel for wheel in wheels}
    assert {"hotspot-edge", "numpy", "brainflow", "ai-edge-litert", "cryptography", "cobs", "pyserial"} <= set(by_name)
    assert all(wheel.path.parent == pi_wheelhouse for wheel in wheels)
    litert = tuple(int(part) for part in by_name["ai-edge-litert"].version.split("."))
    assert LITERT_PROVEN[0] <= litert < LITERT_PROVEN[1]
    # Every wheel with native code has it for aarch64 (no x86 library slips in as "any").
    for wheel in wheels:
        machines = elf_machines(wheel.path)
        assert not machines or machines == {ELF_MACHINES["aarch64"]}, wheel.path.name
    brainflow = by_name["brainflow"].path
    source = vendored_source(REPO)
    assert brainflow.name == f"brainflow-{wheel_version(source)}-py3-none-linux_aarch64.whl"
    with zipfile.ZipFile(brainflow) as archive:
        libraries = {name.rsplit("/", 1)[-1] for name in archive.namelist() if "/lib/" in name}
    assert set(LIBRARIES) <= libraries
    # The cross-build is cached outside the clone, keyed by the source tarball's sha256: asking
    # again returns the same wheel without building.
    with caplog.at_level("INFO", logger="hardware.pi.brainflow"):
        again = build_brainflow_wheel(source)
    assert again.parent == cache_dir() / f"brainflow-aarch64-{sha256_file(source)[:16]}"
    assert sha256_file(again) == sha256_file(brainflow)
    assert "from the cache" in caplog.text and "cross-building" not in caplog.text


def test_emulated_pi_is_debian_bookworm_python_on_aarch64_with_brainflows_own_library(pi, pi_site):
    probe = ("import platform, sys, brainflow, numpy; from brainflow.board_shim import BoardShim, BoardIds; "
             "print(platform.machine(), platform.libc_ver()[1], sys.version.split()[0], "
             "BoardShim.get_sampling_rate(BoardIds.CYTON_BOARD), brainflow.__file__)")
    done = pi.run(["-c", probe], env=pi_env(pi_site), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    machine, glibc, python, cyton_rate, location = done.stdout.split()
    assert (machine, glibc, python[:5]) == ("aarch64", "2.36", "3.11.") and cyton_rate == "250"
    assert location.startswith(str(pi_site))
    library = pi_site / "brainflow" / "lib" / "libBoardController.so"
    assert elf_machine(library.read_bytes()[:20]) == ELF_MACHINES["aarch64"]


@pytest.mark.parametrize("model", ["pi4", "pi5"])
def test_bundle_self_test_through_arm_litert_kernels(model, pi, pi_site, chain, tmp_path):
    from edge.bundle import load_bundle

    bundle = load_bundle(chain.bundle_dir, chain.public_key)
    config = _self_test_config(tmp_path / "device.toml", chain.bundle_dir, chain.public_key, bundle.channels)
    device = emulated_pi(model)
    done = device.run(["-m", "edge", "--config", config, "--self-test"], env=pi_env(pi_site), capture_output=True,
                      text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # Signature, hashes and every golden vector within the manifest's tolerance, on aarch64 LiteRT.
    match = re.search(r"self-test ok: bundle (\w+) \(ai_edge_litert ([\d.]+)\)", done.stdout)
    assert match and match[1] == bundle.bundle_id, done.stdout
    assert LITERT_PROVEN[0] <= tuple(map(int, match[2].split("."))) < LITERT_PROVEN[1]


@pytest.fixture(scope="module")
def unproven_litert(pi) -> Path:
    """ai-edge-litert 2.3.0's aarch64 wheel unpacked into a folder (cached), to lay over the Pi site."""
    folder = cache_dir() / f"litert-{UNPROVEN_LITERT}-aarch64"
    if not (folder / "ai_edge_litert").is_dir():
        done = run_pip(["install", "--quiet", "--no-deps", "--target", str(folder), *PI_TARGET.pip_options(),
                        f"ai-edge-litert=={UNPROVEN_LITERT}"])
        assert done.returncode == 0, done.stderr
    return folder


def test_device_refuses_an_unproven_litert_in_one_line(pi, pi_site, chain, unproven_litert, tmp_path):
    from edge.bundle import load_bundle

    bundle = load_bundle(chain.bundle_dir, chain.public_key)
    config = _self_test_config(tmp_path / "device.toml", chain.bundle_dir, chain.public_key, bundle.channels)
    env = pi_env(pi_site, PYTHONPATH=f"{unproven_litert}:{pi_site}")
    done = pi.run(["-m", "edge", "--config", config, "--self-test"], env=env, capture_output=True, text=True,
                  timeout=600)
    # Without the pin, 2.3.0 dies with SIGSEGV here (in cpuinfo_arm_linux_init under qemu).
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"ai_edge_litert {UNPROVEN_LITERT} is outside the range" in lines[0]
    assert bundle.manifest["model"]["built_with"] in lines[0]


def test_fixed_point_filter_gives_x86s_integers_on_a_real_recording(pi, pi_site, real_data_dir, tmp_path):
    from train.filter_design import default_filter
    from train.io import read_recording

    recording = read_recording(real_data_dir / "eegmmidb" / "S001R03.edf")
    motor = ["FC3", "C5", "C3", "C1", "CP3", "C4"]
    uv = np.stack([recording.data[recording.ch_names.index(name)] for name in motor])
    for q_format in ("q31", "q15"):
        spec = default_filter(recording.sfreq, q_format=q_format)
        fixed = spec.to_fixed(uv)
        assert np.ptp(fixed) > 1000  # a real signal, not a flat line
        inputs = tmp_path / f"{q_format}-input.npz"
        np.savez(inputs, fixed=fixed, spec=np.array(json.dumps(spec.to_dict())))
        script = tmp_path / "filter.py"
        script.write_text(FILTER_SCRIPT)
        host = subprocess.run([sys.executable, script, inputs, tmp_path / f"{q_format}-x86.npy"], check=False,
                              capture_output=True, text=True)
        assert host.returncode == 0, host.stderr
        arm = pi.run([script, inputs, tmp_path / f"{q_format}-arm.npy"], env=pi_env(pi_site), capture_output=True,
                     text=True, timeout=600)
        assert arm.returncode == 0, arm.stderr
        x86_out, arm_out = np.load(tmp_path / f"{q_format}-x86.npy"), np.load(tmp_path / f"{q_format}-arm.npy")
        assert x86_out.shape == fixed.shape and np.array_equal(x86_out, arm_out)


def _session_result(rig: DeviceRig, timeout_s: float):
    try:
        result = rig.result(timeout_s)
    finally:
        code = rig.close()
    return result, code


def test_hil_session_on_aarch64_reports_the_x86_hotspot(pi, pi_site, chain, chain_settings, tmp_path):
    session = chain_settings["session"]
    x86 = DeviceRig(chain, tmp_path / "x86", session, speed=SPEED)
    x86_result, x86_code = _session_result(x86, x86.session_seconds() + 60)
    arm = DeviceRig(chain, tmp_path / "arm", session, speed=ARM_SPEED, python=[str(pi.python)], env=pi_env(pi_site))
    arm_result, arm_code = _session_result(arm, arm.session_seconds() + 240)
    assert (x86_code, arm_code) == (0, 0), (arm.stderr_path.read_text()[-1500:])
    assert x86_result.type == arm_result.type == MessageType.HOTSPOT, (x86_result.fields, arm_result.fields)
    # BrainFlow's aarch64 Cyton driver delivered every sample (no losses, the same trials kept) ...
    assert sorted(arm.trial_results()) == sorted(x86.trial_results()) == list(range(chain.schedule["trials"]))
    assert [m["good"] for _, m in sorted(arm.trial_results().items())] == \
        [m["good"] for _, m in sorted(x86.trial_results().items())]
    # ... and the ARM kernels put the hotspot where x86's do, within the bundle's golden tolerance.
    from edge.bundle import load_bundle

    tolerance = load_bundle(chain.bundle_dir, chain.public_key).manifest["golden"]["tolerance"]
    difference = np.abs(np.asarray(arm_result["position_mm"]) - np.asarray(x86_result["position_mm"]))
    assert difference.max() <= tolerance, (arm_result["position_mm"], x86_result["position_mm"], tolerance)
    # The same holds before the prior combination (a session that cannot localise reports the prior itself).
    from edge.sessionlog import read_session_log

    def prediction(rig: DeviceRig) -> np.ndarray:
        log = read_session_log(next((rig.state_dir / "sessions").glob("session-*.log")))
        return np.asarray(log.of_kind("result")[0]["prediction"]["mean_mm"], dtype=float)

    assert np.abs(prediction(arm) - prediction(x86)).max() <= tolerance + 1e-3  # + the log's 3-decimal rounding
    assert arm_result["electrode"] == x86_result["electrode"]
