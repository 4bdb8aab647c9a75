"""docs/cli.md, generated from the real parser and the declared JSON fields.

``python -m policy_engine.admin.cli.cli_doc`` prints the reference; ``--write`` writes
docs/cli.md; ``--check`` exits 1 when docs/cli.md differs. A test runs the check, and
another compares ``JSON_FIELDS`` with what each command prints, so neither a flag nor a
JSON field can change without the reference following.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["CLI_DOC", "JSON_FIELDS", "main", "render"]

CLI_DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"

_WIDTH = 100

#: The fields of each ``--format json`` document, by command (``rollback --list`` and
#: ``explain --diff`` print another document than the command's main one). Top-level
#: fields only; each meaning says what nested objects hold. Fields are only ever added.
JSON_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "validate": (
        ("locations", "the permission locations read"),
        ("catalogs", "catalog files used, by kind (`scope`, `client`, `api`)"),
        ("openapi", "each `--openapi` document: `source`, `digest`, `operations`"),
        ("mappings", "number of mappings read, or null when the files could not be read as mappings"),
        ("errors", "number of error findings"),
        ("warnings", "number of warning findings"),
        ("infos", "number of notes (never fail the run)"),
        ("findings", "each finding: `severity` (error, warning, info), `code`, `where` (file:line), `message`"),
        ("limit_bytes", "API Gateway's limit on an authorizer response (8192)"),
        ("sizes", "largest responses, each: `subject`, `api`, `stage`, `routes`, `resources`, `bytes`, `where`"),
    ),
    "explain": (
        ("permissions", "`location` and `version` (content digest) of the permissions read"),
        ("caller", "who was explained: `source` (the flags), `scopes`, `grants` by kind, `principal`; with "
                   "--token also `issuer`, `subject`, `client_id`, `expires`, `kid`, `alg`, `verified`, "
                   "`verification`, `unconfigured_grant_claims`"),
        ("policies", "one per stage: `api`, `stage`, `effect`, `resources`, `bytes`, `limit_bytes`, `too_large`, "
                     "`response` (the authorizer response), `routes` and `refused` (each with `route`, `stage`, "
                     "`needs`, `mapping`), `per_request`, `placeholders_refused`"),
        ("request", "with --request only: `request`, `method_arn`, `status` (200, 401, 403, 500; 414 for a "
                    "methodArn over 1,600 bytes), `verdict`, `statement`, `effect`, `resource`, `mappings`"),
    ),
    "explain --diff": (
        ("old", "`location` and `version` of OLD"),
        ("new", "`location` and `version` of NEW"),
        ("scopes", "by scope, group or all-of set: `gained` and `lost` routes"),
    ),
    "replay": (
        ("against", "the permissions replayed against: `location`, `version`, `mappings`"),
        ("inputs", "the LOGS arguments"),
        ("status", "`no_difference` (exit 0), `differences` (exit 1) or `nothing_replayed` (no decision line; "
                   "exit 2)"),
        ("lines", "lines read (a JSON document's events count one each)"),
        ("bytes", "bytes of those lines (uncompressed)"),
        ("decisions", "Allow/Deny lines replayed"),
        ("unchanged", "replayed with the logged outcome"),
        ("gained", "requests denied live that PERMISSIONS allows"),
        ("lost", "requests allowed live that PERMISSIONS denies"),
        ("skipped", "lines not replayed, by kind: `not_decision` (other log lines), `refusal` (Unauthorized, "
                    "Error), `older_release` (decision lines without the request), `damaged`"),
        ("damaged", "the first damaged lines, each: `where` (file:line), `problem`"),
        ("pairs", "principal and route pairs with a change, counted one by one"),
        ("max_keys", "the bound on `pairs` and on routes (--max-keys)"),
        ("beyond_max_keys", "`pairs` and `routes`: the `gained` and `lost` requests past the bound of each table "
                            "(in the totals, not in `changes` or `routes`)"),
        ("changes", "the pairs with most changes (--top), each: `principal`, `api`, `stage`, `route`, `gained`, "
                    "`lost`, `first` (file:line)"),
        ("routes", "the routes with most changes (--top), each: `api`, `stage`, `route`, `gained`, `lost`, "
                   "`principals` (pairs counted for it), `first`"),
        ("examples", "the first changed requests, each: `where`, `timestamp`, `principal`, `api`, `stage`, `route`, "
                     "`request`, `live`, `replayed`, `change` (`gained` or `lost`), `live_version`"),
        ("live_versions", "decisions replayed, by the live version that made them"),
        ("notes", "what the replay could not reproduce for these lines (see docs/replay.md)"),
        ("seconds", "time taken"),
    ),
    "invoke": (
        ("environment", "variables set on top of the process environment (a minted token is named, not shown)"),
        ("response", "the handler's response, or null when it raised"),
        ("error", "what the handler raised (`Unauthorized`, `AuthorizerFailure`...), or null"),
        ("method_arn", "the event's methodArn (or routeArn)"),
        ("status", "what API Gateway would answer: 200, 401, 403 or 500 (for an HTTP API event refused with "
                   "`Unauthorized`, 401 if the HTTP API honours the message, which AWS does not document; "
                   "otherwise 500)"),
        ("verdict", "`Allow`; `ExplicitDeny` (a Deny statement matches the request) or `ImplicitDeny` (no Allow "
                    "statement does); `Deny` (a simple response's `isAuthorized` is false); `Unauthorized`; `Error` "
                    "(the handler raised anything else); or why the response is one API Gateway would refuse"),
    ),
    "import openapi": (
        ("source", "the document read"),
        ("digest", "its content digest"),
        ("version", "its OpenAPI or Swagger version"),
        ("title", "its title"),
        ("output", "the file written (-o)"),
        ("status", "`written`, `unchanged` or `refused`"),
        ("refusal", "why it was refused, or null"),
        ("routes", "number of routes written that grant some caller (those written as `[]` are in `no_caller`)"),
        ("imported", "each operation imported: `route`, `where`, `requirements`, `notes`"),
        ("without_authorization", "operations with `security: []`: `route`, `where`, `notes`"),
        ("no_caller", "operations written as granted to no caller: `route`, `where`, `reason`"),
        ("skipped", "operations left out: `route`, `where`, `reason`"),
        ("notes", "remarks on the document"),
        ("seconds", "time taken"),
    ),
    "sync": (
        ("command", "`sync`"),
        ("target", "the store, as `dynamodb://TABLE` or `s3://BUCKET/KEY`"),
        ("dry_run", "true with --dry-run"),
        ("status", "`published`, `unchanged` (with --candidate: the same as the candidate there), `completed` "
                   "(unchanged, the missing snapshot written), `dry_run` (a change, not written) or `refused` "
                   "(exit 1)"),
        ("version_before", "the version published before (0: none)"),
        ("version_after", "the version published after (equal to `version_before` when nothing was published)"),
        ("added", "mappings added, each: `api`, `stage`, `verb`, `resource`, `needs`"),
        ("removed", "mappings removed, same fields"),
        ("unchanged", "number of mappings kept"),
        ("digest", "content digest of the mappings after the publish"),
        ("write_requests", "requests written to the store"),
        ("seconds", "time taken"),
        ("summary", "the one-line summary the text output ends with"),
        ("error", "why it was refused, else null (with `status: refused`, the fields not known are null)"),
        ("candidate", "with --candidate: the candidate's number (published, already there, or that a dry run "
                      "would publish); else null. The diff and versions are against the live version, which a "
                      "candidate never changes"),
        ("replaced", "with --candidate: the number of the candidate it replaced (or would), else null"),
    ),
    "rollback": (
        ("command", "`rollback`"),
        ("...", "every other field as for `sync`"),
    ),
    "promote": (
        ("command", "`promote`"),
        ("...", "`target` to `error` as for `sync`: the diff is the candidate against the live version, "
                "`version_after` the version it became. `status` `completed`: the candidate was already live "
                "(an interrupted promote run again) and was only removed"),
        ("candidate", "the number of the candidate promoted (null when refused)"),
        ("candidate_removed", "true when the candidate was removed (false for a dry run, or when another command "
                              "replaced it meanwhile)"),
    ),
    "discard": (
        ("command", "`discard`"),
        ("target", "the store"),
        ("status", "`discarded` or `refused` (exit 1: another command changed the candidate meanwhile)"),
        ("candidate", "the number of the candidate discarded"),
        ("digest", "its content digest"),
        ("mappings", "its number of mappings"),
        ("based_on", "the live version it was published against"),
        ("version", "the live version now (unchanged)"),
        ("write_requests", "requests written to the store"),
        ("seconds", "time taken"),
        ("summary", "the one-line text output"),
        ("error", "why it was refused, else null"),
    ),
    "rollback --list": (
        ("command", "`rollback`"),
        ("target", "the store"),
        ("versions", "oldest first, each: `version`, `digest`, `mappings`, `published_at`, `note`, and the "
                     "mappings it `added` and `removed` (null where the store does not record them)"),
        ("candidates", "oldest first, each: `candidate` (its number), `digest`, `mappings`, `published_at`, `note`, "
                       "`based_on` (the live version it was published against), `status` (`candidate`, `replaced`, "
                       "`promoted`, `discarded`), `promoted_to` (the version it became) and `replaced_by` (the "
                       "candidate that replaced it), null where they do not apply"),
    ),
    "migrate": (
        ("command", "`migrate`"),
        ("target", "`dynamodb://TABLE`"),
        ("table", "the table name"),
        ("dry_run", "true with --dry-run"),
        ("already_applied", "steps applied before this run"),
        ("pending", "steps that were pending at the start"),
        ("applied", "steps this run applied (none with --dry-run)"),
        ("up_to_date", "true when no step is left pending"),
    ),
    "bundle": (
        ("command", "`bundle`"),
        ("path", "the zip written"),
        ("arch", "`x86_64` or `arm64`"),
        ("python", "the Lambda Python version"),
        ("bytecode", "true when bytecode is included"),
        ("mypyc", "true when the decision path ships as C extensions (--mypyc)"),
        ("handler", "the handler to configure: `handler.app.lambda_handler`"),
        ("permissions", "the permissions compiled into the zip, or null (--no-permissions)"),
        ("size", "bytes zipped"),
        ("unzipped_size", "bytes unzipped (Lambda's limit: 250 MB)"),
        ("files", "number of files"),
        ("sha256", "the zip's SHA-256: same inputs, same value"),
        ("wheels", "the dependency wheels inside"),
    ),
}

_INTRO = """\
# Command-line reference

