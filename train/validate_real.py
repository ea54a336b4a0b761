"""``invoke validate-real``: does the model put the hotspot in the right hemisphere on real EEG?

The sim-to-real check on the PhysioNet eegmmidb recordings (64 channels, 160 Hz; runs 3/7/11: ``T0`` rest,
``T1`` left-fist and ``T2`` right-fist open/close, 4 s each, alternating, the hand random per trial).

1. **Model.** Trained on simulated subjects of the same schedule (``train/simulate/eegmmidb.toml``: rate,
   montage, runs, alternating random-hand trials, both hemispheres' generators modulated for each hand), on
   both hemispheres without mirroring, so the hemisphere is the model's own inference: each simulated
   subject gives one training subject per hand (the cues of that hand; the hotspot contralateral to it).
   Subjects with bad channels stay in training (their channels are repaired); the model directory records
   how many windows each subject contributed. ``--train`` builds it (:func:`train_check_model`).
2. **Preparation** (host side, identical for simulated and real runs, :func:`prepare_recording`): channels
   that are flat, railed or deviant over the run are interpolated with MNE's spherical splines, then every
   channel is re-referenced to the common average of all recorded channels (MNE). The model's pipeline
   pools its rest over the run's ``T0`` periods (``baseline_mode = "session_rest"``, :mod:`edge.rest`).
3. **The hemisphere decision** (:mod:`train.hemisphere_gate`): per trial the network's hemisphere where its
   estimate lies at least a threshold from the midline, else the ERD lateralisation's; the threshold is
   fitted at ``--train`` on a simulated development cohort (a third seed) and stored in the model directory
   (:data:`GATE_FILE`).
4. **Before real data**: the model on held-out simulated subjects of the schedule (another seed); target:
   the hemisphere right for >= 95 % of (subject, hand) pairs.
5. **Real data**: the same measures on ``S001``-``S007``, run once, nothing tuned on them.

Measures, each with a 95 % interval and the trial counts the quality gate kept, for the model (the gated
decision), the network alone, the ERD-lateralisation baseline and chance:

- *per trial*: a kept trial is right when its decision names the hemisphere contralateral to the moving
  hand (the network: x > 0 for the left fist; cap frame, which for the real files, not digitised, is the
  template head frame); the baseline's when its mu/beta (8-30 Hz) power drop, relative to the run's pooled
  rest, is larger over C3/FC3/CP3 than over C4/FC4/CP4 for the right fist (and the reverse for the left);
- *per (subject, hand) pair*: the gate on the pair (the network's median x over the pair's trials where
  ``|x| >=`` the threshold, else the pair's lateralisation, the median over trials of each channel's drop);
  the network alone: its median x; the baseline: the lateralisation;
- *between hands, per subject*: the left fist points further right than the right fist (the model: by the
  network's two median x where both pass the threshold, else by the two lateralisations; the network alone:
  its median x; the baseline: the right-fist drop is more left-lateralised than the left-fist drop).

Intervals are Wilson score intervals (``scipy.stats.binomtest``); per trial also a bootstrap over subjects,
because trials of one subject are not independent. Chance is 50 % on each measure, with the range a coin
would give on the same counts. The report page is rendered by :mod:`train.validate_real_report`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.montage import mirror_points
from edge.validation import REQUIRED, Table, read_toml
from train import workspace
from train.baselines import ERD_BAND_HZ, REST_PERIOD_S, trial_erd
from train.configs import CONFIG_DIR, TrainingConfig, load_training_config
from train.dataset import Dataset, Recording, Subject
from train.hemisphere_gate import contralateral_votes, fit_threshold, hemisphere_votes, left_fist_further_right
from train.metrics import wilson_interval
from train.model_dir import ModelDir, load_model_dir
from train.validate_real_report import markdown_report

LOG = logging.getLogger(__name__)

HAND_EVENTS = {"left": "T1", "right": "T2"}
REST_EVENT = "T0"
LEFT_CHANNELS = ("C3", "FC3", "CP3")
RIGHT_CHANNELS = ("C4", "FC4", "CP4")
CONFIG_FILE = CONFIG_DIR / "real_check.toml"
METADATA_KEY = "real_check"
GATE_FILE = "hemisphere_gate.json"
"""The model directory's fitted hemisphere gate (:mod:`train.hemisphere_gate`), written by ``--train``."""
PREPARATION = ("channels flat, railed or deviant (PREP's robust z > 5) over a run interpolated with MNE's spherical "
               "splines, then every channel re-referenced to the common average of all recorded channels (MNE); "
               "the pipeline adds no reference of its own")
_FILE = re.compile(r"^(S\d{3})R(\d{2})\.edf$", re.IGNORECASE)


