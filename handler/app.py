"""The Lambda entry point users deploy: ``handler.app.lambda_handler``.

Configuration is read once per container; every failure is mapped to an API Gateway
outcome in the table below, and none of them is Allow. The same table serves every
event kind (REST TOKEN and REQUEST, HTTP API payload 1.0 and 2.0).

    outcome                       cause                                        client sees
    ----------------------------  -------------------------------------------  -----------
    Allow policy                  token valid, scopes grant routes             200 on granted routes, 403 elsewhere
    Deny policy (all routes)      token valid, no mapping grants anything      403
    Deny statement for routes     caller has no API key, route needs one       403 on those routes
    per-route policy              full policy > 8 KB, cache key is per route   200 or 403 for this route
    {isAuthorized: true|false}    payload 2.0 with SIMPLE_RESPONSES            200 or 403 for this route
    raise "Unauthorized"          EventError, TokenError (incl. inactive       401 (REST; HTTP APIs: 401, or
                                  introspected tokens, several credentials)    500 if not honoured: never 200)
    raise "AuthorizerFailure"     KeySourceError, IntrospectionError,          500 (not cached by API Gateway)
                                  StoreError, PolicyTooLargeError, anything else
"""

from __future__ import annotations

import time
from typing import Any

from policy_engine.bootstrap import build_authorizer
from policy_engine.core.urls import redact_url_secrets
from policy_engine.errors import ConfigurationError, EventError, PolicyEngineError, TokenError
from policy_engine.events import request_trace
from policy_engine.logs import begin_request, end_request, log, log_decision, log_refusal, raised_at
from policy_engine.settings import Settings

try:
    AUTHORIZER = build_authorizer(Settings.from_environ())
except ConfigurationError as exc:
    log("ERROR", "bad_configuration", variable=exc.variable, error=exc.problem)
    # The runtime writes an init failure's message to the log and returns it as the init
    # error: it gets the redacted text (a URL setting may hold credentials), with no chain.
    raise ConfigurationError(exc.variable, redact_url_secrets(exc.problem)) from None


class Unauthorized(Exception):
    """API Gateway turns a failure whose message is exactly ``Unauthorized`` into 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerFailure(Exception):
    """Any other failure message makes API Gateway answer 500."""

    def __init__(self) -> None:
        super().__init__("AuthorizerFailure")


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter_ns()
    # Every line written for this request names it (Lambda's and API Gateway's ids, the route).
    begin_request(getattr(context, "aws_request_id", None), *request_trace(event))
    try:
        try:
            # Waits on the network end before the invocation does (policy_engine.budget).
            answer = AUTHORIZER.answer(event, getattr(context, "get_remaining_time_in_millis", None))
        except (EventError, TokenError) as exc:
            _log_refusal("Unauthorized", exc, started)
            raise Unauthorized() from None
        except Exception as exc:  # noqa: BLE001 - fail closed on everything else, including our own bugs
            _log_refusal("Error", exc, started)
            raise AuthorizerFailure() from None
        log_decision(answer, time.perf_counter_ns() - started)
        # The candidate permissions, evaluated for the same request once the answer is
        # settled: never changes it, never raises.
        AUTHORIZER.shadow(answer)
        return answer.response
    finally:
        AUTHORIZER.health()
        end_request()


def _log_refusal(outcome: str, exc: Exception, started: int) -> None:
    # Messages of our errors are fixed texts that never include the token. Another
    # exception's message may quote what it failed on (a claim, a part of the token), so a
    # bug is shown by its type and where it was raised, never by its message.
    where: tuple[str, ...] = ()
    if isinstance(exc, PolicyEngineError):
        reason, detail = exc.code, str(exc)
    else:
        reason, detail, where = "internal_error", type(exc).__name__, raised_at(exc)
    log_refusal("WARN" if outcome == "Unauthorized" else "ERROR", outcome, reason, detail,
                time.perf_counter_ns() - started, where)
