"""The serial report link: COBS-framed messages out, session-control commands in (pyserial).

Writing never blocks the acquisition loop: frames queue in memory and go out as fast as the
port takes them; when nobody reads the port for long, the oldest queued frames are dropped
and counted. A port that fails (host unplugged) is counted and reopened later.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque

import serial

from edge.errors import ErrorCode, HotspotError
from edge.protocol import HOST_COMMANDS, FrameDecoder, Message, frame

MAX_QUEUED_BYTES = 64 * 1024
REOPEN_INTERVAL_S = 2.0


class SerialLink:
    """A device-side serial report link.

    Parameters
    ----------
    port : str
        The serial device (USB gadget, UART or a pty in tests).
    baud : int
        Baud rate (ignored by ptys and USB gadgets).

    Attributes
    ----------
    counters : collections.Counter
        ``sent``, ``dropped_queue_full``, ``write_errors``, ``reopened``.
    decoder : FrameDecoder
        Incoming commands; its counters say how many bad frames were dropped.
    """

    name = "serial"

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port_name, self.baud = port, baud
        self.counters: Counter = Counter()
        self.decoder = FrameDecoder(HOST_COMMANDS)
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._partial = b""
        self._port: serial.Serial | None = None
        self._next_open = 0.0
        try:
            self._open()
        except (serial.SerialException, OSError) as err:
            raise HotspotError(f"cannot open report port {port}: {err}; check [links.serial] port",
                               ErrorCode.BAD_CONFIG) from None

    def _open(self) -> None:
        self._port = serial.Serial(self.port_name, self.baud, timeout=0, write_timeout=0)

    def _fail(self) -> None:
        self.counters["write_errors"] += 1
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
        self._port = None
        self._partial = b""
        self._next_open = time.monotonic() + REOPEN_INTERVAL_S

    def _ensure_open(self) -> bool:
        if self._port is not None:
            return True
        if time.monotonic() < self._next_open:
            return False
        try:
            self._open()
        except (serial.SerialException, OSError):
            self._next_open = time.monotonic() + REOPEN_INTERVAL_S
            return False
        self.counters["reopened"] += 1
        return True

    def send(self, message: Message) -> None:
        """Queue one message and write as much of the queue as the port takes now."""
        data = frame(message)
        self._queue.append(data)
        self._queued_bytes += len(data)
        while self._queued_bytes > MAX_QUEUED_BYTES and len(self._queue) > 1:
            self._queued_bytes -= len(self._queue.popleft())
            self.counters["dropped_queue_full"] += 1
        self.flush()

    def flush(self) -> None:
        """Write queued frames without blocking (whole frames; a partial write resumes next time)."""
        if not self._ensure_open():
            return
        fd = self._port.fileno()
        while self._partial or self._queue:
            if not self._partial:
                self._partial = self._queue.popleft()
                self._queued_bytes -= len(self._partial)
                self.counters["sent"] += 1
            try:
                written = os.write(fd, self._partial)
            except BlockingIOError:
                return
            except OSError:
                self._fail()
                return
            self._partial = self._partial[written:]

    def poll_commands(self) -> list[Message]:
        """Return the valid host commands received since the last call."""
        if not self._ensure_open():
            return []
        try:
            data = self._port.read(4096)
        except (serial.SerialException, OSError):
            self._fail()
            return []
        return self.decoder.feed(data) if data else []

    def stats(self) -> dict:
        """Counters for health.json: frames sent and dropped, and what was received."""
        return {**self.counters, "received": dict(self.decoder.counters)}

    def close(self) -> None:
        """Try to send what is queued, then close the port."""
        self.flush()
        if self._port is not None:
            self._port.close()
            self._port = None
