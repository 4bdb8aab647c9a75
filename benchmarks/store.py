"""Permission store benchmark: sync, cold-load and cold-start 10,000 mappings.

DynamoDB: AWS's DynamoDB Local (jar fetched with npm into .cache/, needs Java).
S3: moto's in-process server. Both on 127.0.0.1; the numbers are for local peers,
which neither throttle nor add network latency, so read them as request counts
and client-side cost, not as AWS latency. DynamoDB Local reports consumed capacity
as AWS counts it: the read units printed are what a cold load costs on AWS.

    .venv/bin/python benchmarks/store.py [--mappings 10000] [--runs 5]
    .venv/bin/python benchmarks/store.py --cold-start [--mappings 10000] [--runs 15]

``--cold-start`` times whole processes instead, in one run: each is a fresh
interpreter that imports ``handler.app`` (Lambda's init: the JWKS prefetch from a
local IdP and the first mapping load), decides one TOKEN event (checked to be
allowed) and exits, with ``PERMISSIONS_SOURCE`` set to a local file (the compiled
snapshot when this checkout's sources read one, else the YAML), the DynamoDB Local
table, and the moto S3 object, round-robin with the order rotated each round. The
ratio of a store is the median of its per-round ratios against the local file.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource  # noqa: E402
from policy_engine.adapters.s3 import S3PermissionSource  # noqa: E402
from policy_engine.admin.local.dynamodb_local import DynamoDbLocal  # noqa: E402
from policy_engine.admin.migrate import migrate  # noqa: E402
from policy_engine.admin.publish import sync  # noqa: E402
from policy_engine.core.permissions import compile_records  # noqa: E402

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
WRITES = {"BatchWriteItem", "UpdateItem", "PutItem", "DeleteItem", "PutObject"}


def write_yaml(path: Path, count: int, changed: int | None = None, per_scope: int | None = None) -> Path:
    """``count`` mappings; scope ``i % 50`` (200 a scope at 10,000), or ``i // per_scope``."""
    lines = ["permissions:"]
    for i in range(count):
        verb = "POST" if i == changed else "GET"
        scope = i % 50 if per_scope is None else i // per_scope
        lines += [f"  - arn: {API}", f"    stage: {'dev' if i % 2 else 'prod'}", f"    httpVerb: {verb}",
                  f"    resource: /tenants/{i // 100}/items/{i}", f"    scope: scope:{scope}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_varied_yaml(path: Path, count: int) -> Path:
    """``count`` mappings that compress poorly: 30 APIs, random paths and scopes from a
    400-word vocabulary (seeded, so every run writes the same file)."""
    import random

    rng = random.Random(14)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(400)]
    apis = [f"arn:aws:execute-api:{rng.choice(['us-east-1', 'eu-west-1'])}:{rng.randint(10**11, 10**12 - 1)}:"
            + "".join(rng.choice(letters + "0123456789") for _ in range(10)) for _ in range(30)]
    seen: set[tuple[str, ...]] = set()
    lines = ["permissions:"]
    while len(seen) < count:
        mapping = (rng.choice(apis), rng.choice(["dev", "prod", "staging", "v1"]),
                   rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "*"]),
                   "/" + "/".join(rng.choice([*words, "*"]) for _ in range(rng.randint(1, 5))),
                   f"{rng.choice(words)}:{rng.choice(['read', 'write', 'admin'])}")
        if mapping not in seen:
            seen.add(mapping)
            lines += [f"  - arn: {mapping[0]}", f"    stage: {mapping[1]}", f'    httpVerb: "{mapping[2]}"',
                      f"    resource: {mapping[3]}", f"    scope: {mapping[4]}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def counted_client(service: str, endpoint: str) -> tuple[Any, Counter[str]]:
    client = boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    calls: Counter[str] = Counter()
    client.meta.events.register(f"before-call.{service}.*",
                                lambda model, **_: calls.update([model.name]))
    return client, calls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def row(label: str, seconds: float, calls: Counter[str] | None = None) -> None:
    if calls is None:
        print(f"  {label:<63} {seconds * 1000:>7.0f} ms")
        return
    writes = sum(n for op, n in calls.items() if op in WRITES)
    detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
    print(f"  {label:<63} {seconds * 1000:>7.0f} ms  {writes:>4} write requests  ({detail})")


def cold_load(make_source: Any, runs: int) -> tuple[list[float], int]:
    times = []
    loaded = 0
    for _ in range(runs):
        source = make_source()
        started = time.perf_counter()
        raw = source.fetch(None)
        permissions = compile_records(raw.records, raw.locate, version=raw.version)
        times.append(time.perf_counter() - started)
        loaded = len(permissions)
    return times, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mappings", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-start", action="store_true", help="time whole processes (import + first decision)")
    args = parser.parse_args()
    if args.cold_start:
        cold_start(args.mappings, args.runs)
        return
    n = args.mappings
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    with tempfile.TemporaryDirectory() as scratch, DynamoDbLocal(ROOT / ".cache" / "dynamodb-local") as ddb:
        moto_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto.start()
        s3_endpoint = f"http://127.0.0.1:{moto_port}"
        try:
            yaml_file = write_yaml(Path(scratch) / "permissions.yaml", n)
            changed_file = write_yaml(Path(scratch) / "changed.yaml", n, changed=4321)
            started = time.perf_counter()
            client, _ = counted_client("dynamodb", ddb.endpoint)
            migrate("bench", client=client)
            print(f"DynamoDB Local at {ddb.endpoint}; {n:,} mappings "
                  f"(migrate {1000 * (time.perf_counter() - started):.0f} ms)")
            from policy_engine.admin.publish import load_desired

            started = time.perf_counter()
            load_desired(yaml_file)
            row("YAML parse + validation alone (in every sync)", time.perf_counter() - started)
            print("sync (YAML parse + validation + table read + writes + flip):")
            for label, path in [("first publish", yaml_file), ("unchanged re-sync", yaml_file),
                                ("one mapping changed", changed_file)]:
                client, calls = counted_client("dynamodb", ddb.endpoint)
                started = time.perf_counter()
                result = sync(path, "dynamodb://bench", client=client)
                row(f"{label} -> v{result.version_after} ({result.plan.summary()})",
                    time.perf_counter() - started, calls)

            print("cold load from the table (GetItem pointer + BatchGetItem parts + hash + compile), "
                  f"{args.runs} runs:")
            times, units, loaded = [], 0.0, 0
            for _ in range(args.runs):
                source = _ddb_source(ddb.endpoint)
                started = time.perf_counter()
                raw = source.fetch(None)
                loaded = len(compile_records(raw.records, raw.locate, version=raw.version))
                times.append(time.perf_counter() - started)
                units = source.read_units
            row(f"median of {args.runs} (min {min(times) * 1000:.0f} ms), {loaded:,} mappings, "
                f"{units} read units", statistics.median(times))
            started = time.perf_counter()
            assert source.fetch(raw.etag) is None
            row(f"warm check, unchanged (one GetItem), {source.read_units} read units", time.perf_counter() - started)
            before = mappings_partition_units(ddb.endpoint, "bench", result.version_after)
            print(f"  read units of one cold load: {units} now; {before} paging the MAPPINGS partition "
                  "(the layout before snapshots, measured the same way)")
            varied = write_varied_yaml(Path(scratch) / "varied.yaml", n)
            migrate("bench-varied", client=client)
            sync(varied, "dynamodb://bench-varied", client=client)
            source = DynamoDbPermissionSource("bench-varied", environ=_environ(AWS_ENDPOINT_URL_DYNAMODB=ddb.endpoint))
            source.fetch(None)
            before = mappings_partition_units(ddb.endpoint, "bench-varied", 1)
            print(f"  the same for {n:,} mappings that compress poorly (30 APIs, random paths): {source.read_units} "
                  f"now; {before} paging the MAPPINGS partition")

            s3_client, calls = counted_client("s3", s3_endpoint)
            s3_client.create_bucket(Bucket="bench")
            print(f"moto S3 at {s3_endpoint}:")
            for label, path in [("first publish", yaml_file), ("unchanged re-sync", yaml_file),
                                ("one mapping changed", changed_file)]:
                client, calls = counted_client("s3", s3_endpoint)
                started = time.perf_counter()
                result = sync(path, "s3://bench/permissions.json", client=client)
                row(f"{label} -> v{result.version_after}", time.perf_counter() - started, calls)
            times, loaded = cold_load(lambda: _s3_source(s3_endpoint), args.runs)
            size = s3_client.head_object(Bucket="bench", Key="permissions.json")["ContentLength"]
            row(f"cold load, median of {args.runs} (min {min(times) * 1000:.0f} ms), {size:,} B, one GetObject",
                statistics.median(times))
            source = _s3_source(s3_endpoint)
            raw = source.fetch(None)
            started = time.perf_counter()
            assert source.fetch(raw.etag) is None
            row("warm check, unchanged (GetObject -> 304)", time.perf_counter() - started)
        finally:
            moto.stop()


