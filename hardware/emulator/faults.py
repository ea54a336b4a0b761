"""Faults the board emulator injects on purpose: what each one does, its parameters, and the ones in force.

``drop`` (rate, burst)
    packets lost on the radio link at ``rate`` (fraction of packets), in bursts of ``burst`` packets;
    the board's counter still advances.
``corrupt`` (rate)
    packets hit by line noise at ``rate``: their footer and the aux bytes before it are overwritten,
    so BrainFlow's framing check drops them. (The protocol has no checksum: corruption that leaves
    the header and footer intact cannot be detected by any host.)
``railed`` (channel, polarity)
    a channel at the positive (``polarity=1``) or negative ADC rail, as with a detached electrode.
``flat`` (channel, value_uv)
    a channel stuck at a constant value.
``stall``
    the board stops transmitting (radio link lost, flat battery); the dongle answers every command
    with ``Failure: Communications timeout - Device failed to poll Host$$$`` as the real dongle does.
``unplug``
    the dongle is pulled: the pseudo-terminal is closed and the stable port path removed; when the
    fault clears, a new pseudo-terminal appears behind the same path (like a udev symlink).
``reset``
    the board power-cycles once: streaming stops, settings return to defaults, the banner is sent.
``duplicate`` (rate, count)
    packets sent twice (a radio retransmission whose acknowledgement was lost): each packet at
    ``rate`` is followed by an identical copy; the fault ends by itself after ``count`` copies.
``restart``
    the board's sample counter restarts at 0 once while the board keeps streaming (no sample is lost).
``garbage`` (rate)
    line noise between packets: after a packet, at ``rate``, 1-64 random bytes or, half of the time, a
    well-framed fake packet (start byte, random counter and counts, a stop byte 0xC0-0xC6 as BrainFlow
    accepts); parts of real packets that follow junk may be misframed too. The junk after a packet depends
    only on the emulator's seed and the packet's position (:func:`hardware.emulator.cyton.line_noise`),
    not on the host's timing.
``misorder`` (Cyton + Daisy only)
    each sample's two packets are sent odd (channels 1-8) before even (channels 9-16); BrainFlow then
    pairs channels 1-8 of one sample with channels 9-16 of the sample before.
``rate`` (hz)
    the board samples at ``hz`` instead of its declared rate (as after a sample-rate command): the
    subject clock runs at that rate while the fault lasts.

Every fault but ``reset`` and ``restart`` lasts ``duration`` seconds (wall clock) or until cleared.
"""

from __future__ import annotations

import threading
import time

from edge.errors import ErrorCode, HotspotError

FAULTS = ("drop", "corrupt", "railed", "flat", "stall", "unplug", "reset", "duplicate", "restart", "garbage",
          "misorder", "rate")
ONE_SHOT = ("reset", "restart")
"""Faults that happen once (no duration)."""
PARAMETERS = {"drop": {"rate", "burst"}, "corrupt": {"rate"}, "railed": {"channel", "polarity"},
              "flat": {"channel", "value_uv"}, "stall": set(), "unplug": set(), "reset": set(),
              "duplicate": {"rate", "count"}, "restart": set(), "garbage": {"rate"}, "misorder": set(),
              "rate": {"hz"}}


def _refuse(message: str) -> HotspotError:
    return HotspotError(message, ErrorCode.BAD_ARGUMENT)


