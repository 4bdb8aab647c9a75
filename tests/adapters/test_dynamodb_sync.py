"""sync / rollback / load against DynamoDB: every test runs on moto AND on DynamoDB Local."""

from __future__ import annotations

import threading

import pytest

from policy_engine.adapters.dynamodb import MAPPINGS, DynamoDbPermissionSource
from policy_engine.admin.publish import history, load_desired, rollback, sync
from policy_engine.admin.publish.dynamodb import DynamoDbStore, sort_key
from policy_engine.core.permissions import PermissionSet, compile_records
from policy_engine.core.publish import MappingKey, keys_of
from policy_engine.errors import (
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    PermissionsError,
    StoreError,
)
from tests.faults import Crash, FaultyClient, many_routes, write_permissions
from tests.stores import ROOT

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def load(table: str) -> PermissionSet:
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None
    return compile_records(raw.records, raw.locate, version=raw.version)


def written_for(backend, table: str, version: int) -> int:
    """How many mapping items carry writes of ``version`` (added or removed by it)."""
    client = backend.client()
    items, kwargs = [], {"TableName": table, "KeyConditionExpression": "pk = :pk",
                         "ExpressionAttributeValues": {":pk": {"S": MAPPINGS}}}
    while True:
        page = client.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sum(1 for i in items if i["added"]["N"] == str(version) or i.get("removed", {}).get("N") == str(version))


def pointer_version(table: str) -> int:
    return DynamoDbStore(table).read_pointer(consistent=True).version


def test_sync_publishes_the_shipped_permissions_and_the_authorizer_loads_exactly_them(table):
    result = sync(ROOT / "permissions", f"dynamodb://{table}")
    assert result.published and result.version_after == 1
    loaded = load(table)
    assert loaded.version == "v1"
    assert keys_of(loaded) == load_desired(ROOT / "permissions")
    assert len(loaded) == 21  # 17 scope mappings, 2 group mappings, 2 tenant-path mappings


def test_unchanged_resync_writes_nothing_and_one_change_writes_a_handful(table, tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(60))
    first = sync(yaml_file, f"dynamodb://{table}")
    # 60 items + the version record in 25-item batches (DynamoDB Local rejects 26), claim, flip
    assert first.write_requests == 3 + 2
    again = sync(yaml_file, f"dynamodb://{table}")
    assert not again.published and again.write_requests == 0 and again.plan.empty

    routes = many_routes(60)
    routes[7] = ("POST", "/items/7", "bulk:write")
    write_permissions(yaml_file, routes)
    changed = sync(yaml_file, f"dynamodb://{table}")
    assert changed.published and changed.version_after == 2
    assert [str(k) for k in changed.plan.added] == ["a1b2c3d4e5 dev POST /items/7 -> bulk:write"]
    assert [str(k) for k in changed.plan.removed] == ["a1b2c3d4e5 dev GET /items/7 -> bulk:read"]
    # claim + one batch (new item, old item marked removed, version record) + flip
    assert changed.write_requests == 3
    loaded = load(table)
    assert loaded.version == "v2" and len(loaded) == 60
    assert MappingKey(API, "dev", "POST", "/items/7", "bulk:write") in keys_of(loaded)


def test_dry_run_prints_the_diff_and_writes_nothing(table, tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s:read")])
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, [("GET", "/a", "s:read"), ("PUT", "/a", "s:write")])
    result = sync(yaml_file, f"dynamodb://{table}", dry_run=True)
    assert result.plan.lines() == ["+ a1b2c3d4e5 dev PUT /a -> s:write"]
    assert not result.published and result.write_requests == 0
    assert pointer_version(table) == 1 and len(load(table)) == 1


def test_paging_survives_an_empty_last_page(table, tmp_path):
    # With Limit equal to the item count, DynamoDB Local (like AWS) returns a
    # LastEvaluatedKey and then an empty page; moto stops early. Both must read all.
    write = write_permissions(tmp_path / "p.yaml", many_routes(30))
    sync(write, f"dynamodb://{table}")
    store = DynamoDbStore(table)
    store.page_size = 30
    assert len(store.read_mappings()) == 30


