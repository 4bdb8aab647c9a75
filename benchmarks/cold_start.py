"""Cold start: whole processes, from spawn to exit, each importing an authorizer and deciding once.

    .venv/bin/python benchmarks/cold_start.py [--runs 15] [--before main] [--before-compiled]
                                              [--sizes 1000,10000] [--no-node] [--mypyc]

Each run is a fresh interpreter (``python -I -S -B -c``, as on Lambda's read-only
``/var/task``: nothing outside the task folder is importable and no bytecode is written)
that imports an authorizer, fetches the signing keys over TLS from a JWKS endpoint on
127.0.0.1, decides one TOKEN event and exits. What is timed is the whole process: spawn,
interpreter start-up, imports, init, the decision, exit. Candidates, per data set:

- ``after``: this checkout's ``policy-engine bundle`` (its defaults), unpacked (and, with
  ``--mypyc``, ``after+mypyc``: the same built with ``bundle --mypyc``);
- ``before``: the same from the revision given with ``--before`` (default ``main``),
  exported with ``git archive`` and bundled by its own ``bundle`` command (and, with
  ``--before-compiled``, ``before+pyc``: that command with its ``--compile``);
- ``pyjwt``: the anchor, a plain PyJWT authorizer in the shape of the AWS Security Blog's
  sample ("Building fine-grained authorization using Amazon Cognito, API Gateway, and
  IAM"): ``PyJWKClient`` + ``jwt.decode`` + a scope lookup over the same mappings, loaded
  from a JSON file, run with the PyJWT and cryptography of the ``after`` bundle;
- ``node``: aws-jwt-verify (``JwtRsaVerifier``) + the same lookup on Node.js, when
  ``npm`` is available (installed once into ``.cache/``, never committed).

Data sets: the repository's example permissions, and generated sets of ``--sizes``
mappings (one API, two stages, 20 mappings a scope). Each bundle carries its data set the way
its ``bundle`` command ships permissions; the anchors read the same mappings as JSON.

Runs go round-robin (every candidate once per round, the order rotated each round, one
warm-up round first), so a drift in the machine's speed hits all of them alike; a ratio
is the median of the per-round ratios against the anchor of the same data set. Every
run's answer is checked to allow the request (evaluated with API Gateway's policy
rules). Printed per candidate: wall time (median, min, max) and its ratio, and the CPU
time of the process (user + system, from ``wait4``) and its ratio, which a busy machine
disturbs less. On a shared machine read the medians and the ratios, not single runs.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import ipaddress
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from policy_engine.admin.local.idp import SigningKey  # noqa: E402
from policy_engine.admin.local.runtime_api import isolated_python  # noqa: E402
from policy_engine.admin.publish import load_desired  # noqa: E402
from policy_engine.core.iam import Verdict, evaluate_response  # noqa: E402

CACHE = ROOT / ".cache"
AWS_JWT_VERIFY = "5.2.1"
AUDIENCE = "policy-engine-bench"
EXAMPLE_API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
GENERATED_API = "arn:aws:execute-api:us-east-1:123456789012:b2c3d4e5f6"

# The anchor: a Lambda authorizer as the AWS blog's sample is built, written for PyJWT.
PLAIN_PYJWT = '''
import json
import os

import jwt
from jwt import PyJWKClient

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
JWKS = PyJWKClient(os.environ["JWKS_URI"])
with open(os.environ["MAPPINGS_JSON"], encoding="utf-8") as file:
    MAPPINGS = json.load(file)


def lambda_handler(event, context):
    token = event["authorizationToken"].removeprefix("Bearer ")
    key = JWKS.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    scopes = set(str(claims.get("scope", "")).split())
    api, _, rest = event["methodArn"].partition("/")
    stage = rest.split("/", 1)[0]
    resources = []
    for mapping in MAPPINGS:
        if mapping["scope"] in scopes and mapping["arn"] == api and mapping["stage"] in (stage, "*"):
            verb = "*" if mapping["httpVerb"] in ("*", "ANY") else mapping["httpVerb"]
            resources.append(f"{api}/{stage}/{verb}{mapping['resource']}")
    statement = {"Action": "execute-api:Invoke", "Effect": "Allow" if resources else "Deny",
                 "Resource": resources or [f"{api}/*"]}
    return {"principalId": claims["sub"], "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}
'''

# The same on Node.js with AWS's aws-jwt-verify.
NODE_SAMPLE = '''
const fs = require("fs");
const { JwtRsaVerifier } = require("aws-jwt-verify");

const verifier = JwtRsaVerifier.create({
  issuer: process.env.ISSUER, audience: process.env.AUDIENCE, jwksUri: process.env.JWKS_URI,
});
const mappings = JSON.parse(fs.readFileSync(process.env.MAPPINGS_JSON, "utf8"));

async function handler(event) {
  const token = event.authorizationToken.replace(/^Bearer /, "");
  const claims = await verifier.verify(token);
  const scopes = new Set(String(claims.scope || "").split(" "));
  const [api, rest] = [event.methodArn.split("/")[0], event.methodArn.split("/").slice(1)];
  const stage = rest[0];
  const resources = [];
  for (const m of mappings) {
    if (scopes.has(m.scope) && m.arn === api && (m.stage === stage || m.stage === "*")) {
      const verb = m.httpVerb === "ANY" ? "*" : m.httpVerb;
      resources.push(`${api}/${stage}/${verb}${m.resource}`);
    }
  }
  const statement = { Action: "execute-api:Invoke", Effect: resources.length ? "Allow" : "Deny",
                      Resource: resources.length ? resources : [`${api}/*`] };
  return { principalId: claims.sub, policyDocument: { Version: "2012-10-17", Statement: [statement] } };
}

handler(JSON.parse(process.argv[2])).then((r) => console.log("RESULT " + JSON.stringify(r)));
'''


class TlsJwks:
    """Discovery and a JWKS over TLS on 127.0.0.1 (a self-signed certificate the clients trust)."""

    def __init__(self, folder: Path) -> None:
        self.key = SigningKey(kid="bench")
        self.ca_file = folder / "loopback-ca.pem"
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = folder / "loopback-key.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        jwks = json.dumps({"keys": [self.key.public_jwk()]}).encode()
        issuer_box: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (~40 ms)

            def do_GET(self) -> None:  # http.server's name for it
                if self.path == "/jwks.json":
                    body = jwks
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps({"issuer": issuer_box[0], "jwks_uri": issuer_box[0] + "/jwks.json"}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self._server.server_address[1]}"
        issuer_box.append(self.issuer)
        self.jwks_uri = self.issuer + "/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def mint(self, scope: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": "bench-client", "client_id": "bench-client",
                  "scope": scope, "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid})


@dataclass
class DataSet:
    name: str
    permissions: Path            # what the bundles ship (YAML file or folder)
    mappings_json: Path          # the same mappings for the anchors
    count: int
    scope: str
    method_arn: str


@dataclass
class Candidate:
    name: str
    data: DataSet
    command: list[str]
    cwd: Path
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def generated_yaml(path: Path, count: int) -> Path:
    # Tenants of 100 items on two stages; a scope grants 20 mappings, whatever the size
    # (a TOKEN authorizer's policy must stay within 8 KB).
    scopes = max(1, count // 20)
    lines = ["permissions:"]
    for i in range(count):
        lines += [f"  - arn: {GENERATED_API}", f"    stage: {'dev' if i % 2 else 'prod'}", "    httpVerb: GET",
                  f"    resource: /tenants/{i // 100}/items/{i}", f"    scope: scope:{i % scopes}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def data_sets(scratch: Path, sizes: list[int]) -> list[DataSet]:
    sets = [DataSet("example", ROOT / "permissions", scratch / "example.json", 0, "pets:read",
                    f"{EXAMPLE_API}/dev/GET/pets/12")]
    for size in sizes:
        folder = scratch / f"m{size}"
        folder.mkdir()
        sets.append(DataSet(f"{size:,} mappings", generated_yaml(folder / "permissions.yaml", size),
                            scratch / f"m{size}.json", size, "scope:7", f"{GENERATED_API}/dev/GET/tenants/0/items/7"))
    for data in sets:
        keys = sorted(load_desired(data.permissions))
        data.count = len(keys)
        data.mappings_json.write_text(json.dumps(
            [{"arn": k.arn, "stage": k.stage, "httpVerb": k.verb, "resource": k.resource, "scope": k.needs}
             for k in keys]))
    return sets


def export_revision(revision: str, into: Path) -> Path:
    """The tree of ``revision`` in a plain folder (git archive: no worktree, no index touched)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision],
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as buffer:
        buffer.write(archive)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as tar:
            tar.extractall(into, filter="data")
    return into


