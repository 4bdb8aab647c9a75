"""Candidates in a table: sync --candidate, promote, discard, history, and the run-time reader.

Every test runs on moto AND on DynamoDB Local (``tests/stores.py``).
"""

from __future__ import annotations

import datetime

import pytest

from policy_engine.adapters.dynamodb import CANDIDATE_SK, META, DynamoDbPermissionSource
from policy_engine.admin.publish import discard, history, promote, rollback, sync
from policy_engine.admin.publish.dynamodb import DynamoDbStore
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, keys_of
from policy_engine.errors import (
    ConfigurationError,
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    StoreTooLargeError,
)
from tests.candidates import check_a_discard_that_loses_to_a_promote, publish_live_and_candidate
from tests.faults import Crash, FaultyClient, many_routes, write_permissions

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def key(verb: str, path: str, scope: str) -> MappingKey:
    return MappingKey(API, "dev", verb, path, scope)


def read(table: str, *, candidate: bool = False, **options):
    raw = DynamoDbPermissionSource(table, candidate=candidate, **options).fetch(None)
    assert raw is not None
    return raw, keys_of(compile_records(raw.records, raw.locate, version=raw.version))


def candidate_parts(backend, table: str) -> set[str]:
    client, found = backend.client(), set()
    for index in range(5):
        items = client.query(TableName=table, KeyConditionExpression="pk = :pk",
                             ExpressionAttributeValues={":pk": {"S": f"SNAPSHOT#{index:03d}"}})["Items"]
        found |= {i["sk"]["S"] for i in items if i["sk"]["S"].startswith("C")}
    return found


@pytest.fixture
def live_and_candidate(table, tmp_path):
    """v1 live with /a and /b; candidate c1 drops /b and adds /c."""
    return publish_live_and_candidate(f"dynamodb://{table}", tmp_path)


def test_no_candidate_is_missing_for_the_reader(table, tmp_path):
    with pytest.raises(MissingStoreError, match="no candidate published"):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)
    sync(write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")]), f"dynamodb://{table}")
    with pytest.raises(MissingStoreError, match="no candidate published"):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)


def test_a_candidate_is_published_beside_the_live_version_and_read_with_its_label(table, live_and_candidate):
    _, _, _, result = live_and_candidate
    assert result.published and result.candidate == 1 and result.replaced is None
    assert result.version_before == result.version_after == 1
    # the diff is the candidate against the live version
    assert result.plan.lines() == ["- a1b2c3d4e5 dev GET /b -> s:read", "+ a1b2c3d4e5 dev GET /c -> s:read"]
    assert "published candidate c1" in result.describe() and "v1 still decides" in result.describe()

    live_raw, live_keys = read(table)
    assert live_raw.version == "v1" and live_keys == {key("GET", "/a", "s:read"), key("GET", "/b", "s:read")}
    raw, keys = read(table, candidate=True)
    assert raw.version == "c1" and raw.etag.startswith("c1:")
    assert keys == {key("GET", "/a", "s:read"), key("GET", "/c", "s:read")}
    # both readers fill published_at with what the store recorded
    for got in (live_raw, raw):
        assert got.published_at is not None
        stamp = datetime.datetime.fromisoformat(got.published_at)
        assert stamp.tzinfo is not None and abs(datetime.datetime.now(datetime.UTC) - stamp).total_seconds() < 120
    source = DynamoDbPermissionSource(table, candidate=True)
    first = source.fetch(None)
    assert first is not None and source.fetch(first.etag) is None


def test_numbers_increase_replacing_says_so_and_the_same_mappings_write_nothing(table, backend, live_and_candidate,
                                                                                 tmp_path):
    target, _, shadow, _ = live_and_candidate
    same = sync(shadow, target, candidate=True)
    assert not same.published and same.same_candidate and same.write_requests == 0 and same.status == "unchanged"
    assert "candidate c1 unchanged" in same.describe()

    other = write_permissions(tmp_path / "other.yaml", [("GET", "/d", "s:read")])
    dry = sync(other, target, candidate=True, dry_run=True)
    assert not dry.published and dry.candidate == 2 and dry.replaced == 1 and dry.write_requests == 0
    assert "would publish candidate c2" in dry.describe() and "would replace c1" in dry.describe()
    assert read(table, candidate=True)[0].version == "c1"

    second = sync(other, target, candidate=True)
    assert second.candidate == 2 and second.replaced == 1 and "replaced c1" in second.describe()
    assert read(table, candidate=True)[0].version == "c2"
    assert len(candidate_parts(backend, table)) == 1  # c1's parts were deleted after the flip

    discard(target)
    third = sync(shadow, target, candidate=True)
    assert third.candidate == 3 and third.replaced is None  # a number is never used twice
    statuses = [(e["version"], e["status"], e.get("replaced_by")) for e in history(target) if e.get("candidate")]
    assert statuses == [(1, "replaced", 2), (2, "discarded", None), (3, "candidate", None)]


