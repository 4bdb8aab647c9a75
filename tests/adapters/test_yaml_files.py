"""YAML permission files: both document forms, and errors that name file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policy_engine.adapters.yaml_files import YamlPermissionSource
from policy_engine.core.permissions import compile_records
from policy_engine.errors import PermissionsError

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _load(path: Path):
    raw = YamlPermissionSource(path, display_root=path if path.is_dir() else path.parent).fetch(None)
    return compile_records(raw.records, raw.locate)


def _problems(path: Path) -> list[str]:
    with pytest.raises(PermissionsError) as info:
        _load(path)
    return info.value.problems


BLOG_ENTRY = f"""\
- arn: {API}
  resource: /pets
  stage: dev
  httpVerb: GET
  scope: pets:read
"""


def test_aws_blog_document_loads_as_a_bare_list_or_under_permissions(tmp_path):
    bare = _load(_write(tmp_path, "bare.yaml", BLOG_ENTRY))
    keyed = _load(_write(tmp_path, "keyed.yaml", "permissions:\n" + textwrap.indent(BLOG_ENTRY, "  ")))
    assert bare.version == keyed.version
    assert bare.resources(frozenset({"pets:read"}), API, "dev") == (f"{API}/dev/GET/pets",)


def test_grouped_form_compiles_to_the_same_model(tmp_path):
    grouped = _load(_write(tmp_path, "g.yaml", f"""\
        apis:
          - arn: {API}
            stages: [dev]
            routes:
              GET /pets: [pets:read]
        """))
    blog = _load(_write(tmp_path, "b.yaml", BLOG_ENTRY))
    assert grouped.version == blog.version


def test_error_names_file_line_and_field(tmp_path):
    path = _write(tmp_path, "pets.yaml", BLOG_ENTRY + BLOG_ENTRY.replace("GET", "GETT"))
    assert _problems(path) == ["pets.yaml:9: httpVerb 'GETT' is not an HTTP method (or '*'/'ANY')"]


def test_every_problem_is_reported_and_nothing_loads(tmp_path):
    bad = BLOG_ENTRY.replace("stage: dev", "stage: dev env").replace("pets:read", "pets read")
    problems = _problems(_write(tmp_path, "bad.yaml", BLOG_ENTRY + bad))
    assert problems == [
        "bad.yaml:8: stage 'dev env' is not a stage name (letters, digits, '-', '_') or '*'",
        "bad.yaml:10: scope 'pets read' is not one scope token (no spaces, quotes or backslashes)",
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        (BLOG_ENTRY.replace("  scope: pets:read\n", ""),
         "t.yaml:1: a mapping needs one of scope, group, role, allOf, authenticated or nobody"),
        (BLOG_ENTRY + "  scopes: x\n",
         "t.yaml:6: unknown field 'scopes' (expected arn, stage, httpVerb, resource, description and one of "
         "scope, group, role, allOf, authenticated, nobody)"),
        (BLOG_ENTRY.replace(API, "arn:aws:execute-api:us-east-1:123:api"),
         "t.yaml:1: arn 'arn:aws:execute-api:us-east-1:123:api' is not an API ARN"),
        (BLOG_ENTRY.replace("/pets", "/pets/x{id}"), "t.yaml:2: resource '/pets/x{id}': a route parameter is a whole"),
        (BLOG_ENTRY.replace("/pets", "/pets?x=1"), "t.yaml:2: resource '/pets?x=1' has characters"),
        (BLOG_ENTRY.replace("stage: dev", "stage: 12"), "t.yaml:3: stage must be a string"),
        # str.upper() would make these POST and OPTIONS.
        (BLOG_ENTRY.replace("httpVerb: GET", "httpVerb: po\u017ft"), "t.yaml:4: httpVerb 'po\u017ft' is not an HTTP"),
        (BLOG_ENTRY.replace("httpVerb: GET", "httpVerb: opt\u0131ons"), "t.yaml:4: httpVerb 'opt\u0131ons' is not an"),
        ("- just a string\n", "t.yaml:1: a mapping must be an object"),
        ("permissions: {}\n", "t.yaml:1: 'permissions' must be a list"),
        ("rules: []\n", "t.yaml:1: unknown top-level key 'rules'"),
        ("- arn: [unclosed\n", "t.yaml:2: invalid YAML"),
        (BLOG_ENTRY.replace("  stage: dev\n", "  stage: dev\n  stage: prod\n"), "t.yaml:4: duplicate key 'stage'"),
        # !!binary bytes would pass the schema as a string nobody can read in review.
        (BLOG_ENTRY.replace("scope: pets:read", "scope: !!binary cGV0czphZG1pbg=="),
         "t.yaml:5: the tag 'binary' is not allowed here"),
        (BLOG_ENTRY.replace("stage: dev", "stage: !!set {dev: null}"), "t.yaml:3: the tag 'set' is not allowed here"),
        (f"- arn: {API}\n  ? [GET, /pets]\n  : x\n", "t.yaml:2: a mapping key must be a plain value"),
        # An alias inside the value it names: a structure with no end.
        ("- &a\n  " + BLOG_ENTRY[2:] + "  description: *a\n", "t.yaml:1: an alias names a value that contains it"),
    ],
)
def test_bad_documents(tmp_path, text, expected):
    problems = _problems(_write(tmp_path, "t.yaml", text))
    assert problems[0].startswith(expected), problems


def test_grouped_form_errors_point_at_the_route(tmp_path):
    path = _write(tmp_path, "g.yaml", f"""\
        apis:
          - arn: {API}
            stages: [dev]
            routes:
              GET /pets: [pets:read]
              FETCH /pets: [pets:read]
              GET /cats: [bad scope]
        """)
    assert _problems(path) == [
        "g.yaml:6: httpVerb 'FETCH' is not an HTTP method (or '*'/'ANY')",
        "g.yaml:7: scope 'bad scope' is not one scope token (no spaces, quotes or backslashes)",
    ]


def test_one_bad_file_in_a_folder_fails_the_whole_load(tmp_path):
    _write(tmp_path, "a.yaml", BLOG_ENTRY)
    _write(tmp_path, "b.yaml", BLOG_ENTRY.replace("GET", "GRAB"))
    assert _problems(tmp_path) == ["b.yaml:4: httpVerb 'GRAB' is not an HTTP method (or '*'/'ANY')"]


def test_unreadable_and_missing_paths(tmp_path):
    assert _problems(tmp_path / "nope")[0].endswith("nope: no such file or folder")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    assert _problems(tmp_path)[0] == "binary.yaml: not UTF-8 text"


def test_unchanged_files_are_not_reparsed(tmp_path):
    path = _write(tmp_path, "a.yaml", BLOG_ENTRY)
    source = YamlPermissionSource(path)
    first = source.fetch(None)
    assert first is not None and source.fetch(first.etag) is None
    path.write_text(BLOG_ENTRY.replace("GET", "POST"))
    assert source.fetch(first.etag) is not None


def test_shipped_example_loads():
    permissions = _load(ROOT / "permissions")
    assert {"pets:read", "pets:write", "pets:admin", "store:read", "store:write"} <= permissions.scopes


# The API ARN, the three '/' between it, stage, verb and path: what a Resource adds to a path.
_ARN_PARTS = len(API) + 3


def _entry_of_length(stage: str, verb: str, worst: int) -> str:
    """A mapping whose longest possible Resource is ``worst`` characters: a stage '*' is
    written with the request's stage (API Gateway allows up to 128 characters), a verb
    '*' as each method (OPTIONS the longest)."""
    stage_chars = 128 if stage == "*" else len(stage)
    verb_chars = len("OPTIONS") if verb == "*" else len(verb)
    path = "r" * (worst - _ARN_PARTS - stage_chars - verb_chars)
    return BLOG_ENTRY.replace("stage: dev", f'stage: "{stage}"').replace("httpVerb: GET", f'httpVerb: "{verb}"') \
        .replace("/pets", f"/{path}")


@pytest.mark.parametrize("stage, verb", [("*", "GET"), ("*", "*"), ("*", "OPTIONS"), ("dev", "*"),
                                         ("dev", "DELETE"), ("$default", "*")])
def test_a_mapping_whose_resource_can_pass_512_characters_is_refused_with_its_line(tmp_path, stage, verb):
    # GIVEN a mapping one character over IAM's 512 on the longest stage and method it can be written with
    path = _write(tmp_path, "t.yaml", BLOG_ENTRY + _entry_of_length(stage, verb, 513))
    # THEN the load names its file and line (line 2 of the second entry: its resource)
    [problem] = _problems(path)
    assert problem.startswith("t.yaml:7: resource makes a policy Resource of up to 513 characters"), problem
    assert "512" in problem
    if stage == "*":
        assert "128" in problem  # says why: the stage name a '*' can stand for


@pytest.mark.parametrize("stage, verb", [("*", "GET"), ("*", "*"), ("dev", "*"), ("dev", "GET"), ("prod", "PUT")])
def test_a_mapping_whose_longest_resource_is_exactly_512_characters_loads(tmp_path, stage, verb):
    permissions = _load(_write(tmp_path, "t.yaml", _entry_of_length(stage, verb, 512)))
    concrete = "s" * 128 if stage == "*" else stage
    resources = permissions.resources(frozenset({"pets:read"}), API, concrete, compacted=False)
    assert resources and max(map(len, resources)) == 512


def test_a_grouped_stage_star_route_too_long_for_a_long_stage_points_at_the_route(tmp_path):
    long_path = "/" + "g" * (513 - _ARN_PARTS - 128 - 3)
    path = _write(tmp_path, "g.yaml", f"""\
        apis:
          - arn: {API}
            stages: ["*"]
            routes:
              GET /pets: [pets:read]
              GET {long_path}: [pets:read]
        """)
    [problem] = _problems(path)
    assert problem.startswith("g.yaml:6: resource makes a policy Resource of up to 513 characters"), problem


def test_aliases_that_expand_a_small_file_into_millions_of_values_are_refused_quickly(tmp_path):
    # The "billion laughs": a few hundred bytes of nested aliases. Each node is visited
    # once, so the refusal takes time in the size of the text, not of the expansion.
    import time

    levels = "".join(f"    x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 8))
    text = (f"apis:\n  - arn: {API}\n    stages: [dev]\n    description:\n"
            "      x0: &x0 [s, s, s, s, s, s, s, s, s, s]\n" + textwrap.indent(levels, "  ")
            + "    routes:\n      GET /a: [s]\n")
    started = time.monotonic()
    problems = _problems(_write(tmp_path, "laughs.yaml", text))
    assert time.monotonic() - started < 5
    assert problems[0].startswith("laughs.yaml: aliases make this document read as "), problems


def test_shared_values_through_aliases_and_merge_keys_still_load(tmp_path):
    path = _write(tmp_path, "shared.yaml", f"""\
        - &base
          arn: {API}
          stage: dev
          httpVerb: GET
          resource: /pets
          scope: pets:read
        - <<: *base
          resource: /pets/*
        - <<: *base
          httpVerb: POST
          scope: pets:write
        """)
    assert len(_load(path)) == 3


def test_a_shape_problem_in_one_file_does_not_hide_the_problems_of_another(tmp_path):
    folder = tmp_path / "perms"
    folder.mkdir()
    _write(folder, "a.yaml", f"""\
        apis:
          - arn: {API}
            stages: [dev]
            routes:
              GET /a: [{{scope: a, group: b}}]
              GET /b: [pets:read]
        """)
    _write(folder, "b.yaml", BLOG_ENTRY.replace("GET", "GETT"))
    assert _problems(folder) == [
        "a.yaml:5: an item has scope and group: one grant per item (a route's items are OR'd; for several grants at "
        "once use allOf)",
        "b.yaml:4: httpVerb 'GETT' is not an HTTP method (or '*'/'ANY')",
    ]


def test_a_folder_reads_yaml_files_whatever_the_case_of_their_suffix(tmp_path):
    folder = tmp_path / "perms"
    folder.mkdir()
    _write(folder, "a.YAML", BLOG_ENTRY)
    _write(folder, "b.Yml", BLOG_ENTRY.replace("/pets", "/toys"))
    _write(folder, "notes.txt", "not permissions")
    assert len(_load(folder)) == 2
