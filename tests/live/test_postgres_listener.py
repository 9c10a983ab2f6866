"""Postgres: the LISTEN connection comes back after it is lost, and what happened meanwhile is not lost."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.live.postgres import APPLICATION_NAME
from gateway.settings import Settings
from tests.live.support import eventually, graphql_socket, serve

ASSET_CHANGED = "subscription { assetChanged { key } }"
UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
TERMINATE = """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = :name AND datname = current_database()"""


async def test_the_listener_reconnects_and_catches_up(clean_postgres: str) -> None:
    settings = Settings(database_url=clean_postgres, auto_migrate=False)
    # No poll to speak of: only notifications, and the catch-up after reconnecting, can deliver.
    async with serve(settings, live_poll_seconds=3600) as served, graphql_socket(served.ws_url) as socket:
        listener = served.live.listener
        assert listener is not None
        await eventually(listener.connected.is_set, "the listener to connect")
        operation = await socket.subscribe(ASSET_CHANGED)
        await served.subscribed(1)
        await served.graphql(UPSERT, {"input": {"key": "s3://pg/before.csv"}})
        assert (await socket.next_data(operation))["assetChanged"] == {"key": "s3://pg/before.csv"}

        admin = create_async_engine(clean_postgres, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                terminated = (await connection.execute(text(TERMINATE), {"name": APPLICATION_NAME})).all()
        finally:
            await admin.dispose()
        assert len(terminated) == 1
        await eventually(lambda: not listener.connected.is_set(), "the listener to notice")
        await served.graphql(UPSERT, {"input": {"key": "s3://pg/while-away.csv"}})
        assert listener.connections == 1, "the listener was back before the write: nothing was missed"
        assert (await socket.next_data(operation))["assetChanged"] == {"key": "s3://pg/while-away.csv"}
        assert listener.connections == 2

        await served.graphql(UPSERT, {"input": {"key": "s3://pg/after.csv"}})
        assert (await socket.next_data(operation))["assetChanged"] == {"key": "s3://pg/after.csv"}
