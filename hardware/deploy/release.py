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

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import (MANIFEST_FILE, bundle_file_names, bundle_id_from_manifest, bundle_version,
                         load_public_key, public_key_id, sha256_hex)
from edge.config import DeviceConfig, load_config
from edge.errors import ErrorCode, HotspotError
from hardware.deploy.wheels import Target, Wheel
from hardware.device_config import config_text

CONFIG_FILE = "device.toml"
BUNDLE_DIR = "bundle"
REQUIREMENTS_FILE = "requirements.txt"
RELEASE_FILE = "release.json"
SUMS_FILE = "SHA256SUMS"
VERIFIED_MARKER = ".verified"
ID_LENGTH = 16
RELEASE_FOLDER = Path("/release")
"""Stands for the release folder on the device while a device config is checked and written for it."""


@dataclass(frozen=True)
class StagedBundle:
    """A bundle folder checked once for deploy (the device verifies its content and signature).

    Attributes
    ----------
    path : Path
        The folder.
    bundle_id : str
        The id the runtime gives it (first 12 hex digits of the manifest's sha256).
    version : int
        Its manifest's version.
    files : list of str
        Every file it consists of (:func:`edge.bundle.bundle_file_names`).
    """

    path: Path
    bundle_id: str
    version: int
    files: list[str]


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


def check_bundle_folder(bundle: Path) -> list[str]:
    """Refuse a bundle folder that is missing files (the device verifies content and signature); its file names.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when the folder is missing, ``BAD_BUNDLE`` when files are missing.
    """
    if not bundle.is_dir():
        raise HotspotError(f"bundle folder {bundle} not found; build one with 'invoke convert' and pass --bundle",
                           ErrorCode.BAD_FILE)
    files = bundle_file_names(bundle)
    missing = [name for name in files if not (bundle / name).is_file()]
    if missing:
        raise HotspotError(f"bundle {bundle} is incomplete ({', '.join(missing)} missing); rebuild it with "
                           "'invoke convert'", ErrorCode.BAD_BUNDLE)
    return files


def read_bundle(bundle: Path, files: list[str]) -> StagedBundle:
    """The id and version of a checked bundle folder (:func:`check_bundle_folder` gave its ``files``).

    Raises
    ------
    HotspotError
        ``BAD_BUNDLE`` when the manifest is unreadable or has no valid version.
    """
    try:
        manifest_bytes = (bundle / MANIFEST_FILE).read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise HotspotError(f"cannot read {bundle / MANIFEST_FILE} ({err}); rebuild the bundle with 'invoke convert'",
                           ErrorCode.BAD_BUNDLE) from None
    if not isinstance(manifest, dict):
        raise HotspotError(f"{bundle / MANIFEST_FILE} is not a manifest; rebuild the bundle", ErrorCode.BAD_BUNDLE)
    return StagedBundle(path=bundle, bundle_id=bundle_id_from_manifest(manifest_bytes),
                        version=bundle_version(manifest), files=files)


def read_device_config(config: Path) -> DeviceConfig:
    """Load and check a device config as it will run from a release folder.

    Relative paths resolve against the release folder (:data:`RELEASE_FOLDER`), so the state folder
    and a playback recording must be absolute device paths: state must survive releases, and deploy
    uploads no recordings.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when it cannot be read, ``BAD_CONFIG`` when it is invalid or names a state folder or
        recording inside the release.
    """
    loaded = load_config(config, base=RELEASE_FOLDER)
    if loaded.state_dir.is_relative_to(RELEASE_FOLDER):
        written = loaded.state_dir.relative_to(RELEASE_FOLDER).as_posix()
        raise HotspotError(f"{config}: [device] state_dir = {written!r} must be an absolute path on the device "
                           "(e.g. /var/lib/hotspot-edge) so results and health survive new releases",
                           ErrorCode.BAD_CONFIG)
    if loaded.board.file is not None and loaded.board.file.is_relative_to(RELEASE_FOLDER):
        written = loaded.board.file.relative_to(RELEASE_FOLDER).as_posix()
        raise HotspotError(f"{config}: [board] file = {written!r} must be an absolute path on the device "
                           "(deploy uploads no recordings)", ErrorCode.BAD_CONFIG)
    return loaded


def release_config_text(config: DeviceConfig, trusted_key: str) -> str:
    """The device config as a release carries it: ``[bundle] path = "bundle"``, ``public_key = trusted_key``."""
    released = dataclasses.replace(config, bundle_path=RELEASE_FOLDER / BUNDLE_DIR, public_key=Path(trusted_key))
    return config_text(released, RELEASE_FOLDER)


def stage_release(out: Path, project_wheel: Wheel, wheels: list[Wheel], bundle: StagedBundle, config: DeviceConfig,
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
    bundle : StagedBundle
        The signed bundle folder (:func:`read_bundle`).
    config : DeviceConfig
        The device config (:func:`read_device_config`).
    public_key : Path
        The ed25519 public key (PEM) the bundle is signed with.
    target : Target
        The device platform the wheels were chosen for.
    trusted_key : str
        Where the device keeps its trusted public key (the release's config points there).

    Returns
    -------
    Release
    """
    key_id = public_key_id(load_public_key(public_key))
    state_dir = config.state_dir.as_posix()
    (out / BUNDLE_DIR).mkdir(parents=True)
    for name in bundle.files:
        shutil.copy2(bundle.path / name, out / BUNDLE_DIR / name)
    shutil.copy2(project_wheel.path, out / project_wheel.path.name)
    (out / CONFIG_FILE).write_text(release_config_text(config, trusted_key), encoding="utf-8")
    pinned = [project_wheel, *sorted(wheels, key=lambda wheel: wheel.name.lower())]
    (out / REQUIREMENTS_FILE).write_text("".join(wheel.requirement() + "\n" for wheel in pinned), encoding="utf-8")
    meta = {"bundle_id": bundle.bundle_id, "bundle_version": bundle.version, "signing_key_id": key_id,
            "state_dir": state_dir,
            "target": str(target), "wheel": project_wheel.path.name}
    (out / RELEASE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    sums = "".join(f"{file_sha256(out / name)}  {name}\n" for name in files)
    (out / SUMS_FILE).write_text(sums, encoding="utf-8")
    return Release(release_id=sha256_hex(sums.encode("utf-8"))[:ID_LENGTH], folder=out, files=[*files, SUMS_FILE],
                   wheels=wheels, bundle_id=bundle.bundle_id, state_dir=state_dir, bundle_version=bundle.version,
                   key_id=key_id)
