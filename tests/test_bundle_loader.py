"""The device-side bundle loader: every kind of bad bundle is refused with its own message, and
a refused bundle never replaces the one already loaded."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import build_bundle, copy_bundle

from convert.signing import generate_keypair, load_private_key, sign_manifest
from edge.bundle import (GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, SOURCE_SPACE_FILE, BundleSlot,
                         load_bundle, sha256_hex)
from edge.errors import ErrorCode, HotspotError
from train.metrics import aggregate_trials

BUDGET_MM = 0.3


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def made_source(tmp_path_factory) -> dict:
    return build_bundle(tmp_path_factory.mktemp("bundle-source"), level="source")


@pytest.fixture()
def slot(made) -> BundleSlot:
    """A slot that already holds the good bundle."""
    slot = BundleSlot(made["public_key"])
    slot.load(made["bundle"])
    return slot


def rewrite_manifest(folder: Path, private_key: Path, change) -> None:
    """Apply ``change`` to the manifest dict and re-sign it with the right key."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    change(manifest)
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    (folder / MANIFEST_FILE).write_bytes(data)
    (folder / SIGNATURE_FILE).write_bytes(sign_manifest(data, load_private_key(private_key)))


def assert_refused(slot: BundleSlot, folder: Path, code: ErrorCode, phrase: str) -> None:
    before = slot.current
    with pytest.raises(HotspotError) as caught:
        slot.load(folder)
    assert caught.value.code == code
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)
    assert slot.current is before and slot.current.bundle_id == before.bundle_id
    assert slot.last_error is caught.value


def test_round_trip_predicts_like_keras_within_the_parity_budget(made) -> None:
    bundle = load_bundle(made["bundle"], made["public_key"])
    windows = made["windows"][120:]
    keras_out = np.asarray(made["model"](made["normalisation"].apply(windows)), dtype=float)
    mean, sd = bundle.predict(windows)
    assert mean.shape == sd.shape == (len(windows), 3)
    assert np.linalg.norm(aggregate_trials(mean)[0] - aggregate_trials(keras_out[:, :3])[0]) <= BUDGET_MM
    log_sd_error = np.abs(np.log(sd) - keras_out[:, 3:])
    assert np.median(log_sd_error) < 0.02 and log_sd_error.max() < 0.15  # sd within 2 % typically, 16 % at worst
    assert np.all(sd > 0)
    single_mean, single_sd = bundle.predict(windows[0])
    assert single_mean.shape == single_sd.shape == (3,)
    np.testing.assert_array_equal(single_mean, mean[0])
    np.testing.assert_array_equal(single_sd, sd[0])
    assert bundle.channels == list(made["spec"].channels)
    assert bundle.spec == made["spec"]
    assert bundle.mirror is True
    np.testing.assert_allclose(bundle.electrodes["C3"], made_electrode("C3"), atol=1e-3)
    assert bundle.runtime.startswith("ai_edge_litert")
    assert bundle.prior.to_dict() == made["prior"].to_dict()
    assert bundle.calibration == made["calibration"]
    assert bundle.aggregation == "median_of_trials"
    manifest = bundle.manifest
    assert manifest["schema"] == 2
    assert manifest["model"]["io"] == "float32" and manifest["pipeline"]["level"] == "psd"
    assert manifest["output"]["frame"] == "cap" and manifest["output"]["values"] == ["mean_mm", "log_sd_mm"]
    np.testing.assert_allclose(bundle.head_centre_mm, manifest["output"]["head_centre_mm"])
    assert manifest["model"]["output"]["shape"] == [1, 6]
    assert 0 < manifest["golden"]["tolerance"] < 1.0
    weights = manifest["model"]["quantisation"]["weights"]
    # every layer int8 per-channel except the output layer, kept float with float32 I/O
    assert weights["int8_per_channel"] >= 1 and weights["int8_per_tensor"] == 0 and weights["float"] == 1


def made_electrode(name: str) -> np.ndarray:
    from train.head import standard_positions_head_mm

    return standard_positions_head_mm([name])[name]


