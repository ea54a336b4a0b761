"""``invoke report``: one self-contained HTML file for the clinician (or a model's evaluation).

From device session logs (``--logs``): the latest estimate on the scalp with its uncertainty and the
nearest cap electrodes, per-trial estimates and trial quality, the session's ERD topography, the
contact check, a history across sessions ordered by time (estimate, uncertainty, cap position used),
and for every session its bundle id and provenance (the bundle's data hash and code version) with a
hash of the logs the report was made from. From an evaluation (``--evaluation``: ``invoke reproduce``'s
``results.json`` or one protocol's JSON): predicted vs true hotspot per subject, beside the population
mean, with the protocol and frame. Figures are PNG images inside the file; nothing is loaded from elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edge import plainwords
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from train import workspace
from train.head import standard_positions_head_mm
from train.report import figures
from train.report.figures import point
from train.report.sessions import Session, provenance_hash, read_sessions

PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 1rem auto; padding: 0 1rem; color: #1b1f23; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.8rem; color: #555; }
.muted { color: #5f6368; font-size: 0.85rem; } code { font-size: 0.85rem; }
</style></head>
<body>
<h1>$title</h1>
<p class="muted">$subtitle</p>
$body
</body></html>
""")


def _e(value: object) -> str:
    return html.escape(str(value))


def figure_html(figure, caption: str) -> str:
    """A matplotlib figure as an inline PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], css: str = "") -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _mm(values) -> str:
    return "-" if values is None else "(" + ", ".join(f"{float(v):+.1f}" for v in values) + ") mm"


def placement(session: Session) -> str:
    """The placement instruction as the patient's page words it."""
    result = session.result or {}
    if result.get("placement"):
        return plainwords.placement_text(result["placement"])
    if result.get("nearest_electrode"):
        return f"At {result['nearest_electrode']} (nearest cap position; this model gives no scalp offset)"
    return "-"


def session_summary(session: Session) -> str:
    """Key facts of one session: result, placement, uncertainty, quality, contact, bundle and provenance."""
    result = session.result or {}
    quality = result.get("quality") or {}
    provenance = session.start.get("provenance") or {}
    rows = [("started", session.label), ("result", session.kind), ("placement", placement(session)),
            ("estimate", f"{_mm(session.position_mm)}, {session.frame} frame"),
            ("uncertainty", plainwords.uncertainty_text(result) if result and session.kind != "redo" else "-"),
            ("consistency (trial agreement, not accuracy)", plainwords.consistency_text(result) or "-"),
            ("good trials", f"{quality.get('n_good', sum(bool(t.get('good')) for t in session.trials))} of "
                            f"{quality.get('n_trials', len(session.trials))} (needed {quality.get('needed', '-')})"),
            ("hand / hemisphere", f"{session.start.get('hemisphere', '-')} hemisphere"),
            ("electrodes worn", " ".join(session.start.get("channels", []))),
            ("bundle id", session.start.get("bundle_id", "-")),
            ("bundle provenance", f"data hash {provenance.get('data_hash') or '-'}, "
                                  f"code {provenance.get('code_version') or '-'}"),
            ("log", f"{session.path.name}" + (f" ({session.corrupt} damaged lines skipped)" if session.corrupt else ""))]
    if session.kind in ("redo", "prior"):
        rows.insert(2, ("why", " ".join(plainwords.redo_reasons(result)) if session.kind == "redo"
                    else "; ".join(result.get("reasons") or [])))
    text = _table(["", ""], rows, "summary")
    contact = session.start.get("contact") or []
    if contact:
        text += "<h3>Electrode contact before the session (lead-off impedance, OpenBCI GUI thresholds)</h3>"
        text += _table(["electrode", "impedance (kOhm)", "state"],
                       [(c["electrode"], c["impedance_kohm"] if c["impedance_kohm"] is not None else "-", c["state"])
                        for c in contact])
    return text


def session_section(session: Session, electrodes: Mapping[str, np.ndarray], heading: str = "Session") -> str:
    """One session: summary, scalp map, trials, ERD topography."""
    parts = [f"<h2>{_e(heading)} {_e(session.label)}</h2>", session_summary(session),
             figure_html(figures.scalp_map(session, electrodes),
                         "Estimated hotspot on the template cap (top view, nose up) with the 90 % credible region "
                         "where the model reports one, the nearest cap electrodes and their distances, and the "
                         "single movements' estimates (grey)."),
             figure_html(figures.trials_figure(session, electrodes),
                         "Per-trial estimates and trial quality (rejected trials with the faults that spoiled them).")]
    erd = figures.erd_figure(session, electrodes)
    if erd is not None:
        parts.append(figure_html(erd, "ERD topography of the session (worn electrodes only)."))
    else:
        parts.append('<p class="muted">No ERD topography: this log has no per-trial ERD (older runtime) or fewer '
                     "than three electrodes with it.</p>")
    return "\n".join(parts)


def history_section(sessions: Sequence[Session]) -> str:
    """Every session in time order: estimate, uncertainty and the cap position used."""
    rows = []
    for session in sessions:
        result = session.result or {}
        radius = result.get("radius90_mm")
        rows.append((session.label, session.kind, placement(session), _mm(session.position_mm), session.frame,
                     "-" if radius is None else f"{float(radius):.0f} mm",
                     f"{sum(bool(t.get('good')) for t in session.trials)}/{len(session.trials)}",
                     session.start.get("bundle_id", "-")))
    parts = ["<h2>History</h2>",
             _table(["started", "result", "cap position used", "estimate", "frame", "90 % radius", "good trials",
                     "bundle"], rows, "history")]
    if any(session.position_mm is not None for session in sessions):
        parts.append(figure_html(figures.history_figure(sessions), "Estimate per session over time."))
    return "\n".join(parts)


