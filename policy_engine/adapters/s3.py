"""Permission mappings as one compiled snapshot object in S3.

Each publish writes a JSON document (format below) to ``s3://BUCKET/KEY`` with a
conditional ``PutObject`` (``If-Match`` the ETag it read, or ``If-None-Match: *`` for
the first publish), so one object is the whole version: readers can never see half
of one, and of two concurrent publishes exactly one lands. ``rollback`` reads byte
copies of published versions at ``KEY.history/<version>.json``
(``policy_engine/publish/s3.py`` says when they are written)::

    {"format": "policy-engine/permissions@1", "version": 7, "digest": "sha256:...",
     "published_at": "...", "note": "...",
     "previous": {"version": 6, "digest": "sha256:...", "sha256": "sha256:<64 hex>"},
     "mappings": [{"arn": ..., "stage": ..., "httpVerb": ..., "resource": ...,
     "scope": ...}, ...]}

``previous`` records what was published as the version before (its mappings digest
and the SHA-256 of its whole document), so each version vouches for the one it
replaced, back from the live object: a history copy that does not hash to its
successor's record is never restored.

This module is what the Lambda imports: the format and ``S3PermissionSource``. A
warm container revalidates with ``GetObject(IfNoneMatch=<etag>)``: S3 answers 304
and nothing is downloaded while the object is unchanged.

A reader reads at most ``max_bytes`` (``PERMISSIONS_MAX_BYTES``): a larger object is
refused on its ``Content-Length`` before any of its body is read (and a body without
one is cut after ``max_bytes + 1`` bytes). The refused ETag is remembered and sent as
``If-None-Match`` next time, so the same object is never downloaded twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine.adapters.aws_http import (
    SignedClient,
    error_for,
    error_of,
    find_region,
    s3_address,
)
from policy_engine.adapters.http import BodyTooLargeError
from policy_engine.core.publish import MappingKey, digest, record_of
from policy_engine.errors import (
    ConfigurationError,
    CorruptStoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = ["Link", "S3PermissionSource", "Snapshot", "decode_snapshot", "encode_snapshot", "parse_s3_location"]

FORMAT = "policy-engine/permissions@1"
#: The cap when a tool asks for none: larger than any snapshot DynamoDB or a Lambda could hold.
_UNCAPPED = 2**40
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3_location(location: str, variable: str = "PERMISSIONS_SOURCE") -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://BUCKET/KEY``.

    Raises:
        ConfigurationError: not of that form.
    """
    rest = location.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or not key or key.endswith("/"):
        raise ConfigurationError(variable, f"{location!r} is not s3://BUCKET/KEY (a bucket name and an object key)")
    return bucket, key


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
    #: The document exactly as read: a history copy must be these bytes.
    body: bytes = field(default=b"", repr=False, compare=False)

    @property
    def sha256(self) -> str:
        return document_hash(self.body)


def document_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def encode_snapshot(version: int, keys: frozenset[MappingKey], note: str, published_at: str,
                    previous: Snapshot | None = None) -> bytes:
    """The document of ``version``; ``previous`` is the snapshot it replaces (``None`` for the first)."""
    ordered = sorted(keys)
    document: dict[str, Any] = {
        "format": FORMAT, "version": version, "digest": digest(ordered), "published_at": published_at,
        "note": note,
    }
    if previous is not None:
        document["previous"] = {"version": previous.version, "digest": previous.digest, "sha256": previous.sha256}
    document["mappings"] = [record_of(k) for k in ordered]
    return json.dumps(document, separators=(",", ":")).encode()


def _link(document: dict[str, Any], version: int, where: str) -> Link | None:
    previous = document.get("previous")
    if previous is None:
        return None
    if not (isinstance(previous, dict) and type(previous.get("version")) is int and previous["version"] == version - 1
            and isinstance(previous.get("digest"), str) and isinstance(previous.get("sha256"), str)):
        raise CorruptStoreError(f"{where}: previous must be {{version: {version - 1}, digest, sha256}}")
    return Link(previous["version"], previous["digest"], previous["sha256"])


