"""Bundle signing keys: ``invoke keygen`` makes an ed25519 pair; the device holds only the public half.

The private key is an unencrypted PKCS#8 PEM file readable by its owner only (keep it off
devices and out of version control); the public key (PEM) sits beside it with the suffix ``.pub``
(``keys/signing.key`` -> ``keys/signing.pub``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import public_key_id, signature_document
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli
from train import workspace


def public_key_path(private_key_path: str | Path) -> Path:
    """Return where the public key of ``private_key_path`` lives (its suffix replaced by ``.pub``)."""
    return Path(private_key_path).with_suffix(".pub")


def generate_keypair(out: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Create an ed25519 signing key pair.

    Parameters
    ----------
    out : str or Path
        The private key file to write (not ending in ``.pub``); the public key goes to
        :func:`public_key_path` of it.
    overwrite : bool
        Replace existing key files (bundles signed with the old key will be refused by devices
        that get the new public key).

    Returns
    -------
    private_path, public_path : Path
        The two files written.

    Raises
    ------
    HotspotError
        When a key already exists and ``overwrite`` is False.
    """
    private_path = Path(out)
    public_path = public_key_path(private_path)
    if public_path == private_path:
        raise HotspotError(f"the private key file {out} must not end in .pub; e.g. keys/signing.key",
                           ErrorCode.BAD_ARGUMENT)
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not overwrite:
        raise HotspotError(f"{existing[0]} already exists; keep it (devices trust it) or pass --force to replace it",
                           ErrorCode.BAD_ARGUMENT)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.unlink(missing_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an ed25519 private key written by :func:`generate_keypair`.

    Parameters
    ----------
    path : str or Path
        The PEM file.

    Returns
    -------
    Ed25519PrivateKey

    Raises
    ------
    HotspotError
        When the file is missing or is not an unencrypted ed25519 private key.
    """
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as err:
        raise HotspotError(f"cannot read signing key {path} ({err.strerror}); create one with 'invoke keygen'",
                           ErrorCode.BAD_FILE) from None
    except (ValueError, TypeError):
        raise HotspotError(f"{path} is not an unencrypted PEM private key; create one with 'invoke keygen'",
                           ErrorCode.BAD_FILE) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HotspotError(f"{path} is not an ed25519 key; create one with 'invoke keygen'", ErrorCode.BAD_FILE)
    return key


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """Return the ``manifest.json.sig`` contents for a manifest.

    Parameters
    ----------
    manifest_bytes : bytes
        The manifest exactly as it will be stored.
    private_key : Ed25519PrivateKey
        The signing key.

    Returns
    -------
    bytes
        The signature document (see :func:`edge.bundle.signature_document`).
    """
    return signature_document(private_key.sign(manifest_bytes), private_key.public_key())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``invoke keygen [--out KEY] [--force]``."""
    parser = ArgumentParser(prog="invoke keygen", description=__doc__)
    parser.add_argument("--out", default=str(workspace.SIGNING_KEY),
                        help=f"private key file ({workspace.SIGNING_KEY}; the public key: same name ending in .pub)")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")
    args = parser.parse_args(argv)
    private_path, public_path = generate_keypair(args.out, overwrite=args.force)
    key_id = public_key_id(load_private_key(private_path).public_key())
    print(f"private key: {private_path} (keep it secret, never copy it to a device)")
    print(f"public key:  {public_path} (key id {key_id}; install this on devices)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
