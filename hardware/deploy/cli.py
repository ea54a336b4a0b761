"""``python -m hardware.deploy``: the deploy, rollback, rotate-key, status and wheelhouse commands.

Exit codes: 0 every device succeeded; 1 at least one device failed (the table says which step);
2 bad input found before any device was touched.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.bundle import load_public_key, public_key_id
from edge.errors import ArgumentParser, ErrorCode, HotspotError
from convert.signing import public_key_path
from edge.trust import rotation_statement
from hardware.deploy.device import Device, make_connection
from hardware.deploy.fleet import deploy_fleet, result_table
from hardware.deploy.plan import REPO, DeployPlan
from hardware.deploy.procedure import device_status, rollback_device, rotate_key, unreachable
from hardware.deploy.settings import add_settings_arguments, settings_from_args
from hardware.deploy.wheels import PI_PLATFORM, make_wheelhouse, target_from_platform
from hardware.pi.wheelhouse import make_pi_wheelhouse
from train import workspace


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="hotspot-deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    deploy = commands.add_parser("deploy", help="deploy a release to one or many devices")
    deploy.add_argument("--host", default="", help="one device: [user@]host[:port] or an ~/.ssh/config alias")
    deploy.add_argument("--hosts", default="", help="many devices, comma-separated (deployed in parallel)")
    deploy.add_argument("--bundle", default=str(workspace.BUNDLE), help=f"signed bundle folder ({workspace.BUNDLE})")
    deploy.add_argument("--config", required=True, help="device TOML (see hardware/example-device.toml), or a folder "
                        "of <host>.toml, one per device")
    deploy.add_argument("--public-key", default=str(public_key_path(workspace.SIGNING_KEY)),
                        help=f"ed25519 public key, PEM ({public_key_path(workspace.SIGNING_KEY)})")
    deploy.add_argument("--wheelhouse", default=str(workspace.WHEELHOUSE),
                        help=f"offline wheelhouse, invoke wheelhouse ({workspace.WHEELHOUSE})")
    deploy.add_argument("--edge-wheel", default="", help="deploy this hotspot-edge wheel instead of building one")
    deploy.add_argument("--trust-new-host", action="store_true",
                        help="first deploy to a device: record its SSH host key and install --public-key as its "
                             "trusted signing key (a device that already has a different key is still refused)")
    add_settings_arguments(deploy)
    for name, text in (("rollback", "switch a device back to its previous release"),
                       ("status", "show a device's release, bundle, service, health and last result")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", required=True, help="[user@]host[:port] or an ~/.ssh/config alias")
        add_settings_arguments(command)
        if name == "status":
            command.add_argument("--json", action="store_true", help="print JSON")
    rotate = commands.add_parser("rotate-key", help="hand a device's trust to a new signing key (signed by the old one)")
    rotate.add_argument("--host", required=True, help="[user@]host[:port] or an ~/.ssh/config alias")
    rotate.add_argument("--new-public-key", required=True, help="the new key's .pub (invoke keygen --out NEW.key)")
    rotate.add_argument("--signing-key", required=True, help="the old private key, the one the device trusts")
    rotate.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
    add_settings_arguments(rotate)
    add_wheelhouse_arguments(commands.add_parser("wheelhouse", help="download the device's wheels"))
    return parser


def _hosts(args: argparse.Namespace) -> list[str]:
    hosts = [host.strip() for host in (args.hosts.split(",") if args.hosts else [args.host]) if host.strip()]
    if not hosts:
        raise HotspotError("no device given; pass --host user@device or --hosts a,b,c "
                           "(or set deploy.host / deploy.hosts in invoke.yaml)")
    if len(set(hosts)) != len(hosts):
        raise HotspotError(f"--hosts lists a device twice ({args.hosts}); list each device once")
    return hosts


def _deploy(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    hosts = _hosts(args)
    plan = DeployPlan(bundle=Path(args.bundle), config=Path(args.config), public_key=Path(args.public_key),
                      wheelhouse=Path(args.wheelhouse), repo=REPO,
                      edge_wheel=Path(args.edge_wheel) if args.edge_wheel else None)
    try:
        results = deploy_fleet(hosts, settings, plan)
    finally:
        plan.close()
    print(result_table(results))
    return 0 if all(result.ok for result in results) else 1


def _one_device(args: argparse.Namespace, action: Callable[[Device], int]) -> int:
    settings = settings_from_args(args)
    with make_connection(args.host, settings) as connection:
        device = Device(connection, settings)
        failure = unreachable(device, args.host)
        if failure is not None:
            print(result_table([failure]))
            return 1
        return action(device)


def _rollback(device: Device, host: str) -> int:
    result = rollback_device(device, host)
    print(result_table([result]))
    return 0 if result.ok else 1


def _status(device: Device, as_json: bool) -> int:
    status = device_status(device)
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    health, result = status["health"] or {}, status["last_result"]
    print(f"current release  {status['current'] or 'none'}")
    print(f"bundle id        {status['bundle_id'] or '-'}")
    print(f"service          {status['service']}")
    print(f"health           {health.get('status', 'no health.json')} (bundle {health.get('bundle_id', '-')}, "
          f"written {health.get('time', '-')})")
    if result:
        summary = {key: result[key] for key in ("time", "kind", "bundle_id", "position_mm", "frame", "radius90_mm",
                                                "placement", "localised", "consistency", "quality", "reasons")
                   if key in result}
        print(f"last result      {json.dumps(summary)}")
    else:
        print("last result      none yet")
    print(f"releases         {' '.join(status['releases']) or 'none'}")
    return 0


def _confirm(question: str) -> None:
    """Ask on the terminal; refuse (one line) when there is none or the answer is not 'yes'."""
    if not sys.stdin.isatty():
        raise HotspotError("rotate-key changes what the device trusts and needs a confirmation: run it in a terminal "
                           "or pass --yes", ErrorCode.BAD_ARGUMENT)
    if input(f"{question} Type yes to go on: ").strip().lower() != "yes":
        raise HotspotError("not confirmed; the device's trusted key is unchanged", ErrorCode.BAD_ARGUMENT)


def _rotation(args) -> tuple[bytes, bytes, str]:
    """The rotation statement and its signature by the old key (asked for confirmation first)."""
    from convert.signing import load_private_key

    old_private = load_private_key(args.signing_key)
    old_key, new_key = old_private.public_key(), load_public_key(args.new_public_key)
    old_id, new_id = public_key_id(old_key), public_key_id(new_key)
    if old_id == new_id:
        raise HotspotError(f"{args.new_public_key} is the key {args.signing_key} belongs to; make a new pair with "
                           "'invoke keygen --out keys/NEW.key'", ErrorCode.BAD_ARGUMENT)
    if not args.yes:
        _confirm(f"{args.host} will trust signing key {new_id} instead of {old_id} and refuse bundles signed with the "
                 "old key from its next restart on.")
    statement = rotation_statement(old_key, new_key)
    return statement, base64.b64encode(old_private.sign(statement)) + b"\n", old_id


def _rotate(device: Device, host: str, rotation: tuple[bytes, bytes, str]) -> int:
    result = rotate_key(device, host, *rotation)
    print(result_table([result]))
    return 0 if result.ok else 1


def add_wheelhouse_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``wheelhouse`` command."""
    parser.add_argument("--out", default=str(workspace.WHEELHOUSE), help=f"wheelhouse folder ({workspace.WHEELHOUSE})")
    parser.add_argument("--platform", default="manylinux_2_36_aarch64",
                        help="device platform tag (Pi OS Bookworm 64-bit: manylinux_2_36_aarch64), or pi: Raspberry Pi "
                             "OS bookworm with BrainFlow cross-built from source and hotspot-edge included")
    parser.add_argument("--python", default="3.11", help="device Python version (3.11)")
    parser.add_argument("--extra-wheels", default="", help="comma-separated wheels built elsewhere (BrainFlow aarch64)")
    parser.add_argument("--brainflow-source", default="",
                        help="with --platform pi: BrainFlow source tarball (../shared/vendor/brainflow/)")