# ----- configuration ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckConfig:
    """The check's settings (``train/configs/real_check.toml``).

    Attributes
    ----------
    simulation : Path
        The simulator configuration of the schedule (``train/simulate/eegmmidb.toml``).
    train_seed, train_subjects, heldout_seed, heldout_subjects, dev_seed, dev_subjects : int
        The training, held-out and development simulated cohorts (healthy subjects; the development cohort
        fits the hemisphere gate).
    level, channels : str
        The model's input level and channel set.
    seed : int
        Training seed.
    targets : dict
        ``simulated_pairs`` (share), ``between_hands`` and ``pairs`` ([correct, of]), ``trials`` (share).
    training : TrainingConfig
        ``train/configs/training.toml`` overridden by the ``[training.*]`` tables.
    """

    simulation: Path
    train_seed: int
    train_subjects: int
    heldout_seed: int
    heldout_subjects: int
    dev_seed: int
    dev_subjects: int
    level: str
    channels: str
    seed: int
    targets: dict
    training: TrainingConfig

    def to_dict(self) -> dict:
        """JSON-ready form (stored with the model and the report)."""
        return {"simulation": simulation_name(self.simulation), "train_seed": self.train_seed,
                "train_subjects": self.train_subjects, "heldout_seed": self.heldout_seed,
                "heldout_subjects": self.heldout_subjects, "dev_seed": self.dev_seed,
                "dev_subjects": self.dev_subjects, "level": self.level, "channels": self.channels,
                "seed": self.seed, "targets": dict(self.targets), "training": self.training.to_dict()}


def simulation_name(path: Path) -> str:
    """A simulator configuration as the check's TOML names it: relative to the simulator's configuration
    folder (train/simulate) when it lies there, else its full path (so records do not carry a checkout's path)."""
    from train.simulate.config import DEFAULTS_PATH

    path = Path(path)
    return str(path.relative_to(DEFAULTS_PATH.parent)) if path.is_relative_to(DEFAULTS_PATH.parent) else str(path)


def load_check_config(path: Path | str | None = None) -> CheckConfig:
    """Read and validate the check's TOML file (default ``train/configs/real_check.toml``)."""
    path = Path(path) if path else CONFIG_FILE

    def fail(message: str) -> HotspotError:
        return HotspotError(f"{path}: {message}", ErrorCode.BAD_CONFIG)

    expected = {"simulation": {"config": str, "train_seed": int, "train_subjects": int, "heldout_seed": int,
                               "heldout_subjects": int, "dev_seed": int, "dev_subjects": int},
                "check": {"level": str, "channels": str, "seed": int},
                "targets": {"simulated_pairs": float, "between_hands": list, "pairs": list, "trials": float}}
    top = Table(read_toml(path, "check configuration"), "top level", path)
    top.check_known((*expected, "training"))
    data = {}
    for name, keys in expected.items():
        table = top.table(name)
        table.check_known(keys)
        data[name] = {key: table.get(key, kind, REQUIRED) for key, kind in keys.items()}
    simulation, targets = data["simulation"], data["targets"]
    if min(simulation["train_subjects"], simulation["heldout_subjects"], simulation["dev_subjects"]) < 2:
        raise fail("[simulation] needs at least 2 training, 2 held-out and 2 development subjects")
    if len({simulation["train_seed"], simulation["heldout_seed"], simulation["dev_seed"]}) < 3:
        raise fail("[simulation] train_seed, heldout_seed and dev_seed must differ (held-out subjects are never "
                   "trained on or fitted to)")
    for key in ("between_hands", "pairs"):
        pair = targets[key]
        if len(pair) != 2 or not all(isinstance(v, int) for v in pair) or not 0 < pair[0] <= pair[1]:
            raise fail(f"[targets] {key} must be [correct, of] with 0 < correct <= of, got {pair!r}")
    if not all(0.0 < targets[key] <= 1.0 for key in ("simulated_pairs", "trials")):
        raise fail("[targets] simulated_pairs and trials must be shares in (0, 1]")
    config_path = Path(simulation["config"])
    if not config_path.is_absolute():
        from train.simulate.config import DEFAULTS_PATH

        config_path = DEFAULTS_PATH.parent / config_path
    training = top.table("training", required=False)
    training_config = load_training_config().replace(**{name: training.table(name).data for name in training.data})
    if training_config.data.mirror:
        raise fail("[training.data] mirror must be false: the model must infer the hemisphere itself")
    return CheckConfig(simulation=config_path, train_seed=simulation["train_seed"],
                       train_subjects=simulation["train_subjects"], heldout_seed=simulation["heldout_seed"],
                       heldout_subjects=simulation["heldout_subjects"], dev_seed=simulation["dev_seed"],
                       dev_subjects=simulation["dev_subjects"], level=data["check"]["level"],
                       channels=data["check"]["channels"], seed=data["check"]["seed"], targets=dict(targets),
                       training=training_config)


