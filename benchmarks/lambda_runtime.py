"""Warm decision latency as Lambda runs it: the bundle under AWS's runtime client.

    .venv/bin/python benchmarks/lambda_runtime.py [--tokens 6000] [--sizes 10,1000,100000] [--mypyc]

``decision.py`` calls the handler in-process. This script runs what is deployed: the
bundle for this machine, unpacked and started in a fresh isolated interpreter by
``awslambdaric`` (AWS's Runtime Interface Client, from PyPI) against a local Lambda
Runtime API (``policy_engine.admin.local.runtime_api``). Between two invocations the client
does what it does in Lambda: long-polls ``/invocation/next`` over HTTP, parses the
event, serialises and posts the answer. The handler reads its configuration from the
environment, its keys from a real JWKS on 127.0.0.1 and N mappings from a YAML file.

The floor (RSA-2048 signature check plus base64url/JSON decoding of the token's
parts, as in ``decision.py``) runs the same way, as a second function in its own
runtime client. Each function times its own work with ``perf_counter_ns`` and returns
the figure, so the HTTP round trips are not counted, only their effect on the caches.
Invocations alternate: one decision, one floor call, with fresh tokens. "× floor" is
the median over rounds of 100 pairs of (median decision ÷ median floor). With
``--mypyc`` a second bundle, built with ``bundle --mypyc`` (the decision path as C
extensions), runs as a third function in the same rounds (row ``mypyc``).

With ``--phases`` four more functions of the same bundle run in the same rounds, each
a prefix of what the handler does, so the rows say where a warm decision's time goes
under the runtime client: ``verify`` (read the event, verify the token: the step the
floor stands for), ``answer`` (``Authorizer.answer``: verify, decide, render),
``formatted`` (``answer`` plus the decision line, formatted but written nowhere) and
``line`` (the same line written to the function's log, a file here). What ``handler``
adds to ``line`` is the handler's own wrapping (request ids, refusal mapping, shadow and
health checks).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import yaml  # noqa: E402
from decision import API, mappings, percentile  # noqa: E402

from policy_engine.admin.local.idp import LocalIdentityProvider  # noqa: E402
from policy_engine.admin.local.runtime_api import (  # noqa: E402
    RuntimeApi,
    ensure_runtime_client,
    start_runtime,
)
from policy_engine.admin.packaging import build_bundle  # noqa: E402

CACHE = ROOT / ".cache"
# --phases: the functions of the handler's bundle that time a prefix of its work.
PHASES = ("verify", "answer", "formatted", "line")

# Written into the unpacked bundle: each wraps one function and reports its duration.
DECISION_PROBE = '''
import time
from handler.app import lambda_handler

def handle(event, context):
    started = time.perf_counter_ns()
    response = lambda_handler(event, context)
    elapsed = time.perf_counter_ns() - started
    return {"ns": elapsed, "effect": response["policyDocument"]["Statement"][0]["Effect"]}


# --phases: prefixes of the handler's work, timed the same way.
import collections, sys, types
import handler.app as _app
from policy_engine.events import read_event
from policy_engine.logs import log_decision


def verify(event, context):
    started = time.perf_counter_ns()
    _app.AUTHORIZER.authenticate(read_event(event, _app.AUTHORIZER.settings.identity_source))
    return {"ns": time.perf_counter_ns() - started, "effect": "Allow"}


def answer(event, context):
    started = time.perf_counter_ns()
    decided = _app.AUTHORIZER.answer(event)
    elapsed = time.perf_counter_ns() - started
    return {"ns": elapsed, "effect": decided.decision.effect}


# A stream that keeps nothing, with a write that is a C function, as a file's is.
_NOWHERE = types.SimpleNamespace(write=collections.deque(maxlen=1).append)


def formatted(event, context):
    started = time.perf_counter_ns()
    decided = _app.AUTHORIZER.answer(event)
    stderr, sys.stderr = sys.stderr, _NOWHERE
    try:
        log_decision(decided, time.perf_counter_ns() - started)
    finally:
        sys.stderr = stderr
    elapsed = time.perf_counter_ns() - started
    return {"ns": elapsed, "effect": decided.decision.effect}


def line(event, context):
    started = time.perf_counter_ns()
    decided = _app.AUTHORIZER.answer(event)
    log_decision(decided, time.perf_counter_ns() - started)
    elapsed = time.perf_counter_ns() - started
    return {"ns": elapsed, "effect": decided.decision.effect}
'''

FLOOR_PROBE = '''
import base64, json, os, time, urllib.request
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from jwt.algorithms import RSAAlgorithm

with urllib.request.urlopen(os.environ["JWKS_URI"], timeout=5) as reply:
    KEY = RSAAlgorithm.from_jwk(json.load(reply)["keys"][0])

def b64d(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

def handle(event, context):
    started = time.perf_counter_ns()
    head, body, sig = event["authorizationToken"][7:].split(".")
    json.loads(b64d(head))
    json.loads(b64d(body))
    KEY.verify(b64d(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return {"ns": time.perf_counter_ns() - started}
'''


def _entry_point(name: str) -> str:
    if name == "floor":
        return "probe_floor.handle"
    return f"probe_handler.{name}" if name in PHASES else "probe_handler.handle"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=6000, help="decisions per size (as many floor calls)")
    parser.add_argument("--sizes", default="10,1000,100000")
    parser.add_argument("--mypyc", action="store_true",
                        help="also run a bundle built with --mypyc, as a third function in the same rounds")
    parser.add_argument("--phases", action="store_true",
                        help="also run prefixes of the handler (verify, answer, formatted, line) in the same rounds")
    args = parser.parse_args()
    names = ["handler", *(["mypyc"] if args.mypyc else []), *(PHASES if args.phases else []), "floor"]
    rng = random.Random(7)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[__import__("platform").machine()]
    rows = []
    with tempfile.TemporaryDirectory() as scratch_name, LocalIdentityProvider() as idp:
        scratch = Path(scratch_name)
        tasks = {}
        for name in names:
            if name == "floor" or name in PHASES:
                continue
            bundle = build_bundle(scratch / f"{name}.zip", arch=arch, python=python, wheel_cache=CACHE / "wheels",
                                  mypyc=name == "mypyc")
            tasks[name] = scratch / f"task-{name}"
            with zipfile.ZipFile(bundle.path) as archive:
                archive.extractall(tasks[name])
            (tasks[name] / "probe_handler.py").write_text(DECISION_PROBE)
            (tasks[name] / "probe_floor.py").write_text(FLOOR_PROBE)
        for name in ("floor", *PHASES):
            tasks[name] = tasks["handler"]
        client = ensure_runtime_client(CACHE)
        for size in (int(s) for s in args.sizes.split(",")):
            permissions = scratch / f"permissions-{size}.yaml"
            permissions.write_text(yaml.dump(mappings(size), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
            scope_count = max(1, size // 10)
            profiles = [" ".join(f"svc{rng.randrange(scope_count)}:scope" for _ in range(2)) for _ in range(50)]
            tokens = (idp.mint(scope=rng.choice(profiles), audience="bench", subject=f"c{i}")
                      for i in range(len(names) * args.tokens + 50))
            events = [{"type": "TOKEN", "methodArn": f"{API}/prod/GET/svc1/x", "authorizationToken": f"Bearer {token}"}
                      for token in tokens]
            environ = {"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri,
                       "PERMISSIONS_SOURCE": str(permissions), "PERMISSIONS_CACHE_TTL": "3600"}
            apis = {name: RuntimeApi().start() for name in names}
            runtimes = [start_runtime(tasks[name], client, _entry_point(name),
                                      api, environ, scratch / f"{name}.log")
                        for name, api in apis.items()]
            try:
                for event in events[:50]:  # init (keys, mappings) and one decision per profile
                    for name, api in apis.items():
                        warm = api.invoke(event, timeout=300)
                        assert warm.error is None, (name, warm.error)
                fresh = iter(events[50:])
                times: dict[str, list[float]] = {name: [] for name in names}
                ratios: dict[str, list[float]] = {name: [] for name in names if name != "floor"}
                for _ in range(args.tokens // 100):
                    round_times: dict[str, list[float]] = {name: [] for name in names}
                    for _ in range(100):
                        for name, api in apis.items():
                            answer = api.invoke(next(fresh))
                            assert answer.error is None, (name, answer.error)
                            assert name == "floor" or answer.payload["effect"] in ("Allow", "Deny"), answer
                            round_times[name].append(answer.payload["ns"] / 1000)
                    base = statistics.median(round_times["floor"])
                    for name, values in round_times.items():
                        times[name] += values
                        if name != "floor":
                            ratios[name].append(statistics.median(values) / base)
            finally:
                for process in runtimes:
                    process.terminate()
                    process.wait()
                for api in apis.values():
                    api.stop()
            for name in ratios:
                rows.append((size, name, statistics.median(times[name]), percentile(times[name], 0.99),
                             statistics.median(times["floor"]), statistics.median(ratios[name])))

    print(f"Python {python}, bundle under awslambdaric, call by call, {args.tokens} decisions per size")
    print(f"{'mappings':>9}  {'what':<9} {'median µs':>10} {'p99 µs':>8} {'floor µs':>9} {'× floor':>8}")
    for size, name, median, p99, floor_median, ratio in rows:
        print(f"{size:>9}  {name:<9} {median:>10.1f} {p99:>8.1f} {floor_median:>9.1f} {ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
