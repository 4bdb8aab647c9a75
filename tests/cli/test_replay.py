"""``policy-engine replay``: every input form, every kind of line, the bounds, and the answer
checked by construction: lines decided under permission set A by evaluating A's real
policy, replayed against B, each change held against B's real policy."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin import replay as replay_module
from policy_engine.admin.cli import main
from policy_engine.admin.cli.cli_doc import JSON_FIELDS
from policy_engine.admin.cli.replay import load_against
from policy_engine.admin.lint import estimate_response
from policy_engine.core.arn import parse_method_arn
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import PermissionSet
from tests.conftest import API, ROOT

PERMISSIONS = ROOT / "permissions"
NEXT = ROOT / "tests/data/permissions-next"  # pets:read loses GET /pets/*; pets:write gains DELETE /pets/*


def line(**fields: Any) -> str:
    """A decision line as the authorizer writes it (contract field order), ``fields`` overriding."""
    record: dict[str, Any] = {
        "level": "INFO", "event": "decision", "ts": 1765083600.123, "aws_request_id": "8f5e", "request_id": "c6af",
        "decision": "Allow", "reason": "granted", "shape": "policy", "version": "v7", "principal": "user-1",
        "api": API, "stage": "dev", "verb": "GET", "path": "/pets/42", "outcome": "allow",
        "grants": ["pets:read"], "routes": 2, "latency_ms": 0.071,
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None}, separators=(",", ":"))


# Under NEXT: user-1 loses GET /pets/42, user-2 gains DELETE /pets/7, user-3 keeps GET /pets.
LOST = line(route="GET /pets/{petId}")
GAINED = line(principal="user-2", verb="DELETE", path="/pets/7", outcome="deny", grants=["pets:write"])
KEPT = line(principal="user-3", path="/pets", grants=["pets:read"])
SAMPLE = [LOST, GAINED, KEPT]


def run(capsys: Any, *argv: str, status: int | None = None) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["replay", *argv, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    if status is not None:
        assert code == status
    report["exit"] = code
    return report


def assert_sample(report: dict[str, Any]) -> None:
    assert (report["decisions"], report["gained"], report["lost"], report["unchanged"]) == (3, 1, 1, 1)
    changes = {(c["principal"], c["route"]): (c["gained"], c["lost"]) for c in report["changes"]}
    assert changes == {("user-1", "GET /pets/{petId}"): (0, 1), ("user-2", "DELETE /pets/7"): (1, 0)}
    assert report["exit"] == 1


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{text}\n" for text in lines))
    return path


# -- input forms -----------------------------------------------------------------------

@pytest.mark.parametrize("form", ["bare", "s3_export", "logs_tail", "filter_text", "message", "message_object",
                                  "crlf"])
def test_every_line_form_cloudwatch_exports_is_read(form, tmp_path, capsys):
    shaped = {
        "bare": lambda text: text,
        "s3_export": lambda text: f"2025-12-07T05:00:00.123Z {text}",
        "logs_tail": lambda text: f"2025-12-07T05:00:00.123000+00:00 2025/12/07/[$LATEST]0f1e2d3c {text}",
        "filter_text": lambda text: f"1765083600123\t{text}",
        "message": lambda text: json.dumps({"timestamp": 1765083600123, "message": text, "ingestionTime": 1}),
        "message_object": lambda text: json.dumps({"timestamp": 1765083600123, "message": json.loads(text)}),
        "crlf": lambda text: text + "\r",
    }[form]
    log = write(tmp_path / "decisions.log", [shaped(text) for text in SAMPLE])
    report = run(capsys, str(log), "--against", str(NEXT))
    assert_sample(report)
    assert report["skipped"] == {"not_decision": 0, "refusal": 0, "older_release": 0, "damaged": 0}
    first = report["examples"][0]
    assert first["where"] == f"{log}:1" and first["timestamp"] == "2025-12-07T05:00:00.123Z"


def test_gzip_files_folders_and_stdin(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "export" / "task-1"
    write(folder / "stream-a" / "000000", [LOST])
    (folder / "stream-b").mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "stream-b" / "000000.gz", "wt") as out:
        out.write(GAINED + "\n")
    (tmp_path / "export" / "aws-logs-write-test").write_text("Permission Check Successful")
    (tmp_path / "export" / ".hidden").write_text(LOST + "\n")  # hidden entries are left out
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO((KEPT + "\n").encode())))
    report = run(capsys, str(tmp_path / "export"), "-", "--against", str(NEXT))
    assert_sample(report)
    assert report["lines"] == 4 and report["skipped"]["not_decision"] == 1
    wheres = {e["where"] for e in report["examples"]}
    assert wheres == {f"{folder}/stream-a/000000:1", f"{folder}/stream-b/000000.gz:1"}


def test_a_gzip_file_is_known_by_its_bytes_too(tmp_path, capsys):
    (tmp_path / "000000").write_bytes(gzip.compress("\n".join(SAMPLE).encode()))
    assert_sample(run(capsys, str(tmp_path / "000000"), "--against", str(NEXT)))


def test_a_filter_log_events_document_is_read_within_its_cap(tmp_path, capsys, monkeypatch):
    document = {"events": [{"logStreamName": "s", "timestamp": 1765083600123 + i, "message": text, "eventId": str(i)}
                           for i, text in enumerate([*SAMPLE, "START RequestId: 1 Version: $LATEST"])],
                "searchedLogStreams": []}
    pretty = tmp_path / "events.json"
    pretty.write_text(json.dumps(document, indent=4))
    report = run(capsys, str(pretty), "--against", str(NEXT))
    assert_sample(report)
    assert report["examples"][0]["where"] == f"{pretty}:events[0]" and report["skipped"]["not_decision"] == 1
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(document))
    assert_sample(run(capsys, str(compact), "--against", str(NEXT)))
    insights = tmp_path / "insights.json"
    insights.write_text(json.dumps({"status": "Complete", "results": [
        [{"field": "@timestamp", "value": "2025-12-07 05:00:00.123"}, {"field": "@message", "value": text}]
        for text in SAMPLE]}, indent=2))
    assert_sample(run(capsys, str(insights), "--against", str(NEXT)))
    # Over the cap: refused whole, with the way to export instead (exit 2).
    monkeypatch.setattr(replay_module, "MAX_DOCUMENT_BYTES", 100)
    assert main(["replay", str(pretty), "--against", str(NEXT)]) == 2
    err = capsys.readouterr().err
    assert f"{pretty}: a JSON document" in err and "--query 'events[].[timestamp,message]'" in err


# -- kinds of lines --------------------------------------------------------------------

def test_other_lines_refusals_and_older_lines_are_counted_not_replayed(tmp_path, capsys):
    older = json.dumps({"level": "INFO", "event": "decision", "ts": 1.0, "decision": "Deny", "reason": "no_grant",
                        "shape": "policy", "version": "v3", "principal": "old", "routes": 0, "latency_ms": 0.1})
    lines = [
        "START RequestId: 8f5e Version: $LATEST", "REPORT RequestId: 8f5e\tDuration: 1.52 ms", "",
        json.dumps({"level": "INFO", "event": "permissions_loaded", "version": "v7"}),
        json.dumps({"level": "INFO", "event": "shadow_diff", "principal": "user-1", "live_outcome": "allow"}),
        "Traceback: KeyError: {'a': 1}",  # a brace, not JSON, no decision: another program's text
        line(decision="Unauthorized", reason="expired_token", outcome=None, grants=None, principal=None),
        line(decision="Error", reason="store_unavailable", outcome=None, grants=None),
        older, f"2025-12-07T05:00:00.000Z {older}",
        *SAMPLE,
    ]
    report = run(capsys, str(write(tmp_path / "mixed.log", lines)), "--against", str(NEXT))
    assert_sample(report)
    assert report["skipped"] == {"not_decision": 6, "refusal": 2, "older_release": 2, "damaged": 0}
    assert report["lines"] == len(lines)
    assert any("2 Allow/Deny lines come from a release" in note for note in report["notes"])


def test_damaged_lines_are_counted_and_the_first_named_never_a_crash(tmp_path, capsys):
    damaged = [
        LOST[:90],  # cut short
        line(outcome="maybe"),
        line(api=None),  # some replay fields but not all
        line(grants="pets:read"),
        line(grants=[["pets:read"]]),
        line(api="arn:aws:s3:::bucket"),
        line(claims={"a..b": "x"}),
        line(claims={"tenant": {"nested": 1}}),
        line(decision="Perhaps"),
    ]
    log = write(tmp_path / "damaged.log", [*damaged, *SAMPLE])
    with log.open("ab") as out:
        out.write(b'{"event":"decision","decision":"Allow","principal":"\xff\xfe"}\n')
        out.write(b"\xff\xfe binary junk without the marker\n")
    report = run(capsys, str(log), "--against", str(NEXT))
    assert_sample(report)
    assert report["skipped"]["damaged"] == len(damaged) + 1
    assert report["skipped"]["not_decision"] == 1
    assert [d["where"] for d in report["damaged"]] == [f"{log}:{n}" for n in range(1, 6)]
    problems = [d["problem"] for d in report["damaged"]]
    assert problems[0].startswith("not valid JSON") and "outcome 'maybe'" in problems[1]
    assert "without api" in problems[2] and "grants must be a list of strings" in problems[3]
    # The text report names them too, and the rest are counted.
    capsys.readouterr()
    assert main(["replay", str(log), "--against", str(NEXT)]) == 1
    out = capsys.readouterr().out
    assert f"damaged: {log}:1: not valid JSON" in out and "... and 5 more damaged lines" in out


def test_a_broken_gzip_stream_and_an_overlong_line_are_damaged_and_reading_goes_on(tmp_path, capsys, monkeypatch):
    whole = gzip.compress(("\n".join([LOST, GAINED] * 200) + "\n").encode())
    (tmp_path / "a-broken.gz").write_bytes(whole[: len(whole) // 2])
    write(tmp_path / "b.log", [KEPT, "x" * 900, KEPT])
    monkeypatch.setattr(replay_module, "MAX_LINE_BYTES", 600)
    report = run(capsys, str(tmp_path), "--against", str(NEXT))
    assert report["skipped"]["damaged"] == 2
    problems = {d["where"].rsplit(":", 1)[0]: d["problem"] for d in report["damaged"]}
    assert "compressed stream is damaged" in problems[str(tmp_path / "a-broken.gz")]
    assert problems[str(tmp_path / "b.log")] == "a line longer than 600 bytes"
    assert report["unchanged"] >= 2 and report["lost"] > 0  # the readable part of the stream, and b.log


# -- what is decided -------------------------------------------------------------------

def test_placeholder_claims_are_rebuilt_as_the_nested_claims_the_rules_read(tmp_path, capsys):
    permissions = write(tmp_path / "p" / "tenants.yaml", [
        "apis:", f"  - arn: {API}", "    stages: [dev]", "    routes:",
        "      GET /tenants/{claim:custom:tenant_id}/pets: [{group: pet-sitters}]",
        "      GET /orgs/{claim:org.id}/files: [{group: staff}]",
    ])
    lines = [
        line(principal="sitter", path="/tenants/acme/pets", grants=["group pet-sitters"],
             claims={"custom:tenant_id": "acme"}),
        line(principal="sitter", path="/tenants/other/pets", grants=["group pet-sitters"], outcome="deny",
             claims={"custom:tenant_id": "acme"}),
        line(principal="staff", path="/orgs/o1/files", grants=["group staff"], claims={"org.id": "o1"}),
        line(principal="staff", path="/orgs/42/files", grants=["group staff"], claims={"org.id": 42}),
        # no claim logged: the placeholder is refused, as for a caller without it
        line(principal="nobody", path="/orgs/o1/files", grants=["group staff"], outcome="deny"),
    ]
    report = run(capsys, str(write(tmp_path / "t.log", lines)), "--against", str(permissions), status=0)
    assert report["decisions"] == 5 and report["unchanged"] == 5
    assert any("org.id" in note for note in report["notes"])
    # The same line with the other tenant's value is judged by that value.
    report = run(capsys, str(write(tmp_path / "u.log", [lines[0].replace('"acme"}', '"other"}')])),
                 "--against", str(permissions), status=1)
    assert report["lost"] == 1


ROUTES = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pet/{{petId}}: [read:pets]
      GET /pet/findByStatus: [admin:pets]
      GET /docs/{{id}}/meta: [docs:meta]
      GET /docs/{{proxy+}}: [docs:admin]
"""


