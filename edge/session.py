"""The guided session: cue schedule, quality-gated trials, and the estimate with its 90 % radius.

Time is counted in samples from the session's first sample, so the cues, the epochs and the
patient's movements stay aligned however fast the samples arrive (a replay faster than real
time gives the same result). Every move cue opens one trial; the signal pipeline epochs it
and gives a quality verdict; a good trial gets a model prediction (a position and its per-axis
standard deviation, cap frame); a bad one gets its reasons.

When every trial is done, the session's prediction is made from its good trials as the bundle's
``aggregation`` says: level ``source`` runs the model once on the session image of the good
trials' mean cross-spectra (far less noisy than any trial), every other level takes the per-axis
median of the trial means and ``sqrt(median of the trial variances)`` (:func:`edge.estimate.aggregate_trials`).
:func:`edge.estimate.decide` then combines it with the population prior and either reports a
localised hotspot with its calibrated 90 % radius, or the prior with the prior's wide radius and
why the EEG could not localise (too weak a desynchronisation, no gain over the prior). With too
few good trials the result is a redo naming the channels and faults; it too carries the prior
and its radius and says it could not localise. The result's position is turned into a placement
on the cap (:func:`edge.placement.scalp_placement`: nearest cap electrode + tangential offset,
no depth).

A patient moving the left hand has the hotspot in the right hemisphere: for a mirrored model the
runtime feeds the mirrored electrodes in the model's (left-hemisphere) channel order, and the session
negates x of every prediction and of the estimate back; a bilateral model (``mirror = false``) is fed
and read as it is (:meth:`edge.contract.ModelContract.wearing`, the one rule).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.bundle import Bundle
from edge.config import SessionConfig
from edge.errors import ErrorCode, HotspotError
from edge.estimate import aggregate_trials, confidence_text, decide
from edge.online import OnlinePipeline
from edge.placement import Placement, scalp_placement
from edge.protocol import CueKind, MessageType
from edge.quality import Verdict
from edge.sessionlog import SessionLog
from edge.source import power_drop_peak, session_image, strongest_desynchronisation_db

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
        The model's hotspot for this trial (cap frame, mm, patient's hemisphere); None if bad.
    sd_mm : ndarray (3,) or None
        The model's per-axis standard deviation of that prediction (mm); None if bad.
    faults : list of (str, str)
        (channel as worn, fault) pairs of a bad trial; ("all", fault) for whole-window faults.
    """

    trial: int
    good: bool
    position_mm: np.ndarray | None
    sd_mm: np.ndarray | None = None
    faults: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SessionResult:
    """The end of a session: a localised hotspot, the prior, or a redo.

    Attributes
    ----------
    kind : str
        ``"hotspot"`` (the EEG localised it), ``"prior"`` (enough good trials, but the EEG could
        not localise: the usual position is reported with its wide radius) or ``"redo"`` (too few
        good trials or the session was cut short; also reports the usual position and its radius).
    n_trials, n_good, needed : int
        Trials run, trials that passed the signal check, good trials required.
    position_mm : ndarray (3,)
        The estimate, cap frame, mm, patient's hemisphere (the prior's mean unless localised).
    radius90_mm : float
        The true hotspot lies within this distance of ``position_mm`` with 90 % probability.
    localised : bool
        True only for ``"hotspot"``.
    consistency : float
        Share of good trials whose prediction lies within ``agreement_mm`` of the session's
        prediction (trial agreement, not accuracy); 0 without good trials.
    placement : edge.placement.Placement
        Where the electrode goes: nearest cap electrode and a tangential scalp offset (no depth).
    reasons : list of str
        Why the EEG could not localise, or why the session must be redone (empty when localised).
    faults : list of (str, str, int)
        (channel, fault, number of trials) over the bad trials.
    prediction_mm, prediction_sd_mm : ndarray (3,) or None
        The session's own EEG prediction and its sd before the prior combination (patient's
        hemisphere; None for a redo). Logged, not reported.
    erd_db : float or None
        Level source: the session map's strongest desynchronisation (dB below rest). Logged.
    """

    kind: str
    n_trials: int
    n_good: int
    needed: int
    position_mm: np.ndarray
    radius90_mm: float
    localised: bool
    consistency: float
    placement: Placement
    reasons: list[str]
    faults: list[tuple[str, str, int]]
    prediction_mm: np.ndarray | None = None
    prediction_sd_mm: np.ndarray | None = None
    erd_db: float | None = None

    @property
    def confidence_text(self) -> str:
        """The plain-language confidence derived from the radius (edge.estimate.confidence_text)."""
        return confidence_text(self.radius90_mm, self.localised)

    def to_dict(self) -> dict:
        """JSON-ready form (also what last_result.json holds, with runtime fields added)."""
        return {
            "kind": self.kind, "position_mm": [round(float(v), 3) for v in self.position_mm], "frame": "cap",
            "radius90_mm": round(float(self.radius90_mm), 2), "confidence_text": self.confidence_text,
            "consistency": round(float(self.consistency), 4), "placement": self.placement.to_dict(),
            "localised": bool(self.localised), "reasons": list(self.reasons),
            "quality": {"n_trials": self.n_trials, "n_good": self.n_good, "needed": self.needed,
                        "faults": [{"channel": c, "fault": f, "trials": n} for c, f, n in self.faults]},
        }

    def prediction_dict(self) -> dict:
        """The session's EEG prediction before the prior combination (for the session log)."""

        def listed(value):
            return None if value is None else [round(float(v), 3) for v in value]

        return {"mean_mm": listed(self.prediction_mm), "sd_mm": listed(self.prediction_sd_mm), "frame": "cap",
                "erd_db": None if self.erd_db is None else round(float(self.erd_db), 3)}


