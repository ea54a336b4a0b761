"""Import real EEG recordings and TMS hotspot labels into the one in-memory dataset.

- :func:`load_dataset` -- a file, a folder of recordings or a simulated (BIDS-like) folder,
  plus optional labels, into a :class:`train.dataset.Dataset`.
- :func:`read_recording` -- one file into a checked :class:`train.dataset.Recording`.
- :func:`train.io.labels.read_labels` -- TMS labels (CSV, Brainsight, Localite) in the head frame.
- :func:`main` -- ``invoke load PATH [--labels F] [--fiducials F] ...``.
"""

from train.io.cli import main
from train.io.loading import load_dataset
from train.io.recording import read_recording

__all__ = ["load_dataset", "main", "read_recording"]
