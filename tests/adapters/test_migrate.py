"""migrate: numbered idempotent steps, recorded in the table; on moto and DynamoDB Local."""

from __future__ import annotations

import shutil
import uuid

import pytest

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource
from policy_engine.admin.migrate import MIGRATIONS_DIR, migrate
from policy_engine.errors import StoreError

#: The steps in migrations/, in order.
STEPS = ("0001_create_table", "0002_snapshots")


def fresh_name() -> str:
    return f"perm-{uuid.uuid4().hex[:10]}"


def test_dry_run_lists_and_changes_nothing_then_migrate_creates_and_records(backend):
    client = backend.client()
    name = fresh_name()
    planned = migrate(name, dry_run=True)
    assert planned.pending == STEPS and planned.applied == ()
    assert name not in client.list_tables()["TableNames"]

    done = migrate(name)
    assert done.applied == STEPS
    table = client.describe_table(TableName=name)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    if backend.name == "moto":  # DynamoDB Local has no backups API at all
        backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    record = client.get_item(TableName=name, Key={"pk": {"S": "META"}, "sk": {"S": "MIGRATION#0001"}})["Item"]
    assert record["name"]["S"] == "0001_create_table"

    again = migrate(name)
    assert again.pending == () and again.already_applied == STEPS


def test_building_a_store_never_creates_a_table(backend):
    client = backend.client()
    before = set(client.list_tables()["TableNames"])
    source = DynamoDbPermissionSource(fresh_name())
    with pytest.raises(StoreError):
        source.fetch(None)
    assert set(client.list_tables()["TableNames"]) == before


def test_an_existing_table_with_other_keys_is_refused_and_not_recorded(backend):
    client = backend.client()
    name = fresh_name()
    client.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    with pytest.raises(StoreError, match="policy-engine expects pk"):
        migrate(name)


def test_later_steps_run_in_order_and_a_failed_step_is_retried_on_the_next_run(backend, tmp_path):
    steps = tmp_path / "migrations"
    steps.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_create_table.py", steps)
    (steps / "0002_add_marker.py").write_text(
        "DESCRIPTION = 'write a marker item'\n"
        "import os\n"
        "def apply(ctx):\n"
        "    if os.environ.get('FAIL_0002'):\n"
        "        raise RuntimeError('boom')\n"
        "    ctx.client.put_item(TableName=ctx.table, Item={'pk': {'S': 'META'}, 'sk': {'S': 'MARKER'}})\n"
    )
    name = fresh_name()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FAIL_0002", "1")
        with pytest.raises(StoreError, match="migration 0002_add_marker: RuntimeError: boom"):
            migrate(name, directory=steps)
    assert migrate(name, directory=steps, dry_run=True).pending == ("0002_add_marker",)
    result = migrate(name, directory=steps)
    assert result.applied == ("0002_add_marker",) and result.already_applied == ("0001_create_table",)
    assert "Item" in backend.client().get_item(TableName=name, Key={"pk": {"S": "META"}, "sk": {"S": "MARKER"}})


def _attr(name, kind):
    return {"AttributeName": name, "AttributeType": kind}


def _key(name, kind):
    return {"AttributeName": name, "KeyType": kind}


def _index(name, attribute):
    return {"IndexName": name, "KeySchema": [_key(attribute, "HASH")], "Projection": {"ProjectionType": "KEYS_ONLY"}}


OURS = [_key("pk", "HASH"), _key("sk", "RANGE")]

