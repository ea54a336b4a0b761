"""What is being deployed, prepared once on the host and shared by every device of a fleet.

The project wheel is built once; each distinct target (architecture, glibc, Python) gets its
own resolution against the wheelhouse and its own staged release (the pinned wheels differ).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import DeviceConfig
from edge.errors import ErrorCode, HotspotError
from hardware.deploy.release import (Release, StagedBundle, check_bundle_folder, file_sha256, read_bundle,
                                     read_device_config, stage_release)
from hardware.deploy.wheels import Target, Wheel, build_project_wheel, check_native, resolve

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DeployPlan:
    """The inputs of a deploy and the releases staged from them.

    Parameters
    ----------
    bundle : Path
        Signed bundle folder.
    config : Path
        Device TOML, or a folder of them named after each device (``<host>.toml``, the host as
        given without ``user@``) so every device of a fleet gets its own pseudonymous id.
    public_key : Path
        ed25519 public key (PEM) the bundle must verify with.
    wheelhouse : Path
        Offline wheelhouse made by ``invoke wheelhouse``.
    repo : Path
        The repository whose wheel is deployed.
    edge_wheel : Path or None
        A hotspot-edge wheel built earlier (e.g. once by CI for a whole fleet); None builds one
        from ``repo``.
    """

    bundle: Path
    config: Path
    public_key: Path
    wheelhouse: Path
    repo: Path = REPO
    edge_wheel: Path | None = None
    _scratch: tempfile.TemporaryDirectory = field(init=False, repr=False)
    _files: list[str] = field(init=False, repr=False)
    _bundle: StagedBundle | None = field(default=None, init=False, repr=False)
    _configs: dict[Path, DeviceConfig] = field(init=False, repr=False)
    _project: Wheel | None = field(default=None, init=False, repr=False)
    _releases: dict[tuple[Target, Path, str], Release] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._files = check_bundle_folder(self.bundle)
        paths = sorted(self.config.glob("*.toml")) if self.config.is_dir() else [self.config]
        if not paths:
            raise HotspotError(f"config folder {self.config} has no <host>.toml device configs", ErrorCode.BAD_FILE)
        self._configs = {path: read_device_config(path) for path in paths}
        if not self.public_key.is_file():
            raise HotspotError(f"public key {self.public_key} not found; pass --public-key with the .pub file made "
                               "by 'invoke keygen'", ErrorCode.BAD_FILE)
        if self.edge_wheel is not None and not self.edge_wheel.name.startswith("hotspot_edge-"):
            raise HotspotError(f"{self.edge_wheel} is not a hotspot-edge wheel (hotspot_edge-<version>-...whl)",
                               ErrorCode.BAD_FILE)
        if self.edge_wheel is not None and not self.edge_wheel.is_file():
            raise HotspotError(f"edge wheel {self.edge_wheel} not found", ErrorCode.BAD_FILE)
        if not self.wheelhouse.is_dir():
            raise HotspotError(f"wheelhouse {self.wheelhouse} not found; make it with 'invoke wheelhouse' "
                               "(see --platform/--python)", ErrorCode.BAD_FILE)
        self._scratch = tempfile.TemporaryDirectory(prefix="hotspot-deploy-")

    def close(self) -> None:
        """Delete the staging folders."""
        self._scratch.cleanup()

    def project_wheel(self) -> Wheel:
        """The hotspot-edge wheel (the given one, or built from the repository on first use)."""
        if self._project is None:
            path = self.edge_wheel or build_project_wheel(self.repo, Path(self._scratch.name) / "project")
            name, version = path.name.split("-")[:2]
            self._project = Wheel(name=name.replace("_", "-"), version=version, path=path, sha256=file_sha256(path))
        return self._project

    def config_for(self, host: str) -> Path:
        """The device config for a host (the one file, or ``<folder>/<host>.toml``).

        Raises
        ------
        HotspotError
            ``BAD_FILE`` when the folder has no config for the host.
        """
        if not self.config.is_dir():
            return self.config
        path = self.config / f"{host.rsplit('@', 1)[-1]}.toml"
        if not path.is_file():
            raise HotspotError(f"no device config for {host}: expected {path}", ErrorCode.BAD_FILE)
        return path

    def release_for(self, target: Target, config: Path, trusted_key: str) -> Release:
        """The release staged for a target, device config and trusted-key path (staged on first use; thread-safe).

        Raises
        ------
        HotspotError
            ``DEPLOY_FAILED`` when the wheelhouse lacks a wheel for the target.
        """
        with self._lock:
            key = (target, config, trusted_key)
            if key not in self._releases:
                project = self.project_wheel()
                chosen = resolve(f"{project.path}[edge]", [self.wheelhouse], target)
                wheels = [wheel for wheel in chosen if wheel.path != project.path]
                check_native(wheels, target, str(self.wheelhouse))
                staging = Path(self._scratch.name) / f"release-{len(self._releases)}"
                if self._bundle is None:
                    self._bundle = read_bundle(self.bundle, self._files)
                self._releases[key] = stage_release(staging, project, wheels, self._bundle, self._configs[config],
                                                    self.public_key, target, trusted_key)
            return self._releases[key]
