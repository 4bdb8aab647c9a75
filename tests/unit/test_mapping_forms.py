"""Mapping forms beyond one scope: group, role, allOf, authenticated, tenant placeholders.

Both YAML forms, the schema's errors (file:line), canonical records and digests, the
permission set's index, and the formats stores write.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from policy_engine.adapters.yaml_files import YamlPermissionSource
from policy_engine.admin.lint import needs_label
from policy_engine.admin.publish.dynamodb import new_mapping_item, parse_mapping, parse_sort_key, sort_key
from policy_engine.core.decision import listable_scopes
from policy_engine.core.grants import MAX_PLACEHOLDER_VALUE
from policy_engine.core.permissions import (
    AUTHENTICATED,
    MAX_RESOURCE_ARN,
    Evaluation,
    compile_records,
    content_digest,
    requirement_of,
    requirement_text,
)
from policy_engine.core.publish import MappingKey, digest, keys_of, record_of
from policy_engine.core.snapshot import decode_snapshot, encode_snapshot, read_snapshot
from policy_engine.errors import CorruptStoreError, PermissionsError

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def _load(tmp_path: Path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    raw = YamlPermissionSource(path, display_root=tmp_path).fetch(None)
    return compile_records(raw.records, raw.locate)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PermissionsError) as info:
        _load(tmp_path, text)
    return info.value.problems


def _record(**member: object) -> dict[str, object]:
    return {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", **member}


FLAT = f"""\
- {{arn: {API}, stage: dev, httpVerb: GET, resource: /pets, scope: pets:read}}
- {{arn: {API}, stage: dev, httpVerb: GET, resource: /pets, group: pet-readers}}
- {{arn: {API}, stage: dev, httpVerb: GET, resource: /pets, role: Pets.Read.All}}
- {{arn: {API}, stage: dev, httpVerb: POST, resource: /pets, allOf: {{scope: [write:pets, read:pets]}}}}
- {{arn: {API}, stage: dev, httpVerb: GET, resource: /health, authenticated: true}}
- {{arn: {API}, stage: dev, httpVerb: GET, resource: '/tenants/{{claim:tenant_id}}/*', group: Pet Readers}}
"""

GROUPED = f"""\
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read, {{group: pet-readers}}, {{role: Pets.Read.All}}]
      POST /pets: [{{allOf: {{scope: [read:pets, write:pets]}}}}]
      GET /health: {{authenticated: true}}
      GET /tenants/{{claim:tenant_id}}/*: [{{group: Pet Readers}}]
"""


def test_both_yaml_forms_compile_to_the_same_canonical_mappings(tmp_path):
    flat, grouped = _load(tmp_path, FLAT), _load(tmp_path, GROUPED)
    assert keys_of(flat) == keys_of(grouped)
    assert flat.version == grouped.version
    assert sorted(k.needs for k in keys_of(flat)) == sorted([
        "pets:read", '{"allOf":{"group":["pet-readers"]}}', '{"allOf":{"role":["Pets.Read.All"]}}',
        '{"allOf":{"scope":["read:pets","write:pets"]}}', AUTHENTICATED, '{"allOf":{"group":["Pet Readers"]}}'])


def test_a_scope_only_document_keeps_its_digest():
    # The digest of scope-only mappings is the one every earlier release computed:
    # the needs column is the scope itself.
    rows = [(API, "dev", "GET", "pets", "pets:read"), (API, "*", "POST", "pets/*", "pets:write")]
    keys = [MappingKey(a, s, v, "/" + r, n) for a, s, v, r, n in rows]
    assert digest(keys) == content_digest(rows) == "sha256:" + __import__("hashlib").sha256(
        "\n".join(sorted(json.dumps(list(row)) for row in rows)).encode()).hexdigest()[:16]
    assert record_of(keys[0]) == {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets",
                                               "scope": "pets:read"}


@pytest.mark.parametrize(("member", "needs"), [
    ({"scope": "a"}, "a"),
    ({"allOf": {"scope": ["a", "a"]}}, "a"),  # one scope: the scope form
    ({"group": "g"}, '{"allOf":{"group":["g"]}}'),
    ({"allOf": {"group": ["g"]}}, '{"allOf":{"group":["g"]}}'),  # the shorthand and its long form are one
    ({"allOf": {"scope": ["b", "a"], "group": ["g"], "permission": []}}, '{"allOf":{"group":["g"],"scope":["a","b"]}}'),
    ({"allOf": {"permission": ["read:pets"]}}, '{"allOf":{"permission":["read:pets"]}}'),
    ({"authenticated": True}, AUTHENTICATED),
])
def test_canonical_needs_text(member, needs):
    permissions = compile_records([_record(**member)], str)
    assert permissions.grants[0].needs == needs
    # a needs text always holds '"' unless it is a scope: it can never be read as one
    assert ('"' in needs) is needs.startswith("{")
    assert requirement_text(requirement_of(needs)) == needs


@pytest.mark.parametrize(("member", "problem"), [
    ({"authenticated": False}, "p.yaml:2: authenticated must be true (false grants nothing: leave the mapping out)"),
    ({"authenticated": "yes"}, "p.yaml:2: authenticated must be true"),
    ({"scope": "a", "group": "g"}, "p.yaml:2: a mapping has exactly one of scope, group, role, allOf, "
     "authenticated and nobody; this one has scope and group (for several grants at once use allOf; for any of "
     "them, write one mapping each)"),
    ({"allOf": {}}, "p.yaml:2: allOf needs at least one grant (as in {scope: [pets:read]})"),
    ({"allOf": {"scope": []}}, "p.yaml:2: allOf needs at least one grant (as in {scope: [pets:read]})"),
    ({"allOf": {"Groups": ["x"]}}, "p.yaml:2: grant kind 'Groups' is not a kind name (a lower-case letter, then up "
     "to 31 of a-z 0-9 _ -)"),
    ({"allOf": {"group": ["ok", " padded"]}}, "p.yaml:2: group ' padded' must be 1-256 characters without control "
     "characters or surrounding whitespace"),
    ({"allOf": {"scope": ["two words"]}}, "p.yaml:2: scope 'two words' is not one scope token (no spaces, quotes or "
     "backslashes)"),
    ({"allOf": {"group": "g"}}, "p.yaml:2: allOf.group must be a list of values"),
    ({"role": "x" * 257}, f"p.yaml:2: role '{'x' * 257}' must be 1-256 characters without control characters or "
     "surrounding whitespace"),
    ({"group": None}, "p.yaml:2: group must have a value"),
    ({"groups": "g"}, "p.yaml:2: unknown field 'groups' (expected arn, stage, httpVerb, resource, description and "
     "one of scope, group, role, allOf, authenticated, nobody)"),
])
def test_each_wrong_form_is_named_with_its_line(tmp_path, member, problem):
    body = json.dumps(_record(**member))  # JSON is YAML: one flow mapping on line 2
    assert _problems(tmp_path, f"- placeholder: 0\n- {body}\n")[-1] == problem


def test_no_grant_member_at_all(tmp_path):
    body = json.dumps(_record())
    assert _problems(tmp_path, f"- {body}\n") == [
        "p.yaml:1: a mapping needs one of scope, group, role, allOf, authenticated or nobody"]


def test_grouped_items_are_named_by_their_own_line(tmp_path):
    problems = _problems(tmp_path, f"""\
    apis:
      - arn: {API}
        stages: [dev]
        routes:
          GET /pets:
            - pets:read
            - {{group: " x"}}
            - {{authenticated: false}}
            - {{group: a, role: b}}
            - {{teams: [a]}}
    """)
    # Every problem in one run: the item's shape, and the other items' own problems.
    assert problems == [
        "p.yaml:9: an item has group and role: one grant per item (a route's items are OR'd; for several grants at "
        "once use allOf)",
        "p.yaml:7: group ' x' must be 1-256 characters without control characters or surrounding whitespace",
        "p.yaml:8: authenticated must be true (false grants nothing: leave the mapping out)",
        "p.yaml:10: unknown field 'teams' (expected arn, stage, httpVerb, resource, description and one of scope, "
        "group, role, allOf, authenticated, nobody)",
    ]
    problems = _problems(tmp_path, f"""\
    apis:
      - arn: {API}
        stages: [dev]
        routes:
          GET /pets:
            - pets:read
            - {{group: " x"}}
            - {{authenticated: false}}
            - {{teams: [a]}}
    """)
    assert problems == [
        "p.yaml:7: group ' x' must be 1-256 characters without control characters or surrounding whitespace",
        "p.yaml:8: authenticated must be true (false grants nothing: leave the mapping out)",
        "p.yaml:9: unknown field 'teams' (expected arn, stage, httpVerb, resource, description and one of scope, "
        "group, role, allOf, authenticated, nobody)",
    ]


@pytest.mark.parametrize(("resource", "problem"), [
    ("/t/x{id}", "a route parameter is a whole path segment, '{name}' or '{name+}'"),
    ("/t/{proxy+}/x", "the greedy parameter '{proxy+}' must be the last path segment"),
    ("/t/{id}/*", "a route template names one route; it cannot also hold '*' or a '{claim:...}' placeholder"),
    ("/t/{claim:tenant}/{id}", "a route template names one route; it cannot also hold '*'"),
    ("/t/x{claim:tenant}", "a '{claim:...}' placeholder must be a whole path segment"),
    ("/t/{claim:tenant}*", "a '{claim:...}' placeholder must be a whole path segment"),
    ("/t/{claim:a..b}", "placeholder claim 'a..b' is not a claim path"),
    ("/t/{claim:.a}", "placeholder claim '.a' is not a claim path"),
    ("/t/{claim:}", "placeholder '{claim:}' does not name a claim"),
    ("/t/{claim:a*}", "placeholder claim 'a*' has characters a route path cannot have"),
    ("/t/{claim:a b}", "placeholder '{claim:a b}' does not name a claim"),
    # what the schema's messages are made of, written into a value, stays as written
    ("/t/x{path}", "resource '/t/x{path}': a route parameter is a whole path segment"),
    ("/t/x{value}", "resource '/t/x{value}': a route parameter is a whole path segment"),
])
def test_placeholders_are_whole_segments_with_claim_paths(resource, problem):
    with pytest.raises(PermissionsError) as info:
        compile_records([_record(scope="s", resource=resource)], lambda path: "here")
    assert problem in info.value.problems[0]


def test_a_placeholder_counts_as_its_longest_value_in_the_resource_bound():
    fits = "/" + "r" * (MAX_RESOURCE_ARN - len(API) - len("/dev/DELETE/") - MAX_PLACEHOLDER_VALUE - 2) + "/{claim:t}"
    compile_records([_record(scope="s", resource=fits, httpVerb="*")], str)
    with pytest.raises(PermissionsError) as info:
        compile_records([_record(scope="s", resource="/x" + fits, httpVerb="*")], str)
    assert "a placeholder counts as its longest value, 128 characters" in info.value.problems[0]


def test_requirements_are_indexed_and_checked_as_subsets():
    permissions = compile_records([
        _record(scope="pets:read"), _record(group="pet-readers", resource="/g"),
        _record(allOf={"scope": ["w", "r"], "group": ["admins"]}, resource="/all"),
        _record(authenticated=True, resource="/health"),
    ], str)

    def paths(*grants: str) -> set[str]:
        return {r.rsplit("/", 1)[-1] for r in permissions.resources(frozenset(grants), API, "dev")}

    assert paths() == {"health"}
    assert paths("pets:read") == {"pets", "health"}
    assert paths("group pet-readers") == {"g", "health"}
    assert paths("pet-readers") == {"health"}  # a scope named like the group is another grant
    assert paths("w", "r") == {"health"}
    assert paths("w", "r", "group admins") == {"all", "health"}
    assert paths("w", "r", "group admins", "email") == {"all", "health"}
    assert permissions.granting(frozenset({"w", "r", "group admins", "x"}), API, "dev") == {"w", "r", "group admins"}
    assert permissions.scopes == {"pets:read", "w", "r"}
    assert permissions.grant_keys == {"pets:read", "w", "r", "group pet-readers", "group admins"}
    assert permissions.resources(frozenset({"pets:read"}), API, "prod") == ()


def test_placeholders_are_filled_per_caller_and_remembered_per_value():
    permissions = compile_records([_record(scope="t", resource="/tenants/{claim:tenant_id}/*"),
                                   _record(scope="t", resource="/orgs/{claim:org.id}")], str)
    grants = frozenset({"t"})
    acme = permissions.evaluate(grants, API, "dev", claims={"tenant_id": "acme", "org": {"id": 7}})
    assert acme == Evaluation((f"{API}/dev/GET/orgs/7", f"{API}/dev/GET/tenants/acme/*"), ())
    hostile = permissions.evaluate(grants, API, "dev", claims={"tenant_id": "*", "org": {"id": "a/b"}})
    assert hostile == Evaluation((), ("org.id", "tenant_id"))
    assert permissions.evaluate(grants, API, "dev") == Evaluation((), ("org.id", "tenant_id"))
    # the same grant set again, another tenant: never the remembered answer of the first
    globex = permissions.evaluate(grants, API, "dev", claims={"tenant_id": "globex"})
    assert globex == Evaluation((f"{API}/dev/GET/tenants/globex/*",), ("org.id",))
    assert permissions.evaluate(grants, API, "dev", claims={"tenant_id": "acme", "org": {"id": 7}}) == acme


def test_scope_only_answers_are_still_remembered_by_the_grant_set():
    permissions = compile_records([_record(scope="r")], str)
    assert permissions.resources(frozenset({"r", "email"}), API, "dev") is permissions.resources(
        frozenset({"r", "profile"}), API, "dev")


def test_snapshots_and_dynamodb_items_carry_every_form(tmp_path):
    keys = keys_of(_load(tmp_path, GROUPED))
    body = encode_snapshot(1, frozenset(keys), "", "")
    snapshot = decode_snapshot(body, "s.json", "e")
    assert snapshot.keys == keys and snapshot.digest == digest(keys)
    _, records = read_snapshot(body, "s.json")
    assert compile_records(records, str).version == _load(tmp_path, GROUPED).version
    # an edited requirement no longer matches the digest
    edited = json.loads(body)
    for record in edited["mappings"]:
        if "allOf" in record and "scope" in record["allOf"]:
            record["allOf"]["scope"].append("pets:admin")
    with pytest.raises(CorruptStoreError):
        read_snapshot(json.dumps(edited).encode(), "s.json")
    for key in keys:
        item = new_mapping_item(key, 3)
        assert parse_mapping(item, "t").key == key
        assert parse_sort_key(sort_key(key, 3), "t") == (key, 3)
        assert ("requirement" in item) is key.needs.startswith("{") and ("scope" in item) is not ("requirement" in item)
    item = new_mapping_item(MappingKey(API, "dev", "GET", "/pets", "pets:read"), 1)
    item["requirement"] = {"S": '{"authenticated":true}'}
    with pytest.raises(CorruptStoreError):
        parse_mapping(item, "t")


def test_labels_for_people():
    assert needs_label("pets:read") == "pets:read"
    assert needs_label(AUTHENTICATED) == "any authenticated caller"
    assert needs_label('{"allOf":{"group":["g"]}}') == "group g"
    assert needs_label('{"allOf":{"group":["g"],"scope":["a"]}}') == "all of group g + scope a"
    assert listable_scopes({"a", "group g", "role Pets Admin"}) == ["a"]
