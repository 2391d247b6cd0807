"""Tasks for users: submit one input per request (the violet proxy's forms), then follow it.

A task is a job with one item, owned by the caller: an account by its user id, a config admin
token by its name. Accounts holding the user or admin role may submit; a user sees only their
own tasks, an admin sees everyone's, and a task that is not the caller's answers 404 exactly
as one that does not exist. A result asked for before the task has finished is a 409, so a
404 always means "no such task".

Besides the task type's checked parameters, a task's job params carry ``model_id`` (the
registered model asked for), ``callback_url`` when one was given, and ``source_language`` for
summarization and captioning (whose parameters have no language); backends ignore them.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile

from hivescribe.backends import registry
from hivescribe.blobs import task_input_key
from hivescribe.coordinator.auth import Principal, Role, bearer_token
from hivescribe.coordinator.deps import Coordinator, coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.coordinator.webhooks import check_callback_url
from hivescribe.domain import (
    ConflictError,
    ItemStatus,
    NotFoundError,
    TaskType,
    ValidationError,
    languages,
)
from hivescribe.domain.filetypes import HEAD_BYTES, FileKind, check_kind
from hivescribe.domain.inputs import MAX_INLINE_TEXT, check_params
from hivescribe.domain.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    account_secret,
)
from hivescribe.store.tasks import TaskView

__all__ = [
    "PRIORITIES",
    "ROUTES",
    "UPLOAD_PATHS",
    "response_body",
    "router",
    "status_body",
    "visible_task",
]

# Every route: 401 without credentials, 403 for a key with neither the user nor the admin
# role, 413, 422, and 429 over the rate limit (a submission: over max_active_per_user too).
router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=errors(401, 403, 413, 422, 429))
SUBMIT_ERRORS = errors(
    400,
    e400="A value this task type refuses (language, priority, model_id, callback_url, an "
    "empty text, a file not of the kind expected), or a body that cannot be parsed",
)
NO_TASK = errors(404, e404="No such task, or not the caller's")
NOT_YET = errors(409, e409="The task has not completed (or it failed)")

# The API's path for each task type (captioning is the caption task).
ROUTES: dict[str, TaskType] = {
    "transcription": TaskType.TRANSCRIPTION,
    "video-transcription": TaskType.VIDEO_TRANSCRIPTION,
    "tts": TaskType.TTS,
    "summarization": TaskType.SUMMARIZATION,
    "text-translation": TaskType.TEXT_TRANSLATION,
    "document-translation": TaskType.DOCUMENT_TRANSLATION,
    "captioning": TaskType.CAPTION,
}
ROUTE_OF = {task_type.value: route for route, task_type in ROUTES.items()}
# The submissions that carry a file: their bodies may be up to max_upload_bytes (app.py's
# app.BodyLimit counts their bodies against that, plus room for the form fields).
UPLOAD_PATHS = tuple(
    f"/api/v1/{route}"
    for route in ("transcription", "video-transcription", "document-translation", "captioning")
)
# Queue priorities: the claim order is higher first, FIFO within one.
PRIORITIES = {"low": -10, "normal": 0, "high": 10, "urgent": 20}
PRIORITY_NAMES = {value: name for name, value in PRIORITIES.items()}
# Added to the rank of an admin's tasks (orchestrator.tasks.admin_first): claimed before
# everyone else's, whatever priority those name.
ADMIN_BOOST = 100
# The name of the main result in GET /api/v1/{type}/{task_id}/result, per path.
RESULT_KEYS = {
    "transcription": "transcript",
    "video-transcription": "transcript",
    "tts": "audio_url",
    "summarization": "summary",
    "text-translation": "translated_text",
    "document-translation": "translated_text",
    "captioning": "caption",
}
TASK_ID = re.compile(r"^[0-9a-f]{32}$")
TERMINAL = ("completed", "failed", "cancelled")
CHUNK_BYTES = 1024 * 1024


async def client_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal:
    """An account with the user or admin role, or a config admin token."""
    token = bearer_token(authorization, x_api_key)
    return await coordinator(request).auth.require_async(token, Role.USER, Role.ADMIN)


def owner_of(principal: Principal) -> str:
    """What jobs.owner holds for the caller's tasks: an account's id, a config token's name."""
    return principal.user_id or principal.name


