"""One simulated participant: latent draws (hotspot, label, generators, geometry) and the EEG.

Randomness: every subject has its own generator seeded by (cohort seed, group, index), and each
session its own by (cohort seed, group, index, session), so a subject's data do not depend on
the cohort size, on the other subjects, or on how many worker processes run.

The "source oracle" (stored as ``Subject.oracle`` and in truth.json) is the best hotspot
estimate available from the true EEG source positions: the mean of the contralateral mu and
beta generator centres minus the configured population-mean generator offset (the mean of
``generators.mu_offset_mm`` and ``generators.beta_offset_mm``, mirrored to the hotspot's
hemisphere). Its error is the generators' random spread (``generators.spread_sd_mm`` / sqrt(2)
per axis, plus clamping), i.e. what an EEG method that located the generators perfectly would
still miss.

Each session places the cap anew: the template positions (scaled with the head) are rotated about
the sphere centre by the cap shift, then every electrode is jittered. The worn positions are the
recording's ``ch_pos`` (``electrodes.tsv``); the session's cap transform, the similarity
``head = scale * R @ template + t`` before the jitter (the transform :func:`train.frames.cap_transform`
fits from the worn positions), is in truth.json ``sessions[].cap_transform``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from edge.montage import mirror_points, nearest_electrode
from train.dataset import Recording, Subject
from train.frames import CapTransform
from train.head import head_to_mni, mni_to_head, nearest_scalp_point, standard_positions_head_mm
from train.simulate.artifacts import ArtifactLog, add_electrode_artifacts, add_recording_artifacts, blink_topography
from train.simulate.config import SimulationConfig
from train.simulate.forward import HeadSphere, clamp_inside, head_sphere, leadfield, radial_directions
from train.simulate.sources import (
    TrialModulation,
    band_variance,
    frequencies,
    peak_shape,
    power_gain,
    powerlaw_shape,
    shaped_noise,
    slow_fluctuation,
    unit_band_noise,
)

GROUP_CODES = {"healthy": 1, "stroke": 2}
EVENT_ID = {"rest": 1, "move": 2, "stop": 3}
"""Events of the guided schedule: trial start (rest), movement cue, movement end."""
EEGMMIDB_EVENT_ID = {"T0": 1, "T1": 2, "T2": 3}
"""Events of the eegmmidb schedule, as PhysioNet's files name them: rest, left fist, right fist."""
HAND_EVENTS = {"left": "T1", "right": "T2"}
"""The eegmmidb cue of each hand."""
SCHEDULES = ("guided", "eegmmidb")
GENERATORS = ("mu_contra", "mu_ipsi", "beta_contra", "beta_ipsi", "alpha_left", "alpha_right")
AMPLITUDE_BAND_HZ = (1.0, 40.0)  # band of background_rms_uv (and of the C3 amplitude checks)


@dataclass(frozen=True)
class TrialSchedule:
    """Sample positions of each trial's events in one recording.

    Attributes
    ----------
    starts, cues, stops : ndarray of int64, shape (n_trials,)
        Trial start (rest onset), movement cue and movement end samples.
    n_samples : int
        Recording length (whole seconds).
    hands : ndarray of str, shape (n_trials,), or None
        The hand of each trial (eegmmidb schedule); None: every trial moves the subject's hand.
    """

    starts: np.ndarray
    cues: np.ndarray
    stops: np.ndarray
    n_samples: int
    hands: np.ndarray | None = None

    @property
    def event_id(self) -> dict[str, int]:
        """Event names to codes: :data:`EVENT_ID`, or :data:`EEGMMIDB_EVENT_ID` when hands alternate."""
        return dict(EVENT_ID if self.hands is None else EEGMMIDB_EVENT_ID)

    def events(self) -> np.ndarray:
        """Events as (sample, code) rows sorted by sample.

        Guided schedule: ``rest`` at each trial start, ``move`` at the cue, ``stop`` at the movement end.
        eegmmidb schedule: ``T0`` at each rest onset and ``T1`` (left fist) or ``T2`` (right fist) at the
        cue; as in PhysioNet's files the next ``T0`` marks the movement's end.
        """
        if self.hands is None:
            parts = [np.c_[self.starts, np.full(len(self.starts), EVENT_ID["rest"])],
                     np.c_[self.cues, np.full(len(self.cues), EVENT_ID["move"])],
                     np.c_[self.stops, np.full(len(self.stops), EVENT_ID["stop"])]]
        else:
            codes = [EEGMMIDB_EVENT_ID[HAND_EVENTS[hand]] for hand in self.hands]
            parts = [np.c_[self.starts, np.full(len(self.starts), EEGMMIDB_EVENT_ID["T0"])], np.c_[self.cues, codes]]
        rows = np.concatenate(parts)
        return rows[np.lexsort((rows[:, 1], rows[:, 0]))].astype(np.int64)


