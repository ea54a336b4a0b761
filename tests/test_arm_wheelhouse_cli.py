"""``invoke wheelhouse --platform pi``: bad input is one line and exit 2, before anything is built."""

from __future__ import annotations

import pytest

from edge.errors import run_cli
from hardware.deploy.cli import main as deploy_main
from hardware.deploy.wheels import PI_TARGET, target_from_platform


def test_pi_platform_is_raspberry_pi_os_bookworm():
    assert target_from_platform("pi", "3.11") == PI_TARGET
    assert (PI_TARGET.machine, PI_TARGET.glibc, PI_TARGET.python) == ("aarch64", (2, 36), (3, 11))


@pytest.mark.parametrize("extra, words", [
    (["--python", "3.12"], "Python 3.11, not 3.12"),
    (["--brainflow-source", "{tmp}/missing/brainflow-src-9097190.tar.gz"], "not found"),
    (["--brainflow-source", "{tmp}/brainflow-5.23.tar.gz"], "must be named brainflow-src-<commit>.tar.gz"),
    (["--brainflow-source", "{tmp}/brainflow-src-abcdef1.tar.gz"], "brainflow-src-abcdef1.tar.gz"),
    (["--extra-wheels", "{tmp}/brainflow.zip"], "is not a .whl file"),
])
def test_bad_pi_wheelhouse_input_is_one_line(extra, words, tmp_path, capsys):
    (tmp_path / "brainflow-5.23.tar.gz").write_bytes(b"not a tarball")
    (tmp_path / "brainflow-src-abcdef1.tar.gz").write_bytes(b"not a tarball either")
    (tmp_path / "brainflow.zip").write_bytes(b"PK")
    argv = ["wheelhouse", "--platform", "pi", "--out", str(tmp_path / "wh"),
            *[item.format(tmp=tmp_path) for item in extra]]
    assert run_cli(deploy_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "wh").exists() or not any((tmp_path / "wh").iterdir())


def test_brainflow_source_needs_the_pi_platform(tmp_path, capsys):
    argv = ["wheelhouse", "--platform", "manylinux_2_36_aarch64", "--brainflow-source", str(tmp_path / "x.tar.gz")]
    assert run_cli(deploy_main, argv) == 2
    assert "only used with --platform pi" in capsys.readouterr().err
