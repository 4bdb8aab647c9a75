"""Shadow evaluation: a candidate permission set judged beside the live one, never deciding.

The real handler with ``PERMISSIONS_CANDIDATE`` naming a file (what a store's candidate
is to the runtime, without a store), and the candidate cache on its own with fake
sources for the store behaviours (absent, failing, hanging).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.bootstrap import key_source
from policy_engine.cache import CandidateCache, PermissionCache
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.engine import Authorizer
from policy_engine.errors import MissingStoreError, StoreError
from policy_engine.ports import PermissionSource, RawPermissions
from policy_engine.settings import Settings
from tests.conftest import API, AUDIENCE, ROOT
from tests.request_events import event_of
from tests.support.emf import emf_problems, metrics_of


class Context:
    aws_request_id = "lambda-request-1"


def lines_of(err: str, event: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if event is None or line["event"] == event]


def call(handler: Any, event: dict[str, Any]) -> Any:
    try:
        return handler.lambda_handler(event, Context())
    except Exception as exc:  # noqa: BLE001
        return str(exc)


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    """The shipped permissions with one change: pets:read no longer reads single pets."""
    folder = tmp_path / "candidate"
    shutil.copytree(ROOT / "permissions", folder)
    pets = folder / "pets.yaml"
    text = pets.read_text()
    assert "GET /pets/*: [pets:read, pets:write, {group: pet-sitters}]" in text
    pets.write_text(text.replace("GET /pets/*: [pets:read, pets:write,", "GET /pets/*: [pets:write,"))
    return folder


def test_a_caller_the_candidate_changes_gets_one_shadow_diff_line(idp, make_handler, capsys, candidate):
    handler = make_handler(PERMISSIONS_CANDIDATE=str(candidate), AWS_LAMBDA_FUNCTION_NAME="pets-authorizer")
    capsys.readouterr()
    event = event_of("REQUEST", idp.mint(scope="pets:read"), "GET", "/pets/42")
    response = call(handler, event)
    assert evaluate_response(response, event["methodArn"]) is Verdict.ALLOW  # the live mappings decide
    err = capsys.readouterr().err
    (decision,) = lines_of(err, "decision")
    (diff,) = lines_of(err, "shadow_diff")
    assert list(diff) == ["level", "event", "ts", "aws_request_id", "request_id", "route", "principal", "api", "stage",
                          "verb", "path", "live_version", "candidate_version", "live_outcome", "candidate_outcome",
                          "route_changed", "gained", "lost", "gained_count", "lost_count", "FunctionName",
                          "ShadowDifferences", "_aws"]
    assert (diff["principal"], diff["api"], diff["stage"], diff["verb"], diff["path"]) == (
        "demo-client", API, "dev", "GET", "/pets/42")
    assert diff["live_version"] == decision["version"] != diff["candidate_version"]
    assert (diff["live_outcome"], diff["candidate_outcome"], diff["route_changed"]) == ("allow", "deny", True)
    assert (diff["gained"], diff["lost"], diff["gained_count"], diff["lost_count"]) == ([], ["GET/pets/*"], 0, 1)
    assert diff["request_id"] == event["requestContext"]["requestId"]
    (text,) = [line for line in err.splitlines() if '"shadow_diff"' in line]
    assert emf_problems(text) == []
    assert metrics_of(text)["ShadowDifferences"] == (1, "Count", [["FunctionName"]], "PolicyEngine")
    # A route the change does not reach: the policy still differs, the outcome does not.
    call(handler, event_of("REQUEST", idp.mint(scope="pets:read"), "GET", "/pets"))
    (diff,) = lines_of(capsys.readouterr().err, "shadow_diff")
    assert (diff["live_outcome"], diff["candidate_outcome"], diff["route_changed"]) == ("allow", "allow", False)


def test_a_caller_the_candidate_does_not_change_gets_none(idp, make_handler, capsys, candidate):
    handler = make_handler(PERMISSIONS_CANDIDATE=str(candidate))
    capsys.readouterr()
    for scope, verb, path in [("pets:write", "GET", "/pets/1"), ("store:read", "GET", "/store/inventory"),
                              ("email", "GET", "/pets")]:
        call(handler, event_of("TOKEN", idp.mint(scope=scope), verb, path))
    err = capsys.readouterr().err
    assert len(lines_of(err, "decision")) == 3 and lines_of(err, "shadow_diff") == []


def _without_time(line: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in line.items() if key not in ("ts", "latency_ms", "DecisionLatency", "_aws")}


@pytest.mark.parametrize("kind", ["TOKEN", "HTTP_V2"])
def test_the_live_answer_is_the_same_with_and_without_a_candidate(idp, make_handler, capsys, candidate, kind):
    plain = make_handler(PERMISSIONS_CANDIDATE="off")
    shadowed = make_handler(PERMISSIONS_CANDIDATE=str(candidate))
    capsys.readouterr()
    for scope, verb, path in [("pets:read", "GET", "/pets/42"), ("pets:read", "POST", "/pets"),
                              ("pets:write store:read", "PUT", "/pets/1"), ("email", "GET", "/pets")]:
        event = event_of(kind, idp.mint(scope=scope), verb, path)
        without = call(plain, event)
        first = lines_of(capsys.readouterr().err, "decision")
        with_candidate = call(shadowed, event)
        second = lines_of(capsys.readouterr().err, "decision")
        assert json.dumps(with_candidate) == json.dumps(without)
        assert [_without_time(line) for line in second] == [_without_time(line) for line in first]


def test_a_candidate_equal_to_the_live_mappings_is_never_evaluated(idp, make_handler, capsys, tmp_path):
    same = tmp_path / "same"
    shutil.copytree(ROOT / "permissions", same)
    handler = make_handler(PERMISSIONS_CANDIDATE=str(same))
    capsys.readouterr()
    call(handler, event_of("TOKEN", idp.mint(scope="pets:read"), "GET", "/pets/1"))
    assert lines_of(capsys.readouterr().err, "shadow_diff") == []
    loaded = handler.AUTHORIZER.candidate.peek()
    assert loaded is not None and loaded._memo == {}  # nothing was evaluated against it


def test_a_missing_or_broken_candidate_is_logged_once_and_changes_nothing(idp, make_handler, capsys, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "policy-engine/permissions@1", "nonsense": true}')
    for where in (tmp_path / "missing.yaml", broken):
        capsys.readouterr()
        # Read at start-up, then on every request (TTL 0): one warning in all.
        handler = make_handler(PERMISSIONS_CANDIDATE=str(where), PERMISSIONS_CACHE_TTL="0")
        reference = make_handler(PERMISSIONS_CANDIDATE="off")
        for _ in range(3):
            event = event_of("TOKEN", idp.mint(scope="pets:read"), "GET", "/pets/1")
            assert json.dumps(call(handler, event)) == json.dumps(call(reference, event))
        err = capsys.readouterr().err
        assert len(lines_of(err, "decision")) == 6 and lines_of(err, "shadow_diff") == []
        (warning,) = lines_of(err, "candidate_unavailable")
        assert warning["level"] == "WARN" and warning["source"] == str(where)
        assert "serving_version" not in warning  # no candidate is shadowed: left out, not null


def test_a_candidate_that_fails_inside_the_shadow_never_reaches_the_answer(idp, make_handler, capsys, candidate):
    handler = make_handler(PERMISSIONS_CANDIDATE=str(candidate))
    reference = make_handler(PERMISSIONS_CANDIDATE="off")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in shadow evaluation")

    handler.AUTHORIZER._candidate_outcome = broken  # a bug planted where a diff is judged
    capsys.readouterr()
    for _ in range(2):
        event = event_of("TOKEN", idp.mint(scope="pets:read"), "GET", "/pets/1")
        assert json.dumps(call(handler, event)) == json.dumps(call(reference, event))
    err = capsys.readouterr().err
    assert [line["error"] for line in lines_of(err, "shadow_failed")] == ["RuntimeError"]
    assert len(lines_of(err, "decision")) == 4


def test_placeholders_of_the_candidate_alone_put_claims_on_the_decision_line(idp, make_handler, capsys, tmp_path):
    live = tmp_path / "live.yaml"
    live.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n      GET /pets: [pets:read]\n")
    shadow = tmp_path / "candidate.yaml"
    shadow.write_text(live.read_text() + "      GET /tenants/{claim:tenant}/pets: [pets:read]\n")
    capsys.readouterr()
    for source, candidate_file, claims in [(live, "off", None), (live, str(shadow), {"tenant": "acme"})]:
        handler = make_handler(PERMISSIONS_SOURCE=str(source), PERMISSIONS_CANDIDATE=candidate_file)
        capsys.readouterr()
        call(handler, event_of("TOKEN", idp.mint(scope="pets:read", tenant="acme"), "GET", "/pets"))
        err = capsys.readouterr().err
        (line,) = lines_of(err, "decision")
        assert line.get("claims") == claims
    (diff,) = lines_of(err, "shadow_diff")
    assert diff["gained"] == ["GET/tenants/acme/pets"] and diff["route_changed"] is False


def test_a_placeholder_the_caller_cannot_fill_is_no_difference(idp, make_handler, capsys, tmp_path):
    # The candidate adds a tenant route; a caller without the claim gets the same policy
    # from both sets (the candidate only refused the placeholder), so no line is written.
    live = tmp_path / "live.yaml"
    live.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n      GET /pets: [pets:read]\n")
    shadow = tmp_path / "candidate.yaml"
    shadow.write_text(live.read_text() + "      GET /tenants/{claim:tenant}/pets: [pets:read]\n")
    handler = make_handler(PERMISSIONS_SOURCE=str(live), PERMISSIONS_CANDIDATE=str(shadow))
    capsys.readouterr()
    for claims in ({}, {"tenant": "a/b"}):  # no claim, and a value a placeholder refuses
        call(handler, event_of("TOKEN", idp.mint(scope="pets:read", **claims), "GET", "/pets"))
    err = capsys.readouterr().err
    assert len(lines_of(err, "decision")) == 2 and lines_of(err, "shadow_diff") == []


def test_the_candidate_words_are_read_in_any_case():
    base = {"ISSUER": "https://idp.example.com", "AUDIENCE": "a"}
    for given, read in (("OFF", "off"), ("Auto", "auto"), ("off", "off"), ("./OFF", "./OFF")):
        assert Settings.from_environ({**base, "PERMISSIONS_CANDIDATE": given}).permissions_candidate == read


def test_a_store_value_for_the_candidate_setting_is_refused():
    from policy_engine.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({"ISSUER": "https://idp.example.com", "AUDIENCE": "a",
                               "PERMISSIONS_CANDIDATE": "dynamodb://other"})
    assert info.value.variable == "PERMISSIONS_CANDIDATE"


def test_auto_looks_for_a_candidate_beside_a_store_only():
    from policy_engine.bootstrap import candidate_cache

    base = {"ISSUER": "https://idp.example.com", "AUDIENCE": "a", "AWS_REGION": "us-east-1"}
    assert candidate_cache(Settings.from_environ(base)) is None
    assert candidate_cache(Settings.from_environ({**base, "PERMISSIONS_CANDIDATE": "off",
                                                  "PERMISSIONS_SOURCE": "dynamodb://t"})) is None
    found = candidate_cache(Settings.from_environ({**base, "PERMISSIONS_SOURCE": "dynamodb://t"}))
    assert found is not None and found.description == "dynamodb://t (candidate)"


# The candidate cache on its own.

RECORD = {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "a"}


class Scripted:
    """A source that answers what it is told to, and counts its calls."""

    description = "scripted"

    def __init__(self) -> None:
        self.answer: Any = MissingStoreError("no candidate")
        self.calls = 0
        self.gate: threading.Event | None = None

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _raw(version: str) -> RawPermissions:
    return RawPermissions([RECORD], lambda path: f"record {path}", version, version)


def test_no_candidate_is_quiet_and_asked_again_after_the_ttl(capsys):
    now = [0.0]
    source = Scripted()
    cache = CandidateCache(lambda: source, "scripted", ttl=60, max_stale=900, background=False, clock=lambda: now[0])
    assert cache.get() is None and source.calls == 1
    now[0] = 59
    assert cache.get() is None and source.calls == 1
    now[0] = 60
    source.answer = _raw("c1")
    assert cache.get() is not None and cache.get().version == "c1" and source.calls == 2
    now[0] = 120
    source.answer = MissingStoreError("discarded")
    assert cache.get() is None
    events = [line["event"] for line in lines_of(capsys.readouterr().err)]
    assert events == ["candidate_loaded", "candidate_removed"]


def test_a_failing_candidate_is_logged_once_per_failure_and_served_within_max_stale(capsys):
    now = [0.0]
    source = Scripted()
    source.answer = _raw("c1")
    cache = CandidateCache(lambda: source, "scripted", ttl=10, max_stale=100, background=False, clock=lambda: now[0])
    assert cache.get().version == "c1"
    source.answer = StoreError("throttled")
    for now[0] in (10, 20, 30, 100):
        assert cache.get().version == "c1"
    now[0] = 101
    assert cache.get() is None  # past max_stale
    source.answer = _raw("c1")
    now[0] = 111
    assert cache.get().version == "c1"
    source.answer = StoreError("throttled again")
    now[0] = 121
    cache.get()
    warnings = lines_of(capsys.readouterr().err, "candidate_unavailable")
    assert [(w["error"], w["serving_version"]) for w in warnings] == [("store_unavailable", "c1")] * 2


def test_a_reader_that_cannot_be_built_is_a_candidate_failure_not_a_failed_start(capsys):
    def unbuildable() -> PermissionSource:
        raise TypeError("unexpected keyword argument 'candidate'")

    cache = CandidateCache(unbuildable, "store (candidate)", ttl=10, max_stale=100, background=False)
    assert cache.get() is None
    (warning,) = lines_of(capsys.readouterr().err, "candidate_unavailable")
    assert warning["error"] == "internal_error"


def test_a_hanging_candidate_store_never_holds_a_request(idp, capsys):
    source = Scripted()
    source.gate = threading.Event()
    source.answer = _raw("c1")
    candidate = CandidateCache(lambda: source, "scripted", ttl=3600, max_stale=3600, background=True)
    settings_ = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri})
    live = PermissionCache(MemoryPermissionSource([{**RECORD, "resource": "/pets/*"}]), ttl=3600, max_stale=3600)
    authorizer = Authorizer(settings_, keys=key_source(settings_), permissions=live, candidate=candidate)
    try:
        started = time.monotonic()
        for _ in range(3):
            answer = authorizer.answer(event_of("TOKEN", idp.mint(scope="a"), "GET", "/pets/1"))
            authorizer.shadow(answer)
        assert time.monotonic() - started < 2 and source.calls == 1  # one load, in flight
        assert candidate.get() is None
    finally:
        source.gate.set()
    assert candidate.wait(5)
    answer = authorizer.answer(event_of("TOKEN", idp.mint(scope="a"), "GET", "/pets/1"))
    capsys.readouterr()
    authorizer.shadow(answer)
    (diff,) = lines_of(capsys.readouterr().err, "shadow_diff")
    assert (diff["live_outcome"], diff["candidate_outcome"], diff["lost"]) == ("allow", "deny", ["GET/pets/*"])
    assert diff["gained"] == ["GET/pets"] and diff["candidate_version"] == "c1"


def test_a_warm_repeated_caller_is_compared_once(idp, capsys):
    settings_ = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri})
    live = PermissionCache(MemoryPermissionSource([RECORD]), ttl=3600, max_stale=3600)
    source = Scripted()
    source.answer = _raw("c1")
    source.answer = RawPermissions([RECORD, {**RECORD, "httpVerb": "POST"}], lambda path: "x", "c1", "c1")
    candidate = CandidateCache(lambda: source, "scripted", ttl=3600, max_stale=3600, background=False)
    authorizer = Authorizer(settings_, keys=key_source(settings_), permissions=live, candidate=candidate)
    for _ in range(3):
        authorizer.shadow(authorizer.answer(event_of("TOKEN", idp.mint(scope="a"), "GET", "/pets")))
    diffs = lines_of(capsys.readouterr().err, "shadow_diff")
    assert [(d["gained"], d["route_changed"]) for d in diffs] == [(["POST/pets"], False)] * 3
    assert len(authorizer._differences) == 1  # one comparison for the three requests
