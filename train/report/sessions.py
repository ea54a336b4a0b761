"""Device session logs (``edge.sessionlog``) read for the clinician report, ordered by when they started."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.sessionlog import read_session_log

logger = logging.getLogger(__name__)
LOG_SUFFIX = ".log"


@dataclass
class Session:
    """One device session as its log recorded it.

    Attributes
    ----------
    path : Path
    started : datetime
        The start record's time (UTC).
    start : dict
        The start record: pseudonymous ``device_id``, ``bundle_id``, ``channels`` (as worn),
        ``hemisphere``, ``schedule`` and, from newer runtimes, ``provenance``, ``contact``, ``erd_bands``.
    trials : list of dict
        Trial records in order (``trial``, ``good``, ``position_mm``, ``faults``, ``erd_pct``).
    result : dict or None
        The session's result (None for a session that was interrupted).
    corrupt : int
        Damaged lines skipped when reading.
    """

    path: Path
    started: dt.datetime
    start: dict
    trials: list[dict] = field(default_factory=list)
    result: dict | None = None
    corrupt: int = 0

    @property
    def label(self) -> str:
        """The start time, as a clinician reads it (UTC)."""
        return self.started.strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def kind(self) -> str:
        """``hotspot``, ``prior``, ``redo`` or ``interrupted``."""
        return str(self.result.get("kind")) if self.result else "interrupted"

    @property
    def position_mm(self) -> np.ndarray | None:
        """The estimate (issue 11's ``position_mm`` or the older ``position_head_mm``), mm."""
        if not self.result:
            return None
        position = self.result.get("position_mm", self.result.get("position_head_mm"))
        return None if position is None else np.asarray(position, dtype=float)

    @property
    def frame(self) -> str:
        """The frame the estimate is in."""
        return str((self.result or {}).get("frame", "head"))

    @property
    def good_positions(self) -> np.ndarray:
        """The good trials' estimates, (n, 3) mm."""
        rows = [t["position_mm"] for t in self.trials if t.get("good") and t.get("position_mm") is not None
                and None not in t["position_mm"]]
        return np.array(rows, dtype=float).reshape(-1, 3)

    def mean_erd(self) -> tuple[list[str], np.ndarray] | None:
        """Mean movement-period ERD over the good trials: (electrodes, (n_bands, n_electrodes) %), if logged."""
        logged = [t["erd_pct"] for t in self.trials if t.get("good") and t.get("erd_pct")]
        if not logged:
            return None
        names = list(logged[0])
        values = np.array([[trial[name] for name in names] for trial in logged], dtype=float)  # (n, electrodes, bands)
        return names, np.nanmean(values, axis=0).T


def _parse_time(text: str, path: Path) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise HotspotError(f"{path}: the start record's time {text!r} is not an ISO time", ErrorCode.BAD_FORMAT) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def read_session(path: Path) -> Session:
    """Read one session log.

    Raises
    ------
    HotspotError
        ``BAD_FORMAT`` when the file holds no session start (not a session log).
    """
    contents = read_session_log(path)
    starts = contents.of_kind("start")
    if not starts:
        raise HotspotError(f"{path} is not a device session log (no intact start record)", ErrorCode.BAD_FORMAT)
    start = starts[0]
    results = contents.of_kind("result")
    if contents.corrupt:
        logger.warning("%s: %d damaged line(s) skipped", path, contents.corrupt)
    return Session(path=Path(path), started=_parse_time(start.get("time"), Path(path)), start=start,
                   trials=sorted(contents.of_kind("trial"), key=lambda t: t.get("trial", 0)),
                   result=results[-1].get("result") if results else None, corrupt=contents.corrupt)


def find_logs(paths: Iterable[str | Path]) -> list[Path]:
    """Session logs among files and folders (searched recursively for ``*.log``).

    Raises
    ------
    HotspotError
        ``BAD_FILE`` for a missing path or when no log is found.
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob(f"*{LOG_SUFFIX}") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise HotspotError(f"{path} not found; give a session log or a folder of them (a device's "
                               "<state_dir>/sessions)", ErrorCode.BAD_FILE)
    if not found:
        raise HotspotError(f"no session logs (*{LOG_SUFFIX}) in {', '.join(map(str, paths))}", ErrorCode.BAD_FILE)
    return found


def read_sessions(paths: Iterable[str | Path]) -> list[Session]:
    """Every session log among ``paths``, ordered by start time (oldest first)."""
    return sorted((read_session(path) for path in find_logs(paths)), key=lambda session: session.started)


def provenance_hash(sessions: Iterable[Session]) -> str:
    """SHA-256 over the logs' bytes (in time order): which data a report was made from."""
    digest = hashlib.sha256()
    for session in sessions:
        digest.update(session.path.read_bytes())
    return digest.hexdigest()