def test_live_syncs_and_rollbacks_leave_the_candidate_alone(table, backend, live_and_candidate, tmp_path):
    target, live, _, _ = live_and_candidate
    parts = candidate_parts(backend, table)
    write_permissions(live, [("GET", "/a", "s:read"), ("GET", "/b", "s:read"), ("GET", "/e", "s:read")])
    assert sync(live, target).version_after == 2
    assert rollback(target).version_after == 3
    assert candidate_parts(backend, table) == parts
    raw, keys = read(table, candidate=True)
    assert raw.version == "c1" and key("GET", "/c", "s:read") in keys
    assert read(table)[0].version == "v3"


def test_promote_publishes_the_candidate_as_the_next_version_and_removes_it(table, backend, live_and_candidate):
    target, _, _, _ = live_and_candidate
    dry = promote(target, dry_run=True)
    assert dry.status == "dry_run" and not dry.candidate_removed and "would promote c1 as v2" in dry.describe()
    assert read(table, candidate=True)[0].version == "c1"

    result = promote(target)
    assert result.published and result.version_after == 2 and result.promoted == 1 and result.candidate_removed
    assert result.describe().startswith(f"{target}: promoted c1 as v2 (1 added, 1 removed, 1 unchanged; was v1)")
    raw, keys = read(table)
    assert raw.version == "v2" and keys == {key("GET", "/a", "s:read"), key("GET", "/c", "s:read")}
    with pytest.raises(MissingStoreError):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)
    assert candidate_parts(backend, table) == set()
    entries = history(target)
    assert [e["note"] for e in entries if not e.get("candidate")][-1] == "promote c1: PR 43"
    (record,) = [e for e in entries if e.get("candidate")]
    assert (record["version"], record["status"], record["promoted_to"], record["based_on"]) == (1, "promoted", 2, 1)
    with pytest.raises(MissingStoreError, match="no candidate to promote"):
        promote(target)


def test_promote_is_refused_when_the_live_version_moved_unless_forced(table, live_and_candidate):
    target, live, _, _ = live_and_candidate
    write_permissions(live, [("GET", "/z", "s:read")])
    sync(live, target)  # v2: the candidate was judged against v1
    for dry_run in (True, False):
        with pytest.raises(ConflictError, match="moved from v1 to v2 since c1 was published"):
            promote(target, dry_run=dry_run)
    assert read(table)[0].version == "v2" and read(table, candidate=True)[0].version == "c1"
    forced = promote(target, force=True)
    assert forced.version_after == 3 and read(table)[1] == {key("GET", "/a", "s:read"), key("GET", "/c", "s:read")}


def test_promote_loses_to_a_concurrent_sync_and_keeps_the_candidate(table, backend, live_and_candidate, tmp_path):
    target, _, _, _ = live_and_candidate
    theirs = write_permissions(tmp_path / "theirs.yaml", [("GET", "/theirs", "s:read")])

    def they_publish_first(n, kwargs, real):
        if n == 1 and "claim_owner" in str(kwargs.get("ExpressionAttributeNames")):
            sync(theirs, target)  # lands between promote's read and its claim

    faulty = FaultyClient(backend.client(), update_item=they_publish_first)
    with pytest.raises(ConflictError, match="moved from v1 to v2"):
        promote(target, client=faulty)
    assert read(table)[0].version == "v2" and read(table, candidate=True)[0].version == "c1"

    # a sync that holds the claim refuses a promote the same way it refuses a sync
    DynamoDbStore(table).claim(2, "someone-else")
    with pytest.raises(ConflictError, match="someone-else is publishing"):
        promote(target, force=True)
    assert read(table, candidate=True)[0].version == "c1"


def test_a_promote_that_dies_between_its_flip_and_the_removal_is_finished_by_a_rerun(table, backend,
                                                                                     live_and_candidate):
    target, _, _, _ = live_and_candidate

    def die(n, kwargs, real):
        raise Crash("process died after the flip")

    faulty = FaultyClient(backend.client(), put_item=die)  # the candidate's record comes first after the flip
    with pytest.raises(Crash):
        promote(target, client=faulty)
    # live is the candidate now, and the candidate is still there, both readable
    assert read(table)[0].version == "v2" and read(table, candidate=True)[0].version == "c1"
    again = promote(target)  # based_on is v1 and live is v2: finishing is not "the live version moved"
    assert again.status == "completed" and not again.published and again.candidate_removed
    assert again.version_after == 2 and "c1 is already live as v2; candidate removed" in again.describe()
    with pytest.raises(MissingStoreError):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)
    (record,) = [e for e in history(target) if e.get("candidate")]
    assert (record["status"], record["promoted_to"]) == ("promoted", 2)


