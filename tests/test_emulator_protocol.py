"""The board emulator speaks the Cyton firmware's serial protocol (checked byte by byte with pyserial)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mne
import numpy as np
import pytest
import serial
from brainflow.board_shim import BoardShim

from edge.errors import HotspotError, run_cli
from edge.board import OPENBCI_BOARDS, load_board
from hardware.electrode_maps import load_map, map_names
from hardware.emulator.__main__ import console_command, main
from hardware.emulator.cyton import CytonEmulator, line_noise
from hardware.emulator.faults import parse_fault
from hardware.emulator.firmware import DONGLE_FAILURE, PACKET_SIZE, encode_packets
from hardware.emulator.sources import recording_source


def decode(packet: bytes) -> tuple[int, list[int], int]:
    """Decode one packet independently of the encoder: (counter, counts, footer)."""
    assert len(packet) == PACKET_SIZE and packet[0] == 0xA0
    counts = [int.from_bytes(packet[2 + 3 * i:5 + 3 * i], "big", signed=True) for i in range(8)]
    return packet[1], counts, packet[32]


def read_until(port: serial.Serial, marker: bytes, timeout_s: float = 3.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while marker not in data and time.monotonic() < deadline:
        data += port.read(port.in_waiting or 1)
    return data


def read_packets(port: serial.Serial, n: int, timeout_s: float = 3.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < n * PACKET_SIZE and time.monotonic() < deadline:
        data += port.read(n * PACKET_SIZE - len(data))
    return data


def talk(port: serial.Serial, command: str) -> bytes:
    port.write(command.encode())
    return read_until(port, b"$$$")


@pytest.fixture
def emulator():
    source = np.zeros((8, 2500))
    source[0] = np.linspace(-100.0, 100.0, 2500)
    with CytonEmulator(source, speed=2.0) as running:
        yield running


@pytest.fixture
def port(emulator):
    with serial.Serial(emulator.port, 115200, timeout=0.1) as opened:
        yield opened


def test_board_descriptions_match_brainflow() -> None:
    assert OPENBCI_BOARDS == ("cyton", "cyton_daisy")
    for name in OPENBCI_BOARDS:
        board = load_board(name)
        descr = BoardShim.get_board_descr(board.data_board_id)
        assert descr["sampling_rate"] == board.sampling_rate
        assert descr["eeg_channels"] == list(board.eeg_rows)
        assert descr["package_num_channel"] == board.counter_row
        assert board.uv_per_count() == pytest.approx(4.5 / 24 / (2**23 - 1) * 1e6)
    for name in map_names():
        channel_map = load_map(name)
        assert len(channel_map.channels) in (5, 9, load_board(channel_map.board).n_channels)
    for board_name in OPENBCI_BOARDS:
        gui_names = BoardShim.get_board_descr(load_board(board_name).data_board_id)["eeg_names"].split(",")
        assert list(load_map(f"{board_name}_gui_default").channels) == gui_names


def test_packets_encode_24_bit_big_endian_twos_complement() -> None:
    board = load_board("cyton")
    counts = np.array([[0, 1, -1, board.max_count, -board.max_count - 1, 123456, -654321, 7]] * 3).T
    packets = encode_packets(np.array([254, 255, 256]), counts)
    assert len(packets) == 3 * PACKET_SIZE
    for k in range(3):
        counter, decoded, footer = decode(packets[k * PACKET_SIZE:(k + 1) * PACKET_SIZE])
        assert counter == (254 + k) % 256 and footer == 0xC0
        assert decoded == counts[:, k].tolist()
    assert board.counts_from_uv(np.array([1e9, -1e9]), 24).tolist() == [board.max_count, -board.max_count - 1]


def test_handshake_and_channel_commands_are_answered_like_the_firmware(port) -> None:
    reply = talk(port, "v")
    assert reply.startswith(b"OpenBCI V3 8-16 channel") and reply.endswith(b"$$$") and b"Daisy" not in reply
    assert talk(port, "d") == b"updating channel settings to default$$$"
    assert talk(port, "x1060110X") == b"Success: Channel set for 1$$$"
    assert talk(port, "x9060110X").startswith(b"Failure")  # no channel 9 without the Daisy
    assert talk(port, "x1090110X").startswith(b"Failure")  # gain code 9 does not exist
    assert talk(port, "z110Z") == b"Success: Lead off set for 1$$$"
    assert talk(port, "V") == b"v3.1.2$$$"


def test_streams_packets_with_a_counter_from_zero_until_stopped(emulator, port) -> None:
    talk(port, "v")
    port.write(b"b")
    data = read_packets(port, 40)
    port.write(b"s")
    time.sleep(0.1)
    port.reset_input_buffer()
    time.sleep(0.1)
    assert not emulator.streaming and port.in_waiting == 0
    packets = [data[i:i + PACKET_SIZE] for i in range(0, 40 * PACKET_SIZE, PACKET_SIZE)]
    counters = [decode(packet)[0] for packet in packets]
    assert counters == list(range(40))
    board = load_board("cyton")
    first = np.array([decode(packet)[1][0] for packet in packets])
    expected = board.counts_from_uv(np.linspace(-100.0, 100.0, 2500)[:40])
    np.testing.assert_array_equal(first, expected)


def test_channel_off_sends_zero_counts(port) -> None:
    talk(port, "v")
    port.write(b"1b")
    data = read_packets(port, 10)
    port.write(b"s")
    assert all(decode(data[i:i + PACKET_SIZE])[1][0] == 0 for i in range(0, 10 * PACKET_SIZE, PACKET_SIZE))


def test_daisy_interleaves_even_daisy_and_odd_board_packets() -> None:
    source = np.zeros((16, 500))
    source[:8] = 10.0
    source[8:] = -10.0
    with CytonEmulator(source, daisy=True, speed=2.0) as emulator, \
            serial.Serial(emulator.port, 115200, timeout=0.1) as port:
        assert b"On Daisy ADS1299" in talk(port, "v")
        port.write(b"b")
        data = read_packets(port, 8)
        port.write(b"s")
    for k in range(8):
        counter, counts, _ = decode(data[k * PACKET_SIZE:(k + 1) * PACKET_SIZE])
        assert counter == k
        assert np.sign(counts[0]) == (-1 if k % 2 == 0 else 1)


def test_duplicate_restart_garbage_and_misorder_faults_on_the_wire() -> None:
    source = np.zeros((16, 5000))
    with CytonEmulator(source, daisy=True, speed=2.0, seed=1) as emulator, \
            serial.Serial(emulator.port, 115200, timeout=0.1) as port:
        talk(port, "v")
        emulator.inject("misorder")
        emulator.inject("duplicate", count=3)
        port.write(b"b")
        data = read_packets(port, 12)
        emulator.clear_faults()
        emulator.inject("restart")
        time.sleep(0.05)
        emulator.inject("garbage", rate=1.0)
        noisy = port.read(4000)
        port.write(b"s")
    counters = [decode(data[k * PACKET_SIZE:(k + 1) * PACKET_SIZE])[0] for k in range(12)]
    # odd before even for each sample; the first three packets each sent twice
    assert counters[:6] == [1, 1, 0, 0, 3, 3] and counters[6:10] == [2, 5, 4, 7]
    assert emulator.stats.packets_duplicated == 3 and emulator.stats.counter_restarts
    assert emulator.stats.fake_packets > 0 and emulator.stats.garbage_bytes > 0
    assert len(noisy) > emulator.stats.fake_packets * PACKET_SIZE
    with pytest.raises(HotspotError, match="Cyton \\+ Daisy"):
        CytonEmulator(np.zeros((8, 10))).inject("misorder")
    with pytest.raises(HotspotError, match="hz must be"):
        CytonEmulator(np.zeros((8, 10))).inject("rate", hz=0)


def test_the_garbage_after_each_packet_depends_only_on_the_seed_and_the_packet() -> None:
    # whatever the host's timing (ticks, when the fault was injected), the bytes on the wire are the packets, each
    # followed by line_noise(seed, its position): a run's junk can be rebuilt from the packets it covered
    source = np.zeros((8, 5000))
    source[7] = np.arange(5000) * 0.5
    board = load_board("cyton")
    for speed in (1.0, 4.0):
        with CytonEmulator(source, speed=speed, seed=7) as emulator, \
                serial.Serial(emulator.port, 115200, timeout=0.1) as port:
            talk(port, "v")
            emulator.inject("garbage", rate=0.5)
            port.write(b"b")
            wire = b""
            deadline = time.monotonic() + 3.0
            while len(wire) < 20000 and time.monotonic() < deadline:
                wire += port.read(20000 - len(wire))
            port.write(b"s")
        expected = bytearray()
        position = 0
        while len(expected) < len(wire):
            counts = board.counts_from_uv(source[:, position:position + 1])
            expected += encode_packets(np.array([position]), counts) + line_noise(7, position, 0.5)[0]
            position += 1
        assert len(wire) == 20000 and wire == bytes(expected[:len(wire)])
        assert emulator.stats.fake_packets > 10
    assert line_noise(7, 123, 1.0) == line_noise(7, 123, 1.0) != line_noise(8, 123, 1.0)


def test_rate_fault_changes_the_subject_clock() -> None:
    with CytonEmulator(np.zeros((8, 100000)), speed=4.0) as emulator, \
            serial.Serial(emulator.port, 115200, timeout=0.1) as port:
        talk(port, "v")
        port.write(b"b")
        time.sleep(0.5)
        emulator.inject("rate", hz=200.0)
        before, start = emulator.position, time.monotonic()
        time.sleep(1.0)
        rate = (emulator.position - before) / (time.monotonic() - start) / 4.0
        port.write(b"s")
    assert rate == pytest.approx(200.0, rel=0.05)


def test_stall_makes_the_dongle_answer_failure_until_cleared(emulator, port) -> None:
    emulator.inject("stall")
    assert talk(port, "v") == DONGLE_FAILURE
    emulator.clear_faults()
    assert talk(port, "v").startswith(b"OpenBCI V3")


def test_unplug_removes_the_port_and_replug_brings_it_back_on_the_same_path(emulator) -> None:
    path = emulator.port
    first_pty = os.path.realpath(path)
    emulator.inject("unplug", duration=0.3)
    time.sleep(0.1)
    assert not os.path.exists(path)
    deadline = time.monotonic() + 3.0
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(path) and os.path.realpath(path).startswith("/dev/pts/")
    with serial.Serial(path, 115200, timeout=0.1) as port:
        assert talk(port, "v").startswith(b"OpenBCI V3")
    assert first_pty.startswith("/dev/pts/")


def test_reset_stops_streaming_and_prints_the_banner(emulator, port) -> None:
    talk(port, "v")
    port.write(b"b")
    read_packets(port, 5)
    emulator.inject("reset")
    assert read_until(port, b"$$$").endswith(b"Firmware: v3.1.2\n$$$")
    time.sleep(0.1)
    assert not emulator.streaming


def test_bad_sources_faults_and_parameters_are_refused() -> None:
    with pytest.raises(HotspotError, match=r"\(8, n\) source"):
        CytonEmulator(np.zeros((16, 10)))
    emulator = CytonEmulator(np.zeros((8, 10)))
    with pytest.raises(HotspotError, match="unknown fault"):
        emulator.inject("explode")
    with pytest.raises(HotspotError, match="channel must be 1..8"):
        emulator.inject("railed", channel=9)
    with pytest.raises(HotspotError, match="takes"):
        emulator.inject("stall", rate=0.1)
    assert parse_fault("drop:rate=0.05,burst=3") == ("drop", {"rate": 0.05, "burst": 3.0})
    assert console_command(emulator, "flat:channel=2") == "injected flat:channel=2"
    assert console_command(emulator, "") == "faults in force: flat"
    assert console_command(emulator, "flat:channel=12").startswith("error: fault flat: channel must be 1..8")
    assert console_command(emulator, "clear") == "faults cleared" and emulator.active_faults() == []
    with pytest.raises(HotspotError, match="key=number"):
        parse_fault("railed:channel")


def test_cli_prints_the_port_and_refuses_bad_input(capsys, tmp_path: Path) -> None:
    assert main(["--seconds", "0.2", "--fault", "drop:rate=0.1", "--speed", "2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("ttyOpenBCI")
    console = subprocess.run([sys.executable, "-m", "hardware.emulator", "--interactive", "--seconds", "20"],
                             input="stall\nwobble\nquit\n", capture_output=True, text=True, timeout=60)
    assert console.returncode == 0 and console.stdout.strip().endswith("ttyOpenBCI")
    assert "injected stall" in console.stderr and "unknown fault 'wobble'" in console.stderr
    assert run_cli(main, ["--fault", "wobble", "--seconds", "0.1"]) == 2
    assert "unknown fault 'wobble'" in capsys.readouterr().err
    assert run_cli(main, ["--source", str(tmp_path / "missing.edf")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_recording_source_maps_channels_and_resamples(tmp_path: Path) -> None:
    names = ["FC3", "C5", "C3", "C1", "CP3", "Cz"]
    t = np.arange(5000) / 500.0
    volts = np.array([np.sin(2 * np.pi * (2 + i) * t) * 20e-6 for i in range(len(names))])
    raw = mne.io.RawArray(volts, mne.create_info(names, 500.0, "eeg"), verbose="error")
    path = tmp_path / "rec.edf"
    raw.export(path, fmt="edf", verbose="error")
    source = recording_source(path, load_board("cyton"), "cyton_five_left", None)
    assert source.shape == (8, 2500)
    t250 = np.arange(2500) / 250.0
    for row in range(5):
        expected = np.sin(2 * np.pi * (2 + row) * t250) * 20.0
        np.testing.assert_allclose(source[row, 100:-100], expected[100:-100], atol=0.5)
    assert not source[5:].any()
    with pytest.raises(HotspotError, match="FC4"):
        recording_source(path, load_board("cyton"), "cyton_five_right", None)


def test_a_simulated_dataset_subject_is_a_source(tmp_path: Path, capsys) -> None:
    from train.io import load_dataset
    from train.simulate import simulate_cohort

    cohort = {"cohort": {"n_healthy": 1, "n_stroke": 1, "sessions": 1},
              "task": {"trials_healthy": 2, "trials_stroke": 2},
              "recording": {"channels": ["FC3", "C5", "C3", "C1", "CP3", "Cz"]}}
    folder = simulate_cohort(cohort, tmp_path / "cohort", jobs=1)
    recording = load_dataset(folder).subject("sub-002").recordings[0]
    source = recording_source(folder, load_board("cyton"), "cyton_five_left", "sub-002")
    for name, channel in load_map("cyton_five_left").channels.items():
        np.testing.assert_array_equal(source[channel - 1], recording.data[recording.ch_names.index(name)])
    assert main(["--source", str(folder), "--subject", "sub-001", "--seconds", "0.2"]) == 0
    assert capsys.readouterr().out.strip().endswith("ttyOpenBCI")
    assert run_cli(main, ["--source", str(folder), "--subject", "sub-009", "--seconds", "0.1"]) == 2
    assert "no subject sub-009" in capsys.readouterr().err
