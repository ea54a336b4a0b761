"""``python -m hardware.deploy``."""

import sys

from edge.errors import run_cli
from hardware.deploy.cli import main

sys.exit(run_cli(main))