def bundle_with(source: Path, permissions: Path, output: Path, *extra: str) -> Path:
    """Run ``policy-engine bundle`` of the tree at ``source`` (its defaults, plus ``extra``); unpack the zip."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from policy_engine.admin.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    done = subprocess.run([sys.executable, "-c", code, str(source), "bundle", "--arch", arch, "--python", python,
                           "--permissions", str(permissions), "--output", str(output),
                           "--wheel-cache", str(CACHE / "wheels"), *extra], capture_output=True, text=True, cwd=source,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"bundle from {source} failed:\n{done.stdout}{done.stderr}")
    task = output.with_suffix("")
    with zipfile.ZipFile(output) as archive:
        archive.extractall(task)
    return task


def install_aws_jwt_verify() -> Path | None:
    """``node_modules`` holding aws-jwt-verify (npm, once, into .cache/), or None without npm."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None
    folder = CACHE / f"aws-jwt-verify-{AWS_JWT_VERIFY}"
    if not (folder / "node_modules" / "aws-jwt-verify" / "package.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", f"aws-jwt-verify@{AWS_JWT_VERIFY}"],
                       cwd=folder, check=True, capture_output=True)
    return folder


def python_command(paths: list[Path], code: str) -> list[str]:
    prologue = f"import sys; sys.path[0:0] = {[str(p) for p in paths]!r}; "
    return [isolated_python(), "-I", "-S", "-B", "-c", prologue + code]


