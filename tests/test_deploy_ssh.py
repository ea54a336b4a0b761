"""invoke deploy against real sshd instances on 127.0.0.1, deploying into temporary prefixes.

The "device" is this machine: each release gets a real venv installed offline from a cached
wheelhouse of this machine's wheels, the real runtime self-test, and a restart command that
does what the systemd unit does (start ``<prefix>/current/venv/bin/hotspot-edge`` on a
synthetic board in the background), so the health check reads the real runtime's health.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from deploy_factory import edge_wheel, wheelhouse  # noqa: F401  (session fixtures)
from hardware.deploy.cli import main as deploy_main
from hardware.deploy.fleet import deploy_fleet
from hardware.deploy.plan import DeployPlan
from hardware.deploy.release import bundle_id_of
from hardware.deploy.settings import add_settings_arguments, settings_from_args
from sshd_fixture import SshServer, find_sshd, free_port, make_client_key, start_sshd

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

RESTART_SCRIPT = """#!/bin/sh
# A test device's service manager (what hardware/provision/hotspot-edge.service does on a Pi):
#   restart.sh PREFIX        stop the running runtime, start <prefix>/current's in the background
#   restart.sh PREFIX state  print active / inactive
prefix="$1"
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status"; }
pid=$(cat "$prefix/runtime.pid" 2>/dev/null)
if [ "$2" = state ]; then
    if [ -n "$pid" ] && alive "$pid"; then echo active; else echo inactive; fi
    exit 0
fi
if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    i=0
    while alive "$pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
setsid nohup "$prefix/current/venv/bin/hotspot-edge" --config "$prefix/current/device.toml" \\
    >> "$prefix/runtime.log" 2>&1 < /dev/null &
