"""``invoke demo``: the whole chain on the embedded default, from nothing to a reported hotspot.

1. simulate a small cohort (train.simulate) with a fixed cue schedule;
2. hold one subject out and train the deployable CNN on the others (train.training): it predicts
   a position and its uncertainty in the cap frame, with the population prior and a calibration;
3. make a signing key, quantise and sign the model into a bundle (convert);
4. stream the held-out subject's recording from an emulated OpenBCI Cyton (with a Daisy for nine
   channels) on a pty;
5. run the device runtime (``python -m edge --once``) on it: BrainFlow's Cyton (Daisy) driver,
   the fixed-point signal path, the guided session, serial reports on a virtual cable;
6. the monitor shows the cues and trials and the result; the demo prints the estimate in the cap
   frame with its placement instruction and 90 % radius, the subject's true hotspot in the same frame
   (through the session's true cap transform from the simulator's truth sidecar) and in the head
   frame, the error, whether the truth lies inside the radius, and the population prior beside it.

Settings are in ``hardware/demo.toml`` ([full], or [fast] with ``--fast``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.board import OPENBCI_BOARDS
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from edge.validation import REQUIRED, Table, read_toml

logger = logging.getLogger(__name__)

SETTINGS = Path(__file__).with_name("demo.toml")
SETTING_KEYS = ("level", "channels", "board", "speed", "simulation", "training", "session")
SESSION_MARGIN_S = 60.0


def load_settings(fast: bool) -> dict:
    """The [full] or [fast] table of ``hardware/demo.toml``, checked."""
    name = "fast" if fast else "full"
    table = Table(read_toml(SETTINGS, "demo settings"), "top level", SETTINGS).table(name)
    table.check_known(SETTING_KEYS)
    table.string("level", REQUIRED)
    table.string("channels", REQUIRED)
    table.string("board", REQUIRED, OPENBCI_BOARDS)  # what the emulator speaks
    table.number("speed", REQUIRED, 0.01, 1000.0)
    for key in ("simulation", "training", "session"):
        table.table(key)
    return table.data


def check_board_rate(board: str, sfreq: float) -> None:
    """Refuse a simulated cohort whose sampling rate is not the emulated board's (Hz).

    The Cyton alone has 8 inputs at 250 Hz; with the Daisy (nine channels need it) 16 at 125 Hz.
    """
    from edge.board import load_board

    rate = load_board(board).sampling_rate
    if sfreq != rate:
        raise HotspotError(f"the demo's board {board} samples at {rate:g} Hz but the cohort is simulated at "
                           f"{sfreq:g} Hz; set recording.sfreq = {rate:g}", ErrorCode.BAD_CONFIG)


@dataclass
class Chain:
    """What the host side of the chain produced for one held-out subject.

    Attributes
    ----------
    workdir : Path
    dataset : train.dataset.Dataset
        The whole simulated cohort.
    holdout : train.dataset.Subject
        The subject the device session is run on (not seen in training).
    model_dir, bundle_dir, public_key : Path
    schedule : dict
        ``lead_in_s``, ``rest_s``, ``move_s``, ``post_s``, ``trials`` of the recording.
    """

    workdir: Path
    dataset: object
    holdout: object
    model_dir: Path
    bundle_dir: Path
    public_key: Path
    schedule: dict


class Progress:
    """Numbered, timed progress lines (to ``show``: this module's log unless told otherwise)."""

    def __init__(self, steps: int, show: Callable[[str], None] = logger.info) -> None:
        self.steps, self.show, self.step, self.started = steps, show, 0, time.monotonic()

    def __call__(self, text: str) -> None:
        self.step += 1
        self.show(f"[{self.step}/{self.steps} {time.monotonic() - self.started:6.1f} s] {text}")


def cohort_summary(dataset) -> list[str]:
    """A few lines describing a simulated cohort."""
    subjects = dataset.subjects
    first = subjects[0].recordings[0]
    trials = [len(r.cue_samples("move")) for s in subjects for r in s.recordings]
    labels = np.array([s.label for s in subjects if s.label is not None])
    lines = [f"{len(subjects)} subjects ({', '.join(sorted({s.group for s in subjects}))}), "
             f"{sum(len(s.recordings) for s in subjects)} recordings, {first.sfreq:g} Hz, "
             f"{len(first.ch_names)} channels, {min(trials)}-{max(trials)} trials each, "
             f"{first.data.shape[1] / first.sfreq:.0f} s per recording"]
    if len(labels):
        centre = labels.mean(axis=0)
        lines.append(f"TMS labels (head frame, mm): mean ({', '.join(f'{v:+.1f}' for v in centre)}), "
                     f"spread {np.linalg.norm(labels - centre, axis=1).mean():.1f} mm around it")
    return lines


def recording_schedule(recording, sim_task: dict) -> dict:
    """The fixed cue schedule of a simulated recording, checked against the device's own schedule."""
    from edge.config import SessionConfig
    from edge.protocol import CueKind
    from edge.session import cue_schedule

    low, _ = sim_task["rest_s"]
    schedule = {"trials": int(len(recording.cue_samples("move"))), "lead_in_s": float(sim_task["lead_in_s"]),
                "rest_s": float(low), "move_s": float(sim_task["move_s"]), "post_s": float(sim_task["post_s"])}
    session = SessionConfig(min_good_trials=1, min_consistency=0.0, agreement_mm=10.0, hand="right",
                            autostart=True, **schedule)
    expected = [c.sample for c in cue_schedule(session, recording.sfreq) if c.kind == CueKind.MOVE]
    actual = recording.cue_samples("move").tolist()
    if actual != expected:
        raise HotspotError(f"the simulated move cues {actual[:3]}... differ from the device's schedule "
                           f"{expected[:3]}...", ErrorCode.BAD_FORMAT)
    return schedule


def build_chain(workdir: Path, settings: dict, sim_config: Path | None = None,
                show: Callable[[str], None] = logger.info, steps: int = 5) -> tuple[Chain, Progress]:
    """Simulate, train on all but one subject, convert and sign (steps 1-3 of the demo)."""
    from convert.quantize import convert_model
    from convert.signing import generate_keypair
    from train.bids import read_bids_dataset
    from train.dataset import Dataset
    from train.simulate import load_config, simulate_cohort
    from train.training import train_model

    progress = Progress(steps, show)
    workdir.mkdir(parents=True, exist_ok=True)
    config = load_config(None, settings["simulation"])
    if sim_config is not None:
        config = config.with_overrides(read_toml(sim_config, "simulation config", "pass an existing TOML file"))
    check_board_rate(settings["board"], float(config["recording"]["sfreq"]))
    low, high = config["task"]["rest_s"]
    if low != high:
        raise HotspotError(f"the demo needs a fixed schedule the device can follow: set task.rest_s = [x, x] "
                           f"(got [{low:g}, {high:g}])", ErrorCode.BAD_CONFIG)
    data_dir = workdir / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    progress(f"simulating a small cohort into {data_dir} ...")
    simulate_cohort(config, data_dir)
    dataset = read_bids_dataset(data_dir)
    for line in cohort_summary(dataset):
        show(f"      {line}")

    labelled = [s for s in dataset.subjects if s.label is not None and s.recordings]
    holdout = labelled[-1]
    train_set = Dataset(dataset.name, [s for s in dataset.subjects if s is not holdout])
    schedule = recording_schedule(holdout.recordings[0], config["task"])
    progress(f"training the {settings['level']} CNN on {len(train_set.subjects)} subjects "
             f"({settings['channels']} channels); {holdout.subject} is held out ...")
    model_dir = train_model(train_set, settings["level"], settings["channels"], settings["training"],
                            workdir / "model", progress=False)

    progress("quantising to int8 TFLite and signing the bundle ...")
    key_path = workdir / "keys" / "signing.key"
    private_key, public_key = generate_keypair(key_path, overwrite=True)
    bundle_dir = workdir / "bundle"
    conversion = convert_model(model_dir, train_set, bundle_dir, private_key, holdout=Dataset(dataset.name, [holdout]))
    show(f"      int8 model {conversion.int8_size_bytes / 1024:.0f} kB (float {conversion.float_size_bytes / 1024:.0f} kB), "
         f"signed bundle in {bundle_dir}")
    return Chain(workdir, dataset, holdout, Path(model_dir), bundle_dir, Path(public_key), schedule), progress


def board_source(recording, names: Sequence[str], board: str = "cyton") -> np.ndarray:
    """The recording as ``board`` sees it: ``names[i]`` on board input ``i + 1``; others silent."""
    from edge.board import load_board

    source = np.zeros((load_board(board).n_channels, recording.data.shape[1]))
    for row, name in enumerate(names):
        source[row] = recording.data[recording.ch_names.index(name)]
    return source


@dataclass
class OfflineEstimate:
    """The same bundle on the held-out recording, computed offline the way the session computes it.

    Attributes
    ----------
    trials_mm : ndarray, shape (n_good, 3)
        Each good trial's predicted position (cap frame, mm, patient's hemisphere).
    prediction_mm : ndarray, shape (3,)
        The session's prediction before the prior combination (patient's hemisphere).
    estimate : edge.estimate.Estimate
        The session's estimate (prior combination and 90 % radius), point in the patient's hemisphere.
    """

    trials_mm: np.ndarray
    prediction_mm: np.ndarray
    estimate: object


def offline_estimate(chain: Chain) -> OfflineEstimate:
    """The bundle on the whole held-out recording, offline (edge.pipeline.compute_epochs, not the runtime)."""
    from edge.bundle import load_bundle
    from edge.estimate import decide
    from edge.pipeline import compute_epochs
    from edge.session import session_prediction

    bundle = load_bundle(chain.bundle_dir, chain.public_key)
    recording = chain.holdout.recordings[0]
    wearing = bundle.contract.wearing(chain.holdout.hand)
    raw = np.stack([recording.data[recording.ch_names.index(n)] for n in wearing.electrodes])
    epochs = compute_epochs(bundle.spec, raw, recording.cue_samples("move"))
    good = [index for index, verdict in enumerate(epochs.verdicts) if verdict.ok]
    means, sds = bundle.predict(epochs.inputs[good])
    prediction = session_prediction(bundle.predict, bundle.spec, bundle.aggregation, means, sds,
                                    None if epochs.csds is None else [epochs.csds[i] for i in good])
    estimate = decide(bundle.prior, bundle.calibration, prediction.mean_mm, prediction.sd_mm, prediction.erd_db,
                      peak_mm=prediction.peak_mm)
    return OfflineEstimate(trials_mm=wearing.to_patient(means), prediction_mm=wearing.to_patient(prediction.mean_mm),
                           estimate=dataclasses.replace(estimate, point_mm=wearing.to_patient(estimate.point_mm)))


def true_cap_transform(chain: Chain):
    """The held-out session's true cap transform (train.frames.CapTransform) from the simulator's truth.json."""
    from train.frames import CapTransform

    truth = json.loads((chain.workdir / "data" / "truth.json").read_text())["subjects"][chain.holdout.subject]
    session = chain.holdout.recordings[0].session
    recorded = next(entry["cap_transform"] for entry in truth["sessions"] if entry["session"] == session)
    return CapTransform(float(recorded["scale"]), np.array(recorded["rotation"]), np.array(recorded["translation_mm"]))


def write_device_config(path: Path, chain: Chain, names: Sequence[str], board_port: str, report_port: str,
                        session: dict, autostart: bool = True, clock_scale: float = 1.0,
                        page: dict | None = None, board_type: str = "cyton") -> Path:
    """Validate and write the device TOML for a session on ``chain.holdout`` (board inputs 1..n in model order).

    ``clock_scale`` is the emulator's speed (board seconds per host second), so that outages sized from
    the host clock keep the device's sample index aligned with the recording. ``page`` (``listen``,
    ``port``, ``pairing_code``) turns the session page on. The file is written by
    :func:`hardware.device_config.write_config` from the validated configuration.
    """
    from edge.config import parse_config
    from hardware.device_config import write_config

    schedule = chain.schedule
    data = {"device": {"id": "demo-01", "state_dir": str(path.parent / "state")},
            "board": {"type": board_type, "serial_port": board_port, "clock_scale": float(clock_scale)},
            "channels": {name: index + 1 for index, name in enumerate(names)},
            "bundle": {"path": str(chain.bundle_dir), "public_key": str(chain.public_key)},
            "links": {"serial": {"port": report_port, "baud": 115200}},
            "session": {"hand": chain.holdout.hand, **{key: schedule[key] for key in
                                                       ("trials", "lead_in_s", "rest_s", "move_s", "post_s")},
                        **session, "autostart": autostart}}
    if page is not None:
        data["page"] = {"enabled": True, "listen": page["listen"], "port": int(page["port"]),
                        "pairing_code": page["pairing_code"]}
    return write_config(parse_config(data, path), path)


def pairing_code() -> str:
    """A random 6-digit pairing code (never one digit repeated)."""
    while True:
        code = f"{secrets.randbelow(10 ** 6):06d}"
        if len(set(code)) > 1:
            return code


def page_address(state_dir: Path, pid: int) -> str | None:
    """The session page's address the runtime ``pid`` wrote to ``health.json`` (None until it has).

    A state folder may still hold the health file of an earlier runtime; only the given process's counts.
    """
    try:
        health = json.loads((state_dir / "health.json").read_text())
    except (OSError, ValueError):
        return None
    return health.get("page") if health.get("pid") == pid else None


class DeviceSession:
    """Emulated board → ``python -m edge`` (with its session page) → serial report → monitor.

    Parameters
    ----------
    chain : Chain
    settings : dict
        The demo settings (speed, [session]).
    show : callable
        Where progress lines go (default: this module's log).
    keep_open : bool
        Keep the runtime (and its page) running after the result, until :meth:`wait_while_open` is
        interrupted (Ctrl-C); otherwise the runtime runs with ``--once`` and everything stops at the result.
    page_port : int
        The page's port on 127.0.0.1 (0: any free port).
    """

    def __init__(self, chain: Chain, settings: dict, show: Callable[[str], None] = logger.info, keep_open: bool = False,
                 page_port: int = 0) -> None:
        from edge.bundle import load_bundle
        from hardware.emulator.cyton import CytonEmulator
        from hardware.monitor import MonitorClient
        from hardware.nullmodem import NullModem

        self.show, self.keep_open = show, keep_open
        self.closed = False
        bundle = load_bundle(chain.bundle_dir, chain.public_key)
        names = list(bundle.contract.wearing(chain.holdout.hand).electrodes)
        board = settings["board"]
        source = board_source(chain.holdout.recordings[0], names, board)
        speed = float(settings["speed"])
        self.timeout = source.shape[1] / bundle.spec.sfreq / speed + SESSION_MARGIN_S
        self.emulator = CytonEmulator(source, daisy=board == "cyton_daisy", speed=speed)
        board_port = self.emulator.start()
        self.device_dir = chain.workdir / "device"
        self.code = pairing_code()
        self.url: str | None = None
        self.cable = NullModem()
        config = write_device_config(self.device_dir / "device.toml", chain, names, board_port, self.cable.device_port,
                                     settings["session"], clock_scale=speed, board_type=board,
                                     page={"listen": "127.0.0.1", "port": page_port, "pairing_code": self.code})
        self.client = MonitorClient(self.cable.host_port)
        with open(self.device_dir / "runtime.stderr", "w") as stderr:
            self.runtime = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(config)]
                                            + ([] if keep_open else ["--once"]), stderr=stderr)

    def run(self) -> list:
        """Show what the device reports until its result.

        Returns
        -------
        list of edge.protocol.Message
            Everything the device reported, ending with the result (HOTSPOT or REDO).
        """
        from edge.protocol import MessageType
        from hardware.monitor import Display

        display, messages = Display(), []
        try:
            for message in self.client.messages(self.timeout):
                messages.append(message)
                if self.url is None and (url := page_address(self.device_dir / "state", self.runtime.pid)):
                    self.url = url
                    self.show(f"      session page: {url} (watch it in a browser on this machine; "
                              f"pairing code {self.code})")
                line = display.describe(message)
                if line:
                    self.show("      device | " + line.replace("\n", "\n      device | "))
                if message.type in (MessageType.HOTSPOT, MessageType.REDO) or self.runtime.poll() is not None:
                    break
            if not self.keep_open:
                self.runtime.wait(timeout=30)
        finally:
            if not self.keep_open or not messages or messages[-1].type not in (MessageType.HOTSPOT, MessageType.REDO):
                self.close()
        if not messages or messages[-1].type not in (MessageType.HOTSPOT, MessageType.REDO):
            error = (self.device_dir / "runtime.stderr").read_text().strip().splitlines()
            raise HotspotError(f"the device runtime gave no result (exit code {self.runtime.returncode}): "
                               f"{error[-1] if error else 'no error output'}", ErrorCode.BOARD_ERROR)
        return messages

    def wait_while_open(self) -> None:
        """With ``keep_open``: keep the page up until Ctrl-C (or the runtime ends); then stop everything."""
        try:
            if self.keep_open and self.runtime.poll() is None:
                self.show(f"      the session page stays open at {self.url} (pairing code {self.code}); "
                          "press Ctrl-C to stop")
                self.runtime.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop the runtime, the monitor, the virtual cable and the emulator (once)."""
        if self.closed:
            return
        self.closed = True
        if self.runtime.poll() is None:
            self.runtime.terminate()
            self.runtime.wait(timeout=10)
        self.client.close()
        self.cable.close()
        self.emulator.stop()


def run_device_session(chain: Chain, settings: dict, show: Callable[[str], None] = logger.info) -> list:
    """One device session to its result (:class:`DeviceSession` without keeping it open)."""
    return DeviceSession(chain, settings, show).run()


def _xyz(values) -> str:
    return "(" + ", ".join(f"{v:+.1f}" for v in values) + ")"


def result_lines(chain: Chain, result, offline: OfflineEstimate) -> list[str]:
    """What the demo prints about the device's result (HOTSPOT or REDO message), beside the truth.

    The estimate and its radius are in the cap frame (as the device reports them); the truth is put
    into the same frame with the session's true cap transform, and both are also given in the head
    frame (where TMS measures). Distances are in the frame named.
    """
    from edge.bundle import load_bundle
    from edge.estimate import prior_radius90
    from edge.placement import Placement

    bundle = load_bundle(chain.bundle_dir, chain.public_key)
    holdout, cap = chain.holdout, true_cap_transform(chain)
    fields = result.fields
    truth_head = np.asarray(holdout.truth if holdout.truth is not None else holdout.label, dtype=float)
    truth_cap = cap.to_cap(truth_head)
    prior_cap = bundle.contract.wearing(holdout.hand).to_patient(bundle.prior.mean_mm)
    reported = np.asarray(fields["position_mm"], dtype=float) if "position_mm" in fields else prior_cap
    radius = float(fields["radius_mm"])
    error_cap, error_head = np.linalg.norm(reported - truth_cap), np.linalg.norm(cap.to_head(reported) - truth_head)
    placement = Placement(fields["electrode"], fields["anterior_mm"], fields["lateral_mm"]).describe()
    prior_radius, prior_error = prior_radius90(bundle.prior), np.linalg.norm(prior_cap - truth_cap)

    def inside(distance: float, limit: float) -> str:
        return "inside" if distance <= limit else "OUTSIDE"

    if result.type.name == "REDO":
        status = "the device asked for a redo (" + "; ".join(fields["reasons"]) + "), so it reports the usual position"
    elif fields["localised"]:
        status = "localised by the EEG"
    else:
        status = "the EEG could not localise (" + "; ".join(fields["reasons"]) + "): the usual position"
    lines = [f"device estimate   {_xyz(reported)} mm, cap frame: {status}",
             f"                  place the electrode {placement}; within {radius:.1f} mm with 90 % probability; "
             f"consistency {100 * fields['consistency']:.0f} % (trial agreement, not accuracy)",
             f"true hotspot      {_xyz(truth_cap)} mm, cap frame (the session's true cap transform) -> "
             f"{error_cap:.1f} mm from the estimate, {inside(error_cap, radius)} the 90 % radius",
             f"                  {_xyz(truth_head)} mm, head frame; the estimate in the head frame "
             f"{_xyz(cap.to_head(reported))} mm -> {error_head:.1f} mm",
             f"TMS label         {_xyz(np.asarray(holdout.label, dtype=float))} mm, head frame",
             f"population prior  {_xyz(prior_cap)} mm, cap frame, within {prior_radius:.1f} mm (90 %) -> "
             f"{prior_error:.1f} mm from the truth, {inside(prior_error, prior_radius)} its radius "
             "(baseline: the training subjects' mean hotspot)",
             f"offline, same bundle {_xyz(offline.estimate.point_mm)} mm, cap frame, within "
             f"{offline.estimate.radius90_mm:.1f} mm -> {np.linalg.norm(offline.estimate.point_mm - truth_cap):.1f} mm "
             "from the truth",
             f"protocol: one held-out subject (subject-grouped), {len(offline.trials_mm)} good trials; frames: cap "
             "(the cap as worn in this session) and head (MNE), mm"]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``invoke demo``."""
    parser = ArgumentParser(prog="invoke demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="demo-run", help="where everything is written (replaced)")
    parser.add_argument("--config", default="", help="a simulation TOML applied over the demo's simulation "
                                                      "settings (keys of train/simulate/defaults.toml)")
    parser.add_argument("--fast", action="store_true", help="smaller cohort, fewer trials, faster playback")
    parser.add_argument("--keep-open", action="store_true", help="keep the device and its session page running "
                                                                 "after the result, until Ctrl-C")
    args = parser.parse_args(argv)
    settings = load_settings(args.fast)
    workdir = Path(args.workdir).resolve()
    chain, progress = build_chain(workdir, settings, Path(args.config) if args.config else None, show=print)

    offline = offline_estimate(chain)
    holdout = chain.holdout
    progress(f"streaming {holdout.subject} ({holdout.group}, moves the {holdout.hand} hand) from an emulated "
             f"{settings['board']} board at {settings['speed']:g}x real time into the device runtime ...")
    device = DeviceSession(chain, settings, show=print, keep_open=args.keep_open)
    result = device.run()[-1]

    progress("result")
    for line in result_lines(chain, result, offline):
        print(f"      {line}")
    print(f"      Everything is in {workdir}")
    device.wait_while_open()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
