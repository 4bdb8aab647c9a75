"""The authorizer's cold load from a table: a few compressed parts, proven by hash and digest.

On moto and DynamoDB Local (which reports consumed capacity as AWS counts it).
"""

from __future__ import annotations

import lzma

import pytest

from policy_engine.adapters.dynamodb import PART_BYTES, DynamoDbPermissionSource
from policy_engine.admin.publish import load_desired, sync
from policy_engine.admin.publish.dynamodb import DynamoDbStore
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import keys_of
from policy_engine.errors import CorruptStoreError, StoreError
from tests.faults import many_routes, write_permissions
from tests.store_endpoints import fake_store_endpoint
from tests.stores import CREDENTIALS


def part_items(backend, table: str) -> list[dict]:
    items = backend.client().scan(TableName=table)["Items"]
    return sorted((i for i in items if i["pk"]["S"].startswith("SNAPSHOT#")), key=lambda i: (i["sk"]["S"],
                                                                                             i["pk"]["S"]))


def published_parts(backend, table: str) -> list[dict]:
    pointer = DynamoDbStore(table).read_pointer(consistent=True)
    assert pointer.snapshot is not None
    return [i for i in part_items(backend, table) if i["sk"]["S"] == pointer.snapshot.sort_key]


@pytest.mark.parametrize("backend", ["dynamodb-local"], indirect=True)
def test_a_cold_load_of_2000_mappings_is_two_requests_and_a_few_read_units(table, backend, tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(2000))
    sync(yaml_file, f"dynamodb://{table}")
    with fake_store_endpoint("forward", upstream=backend.dynamodb) as endpoint:
        source = DynamoDbPermissionSource(table, environ={**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url})
        raw = source.fetch(None)
        assert raw is not None and len(raw.records) == 2000
        assert endpoint.operations == ["GetItem", "BatchGetItem"]
        cold = source.read_units
        assert source.fetch(raw.etag) is None
        warm = source.read_units
    # Paging the mappings partition read every item of it: about 57 units for 2,000 mappings.
    print(f"2,000 mappings: cold load {cold} read units (eventually consistent), warm check {warm}")
    assert cold <= 2.0 and warm == 0.5
    assert keys_of(compile_records(raw.records, raw.locate)) == load_desired(yaml_file)


def test_a_version_is_split_into_parts_that_each_stay_under_the_part_size(table, backend, tmp_path):
    # Paths that do not repeat (hex digests) compress poorly: several parts
    import hashlib

    routes = [("GET", f"/{hashlib.sha256(str(n).encode()).hexdigest()[:40]}", "s") for n in range(1200)]
    yaml_file = write_permissions(tmp_path / "p.yaml", routes)
    sync(yaml_file, f"dynamodb://{table}")
    parts = published_parts(backend, table)
    assert len(parts) >= 2 and all(len(p["data"]["B"]) <= PART_BYTES for p in parts)
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and keys_of(compile_records(raw.records, raw.locate)) == load_desired(yaml_file)


def test_a_part_edited_or_deleted_by_hand_never_loads_and_an_unchanged_sync_rewrites_it(table, backend, tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(50))
    sync(yaml_file, f"dynamodb://{table}")
    client = backend.client()
    (part,) = published_parts(backend, table)
    data = bytearray(part["data"]["B"])
    data[len(data) // 2] ^= 0x20
    client.put_item(TableName=table, Item={**part, "data": {"B": bytes(data)}})
    with pytest.raises(CorruptStoreError, match=r"v1: its snapshot .* does not match the SHA-256"):
        DynamoDbPermissionSource(table).fetch(None)

    repaired = sync(yaml_file, f"dynamodb://{table}")
    assert repaired.completed and not repaired.published and "wrote its missing or damaged snapshot" in \
        repaired.describe()
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and raw.version == "v1" and len(raw.records) == 50

    (part,) = published_parts(backend, table)
    client.delete_item(TableName=table, Key={"pk": part["pk"], "sk": part["sk"]})
    with pytest.raises(CorruptStoreError, match="is missing or does not match"):
        DynamoDbPermissionSource(table).fetch(None)
    assert sync(yaml_file, f"dynamodb://{table}").completed
    assert sync(yaml_file, f"dynamodb://{table}").write_requests == 0  # intact now: nothing to write


def test_a_mapping_edited_past_the_schema_with_a_matching_hash_is_rewritten_by_an_unchanged_sync(table, backend,
                                                                                                     tmp_path):
    # The hand edit keeps the digest (an unknown member is no part of a mapping's key) and
    # fixes up the SHA-256 and size: only the schema check refuses it, at load and at sync.
    import hashlib
    import json

    from policy_engine.errors import PermissionsError

    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(20))
    sync(yaml_file, f"dynamodb://{table}")
    client = backend.client()
    (part,) = published_parts(backend, table)
    document = json.loads(lzma.decompress(part["data"]["B"]))
    document["mappings"][0]["x"] = 1
    edited = json.dumps(document).encode()
    packed = lzma.compress(edited, format=lzma.FORMAT_XZ)
    client.put_item(TableName=table, Item={**part, "data": {"B": packed}})
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="SET snapshot_sha256 = :h, snapshot_bytes = :b",
                       ExpressionAttributeValues={":h": {"S": "sha256:" + hashlib.sha256(packed).hexdigest()},
                                                  ":b": {"N": str(len(edited))}})
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None
    with pytest.raises(PermissionsError, match="x"):
        compile_records(raw.records, raw.locate)

    repaired = sync(yaml_file, f"dynamodb://{table}")
    assert repaired.completed and not repaired.published
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and raw.version == "v1" and len(raw.records) == 20
    compile_records(raw.records, raw.locate)  # loads


