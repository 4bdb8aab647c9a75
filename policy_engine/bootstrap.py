"""Build an ``Authorizer`` from ``Settings``: choose and configure the adapters."""

from __future__ import annotations

import contextlib
from pathlib import Path

from policy_engine import metrics
from policy_engine.adapters.jwks_http import JwksKeySource
from policy_engine.budget import InvocationBudget
from policy_engine.cache import STORE_INIT_WAIT, STORE_REQUEST_WAIT, CandidateCache, PermissionCache
from policy_engine.engine import Authorizer
from policy_engine.errors import ConfigurationError
from policy_engine.ports import PermissionSource
from policy_engine.settings import DEFAULT_PERMISSIONS_SOURCE, Settings

__all__ = ["build_authorizer", "candidate_cache", "key_source", "permission_source"]

_STORES = ("dynamodb://", "s3://")


def permission_source(location: str, *, max_bytes: int | None = None, candidate: bool = False) -> PermissionSource:
    """The source named by a ``PERMISSIONS_SOURCE`` value: a YAML file or folder, a
    compiled snapshot file, ``dynamodb://TABLE`` or ``s3://BUCKET/KEY``.

    ``dynamodb://TABLE`` and ``s3://BUCKET/KEY`` build a store reader (no AWS call yet, and
    no boto3: the readers sign their own requests); nothing creates or alters a table
    here. ``max_bytes`` caps what a store load reads. With ``candidate``, a store's reader
    reads the candidate published beside the live version (``sync --candidate``).

    Raises:
        ConfigurationError: the scheme is unknown, the value is malformed, or no AWS
            region is configured for a store.
    """
    # A store's reader is imported only here, by the deployment that names it.
    if location.startswith("dynamodb://"):
        from policy_engine.adapters.dynamodb import DynamoDbPermissionSource

        return DynamoDbPermissionSource(location.removeprefix("dynamodb://"), max_bytes=max_bytes, candidate=candidate)
    if location.startswith("s3://"):
        from policy_engine.adapters.s3 import S3PermissionSource

        return S3PermissionSource(location, max_bytes=max_bytes, candidate=candidate)
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ConfigurationError(
            "PERMISSIONS_SOURCE",
            f"scheme {scheme!r} is not supported (use a YAML file or folder, a compiled snapshot file, "
            "dynamodb://TABLE or s3://BUCKET/KEY)",
        )
    # A compiled snapshot (policy-engine compile, what bundle ships) is told by its name
    # (*.json) or its first bytes; anything else local is YAML.
    from policy_engine.adapters import snapshot_file

    if snapshot_file.is_snapshot_file(location):
        return snapshot_file.SnapshotFilePermissionSource(location)
    from policy_engine.adapters.yaml_files import YamlPermissionSource

    return YamlPermissionSource(location)


def key_source(settings: Settings, budget: InvocationBudget | None = None) -> JwksKeySource:
    """The keys of every concrete issuer ``settings`` configure (``ISSUER``, each
    ``IDENTITY_PROVIDERS`` entry, one per allowed Entra tenant), each from its own JWKS URI
    or discovery; nothing is fetched yet.

    Raises:
        ConfigurationError: an issuer is configured twice.
    """
    rules = settings.issuer_rules()
    return JwksKeySource(
        [rule.issuer for rule in rules],
        algorithms=settings.algorithms,
        jwks_uris=[rule.jwks_uri for rule in rules],
        timeout=settings.jwks_timeout,
        cache_ttl=settings.jwks_cache_ttl,
        refetch_interval=settings.jwks_refetch_interval,
        max_stale=settings.jwks_max_stale,
        budget=budget,
    )


