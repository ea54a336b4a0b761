"""The device TOML written from a validated :class:`edge.config.DeviceConfig` (deploy and the demo).

Nobody writes device TOML by hand: a configuration is validated (:func:`edge.config.parse_config`),
changed as a dataclass if need be, and written here from :meth:`edge.config.DeviceConfig.to_dict`,
which :func:`edge.config.load_config` reads back to an equal configuration.
"""

from __future__ import annotations

from pathlib import Path

import tomli_w

from edge.config import DeviceConfig


def config_text(config: DeviceConfig, base: Path | None = None) -> str:
    """The TOML text of ``config`` (paths inside ``base`` relative to it; default: the config's folder)."""
    return tomli_w.dumps(config.to_dict(base))


def write_config(config: DeviceConfig, path: Path) -> Path:
    """Write ``config`` to ``path`` (folder created; paths inside its folder written relative to it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(config, path.parent.resolve()), encoding="utf-8")
    return path
