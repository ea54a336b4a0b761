"""One error type for everything a user can get wrong, carrying a code (BrainFlow style)."""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Callable, Sequence


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


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are user errors: one line naming the problem, exit 2 via :func:`run_cli`.

    argparse would print its usage (several lines) and exit; every command of the project uses this
    parser instead (subcommand parsers inherit it).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HotspotError(f"{self.prog}: {message}; see --help", ErrorCode.BAD_ARGUMENT)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a command-line ``main`` and turn a :class:`HotspotError` into one line and exit code 2.

    Parameters
    ----------
    main : callable
        The command's main function; returns an exit code.
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: ``main``'s own, or 2 for a user error.
    """
    try:
        return main(argv)
    except HotspotError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
