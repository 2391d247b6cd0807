"""Coordinator URLs and TLS settings, shared by the client and the worker."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit, urlunsplit

WS_PATH = "/api/v1/worker/ws"


def http_base(server: str) -> str:
    """The http(s) base URL of a ws(s):// or http(s):// server URL."""
    parts = urlsplit(server)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.removesuffix(WS_PATH).rstrip("/")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def ssl_context(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:  # --no-verify-ssl: accept a self-signed certificate
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
