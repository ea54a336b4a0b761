"""``python -m train.io PATH ...`` (same as ``invoke load``)."""

import sys

from edge.errors import run_cli
from train.io import main

sys.exit(run_cli(main))
