"""Grants: what a caller holds (scopes, groups, roles, any named kind), and where it is read.

A grant is a *kind* and a *value*: a group called ``admin``, a role called ``admin``
and a scope called ``admin`` are three different grants. Inside the engine a grant is
one string, its *grant key*: a scope is its own key (so a scopes-only configuration
works on exactly the strings it always did), any other kind is ``"<kind> <value>"``.
A scope token never contains a space (RFC 6749 §3.3), so the two forms never collide,
and a key splits back at its first space.

A caller's grants are read from *grant sources*: claims of the token, each with a kind.
A claim is named by a path: a top-level name (``scope``, ``cognito:groups``), a nested
path into objects written with dots (``realm_access.roles``,
``resource_access.pets-api.roles``; a dot that is part of a name is written ``\\.``, as in
``resource_access.pets\\.api.roles`` for a client ``pets.api``, and a backslash ``\\\\``), or a
collision-resistant name taken whole (a name starting with ``https://``, ``http://`` or
``urn:``, such as Auth0's namespaced ``https://example.com/roles``, whose dots are part of
the name: RFC 7519 §4.2). A name with a ``/`` that is not such a URL is refused: it is a URL
written without its scheme (``example.com/roles``), which would be read as a path.

Tenant placeholders: a mapping's resource may hold ``{claim:<path>}`` as a whole path
segment, filled with the caller's own claim value. The value must be exactly one safe
path segment (``placeholder_value``), so no claim can widen what a mapping grants.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from policy_engine.core.memo import Memo
from policy_engine.errors import InvalidClaimsError

__all__ = [
    "COMMON_GRANT_CLAIMS",
    "KIND_PATTERN",
    "MAX_PLACEHOLDER_VALUE",
    "PLACEHOLDER",
    "SCOPE",
    "ClaimPath",
    "GrantSource",
    "claim_path_text",
    "grant_key",
    "parse_claim_path",
    "placeholder_value",
    "read_claim",
    "read_grants",
    "split_grant_key",
    "unconfigured_grant_claims",
]

#: The kind of an OAuth scope; its grant key is the scope itself.
SCOPE = "scope"

#: What a kind may be called: a lower-case identifier.
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")

#: A claim path: the names from the top-level object inwards.
ClaimPath = tuple[str, ...]

# Names taken whole, never split on dots: collision-resistant claim names.
_WHOLE_NAME_PREFIXES = ("https://", "http://", "urn:")

#: ``{claim:<path>}`` in a mapping's resource. The path has no braces and no ``/`` (it
#: sits inside one path segment), so URL-named claims cannot be placeholders.
PLACEHOLDER = re.compile(r"\{claim:([^{}/\s]+)\}")

#: The longest claim value a placeholder accepts.
MAX_PLACEHOLDER_VALUE = 128

# One path segment made of unreserved characters (RFC 3986 §2.3) and a few
# sub-delimiters: never '*' or '?' (IAM wildcards), '/', whitespace, control
# characters, '%' (an encoding), '{', '}' or '$'.
_SEGMENT = re.compile(rf"[A-Za-z0-9._~@+=,:-]{{1,{MAX_PLACEHOLDER_VALUE}}}")

#: Claims identity providers commonly carry grants in: named in the decision log and by
#: ``explain`` when a token has one of them but no configured source reads it.
COMMON_GRANT_CLAIMS = ("scope", "scp", "roles", "groups", "permissions", "cognito:groups", "realm_access",
                       "resource_access", "entitlements",
                       # Entra's groups overage: the groups were too many to put in the token.
                       "_claim_names")


def grant_key(kind: str, value: str) -> str:
    """The engine's one string for the grant ``value`` of ``kind``."""
    return value if kind == SCOPE else f"{kind} {value}"


def split_grant_key(key: str) -> tuple[str, str]:
    """``(kind, value)`` of a grant key (the inverse of ``grant_key``)."""
    kind, space, value = key.partition(" ")
    return (kind, value) if space else (SCOPE, key)


