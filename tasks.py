"""invoke tasks: thin wrappers that hand their options to library code.

Each task builds an argument list and calls the ``main`` function of one library module,
which parses, validates and does the work; user errors come back as one line and exit 2.
Numeric options are declared with string defaults so that invoke hands them over as typed: the
module's parser checks them (``--seed abc`` is one line and exit 2, not invoke's traceback).
"""

from __future__ import annotations

import importlib
import sys

from invoke import Context, Exit, task


def _delegate(module: str, argv: list[str], entry: str = "main") -> None:
    """Call ``module.entry(argv)`` and turn a non-zero return into invoke's Exit."""
    from edge.errors import run_cli

    code = run_cli(getattr(importlib.import_module(module), entry), argv)
    if code:
        raise Exit(code=code)


def _opt(flag: str, value: object) -> list[str]:
    """Return ``[flag, str(value)]`` when value is set, else nothing."""
    if value is None or value is False or value == "":
        return []
    if value is True:
        return [flag]
    return [flag, str(value)]


@task
def test(c: Context, fast: bool = False, k: str = "", x: bool = False) -> None:
    """Run the test suite (all tiers, hardware-in-the-loop and SSH included); --fast skips slow tests."""
    argv = ["-m", "pytest"] + (["-m", "not slow"] if fast else []) + _opt("-k", k) + _opt("-x", x)
    c.run(" ".join([sys.executable, *argv]), pty=False, echo=True)


@task
def demo(c: Context, workdir: str = "", config: str = "", fast: bool = False, keep_open: bool = False) -> None:
    """Run the whole chain on the embedded default (simulate, train, convert, emulate, runtime, monitor, page)."""
    _delegate("hardware.demo", _opt("--workdir", workdir) + _opt("--config", config) + _opt("--fast", fast)
              + _opt("--keep-open", keep_open))


@task
def simulate(c: Context, out: str = "data/simulated", config: str = "", seed: int | None = None,
             n_healthy: int | None = None, n_stroke: int | None = None) -> None:
    """Simulate a cohort (TOML config, defaults = the paper's 30 + 29) into a BIDS-like folder."""
    _delegate("train.simulate", ["--out", out] + _opt("--config", config) + _opt("--seed", seed)
              + _opt("--n-healthy", n_healthy) + _opt("--n-stroke", n_stroke))


@task(name="load")
def load_data(c: Context, path: str, labels: str = "", fiducials: str = "", events: str = "", channels: str = "",
              board: str = "", require_channels: str = "", sfreq: float | None = None, allow_no_events: bool = False,
              subject: str = "", target: str = "") -> None:
    """Import EEG recordings (and TMS labels) and print what was found."""
    _delegate("train.io", [path] + _opt("--labels", labels) + _opt("--fiducials", fiducials)
              + _opt("--events", events) + _opt("--channels", channels) + _opt("--board", board)
              + _opt("--require-channels", require_channels) + _opt("--sfreq", sfreq)
              + _opt("--allow-no-events", allow_no_events) + _opt("--subject", subject) + _opt("--target", target))


@task
def bench(c: Context, only: str = "", out: str = "bench/results") -> None:
    """Run the named benchmarks (all by default) and write JSON under bench/results/."""
    _delegate("bench.harness", _opt("--only", only) + _opt("--out", out))


@task
def train(c: Context, data: str = "data/simulated", out: str = "models/default", level: str = "psd",
          channels: str = "nine", config: str = "", seed: str = "0") -> None:
    """Train the deployable CNN for a dataset, input level and channel set; write a model directory."""
    _delegate("train.training", ["--data", data, "--out", out, "--level", level, "--channels", channels,
                                 "--seed", seed] + _opt("--config", config))


@task
def reproduce(c: Context, data: str = "data/simulated", out: str = "reports/reproduce", config: str = "",
              small: bool = False) -> None:
    """The paper's table under the trial split and under subject-grouped evaluation, side by side."""
    _delegate("train.reproduce", ["--data", data, "--out", out] + _opt("--config", config) + _opt("--small", small))


