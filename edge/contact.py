"""Electrode contact check before a session: the Cyton's lead-off impedance, measured as the OpenBCI GUI does.

For one electrode at a time the GUI (``BoardCyton.setCheckingImpedanceCyton``) sends, through the
board's command channel (BrainFlow's ``config_board``), one string:

* ``x<ch>000100X``: channel on, gain x1, normal input, in the bias, SRB2 and SRB1 disconnected;
* ``z<ch><P><N>Z``: the ADS1299's lead-off current source on the N input (``z<ch>01Z``), where the
  electrodes of a Cyton are wired (SRB2 is the reference on the P side);

and afterwards restores the channel (``x<ch>060110X``: gain x24, SRB2 connected, the defaults) and
turns the current off (``z<ch>00Z``). ``<ch>`` is ``1``..``8`` and ``Q W E R T Y U I`` for the Daisy's
9..16. One electrode at a time, because lead-off mode disconnects the channel from the reference.

The lead-off current is 6 nA at 31.25 Hz (the ADS1299's AC lead-off at f_CLK / 2**16, "31.2 Hz"),
so the voltage at the input is 6 nA times the electrode impedance plus the board's 2.2 kOhm series
resistor. The GUI (``DataProcessing.pde``) takes the standard deviation of the last second of its
filtered signal (mains notch, then its default 5-50 Hz second-order Butterworth band-pass) and computes
``Z = sqrt(2) * std[V] / 6 nA - 2.2 kOhm`` (floored at 0), i.e. the amplitude of the drive tone divided
by the current. BrainFlow's Cyton drivers follow every ``x...X`` command sent through ``config_board``
(their gain tracker), so the microvolts they report are right at gain 1 too. The filtering here is
BrainFlow's own (``DataFilter``); the GUI's thresholds colour the result: green below 750 kOhm, yellow
up to 2500 kOhm, red above (``CytonElectrodeStatus.pde``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from brainflow.data_filter import DataFilter, FilterTypes, NoiseTypes

from edge.board import CHANNEL_LETTERS
from edge.errors import ErrorCode, HotspotError

DEFAULT_CHANNEL_SETTINGS = "060110"
"""``x`` settings of a channel after a reset: on, gain x24, normal input, bias, SRB2 on, SRB1 off."""
LEAD_OFF_SETTINGS = "000100"
"""``x`` settings while measuring: on, gain x1, normal input, bias, SRB2 and SRB1 off (the GUI's)."""
LEAD_OFF_DRIVE_A = 6.0e-9
DRIVE_HZ = 31.25
SERIES_RESISTOR_OHM = 2200.0
BANDPASS_HZ = (5.0, 50.0)
GOOD_MAX_OHM = 750e3
FAIR_MAX_OHM = 2500e3
SETTLE_S = 1.0
MEASURE_S = 1.0
MAX_LOST_FRACTION = 0.1


def channel_letter(board_input: int) -> str:
    """The firmware's letter for board input 1..16."""
    if not 1 <= int(board_input) <= len(CHANNEL_LETTERS):
        raise HotspotError(f"board input {board_input} has no lead-off command; use 1..16", ErrorCode.BAD_ARGUMENT)
    return CHANNEL_LETTERS[int(board_input) - 1]


def lead_off_command(board_input: int, on: bool) -> str:
    """The one command string that starts (or ends) the measurement on a board input."""
    letter = channel_letter(board_input)
    if on:
        return f"x{letter}{LEAD_OFF_SETTINGS}Xz{letter}01Z"
    return f"x{letter}{DEFAULT_CHANNEL_SETTINGS}Xz{letter}00Z"


def impedance_ohm(samples_uv: np.ndarray, sfreq: float, measure_s: float = MEASURE_S) -> float:
    """Electrode impedance from one channel recorded with the lead-off current on (the GUI's formula).

    Parameters
    ----------
    samples_uv : ndarray, shape (n,)
        Microvolts, settling time included; NaN for lost samples (held at the previous value).
    sfreq : float
        Sampling rate, Hz.
    measure_s : float
        The impedance comes from the last ``measure_s`` seconds of the filtered signal.

    Returns
    -------
    float
        Ohms (0 when below the series resistor).
    """
    x = np.asarray(samples_uv, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        raise HotspotError("no samples arrived while measuring the electrode", ErrorCode.BAD_SAMPLES)
    held = np.where(finite, x, np.nan)
    index = np.where(finite, np.arange(x.size), 0)
    np.maximum.accumulate(index, out=index)
    held = held[index]
    held[: np.argmax(finite)] = held[np.argmax(finite)]
    filtered = np.ascontiguousarray(held - held.mean())
    rate = int(round(sfreq))
    DataFilter.remove_environmental_noise(filtered, rate, NoiseTypes.FIFTY_AND_SIXTY.value)
    DataFilter.perform_bandpass(filtered, rate, BANDPASS_HZ[0], BANDPASS_HZ[1], 2, FilterTypes.BUTTERWORTH.value, 0.0)
    last = filtered[-max(1, int(round(measure_s * sfreq))):]
    return max(0.0, float(np.sqrt(2.0) * last.std() * 1e-6 / LEAD_OFF_DRIVE_A - SERIES_RESISTOR_OHM))


def contact_state(ohm: float | None) -> str:
    """The GUI's traffic light: ``"good"`` (< 750 kOhm), ``"fair"`` (< 2500 kOhm), ``"poor"``, or ``"unknown"``."""
    if ohm is None:
        return "unknown"
    return "good" if ohm < GOOD_MAX_OHM else "fair" if ohm < FAIR_MAX_OHM else "poor"


@dataclass(frozen=True)
class ElectrodeContact:
    """One electrode's measurement.

    Attributes
    ----------
    name : str
        The electrode as worn (10-05 name).
    board_input : int
    impedance_ohm : float or None
        None when it could not be measured (samples lost, command refused).
    state : str
        See :func:`contact_state`.
    """

    name: str
    board_input: int
    impedance_ohm: float | None
    state: str

    def to_dict(self) -> dict:
        """JSON form (kOhm rounded to 0.1)."""
        kohm = None if self.impedance_ohm is None else round(self.impedance_ohm / 1000.0, 1)
        return {"electrode": self.name, "board_input": self.board_input, "impedance_kohm": kohm, "state": self.state}


class ContactCheck:
    """Measure every worn electrode in turn while the board streams; fed by the runtime's loop.

    Parameters
    ----------
    names : sequence of str
        The worn electrodes, in the row order of the samples pushed.
    board_inputs : sequence of int
        Their board inputs (1-based).
    sfreq : float
        Sampling rate, Hz.
    send : callable
        ``send(command)`` writes one command string to the board (``Acquisition.config_board``); it
        raises :class:`HotspotError` when the board cannot take it.
    settle_s, measure_s : float
        Board seconds to wait after switching an electrode's current on, then to measure it.

    Notes
    -----
    Time is counted in samples, so an emulator faster than real time shortens the check with it.
    """

    def __init__(self, names: Sequence[str], board_inputs: Sequence[int], sfreq: float, send: Callable[[str], None],
                 settle_s: float = SETTLE_S, measure_s: float = MEASURE_S) -> None:
        self.names, self.board_inputs = list(names), [int(i) for i in board_inputs]
        self.sfreq, self.send = float(sfreq), send
        self.measure_s = measure_s
        self.samples_needed = int(round((settle_s + measure_s) * sfreq))
        self.results: list[ElectrodeContact] = []
        self._current: int | None = None
        self._collected: list[np.ndarray] = []
        self._count = 0

    @property
    def done(self) -> bool:
        """True when every electrode has been measured."""
        return len(self.results) == len(self.names)

    @property
    def measuring(self) -> str | None:
        """The electrode being measured now."""
        return None if self._current is None else self.names[self._current]

    @property
    def passed(self) -> bool:
        """Done, and no electrode is poor or unmeasured."""
        return self.done and all(r.state in ("good", "fair") for r in self.results)

    def push(self, chunk_uv: np.ndarray) -> None:
        """Feed consecutive samples (worn-electrode rows, µV, NaN where lost)."""
        if self.done:
            return
        if self._current is None:
            self._start(len(self.results))
            if self._current is None:
                return
        row = np.asarray(chunk_uv, dtype=np.float64)[self._current]
        self._collected.append(row)
        self._count += row.size
        if self._count >= self.samples_needed:
            self._finish()

    def abort(self) -> None:
        """End the check early (board reconnected or stopped): the electrode being measured is unknown."""
        if self._current is not None:
            self._off(self._current)
            self._record(self._current, None)
        while not self.done:
            self._record(len(self.results), None)

    def _start(self, index: int) -> None:
        try:
            self.send(lead_off_command(self.board_inputs[index], on=True))
        except HotspotError:
            self._record(index, None)
            return
        self._current, self._collected, self._count = index, [], 0

    def _finish(self) -> None:
        index = self._current
        samples = np.concatenate(self._collected)[: self.samples_needed]
        self._off(index)
        ohm = None
        if np.mean(~np.isfinite(samples)) <= MAX_LOST_FRACTION:
            ohm = impedance_ohm(samples, self.sfreq, measure_s=self.measure_s)
        self._record(index, ohm)

    def _off(self, index: int) -> None:
        try:
            self.send(lead_off_command(self.board_inputs[index], on=False))
        except HotspotError:
            pass  # a board that cannot take the command is reset to its defaults when it reconnects

    def _record(self, index: int, ohm: float | None) -> None:
        self.results.append(ElectrodeContact(self.names[index], self.board_inputs[index], ohm, contact_state(ohm)))
        self._current = None
