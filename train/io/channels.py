"""Channel names in MNE's 10-05 spelling and their template positions in the head frame.

Files spell electrodes in many ways: eegmmidb pads with dots and writes ``Fc3.``, ``C3..``,
``Cpz.``; other EDF writers add an ``EEG`` prefix or a ``-REF`` suffix. We strip those and match
the rest case-insensitively against the 10-05 names of the template montage (``train.head``),
which gives ``FC3``, ``C3``, ``CPz`` -- the same result as ``mne.datasets.eegbci.standardize``
for eegmmidb, for any file. Names that are not 10-05 electrodes are kept as written (stripped),
and their position is unknown (NaN).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from train.head import standard_positions_head_mm

_DECORATION = re.compile(r"^(?:EEG[\s_-]*)?(?P<name>.*?)(?:[\s_-]*(?:REF|LE|AVG))?$", re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def _by_upper_name() -> dict[str, str]:
    """Upper-case 10-05 name to MNE's spelling (the names are unique ignoring case)."""
    return {name.upper(): name for name in standard_positions_head_mm()}


def standardize_name(name: str) -> str:
    """Return the MNE 10-05 spelling of a channel label, or the stripped label if it is not one.

    Parameters
    ----------
    name : str
        A label as written in a file, e.g. ``"Fc3."``, ``"C3.."``, ``"EEG C3-REF"``.

    Returns
    -------
    str
        ``"FC3"``, ``"C3"``, ``"C3"`` for the examples; other labels stripped of dots and spaces.
    """
    stripped = name.strip().strip(".").strip()
    table = _by_upper_name()
    if stripped.upper() in table:
        return table[stripped.upper()]
    core = _DECORATION.match(stripped)["name"].strip(".").strip()
    return table.get(core.upper(), stripped)


def standardize_names(names: Sequence[str]) -> list[str]:
    """Standardise every label (see :func:`standardize_name`); duplicates keep their original label.

    Parameters
    ----------
    names : sequence of str
        Labels as written in a file.

    Returns
    -------
    list of str
        The standardised labels, in the same order.
    """
    standard = [standardize_name(name) for name in names]
    return [new if standard.count(new) == 1 else old.strip() for new, old in zip(standard, names)]


def template_positions(names: Sequence[str]) -> np.ndarray:
    """Return template head-frame positions (mm) of the named electrodes, NaN rows for unknown names.

    Parameters
    ----------
    names : sequence of str
        Standardised channel names.

    Returns
    -------
    ndarray, shape (n_channels, 3)
    """
    table = standard_positions_head_mm()
    return np.array([table.get(name, np.full(3, np.nan)) for name in names], dtype=float).reshape(-1, 3)
