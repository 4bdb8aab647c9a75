"""The command line as a new user meets it: help, --version, mistakes and their exit codes."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import policy_engine.admin.cli as cli
from policy_engine.admin.cli import build_parser, main
from policy_engine.admin.cli.cli_doc import _commands
from tests.conftest import ROOT


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(name, parser) for name, _, parser in _commands(build_parser())]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    code = raised.value.code
    assert isinstance(code, int)
    return code


def test_top_level_help_speaks_to_users(capsys):
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert "register(subparsers)" not in out and "this file only dispatches" not in out
    assert "Authorize API Gateway requests from permission files" in out
    for name in ("validate", "explain", "sync", "bundle", "migrate"):
        assert f"\n    {name}" in out
    assert "Exit codes: 0 success, 1 findings or refused, 2 could not run" in out


@pytest.mark.parametrize("name", [name for name, _ in _parsers()])
def test_every_help_text_is_plain_text_with_exit_codes_or_examples(name):
    parser = dict(_parsers())[name]
    text = parser.format_help()
    assert "``" not in text, f"RST markup in 'policy-engine {name} --help'"
    assert parser.description and parser.description.strip()
    if " " not in name and name != "serve":  # a command that exits on its own says how
        assert "Exit codes" in text or name in ("import",), name
    for action in parser._actions:
        assert "``" not in (action.help or "")


def test_commands_that_users_run_most_show_examples():
    parsers = dict(_parsers())
    for name in ("validate", "explain", "sync", "rollback", "migrate", "bundle", "invoke", "import openapi"):
        assert "examples:\n  policy-engine " + name.split()[0] in parsers[name].format_help(), name


def test_version_is_the_installed_distribution_version(capsys):
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"policy-engine {importlib.metadata.version('policy-engine')}"


def test_version_from_a_source_tree_that_is_not_installed(monkeypatch):
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version().endswith("(source tree, not installed)")
    assert cli.version().split()[0].count(".") >= 1


@pytest.mark.parametrize(("typed", "meant"), [("validat", "validate"), ("Sync", "sync"), ("explian", "explain"),
                                                ("rollbak", "rollback")])
def test_a_mistyped_command_gets_a_suggestion(typed, meant, capsys):
    assert _exit_code([typed]) == 2
    err = capsys.readouterr().err
    assert f"did you mean '{meant}'?" in err
    assert err.startswith("usage: policy-engine [-h] [--version] COMMAND")


def test_a_word_unlike_any_command_gets_no_guess(capsys):
    assert _exit_code(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "did you mean" not in err


def test_a_mistyped_choice_of_an_option_gets_a_suggestion(capsys):
    assert _exit_code(["validate", "--format", "jsno"]) == 2
    err = capsys.readouterr().err
    assert "argument --format: invalid choice: 'jsno' (did you mean 'json'?)" in err
    assert err.startswith("usage: policy-engine validate")


@pytest.mark.parametrize(("argv", "unknown"), [
    (["validate", "--bogus"], "--bogus"),
    (["sync", "dynamodb://t", "--dryrun"], "--dryrun"),
    (["explain", "--scopes", "a", "--requets", "GET /dev/x"], "--requets GET /dev/x"),
])
def test_a_bad_flag_shows_the_usage_of_its_subcommand(argv, unknown, capsys):
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: policy-engine {argv[0]} ")
    assert err.rstrip().endswith(f"policy-engine {argv[0]}: error: unrecognized arguments: {unknown}")


def test_a_bad_flag_of_a_nested_command_shows_the_nested_usage(capsys):
    assert _exit_code(["import", "openapi", "spec.yaml", "--arn", "x", "--stages", "dev", "--bogus", "a"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: policy-engine import openapi ")
    assert "policy-engine import openapi: error: unrecognized arguments: --bogus a" in err


def test_a_missing_argument_is_a_usage_error_of_the_subcommand(capsys):
    assert _exit_code(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: policy-engine migrate") and "TARGET" in err


# Values given on the command line are checked as permission files are.

@pytest.mark.parametrize(("request_text", "said"), [
    ("FETCH /dev/pets", "'FETCH' is not an HTTP method"),
    ("GTE /dev/pets", "did you mean GET?"),
    ("ANY /dev/pets", "'*' and 'ANY' are for mappings"),
    ("* /dev/pets", "'*' and 'ANY' are for mappings"),
    ("GET /dev/pets/*", "a request names one path"),
    ("GET /d ev/pets", "is not a stage name"),
    ("GET /*/pets", "a request is made on one stage"),
    ("GET /dev/pets one", "has characters a route path cannot have"),
    ("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/FETCH/pets", "'FETCH' is not an HTTP method"),
])
def test_explain_refuses_a_request_no_permission_file_could_name(request_text, said, capsys):
    assert main(["explain", "--scopes", "pets:read", "--request", request_text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("policy-engine explain: --request: ") and said in err


def test_explain_accepts_a_lower_case_verb_as_files_do(capsys):
    assert main(["explain", "--scopes", "pets:read", "--request", "get /dev/pets/12", "--format", "json"]) == 0


@pytest.mark.parametrize(("argv", "flag", "said"), [
    (["explain", "--scopes", "a", "--api", "not an api"], "--api", "neither an API ARN"),
    (["explain", "--scopes", "a", "--api", "arn:aws:execute-api:us-east-1:12:x"], "--api", "is not an API ARN"),
    (["explain", "--scopes", "a", "--stage", "de v"], "--stage", "is not a stage name"),
    (["validate", "--arn", "arn:aws:lambda:us-east-1:123456789012:function:f"], "--arn", "is not an API ARN"),
    (["import", "openapi", "x.yaml", "--arn", "arn:aws:s3:::b", "--stages", "dev"], "--arn", "is not an API ARN"),
])
def test_arns_and_stages_on_the_command_line_are_checked(argv, flag, said, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f": {flag}: " in err and said in err


def test_serve_checks_its_api_and_stage_flags_before_starting_anything(capsys):
    assert _exit_code(["serve", "--api", "a1b2c3"]) == 2
    assert "argument --api: arn 'a1b2c3' is not an API ARN" in capsys.readouterr().err
    assert _exit_code(["serve", "--stage", "*"]) == 2
    assert "argument --stage: a request is made on one stage" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["serve", "--port", "-1"], "argument --port: '-1': must be a whole number from 0 to 65535"),
    (["serve", "--idp-port", "70000"], "argument --idp-port: '70000': must be a whole number from 0 to 65535"),
    (["demo", "--port", "eighty"], "argument --port: 'eighty' is not a whole number"),
    (["demo", "--url", "notaurl"], "argument --url: 'notaurl' is not an http:// or https:// URL"),
    (["demo", "--url", "http://127.0.0.1:99999"], "argument --url: 'http://127.0.0.1:99999' has a port that is not"),
    (["sync", "dynamodb://t", "--max-lines", "-1"], "argument --max-lines: '-1': must be a whole number of at least 0"),
    (["rollback", "dynamodb://t", "--to", "0"], "argument --to: '0': must be a whole number of at least 1"),
    (["validate", "--sizes", "-1"], "argument --sizes: '-1': must be a whole number of at least 0"),
    (["validate", "--warn-ratio", "5"], "argument --warn-ratio: '5': must be a number from 0 to 1"),
    (["validate", "--warn-ratio", "nan"], "argument --warn-ratio: 'nan': must be a number from 0 to 1"),
    (["replay", "x.log", "--against", "p", "--max-keys", "0"], "argument --max-keys: '0': must be a whole number"),
])
def test_numbers_ports_and_urls_out_of_range_are_usage_errors_before_anything_starts(argv, said, capsys):
    # Exit 2 with one line naming the flag, never a traceback (a port past 65535 was an
    # OverflowError from bind()).
    assert _exit_code(argv) == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("command", [["invoke", "--event", "events/token-get-pet.json", "--local-idp"],
                                     ["quickstart"]])
def test_a_permissions_path_that_does_not_exist_is_refused_before_anything_runs(command, tmp_path, capsys):
    # A typo is a usage problem (exit 2), not a store failure the handler fails closed on (1).
    from tests.conftest import ROOT

    argv = [part if not part.startswith("events/") else str(ROOT / part) for part in command]
    assert main([*argv, "--permissions", str(tmp_path / "nope")]) == 2
    assert f"--permissions: {tmp_path / 'nope'}: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["sync", "dynamodb://"], "TARGET: '' is not a DynamoDB table name"),
    (["sync", "ftp://x"], "TARGET: 'ftp://x' is not dynamodb://TABLE or s3://BUCKET/KEY"),
    (["migrate", "dynamodb://bad..name!"], "TARGET: 'bad..name!' is not a DynamoDB table name"),
    (["rollback", "dynamodb://x"], "TARGET: 'x' is not a DynamoDB table name"),
    (["serve", "--identity-source", "bogus"], "--identity-source: 'bogus' is not an API Gateway identity source"),
])
def test_a_bad_value_on_the_command_line_is_named_by_its_argument(argv, said, tmp_path, monkeypatch, capsys):
    # Checked before anything else is read: in a folder without ./permissions, a bad
    # TARGET is still what sync reports.
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert said in capsys.readouterr().err


def test_bundle_refuses_an_output_it_cannot_write_before_any_work(tmp_path, capsys):
    # A folder, a device or a path under a file: exit 2 naming it, never a traceback, and
    # never a zip renamed over something that is not a file (it replaced /dev/full once).
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for output, said in ((tmp_path, "is a folder"), (Path("/dev/null"), "is not a regular file"),
                         (a_file / "sub.zip", "is not a folder")):
        assert main(["bundle", "--output", str(output), "--no-compile"]) == 2
        assert said in capsys.readouterr().err
    assert main(["bundle", "--output", str(tmp_path / "b.zip"), "--wheel-cache", str(a_file), "--no-compile"]) == 2
    assert f"{a_file}: is not a folder, so it cannot hold the wheel cache" in capsys.readouterr().err
    assert Path("/dev/null").is_char_device() and not list(tmp_path.glob("*.partial"))


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(tmp_path):
    # `policy-engine ... | head`: the pipe closes before the YAML is written.
    spec = ROOT / "tests" / "data" / "openapi" / "petstore-oas30.yaml"
    command = [sys.executable, "-m", "policy_engine.admin.cli", "import", "openapi", str(spec), "--arn",
               "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5", "--stages", "dev"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 2
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_command_cancelled_by_a_signal_exits_130_without_a_traceback(signal_name):
    # CI systems cancel a job with SIGTERM: it must end a command as Ctrl-C does (a sync
    # releases its claim on the way out), not kill it where it stands.
    import signal
    import time

    command = [sys.executable, "-m", "policy_engine.admin.cli", "replay", "-", "--against", str(ROOT / "permissions")]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # past the imports: replay waits on its standard input
        proc.send_signal(getattr(signal, signal_name))
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
