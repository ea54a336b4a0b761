"""The time base: a board's 8-bit packet counter and the host clock turned into sample slots.

One implementation for live streams (:class:`edge.acquisition.Acquisition`) and recorded files
(:func:`edge.quality.count_lost_packets`), so both count loss the same way.

A packet takes a slot when the board can have sent it. Before any counting, a packet is

* **rejected** when the board cannot have sent it: a stop byte other than the one its board mode
  sends, a value beyond the ADC's range, a counter off the sequence (the packets before and after it
  continue the sequence without it: a fake packet framed out of line noise; also the packet after next
  when the values leap off the signal), or values
  outside what the board's front end can produce between its neighbours (most channels leaping by
  more than a tenth of full scale for one sample while the samples around it agree). Only a whole
  period lost after it could make a packet off the sequence real, so it is kept only when neither its
  values (leaping off the signal between the neighbours) nor the host clock rule that out. The clock
  judges causally, from the packets after the backlog too: a delivery stall on a loaded host delays the
  packets right after a fake as a lost period would, but not those after the backlog has drained. A
  packet after a gap that is decided with no packet after it (at a session's end, or when the link
  falls silent) is rejected when its values leap off the signal;
* **dropped as a duplicate** when it repeats the previous packet's counter and values (a radio
  retransmission); a duplicate is not loss.

Loss, per placed sample with counter ``p`` after counter ``q``: ``steps = ((p - q) mod 256) / step``
and ``steps - 1`` samples were lost. The host clock then checks the claim both ways, using
causality (a sample is never received before it was sampled): with ``lateness = t * fs - slot``
(host arrival time in sample periods minus the slot),

* a whole counter period is **added** to a gap when every sample after it arrived at least 3/4 of
  a period later than its count of slots allows (the counter cannot see whole periods) and the host
  received nothing for at least half a period before it (lost samples leave a silence; a reader that
  merely lags keeps receiving). A burst after a delivery delay satisfies the first test only for its
  first samples, so the decision waits for a quarter period of arrivals after the gap;
* claimed loss is **removed** when the samples after the gap (up to the next gap) arrived earlier
  than the lowest lateness of the last two periods allows by more than a tolerance
  (:data:`REALIGN_TOLERANCE_S`): a counter that restarted or jumped while streaming. The slot index is
  then re-aligned to the host clock (to no loss when the clock supports less than the tolerance),
  after a period of arrivals confirms it. A minimum over fewer than a quarter period of earlier
  samples is no reference (the stream start is: no sample arrives before it), the contradiction must
  exceed the spread of the reference window's bin lows too, and no reference is taken while the stream
  is not settled (a reader lagging or draining a backlog: the lowest lateness of each bin of the
  reference window spread over more than :data:`SETTLED_FRACTION` of a period).

A counter repeated right after its original with other values is, on the Cyton + Daisy (counter
step 2), a sample whose even half (channels 9-16) was lost: BrainFlow then repeats the previous
Daisy channels, so the slot is stale (lost). When the next sample follows the repeat by one step
instead of two, the board sent the odd packet before the even one: BrainFlow now pairs channels 1-8
of each sample with channels 9-16 of the sample before, which no count can repair, so the placement
stops there and reports the misorder (the acquisition restarts the stream). On the Cyton (step 1) a
repeated counter with other values is one packet too many and is rejected.

A session's first sample is placed from the stream start, since the boards restart the counter at
0 on ``b``; the samples a previous session did not deliver are sized from the host clock. (The board
starts when the command reaches it, so whole periods are added at a stream's start only beyond
:data:`START_LATENCY_S` of delay.)

:class:`RateCheck` measures the board's real sampling rate from the same lateness over a sliding
window of host time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

COUNTER_PERIOD = 256
REALIGN_TOLERANCE_SAMPLES = 0.5
REALIGN_TOLERANCE_S = 0.001
"""Arrivals may precede the lowest earlier lateness by half a sample plus this many host seconds before
claimed loss is removed (after real gaps the emulated board over BrainFlow's driver shows at most 0.36
samples, 0.2 ms, at 8x real time)."""
FLOOR_PERIODS = 2
"""Counter periods of earlier arrivals whose lowest lateness is the reference for removing loss."""
FLOOR_BINS_PER_PERIOD = 8
"""The reference lateness is kept per eighth of a counter period (the lowest arrival in each)."""
SETTLED_FRACTION = 0.25
"""Loss is removed only while the stream is settled: the bins' lowest lateness over the reference window
spreads by at most this share of a counter period (a reader falling behind or draining a backlog moves
it by far more, and would look like a counter jump); and the contradiction must exceed that spread."""
EXCURSION_FRACTION = 0.1
"""Share of the ADC full scale (18.75 mV at gain 24) by which most channels of a sample must leap away from
both neighbours, which agree, for the sample to count as line noise."""
EXCURSION_SPAN = 32
"""Neighbours at most this many samples away count (over longer gaps the signal may really have moved)."""
START_LATENCY_S = 0.2
"""Host seconds a stream may take to start after the start command before whole periods are added to it."""
RATE_TOLERANCE = 0.02
"""Largest accepted relative difference between a board's measured and declared sampling rate."""
RATE_WINDOW_S = 6.0
"""Board seconds of arrivals the sampling-rate check looks at (sliding)."""
RATE_MIN_S = 3.0
"""Board seconds of arrivals the sampling-rate check needs before it measures."""
RATE_BIN_S = 0.25
"""Board seconds per bin: the rate is fitted through each bin's lowest lateness."""
RATE_PAIR_BINS = 4
"""The slope is the median over pairs of bins this far apart (1 board second): a step in the lateness (an
outage sized from the clock, a counter jump) tilts only the few pairs that straddle it."""


