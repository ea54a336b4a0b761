"""The BLE report link: a GATT service with the same messages as the serial link.

Service ``HOTSPOT_SERVICE_UUID`` has four characteristics:

* status (read, notify; open): what anyone near the device may see before pairing: STATUS, CUE,
  QUALITY, ERROR and a HELLO whose device id is blank. None of them names the device or the patient
  or carries a hotspot position;
* device (read; encrypted link only): the full HELLO, device id included;
* hotspot (read; encrypted link only): the results: HOTSPOT, REDO and TRIAL_RESULT. A phone reads it
  when the status says a trial or the session is done;
* command (write; encrypted link only): START, STOP or STATUS_REQUEST.

"Encrypted link only" is bless's ``read_encryption_required`` / ``write_encryption_required``
permission, which bless's BlueZ backend turns into BlueZ's ``encrypt-read`` / ``encrypt-write``
flags: BlueZ refuses the request with "insufficient encryption" until the central has paired and
encrypted the link (bonding is BlueZ's agent's business). bless cannot ask BlueZ for encrypted
notifications (``encrypt-notify``), so no characteristic that carries results or identities notifies.

A characteristic value is exactly one message as :func:`edge.protocol.encode_message`
makes it (header, payload, CRC; no COBS, BLE frames it). Messages are at most
:data:`MAX_BLE_MESSAGE_BYTES`; a central must negotiate an ATT MTU of at least 185 bytes (all
current phones do) to get a notification in one piece, else it reads the characteristic.

Running it needs a radio: Linux with BlueZ >= 5.50 on D-Bus, the ``bless`` package, and
permission to register a GATT application (the Pi's ``bluetooth`` group or root). ``bless``
is imported only when the link starts, so this module imports without it; the service
definition and payloads are tested without a radio.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import Counter
from dataclasses import dataclass, replace

from edge.errors import ErrorCode, HotspotError, soft_import
from edge.protocol import HOST_COMMANDS, MalformedMessage, Message, MessageType, decode_message, encode_message

HOTSPOT_SERVICE_UUID = "6f1d0001-3c1b-4b8e-9e1a-2a5b7c0de001"
HOTSPOT_CHAR_UUID = "6f1d0002-3c1b-4b8e-9e1a-2a5b7c0de001"
STATUS_CHAR_UUID = "6f1d0003-3c1b-4b8e-9e1a-2a5b7c0de001"
COMMAND_CHAR_UUID = "6f1d0004-3c1b-4b8e-9e1a-2a5b7c0de001"
DEVICE_CHAR_UUID = "6f1d0005-3c1b-4b8e-9e1a-2a5b7c0de001"
MAX_BLE_MESSAGE_BYTES = 182
START_TIMEOUT_S = 10.0
IDENTIFYING_FIELDS = ("device_id",)
"""Message fields an open (unencrypted) characteristic never carries."""


@dataclass(frozen=True)
class Characteristic:
    """One GATT characteristic of the service, as data.

    Attributes
    ----------
    uuid : str
    name : str
    properties : tuple of str
        bless ``GATTCharacteristicProperties`` member names.
    permissions : tuple of str
        bless ``GATTAttributePermissions`` member names.
    carries : frozenset of MessageType
        The messages whose payloads this characteristic holds.
    """

    uuid: str
    name: str
    properties: tuple[str, ...]
    permissions: tuple[str, ...]
    carries: frozenset

    @property
    def encrypted(self) -> bool:
        """Whether only a paired, encrypted link may read or write it."""
        return any(name.endswith("_encryption_required") for name in self.permissions)


CHARACTERISTICS = (
    Characteristic(STATUS_CHAR_UUID, "status", ("read", "notify"), ("readable",),
                   frozenset({MessageType.HELLO, MessageType.STATUS, MessageType.CUE, MessageType.QUALITY,
                              MessageType.ERROR})),
    Characteristic(DEVICE_CHAR_UUID, "device", ("read",), ("readable", "read_encryption_required"),
                   frozenset({MessageType.HELLO})),
    Characteristic(HOTSPOT_CHAR_UUID, "hotspot", ("read",), ("readable", "read_encryption_required"),
                   frozenset({MessageType.HOTSPOT, MessageType.REDO, MessageType.TRIAL_RESULT})),
    Characteristic(COMMAND_CHAR_UUID, "command", ("write",), ("writeable", "write_encryption_required"),
                   frozenset(HOST_COMMANDS)),
)


def characteristics_for(message_type: MessageType) -> list[Characteristic]:
    """The characteristics that carry ``message_type`` (HELLO: the open one without the device id, and one more)."""
    return [c for c in CHARACTERISTICS if message_type in c.carries]


def for_characteristic(message: Message, characteristic: Characteristic) -> Message:
    """The message as ``characteristic`` carries it: identifying fields blank on an open characteristic."""
    if characteristic.encrypted or not any(name in message.fields for name in IDENTIFYING_FIELDS):
        return message
    return replace(message, fields={**message.fields, **{name: "" for name in IDENTIFYING_FIELDS
                                                        if name in message.fields}})


def ble_payload(message: Message) -> bytes:
    """The characteristic value for one device message.

    Raises
    ------
    ValueError
        When the message is longer than :data:`MAX_BLE_MESSAGE_BYTES`.
    """
    data = encode_message(message)
    if len(data) > MAX_BLE_MESSAGE_BYTES:
        raise ValueError(f"{message.type.name} message is {len(data)} bytes; BLE limit {MAX_BLE_MESSAGE_BYTES}")
    return data


def gatt_tree() -> dict:
    """The service in bless's ``add_gatt`` layout (imports bless)."""
    from bless import GATTAttributePermissions, GATTCharacteristicProperties

    def flags(enum, names):
        value = enum(0)
        for name in names:
            value |= enum[name]
        return value

    return {HOTSPOT_SERVICE_UUID: {
        c.uuid: {"Properties": flags(GATTCharacteristicProperties, c.properties),
                 "Permissions": flags(GATTAttributePermissions, c.permissions),
                 "Value": None if "write" in c.properties else bytearray()}
        for c in CHARACTERISTICS}}


