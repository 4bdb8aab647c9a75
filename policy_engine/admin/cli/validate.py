"""``policy-engine validate [PATHS]``: check permission mappings before they are merged."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from policy_engine.admin.catalogs import load_api_catalog, load_client_catalog, load_scope_catalog
from policy_engine.admin.cli._arguments import api_arn, number_in
from policy_engine.admin.cli._common import (
    Palette,
    add_color,
    add_command,
    add_format,
    default_location,
    read_locations,
)
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.admin.coverage import coverage
from policy_engine.admin.lint import ERROR, INFO, WARNING, ApiCatalog, Finding, LintReport, lint
from policy_engine.admin.openapi import BASE_PATH_MODES, OpenApiDocument, read_openapi
from policy_engine.core.decision import MAX_RESPONSE_BYTES
from policy_engine.errors import ConfigurationError, PermissionsError

_CATALOG_FILES = {"scope_catalog": "scopes.yaml", "client_catalog": "clients.yaml", "api_catalog": "apis.yaml"}


DESCRIPTION = """\
Check permission files before they are merged or published.

Reports, each with file:line: schema errors, duplicates, one route written in
conflicting forms, mixed API ARNs and stages, wildcards that hide narrower
mappings, scopes missing from (or unused in) a scope catalog, APIs, stages and
routes missing from an API catalog, and the size of the authorizer response for
every scope and catalogued client (an error over API Gateway's 8 KB limit, a
warning near it).

With --openapi SPEC (or an API catalog entry with 'openapi:'), also how the
mappings cover the document's security: secured operations no mapping grants,
mappings wider or narrower than an operation requires, mappings of operations
that need no authorization, and mappings of routes the document does not have
(docs/openapi.md).

Exit codes: 0 clean; 1 findings at or above --fail-on (notes never count);
2 could not run.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "validate", summary="check permission files (schema, conflicts, catalogs, policy size)",
        description=DESCRIPTION, examples=(
            "policy-engine validate                        # ./permissions or $PERMISSIONS_SOURCE",
            "policy-engine validate permissions/ --catalog catalog/",
            "policy-engine validate --openapi openapi.yaml --fail-on error",
            "policy-engine validate dynamodb://permissions --format json",
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="YAML files/folders or store locations (default: $PERMISSIONS_SOURCE or ./permissions)")
    parser.add_argument("--catalog", metavar="DIR",
                        help="folder holding scopes.yaml, clients.yaml and/or apis.yaml")
    parser.add_argument("--scope-catalog", metavar="FILE", help="scope catalog (overrides --catalog)")
    parser.add_argument("--client-catalog", metavar="FILE", help="client catalog (overrides --catalog)")
    parser.add_argument("--api-catalog", metavar="FILE", help="API catalog (overrides --catalog)")
    parser.add_argument("--openapi", action="append", default=[], metavar="SPEC",
                        help="check the mappings' coverage of this OpenAPI/Swagger document's security "
                             "(repeatable)")
    parser.add_argument("--arn", metavar="API_ARN",
                        help="the API the --openapi documents are deployed as (default: the only API the "
                             "permissions name)")
    parser.add_argument("--base-path", choices=BASE_PATH_MODES, default="ignore",
                        help="API Gateway's import mode for the documents' base path (ignore)")
    add_format(parser)
    add_color(parser)
    parser.add_argument("--warn-ratio", type=number_in(float, 0, 1), default=0.8, metavar="R",
                        help="warn when a response exceeds R of the 8192-byte limit (0.8)")
    parser.add_argument("--fail-on", choices=(ERROR, WARNING), default=WARNING,
                        help="lowest severity that makes the exit code 1 (warning)")
    parser.add_argument("--sizes", type=number_in(int, 0), default=5, metavar="N", help="largest responses to list (5)")
    parser.set_defaults(run=run)


def _catalog_paths(args: argparse.Namespace) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if args.catalog:
        folder = Path(args.catalog)
        if not folder.is_dir():
            raise PermissionsError(f"{folder}: --catalog must be a folder")
        for key, name in _CATALOG_FILES.items():
            if (folder / name).is_file():
                found[key] = folder / name
    for key in _CATALOG_FILES:
        if getattr(args, key):
            found[key] = Path(getattr(args, key))
    return found


