"""One error type for everything a user can get wrong, carrying a code (BrainFlow style), and the command line.

Every command of the project runs through :func:`run_cli`: a :class:`HotspotError` (a bad file,
config, bundle or argument, or an optional package that is not installed: :func:`soft_import`)
becomes one line on stderr and exit code 2, never a traceback. Library code reports through
:mod:`logging`; :func:`run_cli` decides what a command shows (its ``log_level``) and the command's
``main`` prints its result.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType


class ErrorCode(enum.IntEnum):
    """What kind of problem a :class:`HotspotError` reports."""

    BAD_FILE = 1
    BAD_FORMAT = 2
    BAD_CONFIG = 3
    BAD_ARGUMENT = 4
    MISSING_CHANNELS = 5
    BAD_SAMPLING_RATE = 6
    BAD_SAMPLES = 7
    NO_EVENTS = 8
    BAD_LABELS = 9
    BAD_BUNDLE = 10
    BAD_SIGNATURE = 11
    SELF_TEST_FAILED = 12
    BOARD_ERROR = 13
    DEPLOY_FAILED = 14
    BUDGET_EXCEEDED = 15
    STORAGE_FAILED = 16
    MISSING_PACKAGE = 17


class HotspotError(Exception):
    """A problem caused by input the user controls (a file, config, bundle or argument).

    The message is one line that names the problem and says what to do about it.

    Parameters
    ----------
    message : str
        One line: what is wrong and what to do.
    code : ErrorCode
        The kind of problem.
    """

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_ARGUMENT) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)

    def __str__(self) -> str:
        return f"{self.args[0]} [{self.code.name}]"


USER_ERROR_EXIT = 2
PROJECT_PACKAGES = ("edge", "train", "convert", "hardware", "bench")
"""Top-level packages of this project (whose loggers a command's ``log_level`` applies to)."""
EXTRAS = {"brainflow": "edge", "serial": "edge", "ai_edge_litert": "edge", "tflite_runtime": "edge",
          "cryptography": "edge", "cobs": "edge", "aiohttp": "edge", "bless": "ble", "tensorflow": "host",
          "keras": "host", "scipy": "host", "mne": "host", "edfio": "host", "matplotlib": "host", "cmsisdsp": "host",
          "fabric": "host", "paramiko": "host", "tomli_w": "host", "tqdm": "host", "wheel": "host", "invoke": "dev",
          "pybv": "dev", "playwright": "dev"}
"""Import name of each optional package -> the extra of ``pyproject.toml`` that installs it."""


def missing_package(name: str, purpose: str = "") -> HotspotError:
    """The one-line error for an optional package that is not installed (``MISSING_PACKAGE``)."""
    top = name.split(".")[0]
    extra = EXTRAS.get(top, "host")
    what = f"{purpose} needs" if purpose else "this needs"
    return HotspotError(f"{what} the Python package {top!r}, which is not installed; install it with "
                        f"pip install 'hotspot-edge[{extra}]'", ErrorCode.MISSING_PACKAGE)


def soft_import(name: str, purpose: str) -> ModuleType:
    """Import an optional package, or refuse in one line naming it and how to install it (MNE's ``_soft_import``).

    Parameters
    ----------
    name : str
        The module to import (e.g. ``"bless"``).
    purpose : str
        What needs it, for the message (e.g. ``"[links.ble] enabled"``).

    Returns
    -------
    module

    Raises
    ------
    HotspotError
        ``MISSING_PACKAGE`` when it is not installed.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise missing_package(err.name or name, purpose) from None


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record is emitted (tests swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the stream is always the current sys.stderr
        pass


_HANDLER = _CurrentStderr()


def show_logs(level: int) -> None:
    """Show this project's log records of ``level`` and above on stderr (plain messages; set once per process)."""
    for name in PROJECT_PACKAGES:
        package = logging.getLogger(name)
        package.setLevel(level)
        if _HANDLER not in package.handlers:
            package.addHandler(_HANDLER)


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are user errors: one line naming the problem, exit 2 via :func:`run_cli`.

    argparse would print its usage (several lines) and exit; every command of the project uses this
    parser instead (subcommand parsers inherit it).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HotspotError(f"{self.prog}: {message}; see --help", ErrorCode.BAD_ARGUMENT)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None,
            log_level: int = logging.WARNING) -> int:
    """Run a command-line ``main``: show its library's logs, and turn a user error into one line and exit code 2.

    Parameters
    ----------
    main : callable
        The command's main function; returns an exit code.
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    log_level : int
        The project's log records shown on stderr (:func:`show_logs`): warnings and errors by default
        (a command's own output is what its ``main`` prints); ``INFO`` adds the library's progress.

    Returns
    -------
    int
        The exit code: ``main``'s own, or 2 for a user error (a :class:`HotspotError`, or an optional
        third-party package that is not installed).
    """
    show_logs(log_level)
    try:
        return main(argv)
    except HotspotError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in PROJECT_PACKAGES:
            raise  # this project's own module: a bug, not the user's environment
        print(f"error: {missing_package(err.name or str(err))}", file=sys.stderr)
        return USER_ERROR_EXIT
