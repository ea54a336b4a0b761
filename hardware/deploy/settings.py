"""Deploy settings: where devices are and how to reach, restart and check them (validated once).

The invoke tasks read these from invoke's configuration (the ``deploy`` section of
``invoke.yaml``, ``~/.invoke.yaml`` or ``INVOKE_DEPLOY_*`` environment variables) and pass them
on as options; :func:`settings_from_args` validates them.
"""

from __future__ import annotations

import argparse
import posixpath
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ErrorCode, HotspotError

DEFAULT_PREFIX = "/opt/hotspot-edge"
DEFAULT_RESTART = "sudo systemctl restart hotspot-edge.service"
DEFAULT_SERVICE_STATE = "systemctl is-active hotspot-edge.service"
DEFAULT_SELF_TEST = "{python} -m edge --config {config} --self-test"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class DeploySettings:
    """How to reach devices and what to run on them.

    Attributes
    ----------
    user : str or None
        SSH user (None: from the host string or ``~/.ssh/config``).
    ssh_key : Path or None
        Private key file (None: the SSH agent and ``~/.ssh`` default keys). Passwords are never used.
    port : int or None
        SSH port (None: from the host string, ``~/.ssh/config`` or 22).
    prefix : str
        Absolute folder on the device holding ``releases/``, ``current`` and ``wheelhouse/``.
    python : str
        The device's Python 3.11+ interpreter used to create each release's venv.
    restart_command : str
        Restarts the runtime service (``{prefix}`` is replaced by the prefix).
    service_state_command : str
        Prints the service state (``active``, ``inactive`` ...).
    self_test_command : str
        Runs the release's runtime self-test; ``{python}``, ``{config}``, ``{release}`` are replaced.
    health_timeout_s : float
        How long to wait for the restarted runtime to report healthy with the new bundle.
    keep : int
        How many releases to keep on the device (the current one included).
    min_free_mb : int
        Free disk the device needs before a deploy starts.
    max_clock_skew_s : float
        Largest accepted difference between the device's clock and this computer's.
    connect_timeout_s : float
        SSH connection timeout.
    strict_host_keys : bool
        Refuse devices whose host key is not in ``known_hosts`` (the default) instead of trusting
        them on first use. A key that differs from the recorded one is always refused.
    known_hosts : Path
        The OpenSSH known_hosts file host keys are checked against and recorded in.
    trust_new_host : bool
        This deploy is a device's first: record its host key (refused if a different one is
        recorded) and install the bundle's public key as the device's trusted signing key.
    """

    user: str | None
    ssh_key: Path | None
    port: int | None
    prefix: str
    python: str
    restart_command: str
    service_state_command: str
    self_test_command: str
    health_timeout_s: float
    keep: int
    min_free_mb: int
    max_clock_skew_s: float
    connect_timeout_s: float
    strict_host_keys: bool
    known_hosts: Path
    trust_new_host: bool = False


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that make up :class:`DeploySettings` to ``parser``."""
    group = parser.add_argument_group("device settings (invoke: the 'deploy' configuration section)")
    group.add_argument("--user", default=None, help="SSH user (default: host string or ~/.ssh/config)")
    group.add_argument("--ssh-key", default=None, help="SSH private key file (key authentication only)")
    group.add_argument("--port", type=int, default=None, help="SSH port (default: host string, ~/.ssh/config, 22)")
    group.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"install folder on the device ({DEFAULT_PREFIX})")
    group.add_argument("--python", dest="device_python", default="python3",
                       help="the device's Python 3.11+ (python3)")
    group.add_argument("--restart-command", default=DEFAULT_RESTART, help=f"({DEFAULT_RESTART})")
    group.add_argument("--service-state-command", default=DEFAULT_SERVICE_STATE, help=f"({DEFAULT_SERVICE_STATE})")
    group.add_argument("--self-test-command", default=DEFAULT_SELF_TEST, help=f"({DEFAULT_SELF_TEST})")
    group.add_argument("--health-timeout", type=float, default=60.0, help="seconds to wait for healthy (60)")
    group.add_argument("--keep", type=int, default=3, help="releases kept on the device (3)")
    group.add_argument("--min-free-mb", type=int, default=500, help="free disk a deploy needs (500)")
    group.add_argument("--max-clock-skew", type=float, default=120.0, help="accepted clock difference, s (120)")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="SSH connect timeout, s (10)")
    group.add_argument("--strict-host-keys", choices=("yes", "no"), default="yes",
                       help="yes (default): refuse devices missing from known_hosts; no: trust and record them")
    group.add_argument("--known-hosts", default=DEFAULT_KNOWN_HOSTS,
                       help=f"known_hosts file host keys are checked against and recorded in ({DEFAULT_KNOWN_HOSTS})")


def _bad(message: str) -> HotspotError:
    return HotspotError(message, ErrorCode.BAD_CONFIG)


def settings_from_args(args: argparse.Namespace) -> DeploySettings:
    """Validate parsed options into :class:`DeploySettings`.

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` naming the setting and what it must be.
    """
    ssh_key = Path(args.ssh_key).expanduser() if args.ssh_key else None
    if ssh_key is not None and not ssh_key.is_file():
        raise _bad(f"SSH key {ssh_key} not found; set deploy.ssh_key in invoke.yaml (or INVOKE_DEPLOY_SSH_KEY) "
                   "to a private key whose .pub is in the device's authorized_keys")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise _bad(f"SSH port {args.port} must be in 1..65535")
    if not posixpath.isabs(args.prefix) or posixpath.normpath(args.prefix) == "/":
        raise _bad(f"deploy prefix {args.prefix!r} must be an absolute folder below / on the device "
                   f"(e.g. {DEFAULT_PREFIX})")
    if args.keep < 2:
        raise _bad(f"keep = {args.keep} must be at least 2 (the current release and one to roll back to)")
    for name, value in (("health timeout", args.health_timeout), ("connect timeout", args.connect_timeout),
                        ("max clock skew", args.max_clock_skew)):
        if not value > 0:
            raise _bad(f"{name} = {value} must be a positive number of seconds")
    if args.min_free_mb < 0:
        raise _bad(f"min free MB = {args.min_free_mb} must not be negative")
    for name, command in (("restart command", args.restart_command), ("self-test command", args.self_test_command),
                          ("service state command", args.service_state_command)):
        if not command.strip():
            raise _bad(f"the {name} is empty; set it in the 'deploy' section of invoke.yaml")
    return DeploySettings(user=args.user or None, ssh_key=ssh_key, port=args.port,
                          prefix=posixpath.normpath(args.prefix), python=args.device_python,
                          restart_command=args.restart_command, service_state_command=args.service_state_command,
                          self_test_command=args.self_test_command, health_timeout_s=args.health_timeout,
                          keep=args.keep, min_free_mb=args.min_free_mb, max_clock_skew_s=args.max_clock_skew,
                          connect_timeout_s=args.connect_timeout, strict_host_keys=args.strict_host_keys == "yes",
                          known_hosts=Path(args.known_hosts).expanduser(),
                          trust_new_host=bool(getattr(args, "trust_new_host", False)))
