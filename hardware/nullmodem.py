"""A virtual null-modem cable: two pseudo-terminals whose traffic is relayed both ways.

The device runtime opens one end and the monitor the other, each with pyserial, exactly as
with a USB serial cable between a Pi and a host (what ``socat pty,raw pty,raw`` does).
"""

from __future__ import annotations

import os
import select
import threading
import tty


class NullModem:
    """Two linked ptys; ``device_port`` and ``host_port`` are their paths.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self) -> None:
        self._masters, self._slaves, paths = [], [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._masters.append(master)
            self._slaves.append(slave)
            paths.append(os.ttyname(slave))
        self.device_port, self.host_port = paths
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="nullmodem", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        a, b = self._masters
        peer = {a: b, b: a}
        while True:
            readable, _, _ = select.select([a, b, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            for fd in readable:
                try:
                    data = os.read(fd, 65536)
                    os.write(peer[fd], data)
                except OSError:
                    # Nobody reads the other end and its buffer is full: drop, as a cable would.
                    continue

    def close(self) -> None:
        """Stop relaying and close both ptys."""
        os.write(self._wake_write, b"x")
        self._thread.join(2.0)
        for fd in self._masters + self._slaves + [self._wake_read, self._wake_write]:
            os.close(fd)

    def __enter__(self) -> "NullModem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
