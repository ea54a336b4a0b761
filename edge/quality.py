"""Signal quality per channel and per window: railed, near-railed, flat, lost samples, artifacts.

Definitions follow the OpenBCI GUI so that clinicians' habits carry over:

* **railed percentage** = ``100 * max|x| / full_scale`` with ``full_scale = 4.5 V / gain / (2**23 - 1) * 2**23``
  (187 500 uV at gain 24), over the GUI's last 3 s. A window is checked as a whole, which is the same as
  applying the GUI's 3-s check everywhere inside it. **Railed** at >= 90 %, **near railed** at >= 75 %
  (the GUI's defaults; near railed is a warning, not a rejection).
* **flat**: peak-to-peak below ``flat_uv`` over the window ("data from the board doesn't change").
* **lost**: non-finite samples (the acquisition writes NaN for each sample lost on the radio link).
* **artifact** (levels "clean" and above): peak-to-peak of the *filtered* signal above ``artifact_ptp_uv``.
* **clipped**: a raw sample at or beyond the fixed-point filter's input full scale (only possible with q15,
  whose range is +-183 uV: it needs offset-free input).

:func:`count_lost_packets` counts losses in a recording from the Cyton's 8-bit sample counter with the
same time base as the live stream (:mod:`edge.timebase`): duplicates dropped, whole lost periods and counter
restarts judged from the timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edge.errors import ErrorCode, HotspotError
from edge.board import ADS1299_GAINS, DEFAULT_GAIN, ads1299_full_scale_uv
from edge.timebase import PacketCounter


@dataclass(frozen=True)
class QualityThresholds:
    """Limits for the per-window verdict (defaults: the OpenBCI GUI's).

    Attributes
    ----------
    railed_pct, near_railed_pct : float
        Share of the ADC full scale (percent) at which a channel is railed / near railed.
    flat_uv : float
        Peak-to-peak (uV) at or below which a channel counts as flat.
    max_lost_fraction : float
        Largest share of lost (non-finite) samples per channel a usable window may have.
    artifact_ptp_uv : float
        Peak-to-peak (uV) of the filtered signal above which a channel is an artifact. Default 250 uV
        over the 6 s epoch: clean channels of the real eegmmidb recordings (6-35 Hz, 6 s around the
        cue) reach 96 / 171 / 218 uV at the 50th / 90th / 99th percentile, so the 150 uV common for
        sub-second epochs would reject most real trials, while pops and movement artifacts exceed 250.
    adc_gain : int
        ADS1299 gain of the channels (sets the full scale).
    """

    railed_pct: float = 90.0
    near_railed_pct: float = 75.0
    flat_uv: float = 0.5
    max_lost_fraction: float = 0.02
    artifact_ptp_uv: float = 250.0
    adc_gain: int = DEFAULT_GAIN

    def __post_init__(self) -> None:
        if not 0 < self.near_railed_pct <= self.railed_pct <= 100:
            raise HotspotError("quality thresholds need 0 < near_railed_pct <= railed_pct <= 100",
                               ErrorCode.BAD_CONFIG)
        if self.flat_uv < 0 or not 0 <= self.max_lost_fraction <= 1 or self.artifact_ptp_uv <= 0:
            raise HotspotError("quality thresholds need flat_uv >= 0, 0 <= max_lost_fraction <= 1 and "
                               "artifact_ptp_uv > 0", ErrorCode.BAD_CONFIG)
        if self.adc_gain not in ADS1299_GAINS:
            raise HotspotError(f"adc_gain must be an ADS1299 gain ({', '.join(map(str, ADS1299_GAINS))}), got "
                               f"{self.adc_gain}", ErrorCode.BAD_CONFIG)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "QualityThresholds":
        """Build from :meth:`to_dict` output (missing keys take the defaults)."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise HotspotError(f"unknown quality setting(s) {', '.join(sorted(unknown))}", ErrorCode.BAD_CONFIG)
        try:
            return cls(**{key: type(getattr(cls(), key))(value) for key, value in data.items()})
        except (TypeError, ValueError) as err:
            raise HotspotError(f"quality settings must be numbers ({err})", ErrorCode.BAD_CONFIG) from None


@dataclass(frozen=True)
class Verdict:
    """Whether one window is usable, and why not.

    Attributes
    ----------
    ok : bool
        True when no channel is railed, flat, too lossy or (when checked) an artifact.
    reasons : tuple of str
        One line per problem, e.g. ``"C3 railed (96.1 % of full scale)"``; warnings (near railed) included.
    per_channel : dict of str to tuple of str
        Flags per channel name among "railed", "near_railed", "flat", "lost", "artifact", "clipped".
    railed_pct : dict of str to float
        Each channel's share of full scale (percent).
    lost_fraction : float
        Largest share of lost samples over the channels.
    rejected : tuple of str
        The channels that make the window unusable (``ok`` is False exactly when this is not empty).
    """

    ok: bool
    reasons: tuple[str, ...]
    per_channel: dict[str, tuple[str, ...]] = field(default_factory=dict)
    railed_pct: dict[str, float] = field(default_factory=dict)
    lost_fraction: float = 0.0
    rejected: tuple[str, ...] = ()

    def channel_states(self) -> dict[str, str]:
        """Each channel as a traffic light: ``"bad"`` (rejects the window), ``"warning"`` (flagged but
        usable: near railed, or a few lost samples) or ``"good"``.

        These are the rules of :func:`assess_window` itself, so a signal check shown to a user
        turns red exactly when the quality gate would reject the window.
        """
        return {name: "bad" if name in self.rejected else "warning" if flags else "good"
                for name, flags in self.per_channel.items()}

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return {"ok": self.ok, "reasons": list(self.reasons),
                "per_channel": {name: list(flags) for name, flags in self.per_channel.items()},
                "railed_pct": dict(self.railed_pct), "lost_fraction": self.lost_fraction,
                "rejected": list(self.rejected)}


def magnitude_max(raw_uv: np.ndarray) -> np.ndarray:
    """Largest finite ``|x|`` per channel (0 for a channel without finite samples)."""
    magnitude = np.where(np.isfinite(raw_uv), np.abs(raw_uv), 0.0)
    return magnitude.max(axis=1) if magnitude.shape[1] else np.zeros(magnitude.shape[0])


def railed_percentage(raw_uv: np.ndarray, adc_gain: int = DEFAULT_GAIN) -> np.ndarray:
    """OpenBCI GUI railed percentage per channel: ``100 * max|x| / full_scale`` over finite samples.

    Parameters
    ----------
    raw_uv : ndarray, shape (n_channels, n_samples)
        Unfiltered microvolts (pass the last 3 s for the GUI's live value).
    adc_gain : int
        ADS1299 gain.

    Returns
    -------
    ndarray, shape (n_channels,)
    """
    return 100.0 * magnitude_max(np.asarray(raw_uv, dtype=np.float64)) / ads1299_full_scale_uv(adc_gain)


def assess_window(raw_uv: np.ndarray, channels: Sequence[str], thresholds: QualityThresholds | None = None,
                  filtered_uv: np.ndarray | None = None, input_limit_uv: float | None = None) -> Verdict:
    """Judge one window of samples.

    Parameters
    ----------
    raw_uv : ndarray, shape (n_channels, n_samples)
        Unfiltered microvolts with NaN for lost samples.
    channels : sequence of str
        Channel names, in row order.
    thresholds : QualityThresholds, optional
        Limits (default: the GUI's).
    filtered_uv : ndarray, shape (n_channels, n_samples), optional
        The filtered window; when given, channels over ``artifact_ptp_uv`` peak-to-peak are artifacts.
    input_limit_uv : float, optional
        The filter's input full scale; channels reaching it are clipped.

    Returns
    -------
    Verdict
    """
    limits = thresholds or QualityThresholds()
    raw_uv = np.asarray(raw_uv, dtype=np.float64)
    if raw_uv.ndim != 2 or raw_uv.shape[0] != len(channels) or raw_uv.shape[1] == 0:
        raise HotspotError(f"a window must be ({len(channels)} channels, n > 0 samples), got {raw_uv.shape}",
                           ErrorCode.BAD_SAMPLES)
    finite = np.isfinite(raw_uv)
    lost = 1.0 - finite.mean(axis=1)
    railed = railed_percentage(raw_uv, limits.adc_gain)
    masked = np.where(finite, raw_uv, np.nan)
    with np.errstate(invalid="ignore"):
        ptp = np.where(finite.any(axis=1), np.nanmax(masked, axis=1, initial=-np.inf)
                       - np.nanmin(masked, axis=1, initial=np.inf), 0.0)
    artifact_ptp = np.ptp(filtered_uv, axis=1) if filtered_uv is not None else np.zeros(len(channels))
    clipped = (magnitude_max(raw_uv) >= input_limit_uv if input_limit_uv is not None
               else np.zeros(len(channels), dtype=bool))
    per_channel: dict[str, tuple[str, ...]] = {}
    reasons: list[str] = []
    rejected: list[str] = []
    for i, name in enumerate(channels):
        flags = []
        if railed[i] >= limits.railed_pct:
            flags.append("railed")
            reasons.append(f"{name} railed ({railed[i]:.1f} % of full scale)")
        elif railed[i] >= limits.near_railed_pct:
            flags.append("near_railed")
            reasons.append(f"{name} near railed ({railed[i]:.1f} % of full scale; warning)")
        if ptp[i] <= limits.flat_uv and finite[i].any():
            flags.append("flat")
            reasons.append(f"{name} flat ({ptp[i]:.2f} uV peak-to-peak)")
        if lost[i] > 0:
            flags.append("lost")
            if lost[i] > limits.max_lost_fraction:
                reasons.append(f"{name} lost {100 * lost[i]:.1f} % of samples (NaN/inf)")
        if artifact_ptp[i] > limits.artifact_ptp_uv:
            flags.append("artifact")
            reasons.append(f"{name} artifact ({artifact_ptp[i]:.0f} uV peak-to-peak after filtering)")
        if clipped[i]:
            flags.append("clipped")
            reasons.append(f"{name} clipped at the filter's input range (+-{input_limit_uv:.0f} uV)")
        if ("railed" in flags or "flat" in flags or "artifact" in flags or "clipped" in flags
                or lost[i] > limits.max_lost_fraction or not finite[i].any()):
            rejected.append(name)
        per_channel[name] = tuple(flags)
    return Verdict(ok=not rejected, reasons=tuple(reasons), per_channel=per_channel,
                   railed_pct={name: float(railed[i]) for i, name in enumerate(channels)},
                   lost_fraction=float(lost.max()), rejected=tuple(rejected))


@dataclass(frozen=True)
class PacketLoss:
    """Samples lost on the link, counted from the board's sample counter (:mod:`edge.timebase`).

    Attributes
    ----------
    received : int
        Samples received (duplicates and rejected packets not counted).
    lost : int
        Samples missing: counted from the counter, whole periods added and claimed loss removed by
        the timestamps when given, stale Daisy halves included.
    ambiguous : bool
        True when whole counter periods were added from the timestamps (gaps longer than a period).
    gaps : tuple of int
        Indices (into the given samples) of the received samples after which samples are missing.
    duplicates : int
        Samples dropped as repeats of the previous one (same counter, same values).
    rejected : int
        Samples the board cannot have sent (counter off the sequence).
    realigned : int
        Samples of loss the counter claimed but the timestamps contradict (a counter restart or jump).
    """

    received: int
    lost: int
    ambiguous: bool
    gaps: tuple[int, ...]
    duplicates: int = 0
    rejected: int = 0
    realigned: int = 0

    @property
    def lost_fraction(self) -> float:
        """``lost / (lost + received)``."""
        total = self.lost + self.received
        return self.lost / total if total else 0.0


def count_lost_packets(sample_counter: np.ndarray, timestamps_s: np.ndarray | None = None,
                       sfreq: float | None = None, period: int = 256, step: int = 1,
                       values: np.ndarray | None = None) -> PacketLoss:
    """Count lost samples in a recording, the way the device counts them live.

    The samples go through the same :class:`edge.timebase.PacketCounter` as a live stream
    (:mod:`edge.acquisition`); a file's counter may start anywhere.

    Parameters
    ----------
    sample_counter : array_like of int
        The counter of each received sample, in arrival order (Cyton: 0..255, step 1; Daisy: even ids,
        step 2).
    timestamps_s : array_like of float, optional
        Host timestamps (s) of the received samples; with ``sfreq`` they size gaps longer than one
        counter period and reveal counter restarts, which the counter alone cannot see.
    sfreq : float, optional
        Sampling rate (Hz), needed with ``timestamps_s``.
    period : int
        Counter period (256 for an 8-bit counter).
    step : int
        Counter increment per sample.
    values : array_like, shape (n_channels, n_samples), optional
        The samples, to tell a duplicate (same counter, same values) from other repeats.

    Returns
    -------
    PacketLoss
    """
    counter = np.asarray(sample_counter, dtype=np.float64)
    if counter.ndim != 1:
        raise HotspotError("sample_counter must be one-dimensional", ErrorCode.BAD_SAMPLES)
    times = None
    if timestamps_s is not None:
        if sfreq is None or not sfreq > 0:
            raise HotspotError("sfreq is needed to judge timestamp gaps", ErrorCode.BAD_ARGUMENT)
        times = np.asarray(timestamps_s, dtype=np.float64)
        if times.shape != counter.shape:
            raise HotspotError("timestamps_s must have one entry per sample", ErrorCode.BAD_SAMPLES)
    if values is not None and np.shape(values)[-1] != counter.size:
        raise HotspotError("values must have one column per sample", ErrorCode.BAD_SAMPLES)
    tracker = PacketCounter(step, sfreq or 1.0, starts_at_zero=False, period=period)
    tracker.new_session(float(times[0]) if times is not None and times.size else 0.0)
    placement = tracker.place(counter, times, final=True, values=values)
    missing = placement.missing + placement.stale
    previous = np.concatenate([[-1], placement.placed[:-1]])
    gaps = tuple(int(index) for index in previous[missing > 0] if index >= 0)
    return PacketLoss(received=int(placement.placed.size - placement.stale.sum()), lost=int(missing.sum()),
                      ambiguous=tracker.ambiguous_gaps > 0, gaps=gaps, duplicates=placement.duplicates,
                      rejected=placement.rejected, realigned=placement.realigned)
