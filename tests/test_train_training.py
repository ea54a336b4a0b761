"""Training, the model directory and the evaluation protocols on tiny simulated cohorts."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from edge.errors import run_cli
from train import training
from train.configs import load_training_config
from train.estimator import Estimator, fit_estimator, training_examples
from train.fitting import fit_network, predict_windows
from train.evaluation import _evaluate_fold, Baselines, evaluate_grouped, evaluate_trial_split
from train.model_dir import load_model_dir, read_contract, read_metadata
from train.training import train_model
from train.windows import dataset_windows, make_spec, mirrored_copy

MOTOR = ["FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
         "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "F3", "F4", "P3", "P4", "Fz", "Pz"]
NINE = ["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"]
FAST = {"fit": {"epochs": 2, "source_epochs": 2}, "estimate": {"calibration_folds": 2, "bootstrap_images": 2}}
CLEAN_RECORDING = {"bad_channel_fraction": [0.0, 0.0], "pops_per_session": [0, 0], "emg_rate_per_min": [0.0, 0.0]}


def simulate(tmp_path_factory, name: str, overrides: dict):
    """Simulate a cohort folder with the simulator's defaults overridden."""
    from train.simulate import load_config, simulate_cohort

    out = tmp_path_factory.mktemp(name) / "cohort"
    return simulate_cohort(load_config(None, overrides), out, jobs=2)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """6 healthy + 4 stroke subjects, 8 trials, one session, 27 channels, no artifacts."""
    return simulate(tmp_path_factory, "tiny", {
        "cohort": {"seed": 7, "n_healthy": 6, "n_stroke": 4, "sessions": 1},
        "recording": {"channels": MOTOR},
        "task": {"trials_healthy": 8, "trials_stroke": 8, "rest_s": [3.0, 3.0], "move_s": 4.0, "post_s": 2.0},
        "artifacts": CLEAN_RECORDING})


@pytest.fixture(scope="session")
def tiny_dataset(tiny_folder):
    from train.io import load_dataset

    return load_dataset(tiny_folder)


@pytest.fixture(scope="session")
def tiny_windows(tiny_dataset):
    spec = make_spec("psd", NINE, 250.0, load_training_config().pipeline)
    return spec, dataset_windows(tiny_dataset, spec, "move", True)


def test_model_directory_reloads_and_predicts_identically(tiny_dataset, tiny_windows, tmp_path):
    out = train_model(tiny_dataset, "psd", "nine", FAST, tmp_path / "model", seed=3, progress=False)
    metadata = read_metadata(out)
    for key in ("schema", "pipeline", "normalisation", "mirror", "output", "metrics", "prior", "calibration",
                "data_hash", "code_version", "seed", "train_subjects", "dataset"):
        assert key in metadata
    contract = read_contract(out)
    assert metadata["schema"] == 2 and contract.aggregation == "median_of_trials"
    assert metadata["output"]["frame"] == "cap" and metadata["output"]["values"] == ["mean_mm", "log_sd_mm"]
    assert contract.channels == NINE and contract.level == "psd" and contract.mirror is True
    assert metadata["data_hash"] == tiny_dataset.content_hash()
    loaded = load_model_dir(out)
    spec, windows = tiny_windows
    assert loaded.spec == spec
    inputs = np.concatenate([item.inputs for item in windows])
    first = loaded.predict(inputs)
    again = load_model_dir(out).predict(inputs)
    assert first.shape == (len(inputs), 3) and np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, again)
    # The saved Keras file and the in-memory network give the same numbers (mean and log-SD).
    config = load_training_config().replace(**FAST)
    model, normalisation = fit_network(spec, *training_examples(spec, windows, config), config, seed=3)
    outputs = predict_windows(model, normalisation, inputs)
    assert outputs.shape == (len(inputs), 6)
    np.testing.assert_allclose(outputs[:, :3], first, atol=1e-4)


def test_source_level_model_directory_carries_its_source_space(tiny_dataset, tmp_path):
    from edge.source import FILE_NAME

    out = train_model(tiny_dataset, "source", "nine", FAST, tmp_path / "source", seed=1, progress=False)
    metadata = read_metadata(out)
    assert read_contract(out).aggregation == "session_csd" and (out / FILE_NAME).is_file()
    assert metadata["pipeline"]["source_space"]["file"] == FILE_NAME
    loaded = load_model_dir(out)
    assert loaded.spec.level == "source" and loaded.spec.source_space.channels == tuple(NINE)
    estimates = Estimator.from_model_dir(loaded).estimate(dataset_windows(tiny_dataset, loaded.spec, "move", True)[0])
    assert estimates and all(e.radius90_mm > 0 and np.all(np.isfinite(e.point_mm)) for e in estimates)
    (out / FILE_NAME).write_bytes(b"tampered")
    with pytest.raises(Exception, match=FILE_NAME):
        load_model_dir(out)


