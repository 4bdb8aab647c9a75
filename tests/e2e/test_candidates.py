"""Candidates end to end, as an operator runs them: DynamoDB Local and moto's S3 server.

``store_with_candidate`` yields a store whose live version (v1) is the shipped
permissions and whose candidate (c1) changes them in two ways a caller can notice:

* ``DELETE /pets/*`` moves from ``pets:admin`` to ``pets:write`` (a pets:write caller
  is denied DELETE /dev/pets/1 live and would be allowed by the candidate; a
  pets:admin caller loses it), and
* ``HEAD /pets`` is new for ``pets:read`` (a reader's policy grows; a GET decision
  does not change).

Tests of the authorizer's shadow evaluation can take the fixture as it is: its
``handler_env`` points ``PERMISSIONS_SOURCE`` at the store, whose candidate the
authorizer finds on its own (``PERMISSIONS_CANDIDATE=auto``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource
from policy_engine.adapters.s3 import S3PermissionSource
from policy_engine.admin.cli import main
from policy_engine.admin.local.invoke import invoke
from policy_engine.admin.publish import load_desired
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, keys_of
from policy_engine.errors import MissingStoreError
from tests.conftest import API, ROOT, token_event
from tests.stores import Backend
from tests.support.emf import emf_problems, metrics_of

# DynamoDB Local for tables, moto's server for S3 (``Backend.s3`` is always moto).
pytestmark = pytest.mark.parametrize("backend", ["dynamodb-local"], indirect=True)

NOTE = "shadow: DELETE for writers, HEAD for readers"


@dataclass
class CandidateStore:
    """A store with live version v1 and candidate c1 (module docstring)."""

    kind: str
    target: str
    backend: Backend
    live: Path
    candidate: Path

    @property
    def handler_env(self) -> dict[str, str]:
        """What the real handler needs to read this store (credentials and endpoints included)."""
        return {**self.backend.env, "PERMISSIONS_SOURCE": self.target}

    def source(self, *, candidate: bool = False) -> Any:
        """The authorizer's own reader of the live version or of the candidate."""
        location = self.target.split("://", 1)[1]
        if self.kind == "dynamodb":
            return DynamoDbPermissionSource(location, candidate=candidate, environ=self.backend.env)
        return S3PermissionSource(self.target, candidate=candidate, environ=self.backend.env)

    def read(self, *, candidate: bool = False) -> tuple[str, frozenset[MappingKey], str | None]:
        """``(version label, mappings, published_at)`` as the authorizer loads them."""
        raw = self.source(candidate=candidate).fetch(None)
        assert raw is not None
        return raw.version or "", keys_of(compile_records(raw.records, raw.locate, version=raw.version)), \
            raw.published_at


