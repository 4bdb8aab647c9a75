"""Table migrations: numbered, idempotent steps in ``migrations/``, recorded in the table.

A step is a file ``NNNN_name.py`` defining ``DESCRIPTION`` and ``apply(ctx)``. ``migrate``
runs the steps whose number has no ``pk=META, sk=MIGRATION#NNNN`` item yet, in order,
and writes that item after each one succeeds. Steps are written to be safe to run
again (a step that died half-way is simply re-run), so re-running ``migrate`` is
harmless. This is the only code that creates or alters a table.
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

from policy_engine.errors import ConfigurationError, StoreError

__all__ = ["MIGRATIONS_DIR", "MigrateResult", "Step", "load_steps", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_STEP_FILE = re.compile(r"(\d{4})_(\w+)\.py")


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
            from policy_engine.adapters.aws import error_code

            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def fail(self, message: str) -> None:
        raise StoreError(message)


def _applied(store: Any, ctx: _Context) -> set[int]:
    from policy_engine.adapters.dynamodb import META, MIGRATION_PREFIX

    description = ctx.describe_table()
    if description is None:
        return set()
    if sorted((k["AttributeName"], k["KeyType"]) for k in description["KeySchema"]) != [("pk", "HASH"), ("sk", "RANGE")]:
        return set()  # not our layout: nothing of ours is applied, and 0001 says why
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
        StoreError: DynamoDB refused a step (the step is not recorded; re-run after fixing).
    """
    from policy_engine.adapters.aws import store_error
    from policy_engine.adapters.dynamodb import META, MIGRATION_PREFIX, DynamoDbStore

    store = DynamoDbStore(table, client=client, admin=True)
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
    labels = {s.number: s.label for s in steps}
    return MigrateResult(
        table,
        tuple(labels.get(n, f"{n:04d}") for n in sorted(done)),
        tuple(s.label for s in pending),
        tuple(applied),
    )
