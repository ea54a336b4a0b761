"""A fixed-size buffer of multichannel samples with their sample indices and lost flags.

The acquisition worker writes into it and the runtime drains it (:class:`edge.acquisition.Acquisition`);
when the reader falls behind, the oldest samples are overwritten and counted.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """A fixed-size buffer of multichannel samples and their indices; the oldest are overwritten.

    Parameters
    ----------
    n_channels : int
        Rows.
    capacity : int
        Samples kept.
    """

    def __init__(self, n_channels: int, capacity: int) -> None:
        self._data = np.full((n_channels, capacity), np.nan)
        self._index = np.zeros(capacity, dtype=np.int64)
        self._lost = np.zeros(capacity, dtype=bool)
        self.capacity = capacity
        self._write = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, data: np.ndarray, index: np.ndarray, lost: np.ndarray) -> int:
        """Append samples; return how many unread samples were overwritten."""
        n = index.size
        if n > self.capacity:
            data, index, lost = data[:, -self.capacity:], index[-self.capacity:], lost[-self.capacity:]
            skipped = n - self.capacity
            n = self.capacity
        else:
            skipped = 0
        positions = (self._write + np.arange(n)) % self.capacity
        self._data[:, positions] = data
        self._index[positions] = index
        self._lost[positions] = lost
        self._write = (self._write + n) % self.capacity
        overwritten = max(0, self._count + n - self.capacity)
        self._count = min(self.capacity, self._count + n)
        return overwritten + skipped

    def pop_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Remove and return every unread sample (data, index, lost flags), oldest first."""
        positions = (self._write - self._count + np.arange(self._count)) % self.capacity
        out = self._data[:, positions], self._index[positions], self._lost[positions]
        self._count = 0
        return out
