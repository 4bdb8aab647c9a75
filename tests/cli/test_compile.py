"""``policy-engine compile PATHS -o SNAPSHOT``: the public contract.

It validates with the schema, writes the S3 store's snapshot format (deterministically,
atomically, only when everything is valid) and its output is a ``PERMISSIONS_SOURCE``
the real handler decides from exactly as from the YAML.
"""

from __future__ import annotations

import json

from policy_engine.admin.cli import main
from policy_engine.core.iam import Verdict
from policy_engine.core.snapshot import FORMAT, decode_snapshot
from tests.conftest import ROOT, invoke, token_event, verdict

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def test_compile_writes_the_s3_snapshot_format_and_the_same_bytes_each_time(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "out" / "b.json"
    assert main(["compile", str(ROOT / "permissions"), "-o", str(first)]) == 0
    assert main(["compile", str(ROOT / "permissions" / "store.yaml"), str(ROOT / "permissions" / "pets.yaml"),
                 "--output", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    snapshot = decode_snapshot(first.read_bytes(), str(first), "")
    document = json.loads(first.read_bytes())
    assert document["format"] == FORMAT and document["version"] == 1 and len(snapshot.keys) == 21
    out = capsys.readouterr().out
    assert f"compiled  21 mappings from {ROOT / 'permissions'}" in out and snapshot.digest in out
    assert not list(tmp_path.rglob("*.partial"))


def test_invalid_permissions_are_listed_with_file_and_line_and_nothing_is_written(tmp_path, capsys):
    output = tmp_path / "snapshot.json"
    output.write_text("previous")
    assert main(["compile", str(ROOT / "permissions"), str(ROOT / "tests" / "data" / "flawed"), "-o",
                 str(output)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("flawed/pets.yaml:25: arn 'arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev' "
                           "is not an API ARN (arn:<partition>:execute-api:<region>:<account-id>:<api-id>)")
    assert any(line.endswith("flawed/pets.yaml:27: httpVerb 'FETCH' is not an HTTP method (or '*'/'ANY')")
               for line in err)
    assert err[-1] == f"policy-engine compile: 3 problem(s); {output} not written"
    assert output.read_text() == "previous"


def test_a_missing_path_cannot_run(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "nope"), "-o", str(tmp_path / "x.json")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_an_output_that_cannot_be_written_is_one_error_exit_2_and_leaves_nothing(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    afile = tmp_path / "a-file"
    afile.write_text("")
    for output, words in ((folder, "names a folder"), (afile / "p.json", "cannot write")):
        assert main(["compile", str(ROOT / "permissions"), "-o", str(output)]) == 2
        assert f"policy-engine compile: {output}: {words}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "out"] and not any(folder.iterdir())


def test_an_output_that_would_replace_a_permission_file_is_refused(tmp_path, capsys):
    import shutil

    folder = tmp_path / "permissions"
    shutil.copytree(ROOT / "permissions", folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for argv in ([str(folder / "pets.yaml"), "-o", str(folder / "pets.yaml")],
                 [str(folder), "-o", str(folder / "compiled.yaml")],
                 [str(folder / "store.yaml"), str(folder), "-o", str(folder / ".." / "permissions" / "pets.yaml")]):
        assert main(["compile", *argv]) == 2, argv
        assert "would replace the permission file" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert main(["compile", str(folder), "-o", str(folder / "compiled.json")]) == 0  # not read as YAML


def test_bundle_refuses_an_output_that_would_replace_its_permission_file(tmp_path, capsys):
    import shutil

    folder = tmp_path / "permissions"
    shutil.copytree(ROOT / "permissions", folder)
    before = (folder / "pets.yaml").read_bytes()
    code = main(["bundle", "--permissions", str(folder), "--output", str(folder / "pets.yaml"),
                 "--wheel-cache", str(tmp_path / "wheels"), "--no-compile"])
    assert code == 2
    assert "would replace the permission file" in capsys.readouterr().err
    assert (folder / "pets.yaml").read_bytes() == before


def test_an_output_that_is_a_link_is_written_through_and_a_fifo_is_refused(tmp_path, capsys):
    import os

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert main(["compile", str(ROOT / "permissions"), "-o", str(link)]) == 0
    assert link.is_symlink() and real.read_text().startswith("{")
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    capsys.readouterr()
    assert main(["compile", str(ROOT / "permissions"), "-o", str(fifo)]) == 2
    assert f"{fifo}: not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo()


def test_the_handler_decides_from_the_compiled_snapshot_as_from_the_yaml(tmp_path, idp, make_handler):
    snapshot = tmp_path / "compiled"
    assert main(["compile", str(ROOT / "permissions"), "-o", str(snapshot)]) == 0
    from_yaml, from_snapshot = make_handler(), make_handler(PERMISSIONS_SOURCE=str(snapshot))
    for scope in ("pets:read", "pets:write", "store:write", "email"):
        token = idp.mint(scope=scope)
        for verb, path in (("GET", "/pets/3"), ("POST", "/pets"), ("DELETE", "/pets/3"), ("PUT", "/store/orders/9")):
            answers = [verdict(invoke(handler, token_event(token, verb, path)), verb, path)
                       for handler in (from_yaml, from_snapshot)]
            assert answers[0] == answers[1], (scope, verb, path)
    assert verdict(invoke(from_snapshot, token_event(idp.mint(scope="pets:read"), "GET", "/pets/3")),
                   "GET", "/pets/3") is Verdict.ALLOW


def test_a_compiled_snapshot_is_an_input_like_its_yaml(tmp_path, capsys):
    # compile, bundle and sync read a snapshot file as the authorizer does: checked
    # against its digest and the schema, and giving the same mappings.
    from policy_engine.admin.packaging import PERMISSIONS_FILE, _permission_files
    from policy_engine.admin.publish import load_desired

    snapshot, again = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["compile", str(ROOT / "permissions"), "-o", str(snapshot)]) == 0
    assert main(["compile", str(snapshot), "-o", str(again)]) == 0
    assert again.read_bytes() == snapshot.read_bytes()
    assert load_desired(snapshot) == load_desired(ROOT / "permissions")
    assert _permission_files(snapshot) == {PERMISSIONS_FILE: snapshot.read_bytes()}
    edited = json.loads(snapshot.read_bytes())
    edited["mappings"][0]["scope"] = "admin"
    snapshot.write_text(json.dumps(edited))
    capsys.readouterr()
    assert main(["compile", str(snapshot), "-o", str(tmp_path / "c.json")]) == 2
    assert "content does not match its digest" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()
