"""The real handler's own decision lines, replayed.

The handler (a real JWKS over HTTP on 127.0.0.1) decides a few requests of every event
kind under permission set A and writes its decision lines on stderr; ``policy-engine
replay`` reads exactly those lines against B. What it reports is held against the
handler itself running under B on the same events, judged by evaluating its policies
as API Gateway does.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from policy_engine.admin.cli import main
from policy_engine.core.iam import Verdict
from tests.conftest import API, invoke, token_event, verdict
from tests.request_events import http_v2_event, rest_request_event

SET_A = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read]
      GET /pets/{{petId}}: [pets:read]
      POST /pets: [pets:write]
      DELETE /pets/{{petId}}: [pets:admin]
      GET /tenants/{{claim:tenant_id}}/pets: [{{group: pet-sitters}}]
"""

# Readers lose one pet, writers gain DELETE, sitters gain their own tenant's pets.
SET_B = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read]
      GET /pets/{{petId}}: [pets:admin]
      POST /pets: [pets:write]
      DELETE /pets/{{petId}}: [pets:admin, pets:write]
      GET /tenants/{{claim:tenant_id}}/pets: [{{group: pet-sitters}}]
      GET /tenants/{{claim:tenant_id}}/pets/*: [{{group: pet-sitters}}]
"""

GRANT_SOURCES = "scope:scope,group:cognito:groups"


def _events(idp: Any) -> list[tuple[dict[str, Any], str, str]]:
    reader = idp.mint(scope="pets:read", subject="reader")
    writer = idp.mint(scope="pets:write", subject="writer")
    sitter = idp.mint(scope="email", subject="sitter", tenant_id="acme", **{"cognito:groups": ["pet-sitters"]})
    nobody = idp.mint(scope="email", subject="nobody")
    return [
        (token_event(reader, "GET", "/pets"), "GET", "/pets"),
        (rest_request_event(reader, "GET", "/pets/12", resource="/pets/{petId}"), "GET", "/pets/12"),
        (http_v2_event(writer, "DELETE", "/pets/3", route_key="DELETE /pets/{petId}"), "DELETE", "/pets/3"),
        (http_v2_event(writer, "POST", "/pets", route_key="POST /pets"), "POST", "/pets"),
        (token_event(sitter, "GET", "/tenants/acme/pets/5"), "GET", "/tenants/acme/pets/5"),
        (token_event(sitter, "GET", "/tenants/globex/pets"), "GET", "/tenants/globex/pets"),
        (token_event(nobody, "GET", "/pets"), "GET", "/pets"),
        (token_event(reader + "x", "GET", "/pets"), "GET", "/pets"),  # a bad signature: 401
    ]


def test_the_handlers_decision_lines_replay_to_what_the_other_set_decides(idp, make_handler, capsys, tmp_path):
    for name, text in (("a", SET_A), ("b", SET_B)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.yaml").write_text(text)
    events = _events(idp)
    live = make_handler(PERMISSIONS_SOURCE=str(tmp_path / "a"), GRANT_SOURCES=GRANT_SOURCES)
    capsys.readouterr()
    live_results = [invoke(live, event) for event, _, _ in events]
    log = tmp_path / "stderr.log"
    log.write_text(capsys.readouterr().err)
    decisions = [json.loads(text) for text in log.read_text().splitlines() if '"event":"decision"' in text]
    assert [d["decision"] for d in decisions][-1] == "Unauthorized" and len(decisions) == len(events)
    for record in decisions[:-1]:  # what replay needs is on every Allow/Deny line, never the token
        assert {"principal", "grants", "api", "stage", "verb", "path", "outcome", "version"} <= set(record)
    sitter_line = decisions[4]
    assert sitter_line["claims"] == {"tenant_id": "acme"} and sitter_line["grants"] == ["email", "group pet-sitters"]

    # The same events under B, judged by the policies the handler returns.
    other = make_handler(PERMISSIONS_SOURCE=str(tmp_path / "b"), GRANT_SOURCES=GRANT_SOURCES)
    expected: Counter[tuple[str, str]] = Counter()
    for (event, verb, path), before, record in zip(events[:-1], live_results, decisions, strict=False):
        was = verdict(before, verb, path) is Verdict.ALLOW
        now = verdict(invoke(other, event), verb, path) is Verdict.ALLOW
        assert (record["outcome"] == "allow") is was
        route = record.get("route") or f"{verb} {path}"
        if was != now:
            expected[record["principal"], route, "gained" if now else "lost"] += 1
    assert expected == Counter({("reader", "GET /pets/{petId}", "lost"): 1,
                                ("writer", "DELETE /pets/{petId}", "gained"): 1,
                                ("sitter", "GET /tenants/acme/pets/5", "gained"): 1})

    capsys.readouterr()
    assert main(["replay", str(log), "--against", str(tmp_path / "b"), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    got: Counter[tuple[str, str]] = Counter()
    for change in report["changes"]:
        for kind in ("gained", "lost"):
            got[change["principal"], change["route"], kind] += change[kind]
    assert +got == expected
    assert (report["decisions"], report["gained"], report["lost"]) == (len(events) - 1, 2, 1)
    assert report["skipped"]["refusal"] == 1 and report["skipped"]["damaged"] == 0
    # Against the set that decided them, nothing changes.
    assert main(["replay", str(log), "--against", str(tmp_path / "a")]) == 0


def test_replay_reads_the_handlers_lines_as_cloudwatch_exports_them(idp, make_handler, capsys, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.yaml").write_text(SET_A)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "p.yaml").write_text(SET_B)
    live = make_handler(PERMISSIONS_SOURCE=str(tmp_path / "a"), GRANT_SOURCES=GRANT_SOURCES)
    capsys.readouterr()
    for event, _, _ in _events(idp):
        invoke(live, event)
    lines = capsys.readouterr().err.splitlines()
    export = tmp_path / "000000"  # an export to S3: "<timestamp> <line>", one event per line
    export.write_text("".join(f"2025-12-07T05:00:{n % 60:02d}.000Z {text}\n" for n, text in enumerate(lines)))
    capsys.readouterr()
    assert main(["replay", str(export), "--against", str(tmp_path / "b"), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["gained"], report["lost"], report["skipped"]["damaged"]) == (2, 1, 0)
