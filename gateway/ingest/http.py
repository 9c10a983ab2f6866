"""POST /api/v1/lineage: Marquez's path, so every OpenLineage producer points here unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.database import Database
from gateway.ingest.service import BodyError, decode_documents, decompress, ingest_documents
from gateway.settings import Settings


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def post_lineage(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    try:
        body = await _read_body(request, settings.max_body_bytes)
        body = decompress(body, request.headers.get("content-encoding"), settings.max_body_bytes)
        documents, is_batch = decode_documents(body, request.headers.get("content-type"))
    except BodyError as error:
        return _error(error.status, error.message)
    if len(documents) > settings.max_batch_events:
        return _error(413, f"a batch holds at most {settings.max_batch_events} events, got {len(documents)}")
    report = await ingest_documents(db, documents, datetime.now(UTC))
    if not is_batch:
        if report.rejected:
            return _error(400, f"invalid OpenLineage event: {report.rejected[0].error}")
        return JSONResponse(report.as_json(), status_code=201)
    if report.rejected and not (report.accepted or report.duplicates):
        return JSONResponse({"error": "no event in the batch is valid", **report.as_json()}, status_code=400)
    return JSONResponse(report.as_json(), status_code=200 if report.rejected else 201)
