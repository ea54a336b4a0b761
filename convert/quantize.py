"""``invoke convert``: int8 post-training quantisation with a parity check in millimetres.

A model directory (``invoke train``) becomes a signed bundle (:mod:`convert.bundle_writer`) that carries
the directory's model contract (:mod:`edge.contract`) as it is:

1. Input windows are prepared by ``train`` (:func:`train.conversion_data.conversion_data`: the device's
   own signal path, :func:`edge.pipeline.compute_epochs`).
2. Representative windows (>= 100; up to ``n_representative``) are drawn from the model's
   *training* subjects only and normalised as on the device. The TFLite converter quantises
   full-integer: weights int8 symmetric per-channel (Conv2D, DepthwiseConv2D and Dense),
   activations int8 per-tensor, ``TFLITE_BUILTINS_INT8`` only.
3. Parity on *held-out* subjects (labelled subjects not in the model's ``train_subjects``, or a
   separate ``holdout`` dataset): Keras float vs TFLite float vs TFLite int8 (:mod:`convert.parity`).
   If int8 changes the held-out subject-level mean error by
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

from convert.parity import format_parity, parity_report, tflite_outputs
from edge.contract import N_OUTPUTS
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.tflite import load_interpreter
from train import workspace
from train.tensorflow_setup import import_tensorflow, quiet_native_logs

IO_TYPES = ("float32", "int8")
MIN_REPRESENTATIVE = 100
AUTO_FLOAT_MAX = 6
"""At most this many layers are kept in float automatically when int8 misses the parity budget."""


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


def check_model_outputs(model_dir) -> None:
    """Refuse a model directory whose network does not give the contract's six outputs (one line)."""
    if tuple(model_dir.model.output_shape[1:]) != (N_OUTPUTS,):
        raise HotspotError(f"{model_dir.path} model outputs {model_dir.model.output_shape[1:]}, a bundle needs "
                           f"({N_OUTPUTS},) (mean_mm + log_sd_mm); retrain the model", ErrorCode.BAD_FORMAT)


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
    from train.conversion_data import conversion_data
    from train.fitting import predict_windows
    from train.model_dir import load_model_dir

    if io not in IO_TYPES:
        raise HotspotError(f"--io must be one of {', '.join(IO_TYPES)}, not {io!r}", ErrorCode.BAD_ARGUMENT)
    if not budget_mm >= 0:
        raise HotspotError(f"the parity budget must be >= 0 mm, not {budget_mm}", ErrorCode.BAD_ARGUMENT)
    signing_key = load_private_key(key)
    model_dir, out = load_model_dir(model_dir), Path(out)
    check_model_outputs(model_dir)
    contract = model_dir.contract
    data = conversion_data(model_dir, dataset, holdout)
    pool = data.training_windows
    chosen = np.random.default_rng(seed).permutation(len(pool))[:n_representative]
    representative = contract.normalisation.apply(pool[chosen])
    float_model = float_tflite(model_dir.model)
    reference = {"keras_float": [predict_windows(model_dir.model, contract.normalisation, x) for x in data.inputs],
                 "tflite_float": tflite_outputs(float_model, contract, data.inputs)}

    def quantise(kept: list[str]) -> tuple[bytes, dict]:
        content = int8_tflite(model_dir.model, representative, io, kept, float_output)
        report = parity_report(data.labels, {**reference, "tflite_int8": tflite_outputs(content, contract, data.inputs)},
                               contract.prior.mean_mm, contract.level)
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
    bundle = write_bundle(out, model_content=int8_model, contract=contract, golden_inputs=data.golden,
                          private_key=signing_key, provenance=device_provenance(model_dir.metadata, parity),
                          version=bundle_version)
    return ConversionResult(bundle=bundle, parity=parity, float_size_bytes=len(float_model),
                            int8_size_bytes=len(int8_model))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke convert``."""
    parser = ArgumentParser(prog="invoke convert", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(workspace.MODEL), help=f"model directory, invoke train ({workspace.MODEL})")
    parser.add_argument("--data", default=str(workspace.DATA),
                        help=f"the dataset the model was trained on ({workspace.DATA})")
    parser.add_argument("--holdout", default="", help="a separate held-out dataset for the parity check")
    parser.add_argument("--out", default=str(workspace.BUNDLE), help=f"bundle folder to write ({workspace.BUNDLE})")
    parser.add_argument("--key", default=str(workspace.SIGNING_KEY),
                        help=f"ed25519 signing key, invoke keygen ({workspace.SIGNING_KEY})")
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