# ----- preparation (host side, simulated and real runs alike) --------------------------------------------------
def prepare_recording(recording: Recording, keep: Sequence[str] | None = None) -> tuple[Recording, list[str]]:
    """Repair a run's bad channels and re-reference it to the common average of all its channels.

    Parameters
    ----------
    recording : Recording
        One run (all channels, µV, positions known).
    keep : sequence of str, optional
        Channels to keep afterwards (default: all), to save memory.

    Returns
    -------
    recording : Recording
        µV, float32, re-referenced to the common average (MNE ``set_eeg_reference``).
    repaired : list of str
        The channels that were interpolated (:data:`PREPARATION`).
    """
    import mne

    from train.bad_channels import repaired_data, session_bad_channels

    names = list(recording.ch_names) if keep is None else list(keep)
    missing = [name for name in names if name not in recording.ch_names]
    if missing:
        raise HotspotError(f"{recording.subject} {recording.session} lacks channel(s) {', '.join(missing)} the check "
                           "needs", ErrorCode.MISSING_CHANNELS)
    repaired = session_bad_channels(recording, deviant=True)
    data = repaired_data(recording, bads=repaired) if repaired else recording.data
    raw = mne.io.RawArray(np.asarray(data, dtype=np.float64) * 1e-6,
                          mne.create_info(list(recording.ch_names), recording.sfreq, "eeg"), verbose="error")
    raw.set_eeg_reference("average", projection=False, verbose="error")
    rows = [recording.ch_names.index(name) for name in names]
    referenced = raw.get_data()[rows] * 1e6
    return replace(recording, data=referenced.astype(np.float32), ch_names=names,
                   ch_pos=recording.ch_pos[rows]), repaired


def by_hand(subject: Subject) -> list[Subject]:
    """One subject per hand: that hand's cues as ``move``, the rest onsets as ``rest``.

    The hotspot sought is contralateral to the hand: the subject's own label (and truth, oracle) for its
    ``hand``, mirrored across the midline for the other hand (the simulator's mirror generator).
    """
    out = []
    for hand, event in HAND_EVENTS.items():
        recordings = []
        for recording in subject.recordings:
            if event not in recording.event_id or REST_EVENT not in recording.event_id:
                continue
            codes = {recording.event_id[REST_EVENT]: "rest", recording.event_id[event]: "move"}
            kept = recording.events[np.isin(recording.events[:, 1], list(codes))]
            recordings.append(replace(recording, events=kept,
                                      event_id={name: code for code, name in codes.items()}))
        flip = subject.hand != hand
        points = {name: (None if getattr(subject, name) is None else
                         mirror_points(getattr(subject, name)) if flip else np.asarray(getattr(subject, name)))
                  for name in ("label", "truth", "oracle")}
        out.append(replace(subject, subject=f"{subject.subject}:{hand}", hand=hand, recordings=recordings, **points))
    return out


def model_channels(config: CheckConfig) -> list[str]:
    """The model's channels and the baseline's, in model order (what a prepared run keeps)."""
    from train.configs import load_channel_sets

    sets = load_channel_sets()
    if config.channels not in sets or not isinstance(sets[config.channels], list):
        raise HotspotError(f"[check] channels {config.channels!r} must name an explicit channel set of "
                           "train/configs/channels.toml", ErrorCode.BAD_CONFIG)
    return list(dict.fromkeys(list(sets[config.channels]) + list(LEFT_CHANNELS + RIGHT_CHANNELS)))


def _simulated_subject(simulation: Path, seed: int, index: int, keep: list[str]) -> tuple[Subject, dict]:
    """Simulate and prepare one healthy subject of the schedule (runs in a worker process)."""
    from train.simulate import load_config, simulate_subject

    config = load_config(simulation, {"cohort": {"seed": seed}})
    subject, _ = simulate_subject(config, "healthy", index, f"sim-{seed}-{index:03d}")
    prepared, repaired = [], {}
    for recording in subject.recordings:
        recording, names = prepare_recording(recording, keep)
        prepared.append(recording)
        repaired[recording.session] = names
    simulated_bad = {session: sorted(bad) for session, bad in subject.meta.get("bad_channels", {}).items()}
    return replace(subject, recordings=prepared), {"repaired": repaired, "simulated_bad": simulated_bad}


def simulated_cohort(config: CheckConfig, seed: int, n_subjects: int, jobs: int = 2) -> tuple[list[Subject], dict]:
    """Simulate and prepare ``n_subjects`` healthy subjects of the schedule (in memory, ``jobs`` processes)."""
    keep = model_channels(config)
    arguments = [(config.simulation, seed, index, keep) for index in range(n_subjects)]
    if jobs <= 1:
        results = [_simulated_subject(*item) for item in arguments]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_simulated_subject, *zip(*arguments)))
    return [subject for subject, _ in results], {subject.subject: info for subject, info in results}


