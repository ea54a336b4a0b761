"""The offline wheelhouse: download a device's wheels on the host, resolve a release against it.

A device never installs from the internet. The host downloads binary wheels for the device's
platform (``pip download --only-binary=:all: --platform ... --python-version ...``) into a
wheelhouse folder, plus wheels the engineer supplies (BrainFlow publishes no aarch64 wheel, so
one built on or for the Pi is passed with ``--extra-wheels``). ``--platform pi`` is the whole
Raspberry Pi OS bookworm wheelhouse (aarch64, glibc 2.36, CPython 3.11) in one step
(:mod:`hardware.pi.wheelhouse`): BrainFlow cross-built from the vendored source (:mod:`hardware.pi.brainflow`,
cached), the edge extra's aarch64 wheels and this checkout's hotspot-edge wheel. Before a deploy, pip itself
resolves the release's requirements against that wheelhouse for the exact target (architecture,
glibc, Python); what it picks is uploaded and installed with ``--require-hashes``.

pip accepts "pure" wheels (``py3-none-any``) for any platform, and BrainFlow's PyPI wheel is
such a wheel carrying x86_64 shared libraries; :func:`foreign_native_wheels` therefore reads the
ELF header of every shared library inside the chosen wheels and refuses a wheel none of whose
libraries is built for the target's architecture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from edge.errors import ErrorCode, HotspotError

ELF_MACHINES = {"x86_64": 0x3E, "aarch64": 0xB7}
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
LOWEST_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}
BRAINFLOW_DOCS = ("'invoke wheelhouse --platform pi' cross-builds one from the vendored source (README section "
                  "'BrainFlow on the Pi')")
PI_PLATFORM = "pi"
_PLATFORM = re.compile(r"^(?:manylinux_(?P<major>\d+)_(?P<minor>\d+)|(?P<legacy>manylinux2014|manylinux2010|"
                       r"manylinux1)|linux)_(?P<arch>x86_64|aarch64)$")
_MISSING = re.compile(r"No matching distribution found for (\S+)")


@dataclass(frozen=True)
class Target:
    """What a device can install: CPU architecture, glibc version and CPython version."""

    machine: str
    glibc: tuple[int, int]
    python: tuple[int, int]

    def __str__(self) -> str:
        return (f"{self.machine}, glibc {self.glibc[0]}.{self.glibc[1]}, "
                f"CPython {self.python[0]}.{self.python[1]}")

    @property
    def platforms(self) -> list[str]:
        """Every platform tag this target accepts, most specific first (pip needs them listed)."""
        if self.machine not in ELF_MACHINES:
            raise HotspotError(f"CPU architecture {self.machine} is not supported: install a 64-bit OS "
                               f"({' or '.join(ELF_MACHINES)}); there are no TFLite wheels for it",
                               ErrorCode.DEPLOY_FAILED)
        major, minor = self.glibc
        tags = []
        for version in range(minor, LOWEST_GLIBC_MINOR[self.machine] - 1, -1):
            tags.append(f"manylinux_{major}_{version}_{self.machine}")
            if (major, version) in LEGACY_MANYLINUX:
                tags.append(f"{LEGACY_MANYLINUX[(major, version)]}_{self.machine}")
        return tags + [f"linux_{self.machine}"]

    def pip_options(self) -> list[str]:
        """pip options that make it choose wheels for this target instead of this computer."""
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version",
                   f"{self.python[0]}.{self.python[1]}", "--abi", f"cp{self.python[0]}{self.python[1]}"]
        for tag in self.platforms:
            options += ["--platform", tag]
        return options


PI_TARGET = Target(machine="aarch64", glibc=(2, 36), python=(3, 11))
"""Raspberry Pi OS bookworm, 64-bit: Debian bookworm's glibc 2.36 and CPython 3.11."""


def target_from_platform(platform: str, python: str) -> Target:
    """Parse ``--platform`` (``pi``, ``manylinux_2_36_aarch64``, ``manylinux2014_aarch64`` ...) and ``--python``.

    Raises
    ------
    HotspotError
        ``BAD_ARGUMENT`` for a platform or Python version this tool cannot target.
    """
    if platform == PI_PLATFORM:
        if python != f"{PI_TARGET.python[0]}.{PI_TARGET.python[1]}":
            raise HotspotError(f"--platform pi is Raspberry Pi OS bookworm with Python 3.11, not {python}; drop "
                               "--python or give --platform manylinux_<glibc>_aarch64")
        return PI_TARGET
    match = _PLATFORM.match(platform)
    if not match:
        raise HotspotError(f"platform {platform!r} is not understood; use pi (Raspberry Pi OS bookworm, BrainFlow "
                           "built too), manylinux_<glibc major>_<minor>_<arch> or manylinux2014_aarch64")
    if match["legacy"]:
        glibc = next(version for version, name in LEGACY_MANYLINUX.items() if name == match["legacy"])
    elif match["major"]:
        glibc = (int(match["major"]), int(match["minor"]))
    else:
        glibc = (2, LOWEST_GLIBC_MINOR[match["arch"]])
    version = re.fullmatch(r"3\.(\d+)", python)
    if not version or int(version[1]) < 11:
        raise HotspotError(f"Python {python!r} is not supported on the device; use 3.11 or newer (e.g. --python 3.11)")
    return Target(machine=match["arch"], glibc=glibc, python=(3, int(version[1])))


