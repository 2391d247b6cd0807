"""Files of tasks: the file a task was submitted with (``<task_id>-in``) and the file a
completed task made (``<task_id>-out``), described, listed, counted and downloaded.

Files are read from the tasks (store/files.py); who sees one is who sees its task: its owner
or an admin. Anyone else gets the same 404 as for a file that does not exist, and so does a
malformed id. A download streams the bytes from the local store, or redirects (307) to a
presigned URL where the blob store presigns (S3), so the bytes never pass through here.
"""

from __future__ import annotations

from typing import Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from hivescribe.blobs import BlobStore
from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.deps import coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.coordinator.tasks_api import client_principal, owner_of, visible_task
from hivescribe.domain import NotFoundError, ValidationError
from hivescribe.domain.tasks import TaskType
from hivescribe.store import FileView
from hivescribe.store.files import FILE_TYPES, ROLES

__all__ = ["FileInfo", "FileList", "FileStats", "router"]

router = APIRouter(prefix="/api/v1", tags=["files"], responses=errors(401, 403, 404, 413, 422, 429))


class FileInfo(BaseModel):
    file_id: str = Field(description="<task_id>-in (the uploaded file) or <task_id>-out")
    task_id: str
    task_type: str
    role: Literal["input", "output"]
    file_type: Literal["audio", "video", "document", "image"]
    filename: str = Field(description="The stored file's name (reduced to [A-Za-z0-9._-])")
    content_type: str
    size_bytes: int | None = Field(description="None where the store does not record it")
    sha256: str | None = Field(description="The SHA-256 of the bytes, where known")
    created_at: float = Field(description="Uploaded (inputs) or delivered (outputs), epoch s")
    download_url: str = Field(description="Where GET answers the bytes")


class FileList(BaseModel):
    file_type: str
    files: list[FileInfo]
    total: int = Field(description="How many files of this type the caller may see")
    limit: int
    offset: int


class RoleFigures(BaseModel):
    count: int
    bytes: int


class TypeFigures(BaseModel):
    count: int
    bytes: int
    input: RoleFigures
    output: RoleFigures


class FileStats(BaseModel):
    scope: Literal["own", "all"] = Field(description="The caller's files, or everyone's (admin)")
    total_files: int
    total_bytes: int
    by_type: dict[str, TypeFigures] = Field(description="audio, video, document and image")


def _info(view: FileView) -> FileInfo:
    return FileInfo(
        file_id=view.file_id,
        task_id=view.task_id,
        task_type=view.task_type,
        role=view.role,
        file_type=view.file_type,
        filename=view.filename,
        content_type=view.content_type,
        size_bytes=view.size_bytes,
        sha256=view.sha256,
        created_at=view.created_at,
        download_url=f"/api/v1/files/{view.file_id}/download",
    )


def _scope(principal: Principal) -> str | None:
    """Whose files the caller sees: None (everyone's) for an admin."""
    return None if Role.ADMIN in principal.roles else owner_of(principal)


async def _visible(request: Request, principal: Principal, file_id: str) -> FileView:
    """The file, when the caller may see it; otherwise the same 404 as for no file at all."""
    view = None
    if len(file_id) <= 64:
        view = await to_thread.run_sync(coordinator(request).store.files.get, file_id)
    owner = _scope(principal)
    if view is None or (owner is not None and view.owner != owner):
        raise NotFoundError(
            f"no file {file_id[:64]!r} (a file id is <task_id>-in or <task_id>-out, of a task "
            "of yours that still exists and has that file)"
        )
    return view


@router.get("/files/stats", summary="How many task files, and bytes, per file type and role")
async def file_stats(
    request: Request, principal: Principal = Depends(client_principal)
) -> FileStats:
    files = coordinator(request).store.files
    owner = _scope(principal)
    counts = await to_thread.run_sync(lambda: files.stats(owner))
    by_type = {}
    for file_type in FILE_TYPES:
        mine = [c for c in counts if c.file_type == file_type]
        roles = {c.role: RoleFigures(count=c.count, bytes=c.bytes) for c in mine}
        by_type[file_type] = TypeFigures(
            count=sum(r.count for r in roles.values()),
            bytes=sum(r.bytes for r in roles.values()),
            input=roles.get(ROLES[0], RoleFigures(count=0, bytes=0)),
            output=roles.get(ROLES[1], RoleFigures(count=0, bytes=0)),
        )
    return FileStats(
        scope="all" if owner is None else "own",
        total_files=sum(t.count for t in by_type.values()),
        total_bytes=sum(t.bytes for t in by_type.values()),
        by_type=by_type,
    )


