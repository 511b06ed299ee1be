"""The service's API key: where a client may send it, checked in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

__all__ = ["authorized"]


def authorized(connection: HTTPConnection, api_key: str, *, query: bool = False) -> bool:
    """Whether ``connection`` (a request or a WebSocket) carries ``api_key``: as ``X-API-Key``,
    as ``Authorization: Bearer``, or (``query``: for browsers' WebSockets, which cannot set
    headers) as the ``key`` query parameter."""
    given = connection.headers.get("x-api-key")
    if given is None and query:
        given = connection.query_params.get("key")
    if given is None:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    return given is not None and hmac.compare_digest(given.encode(), api_key.encode())
