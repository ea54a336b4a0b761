"""What converting a model directory needs from its data, prepared by the device's own signal path.

``invoke convert`` (:mod:`convert.quantize`) quantises a model with windows of the subjects it was
trained on and checks parity on subjects it never saw; :func:`conversion_data` prepares both from
the training dataset (checked by its content hash against the model directory) and, optionally, a
separate held-out dataset. Windows come from :func:`train.windows.dataset_windows` (i.e.
:func:`edge.pipeline.compute_epochs`) in the model's frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ErrorCode, HotspotError
from train.dataset import Dataset
from train.windows import SubjectWindows, dataset_windows

N_GOLDEN = 8
"""Golden windows a bundle carries for its device self-test."""


@dataclass(frozen=True)
class ConversionData:
    """Prepared windows for quantising a model and checking its parity.

    Attributes
    ----------
    training_windows : ndarray, shape (n, rows, cols), float32
        Every accepted window of the model's labelled training subjects (raw, not normalised):
        the pool int8 calibration draws from.
    labels : list of ndarray (3,)
        Each held-out subject's label (cap frame, mm, model frame; the mean over its windows' sessions).
    inputs : list of ndarray, shape (n_inputs, rows, cols)
        What the device runs the model on, per held-out subject: its windows, or for a session-aggregated
        level (``source``) one session image per session from its windows' mean cross-spectra.
    golden : ndarray, shape (<= N_GOLDEN, rows, cols), float32
        A few held-out windows spread over subjects (one per subject in turn), for the golden vectors.
    """

    training_windows: np.ndarray
    labels: list[np.ndarray]
    inputs: list[np.ndarray]
    golden: np.ndarray


def read_dataset(dataset: Dataset | str | Path) -> Dataset:
    """A dataset, or the one in folder / file ``dataset`` (:func:`train.io.load_dataset`)."""
    if not isinstance(dataset, (str, Path)):
        return dataset
    from train.io import load_dataset

    if not Path(dataset).exists():
        raise HotspotError(f"dataset {dataset} not found; pass the dataset the model was trained on",
                           ErrorCode.BAD_FILE)
    return load_dataset(Path(dataset))


def device_inputs(spec, items: Sequence[SubjectWindows]) -> list[np.ndarray]:
    """What the device runs the model on, per subject: its windows, or (level source, aggregation
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


def golden_windows(items: Sequence[SubjectWindows], count: int = N_GOLDEN) -> np.ndarray:
    """A few windows spread over subjects (one per subject in turn)."""
    chosen = []
    for round_index in range(count):
        for item in items:
            if len(chosen) < count and round_index < len(item.inputs):
                chosen.append(item.inputs[round_index])
    return np.asarray(chosen, dtype=np.float32)


def conversion_data(model_dir, dataset: Dataset | str | Path,
                    holdout: Dataset | str | Path | None = None) -> ConversionData:
    """Prepare the calibration and held-out data for converting a model directory.

    Parameters
    ----------
    model_dir : train.model_dir.ModelDir
        The loaded model directory (its contract's pipeline and mirror rule, its ``train_subjects``,
        ``data_hash`` and training cue).
    dataset : Dataset, str or Path
        The dataset the model was trained on (checked by content hash).
    holdout : Dataset, str or Path, optional
        A separate held-out dataset (all its labelled subjects); by default the labelled subjects of
        ``dataset`` that are not among the model's training subjects.

    Returns
    -------
    ConversionData
        Labelled subjects with at least one accepted window only.

    Raises
    ------
    HotspotError
        When ``dataset`` is not the training dataset or there is no usable held-out subject.
    """
    dataset = read_dataset(dataset)
    holdout = None if holdout is None else read_dataset(holdout)
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
    pool = (np.concatenate([item.inputs for item in training]) if training
            else np.zeros((0, *model_dir.spec.input_shape), dtype=np.float32))
    return ConversionData(training_windows=pool,
                          labels=[np.mean(item.window_targets("label"), axis=0) for item in heldout],
                          inputs=device_inputs(model_dir.spec, heldout), golden=golden_windows(heldout))
