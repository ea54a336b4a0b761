"""Host-side monitor for a device's serial report link: cues, progress and the result.

``invoke monitor --port /dev/ttyACM0`` (or ``python -m hardware.monitor``) prints what the
device says, one line per event. It may send only session control: ``--start`` asks the
device to begin a guided session; ``--until-result`` exits after the hotspot (or redo).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence

import serial

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.placement import Placement
from edge.protocol import DEVICE_MESSAGES, LIVE_TRIAL, CueKind, FrameDecoder, Message, MessageType, SessionState, Sequencer, frame

logger = logging.getLogger(__name__)


class MonitorClient:
    """A pyserial connection to the device's report link.

    Parameters
    ----------
    port : str
    baud : int
    """

    def __init__(self, port: str, baud: int = 115200) -> None:
        try:
            self.serial = serial.Serial(port, baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as err:
            raise HotspotError(f"cannot open {port} at {baud} baud: {err}; pass the device's report port with --port",
                               ErrorCode.BAD_ARGUMENT) from None
        self.decoder = FrameDecoder(DEVICE_MESSAGES)
        self.sequencer = Sequencer()

    def send(self, message_type: MessageType) -> None:
        """Send one session-control command (START, STOP or STATUS_REQUEST)."""
        self.serial.write(frame(self.sequencer.message(message_type)))

    def messages(self, timeout_s: float | None = None) -> Iterator[Message]:
        """Yield device messages as they arrive, until ``timeout_s`` (None: forever)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            try:
                data = self.serial.read(4096)
            except (serial.SerialException, OSError):
                time.sleep(0.1)
                continue
            yield from self.decoder.feed(data)

    def close(self) -> None:
        """Close the port."""
        self.serial.close()


def _xyz(values) -> str:
    return "(" + ", ".join(f"{v:+.1f}" for v in values) + ")"


def printable(text: str) -> str:
    """A device's text with control and format characters escaped (``\\x1b``, ``\\n``, ``\\u202e``).

    Text from a link is shown, never obeyed: no escape sequence, line break or bidi override in an
    ERROR or REDO reason can move the cursor or fake a line such as a HOTSPOT.
    """
    return "".join(char if unicodedata.category(char)[0] not in "CZ" or char == " "
                   else char.encode("unicode_escape").decode("ascii") for char in str(text))
def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def _placement(fields: dict) -> str:
    """E.g. "8 mm forward and 3 mm outward from C3h" (a scalp offset from a cap electrode, no depth)."""
    return Placement(fields["electrode"], fields["anterior_mm"], fields["lateral_mm"]).describe()


