"""The compiled snapshot: one JSON document holding a whole version of the mappings.

The format ``policy-engine compile`` writes, ``bundle`` ships and the S3 store
publishes (``adapters/s3.py`` describes the publishing around it)::

    {"format": "policy-engine/permissions@1", "version": 7, "digest": "sha256:...",
     "published_at": "...", "note": "...",
     "previous": {"version": 6, "digest": "sha256:...", "sha256": "sha256:<64 hex>"},
     "mappings": [{"arn": ..., "stage": ..., "httpVerb": ..., "resource": ...,
     "scope": ...}, ...]}

A candidate (``sync --candidate``) is the same document with ``version`` its candidate
number and one more member, ``based_on``: the live version it was published against
(0: none). Only candidates have it, so a candidate is never mistaken for a version.

Each mapping is a canonical record (``core.publish.record_of``): ``scope`` for one
scope, else ``allOf`` (kinds and values sorted) or ``authenticated: true``.

``digest`` is the content hash of the mappings (``core.publish.digest``): a document
whose mappings were edited without it is refused as corrupt. That proves nothing about
the values: whoever loads a snapshot still validates every record (``compile_records``).
Pure: bytes in, bytes out; reading and writing them is the adapters' business.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from policy_engine.core.permissions import Locate, content_digest, needs_of
from policy_engine.core.publish import MappingKey, digest, record_of
from policy_engine.errors import CorruptStoreError

__all__ = [
    "FORMAT",
    "Link",
    "Snapshot",
    "decode_snapshot",
    "document_hash",
    "encode_snapshot",
    "is_snapshot",
    "mappings_locator",
    "published_at_of",
    "read_snapshot",
]

#: The ``format`` member of every snapshot.
FORMAT = "policy-engine/permissions@1"


@dataclass(frozen=True, slots=True)
class Link:
    """What was published as the version before a snapshot (its ``previous`` member)."""

    version: int
    digest: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One published version as stored in S3."""

    version: int
    digest: str
    keys: frozenset[MappingKey]
    published_at: str
    note: str
    etag: str
    previous: Link | None = None
    #: A candidate's live version when it was published (``None``: not a candidate).
    based_on: int | None = None
    #: The document exactly as read: a history copy must be these bytes.
    body: bytes = field(default=b"", repr=False, compare=False)

    @property
    def sha256(self) -> str:
        return document_hash(self.body)


def document_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def encode_snapshot(version: int, keys: frozenset[MappingKey], note: str, published_at: str,
                    previous: Snapshot | None = None, *, based_on: int | None = None) -> bytes:
    """The document of ``version``; ``previous`` is the snapshot it replaces (``None`` for the first).

    With ``based_on``, the document of candidate number ``version``, published against
    live version ``based_on``.
    """
    ordered = sorted(keys)
    document: dict[str, Any] = {
        "format": FORMAT, "version": version, "digest": digest(ordered), "published_at": published_at,
        "note": note,
    }
    if based_on is not None:
        document["based_on"] = based_on
    if previous is not None:
        document["previous"] = {"version": previous.version, "digest": previous.digest, "sha256": previous.sha256}
    document["mappings"] = [record_of(k) for k in ordered]
    return json.dumps(document, separators=(",", ":")).encode()


# Every member encode_snapshot writes, in its order.
_MEMBERS_LISTED = ("format", "version", "digest", "published_at", "note", "based_on", "previous", "mappings")
_MEMBERS = frozenset(_MEMBERS_LISTED)


def _link(document: dict[str, Any], version: int, where: str) -> Link | None:
    previous = document.get("previous")
    if previous is None:
        return None
    if not (isinstance(previous, dict) and type(previous.get("version")) is int and previous["version"] == version - 1
            and isinstance(previous.get("digest"), str) and isinstance(previous.get("sha256"), str)):
        raise CorruptStoreError(f"{where}: previous must be {{version: {version - 1}, digest, sha256}}")
    return Link(previous["version"], previous["digest"], previous["sha256"])


# What a snapshot's JSON may hold for its size. A record is at least about 90 bytes and
# holds at most two objects (itself and allOf) and a list per allOf kind: a document with
# more objects or lists for its bytes is none policy-engine wrote, and refusing it early
# bounds the memory a hostile document of PERMISSIONS_MAX_BYTES could take to parse.
_BYTES_PER_OBJECT = 32
_BYTES_PER_LIST = 12


class _TooManyObjects(Exception):
    pass


class _DuplicateMember(Exception):
    pass