def run(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> str:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == status, captured.err
    return captured.out


@pytest.fixture(params=["dynamodb", "s3"])
def store_with_candidate(request: pytest.FixtureRequest, backend: Backend, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> Iterator[CandidateStore]:
    live = tmp_path / "live"
    shutil.copytree(ROOT / "permissions", live)
    candidate = tmp_path / "candidate"
    shutil.copytree(ROOT / "permissions", candidate)
    pets = candidate / "pets.yaml"
    text = pets.read_text()
    assert "DELETE /pets/*: [pets:admin]" in text and "      GET /pets: [pets:read, pets:write]\n" in text
    pets.write_text(text.replace("DELETE /pets/*: [pets:admin]", "DELETE /pets/*: [pets:write]")
                    .replace("      GET /pets: [pets:read, pets:write]\n",
                             "      GET /pets: [pets:read, pets:write]\n      HEAD /pets: [pets:read]\n"))
    if request.param == "dynamodb":
        target = f"dynamodb://{request.getfixturevalue('table')}"
    else:
        target = f"s3://{request.getfixturevalue('bucket')}/authorizer/permissions.json"
    run(capsys, "sync", target, "--permissions", str(live))
    out = run(capsys, "sync", target, "--permissions", str(candidate), "--candidate", "--note", NOTE)
    assert out.splitlines()[-1].startswith(f"{target}: published candidate c1 (")
    yield CandidateStore(request.param, target, backend, live, candidate)


def _key(stage: str, verb: str, path: str, needs: str) -> MappingKey:
    return MappingKey(API, stage, verb, path, needs)


def test_the_authorizers_readers_see_the_live_version_and_the_candidate(store_with_candidate):
    store = store_with_candidate
    label, live, live_at = store.read()
    assert label == "v1" and live == load_desired(store.live)
    label, shadow, shadow_at = store.read(candidate=True)
    assert label == "c1" and shadow == load_desired(store.candidate)
    for stage in ("dev", "prod"):
        assert _key(stage, "DELETE", "/pets/*", "pets:admin") in live - shadow
        assert {_key(stage, "DELETE", "/pets/*", "pets:write"), _key(stage, "HEAD", "/pets", "pets:read")} \
            <= shadow - live
    assert live_at and shadow_at and shadow_at >= live_at  # ISO 8601 UTC: ordered as text too


def test_the_candidate_diff_promote_and_history(store_with_candidate, capsys):
    store = store_with_candidate
    # the same YAML again: the candidate is unchanged and nothing is written
    out = run(capsys, "sync", store.target, "--permissions", str(store.candidate), "--candidate", "--format", "json")
    assert json.loads(out)["status"] == "unchanged"

    out = run(capsys, "promote", store.target, "--dry-run")
    lines = out.splitlines()
    assert "- a1b2c3d4e5 dev DELETE /pets/* -> pets:admin" in lines
    assert "+ a1b2c3d4e5 prod HEAD /pets -> pets:read" in lines
    assert lines[-1] == f"{store.target}: dry run, would promote c1 as v2 (4 added, 2 removed, 19 unchanged)"
    assert store.read()[0] == "v1"

    out = run(capsys, "promote", store.target, "--format", "json")
    promoted = json.loads(out)
    assert (promoted["status"], promoted["version_after"], promoted["candidate"]) == ("published", 2, 1)
    label, live, _ = store.read()
    assert label == "v2" and live == load_desired(store.candidate)
    with pytest.raises(MissingStoreError):
        store.source(candidate=True).fetch(None)

    listed = json.loads(run(capsys, "rollback", store.target, "--list", "--format", "json"))
    assert [(v["version"], v["note"]) for v in listed["versions"]] == [(1, "sync " + str(store.live)),
                                                                      (2, f"promote c1: {NOTE}")]
    (entry,) = listed["candidates"]
    assert (entry["candidate"], entry["status"], entry["promoted_to"], entry["based_on"], entry["note"]) == \
        (1, "promoted", 2, 1, NOTE)


def test_discard_rollback_and_a_candidate_that_outlives_a_rollback(store_with_candidate, capsys):
    store = store_with_candidate
    out = run(capsys, "discard", store.target)
    assert out == f"{store.target}: discarded candidate c1 (23 mappings, published against v1); v1 stays\n"
    with pytest.raises(MissingStoreError):
        store.source(candidate=True).fetch(None)
    assert store.read()[0] == "v1"
    run(capsys, "discard", store.target, status=2)

    # publish a change live, then a candidate against it, then roll back: the candidate stays
    run(capsys, "sync", store.target, "--permissions", str(store.candidate))
    assert store.read()[0] == "v2"
    out = run(capsys, "sync", store.target, "--permissions", str(store.live), "--candidate")
    assert "published candidate c2" in out  # c1's number is never used again
    out = run(capsys, "rollback", store.target)
    assert out.splitlines()[-1].startswith(f"{store.target}: published v3 (")
    label, shadow, _ = store.read(candidate=True)
    assert label == "c2" and shadow == load_desired(store.live) == store.read()[1]
    # c2 was published on v2 and live is now v3, but v3 holds c2's mappings: promote has
    # nothing to publish (and nothing to refuse) and only removes the candidate
    out = run(capsys, "promote", store.target)
    assert out.splitlines()[-1] == f"{store.target}: c2 is already live as v3; candidate removed"

    out = run(capsys, "rollback", store.target, "--list")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["v1", "v2", "v3", "c1", "c2"]
    assert lines[3].endswith("[discarded, was on v1]") and lines[4].endswith("[promoted as v3, was on v2]")


def test_promote_refuses_a_candidate_judged_against_an_older_live_version(store_with_candidate, capsys):
    store = store_with_candidate
    other = store.live / "pets.yaml"
    other.write_text(other.read_text().replace("POST /pets: [pets:write]", "POST /pets: [pets:admin]"))
    run(capsys, "sync", store.target, "--permissions", str(store.live))
    capsys.readouterr()
    assert main(["promote", store.target]) == 1
    assert "moved from v1 to v2 since c1 was published" in capsys.readouterr().err
    assert store.read()[0] == "v2" and store.read(candidate=True)[0] == "c1"
    out = run(capsys, "promote", store.target, "--force")
    assert out.splitlines()[-1].startswith(f"{store.target}: promoted c1 as v3 (")
    assert store.read()[1] == load_desired(store.candidate)


# ---- the authorizer shadowing the store's candidate ----------------------------------------------------------------

def _lines(err: str, event: str) -> list[dict[str, Any]]:
    return [line for line in (json.loads(text) for text in err.splitlines() if text.startswith("{"))
            if line["event"] == event]


def _wait_for(capsys: pytest.CaptureFixture[str], event: str, seconds: float = 10.0) -> str:
    """Everything written until a line of ``event`` appears (the candidate loads on its own thread)."""
    seen, until = "", time.monotonic() + seconds
    while time.monotonic() < until:
        seen += capsys.readouterr().err
        if _lines(seen, event):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no {event} line within {seconds} s:\n{seen}")


def test_an_authorizer_shadows_the_candidate_until_it_is_promoted_or_discarded(
        store_with_candidate, make_handler, idp, capsys, monkeypatch):
    store = store_with_candidate
    env = {**store.handler_env, "PERMISSIONS_CACHE_TTL": "0.2", "AWS_LAMBDA_FUNCTION_NAME": "pets-authorizer"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the readers read credentials and endpoints when they are built
    capsys.readouterr()
    handler = make_handler(**env)
    started = _wait_for(capsys, "candidate_loaded")
    assert not _lines(started, "candidate_unavailable")

    def decide(scope: str, verb: str, path: str) -> tuple[Verdict, str]:
        event = token_event(idp.mint(scope=scope), verb, path)
        result = invoke(handler, event)
        assert result.response is not None, result.error
        return evaluate_response(result.response, event["methodArn"]), capsys.readouterr().err

    # Live v1 decides every request; c1 is judged beside it.
    verdict, err = decide("pets:write", "DELETE", "/pets/1")
    assert verdict is Verdict.IMPLICIT_DENY  # live: DELETE is pets:admin's
    (health,) = _lines(err, "health")
    assert (health["version"], health["candidate_version"]) == ("v1", "c1")
    assert 0 <= health["PermissionVersionAge"] < 600 and health["PermissionsRefreshAge"] < 600
    (line,) = [text for text in err.splitlines() if '"shadow_diff"' in text]
    assert emf_problems(line) == []
    assert metrics_of(line)["ShadowDifferences"] == (1, "Count", [["FunctionName"]], "PolicyEngine")
    diff = json.loads(line)
    assert (diff["live_version"], diff["candidate_version"], diff["live_outcome"], diff["candidate_outcome"],
            diff["route_changed"], diff["verb"], diff["path"], diff["FunctionName"]) == \
        ("v1", "c1", "deny", "allow", True, "DELETE", "/pets/1", "pets-authorizer")
    assert "DELETE/pets/*" in diff["gained"]

    verdict, err = decide("pets:admin", "DELETE", "/pets/1")
    assert verdict is Verdict.ALLOW
    (diff,) = _lines(err, "shadow_diff")
    assert (diff["live_outcome"], diff["candidate_outcome"], diff["route_changed"]) == ("allow", "deny", True)

    verdict, err = decide("pets:read", "GET", "/pets")
    assert verdict is Verdict.ALLOW
    (diff,) = _lines(err, "shadow_diff")  # the policy grows by HEAD /pets; this request's outcome does not change
    assert (diff["route_changed"], diff["gained"], diff["lost"]) == (False, ["HEAD/pets"], [])

    verdict, err = decide("store:read", "GET", "/store/inventory")
    assert verdict is Verdict.ALLOW and _lines(err, "shadow_diff") == []  # c1 does not touch this caller
    (decision,) = _lines(err, "decision")
    assert (decision["version"], decision["outcome"]) == ("v1", "allow")

    # Promote: c1 becomes v2 and decides; there is nothing left to shadow.
    run(capsys, "promote", store.target)
    time.sleep(0.3)
    verdict, err = decide("pets:write", "DELETE", "/pets/1")
    assert verdict is Verdict.ALLOW and _lines(err, "shadow_diff") == []
    assert _lines(err, "decision")[0]["version"] == "v2"

    # A new candidate that takes DELETE back, watched, then discarded.
    run(capsys, "sync", store.target, "--permissions", str(store.live), "--candidate")
    deadline, diffs = time.monotonic() + 10, []
    while not diffs and time.monotonic() < deadline:
        time.sleep(0.1)
        verdict, err = decide("pets:write", "DELETE", "/pets/1")
        assert verdict is Verdict.ALLOW  # v2 still decides
        diffs = _lines(err, "shadow_diff")
    assert [(d["live_version"], d["candidate_version"], d["candidate_outcome"]) for d in diffs] == \
        [("v2", "c2", "deny")]
    run(capsys, "discard", store.target)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        verdict, err = decide("pets:write", "DELETE", "/pets/1")
        if not _lines(err, "shadow_diff"):
            break
    else:
        raise AssertionError("the discarded candidate is still shadowed")
    assert verdict is Verdict.ALLOW

    # Roll back to v1: published as v3, and the authorizer decides with it.
    run(capsys, "rollback", store.target, "--to", "1")
    time.sleep(0.3)
    verdict, err = decide("pets:write", "DELETE", "/pets/1")
    assert verdict is Verdict.IMPLICIT_DENY and _lines(err, "decision")[0]["version"] == "v3"