def test_a_source_bundle_ships_its_source_space_hashed_and_signed(made_source) -> None:
    bundle = load_bundle(made_source["bundle"], made_source["public_key"])
    space = made_source["spec"].source_space
    assert bundle.aggregation == "session_csd" and bundle.spec.level == "source"
    assert bundle.manifest["files"][SOURCE_SPACE_FILE] == sha256_hex((made_source["bundle"] / SOURCE_SPACE_FILE)
                                                                     .read_bytes()) == space.sha256
    assert bundle.manifest["pipeline"]["source_space"] == {"file": SOURCE_SPACE_FILE, "sha256": space.sha256}
    np.testing.assert_allclose(bundle.spec.source_space.leadfield, space.leadfield, rtol=1e-6)
    assert bundle.spec.input_shape == (52, 13)
    assert bundle.calibration.min_erd_db == 2.0
    mean, sd = bundle.predict(made_source["windows"][130])
    assert mean.shape == sd.shape == (3,)


def test_golden_outputs_are_reproduced_exactly_on_the_writing_machine(made) -> None:
    bundle = load_bundle(made["bundle"], made["public_key"])
    with np.load(made["bundle"] / GOLDEN_FILE) as golden:
        assert golden["outputs"].shape == (4, 6)
        np.testing.assert_array_equal(bundle.outputs(golden["inputs"]), golden["outputs"])


@pytest.mark.parametrize("change, phrase", [
    (lambda m: m.pop("prior"), "lacks prior"),
    (lambda m: m.pop("calibration"), "lacks calibration"),
    (lambda m: m.update(prior={"mean_mm": [1, 2], "sd_mm": [4, 4, 4]}), "prior mean_mm must be three finite"),
    (lambda m: m.update(prior={"mean_mm": [1, 2, 3], "sd_mm": [4, 0, 4]}), "prior sd_mm must be three finite positive"),
    (lambda m: m.update(prior={"mean_mm": "x", "sd_mm": [4, 4, 4]}), "prior mean_mm must be three finite"),
    (lambda m: m.update(prior=[1, 2, 3]), "prior must be an object"),
    (lambda m: m["calibration"].update(kappa=-1.0), "calibration kappa must be a positive number"),
    (lambda m: m["calibration"].update(radius90_mm="big"), "calibration radius90_mm must be a positive number"),
    (lambda m: m["calibration"].update(extra=1), "calibration must be an object with keys"),
    (lambda m: m["output"].update(frame="head"), "is not the cap-frame mean_mm + log_sd_mm"),
    (lambda m: m["output"].pop("head_centre_mm"), "is not the cap-frame mean_mm + log_sd_mm"),
    (lambda m: m["output"].update(head_centre_mm=[0, "x", 1]), "is not the cap-frame mean_mm + log_sd_mm"),
    (lambda m: m.update(schema=1), "schema version 1 has no uncertainty"),
    (lambda m: m["pipeline"].update(tmax=1e300), "pipeline: tmax = 1e+300 must be in -60.0..60.0"),
    (lambda m: m["pipeline"].update(decim=2.5), "pipeline: decim = 2.5 must be an integer"),
])
def test_a_malformed_or_missing_estimate_contract_is_refused(made, slot, tmp_path, change, phrase) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    rewrite_manifest(folder, made["private_key"], change)
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, phrase)


