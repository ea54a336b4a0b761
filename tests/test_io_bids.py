"""A simulated (BIDS-like) folder is read by train.bids and gets the importer's checks and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ErrorCode, HotspotError, run_cli
from train.bids import read_bids_dataset
from train.io import load_dataset, main
from train.simulate import simulate_cohort

SMALL_COHORT = {"cohort": {"n_healthy": 1, "n_stroke": 1, "sessions": 1},
                "task": {"trials_healthy": 3, "trials_stroke": 3},
                "recording": {"channels": ["FC3", "C3", "CP3", "Cz", "C4"]}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_cohort(SMALL_COHORT, tmp_path_factory.mktemp("io_bids") / "cohort", jobs=1)


def test_simulated_folder_goes_to_the_bids_reader(cohort: Path) -> None:
    dataset = load_dataset(cohort)
    assert dataset.content_hash() == read_bids_dataset(cohort).content_hash()
    assert [(s.subject, s.group) for s in dataset.subjects] == [("sub-001", "healthy"), ("sub-002", "stroke")]
    assert dataset.subjects[0].truth is not None
    assert set(dataset.subjects[0].recordings[0].event_id) == {"rest", "move", "stop"}


def test_labels_file_replaces_simulated_labels(cohort: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\n002,-40,10,90,head\n")
    dataset = load_dataset(cohort, labels)
    np.testing.assert_array_equal(dataset.subject("sub-002").label, [-40.0, 10.0, 90.0])
    assert dataset.subject("sub-001").label is None
    labels.write_text("subject,x,y,z,frame\n003,-40,10,90,head\n")
    with pytest.raises(HotspotError, match="sub-003 with no recordings") as caught:
        load_dataset(cohort, labels)
    assert caught.value.code == ErrorCode.BAD_LABELS


def test_simulated_folder_checked_for_channels_and_rate(cohort: Path) -> None:
    with pytest.raises(HotspotError, match="lacks the required channel") as caught:
        load_dataset(cohort, required_channels=["C3", "C5"])
    assert caught.value.code == ErrorCode.MISSING_CHANNELS
    with pytest.raises(HotspotError) as caught:
        load_dataset(cohort, required_sfreq=500.0)
    assert caught.value.code == ErrorCode.BAD_SAMPLING_RATE


def test_cli_summary_of_simulated_folder(cohort: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(main, [str(cohort)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dataset cohort: 2 subject(s), 2 recording(s), 250 Hz")
    assert "sub-002  group stroke" in out