@router.get(
    "/files/list/{file_type}",
    summary="The caller's files of one type (an admin's: everyone's), newest first",
    responses=errors(400, e400="file_type is not audio, video, document or image"),
)
async def list_files(
    file_type: str,
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    principal: Principal = Depends(client_principal),
) -> FileList:
    wanted = file_type.strip().lower()
    if wanted not in FILE_TYPES:
        raise ValidationError(
            f"file_type must be one of {', '.join(FILE_TYPES)}, not {file_type[:64]!r}"
        )
    files = coordinator(request).store.files
    owner = _scope(principal)
    views, total = await to_thread.run_sync(
        lambda: files.list(owner=owner, file_type=wanted, limit=limit, offset=offset)
    )
    return FileList(
        file_type=wanted, files=[_info(v) for v in views], total=total, limit=limit, offset=offset
    )


@router.get("/files/{file_id}", summary="A file's metadata (its bytes: /download)")
async def file_info(
    file_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> FileInfo:
    return _info(await _visible(request, principal, file_id))


@router.get(
    "/files/{file_id}/download",
    summary="A file's bytes (307 to a presigned URL where the blob store presigns)",
    response_model=None,
    responses={200: {"content": {"*/*": {}}}, 307: {"description": "To a presigned URL"}},
)
async def download_file(
    file_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> Response:
    view = await _visible(request, principal, file_id)
    return await _serve(coordinator(request).blobs, view, "attachment")


@router.get(
    "/tts/audio/{file_id}",
    summary="The audio a tts task made (file id <task_id>-out), to play",
    response_model=None,
    responses={200: {"content": {"audio/*": {}}}, 307: {"description": "To a presigned URL"}},
)
async def tts_audio(
    file_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> Response:
    view = await _visible(request, principal, file_id)
    if view.role != "output" or view.task_type != TaskType.TTS.value:
        raise NotFoundError(
            f"{file_id[:64]!r} is not the audio of a tts task: ask for <task_id>-out of one"
        )
    return await _serve(coordinator(request).blobs, view, "inline")


@router.get(
    "/task/{task_id}/file",
    summary="The output file of a completed task (as /files/<task_id>-out/download)",
    response_model=None,
    responses={200: {"content": {"*/*": {}}}, 307: {"description": "To a presigned URL"}},
)
async def task_file(
    task_id: str, request: Request, principal: Principal = Depends(client_principal)
) -> Response:
    await visible_task(request, principal, task_id)  # else the tasks' own 404
    try:
        view = await _visible(request, principal, f"{task_id}-out")
    except NotFoundError:
        raise NotFoundError(f"task {task_id!r} has no output file") from None
    return await _serve(coordinator(request).blobs, view, "attachment")


async def _serve(blobs: BlobStore, view: FileView, disposition: str) -> Response:
    gone = NotFoundError(
        f"the {view.role} file of task {view.task_id!r} is gone from storage "
        "(its retention period may have passed)"
    )
    if blobs.presigns:
        if await blobs.stat(view.key) is None:
            raise gone
        url = blobs.presign_get(view.key)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    try:
        local = blobs.local_path(view.key)
    except NotFoundError:
        raise gone from None
    if local is not None:
        return FileResponse(
            local,
            media_type=view.content_type,
            filename=view.filename,
            content_disposition_type=disposition,
        )
    size = await blobs.stat(view.key)
    if size is None:
        raise gone
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'{disposition}; filename="{view.filename}"',
    }
    return StreamingResponse(blobs.open(view.key), media_type=view.content_type, headers=headers)