def _environ(**endpoints: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
            **endpoints}


def _ddb_source(endpoint: str) -> Any:
    return DynamoDbPermissionSource("bench", environ=_environ(AWS_ENDPOINT_URL_DYNAMODB=endpoint))


def _s3_source(endpoint: str) -> Any:
    return S3PermissionSource("s3://bench/permissions.json", environ=_environ(AWS_ENDPOINT_URL_S3=endpoint))


def mappings_partition_units(endpoint: str, table: str, version: int) -> float:
    """Read units of paging the MAPPINGS partition as the reader before snapshots did
    (eventually consistent, live items only, sort keys only)."""
    client, _ = counted_client("dynamodb", endpoint)
    kwargs: dict[str, Any] = {
        "TableName": table, "KeyConditionExpression": "pk = :pk", "ConsistentRead": False,
        "FilterExpression": "added <= :v AND (attribute_not_exists(removed) OR removed > :v)",
        "ProjectionExpression": "sk", "ReturnConsumedCapacity": "TOTAL",
        "ExpressionAttributeValues": {":pk": {"S": "MAPPINGS"}, ":v": {"N": str(version)}},
    }
    units = 0.0
    while True:
        page = client.query(**kwargs)
        units += page["ConsumedCapacity"]["CapacityUnits"]
        if not page.get("LastEvaluatedKey"):
            return units
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