# ----- the model ------------------------------------------------------------------------------------------------
def train_check_model(config: CheckConfig, out: Path | str, progress: bool = True, jobs: int = 2) -> Path:
    """Simulate the training cohort of the schedule, split it by hand, train the check's model and fit its gate.

    The model directory's metadata gets a ``real_check`` entry: the schedule, the preparation, the cohort,
    the channels each run had repaired and the windows each subject contributed. The hemisphere gate is then
    fitted on the development cohort (:func:`fit_gate`) and written beside it (:data:`GATE_FILE`).
    """
    from train.training import channel_list, dataset_sfreq, train_model
    from train.windows import dataset_windows, make_spec

    subjects, preparation = simulated_cohort(config, config.train_seed, config.train_subjects, jobs)
    dataset = Dataset(name=f"eegmmidb-schedule simulation (seed {config.train_seed})",
                      subjects=[half for subject in subjects for half in by_hand(subject)])
    training = config.training
    with tempfile.TemporaryDirectory() as cache:
        names = channel_list(dataset, config.channels, training.data.mirror)
        spec = make_spec(config.level, names, dataset_sfreq(dataset), training.pipeline)
        windows = dataset_windows(dataset, spec, training.data.cue, training.data.mirror, cache,
                                  dataset.content_hash(), training.data.repair_bad_channels, training.data.rest)
        counts: dict[str, dict[str, int]] = {}
        for item in windows:
            subject, hand = item.subject.rsplit(":", 1)
            counts.setdefault(subject, {})[hand] = int(len(item.inputs))
        empty = [subject for subject, hands in counts.items() if not sum(hands.values())]
        if empty:
            raise HotspotError(f"simulated subject(s) {', '.join(empty)} gave no window; check the preparation",
                               ErrorCode.BAD_SAMPLES)
        record = {"schedule": simulation_name(config.simulation), "preparation": PREPARATION, "config": config.to_dict(),
                  "cohort": {"seed": config.train_seed, "n_subjects": len(subjects), "group": "healthy"},
                  "windows_per_subject": counts,
                  "repaired_channels": {s: info["repaired"] for s, info in preparation.items()},
                  "simulated_bad_channels": {s: info["simulated_bad"] for s, info in preparation.items()}}
        path = train_model(dataset, config.level, config.channels, training, out, seed=config.seed,
                           progress=progress, cache_dir=cache, metadata={METADATA_KEY: record})
    fit_gate(load_model_dir(path), config, jobs)
    return path


def fit_gate(model_dir: ModelDir, config: CheckConfig, jobs: int = 2) -> dict:
    """Fit the hemisphere gate on the simulated development cohort and write it into the model directory.

    Returns
    -------
    dict
        What :data:`GATE_FILE` holds: the threshold (mm), the cohort it was fitted on, and per candidate
        threshold the development trials and pairs decided right (:func:`train.hemisphere_gate.fit_threshold`).
    """
    LOG.info("fitting the hemisphere gate on %d development subjects (seed %d)", config.dev_subjects, config.dev_seed)
    subjects, _ = simulated_cohort(config, config.dev_seed, config.dev_subjects, jobs)
    found = assess(model_dir, [(subject.subject, subject.recordings) for subject in subjects], threshold_mm=0.0)
    gate = {"cohort": {"seed": config.dev_seed, "n_subjects": len(subjects), "group": "healthy"},
            **fit_threshold(found["pairs"])}
    (Path(model_dir.path) / GATE_FILE).write_text(json.dumps(gate, indent=1) + "\n")
    return gate


def load_gate(model_dir: ModelDir) -> dict:
    """The model directory's fitted hemisphere gate (:data:`GATE_FILE`)."""
    path = Path(model_dir.path) / GATE_FILE
    if not path.is_file():
        raise HotspotError(f"{model_dir.path} has no {GATE_FILE} (the hemisphere gate fitted on simulated development "
                           "subjects); train the check's model with `invoke validate-real --train`",
                           ErrorCode.BAD_ARGUMENT)
    try:
        gate = json.loads(path.read_text())
        threshold = float(gate["threshold_mm"])
    except (ValueError, KeyError, TypeError) as error:
        raise HotspotError(f"{path} is not a hemisphere gate ({error}); train the check's model again with "
                           "`invoke validate-real --train`", ErrorCode.BAD_FILE) from None
    if not threshold >= 0.0:
        raise HotspotError(f"{path}: threshold_mm must be >= 0, got {threshold}", ErrorCode.BAD_FILE)
    return gate


