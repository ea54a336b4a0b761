"""edge/ must import on a device that has none of the host packages installed."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import edge

HOST_ONLY = ("tensorflow", "keras", "scipy", "mne", "matplotlib", "edfio", "fabric", "cmsisdsp", "train",
             "convert", "hardware", "bench")

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'host package {{name}} imported on the device')
sys.meta_path.insert(0, Blocker())
import importlib
for module in {modules!r}:
    importlib.import_module(module)
print('ok', len({modules!r}))
"""


def edge_modules() -> list[str]:
    """Every module under edge/, subpackages included."""
    root = Path(edge.__file__).parent
    return ["edge"] + [info.name for info in pkgutil.walk_packages([str(root)], prefix="edge.")]


def test_every_edge_module_imports_with_host_packages_blocked() -> None:
    modules = edge_modules()
    code = BLOCKER.format(blocked=HOST_ONLY, modules=modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(edge.__file__).parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"ok {len(modules)}"
