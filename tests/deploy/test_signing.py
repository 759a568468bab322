"""Signed bundles: `jetkit keygen`, `jetkit bundle --sign`, `jetkit bundle verify --key`, and a
device trust store (`ROOT/trusted-keys/`) that refuses unsigned, wrongly signed and tampered
bundles before anything is installed, whether the host checks first or not."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from cli_helpers import assert_user_error, jetkit
from deploy_helpers import upload

from deploy.bundle import read_head
from deploy.bundle_index import BundleError
from deploy.device import Layout, current_release
from deploy.signing import generate_key, parse_public_key, sign_index, verify_index
from edge.errors import JetkitError


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs made by `jetkit keygen`: `owner` signs, `stranger` is anyone else."""
    folder = tmp_path_factory.mktemp("keys")
    for name in ("owner", "stranger"):
        result = jetkit("keygen", "-o", folder / name, "--comment", f"{name}@test")
        assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def signed(release_folder, keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("signed") / "blob-2.0.0.jkb"
    result = jetkit("bundle", release_folder, "-o", out, "--sign", keys / "owner")
    assert result.returncode == 0, result.stderr
    assert "signed by key" in result.stdout
    return out


def _tampered(bundle, out):
    """The bundle with its index rewritten, the signature kept: what someone who can edit the
    file but does not hold the key can make."""
    with tarfile.open(bundle) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    index = json.loads(members[0][1])
    index["created_unix_s"] = 0
    data = json.dumps(index, indent=2).encode()
    members[0] = (tarfile.TarInfo("index.json"), data)
    members[0][0].size = len(data)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content))
    return out


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key_line(keys):
    assert (keys / "owner").stat().st_mode & 0o777 == 0o600
    public = parse_public_key((keys / "owner.pub").read_text(), "owner.pub")
    assert public.comment == "owner@test" and len(public.key_id) == 16
    again = jetkit("keygen", "-o", keys / "owner")
    assert_user_error(again, "exists", "--force")


def test_a_signature_is_over_the_exact_index_bytes():
    pem, public = generate_key("t")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(pem, password=None)
    signature = sign_index(b'{"a": 1}', private)
    assert verify_index(b'{"a": 1}', signature, [public], "b") == public
    with pytest.raises(BundleError, match="does not match the bundle's index"):
        verify_index(b'{"a": 2}', signature, [public], "b")
    with pytest.raises(BundleError, match="is not signed"):
        verify_index(b'{"a": 1}', None, [public], "b")
    other = generate_key("u")[1]
    with pytest.raises(BundleError, match="which is not trusted here"):
        verify_index(b'{"a": 1}', signature, [other], "b")
    for garbage in (b"", b"{}", b'{"format": "jetkit-signature", "algorithm": "rsa"}'):
        with pytest.raises(BundleError):
            verify_index(b'{"a": 1}', garbage, [public], "b")


def test_verify_checks_the_signature_against_the_given_key(signed, keys, tmp_path):
    good = jetkit("bundle", "verify", signed, "--key", keys / "owner.pub")
    assert good.returncode == 0, good.stderr
    assert "ok: signed by key" in good.stdout
    unchecked = jetkit("bundle", "verify", signed)
    assert "(not checked: give --key PUB to check it)" in unchecked.stdout
    assert_user_error(
        jetkit("bundle", "verify", signed, "--key", keys / "stranger.pub"), "not trusted here"
    )
    tampered = _tampered(signed, tmp_path / "blob-2.0.0.jkb")
    assert_user_error(
        jetkit("bundle", "verify", tampered, "--key", keys / "owner.pub"), "does not match"
    )
    assert_user_error(
        jetkit("bundle", "verify", signed, "--key", keys / "owner"), "not a jetkit public key"
    )


def _trusting(root, keys, *names):
    store = Layout(root).trusted_keys
    store.mkdir(parents=True)
    for name in names:
        (store / f"{name}.pub").write_text((keys / f"{name}.pub").read_text())


def test_a_device_with_a_trust_store_takes_only_what_its_keys_signed(
    bundles, signed, keys, tmp_path
):
    root = tmp_path / "device"
    _trusting(root, keys, "owner")
    flash = ("flash", "--target", f"file://{root}", "--daemon", "http://127.0.0.1:9")
    unsigned = jetkit(*flash[:1], bundles("1.0.0"), *flash[1:])
    assert_user_error(unsigned, "is not signed", "jetkit bundle --sign KEY", progress=True)
    assert not Layout(root).staging.exists()  # refused before the upload

    ok = jetkit(*flash[:1], signed, *flash[1:])
    assert ok.returncode == 0, ok.stderr
    assert f"which {root} trusts" in ok.stderr
    assert current_release(Layout(root)) == ("blob", "2.0.0")
    release = Layout(root).release("blob", "2.0.0")
    assert (release / "index.sig").is_file()
    assert read_head(signed).index_bytes == (release / "index.json").read_bytes()


@pytest.mark.parametrize("which", ["unsigned", "stranger", "tampered"])
def test_the_device_itself_refuses_before_installing_whatever_the_host_sends(
    which, bundles, signed, keys, release_folder, tmp_path
):
    """A host that skips its own check (or is not jetkit) reaches `install` directly: the
    device verifies, deletes the upload and installs nothing."""
    root = tmp_path / "device"
    _trusting(root, keys, "owner")
    if which == "unsigned":
        bundle = bundles("1.0.0")
    elif which == "stranger":
        bundle = tmp_path / "blob-3.0.0.jkb"
        made = jetkit("bundle", release_folder, "-o", bundle, "--sign", keys / "stranger")
        assert made.returncode == 0, made.stderr
    else:
        bundle = _tampered(signed, tmp_path / "blob-2.0.0.jkb")
    transport, name = upload(root, bundle)
    expected = {"unsigned": "is not signed", "stranger": "not trusted", "tampered": "not match"}
    with pytest.raises(JetkitError, match=expected[which]):
        transport.call("install", {"release": name})
    assert not Layout(root).releases.exists()
    assert not list(Layout(root).staging.iterdir())


def test_signing_needs_a_real_private_key(release_folder, keys, tmp_path):
    out = tmp_path / "blob-1.0.0.jkb"
    assert_user_error(
        jetkit("bundle", release_folder, "-o", out, "--sign", keys / "owner.pub"),
        "not an unencrypted PEM private key",
    )
    assert_user_error(
        jetkit("bundle", release_folder, "-o", out, "--sign", tmp_path / "none"),
        "cannot read the key",
    )
    assert not out.exists()
