"""Write a signed model bundle (the format is defined and read in :mod:`edge.bundle`)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from convert.signing import load_private_key, sign_manifest
from edge.bundle import (GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE, SCHEMA_VERSION, SIGNATURE_FILE, SOURCE_SPACE_FILE,
                         sha256_hex)
from edge.contract import N_OUTPUTS, OUTPUT_VALUES, ModelContract
from edge.errors import ErrorCode, HotspotError
from edge.tflite import TFLiteModel, load_interpreter

FLOAT_OUTPUT_TOLERANCE = 1e-3
"""Golden-vector tolerance when the model's last operation computes in float (1 µm; 0.1 % of an sd)."""


def describe_quantisation(model_content: bytes) -> dict:
    """Describe how a TFLite model is quantised, measured from the model itself (the model card).

    Parameters
    ----------
    model_content : bytes
        The ``.tflite`` flatbuffer.

    Returns
    -------
    dict
        ``weights``: counts of per-channel, per-tensor int8 and float weight tensors of the
        convolution and fully connected layers; ``op_output_dtypes``: the dtypes operators produce
        (float32 only at a float model boundary); ``ops``: the operators in the graph.
    """
    _, interpreter = load_interpreter(model_content)
    ops = interpreter._get_ops_details()  # the public API has no graph view; the TF debugger uses this too
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    weights = {int(index) for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
               for index in op["inputs"][1:2]}
    scales = [len(tensors[index]["quantization_parameters"]["scales"]) for index in weights]
    produced = {np.dtype(tensors[int(index)]["dtype"]).name for op in ops for index in op["outputs"]}
    return {"weights": {"int8_per_channel": sum(n > 1 for n in scales), "int8_per_tensor": sum(n == 1 for n in scales),
                        "float": sum(n == 0 for n in scales)},
            "op_output_dtypes": sorted(produced),
            "ops": sorted({op["op_name"] for op in ops if op["op_name"] != "DELEGATE"})}


def output_step(model_content: bytes) -> float:
    """Return the model output's quantisation step (one int8 LSB, in output units: mm and ln mm).

    For int8 output tensors this is the tensor's scale; for float32 outputs of an int8 model it is
    the scale of the int8 tensor the final DEQUANTIZE reads. Runtimes may round that last integer
    differently by one step (field notes 2.6), so the golden-vector check allows one step.

    Parameters
    ----------
    model_content : bytes
        The ``.tflite`` flatbuffer.

    Returns
    -------
    float
        The step, or :data:`FLOAT_OUTPUT_TOLERANCE` when the output is computed in float.
    """
    _, interpreter = load_interpreter(model_content)
    output = interpreter.get_output_details()[0]
    if output["quantization"][0] > 0:
        return float(output["quantization"][0])
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():  # the public API has no graph view; the TF debugger uses this too
        if op["op_name"] == "DEQUANTIZE" and output["index"] in op["outputs"]:
            return float(tensors[int(op["inputs"][0])]["quantization"][0])
    return FLOAT_OUTPUT_TOLERANCE


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _golden_bytes(inputs: np.ndarray, outputs: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs.astype(np.float32), outputs=outputs.astype(np.float64))
    return buffer.getvalue()


def device_provenance(metadata: Mapping, parity: Mapping | None = None) -> dict:
    """What a device may know about a bundle's origin: hashes and counts, no subject ids or host paths.

    Parameters
    ----------
    metadata : mapping
        A model directory's metadata (``data_hash``, ``code_version``, ``seed``, ``metrics``,
        ``train_subjects``, ``dataset``).
    parity : mapping, optional
        The conversion's parity report (numbers only).

    Returns
    -------
    dict
        ``data_hash``, ``code_version``, ``seed``, ``metrics``, ``train_subjects`` as ``{"count", "sha256"}``
        (sha256 over the sorted ids, one per line: a holder of the list can check it, nobody can read
        it back), ``dataset_sha256`` (of the dataset's name) and ``parity``.
    """
    subjects = sorted(str(subject) for subject in metadata.get("train_subjects") or [])
    return {"data_hash": metadata.get("data_hash"), "code_version": metadata.get("code_version"),
            "seed": metadata.get("seed"), "metrics": metadata.get("metrics"),
            "train_subjects": {"count": len(subjects), "sha256": sha256_hex("\n".join(subjects).encode("utf-8"))},
            "dataset_sha256": sha256_hex(str(metadata.get("dataset") or "").encode("utf-8")),
            "parity": dict(parity or {})}


