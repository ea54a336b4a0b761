"""The device code on aarch64 under qemu: bundle self-test and per-hop pipeline, side by side with x86.

``arm_emulated`` runs the same two jobs in the same run on this x86 host's Python and on the
emulated Raspberry Pi (``hardware.pi.root``: Debian bookworm arm64 Python 3.11 under
qemu-aarch64-static, with the Pi wheelhouse of ``invoke wheelhouse --platform pi`` installed):

* ``python -m edge --config C --self-test`` on a signed int8 bundle of the deployable CNN (nine
  channels, PSD; signature, hashes, golden vectors through LiteRT's ARM kernels), as a Pi 4
  (Cortex-A72) and a Pi 5 (Cortex-A76): wall time of the whole process, median of 3;
* ``bench.runtime.time_hops``: the guided session fed 20 ms hops (fixed-point filter, epoching,
  quality, PSD, int8 inference), per-hop CPU time, as a Pi 4.

These are correctness and relative cost only. **Emulated time is not Pi time**: qemu translates
every ARM instruction on an x86 core (and LiteRT's and numpy's SIMD kernels differ between the
two CPUs), so the ratio says how much slower the emulation is, not how fast a Pi is.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import benchmark

RUNS = 3
TRIALS = 10
HOP_SCRIPT = ("import json, sys; from pathlib import Path; from bench.runtime import time_hops; "
              "print(json.dumps(time_hops(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))))")


def _device_config(path: Path, bundle: Path, public_key: Path, channels: list[str]) -> Path:
    path.write_text("\n".join([
        "[device]", 'id = "bench-arm"', f'state_dir = "{path.parent / "state"}"', "", "[board]", 'type = "synthetic"',
        "", "[channels]", *[f"{name} = {index + 1}" for index, name in enumerate(channels)], "", "[bundle]",
        f'path = "{bundle}"', f'public_key = "{public_key}"', "", "[session]", "trials = 2", "rest_s = 1.0",
        "move_s = 1.0", "min_good_trials = 1", ""]))
    return path


def _timed(command: list[str], env: dict | None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=1200)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr.strip()[-500:]}")
    return elapsed, done.stdout.strip()


@benchmark("arm_emulated")
def arm_emulated() -> dict:
    """Self-test and per-hop cost of the device code on the emulated Pi vs this x86 host, same run."""
    from bench.runtime import NINE, make_bundle
    from hardware.deploy.plan import REPO
    from hardware.pi.wheelhouse import make_pi_wheelhouse
    from hardware.pi.cache import cache_dir
    from hardware.pi.root import MODELS, emulated_pi, install_target

    wheelhouse = cache_dir() / "wheelhouse-pi-cp311"
    make_pi_wheelhouse(wheelhouse, REPO)
    pis = {model: emulated_pi(model) for model in MODELS}
    with tempfile.TemporaryDirectory(prefix="bench-arm-") as scratch:
        folder = Path(scratch)
        site = install_target(pis["pi4"], "hotspot-edge[edge]", wheelhouse, folder / "site")
        arm_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LANG": "C.UTF-8",
                   "PYTHONPATH": str(site)}
        bundle, public_key = make_bundle(folder / "made", 250.0)
        config = _device_config(folder / "device.toml", bundle, public_key, list(NINE))
        self_test = ["-m", "edge", "--config", str(config), "--self-test"]
        pythons = {"x86_64": ([sys.executable], None),
                   **{f"{model} ({pi.cpu}, emulated)": ([str(pi.python)], arm_env) for model, pi in pis.items()}}
        self_test_s, runtimes = {}, {}
        for name, (python, env) in pythons.items():
            times = []
            for _ in range(RUNS):
                elapsed, out = _timed([*python, *self_test], env)
                times.append(elapsed)
            self_test_s[name] = round(statistics.median(times), 2)
            runtimes[name] = out.split("(")[1].split(")")[0]
        hops = {}
        for name in ("x86_64", next(name for name in pythons if name.startswith("pi4"))):
            python, env = pythons[name]
            _, out = _timed([*python, "-c", HOP_SCRIPT, str(bundle), str(public_key), str(TRIALS)], env)
            hops[name] = json.loads(out)
    arm_name = next(name for name in hops if name != "x86_64")
    return {
        "self_test_wall_s": self_test_s, "runtimes": runtimes, "self_test_runs": RUNS,
        "hop_cpu_ms": {name: result["cpu_time"] for name, result in hops.items()},
        "hop_results": {name: result["result"] for name, result in hops.items()},
        "hops": hops["x86_64"]["hops"], "trials": TRIALS, "channels": len(NINE), "sampling_rate_hz": 250.0,
        "emulated_over_x86": {
            "self_test": round(self_test_s[next(name for name in self_test_s if name.startswith("pi4"))]
                               / self_test_s["x86_64"], 1),
            "hop_cpu_p50": round(hops[arm_name]["cpu_time"]["p50_ms"] / hops["x86_64"]["cpu_time"]["p50_ms"], 1)},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "note": "emulated time is not Pi time: qemu-aarch64-static translates each ARM instruction on this x86 "
                "core; these numbers show the ARM code is correct and what emulation costs, not a Pi's speed",
    }
