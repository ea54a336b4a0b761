"""What deploy does on one device, step by step, over a Fabric connection.

Each method is one named step; a failing step raises :class:`StepFailed` with the step's name
and what went wrong, so the caller can roll back and say exactly where it stopped. All paths
live under the deploy prefix::

    <prefix>/releases/<id>/   one folder per release (see hardware.deploy.release)
    <prefix>/current          symlink to releases/<id> (switched atomically: new link + rename)
    <prefix>/wheelhouse/      dependency wheels shared by releases (uploaded once, sha256-checked)
    <prefix>/history          "<unix time> <release id>" per activation (rollback order)
    <prefix>/trust/           the device's trusted signing key (signing.pub), installed by the first
                              deploy (--trust-new-host), replaced only by a signed rotation (edge.trust)

Host keys are checked against a known_hosts file with paramiko: an unknown device is refused
unless this is its first deploy (``--trust-new-host``), which records its key; a device whose key
differs from the recorded one is always refused.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fabric import Connection
from invoke.exceptions import CommandTimedOut
from paramiko import HostKeys, MissingHostKeyPolicy, RejectPolicy

from edge.bundle import MANIFEST_FILE, bundle_id_from_manifest
from edge.trust import HISTORY_FILE, KEY_FILE, TRUST_DIR
from hardware.deploy.release import BUNDLE_DIR, CONFIG_FILE, RELEASE_FILE, SUMS_FILE, VERIFIED_MARKER, Release
from hardware.deploy.settings import MIN_PYTHON, DeploySettings
from hardware.deploy.wheels import ELF_MACHINES, Target

PROBE = """import json, os, platform, shutil, sys, time
path = sys.argv[1]
while not os.path.exists(path):
    path = os.path.dirname(path)
libc, version = platform.libc_ver()
print(json.dumps({"machine": platform.machine(), "python": list(sys.version_info[:3]), "libc": libc,
                  "libc_version": version, "free_bytes": shutil.disk_usage(path).free, "time": time.time()}))
"""
VERIFY_SIGNATURE = """import sys
from pathlib import Path
from edge.bundle import MANIFEST_FILE, SIGNATURE_FILE, load_public_key, verify_manifest
from edge.errors import HotspotError
bundle, key = Path(sys.argv[1]), Path(sys.argv[2])
try:
    verify_manifest((bundle / MANIFEST_FILE).read_bytes(), (bundle / SIGNATURE_FILE).read_bytes(),
                    load_public_key(key), key)
except HotspotError as err:
    sys.exit(f"error: {err}")
