"""Files exchanged with chargers (`ChargerFilesService`): the locations chargers download firmware
from and upload logs to, named by a token alone (firmware sends no credentials there), and the
operator's side: publishing an image, asking a charger for its log or to update, and reading
what arrived."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidRequest
from chargeshare.entrypoints.api.deps import Admin, AppDep, IdPath, RegistryDep
from chargeshare.entrypoints.api.routes_admin_commands import MAX_WAIT_S, CommandResultOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.ocpp import file_commands as files
from chargeshare.ocpp.command_names import result_json
from chargeshare.services.charger_files import MAX_FILE_BYTES
from chargeshare.services.records import ChargerFile

Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
OCTETS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
        }
    }
}


class FileOut(BaseModel):
    token: str
    url: str = Field(description="where chargers reach it")
    kind: str = Field(description="firmware | log")
    charge_point_id: str | None
    name: str
    size: int | None = Field(description="bytes; None while an upload is awaited")
    sha256: str | None
    created_at: datetime
    received_at: datetime | None


class LogIn(BaseModel):
    log_type: files.LogType = files.LogType.DIAGNOSTICS
    request_id: int = Field(default=1, ge=0, le=2**31 - 1)
    timeout_s: float = Field(default=30.0, gt=0, le=MAX_WAIT_S)


class FirmwareIn(BaseModel):
    token: str = Field(min_length=16, max_length=64, description="a published image's token")
    retrieve_at: datetime | None = Field(default=None, description="not before then (default: now)")
    request_id: int = Field(default=1, ge=0, le=2**31 - 1)
    timeout_s: float = Field(default=30.0, gt=0, le=MAX_WAIT_S)


class SentOut(BaseModel):
    command: CommandResultOut
    file: FileOut


def _base(app: App, request: Request) -> str:
    """Where chargers reach this backend: CHARGESHARE_PUBLIC_URL, else the address this request used."""
    configured = app.config.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _out(f: ChargerFile, base: str) -> FileOut:
    return FileOut(
        token=f.token,
        url=f"{base}/files/{f.token}",
        kind=f.kind,
        charge_point_id=f.charge_point_id,
        name=f.name,
        size=f.size,
        sha256=f.sha256,
        created_at=f.created_at,
        received_at=f.received_at,
    )


MULTIPART_ENVELOPE = 64 * 1024  # a form's boundaries, headers and small fields, beside its file
TOO_BIG = f"a file is at most {MAX_FILE_BYTES:,} bytes"


async def _body(request: Request) -> bytes:
    """The raw body, or a multipart form's first file. The whole body is bounded as it arrives
    (whatever Content-Length says, and without one), and only then parsed."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = media == "multipart/form-data"
    most = MAX_FILE_BYTES + (MULTIPART_ENVELOPE if multipart else 0)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most:
        raise InvalidRequest(TOO_BIG)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > most:
            raise InvalidRequest(TOO_BIG)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not multipart:
        return body
    request._body = body  # parsed from memory: the stream has been read
    form = await request.form(max_files=1, max_fields=10, max_part_size=MULTIPART_ENVELOPE)
    for value in form.values():
        if not isinstance(value, str):
            return await value.read()
    raise InvalidRequest("a multipart upload without a file")


