"""The Cyton firmware (v3) as its serial link shows it: commands, their answers and 33-byte data packets.

Commands, as BrainFlow's ``CYTON_BOARD`` and ``CYTON_DAISY_BOARD`` drivers use them:

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
  Other commands (test signals, SD card, sample rate, ``?`` register dump) are ignored.

Data go out as 33-byte packets: ``0xA0``, an 8-bit sample counter, 8 channels of 24-bit big-endian
two's-complement ADS1299 counts, 6 aux bytes (zero: accelerometer off) and the ``0xC0`` footer.
One microvolt is ``(2**23 - 1) * gain / 4.5e6`` counts (:class:`edge.board.Board`). The Daisy sends two
packets per 125 Hz sample with consecutive counters: the even one carries channels 9-16, the odd one
1-8, which is how BrainFlow joins them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.board import CHANNEL_LETTERS, STOP_BYTE, Board

START_BYTE = 0xA0
FAKE_STOP_BYTES = (0xC0, 0xC6)
"""Stop bytes BrainFlow's framing accepts (a fake packet of line noise may carry any of them)."""
PACKET_SIZE = 33
FIRMWARE = "v3.1.2"
DONGLE_FAILURE = b"Failure: Communications timeout - Device failed to poll Host$$$"
"""What the dongle answers every command with while the board does not reach it."""
CHANNEL_OFF = "12345678qwertyui"
CHANNEL_ON = "!@#$%^&*QWERTYUI"
MULTI_CHAR = {"x": ("X", 9), "z": ("Z", 5)}
"""Commands of several characters: their terminator and length."""


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


def fake_packet(rng: np.random.Generator) -> bytes:
    """A packet made of line noise that BrainFlow's framing accepts: start byte, random body, stop 0xC0-0xC6."""
    body = rng.integers(0, 256, size=PACKET_SIZE - 2, dtype=np.uint8).tobytes()
    stop = int(rng.integers(FAKE_STOP_BYTES[0], FAKE_STOP_BYTES[1] + 1))
    return bytes([START_BYTE]) + body + bytes([stop])


def banner(daisy: bool) -> bytes:
    """Return what the Cyton firmware prints after a soft reset (``v``) or a power-up."""
    lines = ["OpenBCI V3 8-16 channel", "On Board ADS1299 Device ID: 0x3E"]
    if daisy:
        lines.append("On Daisy ADS1299 Device ID: 0x3E")
    lines += ["LIS3DH Device ID: 0x33", f"Firmware: {FIRMWARE}"]
    return ("\n".join(lines) + "\n$$$").encode()


@dataclass(frozen=True)
class Answer:
    """What the firmware does about one command.

    Attributes
    ----------
    reply : bytes
        What it sends back (possibly nothing).
    streaming : bool or None
        Start (True) or stop (False) streaming; None: no change.
    reset : bool
        A soft reset: the packets still queued on the link are dropped.
    """

    reply: bytes = b""
    streaming: bool | None = None
    reset: bool = False


class Firmware:
    """The board's command state (channel power, gains, lead-off) and its command parser.

    Parameters
    ----------
    board : edge.board.Board
        The Cyton or Cyton + Daisy being emulated.
    daisy : bool
        Whether the Daisy module is fitted (16 channels).
    """

    def __init__(self, board: Board, daisy: bool) -> None:
        self.board, self.daisy = board, daisy
        self._buffer = ""
        self.reset()

    def reset(self) -> None:
        """The settings after a reset: every channel on at the default gain, lead-off off."""
        self.gains = np.full(self.board.n_channels, self.board.default_gain, dtype=np.int64)
        self.powered = np.ones(self.board.n_channels, dtype=bool)
        self.lead_off = np.zeros(self.board.n_channels, dtype=bool)

    def power_cycle(self) -> bytes:
        """A power-up: defaults, no half-received command; returns the banner it prints."""
        self.reset()
        self._buffer = ""
        return banner(self.daisy)

    def clear_input(self) -> None:
        """Forget a half-received command (a new link)."""
        self._buffer = ""

    def receive(self, char: str) -> str | None:
        """Take one received character; return the command it completes, if any."""
        if self._buffer:
            self._buffer += char
            if len(self._buffer) < MULTI_CHAR[self._buffer[0]][1]:
                return None
            command, self._buffer = self._buffer, ""
            return command
        if char in MULTI_CHAR:
            self._buffer = char
            return None
        return char

    def execute(self, command: str) -> Answer:
        """Carry out one complete command."""
        if command == "v":
            self.reset()
            return Answer(banner(self.daisy), streaming=False, reset=True)
        if command == "d":
            self.reset()
            return Answer(b"updating channel settings to default$$$")
        if command == "D":
            return Answer(b"060110$$$")
        if command == "V":
            return Answer(f"{FIRMWARE}$$$".encode())
        if command in ("b", "s"):
            return Answer(streaming=command == "b")
        if command[0] == "x":
            return Answer(self._channel_settings(command))
        if command[0] == "z":
            return Answer(self._lead_off_settings(command))
        if command in CHANNEL_OFF[: self.board.n_channels]:
            self.powered[CHANNEL_OFF.index(command)] = False
        elif command in CHANNEL_ON[: self.board.n_channels]:
            self.powered[CHANNEL_ON.index(command)] = True
        return Answer()

    def _channel_index(self, letter: str) -> int | None:
        index = CHANNEL_LETTERS.find(letter)
        return index if 0 <= index < self.board.n_channels else None

    def _channel_settings(self, command: str) -> bytes:
        index = self._channel_index(command[1])
        power, gain, input_type, flags = command[2], command[3], command[4], command[5:8]
        valid = (command[-1] == "X" and index is not None and power in "01" and gain in "0123456"
                 and input_type in "01234567" and all(flag in "01" for flag in flags))
        if not valid:
            return b"Failure: Err: invalid channel setting$$$"
        self.powered[index] = power == "0"
        self.gains[index] = self.board.gains[int(gain)]
        return f"Success: Channel set for {index + 1}$$$".encode()

    def _lead_off_settings(self, command: str) -> bytes:
        index = self._channel_index(command[1])
        if command[-1] != "Z" or index is None or command[2] not in "01" or command[3] not in "01":
            return b"Failure: Err: invalid lead off setting$$$"
        self.lead_off[index] = "1" in command[2:4]
        return f"Success: Lead off set for {index + 1}$$$".encode()
