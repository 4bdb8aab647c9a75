"""Replay: decide logged requests again under another permission set, and count who gains or loses.

The authorizer writes one ``decision`` line per Allow/Deny (docs/operations.md) with
what a decision depends on: the caller's grant keys, the claim values its placeholders
read, the API, stage, verb and path of the request, and what API Gateway did with it
(``outcome``). ``Replayer.feed`` reads one such line, evaluates the same caller under
the permission set it was built with (``PermissionSet.evaluate``, as the authorizer
does), judges the request against the policy that evaluation makes
(``core.iam.request_allowed``, the per-request Resource included) and compares with the
logged outcome: a deny that becomes an allow is *gained*, an allow that becomes a deny
is *lost*.

``replay_inputs`` streams files, folders, gzip files and stdin through a ``Replayer``
line by line, so memory does not grow with the log: the per-(principal, route) table
holds at most ``max_keys`` entries (changes past it are counted in totals only), the
examples and damaged-line lists are short, and every memo is a ``core.memo.Memo``.

What a line may look like (CloudWatch Logs exports): the JSON decision line itself;
the line after a prefix (``<timestamp> <json>`` from an export to S3,
``<timestamp> <stream> <json>`` from ``aws logs tail``, ``<timestamp>\\t<json>`` from
``aws logs filter-log-events --output text``); or a JSON object whose ``message``
member holds the line. A whole ``aws logs filter-log-events`` (or ``get-log-events``,
or Logs Insights ``get-query-results``) JSON document is read too, when it is at most
``MAX_DOCUMENT_BYTES``; a larger one is refused (``LogInputError``) with the command
that exports one event per line instead.

What replay does not reproduce (docs/replay.md): API key rules (a request is judged by
its mappings alone, as if the caller had every key the rules ask for) and the route
coverage of simple responses (the request alone is judged, as a policy would judge it).

Admin-only: the runtime never imports this module.
"""

from __future__ import annotations

import gzip
import heapq
import io
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from policy_engine.core.arn import MethodArn, parse_method_arn
from policy_engine.core.grants import parse_claim_path
from policy_engine.core.iam import ResourceMatcher, request_allowed
from policy_engine.core.memo import Memo
from policy_engine.core.permissions import Evaluation, PermissionSet
from policy_engine.errors import ConfigurationError, EventError

__all__ = [
    "DAMAGED",
    "DEFAULT_MAX_KEYS",
    "MAX_DOCUMENT_BYTES",
    "MAX_LINE_BYTES",
    "NOT_DECISION",
    "OLDER_RELEASE",
    "REFUSAL",
    "SKIPPED_KINDS",
    "LogInputError",
    "Replayer",
    "input_files",
    "replay_inputs",
]

#: The most (principal, route) pairs whose changes are counted one by one.
DEFAULT_MAX_KEYS = 100_000

#: The longest line read. CloudWatch Logs keeps events of up to 1 MB; a longer line is
#: not an exported event and is counted as damaged, read past in bounded pieces.
MAX_LINE_BYTES = 1 << 20

#: The largest whole JSON document (``aws logs filter-log-events`` output) read at once.
MAX_DOCUMENT_BYTES = 32 << 20

#: The kinds of lines that are read but not replayed, as the report counts them.
NOT_DECISION = "not_decision"  # another log line: START/REPORT, other events, text
REFUSAL = "refusal"  # a decision line of a refused request: Unauthorized (401) or Error (500)
OLDER_RELEASE = "older_release"  # an Allow/Deny line written before decision lines carried the request
DAMAGED = "damaged"  # a line that names a decision but cannot be read as one
SKIPPED_KINDS = (NOT_DECISION, REFUSAL, OLDER_RELEASE, DAMAGED)

# The fields a decision line carries for replay; a line without any of them is from an
# older release, a line with only some of them is damaged.
_REPLAY_FIELDS = ("api", "stage", "verb", "path", "outcome", "grants")
_OUTCOMES = ("allow", "deny")
_MARKER = '"decision"'
_MARKER_BYTES = _MARKER.encode()
_GZIP_MAGIC = b"\x1f\x8b"
# How many damaged-line locations the report lists, and how many versions and claims it counts.
_DAMAGED_SHOWN = 5
_COUNTED_NAMES = 64
_INTERNED = 1024
_EXPORT_HINT = ("export one event per line instead: aws logs filter-log-events --log-group-name GROUP "
                "--output text --query 'events[].[timestamp,message]' > decisions.log, or an export to S3 "
                "(docs/replay.md)")

