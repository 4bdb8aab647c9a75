"""The one schema of a permission mapping record, as a pydantic model.

``MappingRecord`` is the definition: which keys a record has, their types, and (through
``core.permissions.FIELD_RULES``) what each value may be and its canonical form.
``compile_records`` asks it about every record ``check_record`` does not vouch for, and
it alone words the problems; ``check_record`` is held to it by a property test.

Imported only when a record needs it (a refused or unusual record, the admin tools), so
a cold start that loads valid mappings does not pay for building the model.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from policy_engine.core.permissions import FIELD_RULES, FieldProblem, Fields, Locate

__all__ = ["MappingRecord", "SchemaError", "describe", "schema_fields"]

#: What ``schema_fields`` raises for a record the schema refuses.
SchemaError = ValidationError


class MappingRecord(BaseModel):
    """One permission mapping, as the AWS Security Blog's document writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=False)

    arn: str
    stage: str
    http_verb: str = Field(alias="httpVerb")
    resource: str
    scope: str
    description: str | None = None

    @field_validator("arn", "stage", "http_verb", "resource", "scope")
    @classmethod
    def _rule(cls, value: str, info: ValidationInfo) -> str:
        try:
            return FIELD_RULES[info.field_name or ""](value)
        except FieldProblem as problem:
            # ctx values are inserted by pydantic; repr() keeps quotes and shows odd characters.
            raise PydanticCustomError(problem.kind, problem.template, {"value": repr(problem.value)}) from None


def schema_fields(raw: Any) -> Fields:
    """``(arn, stage, verb, resource, scope)`` of ``raw`` in canonical form.

    Raises:
        SchemaError: the record breaks the schema (``describe`` words each problem).
    """
    record = MappingRecord.model_validate(raw)
    return record.arn, record.stage, record.http_verb, record.resource, record.scope


_ALIASES = {"http_verb": "httpVerb"}


def describe(exc: ValidationError, prefix: tuple[int | str, ...], locate: Locate) -> list[str]:
    """One line per problem in ``exc``, each starting with its place (``locate(prefix + field)``)."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(_ALIASES.get(str(p), p) for p in error["loc"])
        where = locate(prefix + loc)
        field = ".".join(str(p) for p in loc)
        kind = error["type"]
        if kind == "missing":
            message = f"{field} is required"
        elif kind == "extra_forbidden":
            message = f"unknown field {field!r} (expected arn, stage, httpVerb, resource, scope)"
        elif kind in {"model_type", "dict_type"}:
            message = "a mapping must be an object with arn, stage, httpVerb, resource and scope"
        elif kind == "string_type":
            message = f"{field} must be a string"
        else:
            message = error["msg"]
        out.append(f"{where}: {message}")
    return out
