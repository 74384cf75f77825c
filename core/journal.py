"""A run's writes, batched so that a step costs one commit per outside call.

A run writes two kinds of things. Some must be durable *before* the run reaches
outside itself: the reservation that holds a model call's or a tool call's worst
case against the month. Others only record what already happened: a response's
settlement, the checkpoint after it, a tool call's effect with its audit event.

``RunJournal`` defers the second kind and writes them in the transaction of the
next write of the first kind (or when the allocation ends). The rule it keeps:
everything the run did is committed before it calls a model or a tool again. A
crash loses at most what happened since the last call began, which a resume
already handles (an open reservation is charged in full as retried work and the
call is made again), at half the commits per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

from core.db.engine import Database

T = TypeVar("T")
Write = Callable[[Connection], object]


class RunJournal:
    """The deferred writes of one run allocation, in the order they were made."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._deferred: list[Write] = []

    def defer(self, write: Write) -> None:
        """Queue ``write`` for the run's next transaction."""
        self._deferred.append(write)

    async def commit(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction after every deferred write, and return its result.

        ``work`` must not raise to refuse something (a refusal would roll back the
        deferred writes with it): it returns the refusal for the caller to raise.
        If the transaction fails, the deferred writes are gone with it and the
        error propagates; the run ends, and a resume repairs what was lost.
        """
        deferred, self._deferred = self._deferred, []

        def transaction(conn: Connection) -> T:
            for write in deferred:
                write(conn)
            return work(conn)

        return await self.db.run(transaction)

    async def flush(self) -> None:
        """Commit whatever is deferred (the allocation is ending)."""
        if self._deferred:
            await self.commit(_nothing)


def _nothing(_conn: Connection) -> None:
    return None
