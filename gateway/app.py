"""create_app(settings) -> the Starlette application: routes, lifespan, nothing global."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from gateway import __version__
from gateway.authenticator import Authenticator
from gateway.database import Database
from gateway.faults import DatabaseFaultMiddleware
from gateway.http_auth import AuthMiddleware
from gateway.ingest.http import post_lineage
from gateway.ingest.writer import GroupWriter
from gateway.live import LiveChanges
from gateway.metrics import GatewayMetrics, metrics_endpoint
from gateway.migrate import current_revision, migrate
from gateway.migrations import HEAD_REVISION
from gateway.request_context import RequestContextMiddleware
from gateway.settings import Settings, load_settings
from monitors.freshness import monitor_from_settings
from monitors.scheduler import LeaderLock, ScheduledJob, Scheduler
from schema import build_schema
from schema.http import GatewayGraphQL
from shippers.service import runners_from_settings

logger = logging.getLogger("gateway")


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    db: Database = request.app.state.db
    try:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await current_revision(db.engine)
    except Exception as error:
        return JSONResponse({"status": "unavailable", "reason": type(error).__name__}, status_code=503)
    expected = HEAD_REVISION
    if revision != expected:
        reason = f"database is at migration {revision}, the gateway needs {expected}: run `asset-gateway migrate`"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready", "migration": revision})


async def root(_: Request) -> Response:
    return RedirectResponse("/graphql")


def cors_middleware(settings: Settings) -> list[Middleware]:
    """CORS for the configured browser origins only; none configured, browsers get no cross-origin access.

    It sits before authentication: a preflight carries no token, and answering it reveals nothing.
    """
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            # Bearer tokens travel in a header the page sets itself; no cookie is ever needed.
            allow_credentials=False,
            max_age=600,
        )
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    db = Database(settings, serving=True)
    authenticator = Authenticator(db, settings)
    monitor = monitor_from_settings(db, settings)
    shippers = runners_from_settings(db, settings)
    metrics = GatewayMetrics(monitors=[monitor.name], shippers=shippers, multiprocess_dir=settings.worker_metrics_dir)
    monitor.observers.append(metrics.monitor_finished)
    for runner in shippers.values():
        runner.observers.append(metrics.shipper_finished)
    schema = build_schema(settings, metrics)
    live = LiveChanges(db, settings)
    graphql = GatewayGraphQL(schema, db, settings, {monitor.name: monitor}, shippers, authenticator, live)
    ingest_writer = GroupWriter(db, max_wait_seconds=settings.ingest_group_wait_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.should_auto_migrate:
            # Migrations may outlast the serving statement timeout (Postgres): they get an engine without it.
            maintenance = db if settings.is_sqlite else Database(settings)
            try:
                await migrate(maintenance.engine)
            finally:
                if maintenance is not db:
                    await maintenance.dispose()
        await authenticator.start()
        logger.info("asset-gateway %s serving %s", __version__, db.engine.url.render_as_string(hide_password=True))
        scheduler = Scheduler(LeaderLock(settings))
        if settings.scheduler_enabled:
            scheduler.add(ScheduledJob(monitor.name, monitor.run, interval_seconds=settings.monitor_interval_seconds))
            for runner in shippers.values():
                scheduler.add(
                    ScheduledJob(
                        f"shipper:{runner.name}",
                        runner.run,
                        interval_seconds=runner.spec.interval_seconds,
                        cron=runner.spec.cron,
                    )
                )
            scheduler.start()
        await live.start()
        try:
            yield
        finally:
            await live.stop()
            await ingest_writer.aclose()
            await scheduler.shutdown()
            await monitor.aclose()
            for runner in shippers.values():
                await runner.aclose()
            await db.dispose()

    app = Starlette(
        routes=[
            Route("/", root),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/api/v1/lineage", post_lineage, methods=["POST"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        # Outermost first. The request id wraps everything, so that whatever logs or fails has it; CORS (only with
        # `cors_origins`) goes right after it. The fault net turns a database outage escaping any handler into 503.
        middleware=[
            Middleware(RequestContextMiddleware, metrics=metrics),
            *cors_middleware(settings),
            Middleware(DatabaseFaultMiddleware),
            Middleware(AuthMiddleware, authenticator=authenticator),
        ],
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.monitor = monitor
    app.state.shippers = shippers
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.live = live
    app.state.ingest_writer = ingest_writer
    app.state.metrics = metrics
    return app