def test_same_seed_same_model_different_seed_different_model(tiny_windows):
    spec, windows = tiny_windows
    config = load_training_config().replace(**FAST)
    inputs, targets = training_examples(spec, windows, config)
    a, norm = fit_network(spec, inputs, targets, config, seed=11)
    b, _ = fit_network(spec, inputs, targets, config, seed=11)
    c, _ = fit_network(spec, inputs, targets, config, seed=12)
    pa, pb, pc = (predict_windows(m, norm, inputs) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)


def test_grouped_protocol_never_trains_on_a_test_subject(tiny_windows):
    spec, windows = tiny_windows
    config = load_training_config().replace(**FAST)
    result = evaluate_grouped(spec, windows, config, k=3, seed=0)
    assert len(result.folds) == 3
    tested = []
    for index, fold in enumerate(result.folds):
        assert not set(fold.train) & set(fold.test)
        tested += fold.test
        for record in result.records:
            if record["fold"] == index:
                assert record["subject"] in fold.test and record["subject"] not in fold.train
    labelled = [item.subject for item in windows if item.label is not None and len(item.inputs)]
    assert sorted(tested) == sorted(labelled)
    assert sorted({r["subject"] for r in result.records}) == sorted(labelled)
    for frame in ("head", "cap"):
        summary = result.summary["errors"][frame]["truth"]
        assert summary["model"]["n"] == len(labelled)
        assert summary["oracle"]["mean_mm"] < summary["population_mean"]["mean_mm"]
        coverage = result.summary["coverage90"][frame]["truth"]
        low, high = result.summary["coverage90_ci95"][frame]["truth"]
        assert 0.0 <= low <= coverage <= high <= 1.0
        assert len(result.summary["skill_ci95"][frame]["truth"]) == 2
    for record in result.records:  # the head-frame estimate is the cap-frame one through the session's cap
        item = next(i for i in windows if i.subject == record["subject"])
        np.testing.assert_allclose(item.to_head(record["estimates"]["model"]["cap"], record["session"]),
                                   record["estimates"]["model"]["head"])


def test_coverage_and_calibration_use_held_out_subjects_only(tiny_windows):
    """The radius a test session gets is fitted on the training subjects alone: changing the test
    subjects' labels changes their coverage, never their estimates or radii."""
    spec, windows = tiny_windows
    config = load_training_config().replace(**FAST)
    items = [item for item in windows if item.label is not None and len(item.inputs)]
    train, test = items[:-2], items[-2:]
    first = _evaluate_fold(spec, train, test, config, 0, Baselines(), 0)
    moved = [replace(item, label=item.label + 500.0, truth=item.truth + 500.0) for item in test]
    second = _evaluate_fold(spec, train, moved, config, 0, Baselines(), 0)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["estimates"]["model"]["cap"], b["estimates"]["model"]["cap"])
        assert a["model"]["radius90_mm"] == b["model"]["radius90_mm"]
        assert np.linalg.norm(b["estimates"]["model"]["cap"] - b["truth"]["cap"]) > b["model"]["radius90_mm"]
    estimator = fit_estimator(spec, train, config, 0)
    assert estimator.calibration.radius90_mm > 0 and estimator.calibration.kappa > 0


def test_shuffled_labels_do_no_better_than_the_population_mean_under_grouped_evaluation(tiny_windows):
    spec, windows = tiny_windows
    config = load_training_config().replace(**{**FAST, "fit": {"epochs": 8}})
    control = evaluate_grouped(spec, windows, config, k=None, seed=0, shuffle_labels=True)
    # In the cap frame the estimate and the population mean know the same geometry (in the head frame the
    # estimate also knows the session's digitised cap, which the head-frame population mean does not).
    errors = control.summary["errors"]["cap"]["label"]
    # At or worse than the baseline; 0.5 mm slack for fold-to-fold noise on a handful of subjects.
    assert errors["model"]["mean_mm"] >= errors["population_mean"]["mean_mm"] - 0.5


def test_trial_split_is_labelled_identification_and_scored_against_the_assigned_label(tiny_windows):
    spec, windows = tiny_windows
    config = load_training_config().replace(**FAST)
    control = evaluate_trial_split(spec, windows, config, seed=0, shuffle_labels=True)
    assert "identification" in control.protocol and "shuffled" in control.protocol
    for record in control.records:
        assert not np.allclose(record["target"]["head"], record["label"]["head"])


