"""LiveChanges: one per process; follows the change feed and new alerts and fans them out to subscriptions.

Waking up: on Postgres every committed write transaction notifies its txid (and every new alert its id) through
LISTEN/NOTIFY, so each replica reads exactly those changes at once, whichever replica or process wrote them; on
SQLite the process wakes itself after each commit. A slow poll of the feed catches what no notification
announced: writes of other processes on SQLite, and whatever happened while the listening connection was lost.
On Postgres the poll moves the cursor only as far as no transaction can still commit behind it (the snapshot's
xmin, as the shippers do), so a long transaction anywhere holds the cursor back; what others committed beyond it
is delivered from a second read all the same. Transactions delivered already ("announced") are skipped.

Each batch costs one statement per distinct (filter, grants) among the subscriptions of a kind, plus one to load
the selected rows. A subscription whose queue is full is dropped at once: the broker never waits for a consumer.
The broker follows the feed only while someone subscribes; the first subscription starts it at the feed's head.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database
from gateway.live.postgres import PostgresListener
from gateway.live.subscription import Kind, LiveUnavailable, Selector, Subscription
from gateway.orm import Change
from gateway.settings import Settings
from gateway.store import alerts, assets, live, runs
from gateway.store.changes import START, Cursor, feed_head, read_changes

logger = logging.getLogger("gateway.live")
BATCH = 1000
RECENT_ALERTS = 10_000
SHUTDOWN_REASON = "the gateway is shutting down"
ENTITY_KINDS: dict[str, Kind] = {"asset": "asset", "run": "run"}
LOADERS: dict[Kind, Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, Any]]]] = {
    "asset": assets.read_assets_by_ids,
    "run": runs.read_runs_by_ids,
    "alert": alerts.read_alerts_by_ids,
}


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


class LiveChanges:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.queue_size = settings.live_queue_size
        self.poll_seconds = settings.live_poll_seconds
        self.postgres = db.dialect == "postgresql"
        self.subscriptions: dict[Kind, set[Subscription[Any]]] = {"asset": set(), "run": set(), "alert": set()}
        self.delivered = 0
        self.dropped = 0
        self.listener: PostgresListener | None = None
        self._cursor: Cursor | None = None  # None: not following (nobody subscribes)
        self._seen: Cursor = START  # Postgres: the last change read whatever still runs (ahead of the cursor)
        self._alerts_after = 0
        self._pending_txids: set[int] = set()
        self._pending_alerts: set[int] = set()
        self._announced_txids: set[int] = set()  # delivered on notification, ahead of the cursor
        self._recent_alerts: dict[int, None] = {}  # delivered alerts, oldest first (ids may commit out of order)
        self._poll_due = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    # --- life cycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._tasks = [asyncio.create_task(self._pump_forever(), name="live-pump")]
        self._tasks.append(asyncio.create_task(self._tick_forever(), name="live-poll"))
        if self.postgres:
            self.listener = PostgresListener(self.db.engine, self._notified, self._reconnected)
            self._tasks.append(asyncio.create_task(self.listener.run(), name="live-listen"))
        else:
            self.db.commit_listeners.append(self.wake)

    async def stop(self) -> None:
        """Ends every subscription (their streams complete) and stops following the feed."""
        self._running = False
        for subscription in self.all_subscriptions():
            subscription.end(SHUTDOWN_REASON)
        for group in self.subscriptions.values():
            group.clear()
        if self.wake in self.db.commit_listeners:
            self.db.commit_listeners.remove(self.wake)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def all_subscriptions(self) -> list[Subscription[Any]]:
        return [subscription for group in self.subscriptions.values() for subscription in group]

    # --- subscribing ---------------------------------------------------------------------------------------

    async def subscribe(self, selector: Selector, on_drop: Callable[[str], None] | None = None) -> Subscription[Any]:
        """A new subscription; it receives what commits from now on."""
        if not self._running:
            raise LiveUnavailable("subscriptions are not served now: the gateway is starting or stopping")
        async with self._lock:
            if self._cursor is None:
                await self._seek()
            subscription: Subscription[Any] = Subscription(selector, self.queue_size, on_drop)
            self.subscriptions[selector.kind].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[Any]) -> None:
        self.subscriptions[subscription.kind].discard(subscription)

    async def _seek(self) -> Cursor:
        """Starts following at the head: what committed before is not delivered, whatever its txid."""
        async with self.db.session() as session:
            cursor = await feed_head(session)
            seen, committed = cursor, set()
            if self.postgres:  # transactions beyond the xmin horizon that have committed already
                seen = await live.committed_head(session)
                committed = await live.read_committed_txids_after(session, cursor)
            self._alerts_after = await live.latest_alert_id(session)
        self._cursor, self._seen, self._announced_txids = cursor, seen, committed
        self._pending_txids.clear()
        self._pending_alerts.clear()
        self._recent_alerts.clear()
        return cursor

    # --- waking up -----------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _notified(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        if kind not in ("change", "alert") or not value.isdigit():
            logger.warning("live updates: ignored the notification %r", payload)
            return
        (self._pending_txids if kind == "change" else self._pending_alerts).add(int(value))
        self._wake.set()

    def _reconnected(self) -> None:
        # Notifications sent while nobody listened are lost: the feed has them.
        self._poll_due = True
        self._wake.set()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            self._poll_due = True
            self._wake.set()

    async def _pump_forever(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                async with self._lock:
                    await self._pump()
                failures = 0
            except Exception as error:
                failures += 1
                log = logger.warning if failures == 1 else logger.debug
                log("live updates: reading changes failed (%s: %s); trying again", type(error).__name__, error)
                await asyncio.sleep(min(self.poll_seconds, 0.1 * 2**failures))
                self._poll_due = True
                self._wake.set()

    # --- reading and fanning out ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        if not any(self.subscriptions.values()):
            self._cursor = None
            self._pending_txids.clear()
            self._pending_alerts.clear()
            return
        cursor = self._cursor if self._cursor is not None else await self._seek()
        if self.postgres:
            # Transactions up to the cursor's were read whole by a poll (they were older than any running), and
            # announced ones were delivered already.
            txids = sorted(t for t in self._pending_txids if t > cursor[0] and t not in self._announced_txids)
            alert_ids = sorted(self._pending_alerts)
            self._pending_txids, self._pending_alerts = set(), set()
            await self._deliver_transactions(txids)
            await self._deliver_alerts(alert_ids)
            if not self._poll_due:
                return
        self._poll_due = False
        await self._poll_feed()
        await self._poll_alerts()

    async def _deliver_transactions(self, txids: list[int]) -> None:
        after = START
        while txids:
            async with self.db.session() as session:
                changes = await live.read_transaction_changes(session, txids, after, BATCH)
            await self._dispatch_changes(changes)
            if len(changes) < BATCH:
                break
            after = (changes[-1].txid, changes[-1].id)
        self._announced_txids.update(txids)

    async def _poll_feed(self) -> None:
        """Moves the cursor through the feed as far as no transaction can commit behind it, delivering what no
        notification did; on Postgres, then delivers at once what has committed beyond that point."""
        assert self._cursor is not None
        while True:
            async with self.db.session() as session:
                read = await read_changes(session, self._cursor, BATCH)
            await self._dispatch_changes([c for c in read.changes if c.txid not in self._announced_txids])
            if read.changes:
                self._cursor = (read.changes[-1].txid, read.changes[-1].id)
            if len(read.changes) < BATCH:
                break
        # A transaction behind the cursor can never be read again.
        self._announced_txids = {txid for txid in self._announced_txids if txid >= self._cursor[0]}
        if self.postgres:
            await self._poll_committed()

    async def _poll_committed(self) -> None:
        # A transaction that runs long anywhere in the cluster holds the cursor back (its xmin); what others
        # committed meanwhile is delivered now all the same, and skipped when the cursor passes it.
        self._seen = max(self._seen, self._cursor or START)
        delivered: set[int] = set()
        while True:
            async with self.db.session() as session:
                changes = await live.read_committed_changes(session, self._seen, BATCH)
            fresh = [c for c in changes if c.txid not in self._announced_txids]
            await self._dispatch_changes(fresh)
            delivered.update(c.txid for c in fresh)
            if changes:
                self._seen = (changes[-1].txid, changes[-1].id)
            if len(changes) < BATCH:
                break
        self._announced_txids |= delivered

    async def _poll_alerts(self) -> None:
        while True:
            async with self.db.session() as session:
                ids = await live.read_alert_ids_after(session, self._alerts_after, BATCH)
            await self._deliver_alerts(ids)
            if ids:
                self._alerts_after = ids[-1]
            if len(ids) < BATCH:
                break

    async def _deliver_alerts(self, ids: list[int]) -> None:
        fresh = [i for i in ids if i not in self._recent_alerts]
        await self._dispatch("alert", fresh)
        self._recent_alerts.update(dict.fromkeys(fresh))
        while len(self._recent_alerts) > RECENT_ALERTS:
            del self._recent_alerts[next(iter(self._recent_alerts))]

    async def _dispatch_changes(self, changes: Sequence[Change]) -> None:
        for entity, kind in ENTITY_KINDS.items():
            await self._dispatch(kind, _unique(change.entity_id for change in changes if change.entity == entity))

    async def _dispatch(self, kind: Kind, ids: list[int]) -> None:
        """Offers each subscription of `kind` the rows among `ids` that it selects, in the order of `ids`."""
        if not ids or not self.subscriptions[kind]:
            return
        groups: dict[Hashable, list[Subscription[Any]]] = defaultdict(list)
        for subscription in self.subscriptions[kind]:
            groups[subscription.selector.key].append(subscription)
        async with self.db.session() as session:
            selected = {key: await group[0].selector.select(session, ids) for key, group in groups.items()}
            wanted = sorted(set().union(*selected.values()))
            rows = await LOADERS[kind](session, wanted) if wanted else {}
        for key, group in groups.items():
            matching = [rows[i] for i in ids if i in selected[key] and i in rows]
            for subscription in group:
                for row in matching:
                    if not subscription.offer(row):
                        self._drop(subscription)
                        break
                    self.delivered += 1

    def _drop(self, subscription: Subscription[Any]) -> None:
        self.unsubscribe(subscription)
        self.dropped += 1
        reason = (
            f"this subscription fell {subscription.limit} updates behind and was closed: "
            "read faster, or subscribe with a narrower filter"
        )
        subscription.end(reason, dropped=True)
        logger.warning(
            "live updates: dropped a %s subscription that fell %d updates behind", subscription.kind, subscription.limit
        )
        if subscription.on_drop is not None:
            try:
                subscription.on_drop(reason)
            except Exception:
                logger.exception("live updates: disconnecting a slow consumer failed")