def check_model(model_dir: ModelDir) -> None:
    """Refuse models that cannot take this check: mirrored ones, or ones not trained for it."""
    if model_dir.mirror:
        raise HotspotError(f"{model_dir.path} was trained with mirroring, so it cannot tell the hemisphere; train "
                           "the check's model with `invoke validate-real --train`", ErrorCode.BAD_ARGUMENT)
    if METADATA_KEY not in model_dir.metadata:
        raise HotspotError(f"{model_dir.path} was not trained for this check (its data must be prepared as the check "
                           "prepares real runs); train it with `invoke validate-real --train`", ErrorCode.BAD_ARGUMENT)


# ----- per subject --------------------------------------------------------------------------------------------
def contralateral(hand: str, x_mm: float) -> bool:
    """Whether a cap-frame x lies in the hemisphere opposite ``hand`` (x > 0 is the right hemisphere)."""
    return bool(x_mm > 0) if hand == "left" else bool(x_mm < 0)


def lateralisation(erd: np.ndarray) -> np.ndarray:
    """Mean drop over C3/FC3/CP3 minus mean drop over C4/FC4/CP4 (columns in that order); > 0: left larger."""
    erd = np.atleast_2d(erd)
    return erd[:, :len(LEFT_CHANNELS)].mean(axis=1) - erd[:, len(LEFT_CHANNELS):].mean(axis=1)


def run_epochs(spec, subjects: Sequence[tuple[str, Sequence[Recording]]]) -> list[list]:
    """The pipeline's epochs around every ``T1``/``T2`` cue of every run (filtered side by side).

    Returns, per subject, one :class:`edge.pipeline.EpochInputs` per run (cues of both hands; rest pooled
    over the run's ``T0`` periods).
    """
    from edge.pipeline import compute_epochs_many

    jobs = []
    for subject, recordings in subjects:
        for recording in recordings:
            if not np.isclose(recording.sfreq, spec.sfreq):
                raise HotspotError(f"{subject} {recording.session} is sampled at {recording.sfreq:g} Hz, the model at "
                                   f"{spec.sfreq:g} Hz", ErrorCode.BAD_SAMPLING_RATE)
            missing = [name for name in (REST_EVENT, *HAND_EVENTS.values()) if name not in recording.event_id]
            if missing:
                raise HotspotError(f"{subject} {recording.session} has no {', '.join(missing)} events; the check reads "
                                   "eegmmidb runs 3, 7 and 11", ErrorCode.NO_EVENTS)
            jobs.append(recording)
    inputs = ((recording.data[[recording.ch_names.index(name) for name in spec.channels]],
               np.sort(np.concatenate([recording.cue_samples(event) for event in HAND_EVENTS.values()])),
               recording.cue_samples(REST_EVENT)) for recording in jobs)
    epochs = iter(compute_epochs_many(spec, inputs))
    return [[next(epochs) for _ in recordings] for _, recordings in subjects]


def assess_subject(model_dir: ModelDir, subject: str, recordings: Sequence[Recording], epochs: Sequence,
                   threshold_mm: float) -> list[dict]:
    """Model, network and baseline on one subject's prepared runs and epochs (:func:`run_epochs`): a record per hand.

    Each record holds the trials (cues) and the kept ones, the network's x per kept trial and the pair's median
    estimate, the baseline's lateralisation per kept trial and of the pair, the gated decisions
    (:func:`train.hemisphere_gate.hemisphere_votes` with ``threshold_mm``), how many trials fell back to the
    baseline and whether the pair did, and whether each decision is contralateral.
    """
    from train.metrics import aggregate_trials

    spec = model_dir.spec
    baseline_channels = list(LEFT_CHANNELS + RIGHT_CHANNELS)
    records = []
    for hand, event in HAND_EVENTS.items():
        inputs, kept_cues, n_cues = [], [], 0
        for recording, run in zip(recordings, epochs):
            cues = recording.cue_samples(event)
            ok = np.array([verdict.ok for verdict in run.verdicts], dtype=bool) & np.isin(run.cue_samples, cues)
            n_cues += len(cues)
            inputs.append(run.inputs[ok])
            kept_cues.append(run.cue_samples[ok])
        stacked = np.concatenate(inputs) if inputs else np.zeros((0, *spec.input_shape), dtype=np.float32)
        record = {"subject": subject, "hand": hand, "n_trials": int(n_cues), "n_kept": int(len(stacked))}
        if len(stacked):
            predictions = model_dir.predict(stacked)
            estimate, dispersion = aggregate_trials(predictions)
            erd = trial_erd(recordings, baseline_channels, event, ERD_BAND_HZ, REST_EVENT, kept_cues)
            trial_lat = lateralisation(erd)
            pair_lat = float(lateralisation(np.median(erd, axis=0))[0])
            votes = hemisphere_votes(predictions[:, 0], trial_lat, threshold_mm)
            pair_vote = int(hemisphere_votes([estimate[0]], [pair_lat], threshold_mm)[0])
            record.update({
                "estimate_mm": [float(v) for v in estimate], "dispersion_mm": float(dispersion),
                "trial_x_mm": [round(float(x), 2) for x in predictions[:, 0]],
                "network_trials_right": int(sum(contralateral(hand, x) for x in predictions[:, 0])),
                "network_contralateral": contralateral(hand, float(estimate[0])),
                "model_trials_fallback": int(np.sum(np.abs(predictions[:, 0]) < threshold_mm)),
                "model_trials_right": contralateral_votes(hand, votes),
                "model_pair_fallback": bool(abs(estimate[0]) < threshold_mm),
                "model_contralateral": contralateral(hand, pair_vote),
                "erd_lateralisation": pair_lat,
                "erd_trial_lateralisation": [round(float(v), 4) for v in trial_lat],
                "erd_trials_right": int(sum(contralateral(hand, -v) for v in trial_lat)),
                "erd_contralateral": contralateral(hand, -pair_lat)})
        records.append(record)
    return records


