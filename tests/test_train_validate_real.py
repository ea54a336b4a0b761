"""The sim-to-real check (train/validate_real.py): preparation, split by hand, bad channels, statistics, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.errors import HotspotError, run_cli
from train import validate_real
from train.dataset import Dataset


def check_config(tmp_path: Path, train_subjects: int = 4, heldout_subjects: int = 2) -> Path:
    """The shipped check configuration with tiny cohorts and short training."""
    text = validate_real.CONFIG_FILE.read_text()
    text = text.replace("train_subjects = 80", f"train_subjects = {train_subjects}")
    text = text.replace("heldout_subjects = 20", f"heldout_subjects = {heldout_subjects}")
    text = text.replace("dev_subjects = 20", f"dev_subjects = {heldout_subjects}")
    text = text.replace("epochs = 30", "epochs = 2") + "\n[training.estimate]\ncalibration_folds = 2\n"
    path = tmp_path / "check.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def bad_channel_subjects():
    """Three simulated subjects of the eegmmidb schedule with 10 % bad channels per run, prepared."""
    from train.simulate import load_config, simulate_subject

    config = validate_real.load_check_config()
    keep = validate_real.model_channels(config)
    simulation = load_config(config.simulation, {"artifacts": {"bad_channel_fraction": [0.1, 0.1]}})
    raw, prepared = [], []
    for index in range(3):
        subject, _ = simulate_subject(simulation, "healthy", index, f"sim-{index}")
        raw.append(subject)
        runs = [validate_real.prepare_recording(recording, keep) for recording in subject.recordings]
        prepared.append(replace(subject, recordings=[recording for recording, _ in runs]))
    return config, raw, prepared


def test_simulated_subjects_with_bad_channels_contribute_windows(bad_channel_subjects) -> None:
    from train.training import channel_list
    from train.windows import dataset_windows, make_spec

    config, raw, prepared = bad_channel_subjects
    bilateral = validate_real.model_channels(config)[:21]
    bad_in_model = [any(set(bad) & set(bilateral) for bad in subject.meta["bad_channels"].values()) for subject in raw]
    assert any(bad_in_model)  # at least one subject has a bad channel among the model's channels
    training = config.training
    split = Dataset("sim", [half for subject in prepared for half in validate_real.by_hand(subject)])
    spec = make_spec(config.level, channel_list(split, config.channels, False), 160.0, training.pipeline)
    windows = dataset_windows(split, spec, "move", mirror=False, rest="rest")
    cues = [sum(len(recording.cue_samples("move")) for recording in half.recordings) for half in split.subjects]
    assert len(windows) == 6 and all(len(item.inputs) >= 0.9 * n for item, n in zip(windows, cues))
    # Without the preparation, the device's rule drops every window of a subject with a bad model channel.
    unprepared = Dataset("raw", [half for subject in raw for half in validate_real.by_hand(subject)])
    strict = dataset_windows(unprepared, spec, "move", mirror=False, rest="rest")
    for subject_index, has_bad in enumerate(bad_in_model):
        if has_bad:
            assert sum(len(strict[2 * subject_index + h].inputs) for h in (0, 1)) < sum(
                len(windows[2 * subject_index + h].inputs) for h in (0, 1))


def test_a_session_rest_model_needs_the_rest_events(bad_channel_subjects) -> None:
    from train.windows import dataset_windows, make_spec

    config, _, prepared = bad_channel_subjects
    split = Dataset("sim", validate_real.by_hand(prepared[0]))
    spec = make_spec(config.level, ["C3", "C4"], 160.0, config.training.pipeline)
    with pytest.raises(HotspotError, match=r"no 'T0' events .*set \[data\] rest"):
        dataset_windows(split, spec, "move", mirror=False, rest="T0")


def test_preparation_repairs_bad_channels_and_takes_the_common_average(bad_channel_subjects) -> None:
    _, raw, prepared = bad_channel_subjects
    subject = raw[0]
    recording = subject.recordings[0]
    out, repaired = validate_real.prepare_recording(recording)
    assert set(name for name, kind in subject.meta["bad_channels"][recording.session].items()
               if kind == "flat") <= set(repaired)
    np.testing.assert_allclose(out.data.mean(axis=0), 0.0, atol=1e-3)  # common average of all 64 channels
    assert out.data.dtype == np.float32 and out.ch_names == recording.ch_names
    kept, _ = validate_real.prepare_recording(recording, ["C4", "C3"])
    np.testing.assert_array_equal(kept.data, out.data[[recording.ch_names.index("C4"), recording.ch_names.index("C3")]])
    with pytest.raises(HotspotError, match="lacks channel"):
        validate_real.prepare_recording(recording, ["C3", "X9"])


def test_split_by_hand_renames_the_events_and_mirrors_the_other_hands_hotspot(bad_channel_subjects) -> None:
    _, raw, _ = bad_channel_subjects
    subject = raw[0]
    left, right = validate_real.by_hand(subject)
    assert (left.subject, left.hand, right.hand) == (f"{subject.subject}:left", "left", "right")
    own, other = (right, left) if subject.hand == "right" else (left, right)
    np.testing.assert_array_equal(own.label, subject.label)
    np.testing.assert_allclose(other.label, subject.label * [-1, 1, 1])
    for half, event in ((left, "T1"), (right, "T2")):
        recording, source = half.recordings[0], subject.recordings[0]
        assert set(recording.event_id) == {"rest", "move"}
        np.testing.assert_array_equal(recording.cue_samples("move"), source.cue_samples(event))
        np.testing.assert_array_equal(recording.cue_samples("rest"), source.cue_samples("T0"))


def test_rates_have_wilson_intervals_and_chance_ranges() -> None:
    z = 1.959963984540054
    for correct, n in ((7, 7), (11, 14), (560, 900)):
        found = validate_real.rate(correct, n)
        p = correct / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        np.testing.assert_allclose(found["ci95_wilson"], [centre - half, min(centre + half, 1.0)], atol=1e-9)
        assert found["share"] == p and 0 <= found["p_vs_chance"] <= 1
    assert validate_real.rate(7, 7)["p_vs_chance"] == pytest.approx(0.5 ** 7)
    assert validate_real.chance(14)["range95"] == [3 / 14, 11 / 14]  # binomial quantiles 2.5 % and 97.5 %
    low, high = validate_real.subject_bootstrap([20, 10, 15], [30, 30, 30])
    assert low < 0.5 < high
    assert validate_real.rate(0, 0)["share"] is None


def test_measures_count_trials_pairs_and_hands() -> None:
    def pair(subject, hand, x, lateralisation, right_trials, kept=10):
        return {"subject": subject, "hand": hand, "n_trials": 12, "n_kept": kept, "estimate_mm": [x, 0.0, 0.0],
                "network_trials_right": right_trials, "network_contralateral": validate_real.contralateral(hand, x),
                "model_trials_right": right_trials - 1, "model_contralateral": validate_real.contralateral(hand, x),
                "erd_lateralisation": lateralisation, "erd_trials_right": right_trials,
                "erd_contralateral": validate_real.contralateral(hand, -lateralisation)}

    pairs = [pair("S1", "left", 30.0, -0.2, 8), pair("S1", "right", -20.0, 0.1, 7),
             pair("S2", "left", -5.0, 0.25, 4), pair("S2", "right", -10.0, 0.2, 6),
             {"subject": "S3", "hand": "left", "n_trials": 12, "n_kept": 0}, pair("S3", "right", -3.0, 0.1, 5)]
    found = validate_real.measures(pairs, threshold_mm=8.0)
    assert found["trials"]["n_kept"] == 50 and found["trials"]["n_trials"] == 72
    assert found["trials"]["network"]["correct"] == 30 and found["trials"]["model"]["correct"] == 25
    assert found["trials"]["erd_baseline"]["correct"] == 30 and found["trials"]["model"]["n"] == 50
    for method in ("model", "network", "erd_baseline"):  # S2 left wrong, S3 left: none
        assert (found["pairs"][method]["correct"], found["pairs"][method]["n"]) == (4, 6)
    hands = found["between_hands"]
    assert (hands["network"]["correct"], hands["network"]["n"], hands["n_usable"]) == (2, 3, 2)  # S3: no left
    assert hands["erd_baseline"]["correct"] == 1  # S2: the right fist's lateralisation (0.2) < the left's (0.25)
    # S2's left estimate (-5 mm) lies within the gate's 8 mm, so the lateralisations decide: as the baseline
    assert hands["model"]["correct"] == 1
    assert validate_real.measures(pairs, threshold_mm=0.0)["between_hands"]["model"]["correct"] == 2


def test_check_configuration_is_validated(tmp_path: Path) -> None:
    config = validate_real.load_check_config()
    assert config.training.pipeline["baseline_mode"] == "session_rest" and not config.training.data.mirror
    assert config.simulation.name == "eegmmidb.toml"
    text = validate_real.CONFIG_FILE.read_text()
    for old, new, message in [("heldout_seed = 6", "heldout_seed = 5", "must differ"),
                              ("dev_seed = 7", "dev_seed = 6", "must differ"),
                              ("dev_subjects = 20", "dev_subjects = 1", "2 development subjects"),
                              ("pairs = [11, 14]", "pairs = [15, 14]", "pairs"),
                              ("level = \"erd\"", "level = 3", r"\[check\] level = 3 must be a string"),
                              ("mirror = false", "mirror = true", "mirror"),
                              ("[targets]", "[target]", r"has unknown key\(s\) target")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(HotspotError, match=message):
            validate_real.load_check_config(bad)


@pytest.mark.slow
def test_check_trains_on_the_schedule_and_reports_simulated_then_real(tmp_path, real_data_dir, capsys) -> None:
    folder = tmp_path / "eegmmidb"
    folder.mkdir()
    for run in ("R03", "R07"):
        (folder / f"S001{run}.edf").symlink_to(real_data_dir / "eegmmidb" / f"S001{run}.edf")
    config = check_config(tmp_path)
    model = tmp_path / "model"
    code = run_cli(validate_real.main, ["--train", "--model", str(model), "--data", str(folder), "--config",
                                        str(config), "--out", str(tmp_path / "report"), "--jobs", "1"])
    assert code == 0
    from train.model_dir import read_metadata

    metadata = read_metadata(model)
    record = metadata[validate_real.METADATA_KEY]
    assert metadata["mirror"] is False and metadata["pipeline"]["baseline_mode"] == "session_rest"
    assert len(record["windows_per_subject"]) == 4
    assert all(hands["left"] > 0 and hands["right"] > 0 for hands in record["windows_per_subject"].values())
    gate = json.loads((model / validate_real.GATE_FILE).read_text())  # fitted on the development cohort
    assert gate["cohort"]["seed"] == 7 and gate["threshold_mm"] in gate["grid_mm"] and gate["n_pairs"] == 4
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    for part, n_pairs in (("simulated", 4), ("real", 2)):
        found = report[part]["measures"]
        assert found["pairs"]["n_pairs"] == n_pairs
        for measure in ("trials", "pairs", "between_hands"):
            for method in ("model", "erd_baseline"):
                entry = found[measure][method]
                assert entry["n"] > 0 and 0 <= entry["ci95_wilson"][0] <= entry["share"] <= entry["ci95_wilson"][1]
            assert found[measure]["chance"]["share"] == 0.5
        assert 0 < found["trials"]["n_kept"] <= found["trials"]["n_trials"]
    assert report["simulated"]["target_pairs"] == 0.95 and isinstance(report["simulated"]["meets_target"], bool)
    real_pairs = report["real"]["pairs"]
    assert {p["hand"] for p in real_pairs} == {"left", "right"}
    assert sum(p["n_trials"] for p in real_pairs) == 30  # two runs of 15 cues, the hand random per cue
    for pair in real_pairs:
        assert pair["network_contralateral"] == validate_real.contralateral(pair["hand"], pair["estimate_mm"][0])
        assert pair["model_pair_fallback"] == (abs(pair["estimate_mm"][0]) < gate["threshold_mm"])
        decided_by = "erd" if pair["model_pair_fallback"] else "network"
        assert pair["model_contralateral"] == pair[f"{decided_by}_contralateral"]
        assert len(pair["trial_x_mm"]) == len(pair["erd_trial_lateralisation"]) == pair["n_kept"]
    assert set(report["real"]["targets"]) == {"between_hands", "pairs", "trials"}
    assert report["gate"]["threshold_mm"] == gate["threshold_mm"] and "network" in report["real"]["measures"]["pairs"]
    page = (tmp_path / "report" / "report.md").read_text()
    assert "Before real data" in page and "ERD baseline" in page and "Wilson 95 %" in page
    # Bad input: one line, exit 2.
    capsys.readouterr()
    for argv, message in [(["--model", str(tmp_path / "none"), "--data", str(folder)], "not found"),
                          (["--model", str(model), "--data", str(tmp_path)], "no SxxxRyy.edf"),
                          (["--model", str(model), "--data", str(folder), "--config", str(tmp_path / "x.toml")],
                           "not found"),
                          (["--model", str(model), "--data", str(folder), "--jobs", "0"], "--jobs")]:
        assert run_cli(validate_real.main, argv + ["--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for text, message in [(None, "has no hemisphere_gate.json"), ("{}", "is not a hemisphere gate"),
                          ('{"threshold_mm": -1}', "must be >= 0")]:
        gate_file = model / validate_real.GATE_FILE
        gate_file.unlink(missing_ok=True)
        if text is not None:
            gate_file.write_text(text)
        assert run_cli(validate_real.main, ["--model", str(model), "--data", str(folder), "--config", str(config),
                                            "--out", str(tmp_path / "x"), "--jobs", "1"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_model_not_trained_for_the_check_is_refused(tmp_path, real_data_dir, capsys) -> None:
    from train.configs import load_training_config
    from train.io import load_dataset
    from train.simulate import load_config, simulate_cohort
    from train.training import train_model

    folder = simulate_cohort(load_config(None, {"cohort": {"n_healthy": 3, "n_stroke": 0, "sessions": 1},
                                                "task": {"trials_healthy": 6},
                                                "recording": {"channels": ["FC3", "C5", "C3", "C1", "CP3",
                                                                            "FC4", "C6", "C4", "C2", "CP4"]}}),
                             tmp_path / "cohort", jobs=1)
    fast = load_training_config().replace(fit={"epochs": 1}, estimate={"calibration_folds": 2})
    mirrored = train_model(load_dataset(folder), "erd", "five", fast, tmp_path / "mirrored", progress=False)
    capsys.readouterr()
    code = run_cli(validate_real.main, ["--model", str(mirrored), "--data", str(real_data_dir / "eegmmidb"),
                                        "--out", str(tmp_path / "r")])
    assert code == 2 and "mirroring" in capsys.readouterr().err