def _parse(body: bytes, where: str) -> Any:
    """``body`` parsed as JSON, refused as corrupt when it is not JSON, holds a member name
    twice in one object, or more objects or lists than a snapshot of its size has.

    Every object goes through a Python hook: besides counting, it gives the interpreter a
    chance to switch threads, so a request waiting for a load on another thread (with its
    own deadline) is never held for a whole parse of a large document.
    """
    if body.count(b"[") > len(body) // _BYTES_PER_LIST + 16:
        raise CorruptStoreError(f"{where}: holds more lists than a snapshot of {len(body)} bytes has")
    budget = len(body) // _BYTES_PER_OBJECT + 1024
    objects = 0

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        objects += 1
        if objects > budget:
            raise _TooManyObjects
        made = dict(pairs)
        if len(made) != len(pairs):
            raise _DuplicateMember
        return made

    try:
        return json.JSONDecoder(object_pairs_hook=make_object).decode(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"{where}: not JSON ({exc})") from None
    except RecursionError:
        raise CorruptStoreError(f"{where}: nested too deeply to be a snapshot") from None
    except _TooManyObjects:
        raise CorruptStoreError(f"{where}: holds more objects than a snapshot of {len(body)} bytes has") from None
    except _DuplicateMember:
        raise CorruptStoreError(f"{where}: an object holds a member name twice (which one counts is unclear)") from None


def read_snapshot(body: bytes, where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document and its mapping records (as written, in document order), checked
    against its digest; the records' values are not validated here.

    Raises:
        CorruptStoreError: not a snapshot policy-engine wrote, or its digest does not match.
    """
    document = _parse(body, where)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptStoreError(f"{where}: not a policy-engine snapshot (format must be {FORMAT!r})")
    version, content, mappings = document.get("version"), document.get("digest"), document.get("mappings")
    if type(version) is not int or version < 1 or not isinstance(content, str) or not isinstance(mappings, list):
        raise CorruptStoreError(f"{where}: version, digest or mappings missing or mistyped")
    # The document's own members are checked as the records are: a member it does not
    # know, or one of another type, is an edit the schema refuses.
    unknown = sorted(set(document) - _MEMBERS)
    if unknown:
        raise CorruptStoreError(f"{where}: unknown member {unknown[0]!r} (a snapshot has {', '.join(_MEMBERS_LISTED)})")
    for name in ("published_at", "note"):
        if type(document.get(name, "")) is not str:
            raise CorruptStoreError(f"{where}: {name} must be a string")
    _link(document, version, where)
    rows = []
    for index, record in enumerate(mappings):
        if type(record) is dict:
            arn, stage, verb, resource = (record.get("arn"), record.get("stage"), record.get("httpVerb"),
                                          record.get("resource"))
            # The scope itself, or the canonical JSON of the record's allOf/authenticated.
            needs = needs_of(record)
            if type(arn) is str and type(stage) is str and type(verb) is str and type(resource) is str \
                    and needs is not None:
                rows.append((arn, stage, verb, resource.removeprefix("/"), needs))
                continue
        raise CorruptStoreError(f"{where}: mappings[{index}] is not a mapping record")
    if content_digest(rows) != content:
        raise CorruptStoreError(f"{where}: content does not match its digest (edited outside policy-engine sync?)")
    based_on = document.get("based_on")
    if based_on is not None and (type(based_on) is not int or based_on < 0):
        raise CorruptStoreError(f"{where}: based_on must be a version number")
    return document, mappings


def decode_snapshot(body: bytes, where: str, etag: str) -> Snapshot:
    """Parse and check a snapshot.

    Raises:
        CorruptStoreError: not a snapshot policy-engine wrote, or its digest does not match.
    """
    document, records = read_snapshot(body, where)
    keys = [MappingKey(r["arn"], r["stage"], r["httpVerb"], r["resource"], str(needs_of(r))) for r in records]
    version = document["version"]
    return Snapshot(version, document["digest"], frozenset(keys), str(document.get("published_at", "")),
                    str(document.get("note", "")), etag, _link(document, version, where), document.get("based_on"),
                    body)


# What every snapshot starts with (``encode_snapshot`` writes ``format`` first).
_HEAD = re.compile(rb'\s*\{\s*"format"\s*:\s*"' + re.escape(FORMAT.encode()) + rb'"')


def is_snapshot(head: bytes) -> bool:
    """Whether a document starting with ``head`` (its first 100 bytes or so) is a snapshot."""
    return _HEAD.match(head) is not None


def published_at_of(document: dict[str, Any]) -> str | None:
    """The document's ``published_at``, ``None`` when it records none (a compiled file)."""
    value = document.get("published_at")
    return value if isinstance(value, str) and value else None


def mappings_locator(where: str) -> Locate:
    """Where a problem in a snapshot's records is, for ``compile_records``'s messages:
    ``<where> mappings[<index>]``, or ``where`` itself for the document."""

    def locate(path: tuple[int | str, ...]) -> str:
        if path and isinstance(path[0], int):
            return f"{where} mappings[{path[0]}]"
        return where

    return locate