@dataclass(frozen=True)
class Wheel:
    """One wheel chosen for a target."""

    name: str
    version: str
    path: Path
    sha256: str

    def requirement(self) -> str:
        """A pinned, hash-checked requirement line (``pip install --require-hashes``)."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def run_pip(arguments: list[str]) -> subprocess.CompletedProcess:
    """Run this Python's pip, ignoring user configuration (``--isolated``); output captured."""
    return subprocess.run([sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", *arguments],
                          capture_output=True, text=True, check=False)


def _missing_message(stderr: str, where: str, target: Target) -> str:
    missing = _MISSING.findall(stderr)
    if missing:
        what = f"a wheel for {', '.join(missing)}"
    else:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        what = f"what pip needs ({lines[-1] if lines else 'pip failed'})"
    return (f"wheelhouse {where} lacks {what} for {target}; run 'invoke wheelhouse --platform "
            f"manylinux_{target.glibc[0]}_{target.glibc[1]}_{target.machine} --python {target.python[0]}."
            f"{target.python[1]}' (for brainflow on aarch64 add --extra-wheels with a wheel you built: "
            f"{BRAINFLOW_DOCS})")


def resolve(requirement: str, wheelhouses: list[Path], target: Target) -> list[Wheel]:
    """Let pip choose, from the wheelhouses only, every wheel a requirement needs on a target.

    Parameters
    ----------
    requirement : str
        What to install, e.g. ``/tmp/x/hotspot_edge-0.1.0-py3-none-any.whl[edge]``.
    wheelhouses : list of Path
        Folders of wheels (no index is consulted).
    target : Target
        The device.

    Returns
    -------
    list of Wheel
        The wheels pip would install, requirement included.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` naming what the wheelhouse lacks for the target.
    """
    with tempfile.TemporaryDirectory(prefix="hotspot-resolve-") as scratch:
        report = Path(scratch) / "report.json"
        links = [option for folder in wheelhouses for option in ("--find-links", str(folder))]
        done = run_pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                        "--no-index", *links, *target.pip_options(), "--target", str(Path(scratch) / "target"),
                        requirement])
        if done.returncode:
            raise HotspotError(_missing_message(done.stderr, ", ".join(map(str, wheelhouses)), target),
                               ErrorCode.DEPLOY_FAILED)
        chosen = json.loads(report.read_text(encoding="utf-8"))["install"]
    return [Wheel(name=item["metadata"]["name"], version=item["metadata"]["version"],
                  path=Path(unquote(urlparse(item["download_info"]["url"]).path)),
                  sha256=item["download_info"]["archive_info"]["hashes"]["sha256"]) for item in chosen]


def elf_machine(header: bytes) -> int | None:
    """The ELF machine code (``e_machine``) from a file's first 20 bytes; None when it is not ELF."""
    if header[:4] != b"\x7fELF" or len(header) < 20:
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def elf_machines(wheel: Path) -> set[int]:
    """Return the ELF machine codes of the shared libraries inside a wheel (empty for pure Python)."""
    machines = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if not (base.endswith(".so") or ".so." in base):
                continue
            with archive.open(name) as member:
                machine = elf_machine(member.read(20))
            if machine is not None:
                machines.add(machine)
    return machines


def foreign_native_wheels(wheels: list[Wheel], target: Target) -> list[Wheel]:
    """Wheels with shared libraries of which none is built for the target's architecture."""
    wanted = ELF_MACHINES[target.machine]
    return [wheel for wheel in wheels if (machines := elf_machines(wheel.path)) and wanted not in machines]


def check_native(wheels: list[Wheel], target: Target, where: str) -> None:
    """Refuse when a chosen wheel carries native code for another architecture only.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` naming the wheels.
    """
    foreign = foreign_native_wheels(wheels, target)
    if foreign:
        names = ", ".join(wheel.path.name for wheel in foreign)
        raise HotspotError(f"wheelhouse {where} has no {target.machine} build of {names} (its shared libraries are "
                           f"for another CPU); {BRAINFLOW_DOCS} and add it with 'invoke wheelhouse --extra-wheels "
                           f"<wheel>'", ErrorCode.DEPLOY_FAILED)


