"""Physiologically grounded cohort simulator: hand-movement EEG with known motor hotspots.

Public API
----------
- ``load_config(path_or_None, overrides) -> SimulationConfig`` (defaults in defaults.toml)
- ``simulate_cohort(config, out, jobs=None) -> Path``: the BIDS-like folder (see train.bids)
- ``simulate_subject(config, group, index, subject_id, seed, sessions, schedule) -> (Subject, truth)``:
  one subject in memory (e.g. a held-out subject for the device demo)
- ``draw_subject(config, group, index)``: the latent draws only (hotspot, label, generators), no EEG
- ``make_schedule(task, n_trials, sfreq, rng)`` / ``TrialSchedule``: trial event samples (the guided
  schedule, or with ``task.schedule = "eegmmidb"`` PhysioNet eegmmidb's alternating rest and random-hand
  movement, events ``T0``/``T1``/``T2``; ``eegmmidb.toml`` beside this module sets its montage, rate and runs)
- ``main(argv)``: the ``invoke simulate`` command line

One held-out subject for the device demo, in memory, on the guided session's exact schedule::

    config = load_config("train/simulate/small.toml", {"task": {"rest_s": [4.0, 4.0]}})
    schedule = make_schedule(config["task"], n_trials=10, sfreq=config["recording"]["sfreq"])
    subject, truth = simulate_subject(config, "stroke", index=1000, subject_id="demo", sessions=1,
                                      schedule=schedule)
    recording = subject.recordings[0]   # .data (n_channels, n_samples) uV, .ch_names, .events
    # subject.label / .truth / .oracle: head frame mm; subject.meta["hotspot_hemisphere"]

(seed, group, index) fixes every draw, so an index outside the training cohort's range
(0 .. n_healthy-1 / n_stroke-1) gives a subject the model has never seen.
"""

from train.simulate.cohort import main, simulate_cohort
from train.simulate.config import EEGMMIDB_CONFIG, SimulationConfig, load_config
from train.simulate.subject import (
    EEGMMIDB_EVENT_ID,
    EVENT_ID,
    HAND_EVENTS,
    TrialSchedule,
    draw_subject,
    make_schedule,
    simulate_subject,
)

__all__ = ["EEGMMIDB_CONFIG", "EEGMMIDB_EVENT_ID", "EVENT_ID", "HAND_EVENTS", "SimulationConfig", "TrialSchedule",
           "draw_subject", "load_config", "main", "make_schedule", "simulate_cohort", "simulate_subject"]
