"""An emulated Raspberry Pi: Debian bookworm's arm64 Python 3.11 run by qemu user-mode emulation.

Raspberry Pi OS bookworm (64-bit) is Debian bookworm for arm64 with Python 3.11. ``mmdebstrap
--variant=extract`` unpacks Debian's own arm64 packages of that Python (and ``libstdc++6``, which
the TFLite and BrainFlow libraries need) into a folder; nothing is installed or configured and no
chroot is entered. ``qemu-aarch64-static -L ROOT`` runs the interpreter, resolving its loader and
libraries inside the root, so no binfmt_misc registration is needed.

Each Pi model gets a launcher script in the root, e.g. ``usr/bin/python3-pi4``::

    exec qemu-aarch64-static -cpu cortex-a72 -L ROOT -0 "$0" ROOT/usr/bin/python3.11 "$@"

``-cpu`` gives the model's core (Pi 4: Cortex-A72, ARMv8.0-A; Pi 5: Cortex-A76, ARMv8.2-A), so
kernels that need newer instructions are not selected. ``-0 "$0"`` hands Python the path it was
started by, so a venv made by this interpreter (``python3-pi4 -m venv V``) links ``V/bin/python`` to
the launcher and ``V/bin/python`` is itself an emulated Python that finds ``V/pyvenv.cfg``: the
deploy path (venv + pip + self-test) works unchanged. The launcher lives in ``usr/bin`` of the
root so Python finds its standard library (``usr/lib/python3.11``) next to it.

The root is cached in ``~/.cache/hotspot-edge/pi-root-<hash>/``, keyed by suite, architecture
and package list.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ErrorCode, HotspotError
from hardware.deploy.wheels import PI_TARGET, run_pip
from hardware.pi.cache import cache_dir, publish, require_tools, run_logged, scratch_next_to

log = logging.getLogger(__name__)

SUITE = "bookworm"
ARCHITECTURE = "arm64"
PACKAGES = ("python3.11", "python3.11-venv", "libstdc++6")
"""Debian packages unpacked (with their dependencies): the interpreter, venv/ensurepip, the C++ runtime."""
MODELS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}
"""Raspberry Pi model → the qemu CPU of its cores (Pi 4: ARMv8.0-A; Pi 5: ARMv8.2-A)."""
QEMU = "qemu-aarch64-static"
TOOLS = {QEMU: "qemu-user-static", "mmdebstrap": "mmdebstrap"}
_EXCLUDED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*")
LAUNCHER = """#!/bin/sh
# Emulated Raspberry Pi ({model}, {cpu} cores): Debian bookworm arm64 Python 3.11 under qemu user mode.
exec {qemu} -cpu {cpu} -L {root} -0 "$0" {python} "$@"
"""


@dataclass(frozen=True)
class EmulatedPi:
    """An arm64 Debian bookworm root and the Pi model whose CPU qemu emulates.

    Attributes
    ----------
    root : Path
        The unpacked arm64 root filesystem.
    model : str
        ``"pi4"`` or ``"pi5"`` (see :data:`MODELS`).
    """

    root: Path
    model: str = "pi4"

    @property
    def cpu(self) -> str:
        """The qemu CPU model."""
        return MODELS[self.model]

    @property
    def python(self) -> Path:
        """The launcher: run it like ``python3`` on the Pi."""
        return self.root / "usr" / "bin" / f"python3-{self.model}"

    def write_launcher(self) -> Path:
        """(Re)write the launcher script for this model; return its path."""
        qemu = shutil.which(QEMU)
        if qemu is None:
            require_tools(TOOLS, "the emulated Pi")
        self.python.write_text(LAUNCHER.format(model=self.model, cpu=self.cpu, qemu=shlex.quote(qemu),
                                               root=shlex.quote(str(self.root)),
                                               python=shlex.quote(str(self.root / "usr/bin/python3.11"))),
                               encoding="utf-8")
        self.python.chmod(0o755)
        return self.python

    def run(self, arguments: Sequence[str], env: dict | None = None, timeout: float | None = None,
            **kwargs) -> subprocess.CompletedProcess:
        """Run the emulated Python with ``arguments`` (``subprocess.run`` keyword arguments pass through)."""
        return subprocess.run([str(self.python), *map(str, arguments)], env=env, timeout=timeout, check=False,
                              **kwargs)


def root_key(packages: Sequence[str] = PACKAGES) -> str:
    """What a cached root is keyed by: suite, architecture and packages, hashed."""
    text = "\n".join([SUITE, ARCHITECTURE, *sorted(packages), *_EXCLUDED])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_root(cache: Path | None = None, packages: Sequence[str] = PACKAGES) -> Path:
    """Unpack (once) Debian bookworm's arm64 Python 3.11 into the cache; return the root folder.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` when qemu-user-static or mmdebstrap is missing or mmdebstrap fails.
    """
    final = (cache or cache_dir()) / f"pi-root-{root_key(packages)}"
    if (final / "usr" / "bin" / "python3.11").is_file():
        return final
    require_tools(TOOLS, "the emulated Pi")
    scratch = scratch_next_to(final)
    log_file = final.parent / f"{final.name}.log"
    log_file.write_text("", encoding="utf-8")
    try:
        log.info("unpacking Debian %s %s: %s (log %s)", SUITE, ARCHITECTURE, ", ".join(packages), log_file)
        target = scratch / "root"
        run_logged(["mmdebstrap", "--variant=extract", f"--architectures={ARCHITECTURE}",
                    f"--include={','.join(packages)}", *[f"--dpkgopt=path-exclude={path}" for path in _EXCLUDED],
                    SUITE, target], log_file, f"mmdebstrap ({SUITE} {ARCHITECTURE})")
        if not (target / "usr" / "bin" / "python3.11").is_file():
            raise HotspotError(f"mmdebstrap left no usr/bin/python3.11 in {target}; see {log_file}",
                               ErrorCode.DEPLOY_FAILED)
        publish(target, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def emulated_pi(model: str = "pi4", cache: Path | None = None) -> EmulatedPi:
    """The cached root with a launcher for ``model`` written; ready to run.

    Raises
    ------
    HotspotError
        ``BAD_ARGUMENT`` for an unknown model; see :func:`ensure_root`.
    """
    if model not in MODELS:
        raise HotspotError(f"Pi model {model!r} is not emulated; use one of {', '.join(MODELS)}")
    pi = EmulatedPi(ensure_root(cache), model)
    pi.write_launcher()
    return pi


def install_target(pi: EmulatedPi, requirement: str, wheelhouse: Path, target: Path) -> Path:
    """Install a requirement from a wheelhouse into a folder the emulated Python puts on ``PYTHONPATH``.

    The host's pip does the install (``--target`` with the Pi's platform tags, offline from the
    wheelhouse), so nothing is resolved under emulation.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` when pip cannot install it from the wheelhouse.
    """
    done = run_pip(["install", "--quiet", "--no-index", "--find-links", str(wheelhouse), "--target", str(target),
                    *PI_TARGET.pip_options(), requirement])
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["pip failed"]
        raise HotspotError(f"installing {requirement} from {wheelhouse} for {pi.model} failed: {lines[-1]}",
                           ErrorCode.DEPLOY_FAILED)
    return target