"""
SELF_TEST_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 1800
HEALTH_POLL_S = 0.5


class StepFailed(Exception):
    """A deploy step failed on the device.

    Parameters
    ----------
    step : str
        The step's name (preflight, upload, checksums, install, signature, self-test, switch,
        restart, health, rollback).
    message : str
        One line: what went wrong.
    """

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step, self.message = step, message


@dataclass(frozen=True)
class Probe:
    """What preflight learnt about a device."""

    target: Target
    python_version: str
    free_bytes: int
    clock_skew_s: float


def _q(text: str) -> str:
    return shlex.quote(text)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def parse_probe(stdout: str, sent: float, received: float, settings: DeploySettings) -> Probe:
    """Check the preflight probe's answer (architecture, Python, disk, clock).

    Parameters
    ----------
    stdout : str
        The probe's JSON output.
    sent, received : float
        Local time before and after the probe ran (the device clock is compared with the middle).
    settings : DeploySettings

    Returns
    -------
    Probe

    Raises
    ------
    StepFailed
        ``preflight`` naming the requirement the device misses.
    """
    try:
        facts = json.loads(_last_line(stdout))
        python = tuple(int(part) for part in facts["python"])
        glibc = tuple(int(part) for part in facts["libc_version"].split(".")[:2])
    except (ValueError, KeyError, TypeError):
        raise StepFailed("preflight", f"unexpected probe answer {_last_line(stdout)!r}; is python3 installed?") from None
    if facts["libc"] != "glibc" or len(glibc) != 2:
        raise StepFailed("preflight", f"the device's C library is {facts['libc'] or 'unknown'}, not glibc; use "
                                      "64-bit Raspberry Pi OS (Bookworm)")
    target = Target(machine=facts["machine"], glibc=glibc, python=python[:2])
    version = ".".join(map(str, python))
    if python[:2] < MIN_PYTHON:
        raise StepFailed("preflight", f"device Python is {version}; the runtime needs 3.11 or newer "
                                      "(Pi OS Bookworm ships 3.11)")
    if target.machine not in ELF_MACHINES:
        raise StepFailed("preflight", f"CPU architecture {target.machine} is not supported: install a 64-bit OS "
                                      f"({' or '.join(ELF_MACHINES)}); there are no TFLite wheels for it")
    free_mb = facts["free_bytes"] / 1e6
    if free_mb < settings.min_free_mb:
        raise StepFailed("preflight", f"only {free_mb:.0f} MB free under {settings.prefix}; a release needs "
                                      f"{settings.min_free_mb} MB: free space or lower deploy.min_free_mb")
    skew = facts["time"] - (sent + received) / 2
    if abs(skew) > settings.max_clock_skew_s:
        raise StepFailed("preflight", f"device clock is {skew:+.0f} s off this computer's (limit "
                                      f"{settings.max_clock_skew_s:.0f} s); enable NTP on it "
                                      "(sudo timedatectl set-ntp true) or set the time")
    return Probe(target=target, python_version=version, free_bytes=int(facts["free_bytes"]), clock_skew_s=skew)


def probe_failure(settings: DeploySettings, output: str) -> str:
    """One line for a probe that did not run (usually: no such Python on the device)."""
    return (f"could not run {settings.python!r} on the device ({_last_line(output)}); install Python 3.11+ "
            "or set deploy.python")


def probe_command(settings: DeploySettings) -> str:
    """The shell command that prints the preflight facts as JSON."""
    return f"{settings.python} -c {_q(PROBE)} {_q(settings.prefix)}"


@dataclass(frozen=True)
class RestartMark:
    """When a restart began (device clock, s) and which runtime process ran before it."""

    since: float
    old_pid: int | None

    def is_fresh(self, health: dict) -> bool:
        """Whether a health.json was written after the restart by a new process."""
        try:
            written = dt.datetime.fromisoformat(str(health.get("time"))).timestamp()
        except ValueError:
            return False
        return written >= self.since and health.get("pid") != self.old_pid


class Device:
    """Deploy steps on one device.

    Parameters
    ----------
    connection : fabric.Connection
        An SSH connection (key authentication).
    settings : DeploySettings
    """

    def __init__(self, connection: Connection, settings: DeploySettings) -> None:
        self.connection = connection
        self.settings = settings
        self.prefix = settings.prefix
        self.releases = posixpath.join(self.prefix, "releases")
        self.current_link = posixpath.join(self.prefix, "current")
        self.wheelhouse = posixpath.join(self.prefix, "wheelhouse")
        self.history = posixpath.join(self.prefix, "history")
        self.trust_dir = posixpath.join(self.prefix, TRUST_DIR)
        self.trusted_key_path = posixpath.join(self.trust_dir, KEY_FILE)

    # --- plumbing -----------------------------------------------------------------------------
    def run(self, command: str, step: str, timeout: float | None = None) -> str:
        """Run a shell command; return its stdout or raise :class:`StepFailed` for ``step``."""
        try:
            result = self.connection.run(command, hide=True, warn=True, in_stream=False, timeout=timeout)
        except CommandTimedOut:
            raise StepFailed(step, f"no answer within {timeout:g} s") from None
        if result.failed:
            raise StepFailed(step, _last_line(result.stderr + "\n" + result.stdout))
        return result.stdout

    def query(self, command: str) -> str | None:
        """Run a command whose failure is an answer (None), not an error."""
        result = self.connection.run(command, hide=True, warn=True, in_stream=False)
        return None if result.failed else result.stdout

    def release_dir(self, release_id: str) -> str:
        """The device folder of a release."""
        return posixpath.join(self.releases, release_id)

    # --- state --------------------------------------------------------------------------------
    def preflight(self) -> Probe:
        """Probe architecture, Python, free disk and clock (step ``preflight``)."""
        sent = time.time()
        try:
            stdout = self.run(probe_command(self.settings), "preflight")
        except StepFailed as err:
            raise StepFailed("preflight", probe_failure(self.settings, err.message)) from None
        return parse_probe(stdout, sent, time.time(), self.settings)

    def current(self) -> str | None:
        """The id of the current release (None on a fresh device)."""
        target = self.query(f"readlink {_q(self.current_link)}")
        return posixpath.basename(target.strip()) if target and target.strip() else None

    def is_verified(self, release_id: str) -> bool:
        """Whether a release folder is complete, installed and passed its checks."""
        marker = posixpath.join(self.release_dir(release_id), VERIFIED_MARKER)
        return self.query(f"test -f {_q(marker)}") is not None

    def release_meta(self, release_id: str) -> dict:
        """The release.json of a release on the device (empty when unreadable)."""
        text = self.query(f"cat {_q(posixpath.join(self.release_dir(release_id), RELEASE_FILE))}")
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}

    def activations(self) -> list[str]:
        """Release ids in activation order, oldest first (from the history file)."""
        text = self.query(f"cat {_q(self.history)}") or ""
        return [line.split()[1] for line in text.splitlines() if len(line.split()) == 2]

    def installed(self) -> list[str]:
        """Release folders present on the device."""
        text = self.query(f"ls -1 {_q(self.releases)}") or ""
        return [name for name in text.split() if name]

    def previous(self, current: str | None) -> str | None:
        """The most recently activated verified release other than ``current``."""
        for release_id in reversed(self.activations()):
            if release_id != current and self.is_verified(release_id):
                return release_id
        return None

    # --- upload and checks --------------------------------------------------------------------
    def remove_incomplete(self) -> None:
        """Delete release folders left by interrupted deploys (never the current one)."""
        current = self.current()
        for release_id in self.installed():
            if release_id != current and not self.is_verified(release_id):
                self.remove_release(release_id)

    def remove_release(self, release_id: str) -> None:
        """Delete a release folder (never the current one)."""
        if release_id and release_id != self.current():
            self.query(f"rm -rf {_q(self.release_dir(release_id))}")

    def upload_wheels(self, release: Release) -> int:
        """Put the release's missing dependency wheels into the device wheelhouse, sha256-checked (step ``upload``).

        Returns
        -------
        int
            How many wheels were uploaded.
        """
        wheels = release.wheels
        self.run(f"mkdir -p {_q(self.wheelhouse)}", "upload")
        names = " ".join(_q(wheel.path.name) for wheel in wheels)
        listing = self.connection.run(f"cd {_q(self.wheelhouse)} && sha256sum -- {names}", hide=True, warn=True,
                                      in_stream=False).stdout
        present = {tuple(line.split(maxsplit=1)) for line in listing.splitlines()}
        uploaded = 0
        for wheel in wheels:
            if (wheel.sha256, wheel.path.name) in present:
                continue
            final = posixpath.join(self.wheelhouse, wheel.path.name)
            partial = posixpath.join(self.wheelhouse, f".{wheel.path.name}.part")
            self.connection.put(str(wheel.path), partial)
            self.run(f"echo {_q(wheel.sha256 + '  ' + partial)} | sha256sum --quiet -c - && mv -f {_q(partial)} "
                     f"{_q(final)}", "upload")
            uploaded += 1
        return uploaded

    def upload_release(self, release: Release) -> None:
        """Copy the release files into ``releases/<id>/`` (step ``upload``)."""
        folder = self.release_dir(release.release_id)
        self.run(f"rm -rf {_q(folder)} && mkdir -p {_q(posixpath.join(folder, BUNDLE_DIR))}", "upload")
        for name in release.files:
            self.connection.put(str(release.folder / name), posixpath.join(folder, name))

    def check_sums(self, release: Release) -> None:
        """Compare every uploaded file with its sha256 (step ``checksums``)."""
        self.run(f"cd {_q(self.release_dir(release.release_id))} && sha256sum --quiet --strict -c {SUMS_FILE}",
                 "checksums")

    def install(self, release: Release) -> None:
        """Create the release's venv and install its pinned wheels offline (step ``install``)."""
        folder = self.release_dir(release.release_id)
        venv = posixpath.join(folder, "venv")
        pip = (f"{_q(venv)}/bin/python -m pip --isolated --disable-pip-version-check install --quiet --no-index "
               f"--only-binary=:all: --require-hashes --find-links {_q(folder)} --find-links {_q(self.wheelhouse)} "
               f"-r {_q(posixpath.join(folder, 'requirements.txt'))}")
        self.run(f"rm -rf {_q(venv)} && {self.settings.python} -m venv {_q(venv)} && {pip}", "install",
                 timeout=INSTALL_TIMEOUT_S)

    def verify_signature(self, release: Release) -> None:
        """Check the bundle signature with the release's own code and the device's trusted key (step ``signature``)."""
        folder = self.release_dir(release.release_id)
        self.run(f"{_q(posixpath.join(folder, 'venv/bin/python'))} -c {_q(VERIFY_SIGNATURE)} "
                 f"{_q(posixpath.join(folder, BUNDLE_DIR))} {_q(self.trusted_key_path)}", "signature")

    # --- trust --------------------------------------------------------------------------------
    def trusted_key(self) -> str | None:
        """The device's trusted public key (PEM text), None when none is installed yet."""
        return self.query(f"cat {_q(self.trusted_key_path)}")

    def install_trusted_key(self, pem: bytes, key_id: str) -> None:
        """Install the first trusted key of a device that has none (step ``trust``); never replaces one."""
        temporary = self.trusted_key_path + ".new"
        self.run(f"mkdir -p {_q(self.trust_dir)} && rm -f {_q(temporary)}", "trust")
        self.connection.put(io.BytesIO(pem), temporary)
        # `ln` refuses to overwrite: a key that appeared meanwhile is never replaced
        self.run(f"chmod 444 {_q(temporary)} && ln {_q(temporary)} {_q(self.trusted_key_path)} && rm {_q(temporary)}"
                 f" && echo \"$(date -u +%Y-%m-%dT%H:%M:%S+00:00) provisioned {key_id}\" >> "
                 f"{_q(posixpath.join(self.trust_dir, HISTORY_FILE))}", "trust")

    def rotate_trusted_key(self, statement: bytes, signature: bytes) -> str:
        """Hand the device's trust to a new key with a rotation the old key signed (step ``rotate-key``).

        The current release's own code checks the statement against the trusted key (``edge.trust``);
        returns what it printed.
        """
        python = posixpath.join(self.current_link, "venv", "bin", "python")
        if self.query(f"test -x {_q(python)}") is None:
            raise StepFailed("rotate-key", "the device runs no release yet; deploy one first")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        paths = [posixpath.join(self.trust_dir, f"rotation-{stamp}.{suffix}") for suffix in ("json", "sig")]
        for path, content in zip(paths, (statement, signature)):
            self.connection.put(io.BytesIO(content), path)
        return self.run(f"{_q(python)} -m edge.trust rotate {_q(self.trust_dir)} {_q(paths[0])} {_q(paths[1])}",
                        "rotate-key").strip()

    def installed_bundle(self) -> tuple[int | None, str | None]:
        """The version and id of the bundle the current release runs ((None, None) on a fresh device)."""
        text = self.query(f"cat {_q(posixpath.join(self.current_link, BUNDLE_DIR, MANIFEST_FILE))}")
        if not text:
            return None, None
        try:
            version = json.loads(text).get("version")
        except ValueError:
            version = None
        return (version if isinstance(version, int) else None), bundle_id_from_manifest(text.encode("utf-8"))

    def self_test(self, release: Release) -> None:
        """Run the runtime's self-test inside the new release, then mark it verified (step ``self-test``)."""
        folder = self.release_dir(release.release_id)
        command = self.settings.self_test_command.format(
            python=_q(posixpath.join(folder, "venv/bin/python")), config=_q(posixpath.join(folder, CONFIG_FILE)),
            release=_q(folder))
        self.run(f"cd {_q(folder)} && {command}", "self-test", timeout=SELF_TEST_TIMEOUT_S)
        self.run(f"touch {_q(posixpath.join(folder, VERIFIED_MARKER))}", "self-test")

    # --- activation ---------------------------------------------------------------------------
    def switch(self, release_id: str, step: str = "switch") -> None:
        """Point ``current`` at a release atomically (a new symlink renamed over the old one)."""
        temporary = posixpath.join(self.prefix, ".current.new")
        self.run(f"ln -sfn {_q(posixpath.join('releases', release_id))} {_q(temporary)} && "
                 f"mv -Tf {_q(temporary)} {_q(self.current_link)}", step)

    def unlink_current(self) -> None:
        """Remove ``current`` (rolling back a first deploy leaves no release active)."""
        self.query(f"rm -f {_q(self.current_link)}")

    def restart(self, state_dir: str, step: str = "restart") -> RestartMark:
        """Run the restart command; return what tells the restarted runtime's health from the old one's."""
        before = self.health(state_dir) or {}
        since = float(self.run("date +%s", step).strip())
        self.run(self.settings.restart_command.format(prefix=self.prefix), step)
        return RestartMark(since=since, old_pid=before.get("pid"))

    def health(self, state_dir: str) -> dict | None:
        """The runtime's health.json (None when missing or unreadable)."""
        text = self.query(f"cat {_q(posixpath.join(state_dir, 'health.json'))}")
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def wait_healthy(self, state_dir: str, bundle_id: str, mark: RestartMark, step: str = "health") -> dict:
        """Wait until the restarted runtime reports healthy with ``bundle_id`` (step ``health``).

        Only a health.json written after the restart by another process than the one running
        before it counts, so the old runtime's last words are never taken for the new one's.
        """
        deadline = time.monotonic() + self.settings.health_timeout_s
        report = None
        while time.monotonic() < deadline:
            report = self.health(state_dir)
            if report and mark.is_fresh(report) and report.get("status") == "healthy" \
                    and report.get("bundle_id") == bundle_id:
                return report
            time.sleep(HEALTH_POLL_S)
        if report is None:
            seen = "no health.json"
        else:
            seen = f"status {report.get('status')!r}, bundle {report.get('bundle_id')!r}, time {report.get('time')!r}"
        raise StepFailed(step, f"runtime not healthy with bundle {bundle_id} within {self.settings.health_timeout_s:g} "
                               f"s ({seen} in {state_dir}); see the service log")

    def record_activation(self, release_id: str) -> None:
        """Append the release to the history file."""
        self.run(f"echo {int(time.time())} {_q(release_id)} >> {_q(self.history)}", "switch")

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` most recently activated releases (current always kept).

        Returns
        -------
        list of str
            The removed release ids.
        """
        current = self.current()
        kept: list[str] = [current] if current else []
        for release_id in reversed(self.activations()):
            if len(kept) >= keep:
                break
            if release_id not in kept:
                kept.append(release_id)
        removed = [release_id for release_id in self.installed() if release_id not in kept]
        for release_id in removed:
            self.remove_release(release_id)
        self.remove_unused_wheels()
        return removed

    def remove_unused_wheels(self) -> None:
        """Delete wheelhouse wheels no remaining release pins (by sha256 in its requirements.txt)."""
        pinned = self.query(f"cat {_q(self.releases)}/*/requirements.txt") or ""
        wanted = {part.split(":", 1)[1] for part in pinned.split() if part.startswith("--hash=sha256:")}
        listing = self.query(f"cd {_q(self.wheelhouse)} && sha256sum -- *.whl") or ""
        unused = [name for digest, name in (line.split(maxsplit=1) for line in listing.splitlines() if line.strip())
                  if digest not in wanted]
        if wanted and unused:
            self.query(f"cd {_q(self.wheelhouse)} && rm -f -- {' '.join(_q(name) for name in unused)}")

    def service_state(self) -> str:
        """The service state as the configured command prints it (``unknown`` if it fails)."""
        result = self.connection.run(self.settings.service_state_command.format(prefix=self.prefix), hide=True,
                                     warn=True, in_stream=False)
        return _last_line(result.stdout) if result.stdout.strip() else "unknown"

    def read_json(self, path: str) -> dict | None:
        """A JSON file on the device (None when missing or unreadable)."""
        text = self.query(f"cat {_q(path)}")
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None


_KNOWN_HOSTS_LOCK = threading.Lock()


class RecordHostKey(MissingHostKeyPolicy):
    """paramiko policy for a device's first deploy: accept its unknown host key and record it.

    The known_hosts file is re-read and saved under a lock, so the devices of a fleet connecting in
    parallel all end up in it.

    Parameters
    ----------
    known_hosts : Path
        The OpenSSH known_hosts file.
    """

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname: str, key) -> None:
        with _KNOWN_HOSTS_LOCK:
            keys = HostKeys(str(self.known_hosts)) if self.known_hosts.exists() else HostKeys()
            keys.add(hostname, key.get_name(), key)
            keys.save(str(self.known_hosts))
        client.get_host_keys().add(hostname, key.get_name(), key)


def make_connection(host: str, settings: DeploySettings) -> Connection:
    """A Fabric connection that authenticates with keys only (agent, ~/.ssh keys or deploy.ssh_key).

    Parameters
    ----------
    host : str
        ``[user@]host[:port]`` or a ``~/.ssh/config`` alias.
    settings : DeploySettings

    Returns
    -------
    fabric.Connection
        Host keys are checked against ``settings.known_hosts`` with paramiko: a changed key is always
        refused; an unknown host is refused (``strict_host_keys``, the default) unless this is its
        first deploy (``trust_new_host``) or strict checking is off, which record its key.
    """
    connect_kwargs = {"look_for_keys": settings.ssh_key is None, "allow_agent": settings.ssh_key is None,
                      "banner_timeout": settings.connect_timeout_s, "auth_timeout": settings.connect_timeout_s}
    if settings.ssh_key is not None:
        connect_kwargs["key_filename"] = [str(Path(settings.ssh_key))]
    connection = Connection(host, user=settings.user, port=settings.port, connect_timeout=settings.connect_timeout_s,
                            connect_kwargs=connect_kwargs)
    known_hosts = settings.known_hosts
    if known_hosts.exists():
        connection.client.load_system_host_keys(str(known_hosts))
    else:
        known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    trusting = settings.trust_new_host or not settings.strict_host_keys
    connection.client.set_missing_host_key_policy(RecordHostKey(known_hosts) if trusting else RejectPolicy())
    return connection
