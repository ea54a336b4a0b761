"""Report-link framing: round trips, and a parser that counts and drops bad frames, never crashing."""

from __future__ import annotations

import math
import zlib

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (DEVICE_MESSAGES, HOST_COMMANDS, MAX_FRAME_BYTES, FrameDecoder, Message, MessageType,
                           SCHEMAS, Sequencer, decode_message, encode_message, frame)

SAMPLE_FIELDS = {
    MessageType.HELLO: dict(device_id="dev-01", bundle_id="b1f2", software="0.1.0", channels=["C3", "FC3"],
                            hemisphere="left"),
    MessageType.STATUS: dict(state=1, trial=3, n_trials=20, n_good=2, samples=12345, lost=7, signal_ok=1),
    MessageType.CUE: dict(kind=1, trial=3, n_trials=20, duration_ms=4000),
    MessageType.QUALITY: dict(trial=3, ok=0, faults=[("C3", "railed", 1), ("CP3", "flat", 1)]),
    MessageType.TRIAL_RESULT: dict(trial=3, good=1, position_mm=(-40.5, 12.25, 80.0), reasons=[]),
    MessageType.HOTSPOT: dict(position_mm=(-40.5, 12.25, 80.0), radius_mm=11.5, consistency=0.75, localised=1,
                              electrode="FCC3h", anterior_mm=8.25, lateral_mm=-3.5, n_good=15, n_trials=20,
                              bundle_id="b1f2", reasons=[]),
    MessageType.REDO: dict(n_good=3, needed=10, n_trials=20, reasons=["too few good trials"],
                           faults=[("C3", "railed", 12)], radius_mm=14.25, consistency=0.5, localised=0,
                           electrode="C3", anterior_mm=-2.5, lateral_mm=4.0),
    MessageType.ERROR: dict(code=13, message="board not answering"),
    MessageType.START: {}, MessageType.STOP: {}, MessageType.STATUS_REQUEST: {},
}


def test_every_message_type_has_a_sample() -> None:
    assert set(SAMPLE_FIELDS) == set(MessageType) == set(SCHEMAS)
    assert DEVICE_MESSAGES.isdisjoint(HOST_COMMANDS)
    assert {MessageType.START, MessageType.STOP, MessageType.STATUS_REQUEST} == HOST_COMMANDS


@pytest.mark.parametrize("message_type", list(MessageType))
def test_round_trip_every_type(message_type: MessageType) -> None:
    message = Message(message_type, SAMPLE_FIELDS[message_type], seq=65535)
    decoded = decode_message(encode_message(message))
    assert decoded.type == message_type and decoded.seq == 65535
    for name, value in SAMPLE_FIELDS[message_type].items():
        if isinstance(value, tuple):
            assert decoded[name] == pytest.approx(value)
        else:
            assert decoded[name] == value


def test_stream_of_frames_split_anywhere_decodes_in_order() -> None:
    sequencer = Sequencer()
    messages = [sequencer.message(t, **SAMPLE_FIELDS[t]) for t in DEVICE_MESSAGES]
    stream = b"".join(frame(m) for m in messages)
    decoder = FrameDecoder(DEVICE_MESSAGES)
    received = []
    for start in range(0, len(stream), 7):
        received += decoder.feed(stream[start:start + 7])
    assert [m.seq for m in received] == list(range(len(messages)))
    assert decoder.counters["frames"] == len(messages) and decoder.dropped == 0


def test_device_drops_device_messages_and_counts_them() -> None:
    decoder = FrameDecoder(HOST_COMMANDS)
    stream = frame(Message(MessageType.HOTSPOT, SAMPLE_FIELDS[MessageType.HOTSPOT])) + frame(
        Message(MessageType.START, {}))
    assert [m.type for m in decoder.feed(stream)] == [MessageType.START]
    assert decoder.counters["unexpected"] == 1


def test_corrupted_unknown_and_oversized_frames_are_counted() -> None:
    decoder = FrameDecoder(DEVICE_MESSAGES)
    good = encode_message(Message(MessageType.CUE, SAMPLE_FIELDS[MessageType.CUE]))
    flipped = bytearray(good)
    flipped[5] ^= 0x10
    unknown = bytearray(good[:-4])
    unknown[1] = 99
    unknown += zlib.crc32(bytes(unknown)).to_bytes(4, "big")
    stream = (cobs.encode(bytes(flipped)) + b"\x00" + cobs.encode(bytes(unknown)) + b"\x00"
              + b"\x01" * (MAX_FRAME_BYTES + 10) + b"\x00" + b"\x05\x01\x00" + cobs.encode(good) + b"\x00")
    messages = decoder.feed(stream)
    assert [m.type for m in messages] == [MessageType.CUE]
    assert decoder.counters["bad_crc"] == 1
    assert decoder.counters["unknown_type"] == 1
    assert decoder.counters["oversized"] == 1
    assert decoder.counters["cobs"] == 1


def test_nan_position_survives_for_a_bad_trial() -> None:
    fields = dict(SAMPLE_FIELDS[MessageType.TRIAL_RESULT], good=0, position_mm=(math.nan,) * 3, reasons=["C3 railed"])
    decoded = decode_message(encode_message(Message(MessageType.TRIAL_RESULT, fields)))
    assert all(math.isnan(v) for v in decoded["position_mm"]) and decoded["reasons"] == ["C3 railed"]


def test_encoding_a_message_without_its_fields_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="HOTSPOT needs"):
        encode_message(Message(MessageType.HOTSPOT, {}))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_fuzz_random_bytes_never_crash(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(set(MessageType))
    for chunk in chunks:
        for message in decoder.feed(chunk):
            assert isinstance(message.type, MessageType)
    assert decoder.counters["frames"] + decoder.dropped <= sum(c.count(0) for c in chunks)


@settings(max_examples=300, deadline=None)
@given(garbage=st.lists(st.binary(max_size=80), min_size=1, max_size=6),
       types=st.lists(st.sampled_from(sorted(DEVICE_MESSAGES)), min_size=1, max_size=6))
def test_fuzz_valid_frames_between_garbage_all_arrive(garbage: list[bytes], types: list[MessageType]) -> None:
    decoder = FrameDecoder(DEVICE_MESSAGES)
    stream = b""
    for index, message_type in enumerate(types):
        # A zero byte ends whatever garbage came before, so the next frame starts clean.
        stream += garbage[index % len(garbage)] + b"\x00" + frame(Message(message_type, SAMPLE_FIELDS[message_type], index))
    received = decoder.feed(stream)
    assert [m.seq for m in received][-len(types):] == list(range(len(types)))


@settings(max_examples=300, deadline=None)
@given(message_type=st.sampled_from(sorted(MessageType)), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_fuzz_any_single_bit_flip_is_dropped(message_type: MessageType, position: int, bit: int) -> None:
    raw = bytearray(encode_message(Message(message_type, SAMPLE_FIELDS[message_type])))
    raw[position % len(raw)] ^= 1 << bit
    decoder = FrameDecoder(set(MessageType))
    assert decoder.feed(cobs.encode(bytes(raw)) + b"\x00") == []
    assert decoder.dropped == 1
