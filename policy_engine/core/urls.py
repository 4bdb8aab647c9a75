"""Which URLs may serve trust material (JWKS, discovery, introspection)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["check_trusted_url", "is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_trusted_url(url: str) -> str | None:
    """Return why ``url`` may not serve keys, or ``None`` when it may.

    Keys over plain http could be swapped by anyone on the path, so only https is
    accepted, except on loopback where local development and tests run.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a URL"
    if not parts.hostname:
        return "has no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return None
    return "must use https (plain http is accepted only for loopback addresses)"
