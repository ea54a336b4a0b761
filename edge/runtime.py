"""The device runtime: board → guided session → report links and the session page, with health and result files.

One loop reads samples from the board, answers host commands (start, stop, status) and the
session page's requests (contact check, start, stop), runs the electrode contact check, feeds
the guided session, runs the live signal check and sends a STATUS message about once a
second, and rewrites ``<state_dir>/health.json`` every few seconds. After each session it writes ``<state_dir>/last_result.json``
and keeps the session's log under ``<state_dir>/sessions/``.

The board's link events (stalls, recoveries, duplicates dropped, packets rejected, counter
re-alignments) go into the session log. A board whose measured sampling rate is more than 2 % off
its declared rate stops the session with a redo that says so (state FAULT until the rate is right).

A storage fault (read-only or full SD card) never stops the runtime: the session's records stay in
memory, the session finishes and its result is reported over the links with an ERROR saying the log
could not be written; ``health.json`` says ``degraded: storage`` while the fault lasts (rewritten in
place when there is no room for a new file).
"""

from __future__ import annotations

import collections
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

from edge.acquisition import Acquisition, StatusChange
from edge.board import load_board
from edge.bundle import load_bundle
from edge.config import DeviceConfig
from edge.contract import ModelContract
from edge.contact import ContactCheck
from edge.errors import ErrorCode, HotspotError
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
HEALTH_BYTES = 4096
"""health.json is padded to this size so that it can be rewritten in place on a full disk."""
BOARD_COUNTERS = ("duplicates", "rejected", "realigned", "misordered")