def test_route_templates_siblings_and_per_request_answers_are_replayed(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "routes.yaml").write_text(ROUTES)
    lines = [
        line(path="/pet/12", grants=["read:pets"], route="GET /pet/{petId}"),
        # the sibling a parameter's '*' reaches is explicitly denied
        line(path="/pet/findByStatus", grants=["read:pets"], outcome="deny", route="GET /pet/findByStatus"),
        # no single policy allows docs/{id}/meta exactly: the authorizer allows this request alone
        line(path="/docs/1/meta", grants=["docs:meta"], route="GET /docs/{id}/meta"),
        line(path="/docs/1/2/meta", grants=["docs:meta"], outcome="deny", route="GET /docs/{proxy+}"),
    ]
    log = write(tmp_path / "r.log", lines)
    report = run(capsys, str(log), "--against", str(tmp_path / "p"), status=0)
    assert report["unchanged"] == 4
    # Without the literal route, findByStatus goes to the parameter route: gained.
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "routes.yaml").write_text(ROUTES.replace("      GET /pet/findByStatus: [admin:pets]\n", ""))
    report = run(capsys, str(log), "--against", str(tmp_path / "q"), status=1)
    assert (report["gained"], report["lost"]) == (1, 0)
    assert report["changes"][0]["route"] == "GET /pet/findByStatus"


