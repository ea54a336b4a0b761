"""edge.quality on crafted windows and on a real OpenBCI Cyton recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from train.filter_design import default_filter, reference_sos
from edge.errors import HotspotError
from edge.board import ads1299_full_scale_uv
from edge.fixedpoint import BiquadCascade
from edge.pipeline import PipelineSpec, compute_epochs
from edge.quality import QualityThresholds, assess_window, count_lost_packets, railed_percentage

SFREQ = 250.0
NAMES = ("C3", "C4", "Cz")
OPENBCI_FILE = "openbci/OpenBCI_GUI-v6-blinks-jawClench-alpha.txt"
FULL_SCALE = ads1299_full_scale_uv(24)


def good_window(seed: int = 0) -> np.ndarray:
    """3 s of plausible Cyton data: offsets of tens of mV plus EEG-sized noise."""
    rng = np.random.default_rng(seed)
    return np.array([[40000.0], [-25000.0], [5000.0]]) + rng.normal(0.0, 15.0, (3, int(3 * SFREQ)))


def test_good_window_is_ok() -> None:
    verdict = assess_window(good_window(), NAMES)
    assert verdict.ok and verdict.reasons == () and all(flags == () for flags in verdict.per_channel.values())
    assert verdict.railed_pct["C3"] == pytest.approx(100 * np.abs(good_window()[0]).max() / 187500.0, rel=1e-4)


def test_railed_and_near_railed_follow_the_gui_thresholds() -> None:
    window = good_window()
    window[0, 100] = 0.95 * FULL_SCALE  # one sample in the last 3 s reaching 95 % of full scale
    window[1, :] = -0.80 * FULL_SCALE + window[1, :] * 0.0 + np.linspace(0, 20, window.shape[1])
    verdict = assess_window(window, NAMES)
    assert verdict.per_channel["C3"] == ("railed",) and verdict.per_channel["C4"] == ("near_railed",)
    assert not verdict.ok
    assert any("C3 railed" in reason for reason in verdict.reasons)
    warning_only = good_window()
    warning_only[2] += 0.76 * FULL_SCALE
    assert assess_window(warning_only, NAMES).ok  # near railed is a warning
    custom = QualityThresholds(railed_pct=70.0, near_railed_pct=50.0)
    assert assess_window(warning_only, NAMES, custom).per_channel["Cz"] == ("railed",)


def test_flat_lost_inf_artifact_and_clipped_channels() -> None:
    window = good_window()
    window[0] = 12345.6  # the board's value does not change
    window[1, 10:40] = np.nan  # 4 % lost
    window[2, 5] = np.inf
    filtered = np.zeros_like(window)
    filtered[2, 300] = 300.0  # 300 uV peak-to-peak after filtering (limit 250)
    verdict = assess_window(window, NAMES, filtered_uv=filtered, input_limit_uv=1e5)
    assert verdict.per_channel["C3"] == ("flat",)
    assert verdict.per_channel["C4"] == ("lost",)
    assert verdict.per_channel["Cz"] == ("lost", "artifact")
    assert verdict.lost_fraction == pytest.approx(30 / window.shape[1])
    assert not verdict.ok
    clipped = assess_window(good_window(), NAMES, input_limit_uv=183.1)
    assert all("clipped" in flags for flags in clipped.per_channel.values()) and not clipped.ok
    with pytest.raises(HotspotError, match="3 channels"):
        assess_window(np.zeros((2, 10)), NAMES)
    with pytest.raises(HotspotError, match="near_railed_pct"):
        QualityThresholds(railed_pct=50.0, near_railed_pct=75.0)


def test_channel_states_are_the_gates_own_verdict() -> None:
    # The live signal check's traffic lights (session page) come from the same verdict as the gate:
    # red exactly for the channels that make the window unusable, amber for warnings only.
    window = good_window()
    window[0] = 12345.6  # flat: rejects the window
    window[1] = 0.76 * FULL_SCALE + window[1] - window[1].mean()  # near railed: a warning
    window[2, 10:12] = np.nan  # 2 of 750 samples lost: within the 2 % allowance
    verdict = assess_window(window, NAMES)
    assert verdict.channel_states() == {"C3": "bad", "C4": "warning", "Cz": "warning"}
    assert verdict.rejected == ("C3",) and not verdict.ok
    window[2, 10:40] = np.nan  # 4 % lost: now it rejects the window too
    verdict = assess_window(window, NAMES)
    assert verdict.channel_states()["Cz"] == "bad" and set(verdict.rejected) == {"C3", "Cz"}
    assert assess_window(good_window(), NAMES).channel_states() == {name: "good" for name in NAMES}


def test_packet_loss_from_the_wrapping_counter() -> None:
    counter = np.arange(1000) % 256
    assert count_lost_packets(counter).lost == 0
    gapped = np.delete(counter, np.arange(500, 505))
    loss = count_lost_packets(gapped)
    assert loss.lost == 5 and loss.gaps == (499,) and not loss.ambiguous
    times = np.arange(1000) / SFREQ
    long_gap = np.concatenate([np.arange(400), np.arange(700, 1000)])  # 300 gone; the counter sees 300 - 256
    assert count_lost_packets(counter[long_gap]).lost == 44
    loss = count_lost_packets(counter[long_gap], times[long_gap], SFREQ)  # the timestamps show the period
    assert loss.lost == 300 and loss.ambiguous
    daisy = (np.arange(0, 600, 2) % 256)
    assert count_lost_packets(np.delete(daisy, [10, 11]), step=2).lost == 2
    assert count_lost_packets([3]).lost == 0


def test_files_and_streams_share_one_loss_semantics() -> None:
    from edge.timebase import PacketCounter

    rng = np.random.default_rng(4)
    true = np.arange(3000)
    received = np.sort(rng.choice(true, 2700, replace=False))  # 10 % lost at random
    received = np.sort(np.concatenate([received, received[500:800]]))  # 300 packets sent twice
    counters = np.where(received < 2000, received, received - 2000 + 17) % 256  # the counter restarts at 2000
    times = received / SFREQ + rng.uniform(0.0, 0.004, received.size)
    values = np.stack([received, received * 2.0])
    loss = count_lost_packets(counters, times, SFREQ, values=values)
    assert loss.duplicates == 300 and loss.received == 2700
    # the file's loss is what a live stream of the same packets counts, block by block
    stream = PacketCounter(1, SFREQ, starts_at_zero=False)
    stream.new_session(float(times[0]))
    done, lost, offset = 0, 0, 0
    while done < received.size:
        block = slice(done, min(received.size, done + 37 + offset))
        end = received.size if block.stop >= received.size else block.stop
        placement = stream.place(counters[done:end], times[done:end], final=end == received.size,
                                 values=values[:, done:end])
        lost += int(placement.missing.sum())
        offset = end - done - placement.consumed
        done += placement.consumed
    assert lost == loss.lost and stream.next_slot == loss.received + loss.lost
    # the counter restart cost no phantom loss: every true gap is counted, nothing more
    assert loss.lost == received.max() - received.min() + 1 - loss.received
    assert count_lost_packets([5, 5]).lost == 0 and count_lost_packets([5, 5]).duplicates == 1


@pytest.fixture(scope="module")
def cyton_recording(real_data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The OpenBCI GUI's sample recording: (sample counter, timestamps s, EXG microvolts (8, n))."""
    table = np.loadtxt(real_data_dir / OPENBCI_FILE, delimiter=",", skiprows=5, usecols=[*range(9), 22])
    return table[:, 0], table[:, 9] / 1000.0, table[:, 1:9].T


