"""Experiment: what the warm path would cost written as one function.

    .venv/bin/python benchmarks/single_function_path.py [--tokens 15000]

Not product code. ``single`` below redoes, in one function body, every check and step
the real handler makes for a REST TOKEN event carrying an RS256 JWT: event shape,
methodArn (API ARN pattern, stage, verb), RFC 6750 bearer, JWS shape and strict
base64url, header memo and algorithm, issuer, key, signature, exp/nbf/iat, token_use,
aud, claim types, principal, scopes, policy from the memo, context, response, size
bound and the log line (a write(2) per line). It leaves out what that event never
reaches (other event kinds, introspection, API keys, narrowing). It checks that its
answer equals the handler's, then compares both with the floor the way
``decision.py`` does in blocks of 100.

The handler answers this event through its warm path (``policy_engine/warm_path.py``),
which has the same shape; what still differs is the entry (``lambda_handler``,
``Authorizer.answer``), the ``Decision`` and ``Answer`` objects, and the shared calls
(``read_scopes``, ``render_iam_response``, ``response_size_bound``). Before the warm
path, the gap was about a quarter of the floor: the price of the layered general path.
"""

from __future__ import annotations

import binascii
import re
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as quote  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Only what the experiment itself needs at import: lambda_runtime.py imports it inside
# the deployed bundle, which has no policy_engine.local. main() imports the rest.
from policy_engine.core import tokens  # noqa: E402

API_RE = re.compile(r"arn:(aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):execute-api:[a-z0-9-]+:\d{12}:[A-Za-z0-9]+")
TR = bytes.maketrans(b"-_", b"+/")
PAD = (b"", b"===", b"==", b"=")


def make_single(keys: Any, cache: Any, *, issuers: list[str], audiences: list[str]) -> Callable[[dict], dict]:
    """The experiment: the warm path of a TOKEN event with an RS256 JWT as one function.

    ``keys`` is a ``JwksKeySource`` and ``cache`` a ``PermissionCache``, as the handler's.
    ``lambda_runtime.py --with-single`` runs the same function under ``awslambdaric``.
    """
    issuers, auds = frozenset(issuers), frozenset(audiences)
    headers, scan, b64token = tokens._checked_headers, tokens._scan_json, tokens._B64TOKEN_CHARS
    scope_sets: dict[str, frozenset[str]] = {}  # its own memo: the product's is bounded, this one need not be
    KNOWN: dict[str, bool] = {}
    ctx_names = ("sub", "client_id", "username", "iss")
    texts: dict[frozenset[str], str] = {}

    def single(event: dict) -> dict:
        started = time.perf_counter_ns()
        if event.__class__ is not dict or event.get("version") is not None or event.get("type") != "TOKEN":
            raise ValueError("event")
        auth, arn = event.get("authorizationToken"), event.get("methodArn")
        if arn.__class__ is not str or not arn or len(arn) > 1600:
            raise ValueError("methodArn")
        parts = arn.split("/", 3)
        if len(parts) < 3:
            raise ValueError("methodArn")
        api, stage, verb = parts[0], parts[1], parts[2]
        known = KNOWN.get(api)
        if known is None:
            known = KNOWN[api] = API_RE.fullmatch(api) is not None
        if not known or not stage or not verb or "*" in stage:
            raise ValueError("methodArn")
        if auth is None or auth == "" or auth.__class__ is not str or len(auth) > 8192 + 16:
            raise ValueError("bearer")
        if auth[:7].lower() != "bearer " or not auth.isascii():
            raise ValueError("bearer")
        token = auth[7:]
        if token[:1] == " ":
            token = token.lstrip(" ")
        if len(token) > 8192 or "+" in token or "/" in token or "=" in token:
            raise ValueError("token")
        raw = token.encode()
        if not raw or raw.translate(None, b64token):
            raise ValueError("bearer")
        segments = raw.split(b".")
        if len(segments) != 3:
            raise ValueError("token")
        head, body, sig = segments
        if not head or not body or not sig:
            raise ValueError("token")
        header = headers.get(head)
        if header is None:
            header = headers[head] = tokens._check_header(tokens._json_object(head, "header"))
        if header["alg"] not in ("RS256",):
            raise ValueError("alg")
        text = binascii.a2b_base64(body.translate(TR) + PAD[len(body) % 4], strict_mode=True).decode()
        payload, end = scan(text, 0)
        if end != len(text) or payload.__class__ is not dict:
            raise ValueError("payload")
        signature = binascii.a2b_base64(sig.translate(TR) + PAD[len(sig) % 4], strict_mode=True)
        iss = payload.get("iss")
        if iss.__class__ is not str or iss not in issuers:
            raise ValueError("iss")
        key = keys.get_key(iss, header["kid"])
        if header["alg"] != key.algorithm or not key.check(raw[: len(head) + 1 + len(body)], signature):
            raise ValueError("signature")
        now = time.time()
        exp = payload.get("exp")
        if exp.__class__ is not int or exp <= now - 60:
            raise ValueError("exp")
        for name in ("nbf", "iat"):
            if name in payload and (payload[name].__class__ is not int or payload[name] > now + 60):
                raise ValueError(name)
        token_use = payload.get("token_use")
        if token_use is not None and token_use != "access":
            raise ValueError("token_use")
        aud = payload.get("aud")
        if aud.__class__ is not str or aud not in auds:
            raise ValueError("aud")
        for name in ("sub", "client_id", "scope"):
            if name in payload and payload[name].__class__ is not str:
                raise ValueError(name)
        principal = payload.get("sub")
        if principal.__class__ is not str or not principal:
            principal = payload.get("client_id")
            if principal.__class__ is not str or not principal:
                raise ValueError("principal")
        scopes: frozenset[str] = frozenset()
        for name in ("scp", "scope"):
            if name in payload:
                value = payload[name]
                if value.__class__ is not str:
                    raise ValueError(name)
                scopes = scope_sets.get(value)
                if scopes is None:
                    scopes = scope_sets[value] = frozenset(value.split())
                break
        permissions = cache.get()
        resources = permissions.resources(scopes, api, stage)
        context = {}
        for name in ctx_names:
            value = payload.get(name)
            if value.__class__ is str:
                context[name] = value
            elif value is not None:
                raise ValueError(name)
        scope_text = texts.get(scopes)
        if scope_text is None:
            scope_text = texts[scopes] = " ".join(sorted(scopes))
        context["scope"] = scope_text
        context["policyVersion"] = permissions.version
        response = {
            "principalId": principal,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": list(resources)}]},
            "context": context,
        }
        chars = len(principal)
        for name, value in context.items():
            chars += len(name) + len(value)
        if 400 + 12 * chars + sum(map(len, resources)) + 4 * len(resources) + len(api) + len(stage) + 7 > 8192:
            raise ValueError("size")
        ms, us = time.time_ns() // 1_000_000, (time.perf_counter_ns() - started) // 1000
        sys.stderr.write(
            f'{{"level":"INFO","event":"decision","ts":{ms // 1000}.{ms % 1000:03d},"decision":"Allow",'
            f'"reason":"granted","shape":"policy","version":{quote(permissions.version)},'
            f'"principal":{quote(principal)},"routes":{len(resources)},"latency_ms":{us // 1000}.{us % 1000:03d}}}\n'
        )
        return response

    return single


