"""Read ``API_KEYS_FILE``: API keys per client and the routes that need one.

The file lives outside the permissions folder (the permission loader reads every YAML
file there), and is read once per container::

    clients:                      # client_id (or sub) -> API key value of a usage plan
      partner-a: 3yYJx2vB9Qw8XkLm0pRtZs4
    required:                     # routes marked "API key required" in API Gateway
      - arn: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5
        stages: [dev, prod]
        routes: [GET /pets, GET /pets/*]

Routes use the permission files' rules (``*`` crosses ``/``, no ``{param}``) and are
validated by the same schema, with file and line in every error.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from policy_engine.adapters.yaml_files import load_yaml_document
from policy_engine.core.apikeys import REQUIRED_SCOPE, ApiKeyRules, is_api_key
from policy_engine.core.permissions import Locate, compile_records
from policy_engine.errors import ConfigurationError, PermissionsError

__all__ = ["load_api_key_rules"]

_VARIABLE = "API_KEYS_FILE"
#: The file is read whole at every cold start: 8 MiB holds tens of thousands of clients.
MAX_API_KEYS_FILE_BYTES = 8 * 1024 * 1024


def load_api_key_rules(path: str | None, claim: str | None) -> ApiKeyRules | None:
    """The API key rules, or ``None`` when neither a claim nor a file is configured.

    Raises:
        ConfigurationError: the file is unreadable or invalid (names file and line).
    """
    if path is None:
        return ApiKeyRules(claim=claim) if claim else None
    display = str(path)
    try:
        # Opened without blocking: a FIFO must not hold the cold start until a writer comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigurationError(_VARIABLE, f"{display} is not a regular file")
            with open(fd, "rb", closefd=False) as file:  # read() loops over short reads
                data = file.read(MAX_API_KEYS_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_API_KEYS_FILE_BYTES:
            raise ConfigurationError(_VARIABLE, f"{display} is larger than {MAX_API_KEYS_FILE_BYTES} bytes")
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigurationError(_VARIABLE, f"cannot read {display}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(_VARIABLE, f"cannot read {display}: not UTF-8 text") from None
    try:
        document, locate = load_yaml_document(text, display)
    except PermissionsError as exc:
        raise ConfigurationError(_VARIABLE, str(exc)) from None
    if document is None:
        raise ConfigurationError(_VARIABLE, f"{display} is empty")
    if not isinstance(document, dict) or set(document) - {"clients", "required"}:
        raise ConfigurationError(_VARIABLE, f"{locate(())}: expected only 'clients:' and 'required:'")
    clients = document.get("clients") or {}
    if not isinstance(clients, dict):
        raise ConfigurationError(_VARIABLE, f"{locate(('clients',))}: 'clients' maps client ids to API keys")
    for client, key in clients.items():
        if not isinstance(client, str) or not is_api_key(key):
            raise ConfigurationError(
                _VARIABLE, f"{locate(('clients', client))}: API key of {client!r} must be 20-128 printable characters"
            )
    records, origins = _required_records(document.get("required") or [], locate)

    def origin(path: tuple[int | str, ...]) -> str:
        # compile_records names a record by its index first
        return origins[path[0]] if path and isinstance(path[0], int) else locate(("required",))

    try:
        required = compile_records(records, origin)
    except PermissionsError as exc:
        raise ConfigurationError(_VARIABLE, "; ".join(exc.problems)) from None
    return ApiKeyRules(claim=claim, by_client=dict(clients), required=required)


def _required_records(groups: Any, locate: Locate) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(groups, list):
        raise ConfigurationError(_VARIABLE, f"{locate(('required',))}: 'required' is a list of API groups")
    records: list[dict[str, Any]] = []
    origins: list[str] = []
    for g, group in enumerate(groups):
        where = ("required", g)
        if not isinstance(group, dict) or set(group) != {"arn", "stages", "routes"}:
            raise ConfigurationError(_VARIABLE, f"{locate(where)}: a group has exactly arn, stages and routes")
        stages = [group["stages"]] if isinstance(group["stages"], str) else group["stages"]
        routes = [group["routes"]] if isinstance(group["routes"], str) else group["routes"]
        if not isinstance(stages, list) or not isinstance(routes, list) or not stages or not routes:
            raise ConfigurationError(_VARIABLE, f"{locate(where)}: stages and routes must be non-empty lists")
        for r, route in enumerate(routes):
            verb, _, path = str(route).partition(" ")
            if not path.strip():
                raise ConfigurationError(_VARIABLE, f"{locate((*where, 'routes', r))}: route must read 'VERB /path'")
            for stage in stages:
                records.append({"arn": group["arn"], "stage": stage, "httpVerb": verb,
                                "resource": path.strip(), "scope": REQUIRED_SCOPE})
                origins.append(locate((*where, "routes", r)))
    return records, origins
