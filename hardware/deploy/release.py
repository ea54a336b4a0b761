"""A release as prepared on the host: the files to upload, their checksums and a content id.

Layout of ``<prefix>/releases/<id>/`` on the device::

    hotspot_edge-<version>-py3-none-any.whl   this repository's code (edge/ and friends)
    bundle/                                    the signed model bundle (model, manifest, signature, golden;
                                               level source: source_space.npz)
    device.toml                                the device config, [bundle] pointing at bundle/ and at the
                                               device's trusted key <prefix>/trust/signing.pub (edge.trust;
                                               never part of a release)
    requirements.txt                           every wheel to install, pinned with its sha256
    release.json                               bundle id and version, signing key id, state folder, target
    SHA256SUMS                                 sha256 of every file above (checked on the device)
    venv/                                      created on the device from the offline wheelhouse
    .verified                                  written on the device once checks and self-test passed

The release id is a hash of SHA256SUMS: the same content always gives the same id, so
re-running a deploy finds the release already there instead of adding a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import tomli_w

from edge.bundle import (MANIFEST_FILE, bundle_file_names, bundle_id_from_manifest, bundle_version,
                         load_public_key, public_key_id, sha256_hex)
from edge.config import parse_config
from edge.errors import ErrorCode, HotspotError
from hardware.deploy.wheels import Target, Wheel

CONFIG_FILE = "device.toml"
BUNDLE_DIR = "bundle"
REQUIREMENTS_FILE = "requirements.txt"
RELEASE_FILE = "release.json"
SUMS_FILE = "SHA256SUMS"
VERIFIED_MARKER = ".verified"
ID_LENGTH = 16


@dataclass(frozen=True)
class Release:
    """Files staged for one target, ready to upload.

    Attributes
    ----------
    release_id : str
        Content hash (hex) of the release files.
    folder : Path
        Local staging folder with the release files (relative paths as on the device).
    files : list of str
        The release files, POSIX paths relative to the release folder, SHA256SUMS last.
    wheels : list of Wheel
        Dependency wheels to place in the device's shared wheelhouse.
    bundle_id : str
        The bundle's id as the runtime reports it in health.json.
    state_dir : str
        The device's state folder (health.json, last_result.json).
    bundle_version : int
        The bundle's version (a device refuses an older one than it runs).
    key_id : str
        The id of the public key the bundle must verify with.
    """

    release_id: str
    folder: Path
    files: list[str]
    wheels: list[Wheel]
    bundle_id: str
    state_dir: str
    bundle_version: int
    key_id: str


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_id_of(bundle: Path) -> str:
    """The id the runtime gives the bundle in folder ``bundle``."""
    return bundle_id_from_manifest((bundle / MANIFEST_FILE).read_bytes())


def bundle_version_of(bundle: Path) -> int:
    """The version in the manifest of the bundle in folder ``bundle``.

    Raises
    ------
    HotspotError
        ``BAD_BUNDLE`` when the manifest is unreadable or has no valid version.
    """
    try:
        manifest = json.loads((bundle / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise HotspotError(f"cannot read {bundle / MANIFEST_FILE} ({err}); rebuild the bundle with 'invoke convert'",
                           ErrorCode.BAD_BUNDLE) from None
    if not isinstance(manifest, dict):
        raise HotspotError(f"{bundle / MANIFEST_FILE} is not a manifest; rebuild the bundle", ErrorCode.BAD_BUNDLE)
    return bundle_version(manifest)


def check_bundle_folder(bundle: Path) -> None:
    """Refuse a bundle folder that is missing files (the device verifies content and signature)."""
    if not bundle.is_dir():
        raise HotspotError(f"bundle folder {bundle} not found; build one with 'invoke convert' and pass --bundle",
                           ErrorCode.BAD_FILE)
    missing = [name for name in bundle_file_names(bundle) if not (bundle / name).is_file()]
    if missing:
        raise HotspotError(f"bundle {bundle} is incomplete ({', '.join(missing)} missing); rebuild it with "
                           "'invoke convert'", ErrorCode.BAD_BUNDLE)


def device_config_text(config: Path, trusted_key: str = "") -> tuple[str, str]:
    """Validate the device config and return it pointed at the release's bundle and the device's key.

    Parameters
    ----------
    config : Path
        The device TOML (see hardware/example-device.toml).
    trusted_key : str
        The device's trusted public key (an absolute path on the device, outside the release).

    Returns
    -------
    text : str
        The TOML to upload: ``[bundle] path = "bundle"``, ``public_key = trusted_key``.
    state_dir : str
        The device's state folder.

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` when the config is invalid or its state folder is not an absolute device
        path (state must survive releases).
    """
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as err:
        raise HotspotError(f"cannot read device config {config} ({err.strerror}); pass --config with a device TOML "
                           "(see hardware/example-device.toml)", ErrorCode.BAD_FILE) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise HotspotError(f"{config}: not valid TOML ({err})", ErrorCode.BAD_CONFIG) from None
    parse_config(data, config)
    state_dir = data["device"].get("state_dir", "")
    if not PurePosixPath(state_dir).is_absolute():
        raise HotspotError(f"{config}: [device] state_dir = {state_dir!r} must be an absolute path on the device "
                           "(e.g. /var/lib/hotspot-edge) so results and health survive new releases",
                           ErrorCode.BAD_CONFIG)
    board_file = data["board"].get("file", "")
    if board_file and not PurePosixPath(board_file).is_absolute():
        raise HotspotError(f"{config}: [board] file = {board_file!r} must be an absolute path on the device "
                           "(deploy uploads no recordings)", ErrorCode.BAD_CONFIG)
    data["bundle"] = {"path": BUNDLE_DIR, "public_key": trusted_key}
    return tomli_w.dumps(data), state_dir


def stage_release(out: Path, project_wheel: Wheel, wheels: list[Wheel], bundle: Path, config: Path,
                  public_key: Path, target: Target, trusted_key: str) -> Release:
    """Write a release's files into ``out`` and compute its content id.

    Parameters
    ----------
    out : Path
        Empty staging folder.
    project_wheel : Wheel
        This repository's wheel.
    wheels : list of Wheel
        The dependency wheels pip chose for the target.
    bundle, config, public_key : Path
        The signed bundle folder, the device TOML and the ed25519 public key (PEM) it is signed with.
    target : Target
        The device platform the wheels were chosen for.
    trusted_key : str
        Where the device keeps its trusted public key (the release's config points there).

    Returns
    -------
    Release
    """
    check_bundle_folder(bundle)
    key_id = public_key_id(load_public_key(public_key))
    version = bundle_version_of(bundle)
    text, state_dir = device_config_text(config, trusted_key)
    (out / BUNDLE_DIR).mkdir(parents=True)
    for name in bundle_file_names(bundle):
        shutil.copy2(bundle / name, out / BUNDLE_DIR / name)
    shutil.copy2(project_wheel.path, out / project_wheel.path.name)
    (out / CONFIG_FILE).write_text(text, encoding="utf-8")
    pinned = [project_wheel, *sorted(wheels, key=lambda wheel: wheel.name.lower())]
    (out / REQUIREMENTS_FILE).write_text("".join(wheel.requirement() + "\n" for wheel in pinned), encoding="utf-8")
    bundle_id = bundle_id_of(bundle)
    meta = {"bundle_id": bundle_id, "bundle_version": version, "signing_key_id": key_id, "state_dir": state_dir,
            "target": str(target), "wheel": project_wheel.path.name}
    (out / RELEASE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    sums = "".join(f"{file_sha256(out / name)}  {name}\n" for name in files)
    (out / SUMS_FILE).write_text(sums, encoding="utf-8")
    return Release(release_id=sha256_hex(sums.encode("utf-8"))[:ID_LENGTH], folder=out, files=[*files, SUMS_FILE],
                   wheels=wheels, bundle_id=bundle_id, state_dir=state_dir, bundle_version=version, key_id=key_id)
