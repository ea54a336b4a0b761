"""An OpenBCI Cyton (and Cyton + Daisy) board emulator on a pseudo-terminal.

It speaks the serial protocol of the Cyton firmware (v3) as BrainFlow's ``CYTON_BOARD`` and
``CYTON_DAISY_BOARD`` drivers use it, so those drivers connect to it unchanged:

* ``v`` soft reset: stops streaming, drops the packets still queued on the link, restores defaults
  and answers with the board's banner ending in ``$$$`` (BrainFlow's ``prepare_session`` looks for
  the ``$$$`` within the first 500 bytes it reads);
* ``d`` defaults (``updating channel settings to default$$$``), ``D`` default settings string,
  ``V`` firmware version;
* ``b`` start and ``s`` stop streaming (no answer, as the firmware);
* ``1``..``8`` / ``q``..``i`` channel off, ``!``..``*`` / ``Q``..``I`` channel on;
* ``x(CHANNEL,POWER,GAIN,INPUT,BIAS,SRB2,SRB1)X`` channel settings (the gain changes the counts the
  board sends) and ``z(CHANNEL,P,N)Z`` lead-off settings, answered ``Success: ...$$$`` or, when
  invalid, ``Failure: ...$$$`` (the firmware's prefixes; the failure texts are the emulator's own).
  With the lead-off current on (P or N = 1) the channel carries what the ADS1299's 6 nA, 31.25 Hz
  current makes across the electrode's impedance plus the board's 2.2 kOhm series resistor, a tone of
  ``6 nA * (Z + 2.2 kOhm)`` amplitude (the model the OpenBCI GUI's impedance formula assumes), on top of
  the EEG; each electrode's impedance is set with ``impedances_ohm`` or :meth:`CytonEmulator.set_impedance`.
  Other commands (test signals, SD card, sample rate, ``?`` register dump) are ignored.

Data go out as 33-byte packets: ``0xA0``, an 8-bit sample counter, 8 channels of 24-bit big-endian
two's-complement ADS1299 counts, 6 aux bytes (zero: accelerometer off) and the ``0xC0`` footer.
One microvolt is ``(2**23 - 1) * gain / 4.5e6`` counts. The Daisy sends two packets per 125 Hz
sample with consecutive counters: the even one carries channels 9-16, the odd one 1-8, which is
how BrainFlow joins them.

The emulator streams a recording (microvolts, one row per board channel) on a subject clock that
starts at the first ``b`` and runs at ``speed`` times real time, so that sample ``k`` of the source is
the ``k``-th sample period after streaming first started, whatever is lost in between. Faults
(:data:`FAULTS`) are injected with :meth:`CytonEmulator.inject`:

``drop`` (rate, burst)
    packets lost on the radio link at ``rate`` (fraction of packets), in bursts of ``burst`` packets;
    the board's counter still advances.
``corrupt`` (rate)
    packets hit by line noise at ``rate``: their footer and the aux bytes before it are overwritten,
    so BrainFlow's framing check drops them. (The protocol has no checksum: corruption that leaves
    the header and footer intact cannot be detected by any host.)
``railed`` (channel, polarity)
    a channel at the positive (``polarity=1``) or negative ADC rail, as with a detached electrode.
``flat`` (channel, value_uv)
    a channel stuck at a constant value.
``stall``
    the board stops transmitting (radio link lost, flat battery); the dongle answers every command
    with ``Failure: Communications timeout - Device failed to poll Host$$$`` as the real dongle does.
``unplug``
    the dongle is pulled: the pseudo-terminal is closed and the stable port path removed; when the
    fault clears, a new pseudo-terminal appears behind the same path (like a udev symlink).
``reset``
    the board power-cycles once: streaming stops, settings return to defaults, the banner is sent.

Every fault but ``reset`` lasts ``duration`` seconds (wall clock) or until :meth:`clear_faults`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.contact import CHANNEL_LETTERS, DRIVE_HZ, LEAD_OFF_DRIVE_A, SERIES_RESISTOR_OHM
from edge.errors import ErrorCode, HotspotError
from hardware.boards import Board, load_board, load_map

FAULTS = ("drop", "corrupt", "railed", "flat", "stall", "unplug", "reset")

START_BYTE = 0xA0
STOP_BYTE = 0xC0
PACKET_SIZE = 33
FIRMWARE = "v3.1.2"
DONGLE_FAILURE = b"Failure: Communications timeout - Device failed to poll Host$$$"
DEFAULT_IMPEDANCE_OHM = 5e3
CHANNEL_OFF = "12345678qwertyui"
CHANNEL_ON = "!@#$%^&*QWERTYUI"
MULTI_CHAR = {"x": ("X", 9), "z": ("Z", 5)}
TICK_S = 0.004
MAX_PENDING_BYTES = 64 * 1024


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
    commands : list of str
        Commands received, in order.
    """

    packets_sent: int = 0
    packets_dropped: int = 0
    packets_corrupted: int = 0
    packets_unsent: int = 0
    commands: list[str] = field(default_factory=list)