def test_a_source_bundle_without_or_with_a_bad_source_space_is_refused(made_source, tmp_path) -> None:
    slot = BundleSlot(made_source["public_key"])
    slot.load(made_source["bundle"])
    folder = copy_bundle(made_source["bundle"], tmp_path / "missing")
    (folder / SOURCE_SPACE_FILE).unlink()
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, f"incomplete: {SOURCE_SPACE_FILE} missing")
    folder = copy_bundle(made_source["bundle"], tmp_path / "flipped")
    data = bytearray((folder / SOURCE_SPACE_FILE).read_bytes())
    data[len(data) // 2] ^= 0x10
    (folder / SOURCE_SPACE_FILE).write_bytes(bytes(data))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, f"{SOURCE_SPACE_FILE} does not match its sha256")
    folder = copy_bundle(made_source["bundle"], tmp_path / "unlisted")
    rewrite_manifest(folder, made_source["private_key"], lambda m: m["files"].pop(SOURCE_SPACE_FILE))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, f"exactly model.tflite, golden.npz, {SOURCE_SPACE_FILE}")
    folder = copy_bundle(made_source["bundle"], tmp_path / "garbage")
    garbage = b"not an npz file"
    (folder / SOURCE_SPACE_FILE).write_bytes(garbage)
    rewrite_manifest(folder, made_source["private_key"],
                     lambda m: m["files"].update({SOURCE_SPACE_FILE: sha256_hex(garbage)}))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, f"{SOURCE_SPACE_FILE} is not a source space file")
    folder = copy_bundle(made_source["bundle"], tmp_path / "other")
    rewrite_manifest(folder, made_source["private_key"],
                     lambda m: m["pipeline"]["source_space"].update(sha256="0" * 64))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, "is not the one it was built with")


@pytest.mark.parametrize("name, code, phrase", [
    (MODEL_FILE, ErrorCode.BAD_BUNDLE, "model.tflite does not match its sha256"),
    (GOLDEN_FILE, ErrorCode.BAD_BUNDLE, "golden.npz does not match its sha256"),
    (MANIFEST_FILE, ErrorCode.BAD_SIGNATURE, "modified after signing"),
    (SIGNATURE_FILE, ErrorCode.BAD_SIGNATURE, SIGNATURE_FILE),
])
def test_a_flipped_byte_in_any_file_is_refused(made, slot, tmp_path, name, code, phrase) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    data = bytearray((folder / name).read_bytes())
    position = len(data) // 2 if name != SIGNATURE_FILE else data.index(b'"signature"') + 20
    data[position] ^= 0x04
    (folder / name).write_bytes(bytes(data))
    assert_refused(slot, folder, code, phrase)


@pytest.mark.parametrize("name", [MODEL_FILE, GOLDEN_FILE, MANIFEST_FILE, SIGNATURE_FILE])
def test_a_missing_file_is_refused(made, slot, tmp_path, name) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    (folder / name).unlink()
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, f"incomplete: {name} missing")


def test_an_unknown_schema_version_is_refused(made, slot, tmp_path) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    rewrite_manifest(folder, made["private_key"], lambda manifest: manifest.update(schema=3))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, "schema version 3 is not supported")


def test_a_bundle_signed_with_another_key_is_refused(made, slot, tmp_path) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    other_key, _ = generate_keypair(tmp_path / "other.key")
    rewrite_manifest(folder, other_key, lambda manifest: None)
    assert_refused(slot, folder, ErrorCode.BAD_SIGNATURE, "but this device trusts key")


def test_the_device_key_must_match_the_signing_key(made, tmp_path) -> None:
    _, other_public = generate_keypair(tmp_path / "other.key")
    with pytest.raises(HotspotError, match="but this device trusts key") as caught:
        load_bundle(made["bundle"], other_public)
    assert caught.value.code == ErrorCode.BAD_SIGNATURE


def test_a_golden_vector_mismatch_is_refused(made, slot, tmp_path) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    with np.load(folder / GOLDEN_FILE) as golden:
        inputs, outputs = golden["inputs"], golden["outputs"].copy()
    outputs[2, 4] += 0.01  # a log sd: the self-test covers all six outputs
    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs, outputs=outputs)
    (folder / GOLDEN_FILE).write_bytes(buffer.getvalue())
    rewrite_manifest(folder, made["private_key"],
                     lambda manifest: manifest["files"].update({GOLDEN_FILE: sha256_hex(buffer.getvalue())}))
    assert_refused(slot, folder, ErrorCode.SELF_TEST_FAILED, "self-test failed: golden vector 2")


def test_a_missing_public_key_is_a_clear_error(made, tmp_path) -> None:
    with pytest.raises(HotspotError, match="copy the .pub file") as caught:
        load_bundle(made["bundle"], tmp_path / "absent.pub")
    assert caught.value.code == ErrorCode.BAD_FILE