def parse_claim_path(text: str) -> ClaimPath:
    """The path a claim name stands for (see the module docstring).

    Raises:
        ValueError: empty, or an empty segment (``a..b``, a leading or trailing dot).
    """
    if not text or text != text.strip():
        raise ValueError(f"claim {text!r} is empty or has surrounding spaces")
    if text.startswith(_WHOLE_NAME_PREFIXES):
        return (text,)
    if "/" in text:
        raise ValueError(f"claim {text!r} holds a '/': write a URL-named claim whole, with its scheme "
                         "(https://example.com/roles)")
    parts: list[str] = []
    part: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            if char not in ".\\":
                raise ValueError(f"claim {text!r}: a backslash escapes only '.' or '\\'")
            part.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(part))
            part = []
        else:
            part.append(char)
    if escaped:
        raise ValueError(f"claim {text!r} ends with a lone backslash")
    parts.append("".join(part))
    if any(not name for name in parts):
        raise ValueError(f"claim {text!r} has an empty segment between dots")
    return tuple(parts)


def claim_path_text(path: ClaimPath) -> str:
    """The claim path as written in configuration (``parse_claim_path``'s inverse)."""
    if len(path) == 1 and path[0].startswith(_WHOLE_NAME_PREFIXES):
        return path[0]
    return ".".join(name.replace("\\", "\\\\").replace(".", "\\.") for name in path)


_MISSING: Any = object()


def read_claim(payload: Mapping[str, Any], path: ClaimPath) -> Any:
    """The value at ``path`` in ``payload``, or ``None`` when any step is missing or not an object.

    A JSON ``null`` reads as missing too: no grant, no placeholder value.
    """
    value: Any = payload
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
        if value is None:
            return None
    return value


#: What ``_grant_claim`` answers for a claim the token does not have.
_ABSENT: Any = object()


def _grant_claim(payload: Mapping[str, Any], path: ClaimPath) -> Any:
    """The value of the grant claim at ``path``, or ``_ABSENT`` when a step is missing.

    Unlike ``read_claim``, a claim that is present is never read as missing: a JSON
    ``null``, or a step through a value that is not an object, is a claim of the wrong
    type, which refuses the token (the next alternative of a source is not read).

    Raises:
        InvalidClaimsError: a ``null`` on the path, or a step through a non-object.
    """
    value: Any = payload
    for index, name in enumerate(path):
        if value.__class__ is not dict:
            raise InvalidClaimsError(f"{claim_path_text(path[:index])} claim is not an object")
        value = value.get(name, _ABSENT)
        if value is _ABSENT:
            return _ABSENT
        if value is None:
            raise InvalidClaimsError(f"{claim_path_text(path[:index + 1])} claim is null")
    return value


class GrantSource(NamedTuple):
    """Where grants of one kind are read: the first present claim of ``paths``.

    Most sources name one claim. ``SCOPE_CLAIMS`` names several alternatives
    (``scope``, ``scp``), of which the first present is read, as it always was.
    """

    kind: str
    paths: tuple[ClaimPath, ...]

    @property
    def text(self) -> str:
        """The source as configuration writes it (``kind:claim``, alternatives joined by ``|``)."""
        return f"{self.kind}:" + "|".join(claim_path_text(p) for p in self.paths)


def _values(
    value: Any, path: ClaimPath, known: Memo[Hashable, frozenset[str]] | None, scope: bool
) -> frozenset[str]:
    if isinstance(value, str) and not scope:
        # A group or role written as a string is one name, spaces and all: providers write
        # a single value so ("Pet Sitters"), and split it would grant "Pet" and "Sitters".
        return frozenset((value,)) if value else frozenset()
    if isinstance(value, str):
        # Guard: a string split before splits the same way again.
        split = known.get(value) if known is not None else None
        if split is None:
            split = frozenset(part for part in value.split(" ") if part)
            if known is not None:
                known.remember(value, split)
        return split
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        if scope:
            # A list item with a space is no scope token (RFC 6749 §3.3). Kept, it would be
            # read as the grant key of another kind ("group admin"): it grants nothing.
            return frozenset(part for part in value if part and " " not in part)
        return frozenset(part for part in value if part)
    raise InvalidClaimsError(f"{claim_path_text(path)} claim is not a string or a list of strings")


