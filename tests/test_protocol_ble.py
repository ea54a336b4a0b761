"""BLE GATT service definition and payloads (no radio needed)."""

from __future__ import annotations

import asyncio
import math
import uuid

from bless import GATTAttributePermissions, GATTCharacteristicProperties
from bless.backends.server import BaseBlessServer

from edge.ble import (CHARACTERISTICS, COMMAND_CHAR_UUID, HOTSPOT_CHAR_UUID, HOTSPOT_SERVICE_UUID,
                      MAX_BLE_MESSAGE_BYTES, STATUS_CHAR_UUID, CommandInbox, ble_payload, characteristic_for,
                      gatt_tree)
from edge.protocol import DEVICE_MESSAGES, Message, MessageType, decode_message, encode_message

NINE = ["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"]


def test_every_message_type_has_exactly_one_characteristic() -> None:
    for message_type in MessageType:
        assert sum(message_type in c.carries for c in CHARACTERISTICS) == 1
    assert characteristic_for(MessageType.HOTSPOT).uuid == HOTSPOT_CHAR_UUID
    assert characteristic_for(MessageType.REDO).uuid == HOTSPOT_CHAR_UUID
    assert characteristic_for(MessageType.CUE).uuid == STATUS_CHAR_UUID
    assert characteristic_for(MessageType.START).uuid == COMMAND_CHAR_UUID
    uuids = [HOTSPOT_SERVICE_UUID] + [c.uuid for c in CHARACTERISTICS]
    assert len({str(uuid.UUID(u)) for u in uuids}) == 4


class RecordingServer(BaseBlessServer):
    """bless's own add_gatt driving a server that records what it is asked to host."""

    def __init__(self) -> None:
        super().__init__(loop=asyncio.new_event_loop())
        self.hosted: dict[str, dict] = {}

    async def add_new_service(self, uuid: str) -> None:
        self.hosted[uuid] = {}

    async def add_new_characteristic(self, service_uuid, char_uuid, properties, value, permissions) -> None:
        self.hosted[service_uuid][char_uuid] = (properties, value, permissions)

    async def start(self, **kwargs) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def is_connected(self) -> bool:
        return False

    async def is_advertising(self) -> bool:
        return False

    async def add_new_descriptor(self, *args) -> None:
        raise AssertionError("the service has no descriptors")

    def update_value(self, service_uuid: str, char_uuid: str) -> bool:
        return True


def test_gatt_tree_is_accepted_by_bless_add_gatt() -> None:
    server = RecordingServer()
    server.loop.run_until_complete(server.add_gatt(gatt_tree()))
    server.loop.close()
    hosted = server.hosted[HOTSPOT_SERVICE_UUID]
    props = GATTCharacteristicProperties
    assert hosted[HOTSPOT_CHAR_UUID][0] == props.read | props.notify
    assert hosted[STATUS_CHAR_UUID][0] == props.read | props.notify
    assert hosted[COMMAND_CHAR_UUID][0] == props.write
    assert hosted[COMMAND_CHAR_UUID][2] == GATTAttributePermissions.writeable
    assert hosted[HOTSPOT_CHAR_UUID][2] == GATTAttributePermissions.readable


def longest_cannot_localise_reasons() -> list[str]:
    """What decide() says when the EEG did not localise, the longest of its cases."""
    from edge.estimate import Calibration, Prior, decide

    prior = Prior(mean_mm=(-38.0, -15.0, 62.0), sd_mm=(4.0, 4.0, 4.0))
    weak = decide(prior, Calibration(min_erd_db=29.99), prior.mean_mm, (1.0, 1.0, 1.0), erd_db=-29.99)
    wide = decide(prior, Calibration(), prior.mean_mm, (50.0, 50.0, 50.0))
    assert not weak.localised and not wide.localised
    return max(weak.reasons, wide.reasons, key=lambda reasons: len("".join(reasons)))


def test_realistic_messages_fit_one_notification() -> None:
    worst = {
        MessageType.HELLO: dict(device_id="x" * 32, bundle_id="0123456789ab", software="0.1.0", channels=NINE,
                                hemisphere="right"),
        MessageType.STATUS: dict(state=1, trial=1, n_trials=1, n_good=1, samples=1, lost=1, signal_ok=1),
        MessageType.CUE: dict(kind=1, trial=1, n_trials=1, duration_ms=1),
        MessageType.QUALITY: dict(trial=1, ok=0, faults=[(name, "near_railed", 1) for name in NINE]),
        MessageType.TRIAL_RESULT: dict(trial=1, good=0, position_mm=(math.nan,) * 3,
                                       reasons=["packet loss 12.5 %", "FCC3h railed"]),
        # the longest reason a session that could not localise gives (edge.estimate.decide), from the real code
        MessageType.HOTSPOT: dict(position_mm=(1, 2, 3), radius_mm=14.0, consistency=0.5, localised=0,
                                  electrode="FCC3h", anterior_mm=-12.5, lateral_mm=12.5, n_good=400, n_trials=400,
                                  bundle_id="0123456789ab", reasons=longest_cannot_localise_reasons()),
        MessageType.REDO: dict(n_good=1, needed=10, n_trials=40, reasons=["only 1 of 40 trials passed the signal check"],
                               faults=[(name, "railed", 40) for name in NINE[:6]], radius_mm=14.0, consistency=1.0,
                               localised=0, electrode="FCC3h", anterior_mm=-12.5, lateral_mm=12.5),
        MessageType.ERROR: dict(code=13, message="board not answering; check the dongle"),
    }
    assert set(worst) == set(DEVICE_MESSAGES)
    for message_type, fields in worst.items():
        payload = ble_payload(Message(message_type, fields))
        assert len(payload) <= MAX_BLE_MESSAGE_BYTES
        assert decode_message(payload).fields.keys() == fields.keys()


def test_command_writes_are_decoded_and_bad_ones_counted() -> None:
    inbox = CommandInbox()
    inbox.write(encode_message(Message(MessageType.START, {})))
    inbox.write(b"\x01\x02garbage")
    inbox.write(encode_message(Message(MessageType.CUE, dict(kind=0, trial=0, n_trials=1, duration_ms=1))))
    inbox.write(bytearray(encode_message(Message(MessageType.STOP, {}, seq=5))))
    assert [m.type for m in inbox.take()] == [MessageType.START, MessageType.STOP]
    assert inbox.take() == []
    assert inbox.counters["unexpected"] == 1 and inbox.counters["bad_crc"] == 1 and inbox.counters["frames"] == 2
