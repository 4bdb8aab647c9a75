"""Hung and trickling identity providers through the real handler: init and requests end in time.

``JWKS_TIMEOUT`` and ``INTROSPECTION_TIMEOUT`` are deadlines for a whole exchange, and
the key prefetch at container start has one budget for all issuers together
(``PREFETCH_BUDGET``), so a cold start stays inside Lambda's 10 s init phase.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from policy_engine.adapters.jwks_http import PREFETCH_BUDGET
from policy_engine.admin.local.invoke import invoke, load_handler
from tests.conftest import AUDIENCE, ROOT, token_event
from tests.support.trickle import SCRIPTS, TricklingServer, hard_limit

PERMISSIONS = str(ROOT / "permissions")


def _trickling_jwks() -> TricklingServer:
    # One byte every 0.3 s, as in the report that found this: never done, never silent for 1 s.
    script, _ = SCRIPTS["body"]
    return TricklingServer(script, interval=0.3)


@pytest.mark.slow
def test_import_with_a_trickling_jwks_finishes_quickly():
    with _trickling_jwks() as jwks:
        env = {**os.environ, "ISSUER": jwks.url, "JWKS_URI": f"{jwks.url}/jwks.json", "JWKS_TIMEOUT": "1",
               "AUDIENCE": AUDIENCE, "PERMISSIONS_SOURCE": PERMISSIONS}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", "import handler.app"], cwd=ROOT, env=env, timeout=15, check=False,
                              capture_output=True, text=True)
        elapsed = time.monotonic() - started
    print(f"import handler.app with a trickling JWKS and JWKS_TIMEOUT=1: {elapsed:.2f} s")
    assert done.returncode == 0, done.stderr
    assert elapsed < 5
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    assert "jwks_prefetch_failed" in events


def test_two_hung_issuers_share_one_prefetch_budget(capsys):
    # Discovery of both issuers accepts and never answers; each alone could take JWKS_TIMEOUT=10.
    with TricklingServer(list, interval=0.2) as idp:
        issuers = f"{idp.url}/a,{idp.url}/b"
        started = time.monotonic()
        with hard_limit(15):
            handler = load_handler({"ISSUER": issuers, "JWKS_TIMEOUT": "10", "AUDIENCE": AUDIENCE,
                                    "PERMISSIONS_SOURCE": PERMISSIONS})
        elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"handler init with two hung issuers, JWKS_TIMEOUT=10: {elapsed:.2f} s (budget {PREFETCH_BUDGET} s)")
    assert elapsed < PREFETCH_BUDGET + 2
    assert handler.AUTHORIZER is not None
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    not_loaded = {line["issuer"] for line in lines
                  if line["event"] in ("jwks_prefetch_failed", "jwks_prefetch_skipped")}
    assert not_loaded == {f"{idp.url}/a", f"{idp.url}/b"}


@pytest.mark.parametrize("phase", ["silent", "status line", "body"])
def test_a_trickling_introspection_endpoint_fails_the_request_closed_in_time(make_handler, phase):
    script, interval = SCRIPTS[phase]
    with TricklingServer(script, interval=interval) as server:
        handler = make_handler(INTROSPECTION_URL=f"{server.url}/introspect", INTROSPECTION_CLIENT_ID="authorizer",
                               INTROSPECTION_CLIENT_SECRET="secret", INTROSPECTION_TIMEOUT="0.5")
        started = time.monotonic()
        with hard_limit(10):
            result = invoke(handler, token_event("an-opaque-token-of-the-introspection-server"))
        elapsed = time.monotonic() - started
    print(f"introspection endpoint, {phase}, INTROSPECTION_TIMEOUT=0.5: AuthorizerFailure after {elapsed:.2f} s")
    assert result.response is None and result.error == "AuthorizerFailure"
    assert elapsed < 2.5
