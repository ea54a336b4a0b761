"""Run named benchmarks and write their results as JSON.

A benchmark is a function that takes no arguments and returns a JSON-serialisable dict of
measurements. Register it with ``@benchmark("name")`` in any ``bench/<area>.py`` module.
Ratios between implementations are measured side by side in one run, because the CI machines
are noisy 2-core boxes.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import pkgutil
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli

logger = logging.getLogger(__name__)

BenchmarkFn = Callable[[], dict]
_REGISTRY: dict[str, BenchmarkFn] = {}


def benchmark(name: str) -> Callable[[BenchmarkFn], BenchmarkFn]:
    """Register ``fn`` as the benchmark called ``name``.

    Parameters
    ----------
    name : str
        Unique benchmark name; also the JSON file's stem.

    Returns
    -------
    callable
        A decorator that registers and returns the function unchanged.
    """

    def register(fn: BenchmarkFn) -> BenchmarkFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"benchmark {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return register


def discover() -> dict[str, BenchmarkFn]:
    """Import every ``bench.<area>`` module and return the registry, sorted by name."""
    package_dir = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package_dir)]):
        if module.name != "harness":
            importlib.import_module(f"bench.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def machine_info() -> dict:
    """Describe the machine a result was measured on."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def run_benchmarks(names: Sequence[str] | None, out_dir: Path) -> dict[str, dict]:
    """Run the named benchmarks (all when ``names`` is empty) and write ``<out_dir>/<name>.json``.

    Parameters
    ----------
    names : sequence of str or None
        Benchmarks to run; None or empty runs all.
    out_dir : Path
        Where the JSON files go.

    Returns
    -------
    dict
        Each benchmark's result, by name.
    """
    registry = discover()
    selected = list(names) if names else list(registry)
    unknown = [name for name in selected if name not in registry]
    if unknown:
        raise HotspotError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(registry)}",
                           ErrorCode.BAD_ARGUMENT)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in selected:
        started = time.perf_counter()
        measurements = registry[name]()
        record = {
            "benchmark": name,
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "machine": machine_info(),
            "results": measurements,
        }
        (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
        logger.info("%s: %s", name, json.dumps(measurements, default=float)[:400])
        results[name] = record
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m bench.harness [--only a,b] [--out DIR]``."""
    parser = ArgumentParser(prog="invoke bench", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", default="bench/results", help="output folder for the JSON files")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(discover()))
        return 0
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    run_benchmarks(names, Path(args.out))
    return 0


if __name__ == "__main__":
    # Benchmark modules register with ``bench.harness``, not with this ``__main__`` copy of it.
    import bench.harness

    raise SystemExit(run_cli(bench.harness.main))
