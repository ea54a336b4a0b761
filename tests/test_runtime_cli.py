"""``python -m edge`` / ``hotspot-edge``: self-test, clear errors, host control, health and result files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bundle_factory import CHANNELS, build_bundle

from edge.protocol import MessageType
from hardware.monitor import Display, MonitorClient
from hardware.nullmodem import NullModem


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_bundle(tmp_path_factory.mktemp("tiny"))


def write_config(folder: Path, tiny: dict, board: str = "synthetic", report_port: str | None = None,
                 channels: tuple[str, ...] = CHANNELS, autostart: bool = False, hand: str = "right") -> Path:
    bundle = shutil.copytree(tiny["bundle"], folder / "bundle")
    keys = folder / "keys"
    keys.mkdir()
    shutil.copy(tiny["public_key"], keys / "signing.pub")
    port = ['serial_port = "/dev/ttyNOTHERE"'] if board.startswith("cyton") else []
    lines = ["[device]", 'id = "pt-7"', "", "[board]", f'type = "{board}"', *port, "", "[channels]",
             *[f"{name} = {index + 1}" for index, name in enumerate(channels)], "",
             "[bundle]", 'path = "bundle"', 'public_key = "keys/signing.pub"', ""]
    if report_port:
        lines += ["[links.serial]", f'port = "{report_port}"', ""]
    lines += ["[session]", f'hand = "{hand}"', "trials = 3", "rest_s = 2.0", "move_s = 4.0", "post_s = 0.5",
              "min_good_trials = 2", f"autostart = {'true' if autostart else 'false'}", ""]
    path = folder / "device.toml"
    path.write_text("\n".join(lines))
    return path


def run_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout)


def test_self_test_passes_with_relative_paths(tiny, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny)
    result = subprocess.run(["hotspot-edge", "--config", str(config), "--self-test"], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("self-test ok: bundle ") and "channels FC3 C5 C3 C1 CP3" in result.stdout


def test_self_test_refuses_a_tampered_bundle_in_one_line(tiny, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny)
    manifest = tmp_path / "bundle" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"', "'", 1))
    result = run_edge("--config", str(config), "--self-test")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def test_missing_electrode_for_a_left_hand_patient_is_named(tiny, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny, hand="left")
    result = run_edge("--config", str(config), "--self-test")
    assert result.returncode == 2
    assert "needs electrode(s) FC4, C6, C4, C2, CP4 (mirrored: the patient moves the left hand)" in result.stderr
    assert "MISSING_CHANNELS" in result.stderr


def test_board_rate_other_than_the_bundles_is_refused(tiny, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny, board="cyton_daisy")
    result = run_edge("--config", str(config))
    assert result.returncode == 2
    assert "samples at 125 Hz but the bundle's model expects 250 Hz" in result.stderr
    # One error line (TFLite's native runtime may add its own INFO line when the bundle loads).
    assert "BAD_SAMPLING_RATE" in result.stderr and result.stderr.count("error: ") == 1


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "device.toml").write_text("[device]\nid = 'x'\n")
    result = run_edge("--config", str(tmp_path / "device.toml"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "missing table [board]" in result.stderr


def test_host_starts_and_stops_a_session_and_the_runtime_keeps_its_files(tiny, tmp_path: Path) -> None:
    with NullModem() as cable:
        config = write_config(tmp_path, tiny, report_port=cable.device_port)
        client = MonitorClient(cable.host_port)
        runtime = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(config)],
                                   stderr=open(tmp_path / "stderr", "w"))
        seen: list = []
        display = Display()

        def wait(predicate, timeout_s: float):
            deadline = time.monotonic() + timeout_s
            for message in client.messages(timeout_s):
                seen.append(message)
                display.describe(message)
                if predicate(message) or time.monotonic() > deadline:
                    return message
            return None

        try:
            hello = wait(lambda m: m.type == MessageType.HELLO, 30)
            assert hello is not None and hello["device_id"] == "pt-7" and hello["channels"] == list(CHANNELS)
            assert wait(lambda m: m.type == MessageType.STATUS and m["samples"] > 0, 20) is not None
            assert not [m for m in seen if m.type == MessageType.CUE]  # no autostart: waits for the host
            client.send(MessageType.START)
            assert wait(lambda m: m.type == MessageType.CUE, 10) is not None
            client.send(MessageType.STOP)
            redo = wait(lambda m: m.type == MessageType.REDO, 10)
            assert redo is not None and redo["reasons"][0] == "stopped by the host"
            health = json.loads((tmp_path / "state" / "health.json").read_text())
            assert health["pid"] == runtime.pid and health["bundle_id"] == hello["bundle_id"]
            assert health["status"] == "healthy" and health["config"] == str(config)
            assert health["signal"] in ("ok", "poor")
            last = json.loads((tmp_path / "state" / "last_result.json").read_text())
            assert last["kind"] == "redo" and last["device_id"] == "pt-7"
        finally:
            runtime.terminate()
            code = runtime.wait(timeout=30)
            client.close()
    assert code == 0, (tmp_path / "stderr").read_text()[-2000:]
    assert not os.path.exists(tmp_path / "state" / "health.json.tmp")
    assert json.loads((tmp_path / "state" / "health.json").read_text())["status"] == "stopped"


def test_a_session_log_that_cannot_be_written_never_stops_the_runtime(tiny, tmp_path: Path) -> None:
    # the sessions folder cannot be made (a file has its name): every append fails from the start;
    # the runtime is stopped mid-session, so the 'interrupted' record is written in the stopping path too
    with NullModem() as cable:
        config = write_config(tmp_path, tiny, report_port=cable.device_port, autostart=True)
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "sessions").write_text("not a folder")
        client = MonitorClient(cable.host_port)
        runtime = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(config)],
                                   stderr=open(tmp_path / "stderr", "w"))
        seen = []
        try:
            deadline = time.monotonic() + 60
            for message in client.messages(60):
                seen.append(message)
                if message.type == MessageType.ERROR or time.monotonic() > deadline:
                    break
            health = {}
            while time.monotonic() < deadline and health.get("status") != "degraded: storage":
                time.sleep(0.2)
                try:
                    health = json.loads((tmp_path / "state" / "health.json").read_text())
                except (OSError, ValueError):
                    pass
        finally:
            runtime.terminate()
            code = runtime.wait(timeout=30)
            client.close()
    stderr = (tmp_path / "stderr").read_text()
    assert code == 0 and "Traceback" not in stderr, stderr[-2000:]
    errors = [m["message"] for m in seen if m.type == MessageType.ERROR]
    assert errors and "storage fault: cannot write the session log" in errors[0]
    assert health["status"] == "degraded: storage" and "session log" in health["storage"]
    assert json.loads((tmp_path / "state" / "health.json").read_text())["status"] == "stopped"
