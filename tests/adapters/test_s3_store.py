"""The S3 snapshot store against moto's S3 (moto serves S3 on loopback; DynamoDB Local has no S3)."""

from __future__ import annotations

import contextlib
import json

import pytest
from botocore.exceptions import ClientError

from policy_engine.adapters.s3 import S3PermissionSource, encode_snapshot
from policy_engine.admin.publish import history, load_desired, rollback, sync
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import digest, keys_of
from policy_engine.errors import (
    ConfigurationError,
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    PolicyEngineError,
)
from tests.faults import Crash, FaultyClient, aws_error, write_permissions
from tests.store_endpoints import fake_store_endpoint
from tests.stores import CREDENTIALS, ROOT

pytestmark = pytest.mark.parametrize("backend", ["moto"], indirect=True)


def test_publish_then_a_warm_reader_revalidates_without_downloading(bucket, backend, tmp_path):
    target = f"s3://{bucket}/authorizer/permissions.json"
    result = sync(ROOT / "permissions", target)
    assert result.published and result.write_requests == 2  # history copy + the object

    with fake_store_endpoint("forward", upstream=backend.s3) as endpoint:
        source = S3PermissionSource(target, environ={**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint.url})
        raw = source.fetch(None)
        assert raw is not None and raw.version == "v1"
        loaded = compile_records(raw.records, raw.locate, version=raw.version)
        assert keys_of(loaded) == load_desired(ROOT / "permissions")
        assert source.fetch(raw.etag) is None
        assert endpoint.statuses == [200, 304]  # the second GET carried If-None-Match and got no body

    assert sync(ROOT / "permissions", target).write_requests == 0
    edited = write_permissions(tmp_path / "edited.yaml", [("GET", "/x", "s")])
    assert sync(edited, target).version_after == 2
    raw2 = S3PermissionSource(target).fetch(raw.etag)
    assert raw2 is not None and raw2.version == "v2" and len(raw2.records) == 1


def test_concurrent_publish_loses_with_a_conflict_and_nothing_is_lost(bucket, backend, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target)
    mine = write_permissions(tmp_path / "mine.yaml", [("GET", "/mine", "s")])
    theirs = write_permissions(tmp_path / "theirs.yaml", [("GET", "/theirs", "s")])

    def they_publish_first(n, kwargs, real):
        if kwargs["Key"] == "p.json":
            sync(theirs, target)

    faulty = FaultyClient(backend.client("s3"), put_object=they_publish_first)
    with pytest.raises(ConflictError, match="another publish changed the object"):
        sync(mine, target, client=faulty)
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and raw.version == "v2" and [r["resource"] for r in raw.records] == ["/theirs"]
    assert sync(mine, target).version_after == 3


def test_rollback_restores_an_earlier_snapshot_as_a_new_version(bucket, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "p.yaml", [("GET", "/one", "s")]), target)
    sync(write_permissions(tmp_path / "p.yaml", [("GET", "/two", "s")]), target)
    result = rollback(target)
    assert result.version_after == 3 and result.plan.lines() == ["+ a1b2c3d4e5 dev GET /one -> s",
                                                                  "- a1b2c3d4e5 dev GET /two -> s"]
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and raw.version == "v3" and [r["resource"] for r in raw.records] == ["/one"]
    assert [e["note"] for e in history(target)][-1] == "rollback to v1"


