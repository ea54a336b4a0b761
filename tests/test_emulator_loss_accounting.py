"""Loss accounting of the acquisition: packet counter -> sample slots, and the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.acquisition import Acquisition, PacketCounter, RingBuffer
from edge.errors import ErrorCode, HotspotError

FS = 250.0


def place_all(counter: PacketCounter, slots: np.ndarray, step: int = 1, fs: float = FS):
    """Feed the samples received at ``slots`` (true sample numbers) with exact host times."""
    counter.new_session(0.0)
    return counter.place((slots * step) % 256, slots / fs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=60))
def test_cyton_gaps_of_any_length_are_counted_exactly(gaps: list[int]) -> None:
    gaps = gaps + [0] * 100  # samples after the last gap: the evidence for whole lost periods
    slots = np.cumsum(np.asarray(gaps) + 1) - 1
    missing, stale = place_all(PacketCounter(1, FS), slots)
    assert not stale.any()
    np.testing.assert_array_equal(missing, gaps)


def test_gaps_within_a_counter_period_need_no_clock() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    missing, _ = counter.place(np.array([0, 1, 5, 255, 3]), np.zeros(5))  # all timestamps equal (a burst)
    np.testing.assert_array_equal(missing, [0, 0, 3, 249, 3])
    assert counter.ambiguous_gaps == 0


def test_a_late_burst_is_not_mistaken_for_a_lost_period() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.arange(400)
    times = slots / FS
    times[10:] = 400 / FS  # samples 10..399 held up and delivered together (1.5 s late at first)
    missing, _ = counter.place(slots % 256, times)
    assert not missing.any() and counter.ambiguous_gaps == 0


def test_a_lost_period_is_found_even_when_the_next_samples_come_in_a_burst() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    slots = np.concatenate([np.arange(10), np.arange(310, 500)])  # 300 lost: more than a period
    times = slots / FS
    times[10:50] = 350 / FS  # the first samples after the gap arrive late, together
    missing, _ = counter.place(slots % 256, times)
    assert missing.tolist() == [0] * 10 + [300] + [0] * 189
    assert counter.ambiguous_gaps == 1


def test_a_period_decided_on_a_burst_alone_waits_for_more_samples() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(0.0)
    assert counter.place(np.arange(10), np.arange(10) / FS, final=False)[0].tolist() == [0] * 10
    # after a 300-sample gap, 5 samples arrive together: too little evidence for a whole period
    burst = np.arange(310, 315)
    missing, stale = counter.place(burst % 256, np.full(5, 314 / FS), final=False)
    assert missing.size == 0 and stale.size == 0
    # with the next 0.34 s of arrivals (more than a quarter period) the period is clear
    later = np.arange(310, 400)
    missing, _ = counter.place(later % 256, np.maximum(later, 314) / FS, final=False)
    assert missing.tolist() == [300] + [0] * 89


def test_daisy_counter_steps_by_two_and_a_repeat_is_stale() -> None:
    counter = PacketCounter(2, 125.0)
    counter.new_session(0.0)
    # BrainFlow's Daisy join: a lost even packet leaves the previous counter on the next sample
    missing, stale = counter.place(np.array([0, 2, 2, 6, 10, 10, 10, 16]), np.zeros(8))
    np.testing.assert_array_equal(missing, [0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(stale, [False, False, True, False, False, True, True, False])


def test_session_start_and_reconnect_outage_are_sized_from_the_clock() -> None:
    counter = PacketCounter(1, FS)
    counter.new_session(100.0)
    # counter 3 arriving shortly after the start: samples 0-2 were lost
    assert counter.place(np.array([3, 4]), np.array([100.02, 100.02]))[0].tolist() == [3, 0]
    counter.new_session(102.02)  # a new session started 2 s after the last sample (at 100.02)
    assert counter.place(np.array([0, 1]), np.array([102.02, 102.024]))[0].tolist() == [499, 0]
    counter.new_session(104.02)  # a session that delivers nothing (the board stalled again) ...
    counter.new_session(106.02)  # ... does not hide the time since the last received sample
    assert counter.place(np.array([0]), np.array([106.02]))[0].tolist() == [998]
    late = PacketCounter(1, FS)
    late.new_session(0.0)
    slots = np.arange(260, 360)
    assert late.place(slots % 256, slots / FS)[0][0] == 260  # a whole period before the first sample
    alone = PacketCounter(1, FS)
    alone.new_session(0.0)
    assert alone.place(np.array([4]), np.array([260 / FS]))[0].tolist() == [4]  # no evidence: no period
    playback = PacketCounter(1, FS, starts_at_zero=False)
    playback.new_session(0.0)
    assert playback.place(np.array([77, 78]), np.array([0.0, 0.004]))[0].tolist() == [0, 0]


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