@dataclass(frozen=True)
class SessionPrediction:
    """A session's prediction from its good trials, before the prior combination (model frame).

    Attributes
    ----------
    mean_mm, sd_mm : ndarray, shape (3,)
        Position (cap frame, mm) and per-axis standard deviation (mm).
    erd_db : float or None
        Level source: the session map's strongest desynchronisation (dB below rest).
    peak_mm : ndarray (3,) or None
        Level source: the session map's power-drop peak (cap frame, mm).
    """

    mean_mm: np.ndarray
    sd_mm: np.ndarray
    erd_db: float | None = None
    peak_mm: np.ndarray | None = None


def session_prediction(predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], spec, aggregation: str,
                       means_mm: np.ndarray, sds_mm: np.ndarray,
                       spectra: list[tuple[np.ndarray, np.ndarray]] | None = None) -> SessionPrediction:
    """The session's prediction from its good trials, as the model's ``aggregation`` says.

    The device (with its TFLite bundle) and the host's evaluation (with the Keras model) both use this.

    Parameters
    ----------
    predict : callable
        ``predict(input2d) -> (mean_mm (3,), sd_mm (3,))`` for one raw input.
    spec : edge.pipeline.PipelineSpec
    aggregation : {"session_csd", "median_of_trials"}
    means_mm, sds_mm : ndarray, shape (n_good, 3)
        The good trials' predictions (model frame).
    spectra : list of (move, rest) CSDs, optional
        Level source: the good trials' cross-spectra; the model runs once on the session image of
        their mean (``edge.source.session_image``).
    """
    if aggregation == "session_csd":
        image = session_image(spec, [move for move, _ in spectra], [rest for _, rest in spectra])
        mean, sd = predict(image)
        return SessionPrediction(np.asarray(mean, dtype=float), np.asarray(sd, dtype=float),
                                 strongest_desynchronisation_db(spec, image), power_drop_peak(spec, image))
    mean, sd = aggregate_trials(means_mm, sds_mm)
    return SessionPrediction(mean, sd)


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
        self.wearing = bundle.contract.wearing(config.hand)
        self.worn_names = list(self.wearing.electrodes)
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
        self._spectra: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # level source: good trials' (move, rest) CSDs

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

    def _placement(self, point_mm: np.ndarray) -> Placement:
        """The cap instruction for a model-frame estimate, in the patient's hemisphere.

        It is found in the model's (left-hemisphere) frame against the bundle's electrodes, where
        the model's estimate was made, and mirrored by name when the session is mirrored: the
        same offsets from the mirrored electrode. (Mirroring the point instead and searching the
        template's right-hemisphere electrodes would add the fsaverage template's left-right
        asymmetry, several mm, to the instruction.)
        """
        placement = scalp_placement(point_mm, self.bundle.electrodes, self.bundle.head_centre_mm)
        return Placement(self.wearing.worn_name(placement.electrode), placement.anterior_mm, placement.lateral_mm)

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
                self._record(TrialOutcome(cue.trial, False, None, None, [("all", "no_data")]), cue.sample, [])
            self.emit(MessageType.CUE, kind=int(cue.kind), trial=cue.trial, n_trials=self.config.trials,
                      duration_ms=int(round(cue.duration_s * 1000)))

    def _score(self, cue_sample: int, input2d: np.ndarray, verdict: Verdict) -> None:
        trial = self._trial_of_cue.get(int(cue_sample))
        spectra = self.pipeline.csds.pop(int(cue_sample), None)
        if trial is None or trial in self.outcomes:
            return
        erd = self.pipeline.pop_erd(cue_sample)
        if verdict.ok:
            mean, sd = self.bundle.predict(input2d)
            if spectra is not None:
                self._spectra[trial] = spectra
            self._record(TrialOutcome(trial, True, self.wearing.to_patient(mean), sd), cue_sample, [], erd)
        else:
            faults = verdict_faults(verdict, list(self.bundle.spec.channels), self.worn_names)
            self.emit(MessageType.QUALITY, trial=trial, ok=0, faults=[(c, f, 1) for c, f in faults])
            self._record(TrialOutcome(trial, False, None, None, faults), cue_sample,
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
                            position_mm=shown, sd_mm=outcome.sd_mm if outcome.good else np.full(3, np.nan),
                            faults=[list(f) for f in outcome.faults], **extra)
        self.emit(MessageType.TRIAL_RESULT, trial=outcome.trial, good=int(outcome.good), position_mm=tuple(shown),
                  reasons=reasons)

    def stop(self, reason: str) -> SessionResult:
        """End the session early (host STOP command, or the board gone for good) with a redo."""
        if not self.done:
            self._finish([reason])
        return self.result

    def _finish(self, early_reasons: list[str]) -> None:
        config, bundle = self.config, self.bundle
        good = [o for o in sorted(self.outcomes.values(), key=lambda o: o.trial) if o.good]
        fault_counts = Counter(f for o in self.outcomes.values() for f in set(o.faults))
        faults = [(channel, fault, count) for (channel, fault), count in fault_counts.most_common()]
        redo = list(early_reasons)
        if len(good) < config.min_good_trials:
            redo.append(f"only {len(good)} of {config.trials} trials passed the signal check; "
                        f"{config.min_good_trials} needed")
            redo.extend(f"{channel} {fault} in {count} trial(s)" for channel, fault, count in faults[:5])
        prediction = None
        consistency = 0.0
        if good:
            trials = np.array([self.wearing.to_patient(o.position_mm) for o in good])  # back to the model frame
            prediction = session_prediction(bundle.predict, bundle.spec, bundle.aggregation, trials,
                                            np.array([o.sd_mm for o in good]),
                                            [self._spectra[o.trial] for o in good] if self._spectra else None)
            distances = np.linalg.norm(trials - prediction.mean_mm, axis=1)
            consistency = float(np.mean(distances <= config.agreement_mm))
            if not redo and consistency < config.min_consistency:
                redo.append(f"the good trials disagree: {consistency:.0%} within {config.agreement_mm:g} mm of "
                            f"the session's prediction, {config.min_consistency:.0%} needed")
        if redo or prediction is None:
            estimate = decide(bundle.prior, bundle.calibration, None, None, reasons=redo)
        else:
            estimate = decide(bundle.prior, bundle.calibration, prediction.mean_mm, prediction.sd_mm,
                              prediction.erd_db, peak_mm=prediction.peak_mm)
        kind = "redo" if redo else "hotspot" if estimate.localised else "prior"
        position = self.wearing.to_patient(estimate.point_mm)
        placement = self._placement(estimate.point_mm)
        result = SessionResult(kind, config.trials, len(good), config.min_good_trials, position,
                               estimate.radius90_mm, estimate.localised, consistency, placement, estimate.reasons,
                               faults, None if prediction is None else self.wearing.to_patient(prediction.mean_mm),
                               None if prediction is None else prediction.sd_mm,
                               None if prediction is None else prediction.erd_db)
        self.result = result
        if self.log is not None:
            self.log.append("result", result=result.to_dict(), prediction=result.prediction_dict())
        common = dict(radius_mm=result.radius90_mm, consistency=consistency, localised=int(result.localised),
                      electrode=placement.electrode, anterior_mm=placement.anterior_mm,
                      lateral_mm=placement.lateral_mm, n_trials=config.trials)
        if kind == "redo":
            self.emit(MessageType.REDO, n_good=len(good), needed=config.min_good_trials, reasons=result.reasons,
                      faults=faults, **common)
        else:
            self.emit(MessageType.HOTSPOT, position_mm=tuple(position), n_good=len(good), bundle_id=bundle.bundle_id,
                      reasons=result.reasons, **common)
