"""The worker protocol's messages, shared by the WebSocket and HTTP transports.

Over WebSocket each message has ``type`` and (except ``auth``) an ``id`` that the reply echoes,
so a worker may have a long-polling claim and a result submission in flight at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WorkerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Token = Annotated[str, Field(min_length=1, max_length=128)]
RequestId = int | Annotated[str, Field(max_length=64)]
ItemId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # a BIGINT id
MAX_REFS = 10_000


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Capabilities(BaseModel):
    """What a worker can do; extra keys (languages, gpu name, ...) are kept as sent."""

    model_config = ConfigDict(extra="allow")

    tasks: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    models: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=256
    )
    batch_size: int = Field(1, ge=1, le=100_000)


class LeaseRefIn(_Msg):
    item_id: ItemId
    token: Token


class ResultBody(_Msg):
    item_id: ItemId
    token: Token
    output: dict[str, Any]
    text: str | None = None
    model: str | None = Field(None, max_length=300)
    quality_score: float | None = None
    blob_key: str | None = Field(None, max_length=1000)
    started_at: float | None = None
    finished_at: float | None = None


class ProgressBody(_Msg):
    """How far a worker is with an item it holds. Not stored: the coordinator keeps the latest
    per item in memory for the task's owner to watch (coordinator/progress.py)."""

    item_id: ItemId
    token: Token
    percent: float = Field(ge=0, le=100, strict=True, allow_inf_nan=False)
    step: str = Field(min_length=1, max_length=64)  # "fetching input", "running whisper", ...
    details: str | None = Field(None, max_length=500)


class FailureBody(_Msg):
    item_id: ItemId
    token: Token
    error: str = Field(max_length=10_000)
    permanent: bool = False


# -- WebSocket messages ---------------------------------------------------------------------


class AuthMsg(_Msg):
    type: Literal["auth"]
    token: str = Field(max_length=1024)
    worker_id: WorkerId
    name: str = Field(min_length=1, max_length=200)
    capabilities: Capabilities = Field(default_factory=Capabilities)


class ClaimMsg(_Msg):
    type: Literal["claim"]
    id: RequestId
    max_items: int = Field(ge=1)
    wait_s: float = Field(0.0, ge=0, le=300)


class HeartbeatMsg(_Msg):
    type: Literal["heartbeat"]
    id: RequestId
    leases: list[LeaseRefIn] = Field(max_length=MAX_REFS)


class ResultsMsg(_Msg):
    type: Literal["results"]
    id: RequestId
    results: list[ResultBody] = Field(max_length=MAX_REFS)


class FailMsg(_Msg):
    type: Literal["fail"]
    id: RequestId
    failures: list[FailureBody] = Field(max_length=MAX_REFS)


class ReleaseMsg(_Msg):
    type: Literal["release"]
    id: RequestId
    leases: list[LeaseRefIn] = Field(max_length=MAX_REFS)
    reason: str = Field("released by worker", max_length=1000)


class ProgressMsg(_Msg):
    """Answered by ``progress_ack`` with the item ids ``accepted`` and ``stale``."""

    type: Literal["progress"]
    id: RequestId
    updates: list[ProgressBody] = Field(max_length=MAX_REFS)


class UploadBody(_Msg):
    """A worker asks where to upload an output file of an item it holds a live lease on.
    The answer: ``{"blob_key", "url", "method": "PUT", "headers", "expires_in_s"}``; the
    worker sends exactly ``size`` bytes hashing to ``sha256`` there with those headers, then
    submits the result with that ``blob_key``."""

    item_id: ItemId
    token: Token
    filename: str = Field(min_length=1, max_length=1000)
    size: int = Field(ge=0, le=2**63 - 1)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class UploadMsg(UploadBody):
    """``upload`` over WebSocket, answered by ``upload_ack``."""

    type: Literal["upload"]
    id: RequestId


WorkerMsg = Annotated[
    ClaimMsg | HeartbeatMsg | ResultsMsg | FailMsg | ReleaseMsg | UploadMsg | ProgressMsg,
    Field(discriminator="type"),
]


class WorkerEnvelope(BaseModel):
    msg: WorkerMsg


# -- HTTP bodies ------------------------------------------------------------------------------


class HttpClaim(_Msg):
    worker_id: WorkerId
    name: str = Field(min_length=1, max_length=200)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    max_items: int = Field(ge=1)
    wait_s: float = Field(0.0, ge=0, le=300)


class HttpHeartbeat(_Msg):
    worker_id: WorkerId
    leases: list[LeaseRefIn] = Field(max_length=MAX_REFS)


class HttpResults(_Msg):
    worker_id: WorkerId
    results: list[ResultBody] = Field(max_length=MAX_REFS)


class HttpFail(_Msg):
    worker_id: WorkerId
    failures: list[FailureBody] = Field(max_length=MAX_REFS)


class HttpRelease(_Msg):
    worker_id: WorkerId
    leases: list[LeaseRefIn] = Field(max_length=MAX_REFS)
    reason: str = Field("released by worker", max_length=1000)


class HttpProgress(_Msg):
    worker_id: WorkerId
    updates: list[ProgressBody] = Field(max_length=MAX_REFS)


class HttpUpload(UploadBody):
    """POST /api/v1/worker/uploads."""

    worker_id: WorkerId
