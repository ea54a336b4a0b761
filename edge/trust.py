"""The device's trusted signing key: provisioned once, replaced only by a rotation the old key signed.

A device keeps the ed25519 public key its bundles must be signed with in ``<prefix>/trust/signing.pub``
(outside every release, so no deploy brings its own key). ``invoke deploy --trust-new-host`` installs it
on a device that has none; after that a deploy only checks that the bundle is signed with it.

Replacing it takes a rotation statement: a JSON document naming the old key (by id) and carrying the new
public key, signed with the old private key. The device checks it with the key it trusts, with this
module (``python -m edge.trust rotate TRUST_DIR STATEMENT SIGNATURE``), and only then replaces the file
(atomically) and appends the change to ``<trust dir>/history``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.bundle import load_public_key, public_key_id
from edge.errors import ArgumentParser, ErrorCode, HotspotError, run_cli

TRUST_DIR = "trust"
KEY_FILE = "signing.pub"
HISTORY_FILE = "history"
PURPOSE = "hotspot-edge signing key rotation"


def public_pem(key: Ed25519PublicKey) -> str:
    """The key as PEM text (what ``signing.pub`` holds)."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rotation_statement(old_key: Ed25519PublicKey, new_key: Ed25519PublicKey) -> bytes:
    """The document the old key signs to hand trust over to the new one.

    Parameters
    ----------
    old_key, new_key : Ed25519PublicKey
        The key the device trusts now and the one it is to trust.

    Returns
    -------
    bytes
        UTF-8 JSON: purpose, old and new key ids, the new key's PEM, the time (UTC).
    """
    document = {"purpose": PURPOSE, "old_key_id": public_key_id(old_key), "new_key_id": public_key_id(new_key),
                "new_key": public_pem(new_key), "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def verify_rotation(statement: bytes, signature: bytes, trusted: Ed25519PublicKey) -> Ed25519PublicKey:
    """Check a rotation statement against the key the device trusts; return the new key.

    Parameters
    ----------
    statement : bytes
        The statement (see :func:`rotation_statement`).
    signature : bytes
        Its ed25519 signature, base64 (as written by ``invoke rotate-key``).
    trusted : Ed25519PublicKey
        The device's current key.

    Raises
    ------
    HotspotError
        ``BAD_SIGNATURE``: malformed, made for another key, or not signed by the trusted key.
    """
    try:
        document = json.loads(statement.decode("utf-8"))
        raw_signature = base64.b64decode(signature.strip(), validate=True)
        new_key = serialization.load_pem_public_key(str(document["new_key"]).encode("ascii"))
        if document["purpose"] != PURPOSE or not isinstance(new_key, Ed25519PublicKey):
            raise ValueError(document["purpose"])
    except (UnicodeError, ValueError, KeyError, TypeError, binascii.Error):
        raise HotspotError("the key rotation statement is malformed; make it again with 'invoke rotate-key'",
                           ErrorCode.BAD_SIGNATURE) from None
    if document["old_key_id"] != public_key_id(trusted):
        raise HotspotError(f"the rotation is from key {document['old_key_id']} but this device trusts key "
                           f"{public_key_id(trusted)}; sign it with the device's current key", ErrorCode.BAD_SIGNATURE)
    if document["new_key_id"] != public_key_id(new_key):
        raise HotspotError("the rotation statement's new key does not match its id; make it again",
                           ErrorCode.BAD_SIGNATURE)
    try:
        trusted.verify(raw_signature, statement)
    except InvalidSignature:
        raise HotspotError(f"the rotation statement is not signed by the trusted key {public_key_id(trusted)}; "
                           "nothing was changed", ErrorCode.BAD_SIGNATURE) from None
    return new_key


def rotate(trust_dir: Path, statement: bytes, signature: bytes) -> str:
    """Replace the trusted key after checking the rotation; return the new key id.

    The key file is replaced atomically (write, fsync, rename) and the change is appended to the history.
    """
    key_path = trust_dir / KEY_FILE
    trusted = load_public_key(key_path)
    new_key = verify_rotation(statement, signature, trusted)
    temporary = key_path.with_name(KEY_FILE + ".new")
    temporary.write_text(public_pem(new_key), encoding="ascii")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, key_path)
    new_id = public_key_id(new_key)
    with open(trust_dir / HISTORY_FILE, "a", encoding="ascii") as history:
        history.write(f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} rotated "
                      f"{public_key_id(trusted)} -> {new_id}\n")
    return new_id


def _main(argv: Sequence[str] | None) -> int:
    parser = ArgumentParser(prog="python -m edge.trust", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rotate_parser = commands.add_parser("rotate", help="replace the trusted key with a rotation the old key signed")
    rotate_parser.add_argument("trust_dir", type=Path)
    rotate_parser.add_argument("statement", type=Path)
    rotate_parser.add_argument("signature", type=Path)
    args = parser.parse_args(argv)
    try:
        statement, signature = args.statement.read_bytes(), args.signature.read_bytes()
    except OSError as err:
        raise HotspotError(f"cannot read the rotation files ({err.strerror})", ErrorCode.BAD_FILE) from None
    print(f"trusted key is now {rotate(args.trust_dir, statement, signature)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (run on the device by ``invoke rotate-key``); user errors: one line, exit 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
