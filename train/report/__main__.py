"""``python -m train.report``: see :mod:`train.report.document`."""

from edge.errors import run_cli
from train.report.document import main

raise SystemExit(run_cli(main))
