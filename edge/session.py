"""The guided session: cue schedule, quality-gated trials, and the aggregated hotspot.

Time is counted in samples from the session's first sample, so the cues, the epochs and the
patient's movements stay aligned however fast the samples arrive (a replay faster than real
time gives the same result). Every move cue opens one trial; the signal pipeline epochs it
and gives a quality verdict; a good trial gets a model prediction; a bad one gets its reasons.
When every trial is done, the hotspot is the per-axis median of the good trials' predictions,
reported only when enough trials were good and enough of them agree; otherwise the result is
a "redo" naming the channels and faults that spoiled the trials.

A patient moving the left hand has the hotspot in the right hemisphere: the runtime feeds the
mirrored electrodes in the model's (left-hemisphere) channel order, and the session negates x
of every prediction back (see :mod:`edge.montage`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.bundle import Bundle
from edge.config import SessionConfig
from edge.errors import ErrorCode, HotspotError
from edge.montage import mirror_channel_name, mirror_points, nearest_electrode
from edge.pipeline import OnlinePipeline
from edge.quality import Verdict
from edge.protocol import CueKind, MessageType
from edge.sessionlog import SessionLog

OUTAGE_S = 0.5
"""Stretches without any sample at least this long are written to the session log."""

EPOCH_GRACE_S = 2.0
"""How long after the DONE cue the session waits for epochs still being processed."""

Emit = Callable[..., None]
"""``emit(message_type, **fields)``: send one message over every report link."""


@dataclass(frozen=True)
class Cue:
    """One cue of the schedule.

    Attributes
    ----------
    sample : int
        When it happens, in samples from the session's first sample.
    kind : CueKind
    trial : int
        Zero-based trial index (``n_trials`` for the final DONE cue).
    duration_s : float
        How long the requested state lasts.
    """

    sample: int
    kind: CueKind
    trial: int
    duration_s: float


def cue_schedule(session: SessionConfig, sfreq: float) -> list[Cue]:
    """The session's cues: per trial rest, move and stop, then DONE.

    Parameters
    ----------
    session : SessionConfig
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    list of Cue
        In time order. Each duration is rounded to whole samples first and the cues are sums of
        those (the simulator's fixed schedule does the same, so both agree to the sample).
    """
    lead = round(session.lead_in_s * sfreq)
    rest, move, post = (round(seconds * sfreq) for seconds in (session.rest_s, session.move_s, session.post_s))
    cues = []
    for trial in range(session.trials):
        start = lead + trial * (rest + move + post)
        cues += [Cue(start, CueKind.REST, trial, session.rest_s),
                 Cue(start + rest, CueKind.MOVE, trial, session.move_s),
                 Cue(start + rest + move, CueKind.STOP, trial, session.post_s)]
    cues.append(Cue(lead + session.trials * (rest + move + post), CueKind.DONE, session.trials, 0.0))
    return cues


@dataclass
class TrialOutcome:
    """What became of one trial.

    Attributes
    ----------
    trial : int
    good : bool
        Passed the signal-quality check.
    position_mm : ndarray (3,) or None
        The model's hotspot for this trial (head frame, mm, patient's hemisphere); None if bad.
    faults : list of (str, str)
        (channel as worn, fault) pairs of a bad trial; ("all", fault) for whole-window faults.
    """

    trial: int
    good: bool
    position_mm: np.ndarray | None
    faults: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SessionResult:
    """The end of a session: a hotspot, or a redo with reasons.

    Attributes
    ----------
    kind : str
        ``"hotspot"`` or ``"redo"``.
    n_trials, n_good, needed : int
        Trials run, trials that passed the signal check, good trials required.
    position_mm : ndarray (3,) or None
        Hotspot, head frame, mm (patient's hemisphere) — set for ``"hotspot"``.
    electrode : str or None
        Nearest 10-05 electrode to the hotspot.
    offset_mm : ndarray (3,) or None
        Hotspot minus that electrode's position (head frame axes), mm.
    confidence : float
        Fraction of good trials whose prediction lies within ``agreement_mm`` of the hotspot.
    spread_mm : float
        Median distance of the good trials' predictions from the hotspot.
    reasons : list of str
        Why a redo is needed (empty for a hotspot).
    faults : list of (str, str, int)
        (channel, fault, number of trials) over the bad trials.
    """

    kind: str
    n_trials: int
    n_good: int
    needed: int
    position_mm: np.ndarray | None
    electrode: str | None
    offset_mm: np.ndarray | None
    confidence: float
    spread_mm: float
    reasons: list[str]
    faults: list[tuple[str, str, int]]

    def to_dict(self) -> dict:
        """JSON-ready form (also what last_result.json holds, with runtime fields added)."""

        def listed(value):
            return None if value is None else [round(float(v), 3) for v in value]

        return {
            "kind": self.kind, "position_head_mm": listed(self.position_mm), "frame": "head", "units": "mm",
            "nearest_electrode": self.electrode, "offset_mm": listed(self.offset_mm),
            "offset_distance_mm": None if self.offset_mm is None else round(float(np.linalg.norm(self.offset_mm)), 3),
            "confidence": round(self.confidence, 4), "spread_mm": round(self.spread_mm, 3),
            "quality": {"n_trials": self.n_trials, "n_good": self.n_good, "needed": self.needed,
                        "faults": [{"channel": c, "fault": f, "trials": n} for c, f, n in self.faults]},
            "reasons": list(self.reasons),
        }


WARNINGS = frozenset({"near_railed"})
"""Quality flags that do not spoil a trial on their own (the OpenBCI GUI's near-railed warning)."""


def verdict_faults(verdict: Verdict, model_channels: list[str], worn_names: list[str]) -> list[tuple[str, str]]:
    """(electrode as worn, fault) pairs of a failed quality verdict.

    Parameters
    ----------
    verdict : edge.quality.Verdict
        The pipeline's verdict; ``per_channel`` is keyed by model channel name.
    model_channels : list of str
        The model's channel names (left-hemisphere frame).
    worn_names : list of str
        The electrodes actually worn, in model channel order (mirrored for a right hemisphere).
    """
    worn = dict(zip(model_channels, worn_names))
    faults = [(worn.get(name, name), flag) for name, flags in verdict.per_channel.items()
              for flag in flags if flag not in WARNINGS]
    if not faults and not verdict.ok:
        faults = [("all", reason) for reason in verdict.reasons]
    return faults


class GuidedSession:
    """Run one guided session over a stream of samples.

    Parameters
    ----------
    config : SessionConfig
        Schedule and acceptance rules.
    bundle : edge.bundle.Bundle
        The verified model bundle (its ``spec`` drives the pipeline).
    emit : callable
        ``emit(message_type, **fields)`` for cues, per-trial quality and results.
    log : edge.sessionlog.SessionLog or None
        Where each trial and the result are recorded (durably) as they happen.

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` when the schedule cannot hold the bundle's epoch window.
    """

    def __init__(self, config: SessionConfig, bundle: Bundle, emit: Emit, log: SessionLog | None = None) -> None:
        self.config, self.bundle, self.emit, self.log = config, bundle, emit, log
        spec = bundle.spec
        self.sfreq = float(spec.sfreq)
        self.mirrored = config.hotspot_hemisphere == "right"
        self.worn_names = [mirror_channel_name(n) if self.mirrored else n for n in spec.channels]
        tmin, tmax = float(spec.tmin), float(spec.tmax)
        if -tmin > config.rest_s + 1e-9 or tmax > config.move_s + config.post_s + 1e-9:
            raise HotspotError(f"the bundle epochs {tmin:g}..{tmax:g} s around the move cue but [session] gives "
                               f"rest_s = {config.rest_s:g} before it and move_s + post_s = "
                               f"{config.move_s + config.post_s:g} after it; lengthen them", ErrorCode.BAD_CONFIG)
        if spec.baseline_mode == "session_rest" and spec.rest_window[1] > config.rest_s + 1e-9:
            raise HotspotError(f"the bundle pools rest {spec.rest_window[0]:g}..{spec.rest_window[1]:g} s after each "
                               f"REST cue but [session] rest_s is {config.rest_s:g}; lengthen it",
                               ErrorCode.BAD_CONFIG)
        self.cues = cue_schedule(config, self.sfreq)
        self._trial_of_cue = {c.sample: c.trial for c in self.cues if c.kind == CueKind.MOVE}
        self.pipeline = OnlinePipeline(spec)
        self.samples = 0
        self._next_cue = 0
        self.outcomes: dict[int, TrialOutcome] = {}
        self.result: SessionResult | None = None
        self._outage_start: int | None = None
        self._electrodes = self._electrode_table(bundle.electrodes)

    @property
    def done(self) -> bool:
        """True once the result is known."""
        return self.result is not None

    @property
    def current_trial(self) -> int:
        """The trial the schedule is in (``n_trials`` after the last one)."""
        passed = [c.trial for c in self.cues[:self._next_cue]]
        return passed[-1] if passed else 0

    @property
    def n_good(self) -> int:
        """Trials that passed the signal check so far."""
        return sum(outcome.good for outcome in self.outcomes.values())

    def _electrode_table(self, electrodes: dict) -> dict[str, np.ndarray]:
        table = {name: np.asarray(pos, dtype=float) for name, pos in electrodes.items()}
        for name, pos in list(table.items()):
            table.setdefault(mirror_channel_name(name), mirror_points(pos))
        return table

    def push(self, chunk_uv: np.ndarray) -> None:
        """Feed consecutive samples (model channel order, µV, NaN where lost).

        Cues are announced when the stream reaches them, trials are scored as soon as their
        epoch is complete, and the result is sent after the last trial.
        """
        if self.done:
            return
        chunk_uv = np.asarray(chunk_uv, dtype=np.float64)
        self._track_outages(chunk_uv)
        position, n = 0, chunk_uv.shape[1]
        while position < n:
            self._announce_due_cues()
            upcoming = self.cues[self._next_cue].sample if self._next_cue < len(self.cues) else None
            take = n - position if upcoming is None else min(n - position, upcoming - self.samples)
            self.pipeline.push(chunk_uv[:, position:position + take])
            self.samples += take
            position += take
        self._announce_due_cues()
        for cue_sample, input2d, verdict in self.pipeline.pop_ready():
            self._score(cue_sample, input2d, verdict)
        if self._next_cue == len(self.cues):
            if len(self.outcomes) == self.config.trials:
                self._finish([])
            elif self.samples >= self.cues[-1].sample + round(self.sfreq * EPOCH_GRACE_S):
                self._finish([f"{self.config.trials - len(self.outcomes)} trial(s) never completed their epoch"])

    def _track_outages(self, chunk_uv: np.ndarray) -> None:
        """Log every stretch of at least OUTAGE_S with no sample at all (link down, board reset)."""
        missing = ~np.isfinite(chunk_uv).any(axis=0)
        before = np.array([self._outage_start is not None])
        for index in np.flatnonzero(np.diff(np.concatenate([before, missing]).astype(np.int8))):
            if missing[index]:
                self._outage_start = self.samples + int(index)
            else:
                self._log_outage(self._outage_start, self.samples + int(index))

    def _log_outage(self, start: int, stop: int) -> None:
        self._outage_start = None
        if stop - start >= OUTAGE_S * self.sfreq and self.log is not None:
            self.log.append("outage", start_sample=start, samples=stop - start)

    def _announce_due_cues(self) -> None:
        while self._next_cue < len(self.cues) and self.cues[self._next_cue].sample <= self.samples:
            cue = self.cues[self._next_cue]
            self._next_cue += 1
            if cue.kind == CueKind.REST:
                self.pipeline.add_rest(cue.sample)  # the rest pool of a session-rest baseline (else ignored)
            if cue.kind == CueKind.MOVE and not self.pipeline.add_cue(cue.sample):
                self._record(TrialOutcome(cue.trial, False, None, [("all", "no_data")]), cue.sample, [])
            self.emit(MessageType.CUE, kind=int(cue.kind), trial=cue.trial, n_trials=self.config.trials,
                      duration_ms=int(round(cue.duration_s * 1000)))

    def _score(self, cue_sample: int, input2d: np.ndarray, verdict: Verdict) -> None:
        trial = self._trial_of_cue.get(int(cue_sample))
        if trial is None or trial in self.outcomes:
            return
        erd = self.pipeline.pop_erd(cue_sample)
        if verdict.ok:
            position = np.asarray(self.bundle.predict(input2d), dtype=float).reshape(3)
            if self.mirrored:
                position = mirror_points(position)
            self._record(TrialOutcome(trial, True, position), cue_sample, [], erd)
        else:
            faults = verdict_faults(verdict, list(self.bundle.spec.channels), self.worn_names)
            self.emit(MessageType.QUALITY, trial=trial, ok=0, faults=[(c, f, 1) for c, f in faults])
            self._record(TrialOutcome(trial, False, None, faults), cue_sample,
                         [f"{channel} {fault}" for channel, fault in faults])

    def _record(self, outcome: TrialOutcome, cue_sample: int, reasons: list[str],
                erd: np.ndarray | None = None) -> None:
        self.outcomes[outcome.trial] = outcome
        shown = outcome.position_mm if outcome.good else np.full(3, np.nan)
        if self.log is not None:
            # Durable before it is reported: whatever a host saw is in the log. A good trial also logs
            # its movement-period ERD per worn electrode (mu, beta; %) for the clinician's topography.
            extra = {} if erd is None else {"erd_pct": {name: [round(float(v), 1) for v in erd[:, i]]
                                                        for i, name in enumerate(self.worn_names)}}
            self.log.append("trial", trial=outcome.trial, cue_sample=int(cue_sample), good=outcome.good,
                            position_mm=shown, faults=[list(f) for f in outcome.faults], **extra)
        self.emit(MessageType.TRIAL_RESULT, trial=outcome.trial, good=int(outcome.good), position_mm=tuple(shown),
                  reasons=reasons)

    def stop(self, reason: str) -> SessionResult:
        """End the session early (host STOP command, or the board gone for good) with a redo."""
        if not self.done:
            self._finish([reason])
        return self.result

    def _finish(self, early_reasons: list[str]) -> None:
        config = self.config
        good = [o for o in sorted(self.outcomes.values(), key=lambda o: o.trial) if o.good]
        fault_counts = Counter(f for o in self.outcomes.values() for f in set(o.faults))
        faults = [(channel, fault, count) for (channel, fault), count in fault_counts.most_common()]
        reasons = list(early_reasons)
        position = electrode = offset = None
        confidence = spread = 0.0
        if len(good) < config.min_good_trials:
            reasons.append(f"only {len(good)} of {config.trials} trials passed the signal check; "
                           f"{config.min_good_trials} needed")
            reasons.extend(f"{channel} {fault} in {count} trial(s)" for channel, fault, count in faults[:5])
        if good:
            predictions = np.array([o.position_mm for o in good])
            median = np.median(predictions, axis=0)
            distances = np.linalg.norm(predictions - median, axis=1)
            confidence = float(np.mean(distances <= config.agreement_mm))
            spread = float(np.median(distances))
            if not reasons and confidence < config.min_confidence:
                reasons.append(f"the good trials disagree: {confidence:.0%} within {config.agreement_mm:g} mm of "
                               f"their median, {config.min_confidence:.0%} needed")
            if not reasons:
                position = median
                electrode, offset = nearest_electrode(median, self._electrodes)
        result = SessionResult("redo" if reasons else "hotspot", config.trials, len(good), config.min_good_trials,
                               position, electrode, offset, confidence, spread, reasons, faults)
        self.result = result
        if self.log is not None:
            self.log.append("result", result=result.to_dict())
        if result.kind == "hotspot":
            self.emit(MessageType.HOTSPOT, position_mm=tuple(position), electrode=electrode, offset_mm=tuple(offset),
                      confidence=confidence, spread_mm=spread, n_good=len(good), n_trials=config.trials,
                      bundle_id=self.bundle.bundle_id)
        else:
            self.emit(MessageType.REDO, n_good=len(good), needed=config.min_good_trials, n_trials=config.trials,
                      reasons=reasons, faults=faults)