def candidate_cache(settings: Settings) -> CandidateCache | None:
    """The candidate permissions ``PERMISSIONS_CANDIDATE`` names, for shadow evaluation;
    ``None`` when there are none to look for (``off``, or ``auto`` with a file source).

    ``auto`` with a store reads the store's candidate on worker threads (a request never
    waits for it); a file or folder loads on the requesting thread, as a file source does.
    Nothing is read here.
    """
    choice, live = settings.permissions_candidate, settings.permissions_source
    if choice == "off" or (choice == "auto" and not live.startswith(_STORES)):
        return None
    if choice == "auto":
        max_bytes = settings.permissions_max_bytes

        def store() -> PermissionSource:
            return permission_source(live, max_bytes=max_bytes, candidate=True)

        return CandidateCache(store, f"{live} (candidate)", ttl=settings.permissions_cache_ttl,
                              max_stale=settings.permissions_max_stale, background=True)

    def files() -> PermissionSource:
        return permission_source(choice)

    return CandidateCache(files, choice, ttl=settings.permissions_cache_ttl,
                          max_stale=settings.permissions_max_stale, background=False)


def build_authorizer(settings: Settings, *, prefetch: bool = True) -> Authorizer:
    """Wire the adapters ``settings`` asks for; with ``prefetch``, load keys and mappings now.

    Prefetching at container start moves the JWKS download and the mapping load out of
    the first request. Failures there are logged and retried on demand, never fatal.

    Raises:
        ConfigurationError: a setting names something that cannot be used.
    """
    metrics.configure(enabled=settings.metrics, namespace=settings.metrics_namespace,
                      function_name=settings.function_name)
    # One budget for the authorizer and every adapter that waits for a request.
    budget = InvocationBudget()
    keys = key_source(settings, budget)
    candidate = candidate_cache(settings)
    # A store is a network call that can hang: its loads get deadlines. Files load inline.
    store = "://" in settings.permissions_source
    if not store and settings.permissions_source != DEFAULT_PERMISSIONS_SOURCE:
        # A path set by hand that names nothing: nothing the function ships or mounts appears
        # later, so refuse to start, naming it, rather than answer 500 to every request.
        # (The default, an installed package's own folder, may be absent: that stays a load
        # failure, logged and failing closed per request.) Files load inline, so a device or
        # a FIFO, which can be read forever, is refused too.
        path = Path(settings.permissions_source)
        if not (path.is_file() or path.is_dir()):
            raise ConfigurationError("PERMISSIONS_SOURCE", f"{settings.permissions_source!r}: " + (
                "not a regular file or folder" if path.exists() else "no such file or folder"))
    permissions = PermissionCache(
        permission_source(settings.permissions_source, max_bytes=settings.permissions_max_bytes),
        ttl=settings.permissions_cache_ttl,
        max_stale=settings.permissions_max_stale,
        wait=STORE_REQUEST_WAIT if store else None,
        # Shadow evaluation skips a candidate equal to the live mappings: their digests
        # are computed on the loading thread.
        digests=candidate is not None,
        budget=budget,
    )
    introspection = None
    if settings.introspection_url is not None:
        from policy_engine.adapters.introspection import IntrospectionClient

        introspection = IntrospectionClient(
            settings.introspection_url,
            client_id=settings.introspection_client_id,
            client_secret=settings.introspection_client_secret,
            auth_method=settings.introspection_auth_method,
            timeout=settings.introspection_timeout,
            cache_ttl=settings.introspection_cache_ttl,
            negative_ttl=settings.introspection_negative_cache_ttl,
            budget=budget,
        )
    api_keys = None
    if settings.api_key_claim or settings.api_keys_file:
        from policy_engine.adapters.api_keys_yaml import load_api_key_rules

        api_keys = load_api_key_rules(settings.api_keys_file, settings.api_key_claim)
    authorizer = Authorizer(settings, keys=keys, permissions=permissions, introspection=introspection,
                            api_keys=api_keys, candidate=candidate, budget=budget)
    if prefetch:
        if candidate is not None:
            candidate.get()  # a store's candidate loads meanwhile, on its own thread; a file's now
        keys.prefetch()
        # Any failure is logged by the cache; the first request retries and fails closed.
        with contextlib.suppress(Exception):
            permissions.get(wait=STORE_INIT_WAIT)
    return authorizer