@task(name="select-epochs")
def select_epochs(c: Context, data: str = "data/dev-cohort", out: str = "reports/select-epochs.json",
                  candidates: str = "3,5,10,20,40", level: str = "psd", channels: str = "nine", folds: str = "5") -> None:
    """Choose the training length by subject-grouped k-fold on a development cohort (never the test cohort)."""
    _delegate("train.selection", ["--data", data, "--out", out, "--candidates", candidates, "--level", level,
                                  "--channels", channels, "--folds", folds])


@task(name="validate-real")
def validate_real(c: Context, model: str = "models/real-check", data: str = "../shared/data/real/eegmmidb",
                  out: str = "reports/validate-real", config: str = "", train: bool = False, jobs: str = "2") -> None:
    """Sim-to-real check: held-out simulated subjects of the eegmmidb schedule, then eegmmidb (--train: train first)."""
    _delegate("train.validate_real", ["--model", model, "--data", data, "--out", out, "--jobs", jobs]
              + _opt("--config", config) + _opt("--train", train))


@task(iterable=["float_layer"])
def convert(c: Context, model: str = "models/default", data: str = "data/simulated", out: str = "bundles/default",
            key: str = "keys/signing.key", io: str = "float32", budget_mm: str = "0.3", holdout: str = "",
            float_layer: list[str] | None = None, int8_output: bool = False, bundle_version: str = "") -> None:
    """Quantise a model directory to int8 TFLite, check parity in mm, and write a signed bundle."""
    _delegate("convert.quantize", ["--model", model, "--data", data, "--out", out, "--key", key, "--io", io,
                                   "--budget-mm", budget_mm] + _opt("--holdout", holdout)
              + [arg for name in float_layer or [] for arg in ("--float-layer", name)]
              + _opt("--int8-output", int8_output) + _opt("--bundle-version", bundle_version))


@task(name="export-c")
def export_c(c: Context, bundle: str = "bundles/default", out: str = "export/c") -> None:
    """Write the model as an aligned C array and the filter as a CMSIS-DSP coefficient header."""
    _delegate("convert.export_c", ["--bundle", bundle, "--out", out])


@task
def keygen(c: Context, out: str = "keys/signing.key", force: bool = False) -> None:
    """Create an ed25519 signing key pair (the device gets only the .pub file)."""
    _delegate("convert.signing", ["--out", out] + _opt("--force", force))


@task(iterable=["impedance"])
def emulate(c: Context, source: str = "", board: str = "cyton", speed: str = "1.0", fault: str = "",
            subject: str = "", map: str = "", port_link: str = "", seconds: float | None = None,
            interactive: bool = False, impedance: list[str] | None = None) -> None:
    """Start the OpenBCI board emulator on a pseudo-terminal and print its port."""
    _delegate("hardware.emulator", ["--board", board, "--speed", speed] + _opt("--source", source)
              + _opt("--fault", fault) + _opt("--subject", subject) + _opt("--map", map)
              + _opt("--port-link", port_link) + _opt("--seconds", seconds) + _opt("--interactive", interactive)
              + [arg for value in impedance or [] for arg in ("--impedance", value)])


@task
def monitor(c: Context, port: str, baud: str = "115200", start: bool = False, until_result: bool = False,
            timeout: float | None = None) -> None:
    """Show cues, progress and the result a device reports over its serial link (--start begins a session)."""
    _delegate("hardware.monitor", ["--port", port, "--baud", baud] + _opt("--start", start)
              + _opt("--until-result", until_result) + _opt("--timeout", timeout))


@task(iterable=["logs"])
def report(c: Context, logs: list[str] | None = None, evaluation: str = "", out: str = "reports/report.html") -> None:
    """One self-contained HTML report: from device session logs (--logs DIR, repeatable) or a model's evaluation."""
    _delegate("train.report.document", [arg for folder in logs or [] for arg in ("--logs", folder)]
              + _opt("--evaluation", evaluation) + ["--out", out])


