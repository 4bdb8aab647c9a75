"""Policies that fit: compacted through the real handler, and fail closed when they cannot fit."""

from __future__ import annotations

import json

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.decision import MAX_RESPONSE_BYTES
from policy_engine.core.iam import Verdict
from tests.conftest import API, token_event, verdict


def _write(tmp_path, routes: dict[str, list[str]]) -> str:
    lines = ["apis:", f"  - arn: {API}", "    stages: [dev]", "    routes:"]
    lines += [f"      {route}: [{', '.join(scopes)}]" for route, scopes in routes.items()]
    (tmp_path / "perms.yaml").write_text("\n".join(lines) + "\n")
    return str(tmp_path)


def test_handler_returns_the_compacted_policy(idp, make_handler, tmp_path):
    # GIVEN ANY /orders/* (seven methods) and narrower routes it already covers
    folder = _write(tmp_path, {
        "ANY /orders/*": ["orders"], "GET /orders/1": ["orders"], "PUT /orders/*": ["orders"], "ANY /*": ["root"],
    })
    result = invoke(make_handler(PERMISSIONS_SOURCE=folder), token_event(idp.mint(scope="orders"), "GET", "/orders/1"))
    resources = result.response["policyDocument"]["Statement"][0]["Resource"]
    # THEN GET and PUT share one '???' Resource and the covered routes are gone
    assert len(resources) == 6
    assert f"{API}/dev/???/orders/*" in resources
    assert verdict(result, "PUT", "/orders/7/lines/2") is Verdict.ALLOW
    assert verdict(result, "GET", "/x/orders/1") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/orders") is Verdict.IMPLICIT_DENY
    # AND every method of '*' becomes one Resource
    result = invoke(make_handler(PERMISSIONS_SOURCE=folder), token_event(idp.mint(scope="root"), "GET", "/"))
    assert result.response["policyDocument"]["Statement"][0]["Resource"] == [f"{API}/dev/*/*"]


def test_a_policy_over_the_limit_fails_closed_with_a_log_line(idp, make_handler, tmp_path, capsys):
    # GIVEN one scope granting more distinct routes than 8 KB can list
    folder = _write(tmp_path, {f"GET /collection-{i:03d}/items": ["big"] for i in range(120)})
    handler = make_handler(PERMISSIONS_SOURCE=folder)
    capsys.readouterr()
    result = invoke(handler, token_event(idp.mint(scope="big", subject="bulk-client"), "GET", "/collection-001/items"))
    # THEN API Gateway gets a failure (500), not a truncated or widened policy
    assert result.response is None and result.error == "AuthorizerFailure"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    too_large = [r for r in logged if r["event"] == "policy_too_large"]
    assert too_large and too_large[0]["principal"] == "bulk-client" and too_large[0]["size"] > MAX_RESPONSE_BYTES
    assert any(r["event"] == "decision" and r.get("reason") == "policy_too_large" for r in logged)
    # AND a caller whose policy fits is still served by the same function
    small = _write(tmp_path, {f"GET /collection-{i:03d}/items": ["big"] for i in range(120)} | {"GET /ok": ["small"]})
    result = invoke(make_handler(PERMISSIONS_SOURCE=small), token_event(idp.mint(scope="small"), "GET", "/ok"))
    assert verdict(result, "GET", "/ok") is Verdict.ALLOW
