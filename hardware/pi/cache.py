"""Host-side build cache for Pi artefacts: where it lives, tool checks, logged commands, atomic publishing.

A cached artefact is built in a scratch folder next to its final place and renamed into place only
when complete, so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.errors import ErrorCode, HotspotError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hotspot-edge`` (default ``~/.cache/hotspot-edge``), outside any clone."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hotspot-edge"


def sha256_file(path: Path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_tools(tools: dict[str, str], purpose: str) -> None:
    """Refuse, in one line, when a command-line tool is missing.

    Parameters
    ----------
    tools : dict
        Command name → the Debian package that provides it.
    purpose : str
        What the tools are needed for (named in the message).

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` naming the missing commands and the apt-get line that installs them.
    """
    missing = {command: package for command, package in tools.items() if shutil.which(command) is None}
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise HotspotError(f"{purpose} needs {', '.join(missing)}; install them with 'apt-get install "
                           f"{packages}' (.ci/run does)", ErrorCode.DEPLOY_FAILED)


def run_logged(command: Sequence[str], log_file: Path, what: str, cwd: Path | None = None,
               env: dict | None = None) -> None:
    """Run a command, appending its output to ``log_file``; one line naming the log if it fails.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` when the command exits non-zero.
    """
    with open(log_file, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(map(str, command))}\n")
        handle.flush()
        done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, stdout=handle,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise HotspotError(f"{what} failed (exit {done.returncode}); its output is in {log_file}",
                           ErrorCode.DEPLOY_FAILED)


def scratch_next_to(final: Path) -> Path:
    """An empty scratch folder beside ``final`` (same file system, so it can be renamed into place)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))


def publish(scratch: Path, final: Path) -> Path:
    """Rename a finished scratch folder to ``final`` (another process may have won the race)."""
    try:
        scratch.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("cached %s", final)
    return final
