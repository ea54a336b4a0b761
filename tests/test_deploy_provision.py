"""The device's systemd unit and udev rule agree with what deploy installs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from hardware.deploy.release import CONFIG_FILE
from hardware.deploy.settings import DEFAULT_PREFIX, DEFAULT_RESTART, DEFAULT_SERVICE_STATE

PROVISION = Path(__file__).resolve().parents[1] / "hardware" / "provision"
REPO = PROVISION.parents[1]


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(PROVISION / "hotspot-edge.service")
    return unit


def test_unit_runs_the_current_release_with_its_config():
    script = next(iter(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]))
    exec_start = read_unit()["Service"]["ExecStart"]
    assert exec_start == (f"{DEFAULT_PREFIX}/current/venv/bin/{script} --config "
                          f"{DEFAULT_PREFIX}/current/{CONFIG_FILE}")
    assert "hotspot-edge.service" in DEFAULT_RESTART and "hotspot-edge.service" in DEFAULT_SERVICE_STATE
    sudoers = (PROVISION / "hotspot-edge.sudoers").read_text()
    assert DEFAULT_RESTART.removeprefix("sudo systemctl") in sudoers


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    prefix = tmp_path / "prefix"
    executable = prefix / "current" / "venv" / "bin" / "hotspot-edge"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / "hotspot-edge.service"
    unit.write_text((PROVISION / "hotspot-edge.service").read_text().replace(DEFAULT_PREFIX, str(prefix)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_udev_rule_names_the_dongle_and_sets_latency_one_ms():
    rules = [line for line in (PROVISION / "99-openbci.rules").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    naming = next(rule for rule in rules if 'SUBSYSTEM=="tty"' in rule)
    latency = next(rule for rule in rules if 'SUBSYSTEM=="usb-serial"' in rule)
    for rule in (naming, latency):
        assert 'ATTRS{idVendor}=="0403"' in rule and 'ATTRS{idProduct}=="6015"' in rule
    assert 'SYMLINK+="openbci"' in naming
    assert 'DRIVER=="ftdi_sio"' in latency and 'ATTR{latency_timer}="1"' in latency


def test_avahi_announces_the_session_page_on_the_configured_port():
    import xml.etree.ElementTree as ElementTree

    from edge.config import load_config

    service = ElementTree.parse(PROVISION / "avahi-hotspot-edge.service").getroot().find("service")
    config = load_config(REPO / "hardware" / "example-device.toml")
    assert service.findtext("type") == "_http._tcp"
    assert int(service.findtext("port")) == config.page.port
    readme = (PROVISION / "README.md").read_text()
    assert "/etc/avahi/services/hotspot-edge.service" in readme and "802-11-wireless.mode ap" in readme