# -- submission -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """Who submits, and the form fields every task type takes."""

    coord: Coordinator
    principal: Principal
    model_id: str | None
    priority: str
    callback_url: str | None


async def submission(
    request: Request,
    model_id: str | None = Form(None),
    priority: str = Form("normal"),
    callback_url: str | None = Form(None),
    principal: Principal = Depends(client_principal),
) -> Submission:
    return Submission(coordinator(request), principal, model_id, priority, callback_url)


@router.post(
    "/transcription",
    status_code=201,
    responses=SUBMIT_ERRORS,
    summary="Submit an audio file to transcribe",
)
async def submit_transcription(
    audio_file: UploadFile = File(..., description="the audio (or a video with sound)"),
    source_language: str | None = Form(None, description="the spoken language; auto detects"),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params = _speech_params(source_language)
    return await _submit_file(
        sub, TaskType.TRANSCRIPTION, audio_file, "audio_file", FileKind.AUDIO, params
    )


@router.post(
    "/video-transcription",
    status_code=201,
    responses=SUBMIT_ERRORS,
    summary="Submit a video to transcribe",
)
async def submit_video_transcription(
    video_file: UploadFile = File(...),
    source_language: str | None = Form(None, description="the spoken language; auto detects"),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params = _speech_params(source_language)
    return await _submit_file(
        sub, TaskType.VIDEO_TRANSCRIPTION, video_file, "video_file", FileKind.VIDEO, params
    )


@router.post("/tts", status_code=201, responses=SUBMIT_ERRORS, summary="Submit text to speak")
async def submit_tts(
    text: str = Form(...),
    source_language: str | None = Form(None, description="the language of the text"),
    voice_name: str | None = Form(
        None,
        description="a registered voice (hivescribe models --task tts) is asked of the worker; "
        "any other name is kept with the task, and the worker speaks with its own voice",
    ),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if voice_name and voice_name.strip():
        voice = check_params(TaskType.TTS, {"voice": voice_name.strip()})["voice"]
        if registry.find(TaskType.TTS.value, voice) is not None:
            params["voice"] = voice
        else:  # a voice of another service (the spec's english_alice): noted, not required
            extra["voice_name"] = voice
    if source_language:
        params["language"] = _language(source_language, "source_language")
    return await _submit_text(sub, TaskType.TTS, text, params, extra=extra)


@router.post(
    "/summarization", status_code=201, responses=SUBMIT_ERRORS, summary="Submit text to summarize"
)
async def submit_summarization(
    text: str = Form(...),
    source_language: str | None = Form(None),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    extra = _language_extra(source_language)
    return await _submit_text(sub, TaskType.SUMMARIZATION, text, {}, extra=extra)


@router.post(
    "/text-translation",
    status_code=201,
    responses=SUBMIT_ERRORS,
    summary="Submit text to translate",
)
async def submit_text_translation(
    text: str = Form(...),
    source_language: str = Form(...),
    target_language: str = Form(...),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params = {"source_language": source_language, "target_language": target_language}
    return await _submit_text(sub, TaskType.TEXT_TRANSLATION, text, params)


@router.post(
    "/document-translation",
    status_code=201,
    responses=SUBMIT_ERRORS,
    summary="Submit a document to translate",
)
async def submit_document_translation(
    document_file: UploadFile = File(..., description="PDF, DOCX, HTML, text or Markdown"),
    source_language: str = Form(...),
    target_language: str = Form(...),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params = {"source_language": source_language, "target_language": target_language}
    return await _submit_file(
        sub,
        TaskType.DOCUMENT_TRANSLATION,
        document_file,
        "document_file",
        FileKind.DOCUMENT,
        params,
    )


@router.post(
    "/captioning", status_code=201, responses=SUBMIT_ERRORS, summary="Submit an image to caption"
)
async def submit_captioning(
    image_file: UploadFile = File(...),
    prompt: str | None = Form(None, description="what to ask about the image"),
    source_language: str | None = Form(None),
    sub: Submission = Depends(submission),
) -> dict[str, Any]:
    params = {"prompt": prompt} if prompt else {}
    return await _submit_file(
        sub,
        TaskType.CAPTION,
        image_file,
        "image_file",
        FileKind.IMAGE,
        params,
        extra=_language_extra(source_language),
    )


def _speech_params(source_language: str | None) -> dict[str, Any]:
    if not source_language or source_language.strip().lower() == "auto":
        return {}
    return {"language": _language(source_language, "source_language")}


def _language(value: str, field: str) -> str:
    try:
        return languages.normalize(value.strip())
    except ValidationError as exc:
        raise ValidationError(f"{field}: {exc.detail}") from None


def _language_extra(source_language: str | None) -> dict[str, Any]:
    if not source_language:
        return {}
    return {"source_language": _language(source_language, "source_language")}


async def _submit_text(
    sub: Submission,
    task_type: TaskType,
    text: str,
    params: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not text.strip():
        raise ValidationError("text is empty")
    if len(text) > MAX_INLINE_TEXT:
        raise ValidationError(f"text is limited to {MAX_INLINE_TEXT} characters")
    checked, rank = await _checked(sub, task_type, params, extra)
    return await _create(sub, task_type, {"text": text}, checked, rank, uuid.uuid4().hex)


async def _submit_file(
    sub: Submission,
    task_type: TaskType,
    upload: UploadFile,
    field: str,
    kind: FileKind,
    params: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything is checked before the bytes are stored: a refused task stores nothing. The
    file is the task's own (``tasks/<task_id>/<name>``), so retention can delete it."""
    coord = sub.coord
    checked, rank = await _checked(sub, task_type, params, extra)
    head = await upload.read(HEAD_BYTES)
    check_kind(head, kind, field)

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        while chunk := await upload.read(CHUNK_BYTES):
            yield chunk

    task_id = uuid.uuid4().hex
    key = task_input_key(task_id, upload.filename)
    stored = await coord.blobs.put_stream(chunks(), coord.config.max_upload_bytes, key=key)
    name = key.rsplit("/", 1)[1]
    checked["input_file"] = {
        "name": name,
        "kind": kind.value,
        "size": stored.size,
        "sha256": stored.sha256,
        "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
    }
    try:
        return await _create(sub, task_type, {"blob": stored.key}, checked, rank, task_id)
    except BaseException:
        await coord.blobs.delete(stored.key)  # no task holds it
        raise


async def _checked(
    sub: Submission, task_type: TaskType, params: dict[str, Any], extra: dict[str, Any] | None
) -> tuple[dict[str, Any], int]:
    """The job params (checked, plus the API's keys) and the queue priority."""
    rank = PRIORITIES.get(sub.priority.strip().lower())
    if rank is None:
        raise ValidationError(
            f"priority must be one of {', '.join(PRIORITIES)}, not {sub.priority!r}"
        )
    model = _model(task_type, sub.model_id)
    checked = check_params(task_type, {k: v for k, v in params.items() if v is not None})
    checked = {**checked, **(extra or {}), "model_id": model}
    if sub.callback_url:  # resolving the host may block: in a thread
        allow_private = sub.coord.config.webhooks.allow_private
        checked["callback_url"] = await to_thread.run_sync(
            lambda: check_callback_url(sub.callback_url or "", allow_private=allow_private)
        )
    checked["priority"] = PRIORITY_NAMES[rank]
    if Role.ADMIN in sub.principal.roles and sub.coord.config.tasks.admin_first:
        rank += ADMIN_BOOST
    return checked, rank


def _model(task_type: TaskType, model_id: str | None) -> str | None:
    """The registered id ``model_id`` names (an alias gives its target); without one, the task
    type's default model, or None (any) where it has none. Local paths and endpoints are a
    worker's business, not a user's."""
    if not model_id:
        return next((m.id for m in registry.models_for(task_type.value) if m.default), None)
    found = registry.find(task_type.value, model_id.strip())
    if found is None:
        known = ", ".join(m.id for m in registry.models_for(task_type.value))
        raise ValidationError(f"unknown model_id {model_id!r} for {task_type.value}; use {known}")
    return found.id


async def _create(
    sub: Submission,
    task_type: TaskType,
    source: dict[str, Any],
    params: dict[str, Any],
    rank: int,
    task_id: str,
) -> dict[str, Any]:
    admin = Role.ADMIN in sub.principal.roles
    tasks = sub.coord.store.tasks
    created = await to_thread.run_sync(
        lambda: tasks.create(
            task_id=task_id,
            task_type=task_type.value,
            owner=owner_of(sub.principal),
            params=params,
            priority=rank,
            input=source,
            max_active=None if admin else sub.coord.config.tasks.max_active_per_user,
            callback_url=params.get("callback_url"),
        )
    )
    sub.coord.service.notify_work()
    return {
        "task_id": created,
        "task_type": task_type.value,
        "status": "pending",
        "priority": params["priority"],
        "model_id": params.get("model_id"),
    }


# -- status and results -----------------------------------------------------------------------


async def visible_task(request: Request, principal: Principal, task_id: str) -> TaskView:
    """The task, when the caller may see it; otherwise the same 404 as for no task at all."""
    view = None
    if TASK_ID.match(task_id):
        view = await to_thread.run_sync(coordinator(request).store.tasks.get, task_id)
    if view is None or not (Role.ADMIN in principal.roles or view.owner == owner_of(principal)):
        raise NotFoundError(f"no task {task_id[:64]!r}")
    return view


def status_body(view: TaskView) -> dict[str, Any]:
    return {
        "task_id": view.id,
        "task_type": view.task_type,
        "status": view.status,
        "priority": view.params.get("priority") or PRIORITY_NAMES.get(view.priority, "normal"),
        "model_id": view.params.get("model_id"),
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "error": view.error,
    }


def _file_url(view: TaskView) -> str | None:
    if view.result is None or not view.result.blob_key:
        return None
    if view.task_type == TaskType.TTS.value:  # to play: served inline
        return f"/api/v1/tts/audio/{view.id}-out"
    return f"/api/v1/files/{view.id}-out/download"


def response_body(view: TaskView) -> dict[str, Any]:
    result = view.result
    assert result is not None
    started, finished = result.started_at, result.finished_at
    return {
        "text": result.text,
        "output": result.output,
        "model": result.model,
        "worker_id": result.worker_id,
        "contributor": result.contributor_id,
        "started_at": started,
        "finished_at": finished,
        "duration_s": finished - started if started is not None and finished is not None else None,
        "received_at": result.created_at,
        "file_url": _file_url(view),
    }


@router.get("/task/{task_id}/status", summary="A task's status", responses=NO_TASK)
async def task_status(
    task_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> dict[str, Any]:
    return status_body(await visible_task(request, principal, task_id))


@router.get(
    "/task/{task_id}/responses",
    summary="A task's results, with who made them and when",
    responses=NO_TASK,
)
async def task_responses(
    task_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> dict[str, Any]:
    view = await visible_task(request, principal, task_id)
    responses = [response_body(view)] if view.result is not None else []
    return {**status_body(view), "responses": responses}


@router.post(
    "/task/{task_id}/cancel",
    summary="Cancel a task that has not finished",
    responses={**NO_TASK, **errors(409, e409="The task has already finished")},
)
async def cancel_task(
    task_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> dict[str, Any]:
    view = await visible_task(request, principal, task_id)
    if view.status in TERMINAL:
        raise ConflictError(f"task {task_id!r} is already {view.status}")
    store = coordinator(request).store
    await to_thread.run_sync(store.queue.cancel_job, task_id)
    return status_body(await visible_task(request, principal, task_id))


@router.get(
    "/task/{task_id}/webhook",
    summary="The deliveries of a task's callback, and how they went",
    responses=NO_TASK,
)
async def task_webhook(
    task_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> dict[str, Any]:
    view = await visible_task(request, principal, task_id)
    found = await to_thread.run_sync(coordinator(request).store.webhooks.for_task, view.id)
    deliveries = [
        {
            "delivery_id": d.id,
            "url": d.url,
            "state": d.state,
            "event": d.event,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at if d.state == "pending" else None,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "delivered_at": d.delivered_at,
        }
        for d in found
    ]
    return {"task_id": view.id, "deliveries": deliveries}


@router.get("/webhooks/secret", summary="The secret that signs your tasks' callbacks")
async def webhook_secret(
    request: Request, principal: Principal = Depends(client_principal)
) -> dict[str, Any]:
    """Receivers check X-Hivescribe-Signature with it (docs/reference/webhooks.md)."""
    secret = account_secret(coordinator(request).webhook_key, owner_of(principal))
    return {
        "secret": secret,
        "scheme": "v1=HMAC-SHA256(secret, '<X-Hivescribe-Timestamp>.<body>')",
        "headers": [EVENT_HEADER, DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER],
    }


def _result_endpoint(route: str) -> Callable[..., Any]:
    key = RESULT_KEYS[route]

    async def result(
        task_id: str, request: Request, principal: Principal = Depends(client_principal)
    ) -> dict[str, Any]:
        view = await visible_task(request, principal, task_id)
        if ROUTE_OF.get(view.task_type) != route:
            raise NotFoundError(
                f"task {task_id!r} is a {view.task_type} task: its result is at "
                f"/api/v1/{ROUTE_OF.get(view.task_type, view.task_type)}/{task_id}/result"
            )
        if view.status == "failed":
            raise ConflictError(f"task {task_id!r} failed: {view.error or 'no reason given'}")
        if view.status != "completed" or view.result is None:
            raise ConflictError(
                f"task {task_id!r} is {view.status}: no result yet "
                f"(see /api/v1/task/{task_id}/status)"
            )
        response = response_body(view)
        main = response["file_url"] if key == "audio_url" else response["text"]
        return {**status_body(view), key: main, **response}

    return result


for _route in ROUTES:
    router.add_api_route(
        f"/{_route}/{{task_id}}/result",
        _result_endpoint(_route),
        methods=["GET"],
        responses={**NO_TASK, **NOT_YET},
        summary=f"The result of a {_route} task (409 until it has completed)",
    )


# -- listings ---------------------------------------------------------------------------------


async def _page(
    request: Request, principal: Principal, status: str | None, limit: int, offset: int
) -> dict[str, Any]:
    owner = None if Role.ADMIN in principal.roles else owner_of(principal)
    store = coordinator(request).store
    views, total = await to_thread.run_sync(
        lambda: store.tasks.list(owner=owner, status=status, limit=limit, offset=offset)
    )
    return {
        "tasks": [status_body(v) for v in views],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/tasks", summary="The caller's tasks (an admin's: everyone's), newest first")
async def list_tasks(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    principal: Principal = Depends(client_principal),
) -> dict[str, Any]:
    return await _page(request, principal, None, limit, offset)


@router.get("/tasks/completed", summary="The caller's completed tasks, newest first")
async def list_completed_tasks(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    principal: Principal = Depends(client_principal),
) -> dict[str, Any]:
    return await _page(request, principal, ItemStatus.DONE.value, limit, offset)
