"""``policy-engine invoke --event FILE``: run the real Lambda handler on an event file."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy_engine.admin.cli._arguments import permissions_location
from policy_engine.admin.cli._common import (
    Palette,
    add_color,
    add_command,
    add_format,
    authorization_value,
    default_location,
    parse_env_assignments,
)
from policy_engine.errors import ConfigurationError, EventError

if TYPE_CHECKING:
    from policy_engine.admin.local.clients import OAuthClient

__all__ = ["put_token", "register", "run"]

PLACEHOLDER = "REPLACE_WITH_TOKEN"
DEFAULT_AUDIENCE = "policy-engine-demo"


DESCRIPTION = """\
Run the real Lambda handler on an API Gateway event file, as Lambda would.

The handler is loaded fresh with the function's environment: the process
environment plus --env-file and --env KEY=VALUE (later wins). Prints the
response (or the failure) and what API Gateway would answer for the event's
methodArn.

To verify a real signature locally, --local-idp starts a local OpenID provider on
127.0.0.1, points ISSUER and JWKS_URI at it, mints a token with --scopes and puts
it in the event (--token puts a token you already have). --client NAME mints it
for a client of the clients file instead (--clients, default the shipped one),
in that client's provider shape (Cognito, Okta, Auth0, Entra ID, Keycloak,
RFC 9068) with its groups, roles and claims; --id-token mints its ID token.

Exit codes: 0 the request is allowed; 1 refused (401, 403 or 500); 2 could not
run (unreadable event, invalid configuration).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "invoke", summary="run the real handler on an API Gateway event file",
        description=DESCRIPTION, examples=(
            "policy-engine invoke --event events/token-get-pet.json --local-idp --scopes pets:read",
            "policy-engine invoke --event events/token-get-pet.json --client pets-admin --env IDP_PRESET=okta",
            "policy-engine invoke --event event.json --token \"$TOKEN\" --env-file function.env --format json",
        ),
    )
    parser.add_argument("--event", required=True, metavar="FILE", help="event JSON (see events/)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable of the function (repeatable)")
    parser.add_argument("--env-file", metavar="FILE", help="KEY=VALUE lines (# comments allowed)")
    parser.add_argument("--permissions", metavar="LOCATION",
                        help="shorthand for --env PERMISSIONS_SOURCE=... (default: ./permissions)")
    parser.add_argument("--local-idp", action="store_true",
                        help="start a local identity provider, mint a token and use it as ISSUER/JWKS_URI")
    parser.add_argument("--scopes", default=None,
                        help="scopes of the minted token ('pets:read'; with --client: all of the client's)")
    parser.add_argument("--subject", default=None, help="sub/client_id of the minted token ('local-client')")
    parser.add_argument("--client", metavar="NAME", help="mint for this client of --clients, in its shape "
                        "(implies --local-idp)")
    parser.add_argument("--clients", type=Path, default=None, metavar="FILE",
                        help="clients file of --client (default: the shipped clients.yaml)")
    parser.add_argument("--id-token", action="store_true",
                        help="mint the client's ID token instead of an access token (with --client)")
    parser.add_argument("--token", metavar="JWT", help="put this token in the event")
    add_format(parser)
    add_color(parser)
    parser.set_defaults(run=run)


def _read_event(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EventError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"{path}: not a JSON event ({exc})") from None
    except RecursionError:
        # json's decoder recurses once per level; no API Gateway event nests this deep.
        raise EventError(f"{path}: not a JSON event (nested too deeply)") from None