def main() -> None:
    import argparse
    import json
    import os
    import random
    import statistics

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from decision import API, b64d, mappings, timed

    from policy_engine.adapters.memory import MemoryPermissionSource
    from policy_engine.bootstrap import key_source
    from policy_engine.cache import PermissionCache
    from policy_engine.engine import Authorizer
    from policy_engine.local.idp import LocalIdentityProvider
    from policy_engine.local.invoke import load_handler
    from policy_engine.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=15000)
    args = parser.parse_args()
    rng = random.Random(7)
    with LocalIdentityProvider() as idp:
        settings = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri})
        keys = key_source(settings)
        public_key = idp.keys[0].private_key.public_key()
        profiles = [" ".join(f"svc{rng.randrange(100)}:scope" for _ in range(2)) for _ in range(50)]
        events = [{"type": "TOKEN", "authorizationToken": f"Bearer {idp.mint(scope=rng.choice(profiles), audience='bench', subject=f'client{i}')}",
                   "methodArn": f"{API}/prod/GET/svc1/x"} for i in range(args.tokens)]
        cache = PermissionCache(MemoryPermissionSource(mappings(1000)), ttl=3600, max_stale=3600)
        cache.get()
        handler = load_handler({"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri})
        handler.AUTHORIZER = Authorizer(settings, keys=keys, permissions=cache)
        stderr, sys.stderr = sys.stderr, open(os.devnull, "w", buffering=1)
        for event in events[:50]:
            handler.lambda_handler(event, None)
        single = make_single(keys, cache, issuers=[idp.issuer], audiences=["bench"])

        def real(event: dict) -> dict:
            return handler.lambda_handler(event, None)

        def floor(event: dict) -> None:
            head, body, sig = event["authorizationToken"][7:].split(".")
            json.loads(b64d(head))
            json.loads(b64d(body))
            public_key.verify(b64d(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())

        for event in events[50:60]:
            assert single(event) == real(event), "the single function must answer as the handler does"
        fresh = events[60:]
        part = len(fresh) // 3
        ratios: dict[str, list[float]] = {"handler": [], "single": []}
        order = [("handler", real), ("single", single)]
        for start in range(0, part, 100):
            def block(j: int) -> list[dict]:
                return [fresh[j * part + i] for i in range(start, min(start + 100, part))]
            base = statistics.median(timed(floor, block(0)))
            rng.shuffle(order)
            for j, (name, fn) in enumerate(order):
                ratios[name].append(statistics.median(timed(fn, block(j + 1))) / base)
        sys.stderr.close()
        sys.stderr = stderr
    print(f"Python {sys.version.split()[0]}, blocks of 100, {len(ratios['handler'])} rounds; x floor (median of rounds):")
    for name, values in ratios.items():
        print(f"  {name:<8} {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