@dataclass(frozen=True)
class Placement:
    """What :meth:`PacketCounter.place` decided about the samples it was given.

    Attributes
    ----------
    consumed : int
        Input samples decided; the rest wait for more evidence (pass them again with the next ones).
    placed : ndarray of int
        Input indices (below ``consumed``) of the samples that take a slot, in order.
    missing : ndarray of int
        Slots lost just before each placed sample.
    stale : ndarray of bool
        Placed samples whose slot holds data that is not theirs (a Daisy sample whose even half was
        lost): the slot counts as lost.
    duplicates : int
        Packets dropped as repeats of the previous one (not loss).
    rejected : int
        Packets the board cannot have sent (stop byte, value range, counter off the sequence).
    realigned : int
        Slots of claimed loss removed because the host clock contradicts them.
    misordered : bool
        The Daisy halves arrive out of order from input ``consumed`` on (see the module docstring).
    """

    consumed: int
    placed: np.ndarray
    missing: np.ndarray
    stale: np.ndarray
    duplicates: int = 0
    rejected: int = 0
    realigned: int = 0
    misordered: bool = False

    @property
    def slots(self) -> int:
        """Slots the placed samples take, lost ones included."""
        return int(self.missing.sum()) + int(self.placed.size)

    @property
    def offsets(self) -> np.ndarray:
        """The slot of each placed sample, counted from the first slot of this placement (lost ones before it)."""
        return np.cumsum(self.missing + 1) - 1


@dataclass
class _Sequence:
    """Where the counter is: what the next packet is compared with."""

    last_slot: int | None = None
    last_received: int | None = None
    last_values: bytes | None = None
    last_row: np.ndarray | None = None
    last_step: np.ndarray | None = None
    last_time: float | None = None
    session_start: float | None = None


@dataclass
class _Decision:
    index: int
    steps: int
    extra: int = 0
    stale: bool = False
    session_start: float | None = None


PLACED, STALE, DUPLICATE, REJECTED = 1, 2, 3, 4


class _LatenessWindow:
    """The lateness of the last ``span`` seconds of arrivals, kept as the lowest value of each short bin.

    Delivery delays raise single values, never a bin's lowest, so the lowest bin is the reference floor
    and the spread of the bins' lows shows a trend (a reader falling behind or catching up), not jitter.
    """

    def __init__(self, span: float, bin_s: float) -> None:
        self.span, self.bin_s = span, bin_s
        self._bins: deque[list] = deque()  # [bin number, lowest value, weight]

    def copy(self) -> "_LatenessWindow":
        twin = _LatenessWindow(self.span, self.bin_s)
        twin._bins = deque(list(item) for item in self._bins)
        return twin

    def clear(self) -> None:
        self._bins.clear()

    def add(self, when: float, value: float, weight: float = 1.0) -> None:
        number = math.floor(when / self.bin_s)
        if self._bins and self._bins[-1][0] == number:
            self._bins[-1][1] = min(self._bins[-1][1], value)
            self._bins[-1][2] += weight
            return
        self._bins.append([number, value, weight])
        oldest = number - math.ceil(self.span / self.bin_s) - 1
        while self._bins[0][0] < oldest:
            self._bins.popleft()

    def extremes(self, now: float, min_weight: float) -> tuple[float, float] | None:
        """(lowest, highest) bin low over the window ending ``now`` (None when it holds less than ``min_weight``)."""
        oldest = math.floor((now - self.span) / self.bin_s)
        while self._bins and self._bins[0][0] < oldest:
            self._bins.popleft()
        if not self._bins or sum(item[2] for item in self._bins) < min_weight:
            return None
        lows = [item[1] for item in self._bins]
        return min(lows), max(lows)


