"""Live commit and reorg events for ``GET /events``: one LISTEN, many subscribers.

The writer announces every commit and every rollback with ``pg_notify`` in
the same transaction (``persist/_notify.py``), so PostgreSQL delivers them
after the data is visible and in commit order, to every process on the
database: ``indexer serve`` hears the commits of an ``indexer run`` in
another process exactly as ``run --serve`` hears its own.

One connection LISTENs in a worker thread; :class:`EventHub` fans each
event out to the subscribers' small channels.  A subscriber that does not
keep up (its buffer is full) is dropped, its stream ends, and its client
reconnects: one slow browser tab must not hold up the others or grow the
server's memory.  ``LISTEN`` is refused on a read replica (hot standby);
the hub then polls the chains table instead, which sees every commit's
outcome but may merge a rollback and the next commit into one ``commit``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import trio
from psycopg import sql

from ..persist import CHANNEL, decode_notification

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["EventHub", "LiveEvent"]

log = logging.getLogger("indexer.api")

_SUBSCRIBER_BUFFER = 256
_LISTEN_WAKEUP = 0.5  # seconds: how soon the listener thread notices a shutdown
_POLL_INTERVAL = 1.0
_RECONNECT_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One server-sent event: ``kind`` is ``commit`` or ``reorg``."""

    kind: str
    chain_id: int
    block: int


class EventHub:
    """Fans the schema's commit and reorg notifications out to subscribers."""

    def __init__(self, url: str, schema: str, *, listen: bool = True) -> None:
        self.url = url
        self.schema = schema
        self._use_listen = listen
        self._subscribers: set[trio.MemorySendChannel[LiveEvent]] = set()
        self.mode = "starting"  # "listen" or "poll" once running

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[LiveEvent]]:
        """A channel of the events from now on; it closes if the subscriber falls behind."""
        send, receive = trio.open_memory_channel[LiveEvent](_SUBSCRIBER_BUFFER)
        self._subscribers.add(send)
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()

    def publish(self, event: LiveEvent) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(send)
                send.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen (or poll) until cancelled, reconnecting after database errors."""
        started = False
        while True:
            try:
                conn = await trio.to_thread.run_sync(self._connect)
            except psycopg.Error as exc:
                log.warning("events: cannot connect (%s); retrying", type(exc).__name__)
                if not started:
                    task_status.started()
                    started = True
                await trio.sleep(_RECONNECT_DELAY)
                continue
            try:
                listening = self._use_listen and await trio.to_thread.run_sync(self._listen, conn)
                self.mode = "listen" if listening else "poll"
                if not started:
                    task_status.started()
                    started = True
                if listening:
                    await self._pump_notifications(conn)
                else:
                    await self._poll(conn)
            except psycopg.Error as exc:
                log.warning("events: connection lost (%s); reconnecting", type(exc).__name__)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(conn.close)
            await trio.sleep(_RECONNECT_DELAY)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, application_name="indexer-api-events")

    @staticmethod
    def _listen(conn: psycopg.Connection[Any]) -> bool:
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.ReadOnlySqlTransaction):
            # A hot standby: "cannot execute LISTEN during recovery".
            return False
        return True

    async def _pump_notifications(self, conn: psycopg.Connection[Any]) -> None:
        def wait() -> list[str]:
            return [n.payload for n in conn.notifies(timeout=_LISTEN_WAKEUP)]

        while True:
            # Short waits, not abandoned threads: the connection has one
            # user at a time, and cancellation lands within _LISTEN_WAKEUP.
            for payload in await trio.to_thread.run_sync(wait):
                note = decode_notification(payload)
                if note is None or note.schema != self.schema:
                    continue
                for chain_id, block in sorted(note.blocks.items()):
                    self.publish(LiveEvent(note.kind, chain_id, block))

    async def _poll(self, conn: psycopg.Connection[Any]) -> None:
        query = sql.SQL("SELECT chain_id, progress_block FROM {}.{}").format(
            sql.Identifier(self.schema), sql.Identifier("_indexer_chains")
        )

        def read() -> dict[int, int]:
            try:
                return {int(c): int(b) for c, b in conn.execute(query).fetchall()}
            except psycopg.errors.UndefinedTable:
                return {}

        seen = await trio.to_thread.run_sync(read)
        while True:
            await trio.sleep(_POLL_INTERVAL)
            now = await trio.to_thread.run_sync(read)
            for chain_id, block in sorted(now.items()):
                before = seen.get(chain_id)
                if before is None or block > before:
                    self.publish(LiveEvent("commit", chain_id, block))
                elif block < before:
                    self.publish(LiveEvent("reorg", chain_id, block))
            seen = now
