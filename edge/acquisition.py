"""EEG acquisition through BrainFlow, with packet-loss accounting and a reconnecting watchdog.

A worker thread owns the BrainFlow session. It drains BrainFlow's buffer every ``poll_s``, has the
packet counter place the samples (:class:`edge.timebase.PacketCounter`, the one loss semantics: an
8-bit counter that wraps at 256, the Daisy's advancing by 2 per sample), fills lost samples with NaN
so that sample indices stay aligned with time, and appends the selected channels to a ring buffer
(:class:`edge.ringbuffer.RingBuffer`) that :meth:`Acquisition.read` drains. The board's rows, rate and
link come from its one description (:func:`edge.board.load_board`).

When no sample arrives for ``watchdog_s`` (or at once when the serial port's path disappears, as
when the dongle is pulled) the worker reports ``stalled``, releases the session and
prepares it again with a capped exponential backoff (``reconnecting``) until the board answers
(``recovered``). Neither BrainFlow nor the OpenBCI GUI reconnects a Cyton by itself. Samples that
did not arrive while the link was down are filled with NaN from the host clock, so a trial that
spans an outage is visibly incomplete.

Each drained block goes through :class:`edge.timebase.PacketCounter` (the time base shared with
recorded files): packets the board cannot have sent (a stop byte other than 0xC0, a value beyond the
ADC range, a counter off the sequence) are rejected, duplicates dropped, losses counted from the
counter and checked against the host clock (whole lost periods added, a counter restart or jump
re-aligned to the host clock). When the Daisy's halves arrive out of order (channels 9-16 would lag
channels 1-8 by one sample), the session is restarted like a stalled one. :class:`edge.timebase.RateCheck`
measures the board's real sampling rate over a sliding window (:attr:`Acquisition.measured_hz`).
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
from brainflow.board_shim import BoardShim, BrainFlowError, BrainFlowInputParams, LogLevels

from edge.board import DEFAULT_GAIN, STOP_BYTE, ads1299_full_scale_uv, load_board
from edge.errors import ErrorCode, HotspotError
from edge.ringbuffer import RingBuffer
from edge.timebase import PacketCounter, Placement, RateCheck

logger = logging.getLogger(__name__)


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
    duplicates : int
        Packets dropped as repeats of the one before (not loss).
    rejected : int
        Packets the board cannot have sent (stop byte, value range, counter off the sequence).
    realigned : int
        Slots of loss the counter claimed but the host clock did not support (a counter restart or jump).
    misordered : int
        Sessions restarted because the Daisy's two packets per sample arrived out of order.
    """

    samples: int = 0
    lost: int = 0
    reconnects: int = 0
    overflowed: int = 0
    ambiguous_gaps: int = 0
    duplicates: int = 0
    rejected: int = 0
    realigned: int = 0
    misordered: int = 0


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
    adc_gain : int
        The channels' ADS1299 gain (BrainFlow's default 24): values beyond its full scale are
        rejected as packets the board cannot have sent.

    The board's rows, rate, packets per sample and link come from its one description
    (:func:`edge.board.load_board`).
    on_status : callable, optional
        Called with each :class:`StatusChange`, from the worker thread; keep it short.
    """

    def __init__(self, board: str, serial_port: str | None = None, file: str | None = None,
                 master_board: str = "cyton", eeg_channels: Sequence[int] | None = None,
                 watchdog_s: float = 2.0, backoff_s: tuple[float, float] = (0.25, 1.0), buffer_s: float = 60.0,
                 poll_s: float = 0.02, loop: bool = True, clock_scale: float = 1.0,
                 adc_gain: int = DEFAULT_GAIN, on_status: Callable[[StatusChange], None] | None = None) -> None:
        description = load_board(board, master_board)
        if description.link == "serial" and not serial_port:
            raise HotspotError(f"board {board} needs a serial port (e.g. /dev/ttyUSB0)", ErrorCode.BAD_CONFIG)
        if description.link == "file" and not file:
            raise HotspotError(f"board {board} needs a file recorded by BrainFlow", ErrorCode.BAD_CONFIG)
        if (watchdog_s <= 0 or backoff_s[0] <= 0 or backoff_s[1] < backoff_s[0] or buffer_s <= 0 or poll_s <= 0
                or clock_scale <= 0):
            raise HotspotError("watchdog_s, backoff_s, buffer_s, poll_s and clock_scale must be positive "
                               "(backoff first <= last)", ErrorCode.BAD_CONFIG)
        self.board = board
        self.description = description
        self._params = BrainFlowInputParams()
        if serial_port:
            self._params.serial_port = str(serial_port)
        if description.link == "file":
            self._params.file = str(file)
            self._params.master_board = description.data_board_id
        self.sampling_rate = description.sampling_rate
        board_rows = list(description.eeg_rows)
        channels = list(eeg_channels) if eeg_channels is not None else list(range(1, len(board_rows) + 1))
        bad = [channel for channel in channels if not 1 <= int(channel) <= len(board_rows)]
        if bad or not channels:
            raise HotspotError(f"board channels {bad or channels} do not exist on {board}; use 1..{len(board_rows)}",
                               ErrorCode.BAD_CONFIG)
        self.eeg_channels = [int(channel) for channel in channels]
        self._rows = [board_rows[channel - 1] for channel in self.eeg_channels]
        self._board_rows = board_rows
        self._counter_row = description.counter_row
        self._time_row = description.timestamp_row
        # a live board's packets carry their stop byte and ADC counts within the ADS1299's range
        self._stop_row = description.stop_byte_row
        self._full_scale_uv = ads1299_full_scale_uv(adc_gain) * (1 + 1e-9)
        self.clock_scale = float(clock_scale)
        self._tracker = PacketCounter(step=description.packets_per_sample,
                                      sampling_rate=self.sampling_rate * clock_scale,
                                      starts_at_zero=description.link != "file",
                                      full_scale_uv=ads1299_full_scale_uv(adc_gain) if self._stop_row is not None
                                      else None)
        self._rate = RateCheck(self.sampling_rate, clock_scale)
        self._restart_reason: str | None = None
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
    def measured_hz(self) -> float | None:
        """The board's sampling rate measured from host time over the last seconds (None until known)."""
        return self._rate.measured_hz

    @property
    def rate_off(self) -> bool:
        """Whether the measured rate differs from the declared one by more than 2 %."""
        return self._rate.off

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
        shim = BoardShim(self.description.board_id, self._params)
        try:
            shim.prepare_session()
            if self.description.link == "file":
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
            self._rate.reset()
            reason = self._stream()
            if self._held is not None:
                self._ingest(np.zeros((self._held.shape[0], 0)), final=True)
            if self._stop.is_set():
                break
            if self.description.link == "file" and not self.loop:
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
                if self._restart_reason is not None:
                    reason, self._restart_reason = self._restart_reason, None
                    return reason
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
            # held-back samples are placed at the latest one poll after the evidence could have come
            final = final or time.monotonic() - self._held_since > 2 * self._tracker.realign_evidence_s + self.poll_s
        values = data[self._board_rows]
        valid = None
        if self._stop_row is not None:
            valid = (data[self._stop_row] == STOP_BYTE) & (np.abs(values) <= self._full_scale_uv).all(axis=0)
        placement = self._tracker.place(data[self._counter_row], data[self._time_row], final=final, values=values,
                                        valid=valid)
        consumed = placement.consumed
        if placement.misordered:
            self._held = None
            self.stats.misordered += 1
            self._restart_reason = ("Daisy packets out of order (channels 9-16 would lag channels 1-8 by one "
                                    "sample); restarting the stream")
        elif consumed < data.shape[1]:
            if self._held is None or consumed:
                self._held_since = time.monotonic()
            self._held = data[:, consumed:]
        else:
            self._held = None
        self._place(data, placement)

    def _place(self, data: np.ndarray, placement: Placement) -> None:
        """Write the placed samples (and NaN for the lost ones) into the ring buffer."""
        self.stats.duplicates += placement.duplicates
        self.stats.rejected += placement.rejected
        self.stats.realigned += placement.realigned
        if not placement.placed.size:
            return
        stale = placement.stale
        data = data[:, placement.placed]
        total = placement.slots
        slots = placement.offsets
        fresh_slots = self._next_index + slots[~stale]
        self._rate.add(fresh_slots, data[self._time_row, ~stale])
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