HANDLER_RUN = ("import json, handler.app; "
               "print('RESULT ' + json.dumps(handler.app.lambda_handler(json.loads(sys.argv[1]), None)))")
SAMPLE_RUN = ("import json, plain_pyjwt_sample as s; "
              "print('RESULT ' + json.dumps(s.lambda_handler(json.loads(sys.argv[1]), None)))")


def run_once(candidate: Candidate, event: dict[str, Any], env: dict[str, str], log: Path) -> None:
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen([*candidate.command, json.dumps(event)], cwd=candidate.cwd, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    results = [line[7:] for line in text.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not results:
        raise SystemExit(f"{candidate.name} on {candidate.data.name} failed (exit {process.returncode}):\n"
                         f"{text[-2000:]}")
    verdict = evaluate_response(json.loads(results[-1]), candidate.data.method_arn)
    if verdict is not Verdict.ALLOW:
        raise SystemExit(f"{candidate.name} on {candidate.data.name} did not allow the request: {verdict}")
    candidate.walls.append(wall)
    candidate.cpus.append(usage.ru_utime + usage.ru_stime)


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:6.1f}, "
            f"max {max(values) * 1000:6.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="counted rounds (default 15)")
    parser.add_argument("--before", default="main", help="git revision measured as 'before' (default main); "
                        "'' to skip")
    parser.add_argument("--sizes", default="1000,10000", help="generated data set sizes (default 1000,10000)")
    parser.add_argument("--no-node", action="store_true", help="skip aws-jwt-verify even when npm is available")
    parser.add_argument("--before-compiled", action="store_true",
                        help="also time the 'before' revision bundled with its --compile (bytecode)")
    parser.add_argument("--mypyc", action="store_true",
                        help="also time this checkout bundled with --mypyc (the decision path as C extensions)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch_name:
        scratch = Path(scratch_name)
        sets = data_sets(scratch, sizes)
        before_source = export_revision(args.before, scratch / "before-src") if args.before else None
        node_modules = None if args.no_node else install_aws_jwt_verify()
        sample = scratch / "sample"
        sample.mkdir()
        (sample / "plain_pyjwt_sample.py").write_text(PLAIN_PYJWT)
        subprocess.run([isolated_python(), "-I", "-m", "py_compile", str(sample / "plain_pyjwt_sample.py")],
                       check=True)
        (scratch / "node-sample.js").write_text(NODE_SAMPLE)

        candidates: list[Candidate] = []
        for index, data in enumerate(sets):
            after = bundle_with(ROOT, data.permissions, scratch / f"after-{index}.zip")
            candidates.append(Candidate("after", data, python_command([after], HANDLER_RUN), after))
            if args.mypyc:
                native = bundle_with(ROOT, data.permissions, scratch / f"after-mypyc-{index}.zip", "--mypyc")
                candidates.append(Candidate("after+mypyc", data, python_command([native], HANDLER_RUN), native))
            if before_source is not None:
                before = bundle_with(before_source, data.permissions, scratch / f"before-{index}.zip")
                candidates.append(Candidate("before", data, python_command([before], HANDLER_RUN), before))
                if args.before_compiled:
                    compiled = bundle_with(before_source, data.permissions, scratch / f"before-pyc-{index}.zip",
                                           "--compile")
                    candidates.append(Candidate("before+pyc", data, python_command([compiled], HANDLER_RUN), compiled))
            candidates.append(Candidate("pyjwt", data, python_command([sample, after], SAMPLE_RUN), sample))
            if node_modules is not None:
                candidates.append(Candidate("node", data, ["node", str(scratch / "node-sample.js")], node_modules))

        with TlsJwks(scratch) as idp:
            base_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SSL_CERT_FILE": str(idp.ca_file),
                        "NODE_EXTRA_CA_CERTS": str(idp.ca_file), "ISSUER": idp.issuer, "AUDIENCE": AUDIENCE,
                        "JWKS_URI": idp.jwks_uri}
            if node_modules is not None:
                base_env["NODE_PATH"] = str(node_modules / "node_modules")
            log = scratch / "run.log"
            for round_index in range(args.runs + 1):
                shift = round_index % len(candidates)
                for candidate in candidates[shift:] + candidates[:shift]:
                    data = candidate.data
                    event = {"type": "TOKEN", "authorizationToken": f"Bearer {idp.mint(data.scope)}",
                             "methodArn": data.method_arn}
                    env = {**base_env, "MAPPINGS_JSON": str(data.mappings_json)}
                    run_once(candidate, event, env, log)
                if round_index == 0:  # the warm-up round is not counted
                    for candidate in candidates:
                        candidate.walls.clear()
                        candidate.cpus.clear()

    print(f"cold start: spawn to exit, import + JWKS over TLS on 127.0.0.1 + one decision; "
          f"{args.runs} rounds, Python {platform.python_version()}, {platform.machine()}")
    summary: dict[str, Any] = {}
    for data in sets:
        group = [c for c in candidates if c.data is data]
        anchor = next(c for c in group if c.name == "pyjwt")
        print(f"\n{data.name} ({data.count} mappings)")
        for candidate in group:
            ratio = statistics.median(w / a for w, a in zip(candidate.walls, anchor.walls, strict=True))
            cpu_ratio = statistics.median(c / a for c, a in zip(candidate.cpus, anchor.cpus, strict=True))
            print(f"  {candidate.name:11} wall {spread(candidate.walls)}  x{ratio:.2f} of pyjwt   "
                  f"cpu {statistics.median(candidate.cpus) * 1000:6.1f} ms  x{cpu_ratio:.2f}")
            summary[f"{data.name}/{candidate.name}"] = {
                "median_ms": round(statistics.median(candidate.walls) * 1000, 1),
                "ratio_to_pyjwt": round(ratio, 3),
                "cpu_ratio_to_pyjwt": round(cpu_ratio, 3),
            }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