def test_real_recording_has_no_loss_and_no_railed_channel(cyton_recording) -> None:
    counter, times, data = cyton_recording
    loss = count_lost_packets(counter, times, SFREQ)
    assert loss.lost == 0 and not loss.ambiguous and loss.received == data.shape[1]
    assert np.sum(np.diff(counter) < 0) == 87  # it wraps 87 times
    window = int(3 * SFREQ)
    for start in range(0, data.shape[1] - window, window):  # the GUI's 3-s check over the whole file
        assert railed_percentage(data[:, start:start + window]).max() < 75.0


def test_real_recording_through_the_pipeline(cyton_recording) -> None:
    _, _, data = cyton_recording
    names = ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2")
    spec = PipelineSpec(SFREQ, names, "clean", default_filter(SFREQ))
    cues = np.arange(600, data.shape[1] - 1000, 1500)
    epochs = compute_epochs(spec, data, cues)
    assert len(epochs.verdicts) == len(cues)
    for verdict in epochs.verdicts:
        for flags in verdict.per_channel.values():
            assert not {"railed", "near_railed", "flat", "lost", "clipped"} & set(flags)
    artifacts = [any("artifact" in flags for flags in v.per_channel.values()) for v in epochs.verdicts]
    assert any(artifacts) and not all(artifacts)  # jaw clenches and blinks are rejected, calm windows kept


def test_q31_filter_on_real_data_matches_float64(cyton_recording) -> None:
    """Real DC offsets (tens of mV), blinks and jaw clenches: no wrap-around, > 100 dB in the pass band."""
    _, _, data = cyton_recording
    spec = default_filter(SFREQ)
    cascade = BiquadCascade(spec, data.shape[0])
    fixed = spec.to_fixed(data)
    cascade.warm_start(fixed[:, 0])
    ours = spec.to_uv(cascade.process(fixed))
    sos = reference_sos(SFREQ, 6.0, 35.0, 60.0)
    reference = np.stack([signal.sosfilt(sos, row, zi=signal.sosfilt_zi(sos) * row[0])[0] for row in data])
    settle = int(5 * SFREQ)
    error = np.fft.rfft(ours[:, settle:] - reference[:, settle:], axis=1)
    power = np.fft.rfft(reference[:, settle:], axis=1)
    freqs = np.fft.rfftfreq(data.shape[1] - settle, 1 / SFREQ)
    band = (freqs >= 6.0) & (freqs <= 35.0)
    snr_db = 10 * np.log10((np.abs(power[:, band]) ** 2).sum(axis=1) / (np.abs(error[:, band]) ** 2).sum(axis=1))
    assert snr_db.min() >= 100.0
