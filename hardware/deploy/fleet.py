"""Deploy to many devices at once and summarise them in one table.

All devices are probed in parallel with one Fabric ``ThreadingGroup.run`` (preflight); each
device that passes is then deployed in its own thread. One device failing never stops the
others; the caller's exit code says whether every device succeeded.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection, ThreadingGroup
from fabric.exceptions import GroupException

from hardware.deploy.device import (Device, Probe, StepFailed, make_connection, parse_probe, probe_command,
                                    probe_failure)
from hardware.deploy.plan import DeployPlan
from hardware.deploy.procedure import HostResult, connection_problem, deploy_device
from hardware.deploy.settings import DeploySettings


def preflight_group(connections: list[Connection], hosts: list[str],
                    settings: DeploySettings) -> dict[Connection, Probe | HostResult]:
    """Probe every device in parallel; map each connection to its Probe or its failing HostResult."""
    group = ThreadingGroup.from_connections(connections)
    sent = time.time()
    try:
        results = group.run(probe_command(settings), hide=True, warn=True, in_stream=False)
    except GroupException as err:
        results = err.result
    received = time.time()
    outcome: dict[Connection, Probe | HostResult] = {}
    for connection, host in zip(connections, hosts):
        result = results[connection]
        if isinstance(result, BaseException):
            outcome[connection] = HostResult(host, False, "refused", None, "preflight",
                                             connection_problem(result, host))
            continue
        try:
            if result.failed:
                raise StepFailed("preflight", probe_failure(settings, result.stderr + "\n" + result.stdout))
            outcome[connection] = parse_probe(result.stdout, sent, received, settings)
        except StepFailed as err:
            outcome[connection] = HostResult(host, False, "refused", None, err.step, err.message)
    return outcome


def deploy_fleet(hosts: list[str], settings: DeploySettings, plan: DeployPlan) -> list[HostResult]:
    """Deploy the plan to every device in parallel.

    Parameters
    ----------
    hosts : list of str
        ``[user@]host[:port]`` or ``~/.ssh/config`` aliases.
    settings : DeploySettings
    plan : DeployPlan

    Returns
    -------
    list of HostResult
        One per host, in the given order.
    """
    connections = [make_connection(host, settings) for host in hosts]
    probes = preflight_group(connections, hosts, settings)

    def one(index: int) -> HostResult:
        connection, host = connections[index], hosts[index]
        probe = probes[connection]
        if isinstance(probe, HostResult):
            return probe
        try:
            return deploy_device(Device(connection, settings), host, plan, probe)
        except Exception as err:  # one device's surprise must not hide the others' results
            return HostResult(host, False, "failed", None, "unknown", f"{type(err).__name__}: {err}")

    with ThreadPoolExecutor(max_workers=max(1, len(connections))) as pool:
        results = list(pool.map(one, range(len(connections))))
    for connection in connections:
        connection.close()
    return results


def result_table(results: list[HostResult]) -> str:
    """A plain-text table: host, result, release, failed step, message."""
    rows = [("host", "result", "release", "failed step", "details")]
    rows += [(result.host, result.outcome, result.release or "-", result.step or "-", result.message)
             for result in results]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * 7)
    ok = sum(result.ok for result in results)
    lines.append(f"{ok} of {len(results)} device(s) succeeded")
    return "\n".join(lines)
