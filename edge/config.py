"""The device's TOML configuration, validated once at start with one clear error per problem.

Relative paths in the file (state folder, bundle, public key, playback file) resolve against
the folder the configuration file is in, so a release folder can be moved as a whole.
See ``hardware/example-device.toml`` for a documented example.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.board import BOARD_TYPES, load_board
from edge.errors import ErrorCode, HotspotError
from edge.validation import REQUIRED, Table, read_toml

HANDS = ("right", "left")
MIN_CHANNELS, MAX_CHANNELS = 5, 9
_ELECTRODE_NAME = re.compile(r"^(Fp|AFp|[A-Z]{1,4})(\d{1,2}h?|z)$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BLE_NAME = re.compile(r"^[A-Za-z0-9-]{1,12}$")
"""An advertised name: short (it shares a 31-byte advertisement with the service UUID), no free text."""
_PAIRING_CODE = re.compile(r"^[0-9]{6,12}$")


@dataclass(frozen=True)
class BoardConfig:
    """Which OpenBCI board (BrainFlow board) to read and where it is."""

    type: str
    serial_port: str
    file: Path | None
    clock_scale: float = 1.0


@dataclass(frozen=True)
class SerialLinkConfig:
    """The serial report link (a USB gadget or UART to a host running ``invoke monitor``)."""

    port: str
    baud: int


@dataclass(frozen=True)
class BleLinkConfig:
    """The BLE report link (a GATT peripheral on the Pi's radio; ``name`` is advertised to anyone nearby)."""

    enabled: bool
    name: str


@dataclass(frozen=True)
class PageConfig:
    """The session page the device serves on the local network (see ``edge/webpage.py``).

    Attributes
    ----------
    enabled : bool
    listen : str
        The address to listen on: a loopback, private or link-local address, or ``0.0.0.0`` / ``::``
        for every interface (requests from outside the local network are refused either way).
    port : int
        TCP port; 0 lets the system choose a free one (tests, the demo): the address the page got is
        written to ``health.json``.
    pairing_code : str
        6-12 digits a user types to start or stop a session (without it the page is read-only).
    """

    enabled: bool
    listen: str
    port: int
    pairing_code: str


@dataclass(frozen=True)
class ContactConfig:
    """The electrode contact (lead-off impedance) check before a session.

    Attributes
    ----------
    required : bool
        A session may start only after a check in which no electrode was poor (Cyton boards; other
        boards have no lead-off current and skip it). An ``autostart`` session starts at once.
    """

    required: bool


@dataclass(frozen=True)
class SessionConfig:
    """The guided session: cue schedule and how many good trials a hotspot needs.

    The session opens with ``lead_in_s`` of quiet, then each trial is ``rest_s`` of rest (cue
    ``rest``), ``move_s`` of hand movement (cue ``move``, the epoching cue) and ``post_s`` of
    stillness (cue ``stop``); times count from the session's first sample.

    Consistency is the share of good trials whose prediction lies within ``agreement_mm`` of the
    session's prediction: trial agreement, not accuracy (the 90 % radius is the accuracy). A
    session whose consistency is below ``min_consistency`` (default 0: never) is a redo.
    """

    trials: int
    lead_in_s: float
    rest_s: float
    move_s: float
    post_s: float
    min_good_trials: int
    min_consistency: float
    agreement_mm: float
    hand: str
    autostart: bool

    @property
    def hotspot_hemisphere(self) -> str:
        """The hemisphere the hotspot is in: contralateral to the moving hand."""
        return "left" if self.hand == "right" else "right"


@dataclass(frozen=True)
class DeviceConfig:
    """The whole validated device configuration.

    Attributes
    ----------
    path : Path
        The configuration file (absolute).
    device_id : str
        Pseudonymous device/patient id (never a name); written to logs and results.
    state_dir : Path
        Where the runtime writes health.json, last_result.json and session logs.
    board : BoardConfig
    channels : dict of str to int
        10-05 electrode name to board input (1-based, as printed on the board: N1P = 1).
    bundle_path, public_key : Path
        The signed model bundle and the ed25519 public key that must have signed it.
    serial : SerialLinkConfig or None
        None when no serial link is configured.
    ble : BleLinkConfig
    session : SessionConfig
    page : PageConfig
    contact : ContactConfig
    """

    path: Path
    device_id: str
    state_dir: Path
    board: BoardConfig
    channels: dict[str, int]
    bundle_path: Path
    public_key: Path
    serial: SerialLinkConfig | None
    ble: BleLinkConfig
    session: SessionConfig
    page: PageConfig
    contact: ContactConfig

    def to_dict(self, base: Path | None = None) -> dict:
        """The TOML document of this configuration: :func:`parse_config` reads it back to an equal one.

        Parameters
        ----------
        base : Path, optional
            Paths inside this folder are written relative to it, others absolute (default: the
            folder of :attr:`path`). Give the folder the document will be read from.

        Returns
        -------
        dict
            Every table with every key (defaults written out); hardware.device_config writes it as TOML.
        """
        base = self.path.parent if base is None else base

        def written(path: Path) -> str:
            return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)

        board = {"type": self.board.type, "serial_port": self.board.serial_port, "clock_scale": self.board.clock_scale}
        if self.board.file is not None:
            board["file"] = written(self.board.file)
        links: dict = {"ble": {"enabled": self.ble.enabled, "name": self.ble.name}}
        if self.serial is not None:
            links["serial"] = {"port": self.serial.port, "baud": self.serial.baud}
        return {"device": {"id": self.device_id, "state_dir": written(self.state_dir)}, "board": board,
                "channels": dict(self.channels),
                "bundle": {"path": written(self.bundle_path), "public_key": written(self.public_key)},
                "links": links, "session": dataclasses.asdict(self.session), "page": dataclasses.asdict(self.page),
                "contact": dataclasses.asdict(self.contact)}