def test_a_sync_that_fails_half_way_leaves_the_old_version_whole_and_a_rerun_completes(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(80, "old:read"))
    sync(yaml_file, f"dynamodb://{table}")
    before = keys_of(load(table))
    write_permissions(yaml_file, many_routes(80, "new:read"))  # 80 removals + 80 additions

    def die_on_third_batch(n, kwargs, real):
        if n == 3:
            raise Crash("process died")

    faulty = FaultyClient(backend.client(), batch_write_item=die_on_third_batch)
    with pytest.raises(Crash):
        sync(yaml_file, f"dynamodb://{table}", client=faulty)
    writes = written_for(backend, table, 2)
    assert 0 < writes < 161  # part of v2 (160 item writes + its version record) really is in the table
    # GIVEN half of v2 is in the table THEN a reader still gets v1, all of it, nothing of v2
    loaded = load(table)
    assert loaded.version == "v1" and keys_of(loaded) == before

    rerun = sync(yaml_file, f"dynamodb://{table}")
    assert rerun.published and rerun.version_after == 2
    assert keys_of(load(table)) == load_desired(yaml_file)
    assert history(f"dynamodb://{table}")[-1]["mappings"] == 80


def test_a_killed_sync_blocks_others_until_take_over_and_a_changed_yaml_undoes_its_writes(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(40, "a"))
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, many_routes(40, "b"))
    dead = [False]

    def die(n, kwargs, real):
        if n == 2 or dead[0]:  # after one batch, nothing this process sends arrives any more
            dead[0] = True
            raise Crash("killed")

    faulty = FaultyClient(backend.client(), batch_write_item=die,
                          update_item=lambda n, k, r: die(0, k, r) if dead[0] else None)
    with pytest.raises(Crash):
        sync(yaml_file, f"dynamodb://{table}", client=faulty)
    # The claim outlives the killed process: a second sync is refused with a clear message
    with pytest.raises(ConflictError, match="--take-over"):
        sync(yaml_file, f"dynamodb://{table}")
    assert load(table).version == "v1"
    # The re-run publishes a YAML that differs from what the dead sync was writing
    final = many_routes(20, "a") + many_routes(5, "c")
    write_permissions(yaml_file, final)
    result = sync(yaml_file, f"dynamodb://{table}", take_over=True)
    assert result.version_after == 2
    loaded = load(table)
    assert keys_of(loaded) == load_desired(yaml_file) and len(loaded) == 25


def test_two_syncs_at_once_one_wins_the_other_conflicts_and_nothing_is_lost(table, tmp_path, backend):
    base = write_permissions(tmp_path / "base.yaml", [("GET", "/a", "s")])
    sync(base, f"dynamodb://{table}")
    first = write_permissions(tmp_path / "first.yaml", [("GET", "/a", "s"), ("GET", "/first", "s")])
    second = write_permissions(tmp_path / "second.yaml", [("GET", "/a", "s"), ("GET", "/second", "s")])
    outcome: dict[str, object] = {}

    def second_sync_runs_now(n, kwargs, real):
        if n == 1:  # sync one holds the claim and is about to write its items
            try:
                sync(second, f"dynamodb://{table}")
            except ConflictError as exc:
                outcome["second"] = exc

    faulty = FaultyClient(backend.client(), batch_write_item=second_sync_runs_now)
    result = sync(first, f"dynamodb://{table}", client=faulty)
    assert result.version_after == 2
    assert "is publishing v2" in str(outcome["second"])
    assert keys_of(load(table)) == load_desired(first)
    # the loser re-runs and publishes on top: nothing of either is lost
    again = sync(second, f"dynamodb://{table}")
    assert again.version_after == 3 and keys_of(load(table)) == load_desired(second)
    assert [e["version"] for e in history(f"dynamodb://{table}")] == [1, 2, 3]


def test_a_sync_planned_on_a_version_that_moved_is_refused(table, tmp_path, backend):
    yaml_a = write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")])
    yaml_b = write_permissions(tmp_path / "b.yaml", [("GET", "/b", "s")])
    sync(yaml_a, f"dynamodb://{table}")

    def other_publishes_before_the_claim(n, kwargs, real):
        if n == 1:
            sync(write_permissions(tmp_path / "c.yaml", [("GET", "/c", "s")]), f"dynamodb://{table}")

    faulty = FaultyClient(backend.client(), update_item=other_publishes_before_the_claim)
    with pytest.raises(ConflictError, match="moved from v1 to v2"):
        sync(yaml_b, f"dynamodb://{table}", client=faulty)
    assert {k.resource for k in keys_of(load(table))} == {"/c"}