class Display:
    """Turns device messages into the lines a person reads; remembers the session's context."""

    def __init__(self) -> None:
        self.hand = "right"
        self.last_state: int | None = None

    def describe(self, message: Message) -> str | None:
        """One line (or a few) for a message; None for a message not worth a line."""
        kind = message.type
        f = {name: printable(value) if isinstance(value, str) else value for name, value in message.fields.items()}
        for name in ("channels", "reasons"):
            if name in f:
                f[name] = [printable(item) for item in f[name]]
        if "faults" in f:
            f["faults"] = [(printable(channel), printable(fault), count) for channel, fault, count in f["faults"]]
        if kind == MessageType.HELLO:
            self.hand = "right" if f["hemisphere"] == "left" else "left"
            return (f"device {f['device_id'] or '(id shown after pairing)'}: bundle {f['bundle_id']}, electrodes "
                    f"{' '.join(f['channels'])}, {f['hemisphere']} hemisphere ({self.hand} hand)")
        if kind == MessageType.STATUS:
            if f["state"] == self.last_state:
                return None
            self.last_state = f["state"]
            state = SessionState(f["state"]).name.lower().replace("_", " ")
            return (f"status: {state}, trial {f['trial'] + 1}/{f['n_trials']}, {f['n_good']} good, "
                    f"{f['lost']} samples lost")
        if kind == MessageType.CUE:
            cue = CueKind(f["kind"])
            what = {CueKind.REST: "rest, stay still", CueKind.MOVE: f"MOVE your {self.hand} hand",
                    CueKind.STOP: "stop and relax", CueKind.DONE: "session complete"}[cue]
            if cue == CueKind.DONE:
                return f"cue: {what}"
            return f"cue: trial {f['trial'] + 1}/{f['n_trials']}: {what} ({f['duration_ms'] / 1000:g} s)"
        if kind == MessageType.QUALITY:
            faults = ", ".join(f"{channel} {fault}" for channel, fault, _ in f["faults"]) or "ok"
            if f["trial"] == LIVE_TRIAL:
                return f"live signal check: {faults}"
            return f"signal check trial {f['trial'] + 1}: {faults}"
        if kind == MessageType.TRIAL_RESULT:
            if f["good"]:
                return f"trial {f['trial'] + 1}: good, estimate {_xyz(f['position_mm'])} mm"
            return f"trial {f['trial'] + 1}: rejected ({'; '.join(f['reasons']) or 'bad signal'})"
        if kind == MessageType.HOTSPOT:
            where = f"{_placement(f)}, within {f['radius_mm']:.0f} mm (90 %), consistency {_percent(f['consistency'])}"
            details = (f"  position {_xyz(f['position_mm'])} mm (cap frame); consistency is trial agreement, not "
                       f"accuracy; {f['n_good']}/{f['n_trials']} good trials, bundle {f['bundle_id']}")
            if f["localised"]:
                return f"HOTSPOT (cap frame) {where}\n{details}"
            return (f"CANNOT LOCALISE: {'; '.join(f['reasons']) or 'the EEG could not pinpoint the hotspot'}\n"
                    f"  usual position (cap frame) {where}\n{details}")
        if kind == MessageType.REDO:
            return ("REDO the session:\n" + "\n".join(f"  - {reason}" for reason in f["reasons"])
                    + f"\n  CANNOT LOCALISE: usual position (cap frame) {_placement(f)}, "
                      f"within {f['radius_mm']:.0f} mm (90 %)")
        if kind == MessageType.ERROR:
            return f"device error {f['code']}: {f['message']}"
        return None


def run_monitor(port: str, baud: int = 115200, start: bool = False, until_result: bool = False,
                timeout_s: float | None = None, show: Callable[[str], None] = logger.info) -> Message | None:
    """Show a device's reports; return the result message (HOTSPOT or REDO) if one arrived.

    Parameters
    ----------
    port, baud : str, int
        The host end of the device's report link.
    start : bool
        Send START first.
    until_result : bool
        Return after the first HOTSPOT or REDO.
    timeout_s : float, optional
        Give up after this long.
    show : callable
        Where the lines go (default: this module's log; the command line prints them).
    """
    client = MonitorClient(port, baud)
    display = Display()
    result = None
    try:
        client.send(MessageType.STATUS_REQUEST)
        if start:
            client.send(MessageType.START)
        for message in client.messages(timeout_s):
            line = display.describe(message)
            if line:
                show(line)
            if message.type in (MessageType.HOTSPOT, MessageType.REDO):
                result = message
                if until_result:
                    break
    finally:
        client.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m hardware.monitor --port P [--baud B] [--start] [--until-result]``."""
    parser = ArgumentParser(prog="invoke monitor", description=__doc__)
    parser.add_argument("--port", required=True, help="the device's report port on this host")
    parser.add_argument("--baud", type=int, default=115200, help="bits per second (115200)")
    parser.add_argument("--start", action="store_true", help="ask the device to start a guided session")
    parser.add_argument("--until-result", action="store_true", help="exit after the hotspot or redo")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        result = run_monitor(args.port, args.baud, args.start, args.until_result, args.timeout, show=print)
    except KeyboardInterrupt:
        return 0
    if args.until_result and result is None:
        raise HotspotError(f"no result from {args.port} within {args.timeout} s", ErrorCode.BOARD_ERROR)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
