"""Library code reports through logging; only command-line code prints (a static check of the package files).

Command-line code is a ``main`` (or ``_main``) function, :func:`edge.errors.run_cli`, or any function of a
command module (``cli.py``, ``__main__.py``). Everything else logs, and a command decides what is shown.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("edge", "train", "convert", "hardware", "bench")
COMMAND_FUNCTIONS = {"main", "_main", "run_cli"}
COMMAND_MODULES = {"cli.py", "__main__.py"}


def prints_outside_commands() -> list[str]:
    """``file:line`` of every ``print(...)`` call outside command-line code."""
    found = []
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            if path.name in COMMAND_MODULES:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            commands = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and node.name in COMMAND_FUNCTIONS]
            inside = {id(inner) for command in commands for inner in ast.walk(command)}
            found += [f"{path.relative_to(REPO)}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
                      and id(node) not in inside]
    return found


def test_only_command_line_code_prints() -> None:
    assert prints_outside_commands() == []


def test_a_missing_optional_package_is_one_line_naming_how_to_install_it(capsys) -> None:
    import pytest

    from edge.errors import ErrorCode, HotspotError, run_cli, soft_import

    with pytest.raises(HotspotError, match=r"the BLE link needs the Python package 'no_such_package_xyz'") as caught:
        soft_import("no_such_package_xyz", "the BLE link")
    assert caught.value.code == ErrorCode.MISSING_PACKAGE

    def main(argv) -> int:
        import scipy.no_such_module  # noqa: F401  (a third-party import that fails)
        return 0

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "pip install 'hotspot-edge[host]'" in err


def test_library_logs_reach_the_command_line_only_through_run_cli(capsys) -> None:
    import logging

    from edge.errors import run_cli

    def main(argv) -> int:
        logging.getLogger("train.example").info("progress shown by the command")
        logging.getLogger("train.example").debug("detail kept back")
        return 0

    assert run_cli(main, [], log_level=logging.INFO) == 0
    err = capsys.readouterr().err
    assert "progress shown by the command" in err and "detail kept back" not in err
    assert run_cli(main, []) == 0  # by default a command shows warnings and errors only
    assert "progress shown by the command" not in capsys.readouterr().err
