"""The demo's pieces that need no trained model (the whole chain runs in test_hil_session.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edge.config import load_config
from edge.errors import run_cli
from edge.contract import worn_electrodes
from hardware.demo import Chain, board_source, check_board_rate, load_settings, main, write_device_config


def test_both_settings_tables_load() -> None:
    from train.simulate import load_config as load_simulation_config

    for fast in (False, True):
        settings = load_settings(fast)
        assert settings["speed"] > 0 and settings["simulation"]["task"]["rest_s"][0] == \
            settings["simulation"]["task"]["rest_s"][1]
        check_board_rate(settings["board"], float(load_simulation_config(None, settings["simulation"])["recording"]["sfreq"]))


def test_a_cohort_at_another_rate_than_the_board_is_refused_before_simulating(tmp_path: Path, capsys) -> None:
    override = tmp_path / "sim.toml"
    override.write_text("[recording]\nsfreq = 125.0\nband_hz = [0.5, 45.0]\n")
    assert run_cli(main, ["--fast", "--workdir", str(tmp_path / "run"), "--config", str(override)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "board cyton samples at 250 Hz" in err[0] and "recording.sfreq = 250" in err[0]
    assert not (tmp_path / "run" / "data").exists()


def test_jittered_schedule_is_refused_before_simulating(tmp_path: Path, capsys) -> None:
    override = tmp_path / "sim.toml"
    override.write_text("[task]\nrest_s = [3.0, 5.0]\n")
    assert run_cli(main, ["--fast", "--workdir", str(tmp_path / "run"), "--config", str(override)]) == 2
    assert "needs a fixed schedule" in capsys.readouterr().err
    assert not (tmp_path / "run" / "data").exists()


def test_device_config_written_for_a_left_hand_subject_validates(tmp_path: Path) -> None:
    names = list(worn_electrodes(["FC3", "C5", "C3", "C1", "CP3"], True, "left").electrodes)
    assert names == ["FC4", "C6", "C4", "C2", "CP4"]
    chain = Chain(tmp_path, None, SimpleNamespace(hand="left"), tmp_path / "model", tmp_path / "bundle",
                  tmp_path / "keys" / "signing.pub",
                  {"trials": 10, "lead_in_s": 2.0, "rest_s": 3.0, "move_s": 4.0, "post_s": 2.0})
    path = write_device_config(tmp_path / "device" / "device.toml", chain, names, "/dev/ttyFAKE0", "/dev/ttyFAKE1",
                               {"min_good_trials": 5, "min_consistency": 0.5, "agreement_mm": 10.0})
    config = load_config(path)
    assert config.channels == {"FC4": 1, "C6": 2, "C4": 3, "C2": 4, "CP4": 5}
    assert config.session.hotspot_hemisphere == "right" and config.session.min_consistency == 0.5
    assert config.board.serial_port == "/dev/ttyFAKE0" and config.serial.port == "/dev/ttyFAKE1"
    assert config.bundle_path == tmp_path / "bundle"


def test_board_source_puts_each_electrode_on_its_input() -> None:
    recording = SimpleNamespace(data=np.arange(12.0).reshape(3, 4), ch_names=["C3", "TP9", "C1"])
    source = board_source(recording, ["C1", "C3"])
    assert source.shape == (8, 4)
    np.testing.assert_array_equal(source[0], recording.data[2])
    np.testing.assert_array_equal(source[1], recording.data[0])
    assert not source[2:].any()
    assert board_source(recording, ["C1", "C3"], "cyton_daisy").shape == (16, 4)
