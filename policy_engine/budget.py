"""How long the current invocation may still wait on the network.

Lambda ends an invocation at the function's timeout ("Task timed out"). API Gateway then
answers 500, which is closed, but the function has written no decision line: neither the
decision metrics nor the FailuresClosed alarm count it. A request may wait for one JWKS
refresh (``JWKS_TIMEOUT``, up to 10 s) or one introspection (``INTROSPECTION_TIMEOUT``) and
for a permission load (``cache.STORE_REQUEST_WAIT``); together they can outlast the
function's timeout.

So the handler gives the authorizer each invocation's ``get_remaining_time_in_millis``
(the Lambda context method:
https://docs.aws.amazon.com/lambda/latest/dg/python-context.html), and every wait made
for a request is cut to the time left less ``RESPONSE_RESERVE``. A request that runs out
fails closed with a refusal of its own (500, with its decision line) before Lambda stops it.
The time left is read only when a request is about to wait on the network: a warm
decision never reads it.

One ``InvocationBudget`` belongs to one authorizer and the adapters it was built with
(``bootstrap.build_authorizer`` hands the same one to each), and serves one invocation at a
time, as a Lambda container does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["RESPONSE_RESERVE", "InvocationBudget", "RemainingMillis"]

#: Seconds of an invocation kept for what follows a failed wait: the refusal, its
#: decision line and the answer to the Lambda runtime. Generous for a small function,
#: whose share of a CPU is small.
RESPONSE_RESERVE = 0.5

#: The Lambda context's ``get_remaining_time_in_millis``.
RemainingMillis = Callable[[], object]


class InvocationBudget:
    """The time the invocation being answered has left, as a bound on each wait."""

    __slots__ = ("_remaining_millis",)

    def __init__(self) -> None:
        self._remaining_millis: RemainingMillis | None = None

    def begin(self, remaining_millis: RemainingMillis | None) -> None:
        """Start an invocation: ``remaining_millis`` says how long it has left (``None``: no
        limit, as for a call outside Lambda)."""
        self._remaining_millis = remaining_millis

    def limit(self, seconds: float) -> float:
        """``seconds``, or the time the invocation has left less ``RESPONSE_RESERVE`` when that
        is less; zero or below when nothing is left to wait with.

        A time left that is not a finite number (a test double's context) sets no limit:
        the wait keeps its own deadline, as outside Lambda.
        """
        remaining_millis = self._remaining_millis
        if remaining_millis is None:
            return seconds
        left = remaining_millis()
        if isinstance(left, bool) or not isinstance(left, int | float) or not math.isfinite(left):
            return seconds
        return min(seconds, left / 1000 - RESPONSE_RESERVE)
