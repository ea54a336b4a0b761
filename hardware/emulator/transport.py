"""The board emulator's serial link: a pseudo-terminal behind a stable port path, as a dongle behind a udev rule.

The path given to BrainFlow as ``serial_port`` is a symlink to the current pseudo-terminal. Pulling the
dongle (:meth:`PtyLink.unplug`) closes the terminal and removes the path; plugging it in again opens a
new terminal behind the same path. Writes are queued and flushed without blocking, so a host that
stops reading only fills the queue.
"""

from __future__ import annotations

import os
import select
import tempfile
import tty
from pathlib import Path

MAX_PENDING_BYTES = 64 * 1024
"""More than this many bytes queued for a host that does not read: new packets are lost, as on a full link."""


class PtyLink:
    """A pseudo-terminal behind a stable path.

    Parameters
    ----------
    link : str or Path, optional
        The stable port path (a symlink to the current pseudo-terminal). Default: a new temporary
        folder's ``ttyOpenBCI``, made by :meth:`plug`.
    """

    def __init__(self, link: str | Path | None = None) -> None:
        self._link: Path | None = Path(link) if link is not None else None
        self._own_dir: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.pending = bytearray()

    @property
    def port(self) -> str:
        """The stable port path to give BrainFlow as ``serial_port``."""
        if self._link is None:
            raise RuntimeError("the emulator has no port before start()")
        return str(self._link)

    @property
    def plugged(self) -> bool:
        """Whether the pseudo-terminal is open (the dongle is in)."""
        return self._master is not None

    @property
    def full(self) -> bool:
        """More than :data:`MAX_PENDING_BYTES` wait for the host."""
        return len(self.pending) > MAX_PENDING_BYTES

    def plug(self) -> None:
        """Open a new pseudo-terminal and point the stable path at it."""
        if self._link is None:
            self._own_dir = tempfile.mkdtemp(prefix="openbci-emulator-")
            self._link = Path(self._own_dir) / "ttyOpenBCI"
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pending.clear()
        temporary = self._link.with_name(self._link.name + ".new")
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self._link)

    def unplug(self) -> None:
        """Close the pseudo-terminal and remove the stable path (queued bytes are lost)."""
        if self._link is not None and self._link.is_symlink():
            self._link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.pending.clear()

    def close(self) -> None:
        """Unplug and remove the temporary folder :meth:`plug` made."""
        self.unplug()
        if self._own_dir is not None and os.path.isdir(self._own_dir):
            os.rmdir(self._own_dir)

    def read(self) -> bytes:
        """Whatever the host has written (nothing when unplugged or nothing arrived)."""
        if self._master is None:
            return b""
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def send(self, data: bytes) -> None:
        """Queue bytes for the host."""
        self.pending += data

    def flush(self) -> None:
        """Write as much of the queue as the terminal takes now."""
        if not self.pending or self._master is None:
            return
        try:
            written = os.write(self._master, self.pending)
        except (BlockingIOError, OSError):
            return
        del self.pending[:written]

    def wait(self, timeout_s: float) -> None:
        """Wait until the host writes, the queue can be flushed, or ``timeout_s`` passes."""
        select.select([self._master], [self._master] if self.pending else [], [], timeout_s)