def _fail(path: Path, message: str) -> HotspotError:
    return HotspotError(f"{path}: {message}", ErrorCode.BAD_CONFIG)


EXAMPLE_HINT = "see hardware/example-device.toml"


def _table(path: Path, name: str, data: Any, required: bool = True) -> Table:
    return Table(data, name, path, required, EXAMPLE_HINT)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _channels(path: Path, table: Any, board_type: str) -> dict[str, int]:
    if not isinstance(table, dict) or not table:
        raise _fail(path, "missing table [channels] (10-05 name = board input, e.g. C3 = 3)")
    if not MIN_CHANNELS <= len(table) <= MAX_CHANNELS:
        raise _fail(path, f"[channels] maps {len(table)} electrodes; map {MIN_CHANNELS} to {MAX_CHANNELS} "
                          "motor-area electrodes")
    n_inputs = load_board(board_type).n_channels
    channels: dict[str, int] = {}
    for name, board_input in table.items():
        if not _ELECTRODE_NAME.match(name):
            raise _fail(path, f"[channels] {name!r} is not a 10-05 electrode name (e.g. C3, FCC3h, CPz)")
        if isinstance(board_input, bool) or not isinstance(board_input, int) or not 1 <= board_input <= n_inputs:
            raise _fail(path, f"[channels] {name} = {board_input!r} must be a board input 1..{n_inputs} "
                              f"for board type {board_type}")
        if board_input in channels.values():
            other = next(key for key, value in channels.items() if value == board_input)
            raise _fail(path, f"[channels] {name} and {other} both use board input {board_input}")
        channels[name] = board_input
    return channels


