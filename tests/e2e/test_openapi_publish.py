"""From an OpenAPI document to published, exact permissions in two commands
(``import openapi``, ``sync``), then the real handler reading the table.

Each policy is judged as API Gateway's cache will use it: evaluated (``core.iam``)
against a request of EVERY operation of the document, including requests whose
parameter value is a sibling's literal segment (API Gateway routes those to the
sibling), and compared with what the document's security says for the operation the
request reaches.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.local.invoke import invoke
from policy_engine.admin.openapi import Operation, read_openapi
from policy_engine.core.iam import Verdict
from policy_engine.core.routes import parse_route_key, route_for
from tests.conftest import API, ROOT, token_event, verdict

SPECS = sorted((ROOT / "tests" / "data" / "openapi").glob("*"))


def _requests(operations: tuple[Operation, ...]) -> Iterator[tuple[str, str]]:
    # Every operation with a plain value per parameter, and with each literal segment of
    # the document in each parameter's place (a sibling's name), two segments for a greedy one.
    literals = sorted({segment for op in operations for segment in op.path.split("/")
                       if segment and not segment.startswith("{")})
    for op in operations:
        verbs = ("GET", "POST") if op.verb == "ANY" else (op.verb,)
        slots = re.findall(r"\{[^{}]+\}", op.path)
        for values in itertools.chain([("7",) * len(slots)], (tuple(v for _ in slots) for v in literals)):
            path = op.path
            for slot, value in zip(slots, values, strict=True):
                path = path.replace(slot, f"{value}/x" if slot.endswith("+}") else value, 1)
            for verb in verbs:
                yield verb, path


def _expected(operations: tuple[Operation, ...], held: frozenset[str], verb: str, path: str) -> bool | None:
    routes = {parse_route_key(op.route): op for op in operations}
    reached = route_for(verb, path, list(routes))
    if reached is None or routes[reached].requirements is None:
        return None  # no route, or no authorizer: API Gateway never asks
    return any(alternative <= held for alternative in routes[reached].requirements or ())


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_import_then_sync_then_every_cached_policy_is_exact(
    spec: Path, tmp_path: Path, table: str, idp: Any, make_handler: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "permissions" / "api.yaml"
    assert main(["import", "openapi", str(spec), "--arn", API, "--stages", "dev", "-o", str(out)]) == 0
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(out.parent)]) == 0
    capsys.readouterr()
    handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}")

    operations = read_openapi(spec).operations
    requests = sorted(set(_requests(operations)))
    alternatives = {a for op in operations for a in op.requirements or ()}
    holdings = {frozenset(), frozenset().union(*alternatives)}
    for alternative in alternatives:
        holdings |= {alternative, *(alternative - {scope} for scope in alternative)}
    checked = 0
    for held in sorted(holdings, key=sorted):
        token = idp.mint(scope=" ".join(sorted(held)))
        decided_verb, decided_path = requests[0]
        result = invoke(handler, token_event(token, decided_verb, decided_path))
        assert result.response is not None, sorted(held)
        decisions = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"decision"' in line]
        per_request = decisions[-1]["reason"] == "granted_this_request"
        for verb, path in requests:
            expected = _expected(operations, held, verb, path)
            if expected is None:
                continue
            allowed = verdict(result, verb, path) is Verdict.ALLOW
            assert not allowed or expected, f"{verb} {path} allowed to {sorted(held)} against the document"
            if not per_request:
                assert allowed == expected, f"{verb} {path} for {sorted(held)}: {allowed}, the document: {expected}"
            checked += 1
    assert checked > 50
