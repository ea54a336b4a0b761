"""The signal path from microvolts to the CNN's input: specification, offline epochs, online ring buffer.

Both paths run the same code on the same stream, so they give identical inputs:

1. lost samples (NaN/inf) are replaced by the channel's last valid sample (0 before the first one);
2. the fixed-point filter (``edge.fixedpoint``) runs continuously over the whole stream, each channel
   warm-started at its first valid sample so a Cyton's DC offset causes no start-up transient;
3. each cue's epoch ``[cue + tmin, cue + tmax)`` is cut from the raw, held and filtered streams;
4. ``edge.levels.level_input`` turns it into the level's 2-D input, ``edge.quality.assess_window`` judges it.

Offline, :func:`compute_epochs` filters a whole recording once and then slices. Online,
:class:`OnlinePipeline` is fed chunk by chunk, keeps the recent samples in a ring buffer and hands out an
epoch as soon as its last sample has arrived, whether its cue came before or after that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.fixedpoint import BiquadCascade, FixedPointFilter
from edge.levels import LEVELS, level_input, movement_erd
from edge.quality import QualityThresholds, Verdict, assess_window


@dataclass(frozen=True)
class PipelineSpec:
    """Everything that defines a model's input, shared by training, conversion and the device.

    Attributes
    ----------
    sfreq : float
        Sampling rate (Hz).
    channels : tuple of str
        Channel names in model order (rows of the input).
    level : {"raw", "filtered", "clean", "erd", "psd"}
        Input level (see ``edge.levels``).
    filter : FixedPointFilter
        The device filter (``convert.filter_design.default_filter`` unless configured otherwise).
    tmin, tmax : float
        Epoch around the cue (s); default -2 ... +4.
    baseline : tuple of float
        Pre-cue baseline (s) for baseline correction and ERD; default (-2, -0.5).
    decim : int
        Keep every ``decim``-th sample in the time-domain levels (default 2: 125 Hz columns at 250 Hz).
    reference : str
        Re-reference for levels clean/erd/psd: "average", "none" or a channel name.
    bands : tuple of (float, float)
        ERD bands (Hz), default mu 8-13 and beta 13-30.
    erd_window, erd_step : float
        ERD frame length and step (s).
    psd_tmin, psd_tmax : float
        Part of the epoch the PSD is computed over (s), default the movement period 0 ... 4.
    psd_nperseg, psd_noverlap : int
        Welch segment and overlap (samples); default 1 s and half of it.
    psd_fmin, psd_fmax : float
        PSD frequency rows kept (Hz).
    quality : QualityThresholds
        Limits for the per-epoch verdict.
    """

    sfreq: float
    channels: tuple[str, ...]
    level: str
    filter: FixedPointFilter
    tmin: float = -2.0
    tmax: float = 4.0
    baseline: tuple[float, float] = (-2.0, -0.5)
    decim: int = 2
    reference: str = "average"
    bands: tuple[tuple[float, float], ...] = ((8.0, 13.0), (13.0, 30.0))
    erd_window: float = 0.5
    erd_step: float = 0.25
    psd_tmin: float = 0.0
    psd_tmax: float = 4.0
    psd_nperseg: int | None = None
    psd_noverlap: int | None = None
    psd_fmin: float = 6.0
    psd_fmax: float = 35.0
    quality: QualityThresholds = field(default_factory=QualityThresholds)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sfreq", float(self.sfreq))
        set_(self, "channels", tuple(str(name) for name in self.channels))
        set_(self, "baseline", tuple(float(t) for t in self.baseline))
        set_(self, "bands", tuple((float(lo), float(hi)) for lo, hi in self.bands))
        if isinstance(self.filter, dict):
            set_(self, "filter", FixedPointFilter.from_dict(self.filter))
        if isinstance(self.quality, dict):
            set_(self, "quality", QualityThresholds.from_dict(self.quality))
        if self.psd_nperseg is None:
            set_(self, "psd_nperseg", int(round(self.sfreq)))
        if self.psd_noverlap is None:
            set_(self, "psd_noverlap", int(self.psd_nperseg) // 2)
        self._validate()

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise HotspotError(f"pipeline: {message}", ErrorCode.BAD_CONFIG)

        if not self.sfreq > 0:
            fail(f"sfreq must be positive, got {self.sfreq}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            fail("channels must be a non-empty list of distinct names")
        if self.level not in LEVELS:
            fail(f"level {self.level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(self.filter, FixedPointFilter):
            fail("filter must be a FixedPointFilter")
        if not self.tmin <= 0 < self.tmax or self.epoch_samples < 2:
            fail(f"epoch must satisfy tmin <= 0 < tmax, got {self.tmin}, {self.tmax}")
        if len(self.baseline) != 2 or not self.tmin <= self.baseline[0] < self.baseline[1] <= self.tmax:
            fail(f"baseline {self.baseline} must lie inside the epoch [{self.tmin}, {self.tmax}]")
        if self.baseline_slice.stop - self.baseline_slice.start < 1:
            fail("baseline must contain at least one sample")
        if self.decim < 1:
            fail(f"decim must be >= 1, got {self.decim}")
        if self.reference not in ("average", "none") and self.reference not in self.channels:
            fail(f"reference {self.reference!r} must be 'average', 'none' or one of the channels")
        nyquist = self.sfreq / 2
        if not self.bands or any(not 0 <= lo < hi <= nyquist for lo, hi in self.bands):
            fail(f"bands {self.bands} must be (low, high) pairs with 0 <= low < high <= {nyquist}")
        if self.erd_window_samples < 2 or self.erd_step_samples < 1:
            fail("erd_window and erd_step are too short for the sampling rate")
        if self.level == "erd" and not len(self.erd_baseline_frames):
            fail("no ERD frame fits inside the baseline; lengthen the baseline or shorten erd_window")
        if not self.tmin <= self.psd_tmin < self.psd_tmax <= self.tmax:
            fail(f"psd window [{self.psd_tmin}, {self.psd_tmax}] must lie inside the epoch")
        psd_len = self.psd_slice.stop - self.psd_slice.start
        if not 0 <= int(self.psd_noverlap) < int(self.psd_nperseg) <= psd_len:
            fail(f"need 0 <= psd_noverlap < psd_nperseg <= {psd_len} samples of the psd window")
        if not 0 <= self.psd_fmin <= self.psd_fmax <= nyquist:
            fail(f"psd_fmin/psd_fmax must satisfy 0 <= fmin <= fmax <= {nyquist}")

    # ----- samples --------------------------------------------------------------------------------------
    def _samples(self, seconds: float) -> int:
        return int(round(seconds * self.sfreq))

    @property
    def epoch_offset(self) -> int:
        """First epoch sample relative to the cue (negative)."""
        return self._samples(self.tmin)

    @property
    def epoch_samples(self) -> int:
        """Samples per epoch."""
        return self._samples(self.tmax) - self._samples(self.tmin)

    def _epoch_slice(self, start: float, stop: float) -> slice:
        return slice(self._samples(start) - self.epoch_offset, self._samples(stop) - self.epoch_offset)

    @property
    def baseline_slice(self) -> slice:
        """Baseline samples within the epoch."""
        return self._epoch_slice(*self.baseline)

    @property
    def psd_slice(self) -> slice:
        """PSD samples within the epoch."""
        return self._epoch_slice(self.psd_tmin, self.psd_tmax)

    @property
    def erd_window_samples(self) -> int:
        """ERD frame length (samples)."""
        return self._samples(self.erd_window)

    @property
    def erd_step_samples(self) -> int:
        """ERD frame step (samples)."""
        return self._samples(self.erd_step)

    @property
    def erd_frame_starts(self) -> np.ndarray:
        """First sample of every ERD frame within the epoch."""
        n_frames = (self.epoch_samples - self.erd_window_samples) // self.erd_step_samples + 1
        return np.arange(max(n_frames, 0)) * self.erd_step_samples

    @property
    def erd_baseline_frames(self) -> np.ndarray:
        """Indices of the ERD frames that lie entirely inside the baseline."""
        starts = self.erd_frame_starts
        inside = (starts >= self.baseline_slice.start) & (starts + self.erd_window_samples <= self.baseline_slice.stop)
        return np.flatnonzero(inside)

    @property
    def psd_freqs(self) -> np.ndarray:
        """Frequencies (Hz) of the PSD rows' columns."""
        freqs = np.fft.rfftfreq(int(self.psd_nperseg), 1.0 / self.sfreq)
        return freqs[(freqs >= self.psd_fmin) & (freqs <= self.psd_fmax)]

    @property
    def input_shape(self) -> tuple[int, int]:
        """(rows, cols) of one input."""
        n = len(self.channels)
        if self.level in ("raw", "filtered", "clean"):
            return n, -(-self.epoch_samples // self.decim)
        if self.level == "erd":
            return n * len(self.bands), len(self.erd_frame_starts)
        return n, len(self.psd_freqs)

    # ----- serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["channels"] = list(self.channels)
        data["baseline"] = list(self.baseline)
        data["bands"] = [list(band) for band in self.bands]
        data["filter"] = self.filter.to_dict()
        data["quality"] = self.quality.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineSpec":
        """Build from :meth:`to_dict` output, validating every field."""
        if not isinstance(data, dict):
            raise HotspotError("pipeline description must be a JSON object", ErrorCode.BAD_CONFIG)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        missing = {"sfreq", "channels", "level", "filter"} - set(data)
        if unknown or missing:
            raise HotspotError(f"pipeline description: unknown keys {sorted(unknown)}, missing keys "
                               f"{sorted(missing)}", ErrorCode.BAD_CONFIG)
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise HotspotError(f"pipeline description is malformed ({err})", ErrorCode.BAD_CONFIG) from None


class StreamFilter:
    """Holds lost samples and runs the fixed-point filter over a stream, chunk by chunk.

    Parameters
    ----------
    spec : FixedPointFilter
        The filter.
    n_channels : int
        Channels of the stream (rows of every chunk).
    """

    def __init__(self, spec: FixedPointFilter, n_channels: int) -> None:
        self.spec = spec
        self.cascade = BiquadCascade(spec, n_channels)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: zero the held values; each channel's first valid sample warm-starts it."""
        self._last = np.zeros(self.cascade.n_channels)
        self._started = np.zeros(self.cascade.n_channels, dtype=bool)
        self.cascade.reset()

    def hold(self, chunk_uv: np.ndarray) -> np.ndarray:
        """Replace non-finite samples by the channel's last finite one (carried across chunks)."""
        if chunk_uv.shape[1] == 0:
            return chunk_uv
        finite = np.isfinite(chunk_uv)
        if finite.all():
            self._last = chunk_uv[:, -1].copy()
            return chunk_uv
        padded = np.concatenate([self._last[:, None], np.where(finite, chunk_uv, 0.0)], axis=1)
        valid = np.concatenate([np.ones((len(padded), 1), dtype=bool), finite], axis=1)
        index = np.maximum.accumulate(np.where(valid, np.arange(padded.shape[1]), 0), axis=1)
        held = np.take_along_axis(padded, index, axis=1)[:, 1:]
        self._last = held[:, -1].copy()
        return held

    def process(self, chunk_uv: np.ndarray, filtered: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the held chunk and its filtered version (microvolts), advancing the state.

        A channel's filter is warm-started at its first finite sample; before that its input is 0 and
        its output stays exactly 0. The chunk is split at those samples, which changes nothing else
        (filtering is chunk-invariant), so the result does not depend on how the stream is chunked.

        Parameters
        ----------
        chunk_uv : ndarray, shape (n_channels, n)
            Raw microvolts, NaN for lost samples.
        filtered : bool
            Also run the filter (False for level "raw", which never needs it).
        """
        finite = np.isfinite(chunk_uv)
        held = self.hold(chunk_uv)
        if not filtered:
            return held, None
        fixed = self.spec.to_fixed(held)
        if self._started.all():
            return held, self.spec.to_uv(self.cascade.process(fixed))
        starting = ~self._started & finite.any(axis=1)
        first = np.where(starting, np.argmax(finite, axis=1), held.shape[1])
        outputs, position = [], 0
        for start in np.unique(first[starting]):
            outputs.append(self.cascade.process(fixed[:, position:start]))
            channels = np.flatnonzero(starting & (first == start))
            self.cascade.warm_start(fixed[channels, start], channels)
            self._started[channels] = True
            position = start
        outputs.append(self.cascade.process(fixed[:, position:]))
        return held, self.spec.to_uv(np.concatenate(outputs, axis=1))


def _check_chunk(spec: PipelineSpec, data: np.ndarray, what: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(spec.channels):
        raise HotspotError(f"{what} must be ({len(spec.channels)} channels in spec order, n samples), "
                           f"got shape {data.shape}", ErrorCode.BAD_SAMPLES)
    return data


def epoch_input(spec: PipelineSpec, raw: np.ndarray, held: np.ndarray,
                filtered: np.ndarray | None) -> tuple[np.ndarray, Verdict]:
    """Level input and quality verdict of one epoch.

    Parameters
    ----------
    spec : PipelineSpec
    raw : ndarray, shape (n_channels, spec.epoch_samples)
        Raw microvolts with NaN for lost samples (judged by the verdict).
    held : ndarray, same shape
        Raw microvolts with lost samples held (input of level "raw").
    filtered : ndarray or None, same shape
        The stream filter's output over the epoch (None for level "raw").

    Returns
    -------
    input2d : ndarray of float32, shape ``spec.input_shape``
    verdict : Verdict
    """
    checks_artifacts = spec.level in ("clean", "erd", "psd")
    verdict = assess_window(raw, spec.channels, spec.quality, filtered if checks_artifacts else None,
                            spec.filter.full_scale_uv if filtered is not None else None)
    return level_input(spec, held, filtered), verdict


@dataclass
class EpochInputs:
    """Inputs computed for the cues of one recording.

    Attributes
    ----------
    inputs : ndarray of float32, shape (n_epochs, rows, cols)
    verdicts : list of Verdict
        One per epoch; training keeps ``verdict.ok`` epochs, the device reports only those.
    cue_samples : ndarray of int64, shape (n_epochs,)
        The cues whose epoch lies inside the recording (others are skipped), in input order.
    """

    inputs: np.ndarray
    verdicts: list[Verdict]
    cue_samples: np.ndarray


def compute_epochs(spec: PipelineSpec, raw_uv: np.ndarray, cue_samples: Sequence[int]) -> EpochInputs:
    """Compute the inputs of every cue in a whole recording (filter once, then slice).

    Parameters
    ----------
    spec : PipelineSpec
        What to compute.
    raw_uv : ndarray, shape (len(spec.channels), n_samples)
        The recording in microvolts, channels in spec order, NaN for lost samples.
    cue_samples : sequence of int
        Sample index of each movement cue.

    Returns
    -------
    EpochInputs
        Cues whose epoch does not fit in the recording are skipped.
    """
    return compute_epochs_many(spec, [(raw_uv, cue_samples)])[0]


def compute_epochs_many(spec: PipelineSpec, recordings: Iterable[tuple[np.ndarray, Sequence[int]]],
                        batch_samples: int = 8_000_000) -> list[EpochInputs]:
    """:func:`compute_epochs` for many recordings, filtering several of them side by side.

    The fixed-point filter's cost is dominated by one step per sample, nearly independent of the number
    of channels, so recordings are stacked channel-wise (each keeps its own filter state; results are
    identical to one :func:`compute_epochs` call per recording) in batches of at most ``batch_samples``
    channel-samples.

    Parameters
    ----------
    spec : PipelineSpec
    recordings : iterable of (raw_uv, cue_samples)
        As for :func:`compute_epochs`; consumed lazily (a generator keeps only one batch in memory).
    batch_samples : int
        Memory bound: channel-samples filtered together.

    Returns
    -------
    list of EpochInputs
        One per recording, in order.
    """
    results: list[EpochInputs] = []
    batch: list[tuple[np.ndarray, Sequence[int]]] = []
    for i, (raw, cues) in enumerate(recordings):
        raw = _check_chunk(spec, raw, f"recording {i} raw_uv")
        longest = max([raw.shape[1]] + [item[0].shape[1] for item in batch])
        if batch and (len(batch) + 1) * len(spec.channels) * longest > batch_samples:
            results.extend(_batch_epochs(spec, batch))
            batch = []
        batch.append((raw, cues))
    if batch:
        results.extend(_batch_epochs(spec, batch))
    return results


#: Samples per block when filtering a stacked batch (bounds the cascade's working memory).
FILTER_BLOCK = 8192


def _batch_epochs(spec: PipelineSpec, batch: list[tuple[np.ndarray, Sequence[int]]]) -> list[EpochInputs]:
    n_channels = len(spec.channels)
    longest = max(raw.shape[1] for raw, _ in batch)
    stacked = np.full((n_channels * len(batch), longest), np.nan)  # padding after the end is held
    for i, (raw, _) in enumerate(batch):
        stacked[i * n_channels:(i + 1) * n_channels, :raw.shape[1]] = raw
    needs_filter = spec.level != "raw"
    stream = StreamFilter(spec.filter, len(stacked))
    held = np.empty_like(stacked)
    filtered = np.empty_like(stacked) if needs_filter else None
    for begin in range(0, longest, FILTER_BLOCK):
        block = slice(begin, begin + FILTER_BLOCK)
        held[:, block], out = stream.process(stacked[:, block], filtered=needs_filter)
        if needs_filter:
            filtered[:, block] = out
    results = []
    for i, (raw, cues) in enumerate(batch):
        rows = slice(i * n_channels, (i + 1) * n_channels)
        results.append(_slice_epochs(spec, raw, held[rows], None if filtered is None else filtered[rows], cues))
    return results


def _slice_epochs(spec: PipelineSpec, raw: np.ndarray, held: np.ndarray, filtered: np.ndarray | None,
                  cue_samples: Sequence[int]) -> EpochInputs:
    offset, length = spec.epoch_offset, spec.epoch_samples
    kept, inputs, verdicts = [], [], []
    for cue in np.asarray(cue_samples, dtype=np.int64).ravel():
        start = int(cue) + offset
        if start < 0 or start + length > raw.shape[1]:
            continue
        window = slice(start, start + length)
        cut = [None if a is None else np.ascontiguousarray(a[:, window]) for a in (raw, held, filtered)]
        level, verdict = epoch_input(spec, *cut)
        kept.append(int(cue))
        inputs.append(level)
        verdicts.append(verdict)
    shaped = np.stack(inputs) if inputs else np.zeros((0, *spec.input_shape), dtype=np.float32)
    return EpochInputs(inputs=shaped, verdicts=verdicts, cue_samples=np.asarray(kept, dtype=np.int64))


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
    """

    def __init__(self, spec: PipelineSpec, buffer_seconds: float = 30.0) -> None:
        self.spec = spec
        self.capacity = spec.epoch_samples + max(int(round(buffer_seconds * spec.sfreq)), 1)
        self._filter = StreamFilter(spec.filter, len(spec.channels))
        shape = (len(spec.channels), self.capacity)
        self._raw = np.zeros(shape)
        self._held = np.zeros(shape)
        self._filtered = np.zeros(shape)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: sample indices restart at 0, pending cues and filter state are dropped."""
        self._filter.reset()
        self.n_samples = 0
        self._pending: list[int] = []
        self._ready: list[tuple[int, np.ndarray, Verdict]] = []
        self._erd: dict[int, np.ndarray | None] = {}
        self.dropped_cues: list[int] = []

    def push(self, chunk_uv: np.ndarray) -> None:
        """Append samples (n_channels, n) in microvolts, NaN for lost samples."""
        chunk = _check_chunk(self.spec, chunk_uv, "chunk_uv")
        piece = self.capacity - self.spec.epoch_samples
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

    def pop_ready(self) -> list[tuple[int, np.ndarray, Verdict]]:
        """Return (and forget) the finished epochs as ``(cue_sample, input2d, verdict)``, oldest first."""
        ready, self._ready = self._ready, []
        return ready

    def pop_erd(self, cue_sample: int) -> np.ndarray | None:
        """The movement-period ERD (n_bands, n_channels, percent) of a finished epoch, once (None for level "raw")."""
        return self._erd.pop(int(cue_sample), None)

    def _collect(self) -> None:
        offset, length = self.spec.epoch_offset, self.spec.epoch_samples
        while self._pending and self._pending[0] + offset + length <= self.n_samples:
            cue = self._pending.pop(0)
            slots = (cue + offset + np.arange(length)) % self.capacity
            raw = np.ascontiguousarray(self._raw[:, slots])
            held = np.ascontiguousarray(self._held[:, slots])
            filtered = np.ascontiguousarray(self._filtered[:, slots]) if self.spec.level != "raw" else None
            level, verdict = epoch_input(self.spec, raw, held, filtered)
            self._ready.append((cue, level, verdict))
            if filtered is not None:
                self._erd[cue] = movement_erd(self.spec, filtered)
