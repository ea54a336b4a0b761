"""Validated configuration: the one way every TOML file of the project is read and its values checked.

Configuration is data, validated at load, and every mistake is one line naming the file, the key,
the value and what is expected (:class:`~edge.errors.HotspotError` with ``BAD_CONFIG``; an unreadable
file is ``BAD_FILE``). The checks follow MNE-Python's private validators:

* :func:`read_toml` reads a file (the only place :mod:`tomllib` is used);
* :func:`validate_type` (MNE's ``_validate_type``), :func:`check_option` (``_check_option``) and
  :func:`check_range` check one value;
* :func:`check_keys` refuses unknown keys;
* :class:`Table` applies them to one TOML table, so an error reads
  ``<file>: [table] key = value must be ...``.

A *name* is how an error shows the key: ``"[session] trials"`` for a table's key, ``"'task.move_s'"``
for a dotted one. *where* is the file (or another label) the value came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.errors import ErrorCode, HotspotError

REQUIRED = object()
"""Default of a key that must be given."""

_WHAT = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table",
         list: "a list"}


def _fail(where: object, message: str) -> HotspotError:
    return HotspotError(f"{where}: {message}" if where else message, ErrorCode.BAD_CONFIG)


def read_toml(path: str | Path, what: str = "configuration file", hint: str = "check the path") -> dict:
    """Read a TOML file.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is, for the message (e.g. ``"device config"``).
    hint : str
        What to do when the file cannot be read.

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when it cannot be read (``not found`` for a missing file), ``BAD_CONFIG`` when it
        is not UTF-8 TOML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HotspotError(f"cannot read {what} {path}: not found; {hint}", ErrorCode.BAD_FILE) from None
    except OSError as err:
        raise HotspotError(f"cannot read {what} {path}: {err.strerror}; {hint}", ErrorCode.BAD_FILE) from None
    except UnicodeDecodeError:
        raise _fail(path, f"{what} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _fail(path, f"{what} is not valid TOML ({err}); fix the syntax") from None


def _describe(kinds: tuple[type, ...]) -> str:
    return " or ".join(_WHAT.get(kind, kind.__name__) for kind in kinds)


def validate_type(value: Any, kinds: type | tuple[type, ...], name: str, where: object = "",
                  what: str | None = None) -> Any:
    """Return ``value`` if it is of ``kinds``, else refuse it (MNE's ``_validate_type``).

    ``bool`` is never taken for ``int`` or ``float``; an ``int`` is taken for ``float`` (and returned as
    a float).

    Parameters
    ----------
    value
        The value.
    kinds : type or tuple of type
        Accepted types.
    name : str
        How the message names the key.
    where : str or Path
        Where the value came from.
    what : str, optional
        What is expected, for the message (default: from ``kinds``).
    """
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    what = what or _describe(kinds)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(where, f"{name} = {value!r} must be {what}")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kinds):
        raise _fail(where, f"{name} = {value!r} must be {what}")
    return value


def check_option(value: Any, options: Iterable, name: str, where: object = "") -> Any:
    """Return ``value`` if it is one of ``options``, else refuse it (MNE's ``_check_option``)."""
    options = tuple(options)
    if value not in options:
        raise _fail(where, f"{name} = {value!r} must be one of {', '.join(map(str, options))}")
    return value


def check_range(value: float, low: float, high: float, name: str, where: object = "") -> float:
    """Return ``value`` if ``low <= value <= high``, else refuse it."""
    if not low <= value <= high:
        raise _fail(where, f"{name} = {value} must be in {low}..{high}")
    return value


def check_keys(data: dict, known: Iterable[str], name: str, where: object = "") -> None:
    """Refuse keys of ``data`` that are not ``known`` (``name``: the table, e.g. ``"[board]"``)."""
    known = tuple(known)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _fail(where, f"{name} has unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")


class Table:
    """Typed access to one TOML table that names the exact key in every error.

    Parameters
    ----------
    data : dict or None
        The table as parsed.
    name : str
        Its name (``"session"``, ``"links.serial"``; ``"top level"`` for the document).
    where : str or Path
        The file it came from.
    required : bool
        A missing table is an error (else it reads as empty).
    hint : str
        Where the user finds an example (appended to a missing table's message).
    """

    def __init__(self, data: Any, name: str, where: object, required: bool = True, hint: str = "") -> None:
        if data is None and not required:
            data = {}
        if not isinstance(data, dict):
            raise _fail(where, f"missing table [{name}]" + (f"; {hint}" if hint else ""))
        self.data, self.name, self.where, self.hint = data, name, where, hint

    def key_name(self, key: str) -> str:
        """How messages name ``key`` of this table."""
        return f"[{self.name}] {key}"

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any, what: str | None = None) -> Any:
        """The value of ``key`` checked with :func:`validate_type`; ``default`` when absent (:data:`REQUIRED`: refuse)."""
        if key not in self.data:
            if default is REQUIRED:
                expected = what or _describe(kinds if isinstance(kinds, tuple) else (kinds,))
                raise _fail(self.where, f"{self.key_name(key)} is missing; set it to {expected}")
            return default
        return validate_type(self.data[key], kinds, self.key_name(key), self.where, what)

    def string(self, key: str, default: Any = None, choices: tuple[str, ...] | None = None) -> Any:
        """A string (one of ``choices`` when given)."""
        what = f"one of {', '.join(choices)}" if choices else None
        value = self.get(key, str, default, what)
        if choices and value is not None:
            check_option(value, choices, self.key_name(key), self.where)
        return value

    def integer(self, key: str, default: Any, low: int, high: int) -> int:
        """An integer in ``low..high``."""
        value = self.get(key, int, default, f"an integer in {low}..{high}")
        return check_range(value, low, high, self.key_name(key), self.where)

    def number(self, key: str, default: Any, low: float, high: float) -> float:
        """A number in ``low..high`` (as a float)."""
        value = float(self.get(key, float, default, f"a number in {low}..{high}"))
        return check_range(value, low, high, self.key_name(key), self.where)

    def boolean(self, key: str, default: Any) -> bool:
        """``true`` or ``false``."""
        return self.get(key, bool, default)

    def table(self, key: str, required: bool = True) -> "Table":
        """The sub-table ``key`` (``[name.key]``)."""
        name = key if self.name == "top level" else f"{self.name}.{key}"
        return Table(self.data.get(key), name, self.where, required, self.hint)

    def check_known(self, known: Iterable[str]) -> None:
        """Refuse keys this table does not know (:func:`check_keys`)."""
        check_keys(self.data, known, f"[{self.name}]", self.where)
