"""The report's figures (matplotlib, with MNE's sensor and topomap plotting), each returned as a Figure.

Everything drawn on a head uses MNE's default head sphere (origin 0, radius 95 mm) and the projection
the session page uses (``edge.headmap``, equal to MNE's), with the fsaverage template's 10-05
electrode positions (``train.head``). Frames and units are written on every figure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import mne  # noqa: E402
import numpy as np  # noqa: E402

from edge import headmap  # noqa: E402
from train.report.sessions import Session  # noqa: E402

SPHERE = (0.0, 0.0, 0.0, headmap.HEAD_RADIUS_MM / 1000.0)
TEN_TEN = re.compile(r"^(Fp|AF|F|FC|FT|C|T|CP|TP|P|PO|O)(\d+|z)$")
SHOWN_WITHIN_MM = 60.0
ZOOM_M = 0.045
"""Half-width of the scalp map's view around the estimate (drawing metres)."""


def _info(names: Sequence[str], positions_mm: Mapping[str, np.ndarray]) -> mne.Info:
    info = mne.create_info(list(names), 250.0, "eeg")
    montage = mne.channels.make_dig_montage({name: np.asarray(positions_mm[name]) / 1000.0 for name in names},
                                            coord_frame="head")
    info.set_montage(montage)
    return info


def _drawn(points_mm: np.ndarray) -> np.ndarray:
    """Head-frame points (mm) in MNE's topomap plotting coordinates (m)."""
    return headmap.project(np.asarray(points_mm, dtype=float)) / 1000.0


def side(session: Session) -> int:
    """-1 for a left-hemisphere hotspot, +1 for a right one."""
    return -1 if session.start.get("hemisphere", "left") == "left" else 1


def scalp_target(session: Session, electrodes: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, str | None]:
    """Where the electrode goes on the scalp (head frame, mm) and the cap electrode it is given from.

    The placement instruction (issue 11) when there is one; otherwise the estimate moved along its
    radius onto the scalp sphere of the nearest electrode.
    """
    result = session.result or {}
    placement = result.get("placement") or {}
    name = placement.get("electrode") or result.get("nearest_electrode")
    if placement and name in electrodes:
        point = headmap.placement_point(electrodes[name], float(placement.get("anterior_mm", 0.0)),
                                        float(placement.get("lateral_mm", 0.0)), side(session))
        return point, name
    position = session.position_mm
    if position is None:
        return None, name
    reference = electrodes.get(name) if name in electrodes else min(
        electrodes.values(), key=lambda p: np.linalg.norm(p - position))
    return position / np.linalg.norm(position) * np.linalg.norm(reference), name


def nearest_electrodes(point_mm: np.ndarray, electrodes: Mapping[str, np.ndarray], count: int = 3
                       ) -> list[tuple[str, float]]:
    """The ``count`` cap electrodes nearest to a scalp point, with their distances (mm)."""
    distances = sorted((float(np.linalg.norm(np.asarray(p) - point_mm)), name) for name, p in electrodes.items())
    return [(name, distance) for distance, name in distances[:count]]


