"""``invoke emulate`` / ``python -m hardware.emulator``: stream an emulated OpenBCI board on a pseudo-terminal.

Prints the port to give BrainFlow (``serial_port``) and streams until interrupted or ``--seconds``;
``--interactive`` reads faults from stdin while streaming (:mod:`hardware.emulator.faults`).
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge.board import OPENBCI_BOARDS, load_board
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from hardware.emulator.cyton import CytonEmulator
from hardware.emulator.faults import parse_fault
from hardware.emulator.sources import recording_source, synthetic_source


def console_command(emulator: CytonEmulator, line: str) -> str:
    """Apply one console line (``name[:key=value,...]`` or ``clear``) and return what happened."""
    if not line:
        return f"faults in force: {', '.join(emulator.active_faults()) or 'none'}"
    if line == "clear":
        emulator.clear_faults()
        return "faults cleared"
    try:
        name, params = parse_fault(line)
        emulator.inject(name, **params)
    except HotspotError as err:
        return f"error: {err}"
    return f"injected {line}"


def main(argv: Sequence[str] | None = None) -> int:
    """``invoke emulate``: start the emulator, print its port and stream until interrupted.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (see ``--help``).

    Returns
    -------
    int
        0 when stopped by Ctrl-C or after ``--seconds``.
    """
    parser = ArgumentParser(prog="invoke emulate", description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=OPENBCI_BOARDS, default="cyton")
    parser.add_argument("--source", type=Path, help="EEG file or dataset folder (default: synthetic EEG)")
    parser.add_argument("--subject", help="subject of a dataset folder (default: the first)")
    parser.add_argument("--map", dest="channel_map",
                        help="electrode map of hardware/electrode_maps.toml placing the source's channels")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--fault", action="append", default=[], help="name[:key=value,...], repeatable")
    parser.add_argument("--impedance", action="append", default=[], metavar="CHANNEL=KOHM",
                        help="an electrode's impedance for the lead-off check, e.g. 3=1500 (default 5 kOhm), repeatable")
    parser.add_argument("--port-link", type=Path, help="stable port path (default: a temporary ttyOpenBCI)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--interactive", action="store_true",
                        help="read faults from stdin while streaming: name[:key=value,...], clear, quit")
    args = parser.parse_args(argv)

    board = load_board(args.board)
    if args.source is None:
        source = synthetic_source(board.n_channels, board.sampling_rate)
    else:
        if not args.source.exists():
            raise HotspotError(f"source {args.source} does not exist; give an EEG file or dataset folder",
                               ErrorCode.BAD_FILE)
        default_map = "cyton_five_left" if board.name == "cyton" else "cyton_daisy_nine_left"
        source = recording_source(args.source, board, args.channel_map or default_map, args.subject)
    faults = [parse_fault(text) for text in args.fault]
    emulator = CytonEmulator(source, daisy=board.name == "cyton_daisy", speed=args.speed,
                             port_link=args.port_link)
    for text in args.impedance:
        channel, _, kohm = text.partition("=")
        try:
            emulator.set_impedance(int(channel), float(kohm) * 1e3)
        except ValueError:
            raise HotspotError(f"--impedance {text!r}: write CHANNEL=KOHM, e.g. 3=1500", ErrorCode.BAD_ARGUMENT) from None
    for name, params in faults:
        emulator.inject(name, **params)
    port = emulator.start()
    print(port, flush=True)
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        console = sys.stdin if args.interactive else None
        while deadline is None or time.monotonic() < deadline:
            if console is None or not select.select([console], [], [], 0.2)[0]:
                time.sleep(0.0 if console else 0.2)
                continue
            line = console.readline()
            if not line or line.strip() == "quit":
                break
            print(console_command(emulator, line.strip()), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        print(f"sent {emulator.stats.packets_sent} packets, dropped {emulator.stats.packets_dropped}, "
              f"corrupted {emulator.stats.packets_corrupted}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
