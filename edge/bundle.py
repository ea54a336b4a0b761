"""The model bundle: what the host hands a device, and how the device decides to trust it.

A bundle is a folder with four files (five for level ``source``):

``model.tflite``
    The int8 model (weights int8 per-channel, activations int8 per-tensor). It outputs six values:
    the hotspot's mean position (cap frame, mm, the model's left-hemisphere frame) and the natural
    log of its per-axis standard deviation (mm).
``manifest.json``
    Everything needed to run and interpret the model (schema version 2)::

        schema          2
        version         positive integer, larger for every newer bundle (a device refuses an older
                        one unless rolled back to it)
        created         ISO 8601 UTC time of writing
        model           io ("float32" | "int8"), input / output tensor dtype, scale, zero point and
                        shape, quantisation description, size, the runtime that built it
        pipeline, normalisation, channel_set, mirror, output, electrodes, prior, calibration
                        the model contract (:mod:`edge.contract`), copied verbatim from the model
                        directory: each field exists once
        provenance      dataset hash, code version, metrics, parity report; training subjects as a
                        count and a hash (no subject ids, no host paths)
        golden          {"file": "golden.npz", "count", "tolerance"}
        files           {"model.tflite": sha256, "golden.npz": sha256
                         [, "source_space.npz": sha256]}
``golden.npz``
    ``inputs`` (pipeline windows, before normalisation) and ``outputs`` (the exact six outputs the
    writing machine's TFLite runtime gave for them).
``source_space.npz``
    Level ``source`` only: the cortical grid and its leadfield (:class:`edge.source.SourceSpace`).
``manifest.json.sig``
    A detached ed25519 signature over the manifest's bytes, as JSON
    ``{"algorithm": "ed25519", "key_id", "signature" (base64)}``.

:func:`load_bundle` checks, in order: every file is present; the signature verifies with the
device's public key; the schema version is known; every file matches its sha256; the manifest
is well formed (its model contract included: :meth:`edge.contract.ModelContract.from_dict`); and the
golden inputs reproduce all six outputs (within ``tolerance``, one output quantisation step) on the
TFLite runtime the device has. Each failure is refused with its own one-line
:class:`~edge.errors.HotspotError`. :class:`BundleSlot` keeps the bundle loaded before whenever a
new one is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.contract import N_OUTPUTS, OUTPUT_VALUES, ModelContract, split_outputs
from edge.errors import ErrorCode, HotspotError
from edge.estimate import Calibration, Prior
from edge.normalisation import Normalisation
from edge.pipeline import PipelineSpec
from edge.source import FILE_NAME as SOURCE_SPACE_FILE
from edge.source import SourceSpace
from edge.tflite import TFLiteModel

SCHEMA_VERSION = 2
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.json.sig"
GOLDEN_FILE = "golden.npz"
BUNDLE_FILES = (MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE, GOLDEN_FILE)
MANIFEST_KEYS = ("schema", "created", "model", "provenance", "golden", "files")
"""The manifest's own keys; the model contract's (edge.contract.CONTRACT_KEYS) are checked by the contract."""


def hashed_files(level: str) -> tuple[str, ...]:
    """The files a bundle of ``level`` lists with their sha256."""
    return (MODEL_FILE, GOLDEN_FILE, SOURCE_SPACE_FILE) if level == "source" else (MODEL_FILE, GOLDEN_FILE)


def bundle_file_names(folder: str | Path) -> list[str]:
    """Every file a bundle folder consists of, judged from its manifest's level (for copying a bundle whole).

    The four files every bundle has, plus ``source_space.npz`` when the manifest says level source.
    Nothing is verified here (:func:`load_bundle` does that); an unreadable manifest gives the four.
    """
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))
        level = str(manifest["pipeline"]["level"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        level = ""
    return list(BUNDLE_FILES) + [name for name in hashed_files(level) if name not in BUNDLE_FILES]


def sha256_hex(data: bytes) -> str:
    """Return the hexadecimal sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def bundle_id_from_manifest(manifest_bytes: bytes) -> str:
    """Return a bundle's id: the first 12 hex digits of the sha256 of its manifest bytes.

    Parameters
    ----------
    manifest_bytes : bytes
        The exact contents of ``manifest.json``.

    Returns
    -------
    str
        The id the runtime reports and deploy checks.
    """
    return sha256_hex(manifest_bytes)[:12]


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """Return a short fingerprint of an ed25519 public key (first 16 hex digits of its sha256).

    Parameters
    ----------
    public_key : Ed25519PublicKey
        The key.

    Returns
    -------
    str
        The fingerprint, used to tell "signed with another key" from "manifest modified".
    """
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)[:16]


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read an ed25519 public key from a PEM file (the ``.pub`` written by ``invoke keygen``).

    Parameters
    ----------
    path : str or Path
        The PEM file.

    Returns
    -------
    Ed25519PublicKey

    Raises
    ------
    HotspotError
        When the file is missing or is not an ed25519 public key.
    """
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as err:
        raise HotspotError(f"cannot read public key {path} ({err.strerror}); copy the .pub file made by "
                           "'invoke keygen' to the device", ErrorCode.BAD_FILE) from None
    except ValueError:
        raise HotspotError(f"{path} is not a PEM public key; use the .pub file made by 'invoke keygen'",
                           ErrorCode.BAD_FILE) from None
    if not isinstance(key, Ed25519PublicKey):
        raise HotspotError(f"{path} is not an ed25519 public key; use the .pub file made by 'invoke keygen'",
                           ErrorCode.BAD_FILE)
    return key


def signature_document(signature: bytes, public_key: Ed25519PublicKey) -> bytes:
    """Return the contents of ``manifest.json.sig`` for a raw ed25519 signature.

    Parameters
    ----------
    signature : bytes
        The 64-byte ed25519 signature over the manifest's bytes.
    public_key : Ed25519PublicKey
        The public half of the signing key (only its fingerprint is stored).

    Returns
    -------
    bytes
        UTF-8 JSON ``{"algorithm": "ed25519", "key_id": ..., "signature": base64}``.
    """
    document = {"algorithm": "ed25519", "key_id": public_key_id(public_key),
                "signature": base64.b64encode(signature).decode("ascii")}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def verify_manifest(manifest_bytes: bytes, signature_bytes: bytes, public_key: Ed25519PublicKey,
                    key_path: Path) -> None:
    """Check the detached signature over the manifest.

    Parameters
    ----------
    manifest_bytes : bytes
        ``manifest.json`` exactly as stored.
    signature_bytes : bytes
        ``manifest.json.sig`` exactly as stored.
    public_key : Ed25519PublicKey
        The key the device trusts.
    key_path : Path
        Where that key came from (for the error message).

    Raises
    ------
    HotspotError
        ``BAD_SIGNATURE``: the signature file is malformed, was made with another key, or does
        not verify (the manifest was modified after signing).
    """
    try:
        document = json.loads(signature_bytes.decode("utf-8"))
        if document["algorithm"] != "ed25519":
            raise ValueError(document["algorithm"])
        key_id = str(document["key_id"])
        signature = base64.b64decode(document["signature"], validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error):
        raise HotspotError(f"{SIGNATURE_FILE} is not an ed25519 signature file; re-copy the bundle or sign it "
                           "again with 'invoke convert'", ErrorCode.BAD_SIGNATURE) from None
    trusted_id = public_key_id(public_key)
    if key_id != trusted_id:
        raise HotspotError(f"bundle was signed with key {key_id} but this device trusts key {trusted_id} "
                           f"({key_path}); sign the bundle with the matching key or install its .pub file",
                           ErrorCode.BAD_SIGNATURE)
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise HotspotError(f"{MANIFEST_FILE} and {SIGNATURE_FILE} do not match: one was modified after signing; "
                           "rebuild the bundle or re-copy it", ErrorCode.BAD_SIGNATURE) from None


@dataclass(frozen=True)
class Bundle:
    """A verified bundle, ready to predict.

    Attributes
    ----------
    path : Path
        The bundle folder.
    bundle_id : str
        First 12 hex digits of the manifest's sha256 (changes whenever anything in the bundle does).
    manifest : dict
        The parsed manifest.
    contract : edge.contract.ModelContract
        How the model is fed and read (its pipeline, normalisation, mirror rule, output frame, prior
        and calibration); the properties below are its fields.
    model : TFLiteModel
        The interpreter wrapper.
    """

    path: Path
    bundle_id: str
    manifest: dict
    contract: ModelContract
    model: TFLiteModel = field(repr=False)

    @property
    def spec(self) -> PipelineSpec:
        """The signal pipeline the model was trained with (with its source space for level source)."""
        return self.contract.spec

    @property
    def channels(self) -> list[str]:
        """Model channel names in model order (left-hemisphere names when mirroring)."""
        return self.contract.channels

    @property
    def normalisation(self) -> Normalisation:
        """Input standardisation applied before the model."""
        return self.contract.normalisation

    @property
    def electrodes(self) -> dict[str, np.ndarray]:
        """The cap's 10-05 electrode positions, cap frame, mm (placement instructions)."""
        return self.contract.electrodes

    @property
    def mirror(self) -> bool:
        """Whether right-hemisphere subjects are mirrored into the left frame (edge.contract.worn_electrodes)."""
        return self.contract.mirror

    @property
    def prior(self) -> Prior:
        """The training subjects' hotspot mean and spread (cap frame, model frame, mm)."""
        return self.contract.prior

    @property
    def calibration(self) -> Calibration:
        """How far the model's uncertainty is trusted and how the 90 % radius is scaled."""
        return self.contract.calibration

    @property
    def head_centre_mm(self) -> np.ndarray:
        """Centre of the template's sphere model, cap frame, mm (for edge.placement)."""
        return self.contract.head_centre_mm

    @property
    def aggregation(self) -> str:
        """``"session_csd"`` or ``"median_of_trials"`` (edge.contract.aggregation_for the level)."""
        return self.contract.aggregation

    @property
    def version(self) -> int:
        """The bundle's version (manifest ``version``; newer bundles have larger ones)."""
        return int(self.manifest["version"])

    @property
    def runtime(self) -> str:
        """The TFLite runtime executing the model."""
        return self.model.runtime

    def outputs(self, input2d: np.ndarray) -> np.ndarray:
        """The model's six raw outputs for pipeline output.

        Parameters
        ----------
        input2d : ndarray, shape (rows, cols) or (n, rows, cols)
            One window (or a batch) exactly as the pipeline produced it (not normalised).

        Returns
        -------
        ndarray, shape (6,) or (n, 6)
            ``[mean_x, mean_y, mean_z, log_sd_x, log_sd_y, log_sd_z]`` (mm and ln mm).
        """
        return self.contract.outputs(self.model, input2d)

    def predict(self, input2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predict the hotspot and its uncertainty from pipeline output.

        Parameters
        ----------
        input2d : ndarray, shape (rows, cols) or (n, rows, cols)
            One window (or a batch) exactly as the pipeline produced it (not normalised); for
            level source also a session image (``edge.source.session_image``).

        Returns
        -------
        mean_mm : ndarray, shape (3,) or (n, 3)
            Hotspot, cap frame, mm, in the model's frame (``contract.wearing(hand).to_patient`` gives
            the patient's).
        sd_mm : ndarray, shape (3,) or (n, 3)
            Per-axis standard deviation of that prediction (mm), as the network says.
        """
        return split_outputs(self.outputs(input2d))


def _refuse(message: str, code: ErrorCode = ErrorCode.BAD_BUNDLE) -> HotspotError:
    return HotspotError(message, code)


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as err:
        raise _refuse(f"cannot read {folder / name} ({err.strerror}); check the bundle folder's permissions") from None


def _finite_number(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _read_manifest(manifest_bytes: bytes) -> dict:
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"), parse_float=_finite_number, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise _refuse(f"{MANIFEST_FILE} is not valid JSON ({err}); rebuild the bundle") from None
    except RecursionError:
        raise _refuse(f"{MANIFEST_FILE} is nested too deeply to be a manifest; rebuild the bundle") from None
    if not isinstance(manifest, dict):
        raise _refuse(f"{MANIFEST_FILE} must hold a JSON object; rebuild the bundle")
    schema = manifest.get("schema")
    if schema == 1:
        raise _refuse("bundle schema version 1 has no uncertainty, prior or calibration and this device reads "
                      f"version {SCHEMA_VERSION}; rebuild the bundle with 'invoke convert' from a retrained model")
    if schema != SCHEMA_VERSION:
        raise _refuse(f"bundle schema version {schema!r} is not supported (this device reads version "
                      f"{SCHEMA_VERSION}); update hotspot-edge on the device or rebuild the bundle with its version")
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise _refuse(f"{MANIFEST_FILE} lacks {', '.join(missing)}; rebuild the bundle with 'invoke convert'")
    return manifest


def bundle_version(manifest: dict) -> int:
    """The manifest's ``version``: a positive integer, larger for newer bundles.

    Raises
    ------
    HotspotError
        ``BAD_BUNDLE`` when it is missing or not a positive integer.
    """
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _refuse(f"{MANIFEST_FILE} 'version' must be a positive integer, not {version!r}; rebuild the bundle "
                      "with 'invoke convert'")
    return version


def _level(manifest: dict) -> str:
    pipeline = manifest["pipeline"]
    return str(pipeline.get("level")) if isinstance(pipeline, dict) else ""


def _check_hashes(folder: Path, manifest: dict) -> dict[str, bytes]:
    listed, expected = manifest["files"], hashed_files(_level(manifest))
    if not isinstance(listed, dict) or sorted(listed) != sorted(expected):
        raise _refuse(f"{MANIFEST_FILE} must list the sha256 of exactly {', '.join(expected)} for level "
                      f"{_level(manifest)!r}; rebuild the bundle")
    absent = [name for name in expected if not (folder / name).is_file()]
    if absent:
        raise _refuse(f"bundle {folder} is incomplete: {', '.join(absent)} missing; copy the whole bundle folder again")
    contents = {}
    for name in expected:
        data = _read(folder, name)
        if sha256_hex(data) != listed[name]:
            raise _refuse(f"{name} does not match its sha256 in the manifest (corrupted or replaced); "
                          "re-copy the bundle")
        contents[name] = data
    return contents


def _contract(manifest: dict, contents: dict[str, bytes]) -> ModelContract:
    """The model contract of a hash-checked manifest (level source: with its source space file)."""
    try:
        source_space = SourceSpace.from_bytes(contents[SOURCE_SPACE_FILE]) if SOURCE_SPACE_FILE in contents else None
        return ModelContract.from_dict(manifest, source_space=source_space)
    except HotspotError as err:
        raise _refuse(f"{MANIFEST_FILE}: {err.args[0]}; rebuild the bundle with 'invoke convert'") from None


def _self_test(bundle: Bundle, golden_bytes: bytes) -> None:
    if bundle.model.output.shape[-1:] != (N_OUTPUTS,):
        raise _refuse(f"the model outputs {bundle.model.output.shape[-1]} values; schema {SCHEMA_VERSION} needs "
                      f"{N_OUTPUTS} ({' + '.join(OUTPUT_VALUES)}): rebuild the bundle from a schema-2 model")
    try:
        with np.load(io.BytesIO(golden_bytes), allow_pickle=False) as golden:
            inputs, expected = golden["inputs"], golden["outputs"]
        tolerance = float(bundle.manifest["golden"]["tolerance"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _refuse(f"{GOLDEN_FILE} or the manifest's 'golden' entry is malformed ({err}); rebuild the bundle",
                      ErrorCode.SELF_TEST_FAILED) from None
    if inputs.ndim != 3 or len(inputs) == 0 or expected.shape != (len(inputs), N_OUTPUTS):
        raise _refuse(f"{GOLDEN_FILE} must hold inputs (n, rows, cols) and outputs (n, {N_OUTPUTS}), got "
                      f"{inputs.shape} and {expected.shape}; rebuild the bundle", ErrorCode.SELF_TEST_FAILED)
    outputs = bundle.outputs(inputs)
    errors = np.abs(outputs - expected).max(axis=1)
    worst = int(np.argmax(errors))
    if not errors[worst] <= tolerance:
        raise _refuse(f"self-test failed: golden vector {worst} gives {np.round(outputs[worst], 3).tolist()} (mm, "
                      f"ln mm) on {bundle.runtime} instead of {np.round(expected[worst], 3).tolist()} (off by "
                      f"{errors[worst]:.4g}, allowed {tolerance:.4g}); this runtime computes differently from the "
                      "one that built the bundle: install the runtime version named in the manifest or rebuild",
                      ErrorCode.SELF_TEST_FAILED)


def load_bundle(path: str | Path, public_key_path: str | Path, num_threads: int = 1) -> Bundle:
    """Verify a bundle folder and load it.

    Parameters
    ----------
    path : str or Path
        The bundle folder.
    public_key_path : str or Path
        The ed25519 public key (PEM) the device trusts.
    num_threads : int
        TFLite interpreter threads.

    Returns
    -------
    Bundle

    Raises
    ------
    HotspotError
        ``BAD_BUNDLE`` (missing file, unknown schema, hash mismatch, malformed manifest, prior,
        calibration or source space),
        ``BAD_SIGNATURE`` (wrong key, modified manifest, bad signature file), ``BAD_FILE``
        (unreadable public key) or ``SELF_TEST_FAILED`` (golden vectors differ).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise _refuse(f"bundle folder {folder} not found; build one with 'invoke convert' or fix [bundle] path")
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise _refuse(f"bundle {folder} is incomplete: {', '.join(missing)} missing; "
                      "copy the whole bundle folder again")
    public_key_path = Path(public_key_path)
    public_key = load_public_key(public_key_path)
    manifest_bytes = _read(folder, MANIFEST_FILE)
    verify_manifest(manifest_bytes, _read(folder, SIGNATURE_FILE), public_key, public_key_path)
    manifest = _read_manifest(manifest_bytes)
    bundle_version(manifest)
    contents = _check_hashes(folder, manifest)
    contract = _contract(manifest, contents)
    built_with = manifest["model"].get("built_with") if isinstance(manifest["model"], dict) else None
    bundle = Bundle(path=folder, bundle_id=bundle_id_from_manifest(manifest_bytes), manifest=manifest,
                    contract=contract,
                    model=TFLiteModel(contents[MODEL_FILE], num_threads=num_threads, built_with=built_with))
    _self_test(bundle, contents[GOLDEN_FILE])
    return bundle


class BundleSlot:
    """The device's active bundle: a new bundle replaces it only if it passes every check.

    Parameters
    ----------
    public_key_path : str or Path
        The ed25519 public key the device trusts.

    Attributes
    ----------
    current : Bundle or None
        The active bundle (None until one loads).
    last_error : HotspotError or None
        Why the most recent load was refused (None after a successful load).
    """

    def __init__(self, public_key_path: str | Path) -> None:
        self.public_key_path = Path(public_key_path)
        self.current: Bundle | None = None
        self.last_error: HotspotError | None = None

    def load(self, path: str | Path) -> Bundle:
        """Verify and activate the bundle at ``path``; on refusal keep the current one and re-raise.

        Parameters
        ----------
        path : str or Path
            The bundle folder.

        Returns
        -------
        Bundle
            The newly active bundle.

        Raises
        ------
        HotspotError
            The refusal (see :func:`load_bundle`); ``current`` is unchanged.
        """
        try:
            bundle = load_bundle(path, self.public_key_path)
        except HotspotError as err:
            self.last_error = err
            raise
        self.current = bundle
        self.last_error = None
        return bundle
