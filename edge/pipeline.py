"""The signal path from microvolts to the CNN's input: its specification and the offline epochs.

Both paths run the same code on the same stream, so they give identical inputs:

1. lost samples (NaN/inf) are replaced by the channel's last valid sample (0 before the first one);
2. the fixed-point filter (``edge.fixedpoint``) runs continuously over the whole stream, each channel
   warm-started at its first valid sample so a Cyton's DC offset causes no start-up transient;
3. each cue's epoch ``[cue + tmin, cue + tmax)`` is cut from the raw, held and filtered streams;
4. ``edge.levels.level_input`` turns it into the level's 2-D input, ``edge.quality.assess_window`` judges it.

The baseline is the epoch's pre-cue window, or (``baseline_mode = "session_rest"``) the rest pooled over
the rest periods of the recording that ended before the epoch did (:mod:`edge.rest`); the rest onsets
are given beside the cues (offline) or announced like them (online, :meth:`edge.online.OnlinePipeline.add_rest`).

Offline, :func:`compute_epochs` filters a whole recording once and then slices. Online,
:class:`edge.online.OnlinePipeline` is fed chunk by chunk, keeps the recent samples in a ring buffer and
hands out an epoch as soon as its last sample has arrived, whether its cue came before or after that;
both cut epochs with :func:`epoch_input` from streams held and filtered by :class:`StreamFilter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.fixedpoint import BiquadCascade, FixedPointFilter
from edge.levels import LEVELS, level_input, rereference
from edge.quality import QualityThresholds, Verdict, assess_window
from edge.rest import BASELINE_MODES, NO_REST_REASON, RestStats, pooled_rest, rest_statistics
from edge.source import FILE_NAME as SOURCE_SPACE_FILE
from edge.source import SourceSpace, epoch_csds, source_image
from edge.validation import check_range, validate_type

MIN_SFREQ_HZ, MAX_SFREQ_HZ = 1.0, 16_000.0
"""Sampling rates a pipeline accepts (Hz): the ADS1299's fastest rate is 16 kHz."""

MAX_SPAN_S = 60.0
"""Largest magnitude of any time in a pipeline (s, relative to a cue or a rest onset): no epoch, window or
rest period of a hand-movement trial lasts a minute."""


