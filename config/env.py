"""Typed readers for the environment. A bad value raises ImproperlyConfigured naming the variable."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env(name: str, default: str = "") -> str:
    """A string from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    if name in os.environ:
        return os.environ[name]
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name!r}: {exc.strerror}") from exc
    return default


def envbool(name: str, default: bool) -> bool:
    value = env(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}: {value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    value = env(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: {value!r} is not a whole number") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}: {number} is below the minimum of {minimum}")
    return number


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def decode_key32(name: str, value: str) -> bytes:
    """base64url (padding optional) of exactly 32 bytes."""
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{name}: not valid base64url") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name}: must decode to 32 bytes, got {len(raw)}")
    return raw


def key32(name: str) -> bytes | None:
    value = env(name, "")
    return decode_key32(name, value) if value.strip() else None


def master_keys(name: str) -> list[tuple[str, bytes]]:
    """`kid:key,kid:key`; the first encrypts, all decrypt. A bare key's kid is its SHA-256's first 8 hex digits."""
    entries = [item.strip() for item in env(name, "").split(",") if item.strip()]
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(entries):
        kid, sep, encoded = entry.rpartition(":")
        if not sep:
            encoded = entry
        raw = decode_key32(f"{name}[{position}]", encoded)
        kid = kid.strip() if sep else hashlib.sha256(raw).hexdigest()[:8]
        if not kid or len(kid) > 32 or not all(c.isalnum() or c in "-_." for c in kid):
            raise ImproperlyConfigured(f"{name}[{position}]: kid {kid!r} must be 1-32 letters, digits, '-', '_' or '.'")
        if any(existing == kid for existing, _ in keys):
            raise ImproperlyConfigured(f"{name}[{position}]: kid {kid!r} appears twice")
        keys.append((kid, raw))
    return keys


def signing_key_pem(name: str) -> str | None:
    """An Ed25519 private key in PKCS#8 PEM, validated at start."""
    pem = env(name, "").strip()
    if not pem:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(f"{name}: not a PKCS#8 PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{name}: must be an Ed25519 key")
    return pem.replace("\\n", "\n")


def retired_signing_keys(name: str) -> list[str]:
    """Ed25519 public keys retired from signing receipts, still published to verify the receipts they signed:
    comma-separated, each the base64url of the 32-byte key (a JWK's `x`), validated at start."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = [part.strip() for part in env(name, "").split(",") if part.strip()]
    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"{name}: {key!r} is not base64url of a 32-byte Ed25519 public key") from None
    return keys


def new_key32() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def new_signing_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def load_or_create_demo_env(path: Path) -> None:
    """The demo generates its secrets once into a git-ignored file, so a second run still decrypts its data.
    Values already in the environment win."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = new_signing_key_pem().replace("\n", "\\n")
        lines = [
            f"SECRET_KEY={secrets.token_urlsafe(48)}",
            f"ASSENT_MASTER_KEYS=demo1:{new_key32()}",
            f"ASSENT_BLIND_INDEX_KEY={new_key32()}",
            f"ASSENT_LEDGER_KEY={new_key32()}",
            f"ASSENT_LINK_KEY={new_key32()}",
            f"ASSENT_SIGNING_KEY={pem}",
        ]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value)