def test_exit_codes(tmp_path, capsys):
    log = write(tmp_path / "d.log", SAMPLE)
    assert main(["replay", str(log), "--against", str(PERMISSIONS)]) == 0
    assert main(["replay", str(log), "--against", str(NEXT)]) == 1
    capsys.readouterr()
    # Permissions that do not load: exit 2, with the YAML problem at file:line.
    bad = write(tmp_path / "bad" / "p.yaml", ["apis:", "  - arn: nope", "    routes:", "      GET /x: [s"])
    assert main(["replay", str(log), "--against", str(bad)]) == 2
    assert f"{bad}:" in capsys.readouterr().err
    invalid = write(tmp_path / "invalid" / "p.yaml", ["apis:", "  - arn: not-an-arn", "    stages: [dev]",
                                                        "    routes:", "      GET /x: [s]"])
    assert main(["replay", str(log), "--against", str(invalid)]) == 2
    assert f"{invalid}:2" in capsys.readouterr().err
    assert main(["replay", str(log), "--against", str(tmp_path / "missing")]) == 2
    assert main(["replay", str(tmp_path / "nope.log"), "--against", str(PERMISSIONS)]) == 2
    assert "nope.log: no such file or folder" in capsys.readouterr().err
    # Nothing to compare is not a pass.
    empty = write(tmp_path / "empty.log", ["START RequestId: 1 Version: $LATEST"])
    assert main(["replay", str(empty), "--against", str(PERMISSIONS)]) == 2
    assert "no decision line to replay" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["replay", str(log), "--against", str(PERMISSIONS), "--max-keys", "0"])
    assert usage.value.code == 2


