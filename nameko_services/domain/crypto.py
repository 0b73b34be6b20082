"""AES-256-GCM for secrets and encrypted datastore values, with a key id beside each ciphertext."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError

NONCE_BYTES = 12


def parse_keyring(spec: str) -> tuple[dict[str, bytes], str]:
    """Parse `id:base64key[,id:base64key…]`; the first key encrypts, all of them decrypt."""
    keyring: dict[str, bytes] = {}
    order: list[str] = []
    for part in spec.split(","):
        key_id, sep, encoded = part.strip().partition(":")
        if not sep or not key_id:
            raise ConfigurationError("ATTUNE.encryption_keys must look like 'id:base64key,...'")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise ConfigurationError(f"encryption key {key_id!r} is not base64") from exc
        if len(key) != 32:
            raise ConfigurationError(f"encryption key {key_id!r} must be 32 bytes (AES-256)")
        keyring[key_id] = key
        order.append(key_id)
    return keyring, order[0]


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64key` entry for a keyring."""
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


class Cipher:
    """Encrypts JSON values under the active key; decrypts with whichever key id is stored."""

    def __init__(self, keyring: dict[str, bytes], active_key_id: str) -> None:
        self._keys = {key_id: AESGCM(key) for key_id, key in keyring.items()}
        self.active_key_id = active_key_id

    def encrypt(self, value: Any, aad: bytes = b"") -> tuple[bytes, str]:
        """Return (nonce + ciphertext, key id) for a JSON-serialisable value."""
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode()
        sealed = self._keys[self.active_key_id].encrypt(nonce, plain, aad or None)
        return nonce + sealed, self.active_key_id

    def decrypt(self, blob: bytes, key_id: str, aad: bytes = b"") -> Any:
        """Inverse of encrypt; raises ConfigurationError when the key id is not configured."""
        aes = self._keys.get(key_id)
        if aes is None:
            raise ConfigurationError(f"encryption key {key_id!r} is not in the keyring")
        blob = bytes(blob)
        plain = aes.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad or None)
        return json.loads(plain)
