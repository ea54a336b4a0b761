"""Append-only session log that survives a crash, a power cut or a storage fault.

One file per session, one record per line: ``<CRC-32 as 8 hex digits> <JSON>``. Every record
is written and fsync'ed as it is appended, so a crash loses at most the record being written;
on reload a truncated last line is ignored and a corrupted line is skipped and counted (a
complete record that follows a cut one on the same line is still recovered).

A storage fault (read-only or full file system, I/O error) never raises: the records that could
not be written are kept in memory (:attr:`SessionLog.unwritten`), :attr:`SessionLog.error` says
why, and every later append tries again, first ending any cut line, so the log stays readable up
to the last complete record and a cut record costs at most that record.
Records carry the pseudonymous device id only, never patient identifiers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ErrorCode, HotspotError

_RECORD_START = re.compile(rb"[0-9a-f]{8} \{")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _line(record: dict) -> bytes:
    body = json.dumps(record, separators=(",", ":"), allow_nan=False, default=float).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


class SessionLog:
    """Write one session's records; each :meth:`append` is durable when it returns, unless storage fails.

    Parameters
    ----------
    path : Path
        The log file; created with its folder; an existing file is appended to.

    Attributes
    ----------
    error : OSError or None
        The storage fault of the last append that could not be written (None while writing works).
    failures : int
        Appends that could not be written so far.
    records : list of dict
        Every record appended, in order (also those on disk): the session's results stay in memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.error: OSError | None = None
        self.failures = 0
        self.records: list[dict] = []
        self._lines: list[bytes] = []
        self._written = 0  # records whose line is wholly in the file
        self._durable = 0  # ... and fsync'ed
        self._cut = False  # the file ends inside a line
        self._fd: int | None = None
        self._open()

    @classmethod
    def new(cls, folder: Path) -> "SessionLog":
        """Start a new log in ``folder``, named by the UTC start time."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(Path(folder) / f"session-{stamp}.log")

    @property
    def unwritten(self) -> list[dict]:
        """The records not known to be on disk."""
        return self.records[self._durable:]

    def _open(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as err:
            self.error = err
            return False
        self._cut = self._cut or _ends_mid_line(self.path)
        return True

    def _write(self, data: bytes) -> None:
        self._cut = True
        while data:
            data = data[os.write(self._fd, data):]
        self._cut = False

    def append(self, kind: str, **fields: Any) -> None:
        """Write one record (``kind``, time, sequence number and ``fields``) and fsync it.

        Non-finite floats are written as null (JSON has no NaN). Never raises on a storage fault
        (see the module docstring).
        """
        record = {"kind": kind, "seq": len(self.records), "time": _now(), **_finite(fields)}
        self.records.append(record)
        self._lines.append(_line(record))
        self.flush()

    def flush(self) -> bool:
        """Try again to write the records not on disk yet; return True when none is left."""
        if self._durable == len(self._lines):
            return True
        if not self._open():
            self.failures += 1
            return False
        try:
            if self._cut:
                self._write(b"\n")  # end the cut line: it costs only its own record
            while self._written < len(self._lines):
                self._write(self._lines[self._written])
                self._written += 1
            os.fsync(self._fd)
        except OSError as err:
            self.error = err
            self.failures += 1
            self._written = self._durable  # written again later; a reader keeps one copy per seq
            return False
        self._durable = self._written
        self.error = None
        return True

    def close(self) -> None:
        """Close the file (every record that could be written is already on disk)."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as err:
                self.error = err
            self._fd = None


def _ends_mid_line(path: Path) -> bool:
    """Whether a file's last byte is not a newline (its last record was cut)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except OSError:
        return True


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


@dataclass(frozen=True)
class LogContents:
    """What :func:`read_session_log` recovered.

    Attributes
    ----------
    records : list of dict
        Every intact record in order.
    corrupt : int
        Complete lines whose checksum or JSON did not match (skipped; a complete record after a cut one
        on the same line is kept).
    truncated_tail : bool
        True when the last line was cut off (a crash mid-write); it is ignored.
    """

    records: list[dict]
    corrupt: int
    truncated_tail: bool

    def of_kind(self, kind: str) -> list[dict]:
        """The records of one kind (e.g. ``"trial"``)."""
        return [record for record in self.records if record.get("kind") == kind]


def read_session_log(path: Path) -> LogContents:
    """Read a session log back, tolerating a truncated tail and corrupted lines.

    Parameters
    ----------
    path : Path

    Returns
    -------
    LogContents

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when the file cannot be read.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise HotspotError(f"cannot read session log {path}: {err.strerror}", ErrorCode.BAD_FILE) from None
    lines = raw.split(b"\n")
    tail = lines.pop()
    records, corrupt, seen = [], 0, set()
    for line in lines:
        if not line:
            continue  # the line break written after a cut line that had ended already
        record = _parse(line)
        if record is None:
            corrupt += 1
            record = _recover(line)
        if record is not None and record.get("seq") not in seen:
            seen.add(record.get("seq"))
            records.append(record)
    return LogContents(records, corrupt, truncated_tail=bool(tail))


def _recover(line: bytes) -> dict | None:
    """The complete record at the end of a line that starts with a cut one (written before the cut was ended)."""
    for match in reversed(list(_RECORD_START.finditer(line, 1))):
        record = _parse(line[match.start():])
        if record is not None:
            return record
    return None


def _parse(line: bytes) -> dict | None:
    checksum, _, body = line.partition(b" ")
    try:
        if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