def test_json_output_has_exactly_the_documented_fields(tmp_path, capsys):
    report = run(capsys, str(write(tmp_path / "d.log", SAMPLE)), "--against", str(NEXT), status=1)
    report.pop("exit")
    assert list(report) == [name for name, _ in JSON_FIELDS["replay"]]
    assert report["against"]["location"] == str(NEXT) and report["status"] == "differences"
    example = report["examples"][0]
    assert set(example) == {"where", "timestamp", "principal", "api", "stage", "route", "request", "live",
                            "replayed", "change", "live_version"}
    assert (example["live"], example["replayed"], example["change"], example["live_version"]) == \
        ("allow", "deny", "lost", "v7")
    assert report["live_versions"] == {"v7": 3}


def test_the_text_report(tmp_path, capsys):
    log = write(tmp_path / "d.log", SAMPLE)
    capsys.readouterr()
    assert main(["replay", str(log), "--against", str(NEXT), "--color", "never"]) == 1
    out = capsys.readouterr().out
    assert "replayed: 3 decisions: 1 unchanged, 1 gained, 1 lost" in out
    assert "user-1     a1b2c3d4e5/dev  GET /pets/{petId}" in out
    assert f"{log}:1  2025-12-07T05:00:00.123Z  user-1  GET /pets/42 (GET /pets/{{petId}}, a1b2c3d4e5/dev): " \
           "allow -> deny (live version v7)" in out
    assert out.rstrip().endswith("differences found")


