"""POST /api/v1/lineage: Marquez's path, so every OpenLineage producer points here unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth import ANONYMOUS, Principal, Scope
from gateway.database import Database
from gateway.http_auth import PRINCIPAL
from gateway.ingest.service import BodyError, decode_documents, decompress, ingest_documents
from gateway.ingest.writer import GroupWriter
from gateway.metrics import GatewayMetrics
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
    principal: Principal = request.scope.get("state", {}).get(PRINCIPAL, ANONYMOUS)
    if not principal.scope.includes(Scope.WRITE):
        return _error(403, f"posting lineage needs a token with the write scope; this token has {principal.scope}")
    try:
        body = await _read_body(request, settings.max_body_bytes)
        body = decompress(body, request.headers.get("content-encoding"), settings.max_body_bytes)
        documents, is_batch = decode_documents(body, request.headers.get("content-type"))
    except BodyError as error:
        return _error(error.status, error.message)
    if len(documents) > settings.max_batch_events:
        return _error(413, f"a batch holds at most {settings.max_batch_events} events, got {len(documents)}")
    # A database fault raises out of here: gateway.faults.DatabaseFaultMiddleware answers 503, never 201.
    writer: GroupWriter = request.app.state.ingest_writer
    report = await ingest_documents(db, documents, datetime.now(UTC), principal, writer)
    metrics: GatewayMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.count_ingested(report.accepted, report.duplicates, len(report.rejected))
    if not is_batch:
        if report.rejected and report.rejected[0].forbidden:
            return _error(403, report.rejected[0].error)
        if report.rejected:
            return _error(400, f"invalid OpenLineage event: {report.rejected[0].error}")
        return JSONResponse(report.as_json(), status_code=201)
    if report.rejected and not (report.accepted or report.duplicates):
        if all(rejection.forbidden for rejection in report.rejected):
            return JSONResponse(
                {"error": "no event in the batch may be written with this token", **report.as_json()}, status_code=403
            )
        return JSONResponse({"error": "no event in the batch is valid", **report.as_json()}, status_code=400)
    return JSONResponse(report.as_json(), status_code=200 if report.rejected else 201)
