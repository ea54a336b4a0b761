"""The simulated BIDS-like folder: determinism, round trip through the reader, CLI, references."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mne
import numpy as np
import pytest

from edge.errors import HotspotError
from train.bids import read_bids_dataset
from train.simulate import load_config, main, simulate_cohort, simulate_subject

SMALL = Path(__file__).resolve().parents[1] / "train" / "simulate" / "small.toml"
TINY = {"cohort": {"n_healthy": 2, "n_stroke": 2}, "task": {"trials_healthy": 6, "trials_stroke": 6}}


def _digests(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def tiny_config():
    return load_config(SMALL, TINY)


@pytest.fixture(scope="module")
def written(tmp_path_factory, tiny_config) -> Path:
    return simulate_cohort(tiny_config, tmp_path_factory.mktemp("sim") / "cohort", jobs=1)


def test_folder_layout(written: Path) -> None:
    for name in ("dataset_description.json", "participants.tsv", "participants.json", "truth.json",
                 "simulation.toml", "summary.json"):
        assert (written / name).is_file(), name
    eeg = written / "sub-001" / "ses-1" / "eeg"
    for suffix in ("eeg.bdf", "events.tsv", "channels.tsv", "electrodes.tsv", "coordsystem.json", "eeg.json"):
        assert (eeg / f"sub-001_ses-1_task-handmove_{suffix}").is_file(), suffix
    raw = mne.io.read_raw_bdf(eeg / "sub-001_ses-1_task-handmove_eeg.bdf", verbose=False)
    assert raw.info["sfreq"] == 250.0 and len(raw.ch_names) == 18
    assert {"rest", "move", "stop"} == set(raw.annotations.description)
    assert load_config(written / "simulation.toml").to_dict() == load_config(SMALL, TINY).to_dict()


@pytest.mark.slow
def test_same_seed_gives_identical_files_whatever_the_worker_count(written: Path, tiny_config, tmp_path) -> None:
    again = simulate_cohort(tiny_config, tmp_path / "again", jobs=2)
    assert _digests(again) == _digests(written)
    other = simulate_cohort(tiny_config.with_overrides({"cohort": {"seed": 1, "n_stroke": 0}}), tmp_path / "other")
    first = "sub-001/ses-1/eeg/sub-001_ses-1_task-handmove_eeg.bdf"
    assert _digests(other)[first] != _digests(written)[first]


def test_round_trip_gives_the_same_data_and_labels(written: Path, tiny_config) -> None:
    dataset = read_bids_dataset(written)
    assert [subject.subject for subject in dataset.subjects] == ["sub-001", "sub-002", "sub-003", "sub-004"]
    plan = [("healthy", 0), ("healthy", 1), ("stroke", 0), ("stroke", 1)]
    for subject, (group, index) in zip(dataset.subjects, plan):
        expected, truth = simulate_subject(tiny_config, group, index, subject.subject)
        assert subject.group == group and subject.hand == expected.hand
        if expected.label is None:
            assert subject.label is None and subject.meta["has_tms"] is False
        else:
            assert np.array_equal(subject.label, expected.label)
        assert np.array_equal(subject.truth, expected.truth) and np.array_equal(subject.oracle, expected.oracle)
        assert subject.meta["bad_channels"]["ses-1"] == truth["sessions"][0]["artifacts"]["bad_channels"]
        for got, want in zip(subject.recordings, expected.recordings, strict=True):
            assert got.ch_names == want.ch_names and got.sfreq == want.sfreq
            assert np.array_equal(got.events, want.events) and got.event_id == want.event_id
            assert np.allclose(got.ch_pos, want.ch_pos, atol=1e-4)
            # 24-bit BDF with a per-channel physical range: at most half a quantisation step off.
            step = (want.data.max(axis=1) - want.data.min(axis=1)) / (2 ** 24 - 2)
            assert np.all(np.abs(got.data - want.data).max(axis=1) <= 0.5 * step * (1 + 1e-6) + 1e-9)


def test_reader_picks_channels_and_refuses_what_is_not_a_dataset(written: Path, tmp_path: Path) -> None:
    full = read_bids_dataset(written)
    picked = read_bids_dataset(written, ["C4", "C3"])
    for whole, part in zip(full.subjects, picked.subjects):
        for all_channels, two in zip(whole.recordings, part.recordings):
            assert two.ch_names == ["C4", "C3"]
            rows = [all_channels.ch_names.index(name) for name in two.ch_names]
            assert np.array_equal(two.data, all_channels.data[rows])
    with pytest.raises(HotspotError, match="Oz"):
        read_bids_dataset(written, ["C3", "Oz"])
    with pytest.raises(HotspotError, match="not a simulated dataset folder"):
        read_bids_dataset(tmp_path)


@pytest.mark.parametrize("reference", ["FCz", "linked_mastoids"])
def test_references(reference: str) -> None:
    channels = ["FCz", "C3", "C4", "Cz", "CP3", "CP4"]
    config = load_config(None, {"recording": {"channels": channels, "reference": reference},
                                "cohort": {"sessions": 1}, "task": {"trials_healthy": 3}})
    subject, _ = simulate_subject(config, "healthy", 0)
    recording = subject.recordings[0]
    if reference == "FCz":
        assert recording.ch_names == channels[1:]
    else:
        assert recording.ch_names == channels  # TP9/TP10 simulated for the reference, not written
    assert np.all(np.isfinite(recording.data))


def test_cli_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--out", str(tmp_path / "cli"), "--config", str(SMALL), "--n-healthy", "1", "--n-stroke", "1",
                 "--seed", "3", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "healthy  n=  1" in printed and "stroke   n=  1" in printed
    assert "TMS label - truth" in printed and "C3 amplitude" in printed
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["n_subjects"] == 2
    with pytest.raises(HotspotError, match="not empty"):
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("mine")
        main(["--out", str(tmp_path / "busy"), "--config", str(SMALL), "--n-healthy", "1", "--n-stroke", "0"])


def test_truth_records_each_sessions_cap_transform_that_placed_the_worn_electrodes(written: Path) -> None:
    from train.frames import CapTransform
    from train.head import standard_positions_head_mm

    truth = json.loads((written / "truth.json").read_text())["subjects"]
    checked = 0
    for subject in read_bids_dataset(written).subjects:
        sessions = {entry["session"]: entry["cap_transform"] for entry in truth[subject.subject]["sessions"]}
        for recording in subject.recordings:
            recorded = sessions[recording.session]
            true = CapTransform(recorded["scale"], np.array(recorded["rotation"]), np.array(recorded["translation_mm"]))
            assert true.scale == pytest.approx(subject.meta["head_scale"], abs=1e-4)
            np.testing.assert_allclose(true.rotation @ true.rotation.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(true.rotation) == pytest.approx(1.0)
            # the worn positions (electrodes.tsv) are the transformed template plus the 2 mm electrode jitter
            template = standard_positions_head_mm(recording.ch_names)
            placed = true.to_head(np.array([template[name] for name in recording.ch_names]))
            residual = np.linalg.norm(recording.ch_pos - placed, axis=1)
            assert np.sqrt(np.mean(residual ** 2)) < 2.0 * np.sqrt(3) * 1.5
            checked += 1
    assert checked == 4


def test_the_cap_transform_fitted_from_the_worn_electrodes_recovers_the_true_one_at_the_hotspot() -> None:
    """Default montage (65 electrodes, 2 mm jitter, 5 mm cap shift, head scale 0.93-1.07), 4 subjects x 2 sessions."""
    from train.frames import CapTransform, cap_transform

    config = load_config(None, {"cohort": {"sessions": 2}, "task": {"trials_healthy": 2, "trials_stroke": 2}})
    errors, shifts = [], []
    for group, index in (("healthy", 0), ("healthy", 1), ("stroke", 0), ("stroke", 1)):
        subject, truth = simulate_subject(config, group, index)
        for recording, session in zip(subject.recordings, truth["sessions"]):
            recorded = session["cap_transform"]
            true = CapTransform(recorded["scale"], np.array(recorded["rotation"]), np.array(recorded["translation_mm"]))
            hotspot_cap = true.to_cap(subject.truth)
            errors.append(np.linalg.norm(cap_transform(recording).to_cap(subject.truth) - hotspot_cap))
            shifts.append(np.linalg.norm(subject.truth - hotspot_cap))
    assert max(errors) < 1.0, errors
    assert np.median(shifts) > 3.0  # the cap frame is not the head frame: the transform matters
