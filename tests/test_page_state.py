"""What the session page shows: steps, cues, signal and contact advice, results (new and old fields) in plain words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge import headmap
from edge.estimate import confidence_text
from edge.pagestate import PageState, result_view
from edge.plainwords import placement_text, redo_reasons
from edge.protocol import CueKind, Message, MessageType, SessionState
from train.head import standard_positions_head_mm

WORN = ["FC3", "C5", "C3", "C1", "CP3"]
ELECTRODES = standard_positions_head_mm()


def state(required: bool = True) -> PageState:
    return PageState(WORN, ELECTRODES, "right", contact_available=True, contact_required=required, clock_scale=4.0)


def status(state_: SessionState, n_good: int = 0) -> Message:
    return Message(MessageType.STATUS, {"state": int(state_), "trial": 0, "n_trials": 12, "n_good": n_good,
                                        "samples": 10, "lost": 0, "signal_ok": 1})


def test_steps_follow_contact_session_and_result() -> None:
    page = state()
    page.on_message(Message(MessageType.HELLO, {"device_id": "pt-0042", "bundle_id": "b", "software": "s",
                                                "channels": WORN, "hemisphere": "left"}))
    page.on_message(status(SessionState.IDLE))
    snapshot = page.snapshot()
    assert snapshot["step"] == "contact" and snapshot["start_blocker"] == "Check the electrodes first."
    assert "pt-0042" not in json.dumps(snapshot)  # the device id never reaches the page
    results = [{"electrode": "C3", "board_input": 3, "impedance_kohm": 1400.0, "state": "fair"},
               {"electrode": "CP3", "board_input": 5, "impedance_kohm": 9000.0, "state": "poor"}]
    page.set_contact(False, None, results, False)
    contact = page.snapshot()["contact"]
    assert contact["electrodes"][0]["advice"].startswith("Add gel under C3")
    assert "CP3 is not touching the skin" in contact["electrodes"][1]["advice"]
    assert "need attention" in page.start_blocker
    page.set_contact(False, None, [dict(r, state="good") for r in results], True)
    assert page.start_blocker == "" and page.current_step() == "signal"
    page.session_reset()
    page.on_message(Message(MessageType.CUE, {"kind": int(CueKind.MOVE), "trial": 0, "n_trials": 12,
                                              "duration_ms": 4000}))
    cue = page.snapshot()["cue"]
    assert cue["text"] == "MOVE your right hand: open and close it." and cue["trial"] == 1
    assert cue["duration_s"] == 1.0 and 0.9 <= cue["remaining_s"] <= 1.0  # wall seconds at 4x
    page.on_message(Message(MessageType.TRIAL_RESULT, {"trial": 0, "good": 1, "position_mm": (0, 0, 0),
                                                       "reasons": []}))
    assert page.snapshot()["session"]["done"] == 1 and page.current_step() == "session"
    page.set_signal({"C5": "bad", "C3": "warning"}, {"C5": ("flat",), "C3": ("near_railed",)})
    signal = page.snapshot()["signal"]
    assert signal["C5"] == {"state": "bad", "advice": "C5: no signal. Check that its cable is plugged in."}
    assert signal["FC3"]["state"] == "none" and not page.snapshot()["signal_ok"]
    page.on_message(status(SessionState.RUNNING, n_good=1))
    page.set_result({"kind": "redo", "reasons": ["stopped on the session page"], "quality": {}})
    assert page.current_step() == "result" and page.snapshot()["cue"] is None
    page.on_message(status(SessionState.DONE))
    assert page.snapshot()["session"]["good"] == 1  # the finished session's count stays
    page.on_message(status(SessionState.NO_SIGNAL))
    assert "not sending" in page.start_blocker


def test_result_with_issue_11_fields_is_drawn_as_electrode_plus_scalp_offset() -> None:
    record = {"kind": "hotspot", "position_mm": [-40.0, 8.0, 70.0], "frame": "cap", "radius90_mm": 14.0,
              "confidence_text": "Likely within 14 mm of the mark.", "consistency": 0.8,
              "placement": {"electrode": "C3", "anterior_mm": 12.0, "lateral_mm": -4.0, "distance_mm": 12.6},
              "localised": True, "reasons": [], "quality": {"n_trials": 20, "n_good": 18, "needed": 10}}
    view = result_view(record, ELECTRODES, side=-1)
    assert view["placement"]["text"] == "Centre the electrode 12 mm forward and 4 mm toward the middle from C3."
    assert view["uncertainty"] == "Likely within 14 mm of the mark."
    without_text = result_view(dict(record, confidence_text=None), ELECTRODES, side=-1)
    assert without_text["uncertainty"] == confidence_text(14.0, True)  # the device's own wording of the radius
    assert "not how accurate the estimate is" in view["consistency"]
    marks = view["marks"]
    expected = headmap.project(headmap.placement_point(ELECTRODES["C3"], 12.0, -4.0, -1)) / headmap.HEAD_RADIUS_MM
    np.testing.assert_allclose(marks["target"], expected, atol=1e-4)
    assert marks["target"][1] > marks["electrode"][1]  # in front of C3 on the drawing
    assert marks["radius"] == pytest.approx(headmap.mm_to_drawing(14.0), abs=1e-4)
    prior = result_view(dict(record, kind="prior", reasons=["lesioned-side mu ERD too weak"]), ELECTRODES, -1)
    assert "could not pinpoint" in prior["headline"] and prior["reasons"] == ["Lesioned-side mu ERD too weak"]


def test_result_with_the_old_fields_degrades_gracefully() -> None:
    record = {"kind": "hotspot", "position_head_mm": [-45.0, 20.0, 100.0], "frame": "head",
              "nearest_electrode": "FCC3h", "offset_mm": [1.0, 2.0, -20.0], "confidence": 1.0, "spread_mm": 0.9,
              "reasons": [], "quality": {"n_trials": 16, "n_good": 16, "needed": 8, "faults": []}}
    view = result_view(record, ELECTRODES, side=-1)
    assert view["placement"]["text"].startswith("Put the electrode at FCC3h")
    assert "does not yet say how accurate" in view["uncertainty"]
    assert view["consistency"].startswith("100% of the movements pointed to the same place")
    assert set(view["marks"]) == {"electrode", "electrode_name", "target"}  # no radius without a model radius


def test_consistency_never_reads_as_accuracy_or_as_a_steady_recording_when_trials_disagree() -> None:
    from edge.plainwords import consistency_text

    for value in (0.46, 1.0):
        text = consistency_text({"consistency": value})
        assert text.startswith(f"{value:.0%} of the movements") and "not how accurate the estimate is" in text
        assert "was steady;" not in text and "confidence" not in text.lower()


def test_redo_reasons_in_plain_words() -> None:
    record = {"kind": "redo", "reasons": ["only 3 of 16 trials passed the signal check; 8 needed",
                                          "C5 flat in 9 trial(s)", "all lost in 4 trial(s)"],
              "quality": {"n_trials": 16, "n_good": 3, "needed": 8,
                          "faults": [{"channel": "C5", "fault": "flat", "trials": 9},
                                     {"channel": "all", "fault": "lost", "trials": 4}]}}
    assert redo_reasons(record) == [
        "Only 3 of 16 movements were recorded cleanly; 8 are needed.",
        "C5: no signal. Check that its cable is plugged in. (9 movements)",
        "The headset's radio is losing data. Keep the USB dongle close to the headset. (4 movements)"]
    assert redo_reasons({"reasons": ["the good trials disagree: 20% within 10 mm of their median, 50% needed"],
                         "quality": {}})[0].startswith("The movements gave different answers")
    view = result_view(record, ELECTRODES, -1)
    assert view["headline"] == "Please do the session again." and view["marks"] is None


def test_placement_wording_is_the_device_placements() -> None:
    assert placement_text({"electrode": "C3", "anterior_mm": 0.2, "lateral_mm": -0.1}) == "Centre the electrode on C3."
    assert placement_text({"electrode": "C3", "anterior_mm": -7.4, "lateral_mm": 0.0}) == \
        "Centre the electrode 7 mm backward from C3."
    assert placement_text({"electrode": "C4", "anterior_mm": 0.0, "lateral_mm": 6.0}) == \
        "Centre the electrode 6 mm outward from C4."
