"""A compiled snapshot file as ``PERMISSIONS_SOURCE``: picked by name or content, loaded
as YAML would be, and never loaded once edited by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_engine.adapters.snapshot_file import (
    SnapshotFilePermissionSource,
    is_snapshot_file,
)
from policy_engine.adapters.yaml_files import YamlPermissionSource
from policy_engine.admin.publish import compile_snapshot
from policy_engine.bootstrap import permission_source
from policy_engine.cache import PermissionCache
from policy_engine.core.permissions import compile_records
from policy_engine.core.snapshot import decode_snapshot
from policy_engine.errors import CorruptStoreError, PermissionsError, StoreError

ROOT = Path(__file__).resolve().parents[2]
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


@pytest.fixture
def body() -> bytes:
    return compile_snapshot([ROOT / "permissions"])[0]


def compiled(source):
    raw = source.fetch(None)
    return compile_records(raw.records, raw.locate, version=raw.version)


def test_the_snapshot_loads_the_same_mappings_and_version_as_the_yaml(tmp_path, body):
    path = tmp_path / "permissions.json"
    path.write_bytes(body)
    from_snapshot = compiled(SnapshotFilePermissionSource(path))
    from_yaml = compiled(YamlPermissionSource(ROOT / "permissions"))
    assert from_snapshot.version == from_yaml.version
    assert {(g.route, g.needs) for g in from_snapshot.grants} == {(g.route, g.needs) for g in from_yaml.grants}
    # the format the S3 store publishes and reads
    assert decode_snapshot(body, "x", "etag").digest == from_yaml.version


def test_unchanged_bytes_are_not_read_as_new(tmp_path, body):
    path = tmp_path / "p.json"
    path.write_bytes(body)
    source = SnapshotFilePermissionSource(path)
    first = source.fetch(None)
    assert first is not None and source.fetch(first.etag) is None
    path.write_bytes(compile_snapshot([ROOT / "permissions" / "pets.yaml"])[0])
    assert source.fetch(first.etag) is not None


def test_the_source_is_picked_by_name_or_content(tmp_path, body):
    named = tmp_path / "anything.json"
    named.write_bytes(body)
    bare = tmp_path / "permissions"  # what the bundle ships: no extension
    bare.write_bytes(body)
    pretty = tmp_path / "pretty"
    pretty.write_text(json.dumps(json.loads(body), indent=2))
    for path in (named, bare, pretty):
        assert is_snapshot_file(path)
        assert isinstance(permission_source(str(path)), SnapshotFilePermissionSource)
    for path in (ROOT / "permissions", ROOT / "permissions" / "pets.yaml", tmp_path / "missing"):
        assert not is_snapshot_file(path)
        assert isinstance(permission_source(str(path)), YamlPermissionSource)


def edited(body: bytes, change) -> bytes:
    document = json.loads(body)
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize("change", [
    lambda d: d["mappings"][0].update(scope="admin"),          # a value edited, the digest kept
    lambda d: d["mappings"].append(dict(d["mappings"][0], resource="/everything/*")),
    lambda d: d["mappings"][0].update(httpVerb=7),
    lambda d: d.update(format="policy-engine/permissions@2"),
])
def test_a_hand_edit_that_breaks_the_digest_never_loads(tmp_path, body, change):
    path = tmp_path / "p.json"
    path.write_bytes(edited(body, change))
    with pytest.raises(CorruptStoreError):
        SnapshotFilePermissionSource(path).fetch(None)


def test_a_hand_edit_with_a_matching_digest_is_refused_by_the_schema(tmp_path, body):
    from policy_engine.core.publish import MappingKey, digest

    def needs(record: dict) -> str:
        # The digest's fifth column: the scope, else the canonical JSON of the requirement.
        member = {k: v for k, v in record.items() if k not in ("arn", "stage", "httpVerb", "resource")}
        return record["scope"] if "scope" in member else json.dumps(member, separators=(",", ":"), sort_keys=True)

    def rehash(document: dict) -> str:
        return digest(MappingKey(m["arn"], m["stage"], m["httpVerb"], m["resource"], needs(m))
                      for m in document["mappings"])

    def plant(document: dict) -> None:
        assert rehash(document) == document["digest"]  # the recomputation is the store's own
        document["mappings"].append({"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets?admin=1",
                                     "scope": "pets:read"})
        document["digest"] = rehash(document)

    path = tmp_path / "p.json"
    path.write_bytes(edited(body, plant))
    with pytest.raises(PermissionsError) as info:
        compiled(SnapshotFilePermissionSource(path))
    # The shipped example has 21 mappings (scopes, a group, a tenant path): the planted one is the 22nd.
    assert info.value.problems == [(f"{path} mappings[21]: resource '/pets?admin=1' has characters a route path "
                                    "cannot have")]


def test_a_member_the_schema_does_not_know_is_refused(tmp_path, body):
    path = tmp_path / "p.json"
    path.write_bytes(edited(body, lambda d: d["mappings"][3].update(effect="Allow")))
    with pytest.raises(PermissionsError, match=r"mappings\[3\]: unknown field 'effect'"):
        compiled(SnapshotFilePermissionSource(path))


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d.update(extra=1), "unknown member 'extra'"),
    (lambda d: d.update(note=["x"]), "note must be a string"),
    (lambda d: d.update(published_at=5), "published_at must be a string"),
    (lambda d: d.update(previous="x"), "previous must be"),
])
def test_a_document_member_the_schema_does_not_know_or_mistyped_is_refused(tmp_path, body, change, problem):
    path = tmp_path / "p.json"
    path.write_bytes(edited(body, change))
    with pytest.raises(CorruptStoreError, match=problem):
        SnapshotFilePermissionSource(path).fetch(None)


def test_a_deeply_nested_document_is_corrupt_not_a_crash(tmp_path, capsys):
    from policy_engine.admin.cli import main

    path = tmp_path / "deep.json"
    path.write_text('{"format":"policy-engine/permissions@1","x":' + '{"a":' * 100_000 + "1" + "}" * 100_001)
    with pytest.raises(CorruptStoreError, match="nested too deeply"):
        SnapshotFilePermissionSource(path).fetch(None)
    assert main(["validate", str(path)]) == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_the_cache_fails_closed_on_a_bad_snapshot_and_an_unreadable_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b'{"format": "policy-engine/permissions@1", "version": 1, "digest": "x", "mappings": [}')
    with pytest.raises(StoreError, match="not JSON"):
        PermissionCache(SnapshotFilePermissionSource(path), ttl=60, max_stale=900).get()
    with pytest.raises(StoreError, match="cannot read"):
        PermissionCache(SnapshotFilePermissionSource(tmp_path / "gone.json"), ttl=60, max_stale=900).get()


def test_published_at_is_what_the_document_records_and_none_for_a_compiled_file(tmp_path, body):
    compiled_file = tmp_path / "compiled.json"
    compiled_file.write_bytes(body)
    raw = SnapshotFilePermissionSource(compiled_file).fetch(None)
    assert raw is not None and raw.published_at is None  # compile records no time: same mappings, same bytes
    document = json.loads(body)
    document["published_at"] = "2026-11-21T12:30:55+00:00"  # a store's object, copied down
    copied = tmp_path / "copied.json"
    copied.write_text(json.dumps(document))
    raw = SnapshotFilePermissionSource(copied).fetch(None)
    assert raw is not None and raw.published_at == "2026-11-21T12:30:55+00:00"


@pytest.mark.parametrize(("filler", "problem"), [
    (b"[],", "more lists than a snapshot"),  # about 680 MiB to parse at 24 MiB
    (b'{"a":1},', "more objects than a snapshot"),
])
def test_a_document_of_far_more_values_than_its_bytes_hold_is_refused_before_it_costs_memory(
        tmp_path, filler, problem):
    path = tmp_path / "bomb.json"
    path.write_bytes(b'{"format":"policy-engine/permissions@1","version":1,"digest":"x","mappings":['
                     + filler * 200_000 + b'{}]}')
    with pytest.raises(CorruptStoreError, match=problem):
        SnapshotFilePermissionSource(path).fetch(None)


def test_a_member_named_twice_is_refused(tmp_path, body):
    # The digest covers the value the parser kept; a reader of the file may see the other.
    text = body.decode()
    assert text.count('"scope":"pets:read"') > 0
    path = tmp_path / "p.json"
    path.write_text(text.replace('"scope":"pets:read"', '"scope":"pets:admin","scope":"pets:read"', 1))
    with pytest.raises(CorruptStoreError, match="member name twice"):
        SnapshotFilePermissionSource(path).fetch(None)
