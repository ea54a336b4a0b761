"""Every real recording in ../shared/data/real loads with the channel count, rate and events its README states."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from train.io import load_dataset, read_recording

OPENBCI_FILE = "openbci/OpenBCI_GUI-v6-blinks-jawClench-alpha.txt"
# "| `S001R03.edf` | 2,596,896 | `<sha>` | 64 | 160 | 125.0 | 15 / 8 / 7 |"
README_ROW = re.compile(r"^\| `(S\d{3}R\d{2})\.edf` \|[^|]+\|[^|]+\| (\d+) \| (\d+) \| ([\d.]+) \| (\d+) / (\d+) / (\d+) \|$")


def _readme_table(real_data_dir: Path) -> dict[str, tuple[int, float, float, dict[str, int]]]:
    rows = {}
    for line in (real_data_dir / "eegmmidb" / "README.md").read_text(encoding="utf-8").splitlines():
        match = README_ROW.match(line.strip())
        if match:
            name, channels, rate, seconds, t0, t1, t2 = match.groups()
            rows[name] = (int(channels), float(rate), float(seconds), {"T0": int(t0), "T1": int(t1), "T2": int(t2)})
    return rows


@pytest.fixture(scope="module")
def eegmmidb(real_data_dir: Path):
    return load_dataset(real_data_dir / "eegmmidb")


def test_readme_table_lists_every_eegmmidb_file(real_data_dir: Path) -> None:
    table = _readme_table(real_data_dir)
    on_disk = sorted(path.stem for path in (real_data_dir / "eegmmidb").glob("*.edf"))
    assert sorted(table) == on_disk
    assert len(on_disk) == 21


def test_eegmmidb_every_file_matches_readme(real_data_dir: Path, eegmmidb) -> None:
    table = _readme_table(real_data_dir)
    recordings = {f"{subject.subject[4:]}R{recording.session[4:]}": recording
                  for subject in eegmmidb.subjects for recording in subject.recordings}
    assert sorted(recordings) == sorted(table)
    for name, (channels, rate, seconds, counts) in table.items():
        recording = recordings[name]
        assert recording.data.shape == (channels, round(seconds * rate)), name
        assert recording.sfreq == rate
        assert len(recording.events) == 30
        assert {event: len(recording.cue_samples(event)) for event in recording.event_id} == counts, name
        assert np.all(np.diff(recording.events[:, 0]) > 0)


def test_eegmmidb_grouped_by_subject_with_standard_names(eegmmidb) -> None:
    assert eegmmidb.name == "eegmmidb"
    assert [subject.subject for subject in eegmmidb.subjects] == [f"sub-S00{i}" for i in range(1, 8)]
    for subject in eegmmidb.subjects:
        assert (subject.group, subject.hand, subject.label) == ("unknown", "unknown", None)
        assert [recording.session for recording in subject.recordings] == ["run-03", "run-07", "run-11"]
    recording = eegmmidb.subjects[0].recordings[0]
    assert recording.ch_names[:4] == ["FC5", "FC3", "FC1", "FCz"]
    assert {"C3", "C4", "CPz", "Fp1", "AFz", "Iz", "T10"} <= set(recording.ch_names)
    assert recording.ch_pos.shape == (64, 3) and np.isfinite(recording.ch_pos).all()
    c3, c4 = recording.ch_pos[recording.ch_names.index("C3")], recording.ch_pos[recording.ch_names.index("C4")]
    assert c3[0] < -40 and c4[0] > 40  # head frame: +x toward the right ear
    # 16-bit values at 1 uV per step: EEG in microvolts, integers.
    assert np.allclose(recording.data[:, :100], np.round(recording.data[:, :100]))
    assert 1 < np.std(recording.data) < 200


def test_openbci_gui_file_loads(real_data_dir: Path) -> None:
    recording = read_recording(real_data_dir / OPENBCI_FILE, require_events=False)
    assert recording.data.shape == (8, 22490)
    assert recording.sfreq == 250.0
    np.testing.assert_allclose(recording.data[:, 0], [61379.36, 49492.89, -16597.06, -21309.75, 6703.91,
                                                      -3284.86, 7223.10, 1740.11])
    assert recording.ch_names == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]  # BrainFlow's Cyton default
    assert len(recording.events) == 0 and recording.event_id == {}
    assert np.isfinite(recording.ch_pos).all()


def test_openbci_gui_file_with_given_channel_names(real_data_dir: Path) -> None:
    names = ["FC3", "C5", "C3", "C1", "CP3", "FCz", "Cz", "C4"]
    recording = read_recording(real_data_dir / OPENBCI_FILE, channel_names=names, require_events=False)
    assert recording.ch_names == names
