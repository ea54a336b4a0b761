"""``invoke convert``: calibration on training subjects, parity on held-out subjects, budget failure path."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import HOTSPOT_MM, tiny_model, tiny_spec, write_model_dir

from convert.quantize import convert_model, int8_tflite, main
from convert.signing import generate_keypair
from edge.bundle import load_bundle, sha256_hex
from edge.contract import CONTRACT_KEYS
from edge.errors import ErrorCode, HotspotError, run_cli
from edge.normalisation import Normalisation
from train.dataset import Dataset, Recording, Subject
from train.windows import dataset_windows

SFREQ = 250.0
TRIALS = 30
TRIAL_S = 10.0
TRAIN = ["sub-01", "sub-02", "sub-03", "sub-04"]
HELDOUT = ["sub-05", "sub-06"]


def synthetic_dataset(channels: tuple[str, ...]) -> Dataset:
    """Noise recordings with ``move`` cues every 10 s; one label per subject."""
    rng = np.random.default_rng(3)
    n_samples = int((TRIALS + 1) * TRIAL_S * SFREQ)
    cues = (np.arange(TRIALS) * TRIAL_S + 5.0) * SFREQ
    events = np.column_stack([cues.astype(np.int64), np.full(TRIALS, 2)])
    subjects = []
    for name in TRAIN + HELDOUT:
        recording = Recording(subject=name, session="ses-1", data=rng.normal(0.0, 10.0, (len(channels), n_samples)),
                              sfreq=SFREQ, ch_names=list(channels), ch_pos=np.full((len(channels), 3), np.nan),
                              events=events, event_id={"rest": 1, "move": 2})
        label = np.asarray(HOTSPOT_MM) + rng.normal(0.0, 4.0, 3)
        subjects.append(Subject(subject=name, group="healthy", hand="right", label=label, recordings=[recording]))
    return Dataset(name="synthetic", subjects=subjects)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("convert")
    spec = tiny_spec()
    dataset = synthetic_dataset(spec.channels)
    windows = dataset_windows(dataset, spec, "move", mirror=False)
    training = np.concatenate([item.inputs for item in windows if item.subject in TRAIN])
    normalisation = Normalisation.fit(training)
    metadata = {"metrics": {"note": "untrained test model"}, "data_hash": dataset.content_hash(),
                "code_version": "test", "seed": 0, "train_subjects": TRAIN, "dataset": dataset.name,
                "training": {"data": {"cue": "move"}}}
    model_dir = write_model_dir(folder / "model", tiny_model(spec.input_shape), spec, normalisation, metadata,
                                mirror=False)
    key, public = generate_keypair(folder / "signing.key")
    return {"folder": folder, "dataset": dataset, "model_dir": model_dir, "key": key, "public": public,
            "spec": spec, "n_training_windows": len(training)}


def test_conversion_writes_a_signed_bundle_with_a_parity_report(setup) -> None:
    assert setup["n_training_windows"] >= 100
    result = convert_model(setup["model_dir"], setup["dataset"], setup["folder"] / "bundle", setup["key"])
    bundle = load_bundle(result.bundle, setup["public"])
    parity = bundle.manifest["provenance"]["parity"]
    assert parity == json.loads(json.dumps(result.parity))
    assert parity["n_subjects"] == len(HELDOUT) and parity["passed"] is True
    assert parity["protocol"].startswith("subject-grouped")
    for name in ("keras_float", "tflite_float", "tflite_int8"):
        assert parity[name]["mean_error_mm"] > 0
    assert parity["tflite_float"]["max_output_diff_mm"] < 1e-3
    assert parity["tflite_float"]["max_log_sd_diff"] < 1e-4
    assert 0 < parity["tflite_int8"]["max_output_diff_mm"] < 5.0
    assert 0 < parity["tflite_int8"]["median_log_sd_diff"] < 0.05
    assert parity["frame"].startswith("cap")
    assert parity["baseline"]["what"].endswith("(the prior's mean)")
    assert abs(parity["tflite_int8"]["delta_mean_error_mm"]) <= 0.3
    assert parity["n_representative"] >= 100
    assert result.int8_size_bytes < result.float_size_bytes
    assert bundle.manifest["model"]["io"] == "float32"
    assert parity["float_output"] is True  # only the 6-output layer to cap-frame mm and ln mm stays float
    assert bundle.manifest["model"]["quantisation"]["weights"]["float"] == 1
    assert bundle.manifest["golden"]["tolerance"] <= 1e-3
    metadata = json.loads((setup["model_dir"] / "metadata.json").read_text())
    assert bundle.manifest["prior"] == metadata["prior"]
    # the model contract travels verbatim: training wrote it once, the manifest holds the same fields
    assert {key: bundle.manifest[key] for key in CONTRACT_KEYS} == {key: metadata[key] for key in CONTRACT_KEYS}
    assert bundle.calibration.kappa == 1.0 and bundle.aggregation == "median_of_trials"
    assert bundle.manifest["channel_set"] == "five"
    # provenance on the device: hashes and counts, no subject ids and no host paths
    provenance = bundle.manifest["provenance"]
    assert provenance["train_subjects"] == {"count": len(TRAIN), "sha256": sha256_hex("\n".join(sorted(TRAIN)).encode())}
    manifest_text = (result.bundle / "manifest.json").read_text()
    assert not [subject for subject in TRAIN if subject in manifest_text]
    assert str(setup["folder"]) not in manifest_text and str(Path.home()) not in manifest_text
    assert isinstance(bundle.version, int) and bundle.version >= 20200101000000
    assert "FCC3h" in bundle.electrodes


def test_a_source_level_model_ships_its_leadfield_in_the_signed_bundle(setup) -> None:
    from edge.source import FILE_NAME

    folder, dataset = setup["folder"], setup["dataset"]
    spec = tiny_spec("source")
    windows = dataset_windows(dataset, spec, "move", mirror=False)
    normalisation = Normalisation.fit(np.concatenate([item.inputs for item in windows if item.subject in TRAIN]))
    metadata = {"data_hash": dataset.content_hash(), "train_subjects": TRAIN, "dataset": dataset.name,
                "training": {"data": {"cue": "move"}}}
    model_dir = write_model_dir(folder / "model-source", tiny_model(spec.input_shape), spec, normalisation, metadata,
                                mirror=False)
    result = convert_model(model_dir, dataset, folder / "bundle-source", setup["key"])
    bundle = load_bundle(result.bundle, setup["public"])
    assert bundle.aggregation == "session_csd" and bundle.calibration.min_erd_db == 2.0
    assert (result.bundle / FILE_NAME).read_bytes() == (model_dir / FILE_NAME).read_bytes()
    np.testing.assert_allclose(bundle.spec.source_space.leadfield, spec.source_space.leadfield, rtol=1e-6)
    assert result.parity["passed"] is True


@pytest.mark.parametrize("change, phrase", [
    (lambda m: m.update(schema=1), "has schema 1, this version reads 2"),
    (lambda m: m.pop("calibration"), "lacks calibration"),
    (lambda m: m.update(prior={"mean_mm": [0, 0], "sd_mm": [1, 1, 1]}), "prior mean_mm must be three finite"),
    (lambda m: m["output"].update(frame="head"), "is not the cap-frame mean_mm + log_sd_mm"),
])
def test_a_model_directory_without_the_schema_2_contract_is_refused_in_one_line(setup, tmp_path, capsys, change,
                                                                               phrase) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(setup["model_dir"], model_dir)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    change(metadata)
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    code = run_cli(main, ["--model", str(model_dir), "--data", "unused", "--out", str(tmp_path / "b"),
                          "--key", str(setup["key"])])
    err = capsys.readouterr().err
    assert code == 2 and phrase in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_int8_io_is_an_option(setup) -> None:
    result = convert_model(setup["model_dir"], setup["dataset"], setup["folder"] / "bundle-int8", setup["key"],
                           io="int8", budget_mm=5.0)
    bundle = load_bundle(result.bundle, setup["public"])
    assert bundle.model.input.dtype == "int8" and bundle.manifest["model"]["input"]["scale"] > 0
    assert bundle.manifest["model"]["quantisation"]["weights"]["float"] == 0  # fully integer
    assert result.parity["float_output"] is False


def test_over_budget_fails_with_a_per_layer_report_and_no_bundle(setup) -> None:
    out = setup["folder"] / "strict"
    with pytest.raises(HotspotError) as caught:
        convert_model(setup["model_dir"], setup["dataset"], out, setup["key"], budget_mm=0.0, auto_float=False)
    assert caught.value.code == ErrorCode.BUDGET_EXCEEDED
    assert "per-layer report" in str(caught.value) and "no bundle written" in str(caught.value)
    assert not out.exists()
    with (setup["folder"] / "strict.layers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"op_name", "tensor_name", "rmse_per_scale"} <= set(rows[0])
    assert {row["op_name"] for row in rows} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert json.loads((setup["folder"] / "strict.parity.json").read_text())["passed"] is False
    head = rows[-1]["tensor_name"]
    result = convert_model(setup["model_dir"], setup["dataset"], out, setup["key"], budget_mm=5.0,
                           float_layers=[head])
    manifest = load_bundle(result.bundle, setup["public"]).manifest
    assert manifest["model"]["quantisation"]["weights"]["float"] == 1
    assert manifest["golden"]["tolerance"] <= 1e-3
    assert manifest["provenance"]["parity"]["float_layers"] == [head]


def soft_argmax_model(input_shape: tuple[int, int], n_points: int = 64, seed: int = 0):
    """A soft-argmax regressor like the source network: softmax weights over fixed grid points (mm)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    weights = keras.layers.Softmax()(keras.layers.Dense(n_points)(x) * 4.0)
    grid = np.random.default_rng(seed).uniform(-30.0, 30.0, (n_points, 3)) + np.asarray(HOTSPOT_MM)
    centre = keras.layers.Dense(3, use_bias=False, trainable=False, name="grid_centre",
                                kernel_initializer=keras.initializers.Constant(grid))(weights)
    spread = keras.layers.Dense(3, name="spread")(x)
    outputs = keras.layers.Concatenate()([centre, spread])
    return keras.Model(inputs, outputs)