echo $! > "$prefix/runtime.pid"
"""


def _sign_again(bundle: Path, private_key: Path, version: int | None = None) -> None:
    from convert.signing import load_private_key, sign_manifest
    from edge.bundle import GOLDEN_FILE, MANIFEST_FILE, SIGNATURE_FILE, sha256_hex

    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["files"][GOLDEN_FILE] = sha256_hex((bundle / GOLDEN_FILE).read_bytes())
    if version is not None:
        manifest["version"] = version
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    (bundle / MANIFEST_FILE).write_bytes(manifest_bytes)
    (bundle / SIGNATURE_FILE).write_bytes(sign_manifest(manifest_bytes, load_private_key(private_key)))


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Signed bundles with versions: good A (100), B (200), C (400) and an older copy of A (50), one failing its
    self-test and one tampered after signing (300); D (500) signed with a second key (for a key rotation)."""
    from bundle_factory import build_bundle

    from convert.bundle_writer import write_bundle
    from convert.signing import generate_keypair
    from edge.bundle import GOLDEN_FILE, MANIFEST_FILE

    folder = tmp_path_factory.mktemp("bundles")
    made = build_bundle(folder / "a")
    _sign_again(made["bundle"], made["private_key"], version=100)

    contract = dataclasses.replace(made["contract"], electrodes={"C3": np.array([-52.0, 1.0, 62.0])},
                                   head_centre_mm=np.array([0.0, 12.0, 43.0]))

    def another(name: str, version: int, private_key: Path, rows: slice) -> Path:
        return write_bundle(folder / name, model_content=(made["bundle"] / "model.tflite").read_bytes(),
                            contract=contract, golden_inputs=made["windows"][rows], private_key=private_key,
                            provenance={"purpose": name}, version=version)

    new_private, new_public = generate_keypair(folder / "keys-new" / "signing.key")
    older = folder / "older"
    shutil.copytree(made["bundle"], older)
    _sign_again(older, made["private_key"], version=50)
    failing = folder / "failing"
    shutil.copytree(made["bundle"], failing)
    golden = dict(np.load(failing / GOLDEN_FILE))
    golden["outputs"] = golden["outputs"] + 5.0
    buffer = io.BytesIO()
    np.savez(buffer, **golden)
    (failing / GOLDEN_FILE).write_bytes(buffer.getvalue())
    _sign_again(failing, made["private_key"], version=300)
    tampered = folder / "tampered"
    shutil.copytree(made["bundle"], tampered)
    manifest = json.loads((tampered / MANIFEST_FILE).read_text())
    manifest["mirror"] = not manifest["mirror"]
    manifest["version"] = 300
    (tampered / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return {"a": made["bundle"], "b": another("b", 200, made["private_key"], slice(130, 134)),
            "c": another("c", 400, made["private_key"], slice(134, 138)), "older": older, "failing": failing,
            "tampered": tampered, "d": another("d", 500, new_private, slice(138, 142)),
            "e": another("e", 600, made["private_key"], slice(142, 146)),
            "public_key": made["public_key"], "private_key": made["private_key"], "new_public_key": new_public,
            "new_private_key": new_private}


def write_device_config(path: Path, state_dir: Path, device_id: str = "test-01", report_port: str = "") -> Path:
    """A device TOML for a synthetic board with the bundle's five channels (and a serial report port)."""
    links = f'[links.serial]\nport = "{report_port}"\n' if report_port else ""
    path.write_text(f"""[device]
id = "{device_id}"
state_dir = "{state_dir}"

[board]
type = "synthetic"
{links}
[channels]
FC3 = 1
C5 = 2
C3 = 3
C1 = 4
CP3 = 5

[bundle]
path = "bundle"
public_key = "keys/signing.pub"

[session]
trials = 2
rest_s = 1.0
move_s = 1.0
min_good_trials = 1
""")
    return path


class SshDevice:
    """One sshd "device": its server, prefix, state folder and how to talk to it."""

    def __init__(self, server: SshServer, folder: Path, edge_wheel: Path) -> None:
        self.server, self.folder, self.edge_wheel = server, folder, edge_wheel
        self.prefix = folder / "prefix"
        self.state = folder / "state"
        self.script = folder / "restart.sh"
        self.script.write_text(RESTART_SCRIPT)
        self.config = write_device_config(folder / "device.toml", self.state)
        self.known_hosts = folder / "known_hosts"

    def settings_argv(self, **overrides: str) -> list[str]:
        options = {"--ssh-key": str(self.server.key), "--prefix": str(self.prefix),
                   "--restart-command": f"sh {self.script} {{prefix}}",
                   "--service-state-command": f"sh {self.script} {{prefix}} state",
                   "--health-timeout": "30", "--keep": "2", "--min-free-mb": "50",
                   "--known-hosts": str(self.known_hosts)}
        options.update(overrides)
        return [item for pair in options.items() for item in pair]

    def trusted_key(self) -> bytes:
        return (self.prefix / "trust" / "signing.pub").read_bytes()

    def deploy(self, bundle: Path, public_key: Path, wheelhouse: Path, config: Path | None = None,
               hosts: list[str] | None = None, trust_new_host: bool = False, **overrides: str):
        parser = argparse.ArgumentParser()
        add_settings_arguments(parser)
        settings = settings_from_args(parser.parse_args(self.settings_argv(**overrides)))
        settings = dataclasses.replace(settings, trust_new_host=trust_new_host)
        plan = DeployPlan(bundle=bundle, config=config or self.config, public_key=public_key, wheelhouse=wheelhouse,
                          edge_wheel=self.edge_wheel)
        try:
            return deploy_fleet(hosts or [self.server.host], settings, plan)
        finally:
            plan.close()

    def current(self) -> str | None:
        link = self.prefix / "current"
        return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None

    def releases(self) -> list[str]:
        folder = self.prefix / "releases"
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []

    def health(self) -> dict:
        return json.loads((self.state / "health.json").read_text())

    def runtime_pid(self) -> int:
        return int((self.prefix / "runtime.pid").read_text())

    def runtime_alive(self) -> bool:
        status = Path(f"/proc/{self.runtime_pid()}/status")
        return status.exists() and "\nState:\tZ" not in status.read_text()

    def wait_fresh_health(self, pid: int, timeout: float = 10.0) -> dict:
        """health.json written by process ``pid`` after now."""
        start = time.time()
        while time.time() - start < timeout:
            try:
                report = self.health()
            except (OSError, ValueError):
                report = None
            if report and report.get("pid") == pid:
                return report
            time.sleep(0.2)
        raise AssertionError(f"no health.json from pid {pid}")

    def stop_runtime(self) -> None:
        pid_file = self.prefix / "runtime.pid"
        if pid_file.exists() and self.runtime_alive():
            os.kill(self.runtime_pid(), 15)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory) -> Path:
    find_sshd()
    return make_client_key(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def device(tmp_path_factory, client_key, edge_wheel):
    """A device (sshd + prefix) shared by the tests of this module, in the order they are written."""
    folder = tmp_path_factory.mktemp("device1")
    server = start_sshd(folder / "sshd", client_key)
    test_device = SshDevice(server, folder, edge_wheel)
    yield test_device
    test_device.stop_runtime()
    server.stop()


def test_an_unknown_host_is_refused_by_default(device, bundles, wheelhouse):
    [result] = device.deploy(bundles["a"], bundles["public_key"], wheelhouse)
    assert not result.ok and result.outcome == "refused" and result.step == "preflight", result
    assert "not in known_hosts" in result.message and "--trust-new-host" in result.message
    assert not device.prefix.exists() and not device.known_hosts.exists()


def test_fresh_deploy_installs_self_tests_switches_and_is_healthy(device, bundles, wheelhouse):
    [result] = device.deploy(bundles["a"], bundles["public_key"], wheelhouse, trust_new_host=True)
    assert result.ok and result.outcome == "deployed", result
    # the first deploy recorded the host key and installed the device's trusted signing key, outside the release
    assert f"[127.0.0.1]:{device.server.port}" in device.known_hosts.read_text()
    assert device.trusted_key() == bundles["public_key"].read_bytes()
    assert "provisioned" in (device.prefix / "trust" / "history").read_text()
    assert not list((device.prefix / "releases").glob("*/signing.pub"))
    assert device.current() == result.release
    release = device.prefix / "releases" / result.release
    assert (release / "venv" / "bin" / "hotspot-edge").exists()
    assert (release / ".verified").exists()
    health = device.health()
    assert health["status"] == "healthy" and health["bundle_id"] == bundle_id_of(bundles["a"])
    assert device.runtime_alive()
    assert (device.prefix / "history").read_text().split()[1] == result.release


def test_same_deploy_again_is_idempotent(device, bundles, wheelhouse):
    before = (device.current(), device.releases(), (device.prefix / "history").read_text(), device.runtime_pid())
    [result] = device.deploy(bundles["a"], bundles["public_key"], wheelhouse)
    assert result.ok and result.outcome == "unchanged"
    assert (device.current(), device.releases(), (device.prefix / "history").read_text(),
            device.runtime_pid()) == before


def test_connection_dropped_mid_upload_leaves_old_release_untouched(device, bundles, wheelhouse, monkeypatch):
    from fabric.transfer import Transfer

    current, pid = device.current(), device.runtime_pid()
    real_put = Transfer.put
    calls = []

    def put_then_drop(self, local, remote=None, preserve_mode=True):
        calls.append(remote)
        if len(calls) == 3:
            self.connection.client.get_transport().close()
        return real_put(self, local, remote, preserve_mode)

    monkeypatch.setattr(Transfer, "put", put_then_drop)
    [result] = device.deploy(bundles["b"], bundles["public_key"], wheelhouse)
    assert not result.ok and result.outcome == "refused" and result.step == "upload", result
    assert len(calls) == 3 and "device unchanged" in result.message
    _unchanged(device, current, pid, bundle_id_of(bundles["a"]))
    assert [name for name in device.releases() if name != current], "the partial upload is still there"


def test_second_release_replaces_the_partial_upload(device, bundles, wheelhouse):
    first = device.current()
    [result] = device.deploy(bundles["b"], bundles["public_key"], wheelhouse)
    assert result.ok and result.outcome == "deployed", result
    assert device.current() == result.release != first
    assert device.releases() == sorted([first, result.release])
    assert device.health()["bundle_id"] == bundle_id_of(bundles["b"])


def test_status_rollback_and_forward_again(device, bundles, wheelhouse, capsys):
    second = device.current()
    argv = ["--host", device.server.host, *device.settings_argv()]
    assert deploy_main(["status", *argv]) == 0
    status = capsys.readouterr().out
    assert second in status and bundle_id_of(bundles["b"]) in status and "active" in status

    assert deploy_main(["rollback", *argv]) == 0
    assert "rolled back" in capsys.readouterr().out
    first = device.current()
    assert first != second and device.health()["bundle_id"] == bundle_id_of(bundles["a"])

    [again] = device.deploy(bundles["b"], bundles["public_key"], wheelhouse)
    assert again.ok and again.outcome == "deployed" and again.release == second
    assert device.releases() == sorted([first, second])
    assert device.health()["bundle_id"] == bundle_id_of(bundles["b"])


def _unchanged(device, before_current, before_pid, bundle_id):
    assert device.current() == before_current
    assert device.runtime_pid() == before_pid and device.runtime_alive()
    health = device.wait_fresh_health(before_pid)
    assert health["status"] == "healthy" and health["bundle_id"] == bundle_id


def test_bundle_failing_self_test_is_refused_and_old_release_keeps_running(device, bundles, wheelhouse):
    current, pid, releases = device.current(), device.runtime_pid(), device.releases()
    [result] = device.deploy(bundles["failing"], bundles["public_key"], wheelhouse)
    assert not result.ok and result.outcome == "refused" and result.step == "self-test", result
    assert "SELF_TEST_FAILED" in result.message
    _unchanged(device, current, pid, bundle_id_of(bundles["b"]))
    assert device.releases() == releases


def test_tampered_bundle_is_refused_at_signature(device, bundles, wheelhouse):
    current, pid, releases = device.current(), device.runtime_pid(), device.releases()
    [result] = device.deploy(bundles["tampered"], bundles["public_key"], wheelhouse)
    assert not result.ok and result.step == "signature", result
    assert "BAD_SIGNATURE" in result.message
    _unchanged(device, current, pid, bundle_id_of(bundles["b"]))
    assert device.releases() == releases


def test_release_that_cannot_start_is_rolled_back_to_the_running_one(device, bundles, wheelhouse, tmp_path):
    current, releases = device.current(), device.releases()
    config = write_device_config(tmp_path / "no-gadget.toml", device.state, report_port="/dev/no-such-usb-gadget")
    [result] = device.deploy(bundles["b"], bundles["public_key"], wheelhouse, config=config,
                             **{"--health-timeout": "8"})
    assert not result.ok and result.outcome == "rolled back" and result.step == "health", result
    assert device.current() == current == result.release
    assert device.runtime_alive() and device.health()["status"] == "healthy"
    assert device.health()["bundle_id"] == bundle_id_of(bundles["b"])
    assert device.releases() == releases


@pytest.mark.parametrize("setting, value, words", [
    ("--min-free-mb", "100000000", "MB free"),
    ("--max-clock-skew", "0.000001", "clock"),
    ("--python", "python3.9-missing", "install Python 3.11+"),
])
def test_preflight_refuses_before_touching_the_device(device, bundles, wheelhouse, setting, value, words):
    current, pid, releases = device.current(), device.runtime_pid(), device.releases()
    [result] = device.deploy(bundles["a"], bundles["public_key"], wheelhouse, **{setting: value})
    assert not result.ok and result.outcome == "refused" and result.step == "preflight", result
    assert words in result.message
    assert (device.current(), device.runtime_pid(), device.releases()) == (current, pid, releases)


def test_an_older_bundle_is_refused_unless_rolled_back(device, bundles, wheelhouse):
    current, pid, releases = device.current(), device.runtime_pid(), device.releases()
    [result] = device.deploy(bundles["older"], bundles["public_key"], wheelhouse)
    assert not result.ok and result.outcome == "refused" and result.step == "version", result
    assert "version 50 is older than the installed 200" in result.message and "invoke rollback" in result.message
    assert (device.current(), device.runtime_pid(), device.releases()) == (current, pid, releases)


def test_a_normal_deploy_never_replaces_the_trusted_key(device, bundles, wheelhouse):
    current, pid, key = device.current(), device.runtime_pid(), device.trusted_key()
    for trust_new_host in (False, True):  # not even the first-deploy path replaces a key the device has
        [result] = device.deploy(bundles["d"], bundles["new_public_key"], wheelhouse, trust_new_host=trust_new_host)
        assert not result.ok and result.outcome == "refused" and result.step == "trust", result
        assert "invoke rotate-key" in result.message
    assert (device.current(), device.runtime_pid(), device.trusted_key()) == (current, pid, key)


def test_a_replaced_host_key_is_refused(device, bundles, wheelhouse, tmp_path):
    # another machine answers at the device's address: its host key differs from the recorded one
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    entry = f"[127.0.0.1]:{device.server.port}"
    known = tmp_path / "known_hosts"
    known.write_text(f"{entry} {other.with_suffix('.pub').read_text().split(' ', 2)[0]} "
                     f"{other.with_suffix('.pub').read_text().split()[1]}\n")
    current, pid = device.current(), device.runtime_pid()
    for trust_new_host in (False, True):
        [result] = device.deploy(bundles["c"], bundles["public_key"], wheelhouse, trust_new_host=trust_new_host,
                                 **{"--known-hosts": str(known)})
        assert not result.ok and result.outcome == "refused" and result.step == "preflight", result
        assert "presented host key" in result.message and "refused" in result.message
    assert (device.current(), device.runtime_pid()) == (current, pid)
    assert known.read_text().count(entry) == 1


def test_fleet_deploys_in_parallel_and_reports_each_device(device, bundles, wheelhouse, tmp_path_factory, capsys):
    stranger = make_client_key(tmp_path_factory.mktemp("stranger"))
    locked = start_sshd(tmp_path_factory.mktemp("device2") / "sshd", stranger)
    address = device.server.host.rsplit("@", 1)[-1]
    dead = f"{device.server.host.rsplit(':', 1)[0]}:{free_port()}"
    unconfigured = device.server.host.replace("127.0.0.1", "localhost")
    configs = tmp_path_factory.mktemp("fleet")
    write_device_config(configs / f"{address}.toml", device.state, device_id="test-03")
    oldest = device.prefix.joinpath("history").read_text().split()[1]
    stray = device.prefix / "wheelhouse" / "stray-1.0-py3-none-any.whl"
    stray.write_bytes(b"a wheel no release pins")
    hosts = [device.server.host, locked.host, dead, unconfigured]
    try:
        argv = ["deploy", "--hosts", ",".join(hosts), "--bundle", str(bundles["c"]), "--config", str(configs),
                "--public-key", str(bundles["public_key"]), "--wheelhouse", str(wheelhouse), "--trust-new-host",
                "--edge-wheel", str(device.edge_wheel), *device.settings_argv(**{"--connect-timeout": "3"})]
        assert deploy_main(argv) == 1
    finally:
        locked.stop()
    table = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines() if line.split() and line.split()[0] in hosts}
    assert set(rows) == set(hosts), table
    assert " deployed " in rows[device.server.host]
    assert " refused " in rows[locked.host] and "authentication" in rows[locked.host]
    assert " refused " in rows[dead] and "unreachable" in rows[dead]
    assert " refused " in rows[unconfigured] and " config " in rows[unconfigured]
    assert "1 of 4 device(s) succeeded" in table
    health = device.health()
    assert health["bundle_id"] == bundle_id_of(bundles["c"]) and health["device_id"] == "test-03"
    assert len(device.releases()) == 2 and oldest not in device.releases(), "keep = 2 pruned the oldest release"
    assert not stray.exists(), "wheels no kept release pins are removed"
    assert len(list((device.prefix / "wheelhouse").glob("*.whl"))) > 5