def between_hands(pairs: Sequence[dict], threshold_mm: float) -> list[dict]:
    """Per subject: does the left fist point further right than the right fist (model, network, baseline)?

    The model: :func:`train.hemisphere_gate.left_fist_further_right` with ``threshold_mm``.
    """
    subjects = {}
    for pair in pairs:
        subjects.setdefault(pair["subject"], {})[pair["hand"]] = pair
    out = []
    for subject, hands in subjects.items():
        left, right = hands.get("left", {}), hands.get("right", {})
        if "estimate_mm" not in left or "estimate_mm" not in right:
            out.append({"subject": subject, "usable": False})
            continue
        out.append({"subject": subject, "usable": True,
                    "model_right": left_fist_further_right((left["estimate_mm"][0], left["erd_lateralisation"]),
                                                           (right["estimate_mm"][0], right["erd_lateralisation"]),
                                                           threshold_mm),
                    "network_left_minus_right_x_mm": left["estimate_mm"][0] - right["estimate_mm"][0],
                    "network_right": bool(left["estimate_mm"][0] > right["estimate_mm"][0]),
                    "erd_right_minus_left_lateralisation": right["erd_lateralisation"] - left["erd_lateralisation"],
                    "erd_right": bool(right["erd_lateralisation"] > left["erd_lateralisation"])})
    return out


# ----- statistics -----------------------------------------------------------------------------------------------
def rate(correct: int, n: int) -> dict:
    """A share with its 95 % Wilson score interval and its one-sided binomial p-value against chance (50 %)."""
    from scipy.stats import binomtest

    if n == 0:
        return {"correct": 0, "n": 0, "share": None, "ci95_wilson": None, "p_vs_chance": None}
    test = binomtest(int(correct), int(n), 0.5, alternative="greater")
    return {"correct": int(correct), "n": int(n), "share": correct / n,
            "ci95_wilson": wilson_interval(correct, n), "p_vs_chance": float(test.pvalue)}


def chance(n: int) -> dict:
    """Chance (50 %) on ``n`` independent items: the central 95 % range of a coin's share."""
    from scipy.stats import binom

    if n == 0:
        return {"share": 0.5, "n": 0, "range95": None}
    return {"share": 0.5, "n": int(n), "range95": [float(binom.ppf(0.025, n, 0.5) / n),
                                                   float(binom.ppf(0.975, n, 0.5) / n)]}


