"""Warm decisions side by side: this authorizer in-process against aws-jwt-verify on Node.js.

    .venv/bin/python benchmarks/node_warm.py [--tokens 10000] [--sizes 10,1000,10000,100000]
                                             [--round 250] [--warmup 500]

Both sides do the same job, once per TOKEN event, with a fresh RS256 token every time
(minted here with one key; each token is decided once by each side):

* handler: this checkout's ``lambda_handler(event)`` in this process, set up as in
  ``benchmarks/decision.py`` (same generated mappings: N over N/10 scopes, callers in
  50 client profiles of 2 scopes; one JSON log line to /dev/null per decision);
* node: a long-lived Node.js process running ``JwtRsaVerifier.verify`` (aws-jwt-verify,
  installed once into ``.cache/`` by ``cold_start.py``'s helper) and then the lookup of
  the AWS blog sample (the caller's scopes -> the Resources granted on the API and
  stage), over an index from scope to mappings built at init, as a warm container
  holds it; a plain loop over all mappings would cost O(N) per decision.

Both fetch the keys once from the same JWKS over TLS on 127.0.0.1 before timing, as a
warm container has them. Each size warms both sides with ``--warmup`` decisions (V8's
JIT and CPython's caches), then runs rounds of ``--round`` decisions, alternating which
side goes first. Each decision is timed where it runs (``perf_counter_ns`` in Python,
``process.hrtime`` in Node; the pipe between them is not counted). The ratio is the
median over rounds of (handler's round median / node's round median), which cancels a
shared machine's drift between rounds. Each round's last answer of both sides is
checked to grant the same Resources.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

# benchmarks/ is sys.path[0] when this runs as a script.
from cold_start import AUDIENCE, TlsJwks, install_aws_jwt_verify
from decision import API, mappings, percentile

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.invoke import load_handler
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings

METHOD_ARN = f"{API}/prod/GET/svc1/x"

# aws-jwt-verify plus the blog sample's lookup, timed per decision inside Node.
NODE_WARM = r'''
const fs = require("fs");
const readline = require("readline");
const { JwtRsaVerifier } = require("aws-jwt-verify");

const verifier = JwtRsaVerifier.create({
  issuer: process.env.ISSUER, audience: process.env.AUDIENCE, jwksUri: process.env.JWKS_URI,
});
const byScope = new Map();
for (const m of JSON.parse(fs.readFileSync(process.env.MAPPINGS_JSON, "utf8"))) {
  if (!byScope.has(m.scope)) byScope.set(m.scope, []);
  byScope.get(m.scope).push(m);
}
const tokens = fs.readFileSync(process.env.TOKENS_FILE, "utf8").split("\n").filter(Boolean);

async function handler(event) {
  const token = event.authorizationToken.replace(/^Bearer /, "");
  const claims = await verifier.verify(token);
  const parts = event.methodArn.split("/");
  const api = parts[0];
  const stage = parts[1];
  const resources = [];
  for (const scope of new Set(String(claims.scope || "").split(" "))) {
    for (const m of byScope.get(scope) || []) {
      if (m.arn === api && (m.stage === stage || m.stage === "*")) {
        const verb = m.httpVerb === "ANY" ? "*" : m.httpVerb;
        resources.push(`${api}/${stage}/${verb}${m.resource}`);
      }
    }
  }
  const statement = { Action: "execute-api:Invoke", Effect: resources.length ? "Allow" : "Deny",
                      Resource: resources.length ? resources : [`${api}/*`] };
  return { principalId: claims.sub, policyDocument: { Version: "2012-10-17", Statement: [statement] } };
}

async function main() {
  await verifier.hydrate();  // the JWKS fetched once, as in a warm container
  process.stdout.write("READY\n");
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [start, end] = line.split(" ").map(Number);
    const times = [];
    let last = null;
    for (let i = start; i < end; i++) {
      const event = { type: "TOKEN", authorizationToken: "Bearer " + tokens[i], methodArn: process.env.METHOD_ARN };
      const began = process.hrtime.bigint();
      last = await handler(event);
      times.push(Number(process.hrtime.bigint() - began) / 1000);
    }
    process.stdout.write(JSON.stringify({ times, last }) + "\n");
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
'''


def mint(idp: TlsJwks, scope: str, subject: str) -> str:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": subject, "client_id": subject, "scope": scope,
              "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, idp.key.private_key, algorithm="RS256", headers={"kid": idp.key.kid, "typ": "at+jwt"})


def granted(response: dict[str, Any]) -> list[str]:
    return sorted(r for s in response["policyDocument"]["Statement"] if s["Effect"] == "Allow"
                  for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]))


class NodeSide:
    """The Node process for one data set: decides tokens[start:end] on request, returns its timings."""

    def __init__(self, script: Path, env: dict[str, str], cwd: Path) -> None:
        self._process = subprocess.Popen(["node", str(script)], env=env, cwd=cwd, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._in, self._out = self._process.stdin, self._process.stdout
        if self._out.readline().strip() != "READY":
            raise SystemExit(f"node did not start (exit {self._process.wait()})")

    def run(self, start: int, end: int) -> tuple[list[float], dict[str, Any]]:
        self._in.write(f"{start} {end}\n")
        self._in.flush()
        line = self._out.readline()
        if not line:
            raise SystemExit(f"node failed (exit {self._process.wait()})")
        answer = json.loads(line)
        return answer["times"], answer["last"]

    def close(self) -> None:
        self._in.close()
        self._process.wait(timeout=10)
        self._out.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=10000, help="tokens per size, warm-up included (default 10000)")
    parser.add_argument("--sizes", default="10,1000,10000,100000", help="mapping counts (default 10,1000,10000,100000)")
    parser.add_argument("--round", type=int, default=250, help="decisions per side per round (default 250)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed decisions per side per size (default 500)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.tokens < args.warmup + args.round:
        parser.error("--tokens must cover --warmup plus at least one --round")
    node_modules = install_aws_jwt_verify()
    if node_modules is None:
        raise SystemExit("node and npm are needed (aws-jwt-verify is installed into .cache/ with npm)")
    rng = random.Random(7)
    rows = []

    with tempfile.TemporaryDirectory(prefix="node-warm-") as scratch_name, TlsJwks(Path(scratch_name)) as idp:
        scratch = Path(scratch_name)
        script = scratch / "node-warm.js"
        script.write_text(NODE_WARM)
        # The Python side trusts the loopback certificate the way Node does with NODE_EXTRA_CA_CERTS.
        os.environ["SSL_CERT_FILE"] = str(idp.ca_file)
        environ = {"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri}
        settings = Settings.from_environ(environ)
        keys = key_source(settings)
        handler = load_handler(environ)
        node_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                    "NODE_EXTRA_CA_CERTS": str(idp.ca_file), "NODE_PATH": str(node_modules / "node_modules"),
                    "METHOD_ARN": METHOD_ARN, **environ}
        for size in sizes:
            scope_count = max(1, size // 10)
            profiles = [" ".join(f"svc{rng.randrange(scope_count)}:scope" for _ in range(2)) for _ in range(50)]
            tokens = [mint(idp, rng.choice(profiles), f"client{i}") for i in range(args.tokens)]
            (scratch / "tokens.txt").write_text("\n".join(tokens) + "\n")
            data = mappings(size)
            (scratch / "mappings.json").write_text(json.dumps(data))
            cache = PermissionCache(MemoryPermissionSource(data), ttl=3600, max_stale=3600)
            cache.get()
            handler.AUTHORIZER = Authorizer(settings, keys=keys, permissions=cache)
            events = [{"type": "TOKEN", "authorizationToken": f"Bearer {t}", "methodArn": METHOD_ARN} for t in tokens]
            node = NodeSide(script, {**node_env, "TOKENS_FILE": str(scratch / "tokens.txt"),
                                     "MAPPINGS_JSON": str(scratch / "mappings.json")}, node_modules)

            def python_run(
                start: int, end: int, events: list[dict[str, str]] = events
            ) -> tuple[list[float], dict[str, Any]]:
                times, last = [], {}
                for event in events[start:end]:
                    began = time.perf_counter_ns()
                    last = handler.lambda_handler(event, None)
                    times.append((time.perf_counter_ns() - began) / 1000)
                return times, last

            py_all: list[float] = []
            node_all: list[float] = []
            ratios = []
            # Line-buffered: a write(2) per log line, as Lambda's unbuffered log stream does.
            stderr = sys.stderr
            with open(os.devnull, "w", buffering=1) as devnull:
                sys.stderr = devnull
                try:
                    python_run(0, args.warmup)
                    node.run(0, args.warmup)
                    for index, start in enumerate(range(args.warmup, args.tokens - args.round + 1, args.round)):
                        end = start + args.round
                        if index % 2:
                            node_times, node_last = node.run(start, end)
                            py_times, py_last = python_run(start, end)
                        else:
                            py_times, py_last = python_run(start, end)
                            node_times, node_last = node.run(start, end)
                        if not granted(py_last) or granted(py_last) != granted(node_last):
                            raise SystemExit(f"at {size} mappings the two sides granted different (or no) Resources")
                        py_all += py_times
                        node_all += node_times
                        ratios.append(statistics.median(py_times) / statistics.median(node_times))
                finally:
                    sys.stderr = stderr
                    node.close()
            rows.append((size, statistics.median(py_all), percentile(py_all, 0.99), statistics.median(node_all),
                         percentile(node_all, 0.99), statistics.median(ratios), len(py_all)))

    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"warm decisions, fresh token each; Python {platform.python_version()}, Node {node_version}, "
          f"{platform.machine()}")
    print(f"{'mappings':>9}  {'handler µs':>10} {'p99':>7}  {'node µs':>8} {'p99':>7}  {'× node':>6}  decisions")
    for size, py_median, py_p99, node_median, node_p99, ratio, count in rows:
        print(f"{size:>9}  {py_median:>10.1f} {py_p99:>7.1f}  {node_median:>8.1f} {node_p99:>7.1f}  "
              f"{ratio:>6.2f}  {count} each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
