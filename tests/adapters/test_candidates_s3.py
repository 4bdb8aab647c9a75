"""Candidates in S3 (``KEY.candidate``): sync --candidate, promote, discard, history, and the reader (moto)."""

from __future__ import annotations

import datetime
import json

import pytest

from policy_engine.adapters.s3 import S3PermissionSource, encode_snapshot
from policy_engine.admin.publish import discard, history, load_desired, promote, rollback, sync
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, keys_of
from policy_engine.errors import ConflictError, CorruptStoreError, MissingStoreError, StoreTooLargeError
from tests.candidates import check_a_discard_that_loses_to_a_promote, publish_live_and_candidate
from tests.faults import Crash, FaultyClient, aws_error, many_routes, write_permissions
from tests.store_endpoints import S3_DENIED, fake_store_endpoint
from tests.stores import CREDENTIALS

pytestmark = pytest.mark.parametrize("backend", ["moto"], indirect=True)

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def key(verb: str, path: str, scope: str) -> MappingKey:
    return MappingKey(API, "dev", verb, path, scope)


def read(target: str, *, candidate: bool = False, **options):
    raw = S3PermissionSource(target, candidate=candidate, **options).fetch(None)
    assert raw is not None
    return raw, keys_of(compile_records(raw.records, raw.locate, version=raw.version))


@pytest.fixture
def live_and_candidate(bucket, tmp_path):
    """v1 live with /a and /b; candidate c1 drops /b and adds /c."""
    return publish_live_and_candidate(f"s3://{bucket}/authorizer/p.json", tmp_path)


def test_no_candidate_object_is_missing_for_the_reader(bucket, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")]), target)
    with pytest.raises(MissingStoreError):
        S3PermissionSource(target, candidate=True).fetch(None)


def test_a_role_without_list_rights_sees_a_missing_candidate_as_missing(bucket, tmp_path):
    # Without s3:ListBucket, S3 answers a missing object with 403 AccessDenied.
    target = f"s3://{bucket}/p.json"
    with fake_store_endpoint("error", error_response=S3_DENIED) as endpoint:
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint.url}
        with pytest.raises(MissingStoreError, match="no candidate published"):
            S3PermissionSource(target, candidate=True, environ=env).fetch(None)
        with pytest.raises(Exception, match="access refused") as live:
            S3PermissionSource(target, environ=env).fetch(None)
        assert not isinstance(live.value, MissingStoreError)  # the live source must never read "missing" there


def test_the_candidate_is_published_beside_the_live_object_and_read_with_its_label(backend, bucket,
                                                                                  live_and_candidate):
    target, _, _, result = live_and_candidate
    assert result.published and result.candidate == 1 and result.version_after == 1
    assert result.plan.lines() == ["- a1b2c3d4e5 dev GET /b -> s:read", "+ a1b2c3d4e5 dev GET /c -> s:read"]
    live_raw, live_keys = read(target)
    assert live_raw.version == "v1" and key("GET", "/b", "s:read") in live_keys
    raw, keys = read(target, candidate=True)
    assert raw.version == "c1" and keys == {key("GET", "/a", "s:read"), key("GET", "/c", "s:read")}
    for got in (live_raw, raw):
        assert got.published_at is not None
        assert abs(datetime.datetime.now(datetime.UTC)
                   - datetime.datetime.fromisoformat(got.published_at)).total_seconds() < 120
    stored = json.loads(backend.client("s3").get_object(Bucket=bucket, Key="authorizer/p.json.candidate")["Body"]
                        .read())
    assert stored["version"] == 1 and stored["based_on"] == 1 and stored["note"] == "PR 43"


def test_no_candidate_after_discard_is_asked_about_without_a_download(backend, live_and_candidate):
    target, _, _, _ = live_and_candidate
    discard(target)
    with fake_store_endpoint("forward", upstream=backend.s3) as endpoint:
        source = S3PermissionSource(target, candidate=True,
                                    environ={**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint.url})
        for _ in range(2):
            with pytest.raises(MissingStoreError, match="no candidate published"):
                source.fetch(None)
        assert endpoint.statuses == [200, 304]  # the "no candidate" document once, then If-None-Match


def test_replacing_numbers_and_unchanged(bucket, live_and_candidate, tmp_path):
    target, _, shadow, _ = live_and_candidate
    same = sync(shadow, target, candidate=True)
    assert same.same_candidate and same.write_requests == 0
    other = write_permissions(tmp_path / "other.yaml", [("GET", "/d", "s:read")])
    second = sync(other, target, candidate=True)
    assert (second.candidate, second.replaced) == (2, 1) and "replaced c1" in second.describe()
    assert read(target, candidate=True)[0].version == "c2"
    discard(target)
    assert sync(shadow, target, candidate=True).candidate == 3
    statuses = [(e["version"], e["status"]) for e in history(target) if e.get("candidate")]
    assert statuses == [(1, "replaced"), (2, "discarded"), (3, "candidate")]


def test_two_candidate_publishes_at_once_one_lands(backend, bucket, live_and_candidate, tmp_path):
    target, _, _, _ = live_and_candidate
    mine = write_permissions(tmp_path / "mine.yaml", [("GET", "/mine", "s")])
    theirs = write_permissions(tmp_path / "theirs.yaml", [("GET", "/theirs", "s")])

    def they_publish_first(n, kwargs, real):
        if kwargs["Key"].endswith(".candidate") and n <= 2:
            sync(theirs, target, candidate=True)

    with pytest.raises(ConflictError, match="the candidate changed meanwhile"):
        sync(mine, target, candidate=True, client=FaultyClient(backend.client("s3"), put_object=they_publish_first))
    raw, keys = read(target, candidate=True)
    assert raw.version == "c2" and keys == {key("GET", "/theirs", "s")}