def test_the_key_table_is_bounded_and_the_rest_is_counted(tmp_path, capsys):
    third = line(principal="user-9", verb="DELETE", path="/pets/8", outcome="deny", grants=["pets:write"])
    lines = [line(principal=f"user-{n}") for n in range(5)] * 2 + [GAINED, third]
    report = run(capsys, str(write(tmp_path / "d.log", lines)), "--against", str(NEXT), "--max-keys", "2",
                 "--top", "1", "--examples", "3")
    assert (report["lost"], report["gained"]) == (10, 2)
    assert report["pairs"] == 2 and report["max_keys"] == 2
    assert report["beyond_max_keys"] == {"pairs": {"gained": 2, "lost": 6}, "routes": {"gained": 1, "lost": 0}}
    # GET /pets/42 counts both tracked principals; DELETE /pets/7 is the second route, DELETE /pets/8 past the bound.
    assert report["routes"] == [{"api": API, "stage": "dev", "route": "GET /pets/42", "gained": 0, "lost": 10,
                                 "principals": 2, "first": f"{tmp_path / 'd.log'}:1"}]
    assert report["changes"] == [{"principal": "user-0", "api": API, "stage": "dev", "route": "GET /pets/42",
                                  "gained": 0, "lost": 2, "first": f"{tmp_path / 'd.log'}:1"}]
    assert len(report["examples"]) == 3
    assert any("--max-keys 2 reached" in note for note in report["notes"])


def test_memos_stay_bounded_over_many_callers(tmp_path):
    from policy_engine.core.memo import MEMO_ENTRIES

    permissions, _ = load_against(str(PERMISSIONS))
    replayer = replay_module.Replayer(permissions)
    for n in range(3 * MEMO_ENTRIES):
        text = line(principal=f"p{n}", grants=[f"scope-{n}", "pets:read"], claims={"custom:tenant_id": f"t{n}"})
        replayer.feed_bytes(text.encode(), "mem", n)
    assert replayer.decisions == 3 * MEMO_ENTRIES and replayer.gained == replayer.lost == 0
    for memo in (replayer._judges, replayer._grant_sets, replayer._claim_sets, replayer._apis):
        assert len(memo) <= MEMO_ENTRIES


def test_simple_responses_are_named_in_the_notes(tmp_path, capsys):
    report = run(capsys, str(write(tmp_path / "d.log", [line(shape="simple", route="GET /pets/{petId}")])),
                 "--against", str(PERMISSIONS), status=0)
    assert any("1 decisions were simple responses" in note for note in report["notes"])


