"""migrate: numbered idempotent steps, recorded in the table; on moto and DynamoDB Local."""

from __future__ import annotations

import shutil
import uuid

import pytest

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource
from policy_engine.errors import StoreError
from policy_engine.migrate import MIGRATIONS_DIR, migrate


def fresh_name() -> str:
    return f"perm-{uuid.uuid4().hex[:10]}"


def test_dry_run_lists_and_changes_nothing_then_migrate_creates_and_records(backend):
    client = backend.client()
    name = fresh_name()
    planned = migrate(name, dry_run=True)
    assert planned.pending == ("0001_create_table",) and planned.applied == ()
    assert name not in client.list_tables()["TableNames"]

    done = migrate(name)
    assert done.applied == ("0001_create_table",)
    table = client.describe_table(TableName=name)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    if backend.name == "moto":  # DynamoDB Local has no backups API at all
        backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    record = client.get_item(TableName=name, Key={"pk": {"S": "META"}, "sk": {"S": "MIGRATION#0001"}})["Item"]
    assert record["name"]["S"] == "0001_create_table"

    again = migrate(name)
    assert again.pending == () and again.already_applied == ("0001_create_table",)


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
    with pytest.raises(StoreError, match="policy-engine needs pk"):
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