@dataclass(frozen=True)
class PipelineSpec:
    """Everything that defines a model's input, shared by training, conversion and the device.

    Attributes
    ----------
    sfreq : float
        Sampling rate (Hz).
    channels : tuple of str
        Channel names in model order (rows of the input).
    level : {"raw", "filtered", "clean", "erd", "psd", "source"}
        Input level (see ``edge.levels`` and, for "source", ``edge.source``).
    filter : FixedPointFilter
        The device filter (``train.filter_design.default_filter`` unless configured otherwise).
    tmin, tmax : float
        Epoch around the cue (s); default -2 ... +4.
    baseline : tuple of float
        Pre-cue baseline (s) for baseline correction and ERD; default (-2, -0.5). Used when
        ``baseline_mode`` is "pre_cue".
    baseline_mode : {"pre_cue", "session_rest"}
        Where the baseline of every level that has one (raw/clean baseline correction, ERD, the source
        level's rest) comes from: the epoch's own ``baseline`` window (default; right where the schedule
        guarantees a clean rest before each cue, as the device's guided session does), or the rest pooled
        over the recording's rest periods (:mod:`edge.rest`).
    rest_window : tuple of float
        With "session_rest": the part of each rest period used (s after the rest onset), default
        0.5 ... 3.5.
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
    source_move : tuple of float
        Movement window of the source level (s after the cue), default 0.5 ... 3.5.
    source_rest : tuple of float or None
        Rest window of the source level (s); None = the baseline.
    source_reg : float
        DICS diagonal loading, relative to the mean eigenvalue of the common CSD (MNE's ``reg``).
    csd_nperseg : int or None
        CSD segment length (samples), half overlap; None = 1 s.
    source_space : SourceSpace or None
        Grid and leadfield of level "source" (required there, unused otherwise). ``to_dict`` records
        its file name and sha256; the arrays travel as their own file (``source_space.npz``).
    """

    sfreq: float
    channels: tuple[str, ...]
    level: str
    filter: FixedPointFilter
    tmin: float = -2.0
    tmax: float = 4.0
    baseline: tuple[float, float] = (-2.0, -0.5)
    baseline_mode: str = "pre_cue"
    rest_window: tuple[float, float] = (0.5, 3.5)
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
    source_move: tuple[float, float] = (0.5, 3.5)
    source_rest: tuple[float, float] | None = None
    source_reg: float = 0.05
    csd_nperseg: int | None = None
    source_space: SourceSpace | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sfreq", float(self.sfreq))
        set_(self, "channels", tuple(str(name) for name in self.channels))
        set_(self, "baseline", tuple(float(t) for t in self.baseline))
        set_(self, "rest_window", tuple(float(t) for t in self.rest_window))
        set_(self, "bands", tuple((float(lo), float(hi)) for lo, hi in self.bands))
        if isinstance(self.filter, dict):
            set_(self, "filter", FixedPointFilter.from_dict(self.filter))
        if isinstance(self.quality, dict):
            set_(self, "quality", QualityThresholds.from_dict(self.quality))
        if self.psd_nperseg is None:
            set_(self, "psd_nperseg", int(round(self.sfreq)))
        if self.psd_noverlap is None:
            set_(self, "psd_noverlap", int(self.psd_nperseg) // 2)
        set_(self, "source_move", tuple(float(t) for t in self.source_move))
        if self.source_rest is not None:
            set_(self, "source_rest", tuple(float(t) for t in self.source_rest))
        set_(self, "source_reg", float(self.source_reg))
        if self.csd_nperseg is None:
            set_(self, "csd_nperseg", int(round(self.sfreq)))
        self._validate()

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise HotspotError(f"pipeline: {message}", ErrorCode.BAD_CONFIG)

        # Bounds first: every later check turns seconds into samples, which a value such as 1e300 or inf
        # would make unallocatable (or an OverflowError) instead of a clear refusal.
        check_range(self.sfreq, MIN_SFREQ_HZ, MAX_SFREQ_HZ, "sfreq", "pipeline")
        for name in ("tmin", "tmax", "erd_window", "erd_step"):
            check_range(getattr(self, name), -MAX_SPAN_S, MAX_SPAN_S, name, "pipeline")
        for name in ("baseline", "rest_window", "source_move", "source_rest"):
            for seconds in getattr(self, name) or ():
                check_range(seconds, -MAX_SPAN_S, MAX_SPAN_S, name, "pipeline")
        for name in ("decim", "psd_nperseg", "psd_noverlap", "csd_nperseg"):
            validate_type(getattr(self, name), (int, np.integer), name, "pipeline", "an integer")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            fail("channels must be a non-empty list of distinct names")
        if self.level not in LEVELS:
            fail(f"level {self.level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(self.filter, FixedPointFilter):
            fail("filter must be a FixedPointFilter")
        if not self.tmin <= 0 < self.tmax or self.epoch_samples < 2:
            fail(f"epoch must satisfy tmin <= 0 < tmax, got {self.tmin}, {self.tmax}")
        if self.baseline_mode not in BASELINE_MODES:
            fail(f"baseline_mode {self.baseline_mode!r} is not one of {', '.join(BASELINE_MODES)}")
        session_rest = self.baseline_mode == "session_rest"
        if not session_rest:
            if len(self.baseline) != 2 or not self.tmin <= self.baseline[0] < self.baseline[1] <= self.tmax:
                fail(f"baseline {self.baseline} must lie inside the epoch [{self.tmin}, {self.tmax}]")
            if self.baseline_slice.stop - self.baseline_slice.start < 1:
                fail("baseline must contain at least one sample")
        if len(self.rest_window) != 2 or not 0.0 <= self.rest_window[0] < self.rest_window[1]:
            fail(f"rest_window {self.rest_window} must be (start, stop) seconds after a rest onset, 0 <= start < stop")
        if session_rest and self.source_rest is not None:
            fail("source_rest must be unset with baseline_mode 'session_rest' (the source level's rest is the pooled "
                 "rest)")
        if not 1 <= self.decim <= self.epoch_samples:
            fail(f"decim must be between 1 and the epoch's {self.epoch_samples} samples, got {self.decim}")
        if self.reference not in ("average", "none") and self.reference not in self.channels:
            fail(f"reference {self.reference!r} must be 'average', 'none' or one of the channels")
        nyquist = self.sfreq / 2
        if not self.bands or any(not 0 <= lo < hi <= nyquist for lo, hi in self.bands):
            fail(f"bands {self.bands} must be (low, high) pairs with 0 <= low < high <= {nyquist}")
        if self.erd_window_samples < 2 or self.erd_step_samples < 1:
            fail("erd_window and erd_step are too short for the sampling rate")
        if self.level == "erd" and not session_rest and not len(self.erd_baseline_frames):
            fail("no ERD frame fits inside the baseline; lengthen the baseline or shorten erd_window")
        if session_rest and self.level in ("erd", "source") and self.rest_samples < max(
                self.erd_window_samples, self.csd_samples if self.level == "source" else 0):
            fail(f"rest_window {self.rest_window} is shorter than an ERD frame or CSD segment")
        if not self.tmin <= self.psd_tmin < self.psd_tmax <= self.tmax:
            fail(f"psd window [{self.psd_tmin}, {self.psd_tmax}] must lie inside the epoch")
        psd_len = self.psd_slice.stop - self.psd_slice.start
        if not 0 <= int(self.psd_noverlap) < int(self.psd_nperseg) <= psd_len:
            fail(f"need 0 <= psd_noverlap < psd_nperseg <= {psd_len} samples of the psd window")
        if not 0 <= self.psd_fmin <= self.psd_fmax <= nyquist:
            fail(f"psd_fmin/psd_fmax must satisfy 0 <= fmin <= fmax <= {nyquist}")
        windows = [("source_move", self.source_move)] + ([] if session_rest else [("source_rest",
                                                                                     self.source_rest_window)])
        for name, window in windows:
            if len(window) != 2 or not self.tmin <= window[0] < window[1] <= self.tmax:
                fail(f"{name} {window} must lie inside the epoch [{self.tmin}, {self.tmax}]")
        shortest = self.source_move_slice.stop - self.source_move_slice.start
        if not session_rest:
            shortest = min(shortest, self.source_rest_slice.stop - self.source_rest_slice.start)
        if not 2 <= int(self.csd_nperseg) <= shortest:
            fail(f"csd_nperseg must be between 2 and the shorter source window ({shortest} samples)")
        if not 0.0 <= self.source_reg < 100.0:
            fail(f"source_reg must be in [0, 100), got {self.source_reg}")
        if self.level == "source":
            if not isinstance(self.source_space, SourceSpace):
                fail("level 'source' needs its source space (grid and leadfield); pass source_space=")
            elif self.source_space.channels != self.channels:
                fail(f"the source space is for channels {list(self.source_space.channels)}, not {list(self.channels)}")

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
    def rest_offsets(self) -> tuple[int, int]:
        """First and one-past-last sample of a rest window, relative to the rest onset."""
        return self._samples(self.rest_window[0]), self._samples(self.rest_window[1])

    @property
    def rest_samples(self) -> int:
        """Samples per rest window."""
        start, stop = self.rest_offsets
        return stop - start

    @property
    def psd_slice(self) -> slice:
        """PSD samples within the epoch."""
        return self._epoch_slice(self.psd_tmin, self.psd_tmax)

    @property
    def source_rest_window(self) -> tuple[float, float]:
        """Rest window of the source level (s): ``source_rest``, else the baseline."""
        return self.baseline if self.source_rest is None else self.source_rest

    @property
    def source_move_slice(self) -> slice:
        """Source-level movement samples within the epoch."""
        return self._epoch_slice(*self.source_move)

    @property
    def source_rest_slice(self) -> slice:
        """Source-level rest samples within the epoch."""
        return self._epoch_slice(*self.source_rest_window)

    @property
    def csd_samples(self) -> int:
        """CSD segment length (samples)."""
        return int(self.csd_nperseg)

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
        if self.level == "source":
            rows, cols = self.source_space.shape
            return 2 * rows * len(self.bands), cols
        return n, len(self.psd_freqs)

    # ----- serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["channels"] = list(self.channels)
        data["baseline"] = list(self.baseline)
        data["rest_window"] = list(self.rest_window)
        data["bands"] = [list(band) for band in self.bands]
        data["filter"] = self.filter.to_dict()
        data["quality"] = self.quality.to_dict()
        data["source_move"] = list(self.source_move)
        data["source_rest"] = None if self.source_rest is None else list(self.source_rest)
        data["source_space"] = (None if self.source_space is None
                                else {"file": SOURCE_SPACE_FILE, "sha256": self.source_space.sha256})
        return data

    @classmethod
    def from_dict(cls, data: dict, source_space: SourceSpace | None = None) -> "PipelineSpec":
        """Build from :meth:`to_dict` output, validating every field.

        Parameters
        ----------
        data : dict
        source_space : SourceSpace, optional
            The arrays of ``data["source_space"]`` (read from its file), checked against its sha256.
        """
        if not isinstance(data, dict):
            raise HotspotError("pipeline description must be a JSON object", ErrorCode.BAD_CONFIG)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        missing = {"sfreq", "channels", "level", "filter"} - set(data)
        if unknown or missing:
            raise HotspotError(f"pipeline description: unknown keys {sorted(unknown)}, missing keys "
                               f"{sorted(missing)}", ErrorCode.BAD_CONFIG)
        data = dict(data)
        reference = data.pop("source_space", None)
        if reference is not None:
            if not isinstance(reference, dict) or not isinstance(reference.get("sha256"), str):
                raise HotspotError("pipeline description: source_space must be {file, sha256}", ErrorCode.BAD_CONFIG)
            if source_space is None or source_space.sha256 != reference["sha256"]:
                raise HotspotError(f"the pipeline's {reference.get('file', SOURCE_SPACE_FILE)} is missing or is not "
                                   "the one it was built with (sha256 differs); rebuild the model",
                                   ErrorCode.BAD_CONFIG)
            data["source_space"] = source_space
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


def check_chunk(spec: PipelineSpec, data: np.ndarray, what: str) -> np.ndarray:
    """``data`` as float64 (n_channels, n) in spec order, or a one-line refusal naming ``what``."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(spec.channels):
        raise HotspotError(f"{what} must be ({len(spec.channels)} channels in spec order, n samples), "
                           f"got shape {data.shape}", ErrorCode.BAD_SAMPLES)
    return data


def epoch_input(spec: PipelineSpec, raw: np.ndarray, held: np.ndarray, filtered: np.ndarray | None,
                rest: RestStats | None = None) -> tuple[np.ndarray, Verdict, tuple[np.ndarray, np.ndarray] | None]:
    """Level input, quality verdict and (level "source") cross-spectra of one epoch.

    Parameters
    ----------
    spec : PipelineSpec
    raw : ndarray, shape (n_channels, spec.epoch_samples)
        Raw microvolts with NaN for lost samples (judged by the verdict).
    held : ndarray, same shape
        Raw microvolts with lost samples held (input of level "raw").
    filtered : ndarray or None, same shape
        The stream filter's output over the epoch (None for level "raw").
    rest : edge.rest.RestStats or None
        ``baseline_mode = "session_rest"``: the pooled rest of the rest windows that ended by the epoch's
        end (:func:`edge.rest.pooled_rest`). None there means no rest yet: the input is zeros and the
        verdict rejects the epoch.

    Returns
    -------
    input2d : ndarray of float32, shape ``spec.input_shape``
    verdict : Verdict
    csds : (move, rest) or None
        The epoch's movement and rest CSDs (``edge.source.epoch_csds``) for level "source", from
        which a session's image is computed (``edge.source.session_image``); None otherwise (and for
        an epoch without rest).
    """
    checks_artifacts = spec.level in ("clean", "erd", "psd", "source")
    verdict = assess_window(raw, spec.channels, spec.quality, filtered if checks_artifacts else None,
                            spec.filter.full_scale_uv if filtered is not None else None)
    if spec.baseline_mode == "session_rest" and rest is None:
        verdict = replace(verdict, ok=False, reasons=verdict.reasons + (NO_REST_REASON,))
        return np.zeros(spec.input_shape, dtype=np.float32), verdict, None
    if spec.level != "source":
        return level_input(spec, held, filtered, rest), verdict, None
    csds = epoch_csds(spec, rereference(filtered, spec.reference, spec.channels), rest)
    return source_image(spec, *csds), verdict, csds


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
    csds : list of (move, rest) or None
        Level "source" only: each epoch's movement and rest CSDs (see :func:`epoch_input`).
    """

    inputs: np.ndarray
    verdicts: list[Verdict]
    cue_samples: np.ndarray
    csds: list[tuple[np.ndarray, np.ndarray]] | None = None


def compute_epochs(spec: PipelineSpec, raw_uv: np.ndarray, cue_samples: Sequence[int],
                   rest_samples: Sequence[int] | None = None) -> EpochInputs:
    """Compute the inputs of every cue in a whole recording (filter once, then slice).

    Parameters
    ----------
    spec : PipelineSpec
        What to compute.
    raw_uv : ndarray, shape (len(spec.channels), n_samples)
        The recording in microvolts, channels in spec order, NaN for lost samples.
    cue_samples : sequence of int
        Sample index of each movement cue.
    rest_samples : sequence of int, optional
        Sample index of each rest onset; required when ``spec.baseline_mode`` is "session_rest"
        (unused otherwise). Rest windows that do not fit in the recording are skipped.

    Returns
    -------
    EpochInputs
        Cues whose epoch does not fit in the recording are skipped.
    """
    return compute_epochs_many(spec, [(raw_uv, cue_samples, rest_samples)])[0]


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
    recordings : iterable of (raw_uv, cue_samples) or (raw_uv, cue_samples, rest_samples)
        As for :func:`compute_epochs`; consumed lazily (a generator keeps only one batch in memory).
    batch_samples : int
        Memory bound: channel-samples filtered together.

    Returns
    -------
    list of EpochInputs
        One per recording, in order.
    """
    results: list[EpochInputs] = []
    batch: list[tuple[np.ndarray, Sequence[int], Sequence[int] | None]] = []
    for i, (raw, cues, *rests) in enumerate(recordings):
        raw = check_chunk(spec, raw, f"recording {i} raw_uv")
        rests = rests[0] if rests else None
        if spec.baseline_mode == "session_rest" and rests is None:
            raise HotspotError(f"recording {i}: the session-rest baseline needs the rest onsets (rest_samples)",
                               ErrorCode.NO_EVENTS)
        longest = max([raw.shape[1]] + [item[0].shape[1] for item in batch])
        if batch and (len(batch) + 1) * len(spec.channels) * longest > batch_samples:
            results.extend(_batch_epochs(spec, batch))
            batch = []
        batch.append((raw, cues, rests))
    if batch:
        results.extend(_batch_epochs(spec, batch))
    return results


#: Samples per block when filtering a stacked batch (bounds the cascade's working memory).
FILTER_BLOCK = 8192


def _batch_epochs(spec: PipelineSpec, batch: list[tuple[np.ndarray, Sequence[int], Sequence[int] | None]]
                  ) -> list[EpochInputs]:
    n_channels = len(spec.channels)
    longest = max(raw.shape[1] for raw, _, _ in batch)
    stacked = np.full((n_channels * len(batch), longest), np.nan)  # padding after the end is held
    for i, (raw, _, _) in enumerate(batch):
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
    for i, (raw, cues, rests) in enumerate(batch):
        rows = slice(i * n_channels, (i + 1) * n_channels)
        results.append(_slice_epochs(spec, raw, held[rows], None if filtered is None else filtered[rows], cues,
                                     rests))
    return results


def _cut(arrays: Sequence[np.ndarray | None], start: int, length: int) -> list[np.ndarray | None]:
    window = slice(start, start + length)
    return [None if a is None else np.ascontiguousarray(a[:, window]) for a in arrays]


def _slice_epochs(spec: PipelineSpec, raw: np.ndarray, held: np.ndarray, filtered: np.ndarray | None,
                  cue_samples: Sequence[int], rest_samples: Sequence[int] | None) -> EpochInputs:
    offset, length = spec.epoch_offset, spec.epoch_samples
    session_rest = spec.baseline_mode == "session_rest"
    rests = []
    if session_rest:
        (rest_start, rest_stop), rest_length = spec.rest_offsets, spec.rest_samples
        for onset in np.unique(np.asarray(rest_samples, dtype=np.int64).ravel()):
            start = int(onset) + rest_start
            if start >= 0 and int(onset) + rest_stop <= raw.shape[1]:
                rests.append(rest_statistics(spec, int(onset) + rest_stop,
                                             *_cut((raw, held, filtered), start, rest_length)))
    kept, inputs, verdicts, csds = [], [], [], []
    for cue in np.asarray(cue_samples, dtype=np.int64).ravel():
        start = int(cue) + offset
        if start < 0 or start + length > raw.shape[1]:
            continue
        rest = pooled_rest(rests, start + length) if session_rest else None
        level, verdict, spectra = epoch_input(spec, *_cut((raw, held, filtered), start, length), rest)
        kept.append(int(cue))
        inputs.append(level)
        verdicts.append(verdict)
        csds.append(spectra)
    shaped = np.stack(inputs) if inputs else np.zeros((0, *spec.input_shape), dtype=np.float32)
    return EpochInputs(inputs=shaped, verdicts=verdicts, cue_samples=np.asarray(kept, dtype=np.int64),
                       csds=csds if spec.level == "source" else None)
