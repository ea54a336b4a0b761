"""Deploy, roll back and inspect one device; every outcome is a :class:`HostResult`.

Deploy order: preflight → config → wheelhouse (resolve for the device) → upload → checksums → install →
signature → self-test → switch → restart → health → prune. A release already on the device (an
earlier one deployed again) skips upload and install but is checked again. Before ``switch``
nothing the device runs has changed, so a failure only deletes the new release folder. From ``switch`` on, a failure
switches ``current`` back to the previous release, restarts it and checks it is healthy again.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from paramiko.ssh_exception import AuthenticationException, NoValidConnectionsError, SSHException

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
        release = plan.release_for(probe.target, config)
    except HotspotError as err:
        return HostResult(host, False, "refused", None, step, str(err))
    step, current = "upload", None
    try:
        current = device.current()
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
