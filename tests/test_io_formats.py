"""Each recording format round-trips through its writer (MNE export, MNE FIF, BrainFlow) and train.io.

No binaries are shipped: the fixtures are written here. MNE has no GDF writer, so for GDF only
the dispatch to MNE's reader is tested (through its error on a broken file, see test_io_errors.py).
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim
from brainflow.data_filter import DataFilter

from io_factory import NAMES, SFREQ, expected_events, make_raw
from train.head import standard_positions_head_mm
from train.io import load_dataset, read_recording
from train.io.channels import standardize_name


def events_by_name(recording) -> list[tuple[int, str]]:
    names = {code: name for name, code in recording.event_id.items()}
    return [(int(sample), names[int(code)]) for sample, code in recording.events]


@pytest.mark.parametrize("suffix,tolerance_uv", [(".edf", 0.01), (".bdf", 1e-4), (".vhdr", 1e-3), ("_raw.fif", 1e-6)])
def test_mne_formats_round_trip(tmp_path: Path, suffix: str, tolerance_uv: float) -> None:
    raw = make_raw()
    path = tmp_path / f"sub-07_ses-2_task-handmove{suffix}"
    if suffix == "_raw.fif":
        raw.save(path, verbose="error")
    else:
        mne.export.export_raw(path, raw, verbose="error")
    recording = read_recording(path)
    assert (recording.subject, recording.session) == ("sub-07", "ses-2")
    assert recording.ch_names == NAMES
    assert recording.sfreq == SFREQ
    np.testing.assert_allclose(recording.data, raw.get_data() * 1e6, atol=tolerance_uv)
    assert events_by_name(recording) == expected_events()
    positions = standard_positions_head_mm(NAMES)
    np.testing.assert_allclose(recording.ch_pos, [positions[name] for name in NAMES])


def test_fif_drops_non_eeg_channels_and_counts_events_from_first_sample(tmp_path: Path) -> None:
    raw = make_raw(NAMES + ["EOG1"])
    raw.set_channel_types({"EOG1": "eog"})
    raw.crop(tmin=0.5)  # first_samp is now 125: events must still index the data array
    path = tmp_path / "cropped_raw.fif"
    raw.save(path, verbose="error")
    recording = read_recording(path)
    assert recording.ch_names == NAMES
    assert events_by_name(recording)[0] == (round(0.5 * SFREQ), "rest")


def test_bids_events_tsv_beside_the_recording_is_used(tmp_path: Path) -> None:
    raw = make_raw()
    raw.set_annotations(None)
    path = tmp_path / "sub-01_task-handmove_eeg.edf"
    mne.export.export_raw(path, raw, verbose="error")
    (tmp_path / "sub-01_task-handmove_events.tsv").write_text(
        "onset\tduration\ttrial_type\tvalue\n1.0\t0\trest\t1\n2.0\t4.0\tmove\t2\n6.004\t0\tmove\t2\n")
    recording = read_recording(path)
    assert recording.event_id == {"move": 2, "rest": 1}
    assert recording.events.tolist() == [[250, 1], [500, 2], [1501, 2]]


def test_mne_events_file_replaces_annotations(tmp_path: Path) -> None:
    raw = make_raw()
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    events_path = tmp_path / "rec-eve.fif"
    mne.write_events(events_path, np.array([[300, 0, 7], [900, 0, 7], [1200, 0, 9]]), verbose="error")
    recording = read_recording(path, events=events_path)
    assert recording.event_id == {"7": 7, "9": 9}
    assert recording.events.tolist() == [[300, 7], [900, 7], [1200, 9]]


def test_brainflow_csv_round_trip(tmp_path: Path) -> None:
    board = BoardIds.CYTON_BOARD
    rows = np.zeros((BoardShim.get_num_rows(board), 500))
    rng = np.random.default_rng(1)
    eeg_rows = BoardShim.get_eeg_channels(board)
    rows[eeg_rows] = rng.normal(0.0, 30.0, (len(eeg_rows), 500)).round(3)
    rows[BoardShim.get_marker_channel(board), [100, 300]] = [1, 2]
    path = tmp_path / "sub-03_session.csv"
    DataFilter.write_file(rows, str(path), "w")
    recording = read_recording(path)
    assert recording.sfreq == BoardShim.get_sampling_rate(board)
    np.testing.assert_allclose(recording.data, rows[eeg_rows], atol=1e-6)
    assert recording.event_id == {"1": 1, "2": 2}
    assert recording.events.tolist() == [[100, 1], [300, 2]]
    assert recording.subject == "sub-03"


def test_openbci_gui_file_with_markers_and_events(tmp_path: Path, real_data_dir: Path) -> None:
    lines = (real_data_dir / "openbci" / "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt").read_text().splitlines()
    header, rows = lines[:5], lines[5:505]
    fields = rows[200].split(",")
    fields[23] = " 3"
    rows[200] = ",".join(fields)
    path = tmp_path / "OpenBCI-RAW-short.txt"
    path.write_text("\n".join(header + rows) + "\n")
    recording = read_recording(path)
    assert recording.data.shape == (8, 500)
    assert recording.events.tolist() == [[200, 3]] and recording.event_id == {"3": 3}


def test_folder_of_files_groups_by_subject(tmp_path: Path) -> None:
    for subject in ("01", "02"):
        (tmp_path / subject).mkdir()
        for session in ("1", "2"):
            mne.export.export_raw(tmp_path / subject / f"sub-{subject}_ses-{session}_eeg.edf", make_raw(), verbose="error")
    (tmp_path / "notes.txt").write_text("not a recording\n")
    mne.write_events(tmp_path / "01" / "cues-eve.fif", np.array([[250, 0, 1]]), verbose="error")
    dataset = load_dataset(tmp_path)
    assert [s.subject for s in dataset.subjects] == ["sub-01", "sub-02"]
    assert [r.session for r in dataset.subjects[1].recordings] == ["ses-1", "ses-2"]


@pytest.mark.parametrize("written,standard", [("Fc3.", "FC3"), ("C3..", "C3"), ("Cpz.", "CPz"), ("Fp1.", "Fp1"),
                                              ("EEG C3-REF", "C3"), ("fcc3h", "FCC3h"), ("EMG1", "EMG1")])
def test_channel_names_are_standardised(written: str, standard: str) -> None:
    assert standardize_name(written) == standard


def test_eegmmidb_names_match_mne_standardize(real_data_dir: Path) -> None:
    raw = mne.io.read_raw_edf(real_data_dir / "eegmmidb" / "S001R03.edf", verbose="error")
    written = list(raw.ch_names)
    mne.datasets.eegbci.standardize(raw)
    assert [standardize_name(name) for name in written] == raw.ch_names