#: One cold container: init (import), one decision, timings and the answer as JSON.
COLD_CONTAINER = """
import json, sys, time
started = time.perf_counter()
import handler.app as app
init = time.perf_counter() - started
event = {"type": "TOKEN", "authorizationToken": "Bearer " + sys.argv[1], "methodArn": sys.argv[2]}
started = time.perf_counter()
answer = app.lambda_handler(event, None)
print(json.dumps({"init": init, "first": time.perf_counter() - started, "answer": answer}))
"""


def _local_source(folder: Path, yaml_file: Path) -> tuple[str, str]:
    """``(PERMISSIONS_SOURCE, label)``: the compiled snapshot if this checkout reads one, else the YAML."""
    try:
        from policy_engine.adapters.snapshot_file import SnapshotFilePermissionSource  # noqa: F401
    except ImportError:
        return str(yaml_file), "local YAML file"
    from policy_engine.adapters.s3 import encode_snapshot
    from policy_engine.admin.publish import load_desired

    snapshot = folder / "permissions.json"
    snapshot.write_bytes(encode_snapshot(1, load_desired(yaml_file), "bench", "2026-01-01T00:00:00+00:00"))
    return str(snapshot), "local snapshot file"


def _one_process(env: dict[str, str], token: str, arn: str) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds of one whole process, and what it printed."""
    import os
    import subprocess

    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-c", COLD_CONTAINER, token, arn], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"a cold container failed (exit {process.returncode}):\n{errors.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, json.loads(out.decode().splitlines()[-1])


def cold_start(n: int, runs: int) -> None:
    import os

    from moto.server import ThreadedMotoServer

    from policy_engine.admin.local.idp import LocalIdentityProvider
    from policy_engine.core.iam import Verdict, evaluate_response

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch, DynamoDbLocal(ROOT / ".cache" / "dynamodb-local") as ddb, \
            LocalIdentityProvider() as idp:
        moto_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto.start()
        s3_endpoint = f"http://127.0.0.1:{moto_port}"
        try:
            # 20 mappings a scope: the decision's policy stays under API Gateway's 8 KB
            yaml_file = write_yaml(Path(scratch) / "permissions.yaml", n, per_scope=20)
            client, _ = counted_client("dynamodb", ddb.endpoint)
            migrate("bench", client=client)
            sync(yaml_file, "dynamodb://bench", client=client)
            s3, _ = counted_client("s3", s3_endpoint)
            s3.create_bucket(Bucket="bench")
            sync(yaml_file, "s3://bench/permissions.json", client=s3)
            local, local_label = _local_source(Path(scratch), yaml_file)
            base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PERMISSIONS_"))}
            base.update(ISSUER=idp.issuer, AUDIENCE="policy-engine-demo")
            aws = _environ(AWS_ENDPOINT_URL_DYNAMODB=ddb.endpoint, AWS_ENDPOINT_URL_S3=s3_endpoint)
            candidates = {
                local_label: {**base, "PERMISSIONS_SOURCE": local},
                "DynamoDB Local": {**base, **aws, "PERMISSIONS_SOURCE": "dynamodb://bench"},
                "moto S3": {**base, **aws, "PERMISSIONS_SOURCE": "s3://bench/permissions.json"},
            }
            arn = f"{API}/dev/GET/tenants/0/items/21"  # granted to scope:1 (items 20-39)
            token = idp.mint(scope="scope:1", lifetime=3600)
            print(f"cold start, {n:,} mappings: whole process (interpreter, import handler.app with the JWKS "
                  f"prefetch and the first load, one decision), {runs} rounds after one warm-up round")
            walls: dict[str, list[float]] = {name: [] for name in candidates}
            cpus: dict[str, list[float]] = {name: [] for name in candidates}
            inits: dict[str, list[float]] = {name: [] for name in candidates}
            names = list(candidates)
            for round_number in range(runs + 1):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    wall, cpu, report = _one_process(candidates[name], token, arn)
                    if evaluate_response(report["answer"], arn) is not Verdict.ALLOW:
                        raise SystemExit(f"{name}: the first decision was not Allow: {report['answer']}")
                    if round_number:
                        walls[name].append(wall)
                        cpus[name].append(cpu)
                        inits[name].append(report["init"] + report["first"])
            for name in names:
                ratios = [w / base for w, base in zip(walls[name], walls[local_label], strict=True)]
                cpu_ratios = [c / base for c, base in zip(cpus[name], cpus[local_label], strict=True)]
                print(f"  {name:<20} wall {statistics.median(walls[name]) * 1000:6.0f} ms "
                      f"(min {min(walls[name]) * 1000:.0f}, max {max(walls[name]) * 1000:.0f})  "
                      f"x{statistics.median(ratios):.2f}   cpu {statistics.median(cpus[name]) * 1000:6.0f} ms "
                      f"x{statistics.median(cpu_ratios):.2f}   import + first decision "
                      f"{statistics.median(inits[name]) * 1000:.0f} ms")
        finally:
            moto.stop()


if __name__ == "__main__":
    main()