def test_a_good_bundle_replaces_the_current_one(made, slot, tmp_path) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    rewrite_manifest(folder, made["private_key"], lambda manifest: manifest.update(created="2026-01-01T00:00:00+00:00"))
    previous = slot.current.bundle_id
    bundle = slot.load(folder)
    assert slot.current is bundle and bundle.bundle_id != previous and slot.last_error is None


def test_the_writer_replaces_a_bundle_but_never_another_folder(made, tmp_path) -> None:
    from dataclasses import replace

    from convert.bundle_writer import write_bundle

    def write(out: Path) -> Path:
        contract = replace(made["contract"], electrodes={"C3": np.array([-52.0, 1.0, 62.0])}, mirror=False,
                           head_centre_mm=np.array([0.0, 12.0, 43.0]))
        return write_bundle(out, model_content=(made["bundle"] / MODEL_FILE).read_bytes(), contract=contract,
                            golden_inputs=made["windows"][:2], private_key=made["private_key"])

    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(HotspotError, match="is not a bundle"):
        write(precious)
    assert (precious / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    for _ in range(2):
        assert load_bundle(write(tmp_path / "bundle"), made["public_key"]).mirror is False
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "notes"]


def test_the_golden_vectors_pass_on_the_fallback_runtime_too(made) -> None:
    code = ("import importlib.abc, sys\n"
            "class Blocker(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('ai_edge_litert', 'tflite_runtime'):\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Blocker())\n"
            "from edge.bundle import load_bundle\n"
            f"print(load_bundle({str(made['bundle'])!r}, {str(made['public_key'])!r}).runtime)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("tensorflow.lite ")


@pytest.mark.parametrize("edit, phrase", [
    (lambda text: text.replace('"schema": 2,', '"schema": 2, "extra": 1e400,'), "out of range"),
    (lambda text: text[:text.rindex("}")] + ', "deep": ' + "[" * 200000 + "]" * 200000 + "}\n", "nested too deeply"),
    (lambda text: text.replace('"schema": 2,', '"schema": 2, "extra": NaN,'), "not a number JSON allows"),
])
def test_a_resigned_manifest_with_absurd_json_is_refused_in_one_line(made, slot, tmp_path, edit, phrase) -> None:
    # signed with the right key: only the content checks stand between it and the device
    folder = copy_bundle(made["bundle"], tmp_path / "absurd")
    data = edit((folder / MANIFEST_FILE).read_text()).encode()
    (folder / MANIFEST_FILE).write_bytes(data)
    (folder / SIGNATURE_FILE).write_bytes(sign_manifest(data, load_private_key(made["private_key"])))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, phrase)


@pytest.mark.parametrize("change, phrase", [
    (lambda m: m["electrodes"].update({"C3": [1e308, 0.0, 0.0]}), "within +-300 mm"),
    (lambda m: m.update({"version": 0}), "'version' must be a positive integer"),
    (lambda m: m.pop("version"), "'version' must be a positive integer"),
])
def test_resigned_manifest_values_out_of_range_are_refused(made, slot, tmp_path, change, phrase) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "range")
    rewrite_manifest(folder, made["private_key"], change)
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, phrase)
def test_copying_a_source_bundle_by_its_file_names_keeps_it_whole(made, made_source, tmp_path) -> None:
    # what invoke deploy copies into a release (hardware.deploy.release.stage_release)
    from edge.bundle import bundle_file_names

    assert bundle_file_names(made["bundle"]) == [MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE, GOLDEN_FILE]
    names = bundle_file_names(made_source["bundle"])
    assert names == [MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE, GOLDEN_FILE, SOURCE_SPACE_FILE]
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in names:
        (copy / name).write_bytes((made_source["bundle"] / name).read_bytes())
    assert load_bundle(copy, made_source["public_key"]).spec.level == "source"
    assert bundle_file_names(tmp_path / "nowhere") == [MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE, GOLDEN_FILE]
