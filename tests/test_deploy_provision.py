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
    done = subprocess.run([analyze, "verify", str(_unit_for(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _unit_for(tmp_path: Path) -> Path:
    """The unit with its prefix moved under ``tmp_path`` (where a runnable ExecStart exists)."""
    prefix = tmp_path / "prefix"
    executable = prefix / "current" / "venv" / "bin" / "hotspot-edge"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / "hotspot-edge.service"
    unit.write_text((PROVISION / "hotspot-edge.service").read_text().replace(DEFAULT_PREFIX, str(prefix)))
    return unit


HARDENING = ("UMask", "RestrictAddressFamilies", "IPAddressDeny", "DevicePolicy", "DeviceAllow", "SystemCallFilter",
             "SystemCallArchitectures", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
             "ProtectControlGroups", "ProtectClock", "CapabilityBoundingSet", "NoNewPrivileges", "IPAddressAllow",
             "RestrictNamespaces", "MemoryDenyWriteExecute")


def test_unit_is_hardened_and_systemd_analyze_security_rates_it_safe(tmp_path):
    unit_text = (PROVISION / "hotspot-edge.service").read_text()
    keys = {line.split("=", 1)[0] for line in unit_text.splitlines() if "=" in line and not line.startswith("#")}
    assert set(HARDENING) <= keys, sorted(set(HARDENING) - keys)
    assert "UMask=0077" in unit_text and "IPAddressDeny=any" in unit_text
    # the session page answers the home network only: no public address gets through the kernel either
    allowed = next(line for line in unit_text.splitlines() if line.startswith("IPAddressAllow=")).split("=", 1)[1]
    assert set(allowed.split()) == {"localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                    "fc00::/7"}
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    done = subprocess.run([analyze, "security", "--offline=true", str(_unit_for(tmp_path))], capture_output=True,
                          text=True)
    last = done.stdout.strip().splitlines()[-1]
    score = float(last.split(":")[-1].split()[0])
    assert score <= 4.0 and ("OK" in last or "SAFE" in last), last


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