def test_mirrored_copy_swaps_hemispheres(tiny_dataset):
    spec = make_spec("erd", MOTOR[:21], 250.0)
    item = dataset_windows(tiny_dataset, spec, "move", False)[0]
    copy = mirrored_copy(item, spec)
    c3, c4 = spec.channels.index("C3"), spec.channels.index("C4")
    n = len(spec.channels)
    np.testing.assert_array_equal(copy.inputs[:, c3], item.inputs[:, c4])
    np.testing.assert_array_equal(copy.inputs[:, n + c3], item.inputs[:, n + c4])  # beta block of the ERD rows
    assert copy.label[0] == pytest.approx(-item.label[0])


def test_train_cli_reports_bad_input_in_one_line(tmp_path, capsys, tiny_dataset):
    code = run_cli(training.main, ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    with pytest.raises(Exception, match="unknown channel set"):
        train_model(tiny_dataset, "psd", "seven", FAST, tmp_path / "m", progress=False)
    with pytest.raises(Exception, match="unknown level"):
        train_model(tiny_dataset, "wavelet", "nine", FAST, tmp_path / "m", progress=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("[fit]\nepochs = -1\n")
    code = run_cli(training.main, ["--data", str(tmp_path), "--out", str(tmp_path / "m"), "--config", str(bad)])
    assert code == 2


def test_train_cli_writes_a_model_directory(tiny_folder, tmp_path):
    fast = tmp_path / "fast.toml"
    fast.write_text("[fit]\nepochs = 1\n[estimate]\ncalibration_folds = 2\n")
    out = tmp_path / "model"
    code = run_cli(training.main, ["--data", str(tiny_folder), "--out", str(out), "--level", "erd",
                                   "--channels", "five", "--config", str(fast), "--seed", "1"])
    assert code == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["pipeline"]["level"] == "erd" and metadata["pipeline"]["channels"] == ["FC3", "C5", "C3", "C1", "CP3"]
    assert metadata["seed"] == 1 and metadata["training"]["fit"]["epochs"] == 1
    assert (out / "model.keras").is_file()


@pytest.mark.slow
def test_reproduce_small_table_writes_json_markdown_and_figures(tiny_folder, tmp_path):
    from train import reproduce

    config = tmp_path / "tiny.toml"
    config.write_text('levels = ["psd"]\ngroups = ["healthy", "stroke"]\nchannel_sets = ["five"]\n'
                      'grouped_folds = 2\ntrial_test_fraction = 0.25\n'
                      '[headline]\nlevel = "psd"\nchannel_set = "five"\n'
                      '[[paper]]\nlevel = "psd"\ngroup = "stroke"\nchannel_set = "five"\nmean_mm = 1.77\nnote = "x"\n'
                      '[training.fit]\nepochs = 1\n[training.estimate]\ncalibration_folds = 2\n')
    out = tmp_path / "report"
    code = run_cli(reproduce.main, ["--data", str(tiny_folder), "--out", str(out), "--config", str(config)])
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    assert report["complete"] and [r["level"] for r in report["rows"]] == ["psd", "psd"]
    for row in report["rows"]:
        assert "identification" in row["trial_split"]["protocol"]
        assert "shuffled-label control" in row["trial_split_control"]["protocol"]
        for fold in row["subject_grouped"]["folds"]:
            assert not set(fold["train"]) & set(fold["test"])
    assert "loso_healthy" in report["headline"]["protocols"]
    table = (out / "table.md").read_text()
    assert "identification" in table and "| psd | stroke | five | 1.77 |" in table
    assert re.search(r"\d+ % \(\d+ % … \d+ %\) \|", table)  # the headline's coverage with its interval
    assert (out / "error_distributions.png").stat().st_size > 0
    assert (out / "scalp_map_healthy.png").stat().st_size > 0


def test_reproduce_rejects_a_bad_grid(tmp_path):
    from edge.errors import HotspotError
    from train.reproduce import REPRODUCE_FILE, load_reproduce_config

    bad = tmp_path / "bad.toml"
    bad.write_text(REPRODUCE_FILE.read_text().replace('channel_sets = ["all", "nine", "five"]',
                                                      'channel_sets = ["all", "eleven"]'))
    with pytest.raises(HotspotError, match="eleven"):
        load_reproduce_config(bad)
    bad.write_text(REPRODUCE_FILE.read_text().replace('repair_bad_channels = ["all"]',
                                                      'repair_bad_channels = ["every"]'))
    with pytest.raises(HotspotError, match="every"):
        load_reproduce_config(bad)
    assert load_reproduce_config().repair_channel_sets == ("all",)
    small = load_reproduce_config(small=True)
    assert small.training["fit"]["epochs"] < load_training_config().fit.epochs


def test_reproduce_names_a_bad_configuration_before_looking_for_the_dataset(tmp_path, capsys):
    """A wrong ``--config`` is the first thing said, even when the dataset is missing too: one line, exit 2."""
    from train import reproduce

    bad = tmp_path / "bad.toml"
    bad.write_text('levels = ["psd"\n')
    code = run_cli(reproduce.main, ["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out"),
                                    "--config", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "bad.toml" in err[0] and "not valid TOML" in err[0] and "BAD_CONFIG" in err[0]
    code = run_cli(reproduce.main, ["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "absent not found" in err[0] and "invoke simulate" in err[0]


@pytest.mark.slow
def test_on_an_easy_simulator_configuration_the_model_beats_the_population_mean(tmp_path_factory):
    """Noise-free labels, widely spread hotspots, identical head geometry and radial sources: the EEG
    topography then determines the hotspot, and the network must beat the population mean on unseen
    subjects (grouped 5-fold; errors vs the label, head frame, mm)."""
    from train.io import load_dataset

    folder = simulate(tmp_path_factory, "easy", {
        "cohort": {"seed": 3, "n_healthy": 40, "n_stroke": 0, "sessions": 1},
        "recording": {"channels": MOTOR},
        "task": {"trials_healthy": 8, "rest_s": [3.0, 3.0], "move_s": 4.0, "post_s": 2.0},
        "geometry": {"head_scale": [1.0, 1.0], "cap_shift_sd_mm": 0.0, "electrode_jitter_sd_mm": 0.0},
        "hotspot": {"sd_mm": [10.0, 10.0, 4.0], "label_noise_sd_mm": 0.0},
        "generators": {"spread_sd_mm": 0.0, "mu_offset_mm": [0.0, 0.0, 0.0], "tilt_from_radial_deg": [0.0, 0.0],
                       "patch_radius_mm": [5.0, 5.0], "patch_dipoles": [5, 5]},
        "modulation": {"mu_erd": [0.8, 0.9], "beta_erd": [0.7, 0.8]},
        "rhythms": {"mu_peak_db": [10.0, 10.0], "beta_peak_db": [6.0, 6.0]},
        "artifacts": {**CLEAN_RECORDING, "blink_rate_per_min": [0.0, 0.0]}})
    dataset = load_dataset(folder)
    spec = make_spec("psd", MOTOR, 250.0, load_training_config().pipeline)
    windows = dataset_windows(dataset, spec, "move", True)
    result = evaluate_grouped(spec, windows, load_training_config().replace(fit={"epochs": 60}), k=5, seed=0)
    errors = result.summary["errors"]["head"]["label"]
    assert errors["model"]["n"] >= 35
    assert errors["model"]["mean_mm"] < errors["population_mean"]["mean_mm"] - 1.0


def test_select_epochs_scores_every_candidate_on_grouped_folds_and_picks_the_smallest_error(tiny_folder, tmp_path,
                                                                                           capsys):
    from train import selection

    out = tmp_path / "selection.json"
    code = run_cli(selection.main, ["--data", str(tiny_folder), "--out", str(out), "--candidates", "2,1",
                                    "--folds", "2", "--channels", "five"])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["errors_mm"]) == {"healthy", "stroke"}
    assert "healthy" in result["scored_groups"]
    for epochs in ("1", "2"):
        expected = np.mean([result["errors_mm"][group][epochs] for group in result["scored_groups"]])
        assert result["mean_mm"][epochs] == pytest.approx(expected)
    assert result["mean_mm"][str(result["best"])] == min(result["mean_mm"].values())
    best, chosen = result["mean_mm"][str(result["best"])], result["selected"]
    assert result["mean_mm"][str(chosen)] <= best + result["standard_error_mm"][str(chosen)] + 1e-9
    assert chosen <= result["best"]  # the one-standard-error rule never picks a longer training than the best
    assert "subject-grouped" in result["protocol"] and "selected" in capsys.readouterr().out
    assert run_cli(selection.main, ["--data", str(tiny_folder), "--out", str(out), "--candidates", "5,x"]) == 2
    assert "--candidates must be comma-separated integers" in capsys.readouterr().err
