"""A send-rate limit shared through the database by every run on every machine.

Exchange Online accepts 30 messages a minute from one mailbox; two dispatch runs at once
must keep that rate together, so the limit lives in the database, not in the process. A
sliding window: ``take()`` records a slot in ``send_slot`` when fewer than ``limit`` slots
were taken in the last ``window`` seconds, and otherwise waits until the oldest one leaves
the window. Takers are serialised by an UPDATE of the limiter's row (a row lock on
PostgreSQL, the write lock on SQLite) held while they count, so two cannot both take the
last slot. Works the same on SQLite and PostgreSQL; no Prefect needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hytetu import db


class RateLimiter:
    """At most ``limit`` sends per ``window`` seconds for ``key`` (the sender mailbox)."""

    def __init__(
        self,
        url: str | None,
        key: str,
        *,
        limit: int,
        window: float = 60.0,
        run: str = "",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = db.utcnow,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.url, self.key, self.limit, self.window = url, key, limit, window
        self.run, self.sleep, self.clock = run, sleep, clock
        self.waited = 0.0

    def take(self) -> datetime:
        """Wait for and record one send; returns the slot's time."""
        while True:
            wait = self._try_take()
            if isinstance(wait, datetime):
                return wait
            if wait is None:  # first use of this limiter: make its row, outside the lock
                self._create_row()
                continue
            self.waited += wait
            self.sleep(wait)

    def _try_take(self) -> datetime | float | None:
        window = timedelta(seconds=self.window)
        with db.session_scope(self.url) as s:
            now = self.clock()
            locked = cast(
                "CursorResult[Any]",
                s.execute(
                    update(db.RateLimiter)
                    .where(db.RateLimiter.key == self.key)
                    .values(touched_at=now)
                ),
            ).rowcount
            if not locked:
                return None
            since = now - window
            taken, oldest = s.execute(
                select(func.count(), func.min(db.SendSlot.at)).where(
                    db.SendSlot.limiter == self.key, db.SendSlot.at > since
                )
            ).one()
            if taken < self.limit:
                s.execute(insert(db.SendSlot).values(limiter=self.key, at=now, run=self.run))
                # slots older than a day prove nothing for the rate: keep the table small
                s.execute(
                    delete(db.SendSlot).where(
                        db.SendSlot.limiter == self.key,
                        db.SendSlot.at < now - max(window, timedelta(days=1)),
                    )
                )
                return now
            wait = (oldest + window - now).total_seconds()
            return max(wait, 0.001)

    def _create_row(self) -> None:
        try:
            with db.session_scope(self.url) as s:
                s.add(db.RateLimiter(key=self.key, touched_at=self.clock()))
        except IntegrityError:
            pass  # another run created it first
