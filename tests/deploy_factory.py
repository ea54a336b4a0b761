"""Shared deploy-test fixtures: this checkout's wheel and a cached wheelhouse of this machine's wheels.

The wheelhouse is downloaded once (``pip download`` of the edge extra for this machine) into
``~/.cache/hotspot-edge/`` (or ``$XDG_CACHE_HOME``) and reused by later sessions and CI runs; it
is refreshed only when it no longer satisfies the edge extra.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from edge.errors import HotspotError
from hardware.deploy.plan import REPO
from hardware.deploy.wheels import Target, build_project_wheel, make_wheelhouse, resolve


def local_target() -> Target:
    """This machine as a deploy target."""
    _, version = platform.libc_ver()
    return Target(platform.machine(), tuple(int(part) for part in version.split(".")[:2]), sys.version_info[:2])


@pytest.fixture(scope="session")
def edge_wheel(tmp_path_factory) -> Path:
    """This checkout's wheel, built once per session (others may edit the tree while tests run)."""
    return build_project_wheel(REPO, tmp_path_factory.mktemp("edge-wheel"))


@pytest.fixture(scope="session")
def wheelhouse(edge_wheel) -> Path:
    """This machine's wheels for the edge extra, downloaded once into a cache folder and reused."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hotspot-edge"
    target = local_target()
    folder = cache / f"wheelhouse-{target.machine}-cp{target.python[0]}{target.python[1]}"
    try:
        resolve(f"{edge_wheel}[edge]", [folder], target)
    except HotspotError:
        make_wheelhouse(folder, target, [], REPO)
    return folder