# -- progress --------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("argv", "terminal", "drawn"), [
    ([], True, "\r"), (["--format", "json"], True, ""), ([], False, ""),
    (["--progress", "always", "--format", "json"], False, "\n"), (["--progress", "never"], True, ""),
])
def test_progress_on_a_terminal_or_when_asked(tmp_path, monkeypatch, argv, terminal, drawn):
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr("time.monotonic", itertools.count(0, 10).__next__)
    log = write(tmp_path / "d.log", SAMPLE * 4000)
    main(["replay", str(log), "--against", str(NEXT), *argv])
    text = stream.getvalue()
    if not drawn:
        assert "lines/s" not in text
    else:
        assert "replay: 12,000 lines, " in text and " lines/s" in text
        assert (f"{drawn}replay: " in text) or text.startswith("replay: ")


# -- correct by construction -----------------------------------------------------------

SET_A = f"""
apis:
  - arn: {API}
    stages: [dev, prod]
    routes:
      GET /pet/{{petId}}: [read:pets]
      GET /pet/findByStatus: [admin:pets]
      GET /pet/{{petId}}/photos: [photos:read]
      POST /pet/{{petId}}: [write:pets]
      ANY /store/{{proxy+}}: [store:admin]
      GET /store/inventory: [store:read]
      GET /docs/{{id}}/meta: [docs:meta]
      GET /docs/{{proxy+}}: [docs:admin]
      GET /tenants/{{claim:tenant}}/reports: [{{group: tenant-users}}]
      GET /orgs/{{claim:org.id}}/files: [{{group: org-users}}]
  - arn: {API}
    stages: [prod]
    routes:
      GET /status: [{{authenticated: true}}]
"""

SET_B = f"""
apis:
  - arn: {API}
    stages: [dev, prod]
    routes:
      GET /pet/{{petId}}: [read:pets]
      GET /pet/findByStatus: [admin:pets, read:pets]
      GET /pet/{{petId}}/photos: [photos:read, read:pets]
      POST /pet/{{petId}}: [admin:pets]
      ANY /store/{{proxy+}}: [store:admin]
      GET /store/inventory: [store:admin]
      GET /docs/{{id}}/meta: [docs:meta]
      GET /docs/{{proxy+}}: [docs:admin, docs:meta]
      GET /tenants/{{claim:tenant}}/reports: [{{group: tenant-users}}, {{group: auditors}}]
      GET /orgs/{{claim:org.id}}/files: [{{allOf: {{group: [org-users], scope: [read:pets]}}}}]
  - arn: {API}
    stages: [dev]
    routes:
      GET /status: [{{authenticated: true}}]
"""

GRANT_SETS = [
    [], ["read:pets"], ["photos:read", "read:pets"], ["admin:pets"], ["write:pets"], ["store:admin"], ["store:read"],
    ["docs:meta"], ["docs:admin"], ["group tenant-users"], ["group auditors"], ["group org-users"],
    ["group org-users", "group tenant-users", "read:pets"],
]
REQUESTS = [
    ("GET", "/pet/1", "GET /pet/{petId}"), ("GET", "/pet/findByStatus", "GET /pet/findByStatus"),
    ("GET", "/pet/1/photos", "GET /pet/{petId}/photos"), ("POST", "/pet/1", "POST /pet/{petId}"),
    ("DELETE", "/store/order/7", "ANY /store/{proxy+}"), ("GET", "/store/inventory", "GET /store/inventory"),
    ("POST", "/store/inventory", "ANY /store/{proxy+}"), ("GET", "/docs/1/meta", "GET /docs/{id}/meta"),
    ("GET", "/docs/1/2/meta", "GET /docs/{proxy+}"), ("GET", "/docs/1", "GET /docs/{proxy+}"),
    ("GET", "/tenants/acme/reports", "GET /tenants/{tenant}/reports"),
    ("GET", "/tenants/other/reports", "GET /tenants/{tenant}/reports"),
    ("GET", "/orgs/o1/files", "GET /orgs/{org}/files"), ("GET", "/status", "GET /status"), ("GET", "/", "$default"),
]
CLAIMS = [None, {"tenant": "acme", "org": {"id": "o1"}}]


