"""The CNN's size budget and the validation of training configuration files."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import HotspotError
from train.configs import load_channel_sets, load_training_config, training_config_from_dict
from train.model import INT8_BUDGET_BYTES, ModelConfig, build_model, build_source_model, int8_size_bytes


@pytest.mark.parametrize("shape", [(65, 500), (9, 500), (5, 64), (21, 250)])
def test_model_fits_the_int8_budget_and_outputs_millimetres(shape):
    mean, std = np.array([-40.0, -10.0, 60.0]), np.array([4.0, 5.0, 6.0])
    model = build_model(shape, mean, std, ModelConfig())
    assert int8_size_bytes(model) <= INT8_BUDGET_BYTES
    outputs = np.asarray(model(np.zeros((2, *shape), dtype=np.float32), training=False))
    assert outputs.shape == (2, 6)
    # Before training the standardised head is near zero: the means sit near the target mean (mm) and the
    # log-SDs near the log of the target SD.
    assert np.all(np.abs(outputs[:, :3] - mean) < 10 * std)
    assert np.all(np.abs(outputs[:, 3:] - np.log(std)) < 3.0)


def test_source_model_starts_at_its_weighted_grid_centre_with_the_training_spread():
    from train.source_space import build_source_space

    space = build_source_space(["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"])
    mean, std = space.points_mm.mean(axis=0), np.array([4.0, 5.0, 6.0])
    model = build_source_model((4 * 13, 13), space.points_mm, mean, std, ModelConfig())
    assert int8_size_bytes(model) <= INT8_BUDGET_BYTES
    outputs = np.asarray(model(np.zeros((1, 4 * 13, 13), dtype=np.float32), training=False))
    assert outputs.shape == (1, 6)
    # A flat map weighs every grid point alike: the centre is the grid's mean, the SD head starts at the
    # training hotspots' SD (its kernel is zero-initialised).
    np.testing.assert_allclose(outputs[0, 3:], np.log(std), atol=1e-5)
    assert np.all(np.abs(outputs[0, :3] - mean) < 5 * std)


def test_default_configuration_files_load():
    config = load_training_config()
    assert config.fit.epochs >= 1 and config.data.mirror
    sets = load_channel_sets()
    assert sets["nine"] == ["FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1"]
    assert sets["five"] == ["FC3", "C5", "C3", "C1", "CP3"]
    assert sets["all"] == "dataset"


def test_user_config_overrides_defaults(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text("[fit]\nepochs = 2\n[model]\nhidden = 8\n")
    config = load_training_config(path)
    assert config.fit.epochs == 2 and config.model.hidden == 8
    assert config.fit.batch_size == load_training_config().fit.batch_size


@pytest.mark.parametrize("text, needle", [
    ("[fit]\nepochs = 0\n", "epochs"),
    ("[fit]\nloss = \"l1\"\n", "loss"),
    ("[fit]\nepoch = 3\n", "epoch"),
    ("[model]\nhidden = \"big\"\n", "hidden"),
    ("[data]\naugment_mirror = true\n", "augment_mirror"),
    ("[optimiser]\nlr = 1\n", "optimiser"),
    ("[fit\n", "TOML"),
])
def test_bad_training_config_is_one_clear_error(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HotspotError, match=needle):
        load_training_config(path)


def test_replace_rejects_unknown_tables():
    with pytest.raises(HotspotError):
        load_training_config().replace(nonsense={"a": 1})
    assert training_config_from_dict({}).fit.loss == "gaussian_nll"
