"""usageIdentifierKey from a claim or the API keys file; routes that need a key."""

from __future__ import annotations

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from policy_engine.errors import ConfigurationError
from tests.conftest import API, ROOT, verdict
from tests.request_events import event_of, http_v1_event, http_v2_event

KEYS_FILE = str(ROOT / "examples" / "api-keys.yaml")
CLAIM_KEY = "claim-key-0123456789abcdef"


@pytest.fixture
def keyed(make_handler):
    return make_handler(API_KEYS_FILE=KEYS_FILE, API_KEY_CLAIM="api_key")


@pytest.mark.parametrize("kind", ["TOKEN", "REQUEST"])
def test_key_from_the_per_client_mapping(idp, keyed, kind):
    token = idp.mint(scope="pets:write", subject="partner-a-client")
    result = invoke(keyed, event_of(kind, token, "POST", "/pets"))
    assert result.response["usageIdentifierKey"] == "pa-4f1c9e7d2b8a6c3e5f0d"
    assert verdict(result, "POST", "/pets") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets/1") is Verdict.ALLOW


def test_a_token_with_a_client_id_is_keyed_by_it_alone(idp, keyed):
    # A user whose sub is a partner's client id is not that partner: its token names
    # another client, so it has no key, and the routes that need one are denied.
    token = idp.mint(scope="pets:write", subject="partner-a-client", client_id="someone-else")
    result = invoke(keyed, event_of("REQUEST", token, "POST", "/pets"))
    assert "usageIdentifierKey" not in result.response
    assert verdict(result, "POST", "/pets") is Verdict.EXPLICIT_DENY
    token = idp.mint(scope="pets:write", subject="a-user", client_id="partner-b-client")
    assert invoke(keyed, event_of("TOKEN", token)).response["usageIdentifierKey"] == "pb-9e2d7c4b1a8f6e3d0c5b"


def test_key_from_a_claim_wins_over_the_mapping(idp, keyed):
    token = idp.mint(scope="pets:read", subject="partner-a-client", api_key=CLAIM_KEY)
    assert invoke(keyed, event_of("TOKEN", token)).response["usageIdentifierKey"] == CLAIM_KEY


def test_a_claim_that_is_not_a_key_value_counts_as_no_key(idp, make_handler):
    handler = make_handler(API_KEY_CLAIM="api_key")
    for value in ["short", 12345678901234567890123, ["claim-key-0123456789abcdef"], "has spaces in it 0123456789"]:
        result = invoke(handler, event_of("TOKEN", idp.mint(scope="pets:read", api_key=value)))
        assert "usageIdentifierKey" not in result.response, value


@pytest.mark.parametrize("kind", ["TOKEN", "REQUEST"])
def test_caller_without_a_key_is_denied_the_routes_that_need_one(idp, keyed, kind):
    token = idp.mint(scope="pets:read pets:write store:read", subject="unknown-client")
    result = invoke(keyed, event_of(kind, token, "GET", "/pets/1"))
    assert "usageIdentifierKey" not in result.response
    assert verdict(result, "GET", "/pets/1") is Verdict.EXPLICIT_DENY
    assert verdict(result, "POST", "/pets") is Verdict.EXPLICIT_DENY
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # does not need a key
    assert verdict(result, "GET", "/store/inventory") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets/1", stage="prod") is Verdict.IMPLICIT_DENY


def test_a_key_never_widens_the_grant(idp, keyed):
    result = invoke(keyed, event_of("TOKEN", idp.mint(scope="email", subject="partner-a-client")))
    assert verdict(result, "GET", "/pets/1") is Verdict.EXPLICIT_DENY


def test_http_apis_have_no_usage_plans(idp, keyed):
    token = idp.mint(scope="pets:read", subject="partner-a-client")
    for event in (http_v1_event(token, "GET", "/pets/1"), http_v2_event(token, "GET", "/pets/1")):
        result = invoke(keyed, event)
        assert "usageIdentifierKey" not in result.response
        assert verdict(result, "GET", "/pets/1") is Verdict.ALLOW


@pytest.mark.parametrize(
    "text, where",
    [
        ("clients:\n  a: short\n", ":2"),
        (f"required:\n  - arn: {API}\n    stages: [dev]\n    routes: [GETT /pets]\n", ":4"),
        (f"required:\n  - arn: {API}\n    stages: [dev]\n    routes: ['GET /pets/x{{id}}']\n", ":4"),
        ("required:\n  - arn: x\n    routes: [GET /a, GET /b\n", ":4"),
        ("clients: {}\nextra: 1\n", ":1"),
        ("clients:\n  a: aaaaaaaaaaaaaaaaaaaaaaaa\n  a: bbbbbbbbbbbbbbbbbbbbbbbbb\n", ":3"),
    ],
)
def test_bad_api_keys_file_names_the_variable_and_the_line(make_handler, tmp_path, text, where):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        make_handler(API_KEYS_FILE=str(path))
    assert info.value.variable == "API_KEYS_FILE"
    assert f"keys.yaml{where}" in info.value.problem