def session_report(sessions: Sequence[Session]) -> str:
    """The clinician report of one patient's sessions (oldest first)."""
    electrodes = standard_positions_head_mm()
    ids = sorted({str(s.start.get("device_id", "?")) for s in sessions})
    latest = sessions[-1]
    body = [f"<p>Patient/device pseudonym: <b>{_e(', '.join(ids))}</b>. {len(sessions)} session(s), "
            f"{_e(sessions[0].label)} to {_e(latest.label)}. Positions are in millimetres in the frame each result "
            "states (head: the MNE head frame of the template; cap: the template cap frame). The uncertainty shown "
            "is the model's own 90 % credible radius where it reports one; trial agreement (consistency) is not "
            "accuracy.</p>",
            f"<p class=\"muted\">Made from {len(sessions)} log(s) with SHA-256 <code>{provenance_hash(sessions)}</code>.</p>",
            session_section(latest, electrodes, "Latest session"), history_section(sessions)]
    body += [session_section(session, electrodes) for session in reversed(sessions[:-1])]
    return PAGE.substitute(title="Motor hotspot report", subtitle=_e(_made()), body="\n".join(body))


def _made() -> str:
    from edge.runtime import software_version

    return f"made {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} by hotspot-edge {software_version()}"


def read_protocols(path: str | Path) -> list[dict]:
    """Protocol results with per-subject records from ``invoke reproduce``'s results.json or one protocol JSON.

    Raises
    ------
    HotspotError
        ``BAD_FILE`` / ``BAD_FORMAT`` when it cannot be read or holds no subject records.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise HotspotError(f"cannot read {path}: {err.strerror}", ErrorCode.BAD_FILE) from None
    except (UnicodeDecodeError, ValueError):
        raise HotspotError(f"{path} is not JSON; give invoke reproduce's results.json", ErrorCode.BAD_FORMAT) from None
    candidates = list((data.get("headline") or {}).get("protocols", {}).values()) if isinstance(data, dict) else []
    if isinstance(data, dict) and "records" in data:
        candidates.append(data)
    protocols = [p for p in candidates if isinstance(p, dict) and any(
        point(r.get("truth")) is not None and point((r.get("estimates") or {}).get("model")) is not None
        for r in p.get("records") or [])]
    if not protocols:
        raise HotspotError(f"{path} holds no per-subject predictions with true hotspots", ErrorCode.BAD_FORMAT)
    return protocols


def evaluation_report(protocols: Sequence[Mapping], source: str) -> str:
    """A model's evaluation on a simulated cohort: predicted vs true hotspot per subject, each protocol."""
    body = [f"<p>Evaluation from <code>{_e(source)}</code>. Errors are against the simulator's true hotspot; the "
            "population mean (mean hotspot of the training subjects of each fold) is the baseline every estimate must "
            "beat on unseen subjects. Trial-split rows are identification, not localisation.</p>"]
    for protocol in protocols:
        records = [r for r in protocol["records"] if point(r.get("truth")) is not None
                   and point((r.get("estimates") or {}).get("model")) is not None]
        errors = [float(np.linalg.norm(np.subtract(point(r["estimates"]["model"]), point(r["truth"]))))
                  for r in records]
        prior = [float(np.linalg.norm(np.subtract(point(r["estimates"]["population_mean"]), point(r["truth"]))))
                 for r in records if point(r["estimates"].get("population_mean")) is not None]
        body.append(f"<h2>{_e(protocol.get('protocol', 'protocol'))}</h2>")
        body.append(_table(["sessions", "frame", "model mean error", "population-mean error"],
                           [(len(records), "head (MNE head frame, mm)", f"{np.mean(errors):.2f} mm",
                             f"{np.mean(prior):.2f} mm" if prior else "-")]))
        body.append(figure_html(figures.evaluation_figure(protocol),
                                "Predicted vs true hotspot per session (dashed: identity) and per-session errors."))
        body.append(_table(["subject", "session", "group", "true", "predicted", "error"],
                           [(r["subject"], r.get("session", "-"), r.get("group", "-"), _mm(point(r["truth"])),
                             _mm(point(r["estimates"]["model"])), f"{e:.1f} mm") for r, e in zip(records, errors)]))
    return PAGE.substitute(title="Model evaluation report", subtitle=_e(_made()), body="\n".join(body))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke report``."""
    parser = ArgumentParser(prog="invoke report", description=__doc__.splitlines()[0])
    parser.add_argument("--logs", action="append", default=[], help="a session log or a folder of them (repeatable)")
    parser.add_argument("--evaluation", help="invoke reproduce's results.json (or one protocol's JSON)")
    parser.add_argument("--out", default=str(workspace.REPORTS / "report.html"),
                        help=f"the HTML file to write ({workspace.REPORTS / 'report.html'})")
    args = parser.parse_args(argv)
    if bool(args.logs) == bool(args.evaluation):
        raise HotspotError("give --logs (session logs) or --evaluation (a results.json), one of the two",
                           ErrorCode.BAD_ARGUMENT)
    if args.logs:
        document = session_report(read_sessions(args.logs))
    else:
        document = evaluation_report(read_protocols(args.evaluation), args.evaluation)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