#: Tables policy-engine cannot use, and the error migrate gives for each ("{t}" is the table).
WRONG_LAYOUTS = {
    "numeric sort key": (dict(KeySchema=OURS, AttributeDefinitions=[_attr("pk", "S"), _attr("sk", "N")]),
                         "table {t}: key attribute 'sk' is N (number); policy-engine expects S (string)"),
    "binary partition key": (dict(KeySchema=OURS, AttributeDefinitions=[_attr("pk", "B"), _attr("sk", "S")]),
                             "table {t}: key attribute 'pk' is B (binary); policy-engine expects S (string)"),
    "only a partition key": (dict(KeySchema=[_key("pk", "HASH")], AttributeDefinitions=[_attr("pk", "S")]),
                             "table {t}: its key is pk (HASH); policy-engine expects pk (HASH) and sk (RANGE)"),
    "other key names": (dict(KeySchema=[_key("id", "HASH"), _key("at", "RANGE")],
                             AttributeDefinitions=[_attr("id", "S"), _attr("at", "N")]),
                        "table {t}: its key is id (HASH), at (RANGE); policy-engine expects pk (HASH) and sk (RANGE)"),
    "keys swapped": (dict(KeySchema=[_key("sk", "HASH"), _key("pk", "RANGE")],
                          AttributeDefinitions=[_attr("pk", "S"), _attr("sk", "S")]),
                     "table {t}: its key is sk (HASH), pk (RANGE); policy-engine expects pk (HASH) and sk (RANGE)"),
    # DynamoDB refuses every item whose attribute does not have its index key's type:
    # this table would take the migration and then refuse every sync.
    "index on a written attribute with another type": (
        dict(KeySchema=OURS, AttributeDefinitions=[_attr("pk", "S"), _attr("sk", "S"), _attr("added", "S")],
             GlobalSecondaryIndexes=[_index("by-added", "added")]),
        "table {t}: index 'by-added' has key attribute 'added' of type S (string); policy-engine writes 'added' "
        "as N (number)"),
}


@pytest.mark.parametrize("layout", sorted(WRONG_LAYOUTS))
def test_a_table_policy_engine_cannot_use_is_refused_with_what_differs_and_left_unchanged(backend, layout):
    # GIVEN an existing table with an item in it
    client = backend.client()
    name = fresh_name()
    spec, expected = WRONG_LAYOUTS[layout]
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
    item = {d["AttributeName"]: ({"S": "x"} if d["AttributeType"] == "S" else
                                 {"N": "1"} if d["AttributeType"] == "N" else {"B": b"x"})
            for d in spec["AttributeDefinitions"]}
    client.put_item(TableName=name, Item=item)

    def state():
        backups = None
        if backend.name == "moto":  # DynamoDB Local has no backups API
            backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        table = client.describe_table(TableName=name)["Table"]
        return client.scan(TableName=name)["Items"], backups, table["KeySchema"], table["AttributeDefinitions"]

    before = state()
    # WHEN migrate runs (listing or applying) THEN one error says what differs, and nothing changed
    for dry_run in (True, False):
        with pytest.raises(StoreError) as refused:
            migrate(name, dry_run=dry_run)
        assert str(refused.value) == expected.format(t=name)
    assert state() == before


def test_an_extra_index_on_an_attribute_policy_engine_does_not_write_is_fine(backend):
    client = backend.client()
    name = fresh_name()
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=OURS,
                        AttributeDefinitions=[_attr("pk", "S"), _attr("sk", "S"), _attr("team", "S"),
                                              _attr("arn", "S")],
                        GlobalSecondaryIndexes=[_index("by-team", "team"), _index("by-arn", "arn")])
    assert migrate(name).applied == STEPS