def decode_snapshot(body: bytes, where: str, etag: str) -> Snapshot:
    """Parse and check a snapshot.

    Raises:
        CorruptStoreError: not a snapshot policy-engine wrote, or its digest does not match.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"{where}: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptStoreError(f"{where}: not a policy-engine snapshot (format must be {FORMAT!r})")
    version, content, mappings = document.get("version"), document.get("digest"), document.get("mappings")
    if not isinstance(version, int) or version < 1 or not isinstance(content, str) or not isinstance(mappings, list):
        raise CorruptStoreError(f"{where}: version, digest or mappings missing or mistyped")
    keys = []
    for index, record in enumerate(mappings):
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in
                                                   ("arn", "stage", "httpVerb", "resource", "scope")):
            raise CorruptStoreError(f"{where}: mappings[{index}] is not a mapping record")
        keys.append(MappingKey(record["arn"], record["stage"], record["httpVerb"], record["resource"], record["scope"]))
    if digest(keys) != content:
        raise CorruptStoreError(f"{where}: content does not match its digest (edited outside policy-engine sync?)")
    return Snapshot(version, content, frozenset(keys), str(document.get("published_at", "")),
                    str(document.get("note", "")), etag, _link(document, version, where), body)


class S3PermissionSource:
    """``PermissionSource`` over a snapshot object; unchanged or refused objects are never downloaded.

    ``max_bytes`` caps what one load reads (``None``: no cap, for tools). Requests are
    signed here (``adapters/aws_http.py``): no boto3 at cold start. Publishing is
    ``policy_engine/publish/s3.py``'s.
    """

    def __init__(self, location: str, *, max_bytes: int | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        bucket, key = parse_s3_location(location)
        self.description = f"s3://{bucket}/{key}"
        env = os.environ if environ is None else environ
        region = find_region("s3", env)
        origin, self._path = s3_address(bucket, key, region, env)
        self._client = SignedClient("s3", origin, region, environ=env)
        self._max_bytes = max_bytes
        self._refused: StoreTooLargeError | None = None

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """The snapshot's mappings, or ``None`` when S3 says the ETag still matches.

        Raises:
            MissingStoreError: no bucket or no object (nothing published).
            CorruptStoreError: the object is not a valid snapshot.
            StoreTooLargeError: the object is larger than ``max_bytes`` (again, without a
                download, while S3 still holds that same object).
            StoreError: S3 cannot be read.
        """
        refused = self._refused
        # While a refused object is what S3 holds, ask about that one: 304, no body.
        try:
            got = self._get(refused.etag if refused else known_etag)
        except StoreTooLargeError as exc:
            self._refused = exc
            raise
        if got is None:
            if refused is not None:
                raise StoreTooLargeError(str(refused), etag=refused.etag)
            return None
        self._refused = None
        body, etag = got
        if etag == known_etag:
            return None  # replaced by the very object already loaded (a rollback of the refused one)
        snapshot = decode_snapshot(body, self.description, etag)
        ordered = sorted(snapshot.keys)

        def locate(path: tuple[int | str, ...]) -> str:
            if path and isinstance(path[0], int):
                return f"{self.description} mappings[{path[0]}]"
            return self.description

        return RawPermissions([record_of(k) for k in ordered], locate, f"v{snapshot.version}", etag)

    def _get(self, if_none_match: str | None) -> tuple[bytes, str] | None:
        """``(body, etag)``, or ``None`` when ``if_none_match`` still matches (304).

        Raises:
            MissingStoreError: the bucket or the object does not exist.
            StoreTooLargeError: the object is larger than ``max_bytes`` (its ETag attached).
            StoreError: any other failure.
        """
        where, limit = self.description, self._max_bytes
        headers = {"If-None-Match": if_none_match} if if_none_match else {}
        try:
            answer = self._client.send("GET", self._path, what=f"GET {where}", headers=headers,
                                       max_bytes=_UNCAPPED if limit is None else limit)
        except BodyTooLargeError as exc:
            # Refused on its Content-Length (the connection is dropped, the body never read),
            # or cut after max_bytes + 1 bytes when it announced none.
            etag = exc.headers.get("etag", "")
            if exc.declared is not None:
                raise StoreTooLargeError(f"{where} is {exc.declared} bytes; PERMISSIONS_MAX_BYTES is {limit}: "
                                         "not loaded (publish fewer mappings or raise the limit)", etag=etag) from None
            raise StoreTooLargeError(f"{where} holds more than {limit} bytes; PERMISSIONS_MAX_BYTES is {limit}: "
                                     "not loaded (publish fewer mappings or raise the limit)", etag=etag) from None
        if answer.status == 304:
            return None
        if answer.status != 200:
            code, message = error_of(answer)
            raise error_for(code, message, where)
        return answer.body, answer.headers.get("etag", "")
