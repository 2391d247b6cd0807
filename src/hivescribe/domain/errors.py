"""The exception tree. Every error hivescribe raises on purpose derives from one root.

    HivescribeError                  500  something we did not expect
    ├── ValidationError              400  the request or input is malformed or names unknown things
    ├── AuthError                    401  missing or wrong credentials
    ├── ForbiddenError               403  known caller, not allowed to do this
    ├── NotFoundError                404  no such job, item or worker (or not yours)
    ├── ConflictError                409  the state changed under you (a lost race)
    │   └── LeaseLostError           409  the lease token is no longer live
    ├── PayloadTooLargeError         413  a message or upload over the configured limit
    └── TooManyRequestsError         429  over a limit that lifts with time (active tasks)

The coordinator maps these to HTTP status codes in exactly one exception handler, using
``status_code``; WebSocket handlers send the same code and ``detail`` in an error message.
"""

from __future__ import annotations


class HivescribeError(Exception):
    """Root of every deliberate hivescribe error."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationError(HivescribeError):
    """Input that can never succeed as sent: fix the input, do not retry."""

    status_code = 400


class AuthError(HivescribeError):
    """Missing or wrong token. The message never repeats the token."""

    status_code = 401


class ForbiddenError(HivescribeError):
    """The caller is known but its role does not allow this."""

    status_code = 403


class NotFoundError(HivescribeError):
    status_code = 404


class ConflictError(HivescribeError):
    status_code = 409


class LeaseLostError(ConflictError):
    """The lease expired, was released, or belongs to someone else."""


class PayloadTooLargeError(HivescribeError):
    status_code = 413


class TooManyRequestsError(HivescribeError):
    """Over a limit that lifts by itself (a task finishing): try again later."""

    status_code = 429
