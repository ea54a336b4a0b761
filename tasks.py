"""invoke tasks: thin wrappers that hand their options to library code.

Each task builds an argument list and calls the ``main`` function of one library module, which
parses, validates and does the work; user errors come back as one line and exit 2. A task states no
default of its own: an option the task is not given comes from invoke's configuration (the task's
section of ``invoke.yaml``, ``~/.invoke.yaml`` or ``INVOKE_<TASK>_<OPTION>``, e.g. ``train.channels``
or ``deploy.ssh_key``), and otherwise is left to the command, whose parser holds the default (the
project's folders: :mod:`train.workspace`). Options are declared as strings so that invoke hands them
over as typed: the command's parser checks them (``--seed abc`` is one line and exit 2, not invoke's
traceback).
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


def _setting(c: Context, section: str, name: str, given: object = "") -> object:
    """An option: the task's own argument, else ``c.config[section][name]``, else nothing (the command's default)."""
    if given not in ("", None, False):
        return given
    return c.config.get(section, {}).get(name) or ""


def _opt(flag: str, value: object) -> list[str]:
    """Return ``[flag, str(value)]`` when value is set, else nothing."""
    if value is None or value is False or value == "":
        return []
    if value is True:
        return [flag]
    return [flag, str(value)]


def _options(c: Context, section: str, **given: object) -> list[str]:
    """``--name value`` for every option given to the task or set in its configuration section."""
    return [item for name, value in given.items()
            for item in _opt("--" + name.replace("_", "-"), _setting(c, section, name, value))]


@task
def test(c: Context, fast: bool = False, k: str = "", x: bool = False) -> None:
    """Run the test suite (all tiers, hardware-in-the-loop and SSH included); --fast skips slow tests."""
    argv = ["-m", "pytest"] + (["-m", "not slow"] if fast else []) + _opt("-k", k) + _opt("-x", x)
    c.run(" ".join([sys.executable, *argv]), pty=False, echo=True)


@task
def demo(c: Context, workdir: str = "", config: str = "", fast: bool = False, keep_open: bool = False) -> None:
    """Run the whole chain on the embedded default (simulate, train, convert, emulate, runtime, monitor, page)."""
    _delegate("hardware.demo", _options(c, "demo", workdir=workdir, config=config, fast=fast, keep_open=keep_open))


@task
def simulate(c: Context, out: str = "", config: str = "", seed: str = "", n_healthy: str = "",
             n_stroke: str = "") -> None:
    """Simulate a cohort (TOML config, defaults = the paper's 30 + 29) into a BIDS-like folder."""
    _delegate("train.simulate", _options(c, "simulate", out=out, config=config, seed=seed, n_healthy=n_healthy,
                                         n_stroke=n_stroke))


@task(name="load")
def load_data(c: Context, path: str, labels: str = "", fiducials: str = "", events: str = "", channels: str = "",
              board: str = "", require_channels: str = "", sfreq: str = "", allow_no_events: bool = False,
              subject: str = "", target: str = "") -> None:
    """Import EEG recordings (and TMS labels) and print what was found."""
    _delegate("train.io", [path] + _options(c, "load", labels=labels, fiducials=fiducials, events=events,
                                            channels=channels, board=board, require_channels=require_channels,
                                            sfreq=sfreq, allow_no_events=allow_no_events, subject=subject,
                                            target=target))


@task
def bench(c: Context, only: str = "", out: str = "") -> None:
    """Run the named benchmarks (all by default) and write JSON under bench/results/."""
    _delegate("bench.harness", _options(c, "bench", only=only, out=out))


@task
def train(c: Context, data: str = "", out: str = "", level: str = "", channels: str = "", config: str = "",
          seed: str = "") -> None:
    """Train the deployable CNN for a dataset, input level and channel set; write a model directory."""
    _delegate("train.training", _options(c, "train", data=data, out=out, level=level, channels=channels,
                                         config=config, seed=seed))


@task
def reproduce(c: Context, data: str = "", out: str = "", config: str = "", small: bool = False) -> None:
    """The paper's table under the trial split and under subject-grouped evaluation, side by side."""
    _delegate("train.reproduce", _options(c, "reproduce", data=data, out=out, config=config, small=small))


@task(name="select-epochs")
def select_epochs(c: Context, data: str = "", out: str = "", candidates: str = "", level: str = "",
                  channels: str = "", folds: str = "") -> None:
    """Choose the training length by subject-grouped k-fold on a development cohort (never the test cohort)."""
    _delegate("train.selection", _options(c, "select_epochs", data=data, out=out, candidates=candidates,
                                          level=level, channels=channels, folds=folds))


@task(name="validate-real")
def validate_real(c: Context, model: str = "", data: str = "", out: str = "", config: str = "", train: bool = False,
                  jobs: str = "") -> None:
    """Sim-to-real check: held-out simulated subjects of the eegmmidb schedule, then eegmmidb (--train: train first)."""
    _delegate("train.validate_real", _options(c, "validate_real", model=model, data=data, out=out, config=config,
                                              train=train, jobs=jobs))


@task(iterable=["float_layer"])
def convert(c: Context, model: str = "", data: str = "", out: str = "", key: str = "", io: str = "",
            budget_mm: str = "", holdout: str = "", float_layer: list[str] | None = None, int8_output: bool = False,
            bundle_version: str = "") -> None:
    """Quantise a model directory to int8 TFLite, check parity in mm, and write a signed bundle."""
    _delegate("convert.quantize", _options(c, "convert", model=model, data=data, out=out, key=key, io=io,
                                           budget_mm=budget_mm, holdout=holdout, int8_output=int8_output,
                                           bundle_version=bundle_version)
              + [arg for name in float_layer or [] for arg in ("--float-layer", name)])


@task(name="export-c")
def export_c(c: Context, bundle: str = "", out: str = "") -> None:
    """Write the model as an aligned C array and the filter as a CMSIS-DSP coefficient header."""
    _delegate("convert.export_c", _options(c, "export_c", bundle=bundle, out=out))


@task
def keygen(c: Context, out: str = "", force: bool = False) -> None:
    """Create an ed25519 signing key pair (the device gets only the .pub file)."""
    _delegate("convert.signing", _options(c, "keygen", out=out, force=force))


@task(iterable=["impedance"])
def emulate(c: Context, source: str = "", board: str = "", speed: str = "", fault: str = "", subject: str = "",
            map: str = "", port_link: str = "", seconds: str = "", interactive: bool = False,
            impedance: list[str] | None = None) -> None:
    """Start the OpenBCI board emulator on a pseudo-terminal and print its port."""
    _delegate("hardware.emulator.__main__", _options(c, "emulate", board=board, speed=speed, source=source,
                                                     fault=fault, subject=subject, map=map, port_link=port_link,
                                                     seconds=seconds, interactive=interactive)
              + [arg for value in impedance or [] for arg in ("--impedance", value)])


@task
def monitor(c: Context, port: str, baud: str = "", start: bool = False, until_result: bool = False,
            timeout: str = "") -> None:
    """Show cues, progress and the result a device reports over its serial link (--start begins a session)."""
    _delegate("hardware.monitor", ["--port", port] + _options(c, "monitor", baud=baud, start=start,
                                                              until_result=until_result, timeout=timeout))


@task(iterable=["logs"])
def report(c: Context, logs: list[str] | None = None, evaluation: str = "", out: str = "") -> None:
    """One self-contained HTML report: from device session logs (--logs DIR, repeatable) or a model's evaluation."""
    _delegate("train.report.document", [arg for folder in logs or [] for arg in ("--logs", folder)]
              + _options(c, "report", evaluation=evaluation, out=out))


@task(name="export-target")
def export_target(c: Context, result: str, subject: str, out: str = "", fiducials: str = "",
                  name: str = "") -> None:
    """Write a session's estimate as a Localite InstrumentMarker XML and a Brainsight target file."""
    _delegate("train.io.navigator", ["--result", result, "--subject", subject]
              + _options(c, "export_target", out=out, fiducials=fiducials, name=name))


@task
def run(c: Context, config: str) -> None:
    """Run the device runtime with a TOML configuration (what the Pi's service runs)."""
    _delegate("edge.__main__", ["--config", config])


DEPLOY_SETTINGS = ("user", "ssh_key", "port", "prefix", "python", "restart_command", "service_state_command",
                   "self_test_command", "health_timeout", "keep", "min_free_mb", "max_clock_skew", "connect_timeout",
                   "strict_host_keys", "known_hosts")


def _deploy_config(c: Context, key: str, given: str = "") -> str:
    """A deploy option: the task's own argument, else the 'deploy' section of invoke's configuration."""
    return str(_setting(c, "deploy", key, given))


def _deploy_settings(c: Context) -> list[str]:
    """The device settings of the 'deploy' configuration section (invoke.yaml, ~/.invoke.yaml, INVOKE_DEPLOY_*)."""
    return _options(c, "deploy", **dict.fromkeys(DEPLOY_SETTINGS, ""))


@task
def wheelhouse(c: Context, out: str = "", platform: str = "", python: str = "", extra_wheels: str = "",
               brainflow_source: str = "") -> None:
    """Download the device's wheels into an offline wheelhouse; --platform pi: the whole Pi set, BrainFlow built."""
    _delegate("hardware.deploy.cli", ["wheelhouse"] + _opt("--out", _deploy_config(c, "wheelhouse", out))
              + _options(c, "wheelhouse", platform=platform, python=python, extra_wheels=extra_wheels,
                         brainflow_source=brainflow_source))


@task
def deploy(c: Context, host: str = "", hosts: str = "", bundle: str = "", config: str = "", public_key: str = "",
           wheelhouse: str = "", edge_wheel: str = "", trust_new_host: bool = False) -> None:
    """Deploy a release (edge wheel, bundle, config) to devices over SSH; --trust-new-host for a device's first."""
    _delegate("hardware.deploy.cli", ["deploy"] + _options(c, "deploy", host=host, hosts=hosts, bundle=bundle,
                                                       config=config, public_key=public_key, wheelhouse=wheelhouse,
                                                       edge_wheel=edge_wheel)
              + _opt("--trust-new-host", trust_new_host) + _deploy_settings(c))


@task(name="rotate-key")
def rotate_key(c: Context, new_public_key: str, signing_key: str, host: str = "", yes: bool = False) -> None:
    """Hand a device's trust to a new signing key, with a statement signed by the old key (asks to confirm)."""
    _delegate("hardware.deploy.cli", ["rotate-key", "--new-public-key", new_public_key, "--signing-key", signing_key]
              + _options(c, "deploy", host=host) + _opt("--yes", yes) + _deploy_settings(c))


@task
def rollback(c: Context, host: str = "") -> None:
    """Switch a device back to its previous release, restart the service and check it is healthy."""
    _delegate("hardware.deploy.cli", ["rollback"] + _options(c, "deploy", host=host) + _deploy_settings(c))


@task(name="device-status")
def device_status(c: Context, host: str = "", json: bool = False) -> None:
    """Show a device's current release, bundle id, service state, health and last session result."""
    _delegate("hardware.deploy.cli", ["status"] + _options(c, "deploy", host=host) + _opt("--json", json)
              + _deploy_settings(c))
