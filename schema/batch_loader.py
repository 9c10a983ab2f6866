"""Per-request batch loaders: the keys resolvers ask for are read together, once, in waves.

A loader does what a DataLoader does for the resolvers (keys wanted together go into one read; a key is read at
most once per request), with one future per batch rather than one per key: a page of 100 assets, a lineage of
2,000 nodes or 1,000 federation representations ask for their rows with `load_many`, and a future, a task step
and a gather per key cost more than the statement that reads them.

The loaders of a request read in waves (`Waves`): a batch waits until no read of the request is under way, then
every loader with keys waiting reads at once. The keys that one wave's rows lead to (the jobs of runs read in the
wave before, whether a run was found through an asset or an execution) are then read together whichever read came
back first, so the statements of an answer depend on its shape only, never on timing or on the number of rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ReadMany = Callable[[list[K]], Awaitable[Mapping[K, V]]]
# Turns of the event loop without new keys before a wave is read, and the most it waits for them to stop coming.
QUIET_TURNS = 3
MAX_TURNS = 64


class _Batch(asyncio.Future[None]):
    """One read that several resolvers wait for. A waiter that is cancelled (a sibling field failed) must not
    cancel the read the others wait for: it is cancelled when it wakes up, as a task is that waits on something
    which refuses to be cancelled."""

    def cancel(self, msg: Any = None) -> bool:
        return False

    def abandon(self) -> None:
        super().cancel()


class _Reader(Protocol):
    def begin_read(self) -> None: ...


class Waves:
    """The reads of one request's loaders (see the module)."""

    def __init__(self) -> None:
        self._reading = 0
        self._waiting: list[_Reader] = []
        self._scheduled = False
        self._activity = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def wait(self, loader: _Reader) -> None:
        """`loader` has keys to read: in the next wave."""
        self._waiting.append(loader)
        self._schedule()

    def run(self, read: Awaitable[None]) -> None:
        task = asyncio.ensure_future(self._counted(read))
        # The loop keeps only weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _counted(self, read: Awaitable[None]) -> None:
        self._reading += 1
        try:
            await read
        finally:
            self._reading -= 1
            self._schedule()

    def added(self) -> None:
        """Keys were added to a batch that waits: the wave is not quiet yet."""
        self._activity += 1

    def _schedule(self) -> None:
        if self._scheduled or self._reading or not self._waiting:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._tick, self._activity, 0, 0)

    def _tick(self, activity: int, quiet: int, turns: int) -> None:
        # The wave starts once the resolvers woken by the last read have stopped asking for keys: a resolver's
        # result reaches the fields below it a turn or two of the loop later (graphql-core gathers them as tasks).
        quiet = quiet + 1 if activity == self._activity else 0
        if quiet < QUIET_TURNS and turns < MAX_TURNS:
            asyncio.get_running_loop().call_soon(self._tick, self._activity, quiet, turns + 1)
            return
        self._scheduled = False
        if self._reading:
            return
        waiting, self._waiting = self._waiting, []
        for loader in waiting:
            loader.begin_read()


class BatchLoader(Generic[K, V]):
    def __init__(self, read: ReadMany[K, V], default: V, waves: Waves) -> None:
        """`read` returns the values found for a list of keys; a key it leaves out has `default`."""
        self._read = read
        self._default = default
        self._waves = waves
        self._values: dict[K, V] = {}
        self._wanted: dict[K, None] = {}
        self._batch: _Batch | None = None
        # Keys being read, and the read: a key asked for again meanwhile waits for that read, not for another.
        self._in_flight: dict[K, _Batch] = {}

    async def load(self, key: K) -> V:
        if key not in self._values:
            await (self._in_flight.get(key) or self._fetch((key,)))
        return self._values.get(key, self._default)

    async def load_many(self, keys: Iterable[K]) -> list[V]:
        keys = list(keys)
        values, in_flight = self._values, self._in_flight
        missing = [key for key in keys if key not in values]
        if missing:
            reads = {id(batch): batch for key in missing if (batch := in_flight.get(key)) is not None}
            unread = [key for key in missing if key not in in_flight]
            if unread:
                batch = self._fetch(unread)
                reads[id(batch)] = batch
            for batch in reads.values():
                await batch
        default = self._default
        return [values.get(key, default) for key in keys]

    def _fetch(self, keys: Sequence[K]) -> _Batch:
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(loop=asyncio.get_running_loop())
            # Read the outcome even when every waiter went away, so that a failure is not reported as unretrieved.
            batch.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._waves.wait(self)
        self._waves.added()
        self._wanted.update(dict.fromkeys(keys))
        return batch

    def begin_read(self) -> None:
        batch, keys = self._batch, list(self._wanted)
        assert batch is not None
        self._batch, self._wanted = None, {}
        self._in_flight.update(dict.fromkeys(keys, batch))
        self._waves.run(self._read_into(batch, keys))

    async def _read_into(self, batch: _Batch, keys: list[K]) -> None:
        try:
            found = await self._read(keys)
        except Exception as error:
            self._landed(keys)
            batch.set_exception(error)
            return
        except BaseException:
            self._landed(keys)
            batch.abandon()
            raise
        values, default = self._values, self._default
        for key in keys:
            values[key] = found.get(key, default)
        self._landed(keys)
        batch.set_result(None)

    def _landed(self, keys: list[K]) -> None:
        in_flight = self._in_flight
        for key in keys:
            in_flight.pop(key, None)
