"""train.bad_channels: session-bad channels found by the device's rules and repaired by MNE interpolation."""

from __future__ import annotations

import numpy as np

from train.bad_channels import find_bad_channels, find_deviant_channels, repaired_data, session_bad_channels
from train.configs import load_training_config
from train.dataset import Dataset, Recording, Subject
from train.head import standard_positions_head_mm
from train.windows import dataset_windows, make_spec

CHANNELS = ["FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
            "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "F3", "Fz", "F4", "P3", "Pz", "P4"]
SFREQ = 250.0
SECONDS = 120


def smooth_field_recording(seed: int = 0) -> Recording:
    """EEG-like microvolts that vary smoothly over the scalp: three broad sources with 1/f-ish time courses."""
    rng = np.random.default_rng(seed)
    positions = standard_positions_head_mm(CHANNELS)
    pos = np.array([positions[name] for name in CHANNELS])
    n = int(SECONDS * SFREQ)
    centres = pos[rng.choice(len(CHANNELS), 3, replace=False)]
    weights = np.exp(-((pos[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * 45.0 ** 2))
    walks = np.cumsum(rng.normal(size=(3, n)), axis=1)
    sources = walks - np.array([np.convolve(walk, np.ones(125) / 125, mode="same") for walk in walks])
    data = 20.0 * weights @ (sources / sources.std(axis=1, keepdims=True)) + rng.normal(0, 0.5, (len(CHANNELS), n))
    cues = np.arange(int(5 * SFREQ), n - int(6 * SFREQ), int(8 * SFREQ))
    events = np.stack([cues, np.ones_like(cues)], axis=1)
    return Recording(subject="sub-01", session="ses-1", data=data, sfreq=SFREQ, ch_names=list(CHANNELS),
                     ch_pos=pos, events=events, event_id={"move": 1})


def test_flat_railed_and_empty_channels_are_bad_for_the_session() -> None:
    recording = smooth_field_recording()
    assert find_bad_channels(recording) == []
    recording.data[CHANNELS.index("C3")] = 12.5            # flat (a disconnected electrode at a constant)
    recording.data[CHANNELS.index("Pz"), ::50] = 187000.0  # reaches the ADS1299 full scale: railed
    recording.data[CHANNELS.index("F4")] = np.nan          # no sample at all
    assert find_bad_channels(recording) == ["C3", "F4", "Pz"]


def test_deviant_channels_are_found_by_their_robust_amplitude() -> None:
    """PREP's deviation criterion: a channel far noisier than the others, though neither flat nor railed, is bad
    for a host-side common average (which would spread its noise to every channel); the device's rules alone do
    not flag it."""
    recording = smooth_field_recording()
    assert find_deviant_channels(recording) == []
    rng = np.random.default_rng(1)
    recording.data[CHANNELS.index("CP4")] += rng.normal(0.0, 150.0, recording.data.shape[1])  # a loose electrode
    assert find_bad_channels(recording) == []
    assert find_deviant_channels(recording) == ["CP4"]
    recording.data[CHANNELS.index("C3")] = 12.5
    assert session_bad_channels(recording) == ["C3"]
    assert session_bad_channels(recording, deviant=True) == ["C3", "CP4"]


def test_interpolation_recovers_a_flat_channel_from_its_neighbours() -> None:
    truth = smooth_field_recording()
    broken = smooth_field_recording()
    c3 = CHANNELS.index("C3")
    broken.data[c3] = 0.0
    repaired = repaired_data(broken)
    assert np.corrcoef(repaired[c3], truth.data[c3])[0, 1] > 0.95
    others = np.arange(len(CHANNELS)) != c3
    np.testing.assert_allclose(repaired[others], broken.data[others])


def test_nothing_changes_without_bad_channels_or_without_positions() -> None:
    recording = smooth_field_recording()
    assert repaired_data(recording) is recording.data
    recording.data[CHANNELS.index("C3")] = 0.0
    recording.ch_pos[CHANNELS.index("C3")] = np.nan  # unknown position: cannot interpolate
    np.testing.assert_array_equal(repaired_data(recording), recording.data)


def test_all_channel_windows_survive_a_dead_electrode_only_when_repair_is_asked_for() -> None:
    recording = smooth_field_recording()
    recording.data[CHANNELS.index("CP1")] = 0.0
    subject = Subject(subject="sub-01", group="healthy", hand="right", label=np.array([-40.0, -10.0, 90.0]),
                      recordings=[recording])
    dataset = Dataset(name="one dead electrode", subjects=[subject])
    spec = make_spec("psd", CHANNELS, SFREQ, load_training_config().pipeline)
    strict = dataset_windows(dataset, spec, "move", mirror=False)
    repaired = dataset_windows(dataset, spec, "move", mirror=False, repair=True)
    n_cues = len(recording.cue_samples("move"))
    assert len(strict[0].inputs) == 0
    assert len(repaired[0].inputs) == n_cues
