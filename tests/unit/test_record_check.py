"""The lean record check agrees with the pydantic schema, which stays the definition.

``check_record`` (``RecordCheck``) vouches for the common shape of a mapping record
without pydantic, so a cold start need not build the model. Held to the model here:

- whatever it accepts, the model accepts with the same canonical fields (random and
  hostile records: other types, other keys, odd strings, dict subclasses);
- on the common shape (a dict of the five string fields, maybe a description) it
  accepts exactly what the model accepts, so valid data never pays for pydantic;
- remembering rule answers across the records of one load changes no answer;
- records of the other forms (group, role, allOf, authenticated, placeholders in the
  resource, two grant members at once) are never accepted unless the model accepts them;
- written with plain JSON types, one member each, they are accepted exactly as the model
  accepts them (so a snapshot with group mappings does not need pydantic either).
"""

from __future__ import annotations

import collections
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.core.permissions import (
    RecordCheck,
    check_record,
    compile_records,
    content_digest,
)
from policy_engine.core.schema import SchemaError, schema_fields

ARNS = ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5", "arn:aws-cn:execute-api:cn-north-1:123456789012:Zz9",
        "arn:aws:execute-api:us-east-1:12345678901:a1", "arn:aws:execute-api:us-east-1:123456789012:a1/dev",
        "arn:aws:execute-api:us-east-1:١٢٣٤٥٦٧٨٩٠١٢:a1", " arn:aws:execute-api:us-east-1:123456789012:a1"]
# Look-alike letters (dotless i, fullwidth GET) on purpose: they must never pass as a verb.
VERBS = ["GET", "get", "Post", "ANY", "any", "*", "PATCH", "OPTıONS", "FETCH", "", " GET", "GET\n", "ＧＥＴ"]  # noqa: RUF001
STAGES = ["dev", "prod", "*", "$default", "$DEFAULT", "", "dev stage", "a" * 128, "a" * 129, "dév", "**"]
RESOURCES = ["/pets", "pets/*", "/", "", "/pets/{id}", "/pets/x{id}",
             "/a/{p+}/b", "/a/{id}/*", "/pets?x=1", "/pets/*/photos", "//a", "/a b", "/ü", "*",
             "/t/{claim:tenant_id}/*", "/t/x{claim:t}", "/t/{claim:a..b}", "/t/{claim:a*b}", "/{claim:custom:org}",
             "/t/{claim:}", "/t/{claim:a}{claim:b}", "/t/{CLAIM:a}", "/t/{claim:a b}"]
SCOPES = ["pets:read", "a", "", "two words", 'q"uote', "back\\slash", "é", "x" * 300, "\x7f"]


class Text(str):
    """A str subclass: not the common shape, so the model must decide."""


def _alphabet(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True)


arns = st.one_of(st.sampled_from(ARNS), _alphabet(r"arn:aws:execute-api:[a-z0-9-]{1,12}:\d{12}:[A-Za-z0-9]{1,10}"),
                 st.text(max_size=40))
stages = st.one_of(st.sampled_from(STAGES), _alphabet(r"[A-Za-z0-9_$*-]{0,130}"), st.text(max_size=10))
verbs = st.one_of(st.sampled_from(VERBS), st.text(max_size=8))
resources = st.one_of(st.sampled_from(RESOURCES), _alphabet(r"/?[A-Za-z0-9\-._~!$&'()*+,;=:@%/{}?# ]{0,30}"),
                      st.text(max_size=20))
scopes = st.one_of(st.sampled_from(SCOPES), _alphabet(r"[\x20-\x7e]{0,20}"), st.text(max_size=10))
others = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.binary(max_size=8),
                   st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                             max_size=1))


