"""``policy-engine replay LOGS --against PERMISSIONS``: who would gain or lose which routes."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from policy_engine.admin.cli._arguments import number_in
from policy_engine.admin.cli._common import Palette, add_color, add_command, add_format, print_json, visible
from policy_engine.admin.replay import (
    DAMAGED,
    DEFAULT_MAX_KEYS,
    MAX_DOCUMENT_BYTES,
    NOT_DECISION,
    OLDER_RELEASE,
    REFUSAL,
    Replayer,
    replay_inputs,
)
from policy_engine.bootstrap import permission_source
from policy_engine.core.permissions import PermissionSet, compile_records
from policy_engine.errors import StoreError

DESCRIPTION = f"""\
Replay logged decisions against another permission set: who would gain or lose
which routes.

Reads the authorizer's decision log lines (docs/operations.md) from files,
folders (recursively), .gz files or - (stdin), as CloudWatch Logs exports them:
the JSON line itself, the line after a timestamp or stream prefix (an export to
S3, aws logs tail, filter-log-events --output text), or a JSON object whose
'message' holds it. A whole 'aws logs filter-log-events' JSON document is read
up to {MAX_DOCUMENT_BYTES >> 20} MB. Each Allow/Deny line's caller (its grants and placeholder
claims) is evaluated under PERMISSIONS as the authorizer would, the request is
judged against that policy, and the result is compared with the logged outcome:
a deny that becomes an allow is gained, an allow that becomes a deny is lost.
Reports counts per principal and route (the logged route, else VERB /path) and
the first examples.

Other log lines, refusals (Unauthorized, Error) and decision lines from a
release that did not log the request are counted, not replayed; damaged lines
are counted and the first few named (file:line). Not replayed: API key rules
(the request is judged by its mappings alone) and the route coverage of simple
responses (the request alone is judged). See docs/replay.md.

Exit codes: 0 no difference; 1 differences found; 2 could not run (unreadable
input or permissions, or no decision line to replay).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "replay",
        summary="replay logged decisions against other permissions: who gains or loses which routes",
        description=DESCRIPTION, examples=(
            "policy-engine replay exported-logs/ --against new-permissions/",
            "policy-engine replay decisions.log.gz --against dynamodb://permissions --format json",
            "aws logs tail /aws/lambda/pets-authorizer --since 1h | policy-engine replay - --against permissions/",
        ),
    )
    parser.add_argument("logs", nargs="+", metavar="LOGS",
                        help="log files, folders (read recursively), .gz files, or - for stdin")
    parser.add_argument("--against", required=True, metavar="PERMISSIONS",
                        help="the permission set to replay against: a YAML file or folder, a compiled snapshot, "
                             "dynamodb://TABLE or s3://BUCKET/KEY (as PERMISSIONS_SOURCE)")
    parser.add_argument("--top", type=number_in(int, 0), default=20, metavar="N",
                        help="principal and route pairs to list, most changes first (20)")
    parser.add_argument("--examples", type=number_in(int, 0), default=10, metavar="N",
                        help="changed requests to show whole, the first ones met (10)")
    parser.add_argument("--max-keys", type=number_in(int, 1), default=DEFAULT_MAX_KEYS, metavar="N",
                        help="most principal and route pairs counted one by one; changes of further pairs are "
                             f"counted in the totals only ({DEFAULT_MAX_KEYS:,})")
    parser.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="progress on stderr (lines, MB, lines/s): auto draws it on a terminal, never with "
                             "--format json; always also writes it to a pipe or CI log, every 5 seconds")
    add_format(parser)
    add_color(parser)
    parser.set_defaults(run=run)


