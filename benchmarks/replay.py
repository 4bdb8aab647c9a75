"""Time and peak memory of ``policy-engine replay`` on a generated decision log.

    .venv/bin/python benchmarks/replay.py [--lines 1000000] [--small 100000] [--keep DIR]

Writes a permission set A (a few hundred routes over 40 services: parameters, a greedy
admin route, a tenant placeholder route, groups), a changed set B (some grants moved,
removed and added), and a decision log of ``--lines`` lines into a temporary folder:
20,000 principals over 36 grant sets, about 700 request paths (parameter values
included), placeholder claims for tenant users, 5 % other log lines (START/REPORT,
other events), 3 % refusals, 15 % with an export prefix (timestamp, or timestamp and
stream), 2 % wrapped in a JSON object's ``message``; one third of it gzipped. Each
request's logged outcome is what A decides for it.

Then runs ``python -m policy_engine.admin.cli replay LOG_FOLDER --against B --format
json`` in a fresh process for the full log and for its first ``--small`` lines, and
prints the wall time, the line rate and the replay process's peak resident set
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``, read in a wrapper process per run so the two
figures do not mix).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.admin.cli.replay import load_against
from policy_engine.core.arn import parse_method_arn
from policy_engine.core.iam import ResourceMatcher, request_allowed

ROOT = Path(__file__).resolve().parents[1]
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
SERVICES = 40
TENANTS = 30

# Runs the command given as its arguments and prints the child's peak RSS (KiB on Linux).
WRAPPER = r"""
import resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(done.stderr)
print(f"{done.returncode} {seconds:.3f} {peak}")
sys.stdout.write(done.stdout)
"""


def permissions(changed: bool) -> str:
    lines = ["apis:", f"  - arn: {API}", "    stages: [dev, prod]", "    routes:"]
    for i in range(SERVICES):
        moved = changed and i % 7 == 0  # B: writers lose DELETE on every 7th service
        lines += [
            f"      GET /svc{i}/items: [svc{i}:read, svc{i}:write]",
            f"      GET /svc{i}/items/{{id}}: [svc{i}:read, svc{i}:write, {{group: auditors}}]",
            f"      POST /svc{i}/items: [svc{i}:write]",
            f"      PUT /svc{i}/items/{{id}}: [svc{i}:write]",
            f"      DELETE /svc{i}/items/{{id}}: [{'svc' + str(i) + ':admin' if moved else 'svc' + str(i) + ':write'}]",
            # B: parts of every other service need the write scope
            f"      GET /svc{i}/items/{{id}}/parts/{{partId}}: [svc{i}:{'write' if changed and i % 2 else 'read'}]",
            f"      ANY /svc{i}/admin/{{proxy+}}: [svc{i}:admin]",
            f"      GET /tenants/{{claim:tenant}}/svc{i}/reports: [{{group: tenant-users}}]",
        ]
        if changed and i % 5 == 0:  # B: readers gain the export route of every 5th service
            lines.append(f"      GET /svc{i}/export: [svc{i}:read]")
        elif not changed and i % 5 == 0:
            lines.append(f"      GET /svc{i}/export: [svc{i}:admin]")
    if changed:  # B: auditors lose the item routes of the first ten services
        lines = [line.replace(", {group: auditors}", "") if any(f"/svc{i}/" in line for i in range(10)) else line
                 for line in lines]
    return "\n".join(lines) + "\n"


def grant_sets(rng: random.Random) -> list[list[str]]:
    sets = []
    for n in range(36):
        i, j = rng.randrange(SERVICES), rng.randrange(SERVICES)
        kind = n % 6
        if kind == 0:
            sets.append([f"svc{i}:read"])
        elif kind == 1:
            sets.append([f"svc{i}:read", f"svc{j}:write"])
        elif kind == 2:
            sets.append([f"svc{i}:write", "email", "openid"])
        elif kind == 3:
            sets.append([f"svc{i}:admin", f"svc{i}:write"])
        elif kind == 4:
            sets.append(["group auditors", f"svc{j}:read"])
        else:
            sets.append(["group tenant-users", "profile"])
    return [sorted(s) for s in sets]


def requests(rng: random.Random) -> list[tuple[str, str, str]]:
    out = []
    for i in range(SERVICES):
        for _ in range(3):
            item = rng.randrange(1, 10_000)
            out += [("GET", f"/svc{i}/items", f"GET /svc{i}/items"),
                    ("GET", f"/svc{i}/items/{item}", f"GET /svc{i}/items/{{id}}"),
                    ("PUT", f"/svc{i}/items/{item}", f"PUT /svc{i}/items/{{id}}"),
                    ("DELETE", f"/svc{i}/items/{item}", f"DELETE /svc{i}/items/{{id}}")]
        out += [("POST", f"/svc{i}/items", f"POST /svc{i}/items"),
                ("GET", f"/svc{i}/items/7/parts/{rng.randrange(100)}", f"GET /svc{i}/items/{{id}}/parts/{{partId}}"),
                ("PATCH", f"/svc{i}/admin/users/{rng.randrange(50)}", f"ANY /svc{i}/admin/{{proxy+}}"),
                ("GET", f"/svc{i}/export", f"GET /svc{i}/export"),
                ("GET", f"/tenants/t{rng.randrange(TENANTS)}/svc{i}/reports",
                 f"GET /tenants/{{tenant}}/svc{i}/reports")]
    return out


def write_log(folder: Path, a: str, total: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    permission_set, _ = load_against(a)
    sets, paths = grant_sets(rng), requests(rng)
    judges: dict[tuple[int, str, str, str, str], str] = {}

    def outcome(n: int, grants: list[str], stage: str, verb: str, path: str, tenant: str | None) -> str:
        key = (n, stage, verb, path, tenant or "")
        if key not in judges:
            claims = {"tenant": tenant} if tenant else None
            ev = permission_set.evaluate(frozenset(grants), API, stage, claims=claims)
            arn = f"{API}/{stage}/{verb}/{path[1:]}"
            ok = request_allowed(ResourceMatcher(ev.resources), ResourceMatcher(ev.excluded), arn)
            if not ok and ev.per_request:
                ok = permission_set.request_resource(ev, parse_method_arn(arn)) is not None
            judges[key] = "allow" if ok else "deny"
        return judges[key]

    others = [
        "START RequestId: 5b1e0f0e-6c1a-4f7e-9d1c-2f4b8f0e1a2b Version: $LATEST",
        "END RequestId: 5b1e0f0e-6c1a-4f7e-9d1c-2f4b8f0e1a2b",
        "REPORT RequestId: 5b1e0f0e-6c1a-4f7e-9d1c-2f4b8f0e1a2b\tDuration: 1.52 ms\tBilled Duration: 2 ms",
        json.dumps({"level": "INFO", "event": "health", "ts": 1765083600.0, "version": "v7",
                    "PermissionsRefreshAge": 12.5}, separators=(",", ":")),
        json.dumps({"level": "INFO", "event": "permissions_loaded", "ts": 1765083600.0, "version": "v7",
                    "source": "dynamodb://permissions"}, separators=(",", ":")),
    ]
    principals = [f"user-{n}" for n in range(20_000)]
    files = [gzip.open(folder / "c.log.gz", "wt", compresslevel=1), open(folder / "a.log", "w"),  # noqa: SIM115
             open(folder / "b.log", "w")]  # noqa: SIM115
    ts = 1765083600.0
    try:
        for number in range(total):
            out = files[number % 3]
            ts += 0.01
            roll = rng.random()
            if roll < 0.05:
                out.write(rng.choice(others) + "\n")
                continue
            principal = rng.choice(principals)
            if roll < 0.08:
                out.write(json.dumps({"level": "INFO", "event": "decision", "ts": round(ts, 3),
                                      "aws_request_id": "8f5e0a1b", "decision": "Unauthorized",
                                      "reason": "expired_token", "detail": "token expired", "latency_ms": 0.05},
                                     separators=(",", ":")) + "\n")
                continue
            n = rng.randrange(len(sets))
            grants = sets[n]
            verb, path, route = rng.choice(paths)
            stage = "prod" if rng.random() < 0.7 else "dev"
            tenant = f"t{rng.randrange(TENANTS)}" if "group tenant-users" in grants else None
            live = outcome(n, grants, stage, verb, path, tenant)
            line: dict[str, object] = {
                "level": "INFO", "event": "decision", "ts": round(ts, 3), "aws_request_id": f"{number:08x}-aws",
                "request_id": f"{number:08x}-apigw"}
            if rng.random() < 0.8:
                line["route"] = route
            line.update({
                "decision": "Allow" if live == "allow" or rng.random() < 0.3 else "Deny",
                "reason": "granted", "shape": "policy", "version": "v7", "principal": principal, "api": API,
                "stage": stage, "verb": verb, "path": path, "outcome": live, "grants": grants})
            if tenant:
                line["claims"] = {"tenant": tenant}
            line.update({"routes": 12, "latency_ms": 0.071, "FunctionName": "pets-authorizer", "Decisions": 1,
                         "DecisionLatency": 0.071})
            text = json.dumps(line, separators=(",", ":"))
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
            if roll < 0.17:
                text = f"{stamp} {text}"
            elif roll < 0.23:
                text = f"{stamp} 2025/12/07/[$LATEST]0f1e2d3c4b5a {text}"
            elif roll < 0.25:
                text = json.dumps({"timestamp": int(ts * 1000), "message": text})
            out.write(text + "\n")
    finally:
        for out in files:
            out.close()


def run(folder: Path, against: Path, label: str) -> dict[str, object]:
    command = [sys.executable, "-m", "policy_engine.admin.cli", "replay", str(folder), "--against", str(against),
               "--format", "json", "--top", "5", "--examples", "3"]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    head, _, body = done.stdout.partition("\n")
    code, seconds, peak = head.split()
    report = json.loads(body)
    lines = int(report["lines"])
    print(f"{label}: {lines:,} lines ({int(report['bytes']) / 1e6:,.0f} MB) in {float(seconds):.1f} s, "
          f"{lines / float(seconds):,.0f} lines/s, peak RSS {int(peak) / 1024:.0f} MiB, exit {code}; "
          f"replayed {report['decisions']:,}: gained {report['gained']:,}, lost {report['lost']:,}, "
          f"pairs {report['pairs']:,}; skipped {report['skipped']}")
    return dict(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = args.keep or Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        a, b = base / "a.yaml", base / "b.yaml"
        a.write_text(permissions(changed=False))
        b.write_text(permissions(changed=True))
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        for label, total in (("small", args.small), ("large", args.lines)):
            folder = base / f"logs-{total}"
            folder.mkdir(exist_ok=True)
            started = time.monotonic()
            write_log(folder, str(a), total)
            size = sum(p.stat().st_size for p in folder.iterdir())
            print(f"{label}: wrote {total:,} lines ({size / 1e6:,.0f} MB on disk, one third gzipped) "
                  f"in {time.monotonic() - started:.0f} s")
            run(folder, b, label)


if __name__ == "__main__":
    main()
