"""``invoke convert``: int8 post-training quantisation with a parity check in millimetres.

A model directory (``invoke train``) becomes a signed bundle (:mod:`convert.bundle_writer`):

1. Input windows of every subject are computed by the device's own signal path
   (:func:`train.windows.dataset_windows`, i.e. :func:`edge.pipeline.compute_epochs`).
2. Representative windows (>= 100; up to ``n_representative``) are drawn from the model's
   *training* subjects only and normalised as on the device. The TFLite converter quantises
   full-integer: weights int8 symmetric per-channel (Conv2D, DepthwiseConv2D and Dense),
   activations int8 per-tensor, ``TFLITE_BUILTINS_INT8`` only.
3. Parity on *held-out* subjects (labelled subjects not in the model's ``train_subjects``, or a
   separate ``holdout`` dataset): Keras float vs TFLite float vs TFLite int8, each subject's
   estimate being the per-axis median of its windows' predicted means (:func:`train.metrics.aggregate_trials`),
   compared with its label in the cap frame. Reported: subject-level mean error (mm), its change
   against Keras, the largest per-window difference of the predicted mean (mm) and of the predicted
   log standard deviation (ln mm; 0.1 is a 10 % change of the sd). If int8 changes the mean error by
   more than ``budget_mm`` (either way: a parity check, not an accuracy claim), no bundle is written;
   TensorFlow's ``QuantizationDebugger`` writes a per-layer report next to ``out`` and the command fails.
   The remedy is selective quantisation: by default (``auto_float``) the converter first keeps the
   layers that lose most in int8 (the debugger's per-layer error, worst first) in float one at a time
   until the budget is met, and records them (``auto_float_layers``); ``--float-layer TENSOR_NAME``
   names layers by hand. Typical candidates are layers holding coordinates in mm, e.g. the source
   network's soft-argmax over the cortical grid.

Model I/O: float32 (default) or int8
------------------------------------
The output is a coordinate in mm and the log of its standard deviation (schema 2: six values). With
float32 I/O (the default) the device gets millimetres directly: it never applies a scale and zero
point itself (a classic source of silent errors), and the model's last layer -- the fixed affine map
from standardised units to cap-frame mm and ln mm (6 outputs) -- stays in float. An int8 tensor
holding coordinates directly would have a step of about 0.6 mm (the coordinates span about 150 mm),
twice the default parity budget, and the log sds would share that step; standardised units before
it are quantised at about 0.02 SD. Every other layer is int8. ``--int8-output`` quantises that last
layer too. int8 I/O (``--io int8``) is fully integer, for
microcontroller ports that avoid float at the model boundary (``invoke export-c``);
:class:`edge.tflite.TFLiteModel` handles both.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import N_OUTPUTS, aggregation_for, output_description
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.estimate import Calibration, Prior
from edge.tflite import TFLiteModel, load_interpreter
from train.tensorflow_setup import import_tensorflow, quiet_native_logs

IO_TYPES = ("float32", "int8")
MIN_REPRESENTATIVE = 100
N_GOLDEN = 8
AUTO_FLOAT_MAX = 6
"""At most this many layers are kept in float automatically when int8 misses the parity budget."""
HELDOUT_PROTOCOL = ("subject-grouped: held-out subjects, unseen in training and in int8 calibration; "
                    "subject estimate = per-axis median of its windows' predicted means, vs its label in the cap frame")
HELDOUT_PROTOCOL_SESSIONS = ("subject-grouped: held-out subjects, unseen in training and in int8 calibration; "
                             "one input per session, the session image of its trials' mean cross-spectra (as the "
                             "device aggregates); subject estimate = per-axis median over its sessions, vs its label "
                             "in the cap frame")


@dataclass
class ConversionResult:
    """What :func:`convert_model` produced.

    Attributes
    ----------
    bundle : Path
        The signed bundle folder.
    parity : dict
        The parity report (also stored in the manifest's provenance).
    float_size_bytes, int8_size_bytes : int
        Sizes of the float and int8 ``.tflite`` models.
    """

    bundle: Path
    parity: dict
    float_size_bytes: int
    int8_size_bytes: int


@dataclass(frozen=True)
class EstimateContract:
    """What a bundle needs from a model directory beyond the network (schema 2).

    Attributes
    ----------
    prior : edge.estimate.Prior
    calibration : edge.estimate.Calibration
    head_centre_mm : ndarray, shape (3,)
    """

    prior: Prior
    calibration: Calibration
    head_centre_mm: np.ndarray


def estimate_contract(model_dir) -> EstimateContract:
    """The prior, calibration and output contract of a loaded model directory, checked (one-line refusal).

    Parameters
    ----------
    model_dir : train.model_dir.ModelDir
    """
    metadata = model_dir.metadata
    try:
        prior, calibration = Prior.from_dict(metadata["prior"]), Calibration.from_dict(metadata["calibration"])
        output = metadata["output"]
        centre = np.asarray(output.get("head_centre_mm", []) if isinstance(output, dict) else [], dtype=float)
        if centre.shape != (3,) or output != output_description(centre):
            raise HotspotError(f"output {output} is not cap-frame mean_mm + log_sd_mm with a head centre",
                               ErrorCode.BAD_FORMAT)
        if metadata["aggregation"] != aggregation_for(model_dir.spec.level):
            raise HotspotError(f"aggregation {metadata['aggregation']!r} does not fit level {model_dir.spec.level!r}",
                               ErrorCode.BAD_FORMAT)
    except HotspotError as err:
        raise HotspotError(f"model directory {model_dir.path}: {err.args[0]}; retrain the model",
                           ErrorCode.BAD_FORMAT) from None
    except (TypeError, ValueError) as err:
        raise HotspotError(f"model directory {model_dir.path}: malformed output description ({err}); retrain the "
                           "model", ErrorCode.BAD_FORMAT) from None
    if tuple(model_dir.model.output_shape[1:]) != (N_OUTPUTS,):
        raise HotspotError(f"{model_dir.path} model outputs {model_dir.model.output_shape[1:]}, a bundle needs "
                           f"({N_OUTPUTS},) (mean_mm + log_sd_mm); retrain the model", ErrorCode.BAD_FORMAT)
    return EstimateContract(prior=prior, calibration=calibration, head_centre_mm=centre)


def _representative(windows: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for window in windows:
            yield [window[None].astype(np.float32)]

    return generate


def _int8_converter(model, representative: np.ndarray, io_type: str = "float32"):
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_type == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def float_tflite(model) -> bytes:
    """Convert a Keras model to a float32 TFLite flatbuffer (the reference for parity).

    Parameters
    ----------
    model : keras.Model
        The trained model.

    Returns
    -------
    bytes
        The ``.tflite`` model.
    """
    tf = import_tensorflow()
    with quiet_native_logs():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _op_output_names(model_content: bytes) -> set[str]:
    _, interpreter = load_interpreter(model_content)
    names = {tensor["index"]: tensor["name"] for tensor in interpreter.get_tensor_details()}
    return {names[int(index)] for op in interpreter._get_ops_details() for index in op["outputs"]}


def int8_tflite(model, representative: np.ndarray, io_type: str = "float32",
                float_layers: Sequence[str] = (), float_output: bool = True) -> bytes:
    """Quantise a Keras model to a full-integer int8 TFLite flatbuffer.

    Parameters
    ----------
    model : keras.Model
        The trained model (input: one normalised window).
    representative : ndarray, shape (n, rows, cols)
        Normalised calibration windows from the training subjects (n >= 100).
    io_type : {"float32", "int8"}
        Type of the model's input and output tensors (see the module notes).
    float_layers : sequence of str
        Selective quantisation: output tensor names (the ``tensor_name`` column of the per-layer
        report) of layers to keep in float, e.g. the last Dense of the regression head. Needs
        float32 model I/O.
    float_output : bool
        With float32 I/O, keep the op producing the model's output in float (see the module notes).

    Returns
    -------
    bytes
        The ``.tflite`` model.
    """
    if io_type not in IO_TYPES:
        raise HotspotError(f"model I/O type must be one of {', '.join(IO_TYPES)}, not {io_type!r}",
                           ErrorCode.BAD_ARGUMENT)
    if len(representative) < MIN_REPRESENTATIVE:
        raise HotspotError(f"only {len(representative)} representative windows from the training subjects; "
                           f"int8 calibration needs at least {MIN_REPRESENTATIVE}: use a dataset with more trials",
                           ErrorCode.BAD_ARGUMENT)
    if float_layers and io_type != "float32":
        raise HotspotError("layers kept in float need float32 model I/O; drop --io int8 or --float-layer",
                           ErrorCode.BAD_ARGUMENT)
    tf = import_tensorflow()
    with warnings.catch_warnings(), quiet_native_logs():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        converter = _int8_converter(model, representative, io_type)
        keep_output = float_output and io_type == "float32"
        if not float_layers and not keep_output:
            return converter.convert()
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_layers))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=_representative(representative), debug_options=options)
        unknown = sorted(set(float_layers) - _op_output_names(debugger.calibrated_model))
        if unknown:
            raise HotspotError(f"no layer output called {', '.join(map(repr, unknown))}; use a tensor_name from the "
                               "per-layer report", ErrorCode.BAD_ARGUMENT)
        if keep_output:
            _, interpreter = load_interpreter(debugger.calibrated_model)
            outputs = [detail["name"] for detail in interpreter.get_output_details()]
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=sorted(set(float_layers) | set(outputs)))
        return debugger.get_nondebug_quantized_model()


def layer_statistics(model, representative: np.ndarray) -> list[dict]:
    """TensorFlow's quantisation debugger's per-layer statistics of the fully integer model.

    Each row is one layer output (``op_name``, ``tensor_name``, ``scale``, ``mean_squared_error`` ...)
    plus ``rmse_per_scale``: the root-mean-square int8 error in units of the layer's quantisation step
    (about 0.29 is the ideal rounding error; larger values point at a layer that loses precision).

    Parameters
    ----------
    model : keras.Model
        The float model.
    representative : ndarray, shape (n, rows, cols)
        Normalised windows to run through both float and int8 versions.
    """
    tf = import_tensorflow()
    with warnings.catch_warnings(), quiet_native_logs():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=_int8_converter(model, representative),
                                                             debug_dataset=_representative(representative))
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    for row in rows:
        scale = float(row["scale"])
        row["rmse_per_scale"] = f"{np.sqrt(float(row['mean_squared_error'])) / scale:.4g}" if scale > 0 else "nan"
    return rows


def _rmse_per_scale(row: dict) -> float:
    return float(np.nan_to_num(float(row["rmse_per_scale"]), nan=-1.0))


def layer_report(model, representative: np.ndarray, out: str | Path) -> tuple[Path, str]:
    """Write :func:`layer_statistics` as CSV.

    Parameters
    ----------
    model : keras.Model
        The float model.
    representative : ndarray, shape (n, rows, cols)
        Normalised windows to run through both float and int8 versions.
    out : str or Path
        The CSV file.

    Returns
    -------
    path : Path
        The CSV file written.
    worst : str
        A one-phrase description of the layer with the largest ``rmse_per_scale``.
    """
    rows = layer_statistics(model, representative)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    worst = max(rows, key=_rmse_per_scale)
    return out, f"{worst['op_name']} '{worst['tensor_name']}' (rmse/scale {worst['rmse_per_scale']})"


def layers_by_int8_loss(model, representative: np.ndarray) -> list[str]:
    """Tensor names of the model's layer outputs, the one that loses most in int8 first (``rmse_per_scale``).

    The first are typically layers whose values int8 cannot hold at the needed resolution, such as
    coordinates in mm (a soft-argmax over the cortical grid) rather than standardised activations.
    """
    return [row["tensor_name"] for row in sorted(layer_statistics(model, representative), key=_rmse_per_scale,
                                                  reverse=True)]


def parity_report(labels: Sequence[np.ndarray], predictions: dict[str, Sequence[np.ndarray]],
                  baseline: np.ndarray) -> dict:
    """Compare predictors on held-out subjects in millimetres (means) and log units (standard deviations).

    Parameters
    ----------
    labels : sequence of ndarray (3,)
        Each held-out subject's label (cap frame, mm, model frame).
    predictions : dict of str to sequence of ndarray (n_inputs, 6)
        Per-subject window outputs (mean mm, log sd) of each predictor; the first entry is the
        reference (Keras float).
    baseline : ndarray (3,)
        The training subjects' mean hotspot (the prior's mean: the no-EEG baseline).

    Returns
    -------
    dict
        Per predictor: ``mean_error_mm``, ``delta_mean_error_mm`` (against the reference),
        ``max_output_diff_mm`` / ``median_output_diff_mm`` (per-input distance of the predicted mean
        from the reference's) and ``max_log_sd_diff`` / ``median_log_sd_diff`` (per-input, per-axis
        absolute difference of the predicted log sd from the reference's; ln mm).
    """
    from train.metrics import aggregate_trials, euclidean_errors

    labels = np.asarray(labels, dtype=float)
    names = list(predictions)
    reference = names[0]
    baseline_error = float(euclidean_errors(np.tile(baseline, (len(labels), 1)), labels).mean())
    report = {"protocol": HELDOUT_PROTOCOL, "frame": "cap, mm, model (left-hemisphere) frame",
              "n_subjects": len(labels), "n_inputs": int(sum(len(p) for p in predictions[reference])),
              "baseline": {"what": "mean hotspot of the training subjects (the prior's mean)",
                           "mean_error_mm": baseline_error}}
    reference_error = None
    for name in names:
        estimates = np.array([aggregate_trials(p[:, :3])[0] for p in predictions[name]])
        mean_error = float(euclidean_errors(estimates, labels).mean())
        reference_error = mean_error if reference_error is None else reference_error
        pairs = list(zip(predictions[name], predictions[reference]))
        diffs = np.concatenate([euclidean_errors(p[:, :3], r[:, :3]) for p, r in pairs])
        log_sd_diffs = np.concatenate([np.abs(p[:, 3:] - r[:, 3:]).ravel() for p, r in pairs])
        report[name] = {"mean_error_mm": mean_error, "delta_mean_error_mm": mean_error - reference_error,
                        "max_output_diff_mm": float(diffs.max()), "median_output_diff_mm": float(np.median(diffs)),
                        "max_log_sd_diff": float(log_sd_diffs.max()),
                        "median_log_sd_diff": float(np.median(log_sd_diffs))}
    return report


def parity_inputs(spec, items: Sequence) -> list[np.ndarray]:
    """What the device runs the model on, per held-out subject: its windows, or (level source, aggregation
    ``session_csd``) one session image per session from the mean cross-spectra of the session's windows."""
    from edge.source import session_image

    if spec.level != "source":
        return [item.inputs for item in items]
    images = []
    for item in items:
        masks = [item.sessions == session for session in item.session_names()]
        images.append(np.array([session_image(spec, list(item.csds[mask, 0]), list(item.csds[mask, 1]))
                                for mask in masks], dtype=np.float32))
    return images


def _tflite_outputs(content: bytes, normalisation, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A TFLite model's six outputs (n, 6) for each subject's inputs."""
    with quiet_native_logs():  # "Created TensorFlow Lite XNNPACK delegate for CPU"
        model = TFLiteModel(content)
    return [model.predict(normalisation.apply(x)).astype(np.float64) for x in inputs]


def _golden_windows(items: Sequence, count: int = N_GOLDEN) -> np.ndarray:
    """A few windows spread over subjects (one per subject in turn)."""
    chosen = []
    for round_index in range(count):
        for item in items:
            if len(chosen) < count and round_index < len(item.inputs):
                chosen.append(item.inputs[round_index])
    return np.asarray(chosen, dtype=np.float32)


def channel_set_name(channels: Sequence[str]) -> str:
    """Return the name of the channel set in ``train/configs/channels.toml`` equal to ``channels``, else "custom"."""
    from train.configs import load_channel_sets

    for name, names in load_channel_sets().items():
        if list(names) == list(channels):
            return name
    return "custom"


def _load(dataset):
    if not isinstance(dataset, (str, Path)):
        return dataset
    from train.io import load_dataset

    if not Path(dataset).exists():
        raise HotspotError(f"dataset {dataset} not found; pass the dataset the model was trained on",
                           ErrorCode.BAD_FILE)
    return load_dataset(Path(dataset))


def split_windows(model_dir, dataset, holdout=None) -> tuple[list, list]:
    """Compute the calibration and held-out windows for a model directory.

    Parameters
    ----------
    model_dir : train.model_dir.ModelDir
        The loaded model directory.
    dataset : Dataset
        The dataset the model was trained on (checked by content hash).
    holdout : Dataset, optional
        A separate held-out dataset; by default the labelled subjects of ``dataset`` that are
        not among the model's training subjects.

    Returns
    -------
    training, heldout : list of train.windows.SubjectWindows
        Labelled subjects with at least one accepted window, in the model's frame.

    Raises
    ------
    HotspotError
        When ``dataset`` is not the training dataset or there is no usable held-out subject.
    """
    from train.dataset import Dataset
    from train.windows import dataset_windows

    metadata = model_dir.metadata
    if dataset.content_hash() != metadata.get("data_hash"):
        raise HotspotError(f"dataset {dataset.name!r} is not the one {model_dir.path} was trained on (content hash "
                           "differs); pass the training dataset with --data", ErrorCode.BAD_ARGUMENT)
    train_ids = set(metadata.get("train_subjects", []))
    source = holdout if holdout is not None else dataset
    heldout_data = Dataset(name=source.name, subjects=[
        s for s in source.subjects if s.label is not None and (holdout is not None or s.subject not in train_ids)])
    if not heldout_data.subjects:
        raise HotspotError(f"no labelled held-out subjects: every labelled subject of {dataset.name!r} trained the "
                           "model; pass a separate dataset with --holdout (e.g. 'invoke simulate' with another seed)",
                           ErrorCode.BAD_ARGUMENT)
    training_data = Dataset(name=dataset.name, subjects=[
        s for s in dataset.subjects if s.subject in train_ids and s.label is not None])
    cue = metadata.get("training", {}).get("data", {}).get("cue", "move")
    training, heldout = ([item for item in dataset_windows(data, model_dir.spec, cue, model_dir.mirror)
                          if len(item.inputs)] for data in (training_data, heldout_data))
    if not heldout:
        raise HotspotError("no held-out subject has a usable window (all rejected by the quality check); "
                           "pass a cleaner held-out dataset with --holdout", ErrorCode.BAD_ARGUMENT)
    return training, heldout


def convert_model(model_dir: str | Path, dataset, out: str | Path, key: str | Path, io: str = "float32",
                  budget_mm: float = 0.3, holdout=None, n_representative: int = 300, seed: int = 0,
                  report_dir: str | Path | None = None, float_layers: Sequence[str] = (),
                  float_output: bool = True, auto_float: bool = True,
                  bundle_version: int | None = None) -> ConversionResult:
    """Quantise a model directory to int8, check parity in mm, and write a signed bundle.

    Parameters
    ----------
    model_dir : str or Path
        A schema-2 model directory written by ``invoke train``.
    dataset : Dataset, str or Path
        The dataset the model was trained on (its content hash must match the model's).
        Calibration windows come from the model's training subjects; held-out parity from its
        other labelled subjects.
    out : str or Path
        The bundle folder to write.
    key : str or Path
        The ed25519 signing key (``invoke keygen``).
    io : {"float32", "int8"}
        The model's input/output tensor type (see the module notes for why float32 is the default).
    budget_mm : float
        The largest allowed change of the held-out subject-level mean error caused by int8 (mm).
    holdout : Dataset, str or Path, optional
        A separate held-out dataset (all its labelled subjects are used), e.g. when the model
        was trained on every subject of ``dataset``.
    n_representative : int
        At most this many calibration windows (randomly drawn; at least 100 are required).
    seed : int
        Seed of the calibration draw.
    report_dir : str or Path, optional
        Where the per-layer report goes on a budget failure (default: next to ``out``).
    float_layers : sequence of str
        Layers to keep in float (selective quantisation, see :func:`int8_tflite`), the usual
        remedy when the per-layer report blames the regression head.
    float_output : bool
        With float32 I/O, keep the output layer (standardised units to mm) in float (default).
    auto_float : bool
        With float32 I/O, when int8 misses the budget, keep the layers that lose most in int8
        (:func:`layers_by_int8_loss`, worst first, at most :data:`AUTO_FLOAT_MAX`) in float one by
        one until the budget is met; they are recorded in the parity report (``auto_float_layers``).
    bundle_version : int, optional
        The bundle's version (default: the build time, see :func:`convert.bundle_writer.write_bundle`).

    Returns
    -------
    ConversionResult

    Raises
    ------
    HotspotError
        ``BUDGET_EXCEEDED`` when int8 costs more than ``budget_mm`` (the per-layer report is
        written and named in the message); ``BAD_ARGUMENT`` / ``BAD_FILE`` for unusable inputs.
    """
    from convert.bundle_writer import device_provenance, write_bundle
    from convert.signing import load_private_key
    from train.head import standard_positions_head_mm
    from train.model_dir import load_model_dir, predict_windows

    if io not in IO_TYPES:
        raise HotspotError(f"--io must be one of {', '.join(IO_TYPES)}, not {io!r}", ErrorCode.BAD_ARGUMENT)
    if not budget_mm >= 0:
        raise HotspotError(f"the parity budget must be >= 0 mm, not {budget_mm}", ErrorCode.BAD_ARGUMENT)
    signing_key = load_private_key(key)
    model_dir, out = load_model_dir(model_dir), Path(out)
    contract = estimate_contract(model_dir)
    metadata = model_dir.metadata
    training, heldout = split_windows(model_dir, _load(dataset), None if holdout is None else _load(holdout))
    pool = np.concatenate([item.inputs for item in training]) if training else np.zeros((0,))
    chosen = np.random.default_rng(seed).permutation(len(pool))[:n_representative]
    representative = model_dir.normalisation.apply(pool[chosen]) if len(pool) else pool
    float_model = float_tflite(model_dir.model)
    labels = [np.mean(item.window_targets("label"), axis=0) for item in heldout]
    inputs = parity_inputs(model_dir.spec, heldout)
    reference = {"keras_float": [predict_windows(model_dir.model, model_dir.normalisation, x) for x in inputs],
                 "tflite_float": _tflite_outputs(float_model, model_dir.normalisation, inputs)}

    def quantise(kept: list[str]) -> tuple[bytes, dict]:
        content = int8_tflite(model_dir.model, representative, io, kept, float_output)
        report = parity_report(labels, {**reference, "tflite_int8": _tflite_outputs(content, model_dir.normalisation,
                                                                                    inputs)}, contract.prior.mean_mm)
        if model_dir.spec.level == "source":
            report["protocol"] = HELDOUT_PROTOCOL_SESSIONS
        return content, report

    kept = list(float_layers)
    int8_model, parity = quantise(kept)
    automatic: list[str] = []
    if auto_float and io == "float32" and abs(parity["tflite_int8"]["delta_mean_error_mm"]) > budget_mm:
        candidates = [name for name in layers_by_int8_loss(model_dir.model, representative) if name not in kept]
        for name in candidates[:AUTO_FLOAT_MAX]:
            try:
                trial_model, trial_parity = quantise(kept + automatic + [name])
            except (HotspotError, ValueError):  # the converter cannot keep this one in float: stop here
                break
            automatic.append(name)
            int8_model, parity = trial_model, trial_parity
            if abs(parity["tflite_int8"]["delta_mean_error_mm"]) <= budget_mm:
                break
    cost = parity["tflite_int8"]["delta_mean_error_mm"]
    parity.update({"budget_mm": float(budget_mm), "passed": bool(abs(cost) <= budget_mm), "io": io,
                   "float_layers": kept + automatic, "auto_float_layers": automatic,
                   "float_output": bool(float_output and io == "float32"),
                   "n_representative": int(len(representative)), "float_size_bytes": len(float_model),
                   "int8_size_bytes": len(int8_model)})
    if not parity["passed"]:
        folder = Path(report_dir) if report_dir is not None else out.parent
        (folder / f"{out.name}.parity.json").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{out.name}.parity.json").write_text(json.dumps(parity, indent=2) + "\n")
        report, worst = layer_report(model_dir.model, representative, folder / f"{out.name}.layers.csv")
        raise HotspotError(f"int8 changes the held-out subject-level mean error by {cost:+.3f} mm, over the "
                           f"{budget_mm} mm budget; per-layer report: {report} (worst: {worst}; keep a layer in float with "
                           "--float-layer TENSOR_NAME); no bundle written",
                           ErrorCode.BUDGET_EXCEEDED)
    bundle = write_bundle(out, model_content=int8_model, spec=model_dir.spec, normalisation=model_dir.normalisation,
                          golden_inputs=_golden_windows(heldout), private_key=signing_key,
                          electrodes=standard_positions_head_mm(), mirror=model_dir.mirror, prior=contract.prior,
                          calibration=contract.calibration, head_centre_mm=contract.head_centre_mm,
                          channel_set=channel_set_name(model_dir.channels),
                          provenance=device_provenance(metadata, parity), version=bundle_version)
    return ConversionResult(bundle=bundle, parity=parity, float_size_bytes=len(float_model),
                            int8_size_bytes=len(int8_model))


def format_parity(parity: dict) -> str:
    """Return the parity report as a few human-readable lines."""
    lines = [f"parity on {parity['n_subjects']} held-out subjects / {parity['n_inputs']} model inputs "
             f"({parity['protocol']}; {parity['frame']})",
             f"  baseline ({parity['baseline']['what']}): mean error {parity['baseline']['mean_error_mm']:.2f} mm"]
    for name in ("keras_float", "tflite_float", "tflite_int8"):
        entry = parity[name]
        lines.append(f"  {name:<12} mean error {entry['mean_error_mm']:.3f} mm, "
                     f"change {entry['delta_mean_error_mm']:+.3f} mm, "
                     f"largest window difference {entry['max_output_diff_mm']:.3f} mm (mean), "
                     f"{entry['max_log_sd_diff']:.3f} (log sd)")
    if parity["float_layers"]:
        lines.append(f"  kept in float: {', '.join(parity['float_layers'])}"
                     + (f" ({len(parity['auto_float_layers'])} chosen automatically)" if parity["auto_float_layers"]
                        else ""))
    lines.append(f"  sizes: float {parity['float_size_bytes']} B, int8 {parity['int8_size_bytes']} B; "
                 f"budget {parity['budget_mm']} mm: {'passed' if parity['passed'] else 'FAILED'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke convert``."""
    parser = ArgumentParser(prog="invoke convert", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory (invoke train)")
    parser.add_argument("--data", required=True, help="the dataset the model was trained on")
    parser.add_argument("--holdout", default="", help="a separate held-out dataset for the parity check")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--key", required=True, help="ed25519 signing key (invoke keygen)")
    parser.add_argument("--io", default="float32", choices=IO_TYPES, help="model input/output type")
    parser.add_argument("--budget-mm", type=float, default=0.3, help="allowed int8 change of the mean error (mm)")
    parser.add_argument("--float-layer", action="append", default=[],
                        help="keep this layer (tensor_name from the per-layer report) in float; repeatable")
    parser.add_argument("--int8-output", action="store_true",
                        help="quantise the output layer (standardised units to mm) too; float32 I/O keeps it float")
    parser.add_argument("--no-auto-float", action="store_true",
                        help="do not keep the worst layers in float automatically when int8 misses the budget")
    parser.add_argument("--bundle-version", type=int, default=None,
                        help="bundle version, a positive integer larger than the devices' (default: the build time "
                             "as YYYYMMDDhhmmss)")
    args = parser.parse_args(argv)
    result = convert_model(args.model, args.data, args.out, args.key, io=args.io, budget_mm=args.budget_mm,
                           holdout=args.holdout or None, float_layers=args.float_layer,
                           float_output=not args.int8_output, auto_float=not args.no_auto_float,
                           bundle_version=args.bundle_version)
    print(format_parity(result.parity))
    print(f"bundle written to {result.bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