def scalp_map(session: Session, electrodes: Mapping[str, np.ndarray]) -> plt.Figure:
    """The estimated hotspot on the cap: target point, uncertainty region, nearest cap electrodes."""
    result = session.result or {}
    target, named = scalp_target(session, electrodes)
    figure, axis = plt.subplots(figsize=(6.2, 6.2))
    centre = target if target is not None else np.array([45.0 * side(session), 0.0, 80.0])
    shown = [name for name, p in electrodes.items() if TEN_TEN.match(name)
             and np.linalg.norm(np.asarray(p) - centre) < SHOWN_WITHIN_MM]
    nearest = nearest_electrodes(target, electrodes) if target is not None else []
    shown = sorted(set(shown) | {name for name, _ in nearest} | ({named} if named in electrodes else set()))
    mne.viz.plot_sensors(_info(shown, electrodes), kind="topomap", show_names=True, sphere=SPHERE, axes=axis,
                         show=False, pointsize=18, linewidth=0)
    good = session.good_positions
    if len(good):
        scalp = good / np.linalg.norm(good, axis=1, keepdims=True) * (np.linalg.norm(target) if target is not None
                                                                        else 90.0)
        drawn = _drawn(scalp)
        axis.scatter(drawn[:, 0], drawn[:, 1], s=10, color="0.55", zorder=3, label="single movements")
    notes = []
    if target is not None:
        drawn_target = _drawn(target)
        radius = result.get("radius90_mm")
        if radius is not None:
            ring = _drawn(headmap.scalp_circle(target, float(radius)))
            axis.fill(ring[:, 0], ring[:, 1], color="tab:blue", alpha=0.18, zorder=2,
                      label=f"90 % credible region ({float(radius):.0f} mm)")
        else:
            notes.append("no calibrated uncertainty from this model")
        if named in electrodes and result.get("placement"):
            start = _drawn(electrodes[named])
            axis.annotate("", drawn_target, start, arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1.5},
                          zorder=4)
        axis.plot(*drawn_target, marker="*", markersize=16, color="tab:blue", zorder=5,
                  label="estimate (on the scalp)" if session.kind != "prior" else "population prior")
        for rank, (name, distance) in enumerate(nearest):
            point = _drawn(electrodes[name])
            axis.plot(*point, marker="o", markersize=13, markerfacecolor="none", markeredgecolor="tab:orange",
                      markeredgewidth=1.6, zorder=4, label="nearest cap electrodes" if rank == 0 else None)
            axis.annotate(f"{distance:.0f} mm", point, xytext=(6, -10), textcoords="offset points", fontsize=7,
                          color="tab:orange")
    else:
        notes.append("no estimate: the session asked for a redo" if session.kind == "redo" else "no result")
    view = _drawn(centre)
    for artist in [*axis.lines, *axis.patches, *axis.collections]:
        artist.set_clip_on(True)  # MNE draws the head outline unclipped; this view is a close-up
    axis.set_aspect("equal", adjustable="box")
    axis.set_xlim(view[0] - ZOOM_M, view[0] + ZOOM_M)
    axis.set_ylim(view[1] - ZOOM_M, view[1] + ZOOM_M)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower left", fontsize=7, framealpha=0.9)
    title = f"{session.label}: {session.kind}"
    if result.get("placement"):
        title += f"\nplacement from {result['placement'].get('electrode')}"
    axis.set_title(title + (f"\n({'; '.join(notes)})" if notes else ""), fontsize=9)
    axis.text(0.99, 0.01, f"top view, nose up; {session.frame} frame; template 10-05 cap", transform=axis.transAxes,
              fontsize=7, ha="right", color="0.4")
    return figure