def _decide(permissions: PermissionSet, grants: list[str], stage: str, verb: str, path: str,
            claims: dict[str, Any] | None) -> tuple[str, bool]:
    """(decision, allowed) from the policy the authorizer renders, evaluated as API Gateway does."""
    arn = f"{API}/{stage}/{verb}/{path[1:]}"
    held = frozenset(grants)
    evaluation = permissions.evaluate(held, API, stage, claims=claims)
    resources = evaluation.resources
    if evaluation.per_request:
        alone = permissions.request_resource(evaluation, parse_method_arn(arn))
        if alone is not None:
            resources = (*resources, alone)
    response = estimate_response(resources, api_arn=API, stage=stage, scopes=held, version="v",
                                 excluded=evaluation.excluded)
    return ("Allow" if resources else "Deny"), evaluate_response(response, arn) is Verdict.ALLOW


def test_every_change_is_what_the_other_policy_decides(tmp_path, capsys):
    for name, text in (("a", SET_A), ("b", SET_B)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.yaml").write_text(text)
    a, _ = load_against(str(tmp_path / "a"))
    b, _ = load_against(str(tmp_path / "b"))
    lines: list[str] = []
    expected: Counter[tuple[str, str, str, str]] = Counter()
    outcomes: Counter[tuple[bool, bool]] = Counter()
    for (n, grants), (c, claims), stage, (verb, path, route) in itertools.product(
            enumerate(GRANT_SETS), enumerate(CLAIMS), ("dev", "prod"), REQUESTS):
        principal = f"caller-{n}-{c}"
        decision, live = _decide(a, grants, stage, verb, path, claims)
        _, replayed = _decide(b, grants, stage, verb, path, claims)
        outcomes[live, replayed] += 1
        logged = {"tenant": claims["tenant"], "org.id": claims["org"]["id"]} if claims else None
        # Half the lines carry API Gateway's route; the others (TOKEN events) are keyed by VERB /path.
        keyed = route if route != "$default" and len(lines) % 2 else f"{verb} {path}"
        lines.append(line(principal=principal, stage=stage, verb=verb, path=path, grants=grants, claims=logged,
                          decision=decision, outcome="allow" if live else "deny",
                          route=route if keyed == route else None))
        if live != replayed:
            expected[principal, stage, keyed, "gained" if replayed else "lost"] += 1
    # The sets differ in both directions, and most requests keep their outcome.
    assert outcomes[False, True] and outcomes[True, False] and outcomes[True, True] and outcomes[False, False]
    report = run(capsys, str(write(tmp_path / "d.log", lines)), "--against", str(tmp_path / "b"), "--top", "10000",
                 status=1)
    got: Counter[tuple[str, str, str, str]] = Counter()
    for change in report["changes"]:
        for kind in ("gained", "lost"):
            if change[kind]:
                got[change["principal"], change["stage"], change["route"], kind] += change[kind]
    assert got == expected
    by_route: Counter[tuple[str, str, str]] = Counter()
    for (_, stage, route, kind), count in expected.items():
        by_route[stage, route, kind] += count
    assert by_route == Counter({(r["stage"], r["route"], kind): r[kind] for r in report["routes"]
                                for kind in ("gained", "lost") if r[kind]})
    assert (report["gained"], report["lost"]) == (outcomes[False, True], outcomes[True, False])
    assert report["unchanged"] == outcomes[True, True] + outcomes[False, False]
    assert report["decisions"] == len(lines)
    # Replaying against A itself changes nothing.
    assert run(capsys, str(tmp_path / "d.log"), "--against", str(tmp_path / "a"))["status"] == "no_difference"


# -- inputs as shells and the AWS CLI hand them over -------------------------------------

def test_gzip_on_stdin_and_a_plain_file_named_gz(tmp_path, capsys, monkeypatch):
    # Gzip is told by the first bytes wherever the lines come from, and only by them.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(_Pipe(gzip.compress(
        "\n".join(SAMPLE).encode())))))
    assert_sample(run(capsys, "-", "--against", str(NEXT)))
    plain = write(tmp_path / "plain.gz", SAMPLE)
    assert_sample(run(capsys, str(plain), "--against", str(NEXT)))
    # A stream that can neither seek nor peek (as a caller of replay_inputs may pass).
    replayer = replay_module.Replayer(load_against(str(NEXT))[0])
    replay_module.replay_inputs(["-"], replayer, stdin=_Unpeekable(gzip.compress("\n".join(SAMPLE).encode())))
    assert (replayer.decisions, replayer.gained, replayer.lost) == (3, 1, 1)