def run(args: argparse.Namespace) -> int:
    locations = args.paths or [default_location()]
    try:
        catalogs = _catalog_paths(args)
        scopes = load_scope_catalog(catalogs["scope_catalog"]) if "scope_catalog" in catalogs else None
        clients = load_client_catalog(catalogs["client_catalog"]) if "client_catalog" in catalogs else None
        apis = load_api_catalog(catalogs["api_catalog"]) if "api_catalog" in catalogs else None
    except PermissionsError as exc:
        print(f"policy-engine validate: cannot read a catalog: {exc}", file=sys.stderr)
        return 2
    try:
        specs = [read_openapi(path, base_path=args.base_path) for path in args.openapi]
    except PermissionsError as exc:
        print(f"policy-engine validate: cannot read an OpenAPI document: {exc}", file=sys.stderr)
        return 2
    if args.arn is not None:
        api_arn(args.arn, "--arn")
    progress = TerminalProgress("validate", enabled=args.format != "json")
    try:
        progress.phase("parse")
        records, locate = read_locations(locations)
        progress.phase("check")
        linted = lint(records, locate, scopes=scopes, clients=clients, apis=apis, warn_ratio=args.warn_ratio)
    except PermissionsError as exc:
        # The documents could not even be read as mappings (YAML syntax, unknown shape).
        findings = [Finding(ERROR, "schema", *_split(problem)) for problem in exc.problems]
        report: LintReport | None = None
    else:
        findings, report = linted.findings, linted
        try:
            progress.phase("coverage")
            extra = _coverage(report, specs, args.arn, apis)
        except ConfigurationError as exc:
            progress.close()
            print(f"policy-engine validate: {exc}", file=sys.stderr)
            return 2
        if extra:
            findings = sorted(set(findings) | set(extra), key=_finding_order)
    finally:
        progress.close()
    failing = [f for f in findings if f.severity == ERROR or (args.fail_on == WARNING and f.severity == WARNING)]
    if args.format == "json":
        print(json.dumps(_as_json(locations, findings, report, catalogs, specs), indent=2))
    else:
        _print_text(locations, findings, report, args)
    return 1 if failing else 0


def _coverage(report: LintReport, specs: list[OpenApiDocument], arn: str | None,
              apis: ApiCatalog | None) -> list[Finding]:
    """Coverage findings of every document given with --openapi and in the API catalog.

    Raises:
        ConfigurationError: --openapi without --arn, and the permissions do not name exactly one API.
    """
    grants = report.permissions.grants
    findings: list[Finding] = []
    if specs:
        if arn is None:
            named = sorted({grant.route.api_arn for grant in grants})
            if len(named) != 1:
                listed = f" ({', '.join(named)})" if named else ""
                raise ConfigurationError("--arn", f"name the API the --openapi documents are deployed as; the "
                                         f"permissions name {len(named)} "
                                         f"APIs{listed}")
            arn = named[0]
        for spec in specs:
            findings += coverage(grants, spec, arn)
    for entry in (apis.apis.values() if apis is not None else ()):
        if entry.spec is not None:
            own = {(op.verb, op.path) for op in entry.spec.operations}
            findings += coverage(grants, entry.spec, entry.arn, entry.stages,
                                 other_routes=[route for route in entry.routes if route not in own])
    return findings


def _finding_order(finding: Finding) -> tuple[str, int, str, str]:
    name, _, line = finding.where.rpartition(":")
    return (name, int(line), finding.code, finding.message) if line.isdigit() else \
        (finding.where, 0, finding.code, finding.message)


def _split(problem: str) -> tuple[str, str]:
    where, sep, message = problem.partition(": ")
    return (where, message) if sep else ("", problem)


def _as_json(locations: list[str], findings: list[Finding], report: LintReport | None,
             catalogs: dict[str, Path], specs: list[OpenApiDocument]) -> dict[str, Any]:
    return {
        "locations": locations,
        "catalogs": {k.removesuffix("_catalog"): str(v) for k, v in catalogs.items()},
        "openapi": [{"source": spec.source, "digest": spec.digest, "operations": len(spec.operations)}
                    for spec in specs],
        "mappings": report.records if report else None,
        "errors": sum(f.severity == ERROR for f in findings),
        "warnings": sum(f.severity == WARNING for f in findings),
        "infos": sum(f.severity == INFO for f in findings),
        "findings": [f.as_dict() for f in findings],
        "limit_bytes": MAX_RESPONSE_BYTES,
        "sizes": [row.as_dict() for row in report.sizes] if report else [],
    }


def _print_text(locations: list[str], findings: list[Finding], report: LintReport | None,
                args: argparse.Namespace) -> None:
    paint = Palette(sys.stdout, args.color)
    colour = {ERROR: "red", WARNING: "yellow", INFO: "cyan"}
    for f in findings:
        where = f"{f.where}: " if f.where else ""
        code = paint(f"[{f.code}]", "dim")
        print(f"{paint(where, 'bold')}{paint(f.severity, colour[f.severity])}: {f.message} {code}")
    if report is not None and report.sizes and args.sizes > 0:
        shown = report.sizes[: args.sizes]
        print(f"\nlargest authorizer responses ({len(shown)} of {len(report.sizes)}, "
              f"limit {MAX_RESPONSE_BYTES} bytes):")
        width = max(len(row.subject) for row in shown)
        for row in shown:
            api = row.api_arn.rsplit(":", 1)[-1]
            share = row.bytes * 100 // MAX_RESPONSE_BYTES
            print(f"  {row.subject:<{width}}  {api}/{row.stage:<8} {row.routes:>4} routes "
                  f"{row.resources:>4} Resources {row.bytes:>6} bytes {share:>3}%")
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    mappings = f"{report.records} mappings" if report else "mappings"
    infos = sum(f.severity == INFO for f in findings)
    status = paint("clean", "green") if not errors and not warnings else (
        f"{paint(f'{errors} error(s)', 'red') if errors else '0 errors'}, "
        f"{paint(f'{warnings} warning(s)', 'yellow') if warnings else '0 warnings'}")
    if infos:
        status += f", {infos} note(s)"
    print(f"\n{mappings} from {', '.join(locations)}: {status}")
