"""Device serial link ↔ host monitor over a virtual null-modem cable (two ptys, pyserial both ends)."""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest

from edge.protocol import Message, MessageType, Sequencer, frame
from edge.serial_link import SerialLink
from hardware.monitor import Display, MonitorClient, main, run_monitor
from hardware.nullmodem import NullModem

HELLO = dict(device_id="pt-1", bundle_id="abc123", software="0.1", channels=["C4", "C2"], hemisphere="right")
HOTSPOT = dict(position_mm=(41.0, 10.0, 85.0), radius_mm=11.2, consistency=0.83, localised=1, electrode="C4h",
               anterior_mm=8.2, lateral_mm=3.1, n_good=12, n_trials=15, bundle_id="abc123", reasons=[])


@pytest.fixture()
def cable():
    with NullModem() as modem:
        yield modem


def test_monitor_shows_the_session_and_returns_the_result(cable: NullModem) -> None:
    link = SerialLink(cable.device_port)
    sequencer = Sequencer()
    script = [(MessageType.HELLO, HELLO),
              (MessageType.CUE, dict(kind=1, trial=0, n_trials=15, duration_ms=4000)),
              (MessageType.TRIAL_RESULT, dict(trial=0, good=0, position_mm=(float("nan"),) * 3,
                                              reasons=["C4 railed"])),
              (MessageType.HOTSPOT, HOTSPOT)]

    def device() -> None:
        time.sleep(0.2)
        commands = link.poll_commands()
        assert [c.type for c in commands] == [MessageType.STATUS_REQUEST, MessageType.START]
        for message_type, fields in script:
            link.send(sequencer.message(message_type, **fields))

    lines: list[str] = []
    thread = threading.Thread(target=device)
    thread.start()
    result = run_monitor(cable.host_port, start=True, until_result=True, timeout_s=10, show=lines.append)
    thread.join()
    link.close()
    assert result is not None and result.type == MessageType.HOTSPOT
    text = "\n".join(lines)
    assert "right hemisphere (left hand)" in text
    assert "trial 1/15: MOVE your left hand (4 s)" in text
    assert "trial 1: rejected (C4 railed)" in text
    assert ("HOTSPOT (cap frame) 8 mm forward and 3 mm outward from C4h, within 11 mm (90 %), consistency 83 %"
            in text)
    assert "position (+41.0, +10.0, +85.0) mm (cap frame)" in text and "12/15 good trials, bundle abc123" in text
    assert "depth" not in text and "deep" not in text


def test_the_monitor_says_when_the_eeg_could_not_localise() -> None:
    display = Display()
    prior = dict(HOTSPOT, localised=0, radius_mm=14.3, anterior_mm=-0.2, lateral_mm=-6.0,
                 reasons=["the EEG did not narrow down the population's hotspot region"])
    text = display.describe(Message(MessageType.HOTSPOT, prior))
    assert text.splitlines()[:2] == [
        "CANNOT LOCALISE: the EEG did not narrow down the population's hotspot region",
        "  usual position (cap frame) 6 mm toward the middle from C4h, within 14 mm (90 %), consistency 83 %"]
    assert "HOTSPOT" not in text
    redo = dict(n_good=2, needed=8, n_trials=15, reasons=["only 2 of 15 trials passed the signal check; 8 needed"],
                faults=[("C4", "railed", 13)], radius_mm=14.3, consistency=0.0, localised=0, electrode="C4h",
                anterior_mm=-0.2, lateral_mm=-6.0)
    assert display.describe(Message(MessageType.REDO, redo)).splitlines() == [
        "REDO the session:", "  - only 2 of 15 trials passed the signal check; 8 needed",
        "  CANNOT LOCALISE: usual position (cap frame) 6 mm toward the middle from C4h, within 14 mm (90 %)"]


def test_garbage_from_the_host_is_dropped_and_commands_still_work(cable: NullModem) -> None:
    link = SerialLink(cable.device_port)
    client = MonitorClient(cable.host_port)
    client.serial.write(b"\x00\x17garbage\xff\x00" + frame(Message(MessageType.HOTSPOT, HOTSPOT)))
    client.send(MessageType.STOP)
    deadline = time.monotonic() + 5
    commands = []
    while not commands and time.monotonic() < deadline:
        commands = link.poll_commands()
        time.sleep(0.02)
    assert [c.type for c in commands] == [MessageType.STOP]
    assert link.decoder.counters["unexpected"] == 1 and link.decoder.dropped >= 2
    client.close()
    link.close()


