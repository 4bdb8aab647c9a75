"""The core stays light: importing it pulls in neither boto3 nor PyYAML, nor the CLI."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CORE = ["policy_engine.core.tokens", "policy_engine.core.permissions", "policy_engine.core.iam",
        "policy_engine.core.decision", "policy_engine.core.arn", "policy_engine.engine", "policy_engine.errors"]


def _loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports) + "print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_no_io_libraries():
    loaded = _loaded_after(CORE)
    assert not {"boto3", "botocore", "yaml", "urllib.request"} & loaded
    assert not any(m.startswith(("policy_engine.admin", "policy_engine.adapters")) for m in loaded)


def test_errors_module_exports_exactly_the_tree():
    import policy_engine.errors as errors

    exported = {name for name in dir(errors) if isinstance(getattr(errors, name), type)
                and issubclass(getattr(errors, name), Exception)
                and getattr(errors, name).__module__ == errors.__name__}
    assert exported == set(errors.__all__)
    assert all(issubclass(getattr(errors, name), errors.PolicyEngineError) for name in errors.__all__)