def test_rollback_and_live_syncs_leave_the_candidate_alone(live_and_candidate):
    target, live, _, _ = live_and_candidate
    write_permissions(live, [("GET", "/x", "s:read")])
    sync(live, target)
    rollback(target)
    assert read(target)[0].version == "v3" and read(target, candidate=True)[0].version == "c1"


def test_promote_refused_forced_and_finished_after_a_crash(backend, bucket, live_and_candidate, tmp_path):
    target, live, shadow, _ = live_and_candidate
    dry = promote(target, dry_run=True)
    assert dry.status == "dry_run" and read(target)[0].version == "v1"

    def die_on_record(n, kwargs, real):
        if ".candidate.history/" in kwargs["Key"]:
            raise Crash("process died after the flip")

    with pytest.raises(Crash):
        promote(target, client=FaultyClient(backend.client("s3"), put_object=die_on_record))
    assert read(target)[0].version == "v2" and read(target, candidate=True)[0].version == "c1"
    again = promote(target)
    assert again.status == "completed" and again.version_after == 2 and again.candidate_removed
    with pytest.raises(MissingStoreError):
        S3PermissionSource(target, candidate=True).fetch(None)
    assert read(target)[1] == load_desired(shadow)
    notes = [e["note"] for e in history(target) if not e.get("candidate")]
    assert notes[-1] == "promote c1: PR 43"
    (record,) = [e for e in history(target) if e.get("candidate")]
    assert (record["status"], record["promoted_to"], record["based_on"]) == ("promoted", 2, 1)

    # a new candidate on v2, then live moves to v3: refused unless forced
    sync(write_permissions(tmp_path / "next.yaml", [("GET", "/next", "s")]), target, candidate=True)
    sync(live, target)
    with pytest.raises(ConflictError, match="moved from v2 to v3 since c2"):
        promote(target)
    assert promote(target, force=True).version_after == 4
    assert read(target)[1] == {key("GET", "/next", "s")}
    with pytest.raises(MissingStoreError, match="no candidate to promote"):
        promote(target)


def test_a_damaged_or_misplaced_candidate_is_refused(backend, bucket, live_and_candidate, tmp_path):
    target, _, _, _ = live_and_candidate
    client = backend.client("s3")
    document = json.loads(client.get_object(Bucket=bucket, Key="authorizer/p.json.candidate")["Body"].read())
    document["mappings"][0]["resource"] = "/*"
    client.put_object(Bucket=bucket, Key="authorizer/p.json.candidate", Body=json.dumps(document).encode())
    with pytest.raises(CorruptStoreError, match="does not match its digest"):
        S3PermissionSource(target, candidate=True).fetch(None)
    with pytest.raises(CorruptStoreError):
        promote(target)
    assert read(target)[0].version == "v1"

    # a version where the candidate belongs, and a candidate where the version belongs
    body = encode_snapshot(1, load_desired(write_permissions(tmp_path / "x.yaml", [("GET", "/x", "s")])), "", "")
    client.put_object(Bucket=bucket, Key="authorizer/p.json.candidate", Body=body)
    with pytest.raises(CorruptStoreError, match="a version, not a candidate"):
        S3PermissionSource(target, candidate=True).fetch(None)
    candidate_body = encode_snapshot(1, frozenset(), "", "", based_on=1)
    client.put_object(Bucket=bucket, Key="authorizer/p.json", Body=candidate_body)
    with pytest.raises(CorruptStoreError, match="a candidate, not a published version"):
        S3PermissionSource(target).fetch(None)


def test_a_candidate_larger_than_the_cap_is_refused(bucket, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target)
    sync(write_permissions(tmp_path / "b.yaml", many_routes(200)), target, candidate=True)
    with pytest.raises(StoreTooLargeError, match=r"p\.json\.candidate is "):
        S3PermissionSource(target, candidate=True, max_bytes=2000).fetch(None)
    assert S3PermissionSource(target, max_bytes=2000).fetch(None) is not None


def test_discard_and_a_discard_that_loses_a_race(backend, bucket, live_and_candidate, tmp_path):
    target, _, _, _ = live_and_candidate
    other = write_permissions(tmp_path / "other.yaml", [("GET", "/d", "s")])

    def they_replace_it_first(n, kwargs, real):
        if kwargs["Key"].endswith(".candidate") and n == 2:
            sync(other, target, candidate=True)

    with pytest.raises(ConflictError, match="changed meanwhile"):
        discard(target, client=FaultyClient(backend.client("s3"), put_object=they_replace_it_first))
    assert read(target, candidate=True)[0].version == "c2"  # the newer candidate stays
    result = discard(target)
    assert result.candidate.number == 2 and result.live_version == 1
    with pytest.raises(MissingStoreError, match="no candidate to discard"):
        discard(target)
    assert read(target)[0].version == "v1"


def test_a_publisher_without_list_rights_publishes_the_first_candidate(backend, bucket, tmp_path):
    # Without s3:ListBucket, S3 answers the missing KEY.candidate with 403 AccessDenied.
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target)

    def denied_when_missing(n, kwargs, real):
        try:
            return real(**kwargs)
        except Exception as exc:
            if "NoSuchKey" in str(exc):
                raise aws_error("AccessDenied", "GetObject", status=403) from None
            raise

    faulty = FaultyClient(backend.client("s3"), get_object=denied_when_missing)
    result = sync(write_permissions(tmp_path / "c.yaml", [("GET", "/c", "s")]), target, candidate=True, client=faulty)
    assert result.candidate == 1 and read(target, candidate=True)[0].version == "c1"


def test_a_discard_that_loses_to_a_promote_neither_ends_the_candidate_nor_rewrites_its_record(live_and_candidate):
    check_a_discard_that_loses_to_a_promote(live_and_candidate[0])