class _Pipe(io.RawIOBase):
    """Bytes as a pipe gives them: readable, never seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 7))  # short reads, as pipes make
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _Unpeekable:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read = self._data.read

    def seekable(self) -> bool:
        return False


def test_a_pipe_named_by_its_path_is_read(tmp_path, capsys):
    # `replay <(zcat export.gz)` and `replay /dev/stdin` hand over a path that is no file.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("\n".join(SAMPLE) + "\n"), daemon=True)
    writer.start()
    try:
        assert_sample(run(capsys, str(fifo), "--against", str(NEXT)))
    finally:
        if writer.is_alive():  # not read: open the other end, so the writer ends
            with open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb") as reader:
                writer.join(timeout=10)
                reader.read()
        writer.join(timeout=10)


def test_compact_documents_longer_than_a_line_and_in_any_member_order(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(replay_module, "MAX_LINE_BYTES", 200)  # every compact document below is longer
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"events": [{"timestamp": 1765083600123, "message": text} for text in SAMPLE]}))
    assert_sample(run(capsys, str(events), "--against", str(NEXT)))
    insights = tmp_path / "insights.json"  # botocore's GetQueryResults puts queryLanguage first
    insights.write_text(json.dumps({"queryLanguage": "CWLI", "results": [
        [{"field": "@timestamp", "value": "2025-12-07 05:00:00.123"}, {"field": "@message", "value": text}]
        for text in SAMPLE], "statistics": {}, "status": "Complete"}))
    assert_sample(run(capsys, str(insights), "--against", str(NEXT)))


def test_the_claims_note_counts_decisions_once(tmp_path, capsys):
    permissions = write(tmp_path / "p" / "tenants.yaml", [
        "apis:", f"  - arn: {API}", "    stages: [dev]", "    routes:",
        *(f"      GET /t{i}/{{claim:t{i}}}/pets: [pets:read]" for i in range(3)),
    ])
    report = run(capsys, str(write(tmp_path / "a.log", [KEPT, KEPT])), "--against", str(permissions))
    (note,) = [note for note in report["notes"] if "placeholder" in note]
    assert note.startswith("2 decisions met a placeholder whose claim (t0, t1, t2)"), note


def test_the_text_report_shows_control_characters_escaped(tmp_path, capsys):
    log = write(tmp_path / "d.log", [LOST.replace('"user-1"', '"evil\\u001b[2J\\nuser"')])
    capsys.readouterr()
    assert main(["replay", str(log), "--against", str(NEXT), "--color", "never"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J\\x0auser" in out


def test_bytes_count_every_byte_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(replay_module, "MAX_LINE_BYTES", 300)
    log = write(tmp_path / "d.log", [KEPT, "x" * 5000, LOST])  # an overlong line is read past, and counted
    document = tmp_path / "events.json"
    document.write_text(json.dumps({"events": [{"timestamp": 1765083600123, "message": GAINED}]}, indent=2))
    report = run(capsys, str(log), str(document), "--against", str(NEXT))
    assert report["bytes"] == log.stat().st_size + document.stat().st_size


def test_a_fifo_met_in_a_folder_is_left_out(tmp_path):
    # Named on the command line a pipe is read (<(zcat ...)); met while walking a folder it
    # is no log file, and reading it could wait for ever.
    import os

    from policy_engine.admin.replay import input_files

    (tmp_path / "a.log").write_text("")
    os.mkfifo(tmp_path / "b.log")
    assert input_files([str(tmp_path)]) == [str(tmp_path / "a.log")]
