"""Device configuration: the documented example loads; every mistake gives one clear error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.config import load_config, parse_config
from edge.errors import ErrorCode, HotspotError

EXAMPLE = Path(__file__).resolve().parents[1] / "hardware" / "example-device.toml"


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def test_example_config_loads_and_resolves_paths_against_its_folder() -> None:
    config = load_config(EXAMPLE)
    folder = EXAMPLE.parent
    assert config.device_id == "pt-0042"
    assert config.state_dir == Path("/var/lib/hotspot-edge")
    assert config.bundle_path == folder / "bundle"
    assert config.public_key == folder / "keys" / "signing.pub"
    assert config.board.type == "cyton" and config.board.serial_port == "/dev/openbci"
    assert config.board.clock_scale == 1.0
    assert config.channels == {"FC3": 1, "C5": 2, "C3": 3, "C1": 4, "CP3": 5}
    assert config.serial.port == "/dev/ttyGS0" and config.serial.baud == 115200
    assert not config.ble.enabled
    assert config.session.trials == 20 and config.session.hotspot_hemisphere == "left"
    assert config.session.min_consistency == 0.0
    assert config.page.enabled and config.page.listen == "0.0.0.0" and config.page.port == 8080
    assert config.page.pairing_code == "593027" and config.contact.required


def test_page_and_contact_tables_are_optional() -> None:
    data = example()
    del data["page"], data["contact"]
    config = parse_config(data, EXAMPLE)
    assert not config.page.enabled and config.contact.required


def test_absolute_paths_are_kept_and_relative_ones_resolve_against_the_file(tmp_path: Path) -> None:
    data = example()
    data["bundle"]["path"] = str(tmp_path / "b")
    data["device"]["state_dir"] = "state"
    config = parse_config(data, tmp_path / "sub" / "device.toml")
    assert config.bundle_path == tmp_path / "b"
    assert config.state_dir == (tmp_path / "sub" / "state").resolve()


def test_left_hand_means_right_hemisphere() -> None:
    data = example()
    data["session"]["hand"] = "left"
    assert parse_config(data, EXAMPLE).session.hotspot_hemisphere == "right"


def _edit(path: tuple[str, ...], value) -> dict:
    data = example()
    table = data
    for key in path[:-1]:
        table = table[key]
    if value is None:
        del table[path[-1]]
    else:
        table[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("device", "id"), "Jane Doe", r"\[device\] id = 'Jane Doe' must be a pseudonym"),
    (("device", "id"), None, r"\[device\] id is missing"),
    (("board", "type"), "ganglion", r"\[board\] type = 'ganglion' must be one of cyton, cyton_daisy"),
    (("board", "serial_port"), None, r"\[board\] serial_port is missing"),
    (("board", "baud"), 3, r"\[board\] has unknown key\(s\) baud"),
    (("board", "clock_scale"), 0, r"\[board\] clock_scale"),
    (("channels",), {"C3": 1, "C1": 2}, r"maps 2 electrodes; map 5 to 9"),
    (("channels", "C3"), 9, r"\[channels\] C3 = 9 must be a board input 1..8 for board type cyton"),
    (("channels", "C3"), 1, r"C3 and FC3 both use board input 1"),
    (("channels", "Cz3"), 6, r"'Cz3' is not a 10-05 electrode name"),
    (("bundle", "public_key"), None, r"\[bundle\] public_key is missing"),
    (("links", "serial", "baud"), "fast", r"\[links.serial\] baud = 'fast' must be an integer"),
    (("session", "trials"), 0, r"\[session\] trials = 0 must be in 1..1000"),
    (("session", "min_good_trials"), 30, r"min_good_trials = 30 is more than trials = 20"),
    (("session", "hand"), "both", r"hand = 'both' must be one of right, left"),
    (("session", "autostart"), 1, r"autostart = 1 must be true or false"),
    (("session", "min_consistency"), 1.5, r"\[session\] min_consistency = 1.5 must be in 0.0..1.0"),
    (("session", "min_confidence"), 0.5, r"min_confidence is now min_consistency .* rename the key"),
    (("session",), None, r"missing table \[session\]"),
    (("links", "ble"), {"name": "Jane's Pi \x1b[2J"}, r"\[links.ble\] name = .* must be 1-12 letters"),
    (("links", "ble"), {"name": "hotspot-edge-of-the-living-room"}, r"must be 1-12 letters"),
    (("links", "ble"), {"name": "PT-0042-pi"}, r"\[links.ble\] name = 'PT-0042-pi' contains the device id"),
    (("page", "pairing_code"), "12345", r"\[page\] pairing_code must be 6 to 12 digits"),
    (("page", "pairing_code"), "12345a", r"\[page\] pairing_code must be 6 to 12 digits"),
    (("page", "pairing_code"), "111111", r"pairing_code = '111111' repeats one digit"),
    (("page", "pairing_code"), None, r"\[page\] pairing_code is missing"),
    (("page", "listen"), "8.8.8.8", r"\[page\] listen = '8.8.8.8' is a public address"),
    (("page", "listen"), "pi.local", r"\[page\] listen = 'pi.local' must be an IP address"),
    (("page", "port"), 70000, r"\[page\] port = 70000 must be in 0..65535"),
    (("page", "enabled"), "yes", r"\[page\] enabled = 'yes' must be true or false"),
    (("page", "theme"), "dark", r"\[page\] has unknown key\(s\) theme"),
    (("contact", "required"), 1, r"\[contact\] required = 1 must be true or false"),
])
def test_mistakes_are_named(path: tuple[str, ...], value, expected: str) -> None:
    with pytest.raises(HotspotError, match=expected) as info:
        parse_config(_edit(path, value), EXAMPLE)
    assert info.value.code == ErrorCode.BAD_CONFIG


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(HotspotError, match="cannot read device config") as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.code == ErrorCode.BAD_FILE
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\nid = 1")
    with pytest.raises(HotspotError, match="is not valid TOML"):
        load_config(bad)
