"""Artifacts added to simulated EEG (science.md §2.4, §4.5).

Two kinds: electrode-level ones that exist before referencing (blinks, EMG bursts; they reach
every channel through the reference like real ones), and recording-level ones on the
referenced output channels (mains, drift, electrode pops, bad channels). All amplitudes in uV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from train.simulate.sources import unit_band_noise


def _uniform(rng: np.random.Generator, bounds: Sequence[float], size: int | None = None):
    return rng.uniform(bounds[0], bounds[1], size)


def _event_starts(rng: np.random.Generator, rate_per_min: float, n_samples: int, sfreq: float) -> np.ndarray:
    count = rng.poisson(rate_per_min * n_samples / sfreq / 60.0)
    return np.sort(rng.integers(0, n_samples, count))


def blink_topography(electrodes_mm: Mapping[str, np.ndarray], fraction_at_cz: float, reference: Mapping[str, np.ndarray]
                     ) -> np.ndarray:
    """Relative blink amplitude per electrode: 1 at Fp1/Fp2, exponential decay with distance from the eyes.

    The decay length is set so that ``fraction_at_cz`` of the Fp1 amplitude reaches Cz
    (9.3 %, science.md §2.4), using the subject's nominal positions ``reference`` (needs Fp1,
    Fp2 and Cz).
    """
    eyes = (reference["Fp1"] + reference["Fp2"]) / 2.0 - np.array([0.0, 0.0, 25.0])
    near = np.linalg.norm(reference["Fp1"] - eyes)
    length = (np.linalg.norm(reference["Cz"] - eyes) - near) / np.log(1.0 / fraction_at_cz)
    distance = np.linalg.norm(np.array(list(electrodes_mm.values())) - eyes, axis=1)
    return np.minimum(1.0, np.exp(-(distance - near) / length))


@dataclass
class ArtifactLog:
    """What was added, for the truth sidecar (sample indices)."""

    blinks: list[int] = field(default_factory=list)
    emg: list[list[int]] = field(default_factory=list)
    pops: list[dict] = field(default_factory=list)
    bad_channels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"blinks": self.blinks, "emg_bursts": self.emg, "pops": self.pops, "bad_channels": self.bad_channels}


def add_electrode_artifacts(rng: np.random.Generator, data: np.ndarray, names: Sequence[str], sfreq: float,
                            blink_map: np.ndarray, cues: np.ndarray, stops: np.ndarray, settings: Mapping,
                            rate_factor: float, log: ArtifactLog) -> None:
    """Add blinks and EMG bursts in place to unreferenced electrode potentials ``data`` (uV)."""
    n_samples = data.shape[1]
    for start in _event_starts(rng, _uniform(rng, settings["blink_rate_per_min"]) * rate_factor, n_samples, sfreq):
        length = max(2, int(round(_uniform(rng, settings["blink_duration_s"]) * sfreq)))
        stop = min(n_samples, start + length)
        shape = np.sin(np.pi * np.arange(stop - start) / length) ** 2
        data[:, start:stop] += _uniform(rng, settings["blink_amplitude_uv"]) * blink_map[:, None] * shape
        log.blinks.append(int(start))
    emg_rows = [index for index, name in enumerate(names) if name in settings["emg_channels"]]
    if not emg_rows:
        return
    starts = list(_event_starts(rng, _uniform(rng, settings["emg_rate_per_min"]) * rate_factor, n_samples, sfreq))
    locked = rng.random(len(cues)) < settings["emg_task_locked_probability"]
    starts += [int(cue + rng.uniform(0.0, max(1, stop - cue) / 2))  # within the first half of the movement
               for cue, stop, hit in zip(cues, stops, locked) if hit]
    high = min(settings["emg_band_hz"][1], 0.45 * sfreq)
    for start in sorted(starts):
        length = max(4, int(round(_uniform(rng, settings["emg_duration_s"]) * sfreq)))
        stop = min(n_samples, start + length)
        burst = unit_band_noise(rng, len(emg_rows), length, sfreq, (settings["emg_band_hz"][0], high))[:, :stop - start]
        window = np.hanning(length)[: stop - start]
        data[emg_rows, start:stop] += _uniform(rng, settings["emg_rms_uv"]) * burst * window
        log.emg.append([int(start), int(stop)])


def add_recording_artifacts(rng: np.random.Generator, data: np.ndarray, names: Sequence[str], sfreq: float,
                            line_freq: float, settings: Mapping, log: ArtifactLog) -> None:
    """Add mains (with harmonics), drift, electrode pops and bad channels in place to referenced ``data``."""
    n_channels, n_samples = data.shape
    times = np.arange(n_samples) / sfreq
    line_amplitude = _uniform(rng, settings["line_amplitude_uv"]) * rng.lognormal(0.0, 0.5, n_channels)
    relative = [1.0] + list(settings["line_harmonics"])
    for harmonic, weight in enumerate(relative, start=1):
        if harmonic * line_freq >= sfreq / 2:
            break
        phase = rng.uniform(0, 2 * np.pi)
        data += (weight * line_amplitude)[:, None] * np.sin(2 * np.pi * harmonic * line_freq * times + phase)
    drift = unit_band_noise(rng, n_channels, n_samples, sfreq, (1.0 / times[-1], settings["drift_max_hz"]))
    data += _uniform(rng, settings["drift_rms_uv"], n_channels)[:, None] * drift
    n_pops = rng.integers(settings["pops_per_session"][0], settings["pops_per_session"][1] + 1)
    for _ in range(n_pops):
        channel, start = int(rng.integers(n_channels)), int(rng.integers(n_samples))
        amplitude = _uniform(rng, settings["pop_amplitude_uv"]) * rng.choice([-1.0, 1.0])
        tau = _uniform(rng, settings["pop_tau_s"])
        data[channel, start:] += amplitude * np.exp(-(np.arange(n_samples - start) / sfreq) / tau)
        log.pops.append({"channel": names[channel], "sample": start, "amplitude_uv": float(amplitude)})
    n_bad = int(round(_uniform(rng, settings["bad_channel_fraction"]) * n_channels))
    for channel in rng.choice(n_channels, size=min(n_bad, n_channels - 1), replace=False):
        if rng.random() < 0.5:
            data[channel] = rng.normal(0.0, 0.05, n_samples)
            log.bad_channels[names[channel]] = "flat"
        else:
            data[channel] += rng.normal(0.0, settings["bad_noise_rms_uv"], n_samples)
            log.bad_channels[names[channel]] = "noisy"