def test_rotate_key_hands_trust_to_a_new_key_only_when_the_old_key_signs_it(device, bundles, wheelhouse, capsys):
    from hardware.deploy.device import Device, StepFailed, make_connection
    from edge.trust import rotation_statement
    from convert.signing import load_private_key

    argv = ["rotate-key", "--host", device.server.host, "--new-public-key", str(bundles["new_public_key"]), "--yes",
            *device.settings_argv()]
    old_key = device.trusted_key()
    # a signing key the device does not trust cannot rotate it
    from edge.errors import run_cli

    assert run_cli(deploy_main, [*argv, "--signing-key", str(bundles["new_private_key"])]) == 2
    assert "is the key" in capsys.readouterr().err
    stranger = bundles["new_private_key"].parent.parent / "stranger.key"
    from convert.signing import generate_keypair

    generate_keypair(stranger, overwrite=True)
    assert deploy_main([*argv, "--signing-key", str(stranger)]) == 1
    assert "the trusted key is unchanged" in capsys.readouterr().out and device.trusted_key() == old_key
    # a statement signed by the new key itself is refused by the device's own check
    settings = settings_from_args(_settings_parser().parse_args(device.settings_argv()))
    new_private = load_private_key(bundles["new_private_key"])
    forged = rotation_statement(load_private_key(bundles["private_key"]).public_key(), new_private.public_key())
    with make_connection(device.server.host, settings) as connection:
        with pytest.raises(StepFailed, match="not signed by the trusted key"):
            Device(connection, settings).rotate_trusted_key(forged, __import__("base64").b64encode(new_private.sign(forged)))
    assert device.trusted_key() == old_key
    # the old key signs the hand-over: the device trusts the new key from now on
    assert deploy_main([*argv, "--signing-key", str(bundles["private_key"])]) == 0
    assert " rotated " in capsys.readouterr().out
    assert device.trusted_key() == bundles["new_public_key"].read_bytes()
    assert "rotated" in (device.prefix / "trust" / "history").read_text()
    [result] = device.deploy(bundles["d"], bundles["new_public_key"], wheelhouse)
    assert result.ok and result.outcome == "deployed", result
    assert device.health()["bundle_id"] == bundle_id_of(bundles["d"])
    [result] = device.deploy(bundles["e"], bundles["public_key"], wheelhouse)  # newer, but signed with the old key
    assert not result.ok and result.step == "trust", result


def _settings_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return parser
