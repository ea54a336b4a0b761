"""EEG acquisition through BrainFlow, with packet-loss accounting and a reconnecting watchdog.

A worker thread owns the BrainFlow session. It drains BrainFlow's buffer every ``poll_s``, turns
the packet counter into sample indices (an 8-bit counter that wraps at 256; the Daisy's advances
by 2 per sample), fills lost samples with NaN so that sample indices stay aligned with time, and
appends the selected channels to a ring buffer that :meth:`Acquisition.read` drains.

When no sample arrives for ``watchdog_s`` (or at once when the serial port's path disappears, as
when the dongle is pulled) the worker reports ``stalled``, releases the session and
prepares it again with a capped exponential backoff (``reconnecting``) until the board answers
(``recovered``). Neither BrainFlow nor the OpenBCI GUI reconnects a Cyton by itself. Samples that
did not arrive while the link was down are filled with NaN from the host clock, so a trial that
spans an outage is visibly incomplete.

Loss accounting, per received sample with counter ``p`` after counter ``q``:
``steps = ((p - q) mod 256) / step``, and ``steps - 1`` samples were lost, plus any whole counter
periods (256 / step samples) the counter alone cannot see. Those come from the host timestamps and
causality: a sample is never received before it was sampled, so a period is added to a gap when
every sample received after it arrived at least 3/4 of a period later than its count of slots
allows. A burst after a gap (a delivery delay) satisfies that only for its first samples, so the
decision waits until a quarter period of arrivals follows the gap (samples held back meanwhile);
at the end of a session, without that evidence, no period is added.
A counter repeated right after its original is a Daisy sample whose even half was lost: BrainFlow
then repeats the previous Daisy channels, so the sample is counted as lost and set to NaN. (When
the odd packet of one Daisy sample and the even packet of the next are both lost, BrainFlow pairs
the older Daisy half with the newer Cyton half under the older counter; no host can tell.)
A session's first sample is placed from the stream start, since the boards restart the counter
at 0 on ``b``.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError, BrainFlowInputParams, LogLevels

from edge.errors import ErrorCode, HotspotError

logger = logging.getLogger(__name__)

BOARD_IDS = {
    "cyton": BoardIds.CYTON_BOARD,
    "cyton_daisy": BoardIds.CYTON_DAISY_BOARD,
    "synthetic": BoardIds.SYNTHETIC_BOARD,
    "playback": BoardIds.PLAYBACK_FILE_BOARD,
}
COUNTER_PERIOD = 256


class Status(str, enum.Enum):
    """Acquisition link states reported to the runtime."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    RECOVERED = "recovered"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StatusChange:
    """One change of the link state.

    Attributes
    ----------
    status : Status
        The new state.
    time : float
        Wall-clock time (seconds since the epoch).
    detail : str
        What happened (e.g. BrainFlow's error name), for the log.
    """

    status: Status
    time: float
    detail: str = ""


@dataclass(frozen=True)
class Chunk:
    """Samples drained from the acquisition ring buffer.

    Attributes
    ----------
    data_uv : ndarray, shape (n_channels, n)
        Microvolts of the selected channels, NaN for lost samples.
    sample_index : ndarray of int64, shape (n,)
        Index of each sample since the start, aligned with time (increasing; a jump means the reader
        fell more than the ring buffer behind).
    lost : int
        Samples in this chunk that were lost (NaN).
    reconnected : bool
        Whether the session was re-prepared since the previous chunk.
    """

    data_uv: np.ndarray
    sample_index: np.ndarray
    lost: int
    reconnected: bool


@dataclass
class AcquisitionStats:
    """Counters since :meth:`Acquisition.start`.

    Attributes
    ----------
    samples : int
        Sample slots written (received + lost).
    lost : int
        Samples lost (NaN-filled), including outages.
    reconnects : int
        Successful re-preparations of the session.
    overflowed : int
        Samples dropped because the reader fell behind the ring buffer.
    ambiguous_gaps : int
        Gaps longer than one counter period, sized from host timestamps.
    """

    samples: int = 0
    lost: int = 0
    reconnects: int = 0
    overflowed: int = 0
    ambiguous_gaps: int = 0


