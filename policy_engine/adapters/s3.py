"""Permission mappings as one compiled snapshot object in S3.

Each publish writes a JSON document (format below) to ``s3://BUCKET/KEY`` with a
conditional ``PutObject`` (``If-Match`` the ETag it read, or ``If-None-Match: *`` for
the first publish), so one object is the whole version: readers can never see half
of one, and of two concurrent publishes exactly one lands. ``rollback`` reads byte
copies of published versions at ``KEY.history/<version>.json``
(``policy_engine/admin/publish/s3.py`` says when they are written)::

    {"format": "policy-engine/permissions@1", "version": 7, "digest": "sha256:...",
     "published_at": "...", "note": "...",
     "previous": {"version": 6, "digest": "sha256:...", "sha256": "sha256:<64 hex>"},
     "mappings": [{"arn": ..., "stage": ..., "httpVerb": ..., "resource": ...,
     "scope": ...}, ...]}

``previous`` records what was published as the version before (its mappings digest
and the SHA-256 of its whole document), so each version vouches for the one it
replaced, back from the live object: a history copy that does not hash to its
successor's record is never restored.

A candidate (``sync --candidate``) is the object ``KEY.candidate``: the same document,
``version`` its candidate number (label ``c<N>``) and ``based_on`` the live version it
was published against. Once a candidate was published the object stays: ``promote``
and ``discard`` replace it (conditionally, on its ETag) with a small "no candidate"
document that keeps the last number, so numbers are never reused::

    {"format": "policy-engine/no-candidate@1", "last": 3}

Records of ended candidates sit at ``KEY.candidate.history/<number>.json``.

This module is what the Lambda imports: the format and ``S3PermissionSource``. A
warm container revalidates with ``GetObject(IfNoneMatch=<etag>)``: S3 answers 304
and nothing is downloaded while the object is unchanged.

A reader reads at most ``max_bytes`` (``PERMISSIONS_MAX_BYTES``): a larger object is
refused on its ``Content-Length`` before any of its body is read (and a body without
one is cut after ``max_bytes + 1`` bytes). The refused ETag is remembered and sent as
``If-None-Match`` next time, so the same object is never downloaded twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from policy_engine.adapters.aws_http import (
    SignedClient,
    error_for,
    error_of,
    find_region,
    s3_address,
)
from policy_engine.adapters.http import BodyTooLargeError
from policy_engine.core.snapshot import (
    FORMAT,
    Link,
    Snapshot,
    decode_snapshot,
    document_hash,
    encode_snapshot,
    mappings_locator,
    published_at_of,
    read_snapshot,
)
from policy_engine.errors import (
    ConfigurationError,
    CorruptStoreError,
    MissingStoreError,
    StoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = ["CANDIDATE_SUFFIX", "FORMAT", "NO_CANDIDATE", "Link", "S3PermissionSource", "Snapshot", "decode_snapshot",
           "document_hash", "encode_no_candidate", "encode_snapshot", "no_candidate_last", "parse_s3_location"]

#: The candidate's object is the live object's key with this appended.
CANDIDATE_SUFFIX = ".candidate"
#: The ``format`` of the document that stands in the candidate's place when there is none.
NO_CANDIDATE = "policy-engine/no-candidate@1"
_NO_CANDIDATE_HEAD = b'{"format":"' + NO_CANDIDATE.encode() + b'"'
#: S3's codes for "you may not read this" (not a signature or credential problem).
_NOT_READABLE = frozenset({"AccessDenied", "403"})

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


def encode_no_candidate(last: int) -> bytes:
    """The document that says "no candidate"; ``last`` is the highest candidate number used."""
    return _NO_CANDIDATE_HEAD + b',"last":' + str(last).encode() + b"}"


def no_candidate_last(body: bytes, where: str) -> int | None:
    """The ``last`` number of a "no candidate" document, ``None`` if ``body`` is another document.

    Raises:
        CorruptStoreError: it starts as one but is not.
    """
    if not body.startswith(_NO_CANDIDATE_HEAD):
        return None
    import json

    try:
        last = json.loads(body).get("last")
    except (ValueError, UnicodeDecodeError, AttributeError):
        last = None
    if type(last) is not int or last < 0:
        raise CorruptStoreError(f"{where}: not a policy-engine \"no candidate\" document")
    return last


class S3PermissionSource:
    """``PermissionSource`` over a snapshot object; unchanged or refused objects are never downloaded.

    ``max_bytes`` caps what one load reads (``None``: no cap, for tools). Requests are
    signed here (``adapters/aws_http.py``): no boto3 at cold start. Publishing is
    ``policy_engine/admin/publish/s3.py``'s.

    With ``candidate``, it reads the candidate ``KEY.candidate`` instead (label ``c<N>``).
    """

    def __init__(self, location: str, *, max_bytes: int | None = None,
                 environ: Mapping[str, str] | None = None, candidate: bool = False) -> None:
        bucket, key = parse_s3_location(location)
        if candidate:
            key += CANDIDATE_SUFFIX
        self._candidate = candidate
        #: The ETag of the "no candidate" document last seen: asked about with If-None-Match.
        self._absent: str | None = None
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
            MissingStoreError: no bucket or no object (nothing published); for a candidate
                also the "no candidate" document, and AccessDenied (S3's answer for a
                missing object to a role without ``s3:ListBucket``).
            CorruptStoreError: the object is not a valid snapshot (a candidate where the
                version should be, or the reverse).
            StoreTooLargeError: the object is larger than ``max_bytes`` (again, without a
                download, while S3 still holds that same object).
            StoreError: S3 cannot be read.
        """
        refused, absent = self._refused, self._absent
        # While a refused object (or "no candidate") is what S3 holds, ask about that one: 304, no body.
        try:
            got = self._get(refused.etag if refused else absent or known_etag)
        except StoreTooLargeError as exc:
            self._refused = exc
            raise
        except MissingStoreError:
            self._absent = None
            raise
        if got is None:
            if refused is not None:
                raise StoreTooLargeError(str(refused), etag=refused.etag)
            if absent is not None:
                raise MissingStoreError(f"{self.description}: no candidate published")
            return None
        self._refused = self._absent = None
        body, etag = got
        if self._candidate and no_candidate_last(body, self.description) is not None:
            self._absent = etag
            raise MissingStoreError(f"{self.description}: no candidate published")
        if etag == known_etag:
            return None  # replaced by the very object already loaded (a rollback of the refused one)
        # Format and digest checked here; the cache validates every record against the
        # schema (compile_records), as for the snapshot file: no keys rebuilt, no sort.
        document, records = read_snapshot(body, self.description)
        if self._candidate != ("based_on" in document):
            raise CorruptStoreError(f"{self.description}: holds a " + ("version, not a candidate" if self._candidate
                                                                      else "candidate, not a published version"))
        label = ("c" if self._candidate else "v") + str(document["version"])
        return RawPermissions(records, mappings_locator(self.description), label, etag, published_at_of(document))

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
            if not if_none_match:  # "not modified" since nothing: no answer to a first load
                raise StoreError(f"{where}: answered 304 Not Modified to a request without If-None-Match")
            return None
        if answer.status != 200:
            code, message = error_of(answer)
            if self._candidate and code in _NOT_READABLE:
                # Without s3:ListBucket, S3 answers a missing object with AccessDenied; a
                # candidate that cannot be read only costs the shadow evaluation.
                raise MissingStoreError(f"{where}: no candidate published (or not readable: {code})")
            raise error_for(code, message, where)
        return answer.body, answer.headers.get("etag", "")