def test_layers_that_lose_most_in_int8_are_kept_in_float_automatically(setup, tmp_path) -> None:
    # The soft-argmax's weighted grid centre (mm) is where int8 fails; the converter finds it in the
    # debugger's per-layer statistics and keeps it in float until the parity budget is met.
    spec, dataset = setup["spec"], setup["dataset"]
    windows = dataset_windows(dataset, spec, "move", mirror=False)
    normalisation = Normalisation.fit(np.concatenate([item.inputs for item in windows if item.subject in TRAIN]))
    metadata = {"data_hash": dataset.content_hash(), "train_subjects": TRAIN, "dataset": dataset.name,
                "training": {"data": {"cue": "move"}}}
    model_dir = write_model_dir(tmp_path / "model", soft_argmax_model(spec.input_shape), spec, normalisation, metadata,
                                mirror=False)
    budget = 0.02  # the untrained toy on noise misses only a tight budget (a trained source network: 0.3 mm)
    with pytest.raises(HotspotError, match=f"over the {budget} mm budget"):
        convert_model(model_dir, dataset, tmp_path / "plain", setup["key"], auto_float=False, budget_mm=budget)
    result = convert_model(model_dir, dataset, tmp_path / "auto", setup["key"], budget_mm=budget)
    parity = result.parity
    assert parity["passed"] and parity["float_layers"] == parity["auto_float_layers"]
    assert "grid_centre" in parity["auto_float_layers"][0]
    assert abs(parity["tflite_int8"]["delta_mean_error_mm"]) <= budget
    manifest = load_bundle(result.bundle, setup["public"]).manifest
    assert manifest["provenance"]["parity"]["auto_float_layers"] == parity["auto_float_layers"]