def test_a_candidate_publish_that_dies_before_its_flip_changes_nothing_visible(table, backend, live_and_candidate,
                                                                               tmp_path):
    target, _, _, _ = live_and_candidate
    other = write_permissions(tmp_path / "other.yaml", [("GET", "/d", "s:read")])

    def die(n, kwargs, real):
        raise Crash("process died before the flip")

    with pytest.raises(Crash):
        sync(other, target, candidate=True, client=FaultyClient(backend.client(), update_item=die))
    assert read(table, candidate=True)[0].version == "c1" and read(table)[0].version == "v1"
    result = sync(other, target, candidate=True)
    assert result.candidate == 2 and read(table, candidate=True)[1] == {key("GET", "/d", "s:read")}
    assert len(candidate_parts(backend, table)) == 1  # the dead publish's parts went too


def test_discard_removes_the_candidate_and_keeps_the_live_version(table, backend, live_and_candidate):
    target, _, _, _ = live_and_candidate
    result = discard(target)
    assert result.candidate.number == 1 and result.live_version == 1
    assert result.describe() == (f"{target}: discarded candidate c1 (2 mappings, published against v1); "
                                 "v1 stays")
    with pytest.raises(MissingStoreError):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)
    assert read(table)[0].version == "v1" and candidate_parts(backend, table) == set()
    with pytest.raises(MissingStoreError, match="no candidate to discard"):
        discard(target)


def test_a_damaged_candidate_is_refused_by_the_reader_and_promote_but_can_be_discarded(table, backend,
                                                                                      live_and_candidate):
    target, _, _, _ = live_and_candidate
    (sk,) = candidate_parts(backend, table)
    backend.client().delete_item(TableName=table, Key={"pk": {"S": "SNAPSHOT#000"}, "sk": {"S": sk}})
    with pytest.raises(CorruptStoreError, match="candidate c1: its snapshot"):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)
    assert read(table)[0].version == "v1"  # the live version never depends on the candidate
    with pytest.raises(CorruptStoreError, match="candidate c1"):
        promote(target)
    assert read(table)[0].version == "v1"
    discard(target)

    backend.client().update_item(TableName=table, Key={"pk": {"S": META}, "sk": {"S": CANDIDATE_SK}},
                                 UpdateExpression="SET version = :v",
                                 ExpressionAttributeValues={":v": {"N": "9"}})
    with pytest.raises(CorruptStoreError, match="sk=CANDIDATE"):
        DynamoDbPermissionSource(table, candidate=True).fetch(None)


def test_a_candidate_larger_than_the_cap_is_refused_before_its_parts_are_read(table, tmp_path):
    target = f"dynamodb://{table}"
    sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target)
    sync(write_permissions(tmp_path / "b.yaml", many_routes(200)), target, candidate=True)
    source = DynamoDbPermissionSource(table, candidate=True, max_bytes=2000)
    with pytest.raises(StoreTooLargeError, match="candidate c1 holds"):
        source.fetch(None)
    assert source.read_units == 0.5 or source.read_units == 0  # the pointer only (moto reports no units)
    assert DynamoDbPermissionSource(table, max_bytes=2000).fetch(None) is not None


def test_candidate_options_that_belong_to_the_live_publish_are_refused(table, tmp_path):
    yaml_file = write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")])
    for option in ("repair", "take_over"):
        with pytest.raises(ConfigurationError):
            sync(yaml_file, f"dynamodb://{table}", candidate=True, **{option: True})


def test_a_candidate_on_an_empty_table_is_based_on_nothing(table, tmp_path):
    target = f"dynamodb://{table}"
    result = sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target, candidate=True)
    assert result.candidate == 1 and result.version_before == 0
    with pytest.raises(MissingStoreError):
        DynamoDbPermissionSource(table).fetch(None)
    assert read(table, candidate=True)[0].version == "c1"
    assert promote(target).version_after == 1 and read(table)[0].version == "v1"


def test_the_live_reader_refuses_a_candidates_snapshot_named_by_the_live_pointer(table, backend, live_and_candidate):
    # Copied by hand onto META/PUBLISHED (digest included, no hash to recompute), the
    # candidate's snapshot would decide as the live version, unreviewed: each reader
    # refuses the other kind, as on S3.
    client = backend.client()
    candidate = client.get_item(TableName=table, Key={"pk": {"S": META}, "sk": {"S": CANDIDATE_SK}},
                                ConsistentRead=True)["Item"]
    names = ("snapshot", "snapshot_parts", "snapshot_sha256", "snapshot_bytes", "digest")
    client.update_item(
        TableName=table, Key={"pk": {"S": META}, "sk": {"S": "PUBLISHED"}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in names),
        ExpressionAttributeNames={f"#{name}": name for name in names},
        ExpressionAttributeValues={f":{name}": candidate[name] for name in names})
    with pytest.raises(CorruptStoreError, match=r"v1: its snapshot is a candidate's, not a published version's"):
        DynamoDbPermissionSource(table).fetch(None)


def test_a_discard_that_loses_to_a_promote_neither_ends_the_candidate_nor_rewrites_its_record(live_and_candidate):
    check_a_discard_that_loses_to_a_promote(live_and_candidate[0])
