"""Redacting secrets from URLs before they are logged or shown.

A leaf: every layer that names a database or node URL in a message (the
configuration, the persistence layer, the JSON-RPC client, the CLI) uses it,
so it imports nothing of `indexer`.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***``, safe to log or show.

    Handles ``scheme://user:password@host/...`` (PostgreSQL, http), password or
    key-like query parameters (``?password=``, ``?apikey=``), long key-like
    path segments as in ``https://node.example/v2/<api key>``, and libpq
    ``key=value`` strings (``password=...``).
    """
    if "://" not in url:
        return re.sub(
            r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url, flags=re.IGNORECASE
        )
    scheme, _, rest = url.partition("://")
    end = len(rest)
    # The host part ends at the first / ? or # after the last '@' (a password may contain '/').
    at_sign = rest.rfind(
        "@", 0, min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=end)
    )
    cut = min((i for i in (rest.find(c, at_sign + 1) for c in "/?#") if i >= 0), default=end)
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, sep, host = netloc.rpartition("@")
    if sep and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    path, qmark, query = tail.partition("?")
    if scheme.lower() in ("http", "https"):
        # Hosted nodes (Infura, Alchemy, ...) put the API key in the path.
        path = re.sub(
            r"(?<=/)(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}(?=/|#|$)",
            "***",
            path,
        )
    query = re.sub(
        r"((?:^|[&;])[^=&;#]*(?:pass|secret|token|key|auth|sig)[^=&;#]*=)[^&;#]*",
        r"\1***",
        query,
        flags=re.IGNORECASE,
    )
    return f"{scheme}://{netloc}{path}{qmark}{query}"