def test_device_never_blocks_when_nobody_reads() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = SerialLink(os.ttyname(slave))
    sequencer = Sequencer()
    started = time.monotonic()
    for _ in range(5000):
        link.send(sequencer.message(MessageType.HOTSPOT, **HOTSPOT))
    assert time.monotonic() - started < 5.0
    assert link.counters["dropped_queue_full"] > 0
    link.close()
    os.close(master)
    os.close(slave)


def test_display_skips_repeated_status() -> None:
    display = Display()
    status = Message(MessageType.STATUS, dict(state=1, trial=2, n_trials=10, n_good=2, samples=1, lost=0, signal_ok=1))
    assert display.describe(status) == "status: running, trial 3/10, 2 good, 0 samples lost"
    assert display.describe(status) is None


def test_monitor_cli_errors_are_one_line(capsys, tmp_path) -> None:
    from edge.errors import run_cli

    assert run_cli(main, ["--port", str(tmp_path / "nope")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_monitor_times_out_without_a_result(cable: NullModem) -> None:
    lines: list[str] = []
    assert run_monitor(cable.host_port, until_result=True, timeout_s=0.3, show=lines.append) is None
    assert lines == []


def test_frames_with_unknown_enum_values_are_dropped_and_text_is_escaped(cable: NullModem) -> None:
    # what a device (or anything on the cable) could send: valid CRC, values the protocol does not have,
    # and text with a line break and terminal escape codes trying to fake a HOTSPOT line
    raw = os.open(cable.device_port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(raw)
    sequencer = Sequencer()
    fake = "stopped\nHOTSPOT (+1.0, +2.0, +3.0) mm (head frame)\x1b[2K\u202e"
    script = [(MessageType.STATUS, dict(state=200, trial=0, n_trials=1, n_good=0, samples=1, lost=0, signal_ok=1)),
              (MessageType.CUE, dict(kind=9, trial=0, n_trials=1, duration_ms=1)),
              (MessageType.ERROR, dict(code=13, message=fake)),
              (MessageType.REDO, dict(n_good=0, needed=1, n_trials=1, reasons=[fake], faults=[("C3\x1b[31m", "x", 1)],
                                    radius_mm=14.0, consistency=0.0, localised=False, electrode="C3\x1b[2K",
                                    anterior_mm=0.0, lateral_mm=0.0))]

    def device() -> None:
        time.sleep(0.2)
        for message_type, fields in script:
            os.write(raw, frame(sequencer.message(message_type, **fields)))

    threading.Thread(target=device, daemon=True).start()
    lines: list[str] = []
    client_result = run_monitor(cable.host_port, until_result=True, timeout_s=5, show=lines.append)
    os.close(raw)
    assert client_result is not None and client_result.type == MessageType.REDO
    text = "\n".join(lines)
    assert "\x1b" not in text and "\u202e" not in text
    assert not [line for line in text.splitlines() if line.startswith("HOTSPOT")]
    assert "stopped\\nHOTSPOT" in text and "\\x1b[2K" in text and "\\u202e" in text
    assert len(lines) == 2  # the ERROR and the REDO; the STATUS and CUE with unknown values were dropped


def test_decoder_counts_unknown_enum_values() -> None:
    from edge.protocol import DEVICE_MESSAGES, FrameDecoder

    decoder = FrameDecoder(DEVICE_MESSAGES)
    sequencer = Sequencer()
    data = frame(sequencer.message(MessageType.STATUS, state=4, trial=0, n_trials=1, n_good=0, samples=1, lost=0,
                                   signal_ok=1))
    data += frame(sequencer.message(MessageType.STATUS, state=5, trial=0, n_trials=1, n_good=0, samples=1, lost=0,
                                    signal_ok=1))
    data += frame(sequencer.message(MessageType.CUE, kind=4, trial=0, n_trials=1, duration_ms=1))
    assert [m["state"] for m in decoder.feed(data)] == [4]
    assert decoder.counters["bad_enum"] == 2
