"""Default electrode maps (10-05 name to board input), read from ``electrode_maps.toml`` and validated.

A map places a recording's channels on a board's inputs, e.g. for the board emulator's source. Each
OpenBCI board (:data:`edge.board.OPENBCI_BOARDS`) also has the OpenBCI GUI's default montage as map
``<board>_gui_default``, taken from BrainFlow's board description (:func:`edge.board.load_board`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from edge.board import OPENBCI_BOARDS, load_board
from edge.errors import ErrorCode, HotspotError
from edge.validation import Table, check_option, read_toml

MAPS_FILE = Path(__file__).with_name("electrode_maps.toml")
GUI_DEFAULT = "_gui_default"


@dataclass(frozen=True)
class ChannelMap:
    """Which 10-05 electrode sits on which board input.

    Attributes
    ----------
    name : str
        Map name.
    board : str
        Board type the map is for.
    channels : dict of str to int
        10-05 name to 1-based board input.
    """

    name: str
    board: str
    channels: dict[str, int]


@functools.cache
def _maps() -> dict[str, ChannelMap]:
    top = Table(read_toml(MAPS_FILE, "electrode maps"), "top level", MAPS_FILE)
    top.check_known(("maps",))
    maps = {f"{board}{GUI_DEFAULT}": ChannelMap(f"{board}{GUI_DEFAULT}", board,
                                                {name: i + 1 for i, name in enumerate(load_board(board).eeg_names)})
            for board in OPENBCI_BOARDS}
    tables = top.table("maps")
    for name in tables.data:
        table = tables.table(name)
        table.check_known(("board", "channels"))
        board = load_board(table.string("board", None, OPENBCI_BOARDS) or "")
        inputs = table.table("channels")
        channels = {key: inputs.integer(key, None, 1, board.n_channels) for key in inputs.data}
        if len(set(channels.values())) != len(channels):
            raise HotspotError(f"{MAPS_FILE}: map {name} uses a board input twice; fix the file", ErrorCode.BAD_CONFIG)
        maps[name] = ChannelMap(name, board.name, channels)
    return maps


def map_names() -> list[str]:
    """The names of the default electrode maps."""
    return sorted(_maps())


def load_map(name: str) -> ChannelMap:
    """The default electrode map ``name`` (10-05 name to board input), validated.

    Raises
    ------
    HotspotError
        ``BAD_CONFIG`` when the map is unknown or its file is invalid.
    """
    return _maps()[check_option(name, map_names(), "electrode map")]
