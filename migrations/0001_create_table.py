"""Create the permission table: string keys pk/sk, on-demand billing, point-in-time recovery.

Idempotent: a table that already exists (created by an earlier run, or by your
infrastructure code) is checked for the right keys and only gets what it lacks.
"""

from __future__ import annotations

from typing import Any

DESCRIPTION = "create the table (pk/sk strings, PAY_PER_REQUEST) and turn on point-in-time recovery"


def apply(ctx: Any) -> None:
    from policy_engine.admin.migrate import TABLE_KEYS

    client, table = ctx.client, ctx.table
    description = ctx.describe_table()
    if description is None:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind, _ in TABLE_KEYS],
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": type_} for name, _, type_ in TABLE_KEYS],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ctx.say(f"created table {table} (PAY_PER_REQUEST)")
    else:
        ctx.check_layout(description)
        ctx.say(f"table {table} already exists with the right keys")
    try:
        status = client.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    except Exception as exc:
        # DynamoDB Local has no backups API at all (UnknownOperationException); AWS does.
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "UnknownOperationException":
            ctx.say("this endpoint has no point-in-time recovery API (DynamoDB Local?); skipped")
            return
        raise
    pitr = status.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    if pitr != "ENABLED":
        client.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        ctx.say("turned on point-in-time recovery")
