"""A valid token never fails because of what is copied into the authorizer context.

The context is bounded (see docs/decisions.md, "Outcomes"): whole scopes are dropped, never cut,
and marked; a claim too long to copy is left out and named; a principal too long is
replaced by its digest. The policy is never narrowed for the context's sake: it grants
what the token's scopes grant, whatever their number.
"""

from __future__ import annotations

import hashlib
import json

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.decision import MAX_RESPONSE_BYTES, response_size
from policy_engine.core.iam import Verdict
from tests.conftest import API, verdict
from tests.request_events import http_v2_event, rest_request_event, token_kind_event

CLIENT_ID, SECRET = "authorizer", "introspection-secret"
BIG_TOKENS = {"MAX_TOKEN_LENGTH": "65536"}


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


# 10,001 scopes: two that grant routes of the shipped permissions, and 9,999 that do not.
MANY_SCOPES = ["pets:read", "store:read", *(_base36(i) for i in range(9_999))]


def _scopes_in(context: dict) -> list[str]:
    return context["scope"].split(" ") if context.get("scope") else []


def _resources(response: dict) -> list[list[str]]:
    return [statement["Resource"] for statement in response["policyDocument"]["Statement"]]


def _reference_policy(idp, make_handler) -> dict:
    # The same grants, from a token with only the two scopes that grant anything.
    small = invoke(make_handler(**BIG_TOKENS), token_kind_event(idp.mint(scope="pets:read store:read")))
    return small.response["policyDocument"]


def _check_many_scopes_answer(result, reference_policy: dict) -> None:
    assert result.response is not None, result.error
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    # the grant is whole: the same policy a two-scope token gets, evaluated as API Gateway does
    assert result.response["policyDocument"] == reference_policy
    assert verdict(result, "GET", "/pets/3") is Verdict.ALLOW
    assert verdict(result, "GET", "/store/inventory") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    context = result.response["context"]
    listed = _scopes_in(context)
    # whole scopes only, each held by the caller; the granting ones first; marked as cut
    assert listed and set(listed) <= set(MANY_SCOPES) and len(listed) < len(MANY_SCOPES)
    assert {"pets:read", "store:read"} <= set(listed)
    assert context["scopeTruncated"] is True and context["scopeCount"] == len(MANY_SCOPES)


def test_a_jwt_with_10001_scopes_gets_the_policy_its_scopes_grant(idp, make_handler):
    reference = _reference_policy(idp, make_handler)
    handler = make_handler(**BIG_TOKENS)
    token = idp.mint(scope=" ".join(MANY_SCOPES))
    assert len(token) <= 65536
    for build in (token_kind_event, rest_request_event):
        for _ in range(2):  # the second time, whatever the first remembered is warm
            _check_many_scopes_answer(invoke(handler, build(token, "GET", "/pets/3")), reference)


def test_an_opaque_token_with_10001_scopes_gets_the_policy_its_scopes_grant(idp, make_handler):
    reference = _reference_policy(idp, make_handler)
    idp.register_client(CLIENT_ID, SECRET)
    handler = make_handler(INTROSPECTION_URL=idp.introspection_endpoint, INTROSPECTION_CLIENT_ID=CLIENT_ID,
                           INTROSPECTION_CLIENT_SECRET=SECRET)
    token = idp.issue_opaque(scope=" ".join(MANY_SCOPES))
    _check_many_scopes_answer(invoke(handler, token_kind_event(token, "GET", "/pets/3")), reference)


def test_10001_scopes_with_simple_responses_stay_within_the_limit(idp, make_handler):
    handler = make_handler(SIMPLE_RESPONSES="true", IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey",
                           **BIG_TOKENS)
    result = invoke(handler, http_v2_event(idp.mint(scope=" ".join(MANY_SCOPES)), "GET", "/pets"))
    assert result.response is not None, result.error
    assert result.response["isAuthorized"] is True
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    assert set(_scopes_in(result.response["context"])) <= set(MANY_SCOPES)


LONG_SUB = "user-" + "u" * 6000
LONG_NAME = "n" * 3000
WIDE_TENANT = "\U0001F600" * 200  # 200 characters, 2,400 bytes as JSON writes them


