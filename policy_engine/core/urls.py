"""Which URLs may serve trust material (JWKS, discovery, introspection), and how a URL is
shown in a message."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["check_trusted_url", "is_loopback_host", "redact_url_secrets"]

# The user information of a URL (RFC 3986 §3.2.1: "user:password@"), and its query string,
# where endpoints and proxies carry credentials ("?token=..."). A URL ends at whitespace or
# a double quote, which RFC 3986 never allows unencoded; a single quote is allowed (a
# sub-delimiter, §2.2) and may be part of a password or query, so it does not end one.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
_USERINFO = re.compile(rf"({_SCHEME})[^/?#\s\"]+@")
_QUERY = re.compile(rf"({_SCHEME}[^?#\s\"]*)\?[^#\s\"]+")


def redact_url_secrets(text: str) -> str:
    """``text`` with the user information and the query string of every URL in it shown as
    ``***``: a setting or an endpoint may hold credentials, and messages and logs must not.

    ``text`` is a message as written, not JSON: JSON escapes (``\\"``) would be read as part
    of a URL, so a log line redacts its values before encoding them."""
    if "://" not in text:
        return text
    return _QUERY.sub(r"\1?***", _USERINFO.sub(r"\1***@", text))


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