def _check_replaceable(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).exists())):
        raise HotspotError(f"{out} exists and is not a bundle; choose another output folder", ErrorCode.BAD_ARGUMENT)


def write_bundle(out: str | Path, *, model_content: bytes, contract: ModelContract, golden_inputs: np.ndarray,
                 private_key: str | Path | Ed25519PrivateKey, provenance: Mapping | None = None,
                 version: int | None = None) -> Path:
    """Write, hash and sign a bundle folder (replacing an existing bundle at ``out``).

    Parameters
    ----------
    out : str or Path
        The bundle folder. It is written next to ``out`` first and renamed into place, so a
        reader never sees half a bundle.
    model_content : bytes
        The ``.tflite`` model (one float32 or int8 input of the pipeline's window, one output of 6:
        mean position, cap frame, mm, then the log of its per-axis standard deviation).
    contract : edge.contract.ModelContract
        The model directory's contract, copied into the manifest as it is; for level source its
        pipeline's ``source_space`` is written as ``source_space.npz`` and hashed.
    golden_inputs : ndarray, shape (n, rows, cols)
        A few pipeline windows (not normalised); their outputs on this machine's TFLite runtime
        become the golden vectors.
    private_key : str, Path or Ed25519PrivateKey
        The signing key (or its PEM file).
    provenance : mapping, optional
        What a device may know about the bundle's origin (see :func:`device_provenance`).
    version : int, optional
        The bundle version (default: the UTC time as YYYYMMDDhhmmss, which grows with every build);
        a device refuses a bundle older than the one it runs unless rolled back to it.

    Returns
    -------
    Path
        The bundle folder.
    """
    out = Path(out)
    _check_replaceable(out)
    if version is None:
        version = int(dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S"))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise HotspotError(f"the bundle version must be a positive integer, not {version!r}", ErrorCode.BAD_ARGUMENT)
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    golden_inputs = np.asarray(golden_inputs, dtype=np.float32)
    model = TFLiteModel(model_content)
    if model.output.shape[-1:] != (N_OUTPUTS,):
        raise HotspotError(f"the model outputs {model.output.shape[-1]} values, a bundle needs {N_OUTPUTS} "
                           f"({' + '.join(OUTPUT_VALUES)}); retrain the model", ErrorCode.BAD_ARGUMENT)
    files = {MODEL_FILE: model_content, GOLDEN_FILE: _golden_bytes(golden_inputs, contract.outputs(model, golden_inputs))}
    if contract.spec.source_space is not None:
        files[SOURCE_SPACE_FILE] = contract.spec.source_space.to_bytes()
    manifest = {
        "schema": SCHEMA_VERSION,
        "version": version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "file": MODEL_FILE,
            "io": model.input.dtype,
            "input": model.input.to_dict(),
            "output": model.output.to_dict(),
            "quantisation": describe_quantisation(model_content),
            "size_bytes": len(model_content),
            "built_with": model.runtime,
        },
        **contract.to_dict(),
        "provenance": dict(provenance or {}),
        "golden": {"file": GOLDEN_FILE, "count": len(golden_inputs), "tolerance": output_step(model_content)},
        "files": {name: sha256_hex(content) for name, content in files.items()},
    }
    manifest_bytes = (json.dumps(manifest, indent=2, default=_json_default) + "\n").encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, content in files.items():
        (staging / name).write_bytes(content)
    (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
    (staging / SIGNATURE_FILE).write_bytes(sign_manifest(manifest_bytes, key))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out
