"""Ed25519 signatures of bundles: who may put a release (and its prebuilt engines, which are code
the device runs when it deserializes them) on a device.

A bundle's index lists every member's sha256, so signing the index's bytes signs the bundle.
The signature travels as the tar member `index.sig`, right after `index.json`:

    {"format": "jetkit-signature", "algorithm": "ed25519", "key_id": "…", "signature": "base64"}

Keys: a private key is a PKCS#8 PEM file (0600); its public key one line,
`jetkit-ed25519 <base64 of the 32 raw bytes> [comment]`, in `KEY.pub` beside it. A device trusts
the public keys in `ROOT/trusted-keys/*.pub`: once there is one, it installs only bundles that
one of them signed. `cryptography` is imported only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.bundle_index import BundleError
from edge.errors import JetkitError

SIGNATURE_FORMAT = "jetkit-signature"
ALGORITHM = "ed25519"
PUBLIC_KEY_TAG = "jetkit-ed25519"
PUBLIC_SUFFIX = ".pub"
TRUSTED_KEYS = "trusted-keys"
_RAW_KEY_BYTES = 32
_RAW_SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (`raw`: 32 bytes) and where it came from."""

    raw: bytes
    comment: str = ""
    source: str = ""

    @property
    def key_id(self) -> str:
        """The first 16 hex digits of the key's sha256: how messages and signatures name it."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def line(self) -> str:
        encoded = base64.b64encode(self.raw).decode("ascii")
        return f"{PUBLIC_KEY_TAG} {encoded} {self.comment}".rstrip() + "\n"


def parse_public_key(text: str, source: str) -> PublicKey:
    """`jetkit-ed25519 BASE64 [comment]` → PublicKey. Pure; errors name `source`."""
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] != PUBLIC_KEY_TAG:
        raise JetkitError(
            f"{source} is not a jetkit public key (a line `{PUBLIC_KEY_TAG} BASE64 [comment]`, "
            "as `jetkit keygen` writes it)"
        )
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _RAW_KEY_BYTES:
        raise JetkitError(f"{source}: the key is not {_RAW_KEY_BYTES} bytes of base64")
    return PublicKey(raw, parts[2] if len(parts) == 3 else "", source)


def read_public_key(path: Path) -> PublicKey:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JetkitError(f"public key {path} cannot be read ({exc})") from None
    return parse_public_key(text, f"public key {path}")


def trusted_keys(folder: Path) -> list[PublicKey]:
    """The device's trust store: every `*.pub` in `folder` (none if it does not exist). A file
    there that is not a key is an error: a trust store is not guessed at."""
    if not folder.is_dir():
        return []
    return [read_public_key(path) for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}"))]


# --- private keys --------------------------------------------------------------------------------


def generate_key(comment: str) -> tuple[bytes, PublicKey]:
    """A new key pair: the private key as PKCS#8 PEM, and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, PublicKey(public_key_of(private).raw, comment)


def load_private_key(path: Path) -> Any:
    """The Ed25519 private key in `path` (a `jetkit keygen` key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JetkitError(f"--sign {path}: cannot read the key ({exc.strerror})") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise JetkitError(
            f"--sign {path} is not an unencrypted PEM private key ({exc}); make one with "
            "`jetkit keygen`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise JetkitError(f"--sign {path} is not an Ed25519 key; make one with `jetkit keygen`")
    return key


def public_key_of(private: Any) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return PublicKey(raw)


# --- signatures ----------------------------------------------------------------------------------


def sign_index(index_bytes: bytes, private: Any) -> bytes:
    """The `index.sig` member for these exact index bytes."""
    signature = private.sign(index_bytes)
    document = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": public_key_of(private).key_id,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Signature:
    key_id: str
    signature: bytes


def parse_signature(data: bytes, source: str) -> Signature:
    """An `index.sig` member → Signature. Pure; a malformed one is a BundleError."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict) or document.get("format") != SIGNATURE_FORMAT:
        raise BundleError(f"{source}: index.sig is not a jetkit signature")
    if document.get("algorithm") != ALGORITHM:
        raise BundleError(f"{source}: index.sig uses {document.get('algorithm')!r}, not ed25519")
    key_id, encoded = document.get("key_id"), document.get("signature")
    if not isinstance(key_id, str) or not isinstance(encoded, str):
        raise BundleError(f"{source}: index.sig lacks its key_id or signature")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != _RAW_SIGNATURE_BYTES:
        raise BundleError(f"{source}: index.sig's signature is not 64 bytes of base64")
    return Signature(key_id, signature)


def verify_index(
    index_bytes: bytes, signature: bytes | None, keys: list[PublicKey], source: str
) -> PublicKey:
    """The key among `keys` whose signature `signature` (an `index.sig` member) is over
    `index_bytes`; BundleError naming what is wrong (unsigned, another key, forged)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    trusted = ", ".join(k.key_id for k in keys)
    if signature is None:
        raise BundleError(
            f"{source} is not signed, and only bundles signed by a trusted key ({trusted}) are "
            "accepted; sign it with `jetkit bundle --sign KEY`"
        )
    parsed = parse_signature(signature, source)
    for key in keys:
        if key.key_id != parsed.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(parsed.signature, index_bytes)
        except InvalidSignature:
            raise BundleError(
                f"{source}: the signature by key {key.key_id} does not match the bundle's index; "
                "it was changed after signing: rebuild and sign it again"
            ) from None
        return key
    raise BundleError(
        f"{source} is signed by key {parsed.key_id}, which is not trusted here (trusted: "
        f"{trusted}); sign it with a trusted key, or add its .pub to the trust store"
    )
