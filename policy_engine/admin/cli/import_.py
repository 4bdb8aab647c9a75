"""``policy-engine import openapi``: permission YAML from an OpenAPI document's security."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from policy_engine.admin.cli._arguments import api_arn
from policy_engine.admin.cli._common import add_command
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.admin.files import write_output
from policy_engine.admin.openapi import BASE_PATH_MODES, OpenApiDocument, read_openapi
from policy_engine.admin.openapi_import import generated_state, render, routes_of
from policy_engine.core.permissions import FIELD_RULES, FieldProblem
from policy_engine.errors import ConfigurationError, StoreError

IMPORT_DESCRIPTION = """\
Write permission YAML from another description of the API. Today: OpenAPI 3.x
and Swagger 2.0 documents ('policy-engine import openapi --help').
"""

OPENAPI_DESCRIPTION = """\
Write permission YAML from the security an OpenAPI 3.x or Swagger 2.0 document
declares.

Each operation's security (or the document's default) becomes one route: any of
its requirement objects grants it, and one object needs all of its scopes.
'security: []' needs no authorization (no mapping); an operation with no security
declared anywhere is written as a route no caller is granted; requirements made
only of API keys, HTTP basic or IAM are reported and left out. The report (on
stderr; with --format json and -o, on stdout) lists what was imported, what needs
no authorization, and what was left out and why. Details: docs/openapi.md.

Without -o the YAML goes to stdout. With -o an unchanged result is not rewritten,
and a file edited by hand (or not written by this command) is not overwritten
without --force.

Exit codes: 0 written or unchanged; 1 refused (OUT was edited by hand); 2 could
not run (bad document, bad --arn or --stages, unreadable file).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "import", summary="write permission YAML from another description of the API (OpenAPI)",
        description=IMPORT_DESCRIPTION, examples=(
            "policy-engine import openapi openapi.yaml --arn arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5 "
            "--stages dev,prod -o permissions/api.yaml",
        ),
    )
    importers = parser.add_subparsers(dest="importer", required=True, metavar="FORMAT")
    openapi = add_command(
        importers, "openapi", summary="import the security requirements of an OpenAPI 3.x or Swagger 2.0 document",
        description=OPENAPI_DESCRIPTION, examples=(
            "policy-engine import openapi openapi.yaml --arn arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5 "
            "--stages dev,prod -o permissions/api.yaml",
            "policy-engine import openapi swagger.json --arn API_ARN --stages dev      # YAML on stdout",
            "policy-engine import openapi openapi.yaml --arn API_ARN --stages dev -o api.yaml --format json",
        ),
    )
    openapi.add_argument("spec", metavar="SPEC", help="the OpenAPI or Swagger document (YAML or JSON)")
    openapi.add_argument("--arn", required=True, metavar="API_ARN",
                         help="the API's ARN, arn:aws:execute-api:<region>:<account-id>:<api-id>")
    openapi.add_argument("--stages", required=True, metavar="STAGES", help="comma-separated stage names: dev,prod")
    openapi.add_argument("-o", "--output", metavar="OUT.yaml", help="file to write (default: stdout)")
    openapi.add_argument("--force", action="store_true", help="overwrite OUT even if it was edited by hand")
    openapi.add_argument("--base-path", choices=BASE_PATH_MODES, default="ignore",
                         help="API Gateway's import mode for the document's base path (default: ignore)")
    openapi.add_argument("--format", choices=("text", "json"), default="text",
                         help="report format: text on stderr (default), or json on stdout (needs -o, since "
                              "without it stdout holds the YAML); fields as docs/cli.md lists them")
    openapi.set_defaults(run=run)


def _arn(value: str) -> str:
    return api_arn(value, "--arn")


def _stages(value: str) -> list[str]:
    stages: list[str] = []
    for raw in value.split(","):
        stage = raw.strip()
        try:
            FIELD_RULES["stage"](stage)
        except FieldProblem:
            raise ConfigurationError("--stages", f"{stage!r} is not a stage name (letters, digits, '-', '_', or "
                                     "'*' for every stage)") from None
        if stage not in stages:
            stages.append(stage)
    return stages