def _environment(args: argparse.Namespace) -> dict[str, str]:
    environ: dict[str, str] = {}
    if args.env_file:
        try:
            lines = Path(args.env_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError("--env-file", f"{args.env_file}: cannot read ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise ConfigurationError("--env-file", f"{args.env_file}: not UTF-8 text") from None
        environ.update(parse_env_assignments(lines, f"--env-file {args.env_file}"))
    environ.update(parse_env_assignments(args.env, "--env"))
    if args.permissions:
        environ["PERMISSIONS_SOURCE"] = permissions_location(args.permissions, "--permissions")
    if not (environ.get("PERMISSIONS_SOURCE") or os.environ.get("PERMISSIONS_SOURCE", "").strip()):
        # The handler's own default is the file the bundle ships beside the package, which an
        # installed CLI does not have: read the current folder's, as validate does.
        if not Path(default_location()).exists():
            raise ConfigurationError("PERMISSIONS_SOURCE", f"not set, and there is no ./{default_location()} here; "
                                     "pass --permissions PATH")
        environ["PERMISSIONS_SOURCE"] = default_location()
    return environ


def put_token(event: Any, token: str) -> Any:
    """A copy of ``event`` carrying ``Bearer <token>`` where its type expects the credential.

    ``token`` may already carry the scheme; it is passed on unjudged, for the handler to judge.
    """
    if not isinstance(event, dict):
        raise EventError("the event is not a JSON object")
    event = json.loads(json.dumps(event))
    value = authorization_value(token)
    if event.get("type") == "TOKEN":
        event["authorizationToken"] = value
        return event
    headers = event.setdefault("headers", {}) or {}
    name = next((k for k in headers if k.lower() == "authorization"), "authorization")
    headers[name] = value
    event["headers"] = headers
    if isinstance(event.get("identitySource"), list):
        event["identitySource"] = [value]
    elif "identitySource" in event or "authorizationToken" in event:
        event["identitySource"] = value
        event["authorizationToken"] = value
    return event


@dataclass(frozen=True, slots=True)
class _Minted:
    token: str
    #: What the printout says about it, e.g. "for 'local-client' with scope 'pets:read'".
    description: str


def _client(args: argparse.Namespace) -> OAuthClient | None:
    if args.client is None:
        for flag, given in (("--id-token", args.id_token), ("--clients", args.clients)):
            if given:
                raise ConfigurationError(flag, "applies to tokens minted with --client")
        return None
    if args.subject is not None:
        raise ConfigurationError("--subject", "the client's shape decides the subject; set `claims: {sub: ...}` "
                                 "in the clients file instead")
    from policy_engine.admin.local.clients import CLIENTS_FILE, ID_TOKEN_SHAPES, load_clients

    clients = load_clients(args.clients or CLIENTS_FILE)
    client = clients.get(args.client)
    if client is None:
        raise ConfigurationError("--client", f"{args.client!r} is not in {args.clients or CLIENTS_FILE} "
                                 f"(clients: {', '.join(sorted(clients))})")
    if args.id_token and client.shape not in ID_TOKEN_SHAPES:
        raise ConfigurationError("--id-token", f"client {client.client_id} has shape {client.shape}, which has no "
                                 f"ID token (shapes that do: {', '.join(ID_TOKEN_SHAPES)})")
    return client


@contextlib.contextmanager
def _identity_provider(args: argparse.Namespace, environ: dict[str, str]) -> Iterator[_Minted | None]:
    client = _client(args)
    if not args.local_idp and client is None:
        yield None
        return
    from policy_engine.admin.local.idp import LocalIdentityProvider

    with LocalIdentityProvider(clients=[client] if client else ()) as idp:
        environ["ISSUER"] = client.issuer(idp.issuer) if client else idp.issuer
        environ["JWKS_URI"] = idp.jwks_uri
        default_audience = client.audience_value if client else DEFAULT_AUDIENCE
        audiences = environ.get("AUDIENCE") or os.environ.get("AUDIENCE") or default_audience
        environ.setdefault("AUDIENCE", audiences)
        if client is None:
            scopes, subject = args.scopes or "pets:read", args.subject or "local-client"
            token = idp.mint(scope=scopes, audience=audiences.split(",")[0].strip(), subject=subject)
            yield _Minted(token, f"for {subject!r} with scope {scopes!r}")
            return
        wanted = args.scopes.split() if args.scopes is not None else list(client.scopes)
        unknown = [s for s in wanted if s not in client.scopes]
        if unknown:
            raise ConfigurationError("--scopes", f"not allowed for client {client.client_id}: {' '.join(unknown)} "
                                     f"(its scopes: {' '.join(client.scopes) or 'none'})")
        kind = "id" if args.id_token else client.token
        token = idp.issue(client, wanted, token=kind)
        granted = " ".join(s for s in client.scopes if s in wanted)
        grants = f" with scope {granted!r}" if granted and kind == "access" else ""
        yield _Minted(token, f"for client {client.client_id!r} ({client.shape} {kind} token){grants}")


def run(args: argparse.Namespace) -> int:
    event = _read_event(args.event)
    environ = _environment(args)
    with _identity_provider(args, environ) as minted:
        token = args.token or (minted.token if minted else None)
        if token:
            event = put_token(event, token)
        elif PLACEHOLDER in json.dumps(event):
            print(f"note: {args.event} holds the placeholder {PLACEHOLDER}; pass --local-idp, --client or --token",
                  file=sys.stderr)
        from policy_engine.admin.local.invoke import invoke, load_handler

        try:
            handler = load_handler(environ)
        except ConfigurationError as exc:
            raise ConfigurationError(exc.variable, f"{exc.problem} (the handler refused to start)") from None
        result = invoke(handler, event)
    outcome = _outcome(event, result.response, result.error)
    if args.format == "json":
        print(json.dumps({"environment": _shown_env(environ, minted), "response": result.response,
                          "error": result.error, **outcome}, indent=2))
    else:
        # HTTP API payloads carry a version (1.0 or 2.0); REST events do not.
        http_api = isinstance(event, dict) and event.get("version") in ("1.0", "2.0")
        _print(args, environ, minted, result.response, result.error, outcome, http_api)
    return 0 if outcome["status"] == 200 else 1


def _outcome(event: Any, response: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    from policy_engine.core.iam import MalformedResponseError, evaluate_response

    arn = (event.get("methodArn") or event.get("routeArn")) if isinstance(event, dict) else None
    if response is None:
        status = 401 if error == "Unauthorized" else 500
        return {"method_arn": arn, "status": status, "verdict": "Unauthorized" if status == 401 else "Error"}
    if not isinstance(arn, str):
        return {"method_arn": arn, "status": 500, "verdict": "no methodArn in the event"}
    if "isAuthorized" in response and event.get("version") == "2.0":
        # HTTP API simple response (payload format 2.0 with simple responses enabled).
        allowed = response["isAuthorized"]
        if not isinstance(allowed, bool):
            return {"method_arn": arn, "status": 500, "verdict": "malformed response: isAuthorized is not a boolean"}
        return {"method_arn": arn, "status": 200 if allowed else 403, "verdict": "Allow" if allowed else "Deny"}
    try:
        verdict = evaluate_response(response, arn)
    except MalformedResponseError as exc:
        return {"method_arn": arn, "status": 500, "verdict": f"malformed response: {exc}"}
    return {"method_arn": arn, "status": verdict.status, "verdict": verdict.value}


def _shown_env(environ: dict[str, str], minted: _Minted | None) -> dict[str, str]:
    shown = {k: v for k, v in sorted(environ.items())}
    if minted:
        shown["(token)"] = "minted by the local identity provider"
    return shown


def _print(args: argparse.Namespace, environ: dict[str, str], minted: _Minted | None,
           response: dict[str, Any] | None, error: str | None, outcome: dict[str, Any], http_api: bool) -> None:
    paint = Palette(sys.stdout, args.color)
    if environ:
        print("environment (on top of the process environment):")
        for key, value in sorted(environ.items()):
            print(f"  {key}={value}")
    if minted:
        print(f"token: minted by the local identity provider {minted.description}")
    if response is not None:
        print("response:")
        print(json.dumps(response, indent=2))
    else:
        print(f"the handler raised: {error!r}")
    ok = outcome["status"] == 200
    arn = outcome["method_arn"]
    print(f"API Gateway answers {paint(str(outcome['status']), 'green' if ok else 'red')} ({outcome['verdict']}) "
          f"for {arn}")
    if outcome["verdict"] == "Unauthorized" and http_api:
        print("  (an HTTP API answers 401 if it honours 'Unauthorized', which AWS does not document; otherwise 500)")

