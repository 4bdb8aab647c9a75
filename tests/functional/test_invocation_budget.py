"""Waits on the network end before the invocation does: a refusal with its decision line,
never Lambda's "Task timed out" (a 500 that no decision line, metric or alarm counts).

The real handler gets a Lambda-like context whose ``get_remaining_time_in_millis`` counts
down from what the test gives it; the identity provider, introspection endpoint and
store are real sockets on 127.0.0.1 that accept and never answer.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from policy_engine.admin.publish import sync
from policy_engine.budget import RESPONSE_RESERVE, InvocationBudget
from policy_engine.cache import STORE_REQUEST_WAIT
from policy_engine.core.iam import Verdict, evaluate_response
from tests.conftest import API, ROOT, token_event
from tests.functional.test_store_deadlines import _clocked, _settle
from tests.store_endpoints import fake_store_endpoint
from tests.support.trickle import SCRIPTS, TricklingServer, hard_limit


class LambdaContext:
    """What the handler reads of Lambda's context object, with a deadline ``millis`` from now."""

    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def __init__(self, millis: int) -> None:
        self._deadline = time.monotonic() + millis / 1000
        self.asked = 0

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _call(handler: Any, event: dict[str, Any], context: Any) -> tuple[str, float]:
    started = time.monotonic()
    with hard_limit(15):
        try:
            handler.lambda_handler(event, context)
            outcome = "answered"
        except Exception as exc:  # noqa: BLE001 - the outcome is the exception's message
            outcome = str(exc)
    return outcome, time.monotonic() - started


def _decision_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [line for line in (json.loads(text) for text in capsys.readouterr().err.splitlines()
                              if text.startswith("{")) if line["event"] == "decision"]


def test_the_budget_is_the_time_left_less_the_reserve_and_ignores_what_is_not_a_number():
    budget = InvocationBudget()
    assert budget.limit(3.0) == 3.0  # outside Lambda: each wait keeps its own deadline
    budget.begin(lambda: 10_000)
    assert budget.limit(3.0) == 3.0
    budget.begin(lambda: 2_000)
    assert budget.limit(3.0) == pytest.approx(2.0 - RESPONSE_RESERVE)
    budget.begin(lambda: 100)
    assert budget.limit(3.0) <= 0  # nothing left to wait with
    for odd in (None, "2000", True, float("nan"), float("inf"), object()):
        budget.begin(lambda odd=odd: odd)
        assert budget.limit(3.0) == 3.0, odd
    budget.begin(None)
    assert budget.limit(3.0) == 3.0


def test_a_warm_decision_never_reads_the_time_left(make_handler, idp):
    handler = make_handler()
    context = LambdaContext(0)  # past its deadline: any wait would be refused
    outcome, _ = _call(handler, token_event(idp.mint(scope="pets:read")), context)
    assert outcome == "answered"
    assert context.asked == 0


def test_a_hung_jwks_refresh_ends_with_the_invocation(idp, make_handler, capsys):
    # The keys of a second issuer are behind a JWKS endpoint that accepts and never
    # answers. JWKS_TIMEOUT=10 would hold the request past a 2 s function timeout.
    with TricklingServer(SCRIPTS["silent"][0], interval=0.2) as hung:
        hung_issuer = f"{hung.url}/hung"
        providers = json.dumps([{"issuer": idp.issuer}, {"issuer": hung_issuer, "jwksUri": f"{hung.url}/jwks.json"}])
        with hard_limit(20):
            handler = make_handler(ISSUER=None, IDENTITY_PROVIDERS=providers, JWKS_TIMEOUT="10")
        capsys.readouterr()
        token = idp.mint(scope="pets:read", iss=hung_issuer)
        outcome, elapsed = _call(handler, token_event(token), LambdaContext(2_000))
    print(f"hung JWKS, JWKS_TIMEOUT=10, 2 s left in the invocation: {outcome} after {elapsed:.2f} s")
    assert outcome == "AuthorizerFailure"
    assert elapsed < 2.0 - RESPONSE_RESERVE + 0.4  # ended before the invocation, with the reserve to spare
    [line] = _decision_lines(capsys)
    assert line["decision"] == "Error" and line["reason"] == "key_source_unavailable"
    assert line["path"] == "/pets"


def test_a_hung_introspection_ends_with_the_invocation(make_handler, capsys):
    script, interval = SCRIPTS["silent"]
    with TricklingServer(script, interval=interval) as server:
        handler = make_handler(INTROSPECTION_URL=f"{server.url}/introspect", INTROSPECTION_CLIENT_ID="authorizer",
                               INTROSPECTION_CLIENT_SECRET="secret", INTROSPECTION_TIMEOUT="10")
        capsys.readouterr()
        outcome, elapsed = _call(handler, token_event("an-opaque-token-of-the-introspection-server"),
                                 LambdaContext(1_500))
    print(f"hung introspection, INTROSPECTION_TIMEOUT=10, 1.5 s left: {outcome} after {elapsed:.2f} s")
    assert outcome == "AuthorizerFailure"
    assert elapsed < 1.5 - RESPONSE_RESERVE + 0.4
    [line] = _decision_lines(capsys)
    assert line["reason"] == "introspection_unavailable"


def test_no_outbound_call_is_started_when_the_invocation_has_no_time_left(make_handler, capsys):
    script, interval = SCRIPTS["silent"]
    with TricklingServer(script, interval=interval) as server:
        handler = make_handler(INTROSPECTION_URL=f"{server.url}/introspect", INTROSPECTION_CLIENT_ID="authorizer",
                               INTROSPECTION_CLIENT_SECRET="secret")
        capsys.readouterr()
        outcome, elapsed = _call(handler, token_event("an-opaque-token"), LambdaContext(int(RESPONSE_RESERVE * 500)))
        connections = server.connections
    assert outcome == "AuthorizerFailure" and elapsed < 0.5
    assert connections == 0
    [line] = _decision_lines(capsys)
    assert line["reason"] == "introspection_unavailable"


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_warm_request_waits_for_a_hung_store_only_while_the_invocation_lasts(idp, make_handler, table, backend):
    sync(ROOT / "permissions", f"dynamodb://{table}")
    with fake_store_endpoint("forward", upstream=backend.dynamodb) as endpoint:
        handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}", AWS_ENDPOINT_URL_DYNAMODB=endpoint.url)
        now = _clocked(handler)
        endpoint.mode = "hang"
        now[0] += 61  # past PERMISSIONS_CACHE_TTL: the next request checks the store
        # 0.6 s left: the request may wait 0.1 s for the load, not STORE_REQUEST_WAIT.
        started = time.monotonic()
        with hard_limit(15):
            response = handler.lambda_handler(token_event(idp.mint(scope="pets:read")), LambdaContext(600))
        waited = time.monotonic() - started
    _settle(handler)
    print(f"warm request, hung store, 0.6 s left: served from last good after {waited:.2f} s "
          f"(STORE_REQUEST_WAIT {STORE_REQUEST_WAIT} s)")
    assert waited < STORE_REQUEST_WAIT - 0.5
    assert evaluate_response(response, f"{API}/dev/GET/pets") is Verdict.ALLOW
    assert response["context"]["policyVersion"] == "v1"
