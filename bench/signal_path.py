"""Signal-path benchmarks: filter throughput, the device's 0.5 s hop, and each input level's cost.

Implementations are timed side by side in one run (the CI machines are noisy 2-core boxes; compare
ratios within a run). Times are the median of repeated runs after a warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from bench.harness import benchmark

SFREQ = 250.0
NINE = ("FC5", "FC3", "FC1", "C5", "C3", "C1", "CP5", "CP3", "CP1")
HOP_SAMPLES = 125  # 0.5 s at 250 Hz
HOP_TARGET_MS = 5.0  # 1 % of one core at real time


def _median_s(run: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _eeg(n_channels: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """Cyton-like microvolts: DC offsets of tens of mV plus EEG-sized noise."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-60000, 60000, (n_channels, 1)) + rng.normal(0.0, 20.0, (n_channels, n_samples))


@benchmark("signal_filter")
def filter_throughput() -> dict:
    """Channel-samples per second: our q31/q15 cascade, SciPy sosfilt (float64), CMSIS-DSP's C code."""
    import cmsisdsp
    from scipy import signal

    from train.filter_design import default_filter, reference_sos
    from edge.fixedpoint import BiquadCascade

    results = {}
    # 1024 rows: recordings stacked side by side, as edge.pipeline.compute_epochs_many filters a cohort.
    for n_channels, seconds in ((9, 20), (64, 10), (1024, 4)):
        data = _eeg(n_channels, int(seconds * SFREQ))
        channel_samples = data.size
        row = {}
        for q_format in ("q31", "q15"):
            spec = default_filter(SFREQ, q_format=q_format)
            fixed = spec.to_fixed(data if q_format == "q31" else data - data[:, :1])
            ours = _median_s(lambda: BiquadCascade(spec, n_channels).process(fixed), repeats=3, warmup=1)
            row[f"ours_{q_format}"] = channel_samples / ours
            dtype = np.int32 if q_format == "q31" else np.int16
            init = getattr(cmsisdsp, f"arm_biquad_cascade_df1_init_{q_format}")
            run = getattr(cmsisdsp, f"arm_biquad_cascade_df1_{q_format}")
            make = getattr(cmsisdsp, f"arm_biquad_casd_df1_inst_{q_format}")
            coeffs = np.array(spec.coeffs, dtype=dtype)
            rows = [np.ascontiguousarray(channel, dtype=dtype) for channel in fixed]

            def cmsis() -> None:
                for channel in rows:
                    instance = make()
                    init(instance, spec.n_stages, coeffs, np.zeros(4 * spec.n_stages, dtype), spec.post_shift)
                    run(instance, channel)

            row[f"cmsisdsp_{q_format}"] = channel_samples / _median_s(cmsis, repeats=5)
        sos = reference_sos(SFREQ, 6.0, 35.0, 60.0)
        row["scipy_sosfilt_float64"] = channel_samples / _median_s(lambda: signal.sosfilt(sos, data, axis=1),
                                                                   repeats=5)
        results[f"{n_channels}_channels"] = {name: round(value) for name, value in row.items()}
    results["unit"] = "channel-samples per second"
    results["filter"] = default_filter(SFREQ).description
    return results


