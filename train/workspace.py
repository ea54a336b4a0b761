"""The project's working folders: where its commands read and write when not told otherwise.

Paths are relative to the folder a command runs in (the repository for ``invoke``). Each command's
parser takes its defaults from here, and the invoke tasks pass on only what they are given, so a
default is stated once.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data/simulated")
"""A simulated cohort (``invoke simulate``), the default training and evaluation data."""
DEVELOPMENT_COHORT = Path("data/dev-cohort")
"""A second simulated cohort (another seed) for choosing hyper-parameters, never for evaluation."""
REAL_EEGMMIDB = Path("../shared/data/real/eegmmidb")
"""The real eegmmidb EDF files (sim-to-real check)."""
MODEL = Path("models/default")
"""The model directory ``invoke train`` writes and ``invoke convert`` reads."""
REAL_CHECK_MODEL = Path("models/real-check")
"""The sim-to-real check's own model (``invoke validate-real --train``; never mirrored)."""
BUNDLE = Path("bundles/default")
"""The signed bundle ``invoke convert`` writes and ``invoke export-c`` and ``invoke deploy`` read."""
SIGNING_KEY = Path("keys/signing.key")
"""The ed25519 signing key (``invoke keygen``); its public half: :func:`convert.signing.public_key_path`."""
REPORTS = Path("reports")
"""Evaluation reports and checks."""
EXPORT = Path("export")
"""Files made for other tools (C sources, navigator targets)."""
WHEELHOUSE = Path("wheelhouse")
"""The offline wheelhouse devices install from (``invoke wheelhouse``)."""
