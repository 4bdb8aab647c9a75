"""How fast ``serve`` starts, and requests per second through the local gateway with the
authorizer cache on and off.

    .venv/bin/python benchmarks/gateway.py [--requests 3000] [--threads 4] [--runs 3]

Start-up is measured two ways: a fresh ``policy-engine serve`` process until it prints
"ready" (imports included; then Ctrl-C, which must exit 0), and ``LocalStack.start()``
in a warm process. Throughput: ``--threads`` clients on keep-alive connections send
``GET /dev/pets`` with one token; with the cache on, the handler runs once per TTL,
with it off (TTL 0), on every request.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policy_engine.admin.local.serve import LocalStack, ServeOptions  # noqa: E402
from policy_engine.admin.local.walkthrough import token_request  # noqa: E402


def cold_start(store: str) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "policy_engine.admin.cli", "serve", "--port", "0", "--idp-port", "0", "--store", store],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("ready in"):
            break
    elapsed = time.perf_counter() - started
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    if code != 0:
        raise SystemExit(f"serve exited {code} on Ctrl-C")
    return elapsed


def warm_start(store: str) -> float:
    stack = LocalStack(ServeOptions(store=store))
    stack.start()
    stack.stop()
    return stack.startup_seconds


def throughput(cache_ttl: float, requests: int, threads: int) -> tuple[float, int, float]:
    with LocalStack(ServeOptions(cache_ttl=cache_ttl)) as stack:
        token = token_request(stack.token_endpoint, "pets-reader", "reader-secret", "pets:read").json()["access_token"]
        url = urlsplit(stack.gateway_url)
        per_thread = requests // threads
        failures: list[int] = []
        latencies: list[float] = []

        def client() -> None:
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            mine = []
            for _ in range(per_thread):
                sent = time.perf_counter()
                connection.request("GET", "/dev/pets", headers={"Authorization": f"Bearer {token}"})
                reply = connection.getresponse()
                reply.read()
                mine.append(time.perf_counter() - sent)
                if reply.status != 200:
                    failures.append(reply.status)
            connection.close()
            latencies.extend(mine)

        workers = [threading.Thread(target=client) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
        assert stack.gateway is not None
        calls = stack.gateway.stats.authorizer_calls
        p50 = statistics.median(latencies) * 1000
    return per_thread * threads / elapsed, calls, p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # The handler logs a JSON line per decision on stderr; not what we measure.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for store in ("dynamodb", "yaml"):
        cold = [cold_start(store) for _ in range(args.runs)]
        warm = [warm_start(store) for _ in range(args.runs)]
        print(f"serve start-up, --store {store:8}: new process to 'ready' median {statistics.median(cold):.2f} s "
              f"(min {min(cold):.2f}); in a warm process median {statistics.median(warm):.3f} s")
    for ttl in (300.0, 0.0):
        rps, calls, p50 = throughput(ttl, args.requests, args.threads)
        label = f"cache on (TTL {ttl:g} s)" if ttl else "cache off (TTL 0)"
        print(f"gateway {label:20}: {rps:7.0f} requests/s, p50 {p50:.2f} ms, "
              f"{args.requests // args.threads * args.threads} requests on {args.threads} connections, "
              f"handler invoked {calls} times")


if __name__ == "__main__":
    main()
