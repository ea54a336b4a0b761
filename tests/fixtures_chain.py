"""The chain the device tests run on: one small trained + converted bundle, and a device rig.

``chain`` (session scope) simulates a small cohort, trains on all subjects but one and writes a
signed int8 bundle, once per test run (the demo's own steps, ``hardware.demo.build_chain``).
``DeviceRig`` wires emulator pty → BrainFlow's Cyton driver → ``python -m edge`` → serial report
on a virtual null-modem cable → the monitor client, and records every message with its arrival time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from edge.protocol import Message, MessageType
from hardware.demo import Chain, board_source, build_chain, load_settings, write_device_config
from hardware.emulator.cyton import CytonEmulator
from hardware.monitor import MonitorClient
from hardware.nullmodem import NullModem

SPEED = 8.0
"""The emulated board streams this many times faster than real time in the device tests."""
EXIT_DRAIN_S = 2.0
"""Seconds the rig keeps reading the link after the runtime exited before it calls a missing message lost."""


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    """One small trained and converted bundle plus its held-out subject (built once per run)."""
    settings = load_settings(fast=True)
    built, _ = build_chain(tmp_path_factory.mktemp("chain"), settings, show=lambda line: None)
    return built


@pytest.fixture(scope="session")
def chain_settings() -> dict:
    """The [fast] demo settings the chain was built with."""
    return load_settings(fast=True)


class DeviceRig:
    """Emulated Cyton → device runtime (subprocess) → serial report → monitor client.

    Parameters
    ----------
    chain : Chain
    folder : Path
        Where the device config, state and logs go.
    session : dict
        Extra ``[session]`` keys (e.g. ``min_good_trials``).
    trials : int, optional
        Fewer trials than the recording has.
    speed : float
        Emulator speed.
    source : ndarray, optional
        Board source (8, n) µV (16 rows with ``daisy``); default: the held-out subject's recording on the
        worn inputs.
    python : sequence of str, optional
        The interpreter command running the runtime (default: this Python; the arm tier passes the
        emulated Pi's) and ``env`` its environment (default: this one).
    page : dict, optional
        ``listen``, ``port``, ``pairing_code``: serve the session page.
    once : bool
        Run the runtime with ``--once`` (it exits after the first result).
    autostart : bool
        Start the session with the first samples (else it waits for a start command).
    daisy : bool
        Emulate a Cyton + Daisy (125 Hz); give a ``bundle`` for that rate and a 16-row ``source``.
    bundle : (Path, Path), optional
        Another signed bundle folder and its public key (default: the chain's).
    """

    def __init__(self, chain: Chain, folder: Path, session: dict, trials: int | None = None,
                 speed: float = SPEED, source: np.ndarray | None = None, python: Sequence[str] = (sys.executable,),
                 env: dict | None = None, page: dict | None = None, once: bool = True,
                 autostart: bool = True, daisy: bool = False, bundle: tuple[Path, Path] | None = None) -> None:
        from edge.bundle import load_bundle

        bundle_dir, public_key = bundle or (chain.bundle_dir, chain.public_key)
        loaded = load_bundle(bundle_dir, public_key)
        self.spec = loaded.spec
        self.names = list(loaded.contract.wearing(chain.holdout.hand).electrodes)
        self.source = board_source(chain.holdout.recordings[0], self.names) if source is None else source
        self.speed = speed
        self.emulator = CytonEmulator(self.source, daisy=daisy, speed=speed)
        self.board_port = self.emulator.start()
        self.cable = NullModem()
        self.folder = folder
        self.schedule = dict(chain.schedule)
        if trials is not None:
            self.schedule["trials"] = trials
        chain_view = Chain(chain.workdir, chain.dataset, chain.holdout, chain.model_dir, bundle_dir,
                           public_key, self.schedule)
        self.config = write_device_config(folder / "device.toml", chain_view, self.names, self.board_port,
                                          self.cable.device_port, session, clock_scale=speed, page=page,
                                          autostart=autostart, board_type="cyton_daisy" if daisy else "cyton")
        self.state_dir = folder / "state"
        self.client = MonitorClient(self.cable.host_port)
        self.received: list[tuple[float, Message]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr_path = folder / "runtime.stderr"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen([*python, "-m", "edge", "--config", str(self.config)]
                                            + (["--once"] if once else []), stderr=stderr, env=env)

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self.client.messages(0.05):
                with self._lock:
                    self.received.append((time.monotonic(), message))

    def messages(self, message_type: MessageType | None = None) -> list[tuple[float, Message]]:
        """Everything received so far (of one type)."""
        with self._lock:
            return [(t, m) for t, m in self.received if message_type is None or m.type == message_type]

    def wait_for(self, predicate: Callable[[], object], timeout_s: float, what: str):
        """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        exited_at = None
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if exited_at is None and self.process.poll() is not None:
                exited_at = time.monotonic()
            # a runtime that sent its last message and exited (--once) may leave it in the link for the
            # reader to drain: wait for that before calling the exit a failure
            if exited_at is not None and time.monotonic() - exited_at > EXIT_DRAIN_S:
                pytest.fail(f"runtime exited ({self.process.returncode}) while waiting for {what}: "
                            f"{self.stderr_path.read_text()[-1500:]}")
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")

    def result(self, timeout_s: float) -> Message:
        """Wait for the session's HOTSPOT or REDO."""
        found = self.wait_for(lambda: [m for _, m in self.received if m.type in (MessageType.HOTSPOT,
                                                                                 MessageType.REDO)],
                              timeout_s, "the session result")
        return found[0]

    def trial_results(self) -> dict[int, Message]:
        """TRIAL_RESULT messages by trial."""
        return {m["trial"]: m for _, m in self.messages(MessageType.TRIAL_RESULT)}

    def session_seconds(self) -> float:
        """Wall-clock length of the configured session at the rig's speed."""
        s = self.schedule
        return (s["lead_in_s"] + s["trials"] * (s["rest_s"] + s["move_s"] + s["post_s"])) / self.speed

    def page_url(self, timeout_s: float = 30.0) -> str:
        """The session page's address, once the runtime has written it to health.json."""
        from hardware.demo import page_address

        return self.wait_for(lambda: page_address(self.state_dir, self.process.pid), timeout_s,
                             "the session page's address")

    def session_log(self):
        """The session log written so far (the newest one), read back."""
        from edge.sessionlog import read_session_log

        return read_session_log(sorted((self.state_dir / "sessions").glob("session-*.log"))[-1])

    def spoiled_by_outages(self, log) -> list[int]:
        """Trials of ``log`` that an outage of the same log must spoil.

        Those whose epoch misses more samples to the logged outages than the signal check allows
        (``max_lost_fraction`` of the epoch): an outage that clips an epoch by a few samples leaves a
        usable trial.
        """
        spec = self.spec
        outages = [(r["start_sample"], r["start_sample"] + r["samples"]) for r in log.of_kind("outage")]
        spoiled = []
        for record in log.of_kind("trial"):
            first = record["cue_sample"] + spec.epoch_offset
            missing = sum(max(0, min(stop, first + spec.epoch_samples) - max(start, first)) for start, stop in outages)
            if missing > spec.quality.max_lost_fraction * spec.epoch_samples:
                spoiled.append(record["trial"])
        return spoiled

    def close(self, terminate: bool = False) -> int | None:
        """Stop everything; return the runtime's exit code (None if it had to be killed).

        ``terminate`` sends SIGTERM first (a runtime without ``--once`` runs until told to stop).
        """
        code = None
        if terminate and self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stop.set()
        self._reader.join(2)
        self.client.close()
        self.cable.close()
        self.emulator.stop()
        return code
