"""Trust material (JWKS, discovery) with a member given twice is not a document we can read."""

from __future__ import annotations

import json

import pytest

from policy_engine.adapters.http import FetchError, KeepAliveClient, request_json
from policy_engine.adapters.jwks_http import JwksKeySource
from policy_engine.errors import KeySourceError


def _source(idp, **overrides):
    options = {"algorithms": {"RS256"}, "jwks_uris": [idp.jwks_uri], "timeout": 1.0, "cache_ttl": 300,
               "refetch_interval": 30, "max_stale": 600, **overrides}
    return JwksKeySource([idp.issuer], **options)


def test_request_json_refuses_duplicate_members_at_any_depth(idp):
    for body in (b'{"a": 1, "a": 1}', b'{"keys": [{"kid": "k", "kid": "j"}]}', b'[{"x": {"y": 1, "y": 2}}]'):
        idp.routes[("GET", "/doc")] = lambda h, b, body=body: (200, {}, body)
        with pytest.raises(FetchError, match="duplicate member"):
            request_json(f"{idp.issuer}/doc", timeout=1.0)
    idp.routes[("GET", "/doc")] = lambda h, b: (200, {}, b'{"a": {"b": 1}, "b": {"a": 2}}')
    assert request_json(f"{idp.issuer}/doc", timeout=1.0) == {"a": {"b": 1}, "b": {"a": 2}}


def test_keep_alive_client_refuses_duplicate_members(idp):
    idp.routes[("POST", "/doc")] = lambda h, b: (200, {}, b'{"active": false, "active": true}')
    client = KeepAliveClient(f"{idp.issuer}/doc", timeout=1.0)
    try:
        with pytest.raises(FetchError, match="duplicate member"):
            client.request("POST", body=b"")
    finally:
        client.close()


def test_a_jwks_key_with_a_member_twice_is_a_failed_fetch(idp):
    # Two "n" values: which key is meant is unknowable, so no key of that document is used.
    jwk = idp.jwks()["keys"][0]
    text = json.dumps({"keys": [jwk]})
    body = text.replace('"kid":', f'"n": "{jwk["n"][::-1]}", "kid":', 1).encode()
    idp.jwks_override = lambda: (200, body)
    with pytest.raises(KeySourceError, match="duplicate member"):
        _source(idp).get_key(idp.issuer, jwk["kid"])


def test_a_discovery_document_with_a_member_twice_is_refused(idp):
    doc = (f'{{"issuer": "{idp.issuer}", "jwks_uri": "{idp.jwks_uri}", '
           f'"jwks_uri": "{idp.issuer}/other-jwks.json"}}').encode()
    idp.routes[("GET", "/.well-known/openid-configuration")] = lambda h, b: (200, {}, doc)
    with pytest.raises(KeySourceError, match="duplicate member"):
        _source(idp, jwks_uris=()).get_key(idp.issuer, idp.keys[0].kid)
    assert not any(r.endswith("jwks.json") for r in idp.requests)  # neither of the two was fetched
