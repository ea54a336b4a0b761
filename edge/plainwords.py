"""What the patient reads: cues, signal and contact advice, redo reasons and the placement, in plain words.

The session page (``edge/pagestate.py``) and the clinician report (``train/report``) both word things
with these functions, so a patient and a clinician read the same instruction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge.estimate import confidence_text
from edge.placement import Placement
from edge.protocol import CueKind

CUE_TEXT = {
    CueKind.REST: "Rest. Keep still and relaxed.",
    CueKind.MOVE: "MOVE your {hand} hand: open and close it.",
    CueKind.STOP: "Stop. Keep still.",
    CueKind.DONE: "Finished. Well done!",
}

SIGNAL_ADVICE = {
    "railed": "{name}: the signal is at its limit. Press the electrode onto the skin and add a little gel.",
    "flat": "{name}: no signal. Check that its cable is plugged in.",
    "lost": "The headset's radio is losing data. Keep the USB dongle close to the headset.",
    "artifact": "{name}: too much movement. Relax your face and shoulders; move only your hand.",
    "clipped": "{name}: the signal is too large for the device. Check the electrode and its cable.",
    "near_railed": "{name}: the signal is close to its limit. Press the electrode on a little.",
    "no_signal": "The headset is not sending. Check that it is switched on and the USB dongle is plugged in.",
    "no_data": "The headset sent no data for part of this movement.",
}

CONTACT_ADVICE = {
    "good": "{name}: good contact.",
    "fair": "Add gel under {name} and work it through the hair to the skin.",
    "poor": "{name} is not touching the skin: part the hair under it, add gel, press it on, and check its "
            "cable is plugged in.",
    "unknown": "{name} could not be measured: check its cable, then check the electrodes again.",
}

def cue_text(kind: CueKind | int, hand: str) -> str:
    """The instruction for one cue, e.g. ``"MOVE your right hand: open and close it."``."""
    return CUE_TEXT[CueKind(kind)].format(hand=hand)


def signal_advice(name: str, flags: Sequence[str]) -> str:
    """What to do about one electrode's live signal flags (empty when there is nothing to do)."""
    for flag in ("flat", "railed", "clipped", "artifact", "lost", "near_railed"):
        if flag in flags:
            return SIGNAL_ADVICE[flag].format(name=name)
    return ""


def contact_advice(name: str, state: str) -> str:
    """What to do about one electrode's contact check result (see ``edge.contact.contact_state``)."""
    return CONTACT_ADVICE[state].format(name=name)


def fault_text(channel: str, fault: str, trials: int | None = None) -> str:
    """One fault of a session (channel as worn, or "all") in plain words."""
    template = SIGNAL_ADVICE.get(fault)
    if template is None:
        text = f"{channel}: {fault.replace('_', ' ')}."
    else:
        text = template.format(name=channel if channel != "all" else "The headset")
    return text if trials is None else f"{text} ({trials} movement{'s' if trials != 1 else ''})"


def redo_reasons(result: Mapping) -> list[str]:
    """Why a session must be redone, in plain words, from its result record.

    Parameters
    ----------
    result : mapping
        A session result (``SessionResult.to_dict()``, ``last_result.json``): its ``reasons`` and
        ``quality`` (``n_trials``, ``n_good``, ``needed``, ``faults``).

    Returns
    -------
    list of str
        The most useful first; reasons this module has no wording for are kept as they are.
    """
    quality = result.get("quality") or {}
    lines: list[str] = []
    n_good, needed, n_trials = quality.get("n_good"), quality.get("needed"), quality.get("n_trials")
    for reason in result.get("reasons") or []:
        if reason.startswith("stopped"):
            lines.append("The session was stopped before the end.")
        elif reason.startswith("only ") and n_good is not None:
            lines.append(f"Only {n_good} of {n_trials} movements were recorded cleanly; {needed} are needed.")
        elif "disagree" in reason:
            lines.append("The movements gave different answers. Please try again, moving your hand the same "
                         "way each time.")
        elif "never completed" in reason:
            lines.append("The recording ended before the last movements were complete.")
        elif " in " in reason and "trial(s)" in reason:
            continue  # per-channel fault counts: worded from quality.faults below
        else:
            lines.append(reason[:1].upper() + reason[1:] + ("" if reason.endswith(".") else "."))
    for fault in (quality.get("faults") or [])[:4]:
        text = fault_text(fault["channel"], fault["fault"], fault.get("trials"))
        if text not in lines:
            lines.append(text)
    return lines


def placement_text(placement: Mapping) -> str:
    """The placement instruction, e.g. ``"Centre the electrode 12 mm forward and 4 mm outward from C3."``.

    Parameters
    ----------
    placement : mapping
        ``electrode`` and the tangential offset ``anterior_mm`` (toward the nose) and ``lateral_mm``
        (away from the midline), as :class:`edge.placement.Placement` words it.
    """
    described = Placement(str(placement["electrode"]), float(placement.get("anterior_mm", 0.0)),
                          float(placement.get("lateral_mm", 0.0))).describe()
    return f"Centre the electrode {described}."


def uncertainty_text(result: Mapping) -> str:
    """How sure the estimate is, in plain words: the model's own sentence when it gives one."""
    if result.get("confidence_text"):
        return str(result["confidence_text"])
    if result.get("radius90_mm") is not None:
        localised = bool(result.get("localised", result.get("kind") != "prior"))
        return confidence_text(float(result["radius90_mm"]), localised)
    return "This device's model does not yet say how accurate its estimate is; ask your clinician to check it."


def consistency_text(result: Mapping) -> str:
    """Trial agreement, worded so that nobody reads it as accuracy ("consistency", formerly "confidence")."""
    value = result.get("consistency", result.get("confidence"))
    if value is None:
        return ""
    return (f"{float(value):.0%} of the movements pointed to the same place. That tells how steady the recording "
            "was, not how accurate the estimate is.")