def make_schedule(task: Mapping, n_trials: int, sfreq: float, rng: np.random.Generator | None = None
                  ) -> TrialSchedule:
    """Build a trial schedule.

    Guided schedule (``task.schedule = "guided"``, the default): lead-in, then rest -> cue -> movement ->
    post per trial, every trial moving the subject's hand.

    eegmmidb schedule (``"eegmmidb"``, PhysioNet's runs 3/7/11): lead-in, then rest and movement alternate
    (each trial is ``rest_s`` of rest and ``move_s`` of movement; the next rest starts when the movement
    ends), and the recording ends ``post_s`` after the last movement. The hand of each trial is random: the
    first trial's hand is a coin flip and each later trial switches to the other hand with probability
    ``hand_switch`` (a Markov chain; eegmmidb's runs switch on 76 % of cues, 225 of 294 on S001-S007).

    Parameters
    ----------
    task : mapping
        The ``[task]`` section (``schedule``, ``rest_s`` [lo, hi], ``move_s``, ``post_s``, ``lead_in_s``,
        ``hand_switch``).
        When ``rest_s`` has equal bounds the timing is fixed: every event at an exact, predictable sample
        (the device's guided session).
    n_trials : int
    sfreq : float
    rng : numpy Generator, optional
        Needed only for a jittered rest or the eegmmidb schedule's hands.

    Returns
    -------
    TrialSchedule
    """
    alternating = task.get("schedule", "guided") == "eegmmidb"
    low, high = task["rest_s"]
    if (low != high or alternating) and rng is None:
        raise ValueError("a jittered rest or the eegmmidb schedule's hands need a random generator")
    if low == high:
        rest = np.full(n_trials, int(round(low * sfreq)))
    else:
        rest = np.round(rng.uniform(low, high, n_trials) * sfreq).astype(np.int64)
    move, post = int(round(task["move_s"] * sfreq)), int(round(task["post_s"] * sfreq))
    durations = rest + move + (0 if alternating else post)
    starts = int(round(task["lead_in_s"] * sfreq)) + np.concatenate([[0], np.cumsum(durations)[:-1]])
    cues = starts + rest
    stops = cues + move
    end = int(starts[-1] + durations[-1]) + (post if alternating else 0)
    per_second = int(round(sfreq))
    n_samples = int(np.ceil(end / per_second) * per_second)
    hands = None
    if alternating:
        switches = np.concatenate([[False], rng.random(n_trials - 1) < task["hand_switch"]])
        right = (rng.random() < 0.5) ^ (np.cumsum(switches) % 2 == 1)
        hands = np.where(right, "right", "left")
    return TrialSchedule(starts.astype(np.int64), cues.astype(np.int64), stops.astype(np.int64), n_samples, hands)


def _uniform(rng: np.random.Generator, bounds, size=None):
    return rng.uniform(bounds[0], bounds[1], size)


def _hemisphere_vector(offset, hemisphere: float) -> np.ndarray:
    """[lateral, anterior, superior] -> head-frame vector; lateral points away from the midline."""
    return np.array([hemisphere * offset[0], offset[1], offset[2]], dtype=float)


def _constrain_depth(point: np.ndarray, scale: float, sphere: HeadSphere, depth_range) -> np.ndarray:
    """Move a point radially so that its depth below the (scaled) scalp is within ``depth_range``."""
    for _ in range(3):
        _, depth = nearest_scalp_point(point, scale)
        wanted = float(np.clip(depth, depth_range[0], depth_range[1]))
        point = point + (depth - wanted) * radial_directions(point, sphere)
    return point