def subject_bootstrap(correct: Sequence[int], counts: Sequence[int], seed: int = 0) -> list[float] | None:
    """95 % percentile bootstrap interval of a pooled share, resampling subjects (their trials together)."""
    from scipy.stats import bootstrap

    correct, counts = np.asarray(correct, dtype=float), np.asarray(counts, dtype=float)
    if len(correct) < 2 or counts.sum() == 0:
        return None
    result = bootstrap((correct, counts), lambda k, n: k.sum() / max(n.sum(), 1.0), paired=True, vectorized=False,
                       n_resamples=2000, method="percentile", random_state=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


METHODS = {"model": "model", "network": "network", "erd_baseline": "erd"}
"""Measure entry -> the prefix of its per-pair fields (the gated model, the network alone, the ERD baseline)."""


def measures(pairs: Sequence[dict], threshold_mm: float) -> dict:
    """Per trial, per pair and between hands: model, network, ERD baseline and chance, with intervals and kept trials.

    ``threshold_mm`` is the hemisphere gate's (:func:`between_hands`).
    """
    usable = [pair for pair in pairs if "estimate_mm" in pair]
    kept = sum(pair["n_kept"] for pair in usable)
    subjects = list(dict.fromkeys(pair["subject"] for pair in pairs))
    hands = [entry for entry in between_hands(pairs, threshold_mm) if entry["usable"]]
    found = {"trials": {"chance": chance(kept), "n_trials": int(sum(pair["n_trials"] for pair in pairs)),
                        "n_kept": int(kept)},
             "pairs": {"chance": chance(len(pairs)), "n_pairs": len(pairs), "n_usable": len(usable)},
             "between_hands": {"chance": chance(len(subjects)), "n_subjects": len(subjects), "n_usable": len(hands)}}
    for method, prefix in METHODS.items():
        per_subject = {pair["subject"]: [0, 0] for pair in usable}  # subjects with kept trials
        for pair in usable:
            per_subject[pair["subject"]][0] += pair[f"{prefix}_trials_right"]
            per_subject[pair["subject"]][1] += pair["n_kept"]
        right, counts = zip(*per_subject.values()) if per_subject else ((), ())
        found["trials"][method] = {**rate(sum(right), kept), "ci95_subject_bootstrap": subject_bootstrap(right, counts)}
        found["pairs"][method] = rate(sum(pair[f"{prefix}_contralateral"] for pair in usable), len(pairs))
        found["between_hands"][method] = rate(sum(entry[f"{prefix}_right"] for entry in hands), len(subjects))
    return found


def assess(model_dir: ModelDir, subjects: Sequence[tuple[str, Sequence[Recording]]], threshold_mm: float) -> dict:
    """:func:`assess_subject` for every subject, the between-hands comparisons and the :func:`measures`."""
    epochs = run_epochs(model_dir.spec, subjects)
    pairs = [record for (subject, recordings), runs in zip(subjects, epochs)
             for record in assess_subject(model_dir, subject, recordings, runs, threshold_mm)]
    return {"measures": measures(pairs, threshold_mm), "pairs": pairs,
            "between_hands": between_hands(pairs, threshold_mm)}


# ----- the two checks ---------------------------------------------------------------------------------------------
def simulated_check(model_dir: ModelDir, config: CheckConfig, threshold_mm: float, jobs: int = 2) -> dict:
    """The model on held-out simulated subjects of the schedule (another seed than training and the gate's)."""
    subjects, preparation = simulated_cohort(config, config.heldout_seed, config.heldout_subjects, jobs)
    result = assess(model_dir, [(subject.subject, subject.recordings) for subject in subjects], threshold_mm)
    share = result["measures"]["pairs"]["model"]["share"]
    result.update({"data": f"{len(subjects)} held-out simulated healthy subjects of the eegmmidb schedule "
                           f"(seed {config.heldout_seed}; training used seed {config.train_seed})",
                   "target_pairs": config.targets["simulated_pairs"],
                   "meets_target": bool(share is not None and share >= config.targets["simulated_pairs"]),
                   "repaired_channels": {s: info["repaired"] for s, info in preparation.items()}})
    return result


def find_runs(folder: Path) -> dict[str, list[Path]]:
    """Subject -> its eegmmidb EDF runs in ``folder`` (files named ``SxxxRyy.edf``)."""
    if not folder.is_dir():
        raise HotspotError(f"eegmmidb folder {folder} not found; pass --data ../shared/data/real/eegmmidb",
                           ErrorCode.BAD_FILE)
    runs: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match:
            runs.setdefault(match.group(1).upper(), []).append(path)
    if not runs:
        raise HotspotError(f"no SxxxRyy.edf files in {folder}", ErrorCode.BAD_FILE)
    return runs


def real_check(model_dir: ModelDir, folder: Path, config: CheckConfig, threshold_mm: float) -> dict:
    """The model and the baseline on the real eegmmidb runs in ``folder`` (every subject found there)."""
    from train.io import read_recording

    keep = list(dict.fromkeys(model_dir.channels + list(LEFT_CHANNELS + RIGHT_CHANNELS)))
    subjects, repaired = [], {}
    for subject, paths in find_runs(folder).items():
        recordings = []
        for path in paths:
            recording, names = prepare_recording(read_recording(path), keep)
            recordings.append(recording)
            repaired[f"{subject} {recording.session}"] = names
        subjects.append((subject, recordings))
    result = assess(model_dir, subjects, threshold_mm)
    targets, found = config.targets, result["measures"]
    met = {}
    for measure, minimum in (("between_hands", targets["between_hands"][0] / targets["between_hands"][1]),
                             ("pairs", targets["pairs"][0] / targets["pairs"][1]), ("trials", targets["trials"])):
        model, baseline = found[measure]["model"]["share"], found[measure]["erd_baseline"]["share"]
        met[measure] = {"target_share": minimum, "model_share": model, "erd_baseline_share": baseline,
                        "network_share": found[measure]["network"]["share"],
                        "model_meets_target": bool(model is not None and model >= minimum - 1e-12),
                        "erd_baseline_meets_target": bool(baseline is not None and baseline >= minimum - 1e-12),
                        "model_at_or_above_baseline": bool(model is not None and baseline is not None
                                                           and model >= baseline),
                        "model_short_of_target_by": None if model is None else max(0.0, minimum - model)}
    result.update({"data": str(folder), "repaired_channels": repaired, "targets": met,
                   "meets_targets": all(m["model_meets_target"] and m["model_at_or_above_baseline"]
                                        for m in met.values())})
    return result


def validate(model_dir: ModelDir, folder: Path, config: CheckConfig | None = None, jobs: int = 2) -> dict:
    """The whole check: held-out simulated subjects first, then the real runs; returns the report."""
    config = config or load_check_config()
    check_model(model_dir)
    gate = load_gate(model_dir)
    spec = model_dir.spec
    LOG.info("simulated check on %d held-out subjects", config.heldout_subjects)
    simulated = simulated_check(model_dir, config, gate["threshold_mm"], jobs)
    LOG.info("real check on %s", folder)
    real = real_check(model_dir, folder, config, gate["threshold_mm"])
    training = model_dir.metadata[METADATA_KEY]
    windows = [sum(hands.values()) for hands in training["windows_per_subject"].values()]
    return {
        "protocol": "sim-to-real: a model trained only on simulated subjects of the eegmmidb schedule, shown on "
                    "held-out simulated subjects, then run once on real eegmmidb runs; nothing tuned on the real files",
        "frame": "cap frame, mm (real files: the template head frame, no digitisation); x > 0 = right hemisphere",
        "baseline": f"ERD lateralisation: {ERD_BAND_HZ[0]:g}-{ERD_BAND_HZ[1]:g} Hz power drop (0.5-3.5 s after the "
                    f"cue) relative to the run's pooled rest ({REST_EVENT} periods, {REST_PERIOD_S[0]:g}-"
                    f"{REST_PERIOD_S[1]:g} s after onset, median), C3/FC3/CP3 vs C4/FC4/CP4, on the same prepared "
                    "data and the same kept trials; chance = 50 %",
        "decision": f"per trial the network's hemisphere where |x| >= {gate['threshold_mm']:g} mm, else the ERD "
                    "lateralisation's (train/hemisphere_gate.py); the threshold fitted on simulated development "
                    f"subjects (seed {gate['cohort']['seed']}); a pair: the network's median x where |x| >= the "
                    "threshold, else the pair's ERD lateralisation; between hands: the two estimates where both are, "
                    "else the two lateralisations",
        "gate": gate,
        "model": str(model_dir.path), "level": model_dir.contract.level, "channels": model_dir.channels,
        "pipeline": {"tmin": spec.tmin, "tmax": spec.tmax, "baseline_mode": spec.baseline_mode,
                     "rest_window": list(spec.rest_window), "reference": spec.reference,
                     "artifact_ptp_uv": spec.quality.artifact_ptp_uv},
        "preparation": PREPARATION,
        "training": {"cohort": training["cohort"], "schedule": training["schedule"],
                     "windows_per_subject": training["windows_per_subject"],
                     "windows_per_subject_min_median_max": [int(min(windows)), float(np.median(windows)),
                                                            int(max(windows))],
                     "subjects_with_repaired_channels": sum(any(runs.values())
                                                            for runs in training["repaired_channels"].values())},
        "simulated": simulated,
        "real": real,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke validate-real``."""
    parser = ArgumentParser(prog="invoke validate-real", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(workspace.REAL_CHECK_MODEL),
                        help=f"the check's model directory ({workspace.REAL_CHECK_MODEL})")
    parser.add_argument("--data", default=str(workspace.REAL_EEGMMIDB),
                        help=f"folder with the SxxxRyy.edf files ({workspace.REAL_EEGMMIDB})")
    parser.add_argument("--out", default=str(workspace.REPORTS / "validate-real"),
                        help=f"report folder ({workspace.REPORTS / 'validate-real'})")
    parser.add_argument("--config", default="", help="check configuration (default train/configs/real_check.toml)")
    parser.add_argument("--train", action="store_true", help="simulate the training cohort and train --model first")
    parser.add_argument("--jobs", type=int, default=2, help="processes simulating subjects")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise HotspotError(f"--jobs must be at least 1, got {args.jobs}", ErrorCode.BAD_ARGUMENT)
    config = load_check_config(args.config or None)
    folder = Path(args.data)
    find_runs(folder)  # refuse a wrong folder before any simulation or training
    if args.train:
        train_check_model(config, args.model, jobs=args.jobs)
    elif not Path(args.model).is_dir():
        raise HotspotError(f"model directory {args.model} not found; train it with `invoke validate-real --train`",
                           ErrorCode.BAD_FILE)
    report = validate(load_model_dir(args.model), folder, config, args.jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(markdown_report(report))
    print(markdown_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