@task(name="export-target")
def export_target(c: Context, result: str, subject: str, out: str = "export/target", fiducials: str = "",
                  name: str = "hotspot") -> None:
    """Write a session's estimate as a Localite InstrumentMarker XML and a Brainsight target file."""
    _delegate("train.io.navigator", ["--result", result, "--subject", subject, "--out", out, "--name", name]
              + _opt("--fiducials", fiducials))


@task
def run(c: Context, config: str) -> None:
    """Run the device runtime with a TOML configuration (what the Pi's service runs)."""
    _delegate("edge.__main__", ["--config", config])


DEPLOY_SETTINGS = ("user", "ssh_key", "port", "prefix", "python", "restart_command", "service_state_command",
                   "self_test_command", "health_timeout", "keep", "min_free_mb", "max_clock_skew", "connect_timeout",
                   "strict_host_keys", "known_hosts")


def _deploy_config(c: Context, key: str, given: str = "") -> str:
    """A deploy option: the task's own argument, else the 'deploy' section of invoke's configuration."""
    return given or str(c.config.get("deploy", {}).get(key) or "")


def _deploy_settings(c: Context) -> list[str]:
    """The device settings of the 'deploy' configuration section (invoke.yaml, ~/.invoke.yaml, INVOKE_DEPLOY_*)."""
    return [item for key in DEPLOY_SETTINGS for item in _opt("--" + key.replace("_", "-"), _deploy_config(c, key))]


@task
def wheelhouse(c: Context, out: str = "", platform: str = "manylinux_2_36_aarch64", python: str = "3.11",
               extra_wheels: str = "", brainflow_source: str = "") -> None:
    """Download the device's wheels into an offline wheelhouse; --platform pi: the whole Pi set, BrainFlow built."""
    _delegate("hardware.deploy", ["wheelhouse", "--platform", platform, "--python", python]
              + _opt("--out", _deploy_config(c, "wheelhouse", out)) + _opt("--extra-wheels", extra_wheels)
              + _opt("--brainflow-source", brainflow_source))


@task
def deploy(c: Context, host: str = "", hosts: str = "", bundle: str = "", config: str = "", public_key: str = "",
           wheelhouse: str = "", edge_wheel: str = "", trust_new_host: bool = False) -> None:
    """Deploy a release (edge wheel, bundle, config) to devices over SSH; --trust-new-host for a device's first."""
    _delegate("hardware.deploy", ["deploy"] + [item for flag, key, given in (
        ("--host", "host", host), ("--hosts", "hosts", hosts), ("--bundle", "bundle", bundle),
        ("--config", "config", config), ("--public-key", "public_key", public_key),
        ("--wheelhouse", "wheelhouse", wheelhouse), ("--edge-wheel", "edge_wheel", edge_wheel))
        for item in _opt(flag, _deploy_config(c, key, given))] + _opt("--trust-new-host", trust_new_host)
        + _deploy_settings(c))


@task(name="rotate-key")
def rotate_key(c: Context, new_public_key: str, signing_key: str, host: str = "", yes: bool = False) -> None:
    """Hand a device's trust to a new signing key, with a statement signed by the old key (asks to confirm)."""
    _delegate("hardware.deploy", ["rotate-key", "--new-public-key", new_public_key, "--signing-key", signing_key]
              + _opt("--host", _deploy_config(c, "host", host)) + _opt("--yes", yes) + _deploy_settings(c))


@task
def rollback(c: Context, host: str = "") -> None:
    """Switch a device back to its previous release, restart the service and check it is healthy."""
    _delegate("hardware.deploy", ["rollback"] + _opt("--host", _deploy_config(c, "host", host)) + _deploy_settings(c))


@task(name="device-status")
def device_status(c: Context, host: str = "", json: bool = False) -> None:
    """Show a device's current release, bundle id, service state, health and last session result."""
    _delegate("hardware.deploy", ["status"] + _opt("--host", _deploy_config(c, "host", host)) + _opt("--json", json)
              + _deploy_settings(c))
