"""Hardware in the loop: BrainFlow's own Cyton drivers read the emulator over a pseudo-terminal.

The sources carry a ramp (channel value = source sample index in µV) so every received sample
says which source sample it is: that checks values, alignment and loss accounting exactly.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams, LogLevels
from brainflow.data_filter import DataFilter

from edge.acquisition import Acquisition, Chunk, Status, StatusChange
from edge.quality import assess_window
from edge.board import load_board
from edge.timebase import START_LATENCY_S
from hardware.emulator.cyton import TICK_S, CytonEmulator

pytestmark = pytest.mark.hil

CYTON = load_board("cyton")
DAISY = load_board("cyton_daisy")
RAMP_ROW = 7  # board channel 8 carries the ramp


def ramp_source(n_channels: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """Random EEG-sized microvolts, with board channel 8 (and 16 if present) = sample index."""
    source = np.random.default_rng(seed).normal(0.0, 40.0, size=(n_channels, n_samples))
    source[RAMP_ROW] = np.arange(n_samples, dtype=np.float64)
    if n_channels == 16:
        source[15] = np.arange(n_samples, dtype=np.float64)
    return source


def collect(acquisition: Acquisition, seconds: float) -> list[Chunk]:
    """Read chunks for ``seconds``."""
    chunks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunks.append(acquisition.read(timeout_s=0.05))
    return chunks


def joined(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray, int]:
    """Concatenate chunks: (data, sample_index, lost)."""
    data = np.concatenate([chunk.data_uv for chunk in chunks], axis=1)
    index = np.concatenate([chunk.sample_index for chunk in chunks])
    return data, index, sum(chunk.lost for chunk in chunks)


def until_recovered(acquisition: Acquisition, timeout_s: float) -> list[Chunk]:
    """Read chunks until a re-prepared session delivers a received (finite) sample or ``timeout_s`` passes.

    (The last sample before an outage may arrive late: it waits for the next packet, which could
    show that it is not the board's, until the session ends.)
    """
    chunks = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunks.append(acquisition.read(timeout_s=0.05))
        if any(chunk.reconnected for chunk in chunks) and np.isfinite(chunks[-1].data_uv).any():
            break
    return chunks


def brainflow_session(board_id: BoardIds, port: str) -> BoardShim:
    BoardShim.set_log_level(LogLevels.LEVEL_OFF.value)
    params = BrainFlowInputParams()
    params.serial_port = port
    shim = BoardShim(board_id, params)
    shim.prepare_session()
    return shim


def test_brainflow_cyton_driver_streams_the_exact_values_sent() -> None:
    source = ramp_source(8, 4000)
    with CytonEmulator(source, speed=4.0) as emulator:
        shim = brainflow_session(BoardIds.CYTON_BOARD, emulator.port)
        try:
            shim.start_stream()
            time.sleep(1.5)
            data = shim.get_board_data()
            shim.stop_stream()
        finally:
            shim.release_session()
        assert emulator.stats.commands[:3] == ["v", "d", "b"]
    assert data.shape[1] > 1000
    eeg = data[list(CYTON.eeg_rows)]
    sent = np.rint(eeg[RAMP_ROW]).astype(int)
    np.testing.assert_array_equal(np.diff(sent), 1)
    assert sent[0] == 0
    # within the 24-bit quantisation of 4.5 V / 24 / (2**23 - 1)
    assert np.abs(eeg - source[:, sent]).max() <= CYTON.uv_per_count() / 2 + 1e-9
    np.testing.assert_array_equal(data[CYTON.counter_row], sent % 256)


def test_brainflow_daisy_driver_joins_the_interleaved_packets_and_tracks_gain() -> None:
    source = ramp_source(16, 2000, seed=1)
    with CytonEmulator(source, daisy=True, speed=4.0) as emulator:
        shim = brainflow_session(BoardIds.CYTON_DAISY_BOARD, emulator.port)
        try:
            assert shim.config_board("x3040000X").startswith("Success: Channel set for 3$$$")
            shim.start_stream()
            time.sleep(1.5)
            data = shim.get_board_data()
            shim.stop_stream()
        finally:
            shim.release_session()
    eeg = data[list(DAISY.eeg_rows)]
    sent = np.rint(eeg[RAMP_ROW]).astype(int)
    np.testing.assert_array_equal(np.rint(eeg[15]).astype(int), sent)  # Daisy half from the same sample
    np.testing.assert_array_equal(np.diff(sent), 1)
    error = np.abs(eeg - source[:, sent]).max(axis=1)
    assert error[2] <= DAISY.uv_per_count(8) / 2 + 1e-9  # channel 3 at gain 8 (code 4)
    assert np.delete(error, 2).max() <= DAISY.uv_per_count() / 2 + 1e-9
    np.testing.assert_array_equal(data[DAISY.counter_row], (2 * sent) % 256)


def check_alignment(data: np.ndarray, index: np.ndarray, lost: int, ramp_row: int) -> tuple[int, int]:
    """Assert every received sample sits at the index of the source sample it came from.

    Returns (received, lost) over the index range.
    """
    np.testing.assert_array_equal(np.diff(index), 1)
    received = np.isfinite(data[ramp_row])
    ramp = np.rint(data[ramp_row, received]).astype(np.int64)
    np.testing.assert_array_equal(ramp, index[received])
    assert lost == int((~received).sum())
    return int(received.sum()), lost


@pytest.mark.parametrize("rate", [0.01, 0.2])
def test_dropped_packets_are_counted_from_the_counter_and_nan_filled(rate: float) -> None:
    source = ramp_source(8, 20000)
    with CytonEmulator(source, speed=4.0, seed=3) as emulator:
        emulator.inject("drop", rate=rate)
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=4.0) as acquisition:
            data, index, lost = joined(collect(acquisition, 2.5))
        dropped = emulator.stats.packets_dropped
    received, lost = check_alignment(data, index, lost, RAMP_ROW)
    assert received > 1500
    # every dropped packet but those after the last received one is counted
    assert dropped - 50 <= lost <= dropped
    assert lost / (lost + received) == pytest.approx(rate, abs=max(0.01, rate / 3))
    verdict = assess_window(data[:, :500], [f"ch{row + 1}" for row in range(8)])
    assert "lost" in verdict.per_channel["ch1"]
    assert verdict.ok is (rate <= 0.01)


def test_daisy_drops_are_counted_in_samples() -> None:
    source = ramp_source(16, 8000, seed=2)
    with CytonEmulator(source, daisy=True, speed=4.0, seed=4) as emulator:
        emulator.inject("drop", rate=0.03)
        with Acquisition("cyton_daisy", serial_port=emulator.port, watchdog_s=1.0, clock_scale=4.0) as acquisition:
            data, index, lost = joined(collect(acquisition, 2.5))
    np.testing.assert_array_equal(np.diff(index), 1)
    received = np.isfinite(data[RAMP_ROW])
    assert received.sum() > 700 and lost == int((~received).sum())
    board_half = np.rint(data[RAMP_ROW, received]).astype(np.int64)
    daisy_half = np.rint(data[15, received]).astype(np.int64)
    # BrainFlow's Daisy join cannot see an odd packet lost just before a lost even one: the next sample
    # then pairs Daisy data one sample old; that needs two losses in a row (rate**2 per sample)
    mismatched = np.count_nonzero(daisy_half != board_half) + np.count_nonzero(board_half != index[received])
    assert mismatched <= 2 * 0.03 ** 2 * index.size * 2 + 3
    # 2 packets per sample: roughly 2 * rate of the samples are lost
    assert lost / index.size == pytest.approx(1 - (1 - 0.03) ** 2, abs=0.02)


def test_a_gap_longer_than_the_counter_period_is_sized_from_host_time() -> None:
    source = ramp_source(8, 20000)
    with CytonEmulator(source, speed=1.0) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=3.0) as acquisition:
            collect(acquisition, 0.5)
            emulator.inject("drop", rate=1.0, duration=1.4)  # ~350 packets: more than one 256 wrap
            data, index, lost = joined(collect(acquisition, 2.5))
            assert acquisition.status is Status.CONNECTED
    check_alignment(data, index, lost, RAMP_ROW)
    assert 300 <= lost <= 400


def test_corrupted_packets_are_discarded_and_counted_as_lost() -> None:
    source = ramp_source(8, 20000)
    with CytonEmulator(source, speed=4.0, seed=5) as emulator:
        emulator.inject("corrupt", rate=0.05)
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=4.0) as acquisition:
            data, index, lost = joined(collect(acquisition, 2.5))
        corrupted = emulator.stats.packets_corrupted
    received, lost = check_alignment(data, index, lost, RAMP_ROW)
    assert corrupted > 50 and corrupted - 20 <= lost <= corrupted
    assert np.abs(data[:, np.isfinite(data[0])]).max() < 1e5  # no garbage values got through


def test_railed_and_flat_channels_show_in_the_data() -> None:
    source = ramp_source(8, 20000)
    with CytonEmulator(source, speed=4.0) as emulator:
        emulator.inject("railed", channel=2)
        emulator.inject("flat", channel=5, value_uv=12.5)
        with Acquisition("cyton", serial_port=emulator.port, eeg_channels=[2, 5, 3], clock_scale=4.0) as acquisition:
            data, _, _ = joined(collect(acquisition, 1.5))
    assert data.shape[0] == 3 and data.shape[1] > 500
    full_scale = CYTON.max_count * CYTON.uv_per_count()
    np.testing.assert_allclose(data[0], full_scale)
    assert DataFilter.get_railed_percentage(np.ascontiguousarray(data[0]), 24) > 99.0
    assert np.ptp(data[1]) == 0.0 and abs(data[1, 0] - 12.5) <= CYTON.uv_per_count()
    assert np.std(data[2]) > 10.0
    verdict = assess_window(data[:, :750], ["C3", "C1", "FC3"])
    assert not verdict.ok
    assert "railed" in verdict.per_channel["C3"]  # a channel stuck at the rail is flat too
    assert verdict.per_channel["C1"] == ("flat",) and verdict.per_channel["FC3"] == ()


@pytest.mark.parametrize("fault, speed", [("stall", 1.0), ("unplug", 3.0)])
def test_watchdog_recovers_within_5_s_after_a_fault_clears(fault: str, speed: float) -> None:
    source = ramp_source(8, 100000)
    changes: list[StatusChange] = []
    with CytonEmulator(source, speed=speed) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=speed,
                         on_status=changes.append) as acquisition:
            collect(acquisition, 0.5)
            emulator.inject(fault)
            collect(acquisition, 3.0)
            assert acquisition.status in (Status.RECONNECTING, Status.STALLED)
            emulator.clear_faults()
            chunks = until_recovered(acquisition, 5.0)
            assert np.isfinite(chunks[-1].data_uv).any(), "no samples within 5 s after the fault cleared"
            assert any(chunk.reconnected for chunk in chunks)
            data, index, lost = joined(chunks + collect(acquisition, 1.0))
            assert acquisition.stats.reconnects == 1
    statuses = [change.status for change in changes]
    assert statuses == [Status.CONNECTING, Status.CONNECTED, Status.STALLED, Status.RECONNECTING,
                        Status.RECOVERED, Status.STOPPED]
    # a pulled dongle is noticed at once, a silent board by the watchdog
    assert changes[2].detail == (f"{emulator.port} disappeared" if fault == "unplug" else "no samples for 1 s")
    received = np.isfinite(data[RAMP_ROW])
    # the outage arrives NaN-filled (>= 3 s of it) so that no window spanning it passes the quality gate
    assert np.argmax(received) >= 3.0 * speed * CYTON.sampling_rate
    assert not assess_window(data[:, :500], [f"ch{row + 1}" for row in range(8)]).ok
    # after recovery, samples are again at the index of the subject clock (host-time gap filling)
    offsets = np.rint(data[RAMP_ROW, received]).astype(np.int64) - index[received]
    assert np.abs(offsets).max() <= 0.05 * speed * CYTON.sampling_rate


@pytest.mark.parametrize("board", [CYTON, DAISY], ids=lambda board: board.name)
def test_board_reset_mid_stream_is_recovered(board) -> None:
    source = ramp_source(board.n_channels, 50000)
    changes: list[Status] = []
    with CytonEmulator(source, daisy=board is DAISY, speed=1.0) as emulator:
        with Acquisition(board.name, serial_port=emulator.port, watchdog_s=1.0,
                         on_status=lambda change: changes.append(change.status)) as acquisition:
            collect(acquisition, 0.5)
            emulator.inject("reset")
            time.sleep(0.2)
            assert not emulator.streaming
            chunks = collect(acquisition, 0.2) + until_recovered(acquisition, 5.0)
            assert np.isfinite(chunks[-1].data_uv).any()
            data, index, _ = joined(chunks + collect(acquisition, 0.5))
            assert acquisition.stats.reconnects == 1
        assert emulator.stats.commands.count("v") == 2
    assert Status.RECOVERED in changes
    received = np.isfinite(data[RAMP_ROW])
    offsets = np.rint(data[RAMP_ROW, received]).astype(np.int64) - index[received]
    assert np.abs(offsets).max() <= 0.05 * board.sampling_rate


def test_playback_and_synthetic_boards_stream(tmp_path) -> None:
    with Acquisition("synthetic", eeg_channels=[1, 2]) as acquisition:
        data, index, lost = joined(collect(acquisition, 0.6))
    assert data.shape[0] == 2 and data.shape[1] > 50 and lost == 0
    np.testing.assert_array_equal(index, np.arange(index.size))

    rows = np.zeros((24, 600))
    rows[0] = np.arange(600) % 256
    rows[1:9] = ramp_source(8, 600)
    rows[22] = time.time() + np.arange(600) / 250.0
    path = tmp_path / "cyton.csv"
    DataFilter.write_file(rows, str(path), "w")
    changes: list[Status] = []
    with Acquisition("playback", file=str(path), master_board="cyton", loop=False, watchdog_s=0.5,
                     on_status=lambda change: changes.append(change.status)) as acquisition:
        chunks = []
        deadline = time.monotonic() + 10.0
        while acquisition.status is not Status.STOPPED and time.monotonic() < deadline:
            chunks.append(acquisition.read(timeout_s=0.05))
        assert acquisition.status is Status.STOPPED  # at the end of the file
        data, index, lost = joined(chunks + [acquisition.read()])
    assert changes == [Status.CONNECTING, Status.CONNECTED, Status.STOPPED]
    assert lost == 0 and data.shape[1] == 600
    np.testing.assert_allclose(data[:, :590], rows[1:9, :590], atol=1e-6)


def test_a_real_openbci_recording_streams_through_unchanged(real_data_dir) -> None:
    from hardware.emulator.sources import recording_source

    path = real_data_dir / "openbci" / "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt"
    source = recording_source(path, CYTON, "cyton_gui_default", None)
    assert source.shape == (8, 22490)
    with CytonEmulator(source, speed=8.0) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, clock_scale=8.0) as acquisition:
            data, index, lost = joined(collect(acquisition, 1.5))
    assert lost == 0 and index[0] == 0 and data.shape[1] > 2000
    # the recording's microvolts (DC offsets of tens of thousands included) within the 24-bit quantisation
    assert np.abs(data - source[:, index]).max() <= CYTON.uv_per_count() / 2 + 1e-6


# --- time-base faults: duplicates, counter restart, line noise, Daisy misorder, wrong sampling rate --------

def fault_run(fault: str, params: dict, daisy: bool = False, speed: float = 4.0, fault_s: float = 1.5,
              after_s: float = 2.0, seed: int = 3):
    """Stream, inject ``fault`` for ``fault_s``, clear it; return (data, index, lost, acquisition, emulator, changes)."""
    board = DAISY if daisy else CYTON
    source = ramp_source(board.n_channels, 100000)
    changes: list[StatusChange] = []
    with CytonEmulator(source, daisy=daisy, speed=speed, seed=seed) as emulator:
        with Acquisition(board.name, serial_port=emulator.port, watchdog_s=1.0, clock_scale=speed,
                         on_status=changes.append) as acquisition:
            chunks = collect(acquisition, 1.0)
            emulator.inject(fault, **params)
            chunks += collect(acquisition, fault_s)
            emulator.clear_faults()
            chunks += collect(acquisition, after_s)
        data, index, lost = joined(chunks)
    return data, index, lost, acquisition, emulator, changes


def assert_exact(data: np.ndarray, index: np.ndarray, lost: int, source: np.ndarray | None = None) -> None:
    """Every received sample sits at its true index and carries its own values (no fake packet got in)."""
    check_alignment(data, index, lost, RAMP_ROW)
    received = np.isfinite(data[RAMP_ROW])
    assert np.all(np.isfinite(data[:, received]))
    assert np.abs(data[:, received]).max() < 1e5  # EEG-sized values and the ramp only


def test_300_duplicate_packets_are_dropped_and_cost_no_phantom_loss() -> None:
    data, index, lost, acquisition, emulator, _ = fault_run("duplicate", {"count": 300})
    assert emulator.stats.packets_duplicated == 300
    assert acquisition.stats.duplicates == 300
    assert_exact(data, index, lost)
    assert lost == 0 and acquisition.stats.realigned == 0


def test_a_counter_restart_while_streaming_is_realigned_without_phantom_loss() -> None:
    """A restart in mid-period (the counter claims about half a period of loss, far beyond the host clock's
    jitter) is contradicted by the arrival times and realigned exactly. Claims within the jitter, and a
    restart right after counter 0, are pinned with exact arrival times in test_emulator_loss_accounting:
    here, under a loaded host, their outcome would depend on the load."""
    speed = 4.0
    for seed in (3, 4):
        with CytonEmulator(ramp_source(CYTON.n_channels, 100000), speed=speed, seed=seed) as emulator:
            with Acquisition(CYTON.name, serial_port=emulator.port, watchdog_s=1.0, clock_scale=speed) as acquisition:
                chunks = collect(acquisition, 1.0)
                while not 64 <= emulator.stats.packets_sent % 256 < 128:  # the counter one packet per sample
                    chunks.append(acquisition.read(timeout_s=0.002))
                emulator.inject("restart")
                chunks += collect(acquisition, 1.5)
                chunks += collect(acquisition, 2.0)
            data, index, lost = joined(chunks)
        [interrupted] = emulator.stats.counter_restarts
        assert 64 <= interrupted < 192  # the claim, 256 - interrupted samples, is 64 ... 192 samples
        assert_exact(data, index, lost)
        assert lost == 0 and acquisition.stats.realigned == 256 - interrupted


def test_a_garbage_flood_lets_no_fake_sample_through() -> None:
    data, index, lost, acquisition, emulator, _ = fault_run("garbage", {"rate": 1.0})
    assert emulator.stats.fake_packets > 300 and emulator.stats.garbage_bytes > 10000
    assert acquisition.stats.rejected > 0
    assert_exact(data, index, lost)
    # real packets misframed by the noise are lost, and counted as lost; nothing else is
    assert lost < emulator.stats.packets_sent * 0.5


def test_daisy_misorder_restarts_the_stream_and_never_skews_channels_9_to_16() -> None:
    """Each misorder restarts the stream; after the fault the tail streams at one offset within the host-clock
    outage sizing's contract.

    The counter restarts at 0 on ``b``, so each restart's outage is sized from the host clock (edge.timebase):
    from the last received sample's arrival to the moment the start command was sent. Both ends err the same
    way: the board starts when it has read the command (here the emulator thread, which a loaded host
    schedules late; the emulator then starts at the sample due at its previous tick, up to TICK_S early), and
    the last sample may have arrived late. So each restart can leave the index behind the board by its start
    latency, which the time base accepts up to START_LATENCY_S (only beyond it does it add whole periods),
    and the errors of successive restarts add up. CI under load once left the tail 79 samples (0.16 s of
    host time) behind after the fault's restarts: within that contract, not a mis-sizing (runs on a loaded
    2-core box, with busy processes and GIL-holding threads, stayed within 1-9 samples). A skew that the
    sizing cannot explain (ahead of the board, beyond the contract, or drifting within the tail) still fails.
    """
    data, index, lost, acquisition, _, changes = fault_run("misorder", {}, daisy=True, after_s=4.0)
    stalls = [change for change in changes if change.status is Status.STALLED]
    assert stalls and all("out of order" in change.detail for change in stalls)
    assert acquisition.stats.misordered >= 1
    received = np.isfinite(data[RAMP_ROW])
    board_half = np.rint(data[RAMP_ROW, received]).astype(np.int64)
    daisy_half = np.rint(data[15, received]).astype(np.int64)
    nonzero = daisy_half != 0  # BrainFlow's first sample of a stream that opens with an odd packet has no Daisy half
    np.testing.assert_array_equal(daisy_half[nonzero], board_half[nonzero])
    # recovered after the fault: samples again, at their index (host-clock outage sizing, as after a stall)
    recovered = [change.time for change in changes if change.status is Status.RECOVERED]
    assert recovered
    tail = received.copy()
    tail[: int(0.75 * received.size)] = False
    assert tail.any()
    offsets = np.rint(data[RAMP_ROW, tail]).astype(np.int64) - index[tail]
    assert np.all(offsets == offsets[0])  # one contiguous stream at one offset
    host_rate = 4.0 * DAISY.sampling_rate
    restarts = acquisition.stats.reconnects
    assert -restarts * (TICK_S * host_rate + 1) <= offsets[0] <= restarts * START_LATENCY_S * host_rate


@pytest.mark.parametrize("hz", [200.0, 300.0])
def test_a_board_at_the_wrong_sampling_rate_is_measured_from_host_time(hz: float) -> None:
    source = ramp_source(8, 200000)
    speed = 4.0
    with CytonEmulator(source, speed=speed) as emulator:
        with Acquisition("cyton", serial_port=emulator.port, watchdog_s=1.0, clock_scale=speed) as acquisition:
            collect(acquisition, 2.0)
            assert acquisition.measured_hz == pytest.approx(250.0, rel=0.01) and not acquisition.rate_off
            emulator.inject("rate", hz=hz)
            started = time.monotonic()
            while not acquisition.rate_off and time.monotonic() - started < 5.0:
                collect(acquisition, 0.1)
            detected_s = time.monotonic() - started
            collect(acquisition, 1.5)
            assert acquisition.rate_off and acquisition.measured_hz == pytest.approx(hz, rel=0.01)
            emulator.clear_faults()
            started = time.monotonic()
            while acquisition.rate_off and time.monotonic() - started < 5.0:
                collect(acquisition, 0.1)
            cleared_s = time.monotonic() - started
            assert not acquisition.rate_off
    # within the check's window (6 board s = 1.5 s at 4x) both ways
    assert detected_s < 6.0 / speed + 0.5 and cleared_s < 6.0 / speed + 0.5