def test_a_recorded_size_edited_by_hand_is_named_and_an_unchanged_sync_rewrites_the_snapshot(table, backend,
                                                                                             tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(20))
    sync(yaml_file, f"dynamodb://{table}")
    client = backend.client()
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="SET snapshot_bytes = :b", ExpressionAttributeValues={":b": {"N": "3000"}})
    with pytest.raises(CorruptStoreError, match=r"v1: the snapshot is \d+ bytes, not the 3000 the pointer records"):
        DynamoDbPermissionSource(table).fetch(None)
    repaired = sync(yaml_file, f"dynamodb://{table}")
    assert repaired.completed and not repaired.published
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and raw.version == "v1" and len(raw.records) == 20
    # A version of another type is damage, not "nothing published yet" (store_missing).
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="SET version = :v", ExpressionAttributeValues={":v": {"S": "1"}})
    with pytest.raises(CorruptStoreError, match=r"\(pk=META, sk=PUBLISHED\): version is not a number"):
        DynamoDbPermissionSource(table).fetch(None)


def test_a_snapshot_that_inflates_past_the_cap_is_refused_without_inflating_it(table, backend, tmp_path):
    sync(write_permissions(tmp_path / "p.yaml", many_routes(5)), f"dynamodb://{table}")
    store = DynamoDbStore(table)
    pointer = store.read_pointer(consistent=True)
    assert pointer.snapshot is not None
    # An 8 MB document of one byte, compressed to about a KB, planted with a matching hash
    # and a pointer that claims a small size.
    import hashlib

    bomb = lzma.compress(b"{" * (8 * 1024 * 1024), format=lzma.FORMAT_XZ, preset=6)
    assert len(bomb) <= PART_BYTES
    client = backend.client()
    client.put_item(TableName=table, Item={"pk": {"S": "SNAPSHOT#000"}, "sk": {"S": pointer.snapshot.sort_key},
                                           "data": {"B": bomb}, "version": {"N": "1"}})
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="SET snapshot_sha256 = :h",
                       ExpressionAttributeValues={":h": {"S": "sha256:" + hashlib.sha256(bomb).hexdigest()}})
    with pytest.raises(StoreError) as refused:
        DynamoDbPermissionSource(table, max_bytes=1024 * 1024).fetch(None)
    assert refused.value.code == "store_too_large"
    # Without a cap (tools) it inflates, and is then refused as not a snapshot at all
    with pytest.raises(CorruptStoreError):
        DynamoDbPermissionSource(table).fetch(None)


def test_parts_of_replaced_versions_are_deleted_by_the_next_publish(table, backend, tmp_path):
    yaml_file = tmp_path / "p.yaml"
    for n in range(1, 5):
        write_permissions(yaml_file, many_routes(10 + n))
        sync(yaml_file, f"dynamodb://{table}")
    # v4 is published; v3's parts stay while readers that saw v3's pointer may load them
    assert sorted({p["version"]["N"] for p in part_items(backend, table)}) == ["3", "4"]
    assert DynamoDbPermissionSource(table).fetch(None).version == "v4"
