"""One blocking HTTP POST for the JSON-RPC log worker's child process.

The child receives every far ``eth_getLogs`` answer, several MB each (about
5 MB for 8,000 logs).  httpx, the fetcher's client, spent ~28 ms of CPU
receiving one such answer on this project's 2-core machine: its HTTP/1.1
layer parses the body 64 KiB at a time in Python.  ``http.client`` reads it
in 2-3.5 ms.  Over bench/ponder.py's 280,000 transfers (34 ranges in the
child) that is most of a second of CPU on a run bound by its two cores.

So the child posts with ``http.client``, doing what httpx does for the
fetcher's requests: keep-alive, the URL's query and its ``user:password@``
as basic auth, gzip asked for and inflated, TLS verified with httpx's own
SSL context (its CA bundle and ``SSL_CERT_FILE``/``SSL_CERT_DIR``).  Where the
environment names a proxy, httpx's proxy rules apply and the child keeps
httpx.  A failure raises :class:`PostError`; the worker then hands the range
back to the fetcher, whose client retries it (``_rpc_worker.py``).
"""

from __future__ import annotations

import base64
import http.client
import urllib.parse
import urllib.request
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["BlockingPost", "PostError"]

# A reused connection the node closed while idle fails on its next request:
# one fresh connection is tried before giving the range back.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class PostError(Exception):
    """No usable answer: the message names the transport error or what was wrong with the body."""


class BlockingPost:
    """POST JSON bodies to one URL; ``post`` returns (HTTP status, body)."""

    def __init__(self, url: str, timeout: float, headers: dict[str, str]) -> None:
        parts = urllib.parse.urlsplit(url)
        self.headers = {**headers, "Accept-Encoding": "gzip"}
        self._httpx: httpx.Client | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._used = False
        self.url = url
        if urllib.request.getproxies_environment() or parts.scheme not in ("http", "https"):
            # httpx only where it is used: a plain local node, the common case,
            # spares the child its import (~20 ms of every start).
            import httpx

            self._httpx = httpx.Client(timeout=timeout)
            return
        self.target = parts.path or "/"
        if parts.query:
            self.target += "?" + parts.query
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {token}"
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            import httpx

            context = httpx.create_ssl_context()
            self._conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            self._conn = http.client.HTTPConnection(host, port, timeout=timeout)

    @property
    def uses_httpx(self) -> bool:
        """True where a proxy in the environment keeps the request on httpx."""
        return self._httpx is not None

    def post(self, body: bytes) -> tuple[int, bytes]:
        """The answer's status and (inflated) body.

        Raises:
            PostError: No answer: the connection failed, timed out or broke.
        """
        if self._httpx is not None:
            import httpx

            try:
                response = self._httpx.post(self.url, content=body, headers=self.headers)
            except httpx.HTTPError as exc:
                raise PostError(type(exc).__name__) from exc
            return response.status_code, response.content
        conn = self._conn
        assert conn is not None
        reused, self._used = self._used, False
        try:
            try:
                status, content, encoding, keep = _exchange(conn, self.target, body, self.headers)
            except _STALE:
                conn.close()
                if not reused:
                    raise
                status, content, encoding, keep = _exchange(conn, self.target, body, self.headers)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise PostError(type(exc).__name__) from exc
        self._used = keep
        if encoding == "gzip":
            try:
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
            except zlib.error as exc:
                raise PostError("a gzip body that does not inflate") from exc
        elif encoding not in ("", "identity"):
            raise PostError(f"a body in the {encoding!r} encoding, not asked for")
        return status, content

    def close(self) -> None:
        if self._httpx is not None:
            self._httpx.close()
        if self._conn is not None:
            self._conn.close()


def _exchange(
    conn: http.client.HTTPConnection, target: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, str, bool]:
    """One request on ``conn``: status, body as sent, its encoding, and whether to keep ``conn``."""
    conn.request("POST", target, body=body, headers=headers)
    response = conn.getresponse()
    content = response.read()
    if response.will_close:
        conn.close()
    encoding = (response.getheader("Content-Encoding") or "").strip().lower()
    return response.status, content, encoding, not response.will_close
