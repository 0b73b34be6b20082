"""AES-256-GCM keyring and JWT handling."""

import time

import pytest

from nameko_services.domain import auth
from nameko_services.domain.auth import (
    hash_password,
    issue_token,
    verify_password,
    verify_token,
)
from nameko_services.domain.crypto import Cipher, new_key_spec, parse_keyring
from nameko_services.domain.errors import ConfigurationError, UnauthorizedError

SECRET = "s" * 40


def test_ciphertext_holds_no_plaintext_and_round_trips():
    keyring, active = parse_keyring(new_key_spec("k1"))
    cipher = Cipher(keyring, active)
    blob, key_id = cipher.encrypt({"password": "hunter2-plaintext"}, aad=b"1:key")
    assert key_id == "k1" and b"hunter2-plaintext" not in blob
    assert cipher.decrypt(blob, key_id, aad=b"1:key") == {"password": "hunter2-plaintext"}


def test_ciphertext_is_bound_to_its_tenant_and_key_name():
    keyring, active = parse_keyring(new_key_spec("k1"))
    cipher = Cipher(keyring, active)
    blob, key_id = cipher.encrypt("v", aad=b"1:key")
    with pytest.raises(Exception):
        cipher.decrypt(blob, key_id, aad=b"2:key")


def test_rotation_keeps_old_values_readable():
    old = new_key_spec("k1")
    blob, key_id = Cipher(*parse_keyring(old)).encrypt("v")
    rotated = Cipher(*parse_keyring(f"{new_key_spec('k2')},{old}"))
    assert rotated.active_key_id == "k2"
    assert rotated.decrypt(blob, key_id) == "v"


def test_bad_keyrings_fail_with_a_clear_message():
    with pytest.raises(ConfigurationError):
        parse_keyring("nokey")
    with pytest.raises(ConfigurationError):
        parse_keyring("k1:c2hvcnQ")


def test_passwords_are_hashed_and_verified():
    hashed = hash_password("correct horse")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong")
    assert not verify_password(None, "anything")


def test_tokens_check_type_signature_and_expiry():
    token = issue_token(SECRET, user_id=1, tenant_id=2, role="admin", token_type="access",
                        ttl_seconds=60)
    principal = verify_token(SECRET, token, ("access",))
    assert (principal.user_id, principal.tenant_id, principal.role) == (1, 2, "admin")
    with pytest.raises(UnauthorizedError):
        verify_token(SECRET, token, ("refresh",))
    with pytest.raises(UnauthorizedError):
        verify_token("t" * 40, token, ("access",))
    expired = issue_token(SECRET, user_id=1, tenant_id=2, role="admin", token_type="access",
                          ttl_seconds=-1)
    with pytest.raises(UnauthorizedError, match="expired"):
        verify_token(SECRET, expired, ("access",))


def test_execution_tokens_carry_the_execution():
    token = issue_token(SECRET, user_id=0, tenant_id=3, role="executor",
                        token_type="execution", ttl_seconds=60, execution_id=42)
    principal = verify_token(SECRET, token, ("access", "execution"))
    assert principal.execution_id == 42 and principal.actor == "execution:42"


def test_a_token_verified_before_is_not_decoded_again_but_still_expires(monkeypatch):
    token = issue_token(SECRET, user_id=5, tenant_id=6, role="viewer", token_type="access",
                        ttl_seconds=60)
    decoded = []
    decode = auth.jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    first = verify_token(SECRET, token, ("access",))
    assert verify_token(SECRET, token, ("access",)) == first and decoded == [1]
    with pytest.raises(UnauthorizedError, match="type 'access'"):
        verify_token(SECRET, token, ("refresh",))
    with pytest.raises(UnauthorizedError):
        verify_token("t" * 40, token, ("access",))  # another secret: verified afresh
    later = time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(UnauthorizedError, match="expired"):
        verify_token(SECRET, token, ("access",))
