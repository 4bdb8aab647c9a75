"""Permission store benchmark: sync and cold-load 10,000 mappings.

DynamoDB: AWS's DynamoDB Local (jar fetched with npm into .cache/, needs Java).
S3: moto's in-process server. Both on 127.0.0.1; the numbers are for local peers,
which neither throttle nor add network latency, so read them as request counts
and client-side cost, not as AWS latency.

    .venv/bin/python benchmarks/store.py [--mappings 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
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
from policy_engine.core.permissions import compile_records  # noqa: E402
from policy_engine.local.dynamodb_local import DynamoDbLocal  # noqa: E402
from policy_engine.migrate import migrate  # noqa: E402
from policy_engine.publish import sync  # noqa: E402

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
WRITES = {"BatchWriteItem", "UpdateItem", "PutItem", "DeleteItem", "PutObject"}


def write_yaml(path: Path, count: int, changed: int | None = None) -> Path:
    lines = ["permissions:"]
    for i in range(count):
        verb = "POST" if i == changed else "GET"
        lines += [f"  - arn: {API}", f"    stage: {'dev' if i % 2 else 'prod'}", f"    httpVerb: {verb}",
                  f"    resource: /tenants/{i // 100}/items/{i}", f"    scope: scope:{i % 50}"]
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
        print(f"  {label:<44} {seconds * 1000:>9.0f} ms")
        return
    writes = sum(n for op, n in calls.items() if op in WRITES)
    detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
    print(f"  {label:<44} {seconds * 1000:>9.0f} ms  {writes:>4} write requests  ({detail})")


def cold_load(make_source: Any, runs: int) -> tuple[list[float], Counter[str], int]:
    times = []
    calls: Counter[str] = Counter()
    loaded = 0
    for _ in range(runs):
        source, calls = make_source()
        started = time.perf_counter()
        raw = source.fetch(None)
        permissions = compile_records(raw.records, raw.locate, version=raw.version)
        times.append(time.perf_counter() - started)
        loaded = len(permissions)
    return times, calls, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mappings", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
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
            from policy_engine.publish import load_desired

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

            print(f"cold load from the table (GetItem pointer + Query pages + digest + compile), {args.runs} runs:")
            times, calls, loaded = cold_load(lambda: _ddb_source(ddb.endpoint), args.runs)
            row(f"median of {args.runs}, {loaded:,} mappings", statistics.median(times), calls)
            source, calls = _ddb_source(ddb.endpoint)
            raw = source.fetch(None)
            calls.clear()
            started = time.perf_counter()
            assert source.fetch(raw.etag) is None
            row("warm check, unchanged (one GetItem)", time.perf_counter() - started, calls)

            s3_client, calls = counted_client("s3", s3_endpoint)
            s3_client.create_bucket(Bucket="bench")
            print(f"moto S3 at {s3_endpoint}:")
            for label, path in [("first publish", yaml_file), ("unchanged re-sync", yaml_file),
                                ("one mapping changed", changed_file)]:
                client, calls = counted_client("s3", s3_endpoint)
                started = time.perf_counter()
                result = sync(path, "s3://bench/permissions.json", client=client)
                row(f"{label} -> v{result.version_after}", time.perf_counter() - started, calls)
            times, calls, loaded = cold_load(lambda: _s3_source(s3_endpoint), args.runs)
            size = s3_client.head_object(Bucket="bench", Key="permissions.json")["ContentLength"]
            row(f"cold load, median of {args.runs}, {loaded:,} mappings, {size:,} B", statistics.median(times), calls)
            source, calls = _s3_source(s3_endpoint)
            raw = source.fetch(None)
            calls.clear()
            started = time.perf_counter()
            assert source.fetch(raw.etag) is None
            row("warm check, unchanged (GetObject -> 304)", time.perf_counter() - started, calls)
        finally:
            moto.stop()


def _ddb_source(endpoint: str) -> tuple[Any, Counter[str]]:
    client, calls = counted_client("dynamodb", endpoint)
    return DynamoDbPermissionSource("bench", client=client), calls


def _s3_source(endpoint: str) -> tuple[Any, Counter[str]]:
    client, calls = counted_client("s3", endpoint)
    return S3PermissionSource("s3://bench/permissions.json", client=client), calls


if __name__ == "__main__":
    main()