class PacketCounter:
    """Turn the boards' 8-bit packet counter into sample slots, counting lost samples.

    Parameters
    ----------
    step : int
        Counter increment per sample (1; 2 for the Cyton + Daisy, whose even and odd packets
        carry one sample).
    sampling_rate : float
        Samples per host second (the board's rate times the clock scale of an emulator).
    starts_at_zero : bool
        Whether the board restarts its counter at 0 when told to stream (the Cyton boards and the
        synthetic board do; a played-back file does not).
    period : int
        Counter period (256 for the 8-bit counter).
    full_scale_uv : float, optional
        The ADC's full scale (µV): with it, and the samples' values given to :meth:`place`, a packet whose
        values make a one-sample excursion no front end produces is rejected.

    Attributes
    ----------
    next_slot : int
        Slots placed so far (received and lost): the index the next sample's slot counts from.
    ambiguous_gaps : int
        Gaps to which whole counter periods were added from the host clock.
    """

    def __init__(self, step: int, sampling_rate: float, starts_at_zero: bool = True,
                 period: int = COUNTER_PERIOD, full_scale_uv: float | None = None) -> None:
        self.step = step
        self.sampling_rate = float(sampling_rate)
        self.starts_at_zero = starts_at_zero
        self.counter_period = period
        self.period = period // step
        self.ambiguous_gaps = 0
        self.next_slot = 0
        self._sequence = _Sequence()
        self._last_lateness: float | None = None
        self._last_arrival: float | None = None
        self._floor = _LatenessWindow(FLOOR_PERIODS * self.period / self.sampling_rate,
                                      self.period / FLOOR_BINS_PER_PERIOD / self.sampling_rate)
        self._settled_range = SETTLED_FRACTION * self.period
        self._tolerance = REALIGN_TOLERANCE_SAMPLES + REALIGN_TOLERANCE_S * self.sampling_rate
        self.excursion_uv = None if full_scale_uv is None else EXCURSION_FRACTION * full_scale_uv

    @property
    def evidence_s(self) -> float:
        """Host seconds of arrivals after a gap needed to add a whole period to it (a quarter period)."""
        return self.period / 4 / self.sampling_rate

    @property
    def realign_evidence_s(self) -> float:
        """Host seconds of arrivals after a gap needed to remove claimed loss from it (a period)."""
        return self.period / self.sampling_rate

    def new_session(self, start_time: float) -> None:
        """Start counting a new session whose stream was started at ``start_time`` (host seconds).

        The samples the previous sessions did not deliver are sized from the host clock (from the
        last received sample); a board whose counter restarts at 0 is placed from the session's start
        on, any other from its first sample's arrival.
        """
        sequence = self._sequence
        sequence.session_start = start_time
        sequence.last_received = sequence.last_values = None
        sequence.last_slot = (-self.step) % self.counter_period if self.starts_at_zero else None

    def place(self, counters: np.ndarray, times: np.ndarray | None = None, final: bool = True,
              values: np.ndarray | None = None, valid: np.ndarray | None = None) -> Placement:
        """Place received samples.

        Parameters
        ----------
        counters : ndarray, shape (n,)
            The package-number row.
        times : ndarray, shape (n,), optional
            Host arrival times (seconds). Without them only the counter is used (no whole periods,
            no re-alignment, a repeated counter is a duplicate).
        final : bool
            Decide every sample now (at the end of a session or a file). Otherwise samples whose
            decision needs later arrivals (a packet after it, or more host time after a gap) are
            left undecided (``consumed < n``) for the caller to pass again with the next ones.
        values : ndarray, shape (n_rows, n), optional
            The samples' values, to recognise a duplicate (same counter, same values).
        valid : ndarray of bool, shape (n,), optional
            False for packets the board cannot have sent (stop byte or value range); rejected.

        Returns
        -------
        Placement
        """
        counters = np.rint(np.asarray(counters, dtype=np.float64)).astype(np.int64) % self.counter_period
        n = counters.size
        clock = times is not None
        times = np.asarray(times, dtype=np.float64) if clock else np.zeros(n)
        rows = None if values is None else np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
        valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        decisions, kinds, consumed, misordered, states = self._screen(counters, times, clock, rows, valid, final)
        while True:
            missing, removed, added, uncertain = self._correct(decisions, times, clock, final)
            if uncertain is None:
                break
            # wait for more arrivals after this gap: undo the screening from that sample on
            consumed, misordered = decisions[uncertain].index, False
            decisions = decisions[:uncertain]
            self._sequence = states[consumed]
        self.next_slot += int(missing.sum()) + len(decisions)
        self.ambiguous_gaps += added
        decided = kinds[:consumed]
        return Placement(consumed=consumed, placed=np.array([d.index for d in decisions], dtype=np.int64),
                         missing=missing, stale=np.array([d.stale for d in decisions], dtype=bool),
                         duplicates=int(np.count_nonzero(decided == DUPLICATE)),
                         rejected=int(np.count_nonzero(decided == REJECTED)), realigned=removed,
                         misordered=misordered)

    # ------------------------------------------------------------------ screening (counter only)

    def _screen(self, counters, times, clock, rows, valid, final):
        """Decide per packet: rejected, duplicate, stale, misordered or placed with its counted steps.

        Returns (decisions, kind per input, inputs decided, misordered, sequence state before each input).
        """
        sequence = self._sequence
        decisions: list[_Decision] = []
        states: list[_Sequence] = []
        n = counters.size
        kinds = np.zeros(n, dtype=np.int8)
        next_valid = np.full(n + 1, n, dtype=np.int64)
        for k in range(n - 1, -1, -1):
            next_valid[k] = k if valid[k] else next_valid[k + 1]

        def stop(k: int, misordered: bool = False):
            return decisions, kinds, k, misordered, states + [replace(sequence)]

        # samples that leap away from both input neighbours: the only ones the excursion check can reject
        candidate = np.zeros(n, dtype=bool)
        if self.excursion_uv is not None and rows is not None and n:
            before = np.vstack([rows[:1] if sequence.last_row is None else sequence.last_row[None], rows[:-1]])
            after = np.vstack([rows[1:], rows[-1:]])
            leap = (np.abs(rows - before) > self.excursion_uv) & (np.abs(rows - after) > self.excursion_uv)
            candidate = 2 * leap.sum(axis=1) >= rows.shape[1]
            candidate[-1] = True  # its next neighbour is not known yet
        for k in range(n):
            states.append(replace(sequence))
            counter, now = int(counters[k]), float(times[k])
            value = None if rows is None else rows[k].tobytes()
            if not valid[k]:
                kinds[k] = REJECTED
                continue
            ahead = int(next_valid[k + 1])
            if sequence.last_received is not None and counter == sequence.last_received and (
                    not clock or (now - sequence.last_time) * self.sampling_rate < self.period / 2):
                if value is None or value == sequence.last_values:
                    kinds[k] = DUPLICATE  # a retransmission
                    continue
                if self.step == 1:
                    kinds[k] = REJECTED  # a second packet with this counter: one of them is not the board's
                    continue
                if ahead == n and not final:
                    return stop(k)
                if ahead < n and self._distance(counter, int(counters[ahead])) == 1:
                    return stop(k, misordered=True)
                sequence.last_slot = (sequence.last_slot + self.step) % self.counter_period
                decisions.append(_Decision(k, 1, stale=True))
                kinds[k] = STALE
                continue
            if sequence.last_slot is None:
                # a board whose counter says nothing about the start: size the outage from the clock
                extra = 0
                if clock and sequence.last_time is not None:
                    extra = max(0, int(round((now - sequence.last_time) * self.sampling_rate)) - 1)
                decision = _Decision(k, 1, extra=extra)
            else:
                steps = self._distance(sequence.last_slot, counter) or self.period
                if steps > 1:
                    if ahead == n and not final:
                        return stop(k)
                    # the next packet continuing the sequence without this one shows it is not the board's;
                    # so does the one after when this one's values also leap off the signal (line noise can
                    # frame two fake packets in a row; a restarted counter's samples continue the signal)
                    following = [ahead]
                    if self._leaps(sequence, None if rows is None else rows[k]):
                        following.append(int(next_valid[min(ahead + 1, n)]))
                    verdicts = [self._continues_without(sequence, steps, i, counters, times, next_valid, clock, final,
                                                        None if rows is None else rows[k],
                                                        None if rows is None else rows[i])
                                for i in following if i < n]
                    if True in verdicts:
                        kinds[k] = REJECTED
                        continue
                    if None in verdicts:
                        return stop(k)  # the host clock cannot tell yet: wait for the arrivals after the backlog
                    if not verdicts and self._leaps(sequence, None if rows is None else rows[k], steady=True):
                        # decided with no packet after it (the end of a session, or a wait cut short while the link
                        # is silent): nothing shows the jump is the board's, and its values leap off the signal
                        kinds[k] = REJECTED
                        continue
                if candidate[k] and sequence.last_row is not None:
                    if ahead == n and not final:
                        return stop(k)
                    if ahead < n and self._excursion(sequence.last_row, sequence.last_step, rows[k], rows[ahead], steps,
                                                     self._distance(counter, int(counters[ahead]))):
                        kinds[k] = REJECTED  # values no analogue front end produces between its neighbours
                        continue
                decision = _Decision(k, steps)
                if self.step == 1 and value is not None:
                    # a second packet with this counter and other values right after: one of the two is
                    # not the board's, and nothing tells which, so the slot is lost
                    if ahead == n and not final:
                        return stop(k)
                    decision.stale = ahead < n and int(counters[ahead]) == counter and rows[ahead].tobytes() != value
                if sequence.session_start is not None:
                    if clock and sequence.last_time is not None:
                        decision.extra = max(0, int(round((sequence.session_start - sequence.last_time)
                                                          * self.sampling_rate)) - 1)
                    decision.session_start = sequence.session_start
            decisions.append(decision)
            kinds[k] = STALE if decision.stale else PLACED
            sequence.last_slot = sequence.last_received = counter
            sequence.last_values, sequence.last_time, sequence.session_start = value, now, None
            if rows is not None:
                sequence.last_step = None if sequence.last_row is None else np.abs(rows[k] - sequence.last_row)
                sequence.last_row = rows[k]
        return stop(n)

    def _leaps(self, sequence: _Sequence, here: np.ndarray | None, steady: bool = False) -> bool:
        """Whether most channels of ``here`` lie more than the excursion limit from the last placed sample.

        With ``steady``, a channel's limit is also at least four times its last sample-to-sample change (as in
        :meth:`_excursion`: a large real oscillation, such as the lead-off drive of a contact check, never leaps).
        """
        if self.excursion_uv is None or here is None or sequence.last_row is None:
            return False
        limit = self.excursion_uv
        if steady and sequence.last_step is not None:
            limit = np.maximum(limit, 4.0 * sequence.last_step)
        away = np.abs(here - sequence.last_row) > limit
        return 2 * int(np.count_nonzero(away)) >= away.size

    def _excursion(self, before: np.ndarray, step: np.ndarray | None, here: np.ndarray, after: np.ndarray,
                   steps_before: int, steps_after: int) -> bool:
        """Whether most channels jump far away from both close neighbours, which agree with each other.

        The ADS1299's decimation filter spreads any input step over several samples and a real step stays;
        a one-sample excursion of most channels by more than :data:`EXCURSION_FRACTION` of full scale (and
        four times the channel's last sample-to-sample change, so that a large real oscillation such as the
        lead-off drive of a contact check never counts) is a packet made of line noise.
        """
        if max(steps_before, steps_after) > EXCURSION_SPAN:
            return False
        limit = self.excursion_uv if step is None else np.maximum(self.excursion_uv, 4.0 * step)
        away = (np.abs(here - before) > limit) & (np.abs(here - after) > limit) & (np.abs(after - before) < limit / 2)
        return 2 * int(np.count_nonzero(away)) >= away.size

    def _continues_without(self, sequence: _Sequence, steps: int, i: int, counters: np.ndarray, times: np.ndarray,
                           next_valid: np.ndarray, clock: bool, final: bool, here: np.ndarray | None = None,
                           there: np.ndarray | None = None) -> bool | None:
        """Whether packet ``i``, after a gap of ``steps``, follows the last slot sooner than it (so the gap is fake).

        Packet ``i`` must be nearer on the counter, and not a whole period later: only then could the packet
        in between (values ``here``) be the board's, as a lone sample amid a lost period. That is ruled out:

        * by the values, timing aside, when the skipped packet leaps off the signal between the last placed
          sample and packet ``i`` (values ``there``, at most :data:`EXCURSION_SPAN` samples on), which agree
          (:meth:`_excursion`);
        * by the host clock, causally: packet ``i`` was sampled no later than its own arrival, nor than the
          arrival of any valid packet after it less their counter distance, and must have been sampled
          less than half a period more than its counter distance after the last placed sample. A delivery
          stall (a loaded host, a backlog on the link) delays packet ``i`` and the ones right behind it
          alike, so that its own arrival can look a period late; the packets after the backlog has
          drained cannot.

        Returns
        -------
        bool or None
            None while neither rules the period out and later arrivals could (fewer than
            :attr:`evidence_s` host seconds of them after packet ``i``, and not ``final``): decide later.
        """
        counter = int(counters[i])
        nearer = self._distance(sequence.last_slot, counter) or self.period
        if steps >= self.period or nearer >= steps:
            return False
        if (here is not None and there is not None and self.excursion_uv is not None
                and sequence.last_row is not None and nearer <= EXCURSION_SPAN
                and self._excursion(sequence.last_row, sequence.last_step, here, there, nearer, nearer)):
            return True
        since = sequence.last_time if sequence.session_start is None else sequence.session_start - 1 / self.sampling_rate
        if not clock or since is None:
            return True
        n = counters.size
        limit = since + (nearer + self.period / 2) / self.sampling_rate
        sampled = float(times[i])  # the latest time packet i can have been sampled
        j = i
        while sampled >= limit:
            j = int(next_valid[j + 1])
            if j >= n:
                return False if final else None
            sampled = min(sampled, float(times[j]) - self._distance(counter, int(counters[j])) / self.sampling_rate)
            if sampled >= limit and times[j] - times[i] >= self.evidence_s:
                return False
        return True

    def _distance(self, counter_from: int, counter_to: int) -> int:
        """Samples from one counter value to the next one (modulo the period)."""
        return ((counter_to - counter_from) % self.counter_period) // self.step

    # ------------------------------------------------------------------ host-clock evidence

    def _correct(self, decisions: list[_Decision], times: np.ndarray, clock: bool,
                 final: bool) -> tuple[np.ndarray, int, int, int | None]:
        """Missing slots per placed sample after the host-clock checks.

        Returns (missing, slots removed, gaps given whole periods, position of the first gap that
        needs more arrivals or None). When every gap is decided, the recent lateness is kept for
        the next call.
        """
        missing = np.array([d.steps - 1 + d.extra for d in decisions], dtype=np.int64)
        if not clock or not decisions:
            return missing, 0, 0, None
        fs = self.sampling_rate
        arrival = times[[d.index for d in decisions]]
        slots = self.next_slot + np.cumsum(missing + 1) - 1
        lateness = arrival * fs - slots
        after = np.minimum.accumulate(lateness[::-1])[::-1]  # lowest lateness from each sample on
        # ... and up to the next claimed gap (a later counter jump must not count against this gap)
        gap_starts = np.flatnonzero(missing > 0)
        segment_ends = np.searchsorted(gap_starts, np.arange(len(decisions)), side="right")
        segment_ends = np.append(gap_starts, len(decisions))[segment_ends]
        floor = self._floor.copy()
        previous, previous_arrival = self._last_lateness, self._last_arrival
        shift = 0.0  # added to the lateness of the samples from the current one on
        removed = added = 0
        for j, decision in enumerate(decisions):
            if decision.session_start is not None:
                # a virtual sample just before counter 0, one sample period before the stream started
                virtual_slot = slots[j] - shift - decision.steps
                previous = (decision.session_start - 1.0 / fs) * fs - virtual_slot
                previous_arrival = decision.session_start
                floor.clear()
                floor.add(decision.session_start, previous, weight=self.period)  # exact: no delivery delay
            span = arrival[-1] - arrival[j]
            lowest = after[j] + shift
            # at a stream's start the board begins when the command reaches it, not when it was sent
            latency = START_LATENCY_S * fs if decision.session_start is not None else 0.0
            wraps = 0 if previous is None or decision.stale else max(0, math.floor(
                (lowest - previous - latency) / self.period + 0.25))
            # samples lost for a whole period leave the host without arrivals for about that long
            silence = 0.0 if previous_arrival is None else max(0.0, (arrival[j] - previous_arrival) * fs)
            wraps = min(wraps, int(silence // (self.period / 2)))
            if wraps:
                if span < self.evidence_s and not final:
                    return missing, removed, added, j
                if span >= self.evidence_s:
                    missing[j] += wraps * self.period
                    shift -= wraps * self.period
                    added += 1
            elif missing[j] > 0:
                window = floor.extremes(float(arrival[j]), min_weight=self.period / 4)
                segment = lateness[j:segment_ends[j]].min() + shift
                stable = window is not None and window[1] - window[0] <= self._settled_range
                deficit = window[0] - segment if stable else 0.0
                # the clock must contradict the counter by more than the window's own wobble
                if deficit > self._tolerance + (window[1] - window[0] if stable else 0.0):
                    # more arrivals help only while no later gap closes the segment
                    if segment_ends[j] == len(decisions) and span < self.realign_evidence_s and not final:
                        return missing, removed, added, j
                    claimed = int(missing[j])
                    supported = claimed - deficit  # (the samples of the segment move with this gap)
                    kept = 0 if supported < self._tolerance else min(claimed, int(round(supported)))
                    missing[j] = kept
                    shift += claimed - kept
                    removed += claimed - kept
            previous, previous_arrival = float(lateness[j] + shift), float(arrival[j])
            floor.add(previous_arrival, previous)
        self._floor = floor
        self._last_lateness, self._last_arrival = previous, previous_arrival
        return missing, removed, added, None


class RateCheck:
    """A board's real sampling rate, measured from host arrival times over a sliding window.

    The lateness ``t * fs - slot`` of promptly delivered samples stays level when the board samples
    at its declared rate ``fs``; it falls by ``rate - fs`` per second when the board is faster and
    rises when it is slower. Delivery delays only raise it, so the check takes the lowest lateness of
    each :data:`RATE_BIN_S` bin and the median slope between bins :data:`RATE_PAIR_BINS` apart, which
    neither a few delayed bins nor a step in the lateness can tilt.

    Parameters
    ----------
    declared_hz : float
        The board's declared sampling rate (Hz, board time).
    clock_scale : float
        Board seconds per host second (1 for a real board; an emulator's speed).

    Attributes
    ----------
    measured_hz : float or None
        The measured rate (Hz, board time); None until :data:`RATE_MIN_S` of arrivals are in.
    """

    def __init__(self, declared_hz: float, clock_scale: float = 1.0) -> None:
        self.declared_hz = float(declared_hz)
        self.clock_scale = float(clock_scale)
        self._bins: deque[tuple[float, float]] = deque()
        self._bin: int | None = None
        self.measured_hz: float | None = None

    def reset(self) -> None:
        """Forget the arrivals so far (a new session: the samples in between are not known)."""
        self._bins.clear()
        self._bin = None
        self.measured_hz = None

    def add(self, slots: np.ndarray, times: np.ndarray) -> None:
        """Add placed samples: their slots and host arrival times (seconds)."""
        host_fs = self.declared_hz * self.clock_scale
        bin_s = RATE_BIN_S / self.clock_scale
        for slot, when in zip(np.asarray(slots, dtype=np.float64), np.asarray(times, dtype=np.float64)):
            lateness = when * host_fs - slot
            number = int(when // bin_s)
            if number == self._bin:
                if lateness < self._bins[-1][1]:
                    self._bins[-1] = (when, lateness)
            else:
                self._bins.append((when, lateness))
                self._bin = number
        if not self._bins:
            return
        newest = self._bins[-1][0]
        while self._bins[0][0] < newest - RATE_WINDOW_S / self.clock_scale:
            self._bins.popleft()
        if newest - self._bins[0][0] < RATE_MIN_S / self.clock_scale:
            return
        points = np.array(self._bins)
        lag = max(1, min(RATE_PAIR_BINS, len(points) // 3))
        dt = points[lag:, 0] - points[:-lag, 0]
        keep = dt > 0
        slope = float(np.median((points[lag:, 1] - points[:-lag, 1])[keep] / dt[keep]))
        self.measured_hz = self.declared_hz - slope / self.clock_scale

    @property
    def off(self) -> bool:
        """Whether the measured rate differs from the declared one by more than :data:`RATE_TOLERANCE`."""
        return self.measured_hz is not None and abs(self.measured_hz / self.declared_hz - 1.0) > RATE_TOLERANCE