def test_a_corrupt_or_foreign_object_is_refused_by_reader_and_sync(bucket, backend, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")]), target)
    client = backend.client("s3")
    document = json.loads(client.get_object(Bucket=bucket, Key="p.json")["Body"].read())
    document["mappings"][0]["resource"] = "/*"  # widened by hand
    client.put_object(Bucket=bucket, Key="p.json", Body=json.dumps(document).encode())
    with pytest.raises(CorruptStoreError, match="does not match its digest"):
        S3PermissionSource(target).fetch(None)
    with pytest.raises(CorruptStoreError):
        sync(write_permissions(tmp_path / "q.yaml", [("GET", "/b", "s")]), target)
    client.put_object(Bucket=bucket, Key="p.json", Body=b"<html>not json</html>")
    with pytest.raises(CorruptStoreError, match="not JSON"):
        S3PermissionSource(target).fetch(None)


def test_missing_bucket_and_missing_object(backend, bucket, tmp_path):
    with pytest.raises(MissingStoreError, match="does not exist"):
        S3PermissionSource("s3://no-such-bucket-here/p.json").fetch(None)
    with pytest.raises(MissingStoreError, match="NoSuchKey"):
        S3PermissionSource(f"s3://{bucket}/never-published.json").fetch(None)
    with pytest.raises(MissingStoreError, match="NoSuchBucket"):
        sync(write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")]), "s3://no-such-bucket-here/p.json")


@pytest.mark.parametrize("location", ["s3://", "s3://bucket", "s3://bucket/", "s3://Bad_Bucket/key"])
def test_malformed_locations_name_the_variable(location, backend):
    with pytest.raises(ConfigurationError, match="PERMISSIONS_SOURCE"):
        S3PermissionSource(location)


def _digest_of(path):
    return digest(load_desired(path))


def test_a_publish_that_loses_the_race_never_writes_the_winners_history(bucket, backend, tmp_path):
    # GIVEN v1, and X (mine) that has read v1 when Y (theirs) publishes v2 completely
    target = f"s3://{bucket}/p.json"
    one = write_permissions(tmp_path / "one.yaml", [("GET", "/one", "s")])
    mine = write_permissions(tmp_path / "mine.yaml", [("GET", "/mine", "s")])
    theirs = write_permissions(tmp_path / "theirs.yaml", [("GET", "/theirs", "s")])
    sync(one, target)

    def they_publish_before_my_first_write(n, kwargs, real):
        if n == 1:
            sync(theirs, target)

    faulty = FaultyClient(backend.client("s3"), put_object=they_publish_before_my_first_write)
    # WHEN X goes on with what it read and loses
    with pytest.raises(ConflictError, match="another publish changed the object"):
        sync(mine, target, client=faulty)

    # THEN the history holds only what was published: Y's v2, restorable as such
    assert [(e["version"], e["digest"]) for e in history(target)] == [(1, _digest_of(one)), (2, _digest_of(theirs))]
    client = backend.client("s3")
    copy = json.loads(client.get_object(Bucket=bucket, Key="p.json.history/0000000002.json")["Body"].read())
    assert [m["resource"] for m in copy["mappings"]] == ["/theirs"]
    sync(write_permissions(tmp_path / "three.yaml", [("GET", "/three", "s")]), target)
    assert rollback(target, to=2).version_after == 4
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and raw.version == "v4" and [r["resource"] for r in raw.records] == ["/theirs"]


def _published_v1_to_v3(bucket, tmp_path):
    target = f"s3://{bucket}/p.json"
    for name in ("one", "two", "three"):
        sync(write_permissions(tmp_path / f"{name}.yaml", [("GET", f"/{name}", "s")]), target)
    return target


@pytest.mark.parametrize("edit", ["an unknown field", "based_on"])
def test_an_object_the_authorizers_refuse_is_not_built_on_as_unchanged(bucket, backend, tmp_path, edit):
    # Edits that keep the digest: the authorizers refuse the object, and so does sync
    # (an "unchanged" answer would leave every authorizer failing closed).
    target = f"s3://{bucket}/p.json"
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s"), ("GET", "/b", "s")])
    sync(yaml_file, target)
    s3 = backend.client("s3")
    document = json.loads(s3.get_object(Bucket=bucket, Key="p.json")["Body"].read())
    if edit == "based_on":
        document["based_on"] = 1
    else:
        document["mappings"][0]["extra"] = "x"
    s3.put_object(Bucket=bucket, Key="p.json", Body=json.dumps(document).encode())
    with pytest.raises(PolicyEngineError) as runtime:
        raw = S3PermissionSource(target).fetch(None)
        assert raw is not None
        compile_records(raw.records, raw.locate, version=raw.version)
    with pytest.raises(PolicyEngineError) as publishing:
        sync(yaml_file, target)
    expected = "holds a candidate, not a published version" if edit == "based_on" else "unknown field 'extra'"
    assert expected in str(runtime.value) and expected in str(publishing.value)
    # What recovery needs still works: the list, and --repair publishing the YAML over it.
    assert [entry["version"] for entry in history(target) if not entry.get("candidate")] == [1]
    repaired = sync(yaml_file, target, repair=True)
    assert repaired.completed and not repaired.published and repaired.version_after == 1
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and raw.version == "v1"
    compile_records(raw.records, raw.locate, version=raw.version)
    assert "sync --repair" in str(publishing.value)


def test_a_planted_history_copy_is_refused_by_rollback_naming_version_and_key(bucket, backend, tmp_path):
    target = _published_v1_to_v3(bucket, tmp_path)
    planted = load_desired(write_permissions(tmp_path / "evil.yaml", [("GET", "/*", "s")]))
    # A well-formed snapshot whose own digest checks out: only the record of what was
    # published as v2 can tell it apart.
    body = encode_snapshot(2, planted, "sync permissions", "2026-01-01T00:00:00+00:00")
    backend.client("s3").put_object(Bucket=bucket, Key="p.json.history/0000000002.json", Body=body)

    for version in (2, 1):  # v1 is checked through v2's copy, which can no longer vouch for it
        with pytest.raises(CorruptStoreError) as refused:
            rollback(target, to=version)
        message = str(refused.value)
        assert f"s3://{bucket}/p.json.history/0000000002.json" in message and "v2" in message, message
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and raw.version == "v3" and [r["resource"] for r in raw.records] == ["/three"]
    listed = {e["version"]: e for e in history(target)}
    assert listed[2]["digest"] == _digest_of(tmp_path / "two.yaml") and "not restorable" in listed[2]["note"]
    assert listed[3]["digest"] == _digest_of(tmp_path / "three.yaml")


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_publisher_killed_between_its_writes_never_costs_a_published_version(bucket, backend, tmp_path,
                                                                              crash_at, when):
    # Whichever write the publisher dies at (before it reaches S3, or right after S3
    # took it): the history never holds unpublished mappings, and every version that
    # was published can be rolled back to once the next publish has run.
    target = f"s3://{bucket}/p.json"
    paths = {name: write_permissions(tmp_path / f"{name}.yaml", [("GET", f"/{name}", "s")])
             for name in ("one", "two", "three")}
    sync(paths["one"], target)

    def die(n, kwargs, real):
        if n == crash_at:
            if when == "after":
                real(**kwargs)
            raise Crash(kwargs["Key"])

    with contextlib.suppress(Crash):
        sync(paths["two"], target, client=FaultyClient(backend.client("s3"), put_object=die))
    live = S3PermissionSource(target).fetch(None)
    assert live is not None
    published = ["one"] if live.version == "v1" else ["one", "two"]
    sync(paths["three"], target)
    published.append("three")

    client = backend.client("s3")
    listing = client.list_objects_v2(Bucket=bucket, Prefix="p.json.history/")
    for item in listing.get("Contents", []):
        copy = json.loads(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
        assert copy["digest"] == _digest_of(paths[published[copy["version"] - 1]]), item["Key"]
    assert [e["digest"] for e in history(target)] == [_digest_of(paths[name]) for name in published]
    for version, name in enumerate(published[:-1], 1):
        result = rollback(target, to=version)
        raw = S3PermissionSource(target).fetch(None)
        assert raw is not None and raw.version == f"v{result.version_after}"
        assert [r["resource"] for r in raw.records] == [f"/{name}"]
        published.append(name)


def test_a_publisher_without_list_bucket_rights_still_keeps_the_history(bucket, backend, tmp_path):
    # Without s3:ListBucket, S3 answers AccessDenied (not NoSuchKey) for a missing object.
    target = f"s3://{bucket}/p.json"
    paths = [write_permissions(tmp_path / f"{n}.yaml", [("GET", f"/{n}", "s")]) for n in ("one", "two", "three")]

    def no_list_bucket(n, kwargs, real):
        try:
            return real(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchKey":
                raise aws_error("AccessDenied", "GetObject", "Access Denied", 403) from None
            raise

    def client(**hooks):
        return FaultyClient(backend.client("s3"), get_object=no_list_bucket, **hooks)

    sync(paths[0], target)  # (reading a live object that does not exist yet needs the right too)

    def die_after_the_object(n, kwargs, real):
        real(**kwargs)
        if kwargs["Key"] == "p.json":
            raise Crash("after the object, before its copy")

    with pytest.raises(Crash):
        sync(paths[1], target, client=client(put_object=die_after_the_object))
    assert sync(paths[2], target, client=client()).version_after == 3  # writes v2's missing copy first
    assert rollback(target, to=2, client=client()).version_after == 4
    raw = S3PermissionSource(target).fetch(None)
    assert raw is not None and [r["resource"] for r in raw.records] == ["/two"]
