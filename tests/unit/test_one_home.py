"""Facts written once: a constant or a rule that two modules spell out separately drifts.

Each test reads the package's syntax trees (comments and docstrings do not count) and
names the one module allowed to state the fact; every other module imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from policy_engine.core.arn import HTTP_VERBS, MAX_METHOD_ARN
from policy_engine.core.decision import OWN_CONTEXT_KEYS

ROOT = Path(__file__).resolve().parents[2]
# Every module of the package is scanned.
SKIPPED: set[str] = set()


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for folder in ("policy_engine", "handler"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name not in SKIPPED:
                yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def _homes(found: Callable[[ast.AST], bool]) -> set[str]:
    return {name for name, tree in _modules() if any(found(node) for node in ast.walk(tree))}


def _constant(value: object) -> Callable[[ast.AST], bool]:
    return lambda node: (isinstance(node, ast.Constant) and type(node.value) is type(value)
                         and node.value == value)


def _verb_collection(node: ast.AST) -> bool:
    # A tuple, list or set literal naming every method API Gateway routes.
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return False
    words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return words >= set(HTTP_VERBS)


def _short_content_hash(node: ast.AST) -> bool:
    # ``hashlib.sha256(text).hexdigest()[:16]``: the mappings' content version. (The YAML
    # source's etag hashes file bytes incrementally: another fact.)
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
            and isinstance(node.slice.upper, ast.Constant) and node.slice.upper.value == 16
            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "hexdigest" and isinstance(node.value.func.value, ast.Call)
            and isinstance(node.value.func.value.func, ast.Attribute) and node.value.func.value.func.attr == "sha256")


def _star_to_any_run(node: ast.AST) -> bool:
    # An IAM glob compiler turns '*' into the regex '.*'.
    return _constant(".*")(node)


@pytest.mark.parametrize(
    "fact,found,home",
    [
        ("the methodArn length bound", _constant(MAX_METHOD_ARN), {"policy_engine/core/arn.py"}),
        ("the HTTP verb list", _verb_collection, {"policy_engine/core/arn.py"}),
        ("the mappings' content hash", _short_content_hash, {"policy_engine/core/permissions.py"}),
        # compaction's cover test is a variant on purpose ('?' of the wider pattern never
        # stands for a '*' of the narrower one); it is not IAM matching.
        ("the IAM glob compiler", _star_to_any_run, {"policy_engine/core/iam.py", "policy_engine/core/compaction.py"}),
        ("a bearer scheme test", _constant("bearer "),
         {"policy_engine/core/tokens/jws.py", "policy_engine/admin/cli/_common.py"}),
    ]
    + [(f"the context key {key!r}", _constant(key), {"policy_engine/core/decision.py"})
       for key in OWN_CONTEXT_KEYS if key != "scope"],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_fact_has_one_home(fact, found, home):
    assert _homes(found) <= home, f"{fact} is written outside {sorted(home)}"


def test_the_context_key_scope_is_named_once():
    # "scope" is also a claim name; the context key is the constant, used by name.
    from policy_engine.core import decision

    assert decision.SCOPE_KEY == "scope" and decision.OWN_CONTEXT_KEYS[0] is decision.SCOPE_KEY