def wheelhouse_command(args: argparse.Namespace, repo: Path) -> int:
    """Run ``wheelhouse``: download, add supplied wheels, check the target can install everything."""
    target = target_from_platform(args.platform, args.python)
    extra = [Path(item).expanduser() for item in args.extra_wheels.split(",") if item.strip()]
    if args.platform == PI_PLATFORM:
        source = Path(args.brainflow_source).expanduser() if args.brainflow_source else None
        print(f"wheelhouse {args.out} for Raspberry Pi OS bookworm (the first run cross-builds BrainFlow from "
              "source: about 7 minutes on 2 cores; later runs take it from ~/.cache/hotspot-edge)", flush=True)
        wheels = make_pi_wheelhouse(Path(args.out), repo, source, extra)
    elif args.brainflow_source:
        raise HotspotError("--brainflow-source is only used with --platform pi")
    else:
        wheels = make_wheelhouse(Path(args.out), target, extra, repo)
    print(f"wheelhouse {args.out} serves {target}: {len(wheels)} wheels")
    for wheel in sorted(wheels, key=lambda item: item.name.lower()):
        print(f"  {wheel.name} {wheel.version}  {wheel.path.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a deploy command; see the module docstring for exit codes."""
    args = _parser().parse_args(argv)
    if args.command == "wheelhouse":
        return wheelhouse_command(args, REPO)
    if args.command == "deploy":
        return _deploy(args)
    if args.command == "rotate-key":
        rotation = _rotation(args)
        return _one_device(args, lambda device: _rotate(device, args.host, rotation))
    if args.command == "rollback":
        return _one_device(args, lambda device: _rollback(device, args.host))
    return _one_device(args, lambda device: _status(device, args.json))
