"""Each bad input to the importer gives one clear error line and exit code 2 from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
from brainflow.data_filter import DataFilter

from edge.errors import ErrorCode, HotspotError, run_cli
from io_factory import NAMES, make_raw
from train.io import load_dataset, main, read_recording

REPO = Path(__file__).resolve().parents[1]


def cli_error(capsys: pytest.CaptureFixture, argv: list[str], code: ErrorCode) -> str:
    """Run ``invoke load``'s main; check exit code 2 and one stderr line with the code; return the line."""
    assert run_cli(main, [str(arg) for arg in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and lines[0].endswith(f"[{code.name}]")
    return lines[0]


@pytest.fixture()
def edf(tmp_path: Path) -> Path:
    path = tmp_path / "sub-01_task-handmove_eeg.edf"
    mne.export.export_raw(path, make_raw(), verbose="error")
    return path


def test_valid_file_prints_summary(capsys: pytest.CaptureFixture, edf: Path) -> None:
    assert run_cli(main, [str(edf)]) == 0
    out = capsys.readouterr().out
    assert "1 subject(s), 1 recording(s), 250 Hz" in out and "move=2 rest=2 stop=2" in out


@pytest.mark.parametrize("name,content", [("rec.xyz", b"data"), ("notes.txt", b"hello world\n"),
                                          ("table.csv", b"a,b\n1,2\n")])
def test_unknown_format(capsys: pytest.CaptureFixture, tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert "unknown recording format" in cli_error(capsys, [path], ErrorCode.BAD_FORMAT)


def test_missing_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert "not found" in cli_error(capsys, [tmp_path / "nothing.edf"], ErrorCode.BAD_FILE)


def test_truncated_edf(capsys: pytest.CaptureFixture, edf: Path) -> None:
    edf.write_bytes(edf.read_bytes()[: edf.stat().st_size // 2])
    assert "truncated" in cli_error(capsys, [edf], ErrorCode.BAD_FILE)


def _cut_half(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_truncated_fif(tmp_path: Path) -> None:
    path = tmp_path / "rec_raw.fif"
    make_raw().save(path, verbose="error")
    with pytest.raises(HotspotError, match="corrupt or truncated") as caught:
        read_recording(_cut_half(path))
    assert caught.value.code == ErrorCode.BAD_FILE


@pytest.mark.parametrize("name,content", [
    # MNE has no GDF writer: this broken file is the GDF test (the extension reaches MNE's reader
    # and its failure becomes a BAD_FILE error); BDF and BrainVision also round-trip in test_io_formats.
    ("rec.gdf", b"GDF 2.20" + bytes(50)),
    ("rec.bdf", b"\xffBIOSEMI" + bytes(40)),
    ("rec.vhdr", b"Brain Vision Data Exchange Header File Version 1.0\n"),
])
def test_unreadable_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HotspotError, match="cannot read") as caught:
        read_recording(path)
    assert caught.value.code == ErrorCode.BAD_FILE


def test_truncated_openbci_gui_file(tmp_path: Path, real_data_dir: Path) -> None:
    text = (real_data_dir / "openbci" / "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt").read_text()
    path = tmp_path / "OpenBCI-RAW-cut.txt"
    path.write_text(text[:5000])  # ends inside a row
    with pytest.raises(HotspotError, match="corrupt or truncated") as caught:
        read_recording(path, require_events=False)
    assert caught.value.code == ErrorCode.BAD_FILE


def test_ragged_brainflow_csv(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    DataFilter.write_file(np.zeros((24, 10)), str(path), "w")
    path.write_text(path.read_text() + "1.0\t2.0\n")
    with pytest.raises(HotspotError, match="BrainFlow cannot read") as caught:
        read_recording(path, require_events=False)
    assert caught.value.code == ErrorCode.BAD_FILE


def test_brainflow_csv_of_unknown_board(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    DataFilter.write_file(np.zeros((32, 10)), str(path), "w")
    with pytest.raises(HotspotError, match="name the board") as caught:
        read_recording(path, require_events=False)
    assert caught.value.code == ErrorCode.BAD_FORMAT
    assert read_recording(path, board="cyton_daisy", require_events=False).data.shape == (16, 10)


def test_missing_required_channels_are_named(capsys: pytest.CaptureFixture, edf: Path) -> None:
    line = cli_error(capsys, [edf, "--require-channels", "C3,CP5,FC1"], ErrorCode.MISSING_CHANNELS)
    assert "CP5, FC1" in line and ", ".join(NAMES) in line


def test_required_sampling_rate(capsys: pytest.CaptureFixture, edf: Path) -> None:
    assert "250 Hz, not the required 500 Hz" in cli_error(capsys, [edf, "--sfreq", "500"],
                                                          ErrorCode.BAD_SAMPLING_RATE)


def test_sampling_rate_mismatch_across_recordings(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    mne.export.export_raw(tmp_path / "sub-01_eeg.edf", make_raw(sfreq=250.0), verbose="error")
    mne.export.export_raw(tmp_path / "sub-02_eeg.edf", make_raw(sfreq=160.0), verbose="error")
    line = cli_error(capsys, [tmp_path], ErrorCode.BAD_SAMPLING_RATE)
    assert "sub-01 ses-1 at 250 Hz" in line and "sub-02 ses-1 at 160 Hz" in line


def test_nan_samples(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    raw = make_raw()
    data = raw.get_data()
    data[1, 100:110] = np.nan
    data[3, 5] = np.inf
    path = tmp_path / "rec_raw.fif"
    mne.io.RawArray(data, raw.info, verbose="error").set_annotations(raw.annotations).save(path, verbose="error")
    line = cli_error(capsys, [path], ErrorCode.BAD_SAMPLES)
    assert "11 NaN or infinite" in line and "C3, Cz" in line


def test_no_events(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    raw = make_raw()
    raw.set_annotations(None)
    path = tmp_path / "rec.edf"
    mne.export.export_raw(path, raw, verbose="error")
    assert "has no events" in cli_error(capsys, [path], ErrorCode.NO_EVENTS)
    assert run_cli(main, [str(path), "--allow-no-events"]) == 0


def test_label_without_frame(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z\n01,1,2,3\n")
    assert "no frame" in cli_error(capsys, [edf, "--labels", labels], ErrorCode.BAD_LABELS)


def test_label_in_mri_space_without_fiducials(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\n01,1,2,3,RAS\n")
    assert "--fiducials" in cli_error(capsys, [edf, "--labels", labels], ErrorCode.BAD_LABELS)


def test_subject_in_labels_but_not_in_recordings(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\n01,1,2,3,head\n02,4,5,6,head\n")
    assert "sub-02 with no recordings" in cli_error(capsys, [edf, "--labels", labels], ErrorCode.BAD_LABELS)


def test_labels_attach_to_subjects(tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\nsub-01,-38,12,88,head\n")
    dataset = load_dataset(edf, labels)
    np.testing.assert_array_equal(dataset.subject("sub-01").label, [-38.0, 12.0, 88.0])


def test_fiducials_without_labels(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    assert "without labels" in cli_error(capsys, [edf, "--fiducials", tmp_path / "f.csv"], ErrorCode.BAD_ARGUMENT)


def test_bad_command_line(capsys: pytest.CaptureFixture) -> None:
    assert "required: path" in cli_error(capsys, [], ErrorCode.BAD_ARGUMENT)
    assert "--sfreq" in cli_error(capsys, ["x.edf", "--sfreq", "fast"], ErrorCode.BAD_ARGUMENT)


def test_module_entry_point_prints_one_line_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "rec.xyz"
    path.write_text("x")
    result = subprocess.run([sys.executable, "-m", "train.io", str(path)], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {path}: unknown recording format; use EDF, BDF, "
                                                  "BrainVision (.vhdr), FIF, GDF, an OpenBCI GUI .txt or a "
                                                  "BrainFlow CSV [BAD_FORMAT]"]


def _edf_field(raw: bytes, index: int, width: int) -> tuple[int, int]:
    """Offset of the per-signal header field ``index`` (EDF order) and the number of signals."""
    n_signals = int(raw[252:256].decode().strip())
    widths = [16, 80, 8, 8, 8, 8, 8, 80, 8, 32]
    return 256 + n_signals * sum(widths[:index]), n_signals


def test_edf_with_no_signals(capsys: pytest.CaptureFixture, edf: Path) -> None:
    raw = bytearray(edf.read_bytes())
    raw[252:256] = b"0   "
    edf.write_bytes(bytes(raw))
    assert "is corrupt" in cli_error(capsys, [edf], ErrorCode.BAD_FILE)


def test_edf_whose_data_are_all_0xff(capsys: pytest.CaptureFixture, edf: Path) -> None:
    raw = edf.read_bytes()
    header = 256 * (int(raw[252:256].decode().strip()) + 1)
    edf.write_bytes(raw[:header] + b"\xff" * (len(raw) - header))
    assert "is corrupt" in cli_error(capsys, [edf], ErrorCode.BAD_FILE)


def test_edf_with_physical_minimum_equal_to_maximum(capsys: pytest.CaptureFixture, edf: Path) -> None:
    raw = bytearray(edf.read_bytes())
    minimum, n_signals = _edf_field(raw, 3, 8)
    maximum, _ = _edf_field(raw, 4, 8)
    raw[maximum:maximum + 8 * n_signals] = raw[minimum:minimum + 8 * n_signals]
    edf.write_bytes(bytes(raw))
    line = cli_error(capsys, [edf], ErrorCode.BAD_FILE)
    assert "minimum equal to maximum" in line and "FC3" in line


def test_openbci_gui_file_with_sample_rate_zero(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                 real_data_dir: Path) -> None:
    text = (real_data_dir / "openbci" / "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt").read_text()
    path = tmp_path / "OpenBCI-RAW-zero.txt"
    path.write_text(text.replace("%Sample Rate = 250 Hz", "%Sample Rate = 0 Hz"))
    assert "Sample Rate = 0 Hz" in path.read_text()
    line = cli_error(capsys, [path, "--allow-no-events"], ErrorCode.BAD_FORMAT)
    assert "sample rate 0 Hz is not a sampling rate" in line


def test_binary_label_file(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_bytes(bytes(range(256)) * 8)
    assert "is not a text CSV" in cli_error(capsys, [edf, "--labels", labels], ErrorCode.BAD_LABELS)


def test_label_coordinates_far_outside_any_head(capsys: pytest.CaptureFixture, tmp_path: Path, edf: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,x,y,z,frame\nsub-01,1e308,2,3,head\n")
    line = cli_error(capsys, [edf, "--labels", labels], ErrorCode.BAD_LABELS)
    assert "1e+308 mm" in line and "check the units" in line