@benchmark("signal_hop")
def hop_cost() -> dict:
    """Cost of one 0.5 s hop (125 samples x 9 channels) through the online pipeline, per level and format."""
    from train.filter_design import default_filter
    from edge.online import OnlinePipeline
    from edge.pipeline import PipelineSpec

    data = _eeg(len(NINE), int(120 * SFREQ))
    results = {"target_ms": HOP_TARGET_MS, "hop": "125 samples x 9 channels (0.5 s at 250 Hz)",
               "note": "plain hops filter and buffer; epoch hops also finish one epoch (level + verdict)"}
    for q_format in ("q31", "q15"):
        spec = PipelineSpec(SFREQ, NINE, "psd", default_filter(SFREQ, q_format=q_format))
        source = data if q_format == "q31" else data - data[:, :1]
        online = OnlinePipeline(spec)
        for cue in range(int(3 * SFREQ), source.shape[1] - int(5 * SFREQ), int(3 * SFREQ)):
            online.add_cue(cue)
        plain, with_epoch = [], []
        for begin in range(0, source.shape[1] - HOP_SAMPLES, HOP_SAMPLES):
            started = time.perf_counter()
            online.push(source[:, begin:begin + HOP_SAMPLES])
            ready = online.pop_ready()
            (with_epoch if ready else plain).append((time.perf_counter() - started) * 1e3)
        plain_ms = np.array(plain[2:])
        results[q_format] = {"plain_hop_median_ms": round(float(np.median(plain_ms)), 3),
                             "plain_hop_p95_ms": round(float(np.percentile(plain_ms, 95)), 3),
                             "epoch_hop_median_ms": round(float(np.median(with_epoch)), 3),
                             "within_target": bool(np.median(plain_ms) <= HOP_TARGET_MS
                                                   and np.median(with_epoch) <= HOP_TARGET_MS)}
    return results


@benchmark("signal_levels")
def level_costs() -> dict:
    """Per-window cost of each input level (level + verdict, 9 channels, one epoch) and a whole recording.

    The source level is timed as wall time and as CPU time of this process (summed over every thread
    numpy's linear algebra may use), so ``source_cpu_ms_per_trial`` is its cost on one core; the
    session image (mean cross-spectra of 40 trials) is timed the same way.
    """
    from train.filter_design import default_filter
    from edge.levels import LEVELS
    from edge.pipeline import PipelineSpec, compute_epochs, compute_epochs_many, epoch_input
    from edge.source import session_image
    from train.source_space import build_source_space

    space = build_source_space(NINE)
    results: dict = {"per_window_ms": {}}
    for level in LEVELS:
        spec = PipelineSpec(SFREQ, NINE, level, default_filter(SFREQ),
                            source_space=space if level == "source" else None)
        window = _eeg(len(NINE), spec.epoch_samples, seed=1)
        filtered = window - window.mean(axis=1, keepdims=True)
        results["per_window_ms"][level] = round(_median_s(lambda: epoch_input(spec, window, window, filtered),
                                                          repeats=50, warmup=5) * 1e3, 3)
        if level == "source":
            started, repeats = time.process_time(), 50
            for _ in range(repeats):
                _, _, csds = epoch_input(spec, window, window, filtered)
            results["source_cpu_ms_per_trial"] = round((time.process_time() - started) / repeats * 1e3, 3)
            started = time.process_time()
            for _ in range(10):
                session_image(spec, [csds[0]] * 40, [csds[1]] * 40)
            results["source_session_image_cpu_ms"] = round((time.process_time() - started) / 10 * 1e3, 3)
            results["source_grid"] = {"points": int(len(space.points_mm)), "channels": len(NINE),
                                      "bands": len(spec.bands), "input_shape": list(spec.input_shape)}
    # Training recordings: 40 trials of 10 s (400 s at 250 Hz), PSD level; one at a time and side by side.
    n_recordings = 12
    cues = np.arange(int(5 * SFREQ), int(395 * SFREQ), int(10 * SFREQ))
    for n_channels in (9, 64):
        spec = PipelineSpec(SFREQ, tuple(f"E{i}" for i in range(n_channels)), "psd", default_filter(SFREQ))
        recordings = [(_eeg(n_channels, int(400 * SFREQ), seed=seed), cues) for seed in range(n_recordings)]
        started = time.perf_counter()
        compute_epochs(spec, *recordings[0])
        one = time.perf_counter() - started
        started = time.perf_counter()
        compute_epochs_many(spec, recordings)
        many = (time.perf_counter() - started) / n_recordings
        results[f"offline_{n_channels}_channels_400_s"] = {"compute_epochs_s_per_recording": round(one, 3),
                                                          "compute_epochs_many_s_per_recording": round(many, 3),
                                                          "epochs_per_recording": int(len(cues))}
    return results
