"""Key revocation through the real handler: what the issuer's JWKS says is what verifies.

``JWKS_CACHE_TTL=1`` with ``JWKS_REFETCH_INTERVAL=3600``: a removed key must stop
verifying once the TTL has passed, not when the (much longer) refetch interval does.
"""

from __future__ import annotations

import json
import time

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from tests.conftest import token_event, verdict

SHORT_TTL = {"JWKS_CACHE_TTL": "1", "JWKS_REFETCH_INTERVAL": "3600"}


def _past_the_ttl() -> None:
    time.sleep(1.1)


def _allowed(handler, token: str) -> bool:
    result = invoke(handler, token_event(token))
    return result.response is not None and verdict(result, "GET", "/pets") is Verdict.ALLOW


def test_a_key_removed_from_the_jwks_stops_verifying_within_the_cache_ttl(idp, make_handler):
    handler = make_handler(**SHORT_TTL)
    old_token = idp.mint(scope="pets:read")
    assert _allowed(handler, old_token)
    idp.rotate(keep_old=False)
    _past_the_ttl()
    result = invoke(handler, token_event(old_token))
    assert result.unauthorized
    assert _allowed(handler, idp.mint(scope="pets:read"))  # the new key came with the same refresh


@pytest.mark.parametrize("document", [b'{"keys": []}', b'{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}'],
                         ids=["no keys", "only skipped keys"])
def test_a_jwks_without_usable_keys_refuses_every_token(idp, make_handler, capsys, document):
    handler = make_handler(**SHORT_TTL)
    token = idp.mint(scope="pets:read")
    assert _allowed(handler, token)
    idp.jwks_override = lambda: (200, document)
    _past_the_ttl()
    for candidate in (token, idp.mint(scope="pets:read")):
        result = invoke(handler, token_event(candidate))
        assert result.response is None and result.error == "AuthorizerFailure"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line["level"] == "ERROR" and line["event"] == "jwks_no_usable_keys" for line in lines)


@pytest.mark.parametrize("answer", [(500, b"oops"), (200, b"<html>"), (200, b'{"keys": "none"}')],
                         ids=["500", "not JSON", "no keys list"])
def test_a_failing_jwks_endpoint_keeps_the_last_good_keys(idp, make_handler, answer):
    handler = make_handler(**SHORT_TTL)
    token = idp.mint(scope="pets:read")
    assert _allowed(handler, token)
    idp.jwks_override = lambda: answer
    _past_the_ttl()
    assert _allowed(handler, token)
