"""BrainFlow for the Raspberry Pi: its C++ core cross-compiled for aarch64 and packed as a wheel.

BrainFlow's PyPI wheel carries x86-64 libraries only and there is no source distribution, so the
device's BrainFlow is built from the vendored source tarball (``../shared/vendor/brainflow/``, see
its README for provenance). The build is the one that worked there: Debian's
``g++-aarch64-linux-gnu`` and CMake, ``-DBUILD_SYNCHRONI_SDK=OFF``, Release. Only the three
libraries the Python binding loads are built (``BoardController``, ``DataHandler``, ``MLModule``;
CMake copies them into ``python_package/brainflow/lib``); the Bluetooth board libraries are not
(the device talks to a Cyton over its USB dongle), and the prebuilt vendor SDKs CMake copies in for
other CPUs (x86-64 ``libunicorn.so`` and ``libeego-SDK.so``, 32-bit ARM ``libunicorn_raspberry.so``)
are left out, so every library in the wheel is aarch64. ``pip wheel`` packs the binding and
``wheel tags`` marks the wheel ``linux_aarch64``, so pip never takes it for PyPI's ``py3-none-any``
wheel and only installs it on aarch64.

The wheel is cached in ``~/.cache/hotspot-edge/brainflow-aarch64-<sha256 of the tarball>/``; a
second build of the same source returns the cached wheel at once.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

from edge.errors import ErrorCode, HotspotError
from hardware.deploy.wheels import ELF_MACHINES, elf_machine
from hardware.pi.cache import cache_dir, publish, require_tools, run_logged, scratch_next_to, sha256_file

log = logging.getLogger(__name__)

LIBRARIES = ("libBoardController.so", "libDataHandler.so", "libMLModule.so")
"""The shared libraries ``brainflow`` loads, built for aarch64 and shipped inside the wheel."""
CMAKE_TARGETS = ("BoardController", "DataHandler", "MLModule")
BASE_VERSION = "5.23.0"
"""The PyPI release closest to the vendored commit (vendor README); the commit is the local version label."""
TOOLCHAIN = {"aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu", "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu",
             "cmake": "cmake", "make": "make"}
PLATFORM_TAG = "linux_aarch64"
_SOURCE_NAME = re.compile(r"^brainflow-src-(?P<commit>[0-9a-f]{7,40})\.tar\.gz$")


def vendored_source(repo: Path) -> Path:
    """The vendored BrainFlow source tarball beside the clone (``../shared/vendor/brainflow/``).

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when there is none.
    """
    folder = repo.resolve().parent / "shared" / "vendor" / "brainflow"
    found = sorted(folder.glob("brainflow-src-*.tar.gz"))
    if not found:
        raise HotspotError(f"no BrainFlow source tarball (brainflow-src-<commit>.tar.gz) in {folder}; pass "
                           "--brainflow-source with one", ErrorCode.BAD_FILE)
    return found[-1]


def wheel_version(source: Path) -> str:
    """``5.23.0+g<commit>``: the closest release, with the vendored commit as local version label.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when the tarball is not named ``brainflow-src-<commit>.tar.gz``.
    """
    match = _SOURCE_NAME.match(source.name)
    if not match:
        raise HotspotError(f"BrainFlow source {source} must be named brainflow-src-<commit>.tar.gz (as in "
                           "../shared/vendor/brainflow/)", ErrorCode.BAD_FILE)
    return f"{BASE_VERSION}+g{match['commit'][:7]}"


def _extract(source: Path, into: Path) -> Path:
    try:
        with tarfile.open(source) as archive:
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as err:
        reason = " ".join(str(err).split()) if isinstance(err, OSError) else "not a readable .tar.gz"
        raise HotspotError(f"cannot unpack BrainFlow source {source} ({reason}); copy the tarball again",
                           ErrorCode.BAD_FILE) from None
    found = [path.parent for path in into.glob("*/CMakeLists.txt") if (path.parent / "python_package").is_dir()]
    if len(found) != 1:
        raise HotspotError(f"{source} does not hold one BrainFlow source tree (CMakeLists.txt and python_package/)",
                           ErrorCode.BAD_FILE)
    return found[0]


def _cross_compile(tree: Path, build: Path, log_file: Path, jobs: int) -> None:
    build.mkdir()
    run_logged(["cmake", "-S", tree, "-B", build, "-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
                "-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc", "-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++",
                "-DBUILD_SYNCHRONI_SDK=OFF", "-DCMAKE_BUILD_TYPE=Release", f"-DBRAINFLOW_VERSION={BASE_VERSION}"],
               log_file, "configuring BrainFlow for aarch64 (cmake)")
    run_logged(["cmake", "--build", build, "--parallel", str(jobs), "--target", *CMAKE_TARGETS], log_file,
               "cross-compiling BrainFlow for aarch64")


def _drop_foreign_libraries(lib: Path, log_file: Path) -> None:
    """Delete prebuilt vendor libraries CMake copied in that are not aarch64 (x86-64 and 32-bit ARM blobs)."""
    for library in sorted(lib.glob("*.so*")):
        with open(library, "rb") as handle:
            machine = elf_machine(handle.read(20))
        if machine is not None and machine != ELF_MACHINES["aarch64"]:
            library.unlink()
            with open(log_file, "a", encoding="utf-8") as handle:
                handle.write(f"left out {library.name}: a prebuilt library for another CPU\n")


def _pack_wheel(package: Path, version: str, out: Path, log_file: Path) -> Path:
    _drop_foreign_libraries(package / "brainflow" / "lib", log_file)
    setup = package / "setup.py"
    text = setup.read_text(encoding="utf-8")
    if "version='0.0.1'" not in text:
        raise HotspotError(f"{setup} has no version='0.0.1' placeholder to fill in; is this BrainFlow's source?",
                           ErrorCode.BAD_FILE)
    setup.write_text(text.replace("version='0.0.1'", f"version='{version}'"), encoding="utf-8")
    env = dict(os.environ, SOURCE_DATE_EPOCH="315532800")
    run_logged([sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "wheel", "--no-deps",
                "--no-build-isolation", "--wheel-dir", out, package], log_file, "packing the BrainFlow wheel", env=env)
    [pure] = out.glob("brainflow-*.whl")
    run_logged([sys.executable, "-m", "wheel", "tags", "--remove", "--platform-tag", PLATFORM_TAG, pure], log_file,
               "tagging the BrainFlow wheel linux_aarch64")
    [tagged] = out.glob(f"brainflow-*-{PLATFORM_TAG}.whl")
    return tagged


def check_wheel(wheel: Path) -> None:
    """Check a BrainFlow wheel carries the three libraries, each an aarch64 ELF shared object.

    Raises
    ------
    HotspotError
        ``DEPLOY_FAILED`` naming what is missing or built for another CPU.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = {name.rsplit("/", 1)[-1]: name for name in archive.namelist() if "/lib/" in name}
        for library in LIBRARIES:
            if library not in names:
                raise HotspotError(f"{wheel.name} lacks brainflow/lib/{library}; rebuild it", ErrorCode.DEPLOY_FAILED)
            with archive.open(names[library]) as member:
                machine = elf_machine(member.read(20))
            if machine != ELF_MACHINES["aarch64"]:
                raise HotspotError(f"{wheel.name}: {library} is not an aarch64 shared library; rebuild it",
                                   ErrorCode.DEPLOY_FAILED)


