"""How many routes one caller can be granted before the authorizer response passes 8 KB.

Run: ``.venv/bin/python benchmarks/policy_size.py``.

Assumptions (stated in the output too):
* API ARN ``arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5`` (10-character id,
  region us-east-1), stage ``prod``;
* pet-store-like collections (``/pets``, ``/owners``, ``/appointments`` ... average
  about 9 characters), each with the routes of the scenario;
* the response's context as the runtime fills it: a 36-character principal in ``sub``
  and ``client_id``, a Cognito issuer URL, the caller's scopes and the policy version;
* size = ``json.dumps(response)`` in bytes, as the Python Lambda runtime sends it.

"Routes per caller" counts distinct (method, path) mappings granted to the caller; a
mapping with method ANY counts once. "before" is one Resource per method and path (the
runtime before compaction), "after" is ``compact_resources``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

from policy_engine.admin.lint import estimate_response
from policy_engine.core.decision import MAX_RESPONSE_BYTES, response_size
from policy_engine.core.permissions import Grant, PermissionSet, Route

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
STAGE = "prod"
PRINCIPAL = "3f2b8c1e-6a5d-4c7b-9e0f-1a2b3c4d5e6f"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI"
SCOPES = frozenset({"petstore/read", "petstore/write", "openid"})

COLLECTIONS = [
    "pets", "owners", "vets", "visits", "appointments", "invoices", "payments", "orders", "products",
    "categories", "suppliers", "inventory", "reviews", "photos", "vaccinations", "prescriptions", "insurance",
    "adoptions", "shelters", "volunteers", "donations", "events", "newsletters", "coupons", "shipments",
    "returns", "carts", "wishlists", "addresses", "notifications", "breeds", "species", "treatments",
    "clinics", "rooms", "schedules", "reminders", "messages", "documents", "reports",
]


def _collections() -> Iterator[str]:
    for round_ in itertools.count():
        for name in COLLECTIONS:
            yield name if round_ == 0 else f"{name}{round_ + 1}"


def crud() -> Iterator[tuple[str, str]]:
    """Six routes per collection, one method each: list, create, read, replace, update, delete."""
    for c in _collections():
        yield from [("GET", c), ("POST", c), ("GET", f"{c}/*"), ("PUT", f"{c}/*"), ("PATCH", f"{c}/*"),
                    ("DELETE", f"{c}/*")]


def read_only() -> Iterator[tuple[str, str]]:
    """Two GET routes per collection (a reader's scope)."""
    for c in _collections():
        yield from [("GET", c), ("GET", f"{c}/*")]


def any_method() -> Iterator[tuple[str, str]]:
    """ANY on the collection and on its items (proxy-style mappings)."""
    for c in _collections():
        yield from [("*", c), ("*", f"{c}/*")]


def crud_with_nested() -> Iterator[tuple[str, str]]:
    """CRUD plus nested read routes already covered by GET /c/* (common when scopes overlap)."""
    for c in _collections():
        yield from [("GET", c), ("POST", c), ("GET", f"{c}/*"), ("PUT", f"{c}/*"), ("DELETE", f"{c}/*"),
                    ("GET", f"{c}/*/history"), ("GET", f"{c}/*/photos"), ("GET", f"{c}/*/notes")]


SCENARIOS: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "read-only (GET /c, GET /c/*)": read_only,
    "CRUD (6 single-method routes per collection)": crud,
    "CRUD + nested reads under GET /c/*": crud_with_nested,
    "ANY /c and ANY /c/*": any_method,
}


def measure(routes: list[tuple[str, str]], compacted: bool) -> tuple[int, int]:
    grants = [Grant(Route(API, STAGE, verb, path), "petstore/write", "bench") for verb, path in routes]
    permissions = PermissionSet(grants, version="sha256:0123456789abcdef")
    resources = permissions.resources(SCOPES | {"petstore/write"}, API, STAGE, compacted=compacted)
    response = estimate_response(resources, api_arn=API, stage=STAGE, scopes=SCOPES, version=permissions.version,
                                 principal=PRINCIPAL, issuer=ISSUER)
    return response_size(response), len(resources)


def largest_fitting(generate: Callable[[], Iterator[tuple[str, str]]], compacted: bool) -> tuple[int, int, int]:
    """(routes, Resources, bytes) of the largest prefix of the scenario that fits."""
    best = (0, 0, 0)
    routes = list(itertools.islice(generate(), 1000))
    for n in range(1, len(routes) + 1):
        size, count = measure(routes[:n], compacted)
        if size > MAX_RESPONSE_BYTES:
            break
        best = (n, count, size)
    return best


def main() -> None:
    print(f"API {API}, stage {STAGE}; limit {MAX_RESPONSE_BYTES} bytes (json.dumps of the whole response)")
    print(f"context: principal of {len(PRINCIPAL)} chars, issuer {ISSUER}\n")
    header = (f"{'scenario':<46} {'before: routes':>15} {'Resources':>10} {'after: routes':>14} {'Resources':>10} "
              f"{'gain':>6}")
    print(header)
    print("-" * len(header))
    for name, generate in SCENARIOS.items():
        before = largest_fitting(generate, compacted=False)
        after = largest_fitting(generate, compacted=True)
        gain = f"{(after[0] / before[0] - 1) * 100:+.0f}%" if before[0] else "n/a"
        print(f"{name:<46} {before[0]:>15} {before[1]:>10} {after[0]:>14} {after[1]:>10} {gain:>6}")
    # The cold-path cost of compaction (memoised afterwards per API, stage and scope set).
    routes = list(itertools.islice(crud_with_nested(), 400))
    grants = [Grant(Route(API, STAGE, verb, path), "s", "bench") for verb, path in routes]
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        PermissionSet(grants).resources(frozenset({"s"}), API, STAGE)
    elapsed = (time.perf_counter() - started) / rounds * 1000
    print(f"\ncompaction of {len(routes)} routes (cold, not memoised): {elapsed:.1f} ms per policy")


if __name__ == "__main__":
    main()