def test_long_claims_are_left_out_whole_and_the_principal_becomes_its_digest(idp, make_handler):
    handler = make_handler(CONTEXT_CLAIMS="sub,client_id,username,iss,tenant", **BIG_TOKENS)
    token = idp.mint(scope="pets:read", subject=LONG_SUB, client_id="web", username=LONG_NAME, tenant=WIDE_TENANT)
    for build in (token_kind_event, rest_request_event):
        for _ in range(2):
            result = invoke(handler, build(token, "GET", "/pets"))
            assert result.response is not None, result.error
            assert response_size(result.response) <= MAX_RESPONSE_BYTES
            assert verdict(result, "GET", "/pets") is Verdict.ALLOW
            assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
            context = result.response["context"]
            # a value is copied whole or not at all: never a prefix of a longer one
            for name, value in (("sub", LONG_SUB), ("client_id", "web"), ("username", LONG_NAME),
                                ("tenant", WIDE_TENANT), ("iss", idp.issuer)):
                assert context.get(name) in (None, value)
            assert context["client_id"] == "web" and context["iss"] == idp.issuer
            assert "sub" not in context and "username" not in context
            assert set(context["contextOmitted"].split(" ")) >= {"sub", "username"}
            digest = hashlib.sha256(LONG_SUB.encode()).hexdigest()
            assert result.response["principalId"] == f"sha256:{digest}"


def test_a_policy_that_fits_is_never_narrowed_or_refused_for_the_context(idp, make_handler, tmp_path, capsys):
    # 75 routes: a policy of about 6.8 KB, which fits alone but not with a 2 KB context.
    lines = [f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:"]
    lines += [f"      GET /reports/r{i:03}/items/*: [reports:all]" for i in range(75)]
    (tmp_path / "big.yaml").write_text("\n".join(lines) + "\n")
    handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path), CONTEXT_CLAIMS="sub,client_id,username,iss,tenant",
                           **BIG_TOKENS)
    alone = invoke(handler, token_kind_event(idp.mint(scope="reports:all"), "GET", "/reports/r001/items/1"))
    assert alone.response is not None and response_size(alone.response) <= MAX_RESPONSE_BYTES
    scopes = ["reports:all", *(f"extra-scope-{i:04}" for i in range(120))]
    token = idp.mint(scope=" ".join(scopes), username="n" * 250, tenant="t" * 250)
    result = invoke(handler, token_kind_event(token, "GET", "/reports/r001/items/1"))
    assert result.response is not None, result.error
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    # the whole policy, not a per-route one (a TOKEN authorizer's cache key is not per route)
    assert _resources(result.response) == _resources(alone.response)
    assert verdict(result, "GET", "/reports/r074/items/7") is Verdict.ALLOW
    assert set(_scopes_in(result.response["context"])) <= set(scopes)
    assert not [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("{") and json.loads(line)["event"] == "policy_too_large"]


def test_a_principal_of_characters_json_escapes_long_is_its_digest_not_a_500(idp, make_handler, tmp_path):
    # 64 routes: about 5.8 KB of policy. 256 emoji are 256 characters but 3,072 bytes as
    # JSON writes them (two escaped surrogates each): sent whole, they overflowed 8 KB.
    lines = [f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:"]
    lines += [f"      GET /reports/r{i:03}/items/*: [reports:all]" for i in range(64)]
    (tmp_path / "big.yaml").write_text("\n".join(lines) + "\n")
    handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path), **BIG_TOKENS)
    for subject, whole in (("\U0001f600" * 128, True), ("\U0001f600" * 256, False), ("\u00e9" * 256, True)):
        result = invoke(handler, token_kind_event(idp.mint(scope="reports:all", subject=subject), "GET",
                                                  "/reports/r001/items/1"))
        assert result.response is not None, result.error
        assert response_size(result.response) <= MAX_RESPONSE_BYTES
        assert verdict(result, "GET", "/reports/r063/items/7") is Verdict.ALLOW
        expected = subject if whole else "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
        assert result.response["principalId"] == expected


