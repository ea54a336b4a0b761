"""``invoke keygen`` and manifest signatures."""

from __future__ import annotations

import stat

import pytest

from convert.signing import load_private_key, main, public_key_path, sign_manifest
from edge.bundle import load_public_key, public_key_id, verify_manifest
from edge.errors import ErrorCode, HotspotError, run_cli


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_a_public_key(tmp_path, capsys) -> None:
    private = tmp_path / "keys" / "signing.key"
    assert run_cli(main, ["--out", str(private)]) == 0
    public = public_key_path(private)
    assert public.name == "signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key_id = public_key_id(load_public_key(public))
    assert key_id in capsys.readouterr().out
    assert public_key_id(load_private_key(private).public_key()) == key_id


def test_keygen_never_overwrites_a_key_without_force(tmp_path, capsys) -> None:
    private = tmp_path / "signing.key"
    assert run_cli(main, ["--out", str(private)]) == 0
    original = private.read_bytes()
    assert run_cli(main, ["--out", str(private)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert private.read_bytes() == original
    assert run_cli(main, ["--out", str(private), "--force"]) == 0
    assert private.read_bytes() != original


def test_a_signature_verifies_only_for_the_signed_bytes(tmp_path) -> None:
    private = tmp_path / "signing.key"
    main(["--out", str(private)])
    public = load_public_key(public_key_path(private))
    manifest = b'{"schema": 1}\n'
    signature = sign_manifest(manifest, load_private_key(private))
    verify_manifest(manifest, signature, public, public_key_path(private))
    with pytest.raises(HotspotError, match="modified after signing") as caught:
        verify_manifest(manifest.replace(b"1", b"2"), signature, public, public_key_path(private))
    assert caught.value.code == ErrorCode.BAD_SIGNATURE


def test_a_file_that_is_not_a_key_is_a_clear_error(tmp_path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    with pytest.raises(HotspotError, match="is not a PEM public key"):
        load_public_key(junk)
    with pytest.raises(HotspotError, match="is not an unencrypted PEM private key"):
        load_private_key(junk)
