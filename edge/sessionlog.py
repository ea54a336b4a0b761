"""Append-only session log that survives a crash or power cut.

One file per session, one record per line: ``<CRC-32 as 8 hex digits> <JSON>``. Every record
is flushed and fsync'ed as it is written, so a crash loses at most the record being written;
on reload a truncated last line is ignored and a corrupted line is skipped and counted.
Records carry the pseudonymous device id only, never patient identifiers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ErrorCode, HotspotError


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _line(record: dict) -> bytes:
    body = json.dumps(record, separators=(",", ":"), allow_nan=False, default=float).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


class SessionLog:
    """Write one session's records; each :meth:`append` is durable when it returns.

    Parameters
    ----------
    path : Path
        The log file; created with its folder; an existing file is appended to.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")
        self._seq = 0

    @classmethod
    def new(cls, folder: Path) -> "SessionLog":
        """Start a new log in ``folder``, named by the UTC start time."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(Path(folder) / f"session-{stamp}.log")

    def append(self, kind: str, **fields: Any) -> None:
        """Write one record (``kind``, time, sequence number and ``fields``) and fsync it.

        Non-finite floats are written as null (JSON has no NaN).
        """
        record = {"kind": kind, "seq": self._seq, "time": _now(), **_finite(fields)}
        self._file.write(_line(record))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._seq += 1

    def close(self) -> None:
        """Close the file (every record is already on disk)."""
        self._file.close()


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
        Complete lines whose checksum or JSON did not match (skipped).
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
    records, corrupt = [], 0
    for line in lines:
        record = _parse(line)
        if record is None:
            corrupt += 1
        else:
            records.append(record)
    return LogContents(records, corrupt, truncated_tail=bool(tail))


def _parse(line: bytes) -> dict | None:
    checksum, _, body = line.partition(b" ")
    try:
        if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
