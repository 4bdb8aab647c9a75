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
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from policy_engine.core.grants import grant_key
from policy_engine.core.permissions import (
    AUTHENTICATED,
    FIELD_RULES,
    GRANT_FIELDS,
    NOBODY,
    FieldProblem,
    Fields,
    Locate,
    grant_value_rule,
    requirement_text,
)

__all__ = ["MappingRecord", "SchemaError", "describe", "schema_fields"]

#: What ``schema_fields`` raises for a record the schema refuses.
SchemaError = ValidationError


def _custom(problem: FieldProblem, path: tuple[int | str, ...] = ()) -> PydanticCustomError:
    # ctx values are inserted by pydantic, in order and each into the text so far; repr()
    # keeps quotes and shows odd characters. The value goes last, so that no '{path}' it
    # may hold is filled in turn.
    return PydanticCustomError(problem.kind, problem.template, {"path": path, "value": repr(problem.value)})


class MappingRecord(BaseModel):
    """One permission mapping, as the AWS Security Blog's document writes it, with exactly
    one of ``scope``, ``group``, ``role``, ``allOf``, ``authenticated`` and ``nobody``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=False)

    arn: str
    stage: str
    http_verb: str = Field(alias="httpVerb")
    resource: str
    scope: str | None = None
    group: str | None = None
    role: str | None = None
    all_of: dict[str, list[str]] | None = Field(default=None, alias="allOf")
    authenticated: StrictBool | None = None
    nobody: StrictBool | None = None
    description: str | None = None

    @field_validator("arn", "stage", "http_verb", "resource", "scope", "group", "role")
    @classmethod
    def _rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return FIELD_RULES[info.field_name or ""](value)
        except FieldProblem as problem:
            raise _custom(problem) from None

    @field_validator("all_of")
    @classmethod
    def _all_of(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is None:
            return None
        if not any(value.values()):
            raise PydanticCustomError("all_of_empty", "allOf needs at least one grant (as in {scope: [pets:read]})")
        kind_rule = FIELD_RULES["kind"]
        out: dict[str, list[str]] = {}
        for kind, values in value.items():
            try:
                kind_rule(kind)
            except FieldProblem as problem:
                raise _custom(problem, (kind,)) from None
            rule = grant_value_rule(kind)
            for i, item in enumerate(values):
                try:
                    rule(item)
                except FieldProblem as problem:
                    raise _custom(problem, (kind, i)) from None
            if values:
                out[kind] = sorted(set(values))
        return out

    @model_validator(mode="after")
    def _one_grant(self) -> MappingRecord:
        given = [name for name in GRANT_FIELDS if _ALIASES_BACK.get(name, name) in self.model_fields_set]
        if not given:
            raise PydanticCustomError("grant_missing", "a mapping needs one of scope, group, role, allOf, "
                                      "authenticated or nobody", {"field": ""})
        if len(given) > 1:
            raise PydanticCustomError("grant_twice", f"a mapping has exactly one of scope, group, role, allOf, "
                                      f"authenticated and nobody; this one has {' and '.join(given)} (for several "
                                      "grants at once use allOf; for any of them, write one mapping each)",
                                      {"field": given[1]})
        name = given[0]
        if name != "allOf" and getattr(self, name) is None:
            raise PydanticCustomError("grant_null", f"{name} must have a value", {"field": name})
        if name == "allOf" and self.all_of is None:
            raise PydanticCustomError("grant_null", "allOf must map kinds to lists of values", {"field": name})
        if self.authenticated is False:
            raise PydanticCustomError(
                "authenticated_false", "authenticated must be true (false grants nothing: leave the mapping out)",
                {"field": "authenticated"})
        if self.nobody is False:
            raise PydanticCustomError(
                "nobody_false", "nobody must be true (it marks a route no caller is granted)", {"field": "nobody"})
        return self

    @property
    def needs(self) -> str:
        """The record's needs text (``core.permissions.requirement_text``)."""
        if self.scope is not None:
            return self.scope
        if self.authenticated:
            return AUTHENTICATED
        if self.nobody:
            return NOBODY
        if self.group is not None:
            return requirement_text((grant_key("group", self.group),))
        if self.role is not None:
            return requirement_text((grant_key("role", self.role),))
        assert self.all_of is not None
        return requirement_text(grant_key(kind, value) for kind, values in self.all_of.items() for value in values)


def schema_fields(raw: Any) -> Fields:
    """``(arn, stage, verb, resource, needs)`` of ``raw`` in canonical form.

    Raises:
        SchemaError: the record breaks the schema (``describe`` words each problem).
    """
    record = MappingRecord.model_validate(raw)
    return record.arn, record.stage, record.http_verb, record.resource, record.needs


_ALIASES = {"http_verb": "httpVerb", "all_of": "allOf"}
_ALIASES_BACK = {alias: name for name, alias in _ALIASES.items()}
_EXPECTED = ("arn, stage, httpVerb, resource, description and one of scope, group, role, allOf, authenticated, "
             "nobody")


def describe(exc: ValidationError, prefix: tuple[int | str, ...], locate: Locate) -> list[str]:
    """One line per problem in ``exc``, each starting with its place (``locate(prefix + field)``)."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(_ALIASES.get(str(p), p) for p in error["loc"])
        ctx = error.get("ctx") or {}
        if not loc and ctx.get("field"):
            loc = (ctx["field"],)
        loc = loc + tuple(ctx.get("path") or ())
        where = locate(prefix + loc)
        field = ".".join(str(p) for p in loc)
        kind = error["type"]
        if kind == "missing":
            message = f"{field} is required"
        elif kind == "extra_forbidden":
            message = f"unknown field {field!r} (expected {_EXPECTED})"
        elif kind == "model_type" or (kind == "dict_type" and not loc):
            message = ("a mapping must be an object with arn, stage, httpVerb, resource and one of scope, group, "
                       "role, allOf, authenticated, nobody")
        elif kind == "dict_type":
            message = f"{field} must map grant kinds to lists of values (as in {{scope: [pets:read]}})"
        elif kind == "string_type":
            message = f"{field} must be a string"
        elif kind == "list_type":
            message = f"{field} must be a list of values"
        elif kind == "bool_type":
            message = f"{field} must be true"
        else:
            message = error["msg"]
        out.append(f"{where}: {message}")
    return out
