"""BLE GATT service definition and payloads (no radio needed)."""

from __future__ import annotations

import asyncio
import math
import uuid

from bless import GATTAttributePermissions, GATTCharacteristicProperties
from bless.backends.server import BaseBlessServer

from edge.ble import (CHARACTERISTICS, COMMAND_CHAR_UUID, DEVICE_CHAR_UUID, HOTSPOT_CHAR_UUID, HOTSPOT_SERVICE_UUID,
                      MAX_BLE_MESSAGE_BYTES, STATUS_CHAR_UUID, CommandInbox, ble_payload, characteristics_for,
                      for_characteristic, gatt_tree)
from edge.protocol import DEVICE_MESSAGES, SCHEMAS, Message, MessageType, decode_message, encode_message

NINE = ["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"]
HELLO = Message(MessageType.HELLO, dict(device_id="pt-0042", bundle_id="0123456789ab", software="0.1.0",
                                        channels=NINE, hemisphere="left"))


def test_every_message_type_has_its_characteristics() -> None:
    for message_type in MessageType:
        expected = 2 if message_type == MessageType.HELLO else 1
        assert len(characteristics_for(message_type)) == expected, message_type
    assert [c.uuid for c in characteristics_for(MessageType.HOTSPOT)] == [HOTSPOT_CHAR_UUID]
    assert [c.uuid for c in characteristics_for(MessageType.TRIAL_RESULT)] == [HOTSPOT_CHAR_UUID]
    assert [c.uuid for c in characteristics_for(MessageType.CUE)] == [STATUS_CHAR_UUID]
    assert [c.uuid for c in characteristics_for(MessageType.START)] == [COMMAND_CHAR_UUID]
    assert [c.uuid for c in characteristics_for(MessageType.HELLO)] == [STATUS_CHAR_UUID, DEVICE_CHAR_UUID]
    uuids = [HOTSPOT_SERVICE_UUID] + [c.uuid for c in CHARACTERISTICS]
    assert len({str(uuid.UUID(u)) for u in uuids}) == 5


def test_before_pairing_nothing_names_the_device_or_carries_a_result() -> None:
    open_chars = [c for c in CHARACTERISTICS if not c.encrypted]
    assert [c.name for c in open_chars] == ["status"]
    for characteristic in open_chars:
        assert not {MessageType.HOTSPOT, MessageType.REDO, MessageType.TRIAL_RESULT} & characteristic.carries
        for message_type in characteristic.carries:
            assert "position_mm" not in dict(SCHEMAS[message_type])
    on_status = decode_message(ble_payload(for_characteristic(HELLO, characteristics_for(MessageType.HELLO)[0])))
    assert on_status["device_id"] == "" and on_status["bundle_id"] == "0123456789ab"
    paired = decode_message(ble_payload(for_characteristic(HELLO, characteristics_for(MessageType.HELLO)[1])))
    assert paired["device_id"] == "pt-0042"
    assert b"pt-0042" not in ble_payload(for_characteristic(HELLO, open_chars[0]))


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
    props, perms = GATTCharacteristicProperties, GATTAttributePermissions
    assert hosted[STATUS_CHAR_UUID][0] == props.read | props.notify
    assert hosted[STATUS_CHAR_UUID][2] == perms.readable
    assert hosted[HOTSPOT_CHAR_UUID][0] == props.read and hosted[DEVICE_CHAR_UUID][0] == props.read
    assert hosted[HOTSPOT_CHAR_UUID][2] == perms.readable | perms.read_encryption_required
    assert hosted[DEVICE_CHAR_UUID][2] == perms.readable | perms.read_encryption_required
    assert hosted[COMMAND_CHAR_UUID][0] == props.write
    assert hosted[COMMAND_CHAR_UUID][2] == perms.writeable | perms.write_encryption_required


def test_bless_asks_bluez_for_an_encrypted_link_on_the_command_and_the_results() -> None:
    # what bless's BlueZ backend registers on D-Bus (org.bluez.GattCharacteristic1 "Flags")
    from bless.backends.bluezdbus.characteristic import flags_to_dbus, transform_flags_with_permissions

    hosted = gatt_tree()[HOTSPOT_SERVICE_UUID]
    bluez = {uuid: sorted(transform_flags_with_permissions(flag, spec["Permissions"]).value
                          for flag in flags_to_dbus(spec["Properties"]))
             for uuid, spec in hosted.items()}
    assert bluez[COMMAND_CHAR_UUID] == ["encrypt-write"]
    assert bluez[HOTSPOT_CHAR_UUID] == ["encrypt-read"] and bluez[DEVICE_CHAR_UUID] == ["encrypt-read"]
    assert bluez[STATUS_CHAR_UUID] == ["notify", "read"]


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