def _shown(path: str) -> str:
    # The header names files as the user would type them from here: relative when they
    # are below the current folder, so the output does not depend on where it was made.
    try:
        relative = Path(os.path.relpath(Path(path).resolve(), Path.cwd().resolve()))
    except ValueError:
        return path
    return path if relative.as_posix().startswith("../") else relative.as_posix()


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    arn, stages = _arn(args.arn), _stages(args.stages)
    if args.format == "json" and not args.output:
        raise ConfigurationError("--format", "json needs -o: without it stdout holds the permission YAML")
    spec = _shown(args.spec)
    output = Path(args.output) if args.output else None
    if output is not None and output.is_dir():
        raise StoreError(f"{args.output}: -o names a folder; give a file name")
    progress = TerminalProgress("import openapi", enabled=args.format != "json")
    progress.phase("parse")
    try:
        document = read_openapi(spec, base_path=args.base_path)
    finally:
        progress.close()
    command = ["policy-engine", "import", "openapi", spec, "--arn", arn, "--stages", ",".join(stages)]
    if args.base_path != "ignore":
        command += ["--base-path", args.base_path]
    if output is not None:
        command += ["-o", _shown(args.output)]
    text = render(document, arn=arn, stages=stages, command=shlex.join(command), base_path=args.base_path)
    if output is None:
        sys.stdout.write(text)
        _report(args, document, "stdout", None, started)
        return 0
    status = "written"
    if output.exists():
        try:
            existing = output.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{args.output}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        state = generated_state(existing)
        if existing == text:
            status = "unchanged"
        elif state != "generated" and not args.force:
            why = ("was edited by hand since it was imported (its '# generated:' digest no longer matches)"
                   if state == "edited" else "was not written by 'policy-engine import' (no '# generated:' digest)")
            _report(args, document, "refused", f"{args.output} {why}; not overwritten: --force overwrites it",
                    started)
            return 1
    if status == "written":
        write_output(output, text.encode("utf-8"), args.output)
    _report(args, document, status, None, started)
    return 0


def _report(args: argparse.Namespace, document: OpenApiDocument, status: str, refusal: str | None,
            started: float) -> None:
    routes = routes_of(document.operations)
    imported = [op for op in document.operations if op.requirements]
    free = [op for op in document.operations if op.requirements is None]
    left = [op for op in document.operations if op.requirements == ()]
    seconds = round(time.perf_counter() - started, 3)
    if args.format == "json":
        print(json.dumps({
            "source": document.source, "digest": document.digest, "version": document.version,
            "title": document.title, "output": args.output, "status": status, "refusal": refusal,
            "routes": len(routes) - len(left),
            "imported": [{"route": op.route, "where": op.where,
                          "requirements": [sorted(a) for a in op.requirements or ()], "notes": list(op.notes)}
                         for op in imported],
            "without_authorization": [{"route": op.route, "where": op.where, "notes": list(op.notes)} for op in free],
            "no_caller": [{"route": op.route, "where": op.where, "reason": "; ".join(op.notes)} for op in left],
            "skipped": [{"route": f"{op.verb} {op.path}", "where": op.where, "reason": op.reason}
                        for op in document.skipped],
            "notes": list(document.notes), "seconds": seconds,
        }, indent=2))
        if refusal:
            print(f"policy-engine import: {refusal}", file=sys.stderr)
        return
    err = sys.stderr
    total = len(document.operations) + len(document.skipped)
    print(f"read      {document.source} ({'Swagger' if document.version == '2.0' else 'OpenAPI'} "
          f"{document.version}, {document.title!r}): {total} operations", file=err)
    print(f"imported  {len(imported)} operations as {len(routes) - len(left)} routes", file=err)
    if free:
        print(f"no authorization  {len(free)} (no mapping): {', '.join(op.route for op in free)}", file=err)
    if left:
        print(f"no caller  {len(left)} (written as []: known routes no token is granted):", file=err)
        for op in left:
            print(f"  {op.route} ({op.where}): {'; '.join(op.notes)}", file=err)
    if document.skipped:
        print(f"not imported  {len(document.skipped)} (not API Gateway methods):", file=err)
        for skipped in document.skipped:
            print(f"  {skipped.verb} {skipped.path} ({skipped.where}): {skipped.reason}", file=err)
    noted = [op for op in imported if op.notes]
    if noted:
        # Caveats of what was imported (a requirement cut to its OAuth part, a scope the
        # scheme does not declare): the file's header lists them too.
        print(f"notes     {len(noted)} imported operation(s):", file=err)
        for op in noted:
            print(f"  {op.route} ({op.where}): {'; '.join(op.notes)}", file=err)
    for note in document.notes:
        print(f"note      {note}", file=err)
    if refusal:
        print(f"policy-engine import: {refusal}", file=err)
    elif status == "stdout":
        print("wrote     the permission YAML to stdout", file=err)
    else:
        print(f"{status:<9} {args.output}", file=err)
    print(f"took      {seconds:.3f} s", file=err)
