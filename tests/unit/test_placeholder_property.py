"""No claim value can widen a grant: tenant placeholders, judged as API Gateway judges policies.

For random mappings (requirements of several kinds, ``{claim:...}`` placeholders, ``*``)
and random callers (grants, and claim values that are often hostile: ``*``, ``?``, ``/``,
``..``, whitespace, control characters, non-ASCII, huge, other JSON types), the policy the
permission set writes is evaluated with ``core.iam`` against requests built from the
mappings, from other tenants' values and from the hostile values themselves. Every
request it allows must be granted by an independent reading of the mappings filled with
the caller's own values where those are valid (and nothing where they are not); and,
so that the test can fail both ways, every request that reading grants is allowed.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.core.arn import HTTP_VERBS
from policy_engine.core.decision import ALLOW, DENY, Decision, render_iam_response
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import compile_records

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
STAGE = "dev"
CLAIMS = {"tenant_id": ("tenant_id",), "org.id": ("org", "id"), "custom:team": ("custom:team",)}
GRANTS = ["pets:read", "pets:write", "group admins", "role Pets.Read.All", "group Pet Readers"]

HOSTILE = ["*", "?", "/", "..", ".", "a/b", "a*", "*a", "a?", " a", "a ", "a\tb", "\x00", "a\nb", "%2F", "{x}",
           "\uff41\uff43\uff4d\uff45", "é", "x" * 129, "", "$default", "GET", "acme/../globex", "\u2028"]
values = st.one_of(
    st.sampled_from(["acme", "globex", "t-1", "a.b", "u@x", "42", "x" * 128]),
    st.sampled_from(HOSTILE), st.sampled_from(HOSTILE), st.sampled_from(HOSTILE[:8]),
    st.text(max_size=6),
    st.integers(-5, 10**20), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.lists(st.sampled_from(["acme", "*"]), max_size=2), st.dictionaries(st.just("id"), st.just("acme")),
)

segments = st.one_of(st.sampled_from(["pets", "tenants", "a", "*", "x*", "{claim:tenant_id}", "{claim:org.id}",
                                      "{claim:custom:team}", "orders"]))
resources = st.lists(segments, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))


def _needs(keys: frozenset[str]) -> dict[str, Any]:
    if not keys:
        return {"authenticated": True}
    by_kind: dict[str, list[str]] = {}
    for key in keys:
        kind, _, value = key.partition(" ") if " " in key else ("scope", "", key)
        by_kind.setdefault(kind, []).append(value)
    return {"allOf": by_kind}


# Requirements: often none (any authenticated caller) so that placeholders are reached.
mappings = st.lists(st.tuples(st.sampled_from(["GET", "POST", "*"]), resources,
                              st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(GRANTS), max_size=2))),
                    min_size=1, max_size=6)

_SAFE = re.compile(r"[A-Za-z0-9._~@+=,:-]{1,128}")


def _own_value(claims: dict[str, Any], name: str) -> str | None:
    # Independent of core.grants: the caller's value if it is one safe path segment.
    value: Any = claims
    for part in CLAIMS[name]:
        value = value.get(part) if isinstance(value, dict) else None
    if type(value) is int:
        value = str(value)
    if type(value) is not str or not _SAFE.fullmatch(value) or value in (".", ".."):
        return None
    return value


def _granted(rows: list[tuple[str, str, frozenset[str]]], grants: frozenset[str], claims: dict[str, Any],
             verb: str, path: str) -> bool:
    for mapping_verb, resource, needs in rows:
        if not needs <= grants or mapping_verb not in ("*", verb):
            continue
        filled = resource.lstrip("/")
        refused = False
        for name in CLAIMS:
            if "{claim:" + name + "}" in filled:
                value = _own_value(claims, name)
                if value is None:
                    refused = True
                    break
                filled = filled.replace("{claim:" + name + "}", value)
        if refused:
            continue
        # API Gateway's rule for a policy Resource: '*' is any run of characters, '/' included.
        pattern = ".*".join(re.escape(part) for part in filled.split("*"))
        if re.fullmatch(pattern, path, re.DOTALL):
            return True
    return False


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=mappings, grants=st.frozensets(st.sampled_from(GRANTS), max_size=5),
       claims=st.fixed_dictionaries({"tenant_id": values}, optional={"org": st.one_of(
           st.fixed_dictionaries({"id": values}), values), "custom:team": values}),
       others=st.lists(st.one_of(st.sampled_from(HOSTILE), st.sampled_from(["acme", "globex", "42"])), max_size=3),
       extra_paths=st.lists(st.text(alphabet="ab/*?.%{}:", max_size=12), max_size=3))
def test_a_claim_value_never_widens_what_the_mappings_grant(rows, grants, claims, others, extra_paths):
    records = [{"arn": API, "stage": STAGE, "httpVerb": verb, "resource": resource, **_needs(needs)}
               for verb, resource, needs in rows]
    permissions = compile_records(records, lambda path: f"m{path}")
    resources = permissions.evaluate(grants, API, STAGE, claims=claims).resources
    decision = Decision(ALLOW if resources else DENY, "p", API, STAGE, resources, "t", "v")
    response = render_iam_response(decision)
    # Requests: each mapping's resource filled with the caller's values, other tenants'
    # values and hostile strings (each '*' as a few concrete runs), plus random paths.
    fills = [v for v in (_own_value(claims, name) for name in CLAIMS) if v] + others + ["acme"]
    paths = set(extra_paths)
    for _, resource, _ in rows:
        for fill in fills:
            text = resource.lstrip("/")
            for name in CLAIMS:
                text = text.replace("{claim:" + name + "}", fill)
            for star in ("", "z", "z/y", "*"):
                paths.add(text.replace("*", star))
    for path in paths:
        for verb in ("GET", "POST", "DELETE"):
            allowed = evaluate_response(response, f"{API}/{STAGE}/{verb}/{path}") is Verdict.ALLOW
            expected = _granted(rows, grants, claims, verb, path)
            assert allowed == expected, (verb, path, resources)
    assert set(HTTP_VERBS) >= {"GET", "POST", "DELETE"}


def test_the_property_sees_a_wildcard_tenant():
    # The case the property exists for, spelled out: a '*' tenant must not become '/tenants/*'.
    test_a_claim_value_never_widens_what_the_mappings_grant.hypothesis.inner_test(
        rows=[("GET", "/tenants/{claim:tenant_id}/*", frozenset())], grants=frozenset(),
        claims={"tenant_id": "*"}, others=["acme"], extra_paths=["tenants/acme/x"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=mappings, grants=st.frozensets(st.sampled_from(GRANTS), max_size=4),
       first=values, second=values)
def test_remembered_policies_are_never_shared_across_tenants(rows, grants, first, second):
    records = [{"arn": API, "stage": STAGE, "httpVerb": verb, "resource": resource, **_needs(needs)}
               for verb, resource, needs in rows]
    warm = compile_records(records, lambda path: f"m{path}")
    for claims in ({"tenant_id": first, "custom:team": first}, {"tenant_id": second, "custom:team": second},
                   {"tenant_id": first, "custom:team": first}):
        fresh = compile_records(records, lambda path: f"m{path}")
        assert warm.evaluate(grants, API, STAGE, claims=claims) == fresh.evaluate(grants, API, STAGE, claims=claims)
