"""The OpenBCI board emulator: a Cyton (or Cyton + Daisy) on a pseudo-terminal that BrainFlow's driver reads.

``cyton``
    :class:`~hardware.emulator.cyton.CytonEmulator`: the board's subject clock streaming a source.
``firmware``
    The firmware's commands, answers and 33-byte packets.
``faults``
    The faults it injects (link loss, corruption, rails, stalls, resets, counter restarts ...).
``transport``
    The pseudo-terminal behind a stable port path.
``sources``
    What it streams: synthetic EEG, or a recording placed on the board's inputs (host only).

``python -m hardware.emulator`` (``invoke emulate``) runs it from the command line.
"""
