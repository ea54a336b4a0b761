"""``invoke report``: the clinician report from device session logs, and a model's evaluation report."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from browser import Traffic, browser  # noqa: F401  (fixture)
from edge.sessionlog import SessionLog
from fixtures_chain import DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)
from hardware.demo import run_device_session
from train.report.document import main as report_main
from train.report.sessions import provenance_hash, read_sessions

REPO = Path(__file__).resolve().parents[1]
PNG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def figures_in(document: str) -> list[np.ndarray]:
    """Every inline figure, decoded; each must be a real, non-blank image."""
    images = []
    for data in PNG.findall(document):
        raw = base64.b64decode(data)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert image.shape[0] > 150 and image.shape[1] > 150
        assert float(image[..., :3].std()) > 0.02  # not a blank canvas
        images.append(image)
    return images


def history_rows(document: str) -> list[str]:
    table = document.split('<table class="history">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>([^<]+)</td>", table)


def write_log(folder: Path, name: str, position: list[float] | None, kind: str = "hotspot") -> Path:
    """A session log as the runtime writes it (start, trials, result), for ordering tests."""
    log = SessionLog(folder / name)
    log.append("start", device_id="pt-0042", bundle_id="abc123def456", channels=["FC3", "C5", "C3", "C1", "CP3"],
               hemisphere="left", schedule={"trials": 3}, provenance={"data_hash": "d" * 64, "code_version": "v1"},
               erd_bands=[[8.0, 13.0], [13.0, 30.0]])
    for trial in range(3):
        good = position is not None
        log.append("trial", trial=trial, cue_sample=500 + trial * 2000, good=good,
                   position_mm=[p + trial for p in position] if good else [None] * 3,
                   faults=[] if good else [["C5", "flat"]],
                   **({"erd_pct": {n: [-30.0 + 5 * i, -10.0 - i] for i, n in
                                   enumerate(["FC3", "C5", "C3", "C1", "CP3"])}} if good else {}))
    result = {"kind": kind, "reasons": [] if kind == "hotspot" else ["only 0 of 3 trials passed the signal check; 2 "
                                                                      "needed"],
              "quality": {"n_trials": 3, "n_good": 3 if position else 0, "needed": 2,
                          "faults": [] if position else [{"channel": "C5", "fault": "flat", "trials": 3}]}}
    if position is not None:
        result.update(position_mm=position, frame="cap", radius90_mm=11.0, consistency=0.9,
                      confidence_text="Likely within 11 mm.",
                      placement={"electrode": "C3", "anterior_mm": 8.0, "lateral_mm": 2.0, "distance_mm": 8.2})
    log.append("result", result=result)
    log.close()
    return folder / name


def test_history_is_ordered_by_time_whatever_the_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    names = ["z-first.log", "m-second.log", "a-third.log"]  # written in this order: oldest first
    for index, name in enumerate(names):
        write_log(folder, name, None if index == 1 else [-40.0 + index, 10.0, 75.0],
                  kind="redo" if index == 1 else "hotspot")
        time.sleep(0.02)
    sessions = read_sessions([folder])
    assert [s.path.name for s in sessions] == names
    assert [s.started for s in sessions] == sorted(s.started for s in sessions)
    out = tmp_path / "report.html"
    assert report_main(["--logs", str(folder), "--out", str(out)]) == 0
    document = out.read_text()
    rows = history_rows(document)
    assert rows == sorted(rows) and len(rows) == 3
    table = document.split('<table class="history">', 1)[1].split("</table>", 1)[0]
    kinds = [re.findall(r"<td>([^<]*)</td>", row)[1] for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    assert kinds == ["hotspot", "redo", "hotspot"]
    assert provenance_hash(sessions) in document and "abc123def456" in document and "d" * 64 in document
    assert "Centre the electrode 8 mm forward and 2 mm outward from C3" in document and "Likely within 11 mm." in document
    assert "C5: no signal" in document  # the redo's reason in the patient's words
    assert len(figures_in(document)) >= 1 + 2 * 3 + 2  # history + scalp/trials per session + ERD maps


def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    not_a_log = tmp_path / "notes.log"
    not_a_log.write_text("shopping list\n")
    for args, words in ((["--logs", str(tmp_path / "nowhere")], "not found"),
                        (["--logs", str(not_a_log)], "not a device session log"),
                        ([], "give --logs"),
                        (["--evaluation", str(not_a_log)], "not JSON")):
        result = subprocess.run([sys.executable, "-m", "train.report", *args, "--out", str(tmp_path / "r.html")],
                                capture_output=True, text=True, cwd=REPO, timeout=120)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


@pytest.mark.hil
@pytest.mark.slow
def test_report_from_a_demo_session_and_from_several_device_sessions(chain, chain_settings, browser,
                                                                     tmp_path: Path) -> None:
    # The demo's own device session (emulator → BrainFlow → runtime), then two more sessions of the runtime.
    run_device_session(chain, chain_settings, show=lambda line: None)
    demo_logs = chain.workdir / "device" / "state" / "sessions"
    single = tmp_path / "demo.html"
    result = subprocess.run([sys.executable, "-m", "invoke", "report", "--logs", str(demo_logs), "--out", str(single)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    document = single.read_text()
    images = figures_in(document)
    assert len(images) >= 4  # history, scalp map, trials, ERD topography
    assert "ERD topography" in document and "Per-trial estimates" in document
    folders = [demo_logs]
    for index in range(2):
        rig = DeviceRig(chain, tmp_path / f"rig{index}", dict(chain_settings["session"], min_good_trials=4), trials=6)
        try:
            rig.result(rig.session_seconds() + 60)
        finally:
            assert rig.close() == 0
        folders.append(rig.state_dir / "sessions")
    multi = tmp_path / "history.html"
    assert report_main(sum((["--logs", str(folder)] for folder in reversed(folders)), []) + ["--out", str(multi)]) == 0
    document = multi.read_text()
    rows = history_rows(document)
    assert len(rows) == 3 and rows == sorted(rows)
    assert len(figures_in(document)) >= 1 + 3 * 3
    sessions = read_sessions(folders)
    assert sessions[0].path.parent == demo_logs  # the demo ran first
    assert sessions[0].start["bundle_id"] in document and provenance_hash(sessions) in document
    # Self-contained: opened in a browser it loads nothing but itself (figures are inline).
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    traffic = Traffic(page)
    page.goto(multi.as_uri())
    assert [url for url in traffic.requests if not url.startswith(("file://", "data:"))] == []
    folder = Path(os.environ.get("HOTSPOT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "report.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1100, "height": 2400})
    assert (folder / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_evaluation_report_from_a_simulated_cohort(chain, tmp_path: Path) -> None:
    from train.configs import load_training_config
    from train.evaluation import evaluate_grouped
    from train.windows import dataset_windows, make_spec

    config = load_training_config().replace(fit={"epochs": 1}, estimate={"calibration_folds": 2})
    spec = make_spec("psd", ["FC3", "C5", "C3", "C1", "CP3"], 250.0, config.pipeline)
    result = evaluate_grouped(spec, dataset_windows(chain.dataset, spec, "move", True), config, k=2, seed=0)
    source = tmp_path / "protocol.json"
    source.write_text(json.dumps(result.to_dict()))
    out = tmp_path / "evaluation.html"
    assert report_main(["--evaluation", str(source), "--out", str(out)]) == 0
    document = out.read_text()
    assert "subject-grouped 2-fold" in document and "head frame" in document
    assert len(figures_in(document)) == 1
    assert all(record["subject"] in document for record in result.records)
