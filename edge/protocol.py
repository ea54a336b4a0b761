"""Framed binary report messages shared by the serial and BLE links.

A message is ``version (u8) | type (u8) | sequence (u16) | payload | CRC-32 (u32)``, all
big-endian; the CRC (zlib's CRC-32) covers everything before it. On the serial link each
message is COBS-encoded and ends with a zero byte; on BLE one characteristic value is one
message (BLE frames it already). Payload fields are fixed-size numbers, strings (u8 length
+ UTF-8) and lists (u8 count + items), declared once per message type in :data:`SCHEMAS`.

The device only sends; the host may only send session control (start, stop, status) and
nothing that changes configuration. A receiver counts and drops malformed, oversized,
corrupted, unknown or unexpected frames and never raises on bad input.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from cobs import cobs

PROTOCOL_VERSION = 2
"""2: HOTSPOT and REDO carry the 90 % radius, consistency, whether the EEG localised, and the
placement on the cap (electrode + anterior/lateral scalp offsets) instead of a confidence."""
MAX_MESSAGE_BYTES = 1024
_HEADER = struct.Struct(">BBH")
_CRC = struct.Struct(">I")
# COBS adds at most one byte per 254 plus one; the frame also carries its zero delimiter.
MAX_FRAME_BYTES = MAX_MESSAGE_BYTES + MAX_MESSAGE_BYTES // 254 + 2


class MessageType(enum.IntEnum):
    """Message types; device → host below 16, host → device from 16."""

    HELLO = 1
    STATUS = 2
    CUE = 3
    QUALITY = 4
    TRIAL_RESULT = 5
    HOTSPOT = 6
    REDO = 7
    ERROR = 8
    START = 16
    STOP = 17
    STATUS_REQUEST = 18


DEVICE_MESSAGES = frozenset(t for t in MessageType if t < 16)
HOST_COMMANDS = frozenset(t for t in MessageType if t >= 16)


class SessionState(enum.IntEnum):
    """What the runtime is doing (the ``state`` field of STATUS)."""

    IDLE = 0
    RUNNING = 1
    DONE = 2
    NO_SIGNAL = 3
    FAULT = 4


class CueKind(enum.IntEnum):
    """What the patient is asked to do (the ``kind`` field of CUE)."""

    REST = 0
    MOVE = 1
    STOP = 2
    DONE = 3


# Field kinds: B/H/I unsigned 8/16/32 bit, f float32, s string, S list of strings,
# P list of (string, string, u16) triples (channel, fault, count), v float32 xyz.
SCHEMAS: dict[MessageType, tuple[tuple[str, str], ...]] = {
    MessageType.HELLO: (("device_id", "s"), ("bundle_id", "s"), ("software", "s"), ("channels", "S"),
                        ("hemisphere", "s")),
    MessageType.STATUS: (("state", "B"), ("trial", "H"), ("n_trials", "H"), ("n_good", "H"),
                         ("samples", "I"), ("lost", "I"), ("signal_ok", "B")),
    MessageType.CUE: (("kind", "B"), ("trial", "H"), ("n_trials", "H"), ("duration_ms", "I")),
    MessageType.QUALITY: (("trial", "H"), ("ok", "B"), ("faults", "P")),
    MessageType.TRIAL_RESULT: (("trial", "H"), ("good", "B"), ("position_mm", "v"), ("reasons", "S")),
    # The session's estimate (edge.session.SessionResult), cap frame, mm: position, 90 % radius,
    # consistency (0..1), localised (0: the usual position, the EEG could not localise; reasons say
    # why), and the placement: cap electrode + offsets along the scalp (anterior = toward the nose,
    # lateral = away from the midline).
    MessageType.HOTSPOT: (("position_mm", "v"), ("radius_mm", "f"), ("consistency", "f"), ("localised", "B"),
                          ("electrode", "s"), ("anterior_mm", "f"), ("lateral_mm", "f"), ("n_good", "H"),
                          ("n_trials", "H"), ("bundle_id", "s"), ("reasons", "S")),
    # Too few good trials: what spoiled them, and the usual position with its radius (never localised).
    MessageType.REDO: (("n_good", "H"), ("needed", "H"), ("n_trials", "H"), ("reasons", "S"), ("faults", "P"),
                       ("radius_mm", "f"), ("consistency", "f"), ("localised", "B"), ("electrode", "s"),
                       ("anterior_mm", "f"), ("lateral_mm", "f")),
    MessageType.ERROR: (("code", "H"), ("message", "s")),
    MessageType.START: (),
    MessageType.STOP: (),
    MessageType.STATUS_REQUEST: (),
}

ENUM_FIELDS: dict[tuple[MessageType, str], type[enum.IntEnum]] = {
    (MessageType.STATUS, "state"): SessionState,
    (MessageType.CUE, "kind"): CueKind,
}
"""Fields whose value must be a member of an enum; a frame with any other value is dropped."""

LIVE_TRIAL = 0xFFFF
"""The ``trial`` value of a QUALITY message about the live signal rather than one trial."""


@dataclass(frozen=True)
class Message:
    """One decoded or to-be-encoded message.

    Attributes
    ----------
    type : MessageType
    fields : dict
        The payload, keyed as in :data:`SCHEMAS` (xyz fields are 3-tuples of float).
    seq : int
        Sequence number (wraps at 65536), set by the sender.
    """

    type: MessageType
    fields: dict
    seq: int = 0

    def __getitem__(self, key: str):
        return self.fields[key]


class MalformedMessage(ValueError):
    """A message's bytes do not match its type's schema."""


_NUMBER = {"B": struct.Struct(">B"), "H": struct.Struct(">H"), "I": struct.Struct(">I"), "f": struct.Struct(">f")}
_XYZ = struct.Struct(">fff")


def _pack_string(value: str) -> bytes:
    raw = str(value).encode("utf-8")[:255]
    return bytes([len(raw)]) + raw


def _pack_field(kind: str, value) -> bytes:
    if kind in _NUMBER:
        return _NUMBER[kind].pack(value)
    if kind == "v":
        return _XYZ.pack(*(float(v) for v in value))
    if kind == "s":
        return _pack_string(value)
    items = list(value)[:255]
    if kind == "S":
        return bytes([len(items)]) + b"".join(_pack_string(item) for item in items)
    return bytes([len(items)]) + b"".join(_pack_string(a) + _pack_string(b) + _NUMBER["H"].pack(min(int(n), 0xFFFF))
                                          for a, b, n in items)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedMessage("payload ends early")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def string(self) -> str:
        raw = self.take(self.take(1)[0])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("string is not UTF-8") from None

    def field(self, kind: str):
        if kind in _NUMBER:
            return _NUMBER[kind].unpack(self.take(_NUMBER[kind].size))[0]
        if kind == "v":
            return _XYZ.unpack(self.take(_XYZ.size))
        if kind == "s":
            return self.string()
        count = self.take(1)[0]
        if kind == "S":
            return [self.string() for _ in range(count)]
        return [(self.string(), self.string(), _NUMBER["H"].unpack(self.take(2))[0]) for _ in range(count)]


def encode_message(message: Message) -> bytes:
    """Serialise a message (header, payload, CRC) without link framing.

    Parameters
    ----------
    message : Message

    Returns
    -------
    bytes
        At most :data:`MAX_MESSAGE_BYTES` long.

    Raises
    ------
    ValueError
        When a field is missing or out of range, or the message is too long.
    """
    schema = SCHEMAS[message.type]
    missing = [name for name, _ in schema if name not in message.fields]
    if missing:
        raise ValueError(f"{message.type.name} needs field(s) {', '.join(missing)}")
    try:
        payload = b"".join(_pack_field(kind, message.fields[name]) for name, kind in schema)
    except struct.error as err:
        raise ValueError(f"{message.type.name}: {err}") from None
    body = _HEADER.pack(PROTOCOL_VERSION, int(message.type), message.seq & 0xFFFF) + payload
    if len(body) + _CRC.size > MAX_MESSAGE_BYTES:
        raise ValueError(f"{message.type.name} message is {len(body) + _CRC.size} bytes; limit {MAX_MESSAGE_BYTES}")
    return body + _CRC.pack(zlib.crc32(body))


def decode_message(data: bytes) -> Message:
    """Parse one message (header, payload, CRC) as produced by :func:`encode_message`.

    Raises
    ------
    MalformedMessage
        With the counter name as ``args[1]``: ``"short"``, ``"bad_crc"``, ``"bad_version"``,
        ``"unknown_type"``, ``"malformed"`` or ``"bad_enum"`` (a value no enum member has).
    """
    if len(data) < _HEADER.size + _CRC.size:
        raise MalformedMessage("message shorter than header and CRC", "short")
    body, crc = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])[0]
    if zlib.crc32(body) != crc:
        raise MalformedMessage("CRC mismatch", "bad_crc")
    version, type_code, seq = _HEADER.unpack(body[:_HEADER.size])
    if version != PROTOCOL_VERSION:
        raise MalformedMessage(f"protocol version {version}, expected {PROTOCOL_VERSION}", "bad_version")
    try:
        message_type = MessageType(type_code)
    except ValueError:
        raise MalformedMessage(f"unknown message type {type_code}", "unknown_type") from None
    reader = _Reader(body[_HEADER.size:])
    try:
        fields = {name: reader.field(kind) for name, kind in SCHEMAS[message_type]}
    except MalformedMessage as err:
        raise MalformedMessage(str(err), "malformed") from None
    if reader.pos != len(reader.data):
        raise MalformedMessage("trailing bytes after payload", "malformed")
    for (enum_type, name), members in ENUM_FIELDS.items():
        if enum_type == message_type and fields[name] not in members._value2member_map_:
            raise MalformedMessage(f"{message_type.name} {name} = {fields[name]} is not a {members.__name__}",
                                   "bad_enum")
    return Message(message_type, fields, seq)


def frame(message: Message) -> bytes:
    """Encode a message for the serial link: COBS + zero delimiter."""
    return cobs.encode(encode_message(message)) + b"\x00"


class FrameDecoder:
    """Incremental serial-link decoder that never raises on bad input.

    Parameters
    ----------
    accept : iterable of MessageType
        The message types this side may receive (the device accepts only
        :data:`HOST_COMMANDS`); anything else is counted as ``unexpected`` and dropped.

    Attributes
    ----------
    counters : collections.Counter
        ``frames`` (accepted) and the drop reasons ``oversized``, ``cobs``, ``short``,
        ``bad_crc``, ``bad_version``, ``unknown_type``, ``malformed``, ``bad_enum``, ``unexpected``.
    """

    def __init__(self, accept: Iterable[MessageType]) -> None:
        self.accept = frozenset(accept)
        self.counters: Counter = Counter()
        self._buffer = bytearray()
        self._discarding = False

    @property
    def dropped(self) -> int:
        """How many frames were dropped for any reason."""
        return sum(count for name, count in self.counters.items() if name != "frames")

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return the complete, valid, accepted messages among them."""
        messages = []
        for part_index, part in enumerate(bytes(data).split(b"\x00")):
            if part_index > 0:
                message = self._finish_frame()
                if message is not None:
                    messages.append(message)
            if self._discarding:
                continue
            self._buffer += part
            if len(self._buffer) > MAX_FRAME_BYTES:
                self.counters["oversized"] += 1
                self._buffer.clear()
                self._discarding = True
        return messages

    def _finish_frame(self) -> Message | None:
        raw, discarding = bytes(self._buffer), self._discarding
        self._buffer.clear()
        self._discarding = False
        if discarding or not raw:
            return None
        try:
            message = decode_message(cobs.decode(raw))
        except cobs.DecodeError:
            self.counters["cobs"] += 1
            return None
        except MalformedMessage as err:
            self.counters[err.args[1]] += 1
            return None
        if message.type not in self.accept:
            self.counters["unexpected"] += 1
            return None
        self.counters["frames"] += 1
        return message


class Sequencer:
    """Numbers outgoing messages (one per link direction)."""

    def __init__(self) -> None:
        self._next = 0

    def message(self, message_type: MessageType, **fields) -> Message:
        """Build the next numbered message of ``message_type``."""
        seq = self._next
        self._next = (self._next + 1) & 0xFFFF
        return Message(message_type, fields, seq)
