"""Webhook signatures: how a receiver knows a callback came from this coordinator, unchanged
and recently.

Each delivery is a ``POST`` of a JSON body with these headers:

    X-Hivescribe-Event:      task.completed | task.failed | task.cancelled
    X-Hivescribe-Delivery:   a fresh id per delivery (the same across its retries)
    X-Hivescribe-Timestamp:  Unix seconds when this attempt was signed
    X-Hivescribe-Signature:  v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes with its
secret, compares in constant time, and refuses timestamps older than a few minutes (replays).
``verify`` does exactly that, for receivers written in Python.

Each account has its own secret (GET /api/v1/webhooks/secret), derived from the coordinator's
signing key, so no account can sign as another and nothing secret is stored per account.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

EVENT_HEADER = "X-Hivescribe-Event"
DELIVERY_HEADER = "X-Hivescribe-Delivery"
TIMESTAMP_HEADER = "X-Hivescribe-Timestamp"
SIGNATURE_HEADER = "X-Hivescribe-Signature"
SCHEME = "v1"
TOLERANCE_S = 300  # a receiver refuses a signature older (or newer) than this


def account_secret(signing_key: bytes, owner: str) -> str:
    """The webhook secret of the account (or config token) that owns a task."""
    digest = hmac.new(signing_key, b"hivescribe-webhook:" + owner.encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Hivescribe-Signature`` value for ``body`` signed at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: str, event: str, delivery_id: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` carry a valid, fresh signature of ``body`` made with ``secret``.
    Header names are matched without regard to case."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or not given:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)