def _field(strings: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    """Mostly strings of the field's kind; sometimes another type or a str subclass."""
    return st.one_of(strings, strings, strings, others, strings.map(Text), strings.map(str.encode))


common = st.fixed_dictionaries(
    {"arn": arns, "stage": stages, "httpVerb": verbs, "resource": resources, "scope": scopes},
    optional={"description": st.one_of(st.none(), st.text(max_size=10))},
)
valid = st.fixed_dictionaries({
    "arn": st.sampled_from(ARNS[:2]), "stage": st.sampled_from(["dev", "*", "$default"]),
    "httpVerb": st.sampled_from(["GET", "any", "*", "Post"]), "resource": st.sampled_from(["/pets", "pets/*", "/", ""]),
    "scope": st.sampled_from(["pets:read", "a"]),
})
# A valid record with one or two members replaced or added: the edits a hand leaves.
edited = st.tuples(valid, st.dictionaries(
    st.sampled_from(["arn", "stage", "httpVerb", "http_verb", "resource", "scope", "description", "extra", "ARN"]),
    st.one_of(others, _field(st.sampled_from(ARNS + VERBS + STAGES + RESOURCES + SCOPES))), min_size=1, max_size=2,
)).map(lambda parts: {**parts[0], **parts[1]})
# The other grant members, right and wrong, alone or next to a scope.
grant_members = st.fixed_dictionaries({}, optional={
    "group": _field(st.sampled_from(["pet-readers", "Pet Readers", "", " x", "a\x01", "g" * 257])),
    "role": _field(st.sampled_from(["Pets.Read.All", "admin", "\n"])),
    "allOf": st.one_of(others, st.dictionaries(st.sampled_from(["scope", "group", "Bad", "permission", ""]),
                                               st.one_of(st.lists(st.sampled_from(["a", "a b", "", "x"]), max_size=3),
                                                         others), max_size=3)),
    "authenticated": st.one_of(st.booleans(), others, st.sampled_from(["true", 1])),
})
# One member other than scope, written with plain JSON types, its values right and wrong.
GRANT_VALUES = ["pet-readers", "Pet Readers", "Pets.Read.All", "", " x", "x ", "a\x01", "g" * 256, "g" * 257]
KINDS = ["scope", "group", "role", "permission", "client-role", "Bad", "", "k" * 32, "k" * 33, "1x"]
grant_values = st.one_of(st.sampled_from(GRANT_VALUES + SCOPES), st.text(max_size=6))
description = {"description": st.one_of(st.none(), st.text(max_size=10))}
valid_route = st.fixed_dictionaries({
    "arn": st.sampled_from(ARNS[:2]), "stage": st.sampled_from(["dev", "*", "$default"]),
    "httpVerb": st.sampled_from(["GET", "any", "*", "Post"]),
    "resource": st.sampled_from(["/pets", "pets/*", "/", "", "/t/{claim:tenant_id}/*"]),
}, optional=description)
# Mostly valid routes, so that the member's own rules decide.
requirement_shape = st.tuples(
    st.one_of(valid_route, valid_route, valid_route, st.fixed_dictionaries(
        {"arn": arns, "stage": stages, "httpVerb": verbs, "resource": resources}, optional=description)),
    st.one_of(
        st.tuples(st.sampled_from(["group", "role"]), grant_values),
        st.tuples(st.just("allOf"), st.dictionaries(st.one_of(st.sampled_from(KINDS), st.text(max_size=4)),
                                                   st.lists(grant_values, max_size=3), max_size=3)),
        st.tuples(st.just("authenticated"), st.just(True)),
    ),
).map(lambda parts: {**parts[0], parts[1][0]: parts[1][1]})
other_forms = st.tuples(st.one_of(valid, common), grant_members, st.booleans()).map(
    lambda parts: {**{k: v for k, v in parts[0].items() if k != "scope" or parts[2]}, **parts[1]})
hostile = st.one_of(
    edited,
    other_forms,
    st.fixed_dictionaries(
        {"arn": _field(arns), "stage": _field(stages), "httpVerb": _field(verbs), "resource": _field(resources),
         "scope": _field(scopes)},
        optional={"description": _field(st.text(max_size=5)), "http_verb": _field(verbs), "extra": others,
                  "Arn": _field(arns)},
    ),
    # the keys the model knows, in any subset, with the alias and the Python name mixed
    st.dictionaries(st.sampled_from(["arn", "stage", "httpVerb", "http_verb", "resource", "scope", "description",
                                     "", "ARN"]), _field(st.sampled_from(ARNS + VERBS + STAGES + SCOPES)), max_size=7),
    common.map(collections.OrderedDict),
    common.map(lambda record: collections.defaultdict(str, record)),
    common.map(lambda record: list(record.items())),
    others,
    st.text(max_size=5),
)


def model_answer(raw: object) -> tuple[str, ...] | None:
    try:
        return schema_fields(raw)
    except SchemaError:
        return None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(common, hostile, requirement_shape))
def test_whatever_the_check_accepts_the_model_accepts_with_the_same_fields(raw):
    fields = check_record(raw)
    if fields is not None:
        assert schema_fields(raw) == fields


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(edited, other_forms))
def test_a_hand_edited_record_is_accepted_only_as_the_model_accepts_it(raw):
    assert check_record(raw) in (None, model_answer(raw))
    if model_answer(raw) is None:
        assert check_record(raw) is None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(common)
def test_on_the_common_shape_the_check_accepts_exactly_what_the_model_accepts(raw):
    assert check_record(raw) == model_answer(raw)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(requirement_shape)
def test_on_the_other_forms_in_plain_types_the_check_accepts_exactly_what_the_model_accepts(raw):
    assert check_record(raw) == model_answer(raw)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(common, hostile, requirement_shape), max_size=12))
def test_one_check_across_a_load_answers_as_a_fresh_one(records):
    shared = RecordCheck()
    assert [shared(raw) for raw in records] == [check_record(raw) for raw in records]


def test_a_refused_record_is_still_worded_by_the_model():
    records = [{"arn": ARNS[0], "stage": "dev", "httpVerb": "FETCH", "resource": "/pets/x{id}", "scope": "a b"},
               {"arn": ARNS[0], "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "s", "owner": "me"}]
    try:
        compile_records(records, lambda path: f"r{path}")
    except Exception as exc:  # noqa: BLE001 - the assertion names the type
        problems = getattr(exc, "problems", [])
    else:
        raise AssertionError("invalid records compiled")
    assert problems == [
        "r(0, 'httpVerb'): httpVerb 'FETCH' is not an HTTP method (or '*'/'ANY')",
        ("r(0, 'resource'): resource '/pets/x{id}': a route parameter is a whole path segment, '{name}' or "
         "'{name+}' (name: letters, digits, '_', '-', '.')"),
        "r(0, 'scope'): scope 'a b' is not one scope token (no spaces, quotes or backslashes)",
        ("r(1, 'owner'): unknown field 'owner' (expected arn, stage, httpVerb, resource, description and one of scope, "
         "group, role, allOf, authenticated)"),
    ]


@given(st.lists(st.tuples(*[st.text(max_size=6)] * 5), max_size=6))
def test_content_digest_hashes_the_rows_as_json_dumps_writes_them(rows):
    import hashlib

    lines = sorted({json.dumps(list(row)) for row in rows})
    assert content_digest(rows) == "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