def test_the_declared_item_attributes_are_the_ones_sync_writes(table, backend, tmp_path):
    # The index check above relies on this map; it must describe every attribute the
    # stores write (mappings of every form, versions, the pointer with a claim,
    # candidates and their records, migration records).
    import shutil

    from policy_engine.admin.migrate import ITEM_ATTRIBUTES
    from policy_engine.admin.publish import sync
    from policy_engine.admin.publish.dynamodb import DynamoDbStore
    from tests.stores import ROOT

    folder = tmp_path / "permissions"
    shutil.copytree(ROOT / "permissions", folder)
    arn = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
    (folder / "grants.yaml").write_text(f"apis:\n  - arn: {arn}\n    stages: [dev]\n    routes:\n"
                                        "      GET /health: [{authenticated: true}]\n")
    sync(folder, f"dynamodb://{table}")
    # candidates: one replaced, one promoted (its pointer item and records), one still there
    from policy_engine.admin.publish import promote

    (folder / "more.yaml").write_text(f"apis:\n  - arn: {arn}\n    stages: [dev]\n    routes:\n"
                                      "      GET /more: [more:read]\n")
    sync(folder, f"dynamodb://{table}", candidate=True)
    (folder / "more.yaml").write_text(f"apis:\n  - arn: {arn}\n    stages: [dev]\n    routes:\n"
                                      "      GET /more: [more:write]\n")
    sync(folder, f"dynamodb://{table}", candidate=True)
    promote(f"dynamodb://{table}")
    (folder / "more.yaml").unlink()
    sync(folder, f"dynamodb://{table}", candidate=True)
    DynamoDbStore(table).claim(2, "someone")
    written = {(name, next(iter(value))) for item in backend.client().scan(TableName=table)["Items"]
               for name, value in item.items()}
    assert written == set(ITEM_ATTRIBUTES.items())


def test_migration_0002_gives_a_table_published_before_snapshots_the_snapshot_readers_load(table, backend, tmp_path):
    from policy_engine.admin.publish import load_desired, sync
    from policy_engine.core.publish import keys_of
    from tests.faults import many_routes, write_permissions

    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(30))
    sync(yaml_file, f"dynamodb://{table}")
    # GIVEN the table as a release without snapshots left it: no parts, a pointer without
    # snapshot attributes, and no record of step 0002
    client = backend.client()
    for item in client.scan(TableName=table)["Items"]:
        if item["pk"]["S"].startswith("SNAPSHOT#") or item["sk"]["S"] == "MIGRATION#0002":
            client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="REMOVE #s, snapshot_parts, snapshot_sha256, snapshot_bytes",
                       ExpressionAttributeNames={"#s": "snapshot"})  # a reserved word
    with pytest.raises(StoreError, match="stored no snapshot; run `policy-engine migrate`"):
        DynamoDbPermissionSource(table).fetch(None)
    # WHEN migrate runs THEN only 0002 is pending, and it adds the snapshot of v1 (no new version)
    result = migrate(table)
    assert result.applied == ("0002_snapshots",)
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and raw.version == "v1"
    from policy_engine.core.permissions import compile_records

    assert keys_of(compile_records(raw.records, raw.locate)) == load_desired(yaml_file)
    assert migrate(table).applied == ()  # and it is recorded: never run twice


def test_a_version_an_older_release_published_after_0002_gets_its_snapshot_from_the_next_migrate(
        table, backend, tmp_path):
    from policy_engine.admin.publish import sync
    from tests.faults import many_routes, write_permissions

    # GIVEN step 0002 recorded, then a sync of a release without snapshots: the pointer
    # names a version with no snapshot (the authorizer refuses it and says: migrate)
    sync(write_permissions(tmp_path / "p.yaml", many_routes(30)), f"dynamodb://{table}")
    client = backend.client()
    for item in client.scan(TableName=table)["Items"]:
        if item["pk"]["S"].startswith("SNAPSHOT#"):
            client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    client.update_item(TableName=table, Key={"pk": {"S": "META"}, "sk": {"S": "PUBLISHED"}},
                       UpdateExpression="REMOVE #s, snapshot_parts, snapshot_sha256, snapshot_bytes",
                       ExpressionAttributeNames={"#s": "snapshot"})
    with pytest.raises(StoreError, match="stored no snapshot; run `policy-engine migrate`"):
        DynamoDbPermissionSource(table).fetch(None)
    said: list[str] = []
    # WHEN migrate runs THEN nothing is pending, and the snapshot is written all the same
    assert migrate(table, say=said.append).applied == ()
    assert said == ["wrote the snapshot of v1 (published without one, by an older release)"]
    raw = DynamoDbPermissionSource(table).fetch(None)
    assert raw is not None and raw.version == "v1"
    said.clear()
    migrate(table, say=said.append)
    assert said == []  # an intact snapshot is left alone