def build_brainflow_wheel(source: Path, cache: Path | None = None, jobs: int | None = None) -> Path:
    """Cross-build BrainFlow for aarch64 from a source tarball, or return the cached wheel.

    Parameters
    ----------
    source : Path
        ``brainflow-src-<commit>.tar.gz``.
    cache : Path, optional
        Cache folder (default :func:`hardware.pi.cache.cache_dir`).
    jobs : int, optional
        Parallel compile jobs (default: the number of CPUs).

    Returns
    -------
    Path
        ``brainflow-5.23.0+g<commit>-py3-none-linux_aarch64.whl`` in the cache.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` for an unusable tarball; ``DEPLOY_FAILED`` when the toolchain is missing or
        a build step fails (the message names the build log).
    """
    source = Path(source)
    if not source.is_file():
        raise HotspotError(f"BrainFlow source {source} not found; pass --brainflow-source with the tarball from "
                           "../shared/vendor/brainflow/", ErrorCode.BAD_FILE)
    version = wheel_version(source)
    final = (cache or cache_dir()) / f"brainflow-aarch64-{sha256_file(source)[:16]}"
    cached = sorted(final.glob(f"brainflow-*-{PLATFORM_TAG}.whl"))
    if cached:
        log.info("BrainFlow aarch64 wheel from the cache: %s", cached[0])
        return cached[0]
    scratch = scratch_next_to(final)
    log_file = final.parent / f"{final.name}.log"
    log_file.write_text(f"BrainFlow {version} from {source}\n", encoding="utf-8")
    try:
        log.info("cross-building BrainFlow %s for aarch64 (a few minutes; log %s)", version, log_file)
        tree = _extract(source, scratch / "src")
        require_tools(TOOLCHAIN, "cross-building BrainFlow for aarch64")
        _cross_compile(tree, scratch / "build", log_file, jobs or os.cpu_count() or 2)
        wheel = _pack_wheel(tree / "python_package", version, scratch / "dist", log_file)
        check_wheel(wheel)
        done = scratch / "done"
        done.mkdir()
        shutil.move(str(wheel), done / wheel.name)
        publish(done, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final / wheel.name