def trials_figure(session: Session, electrodes: Mapping[str, np.ndarray]) -> plt.Figure:
    """Per-trial estimates on the head and each trial's quality and agreement with the session estimate."""
    figure, (head, quality) = plt.subplots(1, 2, figsize=(11.5, 4.6), gridspec_kw={"width_ratios": [1, 1.4]})
    worn = [name for name in session.start.get("channels", []) if name in electrodes]
    if worn:
        mne.viz.plot_sensors(_info(worn, electrodes), kind="topomap", show_names=True, sphere=SPHERE, axes=head,
                             show=False, pointsize=14, linewidth=0)
    good = [t for t in session.trials if t.get("good") and t.get("position_mm") and None not in t["position_mm"]]
    estimate = session.position_mm
    if good:
        points = np.array([t["position_mm"] for t in good], dtype=float)
        radius = np.linalg.norm(electrodes[worn[0]]) if worn else 90.0
        drawn = _drawn(points / np.linalg.norm(points, axis=1, keepdims=True) * radius)
        dots = head.scatter(drawn[:, 0], drawn[:, 1], c=[t["trial"] + 1 for t in good], cmap="viridis", s=22,
                            zorder=4)
        figure.colorbar(dots, ax=head, shrink=0.7, label="movement number")
    if estimate is not None and good:
        marker = _drawn(estimate / np.linalg.norm(estimate) * radius)
        head.plot(*marker, marker="*", markersize=14, color="tab:red", zorder=5, label="session estimate")
        head.legend(loc="lower left", fontsize=7)
    head.set_title("Estimate of each good movement (top view)", fontsize=9)
    numbers = [t["trial"] + 1 for t in session.trials]
    if estimate is not None and good:
        distances = [float(np.linalg.norm(np.asarray(t["position_mm"], dtype=float) - estimate)) for t in good]
        quality.plot([t["trial"] + 1 for t in good], distances, "o", color="tab:green", label="good: distance to estimate")
    bad = [t for t in session.trials if not t.get("good")]
    for trial in bad:
        quality.plot(trial["trial"] + 1, 0.0, "x", color="tab:red", markersize=8)
        faults = ", ".join(f"{c} {f}" for c, f in (tuple(x) for x in trial.get("faults") or []))[:40]
        quality.annotate(faults, (trial["trial"] + 1, 0.0), xytext=(0, 8), textcoords="offset points", rotation=90,
                         fontsize=6, color="tab:red", ha="center", va="bottom")
    if bad:
        quality.plot([], [], "x", color="tab:red", label="rejected by the signal check")
    if numbers:
        quality.set_xlim(0.5, max(numbers) + 0.5)
    quality.set_xlabel("movement (trial)")
    quality.set_ylabel("distance of the trial's estimate from the session estimate (mm)")
    n_good = sum(bool(t.get("good")) for t in session.trials)
    quality.set_title(f"Trial quality: {n_good} of {len(session.trials)} good", fontsize=9)
    if quality.get_legend_handles_labels()[0]:
        quality.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return figure


def erd_figure(session: Session, electrodes: Mapping[str, np.ndarray]) -> plt.Figure | None:
    """The session's ERD topography: mean movement-period ERD/ERS per band over the good trials."""
    mean = session.mean_erd()
    if mean is None:
        return None
    names, values = mean
    names = [name for name in names if name in electrodes]
    if len(names) < 3:
        return None
    index = [mean[0].index(name) for name in names]
    values = values[:, index]
    bands = session.start.get("erd_bands") or [[8, 13], [13, 30]][: values.shape[0]]
    figure, axes = plt.subplots(1, values.shape[0], figsize=(4.2 * values.shape[0], 4.2))
    axes = np.atleast_1d(axes)
    limit = float(np.nanmax(np.abs(values))) or 1.0
    info = _info(names, electrodes)
    image = None
    for axis, row, band in zip(axes, values, bands):
        image, _ = mne.viz.plot_topomap(row, info, axes=axis, show=False, sphere=SPHERE, extrapolate="local",
                                        contours=0, cmap="RdBu_r", vlim=(-limit, limit), names=names,
                                        sensors=True)
        axis.set_title(f"{band[0]:g}-{band[1]:g} Hz", fontsize=9)
    figure.colorbar(image, ax=list(axes), shrink=0.7,
                    label="ERD/ERS, % of baseline power (negative = desynchronisation)")
    figure.suptitle(f"Movement-period ERD, mean of {sum(bool(t.get('erd_pct')) for t in session.trials if t.get('good'))}"
                    " good trials (0-4 s after the cue vs the pre-cue baseline; re-referenced to the worn electrodes)",
                    fontsize=8)
    return figure