class PacketCounter:
    """Turn the boards' 8-bit packet counter into sample slots, counting lost samples.

    Parameters
    ----------
    step : int
        Counter increment per sample (1; 2 for the Cyton + Daisy, whose even and odd packets
        carry one sample).
    sampling_rate : float
        Samples per second, to size gaps from host timestamps.
    starts_at_zero : bool
        Whether the board restarts its counter at 0 when told to stream (the Cyton boards and the
        synthetic board do; a played-back file does not).
    """

    def __init__(self, step: int, sampling_rate: float, starts_at_zero: bool = True) -> None:
        self.step = step
        self.sampling_rate = sampling_rate
        self.starts_at_zero = starts_at_zero
        self.period = COUNTER_PERIOD // step
        self.ambiguous_gaps = 0
        self._last_slot: int | None = None
        self._last_received: int | None = None
        self._last_time: float | None = None
        self._session_start: float | None = None

    @property
    def evidence_s(self) -> float:
        """Host seconds of arrivals after a gap needed to add a whole period to it (a quarter period)."""
        return self.period / 4 / self.sampling_rate

    def new_session(self, start_time: float) -> None:
        """Start counting a new session whose stream was started at ``start_time`` (host seconds).

        The samples the previous sessions did not deliver are sized from the host clock (from the
        last received sample); a board whose counter restarts at 0 is placed from the session's start
        on, any other from its first sample's arrival.
        """
        self._session_start = start_time
        self._last_received = None
        self._last_slot = (-self.step) % COUNTER_PERIOD if self.starts_at_zero else None

    def place(self, counters: np.ndarray, times: np.ndarray, final: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Place received samples.

        A whole lost period is decided from the samples that arrived after the gap. When they span
        less than a quarter period of host time (a burst), that evidence is weak: the samples from
        that gap on are left unplaced (the returned arrays are shorter) for the caller to pass again
        with the next samples, or, when ``final``, placed without the whole period.

        Parameters
        ----------
        counters : ndarray, shape (n,)
            The package-number row.
        times : ndarray, shape (n,)
            The host timestamps (seconds).
        final : bool
            Place every sample now (at the end of a session, or when no more samples came).

        Returns
        -------
        missing : ndarray of int, shape (n_placed,)
            Samples lost just before each placed sample.
        stale : ndarray of bool, shape (n_placed,)
            Samples whose data repeat an earlier sample's (a Daisy sample whose even half was lost).
        """
        state = (self._last_slot, self._last_received, self._last_time, self._session_start, self.ambiguous_gaps)
        missing, stale, wraps = self._place_all(counters, times)
        times = np.asarray(times, dtype=np.float64)
        uncertain = np.flatnonzero((wraps > 0) & (times[-1] - times < self.evidence_s)) if times.size else []
        if not len(uncertain):
            return missing, stale
        if final:
            # no more evidence will come: a delivery delay is likelier than a lost whole period
            missing[uncertain] -= wraps[uncertain] * self.period
            self.ambiguous_gaps -= len(uncertain)
            return missing, stale
        (self._last_slot, self._last_received, self._last_time, self._session_start,
         self.ambiguous_gaps) = state
        placed = int(uncertain[0])
        missing, stale, _ = self._place_all(counters[:placed], times[:placed])
        return missing, stale

    def _place_all(self, counters: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Place every sample; return (missing, stale, whole periods added per sample)."""
        counters = np.rint(np.asarray(counters)).astype(np.int64) % COUNTER_PERIOD
        times = np.asarray(times, dtype=np.float64)
        n = counters.size
        missing = np.zeros(n, dtype=np.int64)
        stale = np.zeros(n, dtype=bool)
        if n == 0:
            return missing, stale, np.zeros(0, dtype=np.int64)
        first = 0
        outage = 0
        reference_time = self._last_time
        if self._session_start is not None and self.starts_at_zero:
            # a virtual sample just before counter 0, one sample period before the stream started
            if self._last_time is not None:
                outage = max(0, int(round((self._session_start - self._last_time) * self.sampling_rate)) - 1)
            reference_time = self._session_start - 1.0 / self.sampling_rate
        self._session_start = None
        if self._last_slot is None:
            # a board whose counter says nothing about the start: size the outage from the clock
            if self._last_time is not None:
                missing[0] = max(0, int(round((times[0] - self._last_time) * self.sampling_rate)) - 1)
            self._last_slot = self._last_received = int(counters[0])
            self._last_time = float(times[0])
            first = 1
        # slots advanced by each sample, modulo whole counter periods
        steps = np.ones(n, dtype=np.int64)
        for k in range(first, n):
            counter = int(counters[k])
            elapsed = (times[k] - (times[k - 1] if k > 0 else reference_time)) * self.sampling_rate
            if counter == self._last_received and elapsed < self.period / 2:
                # a repeat right after its original: the slot after the last one holds stale data
                stale[k] = True
                self._last_slot = (self._last_slot + self.step) % COUNTER_PERIOD
                continue
            steps[k] = ((counter - self._last_slot) % COUNTER_PERIOD) // self.step or self.period
            self._last_slot = self._last_received = counter
        # whole periods: a sample is never received before it was sampled, so after a gap every later
        # sample must leave room for the slots assigned to it; a period is added to a gap when all the
        # samples after it arrived at least 3/4 of a period later than their count of slots implies
        lateness = times * self.sampling_rate - np.cumsum(steps)
        floor = np.minimum.accumulate(lateness[::-1])[::-1]
        before = np.concatenate([[(reference_time or 0.0) * self.sampling_rate], lateness[:-1]])
        wraps = np.maximum(0, np.floor((floor - before) / self.period + 0.25)).astype(np.int64)
        wraps[:first] = 0
        wraps[stale] = 0
        self.ambiguous_gaps += int(np.count_nonzero(wraps))
        missing[first:] = steps[first:] - 1 + wraps[first:] * self.period
        if first < n:
            missing[first] += outage
        self._last_time = float(times[-1])
        return missing, stale, wraps


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


class Acquisition:
    """Stream EEG from an OpenBCI board (or BrainFlow's synthetic or playback board).

    Parameters
    ----------
    board : {"cyton", "cyton_daisy", "synthetic", "playback"}
        Which BrainFlow board to use.
    serial_port : str, optional
        The dongle's port (Cyton boards), e.g. ``/dev/ttyUSB0`` or a stable udev symlink.
    file : str, optional
        The BrainFlow CSV file to play back (``playback``).
    master_board : {"cyton", "cyton_daisy", "synthetic"}
        The board the played-back file was recorded with.
    eeg_channels : sequence of int, optional
        Board channel numbers (1-based) to deliver, in this order (default: all EEG channels).
    watchdog_s : float
        Seconds without samples after which the session is released and prepared again.
    backoff_s : tuple of float
        First and largest wait between reconnection attempts (doubling in between).
    buffer_s : float
        Seconds of samples the ring buffer holds for the reader.
    poll_s : float
        How often the worker drains BrainFlow.
    loop : bool
        Play the file again from its start at its end (``playback`` only); otherwise the acquisition
        stops (status ``stopped``) ``watchdog_s`` after the file's last sample.
    clock_scale : float
        Board seconds per host second: 1 for a real board; ``speed`` for an emulator streaming
        faster than real time, so that gaps sized from the host clock stay aligned.
    on_status : callable, optional
        Called with each :class:`StatusChange`, from the worker thread; keep it short.
    """

    def __init__(self, board: str, serial_port: str | None = None, file: str | None = None,
                 master_board: str = "cyton", eeg_channels: Sequence[int] | None = None,
                 watchdog_s: float = 2.0, backoff_s: tuple[float, float] = (0.25, 1.0), buffer_s: float = 60.0,
                 poll_s: float = 0.02, loop: bool = True, clock_scale: float = 1.0,
                 on_status: Callable[[StatusChange], None] | None = None) -> None:
        if board not in BOARD_IDS:
            raise HotspotError(f"unknown board type {board!r}; use one of {', '.join(BOARD_IDS)}", ErrorCode.BAD_CONFIG)
        if board in ("cyton", "cyton_daisy") and not serial_port:
            raise HotspotError(f"board {board} needs a serial port (e.g. /dev/ttyUSB0)", ErrorCode.BAD_CONFIG)
        if board == "playback" and not file:
            raise HotspotError("board playback needs a file recorded by BrainFlow", ErrorCode.BAD_CONFIG)
        if board == "playback" and master_board not in ("cyton", "cyton_daisy", "synthetic"):
            raise HotspotError(f"playback master board must be cyton, cyton_daisy or synthetic, not {master_board!r}",
                               ErrorCode.BAD_CONFIG)
        if (watchdog_s <= 0 or backoff_s[0] <= 0 or backoff_s[1] < backoff_s[0] or buffer_s <= 0 or poll_s <= 0
                or clock_scale <= 0):
            raise HotspotError("watchdog_s, backoff_s, buffer_s, poll_s and clock_scale must be positive "
                               "(backoff first <= last)", ErrorCode.BAD_CONFIG)
        self.board = board
        self._board_id = BOARD_IDS[board]
        self._data_board_id = BOARD_IDS[master_board] if board == "playback" else self._board_id
        self._params = BrainFlowInputParams()
        if serial_port:
            self._params.serial_port = str(serial_port)
        if board == "playback":
            self._params.file = str(file)
            self._params.master_board = int(self._data_board_id)
        descr = BoardShim.get_board_descr(self._data_board_id)
        self.sampling_rate = float(descr["sampling_rate"])
        board_rows = list(descr["eeg_channels"])
        channels = list(eeg_channels) if eeg_channels is not None else list(range(1, len(board_rows) + 1))
        bad = [channel for channel in channels if not 1 <= int(channel) <= len(board_rows)]
        if bad or not channels:
            raise HotspotError(f"board channels {bad or channels} do not exist on {board}; use 1..{len(board_rows)}",
                               ErrorCode.BAD_CONFIG)
        self.eeg_channels = [int(channel) for channel in channels]
        self._rows = [board_rows[channel - 1] for channel in self.eeg_channels]
        self._counter_row = int(descr["package_num_channel"])
        self._time_row = int(descr["timestamp_channel"])
        self.clock_scale = float(clock_scale)
        self._tracker = PacketCounter(step=2 if self._data_board_id == BoardIds.CYTON_DAISY_BOARD else 1,
                                      sampling_rate=self.sampling_rate * clock_scale, starts_at_zero=board != "playback")
        self.watchdog_s = float(watchdog_s)
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.poll_s = float(poll_s)
        self.loop = loop
        self.on_status = on_status
        self.stats = AcquisitionStats()
        self._buffer = RingBuffer(len(self._rows), max(1, int(buffer_s * self.sampling_rate)))
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shim: BoardShim | None = None
        self._status = Status.STOPPED
        self._reconnected = False
        self._next_index = 0
        self._held: np.ndarray | None = None
        self._held_since = 0.0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()

    # ------------------------------------------------------------------ public API

    @property
    def status(self) -> Status:
        """The current link state."""
        return self._status

    @property
    def n_channels(self) -> int:
        """Number of channels each chunk carries."""
        return len(self._rows)

    def start(self, wait_s: float | None = 10.0) -> None:
        """Start the worker and wait until samples flow.

        Parameters
        ----------
        wait_s : float or None
            Seconds to wait for the first session; None returns at once and keeps trying.

        Raises
        ------
        HotspotError
            (BOARD_ERROR) when no session could be prepared within ``wait_s``.

        Notes
        -----
        Silences BrainFlow's logger: its errors while the board is away are expected, and the status
        changes say what happened.
        """
        if self._thread is not None:
            raise RuntimeError("acquisition already started")
        BoardShim.set_log_level(LogLevels.LEVEL_OFF.value)
        self._stop.clear()
        self._set_status(Status.CONNECTING, self._where())
        self._thread = threading.Thread(target=self._run, name="acquisition", daemon=True)
        self._thread.start()
        if wait_s is None:
            return
        deadline = time.monotonic() + wait_s
        while self._shim is None and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        if self._shim is None:
            detail = self._last_error
            self.stop()
            raise HotspotError(f"no {self.board} board answered at {self._where()} within {wait_s:g} s ({detail}); "
                               "check the dongle, the board's power switch and the port", ErrorCode.BOARD_ERROR)

    def read(self, timeout_s: float = 0.0) -> Chunk:
        """Drain the samples that arrived since the last call.

        Parameters
        ----------
        timeout_s : float
            Wait up to this long for at least one sample.

        Returns
        -------
        Chunk
            Possibly empty (shape ``(n_channels, 0)``).
        """
        with self._condition:
            if not len(self._buffer) and timeout_s > 0:
                self._condition.wait_for(lambda: len(self._buffer) > 0 or self._stop.is_set(), timeout=timeout_s)
            data, index, lost = self._buffer.pop_all()
            reconnected, self._reconnected = self._reconnected, False
        return Chunk(data_uv=data, sample_index=index, lost=int(lost.sum()), reconnected=reconnected)

    def config_board(self, command: str, timeout_s: float = 2.0) -> str:
        """Send a command string to the board while it streams (BrainFlow's ``config_board``).

        The worker thread, which owns the BrainFlow session, sends it between two reads. While
        streaming, BrainFlow writes the command without reading an answer, so the answer is usually
        empty.

        Parameters
        ----------
        command : str
            E.g. a channel setting ``x1060110X`` or a lead-off setting ``z101Z``.
        timeout_s : float
            How long to wait for the worker.

        Returns
        -------
        str
            BrainFlow's answer.

        Raises
        ------
        HotspotError
            ``BOARD_ERROR`` when no session is open (the board is away) or BrainFlow refuses the command.
        """
        if self._thread is None or self._shim is None:
            raise HotspotError(f"cannot send {command!r}: the {self.board} board is not connected", ErrorCode.BOARD_ERROR)
        done = threading.Event()
        outcome: dict = {}
        self._commands.put((command, outcome, done))
        if not done.wait(timeout_s):
            outcome["error"] = "the acquisition worker did not answer"  # and the worker will not send it
        if "error" in outcome:
            raise HotspotError(f"the {self.board} board did not take {command!r}: {outcome['error']}",
                               ErrorCode.BOARD_ERROR)
        return outcome.get("answer", "")

    def stop(self) -> None:
        """Stop streaming, release the board and end the worker."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._release()
        if self._status != Status.STOPPED:
            self._set_status(Status.STOPPED)

    def __enter__(self) -> Acquisition:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ worker

    _last_error = "not tried yet"
    _stream_started = 0.0

    def _where(self) -> str:
        return self._params.serial_port or self._params.file or self.board

    def _set_status(self, status: Status, detail: str = "") -> None:
        self._status = status
        change = StatusChange(status=status, time=time.time(), detail=detail)
        logger.info("acquisition %s %s", status.value, detail)
        if self.on_status is not None:
            try:
                self.on_status(change)
            except Exception:
                logger.exception("status callback failed for %s", status.value)

    def _connect(self) -> bool:
        shim = BoardShim(self._board_id, self._params)
        try:
            shim.prepare_session()
            if self.board == "playback":
                shim.config_board("loopback_true" if self.loop else "loopback_false")
            self._stream_started = time.time()  # BrainFlow stamps samples with the same clock
            shim.start_stream(max(1024, int(self.sampling_rate * 30)))
        except BrainFlowError as err:
            self._last_error = str(err)
            try:
                shim.release_session()
            except BrainFlowError:
                pass
            return False
        self._shim = shim
        return True

    def _release(self) -> None:
        shim, self._shim = self._shim, None
        if shim is None:
            return
        try:
            shim.release_session()
        except BrainFlowError as err:
            logger.info("release after failure: %s", err)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; return True when stopped."""
        return self._stop.wait(seconds)

    def _run(self) -> None:
        try:
            self._connect_and_stream()
        except Exception as err:  # a bug must not leave the runtime waiting on a silent board
            logger.exception("acquisition worker failed")
            self._set_status(Status.STOPPED, f"worker failed: {err!r}")

    def _connect_and_stream(self) -> None:
        backoff = self.backoff_s[0]
        first = True
        while not self._stop.is_set():
            if not self._connect():
                if self._wait(backoff):
                    break
                backoff = min(2 * backoff, self.backoff_s[1])
                continue
            backoff = self.backoff_s[0]
            if first:
                self._set_status(Status.CONNECTED, self._where())
                first = False
            else:
                self.stats.reconnects += 1
                with self._condition:
                    self._reconnected = True
                self._set_status(Status.RECOVERED, self._where())
            self._tracker.new_session(self._stream_started)
            reason = self._stream()
            if self._held is not None:
                self._ingest(np.zeros((self._held.shape[0], 0)), final=True)
            if self._stop.is_set():
                break
            if self.board == "playback" and not self.loop:
                self._release()
                self._set_status(Status.STOPPED, f"end of {self._params.file}")
                break
            self._set_status(Status.STALLED, reason)
            self._release()
            self._set_status(Status.RECONNECTING, self._where())

    def _stream(self) -> str:
        """Drain the session until it stalls or the acquisition stops; return why it ended."""
        last_data = time.monotonic()
        port = self._params.serial_port
        while not self._wait(self.poll_s):
            self._send_commands()
            try:
                data = self._shim.get_board_data()
            except BrainFlowError as err:
                self._last_error = str(err)
                return f"BrainFlow failed: {err}"
            now = time.monotonic()
            if data.shape[1]:
                last_data = now
                self._ingest(data)
            elif port and not os.path.exists(port):
                # the dongle was pulled: no need to wait for the watchdog
                return f"{port} disappeared"
            elif now - last_data > self.watchdog_s:
                return f"no samples for {self.watchdog_s:g} s"
        return "stopped"

    def _send_commands(self) -> None:
        """Send the commands :meth:`config_board` queued (worker thread, session open)."""
        while True:
            try:
                command, outcome, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if "error" in outcome:  # its caller gave up waiting
                continue
            try:
                outcome["answer"] = self._shim.config_board(command) or ""
            except BrainFlowError as err:
                outcome["error"] = str(err)
            done.set()

    # ------------------------------------------------------------------ loss accounting

    def _ingest(self, data: np.ndarray, final: bool = False) -> None:
        if self._held is not None:
            data = np.concatenate([self._held, data], axis=1)
            # a held-back burst is placed at the latest one poll after it could have been
            final = final or time.monotonic() - self._held_since > 2 * self._tracker.evidence_s + self.poll_s
        missing, stale = self._tracker.place(data[self._counter_row], data[self._time_row], final=final)
        placed = missing.size
        if placed < data.shape[1]:
            if self._held is None or placed:
                self._held_since = time.monotonic()
            self._held = data[:, placed:]
        else:
            self._held = None
        data = data[:, :placed]
        if not placed:
            return
        total = int(missing.sum()) + missing.size
        slots = np.cumsum(missing + 1) - 1
        # an outage longer than the ring buffer: only its end can be read, the index still advances
        skipped = max(0, total - self._buffer.capacity)
        keep = slots >= skipped
        block = np.full((len(self._rows), total - skipped), np.nan)
        fresh = keep & ~stale
        block[:, slots[fresh] - skipped] = data[self._rows][:, fresh]
        flags = np.ones(total - skipped, dtype=bool)
        flags[slots[fresh] - skipped] = False
        index = self._next_index + skipped + np.arange(total - skipped, dtype=np.int64)
        self._next_index += total
        self.stats.samples += total
        self.stats.lost += total - int(np.count_nonzero(~stale))
        with self._condition:
            self.stats.overflowed += self._buffer.push(block, index, flags)
            self.stats.ambiguous_gaps = self._tracker.ambiguous_gaps
            self._condition.notify_all()
