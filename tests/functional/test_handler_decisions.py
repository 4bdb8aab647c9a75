"""The real handler, a real JWKS over HTTP, the shipped permissions: decisions as API Gateway sees them."""

from __future__ import annotations

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from tests.conftest import token_event, verdict


def test_reader_gets_every_read_route_and_nothing_else(idp, make_handler):
    # GIVEN a token with pets:read WHEN the authorizer runs for one route
    handler = make_handler()
    result = invoke(handler, token_event(idp.mint(scope="pets:read"), "GET", "/pets/12"))
    # THEN the cached policy serves every read route and refuses the rest
    assert verdict(result, "GET", "/pets/12") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets/12/photos/3") is Verdict.ALLOW  # '*' crosses '/'
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/store/inventory") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/pets", stage="prod") is Verdict.IMPLICIT_DENY  # other stage: other cache entry
    assert result.response["principalId"] == "demo-client"
    assert result.response["context"]["scope"] == "pets:read"


def test_no_grant_is_an_explicit_deny_of_the_whole_stage(idp, make_handler):
    result = invoke(make_handler(), token_event(idp.mint(scope="email profile"), "GET", "/pets"))
    for verb, path in [("GET", "/pets"), ("POST", "/pets"), ("GET", "/anything/at/all"), ("GET", "/")]:
        assert verdict(result, verb, path) is Verdict.EXPLICIT_DENY


def test_any_verb_mapping_is_spelled_out_so_star_cannot_cross_into_other_paths(idp, make_handler):
    result = invoke(make_handler(), token_event(idp.mint(scope="store:write"), "POST", "/store/orders"))
    assert verdict(result, "PATCH", "/store/orders/7") is Verdict.ALLOW
    assert verdict(result, "DELETE", "/store/orders/7/items/1") is Verdict.ALLOW
    # 'stage/*/store/orders/*' would have allowed this; the mapping does not
    assert verdict(result, "GET", "/other/store/orders/1") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/store/orders") is Verdict.IMPLICIT_DENY


@pytest.mark.parametrize("claim", ["scope", "scp"])
def test_scopes_from_string_or_array(idp, make_handler, claim):
    scope = "pets:write" if claim == "scope" else ["pets:write"]
    result = invoke(make_handler(), token_event(idp.mint(scope=scope), "POST", "/pets"))
    assert verdict(result, "POST", "/pets") is Verdict.ALLOW


def test_scope_matching_is_exact_and_case_sensitive(idp, make_handler):
    handler = make_handler()
    for scope in ["PETS:READ", "pets:rea", "pets:read:all", "pets:read\tstore:read"]:
        result = invoke(handler, token_event(idp.mint(scope=scope), "GET", "/pets"))
        assert verdict(result, "GET", "/pets") is Verdict.EXPLICIT_DENY, scope


def test_one_json_log_line_per_decision_and_never_the_token(idp, make_handler, capsys):
    import json

    handler = make_handler()
    capsys.readouterr()
    tokens = [idp.mint(scope="pets:read"), idp.mint(scope="email"), idp.mint(scope="pets:read", lifetime=-3600)]
    for token in tokens:
        invoke(handler, token_event(token, "GET", "/pets"))
    invoke(handler, token_event(tokens[0] + "x", "GET", "/pets"))  # bad signature
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    # Besides the decisions: the container's first health line.
    assert [r["event"] for r in lines if r["event"] != "decision"] == ["health"]
    records = [r for r in lines if r["event"] == "decision"]
    assert [r["decision"] for r in records] == ["Allow", "Deny", "Unauthorized", "Unauthorized"]
    assert records[0]["principal"] == "demo-client" and records[0]["routes"] == 2 and records[0]["version"]
    for token in tokens:
        for secret_part in token.split(".")[1:]:
            assert secret_part not in err