class CommandInbox:
    """Decodes command writes; bad or unexpected writes are counted and dropped."""

    def __init__(self) -> None:
        self.counters: Counter = Counter()
        self._queue: queue.Queue[Message] = queue.Queue()

    def write(self, value: bytes) -> None:
        """Handle one write to the command characteristic (never raises on bad bytes)."""
        try:
            message = decode_message(bytes(value))
        except MalformedMessage as err:
            self.counters[err.args[1]] += 1
            return
        if message.type not in HOST_COMMANDS:
            self.counters["unexpected"] += 1
            return
        self.counters["frames"] += 1
        self._queue.put(message)

    def take(self) -> list[Message]:
        """The commands received since the last call."""
        messages = []
        while True:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                return messages


class BleLink:
    """The GATT peripheral, run by bless on its own event-loop thread.

    Parameters
    ----------
    name : str
        The advertised device name.
    """

    name = "ble"

    def __init__(self, name: str) -> None:
        soft_import("bless", "[links.ble] enabled")  # fail early and clearly when it is missing
        self.advertised_name = name
        self.inbox = CommandInbox()
        self.counters: Counter = Counter()
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="ble", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_TIMEOUT_S)
        except Exception as err:  # bless/BlueZ report failures with many exception types
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise HotspotError(f"cannot start the BLE GATT server ({err}); is BlueZ running and a radio present? "
                               "or set [links.ble] enabled = false", ErrorCode.BOARD_ERROR) from None

    async def _start(self) -> None:
        from bless import BlessServer

        server = BlessServer(name=self.advertised_name, loop=self._loop)
        server.read_request_func = lambda characteristic, **_: characteristic.value
        server.write_request_func = lambda characteristic, value, **_: self.inbox.write(value)
        await server.add_gatt(gatt_tree())
        await server.start()
        self._server = server

    def _publish(self, uuid: str, payload: bytes) -> None:
        characteristic = self._server.get_characteristic(uuid)
        characteristic.value = bytearray(payload)
        self._server.update_value(HOTSPOT_SERVICE_UUID, uuid)

    def send(self, message: Message) -> None:
        """Set the matching characteristics to the message and notify subscribers of the open one."""
        for characteristic in characteristics_for(message.type):
            try:
                payload = ble_payload(for_characteristic(message, characteristic))
            except ValueError:
                self.counters["too_long"] += 1
                continue
            self._loop.call_soon_threadsafe(self._publish, characteristic.uuid, payload)
            self.counters["sent"] += 1

    def flush(self) -> None:
        """Nothing to do: bless sends on its own thread."""

    def poll_commands(self) -> list[Message]:
        """The commands written since the last call."""
        return self.inbox.take()

    def stats(self) -> dict:
        """Counters for health.json: notifications sent and dropped, and what was written."""
        return {**self.counters, "received": dict(self.inbox.counters)}

    def close(self) -> None:
        """Stop advertising and the event loop."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(START_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)