_decode = json.JSONDecoder().raw_decode


class LogInputError(ConfigurationError):
    """A log input cannot be read at all (missing, or a JSON document too large to read whole)."""

    code = "bad_log_input"

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)


@dataclass(slots=True)
class _Pair:
    # The changes of one (principal, API, stage, route) or one (API, stage, route), where the
    # first was seen, and (for a route) how many principals' pairs it counts.
    gained: int
    lost: int
    first: str
    principals: int = 1


@dataclass(slots=True)
class Replayer:
    """Replays decision lines one at a time under ``permissions`` and keeps the counts.

    ``max_keys`` bounds the (principal, route) table, ``examples`` the changes kept
    whole (the first ones met). ``feed`` never raises on a line's content: what it
    cannot read is counted by kind (``SKIPPED_KINDS``).
    """

    permissions: PermissionSet
    max_keys: int = DEFAULT_MAX_KEYS
    examples: int = 10
    lines: int = 0
    size: int = 0
    decisions: int = 0
    gained: int = 0
    lost: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIPPED_KINDS, 0))
    damaged: list[dict[str, str]] = field(default_factory=list)
    pairs: dict[tuple[str, str, str, str], _Pair] = field(default_factory=dict)
    routes: dict[tuple[str, str, str], _Pair] = field(default_factory=dict)
    beyond: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"pairs": {"gained": 0, "lost": 0}, "routes": {"gained": 0, "lost": 0}})
    first_changes: list[dict[str, Any]] = field(default_factory=list)
    live_versions: dict[str, int] = field(default_factory=dict)
    simple_responses: int = 0
    unlogged_claims: dict[str, int] = field(default_factory=dict)  # decisions per claim name
    unlogged_decisions: int = 0  # decisions that met at least one of them
    # One ResourceMatcher pair per evaluation, keyed by the evaluation's id (the entry
    # holds the evaluation, so the id cannot be reused while the entry lives).
    _judges: Memo[int, tuple[Evaluation, ResourceMatcher, ResourceMatcher]] = field(default_factory=Memo)
    _apis: Memo[str, bool] = field(default_factory=Memo)
    _grant_sets: Memo[tuple[str, ...], frozenset[str]] = field(default_factory=Memo)
    _claim_sets: Memo[tuple[tuple[str, Any], ...], dict[str, Any]] = field(default_factory=Memo)
    _interned: dict[str, str] = field(default_factory=dict)

    # -- reading -----------------------------------------------------------------

    def feed_bytes(self, data: bytes, origin: str, label: int | str) -> None:
        """One raw line (with or without its newline) read at ``origin``:``label``."""
        self.lines += 1
        self.size += len(data)
        if b"{" not in data:
            self.skipped[NOT_DECISION] += 1
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._not_readable(_MARKER_BYTES in data, origin, label, "not UTF-8 text")
            return
        self._feed(text, origin, label)

    def feed_text(self, text: str, origin: str, label: int | str, event: Mapping[str, Any] | None = None) -> None:
        """One line given as text: the ``message`` of ``event`` in a JSON document (whose
        bytes the reader counts, ``size``)."""
        self.lines += 1
        self._feed(text, origin, label, event)

    def damaged_line(self, origin: str, label: int | str, problem: str, size: int = 0) -> None:
        """Count a line the reader could not hand over (too long, a broken gzip stream) and
        the ``size`` bytes read of it."""
        self.lines += 1
        self.size += size
        self._count_damaged(origin, label, problem)

    def _not_readable(self, decision_like: bool, origin: str, label: int | str, problem: str) -> None:
        if decision_like:
            self._count_damaged(origin, label, problem)
        else:
            self.skipped[NOT_DECISION] += 1

    def _count_damaged(self, origin: str, label: int | str, problem: str) -> None:
        self.skipped[DAMAGED] += 1
        if len(self.damaged) < _DAMAGED_SHOWN:
            self.damaged.append({"where": f"{origin}:{label}", "problem": problem})

    def _feed(self, text: str, origin: str, label: int | str, outer: Mapping[str, Any] | None = None) -> None:
        start = text.find("{")
        if start < 0:
            self.skipped[NOT_DECISION] += 1
            return
        try:
            record, _ = _decode(text, start)
        except json.JSONDecodeError:
            # Another program's text with a brace is no decision line; a decision line cut short is.
            self._not_readable(_MARKER in text, origin, label, _json_problem(text, start))
            return
        except RecursionError:
            self._not_readable(_MARKER in text, origin, label, "JSON nested too deeply")
            return
        if record.get("event") != "decision":
            message = record.get("message") if outer is None else None
            if isinstance(message, str):
                self._feed(message, origin, label, record)
            elif isinstance(message, dict) and message.get("event") == "decision":
                self._decide(message, origin, label, "", record)
            else:
                self.skipped[NOT_DECISION] += 1
            return
        self._decide(record, origin, label, text[:start], outer)

    # -- deciding ----------------------------------------------------------------

    def _decide(self, line: Mapping[str, Any], origin: str, label: int | str, prefix: str,
                outer: Mapping[str, Any] | None) -> None:
        decision = line.get("decision")
        if decision != "Allow" and decision != "Deny":
            if decision in ("Unauthorized", "Error"):
                self.skipped[REFUSAL] += 1
            else:
                self._count_damaged(origin, label, f"decision {decision!r} is not Allow, Deny, Unauthorized or Error")
            return
        api, stage, verb, path = line.get("api"), line.get("stage"), line.get("verb"), line.get("path")
        outcome, grants = line.get("outcome"), line.get("grants")
        if api is None and outcome is None and grants is None and path is None:
            self.skipped[OLDER_RELEASE] += 1
            return
        if not (api.__class__ is str and stage.__class__ is str and verb.__class__ is str
                and path.__class__ is str and path[:1] == "/" and outcome in _OUTCOMES):
            self._count_damaged(origin, label, _check(line, api, stage, verb, path, outcome, grants)
                                or "unreadable fields")
            return
        assert isinstance(api, str) and isinstance(stage, str) and isinstance(verb, str) and isinstance(path, str)
        held = self._held(grants)
        if held is None:
            self._count_damaged(origin, label, "grants must be a list of strings")
            return
        arn = f"{api}/{stage}/{verb}/{path[1:]}"
        try:
            request = parse_method_arn(arn, self._apis)
        except EventError as exc:
            self._count_damaged(origin, label, f"api/stage/verb/path do not make a methodArn ({exc})")
            return
        logged = line.get("claims")
        claims: dict[str, Any] | None = None
        if logged:
            try:
                claims = self._claims(logged)
            except ValueError as exc:
                self._count_damaged(origin, label, f"claims: {exc}")
                return
        permissions = self.permissions
        evaluation = permissions.evaluate(held, api, stage, claims=claims)
        judge = self._judges.get(id(evaluation))
        if judge is None or judge[0] is not evaluation:
            judge = self._judges.remember(id(evaluation), (
                evaluation, ResourceMatcher(evaluation.resources), ResourceMatcher(evaluation.excluded)))
        allowed = request_allowed(judge[1], judge[2], arn)
        if not allowed and evaluation.per_request:
            allowed = permissions.request_resource(evaluation, request) is not None
        if evaluation.refused:
            self._note_unlogged(evaluation.refused, logged)
        self.decisions += 1
        version = line.get("version")
        version = version if isinstance(version, str) else ""
        count = self.live_versions.get(version)
        if count is not None:
            self.live_versions[version] = count + 1
        elif len(self.live_versions) < _COUNTED_NAMES:
            self.live_versions[version] = 1
        if line.get("shape") == "simple":
            self.simple_responses += 1
        if allowed is (outcome == "allow"):
            return
        self._change(line, request, allowed, origin, label, prefix, outer, version)

    def _held(self, grants: Any) -> frozenset[str] | None:
        # The logged grant list as the grant set the authorizer held: one object per distinct
        # list (its hash is then computed once), checked when first met.
        try:
            key = tuple(grants) if grants.__class__ is list else None
            held = None if key is None else self._grant_sets.get(key)
        except TypeError:  # an unhashable member: not a grant key
            return None
        if held is None and key is not None:
            if not all(grant.__class__ is str for grant in key):
                return None
            held = self._grant_sets.remember(key, frozenset(key))
        return held

    def _claims(self, logged: Any) -> dict[str, Any]:
        # The nested claims of a logged {path: value}, one object per distinct set of values.
        try:
            key = tuple(logged.items()) if logged.__class__ is dict else None
            nested = None if key is None else self._claim_sets.get(key)
        except TypeError:  # an unhashable value
            key, nested = None, None
        if nested is None:
            nested = _claims_object(logged)
            if key is not None:
                self._claim_sets.remember(key, nested)
        return nested

    def _note_unlogged(self, refused: tuple[str, ...], logged: Any) -> None:
        met = False
        for name in refused:
            if logged and name in logged:
                continue
            met = True
            count = self.unlogged_claims.get(name)
            if count is not None:
                self.unlogged_claims[name] = count + 1
            elif len(self.unlogged_claims) < _COUNTED_NAMES:
                self.unlogged_claims[name] = 1
        self.unlogged_decisions += met

    def _intern(self, text: str) -> str:
        known = self._interned.get(text)
        if known is not None:
            return known
        if len(self._interned) < _INTERNED:
            self._interned[text] = text
        return text

    def _change(self, line: Mapping[str, Any], request: MethodArn, allowed: bool, origin: str, label: int | str,
                prefix: str, outer: Mapping[str, Any] | None, version: str) -> None:
        kind = "gained" if allowed else "lost"
        if allowed:
            self.gained += 1
        else:
            self.lost += 1
        principal = line.get("principal")
        principal = principal if isinstance(principal, str) else ""
        route = line.get("route")
        path = "/" + request.path
        if not isinstance(route, str) or not route or route == "$default":
            route = f"{request.verb} {path}"
        api, stage = self._intern(request.api_arn), self._intern(request.stage)
        key = (principal, api, stage, route)
        pair = self.pairs.get(key)
        where = ""
        new_pair = False
        if pair is None:
            if len(self.pairs) >= self.max_keys:
                self.beyond["pairs"][kind] += 1
            else:
                where = f"{origin}:{label}"
                self.pairs[key] = _Pair(int(allowed), int(not allowed), where)
                new_pair = True
        elif allowed:
            pair.gained += 1
        else:
            pair.lost += 1
        by_route = self.routes.get(key[1:])
        if by_route is None:
            if len(self.routes) >= self.max_keys:
                self.beyond["routes"][kind] += 1
            else:
                self.routes[key[1:]] = _Pair(int(allowed), int(not allowed), where or f"{origin}:{label}", 1)
        else:
            if allowed:
                by_route.gained += 1
            else:
                by_route.lost += 1
            by_route.principals += new_pair
        if len(self.first_changes) < self.examples:
            self.first_changes.append({
                "where": where or f"{origin}:{label}", "timestamp": _timestamp(line, prefix, outer),
                "principal": principal, "api": request.api_arn, "stage": request.stage, "route": route,
                "request": f"{request.verb} {path}", "live": "allow" if not allowed else "deny",
                "replayed": "allow" if allowed else "deny", "change": kind, "live_version": version,
            })

    # -- the report --------------------------------------------------------------

    def top(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` (principal, route) pairs with the most changes, most first."""
        best = heapq.nlargest(count, self.pairs.items(), key=lambda item: item[1].gained + item[1].lost)
        return [{"principal": principal, "api": api, "stage": stage, "route": route, "gained": pair.gained,
                 "lost": pair.lost, "first": pair.first}
                for (principal, api, stage, route), pair in best]

    def top_routes(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` routes with the most changes, most first, with the principals counted for each."""
        best = heapq.nlargest(count, self.routes.items(), key=lambda item: item[1].gained + item[1].lost)
        return [{"api": api, "stage": stage, "route": route, "gained": entry.gained, "lost": entry.lost,
                 "principals": entry.principals, "first": entry.first}
                for (api, stage, route), entry in best]


def _json_problem(text: str, start: int) -> str:
    # Said without the line ending, which would otherwise be the "control character" a cut line ends in.
    try:
        _decode(text.rstrip("\r\n"), start)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.pos + 1})"
    return "not valid JSON"


def _check(line: Mapping[str, Any], api: Any, stage: Any, verb: Any, path: Any, outcome: Any,
           grants: Any) -> str | None:
    # What makes a line that carries the replay fields unreadable, or None.
    missing = [name for name in _REPLAY_FIELDS if line.get(name) is None]
    if missing:
        return f"a decision line without {', '.join(missing)}"
    if not (isinstance(api, str) and isinstance(stage, str) and isinstance(verb, str)):
        return "api, stage and verb must be strings"
    if not isinstance(path, str) or not path.startswith("/"):
        return "path must be a string starting with '/'"
    if outcome not in _OUTCOMES:
        return f"outcome {outcome!r} is neither 'allow' nor 'deny'"
    if not isinstance(grants, list) or not all(isinstance(grant, str) for grant in grants):
        return "grants must be a list of strings"
    claims = line.get("claims")
    if claims is not None and not isinstance(claims, dict):
        return "claims must be an object"
    return None


def _claims_object(logged: Any) -> dict[str, Any]:
    """The logged ``{claim path text: value}`` as the nested claims ``core.grants`` reads.

    Raises:
        ValueError: a claim path that cannot be read, a value that is not a string or an
            integer, or one path given both a value and nested claims.
    """
    if not isinstance(logged, dict):
        raise ValueError("not an object")
    nested: dict[str, Any] = {}
    for text, value in logged.items():
        path = parse_claim_path(text)
        if value.__class__ not in (str, int):
            raise ValueError(f"{text!r} is not a string or an integer")
        node = nested
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{text!r}: {part!r} is given a value and nested claims")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise ValueError(f"{text!r} is given a value and nested claims")
        node[path[-1]] = value
    return nested


def _timestamp(line: Mapping[str, Any], prefix: str, outer: Mapping[str, Any] | None) -> str:
    # The decision line's own time; else the export's (its prefix, or the wrapper's epoch ms).
    ts = line.get("ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return _iso(float(ts))
    if prefix.strip():
        return prefix.split()[0]
    stamp = outer.get("timestamp") if outer is not None else None
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return _iso(stamp / 1000)
    return str(stamp) if isinstance(stamp, str) else ""


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


# -- inputs ---------------------------------------------------------------------------

def input_files(inputs: Sequence[str]) -> list[str]:
    """Every file the inputs name, in order: files as given, folders walked recursively
    (sorted, hidden entries left out), ``-`` for stdin (at most once).

    Raises:
        LogInputError: an input does not exist, or ``-`` is given twice.
    """
    files: list[str] = []
    for given in inputs:
        if given == "-":
            if "-" in files:
                raise LogInputError("-", "stdin can be read once")
            files.append("-")
            continue
        path = Path(given)
        if path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                # Regular files only: a FIFO or a socket met in a folder could be read for ever.
                files.extend(str(Path(folder, name)) for name in sorted(names)
                             if not name.startswith(".") and Path(folder, name).is_file())
        elif path.exists():  # a file, or a pipe such as /dev/stdin or a shell's <(...)
            files.append(given)
        else:
            raise LogInputError(given, "no such file or folder")
    return files


Progress = Callable[[int, int], None]
_Stream = IO[bytes] | gzip.GzipFile


def replay_inputs(inputs: Sequence[str], replayer: Replayer, *, progress: Progress | None = None,
                  stdin: IO[bytes] | None = None) -> None:
    """Feed every line of ``inputs`` (``input_files``) to ``replayer``.

    ``progress(lines, bytes)`` is called every few thousand lines and at the end of
    each file. A gzip stream that breaks off is counted as one damaged line where it
    broke; reading goes on with the next file.

    Raises:
        LogInputError: an input is missing or unreadable, or a JSON document is larger
            than ``MAX_DOCUMENT_BYTES``.
    """
    for name in input_files(inputs):
        if name == "-":
            _replay_raw(stdin or sys.stdin.buffer, "<stdin>", replayer, progress)
            continue
        try:
            raw = open(name, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LogInputError(name, f"cannot be read ({exc.strerror or exc})") from None
        with raw:
            _replay_raw(raw, name, replayer, progress)
    if progress is not None:
        progress(replayer.lines, replayer.size)


def _replay_raw(raw: IO[bytes], origin: str, replayer: Replayer, progress: Progress | None) -> None:
    # Plain or gzip, told by the first bytes alone (a name may say .gz of a plain file).
    # A pipe cannot seek back: its first bytes are peeked at, or read and given back.
    buffered: IO[bytes] = raw
    if raw.seekable():
        head = raw.read(2)
        raw.seek(0)
    elif isinstance(raw, io.BufferedReader):
        head = raw.peek(2)[:2]
    else:
        buffered = io.BufferedReader(_RawReader(raw))
        head = buffered.peek(2)[:2]
    if head == _GZIP_MAGIC:
        with gzip.GzipFile(fileobj=buffered, mode="rb") as stream:
            _replay_stream(stream, origin, replayer, progress)
    else:
        _replay_stream(buffered, origin, replayer, progress)


class _RawReader(io.RawIOBase):
    # A byte stream that cannot seek or peek, made readable by io.BufferedReader.
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _replay_stream(stream: _Stream, origin: str, replayer: Replayer, progress: Progress | None) -> None:
    number = 0
    try:
        # The first line decides whether this is a JSON document (read whole, up to its own
        # cap) before the line cap applies: a compact document is one long line.
        first = stream.readline(MAX_LINE_BYTES + 1)
        if first and _starts_document(first):
            _replay_document(first, stream, origin, replayer)
            return
        for number, data, size in _lines(stream, first):
            if data is None:
                replayer.damaged_line(origin, number, f"a line longer than {MAX_LINE_BYTES} bytes", size)
                continue
            replayer.feed_bytes(data, origin, number)
            if progress is not None and not number & 0x1FFF:
                progress(replayer.lines, replayer.size)
    except (EOFError, OSError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a stream cut short is an EOFError.
        replayer.damaged_line(origin, number + 1, f"the compressed stream is damaged ({exc})")
    if progress is not None:
        progress(replayer.lines, replayer.size)


def _lines(stream: _Stream, first: bytes) -> Iterator[tuple[int, bytes | None, int]]:
    # (number, line, bytes) of lines of at most MAX_LINE_BYTES, ``first`` (already read)
    # first; a longer one is read past in pieces and given as None, with its length.
    readline = stream.readline
    number = 0
    data = first
    while True:
        if number:
            data = readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        number += 1
        if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
            size = len(data)
            while True:
                rest = readline(1 << 16)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None, size
            continue
        yield number, data, len(data)


def _starts_document(first: bytes) -> bool:
    # A pretty-printed JSON document opens with a line holding only '{'; a compact one
    # with its first member. A decision line never looks like either.
    head = first.lstrip(b"\xef\xbb\xbf").strip()
    if head == b"{":
        return True
    return head.startswith(b"{") and head[1:].lstrip().startswith(_DOCUMENT_MEMBERS)


# The members a compact output of `aws logs filter-log-events`, `get-log-events` or
# `get-query-results` may open with (the SDK's member order is not a contract).
_DOCUMENT_MEMBERS = tuple(f'"{name}"'.encode() for name in (
    "events", "results", "nextToken", "searchedLogStreams", "nextForwardToken", "nextBackwardToken",
    "queryLanguage", "statistics", "status", "encryptionKey"))


def _replay_document(first: bytes, stream: _Stream, origin: str, replayer: Replayer) -> None:
    body = first + stream.read(MAX_DOCUMENT_BYTES + 1 - len(first))
    replayer.size += len(body)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise LogInputError(origin, f"a JSON document (aws logs filter-log-events output) larger than "
                                    f"{MAX_DOCUMENT_BYTES >> 20} MB is not read whole; {_EXPORT_HINT}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        replayer.damaged_line(origin, 1, f"a JSON document that cannot be read ({exc})")
        return
    events = document.get("events") if isinstance(document, dict) else None
    results = document.get("results") if isinstance(document, dict) else None
    if isinstance(events, list):
        for index, event in enumerate(events):
            _replay_event(event, origin, f"events[{index}]", replayer)
    elif isinstance(results, list):
        for index, row in enumerate(results):
            # Logs Insights: each row is a list of {"field", "value"}; the line is @message.
            cells = {cell.get("field"): cell.get("value") for cell in row if isinstance(cell, dict)} \
                if isinstance(row, list) else {}
            _replay_event({"message": cells.get("@message"), "timestamp": cells.get("@timestamp")},
                          origin, f"results[{index}]", replayer)
    else:
        replayer.lines += 1
        replayer.skipped[NOT_DECISION] += 1


def _replay_event(event: Any, origin: str, label: str, replayer: Replayer) -> None:
    message = event.get("message") if isinstance(event, dict) else None
    if not isinstance(message, str):
        replayer.lines += 1
        replayer.skipped[NOT_DECISION] += 1
        return
    replayer.feed_text(message, origin, label, event)

