"""Deploy, roll back, rotate the trusted key of and inspect one device; every outcome is a :class:`HostResult`.

Deploy order: preflight → config → wheelhouse (resolve for the device) → trust → version → upload → checksums →
install → signature → self-test → switch → restart → health → prune. ``trust``: the bundle must be signed
with the key the device trusts (installed by its first deploy, ``--trust-new-host``; replaced only by
``invoke rotate-key``). ``version``: a bundle older than the running one is refused (``invoke rollback``
goes back on purpose). A release already on the device (an
earlier one deployed again) skips upload and install but is checked again. Before ``switch``
nothing the device runs has changed, so a failure only deletes the new release folder. From ``switch`` on, a failure
switches ``current`` back to the previous release, restarts it and checks it is healthy again.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from paramiko.ssh_exception import (AuthenticationException, BadHostKeyException, NoValidConnectionsError,
                                    SSHException)

from edge.bundle import load_public_key, public_key_id
from edge.errors import HotspotError
from hardware.deploy.device import Device, Probe, StepFailed
from hardware.deploy.plan import DeployPlan
from hardware.deploy.release import Release

CONNECTION_ERRORS = (SSHException, NoValidConnectionsError, socket.error, EOFError)


@dataclass(frozen=True)
class HostResult:
    """The outcome on one device.

    Attributes
    ----------
    host : str
    ok : bool
        True when the device ends up running what was asked (deployed, unchanged, rolled back).
    outcome : str
        ``deployed``, ``unchanged``, ``rolled back``, ``refused`` (failed before switching; device
        untouched) or ``failed``.
    release : str or None
        The release current on the device afterwards (as far as known).
    step : str or None
        The step that failed.
    message : str
        One line for the engineer.
    """

    host: str
    ok: bool
    outcome: str
    release: str | None
    step: str | None
    message: str


def connection_problem(err: BaseException, host: str) -> str:
    """One line for an SSH-level failure."""
    if isinstance(err, BadHostKeyException):
        return (f"{host} presented host key {err.key.get_fingerprint().hex()} but known_hosts has "
                f"{err.expected_key.get_fingerprint().hex()}: refused (another machine, or the device was re-imaged); "
                f"if you know why, remove the old key (ssh-keygen -R) and deploy with --trust-new-host")
    if isinstance(err, SSHException) and "not found in known_hosts" in str(err):
        return (f"{host} is not in known_hosts: refused; if this is the device's first deploy, check its host key "
                "and run 'invoke deploy --trust-new-host'")
    if isinstance(err, AuthenticationException):
        return (f"SSH key authentication to {host} failed (passwords are never used): put your public key in the "
                "device's ~/.ssh/authorized_keys or set deploy.ssh_key")
    if isinstance(err, (NoValidConnectionsError, socket.timeout, ConnectionError)):
        return f"{host} is unreachable ({err}); check it is on, on the network and runs sshd"
    return f"connection to {host} lost ({type(err).__name__}: {err})"


def _roll_back(device: Device, host: str, failed: StepFailed, release: Release, previous: str | None) -> HostResult:
    """Return the device to ``previous`` after a failure at or after the switch."""
    try:
        if previous is None:
            device.unlink_current()
            device.remove_release(release.release_id)
            return HostResult(host, False, "failed", None, failed.step,
                              f"{failed.message}; no earlier release to roll back to, 'current' removed")
        device.switch(previous, step="rollback")
        meta = device.release_meta(previous)
        state_dir = meta.get("state_dir", release.state_dir)
        mark = device.restart(state_dir, step="rollback")
        device.wait_healthy(state_dir, meta.get("bundle_id", ""), mark, step="rollback")
        device.remove_release(release.release_id)
    except StepFailed as err:
        return HostResult(host, False, "failed", previous, failed.step,
                          f"{failed.message}; rollback to {previous} also failed: {err}")
    return HostResult(host, False, "rolled back", previous, failed.step,
                      f"{failed.message}; rolled back to {previous} (healthy)")


def deploy_device(device: Device, host: str, plan: DeployPlan, probe: Probe) -> HostResult:
    """Deploy the plan's release to one device whose preflight already passed.

    Parameters
    ----------
    device : Device
    host : str
        How the engineer named the device (for the result).
    plan : DeployPlan
    probe : Probe
        Its preflight facts (target platform).

    Returns
    -------
    HostResult
    """
    step = "config"
    try:
        config = plan.config_for(host)
        step = "wheelhouse"
        release = plan.release_for(probe.target, config, device.trusted_key_path)
    except HotspotError as err:
        return HostResult(host, False, "refused", None, step, str(err))
    step, current = "trust", None
    try:
        current = device.current()
        check_trust(device, plan)
        step = "version"
        check_version(device, release)
        step = "upload"
        if current == release.release_id and device.is_verified(current):
            return HostResult(host, True, "unchanged", current, None, f"release {current} is already current")
        device.remove_incomplete()
        steps = [("upload", device.upload_wheels), ("upload", device.upload_release),
                 ("checksums", device.check_sums), ("install", device.install)]
        if device.is_verified(release.release_id):
            steps = [("checksums", device.check_sums)]
        for step, action in (*steps, ("signature", device.verify_signature), ("self-test", device.self_test)):
            action(release)
    except StepFailed as err:
        device.remove_release(release.release_id)
        return HostResult(host, False, "refused", current, err.step,
                          f"{err.message}; device unchanged (current release {current or 'none'})")
    except CONNECTION_ERRORS as err:
        return HostResult(host, False, "refused", current, step,
                          f"{connection_problem(err, host)}; device unchanged (current release {current or 'none'}); "
                          "the partial upload is removed by the next deploy")
    step = "switch"
    try:
        device.switch(release.release_id)
        step = "restart"
        mark = device.restart(release.state_dir)
        step = "health"
        device.wait_healthy(release.state_dir, release.bundle_id, mark)
        device.record_activation(release.release_id)
        removed = device.prune(device.settings.keep)
    except StepFailed as err:
        return _roll_back(device, host, err, release, current)
    except CONNECTION_ERRORS as err:
        return HostResult(host, False, "failed", None, step,
                          f"{connection_problem(err, host)} after switching to {release.release_id}; run "
                          "'invoke device-status' and 'invoke rollback' once it is back")
    note = f"; removed old releases {', '.join(removed)}" if removed else ""
    return HostResult(host, True, "deployed", release.release_id, None,
                      f"release {release.release_id} (bundle {release.bundle_id}) healthy{note}")


def _key_id(pem: str, device: Device) -> str:
    """The id of the device's trusted key (PEM text).

    Raises
    ------
    StepFailed
        ``trust`` when the file is not a public key.
    """
    try:
        return public_key_id(serialization.load_pem_public_key(pem.encode("ascii")))
    except (ValueError, UnicodeError, TypeError):
        raise StepFailed("trust", f"{device.trusted_key_path} on the device is not a public key; repair it by hand "
                                  "(a deploy never replaces it)") from None


def check_trust(device: Device, plan: DeployPlan) -> None:
    """The bundle must be signed with the key the device trusts; a device without one gets it only on --trust-new-host.

    Raises
    ------
    StepFailed
        ``trust``: another key, or a device without a trusted key on a normal deploy.
    """
    local = load_public_key(plan.public_key)
    local_id = public_key_id(local)
    trusted = device.trusted_key()
    if trusted is None:
        if not device.settings.trust_new_host:
            raise StepFailed("trust", "the device has no trusted signing key yet; a device's first deploy is "
                                      "'invoke deploy --trust-new-host' (it records the host key and installs "
                                      f"{plan.public_key.name} as the device's key)")
        device.install_trusted_key(plan.public_key.read_bytes(), local_id)
        return
    device_id = _key_id(trusted, device)
    if device_id != local_id:
        raise StepFailed("trust", f"the device trusts signing key {device_id} but this bundle is checked with "
                                  f"{local_id} ({plan.public_key}); sign it with the device's key, or hand the "
                                  "device over to the new key first with 'invoke rotate-key'")


def check_version(device: Device, release: Release) -> None:
    """Refuse a bundle older than the one the device runs (or the same version with other contents).

    Raises
    ------
    StepFailed
        ``version``.
    """
    installed, installed_id = device.installed_bundle()
    if installed is None:
        return
    if release.bundle_version < installed:
        raise StepFailed("version", f"bundle version {release.bundle_version} is older than the installed "
                                    f"{installed}: refused; to go back to an earlier release use 'invoke rollback'")
    if release.bundle_version == installed and release.bundle_id != installed_id:
        raise StepFailed("version", f"bundle version {installed} is installed with other contents (bundle "
                                    f"{installed_id}); give the new bundle a higher version (invoke convert "
                                    "--bundle-version)")


def rotate_key(device: Device, host: str, statement: bytes, signature: bytes, old_key_id: str) -> HostResult:
    """Hand a device's trust to a new key with a rotation statement the old key signed.

    The device must trust ``old_key_id``; its running release's code checks the signature before the
    key is replaced, and the bundle it runs keeps running (the next deploy brings one signed with the
    new key).
    """
    trusted = device.trusted_key()
    current = device.current()
    if trusted is None:
        return HostResult(host, False, "refused", current, "rotate-key",
                          "the device has no trusted key to rotate; its first deploy installs one (--trust-new-host)")
    try:
        device_id = _key_id(trusted, device)
        if device_id != old_key_id:
            raise StepFailed("rotate-key", f"the device trusts key {device_id}, not {old_key_id}: sign the rotation "
                                           "with the device's key")
        printed = device.rotate_trusted_key(statement, signature)
    except StepFailed as err:
        return HostResult(host, False, "refused", current, err.step, f"{err.message}; the trusted key is unchanged")
    return HostResult(host, True, "rotated", current, None,
                      f"{printed} (was {old_key_id}); the running bundle keeps running: deploy one signed with the "
                      "new key next (a restart would refuse the old one)")


def unreachable(device: Device, host: str) -> HostResult | None:
    """Open the connection; the failing HostResult when the device cannot be reached, else None."""
    try:
        device.connection.open()
    except CONNECTION_ERRORS as err:
        return HostResult(host, False, "refused", None, "connect", connection_problem(err, host))
    return None


def rollback_device(device: Device, host: str) -> HostResult:
    """Switch a device back to the release activated before the current one, restart and health-check it."""
    current = device.current()
    previous = device.previous(current)
    if previous is None:
        return HostResult(host, False, "refused", current, "rollback",
                          f"no earlier verified release to roll back to (current {current or 'none'})")
    meta = device.release_meta(previous)
    try:
        device.switch(previous, step="rollback")
        mark = device.restart(meta.get("state_dir", ""), step="rollback")
        device.wait_healthy(meta.get("state_dir", ""), meta.get("bundle_id", ""), mark, step="rollback")
        device.record_activation(previous)
    except StepFailed as err:
        return HostResult(host, False, "failed", previous, err.step, err.message)
    return HostResult(host, True, "rolled back", previous, None,
                      f"release {previous} (bundle {meta.get('bundle_id')}) healthy; {current} kept")


def device_status(device: Device) -> dict:
    """Current release, bundle id, service state, health and last session result of a device."""
    current = device.current()
    meta = device.release_meta(current) if current else {}
    state_dir = meta.get("state_dir")
    return {"current": current, "bundle_id": meta.get("bundle_id"), "service": device.service_state(),
            "health": device.health(state_dir) if state_dir else None,
            "last_result": device.read_json(f"{state_dir}/last_result.json") if state_dir else None,
            "releases": device.installed(), "history": device.activations()[-5:]}