def history_figure(sessions: Sequence[Session]) -> plt.Figure:
    """Each session's estimate over time (per axis) with its 90 % radius, in time order."""
    figure, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    markers = {"hotspot": "o", "prior": "s"}
    for session in sessions:
        position = session.position_mm
        if position is None:
            for axis in axes:
                axis.axvline(session.started, color="tab:red", alpha=0.3, linewidth=1)
            continue
        radius = (session.result or {}).get("radius90_mm")
        for axis, value in zip(axes, position):
            axis.errorbar(session.started, value, yerr=None if radius is None else float(radius),
                          fmt=markers.get(session.kind, "o"), color="tab:blue", capsize=3)
        placement = (session.result or {}).get("placement") or {}
        electrode = placement.get("electrode") or (session.result or {}).get("nearest_electrode")
        if electrode:
            axes[0].annotate(electrode, (session.started, position[0]), xytext=(4, 4), textcoords="offset points",
                             fontsize=7)
    times = [session.started for session in sessions]
    pad = max((max(times) - min(times)) * 0.08, dt.timedelta(hours=1))
    axes[0].set_xlim(min(times) - pad, max(times) + pad)
    frames = sorted({session.frame for session in sessions if session.position_mm is not None}) or ["head"]
    positions = np.array([s.position_mm for s in sessions if s.position_mm is not None]).reshape(-1, 3)
    radii = [float((s.result or {}).get("radius90_mm") or 0.0) for s in sessions if s.position_mm is not None]
    for column, (axis, label) in enumerate(zip(axes, ("x (right) mm", "y (nose) mm", "z (up) mm"))):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if len(positions):  # at least +-10 mm, so that sub-millimetre wobble does not look like a change
            centre = (positions[:, column].max() + positions[:, column].min()) / 2
            half = max(10.0, (positions[:, column].max() - positions[:, column].min()) / 2 + max(radii) + 3.0)
            axis.set_ylim(centre - half, centre + half)
    axes[0].set_title(f"Estimate per session, {'/'.join(frames)} frame (error bars: 90 % credible radius where "
                      "reported; red lines: sessions without an estimate)", fontsize=9)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def point(value, frame: str = "head"):
    """A record's point in ``frame``: records hold {"head", "cap"} per point (older ones a bare head-frame point)."""
    return value.get(frame) if isinstance(value, Mapping) else value


def evaluation_figure(protocol: Mapping) -> plt.Figure:
    """Predicted vs true hotspot per subject (each axis) and each subject's error beside the population mean."""
    records = [r for r in protocol["records"] if point(r.get("truth")) is not None
               and point(r["estimates"].get("model")) is not None]
    truth = np.array([point(r["truth"]) for r in records], dtype=float)
    model = np.array([point(r["estimates"]["model"]) for r in records], dtype=float)
    prior = [point(r["estimates"].get("population_mean")) for r in records]
    figure, axes = plt.subplots(1, 4, figsize=(15, 4), gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    for axis, column, label in zip(axes, range(3), ("x", "y", "z")):
        axis.plot(truth[:, column], model[:, column], "o", color="tab:blue", label="model")
        if all(p is not None for p in prior):
            axis.plot(truth[:, column], np.array(prior, dtype=float)[:, column], "s", color="0.6", markersize=4,
                      label="population mean")
        low, high = float(truth[:, column].min()) - 5, float(truth[:, column].max()) + 5
        axis.plot([low, high], [low, high], "--", color="0.3", linewidth=1)
        axis.set_xlabel(f"true {label} (mm)")
        axis.set_ylabel(f"predicted {label} (mm)")
        axis.set_aspect("equal", adjustable="datalim")
    axes[0].legend(fontsize=7)
    errors = np.linalg.norm(model - truth, axis=1)
    order = np.argsort(errors)
    axes[3].bar(np.arange(len(records)) - 0.2, errors[order], width=0.4, label="model", color="tab:blue")
    if all(p is not None for p in prior):
        prior_errors = np.linalg.norm(np.array(prior, dtype=float) - truth, axis=1)
        axes[3].bar(np.arange(len(records)) + 0.2, prior_errors[order], width=0.4, label="population mean",
                    color="0.6")
    axes[3].set_xticks(np.arange(len(records)), [records[i]["subject"] for i in order], rotation=90, fontsize=6)
    axes[3].set_ylabel("error vs true hotspot (mm)")
    axes[3].legend(fontsize=7)
    figure.suptitle(f"{protocol.get('protocol', '')}, head frame, {len(records)} sessions",
                    fontsize=9)
    figure.tight_layout()
    return figure