def read_grants(
    payload: Mapping[str, Any], sources: Sequence[GrantSource], known: Memo[Hashable, frozenset[str]] | None = None
) -> frozenset[str]:
    """The caller's grant keys: the union over ``sources``.

    Each source reads the first of its claims that is present. A scope string is split on
    single spaces (RFC 6749 §3.3; other whitespace stays inside a value, which then
    matches nothing); a string of any other kind is one value; a list must hold only
    strings. Matching later is exact and
    case-sensitive. ``known`` is the caller's memo of grant sets already read
    (``core.memo``): a container sees a handful of distinct ones, one per client
    profile, and handing back the same set object keeps every memo keyed by it fast.

    Raises:
        InvalidClaimsError: a source's claim has any other type.
    """
    if len(sources) == 1 and sources[0].kind == SCOPE:
        # Guard (scopes only, the default): the split set is the grant set itself.
        for path in sources[0].paths:
            value = payload.get(path[0], _ABSENT) if len(path) == 1 else _grant_claim(payload, path)
            if value is not _ABSENT:
                return _values(value, path, known, True)
        return frozenset()
    # Guard: the same claim values as a set read before give that set. Only strings
    # and lists are looked up (as strings and tuples); any other value goes to the rule,
    # which refuses it, and only what the rule accepted is remembered.
    key: tuple[Any, ...] | None = None
    if known is not None:
        parts: list[Any] = []
        for source in sources:
            value = _ABSENT
            for path in source.paths:
                value = payload.get(path[0], _ABSENT) if len(path) == 1 else _grant_claim(payload, path)
                if value is not _ABSENT:
                    break
            if value.__class__ is list:
                value = tuple(value)
            elif value is not _ABSENT and value.__class__ is not str:
                break  # null, or another type: the rule refuses it
            parts.append(value)
        else:
            key = tuple(parts)
            try:
                found = known.get(key)
            except TypeError:  # a list holding a list or an object: the rule refuses it
                key, found = None, None
            if found is not None:
                return found
    grants: set[str] = set()
    for source in sources:
        for path in source.paths:
            value = _grant_claim(payload, path)
            if value is _ABSENT:
                continue
            values = _values(value, path, None, source.kind == SCOPE)
            if source.kind == SCOPE:
                grants.update(values)
            else:
                prefix = source.kind + " "
                grants.update(prefix + v for v in values)
            break
    result = frozenset(grants)
    if key is not None and known is not None:
        known.remember(key, result)
    return result


def placeholder_value(payload: Mapping[str, Any], path: ClaimPath) -> str | None:
    """The caller's value for a ``{claim:<path>}`` placeholder, or ``None`` when refused.

    Only a string (or an integer, written in decimal) that is exactly one safe path
    segment is accepted: up to ``MAX_PLACEHOLDER_VALUE`` characters of
    ``A-Z a-z 0-9 . _ ~ @ + = , : -``, and not ``.`` or ``..``. Anything else (missing,
    empty, ``*``, ``?``, ``/``, whitespace, control characters, percent-encoding,
    another type) is refused, and the mapping then grants nothing.
    """
    value = read_claim(payload, path)
    if value.__class__ is int:
        value = str(value)
    if value.__class__ is not str or _SEGMENT.fullmatch(value) is None or value in (".", ".."):
        return None
    return str(value)


def unconfigured_grant_claims(payload: Mapping[str, Any], sources: Collection[GrantSource]) -> tuple[str, ...]:
    """Names of ``COMMON_GRANT_CLAIMS`` present in ``payload`` that no source reads.

    Claim names only, never their contents: the decision log and ``explain`` use it to
    say why a token with groups or roles was granted nothing.
    """
    read = {path[0] for source in sources for path in source.paths}
    return tuple(name for name in COMMON_GRANT_CLAIMS if name in payload and name not in read)