class _Progress:
    """Lines, MB and lines per second on stderr: redrawn on a terminal, a line every 5 s elsewhere."""

    def __init__(self, mode: str, as_json: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = mode == "always" or (mode == "auto" and self.terminal and not as_json)
        self.interval = 0.1 if self.terminal else 5.0
        self.started = self._last = time.monotonic()
        self._width = 0

    def say(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"replay: {text}"
        if self.terminal:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, lines: int, size: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        rate = lines / max(now - self.started, 1e-9)
        self.say(f"{lines:,} lines, {size / 1e6:,.1f} MB, {rate:,.0f} lines/s")

    def close(self) -> None:
        if self.enabled and self.terminal and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def load_against(location: str) -> tuple[PermissionSet, list[str]]:
    """Fetch and compile ``location`` as the authorizer's cache does (``compile_records``
    with the runtime's tolerance of Resources too long for a stage); the second value
    names those left out.

    Raises:
        StoreError: a local path does not exist, or the store cannot be read.
        PermissionsError: the permissions are invalid (each problem with file:line).
        ConfigurationError: the location names an unsupported store.
    """
    if "://" not in location and not Path(location).exists():
        raise StoreError(f"{location}: no such file or folder")
    raw = permission_source(location).fetch(None)
    if raw is None:  # a source answers None only when given an etag
        raise StoreError(f"{location}: the source returned nothing")
    oversized: list[str] = []

    def report(api_arn: str, stage: str, resources: tuple[str, ...]) -> None:
        if len(oversized) < 20:
            oversized.extend(resources[: 20 - len(oversized)])

    return compile_records(raw.records, raw.locate, version=raw.version, on_oversized=report), oversized


def run(args: argparse.Namespace) -> int:
    as_json = args.format == "json"
    progress = _Progress(args.progress, as_json)
    started = time.monotonic()
    try:
        progress.say(f"load {args.against}...")
        permissions, oversized = load_against(args.against)
        replayer = Replayer(permissions, max_keys=args.max_keys, examples=args.examples)
        replay_inputs(args.logs, replayer, progress=progress)
    finally:
        progress.close()
    report = _report(args, permissions, replayer, oversized, round(time.monotonic() - started, 3))
    if as_json:
        print_json(report)
    else:
        _print(report, Palette(sys.stdout, args.color))
    if report["status"] == "nothing_replayed":
        print("policy-engine replay: no decision line to replay (see 'skipped'); nothing was compared",
              file=sys.stderr)
        return 2
    return 1 if report["status"] == "differences" else 0


def _report(args: argparse.Namespace, permissions: PermissionSet, replayer: Replayer, oversized: list[str],
            seconds: float) -> dict[str, Any]:
    changed = replayer.gained + replayer.lost
    status = "nothing_replayed" if not replayer.decisions else "differences" if changed else "no_difference"
    notes = []
    if replayer.simple_responses:
        notes.append(f"{replayer.simple_responses:,} decisions were simple responses: each request was judged "
                     "alone; the coverage of its whole route (isAuthorized) is not replayed")
    if replayer.unlogged_claims:
        names = ", ".join(sorted(replayer.unlogged_claims))
        notes.append(f"{replayer.unlogged_decisions:,} decisions met a placeholder whose claim "
                     f"({names}) the line does not carry (the caller had no valid value, or the live permissions "
                     "did not name that claim so it was not logged): replayed as missing, which grants nothing")
    if oversized:
        notes.append(f"Resources too long for their stage were left out, as the authorizer leaves them out "
                     f"(first: {oversized[0]})")
    for table, what in (("pairs", "principal and route pairs"), ("routes", "routes")):
        beyond = replayer.beyond[table]
        if beyond["gained"] or beyond["lost"]:
            notes.append(f"--max-keys {replayer.max_keys:,} reached: {beyond['gained']:,} gained and "
                         f"{beyond['lost']:,} lost requests of further {what} are counted in the totals only")
    if replayer.skipped[OLDER_RELEASE]:
        notes.append(f"{replayer.skipped[OLDER_RELEASE]:,} Allow/Deny lines come from a release that did not log "
                     "the request (grants, api, path, outcome): they cannot be replayed")
    return {
        "against": {"location": args.against, "version": permissions.version, "mappings": len(permissions)},
        "inputs": list(args.logs),
        "status": status,
        "lines": replayer.lines,
        "bytes": replayer.size,
        "decisions": replayer.decisions,
        "unchanged": replayer.decisions - changed,
        "gained": replayer.gained,
        "lost": replayer.lost,
        "skipped": dict(replayer.skipped),
        "damaged": list(replayer.damaged),
        "pairs": len(replayer.pairs),
        "max_keys": replayer.max_keys,
        "beyond_max_keys": {table: dict(counts) for table, counts in replayer.beyond.items()},
        "changes": replayer.top(args.top),
        "routes": replayer.top_routes(args.top),
        "examples": list(replayer.first_changes),
        "live_versions": dict(replayer.live_versions),
        "notes": notes,
        "seconds": seconds,
    }


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _api_stage(api: str, stage: str) -> str:
    return f"{api.rsplit(':', 1)[-1]}/{stage}"


def _print(report: dict[str, Any], paint: Palette) -> None:
    against = report["against"]
    print(f"against: {against['location']} (version {against['version']}, {against['mappings']:,} mappings)")
    print(f"read: {report['lines']:,} lines, {report['bytes'] / 1e6:,.1f} MB from {len(report['inputs'])} "
          f"input(s) in {report['seconds']:,.1f} s")
    skipped = report["skipped"]
    print(f"skipped: {skipped[NOT_DECISION]:,} other log lines, {skipped[REFUSAL]:,} refusals "
          f"(Unauthorized/Error), {skipped[OLDER_RELEASE]:,} older-release decision lines, "
          f"{skipped[DAMAGED]:,} damaged")
    for damaged in report["damaged"]:
        print(paint(f"  damaged: {visible(damaged['where'])}: {visible(damaged['problem'])}", "yellow"))
    if skipped[DAMAGED] > len(report["damaged"]):
        print(paint(f"  ... and {skipped[DAMAGED] - len(report['damaged']):,} more damaged lines", "yellow"))
    gained, lost = paint(f"{report['gained']:,} gained", "green" if not report["gained"] else "yellow"), \
        paint(f"{report['lost']:,} lost", "green" if not report["lost"] else "red")
    print(f"replayed: {report['decisions']:,} decisions: {report['unchanged']:,} unchanged, {gained}, {lost}")
    if report["changes"]:
        print(f"\nwho gains or loses (top {len(report['changes'])} of {report['pairs']:,} principal/route pairs):")
        rows = [["GAINED", "LOST", "PRINCIPAL", "API/STAGE", "ROUTE", "FIRST SEEN"]]
        rows += [[f"+{c['gained']:,}", f"-{c['lost']:,}", visible(c["principal"]),
                  visible(_api_stage(c["api"], c["stage"])), visible(c["route"]), visible(c["first"])]
                 for c in report["changes"]]
        print("\n".join(_table(rows)))
    if report["routes"]:
        print(f"\nby route (top {len(report['routes'])}):")
        rows = [["GAINED", "LOST", "PRINCIPALS", "API/STAGE", "ROUTE", "FIRST SEEN"]]
        rows += [[f"+{r['gained']:,}", f"-{r['lost']:,}", f"{r['principals']:,}",
                  visible(_api_stage(r["api"], r["stage"])), visible(r["route"]), visible(r["first"])]
                 for r in report["routes"]]
        print("\n".join(_table(rows)))
    if report["examples"]:
        print(f"\nfirst {len(report['examples'])} changed requests:")
        for e in report["examples"]:
            change = paint(f"{e['live']} -> {e['replayed']}", "green" if e["change"] == "gained" else "red")
            print(f"  {visible(e['where'])}  {visible(e['timestamp'])}  {visible(e['principal'])}  "
                  f"{visible(e['request'])} "
                  f"({visible(e['route'])}, {visible(_api_stage(e['api'], e['stage']))}): {change} "
                  f"(live version {visible(e['live_version'] or '?')})")
    for note in report["notes"]:
        print(paint(f"note: {note}", "dim"))
    status = {"no_difference": paint("no difference", "green"), "differences": paint("differences found", "red"),
              "nothing_replayed": paint("nothing replayed", "yellow")}[report["status"]]
    print(f"\n{status}")
