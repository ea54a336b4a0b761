"""Electrode contact check: the Cyton's lead-off impedance through BrainFlow's config_board, as the OpenBCI GUI does it.

Hardware in the loop: BrainFlow's own Cyton / Cyton+Daisy drivers talk to the emulator, whose channels
carry the lead-off current's tone across each electrode's configured impedance.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.acquisition import Acquisition
from edge.contact import (DRIVE_HZ, FAIR_MAX_OHM, GOOD_MAX_OHM, LEAD_OFF_DRIVE_A, SERIES_RESISTOR_OHM, ContactCheck,
                          contact_state, impedance_ohm, lead_off_command)
from edge.errors import HotspotError
from hardware.emulator.cyton import CytonEmulator
from hardware.emulator.sources import synthetic_source


def test_commands_are_the_guis() -> None:
    # BoardCyton.setCheckingImpedanceCyton: gain x1, normal input, bias on, SRB2/SRB1 off, current on the N input;
    # afterwards the channel defaults (gain x24, SRB2 on) and the current off. Daisy inputs 9-16 are Q..I.
    assert lead_off_command(3, on=True) == "x3000100Xz301Z"
    assert lead_off_command(3, on=False) == "x3060110Xz300Z"
    assert lead_off_command(9, on=True) == "xQ000100XzQ01Z"
    assert lead_off_command(16, on=False) == "xI060110XzI00Z"
    with pytest.raises(HotspotError, match="1..16"):
        lead_off_command(17, on=True)


def test_impedance_from_the_drive_tone_and_the_guis_thresholds() -> None:
    sfreq, ohm = 250.0, 120e3
    t = np.arange(int(2 * sfreq)) / sfreq
    rng = np.random.default_rng(0)
    tone = LEAD_OFF_DRIVE_A * (ohm + SERIES_RESISTOR_OHM) * 1e6 * np.sin(2 * np.pi * DRIVE_HZ * t)
    samples = 15000.0 + tone + rng.normal(0.0, 5.0, t.size)  # a DC offset and a little EEG
    samples[100:103] = np.nan  # lost samples are held
    assert impedance_ohm(samples, sfreq) == pytest.approx(ohm, rel=0.04)
    assert impedance_ohm(np.full(500, 3.0), sfreq) == 0.0  # below the series resistor: floored at 0
    assert [contact_state(v) for v in (None, 10e3, GOOD_MAX_OHM, FAIR_MAX_OHM - 1, FAIR_MAX_OHM)] == \
        ["unknown", "good", "fair", "fair", "poor"]


def test_abort_marks_the_rest_unknown() -> None:
    sent: list[str] = []
    check = ContactCheck(["C3", "C4"], [1, 2], 250.0, sent.append)
    check.push(np.zeros((2, 10)))
    check.abort()
    assert [r.state for r in check.results] == ["unknown", "unknown"] and check.done and not check.passed
    assert sent == [lead_off_command(1, on=True), lead_off_command(1, on=False)]


def run_check(emulator: CytonEmulator, board: str, inputs: list[int], speed: float) -> ContactCheck:
    acquisition = Acquisition(board, serial_port=emulator.port, eeg_channels=inputs, clock_scale=speed)
    acquisition.start()
    try:
        check = ContactCheck([f"E{i}" for i in inputs], inputs, acquisition.sampling_rate, acquisition.config_board)
        deadline = time.monotonic() + 60
        while not check.done and time.monotonic() < deadline:
            chunk = acquisition.read(timeout_s=0.05)
            if chunk.data_uv.shape[1]:
                check.push(chunk.data_uv)
        time.sleep(1.0 / speed)  # samples of the last electrode's measurement still on their way
        acquisition.read()
        after = np.concatenate([acquisition.read(timeout_s=1.0).data_uv for _ in range(3)], axis=1)
    finally:
        acquisition.stop()
    assert check.done
    check.after_uv = after
    return check


@pytest.mark.hil
def test_cyton_lead_off_check_through_brainflow_measures_each_electrode() -> None:
    ohms = [5e3, 80e3, 400e3, 900e3, 1800e3, 3000e3, 6000e3, 20e3]
    speed = 4.0
    source = synthetic_source(8, 250.0, seconds=60.0)
    with CytonEmulator(source, speed=speed, impedances_ohm=ohms) as emulator:
        check = run_check(emulator, "cyton", list(range(1, 9)), speed)
        commands = list(emulator.stats.commands)
    measured = [r.impedance_ohm for r in check.results]
    # Within 5 % above 50 kOhm; the EEG under the tone adds a few kOhm at the low end (as in the GUI).
    for expected, got in zip(ohms, measured):
        assert got == pytest.approx(expected, rel=0.05, abs=4e3), (expected, got)
    assert [r.state for r in check.results] == ["good", "good", "good", "fair", "fair", "poor", "poor", "good"]
    assert not check.passed
    # One electrode at a time, each switched on and back to the defaults (BrainFlow splits nothing: the
    # emulator parses the command stream as the firmware does).
    expected_commands = []
    for board_input in range(1, 9):
        on, off = lead_off_command(board_input, True), lead_off_command(board_input, False)
        expected_commands += [on[:9], on[9:], off[:9], off[9:]]
    assert [c for c in commands if c[0] in "xz"] == expected_commands
    # Afterwards every channel streams the EEG at gain 24 again (BrainFlow's gain tracker followed).
    np.testing.assert_allclose(check.after_uv.std(axis=1), source.std(axis=1), rtol=0.35)


@pytest.mark.hil
def test_daisy_inputs_use_their_own_letters() -> None:
    speed = 4.0
    ohms = np.full(16, 5e3)
    ohms[11] = 1200e3  # board input 12, letter R
    with CytonEmulator(synthetic_source(16, 125.0, seconds=60.0), daisy=True, speed=speed,
                       impedances_ohm=ohms) as emulator:
        check = run_check(emulator, "cyton_daisy", [3, 12], speed)
        assert "xR000100X" in emulator.stats.commands and "zR01Z" in emulator.stats.commands
    assert [r.state for r in check.results] == ["good", "fair"]
    assert check.results[1].impedance_ohm == pytest.approx(1200e3, rel=0.05)
    assert check.passed