def parse_config(data: dict, path: Path, base: Path | None = None) -> DeviceConfig:
    """Validate a parsed TOML document.

    Parameters
    ----------
    data : dict
        The parsed TOML.
    path : Path
        The file it came from.
    base : Path, optional
        The folder relative paths resolve against (default: the file's folder; deploy passes the
        release folder the file will run from).

    Returns
    -------
    DeviceConfig

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` naming the table, key and what is expected.
    """
    path = path.resolve()
    base = path.parent if base is None else base
    top = _table(path, "top level", data)
    top.check_known(("device", "board", "channels", "bundle", "links", "session", "page", "contact"))

    device = _table(path, "device", data.get("device"))
    device.check_known(("id", "state_dir"))
    device_id = device.string("id", REQUIRED)
    if not _DEVICE_ID.match(device_id):
        raise _fail(path, f"[device] id = {device_id!r} must be a pseudonym of 1-32 letters, digits, '-' or '_' "
                          "(never a patient's name)")
    state_dir = _resolve(base, device.string("state_dir", "state"))

    board_table = _table(path, "board", data.get("board"))
    board_table.check_known(("type", "serial_port", "file", "clock_scale"))
    board_type = board_table.string("type", REQUIRED, BOARD_TYPES)
    serial_port = board_table.string("serial_port", "")
    file_value = board_table.string("file", "")
    link = load_board(board_type).link
    if link == "serial" and not serial_port:
        raise _fail(path, f"[board] serial_port is missing; board type {board_type} needs the dongle's port "
                          "(e.g. /dev/ttyUSB0)")
    if link == "file" and not file_value:
        raise _fail(path, f"[board] file is missing; board type {board_type} needs a BrainFlow recording file")
    clock_scale = board_table.number("clock_scale", 1.0, 0.01, 100.0)
    board = BoardConfig(board_type, serial_port, _resolve(base, file_value) if file_value else None, clock_scale)

    channels = _channels(path, data.get("channels"), board_type)

    bundle = _table(path, "bundle", data.get("bundle"))
    bundle.check_known(("path", "public_key"))
    bundle_path = _resolve(base, bundle.string("path", REQUIRED))
    public_key = _resolve(base, bundle.string("public_key", REQUIRED))

    links = _table(path, "links", data.get("links"), required=False)
    links.check_known(("serial", "ble"))
    serial = None
    if "serial" in links.data:
        serial_table = _table(path, "links.serial", links.data["serial"])
        serial_table.check_known(("port", "baud"))
        serial = SerialLinkConfig(serial_table.string("port", REQUIRED),
                                  serial_table.integer("baud", 115200, 1200, 4_000_000))
    ble_table = _table(path, "links.ble", links.data.get("ble"), required=False)
    ble_table.check_known(("enabled", "name"))
    ble = BleLinkConfig(ble_table.boolean("enabled", False), ble_table.string("name", "hotspot-edge"))
    if not _BLE_NAME.match(ble.name):
        raise _fail(path, f"[links.ble] name = {ble.name!r} must be 1-12 letters, digits or '-' (it is broadcast to "
                          "anyone nearby: a generic or pseudonymous name, never a person's name)")
    if len(device_id) >= 3 and device_id.lower() in ble.name.lower():
        raise _fail(path, f"[links.ble] name = {ble.name!r} contains the device id; the advertised name is public, "
                          "so use a name that does not identify the device (e.g. hotspot-edge)")

    session_table = _table(path, "session", data.get("session"))
    if "min_confidence" in session_table.data:
        raise _fail(path, "[session] min_confidence is now min_consistency (trial agreement is not accuracy; the "
                          "result's 90 % radius is): rename the key")
    session_table.check_known(("trials", "lead_in_s", "rest_s", "move_s", "post_s", "min_good_trials",
                               "min_consistency", "agreement_mm", "hand", "autostart"))
    trials = session_table.integer("trials", REQUIRED, 1, 1000)
    session = SessionConfig(
        trials=trials,
        lead_in_s=session_table.number("lead_in_s", 2.0, 0.0, 60.0),
        rest_s=session_table.number("rest_s", REQUIRED, 0.0, 60.0),
        move_s=session_table.number("move_s", REQUIRED, 0.1, 60.0),
        post_s=session_table.number("post_s", 0.0, 0.0, 60.0),
        min_good_trials=session_table.integer("min_good_trials", REQUIRED, 1, 1000),
        min_consistency=session_table.number("min_consistency", 0.0, 0.0, 1.0),
        agreement_mm=session_table.number("agreement_mm", 10.0, 0.1, 100.0),
        hand=session_table.string("hand", "right", HANDS),
        autostart=session_table.boolean("autostart", False),
    )
    if session.min_good_trials > trials:
        raise _fail(path, f"[session] min_good_trials = {session.min_good_trials} is more than trials = {trials}")
    contact_table = _table(path, "contact", data.get("contact"), required=False)
    contact_table.check_known(("required",))
    contact = ContactConfig(contact_table.boolean("required", True))
    return DeviceConfig(path, device_id, state_dir, board, channels, bundle_path, public_key, serial, ble, session,
                        _page(path, data.get("page")), contact)


def _page(path: Path, data: Any) -> PageConfig:
    table = _table(path, "page", data, required=False)
    table.check_known(("enabled", "listen", "port", "pairing_code"))
    enabled = table.boolean("enabled", False)
    listen = table.string("listen", "0.0.0.0")
    try:
        address = ipaddress.ip_address(listen)
    except ValueError:
        raise _fail(path, f"[page] listen = {listen!r} must be an IP address (0.0.0.0 for every interface, "
                          "127.0.0.1 for this machine only)") from None
    if not (address.is_unspecified or address.is_loopback or address.is_private or address.is_link_local):
        raise _fail(path, f"[page] listen = {listen!r} is a public address; the page serves the local network "
                          "only: use 0.0.0.0 or the device's private address")
    port = table.integer("port", 8080, 0, 65535)
    code = table.string("pairing_code", "" if not enabled else REQUIRED)
    if enabled and not _PAIRING_CODE.match(code):
        raise _fail(path, "[page] pairing_code must be 6 to 12 digits (print it on the device's label)")
    if enabled and len(set(code)) == 1:
        raise _fail(path, f"[page] pairing_code = {code!r} repeats one digit; choose a random code")
    return PageConfig(enabled, listen, port, code)


def load_config(path: str | Path, base: Path | None = None) -> DeviceConfig:
    """Read and validate a device configuration file.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    base : Path, optional
        The folder relative paths resolve against (default: the file's folder).

    Returns
    -------
    DeviceConfig

    Raises
    ------
    HotspotError
        ``BAD_FILE`` when it cannot be read, ``BAD_CONFIG`` when it is not valid.
    """
    path = Path(path)
    data = read_toml(path, "device config", "pass --config with a TOML file (see hardware/example-device.toml)")
    return parse_config(data, path, base)