# moto's server checks a condition and writes without a lock, so racing threads can
# both pass it; DynamoDB (and DynamoDB Local) serialise conditional writes per item.
@pytest.mark.parametrize("backend", ["dynamodb-local"], indirect=True)
def test_threads_racing_publish_each_version_once(table, tmp_path):
    files = [write_permissions(tmp_path / f"{i}.yaml", [("GET", f"/r{i}", "s")]) for i in range(4)]
    errors: list[Exception] = []
    done: list[int] = []

    def run(path):
        try:
            done.append(sync(path, f"dynamodb://{table}").version_after)
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) + len(errors) == 4 and done
    assert sorted(done) == list(range(1, len(done) + 1))  # no version published twice
    loaded = load(table)
    assert loaded.version == f"v{max(done)}" and len(loaded) == 1


def test_rollback_publishes_the_earlier_content_as_a_new_version(table, tmp_path):
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s"), ("GET", "/b", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    v1 = keys_of(load(table))
    write_permissions(yaml_file, [("GET", "/a", "s"), ("DELETE", "/b", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, [("GET", "/z", "s")])
    sync(yaml_file, f"dynamodb://{table}")

    dry = rollback(f"dynamodb://{table}", to=1, dry_run=True)
    assert not dry.published and pointer_version(table) == 3
    result = rollback(f"dynamodb://{table}", to=1)
    assert result.version_after == 4
    loaded = load(table)
    assert loaded.version == "v4" and keys_of(loaded) == v1
    assert history(f"dynamodb://{table}")[-1]["note"] == "rollback to v1"
    # default: the version before the current one
    assert rollback(f"dynamodb://{table}").version_after == 5
    assert {k.resource for k in keys_of(load(table))} == {"/z"}
    with pytest.raises(StoreError, match=r"cannot roll back to v9: versions v1..v4 precede the live v5"):
        rollback(f"dynamodb://{table}", to=9)


def test_rollback_refuses_a_version_whose_record_is_gone_or_unreadable(table, backend, tmp_path):
    # Without its VERSION record, an item edited by hand into v1's history would be
    # restored as if it had been published.
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, [("GET", "/b", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    client = backend.client()
    record = {"pk": {"S": "META"}, "sk": {"S": "VERSION#0000000001"}}
    client.update_item(TableName=table, Key=record, UpdateExpression="SET version = :v",
                       ExpressionAttributeValues={":v": {"S": "one"}})
    with pytest.raises(CorruptStoreError, match=r"v1 has no readable version record \(META VERSION#0000000001\)"):
        rollback(f"dynamodb://{table}", to=1, dry_run=True)
    client.delete_item(TableName=table, Key=record)
    with pytest.raises(CorruptStoreError, match=r"v1 has no readable version record"):
        rollback(f"dynamodb://{table}", to=1)
    assert pointer_version(table) == 2


def test_rollback_with_nothing_before_the_live_version_says_what_is_published(table, tmp_path):
    with pytest.raises(StoreError, match="cannot roll back to the version before the live one: nothing is "
                                         "published yet"):
        rollback(f"dynamodb://{table}")
    yaml_file = tmp_path / "p.yaml"
    write_permissions(yaml_file, [("GET", "/a", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    with pytest.raises(StoreError, match="cannot roll back to v1: only v1 is published, which is live"):
        rollback(f"dynamodb://{table}", to=1)


# -- bad input: one clear error, the published version untouched ----------------------


@pytest.fixture
def published(table, tmp_path):
    yaml_file = write_permissions(tmp_path / "good.yaml", [("GET", "/a", "s:read")])
    sync(yaml_file, f"dynamodb://{table}")
    return table


def test_unreadable_yaml_is_refused_before_anything_is_written(published, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("permissions:\n  - arn: [unclosed\n")
    with pytest.raises(PermissionsError, match=r"bad\.yaml:3: invalid YAML"):
        sync(bad, f"dynamodb://{published}")
    bad.write_bytes(b"permissions: \xff\xfe\n")
    with pytest.raises(PermissionsError, match=r"bad\.yaml: not UTF-8"):
        sync(bad, f"dynamodb://{published}")
    assert pointer_version(published) == 1


def test_an_invalid_mapping_is_refused_with_its_line(published, tmp_path):
    bad = write_permissions(tmp_path / "bad.yaml", [("GET", "/a", "s:read"), ("GETT", "/b", "s:read")])
    with pytest.raises(PermissionsError, match=r"bad.yaml:9: httpVerb"):
        sync(bad, f"dynamodb://{published}")
    assert pointer_version(published) == 1 and len(load(published)) == 1


def test_a_foreign_item_in_the_table_is_named_and_blocks_sync_but_not_the_reader(published, tmp_path, backend):
    backend.client().put_item(TableName=published, Item={"pk": {"S": MAPPINGS}, "sk": {"S": "hello"},
                                                          "note": {"S": "someone's item"}})
    good = write_permissions(tmp_path / "next.yaml", [("GET", "/b", "s:read")])
    with pytest.raises(CorruptStoreError, match=r"sk='hello'.*not written by policy-engine sync"):
        sync(good, f"dynamodb://{published}")
    # The authorizer reads only items that claim a version, and proves the set by its
    # digest: the stray item cannot change a decision.
    loaded = load(published)
    assert loaded.version == "v1" and {k.resource for k in keys_of(loaded)} == {"/a"}
    assert pointer_version(published) == 1


def test_an_item_edited_in_the_console_cannot_widen_a_grant_and_blocks_sync(published, backend, tmp_path):
    key = MappingKey(API, "dev", "GET", "/a", "s:read")
    backend.client().update_item(
        TableName=published, Key={"pk": {"S": MAPPINGS}, "sk": {"S": sort_key(key, 1)}},
        UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "resource"},
        ExpressionAttributeValues={":r": {"S": "/*"}})
    # The authorizer reads the sort key (the mapping as published, proven by the digest)
    assert {k.resource for k in keys_of(load(published))} == {"/a"}
    with pytest.raises(CorruptStoreError, match="do not match its sort key"):
        sync(write_permissions(tmp_path / "x.yaml", [("GET", "/x", "s")]), f"dynamodb://{published}")
    assert pointer_version(published) == 1


def test_an_item_deleted_in_the_console_fails_the_digest(published, tmp_path, backend):
    key = MappingKey(API, "dev", "GET", "/a", "s:read")
    backend.client().delete_item(TableName=published, Key={"pk": {"S": MAPPINGS}, "sk": {"S": sort_key(key, 1)}})
    # The authorizer loads the snapshot, proven by its hash and digest: still exactly v1
    assert load(published).version == "v1" and keys_of(load(published)) == {key}
    fixed = write_permissions(tmp_path / "x.yaml", [("GET", "/x", "s")])
    with pytest.raises(CorruptStoreError, match=r"do not match its digest.*sync --repair") as refused:
        sync(fixed, f"dynamodb://{published}")
    # The message names what differs from the published snapshot.
    assert f"missing: '{API} dev GET /a s:read'" in str(refused.value)
    assert pointer_version(published) == 1
    # An item added by hand is named by its sort key, to be deleted.
    extra = MappingKey(API, "dev", "DELETE", "/a", "s:read")
    backend.client().put_item(TableName=published, Item={
        "pk": {"S": MAPPINGS}, "sk": {"S": sort_key(extra, 1)}, "arn": {"S": API}, "stage": {"S": "dev"},
        "httpVerb": {"S": "DELETE"}, "resource": {"S": "/a"}, "scope": {"S": "s:read"}, "added": {"N": "1"}})
    with pytest.raises(CorruptStoreError) as refused:
        sync(fixed, f"dynamodb://{published}")
    assert f"added: '{sort_key(extra, 1)}'" in str(refused.value)
    # The history is listed all the same: it is what recovery looks at.
    assert [entry["version"] for entry in history(f"dynamodb://{published}")] == [1]
    backend.client().delete_item(TableName=published, Key={"pk": {"S": MAPPINGS}, "sk": {"S": sort_key(extra, 1)}})
    # --repair publishes the YAML over the damaged version, and readers are whole again
    assert sync(fixed, f"dynamodb://{published}", repair=True).version_after == 2
    assert keys_of(load(published)) == load_desired(fixed)


def test_a_missing_table_says_run_migrate(backend, tmp_path):
    good = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")])
    with pytest.raises(MissingStoreError, match="dynamodb://no-such-table does not exist"):
        sync(good, "dynamodb://no-such-table")
    with pytest.raises(MissingStoreError):
        DynamoDbPermissionSource("no-such-table").fetch(None)


def test_a_table_never_published_is_not_an_empty_permission_set(table):
    with pytest.raises(MissingStoreError, match="nothing published yet"):
        DynamoDbPermissionSource(table).fetch(None)


def test_missing_credentials_are_one_store_error(published, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials"):
        DynamoDbPermissionSource(published).fetch(None)


def test_leftovers_of_a_dead_sync_are_reused_repaired_or_deleted(table, tmp_path, backend):
    from policy_engine.admin.publish.dynamodb import (
        DynamoDbStore,
        new_mapping_item,
        put_request,
    )

    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/keep", "s"), ("GET", "/drop", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    # GIVEN what a dead sync for v2 could leave: a wanted item, a wanted item it had
    # marked removed, an unwanted item, and a live item it had marked removed
    store = DynamoDbStore(table)
    wanted, marked, unwanted = (MappingKey(API, "dev", "GET", f"/{n}", "s") for n in ("new", "marked", "junk"))
    marked_item = new_mapping_item(marked, 2)
    marked_item["removed"] = {"N": "2"}
    keep_item = new_mapping_item(MappingKey(API, "dev", "GET", "/keep", "s"), 1)
    keep_item["removed"] = {"N": "2"}
    store.batch_write([put_request(new_mapping_item(wanted, 2)), put_request(marked_item),
                       put_request(new_mapping_item(unwanted, 2)), put_request(keep_item)])
    assert load(table).version == "v1" and {k.resource for k in keys_of(load(table))} == {"/keep", "/drop"}
    # WHEN the next sync publishes v2
    write_permissions(yaml_file, [("GET", "/keep", "s"), ("GET", "/new", "s"), ("GET", "/marked", "s")])
    assert sync(yaml_file, f"dynamodb://{table}").version_after == 2
    # THEN v2 is exactly the YAML, and v1 is still what it was
    assert {k.resource for k in keys_of(load(table))} == {"/keep", "/new", "/marked"}
    assert {k.resource for k in rollback(f"dynamodb://{table}", to=1, dry_run=True).plan.added} == {"/drop"}


def test_a_sync_whose_writes_do_not_add_up_is_not_published(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")])
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, [("GET", "/a", "s"), ("GET", "/b", "s"), ("GET", "/c", "s")])

    def lose_one_write(n, kwargs, real):
        [(name, requests)] = kwargs["RequestItems"].items()
        return real(RequestItems={name: requests[1:]})  # acknowledged, never written

    faulty = FaultyClient(backend.client(), batch_write_item=lose_one_write)
    with pytest.raises(CorruptStoreError, match=r"v2 as written .* does not match the plan"):
        sync(yaml_file, f"dynamodb://{table}", client=faulty)
    assert pointer_version(table) == 1 and {k.resource for k in keys_of(load(table))} == {"/a"}
    assert sync(yaml_file, f"dynamodb://{table}").version_after == 2


KILLED_SYNC = """
import sys, threading, time, boto3
from policy_engine.admin.publish import sync
from tests.faults import FaultyClient

first = threading.Lock()

def pause_after_two(n, kwargs, real):
    if n > 2:
        if first.acquire(blocking=False):  # writer threads race here; say it once
            print("PAUSED", flush=True)
        threading.Event().wait()  # hold every writer here until the test kills the process

client = FaultyClient(boto3.client("dynamodb"), batch_write_item=pause_after_two)
sync(sys.argv[1], sys.argv[2], client=client)
"""


def test_a_sync_process_killed_mid_write_leaves_the_old_version_and_take_over_completes(table, tmp_path, backend):
    import os
    import signal
    import subprocess
    import sys

    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(200, "old"))
    sync(yaml_file, f"dynamodb://{table}")
    write_permissions(yaml_file, many_routes(200, "new"))
    process = subprocess.Popen([sys.executable, "-c", KILLED_SYNC, str(yaml_file), f"dynamodb://{table}"],
                               cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "PAUSED"
        assert written_for(backend, table, 2) > 0  # part of v2 is in the table
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
    loaded = load(table)
    assert loaded.version == "v1" and {k.needs for k in keys_of(loaded)} == {"old"} and len(loaded) == 200
    with pytest.raises(ConflictError, match="is publishing v2"):
        sync(yaml_file, f"dynamodb://{table}")
    assert sync(yaml_file, f"dynamodb://{table}", take_over=True).version_after == 2
    assert {k.needs for k in keys_of(load(table))} == {"new"}
