"""A real OpenSSH server on 127.0.0.1 for the deploy tests (throwaway host key and client key).

``sshd -D -f <config>`` runs in the foreground on a free port and accepts only the generated
client key (no passwords). Under CI (``CI=true``) a missing sshd is a failure; elsewhere the
tests are skipped with the reason.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_CANDIDATES = ("sshd", "/usr/sbin/sshd")


def find_sshd() -> str:
    """The sshd binary (and ssh-keygen), or fail (CI) / skip (elsewhere) with the reason."""
    found = next((path for path in map(shutil.which, SSHD_CANDIDATES) if path), None)
    if found and shutil.which("ssh-keygen"):
        return found
    reason = ("OpenSSH server and client (sshd, ssh-keygen) are not installed; apt-get install openssh-server "
              "openssh-client (.ci/run does)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_client_key(folder: Path) -> Path:
    """An ed25519 client key pair (no passphrase); returns the private key path."""
    key = folder / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@dataclass
class SshServer:
    """A running sshd.

    Attributes
    ----------
    host : str
        ``user@127.0.0.1:port`` for Fabric.
    port : int
    key : Path
        The client private key it accepts.
    folder : Path
        Its configuration folder.
    process : subprocess.Popen
    """

    host: str
    port: int
    key: Path
    folder: Path
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the server (its pid, nothing else)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(folder: Path, client_key: Path) -> SshServer:
    """Start ``sshd -D`` on a free 127.0.0.1 port accepting only ``client_key``.

    Parameters
    ----------
    folder : Path
        Empty folder for the host key, authorized_keys, config and log.
    client_key : Path
        Private key whose ``.pub`` is authorized.

    Returns
    -------
    SshServer
    """
    sshd = find_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = folder / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"AuthorizedKeysFile {authorized}",
        f"PidFile {folder / 'sshd.pid'}", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
        "LogLevel ERROR", "MaxStartups 50", "MaxSessions 50", "Subsystem sftp internal-sftp", ""]))
    log = (folder / "sshd.log").open("w")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited at start: {(folder / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("sshd did not start listening within 10 s")
    return SshServer(host=f"{getpass.getuser()}@127.0.0.1:{port}", port=port, key=client_key, folder=folder,
                     process=process)