def _routes(tmp_path, name: str, routes: list[str]) -> str:
    folder = tmp_path / name
    folder.mkdir()
    lines = [f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:"] + [f"      {r}: [big:read]" for r in routes]
    (folder / "p.yaml").write_text("\n".join(lines) + "\n")
    return str(folder)


def _alone(handler, token: str, event: dict) -> int:
    # The policy on its own: the decision rendered with an empty context.
    from dataclasses import replace

    from policy_engine.core.arn import parse_method_arn
    from policy_engine.core.decision import render_iam_response

    authorizer = handler.AUTHORIZER
    decision = authorizer.decide(authorizer.verify("Bearer " + token), parse_method_arn(event["methodArn"]))
    return response_size(render_iam_response(replace(decision, context={})))


def test_a_policy_that_fits_alone_is_answered_whatever_its_size_up_to_the_limit(idp, make_handler, tmp_path):
    # Policies whose size alone sweeps up to 8 KB and past it: every one that fits alone
    # is answered whole (the context gets what room is left, or none); none is a 500.
    token = idp.mint(scope="big:read")
    sizes = []
    for extra in range(1, 330, 6):
        routes = [f"GET /r{i:04d}/{'p' * 24}" for i in range(80)] + [f"GET /x/{'q' * extra}"]
        handler = make_handler(PERMISSIONS_SOURCE=_routes(tmp_path, f"p{extra}", routes))
        event = token_kind_event(token, "GET", "/x/" + "q" * extra)
        alone = _alone(handler, token, event)
        result = invoke(handler, event)
        sizes.append(alone)
        if alone > MAX_RESPONSE_BYTES:
            assert result.error is not None and result.response is None
            continue
        assert result.response is not None, (alone, result.error)
        assert response_size(result.response) <= MAX_RESPONSE_BYTES
        assert verdict(result, "GET", f"/r0079/{'p' * 24}") is Verdict.ALLOW
        assert verdict(result, "GET", "/x/" + "q" * extra) is Verdict.ALLOW
    assert min(sizes) < 8000 and any(8100 < size <= MAX_RESPONSE_BYTES for size in sizes)
    assert max(sizes) > MAX_RESPONSE_BYTES


def test_a_principal_the_room_cannot_hold_is_sent_as_its_digest(idp, make_handler, tmp_path):
    # 80 routes, about 7.7 KB alone; a principal within its own bounds (1,200 bytes as
    # JSON) but not within the room the policy leaves.
    routes = [f"GET /r{i:04d}/{'p' * 24}" for i in range(80)]
    handler = make_handler(PERMISSIONS_SOURCE=_routes(tmp_path, "p", routes), **BIG_TOKENS)
    subject = "\U0001f600" * 100
    result = invoke(handler, token_kind_event(idp.mint(scope="big:read", subject=subject), "GET", "/r0001/x"))
    assert result.response is not None, result.error
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    assert result.response["principalId"] == "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
    assert verdict(result, "GET", f"/r0079/{'p' * 24}") is Verdict.ALLOW


def test_a_per_route_policy_gives_its_context_the_room_it_leaves(idp, make_handler, tmp_path):
    # The full policy is too large; the per-route one fits alone, but not beside a context
    # of three long claims: the context is cut to fit, never the answer turned into a 500.
    routes = [f"GET /r{i:04d}/{'p' * 60}" for i in range(110)]
    handler = make_handler(PERMISSIONS_SOURCE=_routes(tmp_path, "p", routes), CONTEXT_CLAIMS="sub,a,b,c",
                           IDENTITY_SOURCE="method.request.header.Authorization,context.httpMethod,context.path",
                           **BIG_TOKENS)
    token = idp.mint(scope="big:read", a="\U0001f600" * 250, b="\U0001f600" * 250, c="\U0001f600" * 150)
    path = f"/r0007/{'p' * 60}"
    result = invoke(handler, rest_request_event(token, "GET", path))
    assert result.response is not None, result.error
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    assert verdict(result, "GET", path) is Verdict.ALLOW
    assert verdict(result, "GET", f"/r0008/{'p' * 60}") is not Verdict.ALLOW  # per route: this one only


def test_a_scope_with_whitespace_other_than_a_space_is_never_listed(idp, make_handler):
    # "pets:read\tx" is one scope (RFC 6749 splits on single spaces), the caller's own,
    # but a backend splitting on any whitespace would read pets:read from it.
    handler = make_handler()
    result = invoke(handler, token_kind_event(idp.mint(scope="store:read pets:read\tx"), "GET", "/store/inventory"))
    context = result.response["context"]
    assert context["scope"] == "store:read"
    assert context["scopeTruncated"] is True and context["scopeCount"] == 2
    plain = invoke(handler, token_kind_event(idp.mint(scope="store:read"), "GET", "/store/inventory"))
    assert plain.response["context"]["scope"] == "store:read" and "scopeTruncated" not in plain.response["context"]