def check_params(fault: str, params: dict, n_channels: int, daisy: bool, sampling_rate: float) -> dict:
    """A fault's parameters with their defaults, checked (one-line refusal naming the parameter).

    Parameters
    ----------
    fault : str
        One of :data:`FAULTS`.
    params : dict
        The given parameters (``duration`` in seconds for all but :data:`ONE_SHOT`).
    n_channels : int
        The board's channels (for ``railed`` and ``flat``).
    daisy : bool
        Whether the board has the Daisy (``misorder`` needs it).
    sampling_rate : float
        The board's declared rate (the ``rate`` fault's default).
    """
    if fault not in FAULTS:
        raise _refuse(f"unknown fault {fault!r}; use one of {', '.join(FAULTS)}")
    allowed = PARAMETERS[fault] | ({"duration"} if fault not in ONE_SHOT else set())
    unknown = set(params) - allowed
    if unknown:
        raise _refuse(f"fault {fault} takes {sorted(allowed) or 'no parameters'}, not {sorted(unknown)}")
    params = dict(params)
    if fault in ("drop", "corrupt", "duplicate", "garbage"):
        params["rate"] = float(params.get("rate", 1.0 if fault == "duplicate" else 0.05))
        if not 0.0 <= params["rate"] <= 1.0:
            raise _refuse(f"fault {fault}: rate must be within 0..1")
    if fault == "drop":
        params["burst"] = int(params.get("burst", 1))
        if params["burst"] < 1:
            raise _refuse("fault drop: burst must be at least 1 packet")
    if fault in ("railed", "flat"):
        params["channel"] = int(params.get("channel", 1))
        if not 1 <= params["channel"] <= n_channels:
            raise _refuse(f"fault {fault}: channel must be 1..{n_channels}")
    if fault == "railed":
        params["polarity"] = 1 if float(params.get("polarity", 1)) >= 0 else -1
    if fault == "flat":
        params["value_uv"] = float(params.get("value_uv", 0.0))
    if fault == "duplicate" and "count" in params:
        params["count"] = int(params["count"])
        if params["count"] < 1:
            raise _refuse("fault duplicate: count must be at least 1 packet")
    if fault == "misorder" and not daisy:
        raise _refuse("fault misorder needs the Cyton + Daisy (two packets per sample)")
    if fault == "rate":
        params["hz"] = float(params.get("hz", sampling_rate))
        if not 1.0 <= params["hz"] <= 16000.0:
            raise _refuse("fault rate: hz must be within 1..16000")
    return params


def parse_fault(text: str) -> tuple[str, dict[str, float]]:
    """Parse ``name[:key=value,...]`` (e.g. ``drop:rate=0.05`` or ``railed:channel=3``)."""
    name, _, rest = text.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise _refuse(f"bad fault parameter {item!r} in {text!r}; write key=number")
    return name.strip(), params


class FaultState:
    """The faults in force (one of each kind) and the one-shot faults waiting to happen; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, dict] = {}
        self._reset = False
        self._restart = False

    def inject(self, fault: str, params: dict) -> None:
        """Put a checked fault (:func:`check_params`) in force; injecting it again replaces its parameters."""
        with self._lock:
            if fault == "reset":
                self._reset = True
                return
            if fault == "restart":
                self._restart = True
                return
            params = dict(params)
            duration = params.pop("duration", None)
            params["until"] = None if duration is None else time.monotonic() + float(duration)
            self._faults[fault] = params

    def clear(self, *names: str) -> None:
        """End the named faults (all when none is named)."""
        with self._lock:
            for name in names or tuple(self._faults):
                self._faults.pop(name, None)

    def active(self) -> list[str]:
        """The names of the faults in force."""
        with self._lock:
            return sorted(self._faults)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._faults

    def expire(self, now: float) -> None:
        """End the faults whose duration is over."""
        with self._lock:
            for name in [name for name, params in self._faults.items()
                         if params["until"] is not None and now >= params["until"]]:
                del self._faults[name]

    def take_one_shots(self) -> tuple[bool, bool]:
        """Whether a reset and a restart are due (each happens once)."""
        with self._lock:
            due, self._reset, self._restart = (self._reset, self._restart), False, False
        return due

    def snapshot(self) -> dict[str, dict]:
        """A copy of the faults in force and their parameters."""
        with self._lock:
            return {name: dict(params) for name, params in self._faults.items()}

    def count_duplicate(self) -> None:
        """One extra copy was sent: a ``duplicate`` fault with a ``count`` ends after that many."""
        with self._lock:
            current = self._faults.get("duplicate")
            if current is not None and "count" in current:
                current["count"] -= 1
                if current["count"] <= 0:
                    del self._faults["duplicate"]
