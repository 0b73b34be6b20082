"""Pure parts of webhook receipt: token and signature checks, idempotency keys, sender rules."""

import hashlib
import hmac

import pytest

from nameko_services.domain import webhooks
from nameko_services.domain.auth import Principal
from nameko_services.domain.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)

SECRET = "tok-123"
BODY = b'{"a": 1}'
TRIGGER = {"id": 7, "tenant_id": 3, "webhook_token": SECRET}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_token_matches_only_the_exact_token():
    assert webhooks.token_matches(SECRET, SECRET)
    assert not webhooks.token_matches(SECRET, SECRET + "x")
    assert not webhooks.token_matches(None, "")
    assert not webhooks.token_matches("", "")


def test_signature_must_cover_the_exact_raw_body():
    assert webhooks.signature_matches(SECRET, BODY, sign(BODY))
    upper_hex = "sha256=" + sign(BODY)[7:].upper()
    assert webhooks.signature_matches(SECRET, BODY, upper_hex)
    assert not webhooks.signature_matches(SECRET, BODY + b" ", sign(BODY))
    assert not webhooks.signature_matches(SECRET, BODY, sign(BODY, "other"))
    assert not webhooks.signature_matches(SECRET, BODY, sign(BODY)[7:])
    assert not webhooks.signature_matches(None, BODY, sign(BODY))


def test_the_first_presented_credential_decides():
    ok = webhooks.authenticate(None, TRIGGER, BODY, webhooks.Credentials(token=SECRET))
    assert ok == webhooks.Sender(tenant_id=3)
    assert webhooks.authenticate(None, TRIGGER, BODY,
                                 webhooks.Credentials(signature=sign(BODY))).tenant_id == 3
    with pytest.raises(UnauthorizedError):  # a wrong token is not rescued by a right signature
        webhooks.authenticate(None, TRIGGER, BODY,
                              webhooks.Credentials(token="nope", signature=sign(BODY)))
    with pytest.raises(UnauthorizedError):
        webhooks.authenticate(None, TRIGGER, BODY, webhooks.Credentials())


def test_bearer_of_another_tenant_is_not_found_and_without_permission_forbidden():
    other = Principal(user_id=1, tenant_id=4, role="admin", token_type="access")
    with pytest.raises(NotFoundError):
        webhooks.authenticate(None, TRIGGER, BODY,
                              webhooks.Credentials(bearer=other, bearer_permitted=True))
    viewer = Principal(user_id=1, tenant_id=3, role="viewer", token_type="access")
    with pytest.raises(ForbiddenError):
        webhooks.authenticate(None, TRIGGER, BODY, webhooks.Credentials(bearer=viewer))
    admin = Principal(user_id=1, tenant_id=3, role="admin", token_type="access")
    sender = webhooks.authenticate(None, TRIGGER, BODY,
                                   webhooks.Credentials(bearer=admin, bearer_permitted=True))
    assert sender == webhooks.Sender(tenant_id=3)


def test_system_trigger_needs_a_bearer_token():
    system = {**TRIGGER, "tenant_id": None}
    with pytest.raises(UnauthorizedError):
        webhooks.authenticate(None, system, BODY, webhooks.Credentials(token=SECRET))
    who = Principal(user_id=1, tenant_id=9, role="editor", token_type="access")
    sender = webhooks.authenticate(None, system, BODY,
                                   webhooks.Credentials(bearer=who, bearer_permitted=True))
    assert sender.tenant_id == 9


@pytest.mark.parametrize("key", ["", "   ", "k" * 161, "tab\there"])
def test_bad_idempotency_keys_are_400(key):
    with pytest.raises(BadRequestError):
        webhooks.check_idempotency_key(key)


def test_idempotency_key_is_trimmed_and_optional():
    assert webhooks.check_idempotency_key(None) is None
    assert webhooks.check_idempotency_key(" abc ") == "abc"
