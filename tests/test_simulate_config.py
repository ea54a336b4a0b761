"""Simulator configuration: defaults load, overrides apply, every kind of bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ErrorCode, HotspotError, run_cli
from train.simulate import load_config, main

SMALL = Path(__file__).resolve().parents[1] / "train" / "simulate" / "small.toml"


def test_defaults_are_the_papers_cohort() -> None:
    config = load_config()
    assert (config["cohort"]["n_healthy"], config["cohort"]["n_stroke"]) == (30, 29)
    assert config["recording"]["sfreq"] == 250.0
    assert config["hotspot"]["mni_centre"] == [-38.6, -15.4, 62.0]
    assert {"FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1", "C4", "FC4"} <= set(
        config["recording"]["channels"])


def test_file_then_overrides() -> None:
    config = load_config(SMALL, {"task": {"rest_s": [4, 4]}, "cohort": {"seed": 7}})
    assert config["cohort"]["n_healthy"] == 4 and config["cohort"]["seed"] == 7
    assert config["task"]["rest_s"] == [4.0, 4.0]  # ints accepted for floats
    assert len(config["recording"]["channels"]) == 18


@pytest.mark.parametrize(("overrides", "key"), [
    ({"cohort": {"n_helthy": 3}}, "cohort.n_helthy"),
    ({"cohrt": {"seed": 1}}, "cohrt"),
    ({"cohort": {"n_healthy": "30"}}, "cohort.n_healthy"),
    ({"cohort": {"n_healthy": 2.5}}, "cohort.n_healthy"),
    ({"cohort": {"sessions": 0}}, "cohort.sessions"),
    ({"hotspot": {"label_noise_sd_mm": -1.0}}, "hotspot.label_noise_sd_mm"),
    ({"task": {"rest_s": [5.0, 3.0]}}, "task.rest_s"),
    ({"task": {"rest_s": [4.0]}}, "task.rest_s"),
    ({"modulation": {"mu_erd": [0.3, 1.5]}}, "modulation.mu_erd"),
    ({"recording": {"reference": "Cz"}}, "recording.reference"),
    ({"recording": {"channels": ["C3", "Q7"]}}, "recording.channels"),
    ({"recording": {"channels": ["C3", "C4"], "reference": "FCz"}}, "recording.reference"),
    ({"recording": {"band_hz": [0.5, 200.0]}}, "recording.band_hz"),
    ({"artifacts": {"emg_task_locked_probability": True}}, "artifacts.emg_task_locked_probability"),
])
def test_bad_values_name_their_key(overrides: dict, key: str) -> None:
    with pytest.raises(HotspotError) as info:
        load_config(None, overrides)
    assert info.value.code == ErrorCode.BAD_CONFIG
    assert f"'{key}'" in str(info.value) and "\n" not in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(HotspotError, match="not found"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[cohort\nseed = 1\n")
    with pytest.raises(HotspotError, match="not valid TOML"):
        load_config(broken)


def test_cli_reports_a_config_error_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[task]\nmove_s = -2.0\n")
    code = run_cli(main, ["--out", str(tmp_path / "out"), "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "'task.move_s'" in err
    assert not (tmp_path / "out").exists()
