"""Peak memory of a warm authorizer holding N mappings (default 100,000).

    .venv/bin/python benchmarks/memory.py [--mappings 100000] [--tokens 2000]

A fresh interpreter imports ``handler.app`` (which fetches the JWKS from a local IdP on
127.0.0.1 and loads N mappings from a compiled snapshot file, as the bundle ships them)
and decides ``--tokens`` TOKEN events with fresh tokens over 50 client profiles, so the
per-authorizer memos fill as in a warm container. It reads its own ``VmHWM`` (peak
resident set) and ``VmRSS`` from ``/proc/self/status`` (Linux) after the interpreter
starts, after init, and after the decisions: the process's own figures, not a child's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.core.publish import MappingKey
from policy_engine.core.snapshot import encode_snapshot

ROOT = Path(__file__).resolve().parents[1]

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
VERBS = ("GET", "POST", "PUT", "DELETE")

CHILD = r"""
import json, sys
def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS")}
marks = {"interpreter": status()}
sys.path.insert(0, sys.argv[2])
import handler.app as app
marks["import + init (mappings loaded)"] = status()
outcomes = {}
for event in json.load(open(sys.argv[1])):
    answer = app.lambda_handler(event, None)
    effect = answer["policyDocument"]["Statement"][0]["Effect"]
    outcomes[effect] = outcomes.get(effect, 0) + 1
marks["after the decisions"] = status()
print(json.dumps({"marks": marks, "outcomes": outcomes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mappings", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    n, scopes = args.mappings, max(1, args.mappings // 10)
    keys = frozenset(MappingKey(API, "prod", VERBS[i % 4], f"/svc{i % scopes}/items{i}/*", f"svc{i % scopes}:scope")
                     for i in range(n))
    rng = random.Random(7)
    profiles = [[rng.randrange(scopes) for _ in range(2)] for _ in range(50)]
    with tempfile.TemporaryDirectory() as scratch, LocalIdentityProvider() as idp:
        snapshot = Path(scratch, "permissions.json")
        snapshot.write_bytes(encode_snapshot(1, keys, "memory benchmark", "2026-12-06T00:00:00Z"))
        size = snapshot.stat().st_size
        events = []
        for i in range(args.tokens):
            first, second = rng.choice(profiles)
            token = idp.mint(scope=f"svc{first}:scope svc{second}:scope", audience="bench", subject=f"client{i}")
            # Mapping ``first`` grants this route to the profile's first scope: an Allow.
            arn = f"{API}/prod/{VERBS[first % 4]}/svc{first}/items{first}/x"
            events.append({"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": arn})
        events_file = Path(scratch, "events.json")
        events_file.write_text(json.dumps(events))
        env = {**os.environ, "ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri,
               "PERMISSIONS_SOURCE": str(snapshot)}
        done = subprocess.run([sys.executable, "-c", CHILD, str(events_file), str(ROOT)], env=env, check=True,
                              capture_output=True, text=True)
        result = json.loads(done.stdout)
    print(f"warm authorizer, {n:,} mappings from a {size:,} B snapshot file; "
          f"{args.tokens} decisions {result['outcomes']}; Python {sys.version.split()[0]}")
    for mark, figures in result["marks"].items():
        print(f"  {mark:<32} VmHWM {figures['VmHWM']:>5} MiB   VmRSS {figures['VmRSS']:>5} MiB")


if __name__ == "__main__":
    main()
