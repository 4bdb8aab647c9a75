"""``policy-engine explain``: what a caller is granted, and why."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from policy_engine.admin.cli._arguments import api_reference, request_path, request_stage, request_verb, stage_name
from policy_engine.admin.cli._common import (
    Palette,
    add_color,
    add_command,
    add_format,
    authorization_value,
    default_location,
    load_permission_set,
)
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.admin.explain import (
    diff_permissions,
    explain_request,
    grants_for,
    refused_for,
    route_text,
)
from policy_engine.admin.lint import estimate_decision, needs_label
from policy_engine.core.arn import MAX_METHOD_ARN, MethodArn
from policy_engine.core.decision import (
    MAX_RESPONSE_BYTES,
    Decision,
    listable_scopes,
    narrow_to_route,
    render_iam_response,
    response_size,
)
from policy_engine.core.grants import (
    KIND_PATTERN,
    SCOPE,
    GrantSource,
    grant_key,
    parse_claim_path,
    read_grants,
    split_grant_key,
    unconfigured_grant_claims,
)
from policy_engine.core.permissions import PermissionSet
from policy_engine.core.tokens.issuers import PRESETS
from policy_engine.errors import (
    ConfigurationError,
    KeySourceError,
    TokenError,
)
from policy_engine.settings import (
    SUPPORTED_ALGORITHMS,
    Settings,
    read_variable,
    variable,
)

DESCRIPTION = """\
Show what a caller is granted, and why.

For a caller described by scopes (--scopes), grants (--grants, --grant) or a real
token (--token), prints the policy the authorizer would return (per stage), the
routes it grants with the mapping (file:line) behind each and what that mapping
needs (a scope, a group or role, all of several grants, any signed-in caller);
with --request, the decision for that request and the policy statement that
made it. --diff OLD NEW shows what each scope, group or all-of set gains and
loses between two permission sets.

--grants entries are KIND:VALUE, the kind being the text before the first ':'
(so 'scope:pets:read' is the scope 'pets:read'); --scopes and --grants may be
combined. --claim NAME=VALUE gives the caller's claim for '{claim:NAME}'
placeholders in resources (NAME may be a dotted path); with --token the token's
own claims are used. A placeholder without a valid value grants nothing. A token
is verified when ISSUER and AUDIENCE (or --issuer, --audience) are set and its
keys are reachable, else only decoded, and the output says which. A setting
the authorizer would refuse to start with is an error (exit 2), never "only
decoded".

