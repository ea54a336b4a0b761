"""An OpenBCI Cyton (and Cyton + Daisy) on a pseudo-terminal, streaming a recording to BrainFlow's driver.

It speaks the Cyton firmware's serial protocol (:mod:`hardware.emulator.firmware`) as BrainFlow's
``CYTON_BOARD`` and ``CYTON_DAISY_BOARD`` drivers use it, so those drivers connect to it unchanged,
over a pseudo-terminal behind a stable port path (:mod:`hardware.emulator.transport`).

The emulator streams a recording (microvolts, one row per board channel) on a subject clock that
starts at the first ``b`` and runs at ``speed`` times real time, so that sample ``k`` of the source is
the ``k``-th sample period after streaming first started, whatever is lost in between. With the
lead-off current on (P or N = 1) a channel carries what the ADS1299's 6 nA, 31.25 Hz current makes
across the electrode's impedance plus the board's 2.2 kOhm series resistor, a tone of
``6 nA * (Z + 2.2 kOhm)`` amplitude (the model the OpenBCI GUI's impedance formula assumes), on top of
the EEG; each electrode's impedance is set with ``impedances_ohm`` or :meth:`CytonEmulator.set_impedance`.
Faults (:mod:`hardware.emulator.faults`) are injected with :meth:`CytonEmulator.inject`.

This core imports numpy and ``edge`` only; recordings to stream come from :mod:`hardware.emulator.sources`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.board import Board, load_board
from edge.contact import DRIVE_HZ, LEAD_OFF_DRIVE_A, SERIES_RESISTOR_OHM
from edge.errors import ErrorCode, HotspotError
from hardware.emulator.faults import FaultState, check_params
from hardware.emulator.firmware import DONGLE_FAILURE, PACKET_SIZE, Firmware, encode_packets, fake_packet
from hardware.emulator.transport import PtyLink

DEFAULT_IMPEDANCE_OHM = 5e3
TICK_S = 0.004
LINE_NOISE_STREAM = 0x6E6F697365
"""Mixed into the seed of the ``garbage`` fault's junk, so that it is independent of the injector's other draws."""


def line_noise(seed: int, position: int, rate: float) -> tuple[bytes, bool]:
    """The junk the ``garbage`` fault sends right after one packet.

    It depends only on the emulator's seed and the packet's position on the subject clock, never on the
    host's timing (how the packets fall into ticks, when the fault was injected): a run that covers the
    same packets sends the same bytes, and a failure can be replayed from its packet positions.

    Parameters
    ----------
    seed : int
        The emulator's seed.
    position : int
        The packet's index on the subject clock since streaming first started (the Daisy's two packets
        of sample ``k`` are ``2k``, even, and ``2k + 1``, odd).
    rate : float
        The fault's rate: the chance of junk after a packet.

    Returns
    -------
    junk : bytes
        Nothing, 1-64 random bytes, or (half of the time) a well-framed fake packet.
    fake : bool
        Whether the junk is a fake packet.
    """
    rng = np.random.default_rng([seed, LINE_NOISE_STREAM, position])
    if rng.random() >= rate:
        return b"", False
    if rng.random() < 0.5:
        return fake_packet(rng), True
    return rng.integers(0, 256, size=int(rng.integers(1, 65)), dtype=np.uint8).tobytes(), False


@dataclass
class EmulatorStats:
    """What the emulator did since it started (for tests and the CLI).

    Attributes
    ----------
    packets_sent : int
        Packets written to the pseudo-terminal.
    packets_dropped : int
        Packets lost to the ``drop`` fault or to a full pseudo-terminal buffer.
    packets_corrupted : int
        Packets written with a corrupted footer.
    packets_unsent : int
        Packets the board sampled while stalled or unplugged (never sent).
    packets_duplicated : int
        Extra copies sent by the ``duplicate`` fault.
    fake_packets : int
        Well-framed fake packets written by the ``garbage`` fault.
    garbage_bytes : int
        Bytes of junk (fake packets included) written by the ``garbage`` fault.
    counter_restarts : list of int
        The counter each ``restart`` fault interrupted (the value the next packet would have carried).
    commands : list of str
        Commands received, in order.
    """

    packets_sent: int = 0
    packets_dropped: int = 0
    packets_corrupted: int = 0
    packets_unsent: int = 0
    packets_duplicated: int = 0
    fake_packets: int = 0
    garbage_bytes: int = 0
    counter_restarts: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class CytonEmulator:
    """An OpenBCI Cyton (or Cyton + Daisy) on a pseudo-terminal, streaming a recording.

    Parameters
    ----------
    source_uv : ndarray, shape (8, n) or (16, n)
        Microvolts per board channel (row ``i`` is board channel ``i + 1``) at the board's sampling
        rate (250 Hz for the Cyton, 125 Hz with the Daisy).
    daisy : bool
        Emulate a Cyton with the Daisy module (16 channels).
    speed : float
        Stream ``speed`` times faster than real time.
    loop : bool
        Start again from the beginning at the end of the source (else the stream stops there).
    port_link : str or Path, optional
        The stable port path (a symlink to the current pseudo-terminal). Default: a new temporary
        folder's ``ttyOpenBCI``.
    seed : int
        Seed of the fault injector's random numbers (the ``garbage`` fault's junk after each packet is a
        function of the seed and the packet's position: :func:`line_noise`).
    impedances_ohm : sequence of float, optional
        Each board channel's electrode impedance (what the lead-off check measures); default 5 kOhm
        (a well-gelled electrode) everywhere.
    """

    def __init__(self, source_uv: np.ndarray, daisy: bool = False, speed: float = 1.0, loop: bool = True,
                 port_link: str | Path | None = None, seed: int = 0,
                 impedances_ohm: Sequence[float] | None = None) -> None:
        self.board: Board = load_board("cyton_daisy" if daisy else "cyton")
        source = np.asarray(source_uv, dtype=np.float64)
        if source.ndim != 2 or source.shape[0] != self.board.n_channels or source.shape[1] == 0:
            raise HotspotError(f"the {self.board.name} emulator needs a ({self.board.n_channels}, n) source, "
                               f"got shape {source.shape}", ErrorCode.BAD_SAMPLES)
        if not speed > 0:
            raise HotspotError(f"speed must be positive, got {speed}", ErrorCode.BAD_ARGUMENT)
        impedances = np.full(self.board.n_channels, DEFAULT_IMPEDANCE_OHM) if impedances_ohm is None \
            else np.asarray(impedances_ohm, dtype=np.float64)
        if impedances.shape != (self.board.n_channels,) or not np.all(impedances >= 0):
            raise HotspotError(f"impedances_ohm needs {self.board.n_channels} values >= 0", ErrorCode.BAD_ARGUMENT)
        self._impedances = impedances
        self.daisy = daisy
        self.speed = float(speed)
        self.loop = loop
        self.stats = EmulatorStats()
        self._source = source
        self.seed = int(seed)
        self._rng = np.random.default_rng(seed)
        self._link = PtyLink(port_link)
        self._firmware = Firmware(self.board, daisy)
        self._faults = FaultState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock_origin: float | None = None
        self._origin_position = 0
        self._rate = float(self.board.sampling_rate)
        self._position = 0
        self._counter_origin = 0
        self._streaming = False

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> str:
        """The stable port path to give BrainFlow as ``serial_port`` (set by :meth:`start`)."""
        return self._link.port

    @property
    def position(self) -> int:
        """Index of the next source sample on the subject clock (counts loops)."""
        return self._position

    @property
    def streaming(self) -> bool:
        """Whether the board has been told to stream (``b``) and has not stopped since."""
        return self._streaming

    def start(self) -> str:
        """Open the pseudo-terminal, start answering and return the port path."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._plug()
        self._thread = threading.Thread(target=self._run, name="cyton-emulator", daemon=True)
        self._thread.start()
        return self.port

    def inject(self, fault: str, **params: float) -> None:
        """Inject a fault (see :mod:`hardware.emulator.faults` for names and parameters).

        Parameters
        ----------
        fault : str
            One of :data:`hardware.emulator.faults.FAULTS`.
        **params
            The fault's parameters; ``duration`` (seconds) ends it by itself. One fault of each kind
            is in force at a time: injecting it again replaces its parameters.
        """
        checked = check_params(fault, params, self.board.n_channels, self.daisy, self.board.sampling_rate)
        self._faults.inject(fault, checked)

    def set_impedance(self, channel: int, ohm: float) -> None:
        """Set one board channel's electrode impedance (1-based channel, ohms)."""
        if not 1 <= int(channel) <= self.board.n_channels or not ohm >= 0:
            raise HotspotError(f"impedance needs a channel 1..{self.board.n_channels} and ohms >= 0",
                               ErrorCode.BAD_ARGUMENT)
        with self._lock:
            self._impedances[int(channel) - 1] = float(ohm)

    def clear_faults(self, *names: str) -> None:
        """End the named faults (all when none is named)."""
        self._faults.clear(*names)

    def active_faults(self) -> list[str]:
        """Return the names of the faults in force."""
        return self._faults.active()

    def stop(self) -> None:
        """Stop the emulator, close the pseudo-terminal and remove the port path."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._link.close()

    def __enter__(self) -> CytonEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ main loop

    def _plug(self) -> None:
        self._link.plug()
        self._firmware.clear_input()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._faults.expire(now)
            unplugged = "unplug" in self._faults
            reset, restart = self._faults.take_one_shots()
            if restart:
                packets = self.board.packets_per_sample
                self.stats.counter_restarts.append((self._position - self._counter_origin) * packets % 256)
                self._counter_origin = self._position
            if unplugged and self._link.plugged:
                self._link.unplug()
            elif not unplugged and not self._link.plugged:
                self._plug()
            if reset:
                self._streaming = False
                self._link.send(self._firmware.power_cycle())
            if not self._link.plugged:
                self._advance(now)
                time.sleep(TICK_S)
                continue
            # commands first: a stop or reset that arrived while we were busy takes effect before
            # the samples that fell due meanwhile are sent
            for char in self._link.read().decode("latin-1"):
                self._receive(char)
            self._advance(now)
            self._link.flush()
            self._link.wait(TICK_S)

    def _receive(self, char: str) -> None:
        command = self._firmware.receive(char)
        if command is None:
            return
        self.stats.commands.append(command)
        if "stall" in self._faults:
            self._link.send(DONGLE_FAILURE)
            return
        answer = self._firmware.execute(command)
        if answer.reset:
            self._link.pending.clear()  # packets still queued on the link are lost with the reset
        if answer.streaming is True:
            self._start_streaming()
        elif answer.streaming is False:
            self._streaming = False
        if answer.reply:
            self._link.send(answer.reply)

    def _start_streaming(self) -> None:
        if self._clock_origin is None:
            self._clock_origin = time.monotonic()
            self._origin_position = self._position
        self._counter_origin = self._position
        self._streaming = True

    # ------------------------------------------------------------------ streaming

    def _advance(self, now: float) -> None:
        """Sample every source sample that is due on the subject clock and send what gets through."""
        if self._clock_origin is None:
            return
        faults = self._faults.snapshot()
        rate = faults["rate"]["hz"] if "rate" in faults else float(self.board.sampling_rate)
        due = self._origin_position + int((now - self._clock_origin) * self._rate * self.speed)
        if rate != self._rate:
            # the subject clock runs on at the new rate from here
            self._clock_origin, self._origin_position, self._rate = now, max(due, self._position), rate
        if not self.loop:
            due = min(due, self._source.shape[1])
        if due <= self._position:
            return
        start, self._position = self._position, due
        if not self._streaming:
            return
        samples = np.arange(start, due)
        packets_per_sample = self.board.packets_per_sample
        if "stall" in faults or not self._link.plugged:
            self.stats.packets_unsent += samples.size * packets_per_sample
            return
        counts = self._sample_counts(samples, faults)
        counters = np.arange((start - self._counter_origin) * packets_per_sample,
                             (due - self._counter_origin) * packets_per_sample)
        positions = np.arange(start * packets_per_sample, due * packets_per_sample)
        if self.daisy:
            # each sample becomes two packets: even counter = Daisy channels 9-16, odd = channels 1-8
            counts = np.stack([counts[8:], counts[:8]], axis=2).reshape(8, -1)
            if "misorder" in faults:
                order = np.arange(counters.size).reshape(-1, 2)[:, ::-1].ravel()
                counters, counts, positions = counters[order], counts[:, order], positions[order]
        self._emit(counters, counts, faults, positions)

    def _sample_counts(self, samples: np.ndarray, faults: dict) -> np.ndarray:
        columns = samples % self._source.shape[1]
        counts = np.empty((self.board.n_channels, columns.size), dtype=np.int64)
        with self._lock:
            impedances = self._impedances.copy()
        firmware = self._firmware
        drive = np.sin(2.0 * np.pi * DRIVE_HZ * samples / self.board.sampling_rate)
        for channel in range(self.board.n_channels):
            uv = self._source[channel, columns]
            if firmware.lead_off[channel]:
                uv = uv + LEAD_OFF_DRIVE_A * (impedances[channel] + SERIES_RESISTOR_OHM) * 1e6 * drive
            counts[channel] = self.board.counts_from_uv(uv, int(firmware.gains[channel]))
        counts[~firmware.powered] = 0
        if "flat" in faults:
            params = faults["flat"]
            counts[params["channel"] - 1] = self.board.counts_from_uv(params["value_uv"],
                                                                      int(firmware.gains[params["channel"] - 1]))
        if "railed" in faults:
            params = faults["railed"]
            counts[params["channel"] - 1] = self.board.max_count if params["polarity"] > 0 else -self.board.max_count - 1
        return counts

    def _emit(self, counters: np.ndarray, counts: np.ndarray, faults: dict, positions: np.ndarray) -> None:
        n = counters.size
        keep = np.ones(n, dtype=bool)
        if "drop" in faults:
            params = faults["drop"]
            burst = params["burst"]
            starts = np.flatnonzero(self._rng.random(n) < params["rate"] / burst)
            for offset in range(burst):
                keep[np.clip(starts + offset, 0, n - 1)] = False
        if self._link.full:
            keep[:] = False
        self.stats.packets_dropped += int(n - keep.sum())
        positions = positions[keep]
        packets = np.frombuffer(encode_packets(counters[keep], counts[:, keep]), dtype=np.uint8)
        packets = packets.reshape(-1, PACKET_SIZE).copy()
        if "corrupt" in faults and packets.size:
            hit = np.flatnonzero(self._rng.random(len(packets)) < faults["corrupt"]["rate"])
            packets[hit, -4:] = self._rng.integers(0x01, 0xA0, size=(hit.size, 4), dtype=np.uint8)
            self.stats.packets_corrupted += int(hit.size)
        self.stats.packets_sent += len(packets)
        if "duplicate" not in faults and "garbage" not in faults:
            self._link.send(packets.tobytes())
            return
        data = bytearray()
        for packet, position in zip(packets, positions):
            data += packet.tobytes()
            if "duplicate" in faults and self._rng.random() < faults["duplicate"]["rate"]:
                data += packet.tobytes()
                self._count_duplicate(faults["duplicate"])
            if "garbage" in faults:
                junk, fake = line_noise(self.seed, int(position), faults["garbage"]["rate"])
                self.stats.fake_packets += fake
                self.stats.garbage_bytes += len(junk)
                data += junk
        self._link.send(bytes(data))

    def _count_duplicate(self, params: dict) -> None:
        """Count one extra copy; a ``duplicate`` fault with a ``count`` ends after that many."""
        self.stats.packets_duplicated += 1
        if "count" in params:
            self._faults.count_duplicate()
            params["count"] -= 1
            if params["count"] <= 0:
                params["rate"] = 0.0