def encode_packets(counters: np.ndarray, counts: np.ndarray) -> bytes:
    """Encode Cyton packets.

    Parameters
    ----------
    counters : ndarray of int, shape (n,)
        Sample counters (taken modulo 256).
    counts : ndarray of int, shape (8, n)
        ADS1299 counts per channel, within the signed 24-bit range.

    Returns
    -------
    bytes
        ``n`` 33-byte packets.
    """
    n = counters.shape[0]
    packets = np.zeros((n, PACKET_SIZE), dtype=np.uint8)
    packets[:, 0] = START_BYTE
    packets[:, 1] = np.asarray(counters) % 256
    raw = np.asarray(counts, dtype=np.int64).T & 0xFFFFFF
    for shift, offset in ((16, 0), (8, 1), (0, 2)):
        packets[:, 2 + offset:26:3] = (raw >> shift) & 0xFF
    packets[:, 32] = STOP_BYTE
    return packets.tobytes()


def banner(daisy: bool) -> bytes:
    """Return what the Cyton firmware prints after a soft reset (``v``) or a power-up."""
    lines = ["OpenBCI V3 8-16 channel", "On Board ADS1299 Device ID: 0x3E"]
    if daisy:
        lines.append("On Daisy ADS1299 Device ID: 0x3E")
    lines += ["LIS3DH Device ID: 0x33", f"Firmware: {FIRMWARE}"]
    return ("\n".join(lines) + "\n$$$").encode()


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
        Seed of the fault injector's random numbers.
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
        self._rng = np.random.default_rng(seed)
        self._own_dir: str | None = None
        self._link: Path | None = Path(port_link) if port_link is not None else None
        self._lock = threading.Lock()
        self._faults: dict[str, dict] = {}
        self._reset_requested = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._pending = bytearray()
        self._command_buffer = ""
        self._clock_origin: float | None = None
        self._position = 0
        self._counter_origin = 0
        self._streaming = False
        self._set_defaults()

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> str:
        """The stable port path to give BrainFlow as ``serial_port`` (set by :meth:`start`)."""
        if self._link is None:
            raise RuntimeError("the emulator has no port before start()")
        return str(self._link)

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
        if self._link is None:
            self._own_dir = tempfile.mkdtemp(prefix="openbci-emulator-")
            self._link = Path(self._own_dir) / "ttyOpenBCI"
        self._plug()
        self._thread = threading.Thread(target=self._run, name="cyton-emulator", daemon=True)
        self._thread.start()
        return self.port

    def inject(self, fault: str, **params: float) -> None:
        """Inject a fault (see the module docstring for names and parameters).

        Parameters
        ----------
        fault : str
            One of :data:`FAULTS`.
        **params
            The fault's parameters; ``duration`` (seconds) ends it by itself. One fault of each kind
            is in force at a time: injecting it again replaces its parameters.
        """
        if fault not in FAULTS:
            raise HotspotError(f"unknown fault {fault!r}; use one of {', '.join(FAULTS)}", ErrorCode.BAD_ARGUMENT)
        checked = self._check_params(fault, dict(params))
        with self._lock:
            if fault == "reset":
                self._reset_requested = True
                return
            duration = checked.pop("duration", None)
            checked["until"] = None if duration is None else time.monotonic() + float(duration)
            self._faults[fault] = checked

    def set_impedance(self, channel: int, ohm: float) -> None:
        """Set one board channel's electrode impedance (1-based channel, ohms)."""
        if not 1 <= int(channel) <= self.board.n_channels or not ohm >= 0:
            raise HotspotError(f"impedance needs a channel 1..{self.board.n_channels} and ohms >= 0",
                               ErrorCode.BAD_ARGUMENT)
        with self._lock:
            self._impedances[int(channel) - 1] = float(ohm)

    def clear_faults(self, *names: str) -> None:
        """End the named faults (all when none is named)."""
        with self._lock:
            for name in names or tuple(self._faults):
                self._faults.pop(name, None)

    def active_faults(self) -> list[str]:
        """Return the names of the faults in force."""
        with self._lock:
            return sorted(self._faults)

    def stop(self) -> None:
        """Stop the emulator, close the pseudo-terminal and remove the port path."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._unplug()
        if self._own_dir is not None and os.path.isdir(self._own_dir):
            os.rmdir(self._own_dir)

    def __enter__(self) -> CytonEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def _check_params(self, fault: str, params: dict) -> dict:
        allowed = {"drop": {"rate", "burst"}, "corrupt": {"rate"}, "railed": {"channel", "polarity"},
                   "flat": {"channel", "value_uv"}, "stall": set(), "unplug": set(), "reset": set()}[fault]
        allowed = allowed | ({"duration"} if fault != "reset" else set())
        unknown = set(params) - allowed
        if unknown:
            raise HotspotError(f"fault {fault} takes {sorted(allowed) or 'no parameters'}, not {sorted(unknown)}",
                               ErrorCode.BAD_ARGUMENT)
        if fault in ("drop", "corrupt"):
            params["rate"] = float(params.get("rate", 0.05))
            if not 0.0 <= params["rate"] <= 1.0:
                raise HotspotError(f"fault {fault}: rate must be within 0..1", ErrorCode.BAD_ARGUMENT)
        if fault == "drop":
            params["burst"] = int(params.get("burst", 1))
            if params["burst"] < 1:
                raise HotspotError("fault drop: burst must be at least 1 packet", ErrorCode.BAD_ARGUMENT)
        if fault in ("railed", "flat"):
            params["channel"] = int(params.get("channel", 1))
            if not 1 <= params["channel"] <= self.board.n_channels:
                raise HotspotError(f"fault {fault}: channel must be 1..{self.board.n_channels}", ErrorCode.BAD_ARGUMENT)
        if fault == "railed":
            params["polarity"] = 1 if float(params.get("polarity", 1)) >= 0 else -1
        if fault == "flat":
            params["value_uv"] = float(params.get("value_uv", 0.0))
        return params

    def _fault(self, name: str) -> dict | None:
        return self._faults.get(name)

    def _expire_faults(self, now: float) -> None:
        with self._lock:
            for name in [name for name, params in self._faults.items()
                         if params["until"] is not None and now >= params["until"]]:
                del self._faults[name]

    # ------------------------------------------------------------------ pseudo-terminal

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pending.clear()
        self._command_buffer = ""
        temporary = self._link.with_name(self._link.name + ".new")
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self._link)

    def _unplug(self) -> None:
        if self._link is not None and self._link.is_symlink():
            self._link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._pending.clear()

    # ------------------------------------------------------------------ main loop

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._expire_faults(now)
            with self._lock:
                unplugged = "unplug" in self._faults
                reset, self._reset_requested = self._reset_requested, False
            if unplugged and self._master is not None:
                self._unplug()
            elif not unplugged and self._master is None:
                self._plug()
            if reset:
                self._power_cycle()
            if self._master is None:
                self._advance(now)
                time.sleep(TICK_S)
                continue
            # commands first: a stop or reset that arrived while we were busy takes effect before
            # the samples that fell due meanwhile are sent
            self._read_commands()
            self._advance(now)
            self._flush()
            select.select([self._master], [self._master] if self._pending else [], [], TICK_S)

    def _read_commands(self) -> None:
        try:
            received = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for char in received.decode("latin-1"):
            self._receive(char)

    def _flush(self) -> None:
        if not self._pending or self._master is None:
            return
        try:
            written = os.write(self._master, self._pending)
        except (BlockingIOError, OSError):
            return
        del self._pending[:written]

    def _send(self, data: bytes) -> None:
        self._pending += data

    # ------------------------------------------------------------------ commands

    def _set_defaults(self) -> None:
        self._gains = np.full(self.board.n_channels, self.board.default_gain, dtype=np.int64)
        self._powered = np.ones(self.board.n_channels, dtype=bool)
        self._lead_off = np.zeros(self.board.n_channels, dtype=bool)

    def _power_cycle(self) -> None:
        self._streaming = False
        self._set_defaults()
        self._command_buffer = ""
        self._send(banner(self.daisy))

    def _receive(self, char: str) -> None:
        if self._command_buffer:
            self._command_buffer += char
            if len(self._command_buffer) < MULTI_CHAR[self._command_buffer[0]][1]:
                return
            command, self._command_buffer = self._command_buffer, ""
        elif char in MULTI_CHAR:
            self._command_buffer = char
            return
        else:
            command = char
        self.stats.commands.append(command)
        with self._lock:
            stalled = "stall" in self._faults
        if stalled:
            self._send(DONGLE_FAILURE)
            return
        self._execute(command)

    def _execute(self, command: str) -> None:
        if command == "v":
            self._streaming = False
            self._set_defaults()
            self._pending.clear()  # packets still queued on the link are lost with the reset
            self._send(banner(self.daisy))
        elif command == "d":
            self._set_defaults()
            self._send(b"updating channel settings to default$$$")
        elif command == "D":
            self._send(b"060110$$$")
        elif command == "V":
            self._send(f"{FIRMWARE}$$$".encode())
        elif command == "b":
            self._start_streaming()
        elif command == "s":
            self._streaming = False
        elif command[0] == "x":
            self._channel_settings(command)
        elif command[0] == "z":
            self._lead_off_settings(command)
        elif command in CHANNEL_OFF[: self.board.n_channels]:
            self._powered[CHANNEL_OFF.index(command)] = False
        elif command in CHANNEL_ON[: self.board.n_channels]:
            self._powered[CHANNEL_ON.index(command)] = True

    def _channel_index(self, letter: str) -> int | None:
        index = CHANNEL_LETTERS.find(letter)
        return index if 0 <= index < self.board.n_channels else None

    def _channel_settings(self, command: str) -> None:
        index = self._channel_index(command[1])
        power, gain, input_type, flags = command[2], command[3], command[4], command[5:8]
        valid = (command[-1] == "X" and index is not None and power in "01" and gain in "0123456"
                 and input_type in "01234567" and all(flag in "01" for flag in flags))
        if not valid:
            self._send(b"Failure: Err: invalid channel setting$$$")
            return
        self._powered[index] = power == "0"
        self._gains[index] = self.board.gains[int(gain)]
        self._send(f"Success: Channel set for {index + 1}$$$".encode())

    def _lead_off_settings(self, command: str) -> None:
        index = self._channel_index(command[1])
        if command[-1] != "Z" or index is None or command[2] not in "01" or command[3] not in "01":
            self._send(b"Failure: Err: invalid lead off setting$$$")
            return
        self._lead_off[index] = "1" in command[2:4]
        self._send(f"Success: Lead off set for {index + 1}$$$".encode())

    def _start_streaming(self) -> None:
        if self._clock_origin is None:
            self._clock_origin = time.monotonic()
        self._counter_origin = self._position
        self._streaming = True

    # ------------------------------------------------------------------ streaming

    def _advance(self, now: float) -> None:
        """Sample every source sample that is due on the subject clock and send what gets through."""
        if self._clock_origin is None:
            return
        due = int((now - self._clock_origin) * self.board.sampling_rate * self.speed)
        if not self.loop:
            due = min(due, self._source.shape[1])
        if due <= self._position:
            return
        start, self._position = self._position, due
        if not self._streaming:
            return
        with self._lock:
            faults = {name: dict(params) for name, params in self._faults.items()}
        samples = np.arange(start, due)
        packets_per_sample = self.board.packets_per_sample
        if "stall" in faults or self._master is None:
            self.stats.packets_unsent += samples.size * packets_per_sample
            return
        counts = self._sample_counts(samples, faults)
        counters = np.arange((start - self._counter_origin) * packets_per_sample,
                             (due - self._counter_origin) * packets_per_sample)
        if self.daisy:
            # each sample becomes two packets: even counter = Daisy channels 9-16, odd = channels 1-8
            counts = np.stack([counts[8:], counts[:8]], axis=2).reshape(8, -1)
        self._emit(counters, counts, faults)

    def _sample_counts(self, samples: np.ndarray, faults: dict) -> np.ndarray:
        columns = samples % self._source.shape[1]
        counts = np.empty((self.board.n_channels, columns.size), dtype=np.int64)
        with self._lock:
            impedances = self._impedances.copy()
        drive = np.sin(2.0 * np.pi * DRIVE_HZ * samples / self.board.sampling_rate)
        for channel in range(self.board.n_channels):
            uv = self._source[channel, columns]
            if self._lead_off[channel]:
                uv = uv + LEAD_OFF_DRIVE_A * (impedances[channel] + SERIES_RESISTOR_OHM) * 1e6 * drive
            counts[channel] = self.board.counts_from_uv(uv, int(self._gains[channel]))
        counts[~self._powered] = 0
        if "flat" in faults:
            params = faults["flat"]
            counts[params["channel"] - 1] = self.board.counts_from_uv(params["value_uv"],
                                                                      int(self._gains[params["channel"] - 1]))
        if "railed" in faults:
            params = faults["railed"]
            counts[params["channel"] - 1] = self.board.max_count if params["polarity"] > 0 else -self.board.max_count - 1
        return counts

    def _emit(self, counters: np.ndarray, counts: np.ndarray, faults: dict) -> None:
        n = counters.size
        keep = np.ones(n, dtype=bool)
        if "drop" in faults:
            params = faults["drop"]
            burst = params["burst"]
            starts = np.flatnonzero(self._rng.random(n) < params["rate"] / burst)
            for offset in range(burst):
                keep[np.clip(starts + offset, 0, n - 1)] = False
        if len(self._pending) > MAX_PENDING_BYTES:
            keep[:] = False
        self.stats.packets_dropped += int(n - keep.sum())
        data = bytearray(encode_packets(counters[keep], counts[:, keep]))
        if "corrupt" in faults and data:
            hit = np.flatnonzero(self._rng.random(int(keep.sum())) < faults["corrupt"]["rate"])
            for packet in hit:
                end = (packet + 1) * PACKET_SIZE
                data[end - 4:end] = bytes(self._rng.integers(0x01, 0xA0, size=4, dtype=np.uint8))
            self.stats.packets_corrupted += int(hit.size)
        self.stats.packets_sent += int(keep.sum())
        self._send(bytes(data))


# ---------------------------------------------------------------------- command line


def synthetic_source(n_channels: int, sfreq: float, seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """Return EEG-like microvolts: pink-ish noise plus a 10 Hz rhythm per channel.

    Parameters
    ----------
    n_channels : int
        Rows.
    sfreq : float
        Sampling rate in Hz.
    seconds : float
        Length.
    seed : int
        Random seed.

    Returns
    -------
    ndarray, shape (n_channels, round(seconds * sfreq))
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq))
    white = rng.standard_normal((n_channels, n))
    spectrum = np.fft.rfft(white, axis=1)
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum /= np.sqrt(np.maximum(freqs, 1.0))
    noise = np.fft.irfft(spectrum, n=n, axis=1)
    noise *= 10.0 / noise.std(axis=1, keepdims=True)
    t = np.arange(n) / sfreq
    phases = rng.uniform(0, 2 * np.pi, size=(n_channels, 1))
    return noise + 8.0 * np.sin(2 * np.pi * 10.0 * t + phases)


