"""The deploy tasks take their settings from invoke's configuration (invoke.yaml and INVOKE_DEPLOY_*)."""

from __future__ import annotations

from pathlib import Path

from invoke import Config, Context

import tasks

REPO = Path(__file__).resolve().parents[1]


def project_context(monkeypatch, **environment: str) -> Context:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = Config(project_location=str(REPO))
    config.load_project()
    config.load_shell_env()
    return Context(config)


def test_invoke_yaml_lists_every_setting_and_defaults_to_the_built_in_values(monkeypatch):
    context = project_context(monkeypatch)
    assert set(tasks.DEPLOY_SETTINGS) <= set(context.config.deploy)
    assert tasks._deploy_settings(context) == []


def test_environment_overrides_reach_the_deploy_command(monkeypatch):
    context = project_context(monkeypatch, INVOKE_DEPLOY_SSH_KEY="/keys/id_ed25519", INVOKE_DEPLOY_KEEP="5",
                              INVOKE_DEPLOY_RESTART_COMMAND="sudo systemctl restart other.service",
                              INVOKE_DEPLOY_HOSTS="pi@a,pi@b")
    assert tasks._deploy_settings(context) == ["--ssh-key", "/keys/id_ed25519",
                                               "--restart-command", "sudo systemctl restart other.service",
                                               "--keep", "5"]
    assert tasks._deploy_config(context, "hosts") == "pi@a,pi@b"
    assert tasks._deploy_config(context, "hosts", "pi@c") == "pi@c"
