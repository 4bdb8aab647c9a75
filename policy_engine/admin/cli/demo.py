"""``policy-engine demo``: the walk-through. Starts ``serve`` in this process (or uses
a running one with ``--url``), sends real HTTP requests, prints each request and
answer, and exits 0 only when every answer is the expected one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from typing import Any

from policy_engine.admin.cli.serve import add_stack_arguments, options_from
from policy_engine.admin.local.serve import LocalStack
from policy_engine.admin.local.walkthrough import Walkthrough, http_request


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="walk through serve: tokens, 200, 403, 401, cache, rotation",
                                   description=__doc__)
    parser.add_argument("--url", help="gateway URL of a running 'policy-engine serve' (default: start one)")
    parser.add_argument("--verbose", action="store_true", help="show the authorizer's JSON log lines")
    add_stack_arguments(parser, default_port=0, default_idp_port=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.url:
        try:
            info = http_request("GET", f"{args.url.rstrip('/')}/_local/info").json()
        except OSError:
            info = None
        if not isinstance(info, dict) or "token_endpoint" not in info:
            print(f"policy-engine demo: {args.url} is not a running 'policy-engine serve'", file=sys.stderr)
            return 2
        print(f"using the gateway at {args.url}")
        return 0 if Walkthrough(args.url.rstrip("/"), info, sys.stdout).run() else 1
    logs = io.StringIO()
    # The handler logs one JSON line per decision on stderr; keep them for --verbose.
    with contextlib.redirect_stderr(sys.stderr if args.verbose else logs):
        stack = LocalStack(options_from(args)).start()
        try:
            print(stack.describe().split("\n\nTry it")[0])
            print(f"started in {stack.startup_seconds:.2f} s")
            assert stack.gateway is not None and stack.gateway.info is not None
            ok = Walkthrough(stack.gateway_url, stack.gateway.info(), sys.stdout).run()
        finally:
            stack.stop()
    return 0 if ok else 1
