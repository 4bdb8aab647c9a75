"""The S3 snapshot store against moto's S3 (moto is the S3 peer; see local-aws-endpoints.md)."""

from __future__ import annotations

import json

import pytest

from policy_engine.adapters.s3 import S3PermissionSource
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import keys_of
from policy_engine.errors import ConfigurationError, ConflictError, CorruptStoreError, MissingStoreError
from policy_engine.publish import history, load_desired, rollback, sync
from tests.faults import FaultyClient, write_permissions
from tests.stores import ROOT

pytestmark = pytest.mark.parametrize("backend", ["moto"], indirect=True)


def test_publish_then_a_warm_reader_revalidates_without_downloading(bucket, backend, tmp_path):
    target = f"s3://{bucket}/authorizer/permissions.json"
    result = sync(ROOT / "permissions", target)
    assert result.published and result.write_requests == 2  # history copy + the object

    client = backend.client("s3")
    statuses: list[int] = []
    client.meta.events.register("after-call.s3.GetObject",
                                lambda http_response, **_: statuses.append(http_response.status_code))
    source = S3PermissionSource(target, client=client)
    raw = source.fetch(None)
    assert raw is not None and raw.version == "v1"
    loaded = compile_records(raw.records, raw.locate, version=raw.version)
    assert keys_of(loaded) == load_desired(ROOT / "permissions")
    assert source.fetch(raw.etag) is None
    assert statuses == [200, 304]  # the second GET carried If-None-Match and got no body

    assert sync(ROOT / "permissions", target).write_requests == 0
    edited = write_permissions(tmp_path / "edited.yaml", [("GET", "/x", "s")])
    assert sync(edited, target).version_after == 2
    raw2 = source.fetch(raw.etag)
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