def recording_source(path: Path, board: Board, channel_map: str, subject: str | None) -> np.ndarray:
    """Load a recording (any format ``train.io`` reads, or a subject of a dataset folder) as board rows.

    Channels are placed on board channels by the named default map (``hardware/boards.toml``);
    board channels the map leaves free stay at 0 µV. The recording is resampled to the board rate.
    """
    from train.io import load_dataset, read_recording  # host-only imports, loaded when used

    mapping = load_map(channel_map)
    if mapping.board != board.name:
        raise HotspotError(f"channel map {channel_map} is for the {mapping.board}, not the {board.name}",
                           ErrorCode.BAD_ARGUMENT)
    if path.is_dir():
        dataset = load_dataset(path)
        subjects = [item.subject for item in dataset.subjects]
        if subject is not None and subject not in subjects:
            raise HotspotError(f"{path} has no subject {subject}; pick one of {', '.join(subjects)}",
                               ErrorCode.BAD_ARGUMENT)
        chosen = dataset.subject(subject) if subject else dataset.subjects[0]
        if not chosen.recordings:
            raise HotspotError(f"{path}: subject {chosen.subject} has no recordings", ErrorCode.BAD_FILE)
        recording = chosen.recordings[0]
    else:
        recording = read_recording(path, required_channels=list(mapping.channels), require_events=False)
    missing = [name for name in mapping.channels if name not in recording.ch_names]
    if missing:
        raise HotspotError(f"{path} lacks channels {', '.join(missing)} of map {channel_map}; pick another --map",
                           ErrorCode.MISSING_CHANNELS)
    data = recording.data
    if recording.sfreq != board.sampling_rate:
        from fractions import Fraction

        from scipy.signal import resample_poly

        ratio = Fraction(board.sampling_rate / recording.sfreq).limit_denominator(1000)
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=1)
    source = np.zeros((board.n_channels, data.shape[1]))
    for name, channel in mapping.channels.items():
        source[channel - 1] = data[recording.ch_names.index(name)]
    return source