def _patch(rng: np.random.Generator, centre: np.ndarray, sphere: HeadSphere, generators: Mapping, margin: float,
           tilt_rad: float, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Dipoles of one generator patch: positions in a ball around ``centre`` and tilted orientations."""
    count = int(rng.integers(generators["patch_dipoles"][0], generators["patch_dipoles"][1] + 1))
    radius = _uniform(rng, generators["patch_radius_mm"])
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    positions = clamp_inside(centre + direction * radius * rng.random((count, 1)) ** (1 / 3), sphere, margin)
    radial = radial_directions(positions, sphere)
    anterior = np.array([0.0, 1.0, 0.0]) - radial[:, 1:2] * radial
    anterior /= np.linalg.norm(anterior, axis=1, keepdims=True)
    return positions, np.cos(tilt_rad) * radial + sign * np.sin(tilt_rad) * anterior


def _background(rng: np.random.Generator, count: int, sphere: HeadSphere, margin: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Randomly placed, randomly oriented cortical dipoles in the upper part of the inner sphere."""
    directions = rng.normal(size=(4 * count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions = directions[directions[:, 2] > -0.2][:count]
    radius = sphere.inner_radius_mm - margin - rng.uniform(0.0, 20.0, (len(directions), 1))
    orientations = rng.normal(size=directions.shape)
    orientations /= np.linalg.norm(orientations, axis=1, keepdims=True)
    return sphere.r0_mm + directions * radius, orientations


@dataclass
class SubjectDraw:
    """Everything drawn for one subject before any EEG is made (cheap: no forward model).

    ``truth``/``label``/``oracle`` are head frame, mm; ``label`` is None for MEP-negative
    patients. ``params`` holds the scalar draws (JSON-ready).
    """

    subject: str
    group: str
    index: int
    seed: int
    hand: str
    hemisphere: str
    scale: float
    truth: np.ndarray
    label: np.ndarray | None
    oracle: np.ndarray
    centres: dict[str, np.ndarray]
    params: dict = field(default_factory=dict)

    def sphere(self) -> HeadSphere:
        """The subject's scaled sphere model."""
        return head_sphere(self.scale)


def draw_subject(config: SimulationConfig, group: str, index: int, subject_id: str | None = None,
                 seed: int | None = None) -> SubjectDraw:
    """Draw one subject's latent variables (hotspot, TMS label, generators, geometry, rhythms).

    Parameters
    ----------
    config : SimulationConfig
    group : {"healthy", "stroke"}
    index : int
        Index within the group (0-based); with ``seed`` it fixes every random draw.
    subject_id : str, optional
        Defaults to ``f"{group}-{index}"``.
    seed : int, optional
        Defaults to ``config["cohort"]["seed"]``.

    Returns
    -------
    SubjectDraw
    """
    seed = config["cohort"]["seed"] if seed is None else seed
    rng = np.random.default_rng(np.random.SeedSequence([seed, GROUP_CODES[group], index]))
    people, geometry, hotspot, gen = (config["participants"], config["geometry"], config["hotspot"],
                                      config["generators"])
    params: dict = {}
    if group == "healthy":
        params.update(age=float(rng.normal(*people["healthy_age_mean_sd"])), severity=0.0, lesion_side="n/a")
        hand, mep_negative = people["healthy_hand"], False
    else:
        severity = float(rng.beta(*people["severity_beta"]))
        lesion = "left" if rng.random() < people["lesion_left_probability"] else "right"
        params.update(age=float(rng.normal(*people["stroke_age_mean_sd"])), severity=severity, lesion_side=lesion)
        hand = "right" if lesion == "left" else "left"
        mep_negative = bool(rng.random() < min(1.0, people["mep_negative_base"] * (1.0 + severity)))
    hemisphere = -1.0 if hand == "right" else 1.0
    scale = float(_uniform(rng, geometry["head_scale"]))
    sphere = head_sphere(scale)
    margin = geometry["inner_skull_margin_mm"]

    centre_mni = np.array(hotspot["mni_centre"], dtype=float)
    centre_mni[0] = hemisphere * abs(centre_mni[0])
    truth_mni = centre_mni + rng.normal(0.0, hotspot["sd_mm"]) + _hemisphere_vector(hotspot["muscle_offset_mm"],
                                                                                      hemisphere)
    truth = scale * mni_to_head(truth_mni)
    shift_sd = hotspot["stroke_shift_sd_mm"] + params["severity"] * hotspot["stroke_shift_severity_mm"]
    shift = rng.normal(0.0, shift_sd, 3)  # drawn for everyone so both groups use the same random stream
    if group == "stroke":
        truth = truth + shift
    truth = clamp_inside(_constrain_depth(truth, scale, sphere, geometry["hotspot_depth_mm"]), sphere, margin)
    label = truth + rng.normal(0.0, hotspot["label_noise_sd_mm"], 3)

    mu_offset = _hemisphere_vector(gen["mu_offset_mm"], hemisphere)
    beta_offset = _hemisphere_vector(gen["beta_offset_mm"], hemisphere)
    mu_contra = clamp_inside(truth + mu_offset + rng.normal(0.0, gen["spread_sd_mm"], 3), sphere, margin)
    beta_contra = clamp_inside(truth + beta_offset + rng.normal(0.0, gen["spread_sd_mm"], 3), sphere, margin)
    oracle = (mu_contra + beta_contra) / 2.0 - (mu_offset + beta_offset) / 2.0
    alpha_left = clamp_inside(scale * mni_to_head(np.array(gen["alpha_mni"], dtype=float)), sphere, margin)
    centres = {"mu_contra": mu_contra, "mu_ipsi": clamp_inside(mirror_points(mu_contra), sphere, margin),
               "beta_contra": beta_contra, "beta_ipsi": clamp_inside(mirror_points(beta_contra), sphere, margin),
               "alpha_left": alpha_left, "alpha_right": clamp_inside(mirror_points(alpha_left), sphere, margin)}

    rhythms, modulation, stroke = config["rhythms"], config["modulation"], config["stroke"]
    older = group == "stroke" or params["age"] >= people["older_from_age"]
    exponent = rng.normal(*rhythms["aperiodic_exponent_older" if older else "aperiodic_exponent_young"])
    params.update(
        mep_negative=mep_negative, head_scale=scale,
        aperiodic_exponent=float(np.clip(exponent, 0.3, 3.0)),
        background_rms_uv=float(_uniform(rng, rhythms["background_rms_uv"])),
        sensor_noise_rms_uv=float(_uniform(rng, rhythms["sensor_noise_rms_uv"])),
        mu_freq_hz=float(np.clip(rng.normal(*rhythms["mu_freq_mean_sd"]), *rhythms["mu_freq_range"])),
        mu_bandwidth_hz=float(_uniform(rng, rhythms["mu_bandwidth_hz"])),
        mu_peak_db=float(_uniform(rng, rhythms["mu_peak_db"])),
        beta_freq_hz=float(np.clip(rng.normal(*rhythms["beta_freq_mean_sd"]), *rhythms["beta_freq_range"])),
        beta_bandwidth_hz=float(_uniform(rng, rhythms["beta_bandwidth_hz"])),
        beta_peak_db=float(_uniform(rng, rhythms["beta_peak_db"])),
        alpha_freq_hz=float(_uniform(rng, rhythms["alpha_freq"])),
        alpha_bandwidth_hz=float(_uniform(rng, rhythms["alpha_bandwidth_hz"])),
        alpha_peak_db=float(_uniform(rng, rhythms["alpha_peak_db"])),
        ipsilateral_amplitude=float(_uniform(rng, gen["ipsilateral_amplitude"])),
        tilt_deg=[float(value) for value in _uniform(rng, gen["tilt_from_radial_deg"], 3)],
        tilt_sign=[float(value) for value in rng.choice([-1.0, 1.0], 3)],
    )
    ipsi = float(_uniform(rng, modulation["ipsilateral_erd"]))
    mu_erd, beta_erd = float(_uniform(rng, modulation["mu_erd"])), float(_uniform(rng, modulation["beta_erd"]))
    rebound = float(_uniform(rng, modulation["rebound_gain"]))
    factors = {"ipsilesional_erd": float(_uniform(rng, stroke["ipsilesional_erd"])) * (1 - 0.5 * params["severity"]),
               "contralesional_erd": float(_uniform(rng, stroke["contralesional_erd"])),
               "rebound": float(_uniform(rng, stroke["rebound"])),
               "ipsilesional_baseline": float(_uniform(rng, stroke["ipsilesional_baseline"])),
               "delta_gain": float(_uniform(rng, stroke["delta_gain"])),
               "theta_gain": float(_uniform(rng, stroke["theta_gain"]))}
    if group == "healthy":
        factors = {"ipsilesional_erd": 1.0, "contralesional_erd": 1.0, "rebound": 1.0, "ipsilesional_baseline": 1.0,
                   "delta_gain": 1.0, "theta_gain": 1.0}
    # Keys "contra"/"ipsi" name the generators: "contra" sits in the hotspot's hemisphere (contralateral to
    # ``hand``), "ipsi" is its mirror. *_erd and rebound hold their modulation when ``hand`` moves;
    # other_hand holds it when the other hand moves (eegmmidb schedule): then the mirror generator is the
    # contralateral one (full depth; for stroke the non-paretic hand's, contralesional, hemisphere) and the
    # hotspot's generator the ipsilateral one (x ipsilateral_erd, and for stroke x the ipsilesional factor).
    params.update(
        stroke_factors=factors,
        mu_erd={"contra": min(0.95, mu_erd * factors["ipsilesional_erd"]),
                "ipsi": min(0.95, mu_erd * ipsi * factors["contralesional_erd"])},
        beta_erd={"contra": min(0.95, beta_erd * factors["ipsilesional_erd"]),
                  "ipsi": min(0.95, beta_erd * ipsi * factors["contralesional_erd"])},
        rebound={"contra": rebound * factors["rebound"], "ipsi": rebound * ipsi * factors["rebound"]},
        other_hand={"mu_erd": {"contra": min(0.95, mu_erd * ipsi * factors["ipsilesional_erd"]),
                               "ipsi": min(0.95, mu_erd)},
                    "beta_erd": {"contra": min(0.95, beta_erd * ipsi * factors["ipsilesional_erd"]),
                                 "ipsi": min(0.95, beta_erd)},
                    "rebound": {"contra": rebound * ipsi * factors["rebound"], "ipsi": rebound}},
    )
    return SubjectDraw(subject=subject_id or f"{group}-{index}", group=group, index=index, seed=seed, hand=hand,
                       hemisphere="left" if hemisphere < 0 else "right", scale=scale, truth=truth,
                       label=None if mep_negative else label, oracle=oracle, centres=centres, params=params)


def simulation_channels(config: SimulationConfig) -> tuple[list[str], list[str]]:
    """Return (electrodes simulated, channels written): the reference electrodes may be extra."""
    recording = config["recording"]
    channels = list(recording["channels"])
    reference = recording["reference"]
    if reference == "linked_mastoids":
        return channels + [name for name in ("TP9", "TP10") if name not in channels], channels
    if reference == "FCz":
        return channels, [name for name in channels if name != "FCz"]
    return channels, channels


def reference_matrix(config: SimulationConfig) -> np.ndarray:
    """The (n_written, n_simulated) matrix that re-references electrode potentials."""
    simulated, written = simulation_channels(config)
    matrix = np.zeros((len(written), len(simulated)))
    for row, name in enumerate(written):
        matrix[row, simulated.index(name)] = 1.0
    reference = config["recording"]["reference"]
    if reference == "average":
        matrix -= 1.0 / len(simulated)
    elif reference == "FCz":
        matrix[:, simulated.index("FCz")] -= 1.0
    else:
        matrix[:, simulated.index("TP9")] -= 0.5
        matrix[:, simulated.index("TP10")] -= 0.5
    return matrix


def _session_electrodes(rng: np.random.Generator, names: list[str], scale: float, sphere: HeadSphere,
                        geometry: Mapping) -> tuple[np.ndarray, np.ndarray, CapTransform]:
    """Nominal (scaled template) and actual (cap rotated about the sphere centre + jitter) positions, and the
    cap transform of the session: the similarity ``head = scale * R @ template + t`` that places the template
    cap on this head (before the per-electrode jitter), as :mod:`train.frames` fits it from the worn positions."""
    nominal = scale * np.array(list(standard_positions_head_mm(names).values()))
    rotation = Rotation.from_rotvec(rng.normal(0.0, geometry["cap_shift_sd_mm"] / sphere.radius_mm, 3))
    placed = sphere.r0_mm + rotation.apply(nominal - sphere.r0_mm)
    matrix = rotation.as_matrix()
    cap = CapTransform(scale=float(scale), rotation=matrix, translation_mm=sphere.r0_mm - matrix @ sphere.r0_mm)
    return nominal, placed + rng.normal(0.0, geometry["electrode_jitter_sd_mm"], placed.shape), cap


def _modulation(rng: np.random.Generator, n_trials: int, depth: float | np.ndarray, rebound: float | np.ndarray,
                onset, peak, variability: float) -> TrialModulation:
    spread = np.clip(rng.normal(1.0, variability, (2, n_trials)), 0.0, None)
    return TrialModulation(depth=np.clip(depth * spread[0], 0.0, 0.95), onset_s=_uniform(rng, onset, n_trials),
                           rebound=rebound * spread[1], rebound_peak_s=_uniform(rng, peak, n_trials))


def simulate_subject(config: SimulationConfig, group: str = "healthy", index: int = 0,
                     subject_id: str | None = None, seed: int | None = None, sessions: int | None = None,
                     schedule: TrialSchedule | None = None) -> tuple[Subject, dict]:
    """Simulate one subject's recordings in memory.

    Parameters
    ----------
    config : SimulationConfig
        See ``load_config``; e.g. ``load_config(None, {"task": {"rest_s": [4.0, 4.0]}})`` for a
        fixed schedule, ``{"recording": {"channels": [...]}}`` for a headset's channels.
    group : {"healthy", "stroke"}
    index : int
        Index within the group; (seed, group, index) fixes every draw. Use an index outside
        the training cohort's range for a held-out subject.
    subject_id : str, optional
        Defaults to ``f"{group}-{index}"``.
    seed : int, optional
        Defaults to ``config["cohort"]["seed"]``.
    sessions : int, optional
        Defaults to ``config["cohort"]["sessions"]``.
    schedule : TrialSchedule, optional
        Exact event samples to use for every recording (e.g. the device's guided session,
        :func:`make_schedule` with a fixed ``rest_s``); default: drawn from ``[task]``.

    Returns
    -------
    subject : train.dataset.Subject
        ``recordings`` hold referenced EEG in microvolts (float64) with events ``rest``, ``move`` (cue)
        and ``stop`` (guided schedule) or ``T0``, ``T1``, ``T2`` (eegmmidb schedule); one recording per
        session, called ``ses-N``, or with ``task.runs`` > 1 that many runs per session sharing the
        session's cap placement, called ``ses-N_run-R``; ``label``/``truth``/``oracle`` in head mm (the
        hotspot contralateral to ``hand``); ``meta`` has the participants.tsv fields plus
        ``bad_channels`` ({recording: {channel: "flat"|"noisy"}}), as ``train.bids.read_bids_dataset``
        returns them.
    truth : dict
        JSON-ready ground truth for truth.json (source positions, draws, artifacts).
    """
    draw = draw_subject(config, group, index, subject_id, seed)
    n_sessions = config["cohort"]["sessions"] if sessions is None else sessions
    simulated, written = simulation_channels(config)
    sphere = draw.sphere()
    margin = config["geometry"]["inner_skull_margin_mm"]
    patch_rng = np.random.default_rng(np.random.SeedSequence([draw.seed, GROUP_CODES[group], index, 999]))
    positions, orientations, members = [], [], {}
    tilts, signs = draw.params["tilt_deg"], draw.params["tilt_sign"]
    for number, name in enumerate(GENERATORS):
        pair = number // 2  # mu, beta, alpha: one tilt and sign per left/right pair
        position, orientation = _patch(patch_rng, draw.centres[name], sphere, config["generators"], margin,
                                       np.deg2rad(tilts[pair]), signs[pair])
        start = sum(len(block) for block in positions)
        members[name] = np.arange(start, start + len(position))
        positions.append(position)
        orientations.append(orientation)
    start = sum(len(block) for block in positions)
    background = _background(patch_rng, config["generators"]["background_dipoles"], sphere, margin)
    members["background"] = np.arange(start, start + len(background[0]))
    positions.append(background[0])
    orientations.append(background[1])

    session_rngs = [np.random.default_rng(np.random.SeedSequence([draw.seed, GROUP_CODES[group], index, 1000 + s]))
                    for s in range(1, n_sessions + 1)]
    placements = [_session_electrodes(rng, simulated, draw.scale, sphere, config["geometry"]) for rng in session_rngs]
    names = [f"{name}#{session}" for session in range(1, n_sessions + 1) for name in simulated]
    gains = leadfield(np.concatenate(positions), np.concatenate(orientations), names,
                      np.concatenate([actual for _, actual, _ in placements]), sphere).astype(float)
    recordings, session_truth = [], []
    runs = config["task"]["runs"]
    for session, rng in enumerate(session_rngs, start=1):
        block = gains[(session - 1) * len(simulated): session * len(simulated)]
        nominal, actual, cap = placements[session - 1]
        for run in range(1, runs + 1):
            run_rng = rng if runs == 1 else np.random.default_rng(np.random.SeedSequence(
                [draw.seed, GROUP_CODES[group], index, 1000 + session, run]))
            name = f"ses-{session}" if runs == 1 else f"ses-{session}_run-{run}"
            recording, info = _simulate_session(config, draw, run_rng, block, members, simulated, written, nominal,
                                                actual, schedule, name)
            info["cap_transform"] = {"definition": "head = scale * rotation @ template + translation_mm (mm; template "
                                                   "= standard fsaverage 10-05 positions, before electrode jitter)",
                                     **cap.to_dict()}
            recordings.append(recording)
            session_truth.append(info)
    meta = participant_fields(draw)
    meta["bad_channels"] = {info["session"]: info["artifacts"]["bad_channels"] for info in session_truth}
    subject = Subject(subject=draw.subject, group=group, hand=draw.hand, label=draw.label, truth=draw.truth,
                      oracle=draw.oracle, meta=meta, recordings=recordings)
    truth = {
        "subject": draw.subject, "group": group, "hand": draw.hand, "hemisphere": draw.hemisphere,
        "truth_head_mm": draw.truth.tolist(),
        "truth_mni_mm": head_to_mni(draw.truth / draw.scale).tolist(),
        "label_head_mm": None if draw.label is None else draw.label.tolist(),
        "label_mni_mm": None if draw.label is None else head_to_mni(draw.label / draw.scale).tolist(),
        "oracle_head_mm": draw.oracle.tolist(),
        "oracle_definition": "mean(mu_contra, beta_contra centres) - mean(mu_offset_mm, beta_offset_mm) "
                             "mirrored to the hotspot hemisphere",
        "generator_centres_head_mm": {name: centre.tolist() for name, centre in draw.centres.items()},
        "generator_dipoles_head_mm": {name: np.concatenate(positions)[members[name]].round(3).tolist()
                                      for name in GENERATORS},
        "sphere": {"r0_mm": sphere.r0_mm.tolist(), "radius_mm": sphere.radius_mm},
        "params": draw.params,
        "sessions": session_truth,
    }
    return subject, truth


def participant_fields(draw: SubjectDraw) -> dict:
    """The participants.tsv fields of a drawn subject (head mm, MNI mm, nearest 10-05 electrodes)."""
    template = standard_positions_head_mm()
    fields = {"age": round(draw.params["age"], 1), "severity": round(draw.params["severity"], 3),
              "lesion_side": draw.params["lesion_side"], "hotspot_hemisphere": draw.hemisphere,
              "has_tms": draw.label is not None, "head_scale": round(draw.scale, 4)}
    for name, point in (("truth", draw.truth), ("label", draw.label)):
        if point is None:
            fields.update({f"{name}_{axis}": None for axis in ("x", "y", "z", "mni_x", "mni_y", "mni_z")})
            fields[f"{name}_electrode"] = None
            continue
        mni = head_to_mni(point / draw.scale)
        scalp, _ = nearest_scalp_point(point / draw.scale)
        fields.update({f"{name}_{axis}": round(float(value), 3) for axis, value in zip("xyz", point)})
        fields.update({f"{name}_mni_{axis}": round(float(value), 3) for axis, value in zip("xyz", mni)})
        fields[f"{name}_electrode"] = nearest_electrode(scalp, template)[0]
    return fields


def _simulate_session(config: SimulationConfig, draw: SubjectDraw, rng: np.random.Generator, gains: np.ndarray,
                      members: dict[str, np.ndarray], simulated: list[str], written: list[str], nominal: np.ndarray,
                      actual: np.ndarray, schedule: TrialSchedule | None, session: str) -> tuple[Recording, dict]:
    recording_cfg, modulation_cfg = config["recording"], config["modulation"]
    sfreq = recording_cfg["sfreq"]
    band = tuple(recording_cfg["band_hz"])
    params = draw.params
    stroke = draw.group == "stroke"
    n_trials = config["task"]["trials_stroke" if stroke else "trials_healthy"]
    if schedule is None:
        schedule = make_schedule(config["task"], n_trials, sfreq, rng)
    n_samples = schedule.n_samples
    freqs = frequencies(n_samples, sfreq)
    reference = reference_matrix(config)

    covariance = gains[:, members["background"]] @ gains[:, members["background"]].T
    referenced_cov = reference @ covariance @ reference.T
    norm = float(np.mean(np.diag(referenced_cov)))
    values, vectors = np.linalg.eigh(covariance / norm)
    mixing = vectors * np.sqrt(np.clip(values, 0.0, None))
    channel_power = np.diag(referenced_cov) / norm
    background_shape = powerlaw_shape(freqs, params["aperiodic_exponent"], band)
    background_gain = params["background_rms_uv"] / np.sqrt(
        band_variance(background_shape, freqs, AMPLITUDE_BAND_HZ, n_samples))
    electrodes = background_gain * (mixing @ shaped_noise(
        rng, np.broadcast_to(background_shape, (len(simulated), len(freqs))), n_samples))

    topographies = np.stack([gains[:, members[name]].mean(axis=1) for name in GENERATORS], axis=1)
    referenced_topo = reference @ topographies

    hotspot_side = "C3" if draw.hemisphere == "left" else "C4"

    def calibrated(column: int, centre_hz: float, peak_db: float, at_central: bool,
                   ceiling_db: float | None = None) -> float:
        """Source amplitude putting the peak ``peak_db`` above the aperiodic density at the hotspot-side
        C3/C4 (science.md §4.4), or at the generator's strongest channel when that is not recorded; with
        ``rhythms.calibrate_at = "capped"`` never more than ``ceiling_db`` above it at the strongest channel."""
        strongest = int(np.argmax(np.abs(referenced_topo[:, column])))

        def amplitude(channel: int, db: float) -> float:
            density = background_gain ** 2 * channel_power[channel] * centre_hz ** (-params["aperiodic_exponent"])
            return float(np.sqrt(10 ** (db / 10) * density) / abs(referenced_topo[channel, column]))

        if not at_central or hotspot_side not in written:
            return amplitude(strongest, peak_db)
        central = amplitude(written.index(hotspot_side), peak_db)
        if config["rhythms"]["calibrate_at"] == "capped" and ceiling_db is not None:
            return min(central, amplitude(strongest, ceiling_db))
        return central

    variability = modulation_cfg["trial_variability"] * (config["stroke"]["trial_variability_factor"] if stroke else 1)
    own_hand = (np.ones(len(schedule.cues), dtype=bool) if schedule.hands is None
                else np.asarray(schedule.hands) == draw.hand)
    envelopes = []
    for rhythm in ("mu", "beta"):
        amplitude = calibrated(GENERATORS.index(f"{rhythm}_contra"), params[f"{rhythm}_freq_hz"],
                               params[f"{rhythm}_peak_db"], at_central=True,
                               ceiling_db=config["rhythms"][f"{rhythm}_peak_db"][1])
        baseline = np.sqrt(params["stroke_factors"]["ipsilesional_baseline"])
        for side, scale in (("contra", baseline), ("ipsi", params["ipsilateral_amplitude"])):
            depth = np.where(own_hand, params[f"{rhythm}_erd"][side], params["other_hand"][f"{rhythm}_erd"][side])
            rebound = (np.where(own_hand, params["rebound"][side], params["other_hand"]["rebound"][side])
                       if rhythm == "beta" else 0.0)
            trial_mod = _modulation(rng, len(schedule.cues), depth, rebound,
                                    modulation_cfg[f"{rhythm}_onset_s"], modulation_cfg["rebound_peak_s"], variability)
            gain = power_gain(n_samples, sfreq, schedule.cues, schedule.stops, trial_mod, modulation_cfg["ramp_tau_s"],
                              modulation_cfg["rebound_duration_s"])
            envelopes.append(amplitude * scale * np.sqrt(gain))
    alpha_amplitude = calibrated(GENERATORS.index("alpha_left"), params["alpha_freq_hz"], params["alpha_peak_db"],
                                 at_central=False)
    for _ in range(2):
        envelopes.append(alpha_amplitude * slow_fluctuation(rng, n_samples, sfreq,
                                                            config["rhythms"]["alpha_fluctuation_hz"], 0.3))
    shapes = np.stack([peak_shape(freqs, params[f"{rhythm}_freq_hz"], params[f"{rhythm}_bandwidth_hz"])
                       for rhythm in ("mu", "mu", "beta", "beta", "alpha", "alpha")])
    rhythms = shaped_noise(rng, shapes, n_samples)
    electrodes += topographies @ (np.stack(envelopes) * rhythms)

    if stroke:
        column = GENERATORS.index("mu_contra")
        best = int(np.argmax(np.abs(referenced_topo[:, column])))
        for band_name, slow_band in (("delta_gain", (1.0, 4.0)), ("theta_gain", (4.0, 8.0))):
            extra = params["stroke_factors"][band_name] - 1.0
            background_power = background_gain ** 2 * channel_power[best] * band_variance(
                background_shape, freqs, slow_band, n_samples)
            amplitude = np.sqrt(extra * background_power) / abs(referenced_topo[best, column])
            electrodes += np.outer(topographies[:, column],
                                   amplitude * unit_band_noise(rng, 1, n_samples, sfreq, slow_band)[0])

    artifacts = config["artifacts"]
    log = ArtifactLog()
    nominal_map = dict(zip(simulated, nominal))
    blink_reference = standard_positions_head_mm(["Fp1", "Fp2", "Cz"])
    blink_reference = {name: draw.scale * position for name, position in blink_reference.items()}
    blink_map = blink_topography(dict(zip(simulated, actual)), artifacts["blink_fraction_at_cz"], blink_reference)
    rate_factor = config["stroke"]["artifact_rate_factor"] if stroke else 1.0
    add_electrode_artifacts(rng, electrodes, simulated, sfreq, blink_map, schedule.cues, schedule.stops, artifacts,
                            rate_factor, log)
    data = reference @ electrodes
    data += rng.normal(0.0, params["sensor_noise_rms_uv"], data.shape)
    add_recording_artifacts(rng, data, written, sfreq, recording_cfg["line_freq"], artifacts, log)

    positions = {name: position for name, position in zip(simulated, actual)}
    recording = Recording(subject=draw.subject, session=session, data=data, sfreq=sfreq,
                          ch_names=list(written), ch_pos=np.array([positions[name] for name in written]),
                          events=schedule.events(), event_id=schedule.event_id)
    info = {"session": session, "electrode_shift_mm": {
        name: (positions[name] - nominal_map[name]).round(3).tolist() for name in written},
        "artifacts": log.to_dict(), "reference": recording_cfg["reference"]}
    return recording, info