Exit codes: 0 shown (with --request: allowed); 1 the request would be refused
(403, or 401 for a rejected token); 2 could not run (bad arguments, unreadable
permissions).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "explain",
        summary="show the policy, routes and decision for scopes or a token; diff two permission sets",
        description=DESCRIPTION, examples=(
            'policy-engine explain --scopes "pets:read email" --request "GET /dev/pets/12"',
            'policy-engine explain --grants "group:pet-readers role:admin" --claim tenant_id=acme',
            'policy-engine explain --grant "group:Pet Readers"      # one grant, spaces kept',
            "policy-engine explain --token \"$TOKEN\" --issuer https://idp.example.com --audience api",
            "policy-engine explain --diff permissions/ new-permissions/ --format json",
        ),
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", metavar="JWT", help="an access token (with or without 'Bearer ')")
    who.add_argument("--diff", nargs=2, metavar=("OLD", "NEW"), help="compare two permission locations")
    parser.add_argument("--scopes", metavar="'S1 S2'", help="space-separated scopes the caller holds")
    parser.add_argument("--grants", metavar="'KIND:V KIND:V'", action="append", default=[],
                        help="space-separated grants the caller holds, e.g. 'group:pet-readers role:admin'")
    parser.add_argument("--grant", metavar="KIND:VALUE", action="append", default=[],
                        help="one grant, its value taken whole (spaces allowed); repeatable")
    parser.add_argument("--claim", metavar="NAME=VALUE", action="append", default=[],
                        help="a claim of the caller, for '{claim:NAME}' placeholders; repeatable")
    parser.add_argument("--permissions", metavar="LOCATION",
                        help="YAML file/folder or store (default: $PERMISSIONS_SOURCE or ./permissions)")
    parser.add_argument("--request", metavar="'VERB /stage/path'", help="a request to decide, or its methodArn")
    parser.add_argument("--api", metavar="ARN|ID", help="the API (needed when the mappings name several)")
    parser.add_argument("--stage", help="only this stage (default: the request's, else every stage mapped)")
    parser.add_argument("--issuer", help="accepted issuer for --token (default: $ISSUER)")
    parser.add_argument("--audience", help="accepted audience for --token (default: $AUDIENCE)")
    parser.add_argument("--jwks-uri", help="JWKS URL for --token (default: $JWKS_URI, else OIDC discovery)")
    add_format(parser)
    add_color(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.api is not None:
        api_reference(args.api, "--api")
    if args.stage is not None:
        stage_name(args.stage, "--stage")
    given = args.scopes is not None or args.grants or args.grant
    if bool(args.diff) + bool(args.token) + bool(given) != 1:
        raise ConfigurationError("explain", "give exactly one of --scopes/--grants/--grant, --token or --diff")
    if args.diff:
        return _run_diff(args)
    location = args.permissions or default_location()
    permissions = _load(location, args.format)
    out: dict[str, Any] = {"permissions": {"location": location, "version": permissions.version}}
    caller = _caller(args, location)
    out["caller"] = caller
    api_arn = _pick_api(permissions, args.api)
    request = _parse_request(args.request, api_arn) if args.request else None
    if request is not None:
        api_arn = request.api_arn
    stages = [request.stage] if request else [args.stage] if args.stage else _stages(permissions, api_arn)
    scopes = frozenset(caller.pop("keys"))
    claims = caller.pop("claims")
    policies, decisions = [], []
    for stage in stages:
        policy, decision = _policy(permissions, scopes, api_arn, stage, caller, claims, request)
        policies.append(policy)
        decisions.append(decision)
    out["policies"] = policies
    status = 0
    if request is not None:
        response: dict[str, Any] | None = policies[0]["response"]
        if policies[0]["too_large"]:
            # As the runtime answers: the policy for this route alone when the cache key is
            # per route (IDENTITY_SOURCE), else a 500 (engine.Authorizer._respond).
            response = _per_route_response(decisions[0], request)
        why = explain_request(permissions, scopes, request, response or policies[0]["response"], claims)
        out["request"] = {
            "request": f"{request.verb} /{request.stage}/{request.path}", "method_arn": str(request),
            "status": why.verdict.status, "verdict": why.verdict.value,
            "statement": why.statement, "effect": why.effect, "resource": why.resource,
            "mappings": [{"route": route_text(g.route.verb, g.route.resource), "stage": g.route.stage,
                          "scope": needs_label(g.needs), "needs": needs_label(g.needs), "mapping": g.source}
                         for g in why.grants],
        }
        if response is None:
            out["request"].update(status=500, verdict="Error")
        if len(str(request).encode()) > MAX_METHOD_ARN:
            # API Gateway answers 414 itself; the authorizer never sees the request.
            out["request"].update(status=414, verdict="Request-URI Too Long")
        if caller.get("rejected"):
            out["request"].update(status=401, verdict="Unauthorized")
        status = 0 if out["request"]["status"] == 200 else 1
    if caller.get("rejected"):
        status = 1
    if args.format == "json":
        print(json.dumps(out, indent=2))
    else:
        _print(out, Palette(sys.stdout, args.color))
    return status


def _load(location: str, output: str) -> PermissionSet:
    progress = TerminalProgress("explain", enabled=output != "json")
    progress.phase(f"parse {location}")
    try:
        return load_permission_set(location)
    finally:
        progress.close()


def _by_kind(keys: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in sorted(keys):
        kind, value = split_grant_key(key)
        out.setdefault(kind, []).append(value)
    return out


def _grant_arg(text: str, flag: str) -> str:
    kind, colon, value = text.partition(":")
    if not colon or not value or KIND_PATTERN.fullmatch(kind) is None:
        raise ConfigurationError(flag, f"{text!r}: write KIND:VALUE, as in group:pet-readers or scope:pets:read")
    return grant_key(kind, value)


def _claims_arg(items: list[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for item in items:
        name, equals, value = item.partition("=")
        try:
            path = parse_claim_path(name)
        except ValueError as exc:
            raise ConfigurationError("--claim", f"{item!r}: {exc}") from None
        if not equals:
            raise ConfigurationError("--claim", f"{item!r}: write NAME=VALUE, as in tenant_id=acme")
        node = claims
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigurationError("--claim", f"{item!r}: {part!r} is given a value and nested claims")
        node[path[-1]] = value
    return claims


def _caller(args: argparse.Namespace, location: str) -> dict[str, Any]:
    caller = _caller_of(args, location)
    keys = frozenset(caller["keys"])
    caller["scopes"] = listable_scopes(keys)
    caller["grants"] = _by_kind(keys)
    return caller


def _caller_of(args: argparse.Namespace, location: str) -> dict[str, Any]:
    if args.token is None:
        keys = set((args.scopes or "").split())
        keys.update(_grant_arg(entry, "--grants") for text in args.grants for entry in text.split())
        keys.update(_grant_arg(text, "--grant") for text in args.grant)
        source = "/".join(flag for flag, used in (("--scopes", args.scopes is not None), ("--grants", args.grants),
                                                  ("--grant", args.grant)) if used)
        return {"source": source, "keys": sorted(keys), "principal": "caller", "claims": _claims_arg(args.claim)}
    from policy_engine.core.tokens import (
        extract_bearer,
        parse_jwt,
        principal_of,
    )

    # The longest token any configuration accepts: this one may not be configured yet.
    longest = variable("MAX_TOKEN_LENGTH").maximum
    assert longest is not None
    limit = int(longest)
    try:
        token = extract_bearer(authorization_value(args.token), limit)
        parsed = parse_jwt(token, max_length=limit, algorithms=SUPPORTED_ALGORITHMS)
    except TokenError as exc:
        raise _bad_token(f"the token cannot be read ({exc.code}: {exc}); the authorizer would answer 401") from None
    environ = dict(os.environ)
    for flag, name in (("issuer", "ISSUER"), ("audience", "AUDIENCE"), ("jwks_uri", "JWKS_URI")):
        if getattr(args, flag):
            environ[name] = getattr(args, flag)
    payload = parsed.payload
    caller: dict[str, Any] = {
        "source": "--token",
        "issuer": payload.get("iss"), "subject": payload.get("sub"), "client_id": payload.get("client_id"),
        "expires": payload.get("exp"), "kid": parsed.header.get("kid"), "alg": parsed.header.get("alg"),
    }
    try:
        settings = Settings.from_environ(environ)
    except ConfigurationError as exc:
        if exc.variable not in ("ISSUER", "AUDIENCE") or environ.get(exc.variable, "").strip():
            # A value the authorizer would refuse to start with: never "not configured",
            # which would decode (and decide) a token the authorizer never accepts.
            raise ConfigurationError(exc.variable, f"{exc.problem} (the authorizer would refuse to start)") from None
        caller["verified"] = False
        caller["verification"] = (f"decoded WITHOUT verification: {exc.variable} is not configured "
                                  "(set ISSUER and AUDIENCE, or pass --issuer/--audience, to verify)")
        settings = None
    if settings is not None:
        from policy_engine.bootstrap import build_authorizer

        settings = dataclasses.replace(settings, permissions_source=location)
        try:
            verified = build_authorizer(settings, prefetch=False).verify(f"Bearer {token}")
        except KeySourceError as exc:
            caller["verified"] = False
            caller["verification"] = f"decoded WITHOUT verification: the keys are not reachable ({exc})"
        except TokenError as exc:
            caller["verified"] = False
            caller["rejected"] = True
            caller["verification"] = f"REJECTED by verification ({exc.code}: {exc}); the authorizer would answer 401"
        else:
            caller["verified"] = True
            caller["verification"] = f"signature and claims verified against the keys of {verified.issuer}"
            caller["keys"] = sorted(verified.grants)
            caller["principal"] = verified.principal_id
            caller["claims"] = {**verified.claims, **_claims_arg(args.claim)}
            caller["unconfigured_grant_claims"] = list(verified.hints)
            return caller
    # Without a complete configuration, the grant settings still apply: read them alone.
    sources = settings.default_grant_sources if settings is not None else _grant_sources(environ)
    try:
        caller["keys"] = sorted(read_grants(payload, sources))
        caller["principal"] = principal_of(payload)
        caller["claims"] = {**payload, **_claims_arg(args.claim)}
    except TokenError as exc:
        raise _bad_token(f"the token's claims cannot be read ({exc}); the authorizer would answer 401") from None
    # As the verifier: a hint only for a token no configured claim granted anything.
    caller["unconfigured_grant_claims"] = [] if caller["keys"] else list(unconfigured_grant_claims(payload, sources))
    return caller


def _grant_sources(environ: dict[str, str]) -> tuple[GrantSource, ...]:
    # GRANT_SOURCES, else IDP_PRESET's, else SCOPE_CLAIMS: as Settings.default_grant_sources.
    explicit = read_variable(variable("GRANT_SOURCES"), environ)
    if explicit:
        return tuple(explicit)
    preset = read_variable(variable("IDP_PRESET"), environ)
    if preset:
        return PRESETS[preset].sources
    return (GrantSource(SCOPE, tuple((name,) for name in read_variable(variable("SCOPE_CLAIMS"), environ))),)


def _bad_token(message: str) -> ConfigurationError:
    # Surfaces through the CLI's "could not run" path (exit 2) with this message.
    return ConfigurationError("--token", message)


def _pick_api(permissions: PermissionSet, wanted: str | None) -> str:
    apis = sorted({g.route.api_arn for g in permissions.grants})
    if wanted:
        matches = [a for a in apis if a == wanted or a.endswith(":" + wanted)]
        if not matches:
            mapped = ", ".join(apis) or "none"
            raise ConfigurationError("--api", f"{wanted}: no mapping names this API (mapped: {mapped})")
        return matches[0]
    if len(apis) != 1:
        raise ConfigurationError("--api", f"the mappings name {len(apis)} APIs; choose one ({', '.join(apis)})")
    return apis[0]


def _stages(permissions: PermissionSet, api_arn: str) -> list[str]:
    names = sorted({g.route.stage for g in permissions.grants if g.route.api_arn == api_arn} - {"*"})
    return names or ["*"]


def _parse_request(text: str, api_arn: str) -> MethodArn:
    from policy_engine.core.arn import parse_method_arn
    from policy_engine.errors import EventError

    text = text.strip()
    if text.startswith("arn:"):
        try:
            arn = parse_method_arn(text)
        except EventError as exc:
            raise ConfigurationError("--request", str(exc)) from None
        verb = request_verb(arn.verb, "--request")
        request_stage(arn.stage, "--request")
        request_path(arn.path, "--request")
        return MethodArn(arn.api_arn, arn.stage, verb, arn.path)
    verb, _, path = text.partition(" ")
    path = path.strip()
    if not path.startswith("/") or not verb:
        raise ConfigurationError("--request", f"{text!r}: write 'VERB /stage/path', e.g. 'GET /dev/pets/12'")
    stage, _, rest = path[1:].partition("/")
    if not stage:
        raise ConfigurationError("--request", f"{text!r}: the path must start with the stage")
    verb = request_verb(verb, "--request")
    request_stage(stage, "--request")
    request_path(rest, "--request")
    return MethodArn(api_arn, stage, verb, rest)


def _per_route_response(decision: Decision, request: MethodArn) -> dict[str, Any] | None:
    # The runtime's answer to a policy too large for API Gateway: narrowed to the route
    # when IDENTITY_SOURCE makes the cache key per route, else none (a 500).
    identity = read_variable(variable("IDENTITY_SOURCE"), os.environ)  # a bad value: one error, as at start
    if not identity.per_route:
        return None
    response = render_iam_response(narrow_to_route(decision, str(request)))
    return response if response_size(response) <= MAX_RESPONSE_BYTES else None


def _policy(permissions: PermissionSet, scopes: frozenset[str], api_arn: str, stage: str,
            caller: dict[str, Any], claims: dict[str, Any], request: MethodArn | None,
            ) -> tuple[dict[str, Any], Decision]:
    evaluation = permissions.evaluate(scopes, api_arn, stage, claims=claims)
    resources, refused = evaluation.resources, evaluation.refused
    alone = permissions.request_resource(evaluation, request) if request and evaluation.per_request else None
    if alone is not None:
        resources = (*resources, alone)  # as the authorizer answers this one request
    decision = estimate_decision(resources, api_arn=api_arn, stage=stage, scopes=scopes,
                                 version=permissions.version, principal=caller.get("principal") or "caller",
                                 issuer=caller.get("issuer"), excluded=evaluation.excluded)
    response = render_iam_response(decision)
    size = response_size(response)
    too_large = f"{size} bytes, over the {MAX_RESPONSE_BYTES}-byte limit" if size > MAX_RESPONSE_BYTES else None
    return {
        "api": api_arn, "stage": stage, "effect": response["policyDocument"]["Statement"][0]["Effect"],
        "resources": len(resources), "bytes": size, "limit_bytes": MAX_RESPONSE_BYTES,
        "too_large": too_large, "response": response, "placeholders_refused": list(refused),
        "per_request": [route.key for route in evaluation.per_request],
        "routes": [{"route": route_text(g.route.verb, g.route.resource), "stage": g.route.stage,
                    "scope": needs_label(g.needs), "needs": needs_label(g.needs), "mapping": g.source}
                   for g in grants_for(permissions, scopes, api_arn, stage, claims)],
        "refused": [{"route": route_text(g.route.verb, g.route.resource), "stage": g.route.stage,
                     "needs": needs_label(g.needs), "mapping": g.source, "claims": names}
                    for g, names in refused_for(permissions, scopes, api_arn, stage, claims)],
    }, decision


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _print(out: dict[str, Any], paint: Palette) -> None:
    caller = out["caller"]
    held = "; ".join(f"{kind}s {' '.join(values)}" for kind, values in caller["grants"].items())
    print(f"caller: {held or 'no grants (scopes (none))'} (from {caller['source']})")
    if caller["source"] == "--token":
        print(f"token: iss {caller['issuer']}, sub {caller['subject']}, kid {caller['kid']}, alg {caller['alg']}")
        colour = "green" if caller["verified"] else "red" if caller.get("rejected") else "yellow"
        print(f"token: {paint(caller['verification'], colour)}")
        unconfigured = caller.get("unconfigured_grant_claims")
        if unconfigured:
            print(paint(f"hint: the token carries {', '.join(unconfigured)}, which no grant source reads "
                        "(set GRANT_SOURCES or IDP_PRESET: see docs/providers.md)", "yellow"))
    print(f"permissions: {out['permissions']['location']} (version {out['permissions']['version']})")
    for policy in out["policies"]:
        api = policy["api"].rsplit(":", 1)[-1]
        effect = paint(policy["effect"], "green" if policy["effect"] == "Allow" else "red")
        print(f"\n== policy for {api} stage {policy['stage']}: {effect}, {policy['resources']} Resource(s), "
              f"{policy['bytes']} of {policy['limit_bytes']} bytes")
        if policy["too_large"]:
            print(paint(f"   too large: {policy['too_large']}; the authorizer answers per route or fails closed",
                        "red"))
        print(json.dumps(policy["response"]["policyDocument"], indent=2))
        if policy["routes"]:
            rows = [["VERB", "PATH", "STAGE", "GRANTED TO", "MAPPING"]]
            for r in policy["routes"]:
                verb, _, path = r["route"].partition(" ")
                rows.append([verb, path, r["stage"], r["needs"], r["mapping"]])
            print("routes granted:")
            print("\n".join(_table(rows)))
        else:
            print("routes granted: none (the policy denies every route of this stage)")
        if policy["per_request"]:
            print(paint(f"allowed per request only: {', '.join(policy['per_request'])} (no single policy allows "
                        "these routes without reaching a sibling this caller is not granted; the authorizer "
                        "allows the exact request it decides)", "yellow"))
        for r in policy["refused"]:
            print(paint(f"not granted: {r['route']} (stage {r['stage']}) for {r['needs']} at {r['mapping']}: "
                        f"placeholder claim {', '.join(r['claims'])} missing or not one safe path segment", "yellow"))
    request = out.get("request")
    if request:
        ok = request["status"] == 200
        print(f"\n== request {request['request']}: "
              f"{paint(str(request['status']) + ' ' + request['verdict'], 'green' if ok else 'red')}")
        if request["status"] == 414:
            print("  API Gateway answers 414 before calling the authorizer: the methodArn is over 1,600 bytes")
        elif request["statement"] is not None:
            print(f"  decided by statement {request['statement'] + 1} ({request['effect']}), "
                  f"Resource {request['resource']}")
        else:
            print("  no statement matches: implicit deny")
        for m in request["mappings"]:
            print(f"  granted by {m['route']} (stage {m['stage']}) for {m['needs']} at {m['mapping']}")
        if not request["mappings"]:
            print(f"  no mapping grants {request['request']} to these grants")


def _run_diff(args: argparse.Namespace) -> int:
    old_location, new_location = args.diff
    old, new = _load(old_location, args.format), _load(new_location, args.format)
    changes = diff_permissions(old, new)
    if args.format == "json":
        print(json.dumps({
            "old": {"location": old_location, "version": old.version},
            "new": {"location": new_location, "version": new.version},
            "scopes": {scope: {k: [c.as_dict() for c in v] for k, v in sides.items()}
                       for scope, sides in changes.items()},
        }, indent=2))
        return 0
    paint = Palette(sys.stdout, args.color)
    print(f"old: {old_location} ({old.version})\nnew: {new_location} ({new.version})")
    if not changes:
        print("\nno scope gains or loses anything")
    for scope, sides in changes.items():
        label = scope if scope.startswith(("all of ", "any ", "group ", "role ")) or " " in scope else f"scope {scope}"
        print(f"\n{label}: +{len(sides['gained'])} -{len(sides['lost'])}")
        rows = []
        for sign, change in [("+", c) for c in sides["gained"]] + [("-", c) for c in sides["lost"]]:
            note = ""
            if change.covered_by is not None:
                cover = change.covered_by
                note = (f"still granted by {route_text(cover.route.verb, cover.route.resource)} ({cover.source})"
                        if sign == "-" else
                        f"was already granted by {route_text(cover.route.verb, cover.route.resource)} ({cover.source})")
            rows.append([paint(sign, "green" if sign == "+" else "red"), route_text(change.verb, change.resource),
                         change.api_arn.rsplit(":", 1)[-1], change.stage, change.source, note])
        print("\n".join(_table(rows)))
    return 0