def software_version() -> str:
    """The installed hotspot-edge version ("unknown" when run from a source tree)."""
    try:
        return importlib.metadata.version("hotspot-edge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _json_bytes(data: dict, pad_to: int = 0) -> bytes:
    text = json.dumps(data, indent=2, default=float) + "\n"
    return text.ljust(pad_to).encode("utf-8")


def write_json_atomic(path: Path, data: dict, pad_to: int = 0) -> None:
    """Write JSON so a reader never sees a half-written file (write, fsync, rename).

    Parameters
    ----------
    path : Path
    data : dict
    pad_to : int
        Pad with spaces to this many bytes (JSON allows trailing white space), so that the file can
        later be rewritten in place (:func:`rewrite_json_in_place`).

    Raises
    ------
    OSError
        When the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(_json_bytes(data, pad_to))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def rewrite_json_in_place(path: Path, data: dict) -> None:
    """Overwrite an existing (padded) JSON file without allocating space: for a full disk.

    Raises
    ------
    OSError
        When the file is missing, read-only, or too small for ``data``.
    """
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        content = _json_bytes(data, size)
        if len(content) > size:
            raise OSError(f"{path} is too small to be rewritten in place")
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def worn_channels(config: DeviceConfig, contract: ModelContract) -> list[str]:
    """The electrodes to read, in model order (:meth:`edge.contract.ModelContract.wearing` for the session's hand).

    Raises
    ------
    HotspotError
        ``MISSING_CHANNELS`` naming the electrodes the config does not map.
    """
    wearing = contract.wearing(config.session.hand)
    names = list(wearing.electrodes)
    missing = [name for name in names if name not in config.channels]
    if missing:
        side = " (mirrored: the patient moves the left hand)" if wearing.mirrored else ""
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
    return bundle, worn_channels(config, bundle.contract)


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
        self.board_events: collections.deque[StatusChange] = collections.deque()
        self.board_counts = dict.fromkeys(BOARD_COUNTERS, 0)
        self.rate_fault: str | None = None
        self.result_error: OSError | None = None
        self.health_error: OSError | None = None
        self.storage_reported = False
        self.unflushed: list[SessionLog] = []  # ended sessions whose logs still hold unwritten records
        self.contact_check: ContactCheck | None = None
        self.contact_results: list[dict] = []
        self.contact_passed: bool | None = None
        self.page = self._make_page() if config.page.enabled else None

    @property
    def contact_available(self) -> bool:
        """The board has a lead-off current source (the ADS1299 of a live Cyton; edge.board)."""
        return load_board(self.config.board.type).ads1299

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
        if self.rate_fault is not None:
            return SessionState.FAULT
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

    @property
    def storage_problem(self) -> str | None:
        """What cannot be written right now (the session log, the result, health.json), or None."""
        logs = [log for log in (self.session_log, *self.unflushed) if log is not None]
        errors = [("session log", log.error) for log in logs]
        for what, error in (*errors, ("last_result.json", self.result_error), ("health.json", self.health_error)):
            if error is not None:
                return f"{what}: {error.strerror or error}"
        return None

    def retry_storage(self) -> None:
        """Write again what a storage fault held back: ended sessions' log records and the last result."""
        for log in list(self.unflushed):
            if log.flush():
                log.close()
                self.unflushed.remove(log)
        if self.result_error is not None and self.last_result is not None:
            try:
                write_json_atomic(self.config.state_dir / "last_result.json", self.last_result)
                self.result_error = None
            except OSError as err:
                self.result_error = err

    def health(self) -> dict:
        """What health.json says (read by the deploy tooling and ``invoke device-status``).

        ``status`` is about the runtime itself: "healthy" while its loop runs with a verified
        bundle (whether or not a headset is on), "degraded: storage" while the session log or the
        result cannot be written, "stopped" after it exits; ``signal`` says whether samples arrive
        and pass the live check ("ok", "poor" or "none").
        """
        signal_state = "ok" if self.signal_ok else ("poor" if self.receiving else "none")
        storage = self.storage_problem
        status = "stopped" if self.stopped else ("degraded: storage" if storage else "healthy")
        measured = self.acquisition.measured_hz if self.acquisition is not None else None
        return {"status": status, "storage": storage, "signal": signal_state,
                "board": {"measured_hz": None if measured is None else round(measured, 2),
                          "rate_fault": self.rate_fault, **self.board_counts},
                "bundle_id": self.bundle.bundle_id, "config": str(self.config.path),
                "pid": os.getpid(), "time": _now(), "device_id": self.config.device_id,
                "session": "running" if self.session else "idle", "samples": self.samples, "lost": self.lost,
                "reconnects": self.reconnects, "sessions_done": self.sessions_done,
                "links": {link.name: link.stats() for link in self.links},
                "page": self.page.url if self.page is not None else None,
                "contact": {"passed": self.contact_passed, "electrodes": self.contact_results}}

    def write_health(self) -> None:
        """Rewrite ``<state_dir>/health.json`` (in place when the disk has no room for a new file)."""
        path = self.config.state_dir / "health.json"
        try:
            write_json_atomic(path, self.health(), pad_to=HEALTH_BYTES)
            self.health_error = None
        except OSError as err:
            self.health_error = err
            try:
                rewrite_json_in_place(path, self.health())
            except OSError as second:
                logger.warning("cannot write %s: %s; then in place: %s", path, err, second)

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
        self.storage_reported = False
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
        self._log_board()
        log = self.session_log
        record = {"device_id": self.config.device_id, "bundle_id": self.bundle.bundle_id, "time": _now(),
                  "hemisphere": self.config.session.hotspot_hemisphere, "channels": self.channels,
                  "lost_samples": self.lost, **result.to_dict(),
                  "log": {"file": log.path.name, "written": log.error is None,
                          "unwritten_records": len(log.unwritten)}}
        try:
            write_json_atomic(self.config.state_dir / "last_result.json", record)
            self.result_error = None
        except OSError as err:
            self.result_error = err
        if self.page is not None:
            self.page.update(lambda state: state.set_result(record))
        self._report_storage(final=True)
        if log.unwritten:
            self.unflushed.append(log)
        else:
            log.close()
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

    def _report_storage(self, final: bool = False) -> None:
        """Say plainly, over the links, when the session log or the result cannot be written."""
        problem = self.storage_problem
        if problem is None or (self.storage_reported and not final):
            return
        self.storage_reported = True
        unwritten = len(self.session_log.unwritten) if self.session_log is not None else 0
        what = ("the result above is reported here only" if final else
                "the session goes on; its records are kept in memory")
        self.emit(MessageType.ERROR, code=int(ErrorCode.STORAGE_FAILED),
                  message=f"storage fault: cannot write the {problem} ({unwritten} record(s) not on disk); "
                          f"{what}; free space or replace the SD card"[:255])

    def _log_board(self) -> None:
        """Put the board's link events and time-base corrections of the last second into the session log."""
        counts = dict.fromkeys(BOARD_COUNTERS, 0)
        if self.acquisition is not None:
            stats = self.acquisition.stats
            counts = {name: int(getattr(stats, name)) for name in BOARD_COUNTERS}
        changed = {name: counts[name] - self.board_counts[name] for name in BOARD_COUNTERS
                   if counts[name] != self.board_counts[name]}
        self.board_counts = counts
        events = []
        while self.board_events:
            change = self.board_events.popleft()
            events.append({"status": change.status.value, "detail": change.detail})
        if self.session_log is not None and (changed or events):
            self.session_log.append("board", events=events, **changed)

    def _check_rate(self) -> None:
        """Stop the session when the board's measured sampling rate is more than 2 % off its declared rate."""
        acquisition = self.acquisition
        if acquisition is None or not acquisition.rate_off:
            self.rate_fault = None
            return
        declared = acquisition.sampling_rate
        fault = (f"the board samples at {acquisition.measured_hz:.0f} Hz, not its declared {declared:g} Hz "
                 f"(more than 2 % off): check the board's sample-rate setting, then redo the session")
        if self.rate_fault is None:
            self.emit(MessageType.ERROR, code=int(ErrorCode.BAD_SAMPLING_RATE), message=fault[:255])
        self.rate_fault = fault
        if self.session is not None:
            self.session_log.append("board", rate_fault=fault, measured_hz=round(acquisition.measured_hz, 2))
            self._end_session(self.session.stop(fault))

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
                elif self.session is None and self.start_requested and self.rate_fault is None:
                    self._start_session()
                if self.session is not None:
                    self.session.push(data)
                    self._report_storage()
                    if self.session.done:
                        self._end_session(self.session.result)
        for link in self.links:
            link.flush()

    def run(self, acquisition_factory: Callable[..., Acquisition] = Acquisition) -> int:
        """Run until SIGTERM/SIGINT (or, with ``once``, the first result); return the exit code."""
        board = self.config.board
        acquisition = acquisition_factory(board=board.type, serial_port=board.serial_port,
                                          file=str(board.file) if board.file else None,
                                          eeg_channels=self.board_inputs, clock_scale=board.clock_scale,
                                          on_status=self.board_events.append)
        self.acquisition = acquisition
        if abs(acquisition.sampling_rate - self.bundle.spec.sfreq) > 1e-6:
            raise HotspotError(f"board type {board.type} samples at {acquisition.sampling_rate:g} Hz but the bundle's "
                               f"model expects {self.bundle.spec.sfreq:g} Hz; use a bundle trained for this board",
                               ErrorCode.BAD_SAMPLING_RATE)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.page is not None:
                logger.info("session page at %s", self.page.start())
            acquisition.start(wait_s=None)
            self.last_sample_time = time.monotonic()
            self._hello()
            next_status = next_health = 0.0
            while not self.stopping:
                self.step(acquisition.read(timeout_s=READ_WAIT_S))
                self._check_rate()
                now = time.monotonic()
                if now >= next_status:
                    self._log_board()
                    self._live_check()
                    self._status()
                    next_status = now + STATUS_INTERVAL_S
                if now >= next_health:
                    self.retry_storage()
                    self.write_health()
                    next_health = now + HEALTH_INTERVAL_S
        except Exception as err:
            # Tell the host before the service manager restarts us; the session log keeps the trials.
            code = err.code if isinstance(err, HotspotError) else 0
            self.emit(MessageType.ERROR, code=int(code), message=f"runtime stopped: {err}"[:255])
            raise
        finally:
            # every step on its own: one failing must not skip the others or hide the first error
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            # the final status reaches the links and any open page before they close
            closers = [acquisition.stop, self._close_session, self._final_status,
                       *([self.page.close] if self.page is not None else []), *[link.close for link in self.links]]
            for action in closers:
                try:
                    action()
                except Exception:
                    logger.exception("while stopping: %s failed", getattr(action, "__qualname__", action))
        return 0

    def _close_session(self) -> None:
        """Record that the session in progress was interrupted (never raises on a storage fault)."""
        if self.session_log is not None:
            self._log_board()
            self.session_log.append("interrupted", trials_done=len(self.session.outcomes))
            self.session_log.close()

    def _final_status(self) -> None:
        self.stopped = True
        self._status()
        self.write_health()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True
