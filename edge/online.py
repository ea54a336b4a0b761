"""The device's streaming signal path: :func:`edge.pipeline.compute_epochs`, fed chunk by chunk.

:class:`OnlinePipeline` keeps the recent raw, held and filtered samples in a ring buffer (the same
:class:`edge.pipeline.StreamFilter` as offline) and hands out each cue's epoch, cut by the same
:func:`edge.pipeline.epoch_input`, as soon as its last sample has arrived, whether the cue came before or
after that; a session-rest baseline pools the rest periods announced with :meth:`OnlinePipeline.add_rest`
(:mod:`edge.rest`). Offline and online therefore give identical inputs.
"""

from __future__ import annotations

import numpy as np

from edge.levels import movement_erd
from edge.pipeline import PipelineSpec, StreamFilter, check_chunk, epoch_input
from edge.quality import Verdict
from edge.rest import RestStats, pooled_rest, rest_statistics


class OnlinePipeline:
    """The device's streaming version of :func:`compute_epochs`, fed chunk by chunk.

    Parameters
    ----------
    spec : PipelineSpec
        What to compute.
    buffer_seconds : float
        How late (s) a cue may be added after its epoch's last sample and still be served.

    Attributes
    ----------
    n_samples : int
        Samples pushed since start (the next sample's index).
    dropped_cues : list of int
        Cues that could not be served: their epoch starts before the stream or has left the buffer.
    dropped_rests : list of int
        Rest onsets (session-rest baseline) whose rest window starts before the stream or has left the
        buffer.
    csds : dict of int to (move, rest)
        Level "source": the CSDs of every epoch handed out by :meth:`pop_ready`, by cue sample (the
        session averages those of its good trials); the caller removes what it has used.

    Notes
    -----
    With ``baseline_mode = "session_rest"`` an epoch uses the rest windows that ended by its last sample
    (:mod:`edge.rest`). Announce each rest onset (:meth:`add_rest`) no later than the stream reaches the
    end of its rest window, as the device's session does when its REST cue is due; then the online inputs
    equal :func:`compute_epochs`'s.
    """

    def __init__(self, spec: PipelineSpec, buffer_seconds: float = 30.0) -> None:
        self.spec = spec
        self._window = max(spec.epoch_samples, spec.rest_samples)
        self.capacity = self._window + max(int(round(buffer_seconds * spec.sfreq)), 1)
        self._filter = StreamFilter(spec.filter, len(spec.channels))
        shape = (len(spec.channels), self.capacity)
        self._raw = np.zeros(shape)
        self._held = np.zeros(shape)
        self._filtered = np.zeros(shape)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: sample indices restart at 0, pending cues, rests and filter state are dropped."""
        self._filter.reset()
        self.n_samples = 0
        self._pending: list[int] = []
        self._pending_rests: list[int] = []
        self._rests: list[RestStats] = []
        self._ready: list[tuple[int, np.ndarray, Verdict]] = []
        self._erd: dict[int, np.ndarray | None] = {}
        self.dropped_cues: list[int] = []
        self.dropped_rests: list[int] = []
        self.csds: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def session_rest(self) -> bool:
        """Whether epochs are relative to the pooled rest of the session (``baseline_mode``)."""
        return self.spec.baseline_mode == "session_rest"

    @property
    def n_rest_periods(self) -> int:
        """Good rest windows collected so far (session-rest baseline)."""
        return sum(window.ok for window in self._rests)

    def push(self, chunk_uv: np.ndarray) -> None:
        """Append samples (n_channels, n) in microvolts, NaN for lost samples."""
        chunk = check_chunk(self.spec, chunk_uv, "chunk_uv")
        piece = self.capacity - self._window
        for begin in range(0, chunk.shape[1], piece):
            part = chunk[:, begin:begin + piece]
            held, filtered = self._filter.process(part, filtered=self.spec.level != "raw")
            slots = (self.n_samples + np.arange(part.shape[1])) % self.capacity
            self._raw[:, slots] = part
            self._held[:, slots] = held
            if filtered is not None:
                self._filtered[:, slots] = filtered
            self.n_samples += part.shape[1]
            self._collect()

    def add_cue(self, sample_index: int) -> bool:
        """Register a cue at ``sample_index`` (stream sample count); False if it can no longer be served."""
        cue = int(sample_index)
        start = cue + self.spec.epoch_offset
        if start < 0 or start < self.n_samples - self.capacity:
            self.dropped_cues.append(cue)
            return False
        self._pending.append(cue)
        self._pending.sort()
        self._collect()
        return True

    def add_rest(self, sample_index: int) -> bool:
        """Register a rest period's onset (session-rest baseline; ignored, True, for a pre-cue baseline).

        Returns False when its rest window can no longer be read (it starts before the stream or has left
        the buffer).
        """
        if not self.session_rest:
            return True
        onset = int(sample_index)
        start = onset + self.spec.rest_offsets[0]
        if start < 0 or start < self.n_samples - self.capacity:
            self.dropped_rests.append(onset)
            return False
        if onset not in self._pending_rests and all(w.end != onset + self.spec.rest_offsets[1] for w in self._rests):
            self._pending_rests.append(onset)
            self._pending_rests.sort()
        self._collect()
        return True

    def pop_ready(self) -> list[tuple[int, np.ndarray, Verdict]]:
        """Return (and forget) the finished epochs as ``(cue_sample, input2d, verdict)``, oldest first."""
        ready, self._ready = self._ready, []
        return ready

    def pop_erd(self, cue_sample: int) -> np.ndarray | None:
        """The movement-period ERD (n_bands, n_channels, percent) of a finished epoch, once (None for level "raw")."""
        return self._erd.pop(int(cue_sample), None)

    def _window_at(self, start: int, length: int) -> list[np.ndarray | None]:
        slots = (start + np.arange(length)) % self.capacity
        arrays = (self._raw, self._held, self._filtered if self.spec.level != "raw" else None)
        return [None if a is None else np.ascontiguousarray(a[:, slots]) for a in arrays]

    def _collect(self) -> None:
        (rest_start, rest_stop), rest_length = self.spec.rest_offsets, self.spec.rest_samples
        while self._pending_rests and self._pending_rests[0] + rest_stop <= self.n_samples:
            onset = self._pending_rests.pop(0)
            window = rest_statistics(self.spec, onset + rest_stop, *self._window_at(onset + rest_start, rest_length))
            self._rests.append(window)
            self._rests.sort(key=lambda w: w.end)
        offset, length = self.spec.epoch_offset, self.spec.epoch_samples
        while self._pending and self._pending[0] + offset + length <= self.n_samples:
            cue = self._pending.pop(0)
            raw, held, filtered = self._window_at(cue + offset, length)
            rest = pooled_rest(self._rests, cue + offset + length) if self.session_rest else None
            level, verdict, spectra = epoch_input(self.spec, raw, held, filtered, rest)
            if spectra is not None:
                self.csds[cue] = spectra
            self._ready.append((cue, level, verdict))
            if filtered is not None:
                self._erd[cue] = None if self.session_rest and rest is None else movement_erd(self.spec, filtered, rest)
