"""The time base: packet counter + host clock -> sample slots (edge.timebase), and the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.acquisition import Acquisition
from edge.ringbuffer import RingBuffer
from edge.errors import ErrorCode, HotspotError
from edge.timebase import PacketCounter, RateCheck

FS = 250.0


def place_all(counter: PacketCounter, slots: np.ndarray, step: int = 1, fs: float = FS, **kwargs):
    """Feed the samples received at ``slots`` (true sample numbers) with exact host times."""
    counter.new_session(0.0)
    return counter.place((slots * step) % 256, slots / fs, **kwargs)


def values_of(slots: np.ndarray) -> np.ndarray:
    """Per-sample values that differ from sample to sample (what a duplicate repeats)."""
    return np.stack([np.asarray(slots, dtype=float), -np.asarray(slots, dtype=float)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=60))
def test_cyton_gaps_of_any_length_are_counted_exactly(gaps: list[int]) -> None:
    gaps = gaps + [0] * 300  # samples after the last gap: the evidence for whole lost periods
    slots = np.cumsum(np.asarray(gaps) + 1) - 1
    placement = place_all(PacketCounter(1, FS), slots)
    assert not placement.stale.any() and placement.realigned == 0
    np.testing.assert_array_equal(placement.missing, gaps)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=30), st.integers(0, 2**16))
def test_delivery_delays_never_remove_real_loss(gaps: list[int], seed: int) -> None:
    # every sample arrives 0-12 ms late (serial latency, a loaded host): loss is still counted exactly
    gaps = gaps + [0] * 300
    slots = np.cumsum(np.asarray(gaps) + 1) - 1
    delays = np.random.default_rng(seed).uniform(0.0, 0.012, slots.size)
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    placement = counter.place(slots % 256, np.maximum.accumulate(slots / FS + delays))  # arrivals keep their order
    assert placement.realigned == 0
    np.testing.assert_array_equal(placement.missing, gaps)


def test_without_a_clock_only_the_counter_counts() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    placement = counter.place(np.array([0, 1, 5, 255, 3]))
    np.testing.assert_array_equal(placement.missing, [0, 0, 3, 249, 3])
    assert counter.ambiguous_gaps == 0


def test_a_late_burst_is_not_mistaken_for_a_lost_period() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.arange(400)
    times = slots / FS
    times[10:] = 400 / FS  # samples 10..399 held up and delivered together (1.5 s late at first)
    placement = counter.place(slots % 256, times)
    assert not placement.missing.any() and counter.ambiguous_gaps == 0


def test_a_lost_period_is_found_even_when_the_next_samples_come_in_a_burst() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.concatenate([np.arange(10), np.arange(310, 500)])  # 300 lost: more than a period
    times = slots / FS
    times[10:50] = 350 / FS  # the first samples after the gap arrive late, together
    placement = counter.place(slots % 256, times)
    assert placement.missing.tolist() == [0] * 10 + [300] + [0] * 189
    assert counter.ambiguous_gaps == 1


def test_a_period_decided_on_a_burst_alone_waits_for_more_samples() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    assert counter.place(np.arange(10), np.arange(10) / FS, final=False).missing.tolist() == [0] * 10
    # after a 300-sample gap, 5 samples arrive together: too little evidence for a whole period
    burst = np.arange(310, 315)
    placement = counter.place(burst % 256, np.full(5, 314 / FS), final=False)
    assert placement.consumed == 0 and placement.missing.size == 0
    # with the next 0.34 s of arrivals (more than a quarter period) the period is clear
    later = np.arange(310, 400)
    placement = counter.place(later % 256, np.maximum(later, 314) / FS, final=False)
    assert placement.missing.tolist() == [300] + [0] * 89


def test_duplicates_are_dropped_not_counted_as_loss() -> None:
    slots = np.arange(600)
    repeated = np.sort(np.concatenate([slots, slots[100:400]]))  # 300 packets sent twice
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    placement = counter.place(repeated % 256, repeated / FS, values=values_of(repeated))
    assert placement.duplicates == 300 and placement.rejected == 0
    assert not placement.missing.any() and counter.next_slot == 600
    np.testing.assert_array_equal(repeated[placement.placed], slots)


def test_two_packets_with_one_counter_but_other_values_lose_their_slot_on_the_cyton() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.array([0, 1, 2, 2, 3])
    values = values_of(slots)
    values[0, 3] = 99.0
    placement = counter.place(slots, slots / FS, values=values)
    # nothing tells which of the two is the board's: the slot is lost, the second packet rejected
    assert placement.rejected == 1 and placement.placed.tolist() == [0, 1, 2, 4] and not placement.missing.any()
    assert placement.stale.tolist() == [False, False, True, False]


@pytest.mark.parametrize("restart_at", [2, 30, 128, 250, 255])
def test_a_counter_restart_while_streaming_is_realigned_to_the_host_clock(restart_at: int) -> None:
    # the board's counter goes back to 0 at sample `restart_at`; nothing is lost. (At sample 1, right
    # after counter 0, a restart cannot be told from a second packet with counter 0: that one is rejected.)
    true = np.arange(1500)
    counters = np.where(true < restart_at, true, true - restart_at) % 256
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    placement = counter.place(counters, true / FS, values=values_of(true))
    assert placement.missing.sum() == 0 and counter.next_slot == 1500
    assert placement.realigned == 256 - restart_at  # what the counter claimed: 0 follows restart_at - 1


def test_a_counter_jump_keeps_the_loss_the_host_clock_supports() -> None:
    # 40 samples really lost, and the counter jumps by another 100 at the same moment
    true = np.concatenate([np.arange(500), np.arange(540, 1500)])
    counters = np.where(true < 500, true, true + 100) % 256
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    placement = counter.place(counters, true / FS, values=values_of(true))
    assert placement.missing.tolist() == [0] * 500 + [40] + [0] * 959
    assert placement.realigned == 100


def test_a_counter_that_does_not_start_at_zero_is_placed_from_the_clock() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(10.0)
    true = np.arange(600)
    placement = counter.place((true + 117) % 256, 10.0 + true / FS + 0.001)  # arriving 1 ms after sampling
    assert placement.missing.sum() == 0 and placement.realigned == 117


def test_a_fake_packet_off_the_sequence_is_rejected() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.arange(300)
    counters = slots % 256
    with_fake = np.insert(counters, 120, 7)  # line noise framed as a packet with counter 7
    times = np.insert(slots / FS, 120, 120 / FS)
    placement = counter.place(with_fake, times, values=np.insert(values_of(slots), 120, 1e5, axis=1))
    assert placement.rejected == 1 and 120 not in placement.placed and not placement.missing.any()
    valid = np.ones(slots.size, dtype=bool)
    valid[[5, 6]] = False  # a stop byte the board does not send
    other = PacketCounter(1, FS)
    other.new_session(0.0)
    placement = other.place(counters, slots / FS, valid=valid)
    assert placement.rejected == 2 and placement.missing.tolist()[5] == 2


def test_a_one_sample_excursion_of_most_channels_is_rejected_but_real_steps_and_spikes_are_kept() -> None:
    full_scale = 187_500.0
    slots = np.arange(40)
    values = np.stack([np.full(40, 100.0 * channel) + slots for channel in range(8)])
    values[:, 10] = [-150_000.0, 90_000.0, 170_000.0, -60_000.0, 120_000.0, 30_000.0, -90_000.0, 60_000.0]
    values[3, 20] += 60_000.0  # one channel pops: an artifact the quality check judges, not line noise
    values[:, 30:] += 50_000.0  # every channel steps and stays (a reference electrode shifting)
    counter = PacketCounter(1, FS, full_scale_uv=full_scale)
    counter.new_session(0.0)
    placement = counter.place(slots, slots / FS, values=values)
    assert placement.rejected == 1 and 10 not in placement.placed and placement.missing.tolist()[10] == 1
    assert {20, 30, 31}.issubset(set(placement.placed.tolist()))
    # the contact check's lead-off drive (31.25 Hz) through electrodes of ~16 MOhm: 100 mV on every channel
    drive = np.tile(100_000.0 * np.sin(2 * np.pi * 31.25 * np.arange(400) / FS), (8, 1))
    counter = PacketCounter(1, FS, full_scale_uv=full_scale)
    counter.new_session(0.0)
    slots = np.arange(400)
    assert counter.place(slots % 256, slots / FS, values=drive).rejected == 0


def test_a_reader_lagging_behind_and_catching_up_neither_adds_nor_removes_loss() -> None:
    # line noise at 10x: the reader falls up to 0.3 s behind, then drains the backlog faster than real time;
    # meanwhile 10 % of the packets are lost at random
    fs = 2500.0
    rng = np.random.default_rng(7)
    true = np.arange(int(4 * fs))
    received = np.sort(rng.choice(true[1:], int(0.9 * true.size), replace=False))
    t = received / fs
    lag = np.interp(t, [0.0, 1.0, 2.0, 2.5, 4.0], [0.0, 0.0, 0.3, 0.0, 0.0])
    counter = PacketCounter(1, fs)
    counter.new_session(0.0)
    placement = counter.place(received % 256, np.maximum.accumulate(t + lag), values=values_of(received))
    np.testing.assert_array_equal(np.cumsum(placement.missing + 1) - 1, received)
    assert placement.realigned == 0 and counter.ambiguous_gaps == 0


def test_a_slow_stream_start_adds_no_phantom_period() -> None:
    # an emulator at 10x (2500 samples per host second): the board starts 0.15 s of host time after the
    # start command was sent, i.e. 375 samples "late"; no sample was lost
    counter = PacketCounter(1, 2500.0)
    counter.new_session(0.0)
    slots = np.arange(2000)
    placement = counter.place(slots % 256, 0.15 + slots / 2500.0)
    assert placement.missing.sum() == 0 and counter.ambiguous_gaps == 0


def test_two_fake_packets_in_a_row_are_both_rejected() -> None:
    # line noise frames two packets back to back: counters 100 and 180 ahead, values anywhere in the ADC range
    slots = np.arange(300)
    counters = np.insert(slots % 256, [120, 120], [(119 + 100) % 256, (119 + 180) % 256])
    times = np.insert(slots / FS, [120, 120], [120 / FS, 120 / FS])
    values = np.insert(values_of(slots), [120, 120], [[150_000.0, -90_000.0], [-170_000.0, 60_000.0]], axis=1)
    counter = PacketCounter(1, FS, full_scale_uv=187_500.0)
    counter.new_session(0.0)
    placement = counter.place(counters, times, values=values)
    assert placement.rejected == 2 and not placement.missing.any() and counter.next_slot == 300


CYTON_FULL_SCALE_UV = 187_500.0


def through_acquisition(counters: np.ndarray, values: np.ndarray, arrivals: np.ndarray, speed: float = 4.0,
                        poll_s: float = 0.02) -> tuple[np.ndarray, np.ndarray, Acquisition]:
    """Feed packets to the acquisition's packet logic as its worker would, without a board or a clock.

    ``arrivals`` are BrainFlow's host timestamps (seconds after the stream start at 0). Every ``poll_s`` the
    packets that have arrived are ingested in BrainFlow's row layout (stop byte 0xC0), then the session
    ends. Returns (data, sample_index, acquisition) of everything :meth:`Acquisition.read` gives.
    """
    acquisition = Acquisition("cyton", serial_port="/dev/ttyEmulated", clock_scale=speed, poll_s=poll_s)
    rows = np.zeros((24, counters.size))
    rows[0], rows[1:9], rows[12], rows[22] = counters, values, 0xC0, arrivals
    acquisition._tracker.new_session(0.0)
    taken = 0
    for now in np.arange(poll_s, arrivals.max() + 2 * poll_s, poll_s):
        arrived = int(np.searchsorted(arrivals, now, side="right"))
        acquisition._ingest(rows[:, taken:arrived])
        taken = arrived
    acquisition._ingest(rows[:, taken:], final=True)
    chunk = acquisition.read()
    return chunk.data_uv, chunk.sample_index, acquisition


def ramp_with_a_fake(fake_values: np.ndarray, stall_s: float, stall_before: bool = False):
    """2000 samples at 4x real time (1000 host samples/s), board channel 8 = the sample index, with line noise
    framed as a packet right after sample 1156: counter 197 (65 ahead of the 132 that sample 1156 carries), as
    in the CI run that let one through; the delivery stalls for ``stall_s`` after that packet (or before it)."""
    rng = np.random.default_rng(11)
    slots = np.arange(2000)
    values = rng.normal(0.0, 40.0, size=(8, slots.size))
    values[7] = slots
    arrivals = slots / 1000.0 + 0.001
    counters = np.insert(slots % 256, 1157, 197)
    values = np.insert(values, 1157, fake_values, axis=1)
    arrivals = np.insert(arrivals, 1157, arrivals[1156])
    held_from = 1157 if stall_before else 1158
    arrivals[held_from:] = np.maximum(arrivals[held_from:], arrivals[1156] + stall_s)
    return counters, values, arrivals


NOISE_FAKE = np.array([-64_283.0, 150_112.0, 31_977.0, -171_050.0, 88_416.0, -20_951.0, 120_734.0, -101_726.0])
"""A fake packet's values as line noise makes them: anywhere in the ADC range (channel 8: the CI run's)."""


@pytest.mark.parametrize("stall_s, stall_before", [(0.0, False), (0.13, False), (0.2, False), (0.6, False),
                                                    (0.2, True), (0.6, True)])
def test_a_fake_packet_is_rejected_whatever_the_delivery_stalls_around_it(stall_s: float, stall_before: bool) -> None:
    """CI once let a fake through and placed the real samples after it 192 slots late: the check that the next
    packet continues the sequence without the fake took a stall of more than half a period before that packet
    (a loaded host) for a whole lost period. The packets after the backlog show the stall, and line noise's
    values leap off the signal between two neighbours that agree, whatever the timing."""
    counters, values, arrivals = ramp_with_a_fake(NOISE_FAKE, stall_s, stall_before)
    data, index, acquisition = through_acquisition(counters, values, arrivals)
    received = np.isfinite(data[7])
    np.testing.assert_array_equal(np.rint(data[7, received]), index[received])  # each sample at its own index
    np.testing.assert_array_equal(index, np.arange(2000))  # all of them, and nothing else
    assert received.all() and acquisition.stats.rejected == 1 and acquisition.stats.lost == 0


@pytest.mark.parametrize("stall_s", [0.13, 0.2])
def test_a_fake_packet_with_signal_sized_values_is_rejected_by_the_arrivals_after_a_stall(stall_s: float) -> None:
    # values like its neighbours': only the clock can tell; the samples after the backlog drained arrive on time,
    # so sample 1157 cannot be a whole period later than the fake's counter would need
    fake = np.array([10.0, -20.0, 30.0, 5.0, -15.0, 25.0, -35.0, 1156.5])
    counters, values, arrivals = ramp_with_a_fake(fake, stall_s)
    data, index, acquisition = through_acquisition(counters, values, arrivals)
    np.testing.assert_array_equal(np.rint(data[7]), np.arange(2000))
    assert acquisition.stats.rejected == 1 and acquisition.stats.lost == 0


def test_a_lone_packet_amid_a_lost_period_is_kept_when_the_clock_shows_the_period() -> None:
    # the packets after the one at 1221 skip back on the counter because a whole period really was lost:
    # they arrive a period later, and so do the ones after them
    true = np.concatenate([np.arange(1157), [1221], np.arange(1413, 2000)])
    counters = true % 256
    values = np.stack([np.full(true.size, 10.0)] * 7 + [true.astype(float)])
    data, index, acquisition = through_acquisition(counters, values, true / 1000.0 + 0.001)
    received = np.isfinite(data[7])
    np.testing.assert_array_equal(np.rint(data[7, received]), index[received])
    assert acquisition.stats.rejected == 0 and acquisition.stats.lost == 2000 - true.size


def test_a_fake_packet_last_before_the_session_ends_is_rejected_and_a_real_one_kept() -> None:
    # nothing after it tells the counter's story: values that leap off the signal are not the board's
    slots = np.arange(300)
    values = np.stack([np.full(300, 10.0)] * 7 + [slots.astype(float)])
    fake = PacketCounter(1, FS, full_scale_uv=CYTON_FULL_SCALE_UV)
    fake.new_session(0.0)
    placement = fake.place(np.append(slots % 256, 100), np.append(slots / FS, 300 / FS),
                           values=np.append(values, NOISE_FAKE[:, None], axis=1))
    assert placement.rejected == 1 and placement.placed.size == 300
    real = PacketCounter(1, FS, full_scale_uv=CYTON_FULL_SCALE_UV)
    real.new_session(0.0)
    placement = real.place(np.append(slots % 256, 60), np.append(slots / FS, 316 / FS),
                           values=np.append(values, values[:, -1:] + 3.0, axis=1))
    assert placement.rejected == 0 and placement.missing[-1] == 16  # samples 300-315


def test_daisy_counter_steps_by_two_and_a_repeat_is_stale() -> None:
    counter = PacketCounter(2, 125.0)
    counter.new_session(0.0)
    # BrainFlow's Daisy join: a lost even packet leaves the previous counter on the next sample
    counters = np.array([0, 2, 2, 6, 10, 10, 10, 16])
    values = values_of(np.arange(8))
    placement = counter.place(counters, values=values)
    np.testing.assert_array_equal(placement.missing, [0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(placement.stale, [False, False, True, False, False, True, True, False])


def test_daisy_halves_out_of_order_are_reported() -> None:
    counter = PacketCounter(2, 125.0)
    counter.new_session(0.0)
    # odd packets start coming before the even ones: the counter repeats once, then steps by one sample
    counters = np.array([0, 2, 4, 4, 6, 8, 10])
    placement = counter.place(counters, np.arange(7) / 125.0, values=values_of(np.arange(7)), final=False)
    assert placement.misordered and placement.consumed == 3 and placement.placed.tolist() == [0, 1, 2]


def test_session_start_and_reconnect_outage_are_sized_from_the_clock() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(100.0)
    # counter 3 arriving shortly after the start: samples 0-2 were lost
    assert counter.place(np.array([3, 4]), np.array([100.02, 100.02])).missing.tolist() == [3, 0]
    counter.new_session(102.02)  # a new session started 2 s after the last sample (at 100.02)
    assert counter.place(np.array([0, 1]), np.array([102.02, 102.024])).missing.tolist() == [499, 0]
    counter.new_session(104.02)  # a session that delivers nothing (the board stalled again) ...
    counter.new_session(106.02)  # ... does not hide the time since the last received sample
    assert counter.place(np.array([0]), np.array([106.02])).missing.tolist() == [998]
    late = PacketCounter(1, FS)
    late.new_session(0.0)
    slots = np.arange(260, 360)
    assert late.place(slots % 256, slots / FS).missing[0] == 260  # a whole period before the first sample
    alone = PacketCounter(1, FS)
    alone.new_session(0.0)
    assert alone.place(np.array([4]), np.array([260 / FS])).missing.tolist() == [4]  # no evidence: no period
    playback = PacketCounter(1, FS, starts_at_zero=False)
    playback.new_session(0.0)
    assert playback.place(np.array([77, 78]), np.array([0.0, 0.004])).missing.tolist() == [0, 0]


@pytest.mark.parametrize("actual_hz, off", [(250.0, False), (247.0, False), (200.0, True), (300.0, True)])
def test_rate_check_measures_the_board_rate_from_host_time(actual_hz: float, off: bool) -> None:
    rng = np.random.default_rng(1)
    check = RateCheck(250.0)
    slots = np.arange(int(8 * actual_hz))
    times = slots / actual_hz + rng.uniform(0.0, 0.010, slots.size)  # delivery delays up to 10 ms
    times[600:700] += 0.3  # and a stretch held up for 0.3 s
    for block in range(0, slots.size, 50):
        check.add(slots[block:block + 50], times[block:block + 50])
    assert check.measured_hz == pytest.approx(actual_hz, rel=0.005)
    assert check.off is off
    # a step in the lateness (an uncorrected counter jump of 84 samples) does not make a rate fault
    stepped = RateCheck(250.0)
    jumped = np.where(slots < slots.size // 2, slots, slots + 84)
    for block in range(0, slots.size, 50):
        stepped.add(jumped[block:block + 50], times[block:block + 50])
    assert stepped.off is off
    check.reset()
    assert check.measured_hz is None and not check.off


def test_ring_buffer_returns_samples_in_order_and_counts_overwrites() -> None:
    ring = RingBuffer(2, 5)
    assert ring.push(np.ones((2, 3)), np.arange(3), np.zeros(3, bool)) == 0
    assert ring.push(np.full((2, 4), 2.0), np.arange(3, 7), np.array([0, 1, 0, 0], bool)) == 2
    data, index, lost = ring.pop_all()
    np.testing.assert_array_equal(index, [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(data[0], [1, 2, 2, 2, 2])
    np.testing.assert_array_equal(lost, [0, 0, 1, 0, 0])
    assert len(ring) == 0 and ring.pop_all()[1].size == 0
    assert ring.push(np.zeros((2, 8)), np.arange(7, 15), np.zeros(8, bool)) == 3
    assert ring.pop_all()[1].tolist() == [10, 11, 12, 13, 14]


@pytest.mark.parametrize("kwargs, message", [
    ({"board": "ganglion"}, "unknown board type"),
    ({"board": "cyton"}, "needs a serial port"),
    ({"board": "playback"}, "needs a file"),
    ({"board": "synthetic", "eeg_channels": [0, 3]}, "do not exist"),
    ({"board": "cyton", "serial_port": "/dev/x", "eeg_channels": [9]}, "use 1..8"),
    ({"board": "synthetic", "watchdog_s": 0}, "must be positive"),
])
def test_bad_acquisition_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(HotspotError, match=message) as info:
        Acquisition(**kwargs)
    assert info.value.code == ErrorCode.BAD_CONFIG


def test_a_missing_board_is_reported_after_the_wait(tmp_path) -> None:
    acquisition = Acquisition("cyton", serial_port=str(tmp_path / "ttyUSB9"))
    with pytest.raises(HotspotError, match="no cyton board answered") as info:
        acquisition.start(wait_s=0.5)
    assert info.value.code == ErrorCode.BOARD_ERROR
    assert acquisition.status.value == "stopped"
