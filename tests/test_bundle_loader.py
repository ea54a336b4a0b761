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
from edge.bundle import (GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, BundleSlot, load_bundle,
                         sha256_hex)
from edge.errors import ErrorCode, HotspotError
from train.metrics import aggregate_trials

BUDGET_MM = 0.3


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


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
    keras_out = np.asarray(made["model"](made["normalisation"].apply(windows)))
    bundle_out = bundle.predict(windows)
    assert bundle_out.shape == (len(windows), 3)
    assert np.linalg.norm(aggregate_trials(bundle_out)[0] - aggregate_trials(keras_out)[0]) <= BUDGET_MM
    single = bundle.predict(windows[0])
    assert single.shape == (3,)
    np.testing.assert_array_equal(single, bundle_out[0])
    assert bundle.channels == list(made["spec"].channels)
    assert bundle.spec == made["spec"]
    assert bundle.mirror is True
    assert bundle.board_channels == {name: i + 1 for i, name in enumerate(made["spec"].channels)}
    np.testing.assert_allclose(bundle.electrodes["C3"], [-52.0, 1.0, 62.0])
    assert bundle.runtime.startswith("ai_edge_litert")
    manifest = bundle.manifest
    assert manifest["model"]["io"] == "float32" and manifest["model"]["level"] == "psd"
    assert manifest["output"] == {"frame": "head", "units": "mm", "hemisphere": "left"}
    assert 0 < manifest["golden"]["tolerance_mm"] < 1.0
    weights = manifest["model"]["quantisation"]["weights"]
    # every layer int8 per-channel except the output layer, kept float with float32 I/O
    assert weights["int8_per_channel"] >= 1 and weights["int8_per_tensor"] == 0 and weights["float"] == 1


def test_golden_outputs_are_reproduced_exactly_on_the_writing_machine(made) -> None:
    bundle = load_bundle(made["bundle"], made["public_key"])
    with np.load(made["bundle"] / GOLDEN_FILE) as golden:
        np.testing.assert_array_equal(bundle.predict(golden["inputs"]), golden["outputs"])


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
    rewrite_manifest(folder, made["private_key"], lambda manifest: manifest.update(schema=2))
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, "schema version 2 is not supported")


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
    outputs[2, 1] += 1.0
    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs, outputs=outputs)
    (folder / GOLDEN_FILE).write_bytes(buffer.getvalue())
    rewrite_manifest(folder, made["private_key"],
                     lambda manifest: manifest["files"].update({GOLDEN_FILE: sha256_hex(buffer.getvalue())}))
    assert_refused(slot, folder, ErrorCode.SELF_TEST_FAILED, "self-test failed: golden vector 2")


def test_a_manifest_that_disagrees_with_its_pipeline_is_refused(made, slot, tmp_path) -> None:
    folder = copy_bundle(made["bundle"], tmp_path / "bundle")
    rewrite_manifest(folder, made["private_key"], lambda manifest: manifest["channels"].reverse())
    assert_refused(slot, folder, ErrorCode.BAD_BUNDLE, "differ from the pipeline's")


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
    from convert.bundle_writer import write_bundle

    def write(out: Path) -> Path:
        return write_bundle(out, model_content=(made["bundle"] / MODEL_FILE).read_bytes(), spec=made["spec"],
                            normalisation=made["normalisation"], golden_inputs=made["windows"][:2],
                            private_key=made["private_key"], electrodes={"C3": [-52.0, 1.0, 62.0]}, mirror=False)

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
    (lambda text: text.replace('"schema": 1,', '"schema": 1, "extra": 1e400,'), "out of range"),
    (lambda text: text[:text.rindex("}")] + ', "deep": ' + "[" * 200000 + "]" * 200000 + "}\n", "nested too deeply"),
    (lambda text: text.replace('"schema": 1,', '"schema": 1, "extra": NaN,'), "not a number JSON allows"),
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
