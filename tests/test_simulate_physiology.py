"""The simulated EEG is physiological: lateralised mu ERD, C3 amplitudes, label and oracle spread.

Definitions (train/simulate/summary.py): "C3 amplitude" = RMS of C3 band-passed 1-40 Hz over the
whole recording; "mu ERD" = 1 - median movement / median rest 8-13 Hz power over trials.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.montage import mirror_channel_names
from train.simulate import draw_subject, load_config, make_schedule, simulate_subject
from train.simulate.summary import band_rms, mu_erd

LEFT_GRID = ["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"]
N_PER_SIDE = 4


def _cluster_erd(recording, names: list[str]) -> float:
    erd = mu_erd(recording)
    return float(np.mean([erd[recording.ch_names.index(name)] for name in names]))


@pytest.fixture(scope="module")
def healthy_both_sides() -> list[tuple[str, object]]:
    """Healthy subjects moving the right hand (left hotspot) and the left hand (right hotspot).

    One session of the default 40 trials on the default 64-channel montage; bad channels are
    switched off so that a flat C3 cannot stand in for physiology.
    """
    subjects = []
    for hand in ("right", "left"):
        config = load_config(None, {"cohort": {"sessions": 1}, "participants": {"healthy_hand": hand},
                                    "artifacts": {"bad_channel_fraction": [0.0, 0.0]}})
        for index in range(N_PER_SIDE):
            subject, _ = simulate_subject(config, "healthy", index)
            subjects.append((hand, subject))
    return subjects


@pytest.mark.slow
def test_mu_power_drops_more_over_the_hotspot_hemisphere(healthy_both_sides) -> None:
    differences = []
    for hand, subject in healthy_both_sides:
        assert subject.meta["hotspot_hemisphere"] == ("left" if hand == "right" else "right")
        contra = LEFT_GRID if hand == "right" else mirror_channel_names(LEFT_GRID)
        recording = subject.recordings[0]
        differences.append(_cluster_erd(recording, contra) - _cluster_erd(recording, mirror_channel_names(contra)))
    differences = np.array(differences)
    assert differences.mean() > 0.05  # at least 5 percentage points more ERD on the hotspot side
    assert (differences > 0).mean() >= 0.75


@pytest.mark.slow
def test_c3_amplitude_is_in_the_physiological_range(healthy_both_sides) -> None:
    amplitudes = [band_rms(subject.recordings[0], "C3") for _, subject in healthy_both_sides]
    assert all(10.0 <= amplitude <= 50.0 for amplitude in amplitudes), amplitudes


def test_label_minus_truth_has_the_configured_spread() -> None:
    config = load_config(None, {"hotspot": {"label_noise_sd_mm": 3.5}})
    draws = [draw_subject(config, "healthy", index) for index in range(600)]
    errors = np.array([draw.label - draw.truth for draw in draws])
    assert np.allclose(errors.mean(axis=0), 0.0, atol=0.5)
    assert np.allclose(errors.std(axis=0), 3.5, rtol=0.1)
    truths = np.array([draw.truth for draw in draws])
    assert np.all(truths[:, 0] < 0)  # right hand -> left hemisphere
    assert np.all(truths.std(axis=0) > 2.5) and np.all(truths.std(axis=0) < 6.0)  # SD 4 mm, depth-constrained
    oracle_errors = np.array([draw.oracle - draw.truth for draw in draws])
    assert np.allclose(oracle_errors.std(axis=0), 5.0 / np.sqrt(2), rtol=0.15)  # generator spread / sqrt(2)


def test_stroke_cohort_has_both_lesion_sides_and_mep_negative_patients() -> None:
    config = load_config()
    draws = [draw_subject(config, "stroke", index) for index in range(200)]
    left = sum(draw.hemisphere == "left" for draw in draws)
    assert 70 < left < 130
    assert all((draw.hand == "right") == (draw.hemisphere == "left") for draw in draws)
    negative = [draw for draw in draws if draw.label is None]
    assert 0.2 < len(negative) / len(draws) < 0.4  # p = 0.2 (1 + s), s ~ Beta(2, 2): mean 0.3
    shifts = np.array([draw.truth for draw in draws if draw.hemisphere == "left"])
    healthy = np.array([draw_subject(config, "healthy", index).truth for index in range(200)])
    assert shifts.std(axis=0).mean() > healthy.std(axis=0).mean()  # stroke adds a hotspot shift


def test_fixed_schedule_puts_cues_at_exact_samples() -> None:
    config = load_config(None, {"task": {"rest_s": [4.0, 4.0], "move_s": 5.0, "post_s": 3.0, "lead_in_s": 2.0}})
    schedule = make_schedule(config["task"], 5, 250.0)
    assert schedule.cues.tolist() == [500 + 1000 + k * 3000 for k in range(5)]
    assert (schedule.stops - schedule.cues).tolist() == [1250] * 5
    assert schedule.n_samples % 250 == 0 and schedule.n_samples >= schedule.stops[-1] + 750
