"""The device runtime: board → guided session → report links and the session page, with health and result files.

One loop reads samples from the board, answers host commands (start, stop, status) and the
session page's requests (contact check, start, stop), runs the electrode contact check, feeds
the guided session, runs the live signal check and sends a STATUS message about once a
second, and rewrites ``<state_dir>/health.json`` every few seconds. After each session it writes ``<state_dir>/last_result.json``
and keeps the session's log under ``<state_dir>/sessions/``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.acquisition import Acquisition
from edge.bundle import load_bundle
from edge.config import DeviceConfig
from edge.contact import BOARDS as CONTACT_BOARDS
from edge.contact import ContactCheck
from edge.errors import ErrorCode, HotspotError
from edge.montage import mirror_channel_name
from edge.protocol import LIVE_TRIAL, MessageType, SessionState, Sequencer
from edge.quality import assess_window
from edge.session import GuidedSession, verdict_faults
from edge.sessionlog import SessionLog

logger = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
HEALTH_INTERVAL_S = 5.0
READ_WAIT_S = 0.02
NO_SIGNAL_AFTER_S = 1.0
MAX_GAP_S = 10.0
LIVE_WINDOW_S = 1.0


def software_version() -> str:
    """The installed hotspot-edge version ("unknown" when run from a source tree)."""
    try:
        return importlib.metadata.version("hotspot-edge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so a reader never sees a half-written file (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=float)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def worn_channels(config: DeviceConfig, model_channels: list[str]) -> list[str]:
    """The electrodes to read, in model order (mirrored for a right-hemisphere hotspot).

    Raises
    ------
    HotspotError
        ``MISSING_CHANNELS`` naming the electrodes the config does not map.
    """
    mirrored = config.session.hotspot_hemisphere == "right"
    names = [mirror_channel_name(name) if mirrored else name for name in model_channels]
    missing = [name for name in names if name not in config.channels]
    if missing:
        side = " (mirrored: the patient moves the left hand)" if mirrored else ""
        raise HotspotError(f"{config.path}: the bundle's model needs electrode(s) {', '.join(missing)}{side} but "
                           f"[channels] maps only {', '.join(config.channels)}; wire and map them",
                           ErrorCode.MISSING_CHANNELS)
    return names


def check_bundle(config: DeviceConfig):
    """Load and verify the configured bundle (signature, hashes, golden vectors) and the channel map.

    Returns
    -------
    bundle : edge.bundle.Bundle
    channels : list of str
        The worn electrodes in model order.
    """
    bundle = load_bundle(config.bundle_path, config.public_key)
    return bundle, worn_channels(config, bundle.channels)


class Runtime:
    """The device's main loop.

    Parameters
    ----------
    config : DeviceConfig
    once : bool
        Exit after the first session's result (demo, tests) instead of waiting for the next start.
    links : list, optional
        Report links (objects with ``send``, ``flush``, ``poll_commands``, ``close``); by default
        they are opened from the config.
    """

    def __init__(self, config: DeviceConfig, once: bool = False, links: list | None = None) -> None:
        self.config, self.once = config, once
        self.bundle, self.channels = check_bundle(config)
        self.board_inputs = [config.channels[name] for name in self.channels]
        self.links = self._open_links() if links is None else links
        self.sequencer = Sequencer()
        self.session: GuidedSession | None = None
        self.session_log: SessionLog | None = None
        self.start_requested = config.session.autostart
        self.stopping = False
        self.stopped = False
        self.samples = 0
        self.lost = 0
        self.reconnects = 0
        self.last_sample_time = 0.0
        self.next_index: int | None = None
        self.last_result: dict | None = None
        self.sessions_done = 0
        window = int(round(LIVE_WINDOW_S * self.bundle.spec.sfreq))
        self.recent = np.full((len(self.channels), window), np.nan)
        self.live_ok = False
        self.acquisition: Acquisition | None = None
        self.contact_check: ContactCheck | None = None
        self.contact_results: list[dict] = []
        self.contact_passed: bool | None = None
        self.page = self._make_page() if config.page.enabled else None

    @property
    def contact_available(self) -> bool:
        """The board has a lead-off current source (a Cyton)."""
        return self.config.board.type in CONTACT_BOARDS

    def _make_page(self):
        from edge.pagestate import PageState
        from edge.webpage import PageServer

        state = PageState(self.channels, self.bundle.electrodes, self.config.session.hand, self.contact_available,
                          self.config.contact.required, self.config.board.clock_scale)
        return PageServer(self.config.page, state)

    def _open_links(self) -> list:
        links = []
        if self.config.serial is not None:
            from edge.serial_link import SerialLink

            links.append(SerialLink(self.config.serial.port, self.config.serial.baud))
        if self.config.ble.enabled:
            from edge.ble import BleLink

            links.append(BleLink(self.config.ble.name))
        return links

    # --- reporting -------------------------------------------------------------------------
    def emit(self, message_type: MessageType, **fields) -> None:
        """Send one message over every report link (and show it on the session page)."""
        message = self.sequencer.message(message_type, **fields)
        for link in self.links:
            link.send(message)
        if self.page is not None:
            self.page.update(lambda state: state.on_message(message))

    def _hello(self) -> None:
        self.emit(MessageType.HELLO, device_id=self.config.device_id, bundle_id=self.bundle.bundle_id,
                  software=software_version(), channels=self.channels,
                  hemisphere=self.config.session.hotspot_hemisphere)

    @property
    def receiving(self) -> bool:
        """Samples arrived within the last second."""
        return time.monotonic() - self.last_sample_time < NO_SIGNAL_AFTER_S

    @property
    def signal_ok(self) -> bool:
        """Samples arrive and the last second of them passes the signal-quality check."""
        return self.receiving and self.live_ok

    def _live_check(self) -> None:
        """Check the last second of signal (as the OpenBCI GUI's signal check) and report faults."""
        if self.samples < self.recent.shape[1]:
            return
        if self.contact_check is not None:
            return  # the lead-off current is on one electrode: the signal is not the EEG's
        verdict = assess_window(self.recent, self.channels, self.bundle.spec.quality)
        if self.page is not None and self.receiving:
            self.page.update(lambda state: state.set_signal(verdict.channel_states(), verdict.per_channel))
        was_ok, self.live_ok = self.live_ok, verdict.ok and self.receiving
        if not self.receiving:
            faults = [("all", "no_signal")]
        else:
            faults = verdict_faults(verdict, self.channels, self.channels)
        if self.live_ok != was_ok or not self.live_ok:
            self.emit(MessageType.QUALITY, trial=LIVE_TRIAL, ok=int(self.live_ok), faults=[(c, f, 1) for c, f in faults])

    @property
    def state(self) -> SessionState:
        """What the STATUS message says the device is doing."""
        if not self.receiving:
            return SessionState.NO_SIGNAL
        if self.session is not None:
            return SessionState.RUNNING
        return SessionState.DONE if self.last_result is not None else SessionState.IDLE

    def _status(self) -> None:
        session = self.session
        self.emit(MessageType.STATUS, state=int(self.state),
                  trial=session.current_trial if session else 0,
                  n_trials=self.config.session.trials, n_good=session.n_good if session else 0,
                  samples=self.samples & 0xFFFFFFFF, lost=self.lost & 0xFFFFFFFF, signal_ok=int(self.signal_ok))

    def health(self) -> dict:
        """What health.json says (read by the deploy tooling and ``invoke device-status``).

        ``status`` is about the runtime itself: "healthy" while its loop runs with a verified
        bundle (whether or not a headset is on), "stopped" after it exits; ``signal`` says
        whether samples arrive and pass the live check ("ok", "poor" or "none").
        """
        signal_state = "ok" if self.signal_ok else ("poor" if self.receiving else "none")
        return {"status": "stopped" if self.stopped else "healthy", "signal": signal_state,
                "bundle_id": self.bundle.bundle_id, "config": str(self.config.path),
                "pid": os.getpid(), "time": _now(), "device_id": self.config.device_id,
                "session": "running" if self.session else "idle", "samples": self.samples, "lost": self.lost,
                "reconnects": self.reconnects, "sessions_done": self.sessions_done,
                "links": {link.name: link.stats() for link in self.links},
                "page": self.page.url if self.page is not None else None,
                "contact": {"passed": self.contact_passed, "electrodes": self.contact_results}}

    def write_health(self) -> None:
        """Rewrite ``<state_dir>/health.json``."""
        write_json_atomic(self.config.state_dir / "health.json", self.health())

    # --- control ---------------------------------------------------------------------------
    def _handle(self, command) -> None:
        """Session control from a host: START, STOP, or STATUS_REQUEST (answered with HELLO)."""
        if command.type == MessageType.STATUS_REQUEST:
            self._hello()
        elif command.type == MessageType.START:
            self._request_start()
        elif command.type == MessageType.STOP:
            self._request_stop("stopped by the host")
        self._status()

    def _request_start(self) -> None:
        if self.session is not None or self.contact_check is not None:
            return
        if self.config.contact.required and self.contact_available and not self.contact_passed:
            reason = ("electrode contact check not passed; check the electrodes on the session page first"
                      if self.contact_passed is False else
                      "no electrode contact check yet; check the electrodes on the session page first")
            self.emit(MessageType.ERROR, code=int(ErrorCode.BAD_ARGUMENT), message=f"start refused: {reason}")
            return
        self.start_requested = True

    def _request_stop(self, reason: str) -> None:
        self.start_requested = False
        if self.session is not None:
            self._end_session(self.session.stop(reason))

    def _page_requests(self) -> None:
        """What paired users asked for on the session page."""
        for request in self.page.take_requests():
            if request == "start":
                self._request_start()
            elif request == "stop":
                self._request_stop("stopped on the session page")
            elif request == "contact" and self.session is None and self.contact_check is None:
                self._start_contact_check()

    # --- electrode contact check -------------------------------------------------------------
    def _start_contact_check(self) -> None:
        if not self.contact_available or self.acquisition is None:
            return
        self.contact_passed, self.contact_results = None, []
        self.contact_check = ContactCheck(self.channels, self.board_inputs, self.bundle.spec.sfreq,
                                          self.acquisition.config_board)
        self._show_contact()

    def _contact_step(self, data: np.ndarray, reconnected: bool) -> None:
        check = self.contact_check
        measuring = check.measuring
        if reconnected:
            check.abort()
        else:
            check.push(data)
        if check.done:
            self.contact_check = None
            self.contact_results = [result.to_dict() for result in check.results]
            self.contact_passed = check.passed
            self._show_contact()
        elif check.measuring != measuring:
            self._show_contact()

    def _show_contact(self) -> None:
        if self.page is None:
            return
        check = self.contact_check
        results = [r.to_dict() for r in check.results] if check is not None else list(self.contact_results)
        running, measuring, passed = check is not None, check.measuring if check else None, self.contact_passed
        self.page.update(lambda state: state.set_contact(running, measuring, results, passed))

    def _start_session(self) -> None:
        self.start_requested = False
        self.session_log = SessionLog.new(self.config.state_dir / "sessions")
        provenance = self.bundle.manifest.get("provenance") or {}
        self.session_log.append("start", device_id=self.config.device_id, bundle_id=self.bundle.bundle_id,
                                channels=self.channels, hemisphere=self.config.session.hotspot_hemisphere,
                                schedule={k: getattr(self.config.session, k) for k in
                                          ("trials", "lead_in_s", "rest_s", "move_s", "post_s")},
                                provenance={k: provenance.get(k) for k in ("data_hash", "code_version")},
                                erd_bands=[list(band) for band in self.bundle.spec.bands],
                                contact=self.contact_results)
        self.session = GuidedSession(self.config.session, self.bundle, self.emit, self.session_log)
        if self.page is not None:
            self.page.update(lambda state: state.session_reset())

    def _end_session(self, result) -> None:
        record = {"device_id": self.config.device_id, "bundle_id": self.bundle.bundle_id, "time": _now(),
                  "hemisphere": self.config.session.hotspot_hemisphere, "channels": self.channels,
                  "lost_samples": self.lost, **result.to_dict()}
        write_json_atomic(self.config.state_dir / "last_result.json", record)
        if self.page is not None:
            self.page.update(lambda state: state.set_result(record))
        self.session_log.close()
        self.session, self.session_log, self.last_result = None, None, record
        self.sessions_done += 1
        if self.once:
            self.stopping = True

    def _samples(self, chunk) -> np.ndarray:
        """The chunk's samples with NaN columns for any gap in the sample index."""
        data = np.asarray(chunk.data_uv, dtype=np.float64)
        index = np.asarray(chunk.sample_index)
        if self.next_index is not None and index.size and index[0] > self.next_index:
            gap = int(min(index[0] - self.next_index, MAX_GAP_S * self.bundle.spec.sfreq))
            data = np.concatenate([np.full((data.shape[0], gap), np.nan), data], axis=1)
            self.lost += gap
        if index.size:
            self.next_index = int(index[-1]) + 1
        return data

    def step(self, chunk) -> None:
        """Handle one chunk from the board (possibly empty) and the host's commands."""
        for link in self.links:
            for command in link.poll_commands():
                self._handle(command)
        if self.page is not None:
            self._page_requests()
        if chunk is not None:
            self.lost += int(chunk.lost)
            self.reconnects += int(bool(chunk.reconnected))
            if self.contact_check is not None and chunk.reconnected:
                self._contact_step(np.empty((len(self.channels), 0)), reconnected=True)
            if chunk.data_uv.shape[1]:
                data = self._samples(chunk)
                self.samples += data.shape[1]
                self.recent = np.concatenate([self.recent, data], axis=1)[:, -self.recent.shape[1]:]
                self.last_sample_time = time.monotonic()
                if self.contact_check is not None:
                    self._contact_step(data, reconnected=False)
                elif self.session is None and self.start_requested:
                    self._start_session()
                if self.session is not None:
                    self.session.push(data)
                    if self.session.done:
                        self._end_session(self.session.result)
        for link in self.links:
            link.flush()

    def run(self, acquisition_factory: Callable[..., Acquisition] = Acquisition) -> int:
        """Run until SIGTERM/SIGINT (or, with ``once``, the first result); return the exit code."""
        board = self.config.board
        acquisition = acquisition_factory(board=board.type, serial_port=board.serial_port,
                                          file=str(board.file) if board.file else None,
                                          eeg_channels=self.board_inputs, clock_scale=board.clock_scale)
        if abs(acquisition.sampling_rate - self.bundle.spec.sfreq) > 1e-6:
            raise HotspotError(f"board type {board.type} samples at {acquisition.sampling_rate:g} Hz but the bundle's "
                               f"model expects {self.bundle.spec.sfreq:g} Hz; use a bundle trained for this board",
                               ErrorCode.BAD_SAMPLING_RATE)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.acquisition = acquisition
        try:
            if self.page is not None:
                logger.info("session page at %s", self.page.start())
            acquisition.start(wait_s=None)
            self.last_sample_time = time.monotonic()
            self._hello()
            next_status = next_health = 0.0
            while not self.stopping:
                self.step(acquisition.read(timeout_s=READ_WAIT_S))
                now = time.monotonic()
                if now >= next_status:
                    self._live_check()
                    self._status()
                    next_status = now + STATUS_INTERVAL_S
                if now >= next_health:
                    self.write_health()
                    next_health = now + HEALTH_INTERVAL_S
        except Exception as err:
            # Tell the host before the service manager restarts us; the session log keeps the trials.
            code = err.code if isinstance(err, HotspotError) else 0
            self.emit(MessageType.ERROR, code=int(code), message=f"runtime stopped: {err}"[:255])
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            acquisition.stop()
            if self.page is not None:
                self.page.close()
            self.stopped = True
            self._status()
            self.write_health()
            for link in self.links:
                link.close()
            if self.session_log is not None:
                self.session_log.append("interrupted", trials_done=len(self.session.outcomes))
                self.session_log.close()
        return 0

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True
