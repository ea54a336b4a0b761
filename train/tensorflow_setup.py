"""Import TensorFlow quietly: no CUDA or absl start-up noise on a CPU machine, real warnings kept.

TensorFlow's native code logs before its own log settings apply ("All log messages before
absl::InitializeLog() is called are written to STDERR"), so ``TF_CPP_MIN_LOG_LEVEL`` alone does not
silence "Could not find cuda drivers" or "failed call to cuInit". Here the process's stderr (file
descriptor 2, where native code writes) is captured while TensorFlow starts and while the TFLite
converter runs; lines matching :data:`NOISE` are dropped and every other line is written back to
stderr, so a real warning or error still shows. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 1: native
informational messages off, warnings and errors on. Python warnings are not touched. What TensorFlow
prints to Python's stdout meanwhile (the converter's "Saved artifact at ... endpoints" listing) goes to
this module's logger at DEBUG, so a command's own output stays its own.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from edge.errors import soft_import

NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"TF-TRT Warning: Could not find TensorRT",
    r"Ignored (output_format|drop_control_dependency)",
    r"^fully_quantize: \d",
    r"Skipping runtime version metadata in the model",
    r"Created TensorFlow Lite XNNPACK delegate for CPU",
    r"^I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ",  # native INFO lines printed before the log level applies
]))
"""Start-up and converter messages that say nothing a CPU user can act on."""

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Drop :data:`NOISE` lines that native code writes to stderr inside the block; keep the rest.

    Python-level prints inside the block are logged at DEBUG instead of reaching stdout.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    printed = io.StringIO()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            with contextlib.redirect_stdout(printed):
                yield
        finally:
            if printed.getvalue().strip():
                logger.debug("TensorFlow printed: %s", printed.getvalue().strip())
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@functools.lru_cache(maxsize=1)
def import_tensorflow():
    """Import and initialise TensorFlow (device discovery included) without its start-up noise.

    Returns
    -------
    module
        ``tensorflow``.

    Raises
    ------
    HotspotError
        ``MISSING_PACKAGE`` when TensorFlow is not installed (the host extra).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with quiet_native_logs():
        tf = soft_import("tensorflow", "training and conversion")
        tf.config.list_physical_devices("GPU")  # CUDA discovery (and its cuInit message) happens here
    return tf