def build_project_wheel(repo: Path, out: Path) -> Path:
    """Build this repository's wheel (``pip wheel --no-deps``) reproducibly into ``out``.

    The sources are the repository's tracked and untracked-but-not-ignored files (``git
    ls-files``), copied to a scratch folder so stale ``build/`` output never leaks into the wheel;
    ``SOURCE_DATE_EPOCH`` fixes the timestamps so the same sources give the same wheel bytes.

    Returns
    -------
    Path
        The wheel file.
    """
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=False)
    if listed.returncode:
        raise HotspotError(f"{repo} is not a git checkout of hotspot-edge; deploy from a clone of the repository",
                           ErrorCode.DEPLOY_FAILED)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hotspot-wheel-") as scratch:
        source = Path(scratch) / "src"
        for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
            if (repo / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(repo / name, source / name)
        env = dict(os.environ, SOURCE_DATE_EPOCH="315532800")
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--wheel-dir", scratch, str(source)], capture_output=True, text=True, env=env,
                              check=False)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["pip wheel failed"]
            raise HotspotError(f"building the hotspot-edge wheel from {repo} failed: {lines[-1]}",
                               ErrorCode.DEPLOY_FAILED)
        built = next(Path(scratch).glob("hotspot_edge-*.whl"))
        return Path(shutil.copy2(built, out / built.name))


def check_supplied(paths: list[Path]) -> None:
    """Refuse supplied wheels that are not readable ``.whl`` (zip) files."""
    for path in paths:
        if path.suffix != ".whl" or not path.is_file():
            raise HotspotError(f"supplied wheel {path} is not a .whl file; pass built wheels with --extra-wheels "
                               "a.whl,b.whl", ErrorCode.BAD_FILE)
        try:
            zipfile.ZipFile(path).close()
        except zipfile.BadZipFile:
            raise HotspotError(f"supplied wheel {path} is not a valid wheel (zip) file", ErrorCode.BAD_FILE) from None


def make_wheelhouse(out: Path, target: Target, extra_wheels: list[Path], repo: Path,
                    include_project: bool = False) -> list[Wheel]:
    """Fill a wheelhouse with everything the edge extra needs on a target, then check it.

    Supplied wheels are copied in first and pinned (``name==version``), so pip prefers them to
    any index release (give a supplied wheel its platform tag, e.g. ``linux_aarch64``, so it is
    never confused with an index wheel of the same name); the rest is downloaded as binary
    wheels for the target.

    Parameters
    ----------
    out : Path
        The wheelhouse folder (created; existing wheels are kept and reused).
    target : Target
        The device platform.
    extra_wheels : list of Path
        Wheels built elsewhere (e.g. BrainFlow for aarch64).
    repo : Path
        This repository (its wheel defines the requirements).
    include_project : bool
        Put this checkout's hotspot-edge wheel into the wheelhouse too (replacing an older one).

    Returns
    -------
    list of Wheel
        What a device of this target will install from the wheelhouse (hotspot-edge itself
        only when ``include_project``).

    Raises
    ------
    HotspotError
        When a wheel cannot be found or the wheelhouse lacks a build for the target's CPU.
    """
    check_supplied(extra_wheels)
    out.mkdir(parents=True, exist_ok=True)
    for wheel in extra_wheels:
        shutil.copy2(wheel, out / wheel.name)
    with tempfile.TemporaryDirectory(prefix="hotspot-wheelhouse-") as scratch:
        project = build_project_wheel(repo, Path(scratch) / "project")
        constraints = Path(scratch) / "supplied.txt"
        constraints.write_text("".join(f"{'=='.join(wheel.name.split('-')[:2])}\n" for wheel in extra_wheels),
                               encoding="utf-8")
        downloads = Path(scratch) / "downloads"
        done = run_pip(["download", "--quiet", "--dest", str(downloads), "--find-links", str(out),
                        "--constraint", str(constraints), *target.pip_options(), f"{project}[edge]"])
        if done.returncode:
            raise HotspotError(_missing_message(done.stderr, "download (PyPI and " + str(out) + ")", target),
                               ErrorCode.DEPLOY_FAILED)
        supplied = {wheel.name for wheel in extra_wheels}
        for wheel in downloads.glob("*.whl"):
            if wheel.name != project.name and wheel.name not in supplied:
                shutil.move(str(wheel), out / wheel.name)
        resolved = resolve(f"{project}[edge]", [out], target)
        wheels = [wheel for wheel in resolved if wheel.path != project]
        if include_project:
            [own] = [wheel for wheel in resolved if wheel.path == project]
            for old in out.glob("hotspot_edge-*.whl"):
                old.unlink()
            shutil.copy2(project, out / project.name)
            wheels.append(Wheel(own.name, own.version, out / project.name, own.sha256))
    check_native(wheels, target, str(out))
    return wheels
