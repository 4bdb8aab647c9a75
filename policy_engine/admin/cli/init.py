"""policy-engine init [DIR]: start a permissions repository a team can commit.

Writes into DIR (default: the current folder) the example permissions and catalogs
(a pet store: replace its API ARN with yours), the SAM template that deploys the
authorizer, a GitHub Actions workflow (validate on every change; on a pull request,
the diff a sync would make, as a comment) and a pre-commit configuration that
validates before each commit. What it writes passes
'policy-engine validate --catalog catalog permissions'.

Nothing is overwritten: when any of the files exists, nothing is written and the
command names them; --force overwrites them.

Exit codes: 0 written, 1 refused (files exist), 2 could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

from policy_engine.admin.resources import EXAMPLE_CATALOG, EXAMPLE_PERMISSIONS, SCAFFOLD, TEMPLATE
from policy_engine.errors import ConfigurationError

__all__ = ["register", "run", "scaffold_files"]

#: Scaffold files shipped without a leading dot (package data skips dot-files), and where they go.
_SCAFFOLD_TARGETS = {
    "README.md": "README.md",
    "gitignore": ".gitignore",
    "github-workflow.yaml": ".github/workflows/permissions.yaml",
    "pre-commit-config.yaml": ".pre-commit-config.yaml",
}
_VERSION_MARK = "@VERSION@"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "init", help="start a permissions repository: examples, template, CI workflow, pre-commit hook",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR",
                        help="where to write (created if missing; default: the current folder)")
    parser.add_argument("--force", action="store_true", help="overwrite files that already exist")
    parser.set_defaults(run=run)


def _version() -> str:
    try:
        return importlib.metadata.version("policy-engine")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def scaffold_files(version: str | None = None) -> dict[str, bytes]:
    """What ``init`` writes: relative POSIX path -> content, in a stable order.

    ``version`` (default: the installed one) is the release the workflow installs.
    """
    version = version or _version()
    files: dict[str, bytes] = {}
    for folder, target in ((EXAMPLE_PERMISSIONS, "permissions"), (EXAMPLE_CATALOG, "catalog")):
        for path in sorted(folder.glob("*.yaml")):
            files[f"{target}/{path.name}"] = path.read_bytes()
    files["template.yaml"] = TEMPLATE.read_bytes()
    for name, target in _SCAFFOLD_TARGETS.items():
        text = (SCAFFOLD / name).read_text(encoding="utf-8")
        files[target] = text.replace(_VERSION_MARK, version).encode("utf-8")
    return files


def run(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    if root.exists() and not root.is_dir():
        raise ConfigurationError("DIR", f"{root} exists and is not a folder")
    files = scaffold_files()
    existing = [name for name in files if (root / name).exists()]
    if existing and not args.force:
        print(f"policy-engine init: {len(existing)} file(s) already exist in {root}; nothing written "
              "(--force overwrites them):", file=sys.stderr)
        for name in existing:
            print(f"  {root / name}", file=sys.stderr)
        return 1
    for name in files:
        # A file where a folder must go, or a folder where a file must: refused before
        # anything is written.
        blocked = next((p for p in (root / name).parents if p.exists() and not p.is_dir() and p.is_relative_to(root)),
                       None)
        if blocked is not None:
            raise ConfigurationError("DIR", f"{blocked}: a file where init makes a folder (for {root / name}); "
                                     "nothing written")
        if (root / name).is_dir():
            raise ConfigurationError("DIR", f"{root / name}: a folder where init writes a file; nothing written")
    # All or nothing: every file is written beside its place first, then each is renamed
    # into it; a failure on the way removes what was written and the folders made for it.
    made = {p for name in files for p in (root / name).parents if not p.exists()}
    staged: list[tuple[Path, Path]] = []
    target = root
    try:
        for name, content in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            staged.append((partial, target))
            partial.write_bytes(content)
    except OSError as exc:
        for partial, _ in staged:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never a folder that holds anything else
        raise ConfigurationError("DIR", f"{target}: cannot write ({exc.strerror or exc}); "
                                 "nothing written") from None
    for (partial, target), name in zip(staged, files, strict=True):
        partial.replace(target)
        print(f"{'replaced' if name in existing else 'created '}  {target}")
    here = "" if root == Path(".") else f"cd {root}\n  "
    print(f"\nnext:\n  {here}policy-engine validate --catalog catalog permissions\n"
          "  git init && git add . && git commit -m 'API permissions'\n"
          "then replace the example's API ARN with yours (README.md says how to deploy and publish)")
    return 0