def _disposition(name: str) -> str:
    """An attachment's name, safe in a header: ASCII as is, anything else as RFC 5987 says."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


# What chargers reach: a firmware image to download, a location to upload a log to.
charger_router = APIRouter(tags=["files"], route_class=StrictJsonRoute)


@charger_router.get("/files/{token}", responses=OCTETS, response_class=Response)
def download(app: AppDep, token: Token) -> Response:
    """A published firmware image, for the charger told its URL."""
    f, content = app.files.firmware_image(token)
    headers = {"Content-Disposition": _disposition(f.name), "ETag": f'"{f.sha256}"'}
    return Response(content, media_type="application/octet-stream", headers=headers)


async def upload(app: AppDep, token: Token, request: Request) -> FileOut:
    # Off the event loop (it serves every charger): the lookup, the digest, the write.
    await asyncio.to_thread(app.files.awaiting_upload, token)  # before reading a byte of it
    content = await _body(request)
    received = await asyncio.to_thread(app.files.receive, token, content)
    return _out(received, _base(app, request))


for method in ("PUT", "POST"):  # chargers use either
    charger_router.add_api_route(
        "/files/{token}",
        upload,
        methods=[method],
        status_code=201,
        summary=f"{method} a charger's log into the location it was given",
        openapi_extra=UPLOAD_BODY,
    )

router = APIRouter(tags=["files"], route_class=StrictJsonRoute)
router.include_router(charger_router)


@router.post("/admin/firmware", status_code=201, openapi_extra=UPLOAD_BODY, tags=["admin"])
async def publish(
    app: AppDep, request: Request, _who: Admin, name: Annotated[str, Query(min_length=1, max_length=255)]
) -> FileOut:
    """Publish a firmware image (the body), to be named in UpdateFirmware by its token."""
    content = await _body(request)
    published = await asyncio.to_thread(app.files.publish_firmware, name, content)
    return _out(published, _base(app, request))


@router.get("/admin/firmware", tags=["admin"])
def firmware(app: AppDep, request: Request, _who: Admin) -> list[FileOut]:
    return [_out(f, _base(app, request)) for f in app.files.firmware()]


@router.post("/admin/chargers/{charger_id}/logs", tags=["admin"])
async def ask_for_log(
    app: AppDep, registry: RegistryDep, charger_id: IdPath, body: LogIn, request: Request, _who: Admin
) -> SentOut:
    """Make an upload location and ask the charger for its log there (GetLog; 1.6 GetDiagnostics)."""
    cp_id = app.queries.chargers.charge_point_id(charger_id)
    slot = _out(app.files.log_slot(cp_id), _base(app, request))
    command = files.GetLog(slot.url, body.request_id, body.log_type)
    result = await registry.send(cp_id, command, timeout_s=body.timeout_s)
    return SentOut(command=CommandResultOut(**result_json(result)), file=slot)


@router.get("/admin/chargers/{charger_id}/logs", tags=["admin"])
def logs(app: AppDep, charger_id: IdPath, request: Request, _who: Admin) -> list[FileOut]:
    """The charger's log locations, oldest first, and what arrived in each."""
    return [
        _out(f, _base(app, request)) for f in app.files.logs(app.queries.chargers.charge_point_id(charger_id))
    ]


@router.get("/admin/files/{token}", responses=OCTETS, response_class=Response, tags=["admin"])
def uploaded(app: AppDep, token: Token, _who: Admin) -> Response:
    """What a charger uploaded (or a published image)."""
    f, content = app.files.uploaded(token)
    headers = {"Content-Disposition": _disposition(f.name)}
    return Response(content, media_type="application/octet-stream", headers=headers)


@router.post("/admin/chargers/{charger_id}/firmware", tags=["admin"])
async def update_firmware(
    app: AppDep, registry: RegistryDep, charger_id: IdPath, body: FirmwareIn, request: Request, _who: Admin
) -> SentOut:
    """Ask the charger to download a published image and install it (UpdateFirmware)."""
    cp_id = app.queries.chargers.charge_point_id(charger_id)
    image, _ = app.files.firmware_image(body.token)
    out = _out(image, _base(app, request))
    retrieve_at = body.retrieve_at or app.clock.now()
    if retrieve_at.tzinfo is None:
        raise InvalidRequest("retrieve_at must say its time zone")
    command = files.UpdateFirmware(out.url, retrieve_at, body.request_id)
    result = await registry.send(cp_id, command, timeout_s=body.timeout_s)
    return SentOut(command=CommandResultOut(**result_json(result)), file=out)
