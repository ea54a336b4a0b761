"""What the session page shows, kept up to date from the runtime's messages (no web code here).

The runtime hands every report message (``edge.protocol``) and its richer events (the live signal
check per electrode, the contact check, the session result) to a :class:`PageState`; the web
server (``edge/webpage.py``) sends :meth:`PageState.snapshot` to every open page. The snapshot holds
nothing that identifies the patient or the device: no device id, no names, no dates of birth.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from edge import headmap, plainwords
from edge.protocol import CueKind, Message, MessageType, SessionState

LANDMARKS = ("Fz", "Cz", "Pz", "C3", "C4", "T7", "T8", "Fpz", "Oz")
"""Electrodes drawn faintly on the head for orientation."""
STEPS = (("contact", "Check the electrodes"), ("signal", "Signal check"), ("session", "Movements"),
         ("result", "Result"))


class PageState:
    """The session page's content.

    Parameters
    ----------
    worn : sequence of str
        The electrodes worn, as the patient's cap names them.
    electrodes : mapping of str to 3 floats
        10-05 positions (head frame, mm) to draw them and the result with (the bundle's).
    hand : {"right", "left"}
        The hand the patient moves (the hotspot is in the other hemisphere).
    contact_available : bool
        The board can measure electrode contact (a Cyton).
    contact_required : bool
        A passed contact check is needed before a session (``[contact] required``).
    clock_scale : float
        Board seconds per wall second (an emulator faster than real time): cue countdowns are in wall seconds.
    """

    def __init__(self, worn: Sequence[str], electrodes: Mapping[str, Sequence[float]], hand: str,
                 contact_available: bool, contact_required: bool, clock_scale: float = 1.0) -> None:
        self.worn, self.hand = list(worn), hand
        self.electrodes = {name: np.asarray(pos, dtype=float) for name, pos in electrodes.items()}
        self.side = -1 if hand == "right" else 1
        self.clock_scale = float(clock_scale)
        self.version = 0
        self.receiving = False
        self.state = SessionState.IDLE
        self.signal: dict[str, dict] = {name: {"state": "none", "advice": ""} for name in self.worn}
        self.signal_checked = False
        self.contact = {"available": contact_available, "required": contact_available and contact_required,
                        "running": False, "measuring": None, "passed": None, "electrodes": []}
        self.session = {"running": False, "trial": 0, "n_trials": 0, "done": 0, "good": 0}
        self.cue: dict | None = None
        self._cue_end = 0.0
        self.result: dict | None = None
        self.notice = ""
        self.layout = {"worn": headmap.layout(self.electrodes, self.worn),
                       "landmarks": headmap.layout(self.electrodes, [n for n in LANDMARKS if n not in self.worn])}

    # --- updates -------------------------------------------------------------------------------
    def _changed(self) -> None:
        self.version += 1

    def on_message(self, message: Message) -> None:
        """Take one report message the runtime sent (HELLO's device id is ignored on purpose)."""
        kind = message.type
        if kind == MessageType.STATUS:
            self.state = SessionState(message["state"])
            self.receiving = self.state != SessionState.NO_SIGNAL
            running = self.state == SessionState.RUNNING
            if running and not self.session["running"]:
                self.result, self.notice = None, ""
            self.session.update(running=running, n_trials=message["n_trials"])
            if running:  # between sessions STATUS counts nothing; keep the last session's numbers
                self.session["good"] = message["n_good"]
            if not self.receiving:
                self.signal = {name: {"state": "none", "advice": ""} for name in self.worn}
        elif kind == MessageType.CUE:
            cue = CueKind(message["kind"])
            duration = message["duration_ms"] / 1000.0 / self.clock_scale
            seq = (self.cue or {}).get("seq", 0) + 1
            self.cue = {"seq": seq, "kind": cue.name.lower(), "text": plainwords.cue_text(cue, self.hand),
                        "trial": min(message["trial"] + 1, message["n_trials"]), "n_trials": message["n_trials"],
                        "duration_s": round(duration, 3)}
            self._cue_end = time.monotonic() + duration
            self.session.update(trial=self.cue["trial"], n_trials=message["n_trials"])
        elif kind == MessageType.TRIAL_RESULT:
            self.session["done"] = max(self.session["done"], message["trial"] + 1)
            self.session["good"] += int(bool(message["good"]))
        elif kind == MessageType.ERROR:
            self.notice = "The device stopped with an error. It restarts by itself; if this repeats, call your clinician."
        else:
            return
        self._changed()

    def set_signal(self, states: Mapping[str, str], flags: Mapping[str, Sequence[str]]) -> None:
        """The live signal check of the worn electrodes: ``"good"``, ``"warning"`` or ``"bad"`` each."""
        self.signal = {name: {"state": states.get(name, "none"),
                              "advice": plainwords.signal_advice(name, flags.get(name, ()))} for name in self.worn}
        self.signal_checked = True
        self._changed()

    def set_contact(self, running: bool, measuring: str | None, results: Sequence[dict], passed: bool | None) -> None:
        """The electrode contact check (``ElectrodeContact.to_dict()`` per measured electrode)."""
        electrodes = [dict(r, advice=plainwords.contact_advice(r["electrode"], r["state"])) for r in results]
        self.contact.update(running=running, measuring=measuring, electrodes=electrodes, passed=passed)
        self._changed()

    def set_result(self, record: Mapping) -> None:
        """The session's result record (``last_result.json``)."""
        self.result = result_view(record, self.electrodes, self.side)
        self.session["running"] = False
        self.cue = None
        self._changed()

    def set_notice(self, text: str) -> None:
        """A one-line message for the patient (e.g. why a start was refused)."""
        self.notice = text
        self._changed()

    def session_reset(self) -> None:
        """A new session starts: progress and the previous result are cleared."""
        self.session.update(running=True, trial=0, done=0, good=0)
        self.result, self.notice, self.cue = None, "", None
        self._changed()

    # --- reading -------------------------------------------------------------------------------
    @property
    def start_blocker(self) -> str:
        """Why a session cannot start now, in plain words ("" when it can)."""
        if self.session["running"]:
            return "A session is running."
        if self.contact["running"]:
            return "The electrode check is running."
        if not self.receiving:
            return plainwords.SIGNAL_ADVICE["no_signal"]
        if self.contact["required"] and not self.contact["passed"]:
            if self.contact["passed"] is None:
                return "Check the electrodes first."
            return "Some electrodes need attention (see above); then check the electrodes again."
        return ""

    def current_step(self) -> str:
        """Which of :data:`STEPS` the patient is on."""
        if self.result is not None and not self.session["running"]:
            return "result"
        if self.session["running"]:
            return "session"
        if self.contact["required"] and not self.contact["passed"]:
            return "contact"
        return "signal"

    def snapshot(self) -> dict:
        """Everything a page shows, as JSON-ready data."""
        current = self.current_step()
        order = [step for step, _ in STEPS]
        steps = [{"id": step, "title": title,
                  "status": "current" if step == current else "done" if order.index(step) < order.index(current)
                  else "todo"} for step, title in STEPS]
        cue = None
        if self.cue is not None:
            cue = dict(self.cue, remaining_s=round(max(0.0, self._cue_end - time.monotonic()), 3))
        bad = [name for name, s in self.signal.items() if s["state"] == "bad"]
        return {"version": self.version, "hand": self.hand, "steps": steps, "step": current,
                "receiving": self.receiving, "layout": self.layout, "signal": self.signal,
                "signal_ok": self.receiving and self.signal_checked and not bad,
                "contact": self.contact, "session": self.session, "cue": cue, "result": self.result,
                "start_blocker": self.start_blocker, "notice": self.notice}


def result_view(record: Mapping, electrodes: Mapping[str, np.ndarray], side: int) -> dict:
    """A session result as the page (and the report) draws it.

    Works with the result fields of issue 11 (``position_mm`` + ``frame``, ``placement``,
    ``radius90_mm``, ``confidence_text``, ``consistency``, ``kind`` "prior") and with the older ones
    (``position_head_mm``, ``nearest_electrode``, ``confidence``).

    Parameters
    ----------
    record : mapping
        The result record.
    electrodes : mapping of str to ndarray (3,)
        10-05 positions, head frame, mm.
    side : {-1, 1}
        The hotspot's hemisphere (-1 left).

    Returns
    -------
    dict
        ``kind``, ``headline``, ``placement`` (with ``text``), ``marks`` (drawing positions in head-outline
        units: ``electrode``, ``target``, ``radius``), ``uncertainty``, ``consistency``, ``reasons``, ``frame``.
    """
    kind = str(record.get("kind", "redo"))
    view = {"kind": kind, "frame": record.get("frame"), "reasons": [], "placement": None, "marks": None,
            "uncertainty": "", "consistency": ""}
    if kind == "redo":
        view["headline"] = "Please do the session again."
        view["reasons"] = plainwords.redo_reasons(record)
        return view
    placement = record.get("placement")
    electrode_name = (placement or {}).get("electrode") or record.get("nearest_electrode")
    position = record.get("position_mm", record.get("position_head_mm"))
    marks: dict = {}
    target = None
    if placement and electrode_name in electrodes:
        target = headmap.placement_point(electrodes[electrode_name], float(placement.get("anterior_mm", 0.0)),
                                         float(placement.get("lateral_mm", 0.0)), side)
        view["placement"] = {key: placement.get(key) for key in ("electrode", "anterior_mm", "lateral_mm", "distance_mm")}
        view["placement"]["text"] = plainwords.placement_text(placement)
    elif position is not None and electrode_name in electrodes:
        scalp = np.linalg.norm(electrodes[electrode_name])
        target = np.asarray(position, dtype=float) / np.linalg.norm(position) * scalp
        view["placement"] = {"electrode": electrode_name,
                             "text": f"Put the electrode at {electrode_name}, the cap position nearest to the estimate."}
    if electrode_name in electrodes:
        marks["electrode"] = headmap.layout({electrode_name: electrodes[electrode_name]})[electrode_name]
        marks["electrode_name"] = electrode_name
    if target is not None:
        marks["target"] = [round(float(v), 4) for v in headmap.project(target) / headmap.HEAD_RADIUS_MM]
    if record.get("radius90_mm") is not None:
        marks["radius"] = round(headmap.mm_to_drawing(float(record["radius90_mm"])), 4)
    view["marks"] = marks or None
    view["headline"] = ("Your EEG could not pinpoint the spot. This is the usual position for most people."
                        if kind == "prior" else "Your result: where the electrode goes.")
    view["uncertainty"] = plainwords.uncertainty_text(record)
    view["consistency"] = plainwords.consistency_text(record)
    if kind == "prior":
        view["reasons"] = [r[:1].upper() + r[1:] for r in record.get("reasons") or []]
    return view
