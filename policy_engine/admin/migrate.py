"""Table migrations: numbered, idempotent steps in ``migrations/`` (shipped with the package), recorded in the table.

A step is a file ``NNNN_name.py`` defining ``DESCRIPTION`` and ``apply(ctx)``. ``migrate``
runs the steps whose number has no ``pk=META, sk=MIGRATION#NNNN`` item yet, in order,
and writes that item after each one succeeds. Steps are written to be safe to run
again (a step that died half-way is simply re-run), so re-running ``migrate`` is
harmless. This is the only code that creates or alters a table.

Before any step, an existing table's key schema and attribute types are checked
against the layout the stores use (``TABLE_KEYS``, ``ITEM_ATTRIBUTES``): a table
policy-engine cannot use is refused with what differs, and nothing is changed.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from policy_engine.admin.resources import MIGRATIONS
from policy_engine.errors import ConfigurationError, StoreError

__all__ = ["ITEM_ATTRIBUTES", "MIGRATIONS_DIR", "TABLE_KEYS", "MigrateResult", "Step", "layout_problems",
           "load_steps", "migrate"]

#: The steps shipped with this version (``migrations/`` of the repository): the layout its stores use.
MIGRATIONS_DIR = MIGRATIONS
_STEP_FILE = re.compile(r"(\d{4})_(\w+)\.py")

#: The table's key, as every store operation addresses items: (attribute, KeyType, AttributeType).
TABLE_KEYS = (("pk", "HASH", "S"), ("sk", "RANGE", "S"))

#: Every attribute the stores and ``migrate`` write, with its type. DynamoDB refuses an
#: item whose attribute is the key of an index with another type, so an index keyed on
#: one of these with another type would make every sync fail.
ITEM_ATTRIBUTES = {
    "pk": "S", "sk": "S",
    # mapping items
    "arn": "S", "stage": "S", "httpVerb": "S", "resource": "S", "scope": "S", "requirement": "S", "added": "N",
    "removed": "N",
    # the pointer, its claim, and one item per version
    "version": "N", "digest": "S", "mappings": "N", "published_at": "S", "note": "S", "owner": "S",
    "claim_owner": "S", "claim_version": "N", "claim_expires": "N", "claim_started": "N",
    # the candidate's pointer and the records of ended candidates
    "based_on": "N", "last_candidate": "N", "status": "S", "promoted_to": "N", "replaced_by": "N", "ended_at": "S",
    # the pointer's snapshot, and the snapshot parts
    "snapshot": "S", "snapshot_parts": "N", "snapshot_sha256": "S", "snapshot_bytes": "N", "data": "B",
    # migration records
    "name": "S", "description": "S", "applied_at": "S",
}

_TYPE_NAMES = {"S": "string", "N": "number", "B": "binary"}


def _typed(kind: str) -> str:
    return f"{kind} ({_TYPE_NAMES.get(kind, 'unknown type')})"


def layout_problems(table: str, description: dict[str, Any]) -> list[str]:
    """What makes an existing table unusable by policy-engine (empty: nothing), from ``DescribeTable``."""
    types = {d["AttributeName"]: d["AttributeType"] for d in description.get("AttributeDefinitions", [])}
    keys = [(k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", [])]
    key_names = {name for name, _ in keys}
    problems = []
    if sorted(keys) != sorted((name, kind) for name, kind, _ in TABLE_KEYS):
        ours = " and ".join(f"{name} ({kind})" for name, kind, _ in TABLE_KEYS)
        problems.append(f"table {table}: its key is {', '.join(f'{n} ({k})' for n, k in keys)}; "
                        f"policy-engine expects {ours}")
    for name, _, wanted in TABLE_KEYS:
        if name in key_names and types.get(name, wanted) != wanted:
            problems.append(f"table {table}: key attribute '{name}' is {_typed(types[name])}; "
                            f"policy-engine expects {_typed(wanted)}")
    indexes = description.get("GlobalSecondaryIndexes", []) + description.get("LocalSecondaryIndexes", [])
    for index in indexes:
        for key in index.get("KeySchema", []):
            attribute = key["AttributeName"]
            written, actual = ITEM_ATTRIBUTES.get(attribute), types.get(attribute)
            if attribute not in key_names and written is not None and actual is not None and actual != written:
                problems.append(f"table {table}: index '{index['IndexName']}' has key attribute '{attribute}' of "
                                f"type {_typed(actual)}; policy-engine writes '{attribute}' as {_typed(written)}")
    return problems


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    name: str
    description: str
    module: ModuleType = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.number:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrateResult:
    table: str
    already_applied: tuple[str, ...]
    pending: tuple[str, ...]
    applied: tuple[str, ...]


def load_steps(directory: Path = MIGRATIONS_DIR) -> list[Step]:
    """The migration steps in ``directory``, in number order.

    Raises:
        ConfigurationError: the folder is missing, a number repeats, or a step lacks ``apply``.
    """
    if not directory.is_dir():
        raise ConfigurationError("MIGRATIONS", f"{directory}: no migrations folder")
    steps: dict[int, Step] = {}
    for path in sorted(directory.glob("*.py")):
        match = _STEP_FILE.fullmatch(path.name)
        if not match:
            continue
        number = int(match.group(1))
        if number in steps:
            raise ConfigurationError("MIGRATIONS", f"{path}: migration number {number:04d} is used twice")
        spec = importlib.util.spec_from_file_location(f"_policy_engine_migration_{number:04d}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not callable(getattr(module, "apply", None)):
            raise ConfigurationError("MIGRATIONS", f"{path}: defines no apply(ctx)")
        steps[number] = Step(number, match.group(2), str(getattr(module, "DESCRIPTION", "")), module)
    return [steps[n] for n in sorted(steps)]


class _Context:
    """What a step gets: the raw client, the table name, and a few helpers."""

    def __init__(self, client: Any, table: str, say: Callable[[str], None]) -> None:
        self.client = client
        self.table = table
        self.say = say

    def describe_table(self) -> dict[str, Any] | None:
        try:
            return dict(self.client.describe_table(TableName=self.table)["Table"])
        except Exception as exc:
            from policy_engine.admin.aws import error_code

            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def fail(self, message: str) -> None:
        raise StoreError(message)

    def check_layout(self, description: dict[str, Any]) -> None:
        """Refuse a table policy-engine cannot use (``layout_problems``), with every difference."""
        problems = layout_problems(self.table, description)
        if problems:
            self.fail("; ".join(problems))


def _applied(store: Any, ctx: _Context) -> set[int]:
    from policy_engine.adapters.dynamodb import META, MIGRATION_PREFIX

    description = ctx.describe_table()
    if description is None:
        return set()
    # Before anything is read or written: on a table with other key types, DynamoDB only
    # says "Type mismatch for key", and a step may already have changed the table by then.
    ctx.check_layout(description)
    numbers = set()
    for item in store.query(META, consistent=True):
        sk = item.get("sk", {}).get("S", "")
        if sk.startswith(MIGRATION_PREFIX) and sk[len(MIGRATION_PREFIX):].isdigit():
            numbers.add(int(sk[len(MIGRATION_PREFIX):]))
    return numbers


def migrate(
    table: str,
    *,
    dry_run: bool = False,
    client: Any = None,
    directory: Path = MIGRATIONS_DIR,
    say: Callable[[str], None] = lambda message: None,
) -> MigrateResult:
    """Apply the pending migration steps to ``table`` (``dry_run``: only list them).

    Raises:
        ConfigurationError: a bad migrations folder or table name.
        StoreError: the table exists with keys or index key types policy-engine cannot use
            (nothing changed, also with ``dry_run``), or DynamoDB refused a step (the step
            is not recorded; re-run after fixing).
    """
    from policy_engine.adapters.dynamodb import META, MIGRATION_PREFIX
    from policy_engine.admin.aws import store_error
    from policy_engine.admin.publish.dynamodb import DynamoDbStore

    store = DynamoDbStore(table, client=client)
    ctx = _Context(store.client, table, say)
    steps = load_steps(directory)
    try:
        done = _applied(store, ctx)
    except StoreError:
        raise
    except Exception as exc:
        raise store_error(exc, store.description) from exc
    pending = [s for s in steps if s.number not in done]
    applied: list[str] = []
    if not dry_run:
        for step in pending:
            say(f"applying {step.label}: {step.description}")
            try:
                step.module.apply(ctx)
            except StoreError:
                raise
            except Exception as exc:
                raise store_error(exc, f"{store.description} migration {step.label}") from exc
            store.call("put_item", Item={
                "pk": {"S": META}, "sk": {"S": f"{MIGRATION_PREFIX}{step.number:04d}"},
                "name": {"S": step.label}, "description": {"S": step.description},
                "applied_at": {"S": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
            })
            applied.append(step.label)
        # A step applied before may have to be checked again: a release that predates it
        # may have written to the table since (a step's optional ``recheck(ctx)``).
        for step in steps:
            recheck = getattr(step.module, "recheck", None)
            if step.number in done and recheck is not None:
                try:
                    recheck(ctx)
                except StoreError:
                    raise
                except Exception as exc:
                    raise store_error(exc, f"{store.description} migration {step.label}") from exc
    labels = {s.number: s.label for s in steps}
    return MigrateResult(
        table,
        tuple(labels.get(n, f"{n:04d}") for n in sorted(done)),
        tuple(s.label for s in pending),
        tuple(applied),
    )
