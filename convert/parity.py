"""The parity check of ``invoke convert``: Keras float, TFLite float and TFLite int8 compared in millimetres.

Each held-out subject's estimate is the per-axis median of its inputs' predicted means
(:func:`train.metrics.aggregate_trials`), compared with its label in the cap frame (model frame).
Reported per predictor: the subject-level mean error (mm), its change against Keras, the largest
and median per-input difference of the predicted mean (mm) and of the predicted log standard
deviation (ln mm; 0.1 is a 10 % change of the sd), beside the baseline that knows no EEG (the
prior's mean). It is a parity check, not an accuracy claim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.contract import ModelContract, aggregation_for
from edge.tflite import TFLiteModel
from train.metrics import aggregate_trials, euclidean_errors
from train.tensorflow_setup import quiet_native_logs

HELDOUT_PROTOCOL = ("subject-grouped: held-out subjects, unseen in training and in int8 calibration; "
                    "subject estimate = per-axis median of its windows' predicted means, vs its label in the cap frame")
HELDOUT_PROTOCOL_SESSIONS = ("subject-grouped: held-out subjects, unseen in training and in int8 calibration; "
                             "one input per session, the session image of its trials' mean cross-spectra (as the "
                             "device aggregates); subject estimate = per-axis median over its sessions, vs its label "
                             "in the cap frame")


def parity_report(labels: Sequence[np.ndarray], predictions: dict[str, Sequence[np.ndarray]],
                  baseline: np.ndarray, level: str) -> dict:
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
    level : str
        The model's input level (its protocol: one input per window, or per session for level source).

    Returns
    -------
    dict
        Per predictor: ``mean_error_mm``, ``delta_mean_error_mm`` (against the reference),
        ``max_output_diff_mm`` / ``median_output_diff_mm`` (per-input distance of the predicted mean
        from the reference's) and ``max_log_sd_diff`` / ``median_log_sd_diff`` (per-input, per-axis
        absolute difference of the predicted log sd from the reference's; ln mm).
    """
    labels = np.asarray(labels, dtype=float)
    names = list(predictions)
    reference = names[0]
    baseline_error = float(euclidean_errors(np.tile(baseline, (len(labels), 1)), labels).mean())
    report = {"protocol": HELDOUT_PROTOCOL_SESSIONS if aggregation_for(level) == "session_csd" else HELDOUT_PROTOCOL, "frame": "cap, mm, model (left-hemisphere) frame",
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


def tflite_outputs(content: bytes, contract: ModelContract, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A TFLite model's six outputs (n, 6) for each subject's inputs, normalised as on the device."""
    with quiet_native_logs():  # "Created TensorFlow Lite XNNPACK delegate for CPU"
        model = TFLiteModel(content)
    return [contract.outputs(model, x) for x in inputs]


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