<!-- generated by `python -m policy_engine.admin.cli.cli_doc --write` from the parser itself; a test
     fails when this file and the parser differ. Edit the help texts in policy_engine/admin/cli/. -->

`policy-engine` is the tool around the authorizer: it checks permission files, runs the
real handler locally, publishes permissions to DynamoDB or S3 and builds the Lambda zip.
`policy-engine --help` lists the commands, `policy-engine COMMAND --help` shows one with
examples, and `policy-engine --version` prints the installed version.

[← README: documentation map](../README.md#documentation)

## Conventions every command follows

**Exit codes.** 0: success. 1: findings, or a refused request or publish (the command ran;
the answer is "no"). 2: could not run: a bad flag or value (usage errors print the
command's own usage), unreadable input, an unreachable or damaged store. 130: interrupted.

**Mistakes on the command line.** A mistyped command or choice gets a suggestion
(`invalid choice: 'validat' (did you mean 'validate'?)`). Verbs, stages, paths and API
ARNs given as flags are checked with the rules permission files are checked with:
`explain --request "FETCH /dev/pets"` is refused with exit 2, naming `--request`.

**Machine-readable output.** `--format json` prints one JSON document on stdout and
nothing else there (messages go to stderr); text is the default. The fields of each
command are listed below; new fields may be added, none is renamed or removed. When a
command cannot run (exit 2) after its flags were read, the document is
`{"error": {"command", "code", "message", "problems"}}`, with the message also on stderr;
a usage error (a bad flag) prints only the usage, on stderr.

**Progress.** Long phases (parse, check, plan, write, bundle) draw one progress line on
stderr when stderr is a terminal. Piped, redirected or in CI, and always with
`--format json`, nothing is drawn.

**Environment variables.** At start-up the CLI warns on stderr about variables, in the
process environment or given with `--env`/`--env-file`, that look like typos of the
authorizer's own (`SCOPE_CLAIM` for `SCOPE_CLAIMS`, `PERMISSION_SOURCE`, `issuer`):
such a variable is ignored, so its default stays in force. The deployed function logs
the same finding once per cold start as a JSON line (`"event": "unknown_variable"`, with
`variable` and `did_you_mean`, never the value). Neither is an error.
"""


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _flag_cell(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    if action.choices is not None and action.metavar is None:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    elif isinstance(action.metavar, tuple):
        value = " ".join(action.metavar)
    else:
        value = action.metavar or action.dest.upper()
    return f"`{names} {value}`"


def _default(action: argparse.Action) -> str:
    default = action.default
    if not action.option_strings or default is None or default is False or default == [] \
            or default in ("", argparse.SUPPRESS):
        return ""
    if isinstance(default, (str, Path)) and Path(default).is_absolute():
        # A file shipped with the package: where it is depends on the installation.
        return "see meaning"
    return f"`{default}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield name, summaries.get(name, ""), child
                for sub_name, sub_summary, grandchild in _commands(child):
                    yield f"{name} {sub_name}", sub_summary, grandchild


def _json_section(command: str) -> list[str]:
    lines: list[str] = []
    for key in (command, f"{command} --list", f"{command} --diff"):
        fields = JSON_FIELDS.get(key)
        if not fields:
            continue
        lines += ["", f"`{key} --format json` prints an object with:", "", "| field | meaning |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in fields]
    return lines


def render() -> str:
    """docs/cli.md as the parser and ``JSON_FIELDS`` describe the command line now."""
    from policy_engine.admin.cli import build_parser

    parser = build_parser()
    lines = [_INTRO, "## Commands", ""]
    commands = list(_commands(parser))
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#policy-engine-{name.replace(' ', '-')}) | {_cell(summary)} |"
              for name, summary, _ in commands]
    for name, _summary, child in commands:
        lines += ["", f"## policy-engine {name}", "", "```text", _usage(child), "```", ""]
        lines += [(child.description or "").strip()]
        rows = [a for a in child._actions
                if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
                and a.dest != "usage_parser"]
        if rows:
            lines += ["", "| argument | default | meaning |", "|---|---|---|"]
            for action in rows:
                lines.append(f"| {_flag_cell(action)} | {_cell(_default(action))} | {_cell(action.help or '')} |")
        if child.epilog:
            lines += ["", "Examples:", "", "```sh"]
            lines += [line.strip() for line in child.epilog.splitlines()[1:]]
            lines += ["```"]
        lines += _json_section(name)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy_engine.admin.cli.cli_doc", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write docs/cli.md")
    group.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md differs")
    parser.add_argument("--path", type=Path, default=CLI_DOC, help="the file to write or check")
    args = parser.parse_args(argv)
    text = render()
    if not (args.write or args.check):
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else ""
        if current != text:
            print(f"{args.path}: differs from the command line; run "
                  "python -m policy_engine.admin.cli.cli_doc --write", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