def test_an_unknown_float_layer_is_named(setup) -> None:
    spec = setup["spec"]
    windows = np.random.default_rng(0).normal(size=(100, *spec.input_shape)).astype(np.float32)
    with pytest.raises(HotspotError, match="no layer output called 'dense_typo'"):
        int8_tflite(tiny_model(spec.input_shape), windows, float_layers=["dense_typo"])


def test_a_dataset_other_than_the_training_one_is_refused(setup) -> None:
    dataset = Dataset(name="train-only", subjects=[s for s in setup["dataset"].subjects if s.subject in TRAIN])
    with pytest.raises(HotspotError, match="is not the one"):
        convert_model(setup["model_dir"], dataset, setup["folder"] / "x", setup["key"])


def test_a_model_trained_on_every_subject_needs_a_holdout_dataset(setup) -> None:
    model_dir = setup["folder"] / "model-all"
    shutil.copytree(setup["model_dir"], model_dir)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata["train_subjects"] = TRAIN + HELDOUT
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(HotspotError, match="pass a separate dataset with --holdout"):
        convert_model(model_dir, setup["dataset"], setup["folder"] / "x", setup["key"])


def test_the_cli_names_a_missing_key(setup, capsys) -> None:
    code = run_cli(main, ["--model", str(setup["model_dir"]), "--data", "nowhere", "--out", "x",
                          "--key", str(setup["folder"] / "absent.key")])
    assert code == 2
    assert "invoke keygen" in capsys.readouterr().err


@pytest.mark.slow
def test_invoke_convert_exits_non_zero_over_budget_on_a_simulated_cohort(tmp_path, capsys) -> None:
    from train.bids import read_bids_dataset
    from train.simulate import load_config, simulate_cohort

    config = load_config(Path(__file__).parents[1] / "train" / "simulate" / "small.toml",
                         {"task": {"trials_healthy": 30, "trials_stroke": 30}})
    data = simulate_cohort(config, tmp_path / "data", jobs=1)
    dataset = read_bids_dataset(data)
    spec = tiny_spec()
    windows = [item for item in dataset_windows(dataset, spec, "move", mirror=True)
               if item.label is not None and len(item.inputs)]
    train_ids = [item.subject for item in windows[:-1]]
    training = np.concatenate([item.inputs for item in windows[:-1]])
    metadata = {"metrics": {}, "data_hash": dataset.content_hash(), "code_version": "test", "seed": 0,
                "train_subjects": train_ids, "dataset": dataset.name, "training": {"data": {"cue": "move"}}}
    model_dir = write_model_dir(tmp_path / "model", tiny_model(spec.input_shape), spec, Normalisation.fit(training),
                                metadata, mirror=True)
    key, _ = generate_keypair(tmp_path / "signing.key")
    out = tmp_path / "bundles" / "default"
    code = run_cli(main, ["--model", str(model_dir), "--data", str(data), "--out", str(out), "--key", str(key),
                          "--budget-mm", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: int8 changes the held-out subject-level mean error") and err.count("\n") == 1
    assert "BUDGET_EXCEEDED" in err and str(out.parent / "default.layers.csv") in err
    assert (out.parent / "default.layers.csv").stat().st_size > 0
    assert not out.exists()