def parse_fault(text: str) -> tuple[str, dict[str, float]]:
    """Parse ``name[:key=value,...]`` (e.g. ``drop:rate=0.05`` or ``railed:channel=3``)."""
    name, _, rest = text.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise HotspotError(f"bad fault parameter {item!r} in {text!r}; write key=number", ErrorCode.BAD_ARGUMENT)
    return name.strip(), params


def console_command(emulator: CytonEmulator, line: str) -> str:
    """Apply one console line (``name[:key=value,...]`` or ``clear``) and return what happened."""
    if not line:
        return f"faults in force: {', '.join(emulator.active_faults()) or 'none'}"
    if line == "clear":
        emulator.clear_faults()
        return "faults cleared"
    try:
        name, params = parse_fault(line)
        emulator.inject(name, **params)
    except HotspotError as err:
        return f"error: {err}"
    return f"injected {line}"


def main(argv: Sequence[str] | None = None) -> int:
    """``invoke emulate``: start the emulator, print its port and stream until interrupted.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (see ``--help``).

    Returns
    -------
    int
        0 when stopped by Ctrl-C or after ``--seconds``.
    """
    parser = argparse.ArgumentParser(prog="emulate", description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=("cyton", "cyton_daisy"), default="cyton")
    parser.add_argument("--source", type=Path, help="EEG file or dataset folder (default: synthetic EEG)")
    parser.add_argument("--subject", help="subject of a dataset folder (default: the first)")
    parser.add_argument("--map", dest="channel_map", help="electrode map of boards.toml placing the source's channels")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--fault", action="append", default=[], help="name[:key=value,...], repeatable")
    parser.add_argument("--impedance", action="append", default=[], metavar="CHANNEL=KOHM",
                        help="an electrode's impedance for the lead-off check, e.g. 3=1500 (default 5 kOhm), repeatable")
    parser.add_argument("--port-link", type=Path, help="stable port path (default: a temporary ttyOpenBCI)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--interactive", action="store_true",
                        help="read faults from stdin while streaming: name[:key=value,...], clear, quit")
    args = parser.parse_args(argv)

    board = load_board(args.board)
    if args.source is None:
        source = synthetic_source(board.n_channels, board.sampling_rate)
    else:
        if not args.source.exists():
            raise HotspotError(f"source {args.source} does not exist; give an EEG file or dataset folder",
                               ErrorCode.BAD_FILE)
        default_map = "cyton_five_left" if board.name == "cyton" else "cyton_daisy_nine_left"
        source = recording_source(args.source, board, args.channel_map or default_map, args.subject)
    faults = [parse_fault(text) for text in args.fault]
    emulator = CytonEmulator(source, daisy=board.name == "cyton_daisy", speed=args.speed,
                             port_link=args.port_link)
    for text in args.impedance:
        channel, _, kohm = text.partition("=")
        try:
            emulator.set_impedance(int(channel), float(kohm) * 1e3)
        except ValueError:
            raise HotspotError(f"--impedance {text!r}: write CHANNEL=KOHM, e.g. 3=1500", ErrorCode.BAD_ARGUMENT) from None
    for name, params in faults:
        emulator.inject(name, **params)
    port = emulator.start()
    print(port, flush=True)
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        console = sys.stdin if args.interactive else None
        while deadline is None or time.monotonic() < deadline:
            if console is None or not select.select([console], [], [], 0.2)[0]:
                time.sleep(0.0 if console else 0.2)
                continue
            line = console.readline()
            if not line or line.strip() == "quit":
                break
            print(console_command(emulator, line.strip()), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        print(f"sent {emulator.stats.packets_sent} packets, dropped {emulator.stats.packets_dropped}, "
              f"corrupted {emulator.stats.packets_corrupted}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from edge.errors import run_cli

    sys.exit(run_cli(main))
