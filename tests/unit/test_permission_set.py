"""Policy generation from compiled mappings (pure)."""

from __future__ import annotations

import itertools

from policy_engine.core.iam import glob_matches
from policy_engine.core.permissions import HTTP_VERBS, compile_records

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def _set(*rows):
    records = [dict(zip(("arn", "stage", "httpVerb", "resource", "scope"), row, strict=True)) for row in rows]
    return compile_records(records, lambda path: f"test:{path}")


def _allowed(resources, verb, path, stage="dev"):
    return any(glob_matches(r, f"{API}/{stage}/{verb}/{path}") for r in resources)


def test_only_the_requested_api_and_stage_are_listed():
    other_api = "arn:aws:execute-api:us-east-1:123456789012:zzzzzzzzzz"
    permissions = _set((API, "dev", "GET", "/pets", "r"), (API, "prod", "GET", "/pets", "r"),
                       (other_api, "dev", "GET", "/pets", "r"), (API, "*", "GET", "/health", "r"))
    assert permissions.resources(frozenset({"r"}), API, "dev") == (f"{API}/dev/GET/health", f"{API}/dev/GET/pets")


def test_any_verb_expands_unless_the_resource_is_everything():
    permissions = _set((API, "dev", "ANY", "/pets", "a"), (API, "dev", "*", "*", "b"))
    assert len(permissions.resources(frozenset({"a"}), API, "dev", compacted=False)) == len(HTTP_VERBS)
    # compacted, GET and PUT share one '???' Resource (see core/compaction.py)
    assert len(permissions.resources(frozenset({"a"}), API, "dev")) == len(HTTP_VERBS) - 1
    assert permissions.resources(frozenset({"b"}), API, "dev") == (f"{API}/dev/*/*",)


def test_generated_policy_grants_exactly_what_the_mappings_grant():
    permissions = _set((API, "dev", "ANY", "/pets/*", "a"), (API, "dev", "GET", "/", "a"),
                       (API, "dev", "POST", "/orders", "b"))
    resources = permissions.resources(frozenset({"a"}), API, "dev")
    paths = ["", "pets", "pets/", "pets/1", "pets/1/x", "x/pets/1", "orders", "GET/pets/1", "pets:1"]
    for verb, path in itertools.product(HTTP_VERBS, paths):
        expected = path.startswith("pets/") or (verb == "GET" and path == "")
        assert _allowed(resources, verb, path) is expected, (verb, path)


def test_decision_cost_does_not_depend_on_unrelated_mappings():
    rows = [(API, "dev", "GET", f"/r{i}", f"scope{i}") for i in range(20000)]
    permissions = _set(*rows)
    assert permissions.routes(frozenset({"scope7"}), API, "dev") == [permissions.grants[7].route]


def test_memoised_answers_are_keyed_by_granting_scopes_only():
    permissions = _set((API, "dev", "GET", "/pets", "r"))
    a = permissions.resources(frozenset({"r", "email"}), API, "dev")
    b = permissions.resources(frozenset({"r", "profile"}), API, "dev")
    assert a is b


def test_version_is_a_content_hash_independent_of_order():
    one = _set((API, "dev", "GET", "/a", "r"), (API, "dev", "GET", "/b", "r"))
    two = _set((API, "dev", "GET", "/b", "r"), (API, "dev", "GET", "/a", "r"))
    three = _set((API, "dev", "GET", "/a", "r"))
    assert one.version == two.version != three.version


def test_remembered_answers_depend_only_on_the_scopes_that_grant_something():
    permissions = _set((API, "dev", "GET", "/pets", "r"), (API, "dev", "POST", "/pets", "w"))
    reader = permissions.resources(frozenset({"r", "openid"}), API, "dev")
    assert reader == permissions.resources(frozenset({"r"}), API, "dev") == (f"{API}/dev/GET/pets",)
    # Asked in the other order, and for another stage, nothing remembered leaks across.
    assert permissions.resources(frozenset({"w", "openid"}), API, "dev") == (f"{API}/dev/POST/pets",)
    assert permissions.resources(frozenset({"r", "openid"}), API, "prod") == ()
    assert permissions.resources(frozenset({"openid"}), API, "dev") == ()


def test_a_resource_too_long_for_the_requested_stage_is_left_out_and_reported():
    # GIVEN stage-'*' mappings loaded as the runtime loads them (a store may hold what an
    # older release published): one path fits any stage, one fits 'dev' only
    long_path = "/reports/" + "r" * 380
    reported: list[tuple[str, str, tuple[str, ...]]] = []
    records = [dict(zip(("arn", "stage", "httpVerb", "resource", "scope"), row, strict=True)) for row in (
        (API, "*", "GET", "/pets", "a"), (API, "*", "ANY", long_path, "a"), (API, "*", "GET", "/pets/*", "b"))]
    permissions = compile_records(records, lambda path: f"test:{path}",
                                  on_oversized=lambda api, stage, dropped: reported.append((api, stage, dropped)))
    # WHEN the policy is written for 'dev', everything fits and nothing is reported
    dev = permissions.resources(frozenset({"a"}), API, "dev")
    assert _allowed(dev, "DELETE", long_path[1:]) and _allowed(dev, "GET", "pets") and not reported
    # WHEN it is written for a 100-character stage
    stage = "s" * 100
    resources = permissions.resources(frozenset({"a", "b"}), API, stage)
    # THEN every Resource fits IAM's 512, the routes that fit stay, the ones that do not are denied
    assert resources and all(len(r) <= 512 for r in resources)
    assert _allowed(resources, "GET", "pets", stage) and _allowed(resources, "GET", "pets/1", stage)
    assert not any(_allowed(resources, verb, long_path[1:], stage) for verb in HTTP_VERBS)
    # and the dropped ones were reported once, with the API and stage they were written for
    [(api, on_stage, dropped)] = reported
    assert (api, on_stage) == (API, stage) and len(dropped) == len(HTTP_VERBS)
    assert all(len(r) > 512 for r in dropped)
    permissions.resources(frozenset({"a", "b"}), API, stage)  # remembered: not reported again
    assert len(reported) == 1
